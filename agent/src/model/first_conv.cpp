// The first convolution of a ConvNet (3 input channels, 3x3 kernel, stride 1, padding 1) computed
// directly on contiguous float32 NCHW tensors on the CPU: its output and its input gradient.
//
// libtorch runs this convolution through oneDNN in a blocked layout: it reorders the output
// (batch x width x H x W) from 16-channel blocks to NCHW after the forward pass and the output
// gradient back before the backward one, and oneDNN's backward-data kernel pads the 3 input
// channels to 16, so 13 of every 16 multiply-adds it runs are on zeros. On the DC-bench ConvNet
// (width 128, 32x32) that was a sixth of a PGD step on two cores. Here both run in NCHW, with
// every output accumulated in oneDNN's order (measured bit for bit against libtorch 2.11):
//
// - forward: from 0, over kernel row, kernel column, input channel (innermost), each term one
//   fused multiply-add; then the bias added;
// - input gradient: per block of 16 output channels (8 where oneDNN's kernels are AVX2 ones), a
//   partial sum from 0 over kernel row, kernel column, output channel (innermost), fused; the
//   partial sums added up block by block.
//
// Terms outside the image add a zero product (oneDNN skips them), which can only turn an exactly
// zero -0 into +0.
//
// The order is oneDNN's on this machine's instruction set, so it is not assumed: each shape
// (batch, size, width, thread count, and whether autograd records the forward pass, which picks
// oneDNN's training or inference kernel) is verified on its first call (verified.h). The weight
// and bias gradients (training) are always libtorch's, and so is every gradient of a backward
// pass that builds a graph (double backward).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <array>
#include <atomic>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../native.h"
#include "verified.h"

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kInputChannels = 3;
constexpr int64_t kTaps = 3;
// float32 lanes of an AVX2 register: outputs are computed eight columns at a time.
constexpr int64_t kLanes = 8;
// Output channels per forward register block.
constexpr int64_t kForwardBlock = 8;

std::atomic<uint64_t> direct_forwards{0};
std::atomic<uint64_t> direct_gradients{0};

enum class Pass { Forward, InputGradient };

// One call's shape: pass, batch, height, width, output channels, threads, forward recorded.
using Shape = std::tuple<Pass, int64_t, int64_t, int64_t, int64_t, int, bool>;

beard::Verdicts<Shape>& verdicts() {
    static beard::Verdicts<Shape> instance;
    return instance;
}

// The direct kernels where the shape's verdict says they match libtorch (see verified.h).
template <class Direct, class Reference>
at::Tensor verified(const Shape& shape, std::atomic<uint64_t>& direct_calls, Direct&& direct, Reference&& reference) {
    return beard::verified(verdicts(), shape, direct_calls, std::forward<Direct>(direct),
                           std::forward<Reference>(reference));
}

#if defined(__x86_64__)

