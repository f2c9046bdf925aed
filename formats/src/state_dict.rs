//! A model's state dict, its named tensors, read from checkpoint bytes and written back.
//!
//! Two formats: safetensors (one tensor per state-dict entry under its PyTorch name, with the
//! `{"format": "pt"}` metadata PyTorch's safetensors helpers write) and PyTorch
//! `torch.save(model.state_dict())` files, which must hold a plain dict (or `OrderedDict`) of
//! tensors. [`read`] tells the formats apart by their signatures; [`encode`] keeps every entry's
//! dtype and bytes, and a PyTorch export is an `OrderedDict` in the state dict's order that
//! `torch.load(..., weights_only=True)` reads.

use std::collections::HashMap;

use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

use crate::torchfile::{self, StoredTensor, Value};

/// Named tensors in a checkpoint's order.
pub type StateDict = Vec<(String, StoredTensor)>;

/// The two file formats of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    /// `torch.save` of an `OrderedDict` state dict (zip + pickle).
    Pytorch,
}

/// Why checkpoint bytes are not a state dict.
#[derive(Debug, thiserror::Error)]
pub enum StateDictError {
    #[error("not a checkpoint: not a PyTorch zip archive, a legacy torch.save file, or safetensors")]
    NotACheckpoint,
    #[error("{0}")]
    Invalid(String),
}

/// The named tensors of checkpoint `bytes` (safetensors, or a PyTorch state-dict file): in a
/// PyTorch file's own order, or by name for safetensors (which keeps no order), numbers compared
/// as numbers (`features.4` before `features.12`).
pub fn read(bytes: &[u8]) -> Result<StateDict, StateDictError> {
    if torchfile::archive::looks_like_torch_file(bytes) {
        let value = torchfile::read(bytes, "the checkpoint").map_err(|e| StateDictError::Invalid(e.to_string()))?;
        return from_torch_value(value);
    }
    if !looks_like_safetensors(bytes) {
        return Err(StateDictError::NotACheckpoint);
    }
    let mut tensors = from_safetensors(bytes)?;
    tensors.sort_by_cached_key(|(name, _)| natural_key(name));
    Ok(tensors)
}

/// Named tensors encoded as `format`, every entry's dtype and bytes kept.
pub fn encode(tensors: &[(String, StoredTensor)], format: Format) -> Result<Vec<u8>, StateDictError> {
    match format {
        Format::Safetensors => to_safetensors(tensors),
        Format::Pytorch => torchfile::save_state_dict(tensors).map_err(|e| StateDictError::Invalid(e.to_string())),
    }
}

/// Whether `bytes` start as safetensors do: a little-endian u64 header length that fits the
/// file, then the header's JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    let Some((length, rest)) = bytes.split_first_chunk::<8>() else { return false };
    let length = u64::from_le_bytes(*length);
    length <= rest.len() as u64 && rest.first() == Some(&b'{')
}

/// A name's dot-separated parts, numbers as numbers.
fn natural_key(name: &str) -> Vec<(u64, String)> {
    name.split('.')
        .map(|part| part.parse::<u64>().map_or((u64::MAX, part.to_owned()), |n| (n, String::new())))
        .collect()
}

fn to_safetensors(tensors: &[(String, StoredTensor)]) -> Result<Vec<u8>, StateDictError> {
    let views = tensors
        .iter()
        .map(|(name, tensor)| {
            Ok((name.as_str(), TensorView::new(tensor.dtype.safetensors(), tensor.shape.clone(), &tensor.data)?))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(safetensors_error)?;
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize(views, Some(metadata)).map_err(safetensors_error)
}

/// The named tensors of a decoded PyTorch file, which must be a plain tensor dictionary.
fn from_torch_value(value: Value) -> Result<StateDict, StateDictError> {
    let Value::Dict(entries) = value else {
        return Err(StateDictError::Invalid(format!(
            "a state dict must be a dict of tensors, found {}",
            value.describe()
        )));
    };
    entries
        .into_iter()
        .map(|(key, value)| match (key, value) {
            (Value::Str(name), Value::Tensor(tensor)) => Ok((name, tensor)),
            (key, value) => Err(StateDictError::Invalid(format!(
                "a state dict must map names to tensors, found {} -> {}",
                key.describe(),
                value.describe()
            ))),
        })
        .collect()
}

fn from_safetensors(bytes: &[u8]) -> Result<StateDict, StateDictError> {
    let file = SafeTensors::deserialize(bytes).map_err(safetensors_error)?;
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let dtype = torchfile::Dtype::from_safetensors(view.dtype()).ok_or_else(|| {
                StateDictError::Invalid(format!("tensor {name:?} has unsupported dtype {:?}", view.dtype()))
            })?;
            Ok((name, StoredTensor { dtype, shape: view.shape().to_vec(), data: view.data().to_vec() }))
        })
        .collect()
}

fn safetensors_error(error: safetensors::SafeTensorError) -> StateDictError {
    StateDictError::Invalid(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torchfile::Dtype;

    #[test]
    fn names_sort_with_numbers_as_numbers() {
        let mut names = ["features.12.weight", "features.4.weight", "classifier.bias", "features.4.bias"];
        names.sort_by_cached_key(|name| natural_key(name));
        assert_eq!(names, ["classifier.bias", "features.4.bias", "features.4.weight", "features.12.weight"]);
    }

    #[test]
    fn both_formats_round_trip_and_other_bytes_are_not_checkpoints() {
        let tensors = vec![
            (
                "features.0.weight".to_owned(),
                StoredTensor { dtype: Dtype::F32, shape: vec![2], data: vec![0, 0, 128, 63, 0, 0, 0, 64] },
            ),
            (
                "features.10.bias".to_owned(),
                StoredTensor { dtype: Dtype::I64, shape: vec![1], data: 7i64.to_le_bytes().to_vec() },
            ),
        ];
        for format in [Format::Safetensors, Format::Pytorch] {
            let bytes = encode(&tensors, format).expect("encodes");
            assert_eq!(read(&bytes).expect("reads"), tensors, "{format:?}");
        }
        assert!(matches!(read(b"definitely not a model"), Err(StateDictError::NotACheckpoint)));
    }
}
