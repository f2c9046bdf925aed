//! Adversarial attacks in [0, 1] pixel space against a model that normalizes inside itself.
//!
//! One [`Attack`] trait, one module per attack. An attack perturbs one chunk of images towards a
//! [`Goal`] (untargeted: leave the true class; targeted: reach the target class) and returns the
//! final adversarial images, their logits, and per sample the first step at which the goal was
//! met, all as device tensors: nothing inside an attack waits for the host.
//!
//! - [`fgsm`]: the fast gradient sign method.
//! - [`pgd`]: projected gradient descent in the L∞ ball.
//! - [`pgdl2`]: projected gradient descent in the L2 ball.
//! - [`projected`]: the projected gradient step loop those three share.
//! - [`cw`]: Carlini & Wagner's L2 attack.
//! - [`deepfool`]: DeepFool, batched and restricted to the top-k candidate classes.
//! - [`apgd`]: Auto-PGD (APGD-CE and APGD-T), AutoAttack's gradient parts.
//! - [`fab`]: FAB-T, AutoAttack's minimal-perturbation part.
//! - [`square`]: the Square attack, AutoAttack's score-based part.
//! - [`spsa`]: SPSA, a query-only attack with a sampled gradient estimate and Adam steps.
//! - `robust_runs`: the runs over target ranks and restarts on the samples still robust that
//!   APGD and FAB-T share.
//! - `shrink`: how the working sets of Square, APGD and FAB-T shrink as samples are done (on
//!   CUDA to powers of two, for CUDA graphs).
//! - [`autoattack`]: the AutoAttack 'standard' cascade of those four.
//!
//! [`from_config`] builds the attack a task asks for, refusing a targeted run of an attack that
//! is untargeted only and an AutoAttack version other than 'standard'.

pub mod apgd;
pub mod autoattack;
pub mod cw;
pub mod deepfool;
pub mod fab;
pub mod fgsm;
pub mod pgd;
pub mod pgdl2;
pub mod projected;
mod robust_runs;
mod shrink;
pub mod spsa;
pub mod square;

use beard_proto::v1::{AttackConfig, attack_config};
use tch::{Reduction, TchError, Tensor};

use crate::model::ConvNet;
use crate::random::TaskGenerator;

pub use apgd::{Apgd, ApgdLoss};
pub use autoattack::AutoAttack;
pub use cw::{CarliniWagner, Margin};
pub use deepfool::DeepFool;
pub use fab::FabT;
pub use fgsm::Fgsm;
pub use pgd::Pgd;
pub use pgdl2::PgdL2;
pub use projected::Start;
pub use spsa::Spsa;
pub use square::Square;

/// An attack on one chunk of images.
pub trait Attack {
    /// The most steps (gradient evaluations, optimizer steps or DeepFool iterations) the attack
    /// takes per image; 1 for FGSM.
    fn max_steps(&self) -> u32;

    /// Whether the attack has a targeted mode; [`Attack::perturb`] refuses a targeted goal when
    /// it has none.
    fn supports_targeted(&self) -> bool;

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

    /// The true labels (untargeted) or the targets (targeted), `[n]` int64.
    pub fn classes(&self) -> &Tensor {
        &self.classes
    }

