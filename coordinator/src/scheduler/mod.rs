//! The scheduler: the one writer of coordinator state, and the task state machine it enforces.
//!
//! # State machine of a task
//!
//! ```text
//!             lease (train first; attack only when its train task is done)
//!   pending ─────────────────────────────────────────────▶ leased
//!      ▲  ▲                                                 │ │ │
//!      │  └── lease expired / retryable failure (backoff) ──┘ │ │
//!      │                                                      │ │ completion with the live token
//!      │ re-submitted            permanent failure, or        │ ▼
//!   failed ◀────────────────── attempts exhausted ────────────┘ done
//! ```
//!
//! # Failure model
//!
//! - Every lease carries a fresh random token. A completion is accepted only with the token of
//!   the live lease; once accepted, the same token is answered "accepted" again (idempotent
//!   retries of a lost reply), any other token is rejected, so nothing is counted twice.
//! - An agent that stops heartbeating loses its leases after the TTL; they return to the queue
//!   and count as attempts. A late completion from such an agent is rejected.
//! - Each agent process registers with a fresh generation. A name belongs to one live process:
//!   while its holder heartbeats (within the lease TTL), another generation is refused with
//!   [`SchedulerError::NameInUse`], so two processes never take a name from each other in turn.
//!   A restart of the same agent names its predecessor's generation (kept in its work dir) and
//!   takes the name over at once; so does anyone once the holder has been silent for a TTL. The
//!   replaced generation's leases are requeued at once, and its next call is answered
//!   [`SchedulerError::StaleGeneration`], on which an agent stops.
//! - Failures are typed: retryable ones (and out-of-memory) are retried with exponential
//!   backoff until `max_attempts`; permanent ones fail the task at once. A failed task fails
//!   every task downstream of it (a distill task its train tasks and their attack tasks) with
//!   `dependency_failed`. Failed tasks stay visible in `status`.
//! - A long task (a distillation) saves snapshots under its live lease, their states uploaded as
//!   blobs first; the next lease of the same task names the latest one, whose state only that
//!   leaseholder may fetch, so a task whose agent died resumes from it. A state is deleted once
//!   another replaces it or its task finishes.
//! - When no agent is alive the queue simply waits; `status` reports the number of live agents.
//!
//! All methods take the current time in milliseconds, so tests drive time by hand. The server
//! runs the scheduler on a dedicated thread ([`SchedulerHandle`]) and talks to it by messages.
//! After each committed transaction the scheduler counts its transitions (lease expiries,
//! retries, quarantines, completions) in lock-free [`Counters`] the metrics endpoint reads.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beard_proto::describe::{describe_task, is_pooled};
use beard_proto::failure::codes;
use beard_proto::keys::{is_valid_key, sha256_hex, task_key};
use beard_proto::v1::{
    AgentInfo, AgentsResponse, AttackShard, CancelResponse, CompleteRequest, CompleteResponse, DistillResult, LeaseRef,
    LeaseResponse, LeasedTask, NameInUse, RegisterRequest, RegisterResponse, RunningTask, SaveSnapshotRequest,
    Snapshot, StatusResponse, SubmitRequest, SubmitResponse, SweepStatus, TaskError, TaskFailure, TaskSpec,
    TrainResult, complete_request, distilled_source, task_spec,
};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

#[cfg(test)]
use crate::blobs::Blobs;
use crate::report::{Provenance, ReportInput};
use crate::store::{NewTask, Store, StoreError, SweepRow, TaskRow, TaskState, Tx};
use crate::sweep::{self, PoolModels, SweepError};
use crate::telemetry::{Counters, FailCause, Transition};

/// Tunables of leasing and retries.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub lease_ttl: Duration,
    pub heartbeat_interval: Duration,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            max_attempts: 5,
            retry_backoff: Duration::from_secs(2),
        }
    }
}

/// Errors a scheduler call can end in; each maps to one gRPC status code.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    InvalidSweep(#[from] SweepError),
    #[error("no sweep {0:?}")]
    UnknownSweep(String),
    #[error("agent {0:?} is not registered; register first")]
    UnknownAgent(String),
    #[error("agent {name:?} generation {generation} was replaced by a newer process under the same name")]
    StaleGeneration { name: String, generation: String },
    #[error(
        "agent name {name:?} is held by a live agent (generation {}, device {}, last heartbeat {:.1} s ago); give each agent its own --name",
        holder.holder_generation, holder.holder_device, holder.silent_ms as f64 / 1000.0
    )]
    NameInUse { name: String, holder: NameInUse },
    #[error("protocol version {got} is not supported (this coordinator speaks {want})")]
    ProtocolMismatch { got: u32, want: u32 },
    #[error("task {0:?} has no stored output (not finished, or not a task with one)")]
    NoOutput(String),
    #[error("task {0:?} has no snapshot to resume from")]
    NoSnapshot(String),
    #[error("task {task:?} is not leased under that token: {reason}")]
    NotLeased { task: String, reason: &'static str },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    InvalidArgument(String),
}

