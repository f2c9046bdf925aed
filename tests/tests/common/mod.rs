//! Test harness: real `coordinator` and `agent` processes on loopback, a gRPC client, and
//! read-only access to the coordinator's SQLite state.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use beard_proto::auth::{AttachToken, Token};
use beard_proto::tls::ClientTlsArgs;
use beard_proto::v1::agent_service_client::AgentServiceClient;
use beard_proto::v1::control_service_client::ControlServiceClient;
use beard_proto::v1::{AttackShard, AttackSpec, StatusRequest, SubmitRequest, SweepStatus, TaskSpec, task_spec};
use prost::Message;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The shared data directory and the venv's Python, as the agent's tests find them.
#[path = "../../../agent/tests/common/files.rs"]
mod files;
#[allow(unused_imports)] // not every test binary reads the shared data or runs Python
pub use files::{python, shared_data};

/// The control client as the CLI builds it.
pub type Control = ControlServiceClient<InterceptedService<Channel, AttachToken>>;

/// Directory of the release binaries (`make build`), or `BEARD_BIN_DIR`.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("BEARD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("release"))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} is missing: run `make build` first", path.display());
    path
}

/// `coordinator ARGS --coordinator URL --token-file FILE`, as a user runs it against `coordinator`.
pub fn coordinator_cli(coordinator: &Coordinator, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut command = Command::new(binary("coordinator"));
    command.args(args).args(["--coordinator", &coordinator.url]).arg("--token-file").arg(coordinator.token_file());
    Ok(command.output()?)
}

/// A process's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A child process killed when dropped.
pub struct Process {
    pub child: Child,
    pub name: String,
}

impl Process {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM (a polite stop, as systemd and Kubernetes send it).
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.child.id());
        Ok(())
    }

    /// Wait up to `timeout` for the process to exit; its exit status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(None)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A coordinator process with its state directory.
pub struct Coordinator {
    pub process: Process,
    pub url: String,
    pub state: PathBuf,
}

impl Coordinator {
    /// The file holding the token the coordinator generated at start.
    pub fn token_file(&self) -> PathBuf {
        self.state.join("token")
    }

    pub fn token(&self) -> anyhow::Result<Token> {
        Token::from_file_or_env(Some(&self.token_file()))?.context("the coordinator wrote no token")
    }
}

/// Start `coordinator serve` on an ephemeral loopback port with short leases.
pub fn start_coordinator(dir: &Path, lease_ttl_secs: f64) -> anyhow::Result<Coordinator> {
    start_coordinator_on(dir, lease_ttl_secs, "127.0.0.1:0", &[])
}

/// Start `coordinator serve` like [`start_coordinator`] with extra `serve` arguments (TLS,
/// metrics). `url` stays `http://`; TLS tests build their `https://` address from it.
pub fn start_coordinator_with(dir: &Path, lease_ttl_secs: f64, extra: &[String]) -> anyhow::Result<Coordinator> {
    start_coordinator_on(dir, lease_ttl_secs, "127.0.0.1:0", extra)
}

/// Kill the coordinator (SIGKILL: no graceful shutdown) and start it again on the same address
/// with the same state directory.
pub fn restart_coordinator(coordinator: Coordinator, dir: &Path, lease_ttl_secs: f64) -> anyhow::Result<Coordinator> {
    let address = coordinator.url.trim_start_matches("http://").to_owned();
    drop(coordinator);
    std::fs::remove_file(dir.join("address"))?;
    start_coordinator_on(dir, lease_ttl_secs, &address, &[])
}

