//! DC and DSA, gradient matching (Zhao, Mopuri & Bilen; Zhao & Bilen;
//! VICO-UoE/DatasetCondensation `main.py`).
//!
//! Each iteration draws a fresh randomly initialized ConvNet that trains along the way. For each
//! of `outer_loop` outer steps, every class's real batch and synthetic images give the
//! cross-entropy gradients of the network's parameters, the real ones detached and the synthetic
//! ones with their graph; the loss sums [`distance`] over the classes, and one SGD step on the
//! synthetic images follows, a double backward through the ConvNet. Then, except after the last
//! outer step, the network trains `inner_loop` epochs on the current synthetic set (plain SGD at
//! `lr_net`, batches of `batch_train`): at IPC 1, whose loops are (1, 1), it never trains. DSA
//! is the same with one siamese DSA draw per class and outer step on both batches, and DSA (per
//! image) in the inner training.
//!
//! [`GmSettings::dc`] and [`GmSettings::dsa`] are the readme's commands for an IPC with official
//! loops; every field can be set, so that CI-sized runs exist. Snapshots and resume work as in
//! DM: a run's state between iterations is the images and their momentum, since each iteration's
//! network is fresh.

use beard_proto::v1::{Augmentation, GradientMatchingConfig, LrSchedule, Optimizer, TrainingConfig};
use tch::{Kind, Reduction, TchError, Tensor};

use super::{DistillError, Distilled, Matching, Prepared, Run, Start, Synthetic, fresh_net, purpose};
use crate::data::distilled::DistilledSet;
use crate::data::rng::{Rng, streams};
use crate::data::{DatasetInfo, Normalization};
use crate::model::ConvNet;
use crate::train;

/// DC's and DSA's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GmSettings {
    /// `dsa` also turns on DSA in the inner training.
    pub matching: Matching,
    /// The inner loop's plain SGD.
    pub lr_net: f64,
    /// Image steps per iteration, and epochs of the network after each but the last.
    pub outer_loop: u32,
    pub inner_loop: u32,
    pub batch_train: u32,
}

impl GmSettings {
    /// DC as the readme runs it, with the loops of an IPC (`get_loops`): 1,000 iterations, 256
    /// real images per class, lr 0.1, momentum 0.5, lr_net 0.01, inner batches of 256, from noise.
    pub fn dc(outer_loop: u32, inner_loop: u32) -> Self {
        let matching = Matching {
            iterations: 1_000,
            batch_real: 256,
            lr_img: 0.1,
            momentum: 0.5,
            dsa: false,
            start: Start::Noise,
        };
        Self { matching, lr_net: 0.01, outer_loop, inner_loop, batch_train: 256 }
    }

    /// DSA as the readme runs it: DC's settings with siamese DSA, from real images.
    pub fn dsa(outer_loop: u32, inner_loop: u32) -> Self {
        let dc = Self::dc(outer_loop, inner_loop);
        Self { matching: Matching { dsa: true, start: Start::Real, ..dc.matching }, ..dc }
    }

    /// The settings a task's config gives.
    pub fn from_config(config: &GradientMatchingConfig) -> Result<Self, DistillError> {
        let matching =
            config.matching.as_ref().ok_or_else(|| DistillError::Invalid("DC/DSA without matching settings".into()))?;
        Ok(Self {
            matching: matching.into(),
            lr_net: config.lr_net,
            outer_loop: config.outer_loop,
            inner_loop: config.inner_loop,
            batch_train: config.batch_train,
        })
    }

    /// The inner loop's training protocol: `inner_loop` epochs of plain SGD.
    fn inner_training(&self) -> TrainingConfig {
        let augmentation = if self.matching.dsa { Augmentation::Dsa } else { Augmentation::None };
        TrainingConfig {
            optimizer: Optimizer::Sgd.into(),
            lr: self.lr_net,
            momentum: 0.0,
            weight_decay: 0.0,
            epochs: self.inner_loop,
            batch_size: self.batch_train,
            lr_schedule: LrSchedule::Constant.into(),
            augmentation: augmentation.into(),
            adversarial: None,
        }
    }
}

