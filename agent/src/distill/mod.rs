//! Dataset distillation: small synthetic training sets learned from a real training split.
//!
//! - [`dm`]: distribution matching (Zhao & Bilen), frozen random ConvNets and siamese DSA.
//! - [`coreset`]: the herding and k-center baselines, real images chosen in a trained ConvNet's
//!   embedding space.
//! - [`output`]: a learned set as a distill task's result (DC-bench's `torch.save` layout and
//!   safetensors).
//!
//! The shared base lives here: the synthetic set as a learnable tensor in the dataset's
//! normalized space (where the reference code keeps it; its pixels are never clamped), updated by
//! SGD with momentum as `torch.optim.SGD` does; a per-class sampler of real batches; and siamese
//! DSA, one transform and one parameter set per call, broadcast to every image of the real and
//! the synthetic batch alike.
//!
//! Seeds are explicit everywhere (the reference reseeds from the wall clock): every draw comes from
//! a host stream `[streams::DISTILL, purpose, ...]` under the run's seed, so the same seed gives
//! the same set on the CPU, bit for bit. The same holds across a resume: a run's state between
//! two iterations is the synthetic images and SGD's momentum ([`Synthetic::state`]), and every
//! draw of an iteration is keyed by the iteration's index, so a run resumed from a snapshot ends
//! with the set an uninterrupted run learns.

pub mod coreset;
pub mod dm;
pub mod output;

use coreset::Selection;
use dm::DmSettings;

use beard_formats::state_dict::{self, Format};
use beard_formats::torchfile::Dtype;
use beard_proto::v1::{CoresetConfig, DistillSpec, Snapshot, distill_spec};
use tch::{Device, Kind, TchError, Tensor};

use crate::augment::draw::Transform;
use crate::augment::ops;
use crate::backend::TaskContext;
use crate::data::distilled::DistilledSet;
use crate::data::rng::{Rng, streams};
use crate::data::{DatasetInfo, Normalization, Split};
use crate::host_tensor;
use crate::model::{ConvNetConfig, ModelError};
use crate::train::TrainError;

/// A learned set: images in the dataset's normalized space (where distillation works and
/// DC-bench stores its sets) with class-sorted labels, the loss at the end, and the iteration the
/// run resumed from (0 for one from the start, and for methods without snapshots).
pub struct Learned {
    pub images: Tensor,
    pub labels: Tensor,
    pub final_loss: f64,
    pub resumed_from: u32,
}

/// Learn the set `spec` describes from `train` (a split of `dataset`) for a ConvNet shaped as
/// `model`, from the start or from `resume`.
pub fn run(
    spec: &DistillSpec,
    train: &Split,
    dataset: &DatasetInfo,
    model: &ConvNetConfig,
    resume: Option<&Snapshot>,
    ctx: &TaskContext,
) -> Result<Learned, DistillError> {
    let coreset = |selection, config: &CoresetConfig| {
        let training = config.training.as_ref();
        let training = training.ok_or_else(|| DistillError::Invalid("the coreset has no training config".into()))?;
        coreset::select(selection, train, dataset, model, training, spec.ipc, spec.seed, ctx)
    };
    match &spec.algorithm {
        Some(distill_spec::Algorithm::Dm(config)) => {
            let settings = DmSettings::from(config);
            let run = dm::distill(train, dataset, model, spec.ipc, &settings, u64::from(spec.seed), resume, ctx)?;
            let images = run.set.images().f_detach()?;
            Ok(Learned {
                labels: run.set.labels()?,
                images,
                final_loss: run.final_loss,
                resumed_from: run.resumed_from,
            })
        }
        Some(distill_spec::Algorithm::Herding(config)) => coreset(Selection::Herding, config),
        Some(distill_spec::Algorithm::Kcenter(config)) => coreset(Selection::KCenter, config),
        None => Err(DistillError::Invalid("the distill spec names no algorithm".into())),
    }
}

/// Why a distillation stopped without a set.
#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    #[error("invalid distillation settings: {0}")]
    Invalid(String),
    #[error("the snapshot to resume from does not fit this distillation: {0}")]
    Snapshot(String),
    #[error("cannot encode the learned set: {0}")]
    Encode(String),
    #[error("the distillation was cancelled")]
    Cancelled,
    #[error("the embedding network did not train: {0}")]
    Train(#[from] TrainError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Torch(#[from] TchError),
}

