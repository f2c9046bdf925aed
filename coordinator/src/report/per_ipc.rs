//! The CREI-per-IPC tables (the paper's Tables 2 and 3, one per mode): per dataset, evaluation
//! mode, training regime and mode, every method's CREI at each IPC, the whole training split
//! (Full-size) last, read off the leaderboards.
//!
//! Rows follow the dataset's multi-IPC table (the sweep's method order); a method without a
//! leaderboard row at some IPC has no value there.

use std::collections::BTreeSet;

use serde::Serialize;

use super::observe::{Evaluation, Ipc, Mode, Training};
use super::tables::{Leaderboard, MultiIpcTable};

/// One dataset, evaluation mode, regime and mode: methods by IPC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreiPerIpcTable {
    pub dataset: String,
    #[serde(skip_serializing_if = "Training::is_standard")]
    pub training: Training,
    pub evaluation: Evaluation,
    pub mode: Mode,
    /// Column IPCs: those with a leaderboard of this dataset, evaluation mode, regime and mode,
    /// ascending.
    pub ipcs: Vec<Ipc>,
    pub rows: Vec<CreiPerIpcRow>,
}

/// One method's CREI at each column IPC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreiPerIpcRow {
    pub method: String,
    /// In the order of the table's `ipcs`; null where the method has no result at that IPC.
    pub crei: Vec<Option<f64>>,
    /// False when a leaderboard row a value comes from is incomplete.
    pub complete: bool,
}

/// The tables of every dataset (in the order of `multi_ipc`), evaluation mode, regime and mode
/// with leaderboards: standard evaluation first, then standard training, untargeted first.
pub(super) fn tables(leaderboards: &[Leaderboard], multi_ipc: &[MultiIpcTable]) -> Vec<CreiPerIpcTable> {
    let mut tables = Vec::new();
    for dataset in multi_ipc {
        let boards_of_dataset: Vec<&Leaderboard> =
            leaderboards.iter().filter(|board| board.dataset == dataset.dataset).collect();
        let settings: BTreeSet<(Evaluation, Training, Mode)> =
            boards_of_dataset.iter().map(|board| (board.evaluation, board.training, board.mode)).collect();
        for (evaluation, training, mode) in settings {
            let mut boards: Vec<&Leaderboard> = boards_of_dataset
                .iter()
                .copied()
                .filter(|board| board.evaluation == evaluation && board.training == training && board.mode == mode)
                .collect();
            boards.sort_by_key(|board| board.ipc);
            let rows = dataset
                .rows
                .iter()
                .filter(|row| row.evaluation == evaluation && row.training == training && row.mode == mode)
                .map(|row| method_row(&row.method, &boards))
                .collect();
            let ipcs = boards.iter().map(|board| board.ipc).collect();
            tables.push(CreiPerIpcTable { dataset: dataset.dataset.clone(), training, evaluation, mode, ipcs, rows });
        }
    }
    tables
}

/// A method's CREI on each of `boards`.
fn method_row(method: &str, boards: &[&Leaderboard]) -> CreiPerIpcRow {
    let mut complete = true;
    let crei = boards
        .iter()
        .map(|board| {
            let row = board.rows.iter().find(|row| row.method == method)?;
            complete &= row.complete;
            Some(row.crei)
        })
        .collect();
    CreiPerIpcRow { method: method.to_owned(), crei, complete }
}
