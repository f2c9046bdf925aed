//! Model-pool checkpoints on the ConvNet: a model's state dict as safetensors bytes, and back.
//! PyTorch `torch.save(model.state_dict())` files (the published model pool) load as well; the
//! formats themselves are [`beard_formats::state_dict`]'s.
//!
//! The safetensors file holds one float32 tensor per state-dict entry under its PyTorch name, so
//! `model.load_state_dict(safetensors.torch.load(bytes))` works on the DC-bench ConvNet in Python.
//! Loading is strict: every entry of the model must be present with its exact shape, and the file
//! may hold nothing else (apart from batch norm's `num_batches_tracked`, which PyTorch writes and
//! the model does not use). Float16, bfloat16 and float64 entries are converted to float32.

use std::collections::HashMap;

use beard_formats::state_dict::{self, Format, StateDict, StateDictError};
use beard_formats::torchfile::StoredTensor;
use tch::{Kind, Tensor};

use super::ModelError;
use crate::host_tensor;

const IGNORED_SUFFIX: &str = ".num_batches_tracked";

impl From<StateDictError> for ModelError {
    fn from(error: StateDictError) -> Self {
        match error {
            StateDictError::NotACheckpoint => ModelError::NotACheckpoint,
            StateDictError::Invalid(message) => ModelError::Checkpoint(message),
        }
    }
}

/// Serialize named float32 tensors (any device) to safetensors bytes; the output depends only on
/// the names and values.
pub fn save(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>, ModelError> {
    let mut host = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        host.push((name.clone(), host_tensor::from_tensor(&tensor.f_to_kind(Kind::Float)?)?));
    }
    Ok(state_dict::encode(&host, Format::Safetensors)?)
}

/// Copy the tensors of checkpoint `bytes` (safetensors, or a PyTorch state-dict file) into
/// `targets` (same names and shapes).
pub fn load(bytes: &[u8], targets: &HashMap<String, Tensor>) -> Result<(), ModelError> {
    assign(state_dict::read(bytes)?, targets)
}

/// Copy `source` into `targets`: every target present with its shape and a float dtype, nothing
/// else present (except `num_batches_tracked`).
fn assign(source: StateDict, targets: &HashMap<String, Tensor>) -> Result<(), ModelError> {
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
        let values = host_tensor::to_tensor(stored)?.f_to_kind(Kind::Float)?;
        tch::no_grad(|| target.f_copy_(&values))?;
    }
    Ok(())
}
