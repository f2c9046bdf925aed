//! `agent eval`: one checkpoint on a dataset's test split, without a coordinator.
//!
//! Loads the test split onto the device once and the checkpoint (safetensors or a PyTorch
//! state-dict file) into the ConvNet the config describes, measures the clean accuracy on the
//! first `limit` test images, then runs each attack as an attack task does ([`crate::eval`]: the
//! same chunking, targets, timing and outcomes) in the configured evaluation mode: `standard`
//! (pixel space, normalization inside the model) or `beard-compat` (BEARD's reference protocol,
//! each attack with the reference's settings as the sweep gives them). [`EvalReport::to_json`] is
//! the `--json` output; it names the mode.

use std::path::PathBuf;
use std::time::Instant;

use beard_proto::evaluation::{attack_in, mode_name};
use beard_proto::v1::{AttackConfig, DatasetRef, EvaluationMode, ModelConfig, TargetPolicy};
use serde_json::json;
use tch::{Device, Kind, TchError, Tensor};

use crate::attack_spec;
use crate::attacks::{self, AttackConfigError};
use crate::backend::TaskContext;
use crate::data::{DataError, Dataset, Split};
use crate::eval::{self, EvalError, Plan, Protocol};
use crate::model::{ConvNet, ConvNetConfig, ModelError};
use crate::random::TaskGenerator;
use crate::tch_backend::{TchBackend, describe};
use crate::transfer::Judge;

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    pub checkpoint: PathBuf,
    /// Canonical dataset name (`cifar10`, `cifar100`, `tinyimagenet`, `synthetic`).
    pub dataset: String,
    /// Directory holding the dataset's files.
    pub data_dir: PathBuf,
    /// The ConvNet's shape; depth 0 means DC-bench's for the image size (3 for 32x32, 4 for 64x64).
    pub model: ModelConfig,
    pub attacks: Vec<AttackConfig>,
    /// `None`: untargeted; else targeted with this target policy.
    pub targets: Option<TargetPolicy>,
    pub mode: EvaluationMode,
    /// Evaluate the first `limit` test images; 0 means all.
    pub limit: usize,
    pub device: Device,
    /// Images per chunk; 0 takes the backend's default for the device.
    pub batch_size: usize,
    /// Seed of random starts and of the `random` target policy.
    pub seed: u32,
    /// Checkpoints (of the same shape) that judge each attack's examples: transfer.
    pub judges: Vec<PathBuf>,
}

/// One attack's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackReport {
    /// The attack's name (`fgsm`, `pgd`, ...).
    pub name: String,
    /// The full spec, every parameter written.
    pub spec: String,
    pub targeted: bool,
    /// Robust accuracy in percent.
    pub accuracy: f64,
    /// Attack success rate in percent (for untargeted attacks: misclassified adversarials).
    pub success_rate: f64,
    /// Wall seconds of the attack over the evaluated images.
    pub seconds: f64,
    /// Wall seconds of clean inference over the same images, measured in the same run.
    pub clean_seconds: f64,
    /// How each judge fared on the examples, in the order of [`EvalConfig::judges`].
    pub transfer: Vec<JudgeReport>,
}

/// One judge's figures on one attack's examples.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgeReport {
    pub checkpoint: String,
    /// The judge's clean and robust accuracy (percent) against the true labels.
    pub clean_accuracy: f64,
    pub accuracy: f64,
    /// Per image, in test-set order: the judge classifies the adversarial example correctly.
    pub adversarial_correct: Vec<bool>,
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub checkpoint: String,
    pub dataset: String,
    pub device: String,
    pub mode: EvaluationMode,
    /// Evaluated test images.
    pub n: usize,
    /// Correctly classified clean images.
    pub correct: usize,
    /// Clean accuracy in percent.
    pub clean_accuracy: f64,
    pub clean_seconds: f64,
    pub attacks: Vec<AttackReport>,
}

