//! The operations port with real processes: `coordinator serve --metrics-listen` answers the
//! gRPC health check and `GET /metrics`, and after a sweep with a lease that expires and a task
//! that fails permanently, the metrics equal what happened: tasks by state, completions by kind,
//! attacked images, lease expiries, retries, quarantines and agents alive.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use beard_proto::auth::AttachToken;
use beard_proto::failure::codes;
use beard_proto::v1::agent_service_client::AgentServiceClient;
use beard_proto::v1::{AttackShard, CompleteRequest, LeaseRequest, LeasedTask, RegisterRequest, TaskFailure};
use common::*;
use prost::Message;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Two train tasks and their two attack tasks.
const SWEEP: &str = "name: telemetry\ndatasets:\n  synthetic: {}\nmethods:\n  random: random\nipc: [1, 2]\n\
                     attacks:\n  fgsm: {}\ntargeted: [false]\nseeds: 1\n\
                     training: { optimizer: adam, lr: 0.001, epochs: 1, batch_size: 64, weight_decay: 0, lr_schedule: constant, aug: none }\n\
                     model: { width: 16 }\nevaluation: { test_samples: 48, batch_size: 48 }\n";

/// A loopback address nobody listens on right now.
fn free_address() -> anyhow::Result<String> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string())
}

fn scrape(address: &str) -> anyhow::Result<String> {
    let mut response = ureq::get(&format!("http://{address}/metrics")).call()?;
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    anyhow::ensure!(content_type.starts_with("application/openmetrics-text"), "content type {content_type:?}");
    Ok(response.body_mut().read_to_string()?)
}

/// The value of one series, e.g. `beard_tasks_completed_total{kind="attack"}`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn counter(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// A hand-driven agent on the real protocol: it leases and then misbehaves.
struct Ghost {
    client: AgentServiceClient<tonic::service::interceptor::InterceptedService<Channel, AttachToken>>,
    register: RegisterRequest,
}

impl Ghost {
    async fn new(coordinator: &Coordinator) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(coordinator.url.clone())?.connect().await?;
        let mut client = AgentServiceClient::with_interceptor(channel, AttachToken::new(Some(&coordinator.token()?)));
        let register = RegisterRequest {
            protocol_version: beard_proto::PROTOCOL_VERSION,
            agent_name: "ghost".into(),
            generation: "ghost-1".into(),
            device: "none".into(),
            replaces_generation: String::new(),
        };
        client.register(register.clone()).await?;
        Ok(Self { client, register })
    }

    async fn lease(&mut self) -> anyhow::Result<LeasedTask> {
        let request = LeaseRequest {
            agent_name: self.register.agent_name.clone(),
            generation: self.register.generation.clone(),
            cached_checkpoints: vec![],
        };
        self.client.lease(request).await?.into_inner().task.ok_or_else(|| anyhow::anyhow!("nothing to lease"))
    }

    async fn fail_permanently(&mut self, task: &LeasedTask) -> anyhow::Result<()> {
        let failure = TaskFailure::permanent(codes::UNSUPPORTED_ATTACK, "the ghost refuses");
        let request = CompleteRequest {
            task_id: task.task_id.clone(),
            lease_token: task.lease_token.clone(),
            agent_name: self.register.agent_name.clone(),
            outcome: Some(beard_proto::v1::complete_request::Outcome::Failure(failure)),
        };
        anyhow::ensure!(self.client.complete(request).await?.into_inner().accepted, "failure not accepted");
        Ok(())
    }
}

