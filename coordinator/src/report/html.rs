//! The report's `index.html`: the metric options, pickers for dataset / evaluation mode /
//! training / IPC / mode that switch the leaderboard shown (evaluation and training only when the
//! report has two), sortable tables (leaderboards, multi-IPC, CREI per IPC, adversarial training,
//! evaluation modes side by side), the charts of the chosen dataset, the transfer heatmaps and
//! black-box boards ([`super::transfer_html`]), and the provenance block.
//! Every heading names the evaluation mode of its numbers, as the Markdown does. Styles and
//! script are inlined; the page loads nothing but the charts beside it, so it works offline.
//!
//! Every value taken from the report is escaped by the template engine. Numeric cells show two
//! decimals and carry their full-precision value in `data-value` for sorting (empty: no value).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::compare::{AtRow, AtScores, AtTable, EvaluatedAccuracy, EvaluationComparison};
use super::markdown::{ipc_heading, number, regime, stat};
use super::observe::{Evaluation, Mode, Stat};
use super::per_ipc::CreiPerIpcTable;
use super::plots::{HEIGHT, WIDTH};
use super::provenance::Provenance;
use super::tables::{Leaderboard, MultiIpcTable};
use super::{Report, figures::Figure, transfer_html};

const STYLE: &str = include_str!("site/style.css");
const SCRIPT: &str = include_str!("site/behaviour.js");

/// A chart as the page shows it: the figure and the formats written for it.
pub(super) struct Chart<'a> {
    pub figure: &'a Figure,
    pub png: bool,
}

/// The page of `report`, showing `charts` (written under `plots/`).
pub(super) fn index(report: &Report, provenance: &Provenance, charts: &[Chart<'_>]) -> String {
    let title = format!("BEARD report: {}", report.sweep_name);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { (title) }
                    p.summary { (options_line(report)) }
                    p.summary {
                        "Accuracies and scores in percent; cells are mean ± sample std over seeds; "
                        "a starred method misses results. Click a column header to sort. "
                        (report.results) " results."
                    }
                }
                (pickers(report))
                main {
                    section #leaderboards {
                        h2 { "Leaderboard" }
                        @for board in &report.leaderboards { (leaderboard(board)) }
                        p #no-board .note hidden { "No leaderboard for this choice yet." }
                        @if report.leaderboards.is_empty() { p.note { "No results yet." } }
                    }
                    @for table in &report.multi_ipc {
                        section.dataset data-dataset=(table.dataset) {
                            h2 { (table.dataset) ": all IPCs" }
                            @for evaluation in table.evaluations() { (multi_ipc(table, evaluation)) }
                            @for per_ipc in report.crei_per_ipc.iter().filter(|per_ipc| per_ipc.dataset == table.dataset) {
                                (crei_per_ipc(per_ipc))
                            }
                            @for at in report.adversarial_training.iter().filter(|at| at.dataset == table.dataset) {
                                (adversarial_training(at))
                            }
                            @for comparison in report.evaluation_modes.iter().filter(|comparison| comparison.dataset == table.dataset) {
                                (evaluation_modes(comparison))
                            }
                            (figures(charts.iter().filter(|chart| chart.figure.dataset == table.dataset)))
                        }
                    }
                    (transfer_html::section(&report.transfer))
                    (provenance_block(report, provenance))
                }
                footer { "Written by beard-rs " (provenance.commit) "." }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    };
    page.into_string()
}

fn options_line(report: &Report) -> String {
    let options = &report.options;
    format!(
        "CREI = α·RR + (1 − α)·AE with α = {}; RR variant {}; time basis {}.",
        number(options.alpha),
        options.rr_variant.name(),
        options.time_basis.name()
    )
}

/// Distinct values in first-seen order.
fn distinct<T: PartialEq>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    seen
}

