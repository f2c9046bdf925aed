// A ConvNet block's ReLU followed by 2x2 average pooling (stride 2, no padding), fused into one
// pass over contiguous float32 NCHW tensors on the CPU, forward and backward, as one autograd
// function. It returns the very bits of libtorch's `relu` + `avg_pool2d` and of their backward
// (`avg_pool2d_backward` + `threshold_backward`): the pooled sum is accumulated from 0 in the
// same order (top-left, top-right, bottom-left, bottom-right), divided by 4 and added to 0; the
// input gradient is the output gradient divided by 4, added to 0, and 0 where the ReLU's result
// is not positive. NaNs propagate as in libtorch. Fusing saves the ReLU's output, the pooling's
// zero-filled gradient and three passes over the block's largest activation, on both passes.
//
// A backward pass that builds a graph (double backward, as gradient matching needs) runs
// libtorch's own differentiable formulas instead, which give the same values.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "native.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Planes (one image's channel) per parallel chunk: about libtorch's grain of 32768 elements.
int64_t planes_per_chunk(int64_t plane) {
    return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(plane, 1));
}

// libtorch's relu is clamp_min at 0, NaN staying NaN: a value is kept unless `value <= 0`.
inline float relu(float value) {
    return value <= 0.0f ? 0.0f : value;
}

// The pooled value of one 2x2 window: libtorch sums from 0 in this order, divides by 4 (the same
// bits as multiplying by 0.25, a power of two) and adds the quotient to the zeroed output.
inline float pool(float top_left, float top_right, float bottom_left, float bottom_right) {
    float sum = 0.0f;
    sum += relu(top_left);
    sum += relu(top_right);
    sum += relu(bottom_left);
    sum += relu(bottom_right);
    return 0.0f + sum * 0.25f;
}

// One output row from two input rows of `width` (even) values.
void pool_row(const float* top, const float* bottom, float* pooled, int64_t width) {
    int64_t column = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    const __m128 quarter = _mm_set1_ps(0.25f);
    // relu: keep the lanes that are not <= 0 (NaN included), the rest become +0.
    const auto relu4 = [&](const float* at) {
        const __m128 value = _mm_loadu_ps(at);
        return _mm_and_ps(_mm_cmpnle_ps(value, zero), value);
    };
    for (; column + 8 <= width; column += 8) {
        const __m128 top_low = relu4(top + column), top_high = relu4(top + column + 4);
        const __m128 bottom_low = relu4(bottom + column), bottom_high = relu4(bottom + column + 4);
        __m128 sum = _mm_add_ps(zero, _mm_shuffle_ps(top_low, top_high, _MM_SHUFFLE(2, 0, 2, 0)));
        sum = _mm_add_ps(sum, _mm_shuffle_ps(top_low, top_high, _MM_SHUFFLE(3, 1, 3, 1)));
        sum = _mm_add_ps(sum, _mm_shuffle_ps(bottom_low, bottom_high, _MM_SHUFFLE(2, 0, 2, 0)));
        sum = _mm_add_ps(sum, _mm_shuffle_ps(bottom_low, bottom_high, _MM_SHUFFLE(3, 1, 3, 1)));
        _mm_storeu_ps(pooled + column / 2, _mm_add_ps(zero, _mm_mul_ps(sum, quarter)));
    }
#endif
    for (; column < width; column += 2) {
        pooled[column / 2] = pool(top[column], top[column + 1], bottom[column], bottom[column + 1]);
    }
}

