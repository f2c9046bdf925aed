//! FAB-T: the targeted Fast Adaptive Boundary attack under L∞ (Croce & Hein 2020), as
//! fra31/auto-attack's `FABAttack` with `targeted=True` runs it in AutoAttack's 'standard'
//! version. Its target only steers the search: success is misclassification, so as an [`Attack`]
//! it is untargeted only.
//!
//! FAB looks for the smallest perturbation that crosses the decision boundary. One run, for one
//! target class `t` per image (the (r + 1)-th most likely class of the clean image for run r):
//!
//! - Linearize `f = z_t - z_y` at the iterate `x`: the boundary is approximately the hyperplane
//!   `{z : g·z = g·x - f}` with `g = ∇f(x)`.
//! - Project both the iterate and the clean image `x0` onto that hyperplane with the smallest
//!   L∞ step that stays in the [0, 1] box ([`project_linf`]; the step to the box corner when the
//!   hyperplane is out of reach), giving `d` and `d0`.
//! - Mix, biased towards the clean image: `x ← clip((x + η d)(1 − a) + (x0 + η d0) a)` with
//!   `a = min(|d|∞ / (|d|∞ + |d0|∞), α_max)`, overshoot `η`.
//! - Where the new iterate is misclassified, keep it if its distance to `x0` is the smallest so
//!   far, then pull the iterate back towards `x0` by `β` (`x ← x0 + β (x − x0)`).
//!
//! The first run of each target starts at the clean image, further restarts at a random point of
//! the L∞ sphere of radius `eps / 2`. A sample counts as fooled once its smallest misclassified
//! perturbation is within `eps`; the result is that point, the clean image otherwise.
//!
//! Compaction: every run attacks only the samples no earlier run fooled, and inside a run, every
//! [`COMPACT_EVERY`] iterations, samples already fooled within `eps` leave the working set. The
//! reference goes on shrinking their perturbation, which only ever makes it smaller, so whether a
//! sample is fooled (the only thing the cascade and the robust accuracy read) is unchanged; the
//! returned point may be farther from the clean image than the reference's, never outside `eps`.
//! Samples are independent of each other (the model runs in evaluation mode), so dropping some
//! does not change the others. Each compaction reads a count on the host.
//!
//! A step reads nothing from the host and updates the working set in place (its number is a
//! counter on the device), so on CUDA it is one replay of a CUDA graph ([`ReplayedStep`]); there
//! the working set shrinks only to powers of two ([`super::shrink`]), and samples kept as padding
//! keep the result they had.
//!
//! A sample's success step counts iterations over the runs it took part in (iteration `i` of run
//! `r` is step `r · steps + i + 1`). Seeding: the random restarts come from the host generator
//! under the attack's seed, one stream per chunk.

use tch::{Kind, TchError, Tensor};

use super::apgd::random_surface_start;
use super::robust_runs::{RunInput, RunOutput, Schedule, run_while_robust};
use super::shrink::{Compaction, Sizing};
use super::{Adversarial, Attack, Goal, input_gradient};
use crate::data::rng::Rng;
use crate::graph::{ReplayedStep, owned_copy};
use crate::model::ConvNet;

/// The host random stream label of FAB's random restarts ("FABT").
const STREAM: u64 = 0x4641_4254;
/// Iterations between two compactions of a run's working set.
const COMPACT_EVERY: u32 = 10;
/// The smallest step length the mixing weight divides by (the reference's floor).
const MIN_STEP: f64 = 1e-8;
/// The smallest denominator of the hyperplane step length.
const DIVISION_EPS: f64 = 1e-12;

/// FAB-T under L∞.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FabT {
    eps: f64,
    iterations: u32,
    restarts: u32,
    target_classes: u32,
    alpha_max: f64,
    eta: f64,
    beta: f64,
    seed: u64,
}

/// The samples of one run still being attacked.
struct WorkingSet {
    /// `[m]` int64: their rows in the run's input.
    rows: Tensor,
    clean: Tensor,
    labels: Tensor,
    targets: Tensor,
    /// `[m, 3, h, w]`: the current iterates.
    iterate: Tensor,
    /// `[m, 3, h, w]`: the closest misclassified points found (the clean image until one is).
    best: Tensor,
    /// `[m]`: the L∞ distance of `best` to the clean image (infinite until one is found).
    distance: Tensor,
    /// `[m]` int64: the step after which `distance` first dropped within eps, -1 if not yet.
    first_success: Tensor,
    /// Bool `[m]`: the samples whose results may still change (the others are padding rows,
    /// [`super::shrink`]); `None` when all may.
    live: Option<Tensor>,
}