fn pickers(report: &Report) -> Markup {
    let boards = &report.leaderboards;
    let datasets = distinct(boards.iter().map(|board| board.dataset.as_str()));
    let evaluations = distinct(boards.iter().map(|board| board.evaluation));
    let trainings = distinct(boards.iter().map(|board| board.training));
    let mut ipcs = distinct(boards.iter().map(|board| board.ipc));
    ipcs.sort();
    let modes = distinct(boards.iter().map(|board| board.mode));
    html! {
        nav.controls aria-label="Choose a leaderboard" {
            label { "Dataset" select #pick-dataset { @for dataset in &datasets { option value=(dataset) { (dataset) } } } }
            @if evaluations.len() > 1 {
                label { "Evaluation" select #pick-evaluation {
                    @for evaluation in &evaluations { option value=(evaluation.name()) { (evaluation.name()) } }
                } }
            }
            @if trainings.len() > 1 {
                label { "Training" select #pick-training {
                    @for training in &trainings { option value=(training.name()) { (training.name()) } }
                } }
            }
            label { "IPC" select #pick-ipc { @for ipc in &ipcs { option value=(ipc.to_string()) { (ipc_heading(*ipc)) } } } }
            label { "Mode" select #pick-mode { @for mode in &modes { option value=(mode.name()) { (mode.name()) } } } }
        }
    }
}

/// A sortable header cell; `numeric` right-aligns it.
pub(super) fn header(label: &str, numeric: bool) -> Markup {
    html! { th class=[numeric.then_some("num")] scope="col" { button type="button" { (label) } } }
}

/// A numeric cell: two decimals shown, the full value to sort by.
pub(super) fn value_cell(value: Option<f64>) -> Markup {
    match value.filter(|value| value.is_finite()) {
        Some(value) => html! { td.num data-value=(value) { (number(value)) } },
        None => html! { td.num data-value="" { "—" } },
    }
}

fn stat_cell(value: Option<Stat>) -> Markup {
    match value.filter(|value| value.mean.is_finite()) {
        Some(value) => html! { td.num data-value=(value.mean) { (stat(value)) } },
        None => html! { td.num data-value="" { "—" } },
    }
}

/// The class of a row that misses results.
fn incomplete(complete: bool) -> Option<&'static str> {
    (!complete).then_some("incomplete")
}

fn method_cell(method: &str, complete: bool) -> Markup {
    html! { td.method { (method) @if !complete { "*" } } }
}

fn leaderboard(board: &Leaderboard) -> Markup {
    html! {
        div.board data-dataset=(board.dataset) data-evaluation=(board.evaluation.name())
            data-training=(board.training.name()) data-ipc=(board.ipc.to_string()) data-mode=(board.mode.name()) {
            h3 {
                (board.dataset) ", " (ipc_heading(board.ipc)) ", " (board.mode.name())
                (regime(board.training, board.evaluation))
            }
            div.table-wrap { table.sortable {
                thead { tr {
                    (header("#", true)) (header("Method", false)) (header("Seeds", true)) (header("Clean", true))
                    @for attack in &board.attacks { (header(attack, true)) }
                    (header("RR", true)) (header("AE", true)) (header("CREI", true))
                } }
                tbody {
                    @for row in &board.rows {
                        tr class=[incomplete(row.complete)] {
                            td.num data-value=(row.rank) { (row.rank) }
                            td.method {
                                (row.method)
                                @if row.model_pool { " " span.tag title="a model-pool checkpoint, attacked as it is" { "model pool" } }
                                @if !row.complete { "*" }
                            }
                            td.num data-value=(row.seeds) { (row.seeds) }
                            (stat_cell(Some(row.clean_accuracy)))
                            @for attack in &board.attacks {
                                (stat_cell(row.attacks.iter().find(|cell| cell.attack == *attack).map(|cell| cell.robust_accuracy)))
                            }
                            (value_cell(Some(row.rr))) (value_cell(Some(row.ae))) (value_cell(Some(row.crei)))
                        }
                    }
                }
            } }
            @for row in board.rows.iter().filter(|row| !row.complete) {
                p.note {
                    "* " (row.method) " is missing "
                    (row.missing.iter().map(|gap| {
                        let seeds: Vec<String> = gap.seeds.iter().map(u32::to_string).collect();
                        let noun = if gap.seeds.len() == 1 { "seed" } else { "seeds" };
                        format!("{} {noun} {}", gap.attack, seeds.join(", "))
                    }).collect::<Vec<_>>().join("; "))
                    "."
                }
            }
            @if !board.methods_without_results.is_empty() {
                p.note { "No results yet: " (board.methods_without_results.join(", ")) "." }
            }
        }
    }
}

