//! BEARD's metrics — Robustness Ratio, Attack Efficiency, CREI — as pure functions.
//!
//! # Layout
//!
//! - options: how the metrics are computed ([`MetricOptions`]: CREI weight, RR variant, time
//!   basis), as a sweep file states them.
//! - [`stats`]: the summary statistics (mean, sample std, min, max) metrics and reports share.
//! - formulas: RR, AE, CREI and their single-adversary terms on plain numbers
//!   ([`robustness_ratio`], [`attack_efficiency`], [`crei`], [`single_robustness`],
//!   [`single_efficiency`]).
//! - observation: the inputs of one setting ([`SettingObservation`]), its [`Scores`]
//!   ([`evaluate`], [`single_adversary`]) and pooling across IPCs ([`pool_across_ipcs`]).
//!
//! Accuracies are in percent, scores are in percent; times are in whatever unit the time basis
//! gives, as long as clean and attack times share it.

mod formulas;
mod observation;
mod options;
pub mod stats;

pub use formulas::{attack_efficiency, crei, robustness_ratio, single_efficiency, single_robustness};
pub use observation::{
    AttackObservation, Scores, SettingObservation, SingleScores, evaluate, pool_across_ipcs, single_adversary,
};
pub use options::{MetricOptions, RrVariant, TimeBasis};
