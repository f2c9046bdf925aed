//! The transfer section of `index.html`: each source × target matrix as a heatmap table (cell
//! colour from red at 0 % to green at 100 % robust accuracy; the white-box diagonal outlined),
//! then BEARD's black-box boards per target as sortable tables.

use maud::{Markup, html};

use super::html::{header, value_cell};
use super::markdown::{ipc_heading, regime, stat};
use super::observe::Stat;
use super::transfer::{BlackBoxBoard, TransferMatrix, TransferSetting, TransferTables};

/// The section, or nothing for a report without transfer results.
pub(super) fn section(tables: &TransferTables) -> Markup {
    html! {
        @if !tables.is_empty() {
            section #transfer {
                h2 { "Transfer attacks" }
                p.note {
                    "Robust accuracy of each target model (columns) against the true labels on the examples "
                    "crafted on each source model (rows). The outlined diagonal, where the source judges its own "
                    "examples, is the white-box figure."
                }
                @for matrix in &tables.matrices { (heatmap(matrix)) }
                h3 { "Black-box scores per target" }
                p.note {
                    "BEARD's metrics/black_box: per target, its clean and robust accuracies on each source's "
                    "examples, with the source's attack times."
                }
                @for board in &tables.black_box { (black_box(board)) }
            }
        }
    }
}

fn heading(setting: &TransferSetting) -> String {
    format!(
        "{}, {}, {}{}",
        setting.dataset,
        ipc_heading(setting.ipc),
        setting.mode.name(),
        regime(setting.training, setting.evaluation)
    )
}

fn heatmap(matrix: &TransferMatrix) -> Markup {
    html! {
        div.transfer data-dataset=(matrix.setting.dataset) data-attack=(matrix.attack) data-mode=(matrix.setting.mode.name()) {
            h4 { (heading(&matrix.setting)) ", " (matrix.attack) }
            div.table-wrap { table.heatmap {
                thead { tr {
                    th scope="col" { "Source (row) / target (column)" }
                    @for target in &matrix.targets { th.num scope="col" { (target) } }
                } }
                tbody {
                    @for (source, cells) in matrix.sources.iter().zip(&matrix.cells) {
                        tr {
                            th.method scope="row" { (source) }
                            @for (target, cell) in matrix.targets.iter().zip(cells) {
                                (heat_cell(*cell, target == source))
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// A cell coloured by its mean accuracy (hue 0 = red at 0 %, 120 = green at 100 %).
fn heat_cell(cell: Option<Stat>, diagonal: bool) -> Markup {
    let class = if diagonal { "num diagonal" } else { "num" };
    match cell.filter(|cell| cell.mean.is_finite()) {
        Some(cell) => {
            let hue = 1.2 * cell.mean.clamp(0.0, 100.0);
            let style = format!("background-color: hsl({hue:.0} 70% 80%)");
            html! { td class=(class) style=(style) data-value=(cell.mean) { (stat(cell)) } }
        }
        None => html! { td class=(class) data-value="" { "—" } },
    }
}

fn black_box(board: &BlackBoxBoard) -> Markup {
    html! {
        div.black-box data-dataset=(board.setting.dataset) data-target=(board.target) {
            h4 { "Target " (board.target) ": " (heading(&board.setting)) }
            div.table-wrap { table.sortable {
                thead { tr {
                    (header("Source", false)) (header("Clean", true))
                    @for attack in &board.attacks { (header(attack, true)) }
                    (header("RR", true)) (header("AE", true)) (header("CREI", true))
                } }
                tbody {
                    @for row in &board.rows {
                        tr {
                            td.method { (row.source) }
                            (value_cell(Some(row.clean_accuracy)))
                            @for value in &row.robust_accuracy { (value_cell(*value)) }
                            (value_cell(Some(row.scores.rr))) (value_cell(Some(row.scores.ae))) (value_cell(Some(row.scores.crei)))
                        }
                    }
                }
            } }
        }
    }
}
