//! DM, distribution matching (Zhao & Bilen, VICO-UoE/DatasetCondensation `main_DM.py`).
//!
//! Each iteration draws a fresh randomly initialized ConvNet (never trained; its weights frozen)
//! and, for every class, a batch of real images; both batches of the class, real and synthetic,
//! go through the same siamese DSA draw; the loss adds `||mean embed(real) - mean embed(syn)||^2`
//! over the classes, the real side without gradients. One SGD step on the synthetic images
//! (momentum 0.5 by default) follows each iteration. `embed` is the ConvNet's flattened features
//! before the classifier, on normalized images (the model's normalizer is taken out).
//!
//! [`DmSettings::official`] is the reference's command for CIFAR: 20,000 iterations, 256 real
//! images per class, lr 1, momentum 0.5, DSA, real images to start from; every field can be set,
//! so that CI-sized runs exist.

use tch::{TchError, Tensor};

use super::{ClassSampler, SiameseDsa, Start, Synthetic, purpose};
use crate::backend::TaskContext;
use crate::data::rng::{Rng, streams};
use crate::data::{DatasetInfo, Split};
use crate::model::{ConvNet, ConvNetConfig, ModelError};

/// DM's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DmSettings {
    pub iterations: u32,
    /// Real images per class and iteration.
    pub batch_real: u32,
    /// SGD learning rate and momentum of the synthetic images.
    pub lr_img: f64,
    pub momentum: f64,
    /// Siamese DSA on both batches of a class.
    pub dsa: bool,
    pub start: Start,
}

impl DmSettings {
    /// The reference command's settings (`main_DM.py` with the readme's flags for CIFAR).
    pub fn official() -> Self {
        Self { iterations: 20_000, batch_real: 256, lr_img: 1.0, momentum: 0.5, dsa: true, start: Start::Real }
    }
}

/// Why a distillation stopped without a set.
#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    #[error("invalid distillation settings: {0}")]
    Invalid(String),
    #[error("the distillation was cancelled")]
    Cancelled,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Torch(#[from] TchError),
}

/// DM's loss for one network: the sum over classes of the squared distance between the mean
/// embeddings of the real batch (no gradient) and the synthetic batch of the class.
pub fn loss(net: &ConvNet, real: &[Tensor], synthetic: &[Tensor]) -> Result<Tensor, TchError> {
    let mut total: Option<Tensor> = None;
    for (real, synthetic) in real.iter().zip(synthetic) {
        let real_mean = tch::no_grad(|| net.embed(real, false)?.f_mean_dim(0, false, None))?;
        let synthetic_mean = net.embed(synthetic, false)?.f_mean_dim(0, false, None)?;
        let term = real_mean.f_sub(&synthetic_mean)?.f_square()?.f_sum(None)?;
        total = Some(match total {
            None => term,
            Some(sum) => sum.f_add(&term)?,
        });
    }
    total.ok_or_else(|| TchError::Shape("DM's loss needs at least one class".into()))
}

/// A fresh random ConvNet on normalized images with frozen weights.
fn random_net(model: &ConvNetConfig, seed: u64, iteration: u32, device: tch::Device) -> Result<ConvNet, ModelError> {
    let net_seed = Rng::stream(seed, &[streams::DISTILL, purpose::NETS, u64::from(iteration)]).next_u64();
    let mut net = ConvNet::new(model, net_seed, device)?;
    net.take_normalizer();
    net.freeze();
    Ok(net)
}

/// Distils `ipc` images per class of `train` (a split of `dataset`) with DM for a ConvNet shaped
/// as `model`, under `seed`. Reports `iteration i/n: loss l` every [`REPORT_EVERY`] iterations.
pub fn distill(
    train: &Split,
    dataset: &DatasetInfo,
    model: &ConvNetConfig,
    ipc: u32,
    settings: &DmSettings,
    seed: u64,
    ctx: &TaskContext,
) -> Result<Synthetic, DistillError> {
    if ipc == 0 || settings.batch_real == 0 || settings.iterations == 0 {
        return Err(DistillError::Invalid("ipc, batch_real and iterations must be at least 1".into()));
    }
    let sampler = ClassSampler::new(train, dataset.classes);
    if sampler.smallest_class() < ipc as usize {
        return Err(DistillError::Invalid(format!("a class has fewer than {ipc} training images")));
    }
    let normalization = &dataset.normalization;
    let mut synthetic = Synthetic::start(settings.start, train, &sampler, normalization, ipc, seed)?;
    let (_, _, height, width) = train.images.size4()?;
    let device = train.images.device();
    for iteration in 0..settings.iterations {
        if ctx.is_cancelled() {
            return Err(DistillError::Cancelled);
        }
        let net = random_net(model, seed, iteration, device)?;
        let mut real = Vec::with_capacity(dataset.classes);
        let mut fake = Vec::with_capacity(dataset.classes);
        for class in 0..dataset.classes {
            let labels = [streams::DISTILL, purpose::REAL, u64::from(iteration), class as u64];
            let batch = sampler.batch(
                train,
                normalization,
                class,
                settings.batch_real as usize,
                &mut Rng::stream(seed, &labels),
            )?;
            let images = synthetic.class(class)?;
            if settings.dsa {
                let labels = [streams::DISTILL, purpose::DSA, u64::from(iteration), class as u64];
                let dsa = SiameseDsa::draw(&mut Rng::stream(seed, &labels), height, width, device)?;
                real.push(dsa.apply(&batch)?);
                fake.push(dsa.apply(&images)?);
            } else {
                real.push(batch);
                fake.push(images);
            }
        }
        let loss = loss(&net, &real, &fake)?;
        let gradient = Tensor::f_run_backward(&[&loss], &[synthetic.images()], false, false)?
            .pop()
            .ok_or_else(|| TchError::Torch("autograd returned no gradient for the synthetic images".into()))?;
        synthetic.step(&gradient, settings.lr_img, settings.momentum)?;
        if (iteration + 1) % REPORT_EVERY == 0 || iteration + 1 == settings.iterations {
            ctx.progress(format!(
                "iteration {}/{}: loss {:.4}",
                iteration + 1,
                settings.iterations,
                loss.f_double_value(&[])?
            ));
        }
    }
    Ok(synthetic)
}

/// Iterations between two progress reports (each reads the loss back to the host).
const REPORT_EVERY: u32 = 10;
