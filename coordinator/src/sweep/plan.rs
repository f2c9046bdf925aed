//! [`Sweep`]: a validated sweep file resolved into the proto configs its tasks carry — defaults
//! filled in, model depth chosen per dataset, method files joined onto `pool_dir`, the
//! model-pool checkpoints a sweep evaluates listed, attack modes decided, each method's and
//! regime's training config, the `transfer:` section resolved, a `distill:` method's
//! hyper-parameters filled in.

use std::path::Path;

use beard_proto::v1::{
    self, AdversarialTraining, AttackConfig, DatasetRef, DistilledFile, DistilledSource, EvaluationConfig,
    EvaluationMode, ModelConfig, NormKind, PoolKind, TargetPolicy, TrainingConfig, distill_spec, distilled_source,
};

use super::adversarial::Regime;
use super::attacks::Attacks;
use super::document::{self, Augmentation, Depth, LrSchedule, Norm, Optimizer, Pool, SweepFile};
use super::error::Issue;
use super::methods::{CheckpointModel, FileSet, FullSettings, MethodSource};
use super::names::{AttackName, DatasetName};
use super::scalars::Count;
use super::transfer::Transfer;
use super::validate;
use crate::metrics::MetricOptions;

/// A validated sweep, ready to [expand](Sweep::expand) into tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub name: String,
    /// In the order the file lists them.
    pub datasets: Vec<Dataset>,
    /// In the order the file lists them.
    pub methods: Vec<Method>,
    /// IPCs in the order the file lists them.
    pub ipcs: Vec<u32>,
    /// Seeds are `0..seeds`.
    pub seeds: u32,
    /// In the order the file lists them.
    pub attacks: Vec<Attack>,
    /// Standard training (no `adversarial`), before a `full` method's own epochs and batch size.
    pub training: TrainingConfig,
    /// In the order the file lists them.
    pub regimes: Vec<Regime>,
    /// What the adversarial regime adds to `training` (its defaults when the file has none).
    pub adversarial: AdversarialTraining,
    /// The evaluation settings of the `standard` mode; [`Sweep::evaluation_in`] gives each mode's.
    pub evaluation: EvaluationConfig,
    /// Every attack task runs once per mode, in the order the file lists them.
    pub evaluation_modes: Vec<EvaluationMode>,
    pub metrics: MetricOptions,
    /// The `transfer:` section, when the file has one.
    pub transfer: Option<Transfer>,
}

/// A dataset of the sweep and the model trained for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: DatasetName,
    /// Directory of the dataset's files on the agents; empty for `synthetic`.
    pub root: String,
    /// The ConvNet, its depth resolved for this dataset's image size.
    pub model: ModelConfig,
}

impl Dataset {
    /// The proto reference to this dataset.
    pub fn reference(&self) -> DatasetRef {
        DatasetRef { name: self.name.as_str().to_owned(), root: self.root.clone() }
    }
}

/// A distillation method of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    pub name: String,
    pub source: Source,
    /// The method's own training protocol (its `training:` over the sweep's), if it has one.
    pub own_training: Option<TrainingConfig>,
}

/// Where a method's training sets come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// IPC real images per class drawn from the training split with the task's seed.
    Random,
    /// The whole training split, once per dataset (IPC does not apply), with its own epochs and
    /// batch size.
    Full { epochs: u32, batch_size: u32 },
    /// Distilled-set files and model-pool checkpoints; every (dataset, IPC) of the sweep has
    /// exactly one of the two.
    Files {
        files: Vec<PoolFile>,
        /// Index of the experiment inside DC/DSA/DM/IDM result files.
        experiment: u32,
        /// `normalized` or `pixels`.
        stored: String,
        /// IDM's and BACON's 2x2 mosaics, decoded for training.
        mosaic: bool,
        /// Only those of the sweep's datasets and IPCs, in file order.
        checkpoints: Vec<PoolCheckpoint>,
        /// The checkpoints' pooling, and what their weights must hold.
        checkpoint_model: CheckpointSettings,
    },
    /// Sets learned on the cluster: one distill task per dataset, IPC and seed, with this
    /// algorithm and hyper-parameters (defaults filled in).
    Distill { algorithm: distill_spec::Algorithm },
}

