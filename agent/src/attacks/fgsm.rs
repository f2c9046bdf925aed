//! FGSM (Goodfellow et al.): one signed-gradient step of size eps from the clean images, pixels
//! clamped to [0, 1]; targeted runs step down the target's cross-entropy.

use tch::{TchError, Tensor};

use super::projected::{Ball, Schedule, Start};
use super::{Adversarial, Attack, Goal};
use crate::model::ConvNet;

/// The fast gradient sign method with budget eps (L∞, pixel scale).
#[derive(Clone, Debug)]
pub struct Fgsm {
    schedule: Schedule,
}

impl Fgsm {
    /// FGSM with budget `eps` in [0, 1].
    pub fn new(eps: f64) -> Result<Self, String> {
        // One step of size eps: the projection that follows it changes nothing.
        Ok(Self { schedule: Schedule::new(Ball::Linf, eps, eps, 1, Start::Clean)? })
    }
}

impl Attack for Fgsm {
    fn max_steps(&self) -> u32 {
        1
    }

    fn supports_targeted(&self) -> bool {
        true
    }

    fn perturb(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError> {
        self.schedule.run(model, images, goal)
    }
}
