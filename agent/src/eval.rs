//! One attack task: a trained model, the first test images, one attack -> one result shard.
//!
//! 1. Clean inference over the evaluated images in chunks, timed on the device (after one
//!    untimed warm-up chunk, with CUDA synchronized before reading the clock) -> `clean_seconds`.
//! 2. Targets, when targeted, by the task's policy: `next` = (y + 1) mod classes, `random` =
//!    seeded host draws never equal to y, `least-likely` = argmin of the clean logits.
//! 3. The attack over the same chunks, timed the same way -> `attack_seconds`.
//! 4. Per-sample outcomes (clean / adversarial correctness, success, first success step, L∞ and
//!    L2 norms of the perturbation) computed on the device and copied to the host once.
//!
//! Outcome conventions: `success` is about the final adversarial image (the one the robust
//! accuracy counts); `success_step` is the first step after which an iterate met the goal, 0 when
//! none did or when the unperturbed starting point already met it; `target` is 0 for untargeted
//! attacks. Cancellation is honoured between chunks.
//!
//! A transfer task ([`evaluate_with_judges`]) then has each of its judges classify the same
//! adversarial examples ([`crate::transfer`]), after the attack's clock stopped.
//!
//! The [`Protocol`] decides what the attack sees. `standard`: pixels in [0, 1], the model with its
//! normalization inside. `beard-compat` (BEARD's reference code): each chunk is normalized with
//! the dataset's mean/std inside the timed loops (the reference times its whole pass, data
//! handling included) and the model runs without its normalization, so the attacks' [0, 1] clamp
//! and budgets apply to normalized values; targets are `(y + 1) % 10` whatever the policy; the
//! norms of the outcomes are in those normalized units.

use std::time::Instant;

use beard_proto::evaluation::REFERENCE_TARGET_CLASSES;
use beard_proto::v1::{AttackShard, EvaluationMode, SampleOutcome, TargetPolicy};
use tch::{Device, TchError, Tensor};

use crate::attacks::{Adversarial, Attack, Goal};
use crate::backend::TaskContext;
use crate::data::Split;
use crate::data::rng::{Rng, streams};
use crate::model::{ConvNet, Normalizer};
use crate::transfer::Judge;

/// What the attacked model is fed: see the module doc.
#[derive(Debug)]
pub enum Protocol {
    /// Pixels in [0, 1]; the model normalizes them itself.
    Standard,
    /// BEARD's reference code: images normalized with this normalizer, taken out of the model.
    BeardCompat(Normalizer),
}

impl Protocol {
    /// The protocol of `mode` for `model`: `beard-compat` takes the normalizer out of the model,
    /// which from then on expects normalized images.
    pub fn prepare(mode: EvaluationMode, model: &mut ConvNet) -> Result<Self, EvalError> {
        match mode {
            EvaluationMode::Standard => Ok(Self::Standard),
            EvaluationMode::BeardCompat => model
                .take_normalizer()
                .map(Self::BeardCompat)
                .ok_or_else(|| EvalError::Invalid("the model's normalization was taken out already".into())),
        }
    }

    /// The evaluation mode this protocol implements.
    pub fn mode(&self) -> EvaluationMode {
        match self {
            Self::Standard => EvaluationMode::Standard,
            Self::BeardCompat(_) => EvaluationMode::BeardCompat,
        }
    }

    /// `pixels` as the attacked model takes them.
    fn model_input(&self, pixels: &Tensor) -> Result<Tensor, TchError> {
        match self {
            Self::Standard => Ok(pixels.shallow_clone()),
            Self::BeardCompat(normalizer) => normalizer.apply(pixels),
        }
    }
}

/// How to evaluate one attack task.
#[derive(Debug)]
pub struct Plan {
    /// What the model is fed, by evaluation mode.
    pub protocol: Protocol,
    /// Evaluate the first `test_samples` test images; 0 means all of them.
    pub test_samples: usize,
    /// Images per chunk (at least 1).
    pub batch_size: usize,
    /// `None` for untargeted attacks, else how targets are chosen.
    pub targets: Option<TargetPolicy>,
    /// Seed of the `random` target policy.
    pub seed: u32,
    /// The device as the shard reports it.
    pub device: String,
}

/// Why an evaluation stopped without a shard.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("invalid evaluation: {0}")]
    Invalid(String),
    #[error("the evaluation was cancelled")]
    Cancelled,
    #[error(transparent)]
    Torch(#[from] TchError),
}