/// The reference's layer-wise gradient distance (`match_loss` with `dis_metric='ours'`): for each
/// pair of gradients with at least two dimensions, reshaped to `[out, rest]`, the sum over output
/// units of `1 - cos`, with `1e-6` added to the product of the norms. One-dimensional gradients
/// (biases, norm layers) add nothing.
pub fn distance(synthetic: &[Tensor], real: &[Tensor]) -> Result<Tensor, TchError> {
    let mut total = Tensor::f_zeros([], (Kind::Float, synthetic.first().map_or(tch::Device::Cpu, Tensor::device)))?;
    for (synthetic, real) in synthetic.iter().zip(real) {
        if synthetic.dim() < 2 {
            continue;
        }
        let rows = synthetic.size()[0];
        let (synthetic, real) = (synthetic.f_reshape([rows, -1])?, real.f_reshape([rows, -1])?);
        let dot = synthetic.f_mul(&real)?.f_sum_dim_intlist([-1i64].as_slice(), false, None)?;
        let norms = |g: &Tensor| g.f_norm_scalaropt_dim(2, [-1i64].as_slice(), false);
        let cosine = dot.f_div(&norms(&synthetic)?.f_mul(&norms(&real)?)?.f_add_scalar(1e-6)?)?;
        total = total.f_add(&cosine.f_neg()?.f_add_scalar(1.0)?.f_sum(None)?)?;
    }
    Ok(total)
}

/// The gradients of the mean cross-entropy of `net` on `images` (all of class `class`) with
/// respect to its parameters, in [`ConvNet::trainable_variables`] order: with their graph when
/// `create_graph` (the synthetic side), else detached (the real side).
pub fn parameter_gradients(
    net: &ConvNet,
    images: &Tensor,
    class: i64,
    create_graph: bool,
) -> Result<Vec<Tensor>, TchError> {
    let logits = net.forward(images, true)?;
    let labels = Tensor::f_full([images.size()[0]], class, (Kind::Int64, images.device()))?;
    let loss = logits.f_cross_entropy_loss(&labels, None::<Tensor>, Reduction::Mean, -100, 0.0)?;
    let gradients = Tensor::f_run_backward(&[&loss], &net.trainable_variables(), create_graph, create_graph)?;
    if create_graph { Ok(gradients) } else { gradients.iter().map(Tensor::f_detach).collect() }
}

/// Gradient matching's loss at one outer step: [`distance`] summed over the classes, each
/// class's `real` and `synthetic` batch the pair at the same index.
pub fn loss(net: &ConvNet, real: &[Tensor], synthetic: &[Tensor]) -> Result<Tensor, TchError> {
    let mut total: Option<Tensor> = None;
    for (class, (real, synthetic)) in real.iter().zip(synthetic).enumerate() {
        let target = parameter_gradients(net, real, class as i64, false)?;
        let matched = parameter_gradients(net, synthetic, class as i64, true)?;
        let term = distance(&matched, &target)?;
        total = Some(match total {
            None => term,
            Some(sum) => sum.f_add(&term)?,
        });
    }
    total.ok_or_else(|| TchError::Shape("gradient matching needs at least one class".into()))
}

