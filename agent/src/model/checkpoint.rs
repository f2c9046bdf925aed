//! Model-pool checkpoints: a model's state dict as safetensors bytes, and back; PyTorch
//! `torch.save(model.state_dict())` files (the published model pool) load as well, and any
//! checkpoint re-encodes to either format ([`state_dict`], [`encode`]).
//!
//! The safetensors file holds one float32 tensor per state-dict entry under its PyTorch name, with the
//! `{"format": "pt"}` metadata PyTorch's safetensors helpers write, so
//! `model.load_state_dict(safetensors.torch.load(bytes))` works on the DC-bench ConvNet in Python.
//! Loading is strict: every entry of the model must be present with its exact shape, and the file
//! may hold nothing else (apart from batch norm's `num_batches_tracked`, which PyTorch writes and
//! the model does not use). A PyTorch file must be a plain dict (or `OrderedDict`) of tensors;
//! [`load`] tells the formats apart by their signatures, and names all three when a file has none. Float16,
//! bfloat16 and float64 entries are converted to float32. Exports keep every entry's dtype and
//! bytes; a PyTorch export is an `OrderedDict` (in [`state_dict`]'s order) that
//! `torch.load(..., weights_only=True)` reads.

use std::collections::HashMap;

use safetensors::SafeTensors;
use safetensors::tensor::TensorView;
use tch::{Device, Kind, Tensor};

use super::ModelError;
use crate::torchfile::{self, StoredTensor, Value};

const IGNORED_SUFFIX: &str = ".num_batches_tracked";

/// The two file formats of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    /// `torch.save` of an `OrderedDict` state dict (zip + pickle).
    Pytorch,
}

/// Serialize named float32 tensors (any device) to safetensors bytes; the output depends only on
/// the names and values.
pub fn save(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>, ModelError> {
    let mut host = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let cpu = tensor.f_detach()?.f_to(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
        let shape: Vec<usize> = cpu.size().iter().map(|&d| d as usize).collect();
        let numel = shape.iter().product::<usize>();
        let mut data = vec![0u8; numel * Kind::Float.elt_size_in_bytes()];
        cpu.f_copy_data_u8(&mut data, numel)?;
        host.push((name.clone(), StoredTensor { dtype: torchfile::Dtype::F32, shape, data }));
    }
    to_safetensors(&host)
}

/// Copy the tensors of checkpoint `bytes` (safetensors, or a PyTorch state-dict file) into
/// `targets` (same names and shapes).
pub fn load(bytes: &[u8], targets: &HashMap<String, Tensor>) -> Result<(), ModelError> {
    assign(state_dict(bytes)?, targets)
}

/// The named tensors of checkpoint `bytes` (safetensors, or a PyTorch state-dict file): in a
/// PyTorch file's own order, or by name for safetensors (which keeps no order), numbers compared
/// as numbers (`features.4` before `features.12`).
pub fn state_dict(bytes: &[u8]) -> Result<Vec<(String, StoredTensor)>, ModelError> {
    if torchfile::archive::looks_like_torch_file(bytes) {
        let value = torchfile::read(bytes, "the checkpoint").map_err(|e| ModelError::Checkpoint(e.to_string()))?;
        return torch_state_dict(value);
    }
    if !looks_like_safetensors(bytes) {
        return Err(ModelError::NotACheckpoint);
    }
    let mut tensors = safetensors_state_dict(bytes)?;
    tensors.sort_by_cached_key(|(name, _)| natural_key(name));
    Ok(tensors)
}

/// Whether `bytes` start as safetensors do: a little-endian u64 header length that fits the
/// file, then the header's JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    let Some((length, rest)) = bytes.split_first_chunk::<8>() else { return false };
    let length = u64::from_le_bytes(*length);
    length <= rest.len() as u64 && rest.first() == Some(&b'{')
}

/// Named tensors (a [`state_dict`]) encoded as `format`, every entry's dtype and bytes kept.
pub fn encode(tensors: &[(String, StoredTensor)], format: Format) -> Result<Vec<u8>, ModelError> {
    match format {
        Format::Safetensors => to_safetensors(tensors),
        Format::Pytorch => torchfile::save_state_dict(tensors).map_err(|e| ModelError::Checkpoint(e.to_string())),
    }
}

