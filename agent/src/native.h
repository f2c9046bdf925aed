// What the agent's C++ (the ConvNet's operators in model/, random/generator.cpp and
// graph/capture.cpp) shares at its C boundary: a C++ exception becomes a null result or a failure
// code and a malloc'ed message the Rust side reads and frees (native.rs), so no exception crosses
// into Rust.
#pragma once

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <exception>

namespace beard {

inline char* copy_message(const char* message) {
    const size_t length = std::strlen(message) + 1;
    auto* copy = static_cast<char*>(std::malloc(length));
    if (copy != nullptr) std::memcpy(copy, message, length);
    return copy;
}

// `make()`'s tensor on the heap, or null with `*error` set when it throws.
template <class Make>
at::Tensor* guarded(const char* name, char** error, Make&& make) {
    try {
        return new at::Tensor(make());
    } catch (const std::exception& failure) {
        *error = copy_message(failure.what());
    } catch (...) {
        const std::string message = std::string("unknown C++ exception in ") + name;
        *error = copy_message(message.c_str());
    }
    return nullptr;
}

}  // namespace beard
