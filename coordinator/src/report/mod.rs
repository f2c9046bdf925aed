//! Result shards -> the BEARD report: leaderboards per (dataset, evaluation mode, training regime,
//! IPC, mode) and the multi-IPC table per dataset, as JSON, Markdown and CSV. Every number is
//! labelled with its evaluation mode (`standard` or `beard-compat`), and a dataset evaluated in
//! both modes gets a table setting them side by side.
//!
//! # Layout
//!
//! - timing: the times a shard contributes under each time basis.
//! - observe: grouping into settings, averaging over seeds, the clean-time rule;
//!   [`observations`] exposes the resulting metric inputs for independent recomputation.
//! - tables: leaderboards and multi-IPC tables, scored with [`crate::metrics`].
//! - compare: side-by-side tables read off the leaderboards — standard vs adversarial training,
//!   standard vs beard-compat evaluation.
//! - markdown: the human-readable rendering.
//! - csv: the machine-readable rendering, one long-format table.
//! - per_ipc: the CREI-per-IPC tables (Tables 2 and 3), read off the leaderboards.
//! - transfer: source × target matrices of transfer tasks and BEARD's black-box scores.
//! - combine: a sweep's results with imported BEARD logs on the same boards.
//! - figures, plots: which charts a report has, and drawing them (SVG, PNG).
//! - html, site, provenance: the static HTML report (index.html and its charts) and where its
//!   numbers come from.
//!
//! A report is a pure function of its [`ReportInput`]: the order of `results` does not matter,
//! missing results make rows incomplete rather than failing, and no input produces a panic.
//! Settings summarized elsewhere (imported BEARD logs, [`crate::import`]) enter the same tables
//! through [`assemble`].

mod combine;
mod compare;
mod csv;
mod figures;
mod html;
mod markdown;
mod observe;
mod per_ipc;
mod plots;
mod provenance;
mod site;
mod tables;
mod timing;
mod transfer;
mod transfer_html;

#[cfg(test)]
pub(crate) mod golden;
#[cfg(test)]
mod site_tests;
#[cfg(test)]
mod tests;

use beard_proto::v1::{AttackShard, AttackSpec};
use serde::Serialize;

use crate::metrics::MetricOptions;

pub use combine::build_with_imports;
pub use compare::{AtRow, AtScores, AtTable, EvaluatedAccuracy, EvaluationComparison, EvaluationRow};
pub use observe::{ATTACK_ORDER, Mode, SettingKey, Stat, observations};
pub(crate) use observe::{Attack, AttackSummary, SettingSummary, Summaries};
pub use observe::{Evaluation, Ipc, Training};
pub use per_ipc::{CreiPerIpcRow, CreiPerIpcTable};
pub use plots::PlotError;
pub use provenance::{DeviceResults, Provenance, SourceFile};
pub use site::{SiteFile, site};
pub use tables::{AttackCell, Leaderboard, LeaderboardRow, MissingAttack, MultiIpcRow, MultiIpcTable};
pub(crate) use transfer::TransferRecord;
pub use transfer::{BlackBoxBoard, BlackBoxRow, TransferMatrix, TransferSetting, TransferTables};

/// What a report is built from: a sweep's accepted attack results, in any order, each once.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
    pub sweep_name: String,
    pub options: MetricOptions,
    /// The sweep's methods in its order, for stable output and to name methods without results.
    pub method_order: Vec<String>,
    pub results: Vec<(AttackSpec, AttackShard)>,
}

/// A BEARD report. Accuracies and scores are in percent; times in the units of the time basis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub sweep_name: String,
    pub options: MetricOptions,
    /// Results the report was built from.
    pub results: usize,
    /// Results left out because their spec names no dataset or no attack.
    pub unplaced_results: usize,
    /// The devices that computed the results, each with the float32 precision its results have
    /// (`cpu (2 threads, fp32)`, `cuda:0 (fp32)`); empty (and absent from the JSON) for imports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceResults>,
    /// Datasets by name, then standard evaluation first, standard training first, IPC ascending,
    /// untargeted before targeted.
    pub leaderboards: Vec<Leaderboard>,
    /// One per dataset, datasets by name.
    pub multi_ipc: Vec<MultiIpcTable>,
    /// CREI per IPC (Tables 2 and 3): per dataset (as `multi_ipc`), evaluation mode, training
    /// regime and mode.
    pub crei_per_ipc: Vec<CreiPerIpcTable>,
    /// Standard vs adversarial training (the paper's Table 4), one per dataset and evaluation
    /// mode that has models trained both ways; empty (and absent from the JSON) otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adversarial_training: Vec<AtTable>,
    /// Robust accuracies under the standard and the beard-compat evaluation side by side, one per
    /// dataset that has settings evaluated both ways; empty (and absent from the JSON) otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evaluation_modes: Vec<EvaluationComparison>,
    /// Transfer matrices and black-box boards; empty (and absent from the JSON) without transfer
    /// results.
    #[serde(skip_serializing_if = "TransferTables::is_empty")]
    pub transfer: TransferTables,
}

/// Builds the report of an input.
pub fn build(input: &ReportInput) -> Report {
    assemble(&input.sweep_name, input.options, &input.method_order, &observe::summarize(input))
}

/// Builds the report of settings already summarized, whatever their source: the tables of
/// `summaries` scored with `options`, methods in `method_order` first.
pub(crate) fn assemble(name: &str, options: MetricOptions, method_order: &[String], summaries: &Summaries) -> Report {
    let (leaderboards, multi_ipc) = tables::tables(&summaries.settings, &options, method_order);
    let adversarial_training = compare::adversarial_training(&leaderboards, method_order);
    let evaluation_modes = compare::evaluation_modes(&leaderboards, method_order);
    let crei_per_ipc = per_ipc::tables(&leaderboards, &multi_ipc);
    let transfer = transfer::tables(&summaries.transfer, &options, method_order);
    Report {
        sweep_name: name.to_owned(),
        options,
        results: summaries.results,
        unplaced_results: summaries.unplaced,
        devices: summaries.devices.clone(),
        leaderboards,
        multi_ipc,
        crei_per_ipc,
        adversarial_training,
        evaluation_modes,
        transfer,
    }
}

impl Report {
    /// Pretty-printed JSON; non-finite numbers (which only malformed shards can produce) are null.
    pub fn to_json(&self) -> String {
        // Plain structs with string keys: serialization cannot fail, whatever the input was.
        serde_json::to_string_pretty(self).expect("a report always serializes to JSON")
    }

    /// The report as Markdown: options, then per dataset its leaderboards and tables.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }

    /// The leaderboards and multi-IPC tables as one long-format CSV (see the csv module).
    pub fn to_csv(&self) -> String {
        csv::render(self)
    }
}
