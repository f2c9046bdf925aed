//! The sweep file as written: the top-level mapping and its sections, strictly typed, with the
//! defaults a section takes when it (or one of its fields) is left out.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::adversarial::{AdversarialSettings, Regime};
use super::attacks::Attacks;
use super::collections::{NonEmpty, OneOrMore, OrderedMap};
use super::methods::{MethodEntry, MethodName};
use super::names::DatasetName;
use super::scalars::{Count, NonNegative, Positive, Text};
use crate::metrics::MetricOptions;
use beard_proto::evaluation::mode_name;
use beard_proto::v1::EvaluationMode;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a sweep: a mapping with name, datasets, methods, ipc, attacks and settings")]
pub(super) struct SweepFile {
    pub(super) name: Text,
    /// Directory that relative method file paths are joined onto.
    #[serde(default)]
    pub(super) pool_dir: Option<Text>,
    pub(super) datasets: OrderedMap<DatasetName, DatasetSettings>,
    pub(super) methods: OrderedMap<MethodName, MethodEntry>,
    pub(super) ipc: NonEmpty<Count>,
    pub(super) attacks: Attacks,
    #[serde(default = "both_modes")]
    pub(super) targeted: NonEmpty<bool>,
    #[serde(default = "five_seeds")]
    pub(super) seeds: Count,
    #[serde(default)]
    pub(super) training: Training,
    /// Train every model in each of these regimes.
    #[serde(default = "standard_only")]
    pub(super) training_regimes: NonEmpty<Regime>,
    #[serde(default)]
    pub(super) model: Model,
    #[serde(default)]
    pub(super) evaluation: Evaluation,
    #[serde(default)]
    pub(super) metrics: MetricOptions,
    #[serde(default)]
    pub(super) transfer: Option<TransferSection>,
}

/// `transfer:` — attacks crafted on each source model and judged by the target models of the
/// same dataset, IPC, regime and seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "transfer settings (attacks, targeted, sources, targets)")]
pub(super) struct TransferSection {
    /// Written as the top-level `attacks:`.
    pub(super) attacks: Attacks,
    /// The modes of attacks without their own `targeted:`; the sweep's when left out.
    #[serde(default)]
    pub(super) targeted: Option<NonEmpty<bool>>,
    /// The methods whose models craft; every method when left out.
    #[serde(default)]
    pub(super) sources: Option<NonEmpty<Text>>,
    /// The methods whose models judge; every method when left out.
    #[serde(default)]
    pub(super) targets: Option<NonEmpty<Text>>,
}

fn both_modes() -> NonEmpty<bool> {
    NonEmpty(vec![false, true])
}

fn five_seeds() -> Count {
    Count(5)
}

fn standard_only() -> NonEmpty<Regime> {
    NonEmpty(vec![Regime::Standard])
}

/// One entry of `datasets:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "dataset settings (root)")]
pub(super) struct DatasetSettings {
    /// Directory holding the dataset's files on the agents; real datasets only.
    pub(super) root: Option<Text>,
}

/// `training:` — how a ConvNet is trained on a distilled set.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "training settings (optimizer, lr, momentum, weight_decay, epochs, batch_size, lr_schedule, aug, \
                 adversarial)"
)]
pub(super) struct Training {
    pub(super) optimizer: Optimizer,
    pub(super) lr: Positive,
    pub(super) momentum: NonNegative,
    pub(super) weight_decay: NonNegative,
    pub(super) epochs: Count,
    pub(super) batch_size: Count,
    pub(super) lr_schedule: LrSchedule,
    pub(super) aug: Augmentation,
    /// How the `adversarial` regime of `training_regimes` trains.
    pub(super) adversarial: Option<AdversarialSettings>,
}

/// The reference protocol, which trained BEARD's model pool (the paper's appendix A.3 and BEARD's
/// `evaluate_synset`): SGD, lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, 1000 epochs, lr
/// x0.1 at half the epochs, DSA augmentation.
impl Default for Training {
    fn default() -> Self {
        Self {
            optimizer: Optimizer::Sgd,
            lr: Positive(0.01),
            momentum: NonNegative(0.9),
            weight_decay: NonNegative(5e-4),
            epochs: Count(1000),
            batch_size: Count(256),
            lr_schedule: LrSchedule::Half,
            aug: Augmentation::Dsa,
            adversarial: None,
        }
    }
}

/// A method's own `training:` protocol: the fields it sets replace the sweep's for that method's
/// models, as DC-bench evaluates each method with its own (DC without augmentation for 300
/// epochs; DSA, DM, IDM and BACON with DSA for 1000). Adversarial training stays the sweep's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a method's training settings (optimizer, lr, momentum, weight_decay, epochs, batch_size, \
                 lr_schedule, aug)"
)]
pub(super) struct OwnTraining {
    optimizer: Option<Optimizer>,
    lr: Option<Positive>,
    momentum: Option<NonNegative>,
    weight_decay: Option<NonNegative>,
    pub(super) epochs: Option<Count>,
    pub(super) batch_size: Option<Count>,
    lr_schedule: Option<LrSchedule>,
    aug: Option<Augmentation>,
}

