//! The projected gradient step loop that FGSM, PGD (L∞) and PGD-L2 share.
//!
//! From the clean images (or a random start in the eps-ball, clamped to [0, 1]) it takes `steps`
//! steps `x <- x + alpha * direction(grad objective)` and after each one projects the
//! perturbation onto the eps-ball around the clean images and the pixels onto [0, 1], as
//! torchattacks' `PGD` and `PGDL2` do. The [`Ball`] fixes the geometry:
//!
//! - L∞: the direction is the gradient's sign, the projection clamps every pixel of the
//!   perturbation to [-eps, eps], the random start is uniform in the cube.
//! - L2: the direction is the gradient divided by its per-sample L2 norm (plus 1e-10, as
//!   torchattacks), the projection rescales a perturbation longer than eps to length eps, the
//!   random start is a Gaussian direction scaled to a length drawn uniformly from [0, eps].
//!
//! Clamping to [0, 1] after the projection only shrinks the perturbation (the clean pixels are in
//! [0, 1]), so the final images stay inside the ball. All samples keep iterating to the end, as in
//! torchattacks. The forward pass that gives a step's gradient also gives the predictions of the
//! iterate it starts from, so success is tracked on the device with no extra passes, plus one
//! last forward pass on the final iterate.

use tch::{Kind, TchError, Tensor};

use super::{Adversarial, Goal, input_gradient, record_first_success};
use crate::model::ConvNet;
use crate::random::TaskGenerator;

/// What torchattacks adds to a gradient's L2 norm before dividing by it.
const L2_DIVISION_EPS: f64 = 1e-10;
/// A floor for perturbation norms in the L2 projection, representable in float32.
const TINY_NORM: f64 = 1e-30;

/// The threat model's norm ball.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ball {
    Linf,
    L2,
}

/// Where the iterates of a schedule start.
#[derive(Clone, Debug)]
pub enum Start {
    /// At the clean images.
    Clean,
    /// At random points of the ball, drawn from the task's stream (torchattacks' draws under
    /// `torch.manual_seed` of the same seed).
    Random(TaskGenerator),
}

/// One projected-gradient attack schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub ball: Ball,
    pub eps: f64,
    pub alpha: f64,
    pub steps: u32,
    pub start: Start,
}

impl Schedule {
    /// A schedule, if its numbers make sense: eps in [0, 1] for L∞ (pixel scale), finite and not
    /// negative for L2; alpha finite and not negative; at least one step. Zero budgets are
    /// allowed: they leave the images unchanged.
    pub fn new(ball: Ball, eps: f64, alpha: f64, steps: u32, start: Start) -> Result<Self, String> {
        match ball {
            Ball::Linf if !(0.0..=1.0).contains(&eps) => {
                return Err(format!("eps must be in [0, 1] (pixel scale), got {eps}"));
            }
            Ball::L2 if !(eps.is_finite() && eps >= 0.0) => {
                return Err(format!("eps must be finite and not negative, got {eps}"));
            }
            Ball::Linf | Ball::L2 => {}
        }
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(format!("alpha must be finite and not negative, got {alpha}"));
        }
        if steps == 0 {
            return Err("steps must be at least 1".to_owned());
        }
        Ok(Self { ball, eps, alpha, steps, start })
    }

    /// Run the schedule on one chunk.
    pub fn run(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError> {
        let images = images.f_detach()?;
        let (count, ..) = images.size4()?;
        let mut adversarial = match &self.start {
            Start::Clean => images.shallow_clone(),
            Start::Random(generator) => self.random_start(&images, generator)?,
        };
        let mut first_success = Tensor::f_full([count], -1, (Kind::Int64, images.device()))?;
        for step in 0..self.steps {
            let input = adversarial.f_detach()?.f_set_requires_grad(true)?;
            let logits = model.forward(&input, false)?;
            first_success = record_first_success(&first_success, &goal.reached(&logits)?, step)?;
            let gradient = input_gradient(&goal.objective(&logits)?, &input, false)?;
            let stepped = input.f_detach()?.f_add(&self.direction(&gradient)?.f_mul_scalar(self.alpha)?)?;
            adversarial = self.project(&images, &stepped)?;
        }
        let logits = tch::no_grad(|| model.forward(&adversarial, false))?;
        first_success = record_first_success(&first_success, &goal.reached(&logits)?, self.steps)?;
        Ok(Adversarial { images: adversarial, logits, first_success })
    }

    /// A random point of the ball around `images` drawn from `generator`, clamped to [0, 1].
    fn random_start(&self, images: &Tensor, generator: &TaskGenerator) -> Result<Tensor, TchError> {
        let delta = match self.ball {
            Ball::Linf => generator.uniform_like(images, -self.eps, self.eps)?,
            Ball::L2 => {
                let direction = generator.normal_like(images, 0.0, 1.0)?;
                let norms = per_sample_l2(&direction)?;
                let radii = generator.uniform_like(&norms, 0.0, 1.0)?;
                direction.f_mul(&radii.f_div(&norms)?.f_mul_scalar(self.eps)?)?
            }
        };
        images.f_add(&delta)?.f_clamp(0.0, 1.0)
    }

    /// The step direction of a gradient.
    fn direction(&self, gradient: &Tensor) -> Result<Tensor, TchError> {
        match self.ball {
            Ball::Linf => gradient.f_sign(),
            Ball::L2 => gradient.f_div(&per_sample_l2(gradient)?.f_add_scalar(L2_DIVISION_EPS)?),
        }
    }

    /// Project `candidate - images` onto the ball and the result onto [0, 1].
    fn project(&self, images: &Tensor, candidate: &Tensor) -> Result<Tensor, TchError> {
        let delta = candidate.f_sub(images)?;
        let delta = match self.ball {
            Ball::Linf => delta.f_clamp(-self.eps, self.eps)?,
            Ball::L2 => {
                // eps / norm, at most 1; a zero perturbation stays zero whatever the factor.
                let norms = per_sample_l2(&delta)?.f_clamp_min(TINY_NORM)?;
                let factor = norms.f_reciprocal()?.f_mul_scalar(self.eps)?.f_clamp_max(1.0)?;
                delta.f_mul(&factor)?
            }
        };
        images.f_add(&delta)?.f_clamp(0.0, 1.0)
    }
}

/// Per-sample L2 norms of `[n, ...]`, shaped `[n, 1, 1, 1]` to broadcast over images.
fn per_sample_l2(tensor: &Tensor) -> Result<Tensor, TchError> {
    tensor.f_flatten(1, -1)?.f_norm_scalaropt_dim(2, [1], false)?.f_reshape([-1, 1, 1, 1])
}
