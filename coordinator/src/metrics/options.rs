//! Options that choose how the BEARD metrics are computed, as a sweep file or the CLI states them.

use serde::Deserialize;

/// Which Robustness Ratio formula to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RrVariant {
    /// BEARD's RR: 100 * (1 - (c - mean a) / (c - min a)).
    #[default]
    Beard,
    /// The follow-up's I-RR: 100 * (1 - (c - mean a) * (c - min a) / c^2).
    IRr,
}

/// Which time enters Attack Efficiency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeBasis {
    /// Seconds for the whole evaluated test set (BEARD's choice).
    #[default]
    Wall,
    /// Mean time to first success over the successful samples (the paper's AST).
    PerSample,
    /// Each time divided by the clean-inference time measured in the same task.
    Normalized,
}

impl RrVariant {
    /// The name a sweep file and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Beard => "beard",
            Self::IRr => "i-rr",
        }
    }
}

impl TimeBasis {
    /// The name a sweep file and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wall => "wall",
            Self::PerSample => "per-sample",
            Self::Normalized => "normalized",
        }
    }
}

/// Metric options of a sweep (`metrics:` in sweep.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", default)]
pub struct MetricOptions {
    /// Weight of RR in CREI, in [0, 1].
    pub alpha: f64,
    pub rr_variant: RrVariant,
    pub time_basis: TimeBasis,
}

impl Default for MetricOptions {
    fn default() -> Self {
        Self { alpha: 0.5, rr_variant: RrVariant::default(), time_basis: TimeBasis::default() }
    }
}
