//! Operational telemetry of the coordinator (not to be confused with [`crate::metrics`], the
//! BEARD robustness metrics): counters of scheduler transitions, their Prometheus exposition and
//! the operations port that serves it with the gRPC health service.
//!
//! - [`counters`]: atomics the scheduler bumps after committing lease expiries, retries,
//!   quarantines and completions.
//! - [`exposition`]: one scrape as OpenMetrics text — counters, per-sweep task gauges, agents
//!   alive, process start time.
//! - [`server`]: `GET /metrics` and `grpc.health.v1.Health` on `--metrics-listen`.

pub mod counters;
pub mod exposition;
pub mod server;

use std::time::{SystemTime, UNIX_EPOCH};

pub use counters::{Counters, FailCause, Transition};

use crate::scheduler::{SchedulerError, SchedulerHandle, SchedulerStopped, now_ms};
use exposition::Snapshot;

/// Why a scrape could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Stopped(#[from] SchedulerStopped),
    #[error("cannot read the scheduler state: {0}")]
    State(#[from] SchedulerError),
}

/// Everything a scrape reads: the scheduler (for a status snapshot) and its counters.
#[derive(Clone)]
pub struct Scrape {
    scheduler: SchedulerHandle,
    counters: Counters,
    start_unix_secs: f64,
}

impl Scrape {
    /// A scrape source for a coordinator process starting now.
    pub fn new(scheduler: SchedulerHandle, counters: Counters) -> Self {
        let start_unix_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        Self { scheduler, counters, start_unix_secs }
    }

    /// The current exposition text.
    pub async fn render(&self) -> Result<String, ScrapeError> {
        let snapshot = self
            .scheduler
            .call(|s| {
                let now = now_ms();
                Ok::<_, SchedulerError>(Snapshot { sweeps: s.status(None, now)?.sweeps, agents: s.agents(now)?.agents })
            })
            .await??;
        Ok(exposition::render(&self.counters.values(), &snapshot, self.start_unix_secs))
    }
}