/// A name's dot-separated parts, numbers as numbers.
fn natural_key(name: &str) -> Vec<(u64, String)> {
    name.split('.')
        .map(|part| part.parse::<u64>().map_or((u64::MAX, part.to_owned()), |n| (n, String::new())))
        .collect()
}

fn to_safetensors(tensors: &[(String, StoredTensor)]) -> Result<Vec<u8>, ModelError> {
    let views = tensors
        .iter()
        .map(|(name, tensor)| {
            Ok((name.as_str(), TensorView::new(tensor.dtype.safetensors(), tensor.shape.clone(), &tensor.data)?))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(checkpoint_error)?;
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize(views, Some(metadata)).map_err(checkpoint_error)
}

/// The named tensors of a decoded PyTorch file, which must be a plain tensor dictionary.
pub fn torch_state_dict(value: Value) -> Result<Vec<(String, StoredTensor)>, ModelError> {
    let Value::Dict(entries) = value else {
        return Err(ModelError::Checkpoint(format!(
            "a state dict must be a dict of tensors, found {}",
            value.describe()
        )));
    };
    entries
        .into_iter()
        .map(|(key, value)| match (key, value) {
            (Value::Str(name), Value::Tensor(tensor)) => Ok((name, tensor)),
            (key, value) => Err(ModelError::Checkpoint(format!(
                "a state dict must map names to tensors, found {} -> {}",
                key.describe(),
                value.describe()
            ))),
        })
        .collect()
}

fn safetensors_state_dict(bytes: &[u8]) -> Result<Vec<(String, StoredTensor)>, ModelError> {
    let file = SafeTensors::deserialize(bytes).map_err(checkpoint_error)?;
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let dtype = torchfile::Dtype::from_safetensors(view.dtype()).ok_or_else(|| {
                ModelError::Checkpoint(format!("tensor {name:?} has unsupported dtype {:?}", view.dtype()))
            })?;
            Ok((name, StoredTensor { dtype, shape: view.shape().to_vec(), data: view.data().to_vec() }))
        })
        .collect()
}

/// Copy `source` into `targets`: every target present with its shape and a float dtype, nothing
/// else present (except `num_batches_tracked`).
fn assign(source: Vec<(String, StoredTensor)>, targets: &HashMap<String, Tensor>) -> Result<(), ModelError> {
    let source: HashMap<String, StoredTensor> = source.into_iter().collect();
    let mut extra: Vec<&String> =
        source.keys().filter(|name| !name.ends_with(IGNORED_SUFFIX) && !targets.contains_key(*name)).collect();
    extra.sort_unstable();
    if let Some(extra) = extra.first() {
        return Err(ModelError::Checkpoint(format!("unexpected tensor {extra:?}")));
    }
    let mut entries: Vec<(&String, &Tensor)> = targets.iter().collect();
    entries.sort_unstable_by_key(|(name, _)| *name);
    for (name, target) in entries {
        let stored = source.get(name).ok_or_else(|| ModelError::Checkpoint(format!("missing tensor {name:?}")))?;
        let mut target = target.shallow_clone();
        let shape: Vec<i64> = stored.shape.iter().map(|&d| d as i64).collect();
        if !stored.dtype.is_float() || shape != target.size() {
            return Err(ModelError::Checkpoint(format!(
                "tensor {name:?} is {:?} {:?}, the model needs a float tensor of shape {:?}",
                stored.dtype,
                shape,
                target.size()
            )));
        }
        let values = stored.to_tch()?.f_to_kind(Kind::Float)?;
        tch::no_grad(|| target.f_copy_(&values))?;
    }
    Ok(())
}

fn checkpoint_error(error: safetensors::SafeTensorError) -> ModelError {
    ModelError::Checkpoint(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::natural_key;

    #[test]
    fn names_sort_with_numbers_as_numbers() {
        let mut names = ["features.12.weight", "features.4.weight", "classifier.bias", "features.4.bias"];
        names.sort_by_cached_key(|name| natural_key(name));
        assert_eq!(names, ["classifier.bias", "features.4.bias", "features.4.weight", "features.12.weight"]);
    }
}
