//! Parsed BEARD log lines -> report settings, one per (dataset, method, IPC, mode).
//!
//! Each (dataset, method, IPC) needs exactly one `Clean` line and at most one line per attack.
//! Following BEARD's own metric scripts:
//!
//! - c of a mode is the `Clean` line's accuracy in that mode (the reference logs the same value
//!   twice), and the clean time is the smaller of the line's two timings, for both modes;
//! - each attack line gives the robust accuracy ± std and the time of each mode;
//! - targeted DeepFool and AutoAttack are absent: the reference does not run them and only
//!   repeats the clean accuracy on their rows;
//! - untargeted SPSA is absent: the reference's untargeted `Spsa` branch runs AutoAttack
//!   (../shared/BLACKBOX.md, section 2), so its figure is not SPSA's;
//! - a mode without any attack has no setting.
//!
//! A BEARD log describes one trained model, so every imported setting has the one seed
//! [`LOGGED_SEED`]; the `±` of a line becomes the std of its cell. The logs are written by BEARD's
//! reference code, so every imported setting has the evaluation mode `beard-compat`.

use std::collections::{BTreeMap, BTreeSet};

use super::ImportError;
use super::beard_logs::{Column, LogLine};
use crate::report::{
    Attack, AttackSummary, Evaluation, Ipc, Mode, SettingKey, SettingSummary, Stat, Summaries, Training,
};

/// The seed every imported setting and attack is recorded under.
pub(crate) const LOGGED_SEED: u32 = 0;

/// Whether the reference really ran `attack` in `mode`: not targeted DeepFool or AutoAttack
/// (their rows repeat the clean accuracy), not untargeted SPSA (its row is AutoAttack's).
pub(crate) fn measured(attack: Attack, mode: Mode) -> bool {
    match mode {
        Mode::Targeted => !["deepfool", "autoattack"].contains(&attack.name()),
        Mode::Untargeted => attack.name() != "spsa",
    }
}

/// The lines of one evaluated model: (dataset, method, IPC).
#[derive(Default)]
struct Model<'a> {
    clean: Option<&'a LogLine>,
    attacks: BTreeMap<Attack, &'a LogLine>,
}

/// The settings of the lines, sorted by key; `results` counts the lines.
pub(crate) fn summarize(lines: &[LogLine]) -> Result<Summaries, ImportError> {
    let mut models: BTreeMap<(&str, &str, u32), Model<'_>> = BTreeMap::new();
    for line in lines {
        let model = models.entry((&line.dataset, &line.method, line.ipc)).or_default();
        let earlier = match line.column {
            Column::Clean => model.clean.replace(line),
            Column::Attack(attack) => model.attacks.insert(attack, line),
        };
        if let Some(first) = earlier {
            return Err(ImportError::Duplicate { at: line.at.clone(), first: first.at.clone(), what: line.describe() });
        }
    }
    let mut settings = Vec::new();
    for model in models.values() {
        settings.extend(model_settings(model)?);
    }
    Ok(Summaries { settings, results: lines.len(), unplaced: 0, devices: Vec::new(), transfer: Vec::new() })
}

/// The untargeted and targeted settings of one model, those with attacks.
fn model_settings(model: &Model<'_>) -> Result<Vec<SettingSummary>, ImportError> {
    let Some(clean) = model.clean else {
        // A model enters the map with its first line, so it has a clean line or an attack.
        let Some(first) = model.attacks.values().min_by_key(|line| (&line.at.file, line.at.line)) else {
            return Ok(Vec::new());
        };
        return Err(ImportError::NoClean { at: first.at.clone(), what: first.describe() });
    };
    let clean_time = clean.targeted.time.min(clean.untargeted.time);
    let seeds = BTreeSet::from([LOGGED_SEED]);
    let settings = [Mode::Untargeted, Mode::Targeted].into_iter().filter_map(|mode| {
        let attacks: Vec<AttackSummary> = model
            .attacks
            .iter()
            .filter(|(attack, _)| measured(**attack, mode))
            .map(|(attack, line)| {
                let measured = line.measurement(mode);
                AttackSummary {
                    attack: *attack,
                    robust_accuracy: Stat { mean: measured.accuracy, std: measured.std },
                    time: measured.time,
                    seeds: seeds.clone(),
                }
            })
            .collect();
        let measured = clean.measurement(mode);
        (!attacks.is_empty()).then(|| SettingSummary {
            key: SettingKey {
                dataset: clean.dataset.clone(),
                method: clean.method.clone(),
                ipc: Ipc::PerClass(clean.ipc),
                training: Training::Standard,
                evaluation: Evaluation::BEARD_COMPAT,
                mode,
            },
            seeds: seeds.clone(),
            clean_accuracy: Stat { mean: measured.accuracy, std: measured.std },
            clean_time,
            attacks,
            model_pool: false,
        })
    });
    Ok(settings.collect())
}
