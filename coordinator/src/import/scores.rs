//! A report -> RR / AE / CREI per (method, dataset, evaluation mode): per IPC from the
//! leaderboards and combined across IPCs from the multi-IPC tables. This is what
//! `import-beard-logs --format json` prints (imported logs are all `beard-compat`):
//!
//! ```text
//! {"method", "dataset", "evaluation", "per_ipc": {"<ipc>": {"targeted": {"RR", "AE", "CREI"}, "untargeted": {...}}},
//!  "combined": {"targeted": {...}, "untargeted": {...}}}
//! ```
//!
//! one object for one (method, dataset, evaluation mode), an array of them (by method, then
//! dataset, then evaluation mode) for several.
//! Values are in percent, unrounded; a mode without attacks is left out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::{Evaluation, Ipc, Mode, Report};

/// The scores of one method on one dataset in one evaluation mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodScores {
    pub method: String,
    pub dataset: String,
    pub evaluation: Evaluation,
    /// By IPC, ascending.
    pub per_ipc: BTreeMap<Ipc, ModeScores>,
    /// Pooled across the IPCs (the paper's RRM, AEM and their CREI).
    pub combined: ModeScores,
}

/// The scores of the modes with results.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModeScores {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targeted: Option<PaperScores>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untargeted: Option<PaperScores>,
}

impl ModeScores {
    fn set(&mut self, mode: Mode, scores: PaperScores) {
        match mode {
            Mode::Targeted => self.targeted = Some(scores),
            Mode::Untargeted => self.untargeted = Some(scores),
        }
    }
}

/// RR, AE and CREI in percent, named as the paper names them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PaperScores {
    #[serde(rename = "RR")]
    pub rr: f64,
    #[serde(rename = "AE")]
    pub ae: f64,
    #[serde(rename = "CREI")]
    pub crei: f64,
}

/// The scores of every (method, dataset, evaluation mode) of a report, by method, then dataset,
/// then evaluation mode.
pub fn scores(report: &Report) -> Vec<MethodScores> {
    let mut all: BTreeMap<(&str, &str, Evaluation), MethodScores> = BTreeMap::new();
    for board in &report.leaderboards {
        for row in &board.rows {
            let scores = PaperScores { rr: row.rr, ae: row.ae, crei: row.crei };
            let entry = entry(&mut all, (&row.method, &board.dataset, board.evaluation));
            entry.per_ipc.entry(board.ipc).or_default().set(board.mode, scores);
        }
    }
    for table in &report.multi_ipc {
        for row in &table.rows {
            let scores = PaperScores { rr: row.rrm, ae: row.aem, crei: row.crei };
            entry(&mut all, (&row.method, &table.dataset, row.evaluation)).combined.set(row.mode, scores);
        }
    }
    all.into_values().collect()
}

fn entry<'m, 'r>(
    all: &'m mut BTreeMap<(&'r str, &'r str, Evaluation), MethodScores>,
    key: (&'r str, &'r str, Evaluation),
) -> &'m mut MethodScores {
    all.entry(key).or_insert_with(|| MethodScores {
        method: key.0.to_owned(),
        dataset: key.1.to_owned(),
        evaluation: key.2,
        per_ipc: BTreeMap::new(),
        combined: ModeScores::default(),
    })
}

/// Pretty-printed JSON: the one object, or an array when there are none or several.
pub fn scores_json(scores: &[MethodScores]) -> String {
    // Plain structs with string and integer keys: serialization cannot fail.
    match scores {
        [one] => serde_json::to_string_pretty(one),
        several => serde_json::to_string_pretty(several),
    }
    .expect("scores always serialize to JSON")
}