// One input row's gradient: the output row's gradient divided by 4 (added to the zeroed input
// gradient, as libtorch does), spread over each window, 0 where the ReLU clipped.
void unpool_row(const float* delta, const float* input, float* grad, int64_t width) {
    int64_t column = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    const __m128 quarter = _mm_set1_ps(0.25f);
    for (; column + 8 <= width; column += 8) {
        const __m128 share = _mm_add_ps(zero, _mm_mul_ps(_mm_loadu_ps(delta + column / 2), quarter));
        const __m128 low = _mm_loadu_ps(input + column), high = _mm_loadu_ps(input + column + 4);
        _mm_storeu_ps(grad + column, _mm_and_ps(_mm_cmpnle_ps(low, zero), _mm_unpacklo_ps(share, share)));
        _mm_storeu_ps(grad + column + 4, _mm_and_ps(_mm_cmpnle_ps(high, zero), _mm_unpackhi_ps(share, share)));
    }
#endif
    for (; column < width; column += 2) {
        const float share = 0.0f + delta[column / 2] * 0.25f;
        grad[column] = input[column] <= 0.0f ? 0.0f : share;
        grad[column + 1] = input[column + 1] <= 0.0f ? 0.0f : share;
    }
}

at::Tensor forward_kernel(const at::Tensor& input_) {
    const auto input = input_.contiguous();
    const int64_t planes = input.size(0) * input.size(1);
    const int64_t height = input.size(2), width = input.size(3);
    const int64_t out_height = height / 2, out_width = width / 2;
    auto output = at::empty({input.size(0), input.size(1), out_height, out_width}, input.options());
    const float* in = input.const_data_ptr<float>();
    float* out = output.mutable_data_ptr<float>();
    at::parallel_for(0, planes, planes_per_chunk(height * width), [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
            const float* source = in + plane * height * width;
            float* target = out + plane * out_height * out_width;
            for (int64_t row = 0; row < out_height; ++row) {
                const float* top = source + 2 * row * width;
                pool_row(top, top + width, target + row * out_width, width);
            }
        }
    });
    return output;
}

// The gradient with respect to the block's pre-ReLU input `input`.
at::Tensor backward_kernel(const at::Tensor& grad_output_, const at::Tensor& input_) {
    const auto grad_output = grad_output_.contiguous();
    const auto input = input_.contiguous();
    const int64_t planes = input.size(0) * input.size(1);
    const int64_t height = input.size(2), width = input.size(3);
    const int64_t out_height = height / 2, out_width = width / 2;
    auto grad_input = at::empty_like(input, at::MemoryFormat::Contiguous);
    const float* gout = grad_output.const_data_ptr<float>();
    const float* in = input.const_data_ptr<float>();
    float* gin = grad_input.mutable_data_ptr<float>();
    at::parallel_for(0, planes, planes_per_chunk(height * width), [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
            const float* pooled = gout + plane * out_height * out_width;
            const int64_t first = plane * height * width;
            for (int64_t row = 0; row < height; ++row) {
                const int64_t offset = first + row * width;
                unpool_row(pooled + (row / 2) * out_width, in + offset, gin + offset, width);
            }
        }
    });
    return grad_input;
}

struct ReluAvgPool : public torch::autograd::Function<ReluAvgPool> {
    static at::Tensor forward(AutogradContext* context, const at::Tensor& input) {
        context->save_for_backward({input});
        return forward_kernel(input);
    }

    static variable_list backward(AutogradContext* context, variable_list grads) {
        const auto input = context->get_saved_variables()[0];
        if (at::GradMode::is_enabled()) {
            const auto activated = at::relu(input);
            const auto grad_activated =
                at::avg_pool2d_backward(grads[0], activated, {2, 2}, {2, 2}, {0, 0}, false, true, std::nullopt);
            return {at::threshold_backward(grad_activated, activated, 0)};
        }
        return {backward_kernel(grads[0], input)};
    }
};

}  // namespace

extern "C" {

// relu then avg_pool2d(2, 2) of a contiguous float32 NCHW CPU tensor with even height and width
// (the caller checks), recorded for autograd. On failure returns null and sets `*error` to a
// malloc'ed message the caller frees.
at::Tensor* beard_relu_avg_pool(const at::Tensor* input, char** error) {
    return beard::guarded("beard_relu_avg_pool", error, [&] { return ReluAvgPool::apply(*input); });
}

}
