//! PGD in the L∞ ball (Madry et al., torchattacks' `PGD`): `steps` signed-gradient steps of size
//! alpha, each followed by projection onto the eps-ball around the clean images and onto [0, 1];
//! optionally from a uniform random start in the ball.

use tch::{TchError, Tensor};

use super::projected::{Ball, Schedule, Start};
use super::{Adversarial, Attack, Goal};
use crate::model::ConvNet;

/// L∞ projected gradient descent.
#[derive(Clone, Debug)]
pub struct Pgd {
    schedule: Schedule,
}

impl Pgd {
    /// PGD with budget `eps` in [0, 1], step `alpha`, `steps` steps from `start`.
    pub fn new(eps: f64, alpha: f64, steps: u32, start: Start) -> Result<Self, String> {
        Ok(Self { schedule: Schedule::new(Ball::Linf, eps, alpha, steps, start)? })
    }
}

impl Attack for Pgd {
    fn max_steps(&self) -> u32 {
        self.schedule.steps
    }

    fn supports_targeted(&self) -> bool {
        true
    }

    fn perturb(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError> {
        self.schedule.run(model, images, goal)
    }
}
