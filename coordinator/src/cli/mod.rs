//! The `coordinator` command line: `serve`, `submit`, `status`, `watch`, `agents`, `cancel`,
//! `report`, `import-beard-logs`.
//!
//! Commands other than `serve` and `import-beard-logs` are thin gRPC clients of a running
//! coordinator; `submit --dry-run` validates and expands a sweep file locally without a server.

mod import;
mod output;
mod progress;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use beard_proto::MAX_MESSAGE_BYTES;
use beard_proto::auth::{AttachToken, Token};
use beard_proto::describe::{describe_attack, describe_distill, describe_train};
use beard_proto::process::LogFormat;
use beard_proto::tls::{ClientTlsArgs, ServerTlsArgs};
use beard_proto::v1::control_service_client::ControlServiceClient;
use beard_proto::v1::{
    AgentInfo, AgentsRequest, CancelRequest, StatusRequest, SubmitRequest, SubmittedFile, SweepStatus,
};
use clap::{Parser, Subcommand};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::scheduler::SchedulerConfig;
use crate::sweep::{self, PoolModels};

const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:50051";

#[derive(Parser)]
#[command(name = "coordinator", version, about = "Run BEARD robustness sweeps across GPU agents", long_about = None)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "BEARD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the coordinator: keep sweep state in DIR and lease tasks to agents.
    Serve(ServeArgs),
    /// Validate a sweep file, expand it into tasks and submit it.
    Submit(SubmitArgs),
    /// Show the progress of one sweep, or of all sweeps.
    Status {
        /// Sweep id (as printed by `submit`); all sweeps when omitted.
        sweep: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Follow a sweep until it finishes, with a progress bar and ETA.
    Watch {
        sweep: String,
        #[command(flatten)]
        target: Target,
    },
    /// List the agents: device, last heartbeat, current task.
    Agents {
        #[command(flatten)]
        target: Target,
    },
    /// Stop leasing the tasks of a sweep; running tasks are revoked at their next heartbeat.
    Cancel {
        sweep: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print or write the BEARD report (leaderboards, RR / AE / CREI tables, charts) of a sweep.
    Report(report::ReportArgs),
    /// Put BEARD's reference evaluation logs on the same leaderboards and tables (no server).
    ImportBeardLogs(import::ImportArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on; loopback unless you say otherwise.
    #[arg(long, default_value = "127.0.0.1:50051", env = "BEARD_LISTEN")]
    listen: SocketAddr,
    /// Directory for the durable state (SQLite database and checkpoint blobs).
    #[arg(long, default_value = "beard-state", env = "BEARD_STATE_DIR")]
    state: PathBuf,
    /// Seconds an agent keeps a lease without a heartbeat.
    #[arg(long, default_value_t = 30.0)]
    lease_ttl_secs: f64,
    /// Seconds between agent heartbeats.
    #[arg(long, default_value_t = 10.0)]
    heartbeat_secs: f64,
    /// Attempts before a failing task is quarantined.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// Base delay before a failed task is retried (doubles per attempt).
    #[arg(long, default_value_t = 2.0)]
    retry_backoff_secs: f64,
    /// Write the bound address to this file once listening with its state open (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// File holding the bearer token clients must present (else `BEARD_TOKEN`; else a random
    /// token is generated into STATE/token).
    #[arg(long, env = "BEARD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    tls: ServerTlsArgs,
    /// Serve Prometheus metrics at http://ADDRESS/metrics, and the gRPC health service, on this
    /// plaintext address (no token; counts and health only).
    #[arg(long, value_name = "ADDRESS", env = "BEARD_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

#[derive(clap::Args)]
struct SubmitArgs {
    /// The sweep file (YAML).
    file: PathBuf,
    /// Only validate and expand: print task counts and the first tasks, contact no server.
    #[arg(long)]
    dry_run: bool,
    /// Wait for the sweep to finish, showing progress.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
struct Target {
    /// Coordinator to talk to.
    #[arg(long, default_value = DEFAULT_COORDINATOR, env = "BEARD_COORDINATOR")]
    coordinator: String,
    /// File holding the coordinator's bearer token (else `BEARD_TOKEN`).
    #[arg(long, env = "BEARD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    tls: ClientTlsArgs,
}

/// Parse the command line and run the command.
pub async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    beard_proto::process::init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Submit(args) => submit(args).await,
        Command::Status { sweep, target } => {
            let mut client = connect(&target).await?;
            let response = client.status(StatusRequest { sweep_id: sweep.unwrap_or_default() }).await?.into_inner();
            if response.sweeps.is_empty() {
                println!("no sweeps");
            }
            for sweep in &response.sweeps {
                print_status(sweep);
            }
            Ok(())
        }
        Command::Watch { sweep, target } => {
            let mut client = connect(&target).await?;
            let status = progress::wait_for(&mut client, &sweep).await?;
            print_status(&status);
            Ok(())
        }
        Command::Agents { target } => {
            let mut client = connect(&target).await?;
            let agents = client.agents(AgentsRequest {}).await?.into_inner().agents;
            print_agents(&agents);
            Ok(())
        }
        Command::Cancel { sweep, target } => {
            let mut client = connect(&target).await?;
            let response = client.cancel(CancelRequest { sweep_id: sweep.clone() }).await?.into_inner();
            println!("cancelled {sweep}: {} unfinished tasks will not be leased", response.cancelled_tasks);
            Ok(())
        }
        Command::Report(args) => report::run(args).await,
        Command::ImportBeardLogs(args) => import::run(&args),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = SchedulerConfig {
        lease_ttl: Duration::from_secs_f64(args.lease_ttl_secs),
        heartbeat_interval: Duration::from_secs_f64(args.heartbeat_secs),
        max_attempts: args.max_attempts.max(1),
        retry_backoff: Duration::from_secs_f64(args.retry_backoff_secs),
    };
    let tls = args.tls.config()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let metrics = match args.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for metrics on {address}"))?,
        ),
        None => None,
    };
    std::fs::create_dir_all(&args.state).with_context(|| format!("cannot create {}", args.state.display()))?;
    let token = match Token::from_file_or_env(args.token_file.as_deref())? {
        Some(token) => token,
        None => {
            let path = args.state.join("token");
            let token = match Token::from_file_or_env(Some(&path)) {
                Ok(Some(existing)) => existing,
                _ => {
                    let token = Token::generate();
                    token.write_private(&path)?;
                    token
                }
            };
            tracing::info!(path = %path.display(), "clients authenticate with the token in this file");
            token
        }
    };
    // The store is open (its tables exist) before the address is written: a written address means ready.
    let store = crate::store::Store::open(&args.state)
        .with_context(|| format!("cannot open the state in {}", args.state.display()))?;
    let bound = listener.local_addr()?;
    if let Some(path) = &args.addr_file {
        std::fs::write(path, bound.to_string()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    tracing::info!(address = %bound, tls = tls.is_some(), state = %args.state.display(), "coordinator listening");
    if let Some(metrics) = &metrics {
        tracing::info!(address = %metrics.local_addr()?, "metrics at /metrics and gRPC health on this address");
    }
    let listeners = crate::service::Listeners { grpc: listener, tls, metrics };
    crate::service::run(listeners, store, config, token, beard_proto::process::shutdown_signal()).await?;
    tracing::info!("coordinator stopped");
    Ok(())
}

async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let yaml = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let file_name = args.file.display().to_string();
    let sweep = sweep::parse(&yaml, &file_name)?;
    let pool = read_checkpoints(&sweep, &yaml, &file_name, &args.file)?;
    if args.dry_run {
        return dry_run(&sweep, &pool);
    }
    let checkpoints = uploads(&pool)?;
    let mut client = connect(&args.target).await?;
    let response = match client.submit(SubmitRequest { yaml, file_name, checkpoints }).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::InvalidArgument => bail!("{}", status.message()),
        Err(status) => return Err(status.into()),
    };
    let distills = distill_count(response.distill_tasks as usize);
    let pooled = pool_count(response.pool_models as usize);
    let transfers = transfer_count(response.transfer_tasks as usize);
    println!(
        "submitted {} ({}): {distills}{} train tasks, {pooled}{} attack tasks{transfers}, {} already done",
        response.sweep_id, response.name, response.train_tasks, response.attack_tasks, response.reused_tasks
    );
    if args.wait {
        let status = progress::wait_for(&mut client, &response.sweep_id).await?;
        print_status(&status);
        if status.failed > 0 {
            bail!("{} of {} tasks failed", status.failed, status.total);
        }
    }
    Ok(())
}

/// The sweep's model-pool checkpoints, read from disk (relative paths from the sweep file's
/// directory) and checked as the coordinator will check them.
fn read_checkpoints(sweep: &sweep::Sweep, yaml: &str, file_name: &str, file: &Path) -> anyhow::Result<PoolModels> {
    let directory = file.parent().unwrap_or(Path::new("."));
    let pool = sweep.read_checkpoints(yaml, file_name, |path| {
        let resolved = directory.join(path);
        std::fs::read(&resolved).map_err(|error| format!("cannot read {}: {error}", resolved.display()))
    })?;
    Ok(pool)
}

/// Each checkpoint file once, checked against the size one submit carries.
fn uploads(pool: &PoolModels) -> anyhow::Result<Vec<SubmittedFile>> {
    let mut files: Vec<SubmittedFile> = Vec::new();
    for model in pool.iter() {
        if !files.iter().any(|file| file.path == model.path) {
            files.push(SubmittedFile { path: model.path.clone(), content: model.bytes.clone() });
        }
    }
    let total: usize = files.iter().map(|file| file.content.len()).sum();
    // Room for the sweep file and the message framing.
    if total > MAX_MESSAGE_BYTES - 1024 * 1024 {
        bail!(
            "the sweep's {} checkpoints total {} MiB, more than one submit carries ({} MiB); split the sweep",
            files.len(),
            total >> 20,
            MAX_MESSAGE_BYTES >> 20
        );
    }
    Ok(files)
}

/// `N things` (`one` for 1, else `many`); `None` for 0, so a sweep without any says nothing.
fn counted(count: usize, one: &str, many: &str) -> Option<String> {
    match count {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    }
}

/// `N distill tasks, ` for the task counts.
fn distill_count(tasks: usize) -> String {
    counted(tasks, "distill task", "distill tasks").map(|text| format!("{text}, ")).unwrap_or_default()
}

/// `N model-pool entries, ` for the task counts.
fn pool_count(entries: usize) -> String {
    counted(entries, "model-pool entry", "model-pool entries").map(|text| format!("{text}, ")).unwrap_or_default()
}

/// `, N transfer tasks` for the task counts.
fn transfer_count(tasks: usize) -> String {
    counted(tasks, "transfer task", "transfer tasks").map(|text| format!(", {text}")).unwrap_or_default()
}

fn dry_run(sweep: &sweep::Sweep, pool: &PoolModels) -> anyhow::Result<()> {
    let expansion = sweep.expand(pool);
    println!(
        "sweep {}: {}{} train tasks, {}{} attack tasks{}",
        sweep.name,
        distill_count(expansion.distills.len()),
        expansion.trains.len(),
        pool_count(expansion.pooled.len()),
        expansion.attacks.len(),
        transfer_count(expansion.transfers.len())
    );
    const SHOWN: usize = 5;
    if !expansion.distills.is_empty() {
        println!("first distill tasks:");
        for distill in expansion.distills.iter().take(SHOWN) {
            println!("  {}", describe_distill(distill));
        }
    }
    println!("first train tasks:");
    for train in expansion.trains.iter().take(SHOWN) {
        println!("  {}", describe_train(train));
    }
    if !expansion.pooled.is_empty() {
        println!("first model-pool entries:");
        for pooled in expansion.pooled.iter().take(SHOWN) {
            let model = pooled.model.unwrap_or_default();
            println!("  {} (width {}, depth {})", describe_train(pooled), model.width, model.depth);
        }
    }
    println!("first attack tasks:");
    for attack in expansion.attacks.iter().take(SHOWN) {
        println!("  {}", describe_attack(attack));
    }
    if !expansion.transfers.is_empty() {
        println!("first transfer tasks:");
        for transfer in expansion.transfers.iter().take(SHOWN) {
            println!("  {}", describe_attack(transfer));
        }
    }
    Ok(())
}

/// The control client with the caller's token attached to every call.
pub type Control = ControlServiceClient<InterceptedService<Channel, AttachToken>>;

async fn connect(target: &Target) -> anyhow::Result<Control> {
    let url = &target.coordinator;
    let token = Token::from_file_or_env(target.token_file.as_deref())?;
    let channel = beard_proto::tls::endpoint(url, &target.tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {url} (is `coordinator serve` running?)"))?;
    Ok(ControlServiceClient::with_interceptor(channel, AttachToken::new(token.as_ref()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

fn print_status(sweep: &SweepStatus) {
    println!(
        "{} ({}): {} — {}/{} done, {} running, {} pending, {} failed; {} agents alive",
        sweep.sweep_id,
        sweep.name,
        sweep.state,
        sweep.done,
        sweep.total,
        sweep.leased,
        sweep.pending,
        sweep.failed,
        sweep.agents_alive
    );
    for task in &sweep.running {
        let progress = if task.progress.is_empty() { String::new() } else { format!(" — {}", task.progress) };
        println!("  running: {} on {}{progress}", task.description, task.agent);
    }
    for error in &sweep.errors {
        let reason = error.failure.as_ref().map_or_else(|| "unknown error".to_owned(), ToString::to_string);
        println!("  failed: {} — {reason}", error.description);
    }
}

fn print_agents(agents: &[AgentInfo]) {
    if agents.is_empty() {
        println!("no agents have registered");
    }
    let now = crate::scheduler::now_ms();
    for agent in agents {
        let seen = (now - agent.last_seen_unix_ms).max(0) as f64 / 1000.0;
        let state = if agent.alive { "alive" } else { "lost" };
        let work = if agent.current_tasks.is_empty() { "idle".to_owned() } else { agent.current_tasks.join(", ") };
        println!("{}  {}  {state}, last heartbeat {seen:.1} s ago  {work}", agent.name, agent.device);
    }
}
