//! The times one result shard contributes under a [`TimeBasis`]: its attack time and its clean
//! time.
//!
//! - `wall`: the shard's `attack_seconds` and `clean_seconds` as measured.
//! - `per-sample`: the attack time is the mean, over the samples the attack succeeded on, of
//!   `success_step * attack_seconds / (max_steps * samples)` (0 when none succeeded); the clean
//!   time is `clean_seconds / samples`.
//! - `normalized`: the attack time is `attack_seconds / clean_seconds` of the same shard; the
//!   clean time is 1.
//!
//! A zero denominator (a shard with no samples, no steps or no measured clean time) gives 0.

use beard_proto::v1::AttackShard;

use crate::metrics::TimeBasis;
use crate::metrics::stats::mean;

/// One shard's times in the units of a time basis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ShardTimes {
    pub attack: f64,
    pub clean: f64,
}

pub(crate) fn shard_times(shard: &AttackShard, basis: TimeBasis) -> ShardTimes {
    let samples = f64::from(shard.samples);
    match basis {
        TimeBasis::Wall => ShardTimes { attack: shard.attack_seconds, clean: shard.clean_seconds },
        TimeBasis::PerSample => {
            ShardTimes { attack: time_to_success(shard), clean: ratio_or_zero(shard.clean_seconds, samples) }
        }
        TimeBasis::Normalized => {
            ShardTimes { attack: ratio_or_zero(shard.attack_seconds, shard.clean_seconds), clean: 1.0 }
        }
    }
}

/// Mean time to first success over the successful samples (the paper's AST).
fn time_to_success(shard: &AttackShard) -> f64 {
    let step_seconds = ratio_or_zero(shard.attack_seconds, f64::from(shard.max_steps) * f64::from(shard.samples));
    let times: Vec<f64> = shard
        .outcomes
        .iter()
        .filter(|outcome| outcome.success)
        .map(|outcome| f64::from(outcome.success_step) * step_seconds)
        .collect();
    mean(&times)
}

fn ratio_or_zero(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 { 0.0 } else { numerator / denominator }
}

#[cfg(test)]
mod tests {
    use beard_proto::v1::SampleOutcome;

    use super::*;

    fn outcome(success: bool, success_step: u32) -> SampleOutcome {
        SampleOutcome { success, success_step, ..Default::default() }
    }

    fn shard() -> AttackShard {
        AttackShard {
            samples: 4,
            attack_seconds: 8.0,
            clean_seconds: 2.0,
            max_steps: 10,
            outcomes: vec![outcome(true, 5), outcome(false, 0), outcome(true, 10), outcome(false, 0)],
            ..Default::default()
        }
    }

    #[test]
    fn wall_takes_measured_seconds() {
        assert_eq!(shard_times(&shard(), TimeBasis::Wall), ShardTimes { attack: 8.0, clean: 2.0 });
    }

    #[test]
    fn per_sample_is_mean_time_to_first_success() {
        // One step of one sample costs 8 s / (10 steps * 4 samples) = 0.2 s. Successes at steps 5
        // and 10 take 1.0 s and 2.0 s: mean 1.5 s. Clean: 2 s / 4 samples = 0.5 s.
        assert_eq!(shard_times(&shard(), TimeBasis::PerSample), ShardTimes { attack: 1.5, clean: 0.5 });
    }

    #[test]
    fn normalized_divides_by_the_same_shards_clean_time() {
        assert_eq!(shard_times(&shard(), TimeBasis::Normalized), ShardTimes { attack: 4.0, clean: 1.0 });
    }

    #[test]
    fn empty_shards_give_zero_times_not_nan() {
        let empty = AttackShard::default();
        for basis in [TimeBasis::Wall, TimeBasis::PerSample] {
            assert_eq!(shard_times(&empty, basis), ShardTimes { attack: 0.0, clean: 0.0 });
        }
        assert_eq!(shard_times(&empty, TimeBasis::Normalized), ShardTimes { attack: 0.0, clean: 1.0 });
        let failed = AttackShard { outcomes: vec![outcome(false, 0)], ..shard() };
        assert_eq!(shard_times(&failed, TimeBasis::PerSample).attack, 0.0);
    }
}
