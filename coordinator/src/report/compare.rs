//! Side-by-side tables read off the leaderboards, each pairing the two values of one axis per
//! setting:
//!
//! - training: standard vs adversarial training, the paper's Table 4 — per dataset and
//!   evaluation mode, each (method, IPC, mode) with its clean accuracy, RRM, AEM and CREI;
//! - evaluation: the `standard` vs the `beard-compat` evaluation — per dataset, each (method,
//!   IPC, training regime, mode, attack) with its clean and robust accuracy in both modes and
//!   their difference.
//!
//! A table exists where some row has both sides (a model trained both ways, a setting evaluated
//! both ways); in it, a row with one side only leaves the other empty. Rows follow the sweep's
//! method order, then the row key (IPC ascending with full last, standard training first,
//! untargeted first, attacks in report order).

use std::collections::BTreeMap;

use serde::Serialize;

use super::observe::{Attack, Evaluation, Ipc, Mode, Stat, Training};
use super::tables::{Leaderboard, MethodOrder};

/// The paper's Table 4 for one dataset and evaluation mode: every (method, IPC, mode) with its
/// scores under standard and under adversarial training.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtTable {
    pub dataset: String,
    pub evaluation: Evaluation,
    /// Methods in the sweep's order, then IPC ascending (full last), untargeted first.
    pub rows: Vec<AtRow>,
}

/// One setting trained both ways; a side without results yet is `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtRow {
    pub method: String,
    pub ipc: Ipc,
    pub mode: Mode,
    pub standard: Option<AtScores>,
    pub adversarial: Option<AtScores>,
    /// Adversarial minus standard CREI, when both sides have results.
    pub crei_change: Option<f64>,
}

/// The scores of one side of an [`AtRow`], as its leaderboard row has them (RRM and AEM are the
/// multi-adversary RR and AE).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AtScores {
    pub clean_accuracy: Stat,
    pub rrm: f64,
    pub aem: f64,
    pub crei: f64,
    pub complete: bool,
}

/// One dataset's robust accuracies under the standard and the beard-compat evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationComparison {
    pub dataset: String,
    /// Methods in the sweep's order, then IPC, training regime, mode and attack.
    pub rows: Vec<EvaluationRow>,
}

/// One attack of one setting in both evaluation modes; a side without results yet is `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationRow {
    pub method: String,
    pub ipc: Ipc,
    #[serde(skip_serializing_if = "Training::is_standard")]
    pub training: Training,
    pub mode: Mode,
    pub attack: &'static str,
    pub standard: Option<EvaluatedAccuracy>,
    #[serde(rename = "beard-compat")]
    pub beard_compat: Option<EvaluatedAccuracy>,
    /// Robust accuracy under beard-compat minus under standard (means over seeds, in points),
    /// when both sides have results.
    pub difference: Option<f64>,
}

/// One side of an [`EvaluationRow`], as its leaderboard row has it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvaluatedAccuracy {
    pub clean_accuracy: Stat,
    pub robust_accuracy: Stat,
    /// False when the leaderboard row misses a seed of this attack.
    pub complete: bool,
}

/// The adversarial-training tables of the (dataset, evaluation mode)s that have a setting trained
/// both ways, datasets by name, standard evaluation first.
pub(crate) fn adversarial_training(leaderboards: &[Leaderboard], method_order: &[String]) -> Vec<AtTable> {
    let mut pairs = Pairs::default();
    for board in leaderboards {
        for row in &board.rows {
            let scores = AtScores {
                clean_accuracy: row.clean_accuracy,
                rrm: row.rr,
                aem: row.ae,
                crei: row.crei,
                complete: row.complete,
            };
            let table = (board.dataset.as_str(), board.evaluation);
            let side = board.training == Training::Adversarial;
            pairs.put(table, (row.method.as_str(), board.ipc, board.mode), side, scores);
        }
    }
    pairs
        .tables(&MethodOrder(method_order), |(method, ..)| method)
        .into_iter()
        .map(|((dataset, evaluation), rows)| AtTable {
            dataset: dataset.to_owned(),
            evaluation,
            rows: rows
                .into_iter()
                .map(|((method, ipc, mode), [standard, adversarial])| AtRow {
                    method: method.to_owned(),
                    ipc,
                    mode,
                    crei_change: standard
                        .zip(adversarial)
                        .map(|(standard, adversarial)| adversarial.crei - standard.crei),
                    standard,
                    adversarial,
                })
                .collect(),
        })
        .collect()
}

/// The evaluation-mode comparisons of the datasets that have a setting evaluated in both modes,
/// datasets by name.
pub(crate) fn evaluation_modes(leaderboards: &[Leaderboard], method_order: &[String]) -> Vec<EvaluationComparison> {
    let mut pairs = Pairs::default();
    for board in leaderboards {
        for row in &board.rows {
            for cell in &row.attacks {
                let Some(attack) = Attack::named(cell.attack) else { continue };
                let accuracy = EvaluatedAccuracy {
                    clean_accuracy: row.clean_accuracy,
                    robust_accuracy: cell.robust_accuracy,
                    complete: row.missing.iter().all(|gap| gap.attack != cell.attack),
                };
                let key = (row.method.as_str(), board.ipc, board.training, board.mode, attack);
                pairs.put(board.dataset.as_str(), key, board.evaluation == Evaluation::BEARD_COMPAT, accuracy);
            }
        }
    }
    pairs
        .tables(&MethodOrder(method_order), |(method, ..)| method)
        .into_iter()
        .map(|(dataset, rows)| EvaluationComparison {
            dataset: dataset.to_owned(),
            rows: rows
                .into_iter()
                .map(|((method, ipc, training, mode, attack), [standard, beard_compat])| EvaluationRow {
                    method: method.to_owned(),
                    ipc,
                    training,
                    mode,
                    attack: attack.name(),
                    difference: standard
                        .zip(beard_compat)
                        .map(|(standard, compat)| compat.robust_accuracy.mean - standard.robust_accuracy.mean),
                    standard,
                    beard_compat,
                })
                .collect(),
        })
        .collect()
}

/// Values on two sides (first, second), gathered by table and row.
struct Pairs<T, R, V>(BTreeMap<T, BTreeMap<R, [Option<V>; 2]>>);

/// A row of [`Pairs`]: its key and both sides.
type PairedRow<R, V> = (R, [Option<V>; 2]);

impl<T, R, V> Default for Pairs<T, R, V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<T: Ord, R: Ord, V> Pairs<T, R, V> {
    /// Records `value` on the second side when `second`, else on the first.
    fn put(&mut self, table: T, row: R, second: bool, value: V) {
        let sides = self.0.entry(table).or_default().entry(row).or_insert_with(|| [None, None]);
        sides[usize::from(second)] = Some(value);
    }

    /// The tables with a row that has both sides, in table order; their rows in the sweep's method
    /// order (`method` names a row's method), then in row order.
    fn tables(self, order: &MethodOrder<'_>, method: impl Fn(&R) -> &str) -> Vec<(T, Vec<PairedRow<R, V>>)> {
        self.0
            .into_iter()
            .filter(|(_, rows)| rows.values().any(|[first, second]| first.is_some() && second.is_some()))
            .map(|(table, rows)| {
                let mut rows: Vec<PairedRow<R, V>> = rows.into_iter().collect();
                // Stable: rows of one method keep their key order.
                rows.sort_by(|(left, _), (right, _)| order.compare(method(left), method(right)));
                (table, rows)
            })
            .collect()
    }
}
