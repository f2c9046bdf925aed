//! A sweep's results and imported BEARD logs in one report, so that a new method is ranked
//! against published ones: the imported settings join the sweep's on the same boards. Imported
//! numbers come from BEARD's reference code, so they are `beard-compat` numbers
//! ([`crate::import`] gives them that evaluation mode): they share the boards of the sweep's
//! `beard-compat` results, never those of its `standard` ones.
//!
//! - Datasets: BEARD logs name them as the reference code does (`CIFAR10`, `Tiny`); an imported
//!   dataset takes the name of the sweep's dataset it spells (ignoring case and punctuation;
//!   `Tiny` is TinyImageNet), so that both land on one board.
//! - Methods: an imported method whose name the sweep also uses (with or without results) is
//!   renamed `NAME (BEARD log)`, so that the two stay apart.

use super::observe::{self, Summaries};
use super::{Report, ReportInput, assemble};
use crate::import::Imported;

/// The report of `input` with the settings of `imported` beside its own; the sweep's methods
/// come first, imported ones after them by name.
pub fn build_with_imports(input: &ReportInput, imported: &Imported) -> Report {
    let combined = combine(observe::summarize(input), &input.method_order, imported.summaries());
    assemble(&input.sweep_name, input.options, &input.method_order, &combined)
}

/// `sweep` with `imported` added; `method_order` names the sweep's methods, with or without results.
fn combine(mut sweep: Summaries, method_order: &[String], imported: &Summaries) -> Summaries {
    let mut methods: Vec<String> = sweep.settings.iter().map(|setting| setting.key.method.clone()).collect();
    methods.extend(method_order.iter().cloned());
    let datasets: Vec<String> = sweep.settings.iter().map(|setting| setting.key.dataset.clone()).collect();
    for setting in &imported.settings {
        let mut setting = setting.clone();
        if methods.contains(&setting.key.method) {
            setting.key.method = format!("{} (BEARD log)", setting.key.method);
        }
        if let Some(dataset) = datasets.iter().find(|dataset| spelling(dataset) == spelling(&setting.key.dataset)) {
            setting.key.dataset = dataset.clone();
        }
        sweep.settings.push(setting);
    }
    for record in &imported.transfer {
        let mut record = record.clone();
        for method in [&mut record.source, &mut record.target] {
            if methods.contains(method) {
                *method = format!("{method} (BEARD log)");
            }
        }
        if let Some(dataset) = datasets.iter().find(|dataset| spelling(dataset) == spelling(&record.setting.dataset)) {
            record.setting.dataset = dataset.clone();
        }
        sweep.transfer.push(record);
    }
    sweep.settings.sort_by(|left, right| left.key.cmp(&right.key));
    sweep.results += imported.results;
    sweep.unplaced += imported.unplaced;
    sweep
}

/// A dataset name without case or punctuation, BEARD's `Tiny` read as TinyImageNet.
fn spelling(dataset: &str) -> String {
    let letters: String =
        dataset.chars().filter(char::is_ascii_alphanumeric).map(|character| character.to_ascii_lowercase()).collect();
    if letters == "tiny" { "tinyimagenet".to_owned() } else { letters }
}
