//! The CSV rendering of a [`Report`]: one long-format ("tidy") table holding every leaderboard,
//! every multi-IPC table and every adversarial-training table, one number per line, so that any
//! spreadsheet or data-frame library can pivot it into whichever board it wants.
//!
//! Columns: `table,dataset,ipc,mode,evaluation,rank,method,complete,quantity,value,std`, where
//! `evaluation` is the evaluation mode of the line's numbers (`standard` or `beard-compat`); when
//! the report has adversarially trained models, a `training` column (`standard` or `adversarial`)
//! follows `evaluation`.
//!
//! - `table` is `leaderboard`, `multi_ipc` or `adversarial_training`; `ipc` is the board's IPC
//!   (`full` for the whole training split), or for `multi_ipc` the IPCs the row pools joined by
//!   `+` (`1+10+50`); `rank` is empty for `multi_ipc` and `adversarial_training`.
//! - Leaderboard quantities per row, in this order: `clean_accuracy`, `clean_time`, then per
//!   attack with a result (report attack order) `<attack>_accuracy`, `<attack>_time`,
//!   `<attack>_rrs`, `<attack>_aes`, then `rr`, `ae`, `crei`, and for a model-pool row (a
//!   checkpoint attacked as it is, not trained by the sweep) `model_pool` with value 1. Multi-IPC quantities: `rrm`, `aem`,
//!   `crei`. Adversarial-training quantities, per side (the `training` column): `clean_accuracy`,
//!   `rrm`, `aem`, `crei`.
//! - The CREI-per-IPC tables (Tables 2 and 3) are not repeated: they are the `crei` lines of the
//!   `leaderboard` rows, pivoted by `ipc`. Nor is the comparison of the evaluation modes: it is the
//!   `clean_accuracy` and `<attack>_accuracy` lines of the `leaderboard` rows, pivoted by
//!   `evaluation` (its Δ is the `beard-compat` value minus the `standard` one).
//! - Transfer results: table `transfer`, one line per matrix cell, `method` the source and
//!   quantity `<attack>_accuracy@<target>` (the source's own column is its white-box figure);
//!   table `black_box`, per target board and source, `clean_accuracy@<target>`,
//!   `<attack>_accuracy@<target>`, `rr@<target>`, `ae@<target>`, `crei@<target>`. `rank` is
//!   empty and `complete` true for both.
//! - `std` is the sample std over seeds for accuracies and empty otherwise.
//! - Numbers are written in full precision (the shortest text that reads back as the same
//!   `f64`); accuracies and scores are in percent, times in the units of the time basis.
//!
//! Lines follow the report's order: leaderboards (datasets by name, standard evaluation first,
//! standard training first, IPC ascending, untargeted first; rows by rank), then the multi-IPC
//! tables, then the adversarial-training tables (standard side first), then the transfer
//! matrices and the black-box boards. Lines end in `\n`; fields holding a comma,
//! quote or line break are quoted.

use super::observe::{Evaluation, Mode, Stat, Training};
use super::{
    AtScores, AtTable, BlackBoxBoard, Leaderboard, LeaderboardRow, MultiIpcTable, Report, TransferMatrix,
    TransferSetting,
};

pub(super) fn render(report: &Report) -> String {
    let with_training = report.leaderboards.iter().any(|board| !board.training.is_standard());
    let training = if with_training { ",training" } else { "" };
    let mut out = format!("table,dataset,ipc,mode,evaluation{training},rank,method,complete,quantity,value,std\n");
    // The training column, when the report has one.
    let column = |training: Training| with_training.then_some(training);
    for board in &report.leaderboards {
        for row in &board.rows {
            leaderboard_row(&mut out, board, column(board.training), row);
        }
    }
    for table in &report.multi_ipc {
        multi_ipc(&mut out, table, &column);
    }
    for table in &report.adversarial_training {
        adversarial_training(&mut out, table);
    }
    for matrix in &report.transfer.matrices {
        transfer_matrix(&mut out, matrix, column(matrix.setting.training));
    }
    for board in &report.transfer.black_box {
        black_box(&mut out, board, column(board.setting.training));
    }
    out
}

/// The fields every line of one table row shares.
struct RowFields<'a> {
    table: &'static str,
    dataset: &'a str,
    ipc: String,
    mode: Mode,
    evaluation: Evaluation,
    /// `None` when the report has no training column.
    training: Option<Training>,
    rank: Option<usize>,
    method: &'a str,
    complete: bool,
}

impl RowFields<'_> {
    fn line(&self, out: &mut String, quantity: &str, value: f64, std: Option<f64>) {
        let training = self.training.map(|training| training.name().to_owned());
        let fields = [
            Some(self.table.to_owned()),
            Some(escape(self.dataset)),
            Some(self.ipc.clone()),
            Some(self.mode.name().to_owned()),
            Some(self.evaluation.name().to_owned()),
            training,
            Some(self.rank.map(|rank| rank.to_string()).unwrap_or_default()),
            Some(escape(self.method)),
            Some(self.complete.to_string()),
            Some(quantity.to_owned()),
            Some(number(value)),
            Some(std.map(number).unwrap_or_default()),
        ];
        out.push_str(&fields.into_iter().flatten().collect::<Vec<_>>().join(","));
        out.push('\n');
    }
}

