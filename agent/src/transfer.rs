//! Transfer evaluation: the adversarial examples of one attack task, crafted on its source model,
//! judged by other models (its transfer targets).
//!
//! A judge sees exactly what the source saw: the examples as the source's protocol fed them (pixels
//! in `standard`; normalized values, the judge's normalizer taken out, in `beard-compat`). Its
//! accuracy is against the true labels, targeted attack or not, as BEARD records transfer. Its
//! forward passes are timed on their own and never count towards the attack's time.

use std::time::Instant;

use beard_proto::v1::{EvaluationMode, TransferOutcome};
use tch::{Device, TchError, Tensor};

use crate::eval::{EvalError, Protocol, synchronize};
use crate::model::ConvNet;

/// A model that judges transferred examples, prepared for the source's evaluation mode.
pub struct Judge {
    /// The content key of the judge's train task (or model-pool entry).
    pub train_task_id: String,
    model: ConvNet,
}

impl Judge {
    /// `model` frozen and fed as `mode` feeds the source.
    pub fn new(train_task_id: String, mut model: ConvNet, mode: EvaluationMode) -> Result<Self, EvalError> {
        model.freeze();
        Protocol::prepare(mode, &mut model)?;
        Ok(Self { train_task_id, model })
    }

    /// How this judge classifies `clean` and `adversarial` (both `[n, ...]` model inputs) against
    /// `labels`, in chunks of `batch_size`.
    pub fn judge(
        &self,
        clean: &Tensor,
        adversarial: &Tensor,
        labels: &Tensor,
        batch_size: usize,
    ) -> Result<TransferOutcome, TchError> {
        synchronize(clean.device());
        let started = Instant::now();
        let clean_correct = self.correct(clean, labels, batch_size)?;
        let adversarial_correct = self.correct(adversarial, labels, batch_size)?;
        synchronize(clean.device());
        let seconds = started.elapsed().as_secs_f64();
        let host = |correct: &Tensor| Vec::<bool>::try_from(&correct.f_to(Device::Cpu)?);
        let (clean_correct, adversarial_correct) = (host(&clean_correct)?, host(&adversarial_correct)?);
        let percent =
            |correct: &[bool]| 100.0 * correct.iter().filter(|&&c| c).count() as f64 / correct.len().max(1) as f64;
        Ok(TransferOutcome {
            train_task_id: self.train_task_id.clone(),
            clean_accuracy: percent(&clean_correct),
            robust_accuracy: percent(&adversarial_correct),
            adversarial_correct,
            seconds,
        })
    }

    /// `[n]` bool: the judge's top-1 class equals the label.
    fn correct(&self, inputs: &Tensor, labels: &Tensor, batch_size: usize) -> Result<Tensor, TchError> {
        let chunks = inputs.f_split(batch_size.max(1) as i64, 0)?;
        let predictions = tch::no_grad(|| {
            chunks
                .iter()
                .map(|chunk| self.model.forward(chunk, false)?.f_argmax(1, false))
                .collect::<Result<Vec<_>, TchError>>()
        })?;
        Tensor::f_cat(&predictions, 0)?.f_eq_tensor(labels)
    }
}
