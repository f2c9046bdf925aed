//! `agent export`: read a checkpoint (safetensors or a PyTorch state-dict file) and write it in
//! the format asked for, or the one the output's extension names (`.safetensors`; `.pt`, `.pth`).

use std::path::{Path, PathBuf};

use beard_formats::state_dict::{self, Format, StateDictError};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Checkpoint { path: PathBuf, source: StateDictError },
    #[error("cannot tell the format of {} from its extension: pass --format safetensors|pytorch", .0.display())]
    UnknownFormat(PathBuf),
}

/// What was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exported {
    pub format: Format,
    pub tensors: usize,
    pub bytes: usize,
}

/// Export `input` to `output` as `format` (else the format `output`'s extension names).
pub fn run(input: &Path, output: &Path, format: Option<Format>) -> Result<Exported, ExportError> {
    let format = format.or_else(|| format_of(output)).ok_or_else(|| ExportError::UnknownFormat(output.into()))?;
    let bytes = std::fs::read(input).map_err(|source| ExportError::Io { path: input.into(), source })?;
    let checkpoint_error = |source| ExportError::Checkpoint { path: input.into(), source };
    let tensors = state_dict::read(&bytes).map_err(checkpoint_error)?;
    let exported = state_dict::encode(&tensors, format).map_err(checkpoint_error)?;
    std::fs::write(output, &exported).map_err(|source| ExportError::Io { path: output.into(), source })?;
    Ok(Exported { format, tensors: tensors.len(), bytes: exported.len() })
}

/// The format a file name's extension names.
pub fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "safetensors" => Some(Format::Safetensors),
        "pt" | "pth" => Some(Format::Pytorch),
        _ => None,
    }
}
