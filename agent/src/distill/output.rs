//! A learned set as a distill task's output: the same tensors, images in the dataset's normalized
//! space (as DC-bench releases its sets) and class-sorted int64 labels, written twice:
//!
//! - DC-bench's result file, `torch.save({'data': [[images, labels]], 'accs_all_exps': {}})`,
//!   which DC-bench's and BEARD's code (and this system's train tasks) read as they read the
//!   released sets;
//! - safetensors with the tensors `images` and `labels`.
//!
//! Both encodings depend only on the tensors' values, so equal sets have equal digests.

use beard_formats::state_dict::{self, Format};
use beard_formats::torchfile::save_distilled_set;
use tch::Tensor;

use super::DistillError;
use crate::host_tensor;

/// The two encodings of one learned set.
pub struct EncodedSet {
    /// DC-bench's `torch.save` layout.
    pub torch: Vec<u8>,
    pub safetensors: Vec<u8>,
}

/// Encode normalized `images` `[n, 3, h, w]` and their `labels` `[n]` both ways.
pub fn encode(images: &Tensor, labels: &Tensor) -> Result<EncodedSet, DistillError> {
    let (images, labels) = (host_tensor::from_tensor(images)?, host_tensor::from_tensor(labels)?);
    let torch = save_distilled_set(&images, &labels).map_err(|e| DistillError::Encode(e.to_string()))?;
    let tensors = [("images".to_owned(), images), ("labels".to_owned(), labels)];
    let safetensors =
        state_dict::encode(&tensors, Format::Safetensors).map_err(|e| DistillError::Encode(e.to_string()))?;
    Ok(EncodedSet { torch, safetensors })
}
