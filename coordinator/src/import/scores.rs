//! A report -> RR / AE / CREI per (method, dataset): per IPC from the leaderboards and combined
//! across IPCs from the multi-IPC tables. This is what `import-beard-logs --format json` prints:
//!
//! ```text
//! {"method", "dataset", "per_ipc": {"<ipc>": {"targeted": {"RR", "AE", "CREI"}, "untargeted": {...}}},
//!  "combined": {"targeted": {...}, "untargeted": {...}}}
//! ```
//!
//! one object for one (method, dataset), an array of them (by method, then dataset) for several.
//! Values are in percent, unrounded; a mode without attacks is left out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::{Ipc, Mode, Report};

/// The scores of one method on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodScores {
    pub method: String,
    pub dataset: String,
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

/// The scores of every (method, dataset) of a report, by method, then dataset.
pub fn scores(report: &Report) -> Vec<MethodScores> {
    let mut all: BTreeMap<(&str, &str), MethodScores> = BTreeMap::new();
    for board in &report.leaderboards {
        for row in &board.rows {
            let scores = PaperScores { rr: row.rr, ae: row.ae, crei: row.crei };
            entry(&mut all, &row.method, &board.dataset).per_ipc.entry(board.ipc).or_default().set(board.mode, scores);
        }
    }
    for table in &report.multi_ipc {
        for row in &table.rows {
            let scores = PaperScores { rr: row.rrm, ae: row.aem, crei: row.crei };
            entry(&mut all, &row.method, &table.dataset).combined.set(row.mode, scores);
        }
    }
    all.into_values().collect()
}

fn entry<'m, 'r>(
    all: &'m mut BTreeMap<(&'r str, &'r str), MethodScores>,
    method: &'r str,
    dataset: &'r str,
) -> &'m mut MethodScores {
    all.entry((method, dataset)).or_insert_with(|| MethodScores {
        method: method.to_owned(),
        dataset: dataset.to_owned(),
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
