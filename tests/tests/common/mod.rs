//! Test harness: real `coordinator` and `agent` processes on loopback, a gRPC client, and
//! read-only access to the coordinator's SQLite state.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use beard_proto::v1::control_service_client::ControlServiceClient;
use beard_proto::v1::{StatusRequest, SubmitRequest, SweepStatus};
use tonic::transport::Channel;

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

/// Start `coordinator serve` on an ephemeral loopback port with short leases.
pub fn start_coordinator(dir: &Path, lease_ttl_secs: f64) -> anyhow::Result<Coordinator> {
    let state = dir.join("state");
    let address_file = dir.join("address");
    let log = std::fs::File::create(dir.join("coordinator.log"))?;
    let child = Command::new(binary("coordinator"))
        .args(["serve", "--listen", "127.0.0.1:0", "--retry-backoff-secs", "0.2"])
        .arg("--lease-ttl-secs")
        .arg(lease_ttl_secs.to_string())
        .arg("--heartbeat-secs")
        .arg((lease_ttl_secs / 3.0).to_string())
        .arg("--state")
        .arg(&state)
        .arg("--addr-file")
        .arg(&address_file)
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
pub fn start_agent(dir: &Path, url: &str, name: &str) -> anyhow::Result<Process> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = Command::new(binary("agent"))
        .args(["run", "--device", "cpu", "--coordinator", url, "--name", name, "--drain-timeout-secs", "5"])
        .arg("--work-dir")
        .arg(dir.join(name))
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start agent {name}"))?;
    Ok(Process { child, name: name.into() })
}

pub async fn control(url: &str) -> anyhow::Result<ControlServiceClient<Channel>> {
    Ok(ControlServiceClient::connect(url.to_owned()).await?.max_decoding_message_size(beard_proto::MAX_MESSAGE_BYTES))
}

pub async fn submit(client: &mut ControlServiceClient<Channel>, yaml: &str) -> anyhow::Result<String> {
    let response =
        client.submit(SubmitRequest { yaml: yaml.to_owned(), file_name: "test.yaml".into() }).await?.into_inner();
    Ok(response.sweep_id)
}

pub async fn status(client: &mut ControlServiceClient<Channel>, sweep: &str) -> anyhow::Result<SweepStatus> {
    client
        .status(StatusRequest { sweep_id: sweep.to_owned() })
        .await?
        .into_inner()
        .sweeps
        .pop()
        .context("no such sweep")
}

/// Poll until the sweep has no pending or running task.
pub async fn wait_finished(
    client: &mut ControlServiceClient<Channel>,
    sweep: &str,
    timeout: Duration,
) -> anyhow::Result<SweepStatus> {
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
training: {{ optimizer: adam, lr: 0.001, epochs: {epochs}, batch_size: 64 }}
model: {{ width: 16 }}
evaluation: {{ test_samples: 64, batch_size: 64 }}
"#
    )
}
