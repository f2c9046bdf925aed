// The C boundary of a task's own libtorch random generator (random/mod.rs): a clone of the
// device's default generator, seeded the way torch.manual_seed seeds that one, and the draws the
// agent takes from it. Failures come back as a null result and a malloc'ed message (native.h).

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <cstdint>
#include <mutex>

#include "../native.h"

namespace {

at::Device device_of(int cuda_index) {
    return cuda_index < 0 ? at::Device(at::kCPU) : at::Device(at::kCUDA, static_cast<at::DeviceIndex>(cuda_index));
}

}  // namespace

extern "C" {

// A new generator for the CPU (`cuda_index` < 0) or a CUDA device whose stream is the one a
// default generator starts after `manual_seed(seed)`.
at::Generator* beard_generator_new(int cuda_index, uint64_t seed, char** error) {
    try {
        at::Generator generator = at::globalContext().defaultGenerator(device_of(cuda_index)).clone();
        std::lock_guard<std::mutex> lock(generator.mutex());
        generator.set_current_seed(seed);
        return new at::Generator(std::move(generator));
    } catch (const std::exception& failure) {
        *error = beard::copy_message(failure.what());
    } catch (...) {
        *error = beard::copy_message("unknown C++ exception creating a random generator");
    }
    return nullptr;
}

// A second handle on the same generator: draws through either advance the one stream.
at::Generator* beard_generator_share(const at::Generator* generator) { return new at::Generator(*generator); }

void beard_generator_free(at::Generator* generator) { delete generator; }

// A tensor shaped like `like`, uniform in [from, to).
at::Tensor* beard_generator_uniform_like(const at::Generator* generator, const at::Tensor* like, double from,
                                         double to, char** error) {
    return beard::guarded("a uniform draw", error,
                          [&] { return at::empty_like(*like).uniform_(from, to, *generator); });
}

// A tensor shaped like `like`, normal with `mean` and `std`.
at::Tensor* beard_generator_normal_like(const at::Generator* generator, const at::Tensor* like, double mean,
                                        double std, char** error) {
    return beard::guarded("a normal draw", error,
                          [&] { return at::empty_like(*like).normal_(mean, std, *generator); });
}

// int64 integers in [low, high) of shape `sizes[0..dims]` on the generator's device.
at::Tensor* beard_generator_randint(const at::Generator* generator, int64_t low, int64_t high, const int64_t* sizes,
                                    size_t dims, char** error) {
    return beard::guarded("an integer draw", error, [&] {
        const auto options = at::TensorOptions().dtype(at::kLong).device(generator->device());
        return at::randint(low, high, at::IntArrayRef(sizes, dims), *generator, options);
    });
}

}  // extern "C"
