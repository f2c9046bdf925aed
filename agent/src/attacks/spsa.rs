//! SPSA (Uesato et al. 2018), a query-only L∞ attack, with torchattacks 3.5.1's semantics and
//! parameter names.
//!
//! Each of `nb_iter` iterations estimates the gradient of a margin loss at the current point `x`
//! from `nb_sample` random sign vectors `v` (±1 per pixel and channel; one vector per sample,
//! shared by every image of the chunk, as in the reference):
//! `g = mean_v [(L(x + delta v) - L(x - delta v)) / (2 delta v)]`, then takes one Adam step
//! (learning rate `lr`, torch's defaults otherwise) on the perturbation, which it projects onto the
//! eps ball and the [0, 1] image box. The model is only ever asked for logits.
//!
//! The loss is minimized: `max_{k != t} z_k - z_t` towards a target `t`, and `z_y - max_{k != y}
//! z_k` away from the label `y` (torchattacks' marginal loss and its negation). The probes
//! `x ± delta v` are the reference's: they may leave [0, 1] by up to `delta`; the returned images
//! are clamped to [0, 1] and to the eps ball around the clean images.
//!
//! At most `max_batch_size` samples go into one model call (the reference's memory bound), and
//! fewer when a chunk is large, so that a call holds at most [`MAX_PROBES`] images; the grouping
//! does not change the draws or the result. A sample's success step is the iteration after which
//! the goal was first met (0 when the clean image already met it).
//!
//! Seeding: the sign vectors come from the host generator under the attack's seed, one stream per
//! chunk, so a seed gives the same draws on every device.

use beard_proto::v1;
use tch::{Kind, TchError, Tensor};

use super::{Adversarial, Attack, Goal};
use crate::data::rng::Rng;
use crate::model::ConvNet;

/// The host random stream label of SPSA's draws ("SPSA").
const STREAM: u64 = 0x5350_5341;
/// The most images (probes of all samples in a group, both signs) one model call takes.
const MAX_PROBES: i64 = 1024;
/// torch.optim.Adam's defaults.
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

/// SPSA under L∞.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spsa {
    eps: f64,
    delta: f64,
    lr: f64,
    iterations: u32,
    samples: u32,
    max_batch_size: u32,
    seed: u64,
}

impl Spsa {
    /// SPSA as a task's config describes it.
    pub fn new(config: &v1::Spsa) -> Result<Self, String> {
        if !(config.eps > 0.0 && config.eps <= 1.0) {
            return Err(format!("eps {} is outside (0, 1]", config.eps));
        }
        if !(config.delta > 0.0 && config.delta.is_finite()) {
            return Err(format!("delta {} must be positive", config.delta));
        }
        if !(config.lr > 0.0 && config.lr.is_finite()) {
            return Err(format!("lr {} must be positive", config.lr));
        }
        for (name, value) in
            [("nb_iter", config.nb_iter), ("nb_sample", config.nb_sample), ("max_batch_size", config.max_batch_size)]
        {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        Ok(Self {
            eps: config.eps,
            delta: config.delta,
            lr: config.lr,
            iterations: config.nb_iter,
            samples: config.nb_sample,
            max_batch_size: config.max_batch_size,
            seed: u64::from(config.seed),
        })
    }

    /// The loss to minimize, per image.
    fn loss(model: &ConvNet, images: &Tensor, goal: &Goal, classes: &Tensor) -> Result<Tensor, TchError> {
        let logits = model.forward(images, false)?;
        let margin = margin(&logits, classes)?;
        if goal.is_targeted() { Ok(margin) } else { margin.f_neg() }
    }

    /// The gradient estimate at `points` (`[n, c, h, w]`).
    fn gradient(&self, model: &ConvNet, points: &Tensor, goal: &Goal, rng: &mut Rng) -> Result<Tensor, TchError> {
        let (count, channels, height, width) = points.size4()?;
        let per_sample = (channels * height * width) as usize;
        let group = i64::from(self.max_batch_size).min((MAX_PROBES / (2 * count)).max(1));
        let mut gradient = Tensor::f_zeros_like(points)?;
        let mut remaining = i64::from(self.samples);
        while remaining > 0 {
            let size = group.min(remaining);
            remaining -= size;
            let signs = random_signs(rng, size as usize * per_sample);
            let signs =
                Tensor::f_from_slice(&signs)?.f_reshape([size, 1, channels, height, width])?.f_to(points.device())?;
            let step = signs.f_mul_scalar(self.delta)?;
            let center = points.f_unsqueeze(0)?;
            let probes = Tensor::f_cat(&[center.f_add(&step)?, center.f_sub(&step)?], 0)?.f_reshape([
                2 * size * count,
                channels,
                height,
                width,
            ])?;
            let classes = goal.classes().f_repeat([2 * size])?;
            let losses = Self::loss(model, &probes, goal, &classes)?.f_reshape([2, size, count, 1, 1, 1])?;
            let difference = losses.f_get(0)?.f_sub(&losses.f_get(1)?)?;
            // df / (2 delta v) with v = ±1.
            let estimates = difference.f_div(&signs.f_mul_scalar(2.0 * self.delta)?)?;
            gradient = gradient.f_add(&estimates.f_sum_dim_intlist(0, false, Kind::Float)?)?;
        }
        gradient.f_div_scalar(f64::from(self.samples))
    }
}

/// `max_{k != c} z_k - z_c` per row, `c` the row's class.
fn margin(logits: &Tensor, classes: &Tensor) -> Result<Tensor, TchError> {
    let index = classes.f_unsqueeze(1)?;
    let own = logits.f_gather(1, &index, false)?.f_squeeze_dim(1)?;
    let others = logits.f_scatter_value(1, &index, f64::NEG_INFINITY)?;
    let (best_other, _) = others.f_max_dim(1, false)?;
    best_other.f_sub(&own)
}

/// `count` values of -1 or 1 with equal probability, 64 per draw of the generator.
fn random_signs(rng: &mut Rng, count: usize) -> Vec<f32> {
    let mut signs = Vec::with_capacity(count);
    while signs.len() < count {
        let bits = rng.next_u64();
        let take = (count - signs.len()).min(64);
        signs.extend((0..take).map(|bit| if bits >> bit & 1 == 1 { 1.0 } else { -1.0 }));
    }
    signs
}

impl Attack for Spsa {
    fn max_steps(&self) -> u32 {
        self.iterations
    }

