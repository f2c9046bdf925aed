//! The scheduler's event counters: plain atomics the scheduler thread bumps after each committed
//! transition, read by the metrics exporter. No locks: the scheduler stays the single writer and
//! a scrape never waits on it for these.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a task ended in the failed (quarantined) state. A fixed set, never a code sent by an
/// agent, so the metric's label values stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailCause {
    /// A retryable failure (or lease expiry) kept happening until `max_attempts`.
    RetriesExhausted,
    /// The agent reported a permanent failure.
    Permanent,
    /// The train task it needs failed.
    DependencyFailed,
}

impl FailCause {
    pub const ALL: [FailCause; 3] = [FailCause::RetriesExhausted, FailCause::Permanent, FailCause::DependencyFailed];

    pub fn label(self) -> &'static str {
        match self {
            FailCause::RetriesExhausted => "retries_exhausted",
            FailCause::Permanent => "permanent",
            FailCause::DependencyFailed => "dependency_failed",
        }
    }
}

/// A state change the scheduler committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A lease ran out without heartbeats.
    LeaseExpired,
    /// A task went back to the queue to run again (after a failure, a lease expiry or an agent
    /// restart).
    Retried,
    /// A task was failed for good.
    Quarantined(FailCause),
    /// A distill task's set was accepted.
    DistillCompleted,
    /// A train task's checkpoint was accepted.
    TrainCompleted,
    /// An attack task's shard of `images` test images was accepted.
    AttackCompleted { images: u64 },
}

#[derive(Debug, Default)]
struct Cells {
    lease_expiries: AtomicU64,
    retries: AtomicU64,
    quarantined: [AtomicU64; FailCause::ALL.len()],
    distills_completed: AtomicU64,
    trains_completed: AtomicU64,
    attacks_completed: AtomicU64,
    attacked_images: AtomicU64,
}

/// Shared handle to the counters; clones count into the same cells.
#[derive(Debug, Clone, Default)]
pub struct Counters(Arc<Cells>);

/// The counters' values at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub lease_expiries: u64,
    pub retries: u64,
    /// Indexed like [`FailCause::ALL`].
    pub quarantined: [u64; FailCause::ALL.len()],
    pub distills_completed: u64,
    pub trains_completed: u64,
    pub attacks_completed: u64,
    pub attacked_images: u64,
}

impl Counters {
    /// Count committed transitions.
    pub fn record(&self, transitions: impl IntoIterator<Item = Transition>) {
        let cells = &self.0;
        for transition in transitions {
            let (cell, by) = match transition {
                Transition::LeaseExpired => (&cells.lease_expiries, 1),
                Transition::Retried => (&cells.retries, 1),
                Transition::Quarantined(cause) => (&cells.quarantined[cause as usize], 1),
                Transition::DistillCompleted => (&cells.distills_completed, 1),
                Transition::TrainCompleted => (&cells.trains_completed, 1),
                Transition::AttackCompleted { images } => {
                    cells.attacks_completed.fetch_add(1, Ordering::Relaxed);
                    (&cells.attacked_images, images)
                }
            };
            cell.fetch_add(by, Ordering::Relaxed);
        }
    }

    pub fn values(&self) -> CounterValues {
        let cells = &self.0;
        let get = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        CounterValues {
            lease_expiries: get(&cells.lease_expiries),
            retries: get(&cells.retries),
            quarantined: std::array::from_fn(|i| get(&cells.quarantined[i])),
            distills_completed: get(&cells.distills_completed),
            trains_completed: get(&cells.trains_completed),
            attacks_completed: get(&cells.attacks_completed),
            attacked_images: get(&cells.attacked_images),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_land_in_their_cells() {
        let counters = Counters::default();
        let clone = counters.clone();
        clone.record([
            Transition::LeaseExpired,
            Transition::Retried,
            Transition::Retried,
            Transition::Quarantined(FailCause::DependencyFailed),
            Transition::DistillCompleted,
            Transition::TrainCompleted,
            Transition::AttackCompleted { images: 64 },
            Transition::AttackCompleted { images: 36 },
        ]);
        let values = counters.values();
        assert_eq!(values.lease_expiries, 1);
        assert_eq!(values.retries, 2);
        assert_eq!(values.quarantined, [0, 0, 1]);
        assert_eq!((values.distills_completed, values.trains_completed), (1, 1));
        assert_eq!(values.attacks_completed, 2);
        assert_eq!(values.attacked_images, 100);
        assert!(FailCause::ALL.iter().enumerate().all(|(i, cause)| *cause as usize == i));
    }
}
