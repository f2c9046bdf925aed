//! The seam between the worker (leases, heartbeats, the wire) and the ML work.
//!
//! The worker calls a [`Backend`] on a dedicated blocking thread; the backend distils a set,
//! trains a model or attacks one, and reports progress, honours cancellation and hands over
//! snapshots of long work through a [`TaskContext`]. The tch implementation is
//! [`crate::tch_backend::TchBackend`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beard_proto::keys::sha256_hex;
use beard_proto::v1::{
    AttackShard, AttackSpec, DistillResult, DistillSpec, Snapshot, TaskFailure, TrainResult, TrainSpec,
};

/// What a running task may use to talk back to the worker.
pub struct TaskContext {
    progress: Box<dyn Fn(String) + Send + Sync>,
    cancelled: Arc<AtomicBool>,
    snapshots: Option<Snapshots>,
}

/// Where a task's snapshots go, and how often one is due.
struct Snapshots {
    save: Box<dyn Fn(Snapshot) + Send + Sync>,
    every: Duration,
    /// When the last snapshot was taken (or the task started).
    last: Mutex<Instant>,
}

impl TaskContext {
    /// A context that forwards progress to `progress` and reads cancellation from `cancelled`.
    pub fn new(progress: impl Fn(String) + Send + Sync + 'static, cancelled: Arc<AtomicBool>) -> Self {
        Self { progress: Box::new(progress), cancelled, snapshots: None }
    }

    /// This context, also taking a snapshot of long work whenever `every` has passed since the
    /// last one (or since now), and handing it to `save`.
    pub fn with_snapshots(mut self, every: Duration, save: impl Fn(Snapshot) + Send + Sync + 'static) -> Self {
        self.snapshots = Some(Snapshots { save: Box::new(save), every, last: Mutex::new(Instant::now()) });
        self
    }

    /// A context that drops progress and is never cancelled (tests, one-off evaluations).
    pub fn detached() -> Self {
        Self::new(|_| {}, Arc::new(AtomicBool::new(false)))
    }

    /// A context for a step inside this one's work (a distillation's inner training): cancelled
    /// with this one, its progress dropped so that it does not hide the outer work's.
    pub fn silenced(&self) -> Self {
        Self::new(|_| {}, Arc::clone(&self.cancelled))
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

    /// True when the snapshot policy wants one now; work that can resume checks this at its
    /// iteration boundaries and then calls [`Self::save_snapshot`].
    pub fn snapshot_due(&self) -> bool {
        self.snapshots.as_ref().is_some_and(|s| lock(&s.last).elapsed() >= s.every)
    }

    /// Hand over the state after `iteration` iterations; the next attempt resumes from the
    /// latest one the coordinator kept.
    pub fn save_snapshot(&self, iteration: u32, state: Vec<u8>) {
        if let Some(snapshots) = &self.snapshots {
            *lock(&snapshots.last) = Instant::now();
            (snapshots.save)(Snapshot { iteration, state_sha256: sha256_hex(&state), state });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The failure a backend returns when it stopped because [`TaskContext::is_cancelled`] said so.
pub fn cancelled() -> TaskFailure {
    TaskFailure::retryable("cancelled", "the task was cancelled before it finished")
}

/// Distils sets, trains models and attacks them on one device.
pub trait Backend: Send + 'static {
    /// The device as people read it, with its precision, e.g. `cpu (2 threads, fp32)` or `cuda:0 (fp32)`.
    fn device_description(&self) -> String;

    /// Learn the set a distill task describes, from the start or from an earlier attempt's
    /// `resume` snapshot.
    fn distill(
        &mut self,
        spec: &DistillSpec,
        resume: Option<&Snapshot>,
        ctx: &TaskContext,
    ) -> Result<DistilledOutput, TaskFailure>;

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

/// A learned set's two files and the run's record, which names them by digest.
pub struct DistilledOutput {
    pub record: DistillResult,
    /// DC-bench's `torch.save` file.
    pub set: Vec<u8>,
    pub safetensors: Vec<u8>,
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
