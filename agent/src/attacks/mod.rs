//! Adversarial attacks in [0, 1] pixel space against a model that normalizes inside itself.
//!
//! One [`Attack`] trait, one module per attack. An attack perturbs one chunk of images towards a
//! [`Goal`] (untargeted: leave the true class; targeted: reach the target class) and returns the
//! final adversarial images, their logits, and per sample the first step at which the goal was
//! met, all as device tensors: nothing inside an attack waits for the host.
//!
//! - [`fgsm`]: the fast gradient sign method.
//! - [`pgd`]: projected gradient descent in the L∞ ball.
//! - [`linf`]: the signed-gradient step loop both share.
//!
//! [`from_config`] builds the attack a task asks for; attacks not built yet (PGD-L2, C&W,
//! DeepFool, AutoAttack) are [`AttackConfigError::Unsupported`].

pub mod fgsm;
pub mod linf;
pub mod pgd;

use beard_proto::v1::{AttackConfig, attack_config};
use tch::{Reduction, TchError, Tensor};

use crate::model::ConvNet;

pub use fgsm::Fgsm;
pub use pgd::Pgd;

/// An attack on one chunk of images.
pub trait Attack {
    /// The most steps (gradient evaluations) the attack takes per image; 1 for FGSM.
    fn max_steps(&self) -> u32;

    /// Perturb `images` (`[n, 3, h, w]` in [0, 1], on the model's device) towards `goal`.
    fn perturb(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError>;
}

/// What an attack tries to achieve on each image of a chunk.
pub struct Goal {
    classes: Tensor,
    targeted: bool,
}

impl Goal {
    /// Make the model predict anything but `labels` (ascend the cross-entropy of the labels).
    pub fn untargeted(labels: &Tensor) -> Self {
        Self { classes: labels.shallow_clone(), targeted: false }
    }

    /// Make the model predict `targets` (descend the cross-entropy of the targets).
    pub fn targeted(targets: &Tensor) -> Self {
        Self { classes: targets.shallow_clone(), targeted: true }
    }

    /// The scalar an attack ascends: the mean cross-entropy of the labels, or minus the mean
    /// cross-entropy of the targets (torchattacks' loss and sign conventions).
    pub fn objective(&self, logits: &Tensor) -> Result<Tensor, TchError> {
        let loss = logits.f_cross_entropy_loss(&self.classes, None::<Tensor>, Reduction::Mean, -100, 0.0)?;
        if self.targeted { loss.f_neg() } else { Ok(loss) }
    }

    /// Per sample (bool `[n]`): whether `logits` meet the goal.
    pub fn reached(&self, logits: &Tensor) -> Result<Tensor, TchError> {
        let predictions = logits.f_argmax(1, false)?;
        if self.targeted { predictions.f_eq_tensor(&self.classes) } else { predictions.f_ne_tensor(&self.classes) }
    }
}

/// The result of an attack on one chunk; all tensors live on the model's device.
pub struct Adversarial {
    /// `[n, 3, h, w]` adversarial images in [0, 1].
    pub images: Tensor,
    /// `[n, classes]` logits of the adversarial images.
    pub logits: Tensor,
    /// `[n]` int64: the number of steps after which the goal was first met (0 when the starting
    /// point already met it), or -1 when no iterate met it.
    pub first_success: Tensor,
}

/// Why a task's attack config cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum AttackConfigError {
    #[error("the attack task names no attack")]
    Missing,
    #[error("attack {0} is not implemented by this agent yet")]
    Unsupported(&'static str),
    #[error("invalid {attack} config: {message}")]
    Invalid { attack: &'static str, message: String },
}

/// The attack a task's config describes.
pub fn from_config(config: &AttackConfig) -> Result<Box<dyn Attack>, AttackConfigError> {
    let name = beard_proto::describe::attack_name(config);
    match &config.attack {
        None => Err(AttackConfigError::Missing),
        Some(attack_config::Attack::Fgsm(fgsm)) => Ok(Box::new(Fgsm::new(fgsm.eps).map_err(|m| invalid(name, m))?)),
        Some(attack_config::Attack::Pgd(pgd)) => {
            Ok(Box::new(Pgd::new(pgd.eps, pgd.alpha, pgd.steps, pgd.random_start).map_err(|m| invalid(name, m))?))
        }
        Some(
            attack_config::Attack::Pgdl2(_)
            | attack_config::Attack::Cw(_)
            | attack_config::Attack::Deepfool(_)
            | attack_config::Attack::Autoattack(_),
        ) => Err(AttackConfigError::Unsupported(name)),
    }
}

fn invalid(attack: &'static str, message: String) -> AttackConfigError {
    AttackConfigError::Invalid { attack, message }
}
