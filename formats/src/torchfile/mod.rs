//! PyTorch `torch.save` files (`.pt`, `.pth`) without Python: a reader for the zip archive and
//! the pickle inside it (nothing is ever executed), and a writer for state dicts and distilled sets.
//!
//! Tensors (`torch._utils._rebuild_tensor_v2` over persistent-id storages, any stride and
//! offset) come back as contiguous [`StoredTensor`]s; dicts, `OrderedDict`s, lists, tuples and
//! scalars as plain [`Value`]s; any other class instance as an opaque [`Value::Object`] that is
//! never constructed. Callers reject what they do not expect.
//!
//! - [`archive`]: the zip layout and storage entries.
//! - [`pickle`]: the pickle machine.
//! - [`value`]: the decoded values.
//! - [`writer`]: `torch.save` of a state dict (an `OrderedDict` of tensors) or of a distilled set.

pub mod archive;
pub mod pickle;
pub mod value;
pub mod writer;

use std::path::Path;

pub use pickle::PickleError;
pub use value::{Dtype, StoredTensor, Value};
pub use writer::{save_distilled_set, save_state_dict};

/// Why a torch file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TorchFileError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}: {message}")]
    Archive { file: String, message: String },
    #[error("{file}: pickle {entry} {error}")]
    Pickle { file: String, entry: String, error: PickleError },
    #[error("cannot write a torch file: {0}")]
    Write(String),
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
