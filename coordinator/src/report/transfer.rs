//! Transfer results -> source × target matrices of robust accuracy, and BEARD's black-box
//! scores per target.
//!
//! Every transfer shard gives one [`TransferRecord`] per model that judged its examples: the
//! source itself (the diagonal: the shard's own, white-box, figures) and each transfer target.
//! Imported BEARD Transfer logs give records too ([`crate::import`]), so both reach the same
//! tables.
//!
//! - A [`TransferMatrix`] per (dataset, IPC, training regime, evaluation mode, attack, mode): rows
//!   are sources, columns targets (methods in the sweep's order, then by name), each cell the
//!   target's robust accuracy against the true labels on the source's examples, mean ± sample
//!   std over the seeds.
//! - A [`BlackBoxBoard`] per (dataset, IPC, training regime, evaluation mode, mode, target), the
//!   way BEARD's `metrics/black_box` scores a converted Transfer log: one row per source, whose
//!   clean accuracy is the target's, whose attack accuracies are the target's on that source's
//!   examples, and whose times are the source's (crafting; the clean time the smaller of the
//!   source's targeted and untargeted clean times, as for white-box boards). RR, AE and CREI
//!   follow from those with the report's options. AE is therefore the same for every target of
//!   a source, as in BEARD; nothing is averaged across targets or sources.

use std::collections::{BTreeMap, BTreeSet};

use beard_proto::v1::{AttackShard, AttackSpec};
use serde::Serialize;

use super::observe::{Attack, Evaluation, Ipc, Mode, Stat, Training};
use super::timing::shard_times;
use crate::metrics::stats::mean;
use crate::metrics::{AttackObservation, MetricOptions, Scores, SettingObservation, TimeBasis, evaluate};

/// The table a transfer record belongs to, less its attack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TransferSetting {
    pub dataset: String,
    pub ipc: Ipc,
    #[serde(skip_serializing_if = "Training::is_standard")]
    pub training: Training,
    pub evaluation: Evaluation,
    pub mode: Mode,
}

/// One model's judgement of the examples one attack crafted on one source model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TransferRecord {
    pub setting: TransferSetting,
    pub attack: Attack,
    pub source: String,
    pub target: String,
    pub seed: u32,
    /// The target's accuracies (percent) on the clean and on the adversarial images.
    pub target_clean: f64,
    pub robust: f64,
    /// The source's attack (crafting) and clean times, in the time basis.
    pub attack_time: f64,
    pub clean_time: f64,
}

/// The records of one transfer shard: the source's own, then one per transfer target. `None`
/// for a white-box shard or a spec without dataset or known attack.
pub(crate) fn records(spec: &AttackSpec, shard: &AttackShard, basis: TimeBasis) -> Option<Vec<TransferRecord>> {
    if spec.transfer_targets.is_empty() {
        return None;
    }
    let train = spec.train.as_ref()?;
    let setting = TransferSetting {
        dataset: train.dataset.as_ref()?.name.clone(),
        ipc: Ipc::of(train),
        training: Training::of(train),
        evaluation: Evaluation::of(spec),
        mode: Mode::of(spec.targeted),
    };
    let attack = Attack::of(spec.attack.as_ref()?)?;
    let times = shard_times(shard, basis);
    let record = |target: &str, target_clean: f64, robust: f64| TransferRecord {
        setting: setting.clone(),
        attack,
        source: train.method.clone(),
        target: target.to_owned(),
        seed: train.seed,
        target_clean,
        robust,
        attack_time: times.attack,
        clean_time: times.clean,
    };
    let mut records = vec![record(&train.method, shard.clean_accuracy, shard.robust_accuracy)];
    for outcome in &shard.transfer {
        let target = spec.transfer_targets.iter().find(|target| target.train_task_id == outcome.train_task_id)?;
        records.push(record(&target.train.as_ref()?.method, outcome.clean_accuracy, outcome.robust_accuracy));
    }
    Some(records)
}

/// Robust accuracy of every target on every source's examples, for one attack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferMatrix {
    #[serde(flatten)]
    pub setting: TransferSetting,
    pub attack: &'static str,
    pub sources: Vec<String>,
    pub targets: Vec<String>,
    /// `cells[s][t]`: target `t` on the examples crafted on source `s`; `None` where nothing
    /// judged. Where the source is the target, the white-box figure.
    pub cells: Vec<Vec<Option<Stat>>>,
    /// Seeds with a result in any cell.
    pub seeds: Vec<u32>,
}

/// BEARD's black-box scores of one target model against each source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlackBoxBoard {
    #[serde(flatten)]
    pub setting: TransferSetting,
    pub target: String,
    /// The attacks with a result on this board, in report order.
    pub attacks: Vec<&'static str>,
    pub rows: Vec<BlackBoxRow>,
}

/// One source's transferred attacks as one target model sees them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlackBoxRow {
    pub source: String,
    /// The target's clean accuracy (percent), mean over seeds.
    pub clean_accuracy: f64,
    /// The target's robust accuracy per attack of the board (`None` where this source lacks
    /// it), mean over seeds.
    pub robust_accuracy: Vec<Option<f64>>,
    #[serde(flatten)]
    pub scores: Scores,
}

/// The transfer tables of a report.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TransferTables {
    pub matrices: Vec<TransferMatrix>,
    pub black_box: Vec<BlackBoxBoard>,
}

impl TransferTables {
    pub fn is_empty(&self) -> bool {
        self.matrices.is_empty()
    }
}

