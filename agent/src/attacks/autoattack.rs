//! AutoAttack 'standard' under L∞ (Croce & Hein 2020), as fra31/auto-attack runs it: APGD-CE,
//! APGD-T, FAB-T and Square in that order, each only on the samples every earlier part left
//! robust; untargeted only.
//!
//! The parts are this module's [`Apgd`], [`FabT`] and [`Square`] with the reference's settings:
//! APGD-CE 100 iterations, APGD-T 100 iterations over the 9 most likely other classes, FAB-T 100
//! iterations over 9 targets, Square 5000 queries with `p_init` 0.8, one restart each, all under
//! the ensemble's seed. [`AutoAttack::with_iterations`] changes the iterations of the first three
//! (torchattacks' AutoAttack, which BEARD's reference code runs, uses 10). Each part keeps its points inside the budget and [0, 1]; a sample is
//! robust when no part fooled it, and its adversarial image is the one from the part that did.
//!
//! Success steps add up along the cascade: a sample fooled by part `k` at its step `s` succeeded
//! at step `s` plus the most steps of the parts before `k` ([`Attack::max_steps`] is their sum).
//! Choosing the samples for the next part reads their count on the host once per part.

use tch::{TchError, Tensor};

use super::{Adversarial, Apgd, ApgdLoss, Attack, FabT, Goal, Square};
use crate::model::ConvNet;

/// Iterations of APGD-CE, APGD-T and FAB-T in the 'standard' version.
pub const STANDARD_ITERATIONS: u32 = 100;
/// Target classes of APGD-T and FAB-T in the 'standard' version.
const TARGET_CLASSES: u32 = 9;
/// Square's query budget and initial square fraction in the 'standard' version.
const SQUARE_QUERIES: u32 = 5000;
const SQUARE_P_INIT: f64 = 0.8;

/// The AutoAttack 'standard' ensemble.
pub struct AutoAttack {
    parts: Vec<Box<dyn Attack>>,
}

impl AutoAttack {
    /// The 'standard' ensemble with budget `eps` in [0, 1] and the seed of every part.
    pub fn standard(eps: f64, seed: u64) -> Result<Self, String> {
        Self::with_iterations(eps, STANDARD_ITERATIONS, seed)
    }

    /// The 'standard' ensemble with `iterations` of APGD-CE, APGD-T and FAB-T.
    pub fn with_iterations(eps: f64, iterations: u32, seed: u64) -> Result<Self, String> {
        let targeted_dlr = ApgdLoss::TargetedDlr { target_classes: TARGET_CLASSES };
        Ok(Self {
            parts: vec![
                Box::new(Apgd::new(eps, iterations, 1, ApgdLoss::CrossEntropy, seed)?),
                Box::new(Apgd::new(eps, iterations, 1, targeted_dlr, seed)?),
                Box::new(FabT::standard(eps, iterations, seed)?),
                Box::new(Square::new(eps, SQUARE_QUERIES, SQUARE_P_INIT, seed)?),
            ],
        })
    }
}

impl Attack for AutoAttack {
    fn max_steps(&self) -> u32 {
        self.parts.iter().map(|part| part.max_steps()).fold(0, u32::saturating_add)
    }

    fn supports_targeted(&self) -> bool {
        false
    }

    fn perturb(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError> {
        if goal.is_targeted() {
            return Err(TchError::Torch("AutoAttack runs untargeted only".to_owned()));
        }
        let images = images.f_detach()?;
        let labels = goal.classes();
        let clean_logits = tch::no_grad(|| model.forward(&images, false))?;
        let mut robust = clean_logits.f_argmax(1, false)?.f_eq_tensor(labels)?;
        let mut first_success = Tensor::f_where_scalar(&robust, -1, 0)?;
        let mut adversarial = images.shallow_clone();
        let mut logits = clean_logits;
        let mut steps_before = 0i64;
        for part in &self.parts {
            let rows = robust.f_nonzero()?.f_squeeze_dim(1)?;
            if rows.numel() == 0 {
                break;
            }
            let part_labels = labels.f_index_select(0, &rows)?;
            let result = part.perturb(model, &images.f_index_select(0, &rows)?, &Goal::untargeted(&part_labels))?;
            let fooled = result.logits.f_argmax(1, false)?.f_ne_tensor(&part_labels)?;
            let fooled_rows = rows.f_masked_select(&fooled)?;
            let select = |tensor: &Tensor| tensor.f_index_select(0, &fooled.f_nonzero()?.f_squeeze_dim(1)?);
            adversarial = adversarial.f_index_copy(0, &fooled_rows, &select(&result.images)?)?;
            logits = logits.f_index_copy(0, &fooled_rows, &select(&result.logits)?)?;
            let steps = select(&result.first_success)?.f_add_scalar(steps_before)?;
            first_success = first_success.f_index_copy(0, &fooled_rows, &steps)?;
            robust = robust.f_index_fill(0, &fooled_rows, 0)?;
            steps_before += i64::from(part.max_steps());
        }
        Ok(Adversarial { images: adversarial, logits, first_success })
    }
}