bool vector_unit() {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// Output channels per partial sum of oneDNN's backward-data kernel: its ISA's register width.
int64_t gradient_block() {
    const bool avx512_core = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    return avx512_core ? 16 : 8;
}

// Forward weights [oc, 3, 3, 3] repacked as [oc / 8][kh][kw][ic][8]: a register block's taps in
// the order the kernel reads them.
std::vector<float> pack_forward_weights(const float* weight, int64_t channels) {
    std::vector<float> packed(channels * kInputChannels * kTaps * kTaps);
    size_t at = 0;
    for (int64_t first = 0; first < channels; first += kForwardBlock)
        for (int64_t kh = 0; kh < kTaps; ++kh)
            for (int64_t kw = 0; kw < kTaps; ++kw)
                for (int64_t ic = 0; ic < kInputChannels; ++ic)
                    for (int64_t oc = first; oc < first + kForwardBlock; ++oc)
                        packed[at++] = weight[((oc * kInputChannels + ic) * kTaps + kh) * kTaps + kw];
    return packed;
}

// Gradient weights [oc, 3, 3, 3] repacked as [oc / block][kh][kw][oc % block][ic], the order the
// kernel reads them in.
std::vector<float> pack_gradient_weights(const float* weight, int64_t channels, int64_t block) {
    std::vector<float> packed(channels * kInputChannels * kTaps * kTaps);
    size_t at = 0;
    for (int64_t first = 0; first < channels; first += block)
        for (int64_t kh = 0; kh < kTaps; ++kh)
            for (int64_t kw = 0; kw < kTaps; ++kw)
                for (int64_t oc = first; oc < std::min(first + block, channels); ++oc)
                    for (int64_t ic = 0; ic < kInputChannels; ++ic)
                        packed[at++] = weight[((oc * kInputChannels + ic) * kTaps + kh) * kTaps + kw];
    return packed;
}

// Planes `count` x `height` x `width` copied into `padded` ([count][height + 2][width + 2]) with a
// border of zeros: rows `first_row - 1 ..= first_row + rows` of each plane, zero outside it.
void pad_planes(const float* planes, int64_t count, int64_t height, int64_t width, int64_t first_row, int64_t rows,
                float* padded) {
    const int64_t padded_width = width + 2;
    for (int64_t plane = 0; plane < count; ++plane)
        for (int64_t row = 0; row < rows + 2; ++row) {
            float* target = padded + (plane * (rows + 2) + row) * padded_width;
            const int64_t source = first_row - 1 + row;
            target[0] = target[width + 1] = 0.0f;
            if (source < 0 || source >= height) {
                std::fill(target + 1, target + width + 1, 0.0f);
            } else {
                std::memcpy(target + 1, planes + (plane * height + source) * width, width * sizeof(float));
            }
        }
}

// One image's output channels `first..first + 8`, every row, from its zero-padded input planes
// (`pad_planes`). `taps` is the block's packed weights.
__attribute__((target("avx2,fma"))) void forward_block(const float* padded, const float* taps, const float* bias,
                                                       float* output, int64_t height, int64_t width) {
    const int64_t padded_width = width + 2;
    const int64_t plane = height * width;
    for (int64_t y = 0; y < height; ++y)
        for (int64_t x = 0; x < width; x += kLanes) {
            __m256 sums[kForwardBlock];
            for (auto& sum : sums) sum = _mm256_setzero_ps();
            const float* tap = taps;
            for (int64_t kh = 0; kh < kTaps; ++kh)
                for (int64_t kw = 0; kw < kTaps; ++kw)
                    for (int64_t ic = 0; ic < kInputChannels; ++ic, tap += kForwardBlock) {
                        const __m256 pixels =
                            _mm256_loadu_ps(&padded[(ic * (height + 2) + y + kh) * padded_width + x + kw]);
                        for (int64_t oc = 0; oc < kForwardBlock; ++oc)
                            sums[oc] = _mm256_fmadd_ps(pixels, _mm256_broadcast_ss(tap + oc), sums[oc]);
                    }
            for (int64_t oc = 0; oc < kForwardBlock; ++oc)
                _mm256_storeu_ps(output + oc * plane + y * width + x, _mm256_add_ps(sums[oc], _mm256_set1_ps(bias[oc])));
        }
}

// Rows per input-gradient task: a block's padded output gradient (16 x 18 rows of 34 on CIFAR)
// stays in the core's caches, and each row is copied 18/16 times, not 10/8 (measured best).
constexpr int64_t kGradientBand = 16;

// The input gradient of `Vectors` (1 or 2) x 8 columns from `x` of band row `y`: one block's
// partial sums added to `grad` (stored, for the first block). `band` is the block's padded output
// gradient ([oc % block][rows + 2][width + 2]), `taps` its packed weights. The six partial sums
// are named, not an array, so that they stay in registers.
template <int Vectors>
__attribute__((target("avx2,fma"))) void gradient_columns(const float* band, const float* taps, float* grad,
                                                          int64_t outputs, int64_t rows, int64_t width,
                                                          int64_t plane, int64_t y, int64_t x, bool first) {
    static_assert(Vectors == 1 || Vectors == 2);
    const int64_t padded_width = width + 2;
    __m256 red0 = _mm256_setzero_ps(), green0 = red0, blue0 = red0;
    __m256 red1 = red0, green1 = red0, blue1 = red0;
    const float* tap = taps;
    for (int64_t kh = 0; kh < kTaps; ++kh)
        for (int64_t kw = 0; kw < kTaps; ++kw) {
            // Output gradient row y + 1 - kh, columns x + 1 - kw.., in padded coordinates.
            const float* row = band + (y + 2 - kh) * padded_width + x + 2 - kw;
            for (int64_t oc = 0; oc < outputs; ++oc, tap += kInputChannels, row += (rows + 2) * padded_width) {
                const __m256 low = _mm256_loadu_ps(row);
                const __m256 red = _mm256_broadcast_ss(tap), green = _mm256_broadcast_ss(tap + 1);
                const __m256 blue = _mm256_broadcast_ss(tap + 2);
                red0 = _mm256_fmadd_ps(low, red, red0);
                green0 = _mm256_fmadd_ps(low, green, green0);
                blue0 = _mm256_fmadd_ps(low, blue, blue0);
                if constexpr (Vectors == 2) {
                    const __m256 high = _mm256_loadu_ps(row + kLanes);
                    red1 = _mm256_fmadd_ps(high, red, red1);
                    green1 = _mm256_fmadd_ps(high, green, green1);
                    blue1 = _mm256_fmadd_ps(high, blue, blue1);
                }
            }
        }
    const __m256 partial[kInputChannels][2] = {{red0, red1}, {green0, green1}, {blue0, blue1}};
    for (int64_t ic = 0; ic < kInputChannels; ++ic)
        for (int v = 0; v < Vectors; ++v) {
            float* target = grad + ic * plane + x + v * kLanes;
            _mm256_storeu_ps(target, first ? partial[ic][v] : _mm256_add_ps(partial[ic][v], _mm256_loadu_ps(target)));
        }
}

// The input gradient of one image's rows `first_row..first_row + rows`, block after block.
__attribute__((target("avx2,fma"))) void gradient_band(const float* delta, const float* taps, float* grad,
                                                       int64_t channels, int64_t block, int64_t height, int64_t width,
                                                       int64_t first_row, int64_t rows, std::vector<float>& band) {
    const int64_t plane = height * width;
    band.resize(block * (rows + 2) * (width + 2));
    for (int64_t first = 0; first < channels; first += block) {
        const int64_t outputs = std::min(block, channels - first);
        pad_planes(delta + first * plane, outputs, height, width, first_row, rows, band.data());
        const float* block_taps = taps + first * kInputChannels * kTaps * kTaps;
        for (int64_t y = 0; y < rows; ++y) {
            float* target = grad + (first_row + y) * width;
            int64_t x = 0;
            for (; x + 2 * kLanes <= width; x += 2 * kLanes)
                gradient_columns<2>(band.data(), block_taps, target, outputs, rows, width, plane, y, x, first == 0);
            for (; x < width; x += kLanes)
                gradient_columns<1>(band.data(), block_taps, target, outputs, rows, width, plane, y, x, first == 0);
        }
    }
}

at::Tensor direct_forward(const at::Tensor& input_, const at::Tensor& weight_, const at::Tensor& bias_) {
    const auto input = input_.contiguous();
    const auto weight = weight_.contiguous();
    const auto bias = bias_.contiguous();
    const int64_t images = input.size(0), height = input.size(2), width = input.size(3);
    const int64_t channels = weight.size(0), blocks = channels / kForwardBlock;
    const int64_t plane = height * width;
    const auto packed = pack_forward_weights(weight.const_data_ptr<float>(), channels);
    auto output = at::empty({images, channels, height, width}, input.options());
    const float* in = input.const_data_ptr<float>();
    const float* shift = bias.const_data_ptr<float>();
    float* out = output.mutable_data_ptr<float>();
    // Tasks: (image, block of 8 output channels); an image's input is padded once per thread.
    at::parallel_for(0, images * blocks, blocks, [&](int64_t begin, int64_t end) {
        std::vector<float> padded(kInputChannels * (height + 2) * (width + 2));
        int64_t padded_image = -1;
        for (int64_t task = begin; task < end; ++task) {
            const int64_t image = task / blocks, first = (task % blocks) * kForwardBlock;
            if (image != padded_image) {
                pad_planes(in + image * kInputChannels * plane, kInputChannels, height, width, 0, height, padded.data());
                padded_image = image;
            }
            forward_block(padded.data(), packed.data() + first * kInputChannels * kTaps * kTaps, shift + first,
                          out + (image * channels + first) * plane, height, width);
        }
    });
    return output;
}

at::Tensor direct_input_gradient(const at::Tensor& grad_output_, const at::Tensor& weight_, at::IntArrayRef sizes) {
    const auto delta = grad_output_.contiguous();
    const auto weight = weight_.contiguous();
    const int64_t height = sizes[2], width = sizes[3];
    const int64_t channels = weight.size(0);
    const int64_t plane = height * width;
    const int64_t block = gradient_block();
    const int64_t bands = (height + kGradientBand - 1) / kGradientBand;
    const auto taps = pack_gradient_weights(weight.const_data_ptr<float>(), channels, block);
    auto grad_input = at::empty(sizes, delta.options());
    const float* gout = delta.const_data_ptr<float>();
    float* gin = grad_input.mutable_data_ptr<float>();
    // Tasks: (image, band of rows).
    at::parallel_for(0, sizes[0] * bands, bands, [&](int64_t begin, int64_t end) {
        std::vector<float> band;
        for (int64_t task = begin; task < end; ++task) {
            const int64_t image = task / bands, first_row = (task % bands) * kGradientBand;
            gradient_band(gout + image * channels * plane, taps.data(), gin + image * kInputChannels * plane, channels,
                          block, height, width, first_row, std::min(kGradientBand, height - first_row), band);
        }
    });
    return grad_input;
}

#else

bool vector_unit() {
    return false;
}

at::Tensor direct_forward(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
    TORCH_CHECK(false, "the direct first convolution needs x86-64");
}

at::Tensor direct_input_gradient(const at::Tensor&, const at::Tensor&, at::IntArrayRef) {
    TORCH_CHECK(false, "the direct first convolution needs x86-64");
}

#endif

const std::array<int64_t, 2> kOnes{1, 1};
const std::array<int64_t, 2> kZeros{0, 0};

Shape shape_of(Pass pass, const at::Tensor& input, const at::Tensor& weight, bool recorded) {
    return {pass, input.size(0), input.size(2), input.size(3), weight.size(0), at::get_num_threads(), recorded};
}

at::Tensor reference_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias) {
    return at::conv2d(input, weight, bias, kOnes, kOnes, kOnes, 1);
}

