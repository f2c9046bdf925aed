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
//! run fooled, and inside a run, every [`COMPACT_EVERY`] iterations, the samples already fooled
//! leave the working set. The reference goes on stepping them, and its result is the last
//! misclassified iterate of the whole run where ours is the last one before the sample left; both
//! are misclassified and inside the budget, so whether a sample is fooled (what robust accuracy and
//! the AutoAttack cascade read) is unchanged, and samples do not interact (the step sizes and
//! checkpoints are per sample, the model runs in evaluation mode). Each compaction reads a count
//! on the host; without it, APGD-CE on an undefended model would run all its iterations on
//! samples fooled in the first few. A sample's success step counts iterations over all runs it took part in (the
//! run's random start counts as the run's step 0).
//!
//! An iteration reads nothing from the host and updates the run's state in place (the step
//! number is a counter on the device, the losses the checkpoints read a ring of the last ones),
//! so on CUDA every iteration after the first is one replay of a CUDA graph
//! ([`ReplayedStep`]); checkpoints, whose iterations the host knows, run between replays. On
//! CUDA the working set shrinks only to powers of two ([`super::shrink`]), and samples kept as
//! padding keep the result they had.
//!
//! Seeding: the random starts come from the host generator under the attack's seed, one stream
//! per chunk; the same seed gives the same starts on every device.

use tch::{Kind, Reduction, TchError, Tensor};

use super::robust_runs::{RunInput, RunOutput, Schedule, run_while_robust};
use super::shrink::{Compaction, Sizing};
use super::{Adversarial, Attack, Ball, Goal, input_gradient, linf_ball};
use crate::data::rng::Rng;
use crate::graph::{ReplayedStep, owned_copy};
use crate::model::ConvNet;