fn leaderboard_row(out: &mut String, board: &Leaderboard, training: Option<Training>, row: &LeaderboardRow) {
    let fields = RowFields {
        table: "leaderboard",
        dataset: &board.dataset,
        ipc: board.ipc.to_string(),
        mode: board.mode,
        evaluation: board.evaluation,
        training,
        rank: Some(row.rank),
        method: &row.method,
        complete: row.complete,
    };
    stat_line(out, &fields, "clean_accuracy", row.clean_accuracy);
    fields.line(out, "clean_time", row.clean_time, None);
    for cell in &row.attacks {
        stat_line(out, &fields, &format!("{}_accuracy", cell.attack), cell.robust_accuracy);
        fields.line(out, &format!("{}_time", cell.attack), cell.time, None);
        fields.line(out, &format!("{}_rrs", cell.attack), cell.rrs, None);
        fields.line(out, &format!("{}_aes", cell.attack), cell.aes, None);
    }
    for (quantity, value) in [("rr", row.rr), ("ae", row.ae), ("crei", row.crei)] {
        fields.line(out, quantity, value, None);
    }
    if row.model_pool {
        fields.line(out, "model_pool", 1.0, None);
    }
}

fn multi_ipc(out: &mut String, table: &MultiIpcTable, column: &impl Fn(Training) -> Option<Training>) {
    for row in &table.rows {
        let ipcs: Vec<String> = row.ipcs.iter().map(ToString::to_string).collect();
        let fields = RowFields {
            table: "multi_ipc",
            dataset: &table.dataset,
            ipc: ipcs.join("+"),
            mode: row.mode,
            evaluation: row.evaluation,
            training: column(row.training),
            rank: None,
            method: &row.method,
            complete: row.complete,
        };
        for (quantity, value) in [("rrm", row.rrm), ("aem", row.aem), ("crei", row.crei)] {
            fields.line(out, quantity, value, None);
        }
    }
}

fn adversarial_training(out: &mut String, table: &AtTable) {
    for row in &table.rows {
        let sides = [(Training::Standard, row.standard), (Training::Adversarial, row.adversarial)];
        for (training, scores) in sides {
            let Some(AtScores { clean_accuracy, rrm, aem, crei, complete }) = scores else { continue };
            let fields = RowFields {
                table: "adversarial_training",
                dataset: &table.dataset,
                ipc: row.ipc.to_string(),
                mode: row.mode,
                evaluation: table.evaluation,
                training: Some(training),
                rank: None,
                method: &row.method,
                complete,
            };
            stat_line(out, &fields, "clean_accuracy", clean_accuracy);
            for (quantity, value) in [("rrm", rrm), ("aem", aem), ("crei", crei)] {
                fields.line(out, quantity, value, None);
            }
        }
    }
}

/// The fields of a transfer line whose `method` is the source.
fn transfer_fields<'a>(
    table: &'static str,
    setting: &'a TransferSetting,
    training: Option<Training>,
    source: &'a str,
) -> RowFields<'a> {
    RowFields {
        table,
        dataset: &setting.dataset,
        ipc: setting.ipc.to_string(),
        mode: setting.mode,
        evaluation: setting.evaluation,
        training,
        rank: None,
        method: source,
        complete: true,
    }
}

fn transfer_matrix(out: &mut String, matrix: &TransferMatrix, training: Option<Training>) {
    for (source, cells) in matrix.sources.iter().zip(&matrix.cells) {
        let fields = transfer_fields("transfer", &matrix.setting, training, source);
        for (target, cell) in matrix.targets.iter().zip(cells) {
            if let Some(cell) = cell {
                stat_line(out, &fields, &format!("{}_accuracy@{target}", matrix.attack), *cell);
            }
        }
    }
}

fn black_box(out: &mut String, board: &BlackBoxBoard, training: Option<Training>) {
    let target = &board.target;
    for row in &board.rows {
        let fields = transfer_fields("black_box", &board.setting, training, &row.source);
        fields.line(out, &format!("clean_accuracy@{target}"), row.clean_accuracy, None);
        for (attack, value) in board.attacks.iter().zip(&row.robust_accuracy) {
            if let Some(value) = value {
                fields.line(out, &format!("{attack}_accuracy@{target}"), *value, None);
            }
        }
        for (quantity, value) in [("rr", row.scores.rr), ("ae", row.scores.ae), ("crei", row.scores.crei)] {
            fields.line(out, &format!("{quantity}@{target}"), value, None);
        }
    }
}

fn stat_line(out: &mut String, fields: &RowFields<'_>, quantity: &str, value: Stat) {
    fields.line(out, quantity, value.mean, Some(value.std));
}

/// Shortest round-trip text, without a minus sign on zero; `NaN`, `inf` and `-inf` as Rust
/// writes them (pandas and spreadsheets read these).
fn number(value: f64) -> String {
    if value == 0.0 { "0".to_owned() } else { value.to_string() }
}

/// RFC 4180 quoting for fields holding a comma, quote or line break.
fn escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_zero_has_no_sign() {
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(100.0 / 3.0), "33.333333333333336");
        assert_eq!(number(100.0 / 3.0).parse::<f64>().ok(), Some(100.0 / 3.0));
        assert_eq!(number(f64::NAN), "NaN");
    }

    #[test]
    fn fields_with_separators_are_quoted() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a,b"), "\"a,b\"");
        assert_eq!(escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(escape("two\nlines"), "\"two\nlines\"");
    }
}
