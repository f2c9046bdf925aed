// How the ConvNet's C++ kernels that reproduce a libtorch operator's rounding (first_conv.cpp,
// instance_norm_pool.cpp) earn their place: the first call of each shape computes both results,
// returns libtorch's and keeps the verdict of comparing them bit for bit; later calls of a shape
// that matched run only our kernels, the others only libtorch's. The orders our kernels follow
// were measured against libtorch 2.11 on this project's machines, so a machine, an instruction
// set or a libtorch build that computes differently only costs speed, never a number.
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

}  // namespace beard
