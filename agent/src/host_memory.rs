//! How the process's C allocator treats the host memory of libtorch's CPU tensors.
//!
//! libtorch allocates CPU tensors with the C allocator and frees them as soon as the last
//! reference goes. With glibc's defaults a buffer above the mmap threshold (128 KiB, adapting up
//! to 32 MiB) is mapped fresh from the kernel on every allocation and unmapped on free, and a
//! freed heap top is trimmed back to the kernel: every forward and backward pass then page-faults
//! its activations in again (one 32x32 layer of a width-128 ConvNet over 100 images is 52 MB),
//! and the kernel zeroes every page. On two CPU cores that was about half the CPU time of an
//! attack step. [`keep_freed_memory`] makes glibc serve all allocations from its heaps and never
//! trim them, so freed buffers are reused; the process then keeps its peak heap, which an agent
//! dedicated to attacks and training reuses anyway.
//!
//! It also gives every thread the one main arena. A thread other than the main one otherwise
//! allocates from an arena of its own, whose heaps hold at most 64 MiB and give their free tops
//! back to the kernel whatever the trim threshold: the worker's tasks, which run on blocking
//! threads, page-faulted again (a width-64 ConvNet's epoch over CIFAR-10's 50,000 images at batch
//! 256 took 48 s there with 30 s of the kernel's time, 32 s with one arena). The arena's lock is
//! taken a few dozen times per pass, for buffers of megabytes.

/// Keep freed memory in the process for reuse (glibc; a no-op with other C libraries). Call it
/// once, early: it changes the allocator's parameters for the whole process.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is thread-safe and every value is in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