impl EvalReport {
    /// The `--json` object.
    pub fn to_json(&self) -> serde_json::Value {
        let attacks: Vec<serde_json::Value> = self
            .attacks
            .iter()
            .map(|attack| {
                json!({
                    "name": attack.name,
                    "spec": attack.spec,
                    "targeted": attack.targeted,
                    "accuracy": attack.accuracy,
                    "success_rate": attack.success_rate,
                    "seconds": attack.seconds,
                    "clean_seconds": attack.clean_seconds,
                    "transfer": attack.transfer.iter().map(|judge| json!({
                        "checkpoint": judge.checkpoint,
                        "clean_accuracy": judge.clean_accuracy,
                        "accuracy": judge.accuracy,
                        "adversarial_correct": judge
                            .adversarial_correct
                            .iter()
                            .map(|&correct| if correct { '1' } else { '0' })
                            .collect::<String>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "device": self.device,
            "mode": mode_name(self.mode),
            "n": self.n,
            "correct": self.correct,
            "clean_accuracy": self.clean_accuracy,
            "clean_seconds": self.clean_seconds,
            "attacks": attacks,
        })
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalCliError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{}: {source}", path.display())]
    Checkpoint { path: PathBuf, source: ModelError },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    AttackConfig(#[from] AttackConfigError),
    #[error("attack {attack}: {source}")]
    Attack { attack: String, source: EvalError },
    #[error("the test split of {0} is empty")]
    Empty(String),
    #[error(transparent)]
    Torch(#[from] TchError),
}

/// Evaluate; `on_attack` sees each attack's figures as soon as they are known.
pub fn run(config: &EvalConfig, mut on_attack: impl FnMut(&AttackReport)) -> Result<EvalReport, EvalCliError> {
    let reference = DatasetRef { name: config.dataset.clone(), root: config.data_dir.to_string_lossy().into_owned() };
    let dataset = Dataset::load(&reference, config.device)?;
    let mut model_config = config.model;
    if model_config.depth == 0 {
        model_config.depth = if dataset.info.image_size >= 64 { 4 } else { 3 };
    }
    let shape = ConvNetConfig::new(&model_config, &dataset.info)?;
    let path = &config.checkpoint;
    let load = |path: &PathBuf| -> Result<ConvNet, EvalCliError> {
        let bytes = std::fs::read(path).map_err(|source| EvalCliError::Io { path: path.clone(), source })?;
        ConvNet::from_checkpoint(&shape, &bytes, config.device)
            .map_err(|source| EvalCliError::Checkpoint { path: path.clone(), source })
    };
    let mut model = load(path)?;
    model.freeze();
    let judges = config
        .judges
        .iter()
        .map(|path| {
            Judge::new(path.display().to_string(), load(path)?, config.mode)
                .map_err(|source| EvalCliError::Attack { attack: "all".into(), source })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let n = if config.limit == 0 { dataset.test.len() } else { config.limit.min(dataset.test.len()) };
    if n == 0 {
        return Err(EvalCliError::Empty(config.dataset.clone()));
    }
    let batch_size = match config.batch_size {
        0 => TchBackend::new(config.device).default_chunk(),
        size => size,
    };
    let started = Instant::now();
    let correct = count_correct(&model, &dataset.test, n, batch_size)?;
    let clean_seconds = started.elapsed().as_secs_f64();

    let device = describe(config.device);
    let plan = Plan {
        protocol: Protocol::prepare(config.mode, &mut model)
            .map_err(|source| EvalCliError::Attack { attack: "all".into(), source })?,
        test_samples: n,
        batch_size,
        targets: config.targets,
        seed: config.seed,
        device: device.clone(),
    };
    let mut attacks = Vec::with_capacity(config.attacks.len());
    for attack_config in &config.attacks {
        let attack_config = &attack_in(attack_config, config.mode);
        // Each attack draws from its own stream of the seed, as each attack task does.
        let generator = TaskGenerator::seeded(u64::from(config.seed), config.device)?;
        let attack = attacks::from_config(attack_config, config.targets.is_some(), &generator)?;
        let spec = attack_spec::format(attack_config);
        let shard = eval::evaluate_with_judges(
            &model,
            &dataset.test,
            dataset.info.classes as i64,
            attack.as_ref(),
            &plan,
            &TaskContext::detached(),
            &judges,
        )
        .map_err(|source| EvalCliError::Attack { attack: spec.clone(), source })?;
        let successes = shard.outcomes.iter().filter(|outcome| outcome.success).count();
        let report = AttackReport {
            name: beard_proto::describe::attack_name(attack_config).to_owned(),
            spec,
            targeted: config.targets.is_some(),
            accuracy: shard.robust_accuracy,
            success_rate: 100.0 * successes as f64 / f64::from(shard.samples.max(1)),
            seconds: shard.attack_seconds,
            clean_seconds: shard.clean_seconds,
            transfer: shard
                .transfer
                .into_iter()
                .map(|outcome| JudgeReport {
                    checkpoint: outcome.train_task_id,
                    clean_accuracy: outcome.clean_accuracy,
                    accuracy: outcome.robust_accuracy,
                    adversarial_correct: outcome.adversarial_correct,
                })
                .collect(),
        };
        on_attack(&report);
        attacks.push(report);
    }
    Ok(EvalReport {
        checkpoint: path.display().to_string(),
        dataset: dataset.info.name.to_owned(),
        device,
        mode: config.mode,
        n,
        correct,
        clean_accuracy: 100.0 * correct as f64 / n as f64,
        clean_seconds,
        attacks,
    })
}

/// Correct clean predictions on the first `n` images of `split`, counted on the device and read
/// back once.
fn count_correct(model: &ConvNet, split: &Split, n: usize, batch_size: usize) -> Result<usize, TchError> {
    tch::no_grad(|| {
        let mut hits = Tensor::f_zeros([], (Kind::Int64, split.images.device()))?;
        for start in (0..n).step_by(batch_size) {
            let (start, length) = (start as i64, batch_size.min(n - start) as i64);
            let predictions = model.forward(&split.images.f_narrow(0, start, length)?, false)?.f_argmax(1, false)?;
            let correct = predictions.f_eq_tensor(&split.labels.f_narrow(0, start, length)?)?;
            hits = hits.f_add(&correct.f_sum(Kind::Int64)?)?;
        }
        Ok(usize::try_from(hits.f_int64_value(&[])?).unwrap_or_default())
    })
}
