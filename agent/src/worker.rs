//! The agent's worker: registration, the lease loop, heartbeats, checkpoint cache, drain.
//!
//! - The process claims its work dir ([`WorkDirLock`]: one process per work dir) and registers
//!   once with a fresh generation id, naming the generation that ran in the work dir before, so
//!   the coordinator recognizes a restart and requeues the old process's leases at once. A name
//!   that another live process holds is refused: the agent waits once for the holder to go
//!   silent for a lease TTL (a process that just died), then exits with the coordinator's message.
//!   An agent told that its generation was replaced stops rather than take the name back.
//! - Heartbeats run on their own task and never wait for the ML work, which runs on a blocking
//!   thread; a heartbeat answer that revokes the current lease sets the task's cancel flag.
//! - Outputs of finished tasks (train tasks' checkpoints, distill tasks' sets) are cached in
//!   `work_dir/checkpoints/<task id>`; attack tasks fetch missing checkpoints from the
//!   coordinator, train tasks the set their distill task learned, both in chunks whose size and
//!   SHA-256 are checked; the agent tells the coordinator which ones it holds so attack tasks go
//!   where their model is. A learned set's files are uploaded in chunks under the live lease
//!   before the completion that names them.
//! - A distill task hands the worker a snapshot of its state whenever `snapshot_every` has
//!   passed; the heartbeat task uploads the latest one's state in chunks and names it in a
//!   snapshot under the live lease, and the next attempt of the task (on any agent) fetches it
//!   and resumes from it.
//! - On shutdown (SIGTERM / Ctrl-C) the agent stops leasing, gives the running task the drain
//!   timeout to finish, then cancels it and hands it back as a retryable failure.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use beard_proto::auth::{AttachToken, Token};
use beard_proto::blob::{Assembler, BlobError};
use beard_proto::keys::is_valid_key;
use beard_proto::tls::ClientTlsArgs;
use beard_proto::v1::agent_service_client::AgentServiceClient;
use beard_proto::v1::{
    AttackShard, AttackSpec, BlobChunk, BlobHeader, CompleteRequest, DistillSpec, DistilledFile, DistilledSource,
    FetchOutputRequest, HeartbeatRequest, LeaseRef, LeaseRequest, LeasedTask, NameInUse, RegisterRequest,
    SaveSnapshotRequest, Snapshot, TaskFailure, TrainResult, TrainSpec, complete_request, distilled_source, task_spec,
};
use beard_proto::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION};
use prost::Message;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::backend::{AttackCheckpoints, Backend, DistilledOutput, TaskContext};
use crate::work_dir::WorkDirLock;

/// How the worker reaches its coordinator and where it keeps files.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub coordinator: String,
    /// Bearer token presented on every call (`None` only for coordinators without auth).
    pub token: Option<Token>,
    /// TLS towards an `https://` coordinator.
    pub tls: ClientTlsArgs,
    pub name: String,
    pub work_dir: PathBuf,
    pub drain_timeout: Duration,
    /// How often a long task (a distillation) hands over a snapshot to resume from.
    pub snapshot_every: Duration,
}

type Client = AgentServiceClient<InterceptedService<Channel, AttachToken>>;

/// The lease currently being worked on, shared with the heartbeat task.
#[derive(Default)]
struct Current {
    lease: Option<(String, Arc<AtomicBool>)>,
    task_id: String,
    progress: String,
    /// The latest snapshot the task handed over and the heartbeat task has not sent yet.
    snapshot: Option<Snapshot>,
}

/// Identity of this agent process.
#[derive(Clone)]
struct Identity {
    name: String,
    generation: String,
    device: String,
    /// The generation of the process that ran in this work dir before, if any.
    replaces: String,
}

impl Identity {
    /// This process's lease `lease_token` on `task_id`, as calls on behalf of the task name it.
    fn lease(&self, task_id: &str, lease_token: &str) -> LeaseRef {
        LeaseRef {
            agent_name: self.name.clone(),
            generation: self.generation.clone(),
            task_id: task_id.to_owned(),
            lease_token: lease_token.to_owned(),
        }
    }
}

/// Set (with the coordinator's words) once this process's generation was replaced.
type Replaced = watch::Receiver<Option<String>>;

