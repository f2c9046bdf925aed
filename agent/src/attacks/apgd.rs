//! Auto-PGD under L∞ (Croce & Hein 2020), as fra31/auto-attack's `APGDAttack` (`apgd-ce`) and
//! `APGDAttack_targeted` (`apgd-t`) run it in AutoAttack's 'standard' version; untargeted only.
//!
//! One run on a set of images, following the reference step by step:
//!
//! - Start: `x + eps * t / max|t|` for `t` uniform in [-1, 1]^d (so the start sits on the
//!   ball's surface), clamped to [0, 1].
//! - Step size `2 eps` per sample; each iteration a signed-gradient step projected onto the ball
//!   and [0, 1], then the momentum mix `x + 0.75 (z - x) + 0.25 (x - x_prev)` projected again
//!   (no momentum on the first iteration).
//! - Checkpoints: the first after `0.22 n_iter` iterations, each next one `0.03 n_iter` earlier,
//!   never closer than `0.06 n_iter`. At a checkpoint a sample whose loss rose in at most 75% of
//!   the iterations since the previous one, or whose best loss did not improve and whose step was
//!   not halved last time, halves its step and restarts from its best-loss point and gradient.
//!   As in the reference, the first checkpoint compares the first loss with 0.
//! - The result is the last misclassified iterate (the starting point when none was).
//!
//! The losses: cross-entropy for APGD-CE; for APGD-T the targeted DLR loss
//! `-(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2)` (`z_(i)`: the i-th largest logit), run once
//! per target `t` among the `target_classes` classes the clean model finds most likely after its
//! top class. Success is misclassification in both.
//!
//! Compaction: every run (restart, or restart and target) attacks only the samples no earlier
//! run fooled. Choosing them needs their count on the host: one synchronization per run, none
//! inside a run. A sample's success step counts iterations over all runs it took part in (the
//! run's random start counts as the run's step 0).
//!
//! Seeding: the random starts come from the host generator under the attack's seed, one stream
//! per chunk; the same seed gives the same starts on every device.

use tch::{Kind, Reduction, TchError, Tensor};

use super::{Adversarial, Attack, Goal, input_gradient};
use crate::data::rng::Rng;
use crate::model::ConvNet;

/// The host random stream label of APGD's random starts ("APGD").
const STREAM: u64 = 0x4150_4744;
/// The step-size decrease threshold (the reference's `rho`).
const RHO: f64 = 0.75;
/// Momentum weight of the new step from the second iteration on.
const MOMENTUM: f64 = 0.75;
/// What the reference adds to denominators.
const DIVISION_EPS: f64 = 1e-12;

/// The loss an APGD run ascends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ApgdLoss {
    /// Cross-entropy of the true label (APGD-CE).
    CrossEntropy,
    /// Targeted DLR towards each of the `target_classes` most likely other classes in turn
    /// (APGD-T).
    TargetedDlr { target_classes: u32 },
}

/// Auto-PGD under L∞.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Apgd {
    eps: f64,
    iterations: u32,
    restarts: u32,
    loss: ApgdLoss,
    seed: u64,
}

/// The images, labels and targets of one run, and where its steps start counting.
struct Run<'a> {
    clean: &'a Tensor,
    labels: &'a Tensor,
    targets: Option<&'a Tensor>,
    first_step: i64,
}

/// What one run returns for its images.
struct RunResult {
    /// The last misclassified iterate, else the starting point.
    images: Tensor,
    /// Bool `[m]`: still classified correctly at every iterate.
    robust: Tensor,
    /// Int64 `[m]`: the absolute step of the first misclassified iterate, -1 if none.
    first_success: Tensor,
}