impl WorkingSet {
    /// The subset at the positions `keep` (`[m']` int64).
    fn select(&self, keep: &Tensor) -> Result<Self, TchError> {
        let pick = |tensor: &Tensor| tensor.f_index_select(0, keep);
        Ok(Self {
            rows: pick(&self.rows)?,
            clean: pick(&self.clean)?,
            labels: pick(&self.labels)?,
            targets: pick(&self.targets)?,
            iterate: pick(&self.iterate)?,
            best: pick(&self.best)?,
            distance: pick(&self.distance)?,
            first_success: pick(&self.first_success)?,
            live: None,
        })
    }

    /// The same tensors (sharing their storage).
    fn shallow(&self) -> Self {
        Self {
            rows: self.rows.shallow_clone(),
            clean: self.clean.shallow_clone(),
            labels: self.labels.shallow_clone(),
            targets: self.targets.shallow_clone(),
            iterate: self.iterate.shallow_clone(),
            best: self.best.shallow_clone(),
            distance: self.distance.shallow_clone(),
            first_success: self.first_success.shallow_clone(),
            live: self.live.as_ref().map(Tensor::shallow_clone),
        }
    }

    /// Writes the best points and success steps of this set into the run's outputs.
    fn store(&self, best: &Tensor, first_success: &Tensor) -> Result<(Tensor, Tensor), TchError> {
        Ok((
            best.f_index_copy(0, &self.rows, &self.best)?,
            first_success.f_index_copy(0, &self.rows, &self.first_success)?,
        ))
    }
}

