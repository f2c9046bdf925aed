//! The coordinator's gRPC server: the agent service, the control service, health, and
//! [`run`], which serves them (over TLS when configured) on a bound listener, and the
//! operations port of [`crate::telemetry`] when one is given, until a shutdown future resolves.
//! Shutdown is graceful for at most [`SHUTDOWN_GRACE`]: agents keep their connections open (with
//! keepalive pings), so waiting for every connection to close could outlast a supervisor's stop
//! timeout and cost leases; every decision is already in the SQLite state, and an agent whose
//! completion did not get through sends it again.
//!
//! Handlers only translate requests into scheduler calls; every decision is the scheduler's.

use std::future::Future;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use beard_proto::MAX_MESSAGE_BYTES;
use beard_proto::auth::{RequireToken, Token};
use beard_proto::blob::CHUNK_BYTES;
use beard_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use beard_proto::v1::control_service_server::{ControlService, ControlServiceServer};
use beard_proto::v1::{
    AgentsRequest, AgentsResponse, BlobChunk, BlobHeader, CancelRequest, CancelResponse, CompleteRequest,
    CompleteResponse, FetchOutputRequest, HeartbeatRequest, HeartbeatResponse, LeaseRef, LeaseRequest, LeaseResponse,
    PutBlobResponse, RegisterRequest, RegisterResponse, ReportFile, ReportRequest, ReportResponse, SaveSnapshotRequest,
    SaveSnapshotResponse, StatusRequest, StatusResponse, SubmitRequest, SubmitResponse,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::ServerTlsConfig;
use tonic::{Request, Response, Status, Streaming};

use crate::blobs::{Blobs, IncomingError};
use crate::import::{LogFile, import};
use crate::report;
use crate::scheduler::{Scheduler, SchedulerConfig, SchedulerHandle, SchedulerResult, now_ms};
use crate::store::Store;
use crate::telemetry::{self, Scrape};

/// How often expired leases are swept even when no agent asks for work.
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);
/// How long in-flight calls may finish after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start the scheduler thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The bound sockets the coordinator serves on.
pub struct Listeners {
    /// The agent and control services, and health.
    pub grpc: TcpListener,
    /// TLS on `grpc`; plaintext when `None`.
    pub tls: Option<ServerTlsConfig>,
    /// The operations port (`/metrics` and health, plaintext), when wanted.
    pub metrics: Option<TcpListener>,
}

