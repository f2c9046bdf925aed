// A ConvNet block's instance norm (GroupNorm with one group per channel, affine), ReLU and 2x2
// average pooling, fused into one autograd function over contiguous float32 NCHW tensors on the
// CPU, for models whose norm weights collect no gradient (every attack, every evaluation).
//
// libtorch writes the normalized activation, reads it back for the ReLU and the pooling, writes
// the pooling's input gradient and reads it back for the norm's backward: four passes over the
// block's largest tensor per attack step that stay here inside one plane, in the cache.
//
// Every value has libtorch 2.11's bits. Its group-norm kernels on x86 are the AVX2 ones (the
// AVX-512 build is not registered for them), and these follow them step by step, with the fused
// multiply-adds GCC formed there (measured bit for bit against libtorch):
//
// - mean and variance of a plane: libtorch's `RowwiseMoments` (Welford's update over 8 lanes in
//   chunks of 16 vectors, chunks merged as a binary cascade, then the lanes merged in order);
//   rstd = 1 / sqrt(max(var, 0) + eps) in double, rounded once;
// - normalized value: fma(scale, x, shift) with scale = rstd * gamma and
//   shift = fma(-scale, mean, beta); then the ReLU and pooling of pool_rows.h;
// - input gradient: the pooling's and the ReLU's (pool_rows.h) give dy; ds = sum(dy * x) and
//   db = sum(dy) in the order of libtorch's `map2_reduce_all` / `reduce_all` (8 lanes, then the
//   lanes folded 4, 2, 1); c2 = fma(db*gamma, mean, -ds*gamma) * rstd^3 / n,
//   c3 = fma(-(db*gamma*rstd), 1/n, -c2 * mean), dx = fma(rstd * gamma, dy, c2 * x) + c3.
//
// Only planes whose size is a multiple of 8 come here (no scalar tails). Each plane shape is
// verified on the first image of its first call (verified.h). A backward pass that builds a graph
// (double backward) runs libtorch's own differentiable operators, whose paths autograd then adds
// in its own order (equal values up to one rounding).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../native.h"
#include "pool_rows.h"
#include "verified.h"

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::atomic<uint64_t> fused_forwards{0};
std::atomic<uint64_t> fused_gradients{0};

enum class Pass { Forward, InputGradient };

// One call's shape: pass, channels, height, width. Not the batch: both libtorch's kernels and
// ours compute each plane on its own, the same way whatever the planes around it, so a verdict
// holds for every batch (attacks that drop the samples they fooled, as DeepFool, call with many).
using Shape = std::tuple<Pass, int64_t, int64_t, int64_t>;

beard::Verdicts<Shape>& verdicts() {
    static beard::Verdicts<Shape> instance;
    return instance;
}

Shape shape_of(Pass pass, const at::Tensor& input) {
    return {pass, input.size(1), input.size(2), input.size(3)};
}

// The statistics of one plane that the backward pass reuses.
struct PlaneStats {
    float mean;
    float rstd;
};

#if defined(__x86_64__)

