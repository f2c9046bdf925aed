//! Result shards -> one summary per setting (dataset, method, IPC, training regime, evaluation
//! mode, targeted or not).
//!
//! A model trained on the whole training split (`full` source) has the IPC [`Ipc::Full`]; one
//! trained with adversarial training (its train spec's `adversarial` config) the regime
//! [`Training::Adversarial`]; an attack evaluated the way BEARD's reference code does (its spec's
//! evaluation mode) the [`Evaluation`] `beard-compat`, so that its numbers never mix with those of
//! the standard threat model.
//!
//! A setting whose models are model-pool checkpoints (attacked as they are, not trained by the
//! sweep) is marked as such ([`SettingSummary::model_pool`]).
//!
//! Per setting and seed, the clean accuracy and clean time are the means over that seed's shards
//! in the setting, and each attack's robust accuracy and time the mean over its shards (one, when
//! the caller passes each accepted task once). Over seeds, accuracies are mean ± sample std and
//! times are means. The clean time t_c of a setting is the smaller of the mean clean times of the
//! targeted and untargeted settings of the same (dataset, method, IPC, regime, evaluation mode),
//! where both exist.

use std::collections::{BTreeMap, BTreeSet};

use std::fmt;

use beard_proto::describe::{attack_name, is_pooled};
use beard_proto::evaluation::mode_name;
use beard_proto::v1::{AttackConfig, AttackShard, AttackSpec, EvaluationMode, TrainSpec, distilled_source};
use serde::{Serialize, Serializer};

use super::ReportInput;
use super::provenance::{DeviceResults, count_devices};
use super::timing::shard_times;
use super::transfer::{self, TransferRecord};
use crate::metrics::stats::{mean, sample_std};
use crate::metrics::{AttackObservation, SettingObservation, TimeBasis};

/// Attack columns in report order, as [`attack_name`] spells them: BEARD's six, then the parts
/// of AutoAttack that a sweep may also run on their own (Square among them, also one of BEARD's
/// query attacks), then the query attack SPSA.
pub const ATTACK_ORDER: [&str; 11] =
    ["fgsm", "pgd", "pgdl2", "cw", "deepfool", "autoattack", "apgd-ce", "apgd-t", "fab-t", "square", "spsa"];

/// An attack column of the report, ordered as [`ATTACK_ORDER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Attack(usize);

impl Attack {
    /// The column of a configured attack; `None` for an empty attack config.
    pub(crate) fn of(config: &AttackConfig) -> Option<Self> {
        Self::named(attack_name(config))
    }

    /// The column of an attack spelled as in [`ATTACK_ORDER`]; `None` for another name.
    pub fn named(name: &str) -> Option<Self> {
        ATTACK_ORDER.iter().position(|known| *known == name).map(Self)
    }

    pub fn name(self) -> &'static str {
        ATTACK_ORDER[self.0]
    }
}

/// Whether the attacks of a setting aim at a chosen target class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Untargeted,
    Targeted,
}

impl Mode {
    pub fn of(targeted: bool) -> Self {
        if targeted { Self::Targeted } else { Self::Untargeted }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Untargeted => "untargeted",
            Self::Targeted => "targeted",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Untargeted => Self::Targeted,
            Self::Targeted => Self::Untargeted,
        }
    }
}

/// The size of a model's training set: images per class of a distilled set, or the whole
/// training split (BEARD's Full-size column), which sorts after every IPC. Serialized as the
/// number, or as `"full"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ipc {
    PerClass(u32),
    Full,
}

impl Ipc {
    /// The IPC of a train spec: [`Ipc::Full`] for the `full` source.
    pub fn of(train: &TrainSpec) -> Self {
        match train.source.as_ref().and_then(|source| source.source.as_ref()) {
            Some(distilled_source::Source::Full(_)) => Self::Full,
            _ => Self::PerClass(train.ipc),
        }
    }
}

impl fmt::Display for Ipc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PerClass(ipc) => ipc.fmt(f),
            Self::Full => f.write_str("full"),
        }
    }
}

impl Serialize for Ipc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::PerClass(ipc) => serializer.serialize_u32(*ipc),
            Self::Full => serializer.serialize_str("full"),
        }
    }
}

/// How the models of a setting were trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Training {
    #[default]
    Standard,
    /// Madry-style adversarial training.
    Adversarial,
}

