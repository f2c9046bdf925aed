//! The seam between the worker (leases, heartbeats, the wire) and the ML work.
//!
//! The worker calls a [`Backend`] on a dedicated blocking thread; the backend trains a model or
//! attacks one and reports progress and honours cancellation through a [`TaskContext`]. The tch
//! implementation is [`crate::tch_backend::TchBackend`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use beard_proto::v1::{AttackShard, AttackSpec, TaskFailure, TrainResult, TrainSpec};

/// What a running task may use to talk back to the worker.
pub struct TaskContext {
    progress: Box<dyn Fn(String) + Send + Sync>,
    cancelled: Arc<AtomicBool>,
}

impl TaskContext {
    /// A context that forwards progress to `progress` and reads cancellation from `cancelled`.
    pub fn new(progress: impl Fn(String) + Send + Sync + 'static, cancelled: Arc<AtomicBool>) -> Self {
        Self { progress: Box::new(progress), cancelled }
    }

    /// A context that drops progress and is never cancelled (tests, one-off evaluations).
    pub fn detached() -> Self {
        Self::new(|_| {}, Arc::new(AtomicBool::new(false)))
    }

    /// Report progress, e.g. `"epoch 12/300"`; shown in heartbeats and logs.
    pub fn progress(&self, message: impl Into<String>) {
        (self.progress)(message.into());
    }

    /// True once the lease was revoked or the agent is shutting down; long loops check this and
    /// return [`cancelled`] early.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// The failure a backend returns when it stopped because [`TaskContext::is_cancelled`] said so.
pub fn cancelled() -> TaskFailure {
    TaskFailure::retryable("cancelled", "the task was cancelled before it finished")
}

/// Trains models and attacks them on one device.
pub trait Backend: Send + 'static {
    /// The device as people read it, with its precision, e.g. `cpu (2 threads, fp32)` or `cuda:0 (fp32)`.
    fn device_description(&self) -> String;

    /// Train the model a train task describes; returns the checkpoint as safetensors bytes.
    fn train(&mut self, spec: &TrainSpec, ctx: &TaskContext) -> Result<TrainResult, TaskFailure>;

    /// Run one attack task against the checkpoint of its train task; a transfer task's targets
    /// then judge the examples.
    fn attack(
        &mut self,
        spec: &AttackSpec,
        checkpoints: &AttackCheckpoints,
        ctx: &TaskContext,
    ) -> Result<AttackShard, TaskFailure>;
}

/// The checkpoints an attack task reads (safetensors or PyTorch bytes, as stored).
pub struct AttackCheckpoints {
    /// The attacked model's.
    pub source: Vec<u8>,
    /// Each transfer target's, in the spec's order; empty for a white-box attack.
    pub targets: Vec<Vec<u8>>,
}

impl AttackCheckpoints {
    /// The checkpoint of a white-box attack task, which has no transfer targets.
    pub fn white_box(source: Vec<u8>) -> Self {
        Self { source, targets: Vec::new() }
    }
}