impl Apgd {
    /// APGD with budget `eps` in [0, 1], `iterations` per run, `restarts` runs (per target for
    /// APGD-T) and the host seed of the random starts.
    pub fn new(eps: f64, iterations: u32, restarts: u32, loss: ApgdLoss, seed: u64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&eps) {
            return Err(format!("eps must be in [0, 1] (pixel scale), got {eps}"));
        }
        if iterations == 0 {
            return Err("steps must be at least 1".to_owned());
        }
        if restarts == 0 {
            return Err("restarts must be at least 1".to_owned());
        }
        if let ApgdLoss::TargetedDlr { target_classes: 0 } = loss {
            return Err("n_classes (target classes) must be at least 1".to_owned());
        }
        Ok(Self { eps, iterations, restarts, loss, seed })
    }

    /// The runs per chunk: restarts, times the target classes for APGD-T.
    fn runs(&self) -> u32 {
        match self.loss {
            ApgdLoss::CrossEntropy => self.restarts,
            ApgdLoss::TargetedDlr { target_classes } => self.restarts * target_classes,
        }
    }

    /// The per-sample loss of `logits`.
    fn loss(&self, logits: &Tensor, run: &Run<'_>) -> Result<Tensor, TchError> {
        match run.targets {
            None => logits.f_cross_entropy_loss(run.labels, None::<Tensor>, Reduction::None, -100, 0.0),
            Some(targets) => targeted_dlr(logits, run.labels, targets),
        }
    }

    /// Logits, per-sample loss and the gradient of the summed loss at `images`.
    fn evaluate(&self, model: &ConvNet, images: &Tensor, run: &Run<'_>) -> Result<(Tensor, Tensor, Tensor), TchError> {
        let input = images.f_detach()?.f_set_requires_grad(true)?;
        let logits = model.forward(&input, false)?;
        let loss = self.loss(&logits, run)?;
        let gradient = input_gradient(&loss.f_sum(Kind::Float)?, &input, false)?;
        Ok((logits.f_detach()?, loss.f_detach()?, gradient))
    }

    /// One APGD run from a random start (see the module doc).
    fn run(&self, model: &ConvNet, run: &Run<'_>, rng: &mut Rng) -> Result<RunResult, TchError> {
        let x = run.clean;
        let lower = x.f_sub_scalar(self.eps)?;
        let upper = x.f_add_scalar(self.eps)?;
        let project = |candidate: &Tensor| candidate.f_clamp_tensor(Some(&lower), Some(&upper))?.f_clamp(0.0, 1.0);
        let per_image = |mask: &Tensor| mask.f_reshape([-1, 1, 1, 1]);

        let mut x_adv = x.f_add(&random_surface_start(x, self.eps, rng)?)?.f_clamp(0.0, 1.0)?;
        let (logits, mut loss, mut gradient) = self.evaluate(model, &x_adv, run)?;
        let mut robust = logits.f_argmax(1, false)?.f_eq_tensor(run.labels)?;
        let mut first_success = Tensor::f_where_scalar(&robust, -1, run.first_step)?;
        let mut x_best_adv = x_adv.shallow_clone();
        let mut x_best = x_adv.shallow_clone();
        let mut gradient_best = gradient.shallow_clone();
        let mut loss_best = loss.shallow_clone();
        let mut step_size = Tensor::f_full_like(&loss, 2.0 * self.eps)?.f_reshape([-1, 1, 1, 1])?;
        let mut x_previous = x_adv.shallow_clone();

        let iterations = i64::from(self.iterations);
        let mut checkpoint_gap = ((0.22 * iterations as f64) as i64).max(1);
        let gap_decrease = ((0.03 * iterations as f64) as i64).max(1);
        let min_gap = ((0.06 * iterations as f64) as i64).max(1);
        let mut since_checkpoint = 0;
        let mut losses: Vec<Tensor> = Vec::with_capacity(self.iterations as usize);
        let mut loss_best_at_checkpoint = loss_best.shallow_clone();
        let mut halved_at_checkpoint = robust.f_ones_like()?;

        for i in 0..iterations {
            let momentum_term = x_adv.f_sub(&x_previous)?;
            x_previous = x_adv.shallow_clone();
            let weight = if i > 0 { MOMENTUM } else { 1.0 };
            let stepped = project(&x_adv.f_add(&gradient.f_sign()?.f_mul(&step_size)?)?)?;
            let mixed = x_adv
                .f_add(&stepped.f_sub(&x_adv)?.f_mul_scalar(weight)?)?
                .f_add(&momentum_term.f_mul_scalar(1.0 - weight)?)?;
            x_adv = project(&mixed)?;

            let (logits, new_loss, new_gradient) = self.evaluate(model, &x_adv, run)?;
            (loss, gradient) = (new_loss, new_gradient);
            let fooled = logits.f_argmax(1, false)?.f_ne_tensor(run.labels)?;
            robust = robust.f_logical_and(&fooled.f_logical_not()?)?;
            x_best_adv = x_adv.f_where_self(&per_image(&fooled)?, &x_best_adv)?;
            let newly = fooled.f_logical_and(&first_success.f_lt(0)?)?;
            first_success = first_success.f_masked_fill(&newly, run.first_step + i + 1)?;

            let improved = loss.f_gt_tensor(&loss_best)?;
            x_best = x_adv.f_where_self(&per_image(&improved)?, &x_best)?;
            gradient_best = gradient.f_where_self(&per_image(&improved)?, &gradient_best)?;
            loss_best = loss.f_where_self(&improved, &loss_best)?;
            losses.push(loss.shallow_clone());

            since_checkpoint += 1;
            if since_checkpoint == checkpoint_gap {
                let oscillating = rises_at_most(&losses, checkpoint_gap, RHO)?;
                let stalled = halved_at_checkpoint
                    .f_logical_not()?
                    .f_logical_and(&loss_best_at_checkpoint.f_ge_tensor(&loss_best)?)?;
                let halve = oscillating.f_logical_or(&stalled)?;
                step_size = step_size.f_mul_scalar(0.5)?.f_where_self(&per_image(&halve)?, &step_size)?;
                x_adv = x_best.f_where_self(&per_image(&halve)?, &x_adv)?;
                gradient = gradient_best.f_where_self(&per_image(&halve)?, &gradient)?;
                halved_at_checkpoint = halve;
                loss_best_at_checkpoint = loss_best.shallow_clone();
                checkpoint_gap = (checkpoint_gap - gap_decrease).max(min_gap);
                since_checkpoint = 0;
            }
        }
        Ok(RunResult { images: x_best_adv, robust, first_success })
    }
}