/// The host random stream label of APGD's random starts ("APGD").
const STREAM: u64 = 0x4150_4744;
/// The step-size decrease threshold (the reference's `rho`).
const RHO: f64 = 0.75;
/// Momentum weight of the new step from the second iteration on.
const MOMENTUM: f64 = 0.75;
/// Iterations between two compactions of a run's working set.
const COMPACT_EVERY: i64 = 5;
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

    /// The per-sample loss of `logits` against `labels`, towards `targets` for APGD-T.
    fn loss(&self, logits: &Tensor, labels: &Tensor, targets: Option<&Tensor>) -> Result<Tensor, TchError> {
        match targets {
            None => logits.f_cross_entropy_loss(labels, None::<Tensor>, Reduction::None, -100, 0.0),
            Some(targets) => targeted_dlr(logits, labels, targets),
        }
    }

    /// Logits, per-sample loss and the gradient of the summed loss at `images`.
    fn evaluate(
        &self,
        model: &ConvNet,
        images: &Tensor,
        labels: &Tensor,
        targets: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor), TchError> {
        let input = images.f_detach()?.f_set_requires_grad(true)?;
        let logits = model.forward(&input, false)?;
        let loss = self.loss(&logits, labels, targets)?;
        let gradient = input_gradient(&loss.f_sum(Kind::Float)?, &input, false)?;
        Ok((logits.f_detach()?, loss.f_detach()?, gradient))
    }

    /// One APGD run from a random start (see the module doc); the working set shrinks per
    /// `sizing`.
    fn run(&self, model: &ConvNet, run: &RunInput, rng: &mut Rng, sizing: Sizing) -> Result<RunOutput, TchError> {
        let start = run.clean.f_add(&random_surface_start(&run.clean, self.eps, rng)?)?.f_clamp(0.0, 1.0)?;
        let (logits, loss, gradient) = self.evaluate(model, &start, &run.labels, run.targets.as_ref())?;
        let robust = logits.f_argmax(1, false)?.f_eq_tensor(&run.labels)?;
        let iterations = i64::from(self.iterations);
        let mut checkpoint_gap = ((0.22 * iterations as f64) as i64).max(1);
        let gap_decrease = ((0.03 * iterations as f64) as i64).max(1);
        let min_gap = ((0.06 * iterations as f64) as i64).max(1);
        let count = start.size()[0];
        let device = start.device();
        // Every tensor an iteration updates in place has storage of its own.
        let mut state = RunState {
            rows: Tensor::f_arange(count, (Kind::Int64, device))?,
            clean: run.clean.shallow_clone(),
            labels: run.labels.shallow_clone(),
            targets: run.targets.as_ref().map(Tensor::shallow_clone),
            first_success: Tensor::f_where_scalar(&robust, -1, run.first_step)?,
            robust,
            x_best_adv: owned_copy(&start)?,
            x_best: owned_copy(&start)?,
            x_previous: owned_copy(&start)?,
            gradient_best: owned_copy(&gradient)?,
            loss_best_at_checkpoint: owned_copy(&loss)?,
            loss_best: loss,
            step_size: Tensor::f_full([count, 1, 1, 1], 2.0 * self.eps, (Kind::Float, device))?,
            halved_at_checkpoint: Tensor::f_ones([count], (Kind::Bool, device))?,
            // A checkpoint reads at most the first gap's losses and the one before them.
            loss_ring: Tensor::f_zeros([checkpoint_gap + 1, count], (Kind::Float, device))?,
            x_adv: start,
            gradient,
            live: None,
        };
        let mut finished = state.result_template()?;
        let step = Tensor::f_full([1], run.first_step + 1, (Kind::Int64, device))?;
        let mut replayed: Option<ReplayedStep> = None;
        let mut ball = linf_ball(&state.clean, self.eps)?;
        let mut since_checkpoint = 0;
        for i in 0..iterations {
            if i > 0 && i % COMPACT_EVERY == 0 {
                // The in-run compaction's host synchronization (see the module doc).
                match sizing.compact(&state.robust)? {
                    Compaction::AllDone => break,
                    Compaction::Unchanged => {}
                    Compaction::Shrink(shrink) => {
                        finished = state.select(&shrink.leave)?.store(finished)?;
                        state = RunState { live: shrink.live()?, ..state.select(&shrink.keep)? };
                        ball = linf_ball(&state.clean, self.eps)?;
                        replayed = None;
                    }
                }
            }
            if i == 0 {
                // The first iteration has no momentum: not the step the later ones replay.
                self.iterate(model, &state, &ball, &step, run.first_step + 1, false)?;
            } else if let Some(replayed) = &mut replayed {
                replayed.run()?;
            } else {
                let (working, step_now) = (state.shallow(), step.shallow_clone());
                let ball_now = (ball.0.shallow_clone(), ball.1.shallow_clone());
                let first_step = run.first_step + 1;
                let iterate = move || self.iterate(model, &working, &ball_now, &step_now, first_step, true);
                replayed = Some(ReplayedStep::first("APGD's iterations", iterate, &state.updated(&step))?);
            }
            since_checkpoint += 1;
            if since_checkpoint == checkpoint_gap {
                state.checkpoint(i + 1, checkpoint_gap)?;
                checkpoint_gap = (checkpoint_gap - gap_decrease).max(min_gap);
                since_checkpoint = 0;
            }
        }
        state.store(finished)
    }

    /// One iteration on every sample of `state`: the momentum step, the evaluation of the new
    /// point, and the bookkeeping of misclassified and best-loss points. `step` (`[1]` int64 on
    /// the device) holds the iteration's step number and counts on; the run's first iteration
    /// is step `first_step`. Updates `state` in place and reads nothing from the host, so that
    /// it can be a replayed graph.
    fn iterate(
        &self,
        model: &ConvNet,
        state: &RunState,
        (lower, upper): &Ball,
        step: &Tensor,
        first_step: i64,
        momentum: bool,
    ) -> Result<(), TchError> {
        let project = |candidate: &Tensor| candidate.f_clamp_tensor(Some(lower), Some(upper));
        let per_image = |mask: &Tensor| mask.f_reshape([-1, 1, 1, 1]);

        let x_adv = &state.x_adv;
        let momentum_term = x_adv.f_sub(&state.x_previous)?;
        let weight = if momentum { MOMENTUM } else { 1.0 };
        let stepped = project(&x_adv.f_add(&state.gradient.f_sign()?.f_mul(&state.step_size)?)?)?.f_clamp(0.0, 1.0)?;
        let mixed = x_adv
            .f_add(&stepped.f_sub(x_adv)?.f_mul_scalar(weight)?)?
            .f_add(&momentum_term.f_mul_scalar(1.0 - weight)?)?;
        state.x_previous.shallow_clone().f_copy_(x_adv)?;
        let _x_adv = project(&mixed)?.f_clamp_out(x_adv, 0.0, 1.0)?;

        let (logits, loss, gradient) = self.evaluate(model, x_adv, &state.labels, state.targets.as_ref())?;
        state.gradient.shallow_clone().f_copy_(&gradient)?;
        let fooled = logits.f_argmax(1, false)?.f_ne_tensor(&state.labels)?;
        let newly = fooled.f_logical_and(&state.first_success.f_lt(0)?)?;
        let _robust = state.robust.f_logical_and_out(&state.robust, &fooled.f_logical_not()?)?;
        let kept = match &state.live {
            Some(live) => fooled.f_logical_and(live)?,
            None => fooled,
        };
        // Each `where` writes into the tensor whose old values it keeps (element by element).
        let _x_best_adv = x_adv.f_where_self_out(&state.x_best_adv, &per_image(&kept)?, &state.x_best_adv)?;
        let _first_success = step.f_where_self_out(&state.first_success, &newly, &state.first_success)?;

        let improved = per_image(&loss.f_gt_tensor(&state.loss_best)?)?;
        let _x_best = x_adv.f_where_self_out(&state.x_best, &improved, &state.x_best)?;
        let _gradient_best = state.gradient.f_where_self_out(&state.gradient_best, &improved, &state.gradient_best)?;
        let _loss_best = loss.f_where_self_out(&state.loss_best, &improved.f_reshape([-1])?, &state.loss_best)?;
        let slots = state.loss_ring.size()[0];
        let slot = step.f_sub_scalar(first_step)?.f_remainder(slots)?;
        let _ring = state.loss_ring.shallow_clone().f_index_copy_(0, &slot, &loss.f_unsqueeze(0)?)?;
        let _next_step = step.f_add_scalar_out(step, 1)?;
        Ok(())
    }
}

