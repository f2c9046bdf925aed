//! Which charts a report has, and their data. Per dataset, evaluation mode, training regime and
//! mode: CREI against IPC (from the CREI-per-IPC table) and RRM and AEM per method (from the
//! multi-IPC table). Per dataset, evaluation mode and mode with models trained both ways: each
//! setting's CREI under standard and adversarial training (from the adversarial-training table).
//! Every title names its evaluation mode; file names of the standard regime and evaluation carry
//! only the mode, the others add `-adversarial` and `-beard-compat`.
//!
//! The Full-size baseline — results on the whole training split, or the method named `full` — is
//! a horizontal line on the CREI chart rather than a line over IPCs.

use super::Report;
use super::compare::AtTable;
use super::markdown::regime;
use super::observe::{Evaluation, Ipc, Mode, Training};
use super::per_ipc::{CreiPerIpcRow, CreiPerIpcTable};
use super::plots::{BarGroup, Baseline, Chart, CreiByIpc, PairedBars, Series};
use super::tables::MultiIpcTable;

/// The name BEARD gives its Full-size baseline.
const FULL_METHOD: &str = "full";

/// One chart of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File name without extension: lowercase ASCII letters, digits and `-`, unique in a report.
    pub stem: String,
    pub dataset: String,
    pub chart: Chart,
}

/// The figures of a report, datasets in report order.
pub fn figures(report: &Report) -> Vec<Figure> {
    let stems = Stems::new(report.multi_ipc.iter().map(|table| table.dataset.as_str()));
    let mut figures = Vec::new();
    for table in &report.multi_ipc {
        let dataset = table.dataset.as_str();
        let stem = stems.of(dataset);
        for per_ipc in report.crei_per_ipc.iter().filter(|per_ipc| per_ipc.dataset == dataset) {
            let setting = file_setting(per_ipc.mode, per_ipc.training, per_ipc.evaluation);
            figures.push(Figure {
                stem: format!("{stem}-crei-by-ipc-{setting}"),
                dataset: dataset.to_owned(),
                chart: Chart::CreiByIpc(crei_by_ipc(per_ipc)),
            });
            figures.push(Figure {
                stem: format!("{stem}-rrm-aem-{setting}"),
                dataset: dataset.to_owned(),
                chart: Chart::PairedBars(rrm_aem(table, per_ipc.training, per_ipc.evaluation, per_ipc.mode)),
            });
        }
        for at in report.adversarial_training.iter().filter(|at| at.dataset == dataset) {
            for mode in [Mode::Untargeted, Mode::Targeted] {
                if at.rows.iter().any(|row| row.mode == mode) {
                    figures.push(Figure {
                        stem: format!(
                            "{stem}-adversarial-training-{}",
                            file_setting(mode, Training::Standard, at.evaluation)
                        ),
                        dataset: dataset.to_owned(),
                        chart: Chart::PairedBars(training_comparison(at, mode)),
                    });
                }
            }
        }
    }
    figures
}

/// The part of a file name that tells a chart's setting: the mode, then `-adversarial` and
/// `-beard-compat` where they apply.
fn file_setting(mode: Mode, training: Training, evaluation: Evaluation) -> String {
    let mut setting = mode.name().to_owned();
    if training == Training::Adversarial {
        setting.push_str("-adversarial");
    }
    if evaluation != Evaluation::STANDARD {
        setting.push('-');
        setting.push_str(evaluation.name());
    }
    setting
}

fn crei_by_ipc(table: &CreiPerIpcTable) -> CreiByIpc {
    let mut lines = Vec::new();
    let mut baselines = Vec::new();
    for row in &table.rows {
        let values: Vec<(Ipc, f64)> =
            table.ipcs.iter().zip(&row.crei).filter_map(|(ipc, crei)| Some((*ipc, (*crei)?))).collect();
        if is_full_size(row, &values) {
            let crei: Vec<f64> = values.iter().map(|(_, crei)| *crei).collect();
            let label =
                if row.method == FULL_METHOD { "Full-size".to_owned() } else { format!("Full-size ({})", row.method) };
            baselines.push(Baseline { label, value: crate::metrics::stats::mean(&crei) });
        } else {
            let points = values
                .iter()
                .filter_map(|(ipc, crei)| match ipc {
                    Ipc::PerClass(ipc) => Some((*ipc, *crei)),
                    Ipc::Full => None,
                })
                .collect();
            lines.push(Series { label: row.method.clone(), points });
        }
    }
    let title = format!(
        "{}, {}{}: CREI against IPC",
        table.dataset,
        table.mode.name(),
        regime(table.training, table.evaluation)
    );
    CreiByIpc { title, lines, baselines }
}

fn is_full_size(row: &CreiPerIpcRow, values: &[(Ipc, f64)]) -> bool {
    !values.is_empty() && (row.method == FULL_METHOD || values.iter().all(|(ipc, _)| *ipc == Ipc::Full))
}

fn rrm_aem(table: &MultiIpcTable, training: Training, evaluation: Evaluation, mode: Mode) -> PairedBars {
    PairedBars {
        title: format!(
            "{}, {}{}: RRM and AEM pooled across IPCs",
            table.dataset,
            mode.name(),
            regime(training, evaluation)
        ),
        x_label: "Method".into(),
        y_label: "Score (%)".into(),
        series: ["RRM".into(), "AEM".into()],
        groups: table
            .rows
            .iter()
            .filter(|row| row.training == training && row.evaluation == evaluation && row.mode == mode)
            .map(|row| BarGroup { label: row.method.clone(), values: [Some(row.rrm), Some(row.aem)] })
            .collect(),
    }
}

/// Each setting's CREI under standard and adversarial training.
fn training_comparison(table: &AtTable, mode: Mode) -> PairedBars {
    PairedBars {
        title: format!(
            "{}, {}, {} evaluation: CREI with and without adversarial training",
            table.dataset,
            mode.name(),
            table.evaluation.name()
        ),
        x_label: "Method (IPC)".into(),
        y_label: "CREI (%)".into(),
        series: ["Standard training".into(), "Adversarial training".into()],
        groups: table
            .rows
            .iter()
            .filter(|row| row.mode == mode)
            .map(|row| BarGroup {
                label: match row.ipc {
                    Ipc::PerClass(ipc) => format!("{} ({ipc})", row.method),
                    Ipc::Full => format!("{} (Full-size)", row.method),
                },
                values: [row.standard.map(|side| side.crei), row.adversarial.map(|side| side.crei)],
            })
            .collect(),
    }
}

/// File-name stems for dataset names: lowercase ASCII alphanumerics with `-` for anything else,
/// numbered where two names would give the same stem.
struct Stems(Vec<(String, String)>);

impl Stems {
    fn new<'a>(datasets: impl Iterator<Item = &'a str>) -> Self {
        let mut stems: Vec<(String, String)> = Vec::new();
        for dataset in datasets {
            let mut stem: String = dataset
                .chars()
                .map(|character| if character.is_ascii_alphanumeric() { character.to_ascii_lowercase() } else { '-' })
                .collect();
            let base = stem.clone();
            let mut number = 1;
            while stem.is_empty() || stems.iter().any(|(_, taken)| *taken == stem) {
                number += 1;
                stem = format!("{base}-{number}");
            }
            stems.push((dataset.to_owned(), stem));
        }
        Self(stems)
    }

    fn of(&self, dataset: &str) -> &str {
        self.0.iter().find(|(name, _)| name == dataset).map_or("", |(_, stem)| stem.as_str())
    }
}