impl Attack for Apgd {
    fn max_steps(&self) -> u32 {
        self.runs() * self.iterations
    }

    fn supports_targeted(&self) -> bool {
        false
    }

    fn perturb(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError> {
        if goal.is_targeted() {
            return Err(TchError::Torch("APGD runs untargeted only".to_owned()));
        }
        let images = images.f_detach()?;
        let labels = goal.classes();
        let clean_logits = tch::no_grad(|| model.forward(&images, false))?;
        let (_, classes) = clean_logits.size2()?;
        if matches!(self.loss, ApgdLoss::TargetedDlr { .. }) && classes < 4 {
            return Err(TchError::Torch(format!("APGD-T's DLR loss needs at least 4 classes, got {classes}")));
        }
        // Classes by decreasing clean logit: column r is the (r + 1)-th most likely class.
        let ranked = clean_logits.f_argsort(1, true)?;
        let mut robust = clean_logits.f_argmax(1, false)?.f_eq_tensor(labels)?;
        let mut first_success = Tensor::f_where_scalar(&robust, -1, 0)?;
        let mut adversarial = images.shallow_clone();
        let mut rng = Rng::stream(self.seed, &[STREAM]);
        for index in 0..self.runs() {
            // The compaction's host synchronization (see the module doc).
            let rows = robust.f_nonzero()?.f_squeeze_dim(1)?;
            if rows.numel() == 0 {
                break;
            }
            let (rank, restart) = match self.loss {
                ApgdLoss::CrossEntropy => (None, index),
                ApgdLoss::TargetedDlr { .. } => (Some(1 + i64::from(index / self.restarts)), index % self.restarts),
            };
            let targets = match rank {
                Some(rank) if rank < classes => Some(ranked.f_index_select(0, &rows)?.f_select(1, rank)?),
                Some(_) => break,
                None => None,
            };
            let clean = images.f_index_select(0, &rows)?;
            let run_labels = labels.f_index_select(0, &rows)?;
            let target_index = rank.map_or(0, |rank| rank - 1);
            let first_step =
                (target_index * i64::from(self.restarts) + i64::from(restart)) * i64::from(self.iterations);
            let run = Run { clean: &clean, labels: &run_labels, targets: targets.as_ref(), first_step };
            let result = self.run(model, &run, &mut rng)?;
            let fooled = result.robust.f_logical_not()?;
            let images_now = result.images.f_where_self(&fooled.f_reshape([-1, 1, 1, 1])?, &clean)?;
            adversarial = adversarial.f_index_copy(0, &rows, &images_now)?;
            robust = robust.f_index_copy(0, &rows, &result.robust)?;
            first_success = first_success.f_index_copy(0, &rows, &result.first_success)?;
        }
        let logits = tch::no_grad(|| model.forward(&adversarial, false))?;
        Ok(Adversarial { images: adversarial, logits, first_success })
    }
}

/// A perturbation on the surface of the L∞ ball of radius `eps`: uniform draws in [-1, 1]
/// scaled so that each sample's largest entry has magnitude `eps`.
fn random_surface_start(images: &Tensor, eps: f64, rng: &mut Rng) -> Result<Tensor, TchError> {
    let draws: Vec<f32> = (0..images.numel()).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect();
    let t = Tensor::f_from_slice(&draws)?.f_reshape(images.size())?.f_to_device(images.device())?;
    let peak = t.f_abs()?.f_flatten(1, -1)?.f_amax([1], false)?.f_reshape([-1, 1, 1, 1])?;
    t.f_div(&peak.f_add_scalar(DIVISION_EPS)?)?.f_mul_scalar(eps)
}

/// Per sample (bool `[m]`): whether the loss rose in at most `rho * gap` of the last `gap`
/// iterations; before the first loss the reference reads 0.
fn rises_at_most(losses: &[Tensor], gap: i64, rho: f64) -> Result<Tensor, TchError> {
    let last = losses.len();
    let mut rises = losses[last - 1].f_zeros_like()?;
    for back in 0..gap as usize {
        let current = &losses[last - 1 - back];
        let previous = match (last - 1 - back).checked_sub(1) {
            Some(index) => losses[index].shallow_clone(),
            None => current.f_zeros_like()?,
        };
        rises = rises.f_add(&current.f_gt_tensor(&previous)?.f_to_kind(Kind::Float)?)?;
    }
    rises.f_le(gap as f64 * rho)
}

/// The reference's targeted DLR loss per sample: `-(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2)`.
fn targeted_dlr(logits: &Tensor, labels: &Tensor, targets: &Tensor) -> Result<Tensor, TchError> {
    let (_, classes) = logits.size2()?;
    let (sorted, _) = logits.f_sort(1, false)?;
    let own = logits.f_gather(1, &labels.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?;
    let target = logits.f_gather(1, &targets.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?;
    let scale = sorted
        .f_select(1, classes - 1)?
        .f_sub(&sorted.f_select(1, classes - 3)?.f_add(&sorted.f_select(1, classes - 4)?)?.f_mul_scalar(0.5)?)?
        .f_add_scalar(DIVISION_EPS)?;
    own.f_sub(&target)?.f_neg()?.f_div(&scale)
}