/// Run the agent until `shutdown` resolves (then drain) or a fatal error occurs.
pub async fn run<B: Backend>(
    config: WorkerConfig,
    backend: B,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut work_dir = WorkDirLock::acquire(&config.work_dir)?;
    let checkpoints = config.work_dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoints).with_context(|| format!("cannot create {}", checkpoints.display()))?;
    let identity = Identity {
        name: config.name.clone(),
        generation: uuid::Uuid::new_v4().to_string(),
        device: backend.device_description(),
        replaces: work_dir.previous_generation().unwrap_or_default().to_owned(),
    };

    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    // HTTP/2 keepalive pings notice a connection the network dropped silently (a host cut off and
    // back with another address): without them a heartbeat or completion would wait on it until
    // the kernel gives up, about 15 minutes.
    let endpoint = beard_proto::tls::endpoint(&config.coordinator, &config.tls)?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let Some(mut client) = connect(&endpoint, config.token.as_ref(), &mut stop_rx).await else {
        return Ok(());
    };
    let Some(heartbeat_every) = register_claiming_the_name(&mut client, &identity, &mut stop_rx).await? else {
        return Ok(());
    };
    work_dir.record(&identity.name, &identity.generation)?;
    tracing::info!(agent = %identity.name, generation = %identity.generation, device = %identity.device, "registered");

    let current = Arc::new(Mutex::new(Current::default()));
    let (replaced_tx, replaced) = watch::channel(None);
    let heartbeats =
        tokio::spawn(heartbeat_loop(client.clone(), identity.clone(), current.clone(), heartbeat_every, replaced_tx));
    let backend = Arc::new(Mutex::new(backend));

    while !*stop_rx.borrow() {
        stop_if_replaced(&replaced)?;
        let request = LeaseRequest {
            agent_name: identity.name.clone(),
            generation: identity.generation.clone(),
            cached_checkpoints: cached_checkpoints(&checkpoints),
        };
        let response = match client.lease(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Aborted => anyhow::bail!("{}; stopping", status.message()),
            Err(status) => {
                tracing::warn!(error = %status.message(), code = ?status.code(), "lease failed");
                if status.code() == tonic::Code::NotFound {
                    register(&mut client, &identity).await.ok();
                }
                sleep_or_stop(Duration::from_secs(2), &mut stop_rx).await;
                continue;
            }
        };
        let Some(task) = response.task else {
            sleep_or_stop(Duration::from_millis(response.retry_after_ms.clamp(100, 10_000)), &mut stop_rx).await;
            continue;
        };
        let cancel = Arc::new(AtomicBool::new(false));
        *lock(&current) = Current {
            lease: Some((task.lease_token.clone(), cancel.clone())),
            task_id: task.task_id.clone(),
            ..Current::default()
        };
        let output =
            run_task(&task, &mut client, &identity, &checkpoints, &backend, &current, cancel, &mut stop_rx, &config)
                .await;
        // Still under the lease (heartbeats renew it): cache and upload what the task produced.
        let outcome = settle(&mut client, &identity, &task, &checkpoints, output).await;
        *lock(&current) = Current::default();
        stop_if_replaced(&replaced)?;
        complete(&mut client, &identity, &task, outcome).await;
    }
    heartbeats.abort();
    tracing::info!(agent = %identity.name, "stopped");
    Ok(())
}

fn lock(current: &Mutex<Current>) -> std::sync::MutexGuard<'_, Current> {
    current.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connect, retrying with backoff until the coordinator answers or shutdown is requested.
