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
//!
//! A run offers a snapshot of its state whenever its [`TaskContext`]'s policy says one is due,
//! and resumes from one bit for bit.

use beard_proto::v1::{DistillInit, DmConfig, Snapshot};
use tch::{TchError, Tensor};

use super::{ClassSampler, DistillError, SiameseDsa, Start, Synthetic, purpose};
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

impl From<&DmConfig> for DmSettings {
    fn from(config: &DmConfig) -> Self {
        let start = match config.init() {
            DistillInit::Real => Start::Real,
            DistillInit::Noise => Start::Noise,
        };
        Self {
            iterations: config.iterations,
            batch_real: config.batch_real,
            lr_img: config.lr_img,
            momentum: config.momentum,
            dsa: config.dsa,
            start,
        }
    }
}

/// A finished run: the learned set, the loss of its last iteration, and the iteration it
/// resumed from (0 for a run from the start).
pub struct Distilled {
    pub set: Synthetic,
    pub final_loss: f64,
    pub resumed_from: u32,
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
/// as `model`, under `seed`, from the start or from `resume`. Reports `iteration i/n: loss l`
/// every [`REPORT_EVERY`] iterations and offers snapshots as `ctx` asks.
#[allow(clippy::too_many_arguments)]
pub fn distill(
    train: &Split,
    dataset: &DatasetInfo,
    model: &ConvNetConfig,
    ipc: u32,
    settings: &DmSettings,
    seed: u64,
    resume: Option<&Snapshot>,
    ctx: &TaskContext,
) -> Result<Distilled, DistillError> {
    if ipc == 0 || settings.batch_real == 0 || settings.iterations == 0 {
        return Err(DistillError::Invalid("ipc, batch_real and iterations must be at least 1".into()));
    }
    let sampler = ClassSampler::new(train, dataset.classes);
    if sampler.smallest_class() < ipc as usize {
        return Err(DistillError::Invalid(format!("a class has fewer than {ipc} training images")));
    }
    let normalization = &dataset.normalization;
    let (_, channels, height, width) = train.images.size4()?;
    let device = train.images.device();
    let (mut synthetic, resumed_from) = match resume {
        None => (Synthetic::start(settings.start, train, &sampler, normalization, ipc, seed)?, 0),
        Some(snapshot) if snapshot.iteration < settings.iterations => {
            let image = [channels, height, width];
            (Synthetic::restore(&snapshot.state, dataset.classes, ipc, image, device)?, snapshot.iteration)
        }
        Some(snapshot) => {
            return Err(DistillError::Snapshot(format!(
                "it was taken at iteration {}, not before the last ({})",
                snapshot.iteration, settings.iterations
            )));
        }
    };
    // The last iteration always reports, so this is its loss at the end.
    let mut final_loss = f64::NAN;
    for iteration in resumed_from..settings.iterations {
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
        let done = iteration + 1;
        if done % REPORT_EVERY == 0 || done == settings.iterations {
            let value = loss.f_double_value(&[])?;
            ctx.progress(format!("iteration {done}/{}: loss {value:.4}", settings.iterations));
            final_loss = value;
        }
        if done < settings.iterations && ctx.snapshot_due() {
            ctx.save_snapshot(done, synthetic.state()?);
        }
    }
    Ok(Distilled { set: synthetic, final_loss, resumed_from })
}

/// Iterations between two progress reports (each reads the loss back to the host).
const REPORT_EVERY: u32 = 10;