impl FabT {
    /// FAB-T with budget `eps` in [0, 1], `iterations` per run, `restarts` runs per target,
    /// `target_classes` targets, the reference's `alpha_max`, overshoot `eta` and backward step
    /// `beta`, and the host seed of its restarts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        eps: f64,
        iterations: u32,
        restarts: u32,
        target_classes: u32,
        alpha_max: f64,
        eta: f64,
        beta: f64,
        seed: u64,
    ) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&eps) {
            return Err(format!("eps must be in [0, 1] (pixel scale), got {eps}"));
        }
        if iterations == 0 {
            return Err("steps must be at least 1".to_owned());
        }
        if restarts == 0 {
            return Err("n_restarts must be at least 1".to_owned());
        }
        if target_classes == 0 {
            return Err("n_target_classes must be at least 1".to_owned());
        }
        if !(0.0..=1.0).contains(&alpha_max) {
            return Err(format!("alpha_max must be in [0, 1], got {alpha_max}"));
        }
        if !(eta >= 1.0 && eta.is_finite()) {
            return Err(format!("eta (overshoot) must be at least 1, got {eta}"));
        }
        if !(beta > 0.0 && beta <= 1.0) {
            return Err(format!("beta must be in (0, 1], got {beta}"));
        }
        Ok(Self { eps, iterations, restarts, target_classes, alpha_max, eta, beta, seed })
    }

    /// FAB-T with AutoAttack 'standard' settings at budget `eps` and `iterations` (100 in the
    /// reference): one run per target, 9 targets, `alpha_max` 0.1, `eta` 1.05, `beta` 0.9.
    pub fn standard(eps: f64, iterations: u32, seed: u64) -> Result<Self, String> {
        Self::new(eps, iterations, 1, 9, 0.1, 1.05, 0.9, seed)
    }

    /// `f = z_t - z_y` per sample at `images` and its gradient.
    fn boundary(model: &ConvNet, images: &Tensor, set: &WorkingSet) -> Result<(Tensor, Tensor), TchError> {
        let input = images.f_detach()?.f_set_requires_grad(true)?;
        let logits = model.forward(&input, false)?;
        let pick = |classes: &Tensor| logits.f_gather(1, &classes.f_unsqueeze(1)?, false)?.f_squeeze_dim(1);
        let difference = pick(&set.targets)?.f_sub(&pick(&set.labels)?)?;
        let gradient = input_gradient(&difference.f_sum(Kind::Float)?, &input, false)?;
        Ok((difference.f_detach()?, gradient))
    }

    /// One FAB step of the whole working set, then the bookkeeping of its misclassified points;
    /// `step` (`[1]` int64 on the device) holds the step's number and counts on. Updates `set`
    /// in place and reads nothing from the host, so that it can be a replayed graph.
    fn step(&self, model: &ConvNet, set: &WorkingSet, step: &Tensor) -> Result<(), TchError> {
        let count = set.rows.size1()?;
        let x = &set.iterate;
        let (difference, gradient) = Self::boundary(model, x, set)?;
        let w = gradient.f_reshape([count, -1])?;
        let flat = x.f_reshape([count, -1])?;
        let offset = w.f_mul(&flat)?.f_sum_dim_intlist(1, false, Kind::Float)?.f_sub(&difference)?;
        let points = Tensor::f_cat(&[&flat, &set.clean.f_reshape([count, -1])?], 0)?;
        let steps = project_linf(&points, &Tensor::f_cat(&[&w, &w], 0)?, &Tensor::f_cat(&[&offset, &offset], 0)?)?;
        let lengths = steps.f_abs()?.f_amax([1], true)?.f_clamp_min(MIN_STEP)?;
        let (to_iterate, to_clean) = (steps.f_narrow(0, 0, count)?, steps.f_narrow(0, count, count)?);
        let (length, length_clean) = (lengths.f_narrow(0, 0, count)?, lengths.f_narrow(0, count, count)?);
        let alpha =
            length.f_div(&length.f_add(&length_clean)?)?.f_clamp(0.0, self.alpha_max)?.f_reshape([-1, 1, 1, 1])?;
        let shape = x.size();
        let from_iterate = x.f_add(&to_iterate.f_reshape(shape.as_slice())?.f_mul_scalar(self.eta)?)?;
        let from_clean = set.clean.f_add(&to_clean.f_reshape(shape.as_slice())?.f_mul_scalar(self.eta)?)?;
        let next = from_iterate
            .f_mul(&alpha.f_neg()?.f_add_scalar(1.0)?)?
            .f_add(&from_clean.f_mul(&alpha)?)?
            .f_clamp(0.0, 1.0)?;

        let logits = tch::no_grad(|| model.forward(&next, false))?;
        let misclassified = logits.f_argmax(1, false)?.f_ne_tensor(&set.labels)?;
        let distance = next.f_sub(&set.clean)?.f_abs()?.f_flatten(1, -1)?.f_amax([1], false)?;
        let mut closer = misclassified.f_logical_and(&distance.f_lt_tensor(&set.distance)?)?;
        if let Some(live) = &set.live {
            closer = closer.f_logical_and(live)?;
        }
        // Each `where` writes into the tensor whose old values it keeps (element by element).
        let _best = next.f_where_self_out(&set.best, &closer.f_reshape([-1, 1, 1, 1])?, &set.best)?;
        let _distance = distance.f_where_self_out(&set.distance, &closer, &set.distance)?;
        let within = set.distance.f_le(self.eps)?.f_logical_and(&set.first_success.f_lt(0)?)?;
        let _first_success = step.f_where_self_out(&set.first_success, &within, &set.first_success)?;
        let pulled_back = set.clean.f_add(&next.f_sub(&set.clean)?.f_mul_scalar(self.beta)?)?;
        let _iterate = pulled_back.f_where_self_out(&set.iterate, &misclassified.f_reshape([-1, 1, 1, 1])?, &next)?;
        let _next_step = step.f_add_scalar_out(step, 1)?;
        Ok(())
    }

    /// One run on `input.clean` towards its targets, from the clean images (restart 0) or a
    /// random point of the L∞ sphere of radius `eps / 2`; returns per sample the closest
    /// misclassified point within eps and its success step (-1 if none).
    /// The working set shrinks per `sizing`.
    fn run(&self, model: &ConvNet, input: &RunInput, rng: &mut Rng, sizing: Sizing) -> Result<RunOutput, TchError> {
        let RunInput { clean, labels, targets, restart, first_step } = input;
        let targets = targets.as_ref().ok_or_else(|| TchError::Torch("FAB-T runs need target classes".to_owned()))?;
        let start = match restart {
            0 => None,
            _ => Some(clean.f_add(&random_surface_start(clean, self.eps / 2.0, rng)?)?.f_clamp(0.0, 1.0)?),
        };
        let count = clean.size()[0];
        let device = clean.device();
        let mut best = clean.shallow_clone();
        let mut first_success = Tensor::f_full([count], -1, (Kind::Int64, device))?;
        let mut set = WorkingSet {
            rows: Tensor::f_arange(count, (Kind::Int64, device))?,
            clean: clean.shallow_clone(),
            labels: labels.shallow_clone(),
            targets: targets.shallow_clone(),
            // Updated in place: never the caller's tensors.
            iterate: owned_copy(start.as_ref().unwrap_or(clean))?,
            best: owned_copy(clean)?,
            distance: Tensor::f_full([count], f64::INFINITY, (Kind::Float, device))?,
            first_success: owned_copy(&first_success)?,
            live: None,
        };
        let mut counter = Tensor::f_zeros([1], (Kind::Int64, device))?;
        let mut step: Option<ReplayedStep> = None;
        for iteration in 0..self.iterations {
            if iteration > 0 && iteration % COMPACT_EVERY == 0 {
                // The compaction's host synchronization (see the module doc).
                match sizing.compact(&set.first_success.f_lt(0)?)? {
                    Compaction::AllDone => break,
                    Compaction::Unchanged => {}
                    Compaction::Shrink(shrink) => {
                        (best, first_success) = set.select(&shrink.leave)?.store(&best, &first_success)?;
                        set = WorkingSet { live: shrink.live()?, ..set.select(&shrink.keep)? };
                        step = None;
                    }
                }
            }
            match &mut step {
                Some(step) => step.run()?,
                None => {
                    let _first = counter.f_fill_(first_step + i64::from(iteration) + 1)?;
                    let (working, counter_now) = (set.shallow(), counter.shallow_clone());
                    let iterate = move || self.step(model, &working, &counter_now);
                    let state = [&set.iterate, &set.best, &set.distance, &set.first_success, &counter];
                    step = Some(ReplayedStep::first("FAB-T's steps", iterate, &state)?);
                }
            }
        }
        let (images, first_success) = set.store(&best, &first_success)?;
        Ok(RunOutput { images, first_success })
    }
}

