//! A reader for PyTorch `torch.save` files (`.pt`, `.pth`): the zip archive and the pickle inside
//! it, decoded without Python and without executing anything.
//!
//! Tensors (`torch._utils._rebuild_tensor_v2` over persistent-id storages, any stride and
//! offset) come back as contiguous [`StoredTensor`]s; dicts, `OrderedDict`s, lists, tuples and
//! scalars as plain [`Value`]s; any other class instance as an opaque [`Value::Object`] that is
//! never constructed. Callers reject what they do not expect.
//!
//! - [`archive`]: the zip layout and storage entries.
//! - [`pickle`]: the pickle machine.
//! - [`value`]: the decoded values.

pub mod archive;
pub mod pickle;
pub mod value;

use std::path::Path;

pub use pickle::PickleError;
pub use value::{Dtype, StoredTensor, Value};

/// Why a torch file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TorchFileError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}: {message}")]
    Archive { file: String, message: String },
    #[error("{file}: pickle {entry} {error}")]
    Pickle { file: String, entry: String, error: PickleError },
}

/// Read and decode the torch file at `path`.
pub fn load(path: &Path) -> Result<Value, TorchFileError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TorchFileError::Io { file: file.clone(), source })?;
    archive::read(&bytes, &file)
}

/// Decode torch-file `bytes`; `origin` names them in errors.
pub fn read(bytes: &[u8], origin: &str) -> Result<Value, TorchFileError> {
    archive::read(bytes, origin)
}
