//! Exact float32 on GPUs, and how results name the precision that produced them.
//!
//! libtorch lets cuDNN convolutions use TF32 by default, which changes reported numbers on
//! Ampere and newer cards (a checkpoint's clean accuracy, DeepFool's verdicts near the boundary)
//! against the CPU and against the paper's RTX 2080 Ti cards, which have no TF32. The agent turns
//! TF32 off for convolutions and matrix products and keeps cuDNN to deterministic algorithms,
//! once, before any work ([`use_exact_fp32`]). tch has no API for these settings: a small C++
//! shim (`shim.cpp`, compiled by the build script against libtorch's headers) sets them in
//! libtorch's global context and reads them back, so [`describe`] reports what is in force rather
//! than what was asked for.

use tch::Device;

unsafe extern "C" {
    fn beard_use_exact_fp32();
    fn beard_cuda_precision_flags() -> std::ffi::c_int;
}

/// libtorch's float32 settings for CUDA, as its global context holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CudaPrecision {
    pub tf32_convolutions: bool,
    pub tf32_matmul: bool,
    pub deterministic_cudnn: bool,
}

impl CudaPrecision {
    /// Whether every float32 operation on CUDA runs in IEEE float32 with deterministic cuDNN.
    pub fn is_exact(self) -> bool {
        !self.tf32_convolutions && !self.tf32_matmul && self.deterministic_cudnn
    }
}

/// Turn TF32 off and make cuDNN deterministic for the rest of the process.
pub fn use_exact_fp32() {
    // SAFETY: the shim only calls setters of libtorch's process-wide context, which are safe
    // to call at any time.
    unsafe { beard_use_exact_fp32() }
}

/// The CUDA float32 settings in force.
pub fn cuda_precision() -> CudaPrecision {
    // SAFETY: a read of libtorch's global context.
    let flags = unsafe { beard_cuda_precision_flags() };
    CudaPrecision {
        tf32_convolutions: flags & 1 != 0,
        tf32_matmul: flags & 2 != 0,
        deterministic_cudnn: flags & 4 != 0,
    }
}

/// The precision results computed on `device` have, as reports show it: `fp32` on the CPU; on
/// CUDA `fp32` when exact, else what deviates (`tf32 convolutions`, `nondeterministic cuDNN`).
pub fn describe(device: Device) -> String {
    if !device.is_cuda() {
        return "fp32".to_owned();
    }
    let precision = cuda_precision();
    if precision.is_exact() {
        return "fp32".to_owned();
    }
    let mut deviations = Vec::new();
    if precision.tf32_convolutions {
        deviations.push("tf32 convolutions");
    }
    if precision.tf32_matmul {
        deviations.push("tf32 matmul");
    }
    if !precision.deterministic_cudnn {
        deviations.push("nondeterministic cuDNN");
    }
    deviations.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_fp32_is_in_force_once_set_and_results_say_fp32() {
        let before = cuda_precision();
        assert!(before.tf32_convolutions, "libtorch's own default lets convolutions use TF32: {before:?}");
        use_exact_fp32();
        let after = cuda_precision();
        assert!(after.is_exact(), "{after:?}");
        assert_eq!(describe(Device::Cuda(0)), "fp32");
        assert_eq!(describe(Device::Cpu), "fp32");
    }
}