bool vector_unit() {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

constexpr int64_t kLanes = 8;
// Vectors per Welford chunk: libtorch's kChunkSize.
constexpr int64_t kChunk = 16;

// Count, mean and sum of squared deviations of values spread over 8 lanes.
struct LaneMoments {
    int64_t count;
    __m256 mean;
    __m256 m2;
};

__attribute__((target("avx2,fma"))) LaneMoments no_moments() {
    return {0, _mm256_setzero_ps(), _mm256_setzero_ps()};
}

// Merges `add` into `into` (libtorch's AddMomentsVec).
__attribute__((target("avx2,fma"))) void merge(const LaneMoments& add, LaneMoments& into) {
    const int64_t count = into.count + add.count;
    const float weight = count == 0 ? 0.0f : static_cast<float>(add.count) / static_cast<float>(count);
    const __m256 weights = _mm256_set1_ps(weight);
    const __m256 delta = _mm256_sub_ps(add.mean, into.mean);
    const __m256 m2_sum = _mm256_add_ps(into.m2, add.m2);
    const __m256 weighted_delta = _mm256_mul_ps(weights, delta);
    const __m256 count_delta = _mm256_mul_ps(delta, _mm256_set1_ps(static_cast<float>(into.count)));
    into.mean = _mm256_add_ps(into.mean, weighted_delta);
    into.m2 = _mm256_fmadd_ps(count_delta, weighted_delta, m2_sum);
    into.count = count;
}

// Welford's update over one chunk of at most 16 vectors, from zero.
__attribute__((target("avx2,fma"))) LaneMoments chunk_moments(const float* values, int64_t vectors) {
    LaneMoments chunk = no_moments();
    for (int64_t j = 0; j < vectors; ++j) {
        const __m256 value = _mm256_loadu_ps(values + j * kLanes);
        const __m256 delta = _mm256_sub_ps(value, chunk.mean);
        chunk.mean = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / static_cast<float>(j + 1)), delta, chunk.mean);
        chunk.m2 = _mm256_fmadd_ps(delta, _mm256_sub_ps(value, chunk.mean), chunk.m2);
    }
    chunk.count = vectors;
    return chunk;
}

// Mean and population variance of `size` values (a multiple of 8), in libtorch's order.
__attribute__((target("avx2,fma"))) std::pair<float, float> moments(const float* values, int64_t size) {
    const int64_t vectors = size / kLanes;
    const int64_t chunks = (vectors + kChunk - 1) / kChunk;
    int64_t depth = 0;
    while ((int64_t{1} << depth) < chunks) ++depth;
    // stack[j] holds the merge of 2^j chunks, as a binary counter of the chunks seen.
    std::array<LaneMoments, 64> stack;
    stack.fill(no_moments());
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        const int64_t length = std::min(kChunk, vectors - chunk * kChunk);
        merge(chunk_moments(values + chunk * kChunk * kLanes, length), stack[0]);
        int64_t seen = chunk + 1;
        for (int64_t level = 1; level < depth && (seen & 1) == 0; ++level, seen >>= 1) {
            merge(stack[level - 1], stack[level]);
            stack[level - 1] = no_moments();
        }
    }
    for (int64_t level = 1; level < depth; ++level) merge(stack[level], stack[0]);
    alignas(32) float lane_means[kLanes];
    alignas(32) float lane_m2s[kLanes];
    _mm256_store_ps(lane_means, stack[0].mean);
    _mm256_store_ps(lane_m2s, stack[0].m2);
    // The lanes merged one by one (libtorch's scalar AddMoments).
    int64_t count = 0;
    float mean = 0.0f;
    float m2 = 0.0f;
    for (int64_t lane = 0; lane < kLanes; ++lane) {
        const int64_t total = count + vectors;
        const float weight = total == 0 ? 0.0f : static_cast<float>(vectors) / static_cast<float>(total);
        const float delta = lane_means[lane] - mean;
        mean = std::fma(weight, delta, mean);
        m2 = m2 + std::fma(delta * delta * weight, static_cast<float>(count), lane_m2s[lane]);
        count = total;
    }
    return {mean, m2 / static_cast<float>(size)};
}

// Lane 0 of the sums of `lanes` folded 4, 2, 1 apart (libtorch's vec_reduce_all on AVX2).
__attribute__((target("avx2,fma"))) float fold_lanes(__m256 lanes) {
    lanes = _mm256_add_ps(lanes, _mm256_permute2f128_ps(lanes, lanes, 0x1));
    lanes = _mm256_add_ps(lanes, _mm256_shuffle_ps(lanes, lanes, 0x4E));
    lanes = _mm256_add_ps(lanes, _mm256_shuffle_ps(lanes, lanes, 0xB1));
    return _mm256_cvtss_f32(lanes);
}