impl Attack for FabT {
    fn max_steps(&self) -> u32 {
        self.iterations.saturating_mul(self.restarts).saturating_mul(self.target_classes)
    }

    fn supports_targeted(&self) -> bool {
        false
    }

    fn perturb(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError> {
        self.perturb_sized(model, images, goal, Sizing::for_device(images.device()))
    }
}

impl FabT {
    /// [`Attack::perturb`] with the working sets shrinking per `sizing`.
    fn perturb_sized(
        &self,
        model: &ConvNet,
        images: &Tensor,
        goal: &Goal,
        sizing: Sizing,
    ) -> Result<Adversarial, TchError> {
        if goal.is_targeted() {
            return Err(TchError::Torch("FAB-T runs untargeted only (its targets only steer the search)".to_owned()));
        }
        let schedule =
            Schedule { target_ranks: Some(self.target_classes), restarts: self.restarts, iterations: self.iterations };
        let mut rng = Rng::stream(self.seed, &[STREAM]);
        run_while_robust(model, images, goal, &schedule, |input| self.run(model, &input, &mut rng, sizing))
    }
}

/// Per row of `points` (`[m, d]`, in [0, 1]), the smallest L∞ step `s` inside the box
/// (`0 <= point + s <= 1`) onto the hyperplane `w·z = b` (`w`: `[m, d]`, `b`: `[m]`); where the
/// box does not reach the hyperplane, the step to the box corner closest to it.
///
/// Moving against the sign of `w·point - b`, coordinate `i` can go at most `cap_i` (its distance
/// to the bound it moves towards), and a step of length `λ` closes `Σ |w_i| min(λ, cap_i)` of
/// the gap, a concave piecewise-linear function of `λ` with its kinks at the caps. With the caps
/// sorted, the gap closed at every kink is a cumulative sum; the first kink that closes the whole
/// gap brackets `λ`, which then solves one linear equation.
pub fn project_linf(points: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor, TchError> {
    let gap = w.f_mul(points)?.f_sum_dim_intlist(1, true, Kind::Float)?.f_sub(&b.f_unsqueeze(1)?)?;
    // Move each coordinate against sign(gap · w_i), towards 0 where that is negative, else 1.
    let oriented = w.f_mul(&gap.f_sign()?)?;
    let direction = oriented.f_sign()?.f_neg()?;
    let cap = points.f_where_self(&oriented.f_gt(0.0)?, &points.f_neg()?.f_add_scalar(1.0)?)?;
    let weight = w.f_abs()?;
    let need = gap.f_abs()?;

    let (caps, order) = cap.f_sort(1, false)?;
    let weights = weight.f_gather(1, &order, false)?;
    let capped = weights.f_mul(&caps)?.f_cumsum(1, Kind::Float)?;
    let tail = weights.f_flip([1])?.f_cumsum(1, Kind::Float)?.f_flip([1])?;
    // Gap closed with λ at each kink: the coordinates below it capped, the others moving λ.
    let closed = capped.f_sub(&weights.f_mul(&caps)?)?.f_add(&caps.f_mul(&tail)?)?;
    let kink = closed.f_lt_tensor(&need)?.f_sum_dim_intlist(1, true, Kind::Int64)?;
    let columns = caps.size()[1];
    let reachable = kink.f_lt(columns)?;
    let kink = kink.f_clamp_max(columns - 1)?;
    let capped_before = capped.f_gather(1, &kink, false)?.f_sub(&weights.f_mul(&caps)?.f_gather(1, &kink, false)?)?;
    let lambda = need
        .f_sub(&capped_before)?
        .f_div(&tail.f_gather(1, &kink, false)?.f_clamp_min(DIVISION_EPS)?)?
        .f_clamp_min(0.0)?;
    let lambda = lambda.f_where_self(&reachable, &Tensor::f_full_like(&lambda, f64::INFINITY)?)?;
    direction.f_mul(&cap.f_minimum(&lambda)?)?.f_mul(&w.f_ne(0.0)?.f_to_kind(Kind::Float)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Rng;

    /// The gap a step of L∞ length `lambda` closes, computed coordinate by coordinate.
    fn closed(w: &[f64], cap: &[f64], lambda: f64) -> f64 {
        w.iter().zip(cap).map(|(w, cap)| w.abs() * lambda.min(*cap)).sum()
    }

    #[test]
    fn linf_projection_is_the_shortest_step_in_the_box_onto_the_hyperplane() {
        let mut rng = Rng::stream(7, &[]);
        let (rows, columns) = (200usize, 6usize);
        let draw = |rng: &mut Rng, n: usize, scale: f64| (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) * scale).collect();
        let points: Vec<f64> = (0..rows * columns).map(|_| rng.uniform()).collect();
        let mut w: Vec<f64> = draw(&mut rng, rows * columns, 1.0);
        w[3] = 0.0; // a coordinate the hyperplane does not depend on
        let b: Vec<f64> = draw(&mut rng, rows, 1.5);
        let tensor = |values: &[f64], shape: &[i64]| Tensor::from_slice(values).reshape(shape).to_kind(Kind::Float);
        let steps = project_linf(
            &tensor(&points, &[rows as i64, columns as i64]),
            &tensor(&w, &[rows as i64, columns as i64]),
            &tensor(&b, &[rows as i64]),
        )
        .expect("projection");
        let steps: Vec<f64> = steps.to_kind(Kind::Double).flatten(0, -1).try_into().expect("values");
        let (mut feasible, mut infeasible) = (0, 0);
        for (row, offset) in b.iter().enumerate() {
            let range = row * columns..(row + 1) * columns;
            let (t, w, s) = (&points[range.clone()], &w[range.clone()], &steps[range]);
            if row == 0 {
                assert_eq!(s[3], 0.0, "a coordinate with zero weight moved");
            }
            for (t, s) in t.iter().zip(s) {
                assert!((-1e-6..=1.0 + 1e-6).contains(&(t + s)), "row {row}: left the box");
            }
            let gap: f64 = w.iter().zip(t).map(|(w, t)| w * t).sum::<f64>() - offset;
            let moved: f64 = w.iter().zip(s).map(|(w, s)| w * s).sum();
            let cap: Vec<f64> = w.iter().zip(t).map(|(w, t)| if w * gap > 0.0 { *t } else { 1.0 - t }).collect();
            let length = s.iter().fold(0.0f64, |m, s| m.max(s.abs()));
            if closed(w, &cap, f64::INFINITY) >= gap.abs() {
                feasible += 1;
                assert!((gap + moved).abs() < 1e-4, "row {row}: not on the hyperplane ({gap} + {moved})");
                assert!(closed(w, &cap, length * (1.0 - 1e-3)) < gap.abs(), "row {row}: a shorter step reaches it");
            } else {
                infeasible += 1;
                for ((s, cap), w) in s.iter().zip(&cap).zip(w) {
                    let expected = if *w == 0.0 { 0.0 } else { cap * -(w * gap).signum() };
                    assert!((s - expected).abs() < 1e-5, "row {row}: out of reach, not at the corner");
                }
            }
        }
        assert!(feasible > 50 && infeasible > 10, "both cases exercised: {feasible} / {infeasible}");
    }

    #[test]
    fn padding_rows_change_no_result() {
        let (model, images, labels) = crate::attacks::testing::random_model_and_images(40);
        let goal = Goal::untargeted(&labels);
        let fab = FabT::new(0.2 / 255.0, 40, 2, 3, 0.1, 1.05, 0.9, 0).expect("valid");
        let exact = fab.perturb_sized(&model, &images, &goal, Sizing::Exact).expect("exact");
        let padded = fab.perturb_sized(&model, &images, &goal, Sizing::PowersOfTwo).expect("padded");
        crate::attacks::testing::assert_same_and_some_fooled(&exact, &padded, 40);
    }
}