async fn connect(endpoint: &Endpoint, token: Option<&Token>, stop: &mut watch::Receiver<bool>) -> Option<Client> {
    let mut delay = Duration::from_millis(200);
    loop {
        match endpoint.connect().await {
            Ok(channel) => {
                return Some(
                    AgentServiceClient::with_interceptor(channel, AttachToken::new(token))
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES),
                );
            }
            Err(error) => {
                let error = beard_proto::process::error_chain(&error);
                tracing::warn!(coordinator = %endpoint.uri(), %error, "coordinator unreachable; retrying");
            }
        }
        if sleep_or_stop(delay, stop).await {
            return None;
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Sleep for `duration`; true when shutdown was requested meanwhile.
async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    matches!(tokio::time::timeout(duration, stop.wait_for(|stopped| *stopped)).await, Ok(Ok(_)))
}

/// Register, waiting once for a holder of the name that may have just died: `None` when shutdown
/// was requested meanwhile, an error when the name stays held or registration is refused.
async fn register_claiming_the_name(
    client: &mut Client,
    identity: &Identity,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<Duration>> {
    let mut waited = false;
    loop {
        let status = match register(client, identity).await {
            Ok(every) => return Ok(Some(every)),
            Err(status) => status,
        };
        let holder = (status.code() == tonic::Code::AlreadyExists).then(|| NameInUse::decode(status.details()));
        let Some(Ok(holder)) = holder.filter(|_| !waited) else {
            anyhow::bail!("registration refused: {}", status.message());
        };
        let frees_in = Duration::from_millis(holder.lease_ttl_ms.saturating_sub(holder.silent_ms) + 500);
        tracing::warn!(
            agent = %identity.name,
            holder = %holder.holder_generation,
            wait = ?frees_in,
            "the name is held by another process; waiting once in case it has just stopped"
        );
        if sleep_or_stop(frees_in, stop).await {
            return Ok(None);
        }
        waited = true;
    }
}

/// One registration call; the heartbeat interval the coordinator asks for.
async fn register(client: &mut Client, identity: &Identity) -> Result<Duration, tonic::Status> {
    let response = client
        .register(RegisterRequest {
            protocol_version: PROTOCOL_VERSION,
            agent_name: identity.name.clone(),
            generation: identity.generation.clone(),
            device: identity.device.clone(),
            replaces_generation: identity.replaces.clone(),
        })
        .await?
        .into_inner();
    Ok(Duration::from_millis(response.heartbeat_interval_ms.max(100)))
}

/// The error that ends the agent once its generation was replaced.
fn stop_if_replaced(replaced: &Replaced) -> anyhow::Result<()> {
    match replaced.borrow().as_deref() {
        Some(message) => anyhow::bail!("{message}; stopping"),
        None => Ok(()),
    }
}

async fn heartbeat_loop(
    mut client: Client,
    identity: Identity,
    current: Arc<Mutex<Current>>,
    every: Duration,
    replaced: watch::Sender<Option<String>>,
) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let (tokens, progress) = {
            let guard = lock(&current);
            (guard.lease.iter().map(|(token, _)| token.clone()).collect::<Vec<_>>(), guard.progress.clone())
        };
        let request = HeartbeatRequest {
            agent_name: identity.name.clone(),
            generation: identity.generation.clone(),
            lease_tokens: tokens,
            progress,
        };
        match client.heartbeat(request).await {
            Ok(response) => {
                let revoked = response.into_inner().revoked_lease_tokens;
                let guard = lock(&current);
                if let Some((token, cancel)) = &guard.lease
                    && revoked.contains(token)
                {
                    tracing::warn!("lease revoked by the coordinator; cancelling the task");
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            Err(status) if status.code() == tonic::Code::Aborted => {
                tracing::error!(error = %status.message(), "this agent was replaced; cancelling its task");
                if let Some((_, cancel)) = &lock(&current).lease {
                    cancel.store(true, Ordering::Relaxed);
                }
                replaced.send_replace(Some(status.message().to_owned()));
                return;
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                tracing::warn!(error = %status.message(), "coordinator forgot this agent; registering again");
                register(&mut client, &identity).await.ok();
            }
            Err(status) => tracing::warn!(error = %status.message(), "heartbeat failed"),
        }
        send_snapshot(&mut client, &identity, &current).await;
    }
}

/// Send the running task's latest snapshot, if it handed one over since the last call; one that
/// fails to go out is kept unless a newer one replaced it meanwhile.
async fn send_snapshot(client: &mut Client, identity: &Identity, current: &Mutex<Current>) {
    let (lease, snapshot) = {
        let mut guard = lock(current);
        let Some((lease_token, _)) = &guard.lease else { return };
        let lease = identity.lease(&guard.task_id, lease_token);
        let Some(snapshot) = guard.snapshot.take() else { return };
        (lease, snapshot)
    };
    let (task, iteration) = (lease.task_id.clone(), snapshot.iteration);
    // The state travels as a blob; the snapshot names it.
    let named = Snapshot { iteration, state_sha256: snapshot.state_sha256.clone(), state: Vec::new() };
    let request = SaveSnapshotRequest { lease: Some(lease.clone()), snapshot: Some(named) };
    let saved = match upload(client, &lease, &snapshot.state).await {
        Ok(()) => client.save_snapshot(request).await,
        Err(status) => Err(status),
    };
    match saved {
        Ok(response) if response.get_ref().accepted => tracing::info!(%task, iteration, "snapshot saved"),
        Ok(_) => tracing::warn!(%task, iteration, "snapshot refused: the lease is gone"),
        Err(status) => {
            tracing::warn!(%task, iteration, error = %status.message(), "snapshot not delivered");
            let mut guard = lock(current);
            let same_lease = guard.lease.as_ref().is_some_and(|(token, _)| *token == lease.lease_token);
            if guard.snapshot.is_none() && same_lease {
                guard.snapshot = Some(snapshot);
            }
        }
    }
}

/// The snapshot a leased task resumes from, its state fetched in chunks and checked; `None`
/// (the task starts over) when it has none or the state cannot be fetched.
async fn resumed_snapshot(client: &mut Client, identity: &Identity, task: &LeasedTask) -> Option<Snapshot> {
    let snapshot = task.snapshot.as_ref()?;
    let lease = identity.lease(&task.task_id, &task.lease_token);
    let fetched = match client.fetch_snapshot(lease).await {
        Ok(chunks) => receive(chunks.into_inner()).await,
        Err(status) => Err(Received::Unavailable(status)),
    };
    let error = match fetched {
        Ok((header, state)) if header.sha256 == snapshot.state_sha256 => {
            return Some(Snapshot { state, ..snapshot.clone() });
        }
        Ok((header, _)) => format!("got state {}, not {}", header.sha256, snapshot.state_sha256),
        Err(Received::Unavailable(status)) => status.message().to_owned(),
        Err(Received::Corrupt(error)) => error.to_string(),
    };
    tracing::warn!(task = %task.task_id, %error, "snapshot state unavailable: starting over");
    None
}

/// Upload `bytes` in chunks under `lease`.
async fn upload(client: &mut Client, lease: &LeaseRef, bytes: &[u8]) -> Result<(), tonic::Status> {
    let header = BlobHeader { lease: Some(lease.clone()), ..Default::default() };
    client.put_blob(tokio_stream::iter(beard_proto::blob::chunks(bytes, header))).await.map(|_| ())
}

/// Why a file streamed from the coordinator did not arrive.
enum Received {
    Unavailable(tonic::Status),
    /// The chunks are not the file their header announced.
    Corrupt(BlobError),
}

/// A file streamed in chunks, put back together and checked against its header.
async fn receive(mut chunks: tonic::Streaming<BlobChunk>) -> Result<(BlobHeader, Vec<u8>), Received> {
    let mut assembler = Assembler::new(Vec::new());
    while let Some(chunk) = chunks.message().await.map_err(Received::Unavailable)? {
        assembler.push(chunk).map_err(Received::Corrupt)?;
    }
    assembler.finish().map_err(Received::Corrupt)
}

/// What a task produced, ready to be sent.
type Outcome = complete_request::Outcome;

#[allow(clippy::too_many_arguments)]
async fn run_task<B: Backend>(
    task: &LeasedTask,
    client: &mut Client,
    identity: &Identity,
    checkpoints: &Path,
    backend: &Arc<Mutex<B>>,
    current: &Arc<Mutex<Current>>,
    cancel: Arc<AtomicBool>,
    stop: &mut watch::Receiver<bool>,
    config: &WorkerConfig,
) -> Result<Output, TaskFailure> {
    let spec = task.spec.as_ref().and_then(|s| s.kind.clone());
    let resumes_from = task.snapshot.as_ref().map(|snapshot| snapshot.iteration);
    tracing::info!(task = %task.task_id, attempt = task.attempt, resumes_from, "task started");
    let job = match spec {
        Some(task_spec::Kind::Distill(distill)) => {
            Job::Distill(distill, resumed_snapshot(client, identity, task).await)
        }
        Some(task_spec::Kind::Train(train)) => Job::Train(fetched_distill_output(client, checkpoints, train).await?),
        Some(task_spec::Kind::Attack(attack)) => {
            let inputs = attack_checkpoints(client, checkpoints, &attack).await?;
            Job::Attack(attack, inputs)
        }
        None => return Err(TaskFailure::permanent("empty_task", "the leased task has no spec")),
    };
    let progress_sink = current.clone();
    let snapshot_sink = current.clone();
    let ctx = TaskContext::new(move |message| lock(&progress_sink).progress = message, cancel.clone())
        .with_snapshots(config.snapshot_every, move |snapshot| lock(&snapshot_sink).snapshot = Some(snapshot));
    let drain_timeout = config.drain_timeout;
    let backend = backend.clone();
    let mut handle = tokio::task::spawn_blocking(move || {
        let mut backend = backend.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        job.run(&mut *backend, &ctx)
    });
    let joined = tokio::select! {
        joined = &mut handle => joined,
        _ = stop.wait_for(|stopped| *stopped) => {
            tracing::info!(timeout = ?drain_timeout, "draining: waiting for the running task");
            match tokio::time::timeout(drain_timeout, &mut handle).await {
                Ok(joined) => joined,
                Err(_) => {
                    tracing::warn!("drain timeout reached; cancelling the task and handing it back");
                    cancel.store(true, Ordering::Relaxed);
                    handle.await
                }
            }
        }
    };
    match joined {
        Ok(output) => output,
        Err(error) => Err(TaskFailure::retryable("agent_panic", format!("the task panicked: {error}"))),
    }
}

/// The outcome to send for what a task produced: a checkpoint or a learned set is cached
/// locally first, and a learned set's files are uploaded.
async fn settle(
    client: &mut Client,
    identity: &Identity,
    task: &LeasedTask,
    checkpoints: &Path,
    output: Result<Output, TaskFailure>,
) -> Outcome {
    let cache = |bytes: &[u8], what: &str| {
        if let Err(error) = write_atomically(&checkpoints.join(&task.task_id), bytes) {
            tracing::warn!(%error, "cannot cache the {what} locally");
        }
    };
    match output {
        Ok(Output::Train(result)) => {
            cache(&result.checkpoint, "checkpoint");
            Outcome::Train(result)
        }
        Ok(Output::Distill(output)) => {
            cache(&output.set, "distilled set");
            match upload_distilled(client, identity, task, &output).await {
                Ok(()) => Outcome::Distill(output.record),
                Err(failure) => Outcome::Failure(failure),
            }
        }
        Ok(Output::Attack(shard)) => Outcome::Attack(shard),
        Err(failure) => Outcome::Failure(failure),
    }
}

/// Upload a learned set's two files under the task's lease, before its completion names them.
async fn upload_distilled(
    client: &mut Client,
    identity: &Identity,
    task: &LeasedTask,
    output: &DistilledOutput,
) -> Result<(), TaskFailure> {
    let lease = identity.lease(&task.task_id, &task.lease_token);
    for file in [&output.set, &output.safetensors] {
        upload(client, &lease, file).await.map_err(|status| {
            TaskFailure::retryable("upload_failed", format!("the distilled set did not upload: {}", status.message()))
        })?;
    }
    Ok(())
}

/// The ML half of a task, moved onto the blocking thread.
enum Job {
    /// With the snapshot an earlier attempt left.
    Distill(DistillSpec, Option<Snapshot>),
    Train(TrainSpec),
    Attack(AttackSpec, AttackCheckpoints),
}

/// What the ML half produced, before it is cached, uploaded and sent.
enum Output {
    Distill(DistilledOutput),
    Train(TrainResult),
    Attack(AttackShard),
}

impl Job {
    fn run<B: Backend>(self, backend: &mut B, ctx: &TaskContext) -> Result<Output, TaskFailure> {
        match self {
            Job::Distill(spec, resume) => backend.distill(&spec, resume.as_ref(), ctx).map(Output::Distill),
            Job::Train(spec) => backend.train(&spec, ctx).map(Output::Train),
            Job::Attack(spec, checkpoints) => backend.attack(&spec, &checkpoints, ctx).map(Output::Attack),
        }
    }
}

/// The checkpoints an attack task reads: its model's, then each transfer target's.
async fn attack_checkpoints(
    client: &mut Client,
    dir: &Path,
    spec: &AttackSpec,
) -> Result<AttackCheckpoints, TaskFailure> {
    let source = ensure_checkpoint(client, dir, &spec.train_task_id).await?;
    let mut targets = Vec::with_capacity(spec.transfer_targets.len());
    for target in &spec.transfer_targets {
        targets.push(ensure_checkpoint(client, dir, &target.train_task_id).await?);
    }
    Ok(AttackCheckpoints { source, targets })
}

/// `spec`, its set read from the local cache when a distill task learned it: fetched (and
/// verified) first, then handed to the backend as the DC-bench file it is.
async fn fetched_distill_output(
    client: &mut Client,
    dir: &Path,
    mut spec: TrainSpec,
) -> Result<TrainSpec, TaskFailure> {
    let Some(distilled_source::Source::Distilled(output)) = spec.source.as_ref().and_then(|s| s.source.as_ref()) else {
        return Ok(spec);
    };
    let set = ensure_checkpoint(client, dir, &output.distill_task_id).await?;
    let path = dir.join(&output.distill_task_id);
    if !path.exists() {
        write_atomically(&path, &set).map_err(|error| {
            TaskFailure::retryable("cache_unwritable", format!("cannot cache the distilled set: {error}"))
        })?;
    }
    let file = DistilledFile {
        path: path.display().to_string(),
        stored: "normalized".to_owned(),
        mosaic: output.mosaic,
        ..Default::default()
    };
    spec.source = Some(DistilledSource { source: Some(distilled_source::Source::File(file)) });
    Ok(spec)
}

/// The output of a finished task (a checkpoint, or a distilled set): from the local cache, else
/// fetched in chunks and verified.
async fn ensure_checkpoint(client: &mut Client, dir: &Path, task_id: &str) -> Result<Vec<u8>, TaskFailure> {
    if !is_valid_key(task_id) {
        return Err(TaskFailure::permanent("malformed_task", format!("bad task id {task_id:?}")));
    }
    let path = dir.join(task_id);
    if let Ok(bytes) = std::fs::read(&path) {
        return Ok(bytes);
    }
    let unavailable = |status: tonic::Status| TaskFailure::retryable("output_unavailable", status.message().to_owned());
    let request = FetchOutputRequest { task_id: task_id.to_owned() };
    let chunks = client.fetch_output(request).await.map_err(unavailable)?.into_inner();
    let (_, bytes) = receive(chunks).await.map_err(|received| match received {
        Received::Unavailable(status) => unavailable(status),
        Received::Corrupt(error) => corrupt(task_id, &error),
    })?;
    if let Err(error) = write_atomically(&path, &bytes) {
        tracing::warn!(%error, "cannot cache the fetched output");
    }
    Ok(bytes)
}

/// A fetched output that is not the file the coordinator announced.
fn corrupt(task_id: &str, error: &BlobError) -> TaskFailure {
    TaskFailure::retryable("output_corrupt", format!("the output of task {task_id} arrived broken: {error}"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Train task ids whose checkpoints are in the cache directory.
fn cached_checkpoints(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.filter_map(|entry| entry.ok()?.file_name().into_string().ok()).filter(|name| is_valid_key(name)).collect()
}

/// Send a task's outcome, retrying while the coordinator is unreachable (completion is
/// idempotent on the lease token, so a repeated delivery is harmless).
async fn complete(client: &mut Client, identity: &Identity, task: &LeasedTask, outcome: Outcome) {
    let request = CompleteRequest {
        task_id: task.task_id.clone(),
        lease_token: task.lease_token.clone(),
        agent_name: identity.name.clone(),
        outcome: Some(outcome),
    };
    let mut delay = Duration::from_millis(200);
    for _ in 0..8 {
        match client.complete(request.clone()).await {
            Ok(response) => {
                let response = response.into_inner();
                if response.accepted {
                    tracing::info!(task = %task.task_id, "completion accepted");
                } else {
                    tracing::warn!(task = %task.task_id, reason = %response.reason, "completion rejected");
                }
                return;
            }
            Err(status) => {
                tracing::warn!(task = %task.task_id, error = %status.message(), "completion not delivered; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    tracing::error!(task = %task.task_id, "giving up on delivering the completion; the lease will expire");
}