impl OwnTraining {
    /// The sweep's `training` with this method's fields in place.
    pub(super) fn over(&self, sweep: &Training) -> Training {
        Training {
            optimizer: self.optimizer.unwrap_or(sweep.optimizer),
            lr: self.lr.unwrap_or(sweep.lr),
            momentum: self.momentum.unwrap_or(sweep.momentum),
            weight_decay: self.weight_decay.unwrap_or(sweep.weight_decay),
            epochs: self.epochs.unwrap_or(sweep.epochs),
            batch_size: self.batch_size.unwrap_or(sweep.batch_size),
            lr_schedule: self.lr_schedule.unwrap_or(sweep.lr_schedule),
            aug: self.aug.unwrap_or(sweep.aug),
            adversarial: sweep.adversarial.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Optimizer {
    Adam,
    Sgd,
}

/// `lr_schedule:` — how the learning rate changes over the epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum LrSchedule {
    /// `lr` throughout.
    Constant,
    /// `lr` for the first half of the epochs, `lr` x 0.1 after (DC's recipe).
    Half,
}

/// `aug:` — augmentation of each training batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Augmentation {
    None,
    /// Differentiable Siamese Augmentation (color, crop, cutout, flip, scale, rotate).
    Dsa,
}

/// `model:` — the DC-bench ConvNet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "model settings (width, depth, norm, pool)")]
pub(super) struct Model {
    pub(super) width: Count,
    pub(super) depth: Depth,
    pub(super) norm: Norm,
    pub(super) pool: Pool,
}

impl Default for Model {
    fn default() -> Self {
        Self { width: Count(128), depth: Depth::Auto, norm: Norm::Instance, pool: Pool::Avg }
    }
}

/// Number of conv blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Depth {
    /// 3 for 32x32 datasets, 4 for TinyImageNet.
    Auto,
    Fixed(Count),
}

impl<'de> Deserialize<'de> for Depth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DepthVisitor)
    }
}

struct DepthVisitor;

impl Visitor<'_> for DepthVisitor {
    type Value = Depth;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`auto` or an integer >= 1")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Depth, E> {
        match v {
            "auto" => Ok(Depth::Auto),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Depth, E> {
        match u32::try_from(v) {
            Ok(depth) if depth >= 1 => Ok(Depth::Fixed(Count(depth))),
            _ => Err(E::custom(format_args!("expected `auto` or an integer >= 1, found {v}"))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Depth, E> {
        Err(E::custom(format_args!("expected `auto` or an integer >= 1, found {v}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Norm {
    Instance,
    Batch,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Pool {
    Avg,
    Max,
}

/// `evaluation:` — how attack tasks evaluate. Written as a mapping, or as just the mode(s):
/// `evaluation: beard-compat` or `evaluation: [standard, beard-compat]`.
#[derive(Debug, Clone)]
pub(super) struct Evaluation {
    /// First N test images; 0 means the whole test split.
    pub(super) test_samples: u32,
    pub(super) batch_size: Count,
    pub(super) target_policy: TargetPolicy,
    /// Every attack task runs once per mode.
    pub(super) modes: NonEmpty<EvaluationModeName>,
}

impl Default for Evaluation {
    fn default() -> Self {
        EvaluationSettings::default().into()
    }
}

/// The mapping form of `evaluation:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "evaluation settings (test_samples, batch_size, target_policy, modes)"
)]
struct EvaluationSettings {
    test_samples: u32,
    batch_size: Count,
    target_policy: TargetPolicy,
    modes: OneOrMore<EvaluationModeName>,
}

impl Default for EvaluationSettings {
    fn default() -> Self {
        Self {
            test_samples: 0,
            batch_size: Count(256),
            target_policy: TargetPolicy::Next,
            modes: OneOrMore(NonEmpty(vec![EvaluationModeName::Standard])),
        }
    }
}

impl From<EvaluationSettings> for Evaluation {
    fn from(settings: EvaluationSettings) -> Self {
        Self {
            test_samples: settings.test_samples,
            batch_size: settings.batch_size,
            target_policy: settings.target_policy,
            modes: settings.modes.0,
        }
    }
}

impl<'de> Deserialize<'de> for Evaluation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EvaluationVisitor)
    }
}

struct EvaluationVisitor;

impl<'de> Visitor<'de> for EvaluationVisitor {
    type Value = Evaluation;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("evaluation settings (test_samples, batch_size, target_policy, modes), or the mode(s) alone")
    }

    fn visit_str<E: de::Error>(self, mode: &str) -> Result<Self::Value, E> {
        let mode = EvaluationModeName::deserialize(de::value::StrDeserializer::<E>::new(mode))?;
        Ok(EvaluationSettings { modes: OneOrMore(NonEmpty(vec![mode])), ..Default::default() }.into())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let modes = NonEmpty::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(EvaluationSettings { modes: OneOrMore(modes), ..Default::default() }.into())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(EvaluationSettings::deserialize(de::value::MapAccessDeserializer::new(map))?.into())
    }
}

/// An evaluation mode as the file spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum EvaluationModeName {
    /// The honest threat model: pixel space, normalization inside the model.
    Standard,
    /// BEARD's reference code, to reproduce its published numbers.
    BeardCompat,
}

impl EvaluationModeName {
    pub(super) fn mode(self) -> EvaluationMode {
        match self {
            Self::Standard => EvaluationMode::Standard,
            Self::BeardCompat => EvaluationMode::BeardCompat,
        }
    }
}

impl fmt::Display for EvaluationModeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(mode_name(self.mode()))
    }
}

/// How a targeted attack picks its target label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum TargetPolicy {
    /// (y + 1) mod classes.
    Next,
    /// Seeded, never y.
    Random,
    /// The class the clean model finds least likely.
    LeastLikely,
}
