//! `agent bench`: attack and adversarial-training throughput on this machine, without a
//! coordinator.
//!
//! [`run`] trains a DC-bench ConvNet on a random subset (IPC 10 by default) of the built-in
//! `synthetic` dataset (so a bench needs no files and the attacks face a model that classifies
//! well above chance), then runs each attack as a real attack task through the [`TchBackend`] on
//! the first test images: the same chunking, timing (after a warm-up chunk, device synchronized)
//! and outcome code as a sweep. Each row reports images per second of the attack and of clean
//! inference measured in the same task, and the accuracies.
//!
//! [`run_adversarial_training`] trains on such a subset (IPC 50 in the paper's largest setting) as
//! real train tasks: once with standard training as the baseline, then once per attack with
//! adversarial training crafting its examples. Each row reports training images per second
//! (images x epochs over the task's training seconds) and the cost relative to the baseline.
//!
//! [`run_distill`] distils the `synthetic` training split with a distillation method (DM, DC, DSA,
//! IDM or BACON)
//! for a few iterations and reports iterations per second: each iteration draws `batch_real` real
//! images per class and matches them against the synthetic set, so its cost does not depend on
//! the dataset's content.

use beard_proto::distillation::official_loops;
use beard_proto::v1::{
    AdversarialTraining, AttackConfig, AttackSpec, DatasetRef, DistilledSource, EvaluationConfig, ModelConfig,
    NormKind, Optimizer, PoolKind, RandomSubset, TargetPolicy, TaskFailure, TrainSpec, TrainingConfig,
    distilled_source,
};
use std::time::Instant;

use tch::Device;

use crate::attack_spec;
use crate::backend::{AttackCheckpoints, Backend, TaskContext};
use crate::data::{DataError, Dataset};
use crate::distill::dm;
use crate::distill::gm::{self, GmSettings};
use crate::distill::idm::{self, IdmSettings, Term};
use crate::distill::{DistillError, Matching, Run};
use crate::model::{ConvNetConfig, ModelError};
use crate::tch_backend::TchBackend;

/// What to bench.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub attacks: Vec<AttackConfig>,
    /// Test images per attack (the synthetic test split has 1000).
    pub images: u32,
    pub device: Device,
    /// Images per chunk; 0 takes the backend's default for the device.
    pub batch_size: u32,
    /// ConvNet width (128 is DC-bench's).
    pub width: u32,
    /// Training epochs on the subset.
    pub epochs: u32,
    /// Images per class of the training subset.
    pub ipc: u32,
    /// Run targeted (next-class targets; random targets when crafting training examples) instead
    /// of untargeted.
    pub targeted: bool,
    pub seed: u32,
}

/// One attack's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// The attack as a full spec (every parameter written).
    pub attack: String,
    pub images: u32,
    pub attack_seconds: f64,
    pub attack_images_per_second: f64,
    pub clean_images_per_second: f64,
    pub clean_accuracy: f64,
    pub robust_accuracy: f64,
}

/// One training run's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingRow {
    /// `standard`, or `adversarial` with the crafting attack as a full spec.
    pub training: String,
    /// Images in the training set.
    pub images: u32,
    pub epochs: u32,
    pub train_seconds: f64,
    /// Images x epochs per training second.
    pub images_per_second: f64,
    /// Training seconds over the standard run's.
    pub cost: f64,
    pub final_loss: f64,
}

/// The distillation methods a bench can time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistillMethod {
    Dm,
    Dc,
    Dsa,
    Idm,
    Bacon,
}

/// What a distillation bench runs.
#[derive(Clone, Debug)]
pub struct DistillBenchConfig {
    pub device: Device,
    pub method: DistillMethod,
    /// ConvNet width (128 is DC-bench's).
    pub width: u32,
    /// Images per class of the distilled set.
    pub ipc: u32,
    pub iterations: u32,
    /// Real images per class and iteration.
    pub batch_real: u32,
    pub seed: u32,
}

/// A distillation bench's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct DistillRow {
    pub iterations: u32,
    pub seconds: f64,
    pub iterations_per_second: f64,
}

