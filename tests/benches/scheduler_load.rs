//! Scheduler load benchmark: a real `coordinator serve` process and 64 simulated agents that
//! speak the real protocol over loopback and complete zero-work tasks at once (train tasks with
//! a tiny checkpoint, attack tasks with a one-sample shard). Prints tasks per second and the
//! coordinator's peak resident memory (VmHWM).
//!
//! Run with `cargo bench -p beard-tests --bench scheduler_load` after `make build`;
//! `LOAD_AGENTS` and `LOAD_SEEDS` change the size (default 64 agents, 20,000 tasks).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use beard_proto::auth::{AttachToken, Token};
use beard_proto::keys::sha256_hex;
use beard_proto::v1::agent_service_client::AgentServiceClient;
use beard_proto::v1::{
    AttackShard, CompleteRequest, LeaseRequest, RegisterRequest, SampleOutcome, TrainResult, complete_request,
    task_spec,
};
use tonic::transport::Channel;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// 1 dataset x 1 method x 40 IPCs x `seeds` train tasks, each with 4 attack tasks.
fn sweep(seeds: usize) -> String {
    let ipcs: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    format!(
        "name: load\ndatasets:\n  synthetic: {{}}\nmethods:\n  random: random\nipc: [{}]\n\
         attacks:\n  fgsm: {{}}\n  pgd: {{}}\ntargeted: [false, true]\nseeds: {seeds}\n",
        ipcs.join(", ")
    )
}

/// One simulated agent: lease, complete at once, until the queue stays empty.
async fn simulated_agent(url: String, token: Token, index: usize) -> anyhow::Result<u64> {
    let channel = Channel::from_shared(url)?.connect().await?;
    let mut client = AgentServiceClient::with_interceptor(channel, AttachToken::new(Some(&token)));
    let name = format!("sim-{index}");
    let generation = format!("sim-{index}-generation");
    client
        .register(RegisterRequest {
            protocol_version: beard_proto::PROTOCOL_VERSION,
            agent_name: name.clone(),
            generation: generation.clone(),
            device: "simulated".into(),
            replaces_generation: String::new(),
        })
        .await?;
    let checkpoint = b"zero-work checkpoint".to_vec();
    let digest = sha256_hex(&checkpoint);
    let mut completed = 0;
    let mut idle_polls = 0;
    loop {
        let lease =
            LeaseRequest { agent_name: name.clone(), generation: generation.clone(), cached_checkpoints: vec![] };
        let Some(task) = client.lease(lease).await?.into_inner().task else {
            idle_polls += 1;
            if idle_polls > 20 {
                return Ok(completed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        idle_polls = 0;
        let outcome = match task.spec.and_then(|s| s.kind) {
            Some(task_spec::Kind::Train(_)) => complete_request::Outcome::Train(TrainResult {
                checkpoint: checkpoint.clone(),
                checkpoint_sha256: digest.clone(),
                ..Default::default()
            }),
            _ => complete_request::Outcome::Attack(AttackShard {
                samples: 1,
                clean_accuracy: 100.0,
                robust_accuracy: 0.0,
                outcomes: vec![SampleOutcome {
                    clean_correct: true,
                    success: true,
                    success_step: 1,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        let request = CompleteRequest {
            task_id: task.task_id,
            lease_token: task.lease_token,
            agent_name: name.clone(),
            outcome: Some(outcome),
        };
        anyhow::ensure!(client.complete(request).await?.into_inner().accepted, "a completion was rejected");
        completed += 1;
    }
}

/// Peak resident set of a process in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let agents = env_or("LOAD_AGENTS", 64);
    let seeds = env_or("LOAD_SEEDS", 100);
    let dir = tempfile::tempdir()?;
    let coordinator = common::start_coordinator(dir.path(), 30.0)?;
    let mut control = common::control(&coordinator).await?;

    let submitted = Instant::now();
    let sweep_id = common::submit(&mut control, &sweep(seeds)).await?;
    let submit_seconds = submitted.elapsed().as_secs_f64();
    let total = common::status(&mut control, &sweep_id).await?.total;

    let started = Instant::now();
    let token = coordinator.token()?;
    let workers: Vec<_> =
        (0..agents).map(|index| tokio::spawn(simulated_agent(coordinator.url.clone(), token.clone(), index))).collect();
    let mut completed = 0;
    for worker in workers {
        completed += worker.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = common::status(&mut control, &sweep_id).await?;
    anyhow::ensure!(status.done == total && completed == u64::from(total), "not every task completed: {status:?}");
    let peak = peak_rss_kib(coordinator.process.pid()).unwrap_or(0);

    println!("scheduler load: {total} tasks, {agents} simulated agents over loopback gRPC");
    println!("  submit (validate, expand, store): {submit_seconds:.2} s");
    println!("  lease + complete: {seconds:.2} s = {:.0} tasks/s", f64::from(total) / seconds);
    println!("  coordinator peak memory (VmHWM): {:.1} MiB", peak as f64 / 1024.0);
    Ok(())
}