// sum(a * b) over `size` values (a multiple of 8): libtorch's map2_reduce_all, no fused terms.
__attribute__((target("avx2,fma"))) float sum_of_products(const float* a, const float* b, int64_t size) {
    __m256 sums = _mm256_mul_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b));
    for (int64_t at = kLanes; at < size; at += kLanes) {
        sums = _mm256_add_ps(sums, _mm256_mul_ps(_mm256_loadu_ps(a + at), _mm256_loadu_ps(b + at)));
    }
    return fold_lanes(sums);
}

// sum(a) over `size` values (a multiple of 8): libtorch's reduce_all.
__attribute__((target("avx2,fma"))) float sum_of(const float* a, int64_t size) {
    __m256 sums = _mm256_loadu_ps(a);
    for (int64_t at = kLanes; at < size; at += kLanes) sums = _mm256_add_ps(sums, _mm256_loadu_ps(a + at));
    return fold_lanes(sums);
}

// The plane's statistics from its values.
__attribute__((target("avx2,fma"))) PlaneStats plane_stats(const float* plane, int64_t size, double eps) {
    const auto [mean, variance] = moments(plane, size);
    // As libtorch: the float variance plus the double eps, in double, rounded once.
    const float rstd = static_cast<float>(1.0f / std::sqrt(std::max(variance, 0.0f) + eps));
    return {mean, rstd};
}

// The normalized plane: fma(scale, x, shift).
__attribute__((target("avx2,fma"))) void normalize(const float* plane, int64_t size, PlaneStats stats, float gamma,
                                                   float beta, float* normalized) {
    const float scale = stats.rstd * gamma;
    const float shift = std::fma(-scale, stats.mean, beta);
    const __m256 scales = _mm256_set1_ps(scale), shifts = _mm256_set1_ps(shift);
    for (int64_t at = 0; at < size; at += kLanes) {
        _mm256_storeu_ps(normalized + at, _mm256_fmadd_ps(scales, _mm256_loadu_ps(plane + at), shifts));
    }
}

// dx of one plane from its output gradient `dy` and its input `plane`.
__attribute__((target("avx2,fma"))) void plane_input_gradient(const float* dy, const float* plane, int64_t size,
                                                              PlaneStats stats, float gamma, float* dx) {
    const float inverse_size = 1.0f / static_cast<float>(size);
    const float ds = 0.0f + sum_of_products(dy, plane, size) * gamma;
    const float db = 0.0f + sum_of(dy, size) * gamma;
    const float rstd = stats.rstd;
    const float c2 = std::fma(db, stats.mean, -ds) * rstd * rstd * rstd * inverse_size;
    const float c3 = std::fma(-(db * rstd), inverse_size, -c2 * stats.mean);
    const __m256 c1s = _mm256_set1_ps(rstd * gamma), c2s = _mm256_set1_ps(c2), c3s = _mm256_set1_ps(c3);
    for (int64_t at = 0; at < size; at += kLanes) {
        const __m256 term = _mm256_mul_ps(c2s, _mm256_loadu_ps(plane + at));
        _mm256_storeu_ps(dx + at, _mm256_add_ps(_mm256_fmadd_ps(c1s, _mm256_loadu_ps(dy + at), term), c3s));
    }
}

