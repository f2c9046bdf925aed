//! Tensors decoded from files ([`StoredTensor`]: a dtype, a shape and little-endian bytes, as
//! `beard_formats` reads them without libtorch) as libtorch tensors on the CPU.

use beard_formats::torchfile::{Dtype, StoredTensor};
use tch::{Kind, TchError, Tensor};

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

/// A CPU tensor holding a copy of `stored`'s data.
pub fn to_tensor(stored: &StoredTensor) -> Result<Tensor, TchError> {
    let shape: Vec<i64> = stored.shape.iter().map(|&d| d as i64).collect();
    Tensor::f_from_data_size(&stored.data, &shape, kind(stored.dtype))
}
