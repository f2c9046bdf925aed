//! A Transfer log's per-target accuracies -> transfer records, as BEARD's
//! `convert_to_white_box.py` reads them: for each line's attack and mode, each target model's
//! accuracy (×100) on the examples crafted on the line's (source) model, with the source's times.
//! The `Clean` line gives each target's clean accuracy and the source's clean times. Each
//! dictionary of a line (one per run) is one seed. Rows the reference did not really run
//! ([`super::settings::measured`]) are left out, as on the white-box boards. The source is among
//! BEARD's targets, so its own column, the white-box figure, comes from the log too.

use std::collections::BTreeMap;

use super::ImportError;
use super::beard_logs::{Column, LogLine};
use super::settings::measured;
use crate::report::{Evaluation, Ipc, Mode, Training, TransferRecord, TransferSetting};

/// The records of every line with per-target accuracies.
pub(crate) fn records(lines: &[LogLine]) -> Result<Vec<TransferRecord>, ImportError> {
    let mut cleans: BTreeMap<(&str, &str, u32), &LogLine> = BTreeMap::new();
    for line in lines.iter().filter(|line| line.column == Column::Clean) {
        cleans.insert((&line.dataset, &line.method, line.ipc), line);
    }
    let mut records = Vec::new();
    for line in lines.iter().filter(|line| !line.transfer_targeted.is_empty() || !line.transfer_untargeted.is_empty()) {
        let Column::Attack(attack) = line.column else { continue };
        let clean = cleans
            .get(&(line.dataset.as_str(), line.method.as_str(), line.ipc))
            .ok_or_else(|| ImportError::NoClean { at: line.at.clone(), what: line.describe() })?;
        let clean_time = clean.targeted.time.min(clean.untargeted.time);
        for mode in [Mode::Untargeted, Mode::Targeted].into_iter().filter(|mode| measured(attack, *mode)) {
            let (runs, clean_runs) = match mode {
                Mode::Targeted => (&line.transfer_targeted, &clean.transfer_targeted),
                Mode::Untargeted => (&line.transfer_untargeted, &clean.transfer_untargeted),
            };
            let setting = TransferSetting {
                dataset: line.dataset.clone(),
                ipc: Ipc::PerClass(line.ipc),
                training: Training::Standard,
                evaluation: Evaluation::BEARD_COMPAT,
                mode,
            };
            for (seed, run) in runs.iter().enumerate() {
                for (target, fraction) in run {
                    let target_clean = clean_runs
                        .get(seed)
                        .and_then(|clean_run| clean_run.iter().find(|(name, _)| name == target))
                        .map(|(_, fraction)| 100.0 * fraction)
                        .ok_or_else(|| ImportError::NoClean {
                            at: line.at.clone(),
                            what: format!("{} judged by {target} (run {seed})", line.describe()),
                        })?;
                    records.push(TransferRecord {
                        setting: setting.clone(),
                        attack,
                        source: line.method.clone(),
                        target: target.clone(),
                        seed: seed as u32,
                        target_clean,
                        robust: 100.0 * fraction,
                        attack_time: line.measurement(mode).time,
                        clean_time,
                    });
                }
            }
        }
    }
    Ok(records)
}