/// The rows of `table` evaluated in `evaluation`.
fn multi_ipc(table: &MultiIpcTable, evaluation: Evaluation) -> Markup {
    let rows: Vec<_> = table.rows.iter().filter(|row| row.evaluation == evaluation).collect();
    let with_training = rows.iter().any(|row| !row.training.is_standard());
    let ipcs: Vec<String> = table.ipcs.iter().map(ToString::to_string).collect();
    html! {
        h3 { "RRM, AEM and CREI pooled across IPCs (" (ipcs.join(", ")) "), " (evaluation.name()) " evaluation" }
        div.table-wrap { table.sortable {
            thead { tr {
                (header("Method", false)) @if with_training { (header("Training", false)) } (header("Mode", false))
                (header("IPCs", false)) (header("RRM", true)) (header("AEM", true)) (header("CREI", true))
            } }
            tbody {
                @for row in &rows {
                    tr class=[incomplete(row.complete)] {
                        (method_cell(&row.method, row.complete))
                        @if with_training { td { (row.training.name()) } }
                        td { (row.mode.name()) }
                        td { (row.ipcs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                        (value_cell(Some(row.rrm))) (value_cell(Some(row.aem))) (value_cell(Some(row.crei)))
                    }
                }
            }
        } }
    }
}

fn crei_per_ipc(table: &CreiPerIpcTable) -> Markup {
    html! {
        h3 { "CREI per IPC, " (table.mode.name()) (regime(table.training, table.evaluation)) }
        div.table-wrap { table.sortable {
            thead { tr {
                (header("Method", false))
                @for ipc in &table.ipcs { (header(&ipc_heading(*ipc), true)) }
            } }
            tbody {
                @for row in &table.rows {
                    tr class=[incomplete(row.complete)] {
                        (method_cell(&row.method, row.complete))
                        @for crei in &row.crei { (value_cell(*crei)) }
                    }
                }
            }
        } }
    }
}

fn adversarial_training(table: &AtTable) -> Markup {
    let sides = |row: &AtRow| [row.standard, row.adversarial];
    let pick = |side: Option<AtScores>, value: fn(&AtScores) -> f64| side.as_ref().map(value);
    html! {
        h3 { "Standard (std) vs adversarial training (AT), " (table.evaluation.name()) " evaluation" }
        div.table-wrap { table.sortable {
            thead { tr {
                (header("Method", false)) (header("IPC", false)) (header("Mode", false))
                (header("Clean std", true)) (header("Clean AT", true)) (header("RRM std", true)) (header("RRM AT", true))
                (header("AEM std", true)) (header("AEM AT", true)) (header("CREI std", true)) (header("CREI AT", true))
                (header("Δ CREI", true))
            } }
            tbody {
                @for row in &table.rows {
                    @let complete = sides(row).iter().flatten().all(|side| side.complete);
                    tr class=[incomplete(complete)] {
                        (method_cell(&row.method, complete))
                        td { (ipc_heading(row.ipc)) }
                        td { (row.mode.name()) }
                        @for side in sides(row) { (stat_cell(side.map(|side| side.clean_accuracy))) }
                        @for side in sides(row) { (value_cell(pick(side, |scores| scores.rrm))) }
                        @for side in sides(row) { (value_cell(pick(side, |scores| scores.aem))) }
                        @for side in sides(row) { (value_cell(pick(side, |scores| scores.crei))) }
                        (value_cell(row.crei_change))
                    }
                }
            }
        } }
    }
}

/// Every attack's robust accuracy under the standard and the beard-compat evaluation.
fn evaluation_modes(table: &EvaluationComparison) -> Markup {
    let (standard, compat) = (Evaluation::STANDARD.name(), Evaluation::BEARD_COMPAT.name());
    let with_training = table.rows.iter().any(|row| !row.training.is_standard());
    let pick = |side: Option<EvaluatedAccuracy>, value: fn(&EvaluatedAccuracy) -> Stat| side.as_ref().map(value);
    html! {
        h3 { "Evaluation modes: robust accuracy under " (standard) " vs " (compat) }
        div.table-wrap { table.sortable {
            thead { tr {
                (header("Method", false)) (header("IPC", false)) @if with_training { (header("Training", false)) }
                (header("Mode", false)) (header("Attack", false))
                (header(&format!("Clean {standard}"), true)) (header(&format!("Clean {compat}"), true))
                (header(&format!("Robust {standard}"), true)) (header(&format!("Robust {compat}"), true))
                (header(&format!("Δ ({compat} − {standard})"), true))
            } }
            tbody {
                @for row in &table.rows {
                    @let sides = [row.standard, row.beard_compat];
                    @let complete = sides.iter().flatten().all(|side| side.complete);
                    tr class=[incomplete(complete)] {
                        (method_cell(&row.method, complete))
                        td { (ipc_heading(row.ipc)) }
                        @if with_training { td { (row.training.name()) } }
                        td { (row.mode.name()) }
                        td { (row.attack) }
                        @for side in sides { (stat_cell(pick(side, |side| side.clean_accuracy))) }
                        @for side in sides { (stat_cell(pick(side, |side| side.robust_accuracy))) }
                        (value_cell(row.difference))
                    }
                }
            }
        } }
    }
}

fn figures<'a>(charts: impl Iterator<Item = &'a Chart<'a>>) -> Markup {
    html! {
        div.figures {
            @for chart in charts {
                @let svg = format!("plots/{}.svg", chart.figure.stem);
                figure {
                    img src=(svg) alt=(chart.figure.chart.title()) width=(WIDTH) height=(HEIGHT);
                    figcaption {
                        (chart.figure.chart.title()) " — " a href=(svg) { "SVG" }
                        @if chart.png { " · " a href=(format!("plots/{}.png", chart.figure.stem)) { "PNG" } }
                    }
                }
            }
        }
    }
}

fn provenance_block(report: &Report, provenance: &Provenance) -> Markup {
    let modes: Vec<&str> =
        distinct(report.leaderboards.iter().map(|board| board.mode)).into_iter().map(Mode::name).collect();
    html! {
        section #provenance {
            h2 { "Provenance" }
            dl {
                dt { "Sources" }
                dd {
                    @if provenance.sources.is_empty() { "—" }
                    @for source in &provenance.sources {
                        div { (source.kind) " " code { (source.name) } ", SHA-256 " code { (source.sha256) } }
                    }
                }
                dt { "beard-rs commit" }
                dd { code { (provenance.commit) } }
                dt { "Devices" }
                dd {
                    @if provenance.devices.is_empty() { "—" }
                    @for device in &provenance.devices { div { code { (device.device) } " (" (device.results) " results)" } }
                }
                dt { "Evaluation" }
                dd {
                    @if provenance.evaluation.is_empty() { "—" }
                    @for line in &provenance.evaluation { div { (line) } }
                    @if !modes.is_empty() { div { "Modes: " (modes.join(", ")) "." } }
                }
                dt { "Metric options" }
                dd {
                    "α = " (number(report.options.alpha)) ", RR variant " (report.options.rr_variant.name())
                    ", time basis " (report.options.time_basis.name())
                }
                dt { "Results" }
                dd {
                    (report.results) " placed"
                    @if report.unplaced_results > 0 { ", " (report.unplaced_results) " left out (no dataset or attack)" }
                }
            }
        }
    }
}