    /// Whether the goal is to reach a target class.
    pub fn is_targeted(&self) -> bool {
        self.targeted
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
    /// `[n, classes]` logits of the adversarial images, as the attack judged them (DeepFool
    /// keeps those of the pass that decided each sample's fate, see [`deepfool`]).
    pub logits: Tensor,
    /// `[n]` int64: the number of steps after which the goal was first met (0 when the starting
    /// point already met it), or -1 when no iterate met it.
    pub first_success: Tensor,
}

/// Why a task's attack config cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum AttackConfigError {
    /// No attack, or one this agent's build does not know (sent by a newer coordinator).
    #[error("the task names no attack this agent knows (is the coordinator newer than the agent?)")]
    Missing,
    #[error("attack {0} runs untargeted only")]
    UntargetedOnly(&'static str),
    #[error("invalid {attack} config: {message}")]
    Invalid { attack: &'static str, message: String },
}

/// The attack a task's config describes, for a targeted or an untargeted run. Random starts
/// (PGD's, PGD-L2's) draw from `generator`, the task's stream.
pub fn from_config(
    config: &AttackConfig,
    targeted: bool,
    generator: &TaskGenerator,
) -> Result<Box<dyn Attack>, AttackConfigError> {
    let name = beard_proto::describe::attack_name(config);
    let invalid = |message: String| AttackConfigError::Invalid { attack: name, message };
    let start = |random: bool| if random { Start::Random(generator.clone()) } else { Start::Clean };
    let attack: Box<dyn Attack> = match &config.attack {
        None => return Err(AttackConfigError::Missing),
        Some(attack_config::Attack::Fgsm(fgsm)) => Box::new(Fgsm::new(fgsm.eps).map_err(invalid)?),
        Some(attack_config::Attack::Pgd(pgd)) => {
            Box::new(Pgd::new(pgd.eps, pgd.alpha, pgd.steps, start(pgd.random_start)).map_err(invalid)?)
        }
        Some(attack_config::Attack::Pgdl2(pgd)) => {
            Box::new(PgdL2::new(pgd.eps, pgd.alpha, pgd.steps, start(pgd.random_start)).map_err(invalid)?)
        }
        Some(attack_config::Attack::Cw(cw)) => {
            let margin = if cw.torchattacks_margin { Margin::Torchattacks } else { Margin::Logits };
            Box::new(CarliniWagner::new(cw.c, cw.kappa, cw.steps, cw.lr).map_err(invalid)?.with_margin(margin))
        }
        Some(attack_config::Attack::Deepfool(deepfool)) => {
            let batched = DeepFool::new(deepfool.steps, deepfool.overshoot, deepfool.top_k).map_err(invalid)?;
            Box::new(batched.image_by_image(deepfool.per_image))
        }
        Some(attack_config::Attack::Autoattack(autoattack)) => match autoattack.version.as_str() {
            "standard" => {
                let iterations = match autoattack.steps {
                    0 => autoattack::STANDARD_ITERATIONS,
                    steps => steps,
                };
                Box::new(
                    AutoAttack::with_iterations(autoattack.eps, iterations, u64::from(autoattack.seed))
                        .map_err(invalid)?,
                )
            }
            other => return Err(invalid(format!("unknown version {other:?}, expected standard"))),
        },
        Some(attack_config::Attack::ApgdCe(apgd)) => Box::new(
            Apgd::new(apgd.eps, apgd.steps, apgd.n_restarts, ApgdLoss::CrossEntropy, u64::from(apgd.seed))
                .map_err(invalid)?,
        ),
        Some(attack_config::Attack::ApgdT(apgd)) => {
            let loss = ApgdLoss::TargetedDlr { target_classes: apgd.n_target_classes };
            Box::new(Apgd::new(apgd.eps, apgd.steps, apgd.n_restarts, loss, u64::from(apgd.seed)).map_err(invalid)?)
        }
        Some(attack_config::Attack::FabT(fab)) => Box::new(
            FabT::new(
                fab.eps,
                fab.steps,
                fab.n_restarts,
                fab.n_target_classes,
                fab.alpha_max,
                fab.eta,
                fab.beta,
                u64::from(fab.seed),
            )
            .map_err(invalid)?,
        ),
        Some(attack_config::Attack::Square(square)) => {
            Box::new(Square::new(square.eps, square.n_queries, square.p_init, u64::from(square.seed)).map_err(invalid)?)
        }
        Some(attack_config::Attack::Spsa(spsa)) => Box::new(Spsa::new(spsa).map_err(invalid)?),
    };
    if targeted && !attack.supports_targeted() {
        return Err(AttackConfigError::UntargetedOnly(name));
    }
    Ok(attack)
}

/// The lower and upper corners `[m, c, h, w]` of the L∞ balls around a working set's images
/// (computed once per working set by the attacks that step many times inside them).
type Ball = (Tensor, Tensor);

/// The [`Ball`] of radius `eps` around `images`.
fn linf_ball(images: &Tensor, eps: f64) -> Result<Ball, TchError> {
    Ok((images.f_sub_scalar(eps)?, images.f_add_scalar(eps)?))
}

/// The gradient of the scalar `objective` with respect to the leaf `input`; `keep_graph` keeps
/// the graph for another backward pass.
fn input_gradient(objective: &Tensor, input: &Tensor, keep_graph: bool) -> Result<Tensor, TchError> {
    Tensor::f_run_backward(&[objective], &[input], keep_graph, false)?
        .pop()
        .ok_or_else(|| TchError::Torch("autograd returned no input gradient".to_owned()))
}

/// `first_success` (`[n]` int64, -1 = not yet) with `step` set where `reached` holds for the
/// first time.
fn record_first_success(first_success: &Tensor, reached: &Tensor, step: u32) -> Result<Tensor, TchError> {
    let newly = reached.f_logical_and(&first_success.f_lt(0)?)?;
    first_success.f_masked_fill(&newly, i64::from(step))
}

/// What the attacks' unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use tch::{Device, Kind, Tensor};

    use super::Adversarial;
    use crate::data::Normalization;
    use crate::model::{ConvNet, ConvNetConfig, Norm, Pool};
    use crate::random::TaskGenerator;

    /// A frozen untrained width-16 ConvNet for 32x32 images, `n` random images and the labels it
    /// gives them (so every image starts correctly classified).
    pub fn random_model_and_images(n: i64) -> (ConvNet, Tensor, Tensor) {
        let config = ConvNetConfig {
            width: 16,
            depth: 3,
            norm: Norm::Instance,
            pool: Pool::Avg,
            classes: 10,
            image_size: 32,
            normalization: Normalization::IDENTITY,
        };
        let mut model = ConvNet::new(&config, 3, Device::Cpu).expect("model");
        model.freeze();
        // Drawn from a stream of its own: other tests of the process draw from the default one.
        let shape = Tensor::empty([n, 3, 32, 32], (Kind::Float, Device::Cpu));
        let images =
            TaskGenerator::seeded(5, Device::Cpu).and_then(|g| g.uniform_like(&shape, 0.0, 1.0)).expect("images");
        let labels = model.forward(&images, false).expect("forward").argmax(1, false);
        (model, images, labels)
    }

    /// The two results are the same bits, and the attack fooled some of the `n` samples but not
    /// all (so that working sets shrank and stayed non-empty).
    pub fn assert_same_and_some_fooled(a: &Adversarial, b: &Adversarial, n: i64) {
        let steps = Vec::<i64>::try_from(&a.first_success).expect("steps");
        let fooled = steps.iter().filter(|step| **step >= 0).count() as i64;
        assert!(fooled > n / 8 && fooled < n * 7 / 8, "{fooled} of {n} fooled");
        assert_eq!(steps, Vec::<i64>::try_from(&b.first_success).expect("steps"));
        assert!(a.images.equal(&b.images), "the adversarial images differ");
        assert!(a.logits.equal(&b.logits), "the logits differ");
    }
}