/// The per-sample state of one run's working set (see [`Apgd::run`]).
struct RunState {
    /// `[m]` int64: the samples' rows in the run's input.
    rows: Tensor,
    clean: Tensor,
    labels: Tensor,
    targets: Option<Tensor>,
    x_adv: Tensor,
    x_previous: Tensor,
    gradient: Tensor,
    robust: Tensor,
    first_success: Tensor,
    x_best_adv: Tensor,
    x_best: Tensor,
    gradient_best: Tensor,
    loss_best: Tensor,
    step_size: Tensor,
    /// `[k, m]`: the loss of the run's iteration `j` in row `j % k`, for the checkpoints.
    loss_ring: Tensor,
    loss_best_at_checkpoint: Tensor,
    halved_at_checkpoint: Tensor,
    /// Bool `[m]`: the samples whose results may still change (the others are padding rows,
    /// [`super::shrink`]); `None` when all may.
    live: Option<Tensor>,
}

impl RunState {
    /// The state of the samples at the positions `keep` (`[m']` int64).
    fn select(&self, keep: &Tensor) -> Result<Self, TchError> {
        let pick = |tensor: &Tensor| tensor.f_index_select(0, keep);
        Ok(Self {
            rows: pick(&self.rows)?,
            clean: pick(&self.clean)?,
            labels: pick(&self.labels)?,
            targets: self.targets.as_ref().map(pick).transpose()?,
            x_adv: pick(&self.x_adv)?,
            x_previous: pick(&self.x_previous)?,
            gradient: pick(&self.gradient)?,
            robust: pick(&self.robust)?,
            first_success: pick(&self.first_success)?,
            x_best_adv: pick(&self.x_best_adv)?,
            x_best: pick(&self.x_best)?,
            gradient_best: pick(&self.gradient_best)?,
            loss_best: pick(&self.loss_best)?,
            step_size: pick(&self.step_size)?,
            loss_ring: self.loss_ring.f_index_select(1, keep)?,
            loss_best_at_checkpoint: pick(&self.loss_best_at_checkpoint)?,
            halved_at_checkpoint: pick(&self.halved_at_checkpoint)?,
            live: None,
        })
    }