fn start_coordinator_on(
    dir: &Path,
    lease_ttl_secs: f64,
    listen: &str,
    extra: &[String],
) -> anyhow::Result<Coordinator> {
    let state = dir.join("state");
    let address_file = dir.join("address");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("coordinator.log"))?;
    let child = Command::new(binary("coordinator"))
        .args(["serve", "--listen", listen, "--retry-backoff-secs", "0.2"])
        .arg("--lease-ttl-secs")
        .arg(lease_ttl_secs.to_string())
        .arg("--heartbeat-secs")
        .arg((lease_ttl_secs / 3.0).to_string())
        .arg("--state")
        .arg(&state)
        .arg("--addr-file")
        .arg(&address_file)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the coordinator")?;
    let process = Process { child, name: "coordinator".into() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(address) = std::fs::read_to_string(&address_file)
            && !address.is_empty()
        {
            return Ok(Coordinator { process, url: format!("http://{address}"), state });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the coordinator did not write its address; see {}", dir.join("coordinator.log").display())
}

/// Start `agent run` on the CPU with one libtorch thread.
pub fn start_agent(dir: &Path, coordinator: &Coordinator, name: &str) -> anyhow::Result<Process> {
    start_agent_draining(dir, coordinator, name, 5.0)
}

/// Start an agent that gives a running task `drain_secs` to finish after SIGTERM.
pub fn start_agent_draining(
    dir: &Path,
    coordinator: &Coordinator,
    name: &str,
    drain_secs: f64,
) -> anyhow::Result<Process> {
    spawn_agent(dir, coordinator, &coordinator.url, name, drain_secs, &[])
}

/// Start an agent named `name` with its own work dir `work_dir` (several may share a name); it
/// logs to `dir/<log>.log`.
pub fn start_agent_in(
    dir: &Path,
    coordinator: &Coordinator,
    name: &str,
    work_dir: &Path,
    log: &str,
) -> anyhow::Result<Process> {
    spawn_agent_logging(dir, coordinator, &coordinator.url, name, work_dir, log, 5.0, &[])
}

/// Start an agent that reaches the coordinator at `url` with extra `agent run` arguments (TLS).
pub fn start_agent_with(
    dir: &Path,
    coordinator: &Coordinator,
    url: &str,
    name: &str,
    extra: &[String],
) -> anyhow::Result<Process> {
    spawn_agent(dir, coordinator, url, name, 5.0, extra)
}

fn spawn_agent(
    dir: &Path,
    coordinator: &Coordinator,
    url: &str,
    name: &str,
    drain_secs: f64,
    extra: &[String],
) -> anyhow::Result<Process> {
    spawn_agent_logging(dir, coordinator, url, name, &dir.join(name), name, drain_secs, extra)
}

#[allow(clippy::too_many_arguments)]
fn spawn_agent_logging(
    dir: &Path,
    coordinator: &Coordinator,
    url: &str,
    name: &str,
    work_dir: &Path,
    log: &str,
    drain_secs: f64,
    extra: &[String],
) -> anyhow::Result<Process> {
    let log = std::fs::File::create(dir.join(format!("{log}.log")))?;
    let child = Command::new(binary("agent"))
        .args(["run", "--device", "cpu", "--coordinator", url, "--name", name])
        .arg("--drain-timeout-secs")
        .arg(drain_secs.to_string())
        .arg("--token-file")
        .arg(coordinator.token_file())
        .args(extra)
        .arg("--work-dir")
        .arg(work_dir)
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start agent {name}"))?;
    Ok(Process { child, name: name.into() })
}

/// An agent-service client presenting `token` (or none), as an agent process builds it.
pub type Agent = AgentServiceClient<InterceptedService<Channel, AttachToken>>;

pub async fn agent_client(url: &str, token: Option<&Token>) -> anyhow::Result<Agent> {
    let channel = Channel::from_shared(url.to_owned())?.connect().await?;
    Ok(AgentServiceClient::with_interceptor(channel, AttachToken::new(token)))
}

/// A control client presenting `token` (or none).
pub async fn control_with(url: &str, token: Option<&Token>) -> anyhow::Result<Control> {
    control_tls(url, token, &ClientTlsArgs::default()).await
}

/// A control client presenting `token`, with TLS options as the CLI takes them.
pub async fn control_tls(url: &str, token: Option<&Token>, tls: &ClientTlsArgs) -> anyhow::Result<Control> {
    let channel = beard_proto::tls::endpoint(url, tls)?.connect().await?;
    Ok(ControlServiceClient::with_interceptor(channel, AttachToken::new(token))
        .max_decoding_message_size(beard_proto::MAX_MESSAGE_BYTES))
}

/// A control client presenting the coordinator's token.
pub async fn control(coordinator: &Coordinator) -> anyhow::Result<Control> {
    control_with(&coordinator.url, Some(&coordinator.token()?)).await
}

pub async fn submit(client: &mut Control, yaml: &str) -> anyhow::Result<String> {
    let response = client
        .submit(SubmitRequest { yaml: yaml.to_owned(), file_name: "test.yaml".into(), ..Default::default() })
        .await?
        .into_inner();
    Ok(response.sweep_id)
}

pub async fn status(client: &mut Control, sweep: &str) -> anyhow::Result<SweepStatus> {
    client
        .status(StatusRequest { sweep_id: sweep.to_owned() })
        .await?
        .into_inner()
        .sweeps
        .pop()
        .context("no such sweep")
}

/// Poll until the sweep has no pending or running task.
pub async fn wait_finished(client: &mut Control, sweep: &str, timeout: Duration) -> anyhow::Result<SweepStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = status(client, sweep).await?;
        if status.state != "running" {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!("sweep {sweep} did not finish in {timeout:?}: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A sweep run to completion by a coordinator and one agent in `dir`, both still running.
pub struct CompletedSweep {
    pub coordinator: Coordinator,
    pub agent: Process,
    pub client: Control,
    pub sweep: String,
}

/// Submit `yaml` to a fresh coordinator (lease TTL 10 s) with one agent and wait until the sweep
/// completes; fails unless it completed without failed tasks.
pub async fn complete_sweep(dir: &Path, yaml: &str) -> anyhow::Result<CompletedSweep> {
    let coordinator = start_coordinator(dir, 10.0)?;
    let agent = start_agent(dir, &coordinator, "agent-0")?;
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, yaml).await?;
    let status = wait_finished(&mut client, &sweep, Duration::from_secs(600)).await?;
    anyhow::ensure!(status.state == "completed" && status.failed == 0, "the sweep did not complete: {status:?}");
    Ok(CompletedSweep { coordinator, agent, client, sweep })
}

/// Read-only connection to the coordinator's database (WAL allows it while the server runs).
pub fn open_state(state: &Path) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        state.join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// (task count, result count, tasks whose result count is not exactly one) for a sweep.
pub fn result_accounting(conn: &rusqlite::Connection, sweep: &str) -> anyhow::Result<(u32, u32, u32)> {
    let tasks: u32 = conn.query_row("SELECT COUNT(*) FROM sweep_tasks WHERE sweep_id = ?1", [sweep], |r| r.get(0))?;
    let results: u32 = conn.query_row(
        "SELECT COUNT(*) FROM results WHERE task_id IN (SELECT task_id FROM sweep_tasks WHERE sweep_id = ?1)",
        [sweep],
        |r| r.get(0),
    )?;
    let wrong: u32 = conn.query_row(
        "SELECT COUNT(*) FROM sweep_tasks st WHERE st.sweep_id = ?1
           AND (SELECT COUNT(*) FROM results r WHERE r.task_id = st.task_id) != 1",
        [sweep],
        |r| r.get(0),
    )?;
    Ok((tasks, results, wrong))
}

/// The accepted results of a sweep's attack tasks as stored: each task's spec and its shard.
pub fn attack_results(conn: &rusqlite::Connection, sweep: &str) -> anyhow::Result<Vec<(AttackSpec, AttackShard)>> {
    let mut stmt = conn.prepare(
        "SELECT t.spec, r.shard FROM sweep_tasks st JOIN tasks t ON t.id = st.task_id
         JOIN results r ON r.task_id = t.id WHERE st.sweep_id = ?1 AND t.kind = 'attack'",
    )?;
    let rows = stmt.query_map([sweep], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut results = Vec::new();
    for row in rows {
        let (spec, shard) = row?;
        let Some(task_spec::Kind::Attack(attack)) = TaskSpec::decode(spec.as_slice())?.kind else {
            bail!("an attack task without an attack spec");
        };
        results.push((attack, AttackShard::decode(shard.as_slice())?));
    }
    Ok(results)
}

/// A small synthetic sweep: 2 methods × 2 IPCs × FGSM and PGD × both modes × 2 seeds.
pub fn small_sweep(name: &str, epochs: u32) -> String {
    format!(
        r#"name: {name}
datasets:
  synthetic: {{}}
methods:
  random: random
  random-b: random
ipc: [1, 5]
attacks:
  fgsm: {{}}
  pgd: {{ steps: 3 }}
targeted: [false, true]
seeds: 2
training: {{ optimizer: adam, lr: 0.001, epochs: {epochs}, batch_size: 64, weight_decay: 0, lr_schedule: constant, aug: none }}
model: {{ width: 16 }}
evaluation: {{ test_samples: 64, batch_size: 64 }}
"#
    )
}

/// The task `agent` currently leases, if any.
pub fn leased_by(conn: &rusqlite::Connection, agent: &str) -> anyhow::Result<Option<String>> {
    let mut stmt = conn.prepare("SELECT id FROM tasks WHERE state = 'leased' AND lease_agent = ?1 LIMIT 1")?;
    let mut rows = stmt.query([agent])?;
    Ok(match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    })
}

/// Wait until `agent` holds a lease; returns the leased task's id.
pub async fn wait_for_lease(conn: &rusqlite::Connection, agent: &str, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(task) = leased_by(conn, agent)? {
            return Ok(task);
        }
        anyhow::ensure!(Instant::now() < deadline, "{agent} never leased a task");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
