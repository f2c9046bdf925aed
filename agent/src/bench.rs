//! `agent bench`: attack throughput on this machine, without a coordinator.
//!
//! Trains a DC-bench ConvNet on an IPC-10 random subset of the built-in `synthetic` dataset (so a
//! bench needs no files and the attacks face a model that classifies well above chance), then
//! runs each attack as a real attack task through the [`TchBackend`] on the first test images:
//! the same chunking, timing (after a warm-up chunk, device synchronized) and outcome code as a
//! sweep. Each row reports images per second of the attack and of clean inference measured in the
//! same task, and the accuracies.

use beard_proto::v1::{
    AttackConfig, AttackSpec, DatasetRef, DistilledSource, EvaluationConfig, ModelConfig, NormKind, Optimizer,
    PoolKind, RandomSubset, TargetPolicy, TaskFailure, TrainSpec, TrainingConfig, distilled_source,
};
use tch::Device;

use crate::attack_spec;
use crate::backend::{Backend, TaskContext};
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
    /// Training epochs on the 100-image subset.
    pub epochs: u32,
    /// Run targeted (next-class targets) instead of untargeted.
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

/// Why a bench stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("training the bench model failed: {0}")]
    Train(TaskFailure),
    #[error("attack {attack} failed: {failure}")]
    Attack { attack: String, failure: TaskFailure },
}

/// Train the bench model, then run every attack, calling `report` after each one.
pub fn run(config: &BenchConfig, mut report: impl FnMut(&BenchRow)) -> Result<Vec<BenchRow>, BenchError> {
    let mut backend = TchBackend::new(config.device);
    let train = train_spec(config);
    let trained = backend.train(&train, &TaskContext::detached()).map_err(BenchError::Train)?;
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
            }),
        };
        let shard = backend
            .attack(&spec, &trained.checkpoint, &TaskContext::detached())
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

/// IPC-10 random subset of `synthetic`, Adam lr 1e-3, batch 128, a depth-3 instance-norm ConvNet.
fn train_spec(config: &BenchConfig) -> TrainSpec {
    TrainSpec {
        dataset: Some(DatasetRef { name: "synthetic".to_owned(), root: String::new() }),
        method: "random".to_owned(),
        ipc: 10,
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