/// Images in the accepted attack shards of a sweep, read from the coordinator's database.
fn stored_images(conn: &rusqlite::Connection, sweep: &str) -> anyhow::Result<u64> {
    let mut stmt = conn.prepare(
        "SELECT r.shard FROM sweep_tasks st JOIN results r ON r.task_id = st.task_id
         JOIN tasks t ON t.id = st.task_id WHERE st.sweep_id = ?1 AND t.kind = 'attack'",
    )?;
    let shards = stmt.query_map([sweep], |row| row.get::<_, Vec<u8>>(0))?;
    let mut images = 0;
    for shard in shards {
        images += u64::from(AttackShard::decode(shard?.as_slice())?.samples);
    }
    Ok(images)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_the_scheduler_did() -> anyhow::Result<()> {
    let started = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let dir = tempfile::tempdir()?;
    let metrics = free_address()?;
    let lease_ttl = 2.0;
    let coordinator = start_coordinator_with(dir.path(), lease_ttl, &["--metrics-listen".to_owned(), metrics.clone()])?;

    // Health over h2c on the operations port, no token needed.
    let mut health = HealthClient::new(Channel::from_shared(format!("http://{metrics}"))?.connect().await?);
    let answer = health.check(HealthCheckRequest { service: String::new() }).await?.into_inner();
    assert_eq!(answer.status, ServingStatus::Serving as i32);

    let idle = scrape(&metrics)?;
    assert_eq!(counter(&idle, "beard_agents_alive"), 0.0);
    assert_eq!(counter(&idle, r#"beard_tasks_completed_total{kind="attack"}"#), 0.0);
    let start = counter(&idle, "process_start_time_seconds");
    assert!(start >= started - 1.0 && start <= started + 60.0, "start time {start} vs test start {started}");

    let mut control = control(&coordinator).await?;
    let sweep = submit(&mut control, SWEEP).await?;
    // The ghost takes both train tasks: it fails one for good (its attack task fails with it)
    // and goes silent on the other, whose lease expires and is retried by the real agent.
    let mut ghost = Ghost::new(&coordinator).await?;
    let silent = ghost.lease().await?;
    let failing = ghost.lease().await?;
    assert_ne!(silent.task_id, failing.task_id);
    ghost.fail_permanently(&failing).await?;
    let _agent = start_agent(dir.path(), &coordinator, "worker")?;
    let status = wait_finished(&mut control, &sweep, Duration::from_secs(300)).await?;
    assert_eq!((status.total, status.done, status.failed), (4, 2, 2), "{status:?}");

    // The ghost's last call is longer than the TTL ago once its lease expired; wait for the
    // agent's heartbeat to be fresh so "alive" is not read at a boundary.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(&metrics)?;
        if value(&text, "beard_agents_alive") == Some(1.0) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let conn = open_state(&coordinator.state)?;
    let images = stored_images(&conn, &sweep)?;
    assert_eq!(images, 48, "one attack task on 48 test images");
    let expected = [
        (format!(r#"beard_tasks{{sweep="{sweep}",state="done"}}"#), f64::from(status.done)),
        (format!(r#"beard_tasks{{sweep="{sweep}",state="failed"}}"#), f64::from(status.failed)),
        (format!(r#"beard_tasks{{sweep="{sweep}",state="pending"}}"#), 0.0),
        (format!(r#"beard_tasks{{sweep="{sweep}",state="leased"}}"#), 0.0),
        (r#"beard_tasks_completed_total{kind="train"}"#.to_owned(), 1.0),
        (r#"beard_tasks_completed_total{kind="attack"}"#.to_owned(), 1.0),
        ("beard_attacked_images_total".to_owned(), images as f64),
        ("beard_lease_expiries_total".to_owned(), 1.0),
        ("beard_task_retries_total".to_owned(), 1.0),
        (r#"beard_tasks_quarantined_total{cause="permanent"}"#.to_owned(), 1.0),
        (r#"beard_tasks_quarantined_total{cause="dependency_failed"}"#.to_owned(), 1.0),
        (r#"beard_tasks_quarantined_total{cause="retries_exhausted"}"#.to_owned(), 0.0),
        ("beard_agents_alive".to_owned(), 1.0),
        ("beard_agents_known".to_owned(), 2.0),
    ];
    for (series, want) in &expected {
        assert_eq!(counter(&text, series), *want, "{series} in\n{text}");
    }
    Ok(())
}
