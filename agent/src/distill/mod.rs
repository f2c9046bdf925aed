//! Dataset distillation: small synthetic training sets learned from a real training split.
//!
//! - [`dm`]: distribution matching (Zhao & Bilen), frozen random ConvNets and siamese DSA.
//! - [`idm`]: IDM and BACON, distribution matching through a queue of trained ConvNets on
//!   mosaic images.
//! - [`gm`]: gradient matching, DC (Zhao, Mopuri & Bilen) and DSA (Zhao & Bilen): a double
//!   backward through a ConvNet trained along the way.
//! - [`coreset`]: the herding and k-center baselines, real images chosen in a trained ConvNet's
//!   embedding space.
//! - [`output`]: a learned set as a distill task's result (DC-bench's `torch.save` layout and
//!   safetensors).
//!
//! The shared base lives here: the synthetic set as a learnable tensor in the dataset's
//! normalized space (where the reference code keeps it; its pixels are never clamped), updated by
//! SGD with momentum as `torch.optim.SGD` does; a per-class sampler of real batches; siamese
//! DSA, one transform and one parameter set per call, broadcast to every image of the real and
//! the synthetic batch alike; the fresh ConvNet of an iteration; and a [`Run`]'s start (checks,
//! the starting or restored set) and the end of each of its iterations (progress, snapshots).
//!
//! Seeds are explicit everywhere (the reference reseeds from the wall clock): every draw comes from
//! a host stream `[streams::DISTILL, purpose, ...]` under the run's seed, so the same seed gives
//! the same set on the CPU, bit for bit. The same holds across a resume: a run's state between
//! two iterations is the synthetic images and SGD's momentum ([`Synthetic::state`]), and every
//! draw of an iteration is keyed by the iteration's index, so a run resumed from a snapshot ends
//! with the set an uninterrupted run learns.

pub mod coreset;
pub mod dm;
pub mod gm;
pub mod idm;
pub mod output;

use coreset::Selection;
use gm::GmSettings;
use idm::IdmSettings;

use beard_formats::state_dict::{self, Format, StateDict};
use beard_formats::torchfile::Dtype;
use beard_proto::v1::{CoresetConfig, DistillInit, DistillSpec, MatchingConfig, Snapshot, distill_spec};
use tch::{Device, Kind, TchError, Tensor};

use crate::augment::draw::Transform;
use crate::augment::ops;
use crate::backend::TaskContext;
use crate::data::distilled::DistilledSet;
use crate::data::rng::{Rng, streams};
use crate::data::{DatasetInfo, Normalization, Split, mosaic};
use crate::host_tensor;
use crate::model::{ConvNet, ConvNetConfig, ModelError};
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
    let run = Run { train, dataset, model, ipc: spec.ipc, seed: u64::from(spec.seed), resume, ctx };
    match &spec.algorithm {
        Some(distill_spec::Algorithm::Dm(config)) => dm::distill(&run, &Matching::from(config))?.learned(),
        Some(distill_spec::Algorithm::GradientMatching(config)) => {
            gm::distill(&run, &GmSettings::from_config(config)?)?.learned()
        }
        Some(distill_spec::Algorithm::Idm(config)) => idm::distill(&run, &IdmSettings::from_config(config)?)?.learned(),
        Some(distill_spec::Algorithm::Herding(config)) => coreset(Selection::Herding, config),
        Some(distill_spec::Algorithm::Kcenter(config)) => coreset(Selection::KCenter, config),
        None => Err(DistillError::Invalid("the distill spec names no algorithm".into())),
    }
}

/// A finished run of a matching method: the learned set, the loss of its last iteration, and the
/// iteration it resumed from (0 for a run from the start).
pub struct Distilled {
    pub set: Synthetic,
    pub final_loss: f64,
    pub resumed_from: u32,
}

impl Distilled {
    fn learned(self) -> Result<Learned, DistillError> {
        Ok(Learned {
            images: self.set.images().f_detach()?,
            labels: self.set.labels()?,
            final_loss: self.final_loss,
            resumed_from: self.resumed_from,
        })
    }
}

/// How a matching method (DM, DC, DSA, IDM, BACON) learns its images; DM's whole configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Matching {
    pub iterations: u32,
    /// Real images per class and matching step.
    pub batch_real: u32,
    /// SGD learning rate and momentum of the synthetic images.
    pub lr_img: f64,
    pub momentum: f64,
    /// Siamese DSA on both batches of a class.
    pub dsa: bool,
    pub start: Start,
}

