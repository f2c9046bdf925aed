//! The Prometheus exposition of one scrape: the scheduler's counters, task and agent gauges from
//! a fresh status snapshot, and the process start time, encoded as OpenMetrics text (which
//! Prometheus scrapes natively). A new registry is built per scrape, so nothing is shared with
//! the scheduler but its atomic counters.

use beard_proto::v1::{AgentInfo, SweepStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use super::counters::{CounterValues, FailCause};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the scheduler's state looks like at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub sweeps: Vec<SweepStatus>,
    pub agents: Vec<AgentInfo>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SweepState {
    sweep: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cause {
    cause: &'static str,
}

/// Encode one scrape. `start_unix_secs` is when this coordinator process started.
pub fn render(counters: &CounterValues, snapshot: &Snapshot, start_unix_secs: f64) -> String {
    let mut registry = Registry::default();

    let tasks = Family::<SweepState, Gauge>::default();
    for sweep in &snapshot.sweeps {
        for (state, count) in
            [("pending", sweep.pending), ("leased", sweep.leased), ("done", sweep.done), ("failed", sweep.failed)]
        {
            tasks.get_or_create(&SweepState { sweep: sweep.sweep_id.clone(), state }).set(i64::from(count));
        }
    }
    registry.register("beard_tasks", "Tasks of each sweep by state", tasks);
    let alive = snapshot.agents.iter().filter(|agent| agent.alive).count();
    registry.register(
        "beard_agents_alive",
        "Agents that heartbeat within the lease TTL",
        ConstGauge::new(alive as i64),
    );
    registry.register(
        "beard_agents_known",
        "Agents that ever registered",
        ConstGauge::new(snapshot.agents.len() as i64),
    );

    registry.register(
        "beard_lease_expiries",
        "Leases that ran out without heartbeats",
        ConstCounter::new(counters.lease_expiries),
    );
    registry.register(
        "beard_task_retries",
        "Tasks requeued to run again after a failure, a lease expiry or an agent restart",
        ConstCounter::new(counters.retries),
    );
    let quarantined = Family::<Cause, Counter>::default();
    for (cause, count) in FailCause::ALL.iter().zip(counters.quarantined) {
        quarantined.get_or_create(&Cause { cause: cause.label() }).inc_by(count);
    }
    registry.register("beard_tasks_quarantined", "Tasks failed for good, by cause", quarantined);
    let completed = Family::<Kind, Counter>::default();
    completed.get_or_create(&Kind { kind: "distill" }).inc_by(counters.distills_completed);
    completed.get_or_create(&Kind { kind: "train" }).inc_by(counters.trains_completed);
    completed.get_or_create(&Kind { kind: "attack" }).inc_by(counters.attacks_completed);
    registry.register("beard_tasks_completed", "Tasks whose result was accepted, by kind", completed);
    registry.register(
        "beard_attacked_images",
        "Test images attacked by accepted attack tasks (images/s: rate() of this)",
        ConstCounter::new(counters.attacked_images),
    );
    registry.register(
        "process_start_time_seconds",
        "Start time of the coordinator process since the Unix epoch in seconds",
        ConstGauge::new(start_unix_secs),
    );

    let mut text = String::new();
    encode(&mut text, &registry).expect("formatting into a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn every_family_is_exposed_with_its_values() {
        let counters = CounterValues {
            lease_expiries: 2,
            retries: 3,
            quarantined: [1, 0, 4],
            distills_completed: 2,
            trains_completed: 5,
            attacks_completed: 6,
            attacked_images: 384,
        };
        let sweep =
            SweepStatus { sweep_id: "demo-1".into(), pending: 7, leased: 1, done: 11, failed: 5, ..Default::default() };
        let agents = vec![
            AgentInfo { name: "a".into(), alive: true, ..Default::default() },
            AgentInfo { name: "b".into(), alive: false, ..Default::default() },
        ];
        let text = render(&counters, &Snapshot { sweeps: vec![sweep], agents }, 1_700_000_000.5);
        let expected = [
            (r#"beard_tasks{sweep="demo-1",state="pending"}"#, "7"),
            (r#"beard_tasks{sweep="demo-1",state="leased"}"#, "1"),
            (r#"beard_tasks{sweep="demo-1",state="done"}"#, "11"),
            (r#"beard_tasks{sweep="demo-1",state="failed"}"#, "5"),
            ("beard_agents_alive", "1"),
            ("beard_agents_known", "2"),
            ("beard_lease_expiries_total", "2"),
            ("beard_task_retries_total", "3"),
            (r#"beard_tasks_quarantined_total{cause="retries_exhausted"}"#, "1"),
            (r#"beard_tasks_quarantined_total{cause="permanent"}"#, "0"),
            (r#"beard_tasks_quarantined_total{cause="dependency_failed"}"#, "4"),
            (r#"beard_tasks_completed_total{kind="distill"}"#, "2"),
            (r#"beard_tasks_completed_total{kind="train"}"#, "5"),
            (r#"beard_tasks_completed_total{kind="attack"}"#, "6"),
            ("beard_attacked_images_total", "384"),
            ("process_start_time_seconds", "1700000000.5"),
        ];
        for (series, value) in expected {
            assert_eq!(line(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(text.contains("# TYPE beard_attacked_images counter"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