    /// The same tensors (sharing their storage).
    fn shallow(&self) -> Self {
        let same = Tensor::shallow_clone;
        Self {
            rows: same(&self.rows),
            clean: same(&self.clean),
            labels: same(&self.labels),
            targets: self.targets.as_ref().map(same),
            x_adv: same(&self.x_adv),
            x_previous: same(&self.x_previous),
            gradient: same(&self.gradient),
            robust: same(&self.robust),
            first_success: same(&self.first_success),
            x_best_adv: same(&self.x_best_adv),
            x_best: same(&self.x_best),
            gradient_best: same(&self.gradient_best),
            loss_best: same(&self.loss_best),
            step_size: same(&self.step_size),
            loss_ring: same(&self.loss_ring),
            loss_best_at_checkpoint: same(&self.loss_best_at_checkpoint),
            halved_at_checkpoint: same(&self.halved_at_checkpoint),
            live: self.live.as_ref().map(same),
        }
    }

    /// What [`Apgd::iterate`] updates in place, with the step counter `step`.
    fn updated<'a>(&'a self, step: &'a Tensor) -> [&'a Tensor; 11] {
        [
            &self.x_adv,
            &self.x_previous,
            &self.gradient,
            &self.robust,
            &self.first_success,
            &self.x_best_adv,
            &self.x_best,
            &self.gradient_best,
            &self.loss_best,
            &self.loss_ring,
            step,
        ]
    }

    /// The run's result for all its samples, before any is stored.
    fn result_template(&self) -> Result<RunOutput, TchError> {
        Ok(RunOutput { images: self.x_best_adv.f_zeros_like()?, first_success: self.first_success.f_zeros_like()? })
    }

    /// `result` with this state's samples written into their rows: the last misclassified
    /// iterate (else the starting point) and the first success step.
    fn store(&self, result: RunOutput) -> Result<RunOutput, TchError> {
        Ok(RunOutput {
            images: result.images.f_index_copy(0, &self.rows, &self.x_best_adv)?,
            first_success: result.first_success.f_index_copy(0, &self.rows, &self.first_success)?,
        })
    }

    /// A checkpoint after `gap` iterations, `done` iterations into the run: samples whose loss
    /// oscillated or stalled halve their step and restart from their best-loss point and
    /// gradient. In place, like an iteration.
    fn checkpoint(&self, done: i64, gap: i64) -> Result<(), TchError> {
        let per_image = |mask: &Tensor| mask.f_reshape([-1, 1, 1, 1]);
        let oscillating = rises_at_most(&self.loss_ring, done, gap, RHO)?;
        let stalled = self
            .halved_at_checkpoint
            .f_logical_not()?
            .f_logical_and(&self.loss_best_at_checkpoint.f_ge_tensor(&self.loss_best)?)?;
        let halve = oscillating.f_logical_or(&stalled)?;
        let halve_image = per_image(&halve)?;
        let _step_size =
            self.step_size.f_mul_scalar(0.5)?.f_where_self_out(&self.step_size, &halve_image, &self.step_size)?;
        let _x_adv = self.x_best.f_where_self_out(&self.x_adv, &halve_image, &self.x_adv)?;
        let _gradient = self.gradient_best.f_where_self_out(&self.gradient, &halve_image, &self.gradient)?;
        self.halved_at_checkpoint.shallow_clone().f_copy_(&halve)?;
        self.loss_best_at_checkpoint.shallow_clone().f_copy_(&self.loss_best)?;
        Ok(())
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
        self.perturb_sized(model, images, goal, Sizing::for_device(images.device()))
    }
}