// libtorch's gradients of the convolution, the ones `mask` asks for.
std::tuple<at::Tensor, at::Tensor, at::Tensor> reference_backward(const at::Tensor& grad, const at::Tensor& input,
                                                                  const at::Tensor& weight, std::array<bool, 3> mask) {
    const std::array<int64_t, 1> bias_sizes{weight.size(0)};
    return at::convolution_backward(grad, input, weight, at::IntArrayRef(bias_sizes), kOnes, kOnes, kOnes, false,
                                    kZeros, 1, mask);
}

struct FirstConv : public torch::autograd::Function<FirstConv> {
    static at::Tensor forward(AutogradContext* context, const at::Tensor& input, const at::Tensor& weight,
                              const at::Tensor& bias) {
        context->save_for_backward({input, weight});
        return direct_forward(input, weight, bias);
    }

    static variable_list backward(AutogradContext* context, variable_list grads) {
        const auto saved = context->get_saved_variables();
        const auto& input = saved[0];
        const auto& weight = saved[1];
        const std::array<bool, 3> mask{context->needs_input_grad(0), context->needs_input_grad(1),
                                       context->needs_input_grad(2)};
        if (at::GradMode::is_enabled()) {
            const auto [grad_input, grad_weight, grad_bias] = reference_backward(grads[0], input, weight, mask);
            return {grad_input, grad_weight, grad_bias};
        }
        at::Tensor grad_input, grad_weight, grad_bias;
        if (mask[1] || mask[2]) {
            std::tie(std::ignore, grad_weight, grad_bias) = reference_backward(grads[0], input, weight, {false, mask[1], mask[2]});
        }
        if (mask[0]) {
            grad_input = verified(
                shape_of(Pass::InputGradient, input, weight, false), direct_gradients,
                [&] { return direct_input_gradient(grads[0], weight, input.sizes()); },
                [&] { return std::get<0>(reference_backward(grads[0], input, weight, {true, false, false})); });
        }
        return {grad_input, grad_weight, grad_bias};
    }
};

