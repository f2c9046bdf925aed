// A ConvNet block's ReLU followed by 2x2 average pooling (stride 2, no padding), fused into one
// pass over contiguous float32 NCHW tensors on the CPU, forward and backward, as one autograd
// function. It returns the very bits of libtorch's `relu` + `avg_pool2d` and of their backward
// (`avg_pool2d_backward` + `threshold_backward`), with the row kernels of pool_rows.h. Fusing
// saves the ReLU's output, the pooling's zero-filled gradient and three passes over the block's
// largest activation, on both passes.
//
// A backward pass that builds a graph (double backward, as gradient matching needs) runs
// libtorch's own differentiable formulas instead, which give the same values.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "../native.h"
#include "pool_rows.h"

namespace {

using beard::planes_per_chunk;
using beard::pool_row;
using beard::unpool_row;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

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
