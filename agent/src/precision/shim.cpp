// libtorch's float32 precision settings, which tch does not expose: set through its global
// context, read back so that results can say what produced them. Only the CUDA backend uses TF32;
// on a CPU-only libtorch these settings exist and change nothing.
#include <ATen/Context.h>

extern "C" {

// Float32 on CUDA in convolutions and matrix products: IEEE float32, or TF32 when `tf32`; and
// always only deterministic cuDNN algorithms, chosen by heuristics rather than by benchmarking.
void beard_set_cuda_precision(bool tf32) {
    auto& context = at::globalContext();
    auto precision = tf32 ? at::Float32Precision::TF32 : at::Float32Precision::IEEE;
    context.setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::CONV, precision);
    context.setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL, precision);
    context.setDeterministicCuDNN(true);
    context.setBenchmarkCuDNN(false);
}

// Bit 0: convolutions may use TF32; bit 1: matrix products may; bit 2: cuDNN is deterministic.
int beard_cuda_precision_flags() {
    auto& context = at::globalContext();
    using at::Float32Backend;
    using at::Float32Op;
    using at::Float32Precision;
    int flags = 0;
    if (context.float32Precision(Float32Backend::CUDA, Float32Op::CONV) == Float32Precision::TF32) flags |= 1;
    if (context.float32Precision(Float32Backend::CUDA, Float32Op::MATMUL) == Float32Precision::TF32) flags |= 2;
    if (context.deterministicCuDNN()) flags |= 4;
    return flags;
}

}
