//! Training a ConvNet on a distilled set that stays resident on the device.
//!
//! Plain minibatch training: each epoch shuffles the set with the host RNG (seeded by the task's
//! seed and the epoch, so the order is the same on every device), slices batches on the device
//! with `index_select`, and takes one Adam or SGD step (libtorch's optimizers, PyTorch's
//! semantics: coupled weight decay, no Nesterov, no dampening) per batch with the mean
//! cross-entropy: against class indices for hard labels, or against the rows of soft labels as
//! target probabilities (PyTorch's `cross_entropy` with probability targets,
//! `-(p * log_softmax(logits)).sum(1).mean()`). No data loader, no augmentation, float32. Progress goes to the task context
//! once per epoch, which is also where cancellation is honoured.

use beard_proto::v1::{Optimizer, TrainingConfig};
use tch::{COptimizer, Reduction, TchError, Tensor};

use crate::backend::TaskContext;
use crate::data::distilled::DistilledSet;
use crate::data::rng::{Rng, streams};
use crate::model::ConvNet;

const ADAM_BETAS: (f64, f64) = (0.9, 0.999);
const ADAM_EPS: f64 = 1e-8;

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

/// Train `model` in place on `set`; returns the mean training loss of the last epoch.
pub fn train(
    model: &ConvNet,
    set: &DistilledSet,
    config: &TrainingConfig,
    seed: u32,
    ctx: &TaskContext,
) -> Result<f64, TrainError> {
    validate(config)?;
    if set.is_empty() {
        return Err(TrainError::InvalidConfig("the distilled set is empty".into()));
    }
    let mut optimizer = optimizer(config)?;
    for variable in model.trainable_variables() {
        optimizer.add_parameters(&variable, 0)?;
    }
    let count = set.len();
    let batch = config.batch_size as usize;
    let device = set.images.device();
    let mut order: Vec<i64> = (0..count as i64).collect();
    let mut last_epoch_loss = Tensor::f_zeros([], (tch::Kind::Float, device))?;
    for epoch in 0..config.epochs {
        if ctx.is_cancelled() {
            return Err(TrainError::Cancelled);
        }
        Rng::stream(u64::from(seed), &[streams::SHUFFLE, u64::from(epoch)]).shuffle(&mut order);
        let permutation = Tensor::f_from_slice(&order)?.f_to(device)?;
        let mut loss_sum = Tensor::f_zeros([], (tch::Kind::Float, device))?;
        for start in (0..count).step_by(batch) {
            let length = batch.min(count - start);
            let index = permutation.f_narrow(0, start as i64, length as i64)?;
            let images = set.images.f_index_select(0, &index)?;
            let labels = set.labels.f_index_select(0, &index)?;
            let logits = model.forward(&images, true)?;
            let loss = logits.f_cross_entropy_loss(&labels, None::<Tensor>, Reduction::Mean, -100, 0.0)?;
            optimizer.zero_grad()?;
            loss.f_backward()?;
            optimizer.step()?;
            loss_sum = loss_sum.f_add(&loss.f_detach()?.f_mul_scalar(length as f64)?)?;
        }
        last_epoch_loss = loss_sum;
        ctx.progress(format!("epoch {}/{}", epoch + 1, config.epochs));
    }
    Ok(last_epoch_loss.f_double_value(&[])? / count as f64)
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
