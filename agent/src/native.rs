//! The C boundary of the agent's C++ (the ConvNet's operators in `model/`,
//! `random/generator.cpp` and `graph/capture.cpp`, built by the build script against libtorch's
//! headers): a call returns an owned result, or a null result or failure code with a malloc'ed
//! message (`native.h`), which becomes a [`TchError`].

use std::ffi::{CStr, c_char};

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

/// The tensor `call` returns, or its error. `call` gets the slot a failing operator writes its
/// message to; `what` names the operation in an error without a message.
///
/// # Safety
///
/// `call` must return a tensor it owns (or null), and set the slot only to null or a malloc'ed
/// NUL-terminated string.
pub unsafe fn owned_tensor(
    what: &str,
    call: impl FnOnce(*mut *mut c_char) -> *mut C_tensor,
) -> Result<Tensor, TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    let result = call(&mut error);
    if !result.is_null() {
        // SAFETY: the caller guarantees `result` is an owned tensor.
        return Ok(unsafe { Tensor::from_ptr(result) });
    }
    // SAFETY: the caller guarantees the slot holds null or a malloc'ed message.
    Err(unsafe { take_message(what, error) })
}

/// The error a failed call left in its message slot `error`, freed here; "`what` failed" when
/// it left none.
///
/// # Safety
///
/// `error` must be null or a malloc'ed NUL-terminated string that nothing else reads or frees.
pub unsafe fn take_message(what: &str, error: *mut c_char) -> TchError {
    if error.is_null() {
        return TchError::Torch(format!("{what} failed"));
    }
    // SAFETY: the caller guarantees a malloc'ed NUL-terminated string, read once and freed here.
    let text = unsafe {
        let text = CStr::from_ptr(error).to_string_lossy().into_owned();
        libc::free(error.cast());
        text
    };
    TchError::Torch(text)
}