/// Serve the coordinator on `listeners` from the opened `store` until `shutdown` resolves.
/// Every call to the agent and control services must carry `token`; health checks need none.
pub async fn run(
    listeners: Listeners,
    store: Store,
    config: SchedulerConfig,
    token: Token,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let blobs = store.blobs().clone();
    let scheduler = Scheduler::new(store, config);
    let counters = scheduler.counters().clone();
    let scheduler = SchedulerHandle::spawn(scheduler)?;

    let expiry = scheduler.clone();
    let expiry_task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(EXPIRY_SWEEP);
        loop {
            ticker.tick().await;
            match expiry.call(|s| s.expire(now_ms())).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(%error, "lease expiry failed"),
                Err(_) => break,
            }
        }
    });

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<AgentServiceServer<Agents>>().await;
    health_reporter.set_serving::<ControlServiceServer<Control>>().await;
    let metrics_task = listeners.metrics.map(|listener| {
        let scrape = Scrape::new(scheduler.clone(), counters);
        let health = Routes::new(health_service.clone());
        tokio::spawn(async move {
            if let Err(error) = telemetry::server::serve(listener, scrape, health).await {
                tracing::error!(%error, "metrics endpoint failed");
            }
        })
    });

    let agents = AgentServiceServer::new(Agents { scheduler: scheduler.clone(), blobs })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let control = ControlServiceServer::new(Control { scheduler })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let guard = RequireToken::new(token);
    let agents = InterceptedService::new(agents, guard.clone());
    let control = InterceptedService::new(control, guard);

    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = listeners.tls {
        server = server.tls_config(tls)?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let serving = server
        .add_service(health_service)
        .add_service(agents)
        .add_service(control)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listeners.grpc), stopped(stop_rx.clone()));
    let result = tokio::select! {
        result = serving => result,
        () = async {
            stopped(stop_rx).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::info!(grace = ?SHUTDOWN_GRACE, "connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    };
    expiry_task.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    Ok(result?)
}

/// Run a scheduler call and turn both failure layers into a gRPC status.
async fn call<T: Send + 'static>(
    scheduler: &SchedulerHandle,
    f: impl FnOnce(&mut Scheduler) -> SchedulerResult<T> + Send + 'static,
) -> Result<Response<T>, Status> {
    Ok(Response::new(scheduler.call(f).await??))
}

/// The service agents talk to.
pub struct Agents {
    scheduler: SchedulerHandle,
    /// Streamed files go to and from here directly, not through the scheduler thread.
    blobs: Blobs,
}

/// Chunks of a file on their way to an agent.
type ChunkStream = ReceiverStream<Result<BlobChunk, Status>>;

impl Agents {
    /// Stream the blob `digest` in chunks, from a blocking thread.
    fn stream_blob(&self, digest: String) -> Result<Response<ChunkStream>, Status> {
        let path = self.blobs.path(&digest).map_err(|e| Status::internal(e.to_string()))?;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || send_file(&path, digest, &sender));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

#[tonic::async_trait]
impl AgentService for Agents {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let request = request.into_inner();
        call(&self.scheduler, move |s| s.register(&request, now_ms())).await
    }

    async fn lease(&self, request: Request<LeaseRequest>) -> Result<Response<LeaseResponse>, Status> {
        let r = request.into_inner();
        call(&self.scheduler, move |s| s.lease(&r.agent_name, &r.generation, &r.cached_checkpoints, now_ms())).await
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let r = request.into_inner();
        if !r.progress.is_empty() {
            tracing::debug!(agent = %r.agent_name, progress = %r.progress, "heartbeat");
        }
        call(&self.scheduler, move |s| {
            let revoked_lease_tokens =
                s.heartbeat(&r.agent_name, &r.generation, &r.lease_tokens, &r.progress, now_ms())?;
            Ok(HeartbeatResponse { revoked_lease_tokens })
        })
        .await
    }

    async fn complete(&self, request: Request<CompleteRequest>) -> Result<Response<CompleteResponse>, Status> {
        let request = request.into_inner();
        call(&self.scheduler, move |s| s.complete(request, now_ms())).await
    }

    type FetchOutputStream = ChunkStream;

    async fn fetch_output(&self, request: Request<FetchOutputRequest>) -> Result<Response<ChunkStream>, Status> {
        let id = request.into_inner().task_id;
        let digest = call(&self.scheduler, move |s| s.output(&id)).await?.into_inner();
        self.stream_blob(digest)
    }

    type FetchSnapshotStream = ChunkStream;

    async fn fetch_snapshot(&self, request: Request<LeaseRef>) -> Result<Response<ChunkStream>, Status> {
        let lease = request.into_inner();
        let digest = call(&self.scheduler, move |s| s.snapshot_state(&lease, now_ms())).await?.into_inner();
        self.stream_blob(digest)
    }

    async fn put_blob(&self, request: Request<Streaming<BlobChunk>>) -> Result<Response<PutBlobResponse>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks.message().await?.ok_or_else(|| Status::invalid_argument("an upload without chunks"))?;
        let lease = first.header.as_ref().and_then(|header| header.lease.clone());
        let lease = lease.ok_or_else(|| Status::invalid_argument("the first chunk names no lease"))?;
        let checked = lease.clone();
        call(&self.scheduler, move |s| s.check_lease(&checked, now_ms())).await?;
        let mut incoming = self.blobs.incoming().map_err(|e| Status::internal(e.to_string()))?;
        // Chunks are written as they come (1 MiB each, into the page cache): brief enough to do
        // on the async worker.
        incoming.push(first).map_err(|e| Status::invalid_argument(e.to_string()))?;
        while let Some(chunk) = chunks.message().await? {
            incoming.push(chunk).map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let sha256 = incoming.keep().map_err(|e| match e {
            IncomingError::Stream(error) => Status::invalid_argument(error.to_string()),
            IncomingError::Store(error) => Status::internal(error.to_string()),
        })?;
        let recorded = sha256.clone();
        call(&self.scheduler, move |s| s.record_upload(&lease, &recorded)).await?;
        tracing::debug!(%sha256, "blob uploaded");
        Ok(Response::new(PutBlobResponse { sha256 }))
    }

    async fn save_snapshot(
        &self,
        request: Request<SaveSnapshotRequest>,
    ) -> Result<Response<SaveSnapshotResponse>, Status> {
        let request = request.into_inner();
        call(&self.scheduler, move |s| Ok(SaveSnapshotResponse { accepted: s.save_snapshot(&request, now_ms())? }))
            .await
    }
}

/// Stream the blob at `path` (digest `sha256`) to `sender`, the header on the first chunk; an
/// error ends the stream with a status. Runs on a blocking thread.
fn send_file(path: &Path, sha256: String, sender: &tokio::sync::mpsc::Sender<Result<BlobChunk, Status>>) {
    let sent = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        let mut header = Some(BlobHeader { sha256, size, ..Default::default() });
        loop {
            let mut data = Vec::with_capacity(CHUNK_BYTES);
            let read = (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut data)?;
            if read == 0 && header.is_none() {
                return Ok(());
            }
            if sender.blocking_send(Ok(BlobChunk { header: header.take(), data })).is_err() {
                return Ok(()); // the agent hung up
            }
            if read < CHUNK_BYTES {
                return Ok(());
            }
        }
    })();
    if let Err(error) = sent {
        let _ = sender.blocking_send(Err(Status::internal(format!("cannot read {}: {error}", path.display()))));
    }
}

