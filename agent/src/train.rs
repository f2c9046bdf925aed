//! Training a ConvNet on a training set that stays resident on the device: a distilled set, or a
//! whole training split (50,000 CIFAR images) for the Full-size baseline.
//!
//! Plain minibatch training: each epoch shuffles an index list with the host RNG (seeded by the
//! task's seed and the epoch, so the order is the same on every device; the images themselves are
//! never copied whole), slices batches on the device with `index_select`, optionally augments each
//! batch with DSA ([`crate::augment`], an epoch's draws from the host RNG stream
//! `[augment::STREAM, epoch]`), optionally replaces (part of) it with adversarial examples of the
//! current model ([`adversarial`]), and takes one Adam or SGD step (libtorch's optimizers,
//! PyTorch's semantics: coupled weight decay, no Nesterov, no dampening) per batch with the mean
//! cross-entropy: against class indices for hard labels, or against the rows of soft labels as
//! target probabilities (PyTorch's `cross_entropy` with probability targets,
//! `-(p * log_softmax(logits)).sum(1).mean()`). No data loader, float32. Cancellation is honoured
//! before every batch; progress goes to the task context after every epoch, and after every batch
//! of an epoch with several.
//!
//! Learning-rate schedules: `constant`, or `step-half`: lr for the first ceil(epochs / 2)
//! epochs and lr x 0.1 for the rest, like PyTorch's `MultiStepLR` (the optimizer keeps its
//! state). DC's `evaluate_synset` runs epochs + 1 epochs, decays after epoch epochs / 2 + 1 and
//! re-creates its SGD optimizer there (dropping the momentum buffers); with 1000 epochs that is
//! 502 + 499 epochs instead of 500 + 500, a difference its reruns do not resolve.

mod adversarial;

use beard_proto::v1::{Augmentation, LrSchedule, Optimizer, TrainingConfig};
use tch::{COptimizer, Reduction, TchError, Tensor};

use crate::augment::{self, Dsa};
use crate::backend::TaskContext;
use crate::data::DatasetInfo;
use crate::data::distilled::DistilledSet;
use crate::data::rng::{Rng, streams};
use crate::model::ConvNet;
use crate::random::TaskGenerator;

const ADAM_BETAS: (f64, f64) = (0.9, 0.999);
const ADAM_EPS: f64 = 1e-8;
const STEP_DECAY: f64 = 0.1;

/// Why training stopped without a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training config: {0}")]
    InvalidConfig(String),
    #[error("training was cancelled")]
    Cancelled,
    #[error(transparent)]
    Torch(#[from] TchError),
}

/// Train `model` in place on `set`, an image set of `dataset` (whose normalization maps pixels
/// to the space DSA augments in, and whose classes targeted adversarial examples aim at); returns
/// the mean training loss of the last epoch.
pub fn train(
    model: &ConvNet,
    set: &DistilledSet,
    dataset: &DatasetInfo,
    config: &TrainingConfig,
    seed: u32,
    ctx: &TaskContext,
) -> Result<f64, TrainError> {
    validate(config)?;
    if set.is_empty() {
        return Err(TrainError::InvalidConfig("the training set is empty".into()));
    }
    let adversary = match &config.adversarial {
        Some(adversarial) => {
            let generator = TaskGenerator::seeded(u64::from(seed), set.images.device())?;
            Some(adversarial::Adversary::new(adversarial, dataset.classes as i64, generator)?)
        }
        None => None,
    };
    let mut optimizer = optimizer(config)?;
    for variable in model.trainable_variables() {
        optimizer.add_parameters(&variable, 0)?;
    }
    let count = set.len();
    let batch = config.batch_size as usize;
    let device = set.images.device();
    let dsa = match config.augmentation() {
        Augmentation::None => None,
        Augmentation::Dsa => Some(Dsa::new(&dataset.normalization, device)?),
    };
    let (_, _, height, width) = set.images.size4()?;
    let batch_sizes: Vec<usize> = (0..count).step_by(batch).map(|start| batch.min(count - start)).collect();
    let mut order: Vec<i64> = (0..count as i64).collect();
    let mut last_epoch_loss = Tensor::f_zeros([], (tch::Kind::Float, device))?;
    let mut lr = config.lr;
    for epoch in 0..config.epochs {
        let epoch_lr = learning_rate(config, epoch);
        if epoch_lr != lr {
            lr = epoch_lr;
            optimizer.set_learning_rate(lr)?;
        }
        Rng::stream(u64::from(seed), &[streams::SHUFFLE, u64::from(epoch)]).shuffle(&mut order);
        let permutation = Tensor::f_from_slice(&order)?.f_to(device)?;
        let augmentation = match &dsa {
            Some(dsa) => {
                let mut rng = Rng::stream(u64::from(seed), &[augment::STREAM, u64::from(epoch)]);
                Some(dsa.epoch(&mut rng, &batch_sizes, height, width)?)
            }
            None => None,
        };
        let mut loss_sum = Tensor::f_zeros([], (tch::Kind::Float, device))?;
        for (number, &length) in batch_sizes.iter().enumerate() {
            if ctx.is_cancelled() {
                return Err(TrainError::Cancelled);
            }
            let rows = permutation.f_narrow(0, (number * batch) as i64, length as i64)?;
            let mut images = set.images.f_index_select(0, &rows)?;
            if let Some(augmentation) = &augmentation {
                images = augmentation.apply(number, &images)?;
            }
            let labels = set.labels.f_index_select(0, &rows)?;
            if let Some(adversary) = &adversary {
                images = adversary.perturb(model, &images, &labels)?;
            }
            let logits = model.forward(&images, true)?;
            let loss = logits.f_cross_entropy_loss(&labels, None::<Tensor>, Reduction::Mean, -100, 0.0)?;
            optimizer.zero_grad()?;
            loss.f_backward()?;
            optimizer.step()?;
            loss_sum = loss_sum.f_add(&loss.f_detach()?.f_mul_scalar(length as f64)?)?;
            if batch_sizes.len() > 1 {
                ctx.progress(format!(
                    "epoch {}/{}: batch {}/{}",
                    epoch + 1,
                    config.epochs,
                    number + 1,
                    batch_sizes.len()
                ));
            }
        }
        last_epoch_loss = loss_sum;
        ctx.progress(format!("epoch {}/{}", epoch + 1, config.epochs));
    }
    Ok(last_epoch_loss.f_double_value(&[])? / count as f64)
}

