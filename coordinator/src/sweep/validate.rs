//! Cross-field rules of a sweep file that no single field's type can check: roots for real
//! datasets, repeated list entries, untargeted-only attacks against the sweep's modes, exactly one
//! file (distilled set or checkpoint) for every (dataset, IPC) of a file-based method, DC's and
//! DSA's loops for every IPC, the
//! methods a `transfer:` section names, adversarial-training settings that no regime
//! uses, the range of CREI's alpha, and the size of the task grid.

use std::fmt;

use super::adversarial::Regime;
use super::attacks::Attacks;
use super::document::SweepFile;
use super::error::Issue;
use super::methods::MethodSource;
use super::names::DatasetName;
use super::path::FieldPath;

/// The first rule the file breaks, if any, named by the node to blame.
pub(super) fn check(file: &SweepFile) -> Result<(), Issue> {
    check_datasets(file)?;
    unique(&file.ipc.0, FieldPath::root().key("ipc"), "ipc")?;
    unique(&file.targeted.0, FieldPath::root().key("targeted"), "mode")?;
    unique(&file.training_regimes.0, FieldPath::root().key("training_regimes"), "regime")?;
    unique(&file.evaluation.modes.0, FieldPath::root().key("evaluation").key("modes"), "evaluation mode")?;
    check_adversarial(file)?;
    check_attacks(file)?;
    check_transfer(file)?;
    check_methods(file)?;
    check_metrics(file)?;
    check_grid(file)
}

/// The most tasks (train and attack together) one sweep may expand into. The full BEARD grid is
/// under 3,000; the limit keeps a typo such as `seeds: 4000000000` from exhausting the
/// coordinator's memory when it expands the sweep.
pub(super) const MAX_TASKS: u64 = 1_000_000;