// The pooled output of the block and every plane's statistics.
std::tuple<at::Tensor, at::Tensor> fused_forward(const at::Tensor& input, const at::Tensor& weight,
                                                 const at::Tensor& bias, double eps) {
    const int64_t channels = input.size(1), height = input.size(2), width = input.size(3);
    const int64_t planes = input.size(0) * channels, size = height * width;
    auto pooled = at::empty({input.size(0), channels, height / 2, width / 2}, input.options());
    auto stats = at::empty({planes, 2}, input.options());
    const float* in = input.const_data_ptr<float>();
    const float* gamma = weight.const_data_ptr<float>();
    const float* beta = bias.const_data_ptr<float>();
    float* out = pooled.mutable_data_ptr<float>();
    auto* plane_stats_out = reinterpret_cast<PlaneStats*>(stats.mutable_data_ptr<float>());
    at::parallel_for(0, planes, beard::planes_per_chunk(size), [&](int64_t begin, int64_t end) {
        std::vector<float> normalized(size);
        for (int64_t plane = begin; plane < end; ++plane) {
            const int64_t channel = plane % channels;
            const float* source = in + plane * size;
            const PlaneStats found = plane_stats(source, size, eps);
            normalize(source, size, found, gamma[channel], beta[channel], normalized.data());
            float* target = out + plane * (size / 4);
            for (int64_t row = 0; row < height / 2; ++row) {
                const float* top = normalized.data() + 2 * row * width;
                beard::pool_row(top, top + width, target + row * (width / 2), width);
            }
            plane_stats_out[plane] = found;
        }
    });
    return {pooled, stats};
}

at::Tensor fused_input_gradient(const at::Tensor& grad_output_, const at::Tensor& input, const at::Tensor& weight,
                                const at::Tensor& bias, const at::Tensor& stats) {
    const auto grad_output = grad_output_.contiguous();
    const int64_t channels = input.size(1), height = input.size(2), width = input.size(3);
    const int64_t planes = input.size(0) * channels, size = height * width;
    auto grad_input = at::empty_like(input, at::MemoryFormat::Contiguous);
    const float* gout = grad_output.const_data_ptr<float>();
    const float* in = input.const_data_ptr<float>();
    const float* gamma = weight.const_data_ptr<float>();
    const float* beta = bias.const_data_ptr<float>();
    const auto* plane_stats_in = reinterpret_cast<const PlaneStats*>(stats.const_data_ptr<float>());
    float* gin = grad_input.mutable_data_ptr<float>();
    at::parallel_for(0, planes, beard::planes_per_chunk(size), [&](int64_t begin, int64_t end) {
        std::vector<float> normalized(size), dy(size);
        for (int64_t plane = begin; plane < end; ++plane) {
            const int64_t channel = plane % channels;
            const float* source = in + plane * size;
            const PlaneStats found = plane_stats_in[plane];
            normalize(source, size, found, gamma[channel], beta[channel], normalized.data());
            const float* pooled = gout + plane * (size / 4);
            for (int64_t row = 0; row < height; ++row) {
                beard::unpool_row(pooled + (row / 2) * (width / 2), normalized.data() + row * width,
                                  dy.data() + row * width, width);
            }
            plane_input_gradient(dy.data(), source, size, found, gamma[channel], gin + plane * size);
        }
    });
    return grad_input;
}

#else

bool vector_unit() {
    return false;
}

std::tuple<at::Tensor, at::Tensor> fused_forward(const at::Tensor&, const at::Tensor&, const at::Tensor&, double) {
    TORCH_CHECK(false, "the fused instance norm needs an x86-64 CPU");
}

at::Tensor fused_input_gradient(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                const at::Tensor&) {
    TORCH_CHECK(false, "the fused instance norm needs an x86-64 CPU");
}

#endif

const std::array<int64_t, 2> kWindow{2, 2};
const std::array<int64_t, 2> kNoPadding{0, 0};

// libtorch's operators: group_norm, relu, avg_pool2d.
at::Tensor reference_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias, double eps) {
    return at::avg_pool2d(at::relu(at::group_norm(input, input.size(1), weight, bias, eps)), kWindow, kWindow);
}

