//! DM, distribution matching (Zhao & Bilen, VICO-UoE/DatasetCondensation `main_DM.py`).
//!
//! Each iteration draws a fresh randomly initialized ConvNet (never trained; its weights frozen)
//! and, for every class, a batch of real images; both batches of the class, real and synthetic,
//! go through the same siamese DSA draw; the loss adds `||mean embed(real) - mean embed(syn)||^2`
//! over the classes, the real side without gradients. One SGD step on the synthetic images
//! (momentum 0.5 by default) follows each iteration. `embed` is the ConvNet's flattened features
//! before the classifier, on normalized images (the model's normalizer is taken out).
//!
//! [`official`] is the reference's command for CIFAR: 20,000 iterations, 256 real
//! images per class, lr 1, momentum 0.5, DSA, real images to start from; every field can be set,
//! so that CI-sized runs exist.
//!
//! A run offers a snapshot of its state whenever its [`TaskContext`]'s policy says one is due,
//! and resumes from one bit for bit.

use tch::{TchError, Tensor};

use super::{DistillError, Distilled, Matching, Prepared, Run, Start, fresh_net};
use crate::model::ConvNet;

/// The reference command's settings (`main_DM.py` with the readme's flags for CIFAR).
pub fn official() -> Matching {
    Matching { iterations: 20_000, batch_real: 256, lr_img: 1.0, momentum: 0.5, dsa: true, start: Start::Real }
}

/// DM's loss for one network: the sum over classes of [`mean_distance`] between the embeddings
/// of the real batch (no gradient) and the synthetic batch of the class.
pub fn loss(net: &ConvNet, real: &[Tensor], synthetic: &[Tensor]) -> Result<Tensor, TchError> {
    let mut total: Option<Tensor> = None;
    for (real, synthetic) in real.iter().zip(synthetic) {
        let real_features = tch::no_grad(|| net.embed(real, false))?;
        let term = mean_distance(&real_features, &net.embed(synthetic, false)?)?;
        total = Some(match total {
            None => term,
            Some(sum) => sum.f_add(&term)?,
        });
    }
    total.ok_or_else(|| TchError::Shape("DM's loss needs at least one class".into()))
}

/// The squared distance between the mean rows of two feature batches `[n, d]` and `[m, d]`.
pub fn mean_distance(real: &Tensor, synthetic: &Tensor) -> Result<Tensor, TchError> {
    let difference = real.f_mean_dim(0, false, None)?.f_sub(&synthetic.f_mean_dim(0, false, None)?)?;
    difference.f_square()?.f_sum(None)
}

/// Distils `run`'s set with DM. Reports `iteration i/n: loss l` every [`REPORT_EVERY`]
/// iterations and offers snapshots as its context asks.
pub fn distill(run: &Run, settings: &Matching) -> Result<Distilled, DistillError> {
    let Prepared { batches, mut synthetic, resumed_from } = run.prepare(settings)?;
    let device = run.train.images.device();
    // The last iteration always reports, so this is its loss at the end.
    let mut final_loss = f64::NAN;
    for iteration in resumed_from..settings.iterations {
        if run.ctx.is_cancelled() {
            return Err(DistillError::Cancelled);
        }
        let mut net = fresh_net(run.model, run.seed, &[u64::from(iteration)], device)?;
        net.freeze();
        let (real, fake) = batches.pairs(&[u64::from(iteration)], &synthetic)?;
        let loss = loss(&net, &real, &fake)?;
        synthetic.descend(&loss, settings.lr_img, settings.momentum)?;
        let done = iteration + 1;
        let reported = if done % REPORT_EVERY == 0 || done == settings.iterations {
            // Per class, as the reference logs it.
            final_loss = loss.f_double_value(&[])? / run.dataset.classes as f64;
            Some(final_loss)
        } else {
            None
        };
        run.finish_iteration(done, settings.iterations, reported, || synthetic.state())?;
    }
    Ok(Distilled { set: synthetic, final_loss, resumed_from })
}

/// Iterations between two progress reports (each reads the loss back to the host).
const REPORT_EVERY: u32 = 10;
