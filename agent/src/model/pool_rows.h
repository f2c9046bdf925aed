// The row kernels of a block's ReLU and 2x2 average pooling (stride 2), shared by the fused
// operators that end a ConvNet block (relu_pool.cpp, instance_norm_pool.cpp). They reproduce
// libtorch's `relu` + `avg_pool2d` and their backward bit for bit: the pooled sum is accumulated
// from 0 in the order top-left, top-right, bottom-left, bottom-right, divided by 4 and added to 0;
// the input gradient is the output gradient divided by 4, added to 0, and 0 where the ReLU's
// result is not positive. NaNs propagate as in libtorch.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace beard {

// Planes (one image's channel) per parallel chunk: about libtorch's grain of 32768 elements.
inline int64_t planes_per_chunk(int64_t plane) {
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
inline void pool_row(const float* top, const float* bottom, float* pooled, int64_t width) {
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
inline void unpool_row(const float* delta, const float* input, float* grad, int64_t width) {
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

}  // namespace beard