// libtorch's backward of those three: the formulas autograd runs for them.
at::Tensor reference_input_gradient(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                    const at::Tensor& bias, double eps) {
    const int64_t batch = input.size(0), channels = input.size(1), size = input.size(2) * input.size(3);
    const auto [normalized, mean, rstd] =
        at::native_group_norm(input, weight, bias, batch, channels, size, channels, eps);
    const auto activated = at::relu(normalized);
    const auto grad_activated = at::avg_pool2d_backward(grad_output, activated, kWindow, kWindow, kNoPadding, false,
                                                        true, std::nullopt);
    const auto grad_normalized = at::threshold_backward(grad_activated, activated, 0);
    return std::get<0>(at::native_group_norm_backward(grad_normalized, input, mean, rstd, weight, batch, channels,
                                                      size, channels, {true, false, false}));
}

struct InstanceNormReluAvgPool : public torch::autograd::Function<InstanceNormReluAvgPool> {
    static at::Tensor forward(AutogradContext* context, const at::Tensor& input, const at::Tensor& weight,
                              const at::Tensor& bias, double eps) {
        auto [pooled, stats] = fused_forward(input, weight, bias, eps);
        context->save_for_backward({input, weight, bias, stats});
        context->saved_data["eps"] = eps;
        return pooled;
    }

    static variable_list backward(AutogradContext* context, variable_list grads) {
        const auto saved = context->get_saved_variables();
        const auto& input = saved[0];
        const auto& weight = saved[1];
        const auto& bias = saved[2];
        const double eps = context->saved_data["eps"].toDouble();
        at::Tensor grad_input;
        if (at::GradMode::is_enabled()) {
            // A graph of the gradient is asked for: libtorch's differentiable operators.
            const auto output = reference_forward(input, weight, bias, eps);
            grad_input = torch::autograd::grad({output}, {input}, {grads[0]}, true, true)[0];
        } else {
            const auto& grad_output = grads[0];
            grad_input = beard::verified_per_image(
                verdicts(), shape_of(Pass::InputGradient, input), fused_gradients,
                [&] { return fused_input_gradient(grad_output, input, weight, bias, saved[3]); },
                [&](int64_t images) {
                    return reference_input_gradient(grad_output.narrow(0, 0, images), input.narrow(0, 0, images),
                                                    weight, bias, eps);
                },
                input.size(0));
        }
        return {grad_input, at::Tensor(), at::Tensor(), at::Tensor()};
    }
};

at::Tensor instance_norm_relu_avg_pool(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                                       double eps) {
    if (!vector_unit() || weight.requires_grad() || bias.requires_grad()) {
        return reference_forward(input, weight, bias, eps);
    }
    return beard::verified_per_image(
        verdicts(), shape_of(Pass::Forward, input), fused_forwards,
        [&] {
            return at::GradMode::is_enabled() ? InstanceNormReluAvgPool::apply(input, weight, bias, eps)
                                              : std::get<0>(fused_forward(input, weight, bias, eps));
        },
        [&](int64_t images) { return reference_forward(input.narrow(0, 0, images), weight, bias, eps); },
        input.size(0));
}

}  // namespace

extern "C" {

// avg_pool2d(relu(group_norm(input, channels groups, weight, bias, eps)), 2, 2) of a contiguous
// float32 NCHW CPU tensor whose height and width are even and whose planes hold a multiple of 8
// values, with float32 weight and bias [channels] that need no gradient (the caller checks),
// recorded for autograd. On failure returns null and sets `*error` to a malloc'ed message the
// caller frees.
at::Tensor* beard_instance_norm_relu_avg_pool(const at::Tensor* input, const at::Tensor* weight,
                                              const at::Tensor* bias, double eps, char** error) {
    return beard::guarded("beard_instance_norm_relu_avg_pool", error,
                          [&] { return instance_norm_relu_avg_pool(*input, *weight, *bias, eps); });
}

// How many forward passes and input gradients the fused kernels have computed so far.
void beard_instance_norm_pool_fused_calls(uint64_t* forwards, uint64_t* gradients) {
    *forwards = fused_forwards.load();
    *gradients = fused_gradients.load();
}
}