/// The service the CLI talks to.
pub struct Control {
    scheduler: SchedulerHandle,
}

#[tonic::async_trait]
impl ControlService for Control {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<SubmitResponse>, Status> {
        let r = request.into_inner();
        call(&self.scheduler, move |s| s.submit(&r, now_ms())).await
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let id = request.into_inner().sweep_id;
        call(&self.scheduler, move |s| s.status((!id.is_empty()).then_some(id.as_str()), now_ms())).await
    }

    async fn cancel(&self, request: Request<CancelRequest>) -> Result<Response<CancelResponse>, Status> {
        let id = request.into_inner().sweep_id;
        call(&self.scheduler, move |s| s.cancel(&id)).await
    }

    async fn agents(&self, _request: Request<AgentsRequest>) -> Result<Response<AgentsResponse>, Status> {
        call(&self.scheduler, |s| s.agents(now_ms())).await
    }

    async fn report(&self, request: Request<ReportRequest>) -> Result<Response<ReportResponse>, Status> {
        let request = request.into_inner();
        let id = request.sweep_id.clone();
        let (input, provenance) = self.scheduler.call(move |s| s.report_input(&id)).await??;
        // Building the report is pure CPU work over all shards: keep it off the async workers.
        tokio::task::spawn_blocking(move || build_report(&request, &input, provenance))
            .await
            .map_err(|e| Status::internal(format!("report builder panicked: {e}")))?
            .map(Response::new)
    }
}

/// The report a request asks for: the sweep's results with any imported BEARD logs, rendered as
/// Markdown, JSON and CSV, and as the HTML site when asked.
fn build_report(
    request: &ReportRequest,
    input: &report::ReportInput,
    provenance: report::Provenance,
) -> Result<ReportResponse, Status> {
    let files: Vec<LogFile<'_>> =
        request.imports.iter().map(|log| LogFile { name: &log.name, text: &log.text }).collect();
    let (built, provenance) = if files.is_empty() {
        (report::build(input), provenance)
    } else {
        let imported = import(&files).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let logs = files.iter().map(|file| (file.name, file.text));
        (report::build_with_imports(input, &imported), provenance.with_beard_logs(logs))
    };
    let html_files = if request.html {
        report::site(&built, &provenance, request.png)
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .map(|file| ReportFile { path: file.path, content: file.bytes })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ReportResponse { markdown: built.to_markdown(), json: built.to_json(), csv: built.to_csv(), html_files })
}