impl Training {
    /// The regime of a train spec.
    pub fn of(train: &TrainSpec) -> Self {
        if train.training.as_ref().is_some_and(|training| training.adversarial.is_some()) {
            Self::Adversarial
        } else {
            Self::Standard
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Adversarial => "adversarial",
        }
    }

    /// For `skip_serializing_if`: reports without adversarial training keep their earlier shape.
    pub fn is_standard(&self) -> bool {
        *self == Self::Standard
    }
}

/// The threat model a setting's attacks ran under: its attack specs' evaluation mode, `standard`
/// or `beard-compat` (BEARD's reference pipeline), named and serialized as [`mode_name`] spells
/// it. Standard sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Evaluation(pub EvaluationMode);

impl Evaluation {
    pub const STANDARD: Self = Self(EvaluationMode::Standard);
    pub const BEARD_COMPAT: Self = Self(EvaluationMode::BeardCompat);

    /// The mode of an attack spec; standard when the spec records none.
    pub fn of(spec: &AttackSpec) -> Self {
        Self(spec.evaluation.as_ref().map_or(EvaluationMode::Standard, |evaluation| evaluation.mode()))
    }

    pub fn name(self) -> &'static str {
        mode_name(self.0)
    }
}

impl Serialize for Evaluation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One model setting: the unit the metrics score.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SettingKey {
    pub dataset: String,
    pub method: String,
    pub ipc: Ipc,
    #[serde(skip_serializing_if = "Training::is_standard")]
    pub training: Training,
    pub evaluation: Evaluation,
    pub mode: Mode,
}

impl SettingKey {
    fn with_mode(&self, mode: Mode) -> Self {
        Self { mode, ..self.clone() }
    }
}

/// Mean and sample standard deviation over seeds (std 0 for one seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
}

impl Stat {
    pub(crate) fn of(values: &[f64]) -> Self {
        Self { mean: mean(values), std: sample_std(values) }
    }
}

/// One attack of a setting, averaged over the seeds that have it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttackSummary {
    pub attack: Attack,
    pub robust_accuracy: Stat,
    pub time: f64,
    pub seeds: BTreeSet<u32>,
}

/// One setting, averaged over seeds; `attacks` in [`ATTACK_ORDER`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SettingSummary {
    pub key: SettingKey,
    pub seeds: BTreeSet<u32>,
    pub clean_accuracy: Stat,
    /// t_c after the rule "the smaller of the targeted and untargeted clean times".
    pub clean_time: f64,
    pub attacks: Vec<AttackSummary>,
    /// Whether the models are model-pool checkpoints rather than models the sweep trained.
    pub model_pool: bool,
}

impl SettingSummary {
    pub fn observation(&self) -> SettingObservation {
        SettingObservation {
            clean_accuracy: self.clean_accuracy.mean,
            clean_time: self.clean_time,
            attacks: self
                .attacks
                .iter()
                .map(|attack| AttackObservation { robust_accuracy: attack.robust_accuracy.mean, time: attack.time })
                .collect(),
        }
    }
}

/// The settings of a source of results, sorted by key, with how many results were placed in
/// them and how many could not be placed.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Summaries {
    pub settings: Vec<SettingSummary>,
    pub results: usize,
    pub unplaced: usize,
    /// The devices (with their results' precision) that computed the results; none for imports.
    pub devices: Vec<DeviceResults>,
    /// What transfer tasks (or imported Transfer logs) measured.
    pub transfer: Vec<TransferRecord>,
}

/// The metric inputs of every setting with results, sorted by key: what the report scores, for
/// recomputing its numbers independently.
pub fn observations(input: &ReportInput) -> Vec<(SettingKey, SettingObservation)> {
    summarize(input)
        .settings
        .into_iter()
        .map(|setting| {
            let observation = setting.observation();
            (setting.key, observation)
        })
        .collect()
}