fn check_datasets(file: &SweepFile) -> Result<(), Issue> {
    for (name, settings) in &file.datasets.0 {
        let path = FieldPath::root().key("datasets").key(name);
        match (name.needs_root(), &settings.root) {
            (true, None) => {
                return Err(Issue::new(
                    path,
                    format!("{name} needs `root:`, the directory holding its files on the agents"),
                ));
            }
            (false, Some(_)) => {
                return Err(Issue::new(path.key("root"), format!("{name} is built in and takes no root")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a list that repeats an entry, blaming the repetition.
fn unique<T: PartialEq + fmt::Display>(items: &[T], path: FieldPath, what: &str) -> Result<(), Issue> {
    for (index, item) in items.iter().enumerate() {
        if items[..index].contains(item) {
            return Err(Issue::new(path.index(index), format!("duplicate {what} {item}")));
        }
    }
    Ok(())
}

fn check_attacks(file: &SweepFile) -> Result<(), Issue> {
    check_attack_list(&file.attacks, &file.targeted.0, FieldPath::root().key("attacks"), "the sweep-level `targeted`")
}

/// Each attack's own `targeted:` list has no repeats, and an untargeted-only attack without one
/// is not asked for a targeted run by `modes` (the list that applies, named by `modes_name`).
fn check_attack_list(attacks: &Attacks, modes: &[bool], section: FieldPath, modes_name: &str) -> Result<(), Issue> {
    for attack in &attacks.0 {
        let path = section.clone().key(attack.name);
        match &attack.targeted {
            Some(modes) => unique(modes, path.key("targeted"), "mode")?,
            None if !attack.name.supports_targeted() && modes.contains(&true) => {
                return Err(Issue::new(
                    path,
                    format!(
                        "{} runs untargeted only (as in BEARD), but {modes_name} includes true; add \
                         `targeted: [false]` to this attack",
                        attack.name
                    ),
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// The `transfer:` section: its methods exist and are not repeated, its modes and attacks follow
/// the rules of the top-level ones.
fn check_transfer(file: &SweepFile) -> Result<(), Issue> {
    let Some(transfer) = &file.transfer else { return Ok(()) };
    let section = FieldPath::root().key("transfer");
    let modes = transfer.targeted.as_ref().unwrap_or(&file.targeted);
    if let Some(targeted) = &transfer.targeted {
        unique(&targeted.0, section.clone().key("targeted"), "mode")?;
    }
    let modes_name = if transfer.targeted.is_some() { "`transfer.targeted`" } else { "the sweep-level `targeted`" };
    check_attack_list(&transfer.attacks, &modes.0, section.clone().key("attacks"), modes_name)?;
    for (field, names) in [("sources", &transfer.sources), ("targets", &transfer.targets)] {
        let Some(names) = names else { continue };
        let path = section.clone().key(field);
        unique(&names.0, path.clone(), "method")?;
        for (index, name) in names.0.iter().enumerate() {
            if !file.methods.0.iter().any(|(method, _)| method.0 == name.0) {
                let known: Vec<&str> = file.methods.0.iter().map(|(method, _)| method.0.as_str()).collect();
                return Err(Issue::new(
                    path.index(index),
                    format!("unknown method {name}; the sweep's methods are {}", known.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

/// A file-based method needs a distilled-set file or a checkpoint, not both, for every dataset
/// and IPC the sweep evaluates; files for other datasets or IPCs are allowed (a method's pool may
/// be larger than one sweep).
fn check_methods(file: &SweepFile) -> Result<(), Issue> {
    for (name, entry) in &file.methods.0 {
        let source = &entry.source;
        let method = FieldPath::root().key("methods").key(name);
        if let MethodSource::Distill(settings) = source
            && let Some(ipc) = file.ipc.0.iter().find(|ipc| settings.lacks_loops(ipc.0))
        {
            return Err(Issue::new(
                method.key("distill"),
                format!(
                    "the reference has no outer and inner loops for ipc {ipc} (only for 1, 10, 20, 30, 40 and 50); \
                     set `outer_loop` and `inner_loop`"
                ),
            ));
        }
        let MethodSource::Files(set) = source else { continue };
        // Blame the section that names the dataset (else the first section there is).
        let section_of = |dataset: &DatasetName| {
            let in_files = set.files.as_ref().is_some_and(|files| files.get(dataset).is_some());
            let in_checkpoints = set.checkpoints.as_ref().is_some_and(|checkpoints| checkpoints.get(dataset).is_some());
            match (in_files, in_checkpoints) {
                (true, _) => Some("files"),
                (false, true) => Some("checkpoints"),
                (false, false) => None,
            }
        };
        let first_section = if set.files.is_some() { "files" } else { "checkpoints" };
        for dataset in file.datasets.keys() {
            for ipc in &file.ipc.0 {
                match (set.file(*dataset, *ipc), set.checkpoint(*dataset, *ipc)) {
                    (Some(_), Some(_)) => {
                        return Err(Issue::new(
                            method.key("checkpoints").key(dataset).key(ipc),
                            format!(
                                "{dataset} ipc {ipc} has both a distilled-set file and a checkpoint; a method takes \
                                 one of the two per dataset and IPC"
                            ),
                        ));
                    }
                    (None, None) => {
                        let (path, what) = match section_of(dataset) {
                            Some(section) => (method.key(section).key(dataset), format!("ipc {ipc}")),
                            None => (method.key(first_section), format!("dataset {dataset}")),
                        };
                        return Err(Issue::new(
                            path,
                            format!("no file or checkpoint for {what}, which the sweep evaluates"),
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// Adversarial-training settings that no regime uses are a mistake, not something to ignore.
fn check_adversarial(file: &SweepFile) -> Result<(), Issue> {
    if file.training.adversarial.is_some() && !file.training_regimes.0.contains(&Regime::Adversarial) {
        return Err(Issue::new(
            FieldPath::root().key("training").key("adversarial"),
            "adversarial training is configured but `training_regimes` does not include adversarial; add \
             `training_regimes: [standard, adversarial]` (or `[adversarial]`)",
        ));
    }
    Ok(())
}

fn check_metrics(file: &SweepFile) -> Result<(), Issue> {
    let alpha = file.metrics.alpha;
    if (0.0..=1.0).contains(&alpha) {
        Ok(())
    } else {
        Err(Issue::new(
            FieldPath::root().key("metrics").key("alpha"),
            format!("expected a number in [0, 1], found {alpha}"),
        ))
    }
}

/// Refuses a sweep whose grid exceeds [`MAX_TASKS`], blaming the largest dimension the file can
/// make arbitrarily large: the seed count, the IPC list or the method list. A `full` method
/// trains once per dataset, regime and seed, whatever the IPCs.
fn check_grid(file: &SweepFile) -> Result<(), Issue> {
    let count = |len: usize| u64::try_from(len).unwrap_or(u64::MAX);
    let seeds = u64::from(file.seeds.0);
    let (ipcs, methods) = (count(file.ipc.0.len()), count(file.methods.0.len()));
    let sets: u64 = file
        .methods
        .0
        .iter()
        .map(|(_, entry)| if matches!(entry.source, MethodSource::Full(_)) { 1 } else { ipcs })
        .fold(0u64, u64::saturating_add);
    let regimes = count(file.training_regimes.0.len());
    let trains = [count(file.datasets.0.len()), sets, regimes, seeds].into_iter().fold(1u64, u64::saturating_mul);
    let modes: u64 = file
        .attacks
        .0
        .iter()
        .map(|attack| count(attack.targeted.as_ref().map_or(file.targeted.0.len(), Vec::len)))
        .fold(0u64, u64::saturating_add);
    let evaluations = count(file.evaluation.modes.0.len());
    let tasks = trains.saturating_add(trains.saturating_mul(modes).saturating_mul(evaluations));
    if tasks <= MAX_TASKS {
        return Ok(());
    }
    let blamed = if seeds >= ipcs && seeds >= methods {
        "seeds"
    } else if ipcs >= methods {
        "ipc"
    } else {
        "methods"
    };
    Err(Issue::new(
        FieldPath::root().key(blamed),
        format!("the sweep expands to {tasks} tasks, more than the limit of {MAX_TASKS}"),
    ))
}