/// The purposes of a distillation's host streams (second label after [`streams::DISTILL`]).
mod purpose {
    /// The starting set: `[DISTILL, START]`.
    pub const START: u64 = 1;
    /// Real batches: `[DISTILL, REAL, iteration, class]`.
    pub const REAL: u64 = 2;
    /// Random networks: `[DISTILL, NETS, iteration]`.
    pub const NETS: u64 = 3;
    /// Siamese DSA: `[DISTILL, DSA, iteration, class]`.
    pub const DSA: u64 = 4;
    /// A coreset's first k-center: `[DISTILL, CORESET, class]`.
    pub const CORESET: u64 = 5;
}

/// Where the synthetic images start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Standard normal noise in normalized space.
    Noise,
    /// Random real images of each class.
    Real,
}

/// The synthetic set being learned: `ipc` images per class, class-major, in normalized space.
pub struct Synthetic {
    /// `[classes * ipc, 3, h, w]`, a leaf that requires gradients.
    images: Tensor,
    ipc: i64,
    classes: i64,
    /// SGD's momentum buffer, after the first step.
    velocity: Option<Tensor>,
}

impl Synthetic {
    /// The starting set for `classes` classes of `train` under `seed`.
    pub fn start(
        start: Start,
        train: &Split,
        sampler: &ClassSampler,
        normalization: &Normalization,
        ipc: u32,
        seed: u64,
    ) -> Result<Self, TchError> {
        let (_, channels, height, width) = train.images.size4()?;
        let classes = sampler.classes() as i64;
        let ipc = i64::from(ipc);
        let device = train.images.device();
        let mut rng = Rng::stream(seed, &[streams::DISTILL, purpose::START]);
        let images = match start {
            Start::Noise => {
                let count = classes * ipc * channels * height * width;
                let values: Vec<f32> = (0..count).map(|_| rng.normal() as f32).collect();
                Tensor::f_from_slice(&values)?.f_reshape([classes * ipc, channels, height, width])?.f_to(device)?
            }
            Start::Real => {
                let per_class = (0..classes as usize)
                    .map(|class| sampler.batch(train, normalization, class, ipc as usize, &mut rng))
                    .collect::<Result<Vec<_>, _>>()?;
                Tensor::f_cat(&per_class, 0)?
            }
        };
        Ok(Self { images: images.f_detach()?.f_set_requires_grad(true)?, ipc, classes, velocity: None })
    }

    /// The images of one class, `[ipc, 3, h, w]` (a view that carries gradients to the set).
    pub fn class(&self, class: usize) -> Result<Tensor, TchError> {
        self.images.f_narrow(0, class as i64 * self.ipc, self.ipc)
    }

    /// The whole set, `[classes * ipc, 3, h, w]`.
    pub fn images(&self) -> &Tensor {
        &self.images
    }

    /// The state between two iterations as safetensors bytes: `images` and, once SGD has
    /// stepped, `velocity`.
    pub fn state(&self) -> Result<Vec<u8>, DistillError> {
        let mut tensors = vec![("images".to_owned(), host_tensor::from_tensor(&self.images)?)];
        if let Some(velocity) = &self.velocity {
            tensors.push(("velocity".to_owned(), host_tensor::from_tensor(velocity)?));
        }
        state_dict::encode(&tensors, Format::Safetensors).map_err(|e| DistillError::Snapshot(e.to_string()))
    }

    /// The set a [`Self::state`] describes, checked against the shape this run learns: `classes`
    /// x `ipc` images of `[channels, height, width]`, on `device`.
    pub fn restore(
        state: &[u8],
        classes: usize,
        ipc: u32,
        image: [i64; 3],
        device: Device,
    ) -> Result<Self, DistillError> {
        let invalid = |message: String| DistillError::Snapshot(message);
        let tensors = state_dict::read(state).map_err(|e| invalid(e.to_string()))?;
        let (classes, ipc) = (classes as i64, i64::from(ipc));
        let shape: Vec<usize> = [classes * ipc, image[0], image[1], image[2]].iter().map(|&d| d as usize).collect();
        let mut images = None;
        let mut velocity = None;
        for (name, stored) in &tensors {
            if stored.dtype != Dtype::F32 || stored.shape != shape {
                return Err(invalid(format!(
                    "{name:?} is {:?} {:?}, expected F32 {shape:?}",
                    stored.dtype, stored.shape
                )));
            }
            let tensor = host_tensor::to_tensor(stored)?.f_to(device)?;
            match name.as_str() {
                "images" => images = Some(tensor),
                "velocity" => velocity = Some(tensor),
                other => return Err(invalid(format!("unexpected tensor {other:?}"))),
            }
        }
        let images = images.ok_or_else(|| invalid("no \"images\" tensor".into()))?;
        Ok(Self { images: images.f_set_requires_grad(true)?, ipc, classes, velocity })
    }

