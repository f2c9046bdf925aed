//! The DC-bench ConvNet family with the dataset's normalization inside the model.
//!
//! `depth` blocks of Conv2d(3x3, padding 1, `width` channels) -> norm -> ReLU -> 2x2 pooling, then
//! one linear classifier. Inputs are pixels in [0, 1]; the model subtracts the dataset mean and
//! divides by its std first (constants, not parameters), so attacks work in pixel space. Only the
//! `beard-compat` evaluation takes that [`Normalizer`] out of the model, to feed it normalized
//! images as BEARD's reference code does.
//!
//! Parameters live in a [`VarStore`] under PyTorch's `state_dict` names: `features.N.weight` /
//! `.bias` with `N` counting `nn.Sequential` modules (conv, norm, relu, pool per block; conv,
//! relu, pool without norm), batch norm's `running_mean` / `running_var`, and
//! `classifier.weight` / `.bias`. Initialization has PyTorch's default distributions, drawn from
//! the host RNG with the task's seed, so a seed gives the same initial weights on every device
//! and no other thread's use of torch's global generator can change them. Every op uses tch's
//! fallible variants, so device errors (out of memory) come back as values, not panics.
//!
//! On the CPU, ReLU and average pooling run as one fused operation (`relu_pool`), and with the
//! instance norm before them too where the norm's weights are frozen ([`instance_norm_pool`]);
//! the first convolution runs in NCHW without oneDNN's layout changes ([`first_conv`]). All three
//! are bit-identical to libtorch's operators.
//!
//! [`checkpoint`] turns the state dict into safetensors bytes and back, and reads PyTorch
//! state-dict files (the published model pool).

pub mod checkpoint;
pub mod first_conv;
pub mod instance_norm_pool;
mod relu_pool;

use beard_proto::v1::{ModelConfig, NormKind, PoolKind};
use tch::nn::{Path, VarStore};
use tch::{Device, TchError, Tensor};

use crate::data::rng::{Rng, streams};
use crate::data::{DatasetInfo, Normalization};

/// The normalization layer of each block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    /// `GroupNorm(width, width, affine)`: DC-bench's `instancenorm`.
    Instance,
    /// `BatchNorm2d(width)`.
    Batch,
    None,
}

/// The pooling layer of each block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Avg,
    Max,
}

/// Why a model could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    #[error("the checkpoint does not fit the model: {0}")]
    Checkpoint(String),
    #[error("not a checkpoint: not a PyTorch zip archive, a legacy torch.save file, or safetensors")]
    NotACheckpoint,
    #[error(transparent)]
    Torch(#[from] TchError),
}

/// Everything that fixes a ConvNet's shape and constants.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvNetConfig {
    pub width: i64,
    pub depth: i64,
    pub norm: Norm,
    pub pool: Pool,
    pub classes: i64,
    pub image_size: i64,
    pub normalization: Normalization,
}

impl ConvNetConfig {
    /// The config of a train spec's model on a dataset.
    pub fn new(model: &ModelConfig, dataset: &DatasetInfo) -> Result<Self, ModelError> {
        let invalid = |message: String| Err(ModelError::InvalidConfig(message));
        let norm = match model.norm() {
            NormKind::Instance => Norm::Instance,
            NormKind::Batch => Norm::Batch,
            NormKind::None => Norm::None,
            NormKind::Unspecified => return invalid("norm is unspecified".into()),
        };
        let pool = match model.pool() {
            PoolKind::Avg => Pool::Avg,
            PoolKind::Max => Pool::Max,
            PoolKind::Unspecified => return invalid("pool is unspecified".into()),
        };
        if !(1..=4096).contains(&model.width) {
            return invalid(format!("width {} is outside 1..=4096", model.width));
        }
        if model.depth == 0 || dataset.image_size >> model.depth.min(31) == 0 {
            return invalid(format!(
                "depth {} does not fit {}x{} images (each block halves the size)",
                model.depth, dataset.image_size, dataset.image_size
            ));
        }
        Ok(Self {
            width: i64::from(model.width),
            depth: i64::from(model.depth),
            norm,
            pool,
            classes: dataset.classes as i64,
            image_size: dataset.image_size as i64,
            normalization: dataset.normalization,
        })
    }