impl Apgd {
    /// [`Attack::perturb`] with the working sets shrinking per `sizing`.
    fn perturb_sized(
        &self,
        model: &ConvNet,
        images: &Tensor,
        goal: &Goal,
        sizing: Sizing,
    ) -> Result<Adversarial, TchError> {
        if goal.is_targeted() {
            return Err(TchError::Torch("APGD runs untargeted only".to_owned()));
        }
        let target_ranks = match self.loss {
            ApgdLoss::CrossEntropy => None,
            ApgdLoss::TargetedDlr { target_classes } => Some(target_classes),
        };
        let schedule = Schedule { target_ranks, restarts: self.restarts, iterations: self.iterations };
        let mut rng = Rng::stream(self.seed, &[STREAM]);
        run_while_robust(model, images, goal, &schedule, |input| self.run(model, &input, &mut rng, sizing))
    }
}

/// A perturbation on the surface of the L∞ ball of radius `eps`: uniform draws in [-1, 1]
/// scaled so that each sample's largest entry has magnitude `eps`.
pub(super) fn random_surface_start(images: &Tensor, eps: f64, rng: &mut Rng) -> Result<Tensor, TchError> {
    let draws: Vec<f32> = (0..images.numel()).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect();
    let t = Tensor::f_from_slice(&draws)?.f_reshape(images.size())?.f_to_device(images.device())?;
    let peak = t.f_abs()?.f_flatten(1, -1)?.f_amax([1], false)?.f_reshape([-1, 1, 1, 1])?;
    t.f_div(&peak.f_add_scalar(DIVISION_EPS)?)?.f_mul_scalar(eps)
}

/// Per sample (bool `[m]`): whether the loss rose in at most `rho * gap` of the last `gap`
/// iterations, `done` iterations into the run (`ring` as [`RunState::loss_ring`]); before the
/// first loss the reference reads 0.
fn rises_at_most(ring: &Tensor, done: i64, gap: i64, rho: f64) -> Result<Tensor, TchError> {
    let slots = ring.size()[0];
    let loss = |iteration: i64| ring.f_select(0, iteration % slots);
    let mut rises = loss(done - 1)?.f_zeros_like()?;
    for back in 0..gap {
        let iteration = done - 1 - back;
        let current = loss(iteration)?;
        let previous = if iteration > 0 { loss(iteration - 1)? } else { current.f_zeros_like()? };
        rises = rises.f_add(&current.f_gt_tensor(&previous)?.f_to_kind(Kind::Float)?)?;
    }
    rises.f_le(gap as f64 * rho)
}

/// The reference's targeted DLR loss per sample: `-(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2)`.
fn targeted_dlr(logits: &Tensor, labels: &Tensor, targets: &Tensor) -> Result<Tensor, TchError> {
    let (_, classes) = logits.size2()?;
    if classes < 4 {
        return Err(TchError::Torch(format!("APGD-T's DLR loss needs at least 4 classes, got {classes}")));
    }
    let (sorted, _) = logits.f_sort(1, false)?;
    let own = logits.f_gather(1, &labels.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?;
    let target = logits.f_gather(1, &targets.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?;
    let scale = sorted
        .f_select(1, classes - 1)?
        .f_sub(&sorted.f_select(1, classes - 3)?.f_add(&sorted.f_select(1, classes - 4)?)?.f_mul_scalar(0.5)?)?
        .f_add_scalar(DIVISION_EPS)?;
    own.f_sub(&target)?.f_neg()?.f_div(&scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::testing::{assert_same_and_some_fooled, random_model_and_images};

    #[test]
    fn padding_rows_change_no_result() {
        let (model, images, labels) = random_model_and_images(40);
        let goal = Goal::untargeted(&labels);
        for loss in [ApgdLoss::CrossEntropy, ApgdLoss::TargetedDlr { target_classes: 3 }] {
            let apgd = Apgd::new(0.2 / 255.0, 40, 2, loss, 1).expect("valid");
            let exact = apgd.perturb_sized(&model, &images, &goal, Sizing::Exact).expect("exact");
            let padded = apgd.perturb_sized(&model, &images, &goal, Sizing::PowersOfTwo).expect("padded");
            assert_same_and_some_fooled(&exact, &padded, 40);
        }
    }
}