    /// One step of `torch.optim.SGD(lr, momentum)` (no dampening, no weight decay) along
    /// `gradient`: `v = momentum v + g` (`v = g` the first time), `x -= lr v`.
    pub fn step(&mut self, gradient: &Tensor, lr: f64, momentum: f64) -> Result<(), TchError> {
        let velocity = match &self.velocity {
            None => gradient.f_detach()?,
            Some(velocity) => velocity.f_mul_scalar(momentum)?.f_add(gradient)?,
        };
        let updated = tch::no_grad(|| self.images.f_sub(&velocity.f_mul_scalar(lr)?))?;
        self.images = updated.f_detach()?.f_set_requires_grad(true)?;
        self.velocity = Some(velocity);
        Ok(())
    }

    /// The class of each image, class-sorted: `[classes * ipc]` int64.
    pub fn labels(&self) -> Result<Tensor, TchError> {
        let device = self.images.device();
        Tensor::f_arange(self.classes, (Kind::Int64, device))?.f_repeat_interleave_self_int(self.ipc, 0, None)
    }

    /// The set as pixels with class-sorted labels, ready to train a model on.
    pub fn to_pixels(&self, normalization: &Normalization) -> Result<DistilledSet, TchError> {
        let device = self.images.device();
        let column = |values: &[f32; 3]| Tensor::f_from_slice(values)?.f_reshape([1, 3, 1, 1])?.f_to(device);
        let pixels =
            self.images.f_detach()?.f_mul(&column(&normalization.std)?)?.f_add(&column(&normalization.mean)?)?;
        Ok(DistilledSet { images: pixels, labels: self.labels()? })
    }
}

/// Random real images of one class at a time, drawn without replacement within a batch.
pub struct ClassSampler {
    /// The training split's indices of each class.
    by_class: Vec<Vec<i64>>,
}

impl ClassSampler {
    pub fn new(train: &Split, classes: usize) -> Self {
        Self { by_class: train.indices_by_class(classes) }
    }

    pub fn classes(&self) -> usize {
        self.by_class.len()
    }

    /// The fewest images any class has.
    pub fn smallest_class(&self) -> usize {
        self.by_class.iter().map(Vec::len).min().unwrap_or(0)
    }

    /// `count` random images of `class` (at most the class's size), normalized.
    pub fn batch(
        &self,
        train: &Split,
        normalization: &Normalization,
        class: usize,
        count: usize,
        rng: &mut Rng,
    ) -> Result<Tensor, TchError> {
        let mut members = self.by_class[class].clone();
        // A partial Fisher-Yates shuffle: the first `count` are a uniform sample.
        let count = count.min(members.len());
        for index in 0..count {
            let pick = index + rng.below((members.len() - index) as u64) as usize;
            members.swap(index, pick);
        }
        let device = train.images.device();
        let index = Tensor::f_from_slice(&members[..count])?.f_to(device)?;
        normalize(&train.images.f_index_select(0, &index)?, normalization)
    }
}

/// Pixels mapped to the normalized space distillation works in.
fn normalize(pixels: &Tensor, normalization: &Normalization) -> Result<Tensor, TchError> {
    let device = pixels.device();
    let column = |values: &[f32; 3]| Tensor::f_from_slice(values)?.f_reshape([1, 3, 1, 1])?.f_to(device);
    pixels.f_sub(&column(&normalization.mean)?)?.f_div(&column(&normalization.std)?)
}

/// One siamese DSA draw: a transform and one parameter set, applied alike to every batch it is
/// given (the real and the synthetic images of a class).
pub struct SiameseDsa {
    transform: Transform,
    /// `[1, k]` on the device.
    params: Tensor,
}

impl SiameseDsa {
    /// A transform chosen uniformly and its parameters, for images of `height` x `width`.
    pub fn draw(rng: &mut Rng, height: i64, width: i64, device: Device) -> Result<Self, TchError> {
        let transform = Transform::choose(rng);
        let mut params = Vec::with_capacity(transform.columns());
        transform.draw(rng, 1, height, width, &mut params);
        let params = Tensor::f_from_slice(&params)?.f_reshape([1, transform.columns() as i64])?.f_to(device)?;
        Ok(Self { transform, params })
    }

    /// `images` (normalized, `[n, 3, h, w]`) under this draw.
    pub fn apply(&self, images: &Tensor) -> Result<Tensor, TchError> {
        let count = images.size4()?.0;
        let params = self.params.f_expand([count, self.transform.columns() as i64], false)?.f_contiguous()?;
        ops::apply(self.transform, &params, images)
    }
}