/// The learning rate of (0-based) `epoch` under the config's schedule.
fn learning_rate(config: &TrainingConfig, epoch: u32) -> f64 {
    match config.lr_schedule() {
        LrSchedule::StepHalf if epoch >= config.epochs.div_ceil(2) => config.lr * STEP_DECAY,
        LrSchedule::StepHalf | LrSchedule::Constant => config.lr,
    }
}

fn validate(config: &TrainingConfig) -> Result<(), TrainError> {
    let problem = if !(config.lr.is_finite() && config.lr > 0.0) {
        Some(format!("lr must be positive, got {}", config.lr))
    } else if !(0.0..1.0).contains(&config.momentum) {
        Some(format!("momentum must be in [0, 1), got {}", config.momentum))
    } else if !(config.weight_decay.is_finite() && config.weight_decay >= 0.0) {
        Some(format!("weight_decay must be non-negative, got {}", config.weight_decay))
    } else if config.epochs == 0 {
        Some("epochs must be at least 1".to_owned())
    } else if config.batch_size == 0 {
        Some("batch_size must be at least 1".to_owned())
    } else if LrSchedule::try_from(config.lr_schedule).is_err() {
        Some(format!("unknown lr_schedule {}", config.lr_schedule))
    } else if Augmentation::try_from(config.augmentation).is_err() {
        Some(format!("unknown augmentation {}", config.augmentation))
    } else {
        None
    };
    problem.map_or(Ok(()), |message| Err(TrainError::InvalidConfig(message)))
}

fn optimizer(config: &TrainingConfig) -> Result<COptimizer, TrainError> {
    Ok(match config.optimizer() {
        Optimizer::Adam => {
            COptimizer::adam(config.lr, ADAM_BETAS.0, ADAM_BETAS.1, config.weight_decay, ADAM_EPS, false)?
        }
        Optimizer::Sgd => COptimizer::sgd(config.lr, config.momentum, 0.0, config.weight_decay, false)?,
        Optimizer::Unspecified => return Err(TrainError::InvalidConfig("optimizer is unspecified".into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_half_decays_after_the_first_half() {
        let config = |epochs, schedule: LrSchedule| TrainingConfig {
            lr: 0.01,
            epochs,
            lr_schedule: schedule.into(),
            ..Default::default()
        };
        let rates = |config: &TrainingConfig| (0..config.epochs).map(|e| learning_rate(config, e)).collect::<Vec<_>>();
        assert_eq!(rates(&config(4, LrSchedule::Constant)), [0.01; 4]);
        assert_eq!(rates(&config(4, LrSchedule::StepHalf)), [0.01, 0.01, 0.001, 0.001]);
        assert_eq!(rates(&config(3, LrSchedule::StepHalf)), [0.01, 0.01, 0.001]);
        assert_eq!(rates(&config(1, LrSchedule::StepHalf)), [0.01]);
        let decayed = rates(&config(1000, LrSchedule::StepHalf));
        assert_eq!((decayed[499], decayed[500]), (0.01, 0.001));
    }

    #[test]
    fn unknown_schedules_and_augmentations_are_invalid() {
        let valid = TrainingConfig { lr: 0.01, epochs: 1, batch_size: 1, ..Default::default() };
        assert!(validate(&valid).is_ok());
        for config in [TrainingConfig { lr_schedule: 9, ..valid.clone() }, TrainingConfig { augmentation: 9, ..valid }]
        {
            assert!(matches!(validate(&config), Err(TrainError::InvalidConfig(_))), "{config:?}");
        }
    }
}