/// Run `attack` on the first images of `test` against `model` (frozen, on the split's device).
pub fn evaluate(
    model: &ConvNet,
    test: &Split,
    classes: i64,
    attack: &dyn Attack,
    plan: &Plan,
    ctx: &TaskContext,
) -> Result<AttackShard, EvalError> {
    evaluate_with_judges(model, test, classes, attack, plan, ctx, &[])
}

/// [`evaluate`], then each of `judges` classifies the adversarial examples (a transfer task):
/// the shard's `transfer` has one outcome per judge, in order.
pub fn evaluate_with_judges(
    model: &ConvNet,
    test: &Split,
    classes: i64,
    attack: &dyn Attack,
    plan: &Plan,
    ctx: &TaskContext,
    judges: &[Judge],
) -> Result<AttackShard, EvalError> {
    let total = if plan.test_samples == 0 { test.len() } else { plan.test_samples.min(test.len()) };
    if total == 0 || plan.batch_size == 0 {
        return Err(EvalError::Invalid(format!("nothing to do: {total} images in chunks of {}", plan.batch_size)));
    }
    let device = test.images.device();
    let images = test.images.f_narrow(0, 0, total as i64)?;
    let labels = test.labels.f_narrow(0, 0, total as i64)?;
    let chunks: Vec<(i64, i64)> = (0..total)
        .step_by(plan.batch_size)
        .map(|start| (start as i64, plan.batch_size.min(total - start) as i64))
        .collect();

    let clean = clean_pass(model, &images, &chunks, &plan.protocol)?;
    let targets = match (plan.targets, &plan.protocol) {
        (None, _) => None,
        (Some(_), Protocol::BeardCompat(_)) => Some(reference_targets(&labels, classes)?),
        (Some(policy), Protocol::Standard) => {
            Some(choose_targets(policy, &clean.logits, &test.labels_host()[..total], classes, plan.seed)?)
        }
    };

    synchronize(device);
    let started = Instant::now();
    let mut inputs = Vec::with_capacity(chunks.len());
    let mut adversarials = Vec::with_capacity(chunks.len());
    let mut successes = Vec::with_capacity(chunks.len());
    for (done, &(start, length)) in chunks.iter().enumerate() {
        if ctx.is_cancelled() {
            return Err(EvalError::Cancelled);
        }
        let goal = match &targets {
            Some(targets) => Goal::targeted(&targets.f_narrow(0, start, length)?),
            None => Goal::untargeted(&labels.f_narrow(0, start, length)?),
        };
        let input = plan.protocol.model_input(&images.f_narrow(0, start, length)?)?;
        let adversarial = attack.perturb(model, &input, &goal)?;
        successes.push(goal.reached(&adversarial.logits)?);
        inputs.push(input);
        adversarials.push(adversarial);
        ctx.progress(format!("chunk {}/{}", done + 1, chunks.len()));
    }
    synchronize(device);
    let attack_seconds = started.elapsed().as_secs_f64();

    let inputs = Tensor::f_cat(&inputs, 0)?;
    let adversarial_images = Tensor::f_cat(&adversarials.iter().map(|a| &a.images).collect::<Vec<_>>(), 0)?;
    let outcomes = outcomes(
        &inputs,
        &adversarial_images,
        &labels,
        &clean.predictions,
        targets.as_ref(),
        &adversarials,
        &successes,
    )?;
    let mut transfer = Vec::with_capacity(judges.len());
    for (index, judge) in judges.iter().enumerate() {
        if ctx.is_cancelled() {
            return Err(EvalError::Cancelled);
        }
        transfer.push(judge.judge(&inputs, &adversarial_images, &labels, plan.batch_size)?);
        ctx.progress(format!("transfer target {}/{}", index + 1, judges.len()));
    }
    let percent = |count: usize| 100.0 * count as f64 / total as f64;
    Ok(AttackShard {
        samples: total as u32,
        clean_accuracy: percent(outcomes.iter().filter(|o| o.clean_correct).count()),
        robust_accuracy: percent(outcomes.iter().filter(|o| o.adversarial_correct).count()),
        attack_seconds,
        clean_seconds: clean.seconds,
        max_steps: attack.max_steps(),
        device: plan.device.clone(),
        outcomes,
        transfer,
    })
}

/// The clean model on the evaluated images.
struct CleanPass {
    /// `[n, classes]`.
    logits: Tensor,
    /// `[n]` int64 argmax of the logits.
    predictions: Tensor,
    /// Wall time of computing both, after one warm-up chunk.
    seconds: f64,
}

