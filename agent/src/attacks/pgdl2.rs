//! PGD in the L2 ball (torchattacks' `PGDL2`): `steps` steps of length alpha along the gradient
//! normalized per sample, each followed by projection onto the eps-ball (L2) around the clean
//! images and onto [0, 1]; optionally from a random start in the ball.

use tch::{TchError, Tensor};

use super::projected::{Ball, Schedule, Start};
use super::{Adversarial, Attack, Goal};
use crate::model::ConvNet;

/// L2 projected gradient descent.
#[derive(Clone, Debug)]
pub struct PgdL2 {
    schedule: Schedule,
}

impl PgdL2 {
    /// PGD-L2 with budget `eps` (L2 norm of the perturbation in pixel scale), step `alpha`,
    /// `steps` steps from `start`.
    pub fn new(eps: f64, alpha: f64, steps: u32, start: Start) -> Result<Self, String> {
        Ok(Self { schedule: Schedule::new(Ball::L2, eps, alpha, steps, start)? })
    }
}

impl Attack for PgdL2 {
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