impl From<&MatchingConfig> for Matching {
    fn from(config: &MatchingConfig) -> Self {
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

/// One run of a matching method: `ipc` images per class learned from `train` (a split of
/// `dataset`) for a ConvNet shaped as `model`, under `seed`, from the start or from `resume`
/// (a snapshot of the same run); `ctx` takes its progress and snapshots.
pub struct Run<'a> {
    pub train: &'a Split,
    pub dataset: &'a DatasetInfo,
    pub model: &'a ConvNetConfig,
    pub ipc: u32,
    pub seed: u64,
    pub resume: Option<&'a Snapshot>,
    pub ctx: &'a TaskContext,
}

/// A run set up: its real batches, the set it starts from (fresh, or restored from the
/// snapshot), and the iteration to go on from.
pub struct Prepared<'a> {
    pub batches: RealBatches<'a>,
    pub synthetic: Synthetic,
    pub resumed_from: u32,
}

impl<'a> Run<'a> {
    /// [`Self::prepare_with_state`] for a method whose snapshots hold the set alone.
    pub fn prepare(&self, matching: &Matching) -> Result<Prepared<'a>, DistillError> {
        let (prepared, rest) = self.prepare_with_state(matching)?;
        match rest.first() {
            Some((name, _)) => Err(DistillError::Snapshot(format!("unexpected tensor {name:?}"))),
            None => Ok(prepared),
        }
    }

    /// Checks the run's sizes (`ipc`, `batch_real` and `iterations` at least 1, every class with
    /// `ipc` training images) and sets it up, the set from `start` or from the snapshot; with the
    /// snapshot's tensors that are not the set's (empty for a run from the start).
    pub fn prepare_with_state(&self, matching: &Matching) -> Result<(Prepared<'a>, StateDict), DistillError> {
        let (train, dataset, ipc) = (self.train, self.dataset, self.ipc);
        let Matching { iterations, batch_real, start, dsa, .. } = *matching;
        if ipc == 0 || batch_real == 0 || iterations == 0 {
            return Err(DistillError::Invalid("ipc, batch_real and iterations must be at least 1".into()));
        }
        let sampler = ClassSampler::new(train, dataset.classes);
        if sampler.smallest_class() < ipc as usize {
            return Err(DistillError::Invalid(format!("a class has fewer than {ipc} training images")));
        }
        let (_, channels, height, width) = train.images.size4()?;
        let (synthetic, rest, resumed_from) = match self.resume {
            None => (Synthetic::start(start, train, &sampler, &dataset.normalization, ipc, self.seed)?, Vec::new(), 0),
            Some(snapshot) if snapshot.iteration < iterations => {
                let image = [channels, height, width];
                let device = train.images.device();
                let tensors = state_dict::read(&snapshot.state).map_err(|e| DistillError::Snapshot(e.to_string()))?;
                let (synthetic, rest) = Synthetic::restore(tensors, dataset.classes, ipc, image, device)?;
                (synthetic, rest, snapshot.iteration)
            }
            Some(snapshot) => {
                return Err(DistillError::Snapshot(format!(
                    "it was taken at iteration {}, not before the last ({iterations})",
                    snapshot.iteration
                )));
            }
        };
        let batches = RealBatches {
            train,
            normalization: &dataset.normalization,
            sampler,
            batch_real: batch_real as usize,
            dsa,
            seed: self.seed,
        };
        Ok((Prepared { batches, synthetic, resumed_from }, rest))
    }

    /// Reports iteration `done` of `iterations` with its loss where one was read back, then
    /// hands the context a snapshot, the bytes `state` gives, when one is due (never after the
    /// last: the finished set follows).
    pub fn finish_iteration(
        &self,
        done: u32,
        iterations: u32,
        loss: Option<f64>,
        state: impl FnOnce() -> Result<Vec<u8>, DistillError>,
    ) -> Result<(), DistillError> {
        if let Some(loss) = loss {
            self.ctx.progress(format!("iteration {done}/{iterations}: loss {loss:.4}"));
        }
        if done < iterations && self.ctx.snapshot_due() {
            self.ctx.save_snapshot(done, state()?);
        }
        Ok(())
    }
}

/// A snapshot's tensors as its bytes (safetensors).
pub fn encode_state(tensors: &StateDict) -> Result<Vec<u8>, DistillError> {
    state_dict::encode(tensors, Format::Safetensors).map_err(|e| DistillError::Snapshot(e.to_string()))
}