fn clean_pass(
    model: &ConvNet,
    images: &Tensor,
    chunks: &[(i64, i64)],
    protocol: &Protocol,
) -> Result<CleanPass, TchError> {
    let classify = |&(start, length): &(i64, i64)| {
        tch::no_grad(|| model.forward(&protocol.model_input(&images.f_narrow(0, start, length)?)?, false))
    };
    if let Some(first) = chunks.first() {
        let _warm_up = classify(first)?;
    }
    synchronize(images.device());
    let started = Instant::now();
    let logits = chunks.iter().map(classify).collect::<Result<Vec<_>, _>>()?;
    let logits = Tensor::f_cat(&logits, 0)?;
    let predictions = logits.f_argmax(1, false)?;
    synchronize(images.device());
    Ok(CleanPass { logits, predictions, seconds: started.elapsed().as_secs_f64() })
}

/// The target class of every evaluated image (`[n]` int64 on the logits' device).
fn choose_targets(
    policy: TargetPolicy,
    clean_logits: &Tensor,
    labels: &[i64],
    classes: i64,
    seed: u32,
) -> Result<Tensor, EvalError> {
    if classes < 2 {
        return Err(EvalError::Invalid(format!("targeted attacks need at least 2 classes, got {classes}")));
    }
    let host: Vec<i64> = match policy {
        TargetPolicy::Unspecified => return Err(EvalError::Invalid("the target policy is unspecified".into())),
        TargetPolicy::LeastLikely => return Ok(clean_logits.f_argmin(1, false)?),
        TargetPolicy::Next => labels.iter().map(|&y| (y + 1).rem_euclid(classes)).collect(),
        TargetPolicy::Random => {
            let mut rng = Rng::stream(u64::from(seed), &[streams::TARGETS]);
            labels.iter().map(|&y| (y + 1 + rng.below(classes as u64 - 1) as i64).rem_euclid(classes)).collect()
        }
    };
    Ok(Tensor::f_from_slice(&host)?.f_to(clean_logits.device())?)
}

/// The reference code's targets, `(y + 1) % 10` on every dataset (so only classes 0..10 are
/// ever targeted on CIFAR-100 and TinyImageNet).
fn reference_targets(labels: &Tensor, classes: i64) -> Result<Tensor, EvalError> {
    if classes < REFERENCE_TARGET_CLASSES {
        return Err(EvalError::Invalid(format!(
            "beard-compat targets are (y + 1) % {REFERENCE_TARGET_CLASSES}, which needs at least \
             {REFERENCE_TARGET_CLASSES} classes; the dataset has {classes}"
        )));
    }
    Ok(labels.f_add_scalar(1)?.f_remainder(REFERENCE_TARGET_CLASSES)?)
}

/// Per-sample outcomes, computed on the device and copied to the host once.
fn outcomes(
    inputs: &Tensor,
    adversarial_images: &Tensor,
    labels: &Tensor,
    clean_predictions: &Tensor,
    targets: Option<&Tensor>,
    adversarials: &[Adversarial],
    successes: &[Tensor],
) -> Result<Vec<SampleOutcome>, TchError> {
    let cat = |parts: Vec<&Tensor>| Tensor::f_cat(&parts, 0);
    let adversarial_logits = cat(adversarials.iter().map(|a| &a.logits).collect())?;
    let first_success = cat(adversarials.iter().map(|a| &a.first_success).collect())?;
    let delta = adversarial_images.f_sub(inputs)?.f_flatten(1, -1)?;

    let host_i64 = |tensor: &Tensor| Vec::<i64>::try_from(&tensor.f_to(Device::Cpu)?);
    let host_f32 = |tensor: &Tensor| Vec::<f32>::try_from(&tensor.f_to(Device::Cpu)?);
    let labels = host_i64(labels)?;
    let clean = host_i64(clean_predictions)?;
    let adversarial = host_i64(&adversarial_logits.f_argmax(1, false)?)?;
    let success = host_i64(&cat(successes.iter().collect())?)?;
    let first_success = host_i64(&first_success)?;
    let linf = host_f32(&delta.f_abs()?.f_amax([1], false)?)?;
    let l2 = host_f32(&delta.f_norm_scalaropt_dim(2, [1], false)?)?;
    let targets = match targets {
        Some(targets) => host_i64(targets)?,
        None => vec![0; labels.len()],
    };
    Ok((0..labels.len())
        .map(|i| SampleOutcome {
            clean_correct: clean[i] == labels[i],
            adversarial_correct: adversarial[i] == labels[i],
            success: success[i] != 0,
            success_step: first_success[i].max(0) as u32,
            linf: linf[i],
            l2: l2[i],
            label: labels[i] as u32,
            target: targets[i] as u32,
        })
        .collect())
}

/// Wait for the device's queued work, so wall clocks measure it (a no-op on the CPU).
pub(crate) fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}
