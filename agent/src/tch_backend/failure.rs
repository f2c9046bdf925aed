//! How the ML side's typed errors become the wire's [`TaskFailure`]: bad input is permanent, a
//! device running out of memory is `out_of_memory`, anything else libtorch reports (and any
//! panic inside libtorch calls) is retryable.

use std::any::Any;

use beard_proto::failure::codes::UNSUPPORTED_ATTACK;
use beard_proto::v1::TaskFailure;
use tch::TchError;

use crate::attacks::AttackConfigError;
use crate::backend;
use crate::data::DataError;
use crate::distill::DistillError;
use crate::eval::EvalError;
use crate::model::ModelError;
use crate::train::TrainError;
use beard_formats::torchfile::TorchFileError;

/// Failure codes of this backend (besides `unsupported_attack`, `out_of_memory`, `cancelled`).
pub mod codes {
    /// The spec cannot be run as written (missing fields, impossible numbers, unknown names).
    pub const INVALID_SPEC: &str = "invalid_spec";
    /// A known dataset whose loader this agent does not have yet.
    pub const DATASET_UNAVAILABLE: &str = "dataset_unavailable";
    /// A dataset or distilled-set file could not be read (missing, permissions, I/O); another
    /// attempt (or another agent) may succeed.
    pub const DATA_IO: &str = "data_io";
    /// A dataset file that is not in its format (truncated, bad labels).
    pub const INVALID_DATA: &str = "invalid_data";
    /// A distilled-set file that cannot be used (unknown layout, wrong shapes, class counts).
    pub const INVALID_DISTILLED_SET: &str = "invalid_distilled_set";
    /// Checkpoint bytes that are not a state dict of the spec's model.
    pub const INVALID_CHECKPOINT: &str = "invalid_checkpoint";
    /// A distillation's snapshot that does not fit it, or a learned set that cannot be encoded.
    pub const DISTILL_STATE: &str = "distill_state";
    /// libtorch reported an error.
    pub const TORCH_ERROR: &str = "torch_error";
    /// libtorch panicked.
    pub const PANIC: &str = "panic";
}

/// A permanent `invalid_spec` failure.
pub fn invalid_spec(message: impl Into<String>) -> TaskFailure {
    TaskFailure::permanent(codes::INVALID_SPEC, message)
}

/// A libtorch error: out of memory, or retryable.
pub fn torch(error: &TchError) -> TaskFailure {
    classify(codes::TORCH_ERROR, error.to_string())
}

/// A panic caught around a task.
pub fn panic(payload: &(dyn Any + Send)) -> TaskFailure {
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned());
    classify(codes::PANIC, message)
}

fn classify(code: &str, message: String) -> TaskFailure {
    let lower = message.to_lowercase();
    if lower.contains("out of memory") || lower.contains("not enough memory") {
        TaskFailure::out_of_memory(message)
    } else {
        TaskFailure::retryable(code, message)
    }
}

impl From<DataError> for TaskFailure {
    fn from(error: DataError) -> Self {
        let message = error.to_string();
        match error {
            DataError::Unavailable(_) => TaskFailure::permanent(codes::DATASET_UNAVAILABLE, message),
            DataError::Io { .. }
            | DataError::MissingDatasetFile { .. }
            | DataError::TorchFile(TorchFileError::Io { .. }) => TaskFailure::retryable(codes::DATA_IO, message),
            DataError::Malformed { .. } => TaskFailure::permanent(codes::INVALID_DATA, message),
            DataError::Distilled { .. } | DataError::TorchFile(_) => {
                TaskFailure::permanent(codes::INVALID_DISTILLED_SET, message)
            }
            DataError::UnknownDataset(_)
            | DataError::MissingRoot(_)
            | DataError::MissingSource
            | DataError::PooledCheckpoint
            | DataError::UnfetchedDistillOutput(_)
            | DataError::NotEnoughImages { .. }
            | DataError::ZeroIpc => invalid_spec(message),
            DataError::Torch(error) => torch(&error),
        }
    }
}

impl From<ModelError> for TaskFailure {
    fn from(error: ModelError) -> Self {
        let message = error.to_string();
        match error {
            ModelError::InvalidConfig(_) => invalid_spec(message),
            ModelError::Checkpoint(_) | ModelError::NotACheckpoint => {
                TaskFailure::permanent(codes::INVALID_CHECKPOINT, message)
            }
            ModelError::Torch(error) => torch(&error),
        }
    }
}

impl From<TrainError> for TaskFailure {
    fn from(error: TrainError) -> Self {
        match error {
            TrainError::InvalidConfig(_) => invalid_spec(error.to_string()),
            TrainError::Cancelled => backend::cancelled(),
            TrainError::Torch(error) => torch(&error),
        }
    }
}

impl From<DistillError> for TaskFailure {
    fn from(error: DistillError) -> Self {
        let message = error.to_string();
        match error {
            DistillError::Invalid(_) => invalid_spec(message),
            DistillError::Snapshot(_) | DistillError::Encode(_) => {
                TaskFailure::permanent(codes::DISTILL_STATE, message)
            }
            DistillError::Cancelled => backend::cancelled(),
            DistillError::Train(error) => error.into(),
            DistillError::Model(error) => error.into(),
            DistillError::Torch(error) => torch(&error),
        }
    }
}

impl From<AttackConfigError> for TaskFailure {
    fn from(error: AttackConfigError) -> Self {
        let message = error.to_string();
        match error {
            AttackConfigError::Missing => TaskFailure::permanent(UNSUPPORTED_ATTACK, message),
            AttackConfigError::UntargetedOnly(_) | AttackConfigError::Invalid { .. } => invalid_spec(message),
        }
    }
}

impl From<EvalError> for TaskFailure {
    fn from(error: EvalError) -> Self {
        match error {
            EvalError::Invalid(_) => invalid_spec(error.to_string()),
            EvalError::Cancelled => backend::cancelled(),
            EvalError::Torch(error) => torch(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beard_proto::v1::ErrorClass;

    #[test]
    fn out_of_memory_messages_are_classified() {
        let oom = torch(&TchError::Torch("CUDA out of memory. Tried to allocate 2.00 GiB".into()));
        assert_eq!(oom.class(), ErrorClass::OutOfMemory);
        let other = torch(&TchError::Torch("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR".into()));
        assert_eq!((other.class(), other.code.as_str()), (ErrorClass::Retryable, codes::TORCH_ERROR));
        let boxed: Box<dyn Any + Send> = Box::new("DefaultCPUAllocator: not enough memory".to_owned());
        assert_eq!(panic(boxed.as_ref()).class(), ErrorClass::OutOfMemory);
    }
}
