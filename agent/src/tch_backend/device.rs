//! Naming devices: `cpu`, `cuda`, `cuda:N` or `auto` on the command line, and the description
//! results and registrations carry, with the precision of the results (`cpu (2 threads, fp32)`,
//! `cuda:0 (fp32)`).

use tch::{Cuda, Device};

/// Why a device name cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device {0:?}: expected cpu, cuda, cuda:N or auto")]
    Unknown(String),
    #[error("device {0} asked for, but libtorch sees no CUDA device (driver missing, or libtorch_cuda not linked)")]
    CudaUnavailable(String),
    #[error("device cuda:{index} asked for, but only {count} CUDA device(s) are visible")]
    NoSuchGpu { index: usize, count: i64 },
}

/// Parse a device name and check that the device exists; `auto` is `cuda:0` when a GPU is
/// visible, else `cpu`.
pub fn parse_device(text: &str) -> Result<Device, DeviceError> {
    let name = text.trim().to_ascii_lowercase();
    let index = match name.as_str() {
        "cpu" => return Ok(Device::Cpu),
        "auto" => return Ok(Device::cuda_if_available()),
        "cuda" => 0,
        _ => name
            .strip_prefix("cuda:")
            .and_then(|index| index.parse::<usize>().ok())
            .ok_or_else(|| DeviceError::Unknown(text.to_owned()))?,
    };
    if !Cuda::is_available() {
        return Err(DeviceError::CudaUnavailable(name));
    }
    let count = Cuda::device_count();
    if index as i64 >= count {
        return Err(DeviceError::NoSuchGpu { index, count });
    }
    Ok(Device::Cuda(index))
}

/// The device as people read it, with the float32 precision its results have.
pub fn describe(device: Device) -> String {
    let precision = crate::precision::describe(device);
    match device {
        Device::Cpu => format!("cpu ({} threads, {precision})", tch::get_num_threads()),
        Device::Cuda(index) => format!("cuda:{index} ({precision})"),
        Device::Mps => format!("mps ({precision})"),
        Device::Vulkan => format!("vulkan ({precision})"),
    }
}