/// The tables of `records`, methods in `method_order` first, then by name.
pub(crate) fn tables(records: &[TransferRecord], options: &MetricOptions, method_order: &[String]) -> TransferTables {
    TransferTables { matrices: matrices(records, method_order), black_box: black_box(records, options, method_order) }
}

/// Method names in the sweep's order, then any others by name.
fn ordered<'a>(names: impl Iterator<Item = &'a String>, method_order: &[String]) -> Vec<String> {
    let present: BTreeSet<&String> = names.collect();
    let mut ordered: Vec<String> = method_order.iter().filter(|name| present.contains(name)).cloned().collect();
    ordered.extend(present.into_iter().filter(|name| !method_order.contains(name)).cloned());
    ordered
}

fn matrices(records: &[TransferRecord], method_order: &[String]) -> Vec<TransferMatrix> {
    let mut grouped: BTreeMap<(&TransferSetting, Attack), Vec<&TransferRecord>> = BTreeMap::new();
    for record in records {
        grouped.entry((&record.setting, record.attack)).or_default().push(record);
    }
    grouped
        .into_iter()
        .map(|((setting, attack), records)| {
            let sources = ordered(records.iter().map(|r| &r.source), method_order);
            let targets = ordered(records.iter().map(|r| &r.target), method_order);
            let cells = sources
                .iter()
                .map(|source| {
                    targets
                        .iter()
                        .map(|target| {
                            let values: Vec<f64> = records
                                .iter()
                                .filter(|r| r.source == *source && r.target == *target)
                                .map(|r| r.robust)
                                .collect();
                            (!values.is_empty()).then(|| Stat::of(&values))
                        })
                        .collect()
                })
                .collect();
            let seeds = records.iter().map(|r| r.seed).collect::<BTreeSet<_>>().into_iter().collect();
            TransferMatrix { setting: setting.clone(), attack: attack.name(), sources, targets, cells, seeds }
        })
        .collect()
}

fn black_box(records: &[TransferRecord], options: &MetricOptions, method_order: &[String]) -> Vec<BlackBoxBoard> {
    let mut grouped: BTreeMap<(&TransferSetting, &String), Vec<&TransferRecord>> = BTreeMap::new();
    for record in records {
        grouped.entry((&record.setting, &record.target)).or_default().push(record);
    }
    let mut boards: Vec<BlackBoxBoard> = grouped
        .iter()
        .map(|((setting, target), board_records)| {
            let attacks: Vec<Attack> =
                board_records.iter().map(|r| r.attack).collect::<BTreeSet<_>>().into_iter().collect();
            let sources = ordered(board_records.iter().map(|r| &r.source), method_order);
            let rows = sources
                .iter()
                .map(|source| {
                    let of_source: Vec<&TransferRecord> =
                        board_records.iter().copied().filter(|r| r.source == *source).collect();
                    black_box_row(source, &of_source, &attacks, source_clean_time(records, setting, source), options)
                })
                .collect();
            BlackBoxBoard {
                setting: (*setting).clone(),
                target: (*target).clone(),
                attacks: attacks.iter().map(|attack| attack.name()).collect(),
                rows,
            }
        })
        .collect();
    let position = |name: &str| method_order.iter().position(|method| method == name).unwrap_or(usize::MAX);
    boards.sort_by(|a, b| {
        (&a.setting, position(&a.target), &a.target).cmp(&(&b.setting, position(&b.target), &b.target))
    });
    boards
}

/// The source's clean time in `setting`: its mean over the source's shards, the smaller of the
/// targeted and untargeted settings where both exist.
fn source_clean_time(records: &[TransferRecord], setting: &TransferSetting, source: &str) -> f64 {
    let in_mode = |mode: Mode| {
        let times: Vec<f64> = records
            .iter()
            .filter(|r| r.source == source && r.target == source)
            .filter(|r| r.setting == TransferSetting { mode, ..setting.clone() })
            .map(|r| r.clean_time)
            .collect();
        (!times.is_empty()).then(|| mean(&times))
    };
    let own = in_mode(setting.mode).unwrap_or(0.0);
    let other = match setting.mode {
        Mode::Untargeted => in_mode(Mode::Targeted),
        Mode::Targeted => in_mode(Mode::Untargeted),
    };
    other.map_or(own, |other| own.min(other))
}

fn black_box_row(
    source: &str,
    records: &[&TransferRecord],
    attacks: &[Attack],
    clean_time: f64,
    options: &MetricOptions,
) -> BlackBoxRow {
    let clean: Vec<f64> = records.iter().map(|r| r.target_clean).collect();
    let per_attack: Vec<Option<AttackObservation>> = attacks
        .iter()
        .map(|attack| {
            let of_attack: Vec<&&TransferRecord> = records.iter().filter(|r| r.attack == *attack).collect();
            (!of_attack.is_empty()).then(|| AttackObservation {
                robust_accuracy: mean(&of_attack.iter().map(|r| r.robust).collect::<Vec<_>>()),
                time: mean(&of_attack.iter().map(|r| r.attack_time).collect::<Vec<_>>()),
            })
        })
        .collect();
    let observation = SettingObservation {
        clean_accuracy: mean(&clean),
        clean_time,
        attacks: per_attack.iter().flatten().copied().collect(),
    };
    BlackBoxRow {
        source: source.to_owned(),
        clean_accuracy: observation.clean_accuracy,
        robust_accuracy: per_attack.iter().map(|attack| attack.map(|a| a.robust_accuracy)).collect(),
        scores: evaluate(&observation, options),
    }
}
