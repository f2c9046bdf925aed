// How the ConvNet's C++ kernels that reproduce a libtorch operator's rounding (first_conv.cpp,
// instance_norm_pool.cpp) earn their place: the first call of each shape computes both results
// (for an operator that treats each image on its own, libtorch's for the first image only) and
// keeps the verdict of comparing them bit for bit; later calls of a shape that matched run only
// our kernels, the others only libtorch's. The orders our kernels follow were measured against
// libtorch 2.11 on this project's machines, so a machine, an instruction set or a libtorch build
// that computes differently only costs speed, never a number.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>

namespace beard {

// Whether our kernels gave libtorch's bits, per shape key.
template <class Key>
class Verdicts {
  public:
    std::optional<bool> find(const Key& key) {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto found = verdicts_.find(key);
        return found == verdicts_.end() ? std::nullopt : std::optional<bool>(found->second);
    }

    void record(const Key& key, bool same) {
        std::lock_guard<std::mutex> lock(mutex_);
        verdicts_.emplace(key, same);
    }

  private:
    std::mutex mutex_;
    std::map<Key, bool> verdicts_;
};

// Equal values, NaN matching NaN.
inline bool same_values(const at::Tensor& ours, const at::Tensor& theirs) {
    return ours.sizes() == theirs.sizes() && ((ours == theirs) | (ours.isnan() & theirs.isnan())).all().item<bool>();
}

// `ours()` where the key's verdict says it matches `theirs()`, counted in `calls`; on a key's
// first call both (ours without recording autograd), the verdict kept and libtorch's result
// returned.
template <class Key, class Ours, class Theirs>
at::Tensor verified(Verdicts<Key>& verdicts, const Key& key, std::atomic<uint64_t>& calls, Ours&& ours,
                    Theirs&& theirs) {
    const auto verdict = verdicts.find(key);
    if (verdict.has_value()) {
        if (!*verdict) return theirs();
        ++calls;
        return ours();
    }
    at::Tensor reference = theirs();
    at::Tensor candidate;
    {
        at::NoGradGuard no_grad;
        candidate = ours();
    }
    verdicts.record(key, same_values(candidate, reference.detach()));
    return reference;
}

// `verified` for operators that compute each image of a batch on its own, the same way whatever
// the batch: the first call of a key compares ours with `theirs(1)`, libtorch's result for the
// first image only, and returns ours where they match; `theirs(images)` computes libtorch's
// result for the first `images` images.
template <class Key, class Ours, class Theirs>
at::Tensor verified_per_image(Verdicts<Key>& verdicts, const Key& key, std::atomic<uint64_t>& calls, Ours&& ours,
                              Theirs&& theirs, int64_t images) {
    const auto verdict = verdicts.find(key);
    if (verdict.has_value() && !*verdict) return theirs(images);
    at::Tensor candidate = ours();
    if (!verdict.has_value()) {
        at::Tensor reference;
        {
            at::NoGradGuard no_grad;
            reference = theirs(1);
        }
        const bool same = same_values(candidate.narrow(0, 0, 1).detach(), reference);
        verdicts.record(key, same);
        if (!same) return theirs(images);
    }
    ++calls;
    return candidate;
}

}  // namespace beard
