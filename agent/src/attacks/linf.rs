//! The signed-gradient step loop in the L∞ ball that FGSM and PGD share.
//!
//! From the clean images (or a uniform random start in the eps-ball, clamped to [0, 1]) it takes
//! `steps` steps `x <- x + alpha * sign(grad objective)`, after each one clamping the
//! perturbation to [-eps, eps] and the pixels to [0, 1] (torchattacks' PGD). All samples keep
//! iterating to the end, as in torchattacks. The forward pass that gives a step's gradient also
//! gives the predictions of the iterate it starts from, so success is tracked on the device with
//! no extra passes, plus one last forward pass on the final iterate.

use tch::{Kind, TchError, Tensor};

use super::{Adversarial, Goal};
use crate::model::ConvNet;

/// One signed-gradient attack schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinfSteps {
    pub eps: f64,
    pub alpha: f64,
    pub steps: u32,
    pub random_start: bool,
}

impl LinfSteps {
    /// A schedule, if its numbers make sense (eps in [0, 1], alpha finite and not negative, at
    /// least one step). Zero budgets are allowed: they leave the images unchanged.
    pub fn new(eps: f64, alpha: f64, steps: u32, random_start: bool) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&eps) {
            return Err(format!("eps must be in [0, 1] (pixel scale), got {eps}"));
        }
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(format!("alpha must be finite and not negative, got {alpha}"));
        }
        if steps == 0 {
            return Err("steps must be at least 1".to_owned());
        }
        Ok(Self { eps, alpha, steps, random_start })
    }

    /// Run the schedule on one chunk.
    pub fn run(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError> {
        let images = images.f_detach()?;
        let (count, ..) = images.size4()?;
        let mut adversarial = if self.random_start {
            let noise = images.f_empty_like()?.f_uniform_(-self.eps, self.eps)?;
            images.f_add(&noise)?.f_clamp(0.0, 1.0)?
        } else {
            images.shallow_clone()
        };
        let mut first_success = Tensor::f_full([count], -1, (Kind::Int64, images.device()))?;
        for step in 0..self.steps {
            let input = adversarial.f_detach()?.f_set_requires_grad(true)?;
            let logits = model.forward(&input, false)?;
            first_success = record(&first_success, &goal.reached(&logits)?, step)?;
            let objective = goal.objective(&logits)?;
            let gradient = Tensor::f_run_backward(&[&objective], &[&input], false, false)?
                .pop()
                .ok_or_else(|| TchError::Torch("autograd returned no input gradient".to_owned()))?;
            let stepped = input.f_detach()?.f_add(&gradient.f_sign()?.f_mul_scalar(self.alpha)?)?;
            adversarial = project(&images, &stepped, self.eps)?;
        }
        let logits = tch::no_grad(|| model.forward(&adversarial, false))?;
        first_success = record(&first_success, &goal.reached(&logits)?, self.steps)?;
        Ok(Adversarial { images: adversarial, logits, first_success })
    }
}

/// Set `step` where the goal is reached for the first time.
fn record(first_success: &Tensor, reached: &Tensor, step: u32) -> Result<Tensor, TchError> {
    let newly = reached.f_logical_and(&first_success.f_lt(0)?)?;
    first_success.f_masked_fill(&newly, i64::from(step))
}

/// Clamp `candidate - images` to [-eps, eps] and the result to [0, 1].
fn project(images: &Tensor, candidate: &Tensor, eps: f64) -> Result<Tensor, TchError> {
    let delta = candidate.f_sub(images)?.f_clamp(-eps, eps)?;
    images.f_add(&delta)?.f_clamp(0.0, 1.0)
}