/// A trained model of a method's pool, attacked as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolCheckpoint {
    pub dataset: DatasetName,
    pub ipc: u32,
    /// As the sweep writes it: relative paths are relative to the sweep file's directory.
    pub path: String,
}

/// A method's `model:` for its checkpoints: width, depth and norm when given must match the
/// weights; the pooling (which the weights cannot tell) is average unless given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointSettings {
    pub width: Option<u32>,
    pub depth: Option<u32>,
    pub norm: Option<NormKind>,
    pub pool: PoolKind,
}

/// One distilled-set file of a method.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolFile {
    pub dataset: DatasetName,
    pub ipc: u32,
    /// Joined onto `pool_dir` when written relative and `pool_dir` is set.
    pub path: String,
    /// A separate labels file (joined the same way); empty when `path` holds the labels.
    pub labels_path: String,
}

/// The IPC list of a `full` method: its train specs say 0, since IPC does not apply.
const FULL_IPCS: &[u32] = &[0];

impl Method {
    /// The IPCs this method trains at: the sweep's, or only 0 for `full`.
    pub fn ipcs<'a>(&self, sweep_ipcs: &'a [u32]) -> &'a [u32] {
        match self.source {
            Source::Full { .. } => FULL_IPCS,
            Source::Random | Source::Files { .. } | Source::Distill { .. } => sweep_ipcs,
        }
    }

    /// The training set of this method for one dataset and IPC; `None` where the method names a
    /// checkpoint instead (validation lets no other gap through) and for a `distill:` method,
    /// whose sets differ per seed (see [`Sweep::expand`]).
    pub fn distilled(&self, dataset: DatasetName, ipc: u32) -> Option<DistilledSource> {
        let source = match &self.source {
            Source::Distill { .. } => return None,
            Source::Random => distilled_source::Source::Random(v1::RandomSubset {}),
            Source::Full { .. } => distilled_source::Source::Full(v1::FullTrainSplit {}),
            Source::Files { files, experiment, stored, mosaic, .. } => {
                let file = files.iter().find(|file| file.dataset == dataset && file.ipc == ipc)?;
                distilled_source::Source::File(DistilledFile {
                    path: file.path.clone(),
                    experiment: *experiment,
                    stored: stored.clone(),
                    labels_path: file.labels_path.clone(),
                    mosaic: *mosaic,
                })
            }
        };
        Some(DistilledSource { source: Some(source) })
    }

    /// How this method's models train: its own protocol, else the sweep's, with a `full`
    /// method's own epochs and batch size.
    pub fn training(&self, sweep: &TrainingConfig) -> TrainingConfig {
        let protocol = self.own_training.as_ref().unwrap_or(sweep).clone();
        match self.source {
            Source::Full { epochs, batch_size } => TrainingConfig { epochs, batch_size, ..protocol },
            Source::Random | Source::Files { .. } | Source::Distill { .. } => protocol,
        }
    }
}

/// An attack of the sweep with the modes it runs in.
#[derive(Debug, Clone, PartialEq)]
pub struct Attack {
    pub name: AttackName,
    /// Parameters, defaults filled in.
    pub config: AttackConfig,
    /// `false` = untargeted, `true` = targeted: the attack's own `targeted:` list, else the
    /// sweep's.
    pub modes: Vec<bool>,
}

impl Attack {
    /// The entries of an attacks section, each in its own modes or else in `modes`.
    pub(super) fn resolve_all(attacks: Attacks, modes: &[bool]) -> Vec<Attack> {
        attacks
            .0
            .into_iter()
            .map(|entry| Attack {
                name: entry.name,
                config: AttackConfig { attack: Some(entry.config) },
                modes: entry.targeted.unwrap_or_else(|| modes.to_vec()),
            })
            .collect()
    }
}