at::Tensor first_conv(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias) {
    if (!vector_unit()) return reference_forward(input, weight, bias);
    const bool recorded =
        at::GradMode::is_enabled() && (input.requires_grad() || weight.requires_grad() || bias.requires_grad());
    return verified(
        shape_of(Pass::Forward, input, weight, recorded), direct_forwards,
        // Under the comparison's no-grad guard this is the plain forward pass.
        [&] { return at::GradMode::is_enabled() ? FirstConv::apply(input, weight, bias) : direct_forward(input, weight, bias); },
        [&] { return reference_forward(input, weight, bias); });
}

}  // namespace

extern "C" {

// conv2d(input, weight, bias, stride 1, padding 1) of float32 CPU tensors: input [n, 3, h, w]
// with w a multiple of 8, weight [oc, 3, 3, 3] with oc a multiple of 8, bias [oc] (the caller
// checks), recorded for autograd. On failure returns null and sets `*error` to a malloc'ed
// message the caller frees.
at::Tensor* beard_first_conv(const at::Tensor* input, const at::Tensor* weight, const at::Tensor* bias,
                             char** error) {
    return beard::guarded("beard_first_conv", error, [&] { return first_conv(*input, *weight, *bias); });
}

// How many forward passes and input gradients the direct kernels have computed so far.
void beard_first_conv_direct_calls(uint64_t* forwards, uint64_t* gradients) {
    *forwards = direct_forwards.load();
    *gradients = direct_gradients.load();
}
}
