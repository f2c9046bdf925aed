//! The libtorch random generator that belongs to one task.
//!
//! `tch::manual_seed` seeds the process's default generator, which every task, test and thread
//! of the process draws from: two pieces of work that seed it and draw side by side interleave
//! their draws, and each one's numbers depend on the other's timing (two trainings in one test
//! process gave a different model about one run in four). A [`TaskGenerator`] is a clone of the
//! device's default generator, seeded as `torch.manual_seed(seed)` seeds that one: it draws
//! exactly the stream a freshly seeded default generator draws (so PGD's random starts are still
//! torchattacks' under `torch.manual_seed`, and every number is what it was), and nothing else in
//! the process advances it.
//!
//! The draws are the few the agent takes on the device: PGD's random starts (uniform in the L∞
//! cube, Gaussian directions and uniform radii in the L2 ball) and the random target classes of
//! targeted adversarial training. Everything else random in the agent draws on the host from
//! [`crate::data::rng::Rng`] streams.
//!
//! `generator.cpp`, compiled by the build script against libtorch's headers, holds the C++ side.

use std::ffi::{c_char, c_int};
use std::ptr::NonNull;

use tch::{Device, TchError, Tensor};
use torch_sys::C_tensor;

use crate::native::{owned_tensor, take_message};

#[repr(C)]
struct RawGenerator {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn beard_generator_new(cuda_index: c_int, seed: u64, error: *mut *mut c_char) -> *mut RawGenerator;
    fn beard_generator_share(generator: *const RawGenerator) -> *mut RawGenerator;
    fn beard_generator_free(generator: *mut RawGenerator);
    fn beard_generator_uniform_like(
        generator: *const RawGenerator,
        like: *const C_tensor,
        from: f64,
        to: f64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn beard_generator_normal_like(
        generator: *const RawGenerator,
        like: *const C_tensor,
        mean: f64,
        std: f64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn beard_generator_randint(
        generator: *const RawGenerator,
        low: i64,
        high: i64,
        sizes: *const i64,
        dims: usize,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
}

/// A random stream on one device that only its holders advance. Clones are handles on the same
/// stream: a draw through any of them is the stream's next.
pub struct TaskGenerator {
    raw: NonNull<RawGenerator>,
}

// SAFETY: an `at::Generator` is a reference-counted handle whose every draw locks the generator's
// own mutex, so handles may move to and be used from any thread.
unsafe impl Send for TaskGenerator {}

impl TaskGenerator {
    /// The stream of `device`'s default generator right after `manual_seed(seed)`.
    pub fn seeded(seed: u64, device: Device) -> Result<Self, TchError> {
        let cuda_index = match device {
            Device::Cpu => -1,
            Device::Cuda(index) => {
                c_int::try_from(index).map_err(|_| TchError::Torch(format!("CUDA device {index} out of range")))?
            }
            other => return Err(TchError::Torch(format!("no random generator for {other:?}"))),
        };
        let mut error = std::ptr::null_mut();
        // SAFETY: `error` is a valid out-pointer; a null result comes with a message in it.
        let raw = unsafe { beard_generator_new(cuda_index, seed, &mut error) };
        // SAFETY: on a null result `error` is null or a malloc'ed message, read once here.
        let raw = NonNull::new(raw).ok_or_else(|| unsafe { take_message("creating a random generator", error) })?;
        Ok(Self { raw })
    }

    /// A tensor of `like`'s shape, kind and device, uniform in `[from, to)` (`uniform_`).
    pub fn uniform_like(&self, like: &Tensor, from: f64, to: f64) -> Result<Tensor, TchError> {
        // SAFETY: the generator and `like` are live; the call returns an owned tensor or null
        // with a malloc'ed message.
        unsafe {
            owned_tensor("a uniform draw", |error| {
                beard_generator_uniform_like(self.raw.as_ptr(), like.as_ptr(), from, to, error)
            })
        }
    }

    /// A tensor of `like`'s shape, kind and device, normal with `mean` and `std` (`normal_`).
    pub fn normal_like(&self, like: &Tensor, mean: f64, std: f64) -> Result<Tensor, TchError> {
        // SAFETY: as in `uniform_like`.
        unsafe {
            owned_tensor("a normal draw", |error| {
                beard_generator_normal_like(self.raw.as_ptr(), like.as_ptr(), mean, std, error)
            })
        }
    }

    /// int64 integers uniform in `[low, high)` of shape `size`, on the generator's device
    /// (`randint`).
    pub fn randint(&self, low: i64, high: i64, size: &[i64]) -> Result<Tensor, TchError> {
        // SAFETY: as in `uniform_like`; `size` outlives the call.
        unsafe {
            owned_tensor("an integer draw", |error| {
                beard_generator_randint(self.raw.as_ptr(), low, high, size.as_ptr(), size.len(), error)
            })
        }
    }
}

impl Clone for TaskGenerator {
    fn clone(&self) -> Self {
        // SAFETY: the generator is live; sharing it returns a new owned handle.
        let raw = unsafe { beard_generator_share(self.raw.as_ptr()) };
        Self { raw: NonNull::new(raw).expect("a shared generator handle") }
    }
}

impl Drop for TaskGenerator {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and dropped once.
        unsafe { beard_generator_free(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for TaskGenerator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TaskGenerator").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;

    fn bits(tensor: &Tensor) -> Vec<u32> {
        Vec::<f32>::try_from(tensor.flatten(0, -1)).expect("floats").iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn clones_share_one_stream_and_other_draws_do_not_advance_it() {
        let like = Tensor::zeros([64], (Kind::Float, Device::Cpu));
        let first = TaskGenerator::seeded(5, Device::Cpu).expect("generator");
        let expected: Vec<Vec<u32>> = (0..2).map(|_| bits(&first.uniform_like(&like, 0.0, 1.0).unwrap())).collect();

        let generator = TaskGenerator::seeded(5, Device::Cpu).expect("generator");
        let handle = generator.clone();
        let a = bits(&generator.uniform_like(&like, 0.0, 1.0).unwrap());
        // Draws from the default generator and from another task's generator in between.
        let _ = like.empty_like().uniform_(0.0, 1.0);
        let _ = TaskGenerator::seeded(5, Device::Cpu).unwrap().uniform_like(&like, 0.0, 1.0).unwrap();
        let b = bits(&handle.uniform_like(&like, 0.0, 1.0).unwrap());
        drop(generator);
        assert_eq!([a, b], [expected[0].clone(), expected[1].clone()]);
        assert!(expected[0] != expected[1]);
    }

    #[test]
    fn a_device_without_generators_is_an_error_not_a_crash() {
        let error = TaskGenerator::seeded(0, Device::Mps).expect_err("no MPS");
        assert!(error.to_string().contains("no random generator"), "{error}");
        if !tch::Cuda::is_available() {
            // libtorch's reason (no driver, or a build without CUDA), not an abort.
            let error = TaskGenerator::seeded(0, Device::Cuda(0)).expect_err("no CUDA device");
            assert!(!error.to_string().is_empty());
        }
    }
}