/// Distils `run`'s set with DC or DSA. Reports `iteration i/n: loss l` (the mean per class and
/// outer step, as the reference logs it) after every iteration and offers snapshots as its
/// context asks.
pub fn distill(run: &Run, settings: &GmSettings) -> Result<Distilled, DistillError> {
    if settings.outer_loop == 0 || settings.inner_loop == 0 || settings.batch_train == 0 {
        return Err(DistillError::Invalid("outer_loop, inner_loop and batch_train must be at least 1".into()));
    }
    let Prepared { batches, mut synthetic, resumed_from } = run.prepare(&settings.matching)?;
    let Matching { iterations, lr_img, momentum, .. } = settings.matching;
    let inner = settings.inner_training();
    // The inner loop trains on the synthetic set as it is, already in the normalized space the
    // network reads (its normalizer is taken out); DSA augments in that same space.
    let normalized = DatasetInfo { normalization: Normalization::IDENTITY, ..*run.dataset };
    let device = run.train.images.device();
    let mut final_loss = f64::NAN;
    for iteration in resumed_from..iterations {
        let net = fresh_net(run.model, run.seed, &[u64::from(iteration)], device)?;
        let mut loss_sum = 0.0;
        for outer in 0..settings.outer_loop {
            if run.ctx.is_cancelled() {
                return Err(DistillError::Cancelled);
            }
            let step = [u64::from(iteration), u64::from(outer)];
            let (real, fake) = batches.pairs(&step, &synthetic)?;
            let loss = loss(&net, &real, &fake)?;
            synthetic.descend(&loss, lr_img, momentum)?;
            loss_sum += loss.f_double_value(&[])?;
            if outer + 1 < settings.outer_loop {
                train_inner(&net, &synthetic, &normalized, &inner, run, step)?;
            }
        }
        final_loss = loss_sum / (run.dataset.classes as f64 * f64::from(settings.outer_loop));
        run.finish_iteration(iteration + 1, iterations, Some(final_loss), || synthetic.state())?;
    }
    Ok(Distilled { set: synthetic, final_loss, resumed_from })
}

/// The inner loop after outer step `step` (`[iteration, outer step]`): `net` trains on the
/// current synthetic set, its shuffles and DSA drawn under a seed from `[DISTILL, INNER, step..]`.
fn train_inner(
    net: &ConvNet,
    synthetic: &Synthetic,
    normalized: &DatasetInfo,
    inner: &TrainingConfig,
    run: &Run,
    step: [u64; 2],
) -> Result<(), DistillError> {
    let set = DistilledSet { images: synthetic.images().f_detach()?, labels: synthetic.labels()? };
    let key = [streams::DISTILL, purpose::INNER, step[0], step[1]];
    // `train` takes a 32-bit seed: the low half of the stream's first draw.
    let train_seed = Rng::stream(run.seed, &key).next_u64() as u32;
    train::train(net, &set, normalized, inner, train_seed, &run.ctx.silenced())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distance_is_zero_for_equal_gradients_counts_each_unit_and_ignores_one_dimensional_ones() {
        tch::manual_seed(1);
        let options = (Kind::Float, tch::Device::Cpu);
        // A conv weight and bias, a classifier weight and bias: 4 + 10 output units.
        let gradients = [
            Tensor::randn([4, 3, 3, 3], options),
            Tensor::randn([4], options),
            Tensor::randn([10, 16], options),
            Tensor::randn([10], options),
        ];
        let value = |synthetic: &[Tensor]| distance(synthetic, &gradients).expect("a distance").double_value(&[]);
        let same = value(&gradients);
        assert!(same.abs() < 1e-5, "D(g, g) = {same}");
        let other_biases: Vec<Tensor> =
            gradients.iter().map(|g| if g.dim() == 1 { g.randn_like() * 5.0 } else { g.shallow_clone() }).collect();
        assert_eq!(value(&other_biases), same, "one-dimensional gradients add nothing");
        let opposite: Vec<Tensor> = gradients.iter().map(|g| -g).collect();
        assert!((value(&opposite) - 2.0 * 14.0).abs() < 1e-4, "1 - cos = 2 per unit: {}", value(&opposite));
        let rescaled: Vec<Tensor> = gradients.iter().map(|g| g * 3.0).collect();
        assert!(value(&rescaled).abs() < 1e-5, "the distance reads directions only");
    }
}