pub(crate) fn summarize(input: &ReportInput) -> Summaries {
    let mut settings: BTreeMap<SettingKey, BTreeMap<u32, SeedResults>> = BTreeMap::new();
    let mut unplaced = 0;
    // Transfer shards have boards of their own (the transfer module).
    for (spec, shard) in input.results.iter().filter(|(spec, _)| spec.transfer_targets.is_empty()) {
        match place(spec) {
            Some(place) => {
                let seed = settings.entry(place.key).or_default().entry(place.seed).or_default();
                seed.model_pool |= place.model_pool;
                seed.add(place.attack, shard, input.options.time_basis);
            }
            None => unplaced += 1,
        }
    }
    let settings = settings
        .iter()
        .map(|(key, seeds)| {
            let own = mean_clean_time(seeds);
            let other = settings.get(&key.with_mode(key.mode.other())).map(mean_clean_time);
            summarize_setting(key, seeds, other.map_or(own, |other| own.min(other)))
        })
        .collect();
    let devices = count_devices(&input.results);
    let white_box = input.results.iter().filter(|(spec, _)| spec.transfer_targets.is_empty()).count();
    let transfer = input
        .results
        .iter()
        .filter_map(|(spec, shard)| transfer::records(spec, shard, input.options.time_basis))
        .flatten()
        .collect();
    Summaries { settings, results: white_box - unplaced, unplaced, devices, transfer }
}

/// Where a result belongs; `None` for a spec without dataset, method or known attack.
struct Place {
    key: SettingKey,
    seed: u32,
    attack: Attack,
    model_pool: bool,
}

fn place(spec: &AttackSpec) -> Option<Place> {
    let train = spec.train.as_ref()?;
    let dataset = train.dataset.as_ref()?;
    let attack = Attack::of(spec.attack.as_ref()?)?;
    let key = SettingKey {
        dataset: dataset.name.clone(),
        method: train.method.clone(),
        ipc: Ipc::of(train),
        training: Training::of(train),
        evaluation: Evaluation::of(spec),
        mode: Mode::of(spec.targeted),
    };
    Some(Place { key, seed: train.seed, attack, model_pool: is_pooled(train) })
}

/// Accuracy and time values of one quantity, to be averaged. Each list is kept sorted, so that
/// its floating-point mean does not depend on the order the shards arrived in.
#[derive(Default)]
struct Values {
    accuracy: Vec<f64>,
    time: Vec<f64>,
}

impl Values {
    fn push(&mut self, accuracy: f64, time: f64) {
        insert_sorted(&mut self.accuracy, accuracy);
        insert_sorted(&mut self.time, time);
    }
}

fn insert_sorted(values: &mut Vec<f64>, value: f64) {
    let at = values.partition_point(|known| known.total_cmp(&value).is_lt());
    values.insert(at, value);
}

/// The shards of one seed of one setting.
#[derive(Default)]
struct SeedResults {
    clean: Values,
    attacks: BTreeMap<Attack, Values>,
    model_pool: bool,
}

impl SeedResults {
    fn add(&mut self, attack: Attack, shard: &AttackShard, basis: TimeBasis) {
        let times = shard_times(shard, basis);
        self.clean.push(shard.clean_accuracy, times.clean);
        self.attacks.entry(attack).or_default().push(shard.robust_accuracy, times.attack);
    }
}

fn mean_clean_time(seeds: &BTreeMap<u32, SeedResults>) -> f64 {
    let per_seed: Vec<f64> = seeds.values().map(|seed| mean(&seed.clean.time)).collect();
    mean(&per_seed)
}

fn summarize_setting(key: &SettingKey, seeds: &BTreeMap<u32, SeedResults>, clean_time: f64) -> SettingSummary {
    let clean: Vec<f64> = seeds.values().map(|seed| mean(&seed.clean.accuracy)).collect();
    let columns: BTreeSet<Attack> = seeds.values().flat_map(|seed| seed.attacks.keys().copied()).collect();
    let attacks = columns
        .into_iter()
        .map(|attack| {
            let per_seed: Vec<(u32, &Values)> =
                seeds.iter().filter_map(|(seed, results)| Some((*seed, results.attacks.get(&attack)?))).collect();
            let accuracies: Vec<f64> = per_seed.iter().map(|(_, values)| mean(&values.accuracy)).collect();
            let times: Vec<f64> = per_seed.iter().map(|(_, values)| mean(&values.time)).collect();
            AttackSummary {
                attack,
                robust_accuracy: Stat::of(&accuracies),
                time: mean(&times),
                seeds: per_seed.iter().map(|(seed, _)| *seed).collect(),
            }
        })
        .collect();
    SettingSummary {
        key: key.clone(),
        seeds: seeds.keys().copied().collect(),
        clean_accuracy: Stat::of(&clean),
        clean_time,
        attacks,
        model_pool: seeds.values().any(|seed| seed.model_pool),
    }
}