/// A fresh ConvNet shaped as `model`, on normalized images, its weights drawn from
/// `[DISTILL, NETS, key..]` under `seed` (`key` is the iteration that draws it, and more where
/// an iteration draws several).
pub fn fresh_net(model: &ConvNetConfig, seed: u64, key: &[u64], device: Device) -> Result<ConvNet, ModelError> {
    let net_seed = Rng::stream(seed, &[&[streams::DISTILL, purpose::NETS], key].concat()).next_u64();
    let mut net = ConvNet::new(model, net_seed, device)?;
    net.take_normalizer();
    Ok(net)
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
    /// Real batches: `[DISTILL, REAL, step.., class]` ([`RealBatches::pair`]).
    pub const REAL: u64 = 2;
    /// Random networks: `[DISTILL, NETS, iteration]`.
    pub const NETS: u64 = 3;
    /// Siamese DSA: `[DISTILL, DSA, step.., class]`.
    pub const DSA: u64 = 4;
    /// A coreset's first k-center: `[DISTILL, CORESET, class]`.
    pub const CORESET: u64 = 5;
    /// Gradient matching's inner training: `[DISTILL, INNER, iteration, outer step]`.
    pub const INNER: u64 = 6;
    /// The queue nets IDM matches through: `[DISTILL, PICK, iteration]`.
    pub const PICK: u64 = 7;
    /// The queue nets IDM trains: `[DISTILL, FETCH, iteration]`.
    pub const FETCH: u64 = 8;
    /// Their real batches: `[DISTILL, QUEUE_BATCH, iteration, net, step]`.
    pub const QUEUE_BATCH: u64 = 9;
}

/// Where the synthetic images start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Standard normal noise in normalized space.
    Noise,
    /// Random real images of each class.
    Real,
    /// IDM's partition-and-expansion start: each image a [`mosaic`] of four random real images
    /// of its class, drawn quadrant by quadrant.
    Mosaic,
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
            Start::Mosaic => {
                let per_class = (0..classes as usize)
                    .map(|class| {
                        let mut quadrant = || sampler.batch(train, normalization, class, ipc as usize, &mut rng);
                        mosaic::encode(&[quadrant()?, quadrant()?, quadrant()?, quadrant()?])
                    })
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
        encode_state(&self.state_tensors()?)
    }

    /// The tensors of [`Self::state`], for a method that adds its own.
    pub fn state_tensors(&self) -> Result<StateDict, TchError> {
        let mut tensors = vec![("images".to_owned(), host_tensor::from_tensor(&self.images)?)];
        if let Some(velocity) = &self.velocity {
            tensors.push(("velocity".to_owned(), host_tensor::from_tensor(velocity)?));
        }
        Ok(tensors)
    }

    /// The set the tensors of a [`Self::state`] describe, checked against the shape this run
    /// learns: `classes` x `ipc` images of `[channels, height, width]`, on `device`; with the
    /// tensors that are not the set's (a method's own state).
    pub fn restore(
        tensors: StateDict,
        classes: usize,
        ipc: u32,
        image: [i64; 3],
        device: Device,
    ) -> Result<(Self, StateDict), DistillError> {
        let invalid = |message: String| DistillError::Snapshot(message);
        let (classes, ipc) = (classes as i64, i64::from(ipc));
        let shape: Vec<usize> = [classes * ipc, image[0], image[1], image[2]].iter().map(|&d| d as usize).collect();
        let mut images = None;
        let mut velocity = None;
        let mut rest = Vec::new();
        for (name, stored) in tensors {
            let slot = match name.as_str() {
                "images" => &mut images,
                "velocity" => &mut velocity,
                _ => {
                    rest.push((name, stored));
                    continue;
                }
            };
            if stored.dtype != Dtype::F32 || stored.shape != shape {
                return Err(invalid(format!(
                    "{name:?} is {:?} {:?}, expected F32 {shape:?}",
                    stored.dtype, stored.shape
                )));
            }
            *slot = Some(host_tensor::to_tensor(&stored)?.f_to(device)?);
        }
        let images = images.ok_or_else(|| invalid("no \"images\" tensor".into()))?;
        Ok((Self { images: images.f_set_requires_grad(true)?, ipc, classes, velocity }, rest))
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

    /// One SGD step ([`Self::step`]) down the gradient of `loss` with respect to the set.
    pub fn descend(&mut self, loss: &Tensor, lr: f64, momentum: f64) -> Result<(), TchError> {
        let gradient = Tensor::f_run_backward(&[loss], &[&self.images], false, false)?
            .pop()
            .ok_or_else(|| TchError::Torch("autograd returned no gradient for the synthetic images".into()))?;
        self.step(&gradient, lr, momentum)
    }

    /// The class of each image, class-sorted: `[classes * ipc]` int64.
    pub fn labels(&self) -> Result<Tensor, TchError> {
        let device = self.images.device();
        Tensor::f_arange(self.classes, (Kind::Int64, device))?.f_repeat_interleave_self_int(self.ipc, 0, None)
    }

    /// The set as pixels with class-sorted labels, ready to train a model on.
    pub fn to_pixels(&self, normalization: &Normalization) -> Result<DistilledSet, TchError> {
        let pixels = normalization.to_pixels(&self.images.f_detach()?)?;
        Ok(DistilledSet { images: pixels, labels: self.labels()? })
    }
}