impl Sweep {
    /// Checks the cross-field rules of a deserialized file and resolves it.
    pub(super) fn from_document(file: SweepFile) -> Result<Sweep, Issue> {
        validate::check(&file)?;
        let pool_dir = file.pool_dir.map(|dir| dir.0);
        let evaluated = Evaluated { datasets: file.datasets.keys().copied().collect(), ipcs: file.ipc.0.clone() };
        let model = &file.model;
        let datasets = file
            .datasets
            .0
            .into_iter()
            .map(|(name, settings)| Dataset {
                name,
                root: settings.root.map(|root| root.0).unwrap_or_default(),
                model: model_config(model, name),
            })
            .collect();
        let training = training_config(&file.training);
        let methods: Vec<Method> = file
            .methods
            .0
            .into_iter()
            .map(|(name, entry)| {
                let own = entry.training.map(|own| own.over(&file.training));
                let method_training = own.as_ref().unwrap_or(&file.training);
                Method {
                    name: name.0,
                    source: match entry.source {
                        MethodSource::Random => Source::Random,
                        MethodSource::Files(set) => files_source(set, pool_dir.as_deref(), &evaluated),
                        MethodSource::Full(full) => full_source(&full, method_training),
                        MethodSource::Distill(settings) => {
                            Source::Distill { algorithm: settings.algorithm(&training_config(method_training)) }
                        }
                    },
                    own_training: own.as_ref().map(training_config),
                }
            })
            .collect();
        let sweep_modes = file.targeted.0;
        let attacks = Attack::resolve_all(file.attacks, &sweep_modes);
        let method_names: Vec<String> = methods.iter().map(|method| method.name.clone()).collect();
        let transfer = file.transfer.map(|section| Transfer::resolve(section, &method_names, &sweep_modes));
        Ok(Sweep {
            name: file.name.0,
            datasets,
            methods,
            ipcs: file.ipc.0.into_iter().map(|ipc| ipc.0).collect(),
            seeds: file.seeds.0,
            attacks,
            training,
            regimes: file.training_regimes.0,
            adversarial: file.training.adversarial.unwrap_or_default().config(),
            evaluation: evaluation_config(&file.evaluation),
            evaluation_modes: file.evaluation.modes.0.iter().map(|name| name.mode()).collect(),
            metrics: file.metrics,
            transfer,
        })
    }

    /// Method names in the order the file lists them.
    pub fn method_names(&self) -> Vec<&str> {
        self.methods.iter().map(|method| method.name.as_str()).collect()
    }

    /// The evaluation settings of an attack task in `mode`.
    pub fn evaluation_in(&self, mode: EvaluationMode) -> EvaluationConfig {
        EvaluationConfig { mode: mode.into(), ..self.evaluation }
    }

    /// How `method` is trained in `regime`.
    pub fn training_config(&self, method: &Method, regime: Regime) -> TrainingConfig {
        let training = method.training(&self.training);
        match regime {
            Regime::Standard => training,
            Regime::Adversarial => TrainingConfig { adversarial: Some(self.adversarial.clone()), ..training },
        }
    }
}

fn full_source(full: &FullSettings, training: &document::Training) -> Source {
    Source::Full { epochs: full.epochs.0, batch_size: full.batch_size.unwrap_or(training.batch_size).0 }
}

/// The datasets and IPCs a sweep evaluates.
struct Evaluated {
    datasets: Vec<DatasetName>,
    ipcs: Vec<Count>,
}

