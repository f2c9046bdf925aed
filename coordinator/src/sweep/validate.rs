//! Cross-field rules of a sweep file that no single field's type can check: roots for real
//! datasets, repeated list entries, untargeted-only attacks against the sweep's modes, a file
//! for every (dataset, IPC) of a file-based method, and the range of CREI's alpha.

use std::fmt;

use super::document::SweepFile;
use super::error::Issue;
use super::methods::MethodSource;
use super::path::FieldPath;

/// The first rule the file breaks, if any, named by the node to blame.
pub(super) fn check(file: &SweepFile) -> Result<(), Issue> {
    check_datasets(file)?;
    unique(&file.ipc.0, FieldPath::root().key("ipc"), "ipc")?;
    unique(&file.targeted.0, FieldPath::root().key("targeted"), "mode")?;
    check_attacks(file)?;
    check_methods(file)?;
    check_metrics(file)
}

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
    for attack in &file.attacks.0 {
        let path = FieldPath::root().key("attacks").key(attack.name);
        match &attack.targeted {
            Some(modes) => unique(modes, path.key("targeted"), "mode")?,
            None if !attack.name.supports_targeted() && file.targeted.0.contains(&true) => {
                return Err(Issue::new(
                    path,
                    format!(
                        "{} runs untargeted only (as in BEARD), but the sweep-level `targeted` \
                         includes true; add `targeted: [false]` to this attack",
                        attack.name
                    ),
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// A file-based method needs a file for every dataset and IPC the sweep evaluates; files for
/// other datasets or IPCs are allowed (a method's pool may be larger than one sweep).
fn check_methods(file: &SweepFile) -> Result<(), Issue> {
    for (name, source) in &file.methods.0 {
        let MethodSource::Files(set) = source else { continue };
        let files_path = FieldPath::root().key("methods").key(name).key("files");
        for dataset in file.datasets.keys() {
            let Some(per_ipc) = set.files.get(dataset) else {
                return Err(Issue::new(
                    files_path,
                    format!("no files for dataset {dataset}, which the sweep evaluates"),
                ));
            };
            if let Some(ipc) = file.ipc.0.iter().find(|ipc| per_ipc.get(ipc).is_none()) {
                return Err(Issue::new(
                    files_path.key(dataset),
                    format!("no file for ipc {ipc}, which the sweep evaluates"),
                ));
            }
        }
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
