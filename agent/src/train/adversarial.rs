//! Madry-style adversarial training: before each optimizer step, the first `ratio` share of the
//! (already shuffled and augmented) batch is replaced by adversarial examples that the configured
//! attack ([`crate::attacks`], the same implementations the attack tasks run) crafts against the
//! current weights; the rest of the batch stays clean.
//!
//! Untargeted examples move away from each image's class; targeted ones towards a random other
//! class drawn on the device from the run's own generator (seeded by the task). Soft labels give the
//! attack their most likely class.
//!
//! Model mode: the attacks run the model's inference forward pass, so batch norm uses (and does not
//! update) its running statistics while the examples are crafted, and only the training step that
//! follows uses and updates batch statistics. The attack iterates therefore never leak into the
//! running statistics, and the examples are crafted against the model as it will be evaluated.
//! Instance norm, DC-bench's default, behaves the same in both modes. The attacks ask autograd
//! for input gradients only, so crafting leaves the weights' gradients untouched.

use beard_proto::v1::AdversarialTraining;
use tch::{TchError, Tensor};

use super::TrainError;
use crate::attacks::{self, Attack, Goal};
use crate::model::ConvNet;
use crate::random::TaskGenerator;

/// The adversary of one training run.
pub struct Adversary {
    attack: Box<dyn Attack>,
    targeted: bool,
    ratio: f64,
    classes: i64,
    /// The run's stream: target classes and the attack's random starts, in the order drawn.
    generator: TaskGenerator,
}

impl Adversary {
    /// The adversary `config` describes, for a dataset of `classes` classes, drawing from
    /// `generator`.
    pub fn new(config: &AdversarialTraining, classes: i64, generator: TaskGenerator) -> Result<Self, TrainError> {
        let invalid = |message: String| TrainError::InvalidConfig(format!("adversarial training: {message}"));
        if !(config.ratio > 0.0 && config.ratio <= 1.0) {
            return Err(invalid(format!("ratio must be in (0, 1], got {}", config.ratio)));
        }
        if config.targeted && classes < 2 {
            return Err(invalid(format!("targeted examples need at least 2 classes, got {classes}")));
        }
        let attack = config.attack.as_ref().ok_or_else(|| invalid("no attack is configured".into()))?;
        let attack =
            attacks::from_config(attack, config.targeted, &generator).map_err(|error| invalid(error.to_string()))?;
        Ok(Self { attack, targeted: config.targeted, ratio: config.ratio, classes, generator })
    }

    /// `images` (`[n, 3, h, w]`) with its first `round(ratio * n)` rows (at least one) replaced by
    /// adversarial examples against `model`; `labels` are class indices `[n]` or soft labels
    /// `[n, classes]`.
    pub fn perturb(&self, model: &ConvNet, images: &Tensor, labels: &Tensor) -> Result<Tensor, TchError> {
        let (count, ..) = images.size4()?;
        let crafted = ((self.ratio * count as f64).round() as i64).clamp(1, count);
        let chosen = images.f_narrow(0, 0, crafted)?;
        let classes = if labels.dim() == 2 { labels.f_argmax(1, false)? } else { labels.shallow_clone() };
        let classes = classes.f_narrow(0, 0, crafted)?;
        let goal = if self.targeted {
            let offsets = self.generator.randint(1, self.classes, &[crafted])?;
            Goal::targeted(&classes.f_add(&offsets)?.f_remainder(self.classes)?)
        } else {
            Goal::untargeted(&classes)
        };
        let adversarial = self.attack.perturb(model, &chosen, &goal)?.images.f_detach()?;
        if crafted == count {
            Ok(adversarial)
        } else {
            Tensor::f_cat(&[&adversarial, &images.f_narrow(0, crafted, count - crafted)?], 0)
        }
    }
}