fn files_source(set: FileSet, pool_dir: Option<&str>, evaluated: &Evaluated) -> Source {
    let files = set
        .files
        .map(|files| files.0)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(dataset, per_ipc)| {
            per_ipc.0.into_iter().map(move |(ipc, entry)| PoolFile {
                dataset,
                ipc: ipc.0,
                path: in_pool(pool_dir, entry.images.0),
                labels_path: entry.labels.map(|labels| in_pool(pool_dir, labels.0)).unwrap_or_default(),
            })
        })
        .collect();
    let checkpoints = set
        .checkpoints
        .map(|checkpoints| checkpoints.0)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(dataset, per_ipc)| per_ipc.0.into_iter().map(move |(ipc, path)| (dataset, ipc, path)))
        .filter(|(dataset, ipc, _)| evaluated.datasets.contains(dataset) && evaluated.ipcs.contains(ipc))
        .map(|(dataset, ipc, path)| PoolCheckpoint { dataset, ipc: ipc.0, path: path.0 })
        .collect();
    Source::Files {
        files,
        experiment: set.experiment,
        stored: set.stored.as_str().to_owned(),
        mosaic: set.mosaic,
        checkpoints,
        checkpoint_model: checkpoint_settings(&set.model),
    }
}

fn checkpoint_settings(model: &CheckpointModel) -> CheckpointSettings {
    CheckpointSettings {
        width: model.width.map(|width| width.0),
        depth: model.depth.map(|depth| depth.0),
        norm: model.norm.map(norm_kind),
        pool: model.pool.map_or(PoolKind::Avg, pool_kind),
    }
}

fn norm_kind(norm: Norm) -> NormKind {
    match norm {
        Norm::Instance => NormKind::Instance,
        Norm::Batch => NormKind::Batch,
        Norm::None => NormKind::None,
    }
}

fn pool_kind(pool: Pool) -> PoolKind {
    match pool {
        Pool::Avg => PoolKind::Avg,
        Pool::Max => PoolKind::Max,
    }
}

/// `path` joined onto `pool_dir` when that is set (`join` keeps an absolute path as it is).
fn in_pool(pool_dir: Option<&str>, path: String) -> String {
    match pool_dir {
        Some(dir) => Path::new(dir).join(&path).to_string_lossy().into_owned(),
        None => path,
    }
}

fn training_config(training: &document::Training) -> TrainingConfig {
    let optimizer = match training.optimizer {
        Optimizer::Adam => v1::Optimizer::Adam,
        Optimizer::Sgd => v1::Optimizer::Sgd,
    };
    let lr_schedule = match training.lr_schedule {
        LrSchedule::Constant => v1::LrSchedule::Constant,
        LrSchedule::Half => v1::LrSchedule::StepHalf,
    };
    let augmentation = match training.aug {
        Augmentation::None => v1::Augmentation::None,
        Augmentation::Dsa => v1::Augmentation::Dsa,
    };
    TrainingConfig {
        optimizer: optimizer.into(),
        lr: training.lr.0,
        momentum: training.momentum.0,
        weight_decay: training.weight_decay.0,
        epochs: training.epochs.0,
        batch_size: training.batch_size.0,
        lr_schedule: lr_schedule.into(),
        augmentation: augmentation.into(),
        adversarial: None,
    }
}

fn model_config(model: &document::Model, dataset: DatasetName) -> ModelConfig {
    let (norm, pool) = (norm_kind(model.norm), pool_kind(model.pool));
    let depth = match model.depth {
        Depth::Auto => dataset.auto_depth(),
        Depth::Fixed(depth) => depth.0,
    };
    ModelConfig { width: model.width.0, depth, norm: norm.into(), pool: pool.into() }
}

fn evaluation_config(evaluation: &document::Evaluation) -> EvaluationConfig {
    let policy = match evaluation.target_policy {
        document::TargetPolicy::Next => TargetPolicy::Next,
        document::TargetPolicy::Random => TargetPolicy::Random,
        document::TargetPolicy::LeastLikely => TargetPolicy::LeastLikely,
    };
    EvaluationConfig {
        test_samples: evaluation.test_samples,
        batch_size: evaluation.batch_size.0,
        target_policy: policy.into(),
        mode: EvaluationMode::Standard.into(),
    }
}
