//! BEARD's own evaluation logs on this project's boards: `coordinator import-beard-logs`.
//!
//! BEARD's reference code logs one line per attack of one evaluated model, `Clean` included:
//!
//! ```text
//! ... - INFO - PGD attack on BACON: final acc is:  target_attack: 30.61 +- 0.00, attack time is 8.52; non_target_attack: 20.78 +- 0.00, attack time is 8.79, dataset: CIFAR10, IPC: 1, DSA:True, ...
//! ```
//!
//! # Layout
//!
//! - beard_logs: the line parser (method, dataset, IPC, attack, both modes' measurements), with
//!   file:line errors.
//! - settings: parsed lines -> report settings: c and the clean time from the `Clean` line, the
//!   robust accuracy and time of every attack, targeted DeepFool and AutoAttack left out.
//! - transfer: a Transfer log's per-target accuracies -> transfer matrices and black-box boards.
//! - scores: a report -> RR / AE / CREI per (method, dataset), per IPC and combined, the JSON
//!   `--format json` prints.
//!
//! Imported settings are scored and rendered by [`crate::report`], exactly as a sweep's, as
//! numbers of the `beard-compat` evaluation mode: they come from BEARD's reference code.

mod beard_logs;
mod scores;
mod settings;
mod transfer;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;

use thiserror::Error;

use crate::metrics::MetricOptions;
use crate::report::{self, Report, Summaries};

pub use scores::{MethodScores, ModeScores, PaperScores, scores, scores_json};

/// A line of a log file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.file, self.line)
    }
}

/// Why a set of logs cannot be imported.
#[derive(Debug, Error, PartialEq)]
pub enum ImportError {
    #[error("{at}: malformed BEARD result line: {reason}")]
    Malformed { at: Location, reason: String },
    #[error("{at}: unknown attack `{name}`; the report has columns for Clean, FGSM, PGD, PGD_L2, CW, Deepfool and AA")]
    UnknownAttack { at: Location, name: String },
    #[error("{at}: {what} is logged twice (first at {first})")]
    Duplicate { at: Location, first: Location, what: String },
    #[error("{at}: {what} has no `Clean` line to take the clean accuracy and time from")]
    NoClean { at: Location, what: String },
    #[error("{file}: no BEARD result lines (`ATTACK attack on METHOD: final acc is: ...`)")]
    NoResults { file: String },
}

/// One log file: its name (for errors and the report title) and its text.
#[derive(Debug, Clone, Copy)]
pub struct LogFile<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// BEARD logs read into report settings, ready to be scored with any metric options.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    title: String,
    summaries: Summaries,
}

/// Parses every file and builds one setting per (dataset, method, IPC, mode) they log.
pub fn import(files: &[LogFile<'_>]) -> Result<Imported, ImportError> {
    let mut lines = Vec::new();
    for file in files {
        lines.extend(beard_logs::parse(file.text, file.name)?);
    }
    let names: Vec<&str> = files.iter().map(|file| file.name).collect();
    let mut summaries = settings::summarize(&lines)?;
    summaries.transfer = transfer::records(&lines)?;
    Ok(Imported { title: format!("BEARD logs {}", names.join(", ")), summaries })
}

impl Imported {
    /// The report of the imported settings; methods in name order.
    pub fn report(&self, options: MetricOptions) -> Report {
        report::assemble(&self.title, options, &[], &self.summaries)
    }

    /// The imported settings, for combining with a sweep's ([`report::build_with_imports`]).
    pub(crate) fn summaries(&self) -> &Summaries {
        &self.summaries
    }
}