/// Why a bench stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("training the bench model failed: {0}")]
    Train(TaskFailure),
    #[error("the synthetic dataset cannot be built: {0}")]
    Data(#[from] DataError),
    #[error("the bench model cannot be built: {0}")]
    Model(#[from] ModelError),
    #[error("distillation failed: {0}")]
    Distill(#[from] DistillError),
    #[error("attack {attack} failed: {failure}")]
    Attack { attack: String, failure: TaskFailure },
}

/// Train the bench model, then run every attack, calling `report` after each one.
pub fn run(config: &BenchConfig, mut report: impl FnMut(&BenchRow)) -> Result<Vec<BenchRow>, BenchError> {
    let mut backend = TchBackend::new(config.device);
    let train = train_spec(config);
    let trained = backend.train(&train, &TaskContext::detached()).map_err(BenchError::Train)?;
    let checkpoints = AttackCheckpoints::white_box(trained.checkpoint);
    let mut rows = Vec::with_capacity(config.attacks.len());
    for attack in &config.attacks {
        let name = attack_spec::format(attack);
        let spec = AttackSpec {
            train_task_id: beard_proto::keys::train_key(&train),
            train: Some(train.clone()),
            attack: Some(attack.clone()),
            targeted: config.targeted,
            evaluation: Some(EvaluationConfig {
                test_samples: config.images,
                batch_size: config.batch_size,
                target_policy: TargetPolicy::Next as i32,
                ..Default::default()
            }),
            transfer_targets: Vec::new(),
        };
        let shard = backend
            .attack(&spec, &checkpoints, &TaskContext::detached())
            .map_err(|failure| BenchError::Attack { attack: name.clone(), failure })?;
        let per_second = |seconds: f64| f64::from(shard.samples) / seconds.max(f64::MIN_POSITIVE);
        let row = BenchRow {
            attack: name,
            images: shard.samples,
            attack_seconds: shard.attack_seconds,
            attack_images_per_second: per_second(shard.attack_seconds),
            clean_images_per_second: per_second(shard.clean_seconds),
            clean_accuracy: shard.clean_accuracy,
            robust_accuracy: shard.robust_accuracy,
        };
        report(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// Train on the subset with standard training, then with adversarial training crafted by each of
/// `config.attacks` (in `config.targeted`'s mode, the whole batch replaced), calling `report`
/// after each run.
pub fn run_adversarial_training(
    config: &BenchConfig,
    mut report: impl FnMut(&TrainingRow),
) -> Result<Vec<TrainingRow>, BenchError> {
    let mut backend = TchBackend::new(config.device);
    let standard = train_spec(config);
    let adversaries = config.attacks.iter().map(|attack| {
        let mut spec = standard.clone();
        let adversarial = AdversarialTraining { attack: Some(attack.clone()), targeted: config.targeted, ratio: 1.0 };
        spec.training = spec.training.map(|training| TrainingConfig { adversarial: Some(adversarial), ..training });
        (format!("adversarial {}", attack_spec::format(attack)), spec)
    });
    let mut rows: Vec<TrainingRow> = Vec::with_capacity(config.attacks.len() + 1);
    for (training, spec) in std::iter::once(("standard".to_owned(), standard.clone())).chain(adversaries) {
        let trained = backend.train(&spec, &TaskContext::detached()).map_err(BenchError::Train)?;
        let seconds = trained.train_seconds.max(f64::MIN_POSITIVE);
        let row = TrainingRow {
            training,
            images: trained.train_images,
            epochs: config.epochs,
            train_seconds: trained.train_seconds,
            images_per_second: f64::from(trained.train_images) * f64::from(config.epochs) / seconds,
            cost: rows.first().map_or(1.0, |baseline| seconds / baseline.train_seconds.max(f64::MIN_POSITIVE)),
            final_loss: trained.final_loss,
        };
        report(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// A random subset of `synthetic`, Adam lr 1e-3, batch 128, a depth-3 instance-norm ConvNet.
fn train_spec(config: &BenchConfig) -> TrainSpec {
    TrainSpec {
        dataset: Some(DatasetRef { name: "synthetic".to_owned(), root: String::new() }),
        method: "random".to_owned(),
        ipc: config.ipc,
        seed: config.seed,
        source: Some(DistilledSource { source: Some(distilled_source::Source::Random(RandomSubset {})) }),
        training: Some(TrainingConfig {
            optimizer: Optimizer::Adam as i32,
            lr: 1e-3,
            epochs: config.epochs,
            batch_size: 128,
            ..Default::default()
        }),
        model: Some(ModelConfig {
            width: config.width,
            depth: 3,
            norm: NormKind::Instance as i32,
            pool: PoolKind::Avg as i32,
        }),
    }
}

/// Distil the `synthetic` training split with a method (its official settings for the IPC but
/// `iterations` and `batch_real`) and time it.
pub fn run_distill(config: &DistillBenchConfig) -> Result<DistillRow, BenchError> {
    let reference = DatasetRef { name: "synthetic".into(), root: String::new() };
    let dataset = Dataset::load(&reference, config.device)?;
    let model =
        ModelConfig { width: config.width, depth: 3, norm: NormKind::Instance.into(), pool: PoolKind::Avg.into() };
    let shape = ConvNetConfig::new(&model, &dataset.info)?;
    let train = dataset.train()?;
    let (iterations, batch_real) = (config.iterations, config.batch_real);
    let ctx = TaskContext::detached();
    let run = Run {
        train,
        dataset: &dataset.info,
        model: &shape,
        ipc: config.ipc,
        seed: u64::from(config.seed),
        resume: None,
        ctx: &ctx,
    };
    let started = Instant::now();
    match config.method {
        DistillMethod::Dm => {
            let settings = Matching { iterations, batch_real, ..dm::official() };
            dm::distill(&run, &settings)?;
        }
        DistillMethod::Dc | DistillMethod::Dsa => {
            let (outer, inner) = official_loops(config.ipc).ok_or_else(|| {
                DistillError::Invalid(format!(
                    "DC and DSA have official loops at IPC 1, 10, 20, 30, 40 and 50, not {}",
                    config.ipc
                ))
            })?;
            let official = if config.method == DistillMethod::Dc { GmSettings::dc } else { GmSettings::dsa };
            let official = official(outer, inner);
            let settings =
                GmSettings { matching: Matching { iterations, batch_real, ..official.matching }, ..official };
            gm::distill(&run, &settings)?;
        }
        DistillMethod::Idm | DistillMethod::Bacon => {
            let term = if config.method == DistillMethod::Idm { Term::Mean } else { Term::Bacon };
            let official = IdmSettings::official("synthetic", config.ipc, term);
            let settings =
                IdmSettings { matching: Matching { iterations, batch_real, ..official.matching }, ..official };
            idm::distill(&run, &settings)?;
        }
    }
    if let Device::Cuda(index) = config.device {
        tch::Cuda::synchronize(index as i64);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(DistillRow {
        iterations: config.iterations,
        seconds,
        iterations_per_second: f64::from(config.iterations) / seconds.max(f64::MIN_POSITIVE),
    })
}