impl From<SchedulerError> for tonic::Status {
    fn from(error: SchedulerError) -> Self {
        use tonic::Status;
        let message = error.to_string();
        match error {
            SchedulerError::InvalidSweep(_) | SchedulerError::InvalidArgument(_) => Status::invalid_argument(message),
            SchedulerError::UnknownSweep(_)
            | SchedulerError::UnknownAgent(_)
            | SchedulerError::NoOutput(_)
            | SchedulerError::NoSnapshot(_) => Status::not_found(message),
            SchedulerError::StaleGeneration { .. } => Status::aborted(message),
            SchedulerError::NameInUse { holder, .. } => {
                Status::with_details(tonic::Code::AlreadyExists, message, holder.encode_to_vec().into())
            }
            SchedulerError::ProtocolMismatch { .. } | SchedulerError::NotLeased { .. } => {
                Status::failed_precondition(message)
            }
            SchedulerError::Store(_) | SchedulerError::Corrupt(_) => Status::internal(message),
        }
    }
}

pub type SchedulerResult<T> = Result<T, SchedulerError>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn millis(duration: Duration) -> i64 {
    duration.as_millis() as i64
}

/// The task state machine over a [`Store`].
pub struct Scheduler {
    store: Store,
    config: SchedulerConfig,
    counters: Counters,
}

