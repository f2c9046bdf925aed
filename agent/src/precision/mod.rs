//! Exact float32 on GPUs, and how results name the precision that produced them.
//!
//! libtorch lets cuDNN convolutions use TF32 by default, which changes reported numbers on
//! Ampere and newer cards (a checkpoint's clean accuracy, DeepFool's verdicts near the boundary)
//! against the CPU and against the paper's RTX 2080 Ti cards, which have no TF32. The agent turns
//! TF32 off for convolutions and matrix products and keeps cuDNN to deterministic algorithms,
//! once, before any work ([`use_exact_fp32`]). An operator may opt into TF32 for training only
//! or for everything ([`Tf32`], `agent run --tf32`); the backend then sets it per task
//! ([`use_for`]), and every result's device description says so. tch has no API for these
//! settings: a small C++ shim (`shim.cpp`, compiled by the build script against libtorch's
//! headers) sets them in libtorch's global context and reads them back, so [`describe`] reports
//! what is in force rather than what was asked for.

use tch::Device;

unsafe extern "C" {
    fn beard_set_cuda_precision(tf32: bool);
    fn beard_cuda_precision_flags() -> std::ffi::c_int;
}

/// Where TF32 may be used on CUDA (`--tf32`): nowhere (the default), in training only, or in
/// training and attacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Tf32 {
    #[default]
    Off,
    Training,
    All,
}

/// The two kinds of work whose precision `--tf32` chooses between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    Training,
    Attack,
}

impl Tf32 {
    fn allows(self, work: Work) -> bool {
        match self {
            Tf32::Off => false,
            Tf32::Training => work == Work::Training,
            Tf32::All => true,
        }
    }
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
    set_cuda_tf32(false);
}

/// Set the CUDA precision `tf32` chooses for `work` (deterministic cuDNN either way).
pub fn use_for(tf32: Tf32, work: Work) {
    set_cuda_tf32(tf32.allows(work));
}

fn set_cuda_tf32(tf32: bool) {
    // SAFETY: the shim only calls setters of libtorch's process-wide context, which are safe
    // to call at any time.
    unsafe { beard_set_cuda_precision(tf32) }
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

    /// One test: the settings are process-wide, so the steps must not interleave with others.
    #[test]
    fn exact_fp32_by_default_and_tf32_only_where_opted_in_as_descriptions_say() {
        let before = cuda_precision();
        assert!(before.tf32_convolutions, "libtorch's own default lets convolutions use TF32: {before:?}");
        use_exact_fp32();
        let after = cuda_precision();
        assert!(after.is_exact(), "{after:?}");
        assert_eq!(describe(Device::Cuda(0)), "fp32");

        use_for(Tf32::Training, Work::Training);
        assert_eq!(describe(Device::Cuda(0)), "tf32 convolutions, tf32 matmul");
        assert_eq!(describe(Device::Cpu), "fp32", "a CPU has no TF32");
        use_for(Tf32::Training, Work::Attack);
        assert_eq!(describe(Device::Cuda(0)), "fp32");
        use_for(Tf32::All, Work::Attack);
        assert_eq!(describe(Device::Cuda(0)), "tf32 convolutions, tf32 matmul");
        use_for(Tf32::Off, Work::Training);
        assert!(cuda_precision().is_exact());
    }
}