    /// Height and width of the last block's output.
    fn feature_size(&self) -> i64 {
        self.image_size >> self.depth
    }
}

struct Affine {
    weight: Tensor,
    bias: Tensor,
}

enum NormLayer {
    Instance { affine: Affine, groups: i64 },
    Batch { affine: Affine, running_mean: Tensor, running_var: Tensor },
}

struct Block {
    conv: Affine,
    norm: Option<NormLayer>,
}

/// A ConvNet on one device.
pub struct ConvNet {
    vs: VarStore,
    blocks: Vec<Block>,
    classifier: Affine,
    pool: Pool,
    /// `None` once taken out: the model then expects normalized images.
    normalizer: Option<Normalizer>,
}

/// A dataset's per-channel normalization: `(pixels - mean) / std`.
#[derive(Debug)]
pub struct Normalizer {
    /// `[1, 3, 1, 1]`.
    mean: Tensor,
    /// `[1, 3, 1, 1]`.
    std: Tensor,
}

impl Normalizer {
    fn new(normalization: &Normalization, device: Device) -> Result<Self, TchError> {
        let (mean, std) = normalization.columns(device)?;
        Ok(Self { mean, std })
    }

    /// `images` `[n, 3, h, w]` in [0, 1], normalized.
    pub fn apply(&self, images: &Tensor) -> Result<Tensor, TchError> {
        images.f_sub(&self.mean)?.f_div(&self.std)
    }
}

const NORM_EPS: f64 = 1e-5;
const BATCH_NORM_MOMENTUM: f64 = 0.1;

impl ConvNet {
    /// A freshly initialized model, its random weights drawn with `seed`.
    pub fn new(config: &ConvNetConfig, seed: u64, device: Device) -> Result<Self, ModelError> {
        let mut rng = Rng::stream(seed, &[streams::INIT]);
        let vs = VarStore::new(device);
        let features = vs.root().sub("features");
        let mut blocks = Vec::with_capacity(config.depth as usize);
        let mut index = 0;
        let mut channels = 3;
        for _ in 0..config.depth {
            let conv = uniform_affine(&features.sub(index), &[config.width, channels, 3, 3], &mut rng)?;
            index += 1;
            let norm = norm_layer(&features.sub(index), config.norm, config.width)?;
            if norm.is_some() {
                index += 1;
            }
            index += 2; // ReLU and pooling hold no parameters.
            blocks.push(Block { conv, norm });
            channels = config.width;
        }
        let flat = config.width * config.feature_size() * config.feature_size();
        let classifier = uniform_affine(&vs.root().sub("classifier"), &[config.classes, flat], &mut rng)?;
        let normalizer = Some(Normalizer::new(&config.normalization, device)?);
        Ok(Self { vs, blocks, classifier, pool: config.pool, normalizer })
    }

    /// A model with the weights of a checkpoint: safetensors bytes, or the bytes of a PyTorch
    /// `torch.save(model.state_dict())` file (see [`checkpoint::load`]).
    pub fn from_checkpoint(config: &ConvNetConfig, bytes: &[u8], device: Device) -> Result<Self, ModelError> {
        let model = Self::new(config, 0, device)?;
        checkpoint::load(bytes, &model.vs.variables())?;
        Ok(model)
    }

    /// The state dict as safetensors bytes.
    pub fn checkpoint(&self) -> Result<Vec<u8>, ModelError> {
        checkpoint::save(&self.vs.variables())
    }

    /// Logits `[n, classes]` of pixels `[n, 3, h, w]` in [0, 1] (of normalized images once the
    /// normalizer is taken out). `train` selects batch statistics (and updates the running ones)
    /// in batch norm; other layers ignore it.
    pub fn forward(&self, images: &Tensor, train: bool) -> Result<Tensor, TchError> {
        self.classify(&self.embed(images, train)?)
    }

    /// The logits of features from [`Self::embed`] (for a caller that needs both).
    pub fn classify(&self, features: &Tensor) -> Result<Tensor, TchError> {
        features.f_linear(&self.classifier.weight, Some(&self.classifier.bias))
    }