/// Random real images of one class at a time, drawn without replacement within a batch.
pub struct ClassSampler {
    /// The training split's indices of each class.
    by_class: Vec<Vec<i64>>,
    /// All of them, class by class.
    all: Vec<i64>,
}

impl ClassSampler {
    pub fn new(train: &Split, classes: usize) -> Self {
        let by_class = train.indices_by_class(classes);
        let all = by_class.concat();
        Self { by_class, all }
    }

    pub fn classes(&self) -> usize {
        self.by_class.len()
    }

    /// The fewest images any class has.
    pub fn smallest_class(&self) -> usize {
        self.by_class.iter().map(Vec::len).min().unwrap_or(0)
    }

    /// `count` random images of any class (at most the split's size), normalized, with their
    /// labels.
    pub fn mixed_batch(
        &self,
        train: &Split,
        normalization: &Normalization,
        count: usize,
        rng: &mut Rng,
    ) -> Result<(Tensor, Tensor), TchError> {
        let mut members = self.all.clone();
        let index = partial_shuffle(&mut members, count, rng).f_to(train.images.device())?;
        let images = normalization.normalize(&train.images.f_index_select(0, &index)?)?;
        Ok((images, train.labels.f_index_select(0, &index)?))
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
        let index = partial_shuffle(&mut members, count, rng).f_to(train.images.device())?;
        normalization.normalize(&train.images.f_index_select(0, &index)?)
    }
}

/// A uniform sample of `count` of `members` (all of them when fewer), without replacement, as a
/// CPU tensor: a partial Fisher-Yates shuffle.
fn partial_shuffle(members: &mut [i64], count: usize, rng: &mut Rng) -> Tensor {
    let count = count.min(members.len());
    for index in 0..count {
        let pick = index + rng.below((members.len() - index) as u64) as usize;
        members.swap(index, pick);
    }
    Tensor::from_slice(&members[..count])
}

/// Where a matching step's real batches come from: `batch_real` random training images of a
/// class, normalized, and the siamese DSA draw they share with the synthetic images when `dsa`.
pub struct RealBatches<'a> {
    train: &'a Split,
    normalization: &'a Normalization,
    sampler: ClassSampler,
    batch_real: usize,
    dsa: bool,
    seed: u64,
}

impl RealBatches<'_> {
    /// Class `class`'s real batch and its `synthetic` images at matching step `step` (the
    /// iteration, then the outer step where a method has several), both under one siamese DSA
    /// draw when DSA is on. The draws come from `[DISTILL, REAL, step.., class]` and
    /// `[DISTILL, DSA, step.., class]`.
    pub fn pair(&self, step: &[u64], class: usize, synthetic: Tensor) -> Result<(Tensor, Tensor), TchError> {
        let key = |purpose: u64| [&[streams::DISTILL, purpose], step, &[class as u64]].concat();
        let mut rng = Rng::stream(self.seed, &key(purpose::REAL));
        let real = self.sampler.batch(self.train, self.normalization, class, self.batch_real, &mut rng)?;
        if !self.dsa {
            return Ok((real, synthetic));
        }
        let (_, _, height, width) = real.size4()?;
        let dsa = SiameseDsa::draw(&mut Rng::stream(self.seed, &key(purpose::DSA)), height, width, real.device())?;
        Ok((dsa.apply(&real)?, dsa.apply(&synthetic)?))
    }

    /// `count` random real images of any class, normalized, with their labels.
    pub fn mixed(&self, count: usize, rng: &mut Rng) -> Result<(Tensor, Tensor), TchError> {
        self.sampler.mixed_batch(self.train, self.normalization, count, rng)
    }

    /// Every class's [`Self::pair`] at `step`: the real batches and the synthetic ones, in class
    /// order.
    pub fn pairs(&self, step: &[u64], synthetic: &Synthetic) -> Result<(Vec<Tensor>, Vec<Tensor>), TchError> {
        let classes = synthetic.classes as usize;
        let mut real = Vec::with_capacity(classes);
        let mut fake = Vec::with_capacity(classes);
        for class in 0..classes {
            let (real_batch, synthetic_batch) = self.pair(step, class, synthetic.class(class)?)?;
            real.push(real_batch);
            fake.push(synthetic_batch);
        }
        Ok((real, fake))
    }
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
