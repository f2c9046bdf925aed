//! The outer loop APGD and FAB-T share: a series of runs over the target ranks and restarts,
//! each on the samples no earlier run fooled, merged into one result.
//!
//! Run `r` of target rank `t` (the `t`-th most likely class of each clean image after its top
//! one; no target for an untargeted attack) gets the samples still robust, clean, with their
//! labels and targets, and the number of steps the runs before it may take (its success steps
//! count on from there). It returns per sample an adversarial image and the step of its first
//! success (-1 when it stayed robust); fooled samples take that image, and the others keep the
//! clean one. Choosing a run's samples reads their count on the host, once per run.

use tch::{TchError, Tensor};

use super::{Adversarial, Goal};
use crate::model::ConvNet;

/// Which runs to make.
pub(super) struct Schedule {
    /// Target ranks 1..=n (capped at the other classes there are), or `None` for untargeted runs.
    pub target_ranks: Option<u32>,
    /// Runs per target rank (or in all, untargeted).
    pub restarts: u32,
    /// The most steps one run takes.
    pub iterations: u32,
}

/// The samples one run attacks.
pub(super) struct RunInput {
    /// `[m, 3, h, w]`: their clean images.
    pub clean: Tensor,
    /// `[m]` int64.
    pub labels: Tensor,
    /// `[m]` int64: each one's target class, for targeted runs.
    pub targets: Option<Tensor>,
    /// Which restart of its target rank this run is, from 0.
    pub restart: u32,
    /// The steps the runs before this one may take.
    pub first_step: i64,
}

/// What one run found for its samples.
pub(super) struct RunOutput {
    /// `[m, 3, h, w]`: the adversarial images (read only where the sample was fooled).
    pub images: Tensor,
    /// `[m]` int64: the absolute step of the first success, -1 if none.
    pub first_success: Tensor,
}

/// Runs `run` per `schedule` on the chunk `images` towards the untargeted `goal`; the result's
/// logits come from one forward pass over the final images.
pub(super) fn run_while_robust(
    model: &ConvNet,
    images: &Tensor,
    goal: &Goal,
    schedule: &Schedule,
    mut run: impl FnMut(RunInput) -> Result<RunOutput, TchError>,
) -> Result<Adversarial, TchError> {
    let images = images.f_detach()?;
    let labels = goal.classes();
    let clean_logits = tch::no_grad(|| model.forward(&images, false))?;
    let (_, classes) = clean_logits.size2()?;
    // Classes by decreasing clean logit: column r is the (r + 1)-th most likely class.
    let ranked = clean_logits.f_argsort(1, true)?;
    let ranks: Vec<Option<i64>> = match schedule.target_ranks {
        None => vec![None],
        Some(ranks) => (1..=i64::from(ranks).min(classes - 1)).map(Some).collect(),
    };
    let mut robust = clean_logits.f_argmax(1, false)?.f_eq_tensor(labels)?;
    let mut first_success = Tensor::f_where_scalar(&robust, -1, 0)?;
    let mut adversarial = images.shallow_clone();
    let mut index = 0i64;
    'runs: for rank in ranks {
        for restart in 0..schedule.restarts {
            let rows = robust.f_nonzero()?.f_squeeze_dim(1)?;
            if rows.numel() == 0 {
                break 'runs;
            }
            let clean = images.f_index_select(0, &rows)?;
            let input = RunInput {
                clean: clean.shallow_clone(),
                labels: labels.f_index_select(0, &rows)?,
                targets: rank.map(|rank| ranked.f_index_select(0, &rows)?.f_select(1, rank)).transpose()?,
                restart,
                first_step: index * i64::from(schedule.iterations),
            };
            let output = run(input)?;
            let fooled = output.first_success.f_ge(0)?;
            let found = output.images.f_where_self(&fooled.f_reshape([-1, 1, 1, 1])?, &clean)?;
            adversarial = adversarial.f_index_copy(0, &rows, &found)?;
            first_success = first_success.f_index_copy(0, &rows, &output.first_success)?;
            robust = robust.f_index_copy(0, &rows, &fooled.f_logical_not()?)?;
            index += 1;
        }
    }
    let logits = tch::no_grad(|| model.forward(&adversarial, false))?;
    Ok(Adversarial { images: adversarial, logits, first_success })
}