    fn supports_targeted(&self) -> bool {
        true
    }

    fn perturb(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError> {
        let _guard = tch::no_grad_guard();
        let images = images.f_detach()?;
        let mut rng = Rng::stream(self.seed, &[STREAM]);
        let mut perturbation = Tensor::f_zeros_like(&images)?;
        let (mut first_moment, mut second_moment) = (Tensor::f_zeros_like(&images)?, Tensor::f_zeros_like(&images)?);
        let mut point = images.shallow_clone();
        let mut first_success = Tensor::f_full([images.size()[0]], -1, (Kind::Int64, images.device()))?;
        for iteration in 0..self.iterations {
            let reached = goal.reached(&model.forward(&point, false)?)?;
            first_success = mark(&first_success, &reached, i64::from(iteration))?;
            let gradient = self.gradient(model, &point, goal, &mut rng)?;
            let step = f64::from(iteration + 1);
            first_moment = first_moment.f_mul_scalar(BETA1)?.f_add(&gradient.f_mul_scalar(1.0 - BETA1)?)?;
            second_moment =
                second_moment.f_mul_scalar(BETA2)?.f_add(&gradient.f_square()?.f_mul_scalar(1.0 - BETA2)?)?;
            let (correction1, correction2) = (1.0 - BETA1.powf(step), 1.0 - BETA2.powf(step));
            let denominator = second_moment.f_sqrt()?.f_div_scalar(correction2.sqrt())?.f_add_scalar(ADAM_EPS)?;
            let update = first_moment.f_div(&denominator)?.f_mul_scalar(self.lr / correction1)?;
            let unclamped = perturbation.f_sub(&update)?.f_clamp(-self.eps, self.eps)?;
            point = images.f_add(&unclamped)?.f_clamp(0.0, 1.0)?;
            perturbation = point.f_sub(&images)?;
        }
        let logits = model.forward(&point, false)?;
        let first_success = mark(&first_success, &goal.reached(&logits)?, i64::from(self.iterations))?;
        Ok(Adversarial { images: point, logits, first_success })
    }
}

/// `first_success` with `step` where `reached` and no earlier step was recorded.
fn mark(first_success: &Tensor, reached: &Tensor, step: i64) -> Result<Tensor, TchError> {
    let newly = reached.f_logical_and(&first_success.f_lt(0)?)?;
    first_success.f_masked_fill(&newly, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_are_balanced_and_reproducible() {
        let draw = || random_signs(&mut Rng::stream(7, &[STREAM]), 10_000);
        let signs = draw();
        assert_eq!(signs, draw());
        assert!(signs.iter().all(|sign| *sign == 1.0 || *sign == -1.0));
        let positive = signs.iter().filter(|sign| **sign > 0.0).count();
        assert!((4_800..5_200).contains(&positive), "{positive} of 10,000 positive");
    }

    #[test]
    fn the_margin_is_the_best_other_logit_minus_the_own() {
        let logits = Tensor::from_slice(&[1.0f32, 3.0, 2.0, 5.0, 0.0, 4.0]).reshape([2, 3]);
        let classes = Tensor::from_slice(&[1i64, 0]);
        let margin = Vec::<f32>::try_from(margin(&logits, &classes).unwrap()).unwrap();
        assert_eq!(margin, [-1.0, -1.0]);
    }

    #[test]
    fn configs_out_of_range_are_refused() {
        let valid = v1::Spsa {
            eps: 8.0 / 255.0,
            delta: 0.01,
            lr: 0.01,
            nb_iter: 1,
            nb_sample: 128,
            max_batch_size: 64,
            seed: 0,
        };
        assert!(Spsa::new(&valid).is_ok());
        for broken in [
            v1::Spsa { eps: 0.0, ..valid },
            v1::Spsa { delta: -1.0, ..valid },
            v1::Spsa { lr: f64::NAN, ..valid },
            v1::Spsa { nb_sample: 0, ..valid },
            v1::Spsa { max_batch_size: 0, ..valid },
        ] {
            assert!(Spsa::new(&broken).is_err(), "{broken:?}");
        }
    }
}