impl Scheduler {
    pub fn new(store: Store, config: SchedulerConfig) -> Self {
        Self { store, config, counters: Counters::default() }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The transition counters (clones share them).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Validate and expand a sweep file and record its tasks; the model-pool checkpoints it names
    /// come with the request, and are stored (content-addressed) as the results of their
    /// model-pool entries, which are done from the start. Nothing is written when the file or a
    /// checkpoint is invalid.
    pub fn submit(&mut self, request: &SubmitRequest, now: i64) -> SchedulerResult<SubmitResponse> {
        let SubmitRequest { yaml, file_name, checkpoints } = request;
        let sweep = sweep::parse(yaml, file_name)?;
        let pool = sweep.read_checkpoints(yaml, file_name, |path| {
            checkpoints.iter().find(|file| file.path == path).map(|file| file.content.clone()).ok_or_else(|| {
                "the submit request does not carry this checkpoint; `coordinator submit` reads and sends the \
                 checkpoints a sweep names"
                    .to_owned()
            })
        })?;
        let expansion = sweep.expand(&pool);
        let sweep_id = format!("{}-{}", slug(&sweep.name), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let row = SweepRow {
            id: sweep_id.clone(),
            name: sweep.name.clone(),
            file_name: file_name.to_owned(),
            yaml: yaml.to_owned(),
            state: "running".to_owned(),
            created_ms: now,
        };
        let distill = |spec| TaskSpec { kind: Some(task_spec::Kind::Distill(spec)) };
        let distills: Vec<TaskSpec> = expansion.distills.into_iter().map(distill).collect();
        let train = |spec| TaskSpec { kind: Some(task_spec::Kind::Train(spec)) };
        let trains: Vec<TaskSpec> = expansion.trains.into_iter().map(train).collect();
        let pooled: Vec<TaskSpec> = expansion.pooled.into_iter().map(train).collect();
        let attack = |spec| TaskSpec { kind: Some(task_spec::Kind::Attack(spec)) };
        let attacks: Vec<TaskSpec> = expansion.attacks.into_iter().map(attack).collect();
        let transfers: Vec<TaskSpec> = expansion.transfers.into_iter().map(attack).collect();
        let (train_tasks, attack_tasks, pool_models, transfer_tasks, distill_tasks) = (
            trains.len() as u32,
            attacks.len() as u32,
            pooled.len() as u32,
            transfers.len() as u32,
            distills.len() as u32,
        );
        let reused = self.store.transaction(|tx| {
            tx.insert_sweep(&row)?;
            let mut reused = 0;
            for spec in distills.iter().chain(&trains).chain(&pooled).chain(&attacks).chain(&transfers) {
                let id = task_key(spec);
                let (kind, depends_on, inputs) = match &spec.kind {
                    Some(task_spec::Kind::Attack(attack)) => {
                        let inputs: Vec<&str> =
                            attack.transfer_targets.iter().map(|target| target.train_task_id.as_str()).collect();
                        ("attack", Some(attack.train_task_id.as_str()), inputs)
                    }
                    Some(task_spec::Kind::Train(train)) if is_pooled(train) => ("pool", None, Vec::new()),
                    Some(task_spec::Kind::Train(train)) => ("train", distill_task_of(train), Vec::new()),
                    Some(task_spec::Kind::Distill(_)) => ("distill", None, Vec::new()),
                    None => ("train", None, Vec::new()),
                };
                let description = describe_task(spec);
                let bytes = spec.encode_to_vec();
                let new =
                    NewTask { id: &id, kind, description: &description, spec: &bytes, depends_on, inputs: &inputs };
                match tx.upsert_task(&sweep_id, &new)? {
                    TaskState::Done => reused += 1,
                    TaskState::Failed => tx.reset_failed(&id)?,
                    TaskState::Pending if kind == "pool" => store_pool_model(tx, &id, spec, &pool, now)?,
                    TaskState::Pending | TaskState::Leased => {}
                }
            }
            Ok(reused)
        })?;
        tracing::info!(
            sweep = %sweep_id, distill_tasks, train_tasks, pool_models, attack_tasks, transfer_tasks, reused,
            "sweep submitted"
        );
        Ok(SubmitResponse {
            sweep_id,
            name: sweep.name,
            train_tasks,
            attack_tasks,
            reused_tasks: reused,
            pool_models,
            transfer_tasks,
            distill_tasks,
        })
    }

    /// Register an agent process. A name held by another live generation is refused (unless the
    /// request names that generation as its predecessor); a new generation that takes a name over
    /// requeues the leases the previous process held.
    pub fn register(&mut self, request: &RegisterRequest, now: i64) -> SchedulerResult<RegisterResponse> {
        if request.protocol_version != beard_proto::PROTOCOL_VERSION {
            return Err(SchedulerError::ProtocolMismatch {
                got: request.protocol_version,
                want: beard_proto::PROTOCOL_VERSION,
            });
        }
        if request.agent_name.is_empty() || request.generation.is_empty() {
            return Err(SchedulerError::InvalidArgument("agent name and generation must not be empty".into()));
        }
        let name = request.agent_name.clone();
        let ttl = millis(self.config.lease_ttl);
        // Ok(requeued leases), or Err(the live holder) when the name is refused and nothing written.
        let outcome = self.store.transaction(|tx| {
            let replaced = tx.agent_holder(&name)?.filter(|holder| holder.generation != request.generation);
            if let Some(holder) = &replaced
                && holder.generation != request.replaces_generation
                && now - holder.last_seen_ms < ttl
            {
                return Ok(Err(holder.clone()));
            }
            tx.register_agent(&name, &request.generation, &request.device, now)?;
            let mut requeued = 0;
            if replaced.is_some() {
                for task in tx.leases_of(&name)? {
                    let failure = TaskFailure::retryable("agent_restarted", format!("agent {name} restarted"));
                    tx.record_error(&task.id, task.attempts, &name, &failure.encode_to_vec(), now)?;
                    tx.requeue(&task.id, now)?;
                    tracing::warn!(task = %task.description, agent = %name, "agent replaced; lease requeued");
                    requeued += 1;
                }
            }
            Ok(Ok(requeued))
        })?;
        let requeued = outcome.map_err(|holder| {
            tracing::warn!(agent = %name, holder = %holder.generation, refused = %request.generation, "agent name in use");
            SchedulerError::NameInUse {
                name: name.clone(),
                holder: NameInUse {
                    holder_generation: holder.generation,
                    holder_device: holder.device,
                    silent_ms: (now - holder.last_seen_ms).max(0) as u64,
                    lease_ttl_ms: ttl as u64,
                },
            }
        })?;
        self.counters.record(std::iter::repeat_n(Transition::Retried, requeued));
        tracing::info!(agent = %name, generation = %request.generation, device = %request.device, "agent registered");
        Ok(RegisterResponse {
            heartbeat_interval_ms: millis(self.config.heartbeat_interval) as u64,
            lease_ttl_ms: millis(self.config.lease_ttl) as u64,
        })
    }

    fn check_generation(&mut self, name: &str, generation: &str, now: i64) -> SchedulerResult<()> {
        let current = self.store.transaction(|tx| {
            let current = tx.agent_generation(name)?;
            if current.as_deref() == Some(generation) {
                tx.touch_agent(name, now)?;
            }
            Ok(current)
        })?;
        match current {
            None => Err(SchedulerError::UnknownAgent(name.to_owned())),
            Some(current) if current != generation => {
                Err(SchedulerError::StaleGeneration { name: name.to_owned(), generation: generation.to_owned() })
            }
            Some(_) => Ok(()),
        }
    }

    /// Hand the next leasable task to an agent, or tell it when to ask again.
    pub fn lease(
        &mut self,
        agent: &str,
        generation: &str,
        cached: &[String],
        now: i64,
    ) -> SchedulerResult<LeaseResponse> {
        self.check_generation(agent, generation, now)?;
        self.expire(now)?;
        let expires = now + millis(self.config.lease_ttl);
        let leased = self.store.transaction(|tx| {
            let Some(task) = tx.next_leasable(now, cached)? else { return Ok(None) };
            let token = uuid::Uuid::new_v4().to_string();
            let attempt = tx.mark_leased(&task.id, &token, agent, expires)?;
            let snapshot = tx.snapshot(&task.id)?;
            Ok(Some((task, token, attempt, snapshot)))
        })?;
        let Some((task, token, attempt, snapshot)) = leased else {
            return Ok(LeaseResponse { task: None, retry_after_ms: 1000 });
        };
        let spec = TaskSpec::decode(task.spec.as_slice())
            .map_err(|e| SchedulerError::Corrupt(format!("task {}: {e}", task.id)))?;
        let snapshot =
            snapshot.map(|(iteration, state_sha256)| Snapshot { iteration, state: Vec::new(), state_sha256 });
        let resumes_from = snapshot.as_ref().map(|snapshot| snapshot.iteration);
        tracing::info!(task = %task.description, agent, attempt, resumes_from, "task leased");
        Ok(LeaseResponse {
            task: Some(LeasedTask { task_id: task.id, lease_token: token, attempt, spec: Some(spec), snapshot }),
            retry_after_ms: 0,
        })
    }

    /// Renew the leases an agent still works on, recording its progress report against the
    /// first; returns the tokens it must stop working on.
    pub fn heartbeat(
        &mut self,
        agent: &str,
        generation: &str,
        tokens: &[String],
        progress: &str,
        now: i64,
    ) -> SchedulerResult<Vec<String>> {
        self.check_generation(agent, generation, now)?;
        let expires = now + millis(self.config.lease_ttl);
        Ok(self.store.transaction(|tx| {
            let mut revoked = Vec::new();
            for token in tokens {
                if !tx.renew_lease(token, agent, expires)? {
                    revoked.push(token.clone());
                }
            }
            if let Some(first) = tokens.first().filter(|token| !progress.is_empty() && !revoked.contains(token)) {
                tx.set_progress(first, progress, now)?;
            }
            Ok(revoked)
        })?)
    }

    /// Keep a snapshot of a leased task, its state uploaded before; false (and nothing kept, the
    /// state deleted) when the lease is not live. The state it replaces is deleted.
    pub fn save_snapshot(&mut self, request: &SaveSnapshotRequest, now: i64) -> SchedulerResult<bool> {
        let (Some(lease), Some(snapshot)) = (&request.lease, &request.snapshot) else {
            return Err(SchedulerError::InvalidArgument("the request needs its lease and a snapshot".into()));
        };
        self.check_generation(&lease.agent_name, &lease.generation, now)?;
        let digest = &snapshot.state_sha256;
        let saved = self.store.transaction(|tx| {
            if !tx.has_blob(digest) {
                return Ok(None);
            }
            let replaced = tx.snapshot(&lease.task_id)?;
            let saved = tx.save_snapshot(&lease.task_id, &lease.lease_token, snapshot.iteration, digest, now)?;
            if !saved {
                // Too late (the task finished or moved on): the state names nothing.
                tx.remove_blob_if_unused(digest)?;
            } else if let Some((_, old)) = replaced.filter(|(_, old)| old != digest) {
                tx.remove_blob_if_unused(&old)?;
            }
            Ok(Some(saved))
        })?;
        let saved = saved.ok_or_else(|| {
            SchedulerError::InvalidArgument(format!("the snapshot state {digest:?} was not uploaded before"))
        })?;
        tracing::debug!(task = %lease.task_id, iteration = snapshot.iteration, saved, "snapshot");
        Ok(saved)
    }

    /// Note the blob `digest` that `lease`'s agent uploaded, so that it is deleted when its task
    /// finishes unless something names it by then.
    pub fn record_upload(&mut self, lease: &LeaseRef, digest: &str) -> SchedulerResult<()> {
        Ok(self.store.transaction(|tx| tx.record_upload(&lease.task_id, digest))?)
    }

    /// The digest of the snapshot state the leaseholder `lease` resumes from.
    pub fn snapshot_state(&mut self, lease: &LeaseRef, now: i64) -> SchedulerResult<String> {
        self.check_lease(lease, now)?;
        let snapshot = self.store.transaction(|tx| tx.snapshot(&lease.task_id))?;
        snapshot.map(|(_, digest)| digest).ok_or_else(|| SchedulerError::NoSnapshot(lease.task_id.clone()))
    }

    /// Requeue (or quarantine) every task whose lease ran out. Returns how many expired.
    pub fn expire(&mut self, now: i64) -> SchedulerResult<usize> {
        let max_attempts = self.config.max_attempts;
        // The holder is gone, not the task at fault: requeue at once, without backoff.
        let backoff = Duration::ZERO;
        let transitions = self.store.transaction(|tx| {
            let mut transitions = Vec::new();
            for task in &tx.expired_leases(now)? {
                let agent = task.lease_agent.clone().unwrap_or_default();
                let failure =
                    TaskFailure::retryable("lease_expired", format!("agent {agent} stopped renewing its lease"));
                tracing::warn!(task = %task.description, agent = %agent, "lease expired");
                transitions.push(Transition::LeaseExpired);
                transitions.extend(settle_failure(tx, task, &agent, &failure, now, max_attempts, backoff)?);
            }
            Ok(transitions)
        })?;
        let expired = transitions.iter().filter(|t| **t == Transition::LeaseExpired).count();
        self.counters.record(transitions);
        Ok(expired)
    }

    /// Accept or reject a completion. See the module documentation for the rules.
    pub fn complete(&mut self, request: CompleteRequest, now: i64) -> SchedulerResult<CompleteResponse> {
        let max_attempts = self.config.max_attempts;
        let backoff = self.config.retry_backoff;
        let CompleteRequest { task_id, lease_token, agent_name, outcome } = request;
        let agent = agent_name.as_str();
        let (response, transitions) = self.store.transaction(|tx| {
            let reject = |reason: String| -> Result<_, StoreError> {
                tx.record_rejection(&task_id, &lease_token, agent, &reason, now)?;
                Ok((CompleteResponse { accepted: false, reason }, Vec::new()))
            };
            let Some(task) = tx.task(&task_id)? else {
                return reject(format!("unknown task {task_id}"));
            };
            let holds_lease = task.state == TaskState::Leased && task.lease_token.as_deref() == Some(lease_token.as_str());
            if !holds_lease {
                if task.state == TaskState::Done && tx.accepted_token(&task_id)?.as_deref() == Some(lease_token.as_str()) {
                    return Ok((CompleteResponse { accepted: true, reason: "already accepted".into() }, Vec::new()));
                }
                tracing::warn!(task = %task.description, agent, "stale completion rejected");
                return reject("stale lease: the task was re-leased or finished elsewhere".into());
            }
            let transitions = match outcome {
                Some(complete_request::Outcome::Train(result)) => match verify_checkpoint(&result) {
                    Ok(()) => {
                        tx.put_blob(&result.checkpoint_sha256, &result.checkpoint)?;
                        // The run's record (time, images, loss, device); the checkpoint is a blob.
                        let record = TrainResult { checkpoint: Vec::new(), ..result };
                        let digest = Some(record.checkpoint_sha256.as_str());
                        tx.insert_result(&task_id, &lease_token, agent, now, Some(&record.encode_to_vec()), digest)?;
                        tx.set_state(&task_id, TaskState::Done)?;
                        tracing::info!(task = %task.description, agent, "train result accepted");
                        vec![Transition::TrainCompleted]
                    }
                    Err(failure) => settle_failure(tx, &task, agent, &failure, now, max_attempts, backoff)?,
                },
                Some(complete_request::Outcome::Distill(record)) => match verify_distilled(tx, &record) {
                    Ok(()) => {
                        // The run's record (time, resumed-from iteration, loss, device); its two
                        // files were uploaded before, and are named by digest.
                        let digest = Some(record.set_sha256.as_str());
                        tx.insert_result(&task_id, &lease_token, agent, now, Some(&record.encode_to_vec()), digest)?;
                        tx.insert_task_file(&task_id, DISTILLED_SAFETENSORS, &record.safetensors_sha256)?;
                        tx.delete_snapshot(&task_id)?;
                        tx.drop_uploads(&task_id)?;
                        tx.set_state(&task_id, TaskState::Done)?;
                        tracing::info!(
                            task = %task.description, agent, resumed_from = record.resumed_from, "distilled set accepted"
                        );
                        vec![Transition::DistillCompleted]
                    }
                    Err(failure) => settle_failure(tx, &task, agent, &failure, now, max_attempts, backoff)?,
                },
                Some(complete_request::Outcome::Attack(shard)) => match verify_shard(&shard) {
                    Ok(()) => {
                        tx.insert_result(&task_id, &lease_token, agent, now, Some(&shard.encode_to_vec()), None)?;
                        tx.set_state(&task_id, TaskState::Done)?;
                        tracing::info!(task = %task.description, agent, robust = shard.robust_accuracy, "shard accepted");
                        vec![Transition::AttackCompleted { images: u64::from(shard.samples) }]
                    }
                    Err(failure) => settle_failure(tx, &task, agent, &failure, now, max_attempts, backoff)?,
                },
                Some(complete_request::Outcome::Failure(failure)) => {
                    tracing::warn!(task = %task.description, agent, error = %failure, "task failed");
                    settle_failure(tx, &task, agent, &failure, now, max_attempts, backoff)?
                }
                None => {
                    let failure = TaskFailure::retryable("empty_completion", "the completion carried no outcome");
                    settle_failure(tx, &task, agent, &failure, now, max_attempts, backoff)?
                }
            };
            Ok((CompleteResponse { accepted: true, reason: String::new() }, transitions))
        })?;
        self.counters.record(transitions);
        Ok(response)
    }

    /// The blob digest of a finished task's output: a train task's checkpoint (or a model-pool
    /// entry's), or a distill task's set.
    pub fn output(&mut self, task_id: &str) -> SchedulerResult<String> {
        if !is_valid_key(task_id) {
            return Err(SchedulerError::InvalidArgument(format!("malformed task id {task_id:?}")));
        }
        let digest = self.store.transaction(|tx| tx.checkpoint_digest(task_id))?;
        digest.ok_or_else(|| SchedulerError::NoOutput(task_id.to_owned()))
    }

    /// Whether a call made on behalf of a running task (an upload) may go on: its agent's
    /// generation is current and its task leased under its token.
    pub fn check_lease(&mut self, lease: &LeaseRef, now: i64) -> SchedulerResult<()> {
        self.check_generation(&lease.agent_name, &lease.generation, now)?;
        let task = self.store.transaction(|tx| tx.task(&lease.task_id))?;
        let not_leased = |reason| SchedulerError::NotLeased { task: lease.task_id.clone(), reason };
        match task {
            None => Err(not_leased("no such task")),
            Some(task) if task.state != TaskState::Leased => Err(not_leased("it is not leased")),
            Some(task) if task.lease_token.as_deref() != Some(lease.lease_token.as_str()) => {
                Err(not_leased("another lease holds it"))
            }
            Some(_) => Ok(()),
        }
    }

    /// The blob directory (the server streams files through its own handle on it).
    #[cfg(test)]
    pub fn blobs(&self) -> &Blobs {
        self.store.blobs()
    }

    /// Progress of one sweep, or of all.
    pub fn status(&mut self, sweep_id: Option<&str>, now: i64) -> SchedulerResult<StatusResponse> {
        let alive_since = now - millis(self.config.lease_ttl);
        self.store.transaction(|tx| {
            let sweeps = match sweep_id {
                Some(id) => match tx.sweep(id)? {
                    Some(row) => vec![row],
                    None => return Ok(Err(SchedulerError::UnknownSweep(id.to_owned()))),
                },
                None => tx.sweeps()?,
            };
            let agents_alive = tx.agents_seen_since(alive_since)?;
            let mut out = Vec::with_capacity(sweeps.len());
            for sweep in sweeps {
                let counts = tx.state_counts(&sweep.id)?;
                let mut errors = Vec::new();
                for task in tx.failed_tasks(&sweep.id)? {
                    let failure = tx.last_error(&task.id)?.and_then(|bytes| TaskFailure::decode(bytes.as_slice()).ok());
                    errors.push(TaskError { task_id: task.id, description: task.description, failure });
                }
                let state = if sweep.state == "running" && counts.pending + counts.leased == 0 {
                    "completed".to_owned()
                } else {
                    sweep.state.clone()
                };
                let running = tx
                    .running(&sweep.id)?
                    .into_iter()
                    .map(|(task_id, description, agent, progress)| RunningTask {
                        task_id,
                        description,
                        agent,
                        progress,
                    })
                    .collect();
                out.push(SweepStatus {
                    sweep_id: sweep.id,
                    name: sweep.name,
                    state,
                    total: counts.total(),
                    pending: counts.pending,
                    leased: counts.leased,
                    done: counts.done,
                    failed: counts.failed,
                    errors,
                    agents_alive,
                    created_unix: sweep.created_ms / 1000,
                    running,
                });
            }
            Ok(Ok(StatusResponse { sweeps: out }))
        })?
    }

    /// Every known agent, whether it is alive, and what it works on.
    pub fn agents(&mut self, now: i64) -> SchedulerResult<AgentsResponse> {
        let alive_since = now - millis(self.config.lease_ttl);
        Ok(self.store.transaction(|tx| {
            let mut agents = Vec::new();
            for (name, generation, device, last_seen) in tx.agents()? {
                let current_tasks = tx.leases_of(&name)?.into_iter().map(|task| task.description).collect();
                agents.push(AgentInfo {
                    alive: last_seen >= alive_since,
                    name,
                    generation,
                    device,
                    last_seen_unix_ms: last_seen,
                    current_tasks,
                });
            }
            Ok(AgentsResponse { agents })
        })?)
    }

    /// Stop leasing the tasks of a sweep; leases in flight are revoked at their next heartbeat.
    pub fn cancel(&mut self, sweep_id: &str) -> SchedulerResult<CancelResponse> {
        self.store.transaction(|tx| {
            if tx.sweep(sweep_id)?.is_none() {
                return Ok(Err(SchedulerError::UnknownSweep(sweep_id.to_owned())));
            }
            tx.set_sweep_state(sweep_id, "cancelled")?;
            let counts = tx.state_counts(sweep_id)?;
            tracing::info!(sweep = %sweep_id, "sweep cancelled");
            Ok(Ok(CancelResponse { cancelled_tasks: counts.pending + counts.leased }))
        })?
    }

    /// Everything the report of a sweep is built from, and its provenance (the sweep file, the
    /// devices and evaluation settings of the results).
    pub fn report_input(&mut self, sweep_id: &str) -> SchedulerResult<(ReportInput, Provenance)> {
        let (row, raw) = self
            .store
            .transaction(|tx| {
                let Some(row) = tx.sweep(sweep_id)? else { return Ok(None) };
                Ok(Some((row, tx.attack_results(sweep_id)?)))
            })?
            .ok_or_else(|| SchedulerError::UnknownSweep(sweep_id.to_owned()))?;
        let sweep = sweep::parse(&row.yaml, &row.file_name)?;
        let mut results = Vec::with_capacity(raw.len());
        for (spec, shard) in raw {
            let corrupt = |e: prost::DecodeError| SchedulerError::Corrupt(e.to_string());
            let spec = TaskSpec::decode(spec.as_slice()).map_err(corrupt)?;
            let shard = AttackShard::decode(shard.as_slice()).map_err(corrupt)?;
            if let Some(task_spec::Kind::Attack(attack)) = spec.kind {
                results.push((attack, shard));
            }
        }
        let provenance = Provenance::default().with_sweep(&row.file_name, &row.yaml, &results);
        let input = ReportInput {
            sweep_name: sweep.name.clone(),
            options: sweep.metrics,
            method_order: sweep.method_names().into_iter().map(str::to_owned).collect(),
            results,
        };
        Ok((input, provenance))
    }
}

/// A new model-pool entry is done at once: its checkpoint goes into the blob store and becomes
/// its result, as if a train task had produced it.
fn store_pool_model(tx: &Tx<'_>, id: &str, spec: &TaskSpec, pool: &PoolModels, now: i64) -> Result<(), StoreError> {
    let Some(task_spec::Kind::Train(train)) = &spec.kind else { return Ok(()) };
    let Some(distilled_source::Source::Checkpoint(pooled)) = train.source.as_ref().and_then(|s| s.source.as_ref())
    else {
        return Ok(());
    };
    let Some(model) = pool.iter().find(|model| model.sha256 == pooled.sha256) else {
        return Err(StoreError::Corrupt(format!("model-pool entry {id} has no checkpoint bytes")));
    };
    tx.put_blob(&model.sha256, &model.bytes)?;
    tx.insert_result(id, POOL_UPLOAD, POOL_UPLOAD, now, None, Some(&model.sha256))?;
    tx.set_state(id, TaskState::Done)
}

/// The distill task whose set a train task reads, if any.
fn distill_task_of(train: &beard_proto::v1::TrainSpec) -> Option<&str> {
    match train.source.as_ref().and_then(|s| s.source.as_ref()) {
        Some(distilled_source::Source::Distilled(output)) => Some(output.distill_task_id.as_str()),
        _ => None,
    }
}

/// Lease token and agent of a model-pool entry's result: the checkpoint came with the submit.
const POOL_UPLOAD: &str = "submit";

/// Record a failed attempt, then retry the task later or fail it for good (cascading to the
/// tasks that depend on it). Returns the transitions to count once the transaction commits.
fn settle_failure(
    tx: &Tx<'_>,
    task: &TaskRow,
    agent: &str,
    failure: &TaskFailure,
    now: i64,
    max_attempts: u32,
    backoff: Duration,
) -> Result<Vec<Transition>, StoreError> {
    tx.record_error(&task.id, task.attempts, agent, &failure.encode_to_vec(), now)?;
    if failure.is_retryable() && task.attempts < max_attempts {
        let delay = millis(backoff).saturating_mul(1 << task.attempts.saturating_sub(1).min(5));
        tx.requeue(&task.id, now + delay)?;
        return Ok(vec![Transition::Retried]);
    }
    let cause = if failure.is_retryable() { FailCause::RetriesExhausted } else { FailCause::Permanent };
    let mut transitions = vec![Transition::Quarantined(cause)];
    let final_failure = if failure.is_retryable() {
        TaskFailure::permanent(
            codes::RETRIES_EXHAUSTED,
            format!("failed {} times; last error: {failure}", task.attempts),
        )
    } else {
        failure.clone()
    };
    if final_failure.code != failure.code {
        tx.record_error(&task.id, task.attempts, agent, &final_failure.encode_to_vec(), now)?;
    }
    tx.set_state(&task.id, TaskState::Failed)?;
    // Uploads nothing names go; a distill task's snapshot stays for a resubmission to resume from.
    tx.drop_uploads(&task.id)?;
    tracing::error!(task = %task.description, error = %final_failure, "task failed for good");
    // Downstream, level by level: a distill task's train tasks, then their attack tasks.
    let failure =
        TaskFailure::permanent(codes::DEPENDENCY_FAILED, format!("{} failed: {}", task.description, final_failure));
    let mut failed = vec![task.id.clone()];
    while let Some(id) = failed.pop() {
        for dependent in tx.dependents(&id)? {
            tx.record_error(&dependent.id, dependent.attempts, agent, &failure.encode_to_vec(), now)?;
            tx.set_state(&dependent.id, TaskState::Failed)?;
            transitions.push(Transition::Quarantined(FailCause::DependencyFailed));
            failed.push(dependent.id);
        }
    }
    Ok(transitions)
}

fn verify_checkpoint(result: &TrainResult) -> Result<(), TaskFailure> {
    let actual = sha256_hex(&result.checkpoint);
    if result.checkpoint.is_empty() || actual != result.checkpoint_sha256 {
        return Err(TaskFailure::retryable(
            "corrupt_checkpoint",
            format!("checkpoint digest {actual} does not match the declared {}", result.checkpoint_sha256),
        ));
    }
    Ok(())
}

/// The name a distilled set's safetensors encoding is kept under (`task_files`).
const DISTILLED_SAFETENSORS: &str = "distilled.safetensors";

/// Both files of a distill task's result arrived (an upload is kept only once its digest checked).
fn verify_distilled(tx: &Tx<'_>, record: &DistillResult) -> Result<(), TaskFailure> {
    for (what, digest) in [("distilled set", &record.set_sha256), ("safetensors encoding", &record.safetensors_sha256)]
    {
        if !tx.has_blob(digest) {
            return Err(TaskFailure::retryable(
                "distilled_set_missing",
                format!("the {what} {digest:?} was not uploaded before the completion"),
            ));
        }
    }
    Ok(())
}

fn verify_shard(shard: &AttackShard) -> Result<(), TaskFailure> {
    let in_range = |v: f64| (0.0..=100.0).contains(&v);
    if shard.samples == 0
        || shard.outcomes.len() != shard.samples as usize
        || !in_range(shard.clean_accuracy)
        || !in_range(shard.robust_accuracy)
    {
        return Err(TaskFailure::retryable(
            "malformed_shard",
            format!(
                "shard has {} samples, {} outcomes, accuracies {} / {}",
                shard.samples,
                shard.outcomes.len(),
                shard.clean_accuracy,
                shard.robust_accuracy
            ),
        ));
    }
    Ok(())
}

/// A sweep name reduced to `[a-z0-9-]` for ids.
fn slug(name: &str) -> String {
    let slug: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let slug = slug.trim_matches('-');
    if slug.is_empty() { "sweep".to_owned() } else { slug.chars().take(40).collect() }
}

type Job = Box<dyn FnOnce(&mut Scheduler) + Send>;

/// The handle async code uses to talk to the scheduler thread.
#[derive(Clone)]
pub struct SchedulerHandle {
    jobs: mpsc::Sender<Job>,
}

/// The scheduler thread has stopped (the server is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the scheduler has stopped")]
pub struct SchedulerStopped;

impl From<SchedulerStopped> for tonic::Status {
    fn from(error: SchedulerStopped) -> Self {
        tonic::Status::unavailable(error.to_string())
    }
}

impl SchedulerHandle {
    /// Move the scheduler onto its own thread; it runs until every handle is dropped.
    pub fn spawn(mut scheduler: Scheduler) -> std::io::Result<Self> {
        let (jobs, mut rx) = mpsc::channel::<Job>(1024);
        std::thread::Builder::new().name("scheduler".into()).spawn(move || {
            while let Some(job) = rx.blocking_recv() {
                job(&mut scheduler);
            }
        })?;
        Ok(Self { jobs })
    }

    /// Run `f` on the scheduler thread and wait for its answer.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Scheduler) -> T + Send + 'static,
    ) -> Result<T, SchedulerStopped> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |scheduler| {
            let _ = reply.send(f(scheduler));
        });
        self.jobs.send(job).await.map_err(|_| SchedulerStopped)?;
        answer.await.map_err(|_| SchedulerStopped)
    }
}

#[cfg(test)]
mod tests;
