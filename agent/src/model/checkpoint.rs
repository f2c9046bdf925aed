//! Model-pool checkpoints: a model's state dict as safetensors bytes, and back.
//!
//! The file holds one float32 tensor per state-dict entry under its PyTorch name, with the
//! `{"format": "pt"}` metadata PyTorch's safetensors helpers write, so
//! `model.load_state_dict(safetensors.torch.load(bytes))` works on the DC-bench ConvNet in Python.
//! Loading is strict: every entry of the model must be present with its exact shape, and the file
//! may hold nothing else (apart from batch norm's `num_batches_tracked`, which PyTorch writes and
//! the model does not use).

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use tch::{Device, Kind, Tensor};

use super::ModelError;

const IGNORED_SUFFIX: &str = ".num_batches_tracked";

/// Serialize named float32 tensors (any device) to safetensors bytes; the output depends only on
/// the names and values.
pub fn save(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>, ModelError> {
    let mut host = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let cpu = tensor.f_detach()?.f_to(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
        let shape: Vec<usize> = cpu.size().iter().map(|&d| d as usize).collect();
        let numel = shape.iter().product::<usize>();
        let mut bytes = vec![0u8; numel * Kind::Float.elt_size_in_bytes()];
        cpu.f_copy_data_u8(&mut bytes, numel)?;
        host.push((name.clone(), shape, bytes));
    }
    let views = host
        .iter()
        .map(|(name, shape, bytes)| Ok((name.as_str(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(checkpoint_error)?;
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize(views, Some(metadata)).map_err(checkpoint_error)
}

/// Copy the tensors of safetensors `bytes` into `targets` (same names, shapes, float32).
pub fn load(bytes: &[u8], targets: &HashMap<String, Tensor>) -> Result<(), ModelError> {
    let file = SafeTensors::deserialize(bytes).map_err(checkpoint_error)?;
    if let Some(extra) =
        file.names().into_iter().find(|name| !name.ends_with(IGNORED_SUFFIX) && !targets.contains_key(*name))
    {
        return Err(ModelError::Checkpoint(format!("unexpected tensor {extra:?}")));
    }
    let mut entries: Vec<(&String, &Tensor)> = targets.iter().collect();
    entries.sort_unstable_by_key(|(name, _)| *name);
    for (name, target) in entries {
        let view = file.tensor(name).map_err(|_| ModelError::Checkpoint(format!("missing tensor {name:?}")))?;
        let mut target = target.shallow_clone();
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if view.dtype() != Dtype::F32 || shape != target.size() {
            return Err(ModelError::Checkpoint(format!(
                "tensor {name:?} is {:?} {:?}, the model needs F32 {:?}",
                view.dtype(),
                shape,
                target.size()
            )));
        }
        let source = Tensor::f_from_data_size(view.data(), &shape, Kind::Float)?;
        tch::no_grad(|| target.f_copy_(&source))?;
    }
    Ok(())
}

fn checkpoint_error(error: safetensors::SafeTensorError) -> ModelError {
    ModelError::Checkpoint(error.to_string())
}