    /// The flattened features `[n, width * s * s]` the classifier reads (DC-bench's `embed`).
    pub fn embed(&self, images: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let mut x = match &self.normalizer {
            Some(normalizer) => normalizer.apply(images)?,
            None => images.shallow_clone(),
        };
        for block in &self.blocks {
            x = first_conv::conv2d(&x, &block.conv.weight, &block.conv.bias)?;
            x = match (&block.norm, self.pool) {
                (Some(NormLayer::Instance { affine, groups }), Pool::Avg) => {
                    instance_norm_pool::instance_norm_relu_avg_pool(
                        &x,
                        *groups,
                        &affine.weight,
                        &affine.bias,
                        NORM_EPS,
                    )?
                }
                (norm, pool) => {
                    let x = normalize(norm.as_ref(), &x, train)?;
                    match pool {
                        Pool::Avg => relu_pool::relu_avg_pool(&x)?,
                        Pool::Max => x.f_relu()?.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?,
                    }
                }
            };
        }
        x.f_flatten(1, -1)
    }

    /// Takes the input normalization out of the model, which from then on expects normalized
    /// images; `None` when it was taken already.
    pub fn take_normalizer(&mut self) -> Option<Normalizer> {
        self.normalizer.take()
    }

    /// The tensors an optimizer updates.
    pub fn trainable_variables(&self) -> Vec<Tensor> {
        self.vs.trainable_variables()
    }

    /// Stop tracking gradients of the weights (attacks only need input gradients).
    pub fn freeze(&mut self) {
        self.vs.freeze();
    }

    /// The state-dict names, sorted.
    pub fn state_dict_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vs.variables().into_keys().collect();
        names.sort_unstable();
        names
    }
}

/// `weight` of `dims` and `bias` of `dims[0]`, both U(-1/sqrt(fan_in), 1/sqrt(fan_in)): what
/// PyTorch's `Conv2d` and `Linear` default to (kaiming_uniform with a = sqrt(5)).
fn uniform_affine(path: &Path, dims: &[i64], rng: &mut Rng) -> Result<Affine, TchError> {
    let fan_in: i64 = dims.iter().skip(1).product();
    let bound = 1.0 / (fan_in as f64).sqrt();
    let mut draw = |dims: &[i64]| {
        let values: Vec<f32> =
            (0..dims.iter().product::<i64>()).map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32).collect();
        Tensor::f_from_slice(&values)?.f_reshape(dims)
    };
    Ok(Affine { weight: path.f_var_copy("weight", &draw(dims)?)?, bias: path.f_var_copy("bias", &draw(&dims[..1])?)? })
}

/// A block's norm layer applied to its convolution's output; `train` selects batch statistics
/// (and updates the running ones) in batch norm.
fn normalize(norm: Option<&NormLayer>, x: &Tensor, train: bool) -> Result<Tensor, TchError> {
    match norm {
        None => Ok(x.shallow_clone()),
        Some(NormLayer::Instance { affine, groups }) => {
            x.f_group_norm(*groups, Some(&affine.weight), Some(&affine.bias), NORM_EPS, true)
        }
        Some(NormLayer::Batch { affine, running_mean, running_var }) => x.f_batch_norm(
            Some(&affine.weight),
            Some(&affine.bias),
            Some(running_mean),
            Some(running_var),
            train,
            BATCH_NORM_MOMENTUM,
            NORM_EPS,
            true,
        ),
    }
}

fn norm_layer(path: &Path, norm: Norm, width: i64) -> Result<Option<NormLayer>, TchError> {
    let affine = || -> Result<Affine, TchError> {
        Ok(Affine { weight: path.f_ones("weight", &[width])?, bias: path.f_zeros("bias", &[width])? })
    };
    Ok(match norm {
        Norm::None => None,
        Norm::Instance => Some(NormLayer::Instance { affine: affine()?, groups: width }),
        Norm::Batch => Some(NormLayer::Batch {
            affine: affine()?,
            running_mean: path.f_zeros_no_train("running_mean", &[width])?,
            running_var: path.f_ones_no_train("running_var", &[width])?,
        }),
    })
}
