//! The typed failure of a task, as it crosses the wire from agent to coordinator.
//!
//! Failures keep their class (retryable, permanent, out-of-memory) and a stable code end to end,
//! so the scheduler decides retries on types, never on parsed strings.

use crate::v1::{ErrorClass, TaskFailure};

/// Codes with a meaning the coordinator or the CLI relies on.
pub mod codes {
    /// The agent has no implementation of the requested attack.
    pub const UNSUPPORTED_ATTACK: &str = "unsupported_attack";
    /// A task this one depends on failed for good.
    pub const DEPENDENCY_FAILED: &str = "dependency_failed";
    /// The task failed more often than the retry limit allows.
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
}

impl TaskFailure {
    /// A failure worth another attempt.
    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retryable, code, message)
    }

    /// A failure that would repeat anywhere.
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, code, message)
    }

    /// The device ran out of memory.
    pub fn out_of_memory(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::OutOfMemory, "out_of_memory", message)
    }

    fn new(class: ErrorClass, code: &str, message: impl Into<String>) -> Self {
        Self { class: class as i32, code: code.to_owned(), message: message.into() }
    }

    /// Whether the scheduler may lease the task again after this failure.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.class(), ErrorClass::Permanent)
    }
}

impl std::fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = match self.class() {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
            ErrorClass::OutOfMemory => "out of memory",
            ErrorClass::Unspecified => "unclassified",
        };
        write!(f, "{} ({class}): {}", self.code, self.message)
    }
}
