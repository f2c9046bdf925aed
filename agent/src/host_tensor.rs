//! Tensors decoded from files ([`StoredTensor`]: a dtype, a shape and little-endian bytes, as
//! `beard_formats` reads and writes them without libtorch) as libtorch tensors on the CPU, and
//! back.

use beard_formats::torchfile::{Dtype, StoredTensor};
use tch::{Device, Kind, TchError, Tensor};

/// The libtorch kind of a stored dtype.
pub fn kind(dtype: Dtype) -> Kind {
    match dtype {
        Dtype::F64 => Kind::Double,
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::Bool => Kind::Bool,
    }
}

/// The stored dtype of a libtorch kind, for the kinds files hold.
fn dtype(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Double => Dtype::F64,
        Kind::Float => Dtype::F32,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::Bool,
        _ => return None,
    })
}

/// A host copy of `tensor` (any device), detached and contiguous, in its own kind.
pub fn from_tensor(tensor: &Tensor) -> Result<StoredTensor, TchError> {
    let kind = tensor.f_kind()?;
    let dtype = dtype(kind).ok_or_else(|| TchError::Torch(format!("{kind:?} tensors cannot be stored")))?;
    let cpu = tensor.f_detach()?.f_to(Device::Cpu)?.f_contiguous()?;
    let shape: Vec<usize> = cpu.size().iter().map(|&d| d as usize).collect();
    let numel = shape.iter().product::<usize>();
    let mut data = vec![0u8; numel * dtype.size()];
    cpu.f_copy_data_u8(&mut data, numel)?;
    Ok(StoredTensor { dtype, shape, data })
}

/// A CPU tensor holding a copy of `stored`'s data.
pub fn to_tensor(stored: &StoredTensor) -> Result<Tensor, TchError> {
    let shape: Vec<i64> = stored.shape.iter().map(|&d| d as i64).collect();
    Tensor::f_from_data_size(&stored.data, &shape, kind(stored.dtype))
}
