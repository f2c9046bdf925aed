//! CUDA graphs for the attacks' long loops of small steps.
//!
//! An attack that runs thousands of steps on the few points still robust (Square's 5,000 queries
//! in AutoAttack on a weak model) launches a few dozen tiny kernels per step; on a GPU the step's
//! time is the launches'. Captured once as a CUDA graph, a step's kernels go out with one launch.
//!
//! - [`CudaGraph`]: capture the CUDA work a closure enqueues, replay it. tch has no API for this;
//!   `capture.cpp`, compiled by the build script against libtorch's headers when the libtorch
//!   the agent links carries CUDA, wraps libtorch's `at::cuda::CUDAGraph`.
//! - [`ReplayedStep`]: a loop's step over state tensors it updates in place, replayed from a graph
//!   on CUDA only after the replay matched the step run eagerly, bit for bit.
//!
//! `BEARD_CUDA_GRAPHS=0` keeps every step eager (for comparisons; the results do not change).

mod replayed;

use std::ffi::{c_char, c_int};
use std::ptr::NonNull;
use std::sync::OnceLock;

use tch::{Device, TchError, Tensor};

use crate::native::take_message;

pub use replayed::ReplayedStep;

#[repr(C)]
struct RawGraph {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn beard_graph_begin(device: c_int, error: *mut *mut c_char) -> *mut RawGraph;
    fn beard_graph_end(graph: *mut RawGraph, error: *mut *mut c_char) -> c_int;
    fn beard_graph_replay(graph: *mut RawGraph, error: *mut *mut c_char) -> c_int;
    fn beard_graph_free(graph: *mut RawGraph);
}

/// Whether steps on `device` are captured and replayed as CUDA graphs: on CUDA devices unless
/// `BEARD_CUDA_GRAPHS=0`.
pub fn replays_on(device: Device) -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    device.is_cuda() && *ENABLED.get_or_init(|| std::env::var("BEARD_CUDA_GRAPHS").map_or(true, |value| value != "0"))
}

/// The CUDA work one closure enqueued, ready to be launched again as a whole.
pub struct CudaGraph {
    raw: NonNull<RawGraph>,
}

// SAFETY: a captured graph is a plain heap object that libtorch lets any thread replay or free;
// the agent never uses one from two threads at once (`&self` methods do not mutate it on our side).
unsafe impl Send for CudaGraph {}

impl CudaGraph {
    /// Captures, without running it, the CUDA work `record` enqueues on `device` from this thread.
    /// Tensors `record` allocates live in the graph's own memory pool, as long as the graph; every
    /// replay recomputes them from the tensors `record` read.
    pub fn capture(device: Device, record: impl FnOnce() -> Result<(), TchError>) -> Result<Self, TchError> {
        let Device::Cuda(index) = device else {
            return Err(TchError::Torch(format!("CUDA graphs need a CUDA device, not {device:?}")));
        };
        let index = c_int::try_from(index).map_err(|_| TchError::Torch(format!("CUDA device {index} out of range")))?;
        let mut error = std::ptr::null_mut();
        // SAFETY: `error` is a valid out-pointer; a null result comes with a message in it.
        let raw = unsafe { beard_graph_begin(index, &mut error) };
        let graph = Self { raw: NonNull::new(raw).ok_or_else(|| take_error(error))? };
        let recorded = record();
        let mut error = std::ptr::null_mut();
        // SAFETY: the graph is being captured (begun above, ended only here).
        let ended = unsafe { beard_graph_end(graph.raw.as_ptr(), &mut error) };
        // The recording's own error first: it explains why the capture could not end well.
        recorded?;
        if ended != 0 {
            return Err(take_error(error));
        }
        Ok(graph)
    }

    /// Launches the captured work once, on the device's current stream.
    pub fn replay(&self) -> Result<(), TchError> {
        let mut error = std::ptr::null_mut();
        // SAFETY: the graph was captured completely (`capture` returns no other).
        if unsafe { beard_graph_replay(self.raw.as_ptr(), &mut error) } != 0 {
            return Err(take_error(error));
        }
        Ok(())
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `beard_graph_begin` and is freed only here.
        unsafe { beard_graph_free(self.raw.as_ptr()) }
    }
}

/// A copy of `tensor` in storage of its own: the state a step updates in place must not alias
/// tensors its caller still reads.
pub fn owned_copy(tensor: &Tensor) -> Result<Tensor, TchError> {
    let mut copy = tensor.f_empty_like()?;
    copy.f_copy_(tensor)?;
    Ok(copy)
}

/// The shim's error message as a [`TchError`], freeing it.
fn take_error(message: *mut c_char) -> TchError {
    // SAFETY: the shim leaves null or a malloc'ed message (`native.h`) that only we read.
    unsafe { take_message("a CUDA graph call", message) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_are_for_cuda_devices_only() {
        assert!(!replays_on(Device::Cpu));
        let error = CudaGraph::capture(Device::Cpu, || Ok(())).err().expect("a CPU capture is refused");
        assert!(error.to_string().contains("need a CUDA device"), "{error}");
    }

    #[test]
    fn a_capture_without_a_gpu_fails_with_libtorchs_reason() {
        if tch::Cuda::is_available() {
            return; // scripts/gpu/check.sh captures on GPU nodes
        }
        let mut recorded = false;
        let error = CudaGraph::capture(Device::Cuda(0), || {
            recorded = true;
            Ok(())
        })
        .err()
        .expect("no GPU, no capture");
        assert!(!recorded, "nothing is recorded when the capture cannot begin");
        assert!(!error.to_string().is_empty());
        println!("capture without a GPU: {error}");
    }
}
