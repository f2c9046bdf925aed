//! Datasets and distilled training sets, resident on the device.
//!
//! - [`DatasetInfo`]: what the model needs to know about a dataset (classes, image size, the
//!   normalization constants the model applies inside itself), for every known dataset.
//! - [`Dataset`]: a loaded dataset on the device; the test split is uploaded when the dataset is
//!   loaded, the train split the first time something needs it (the `random` source): the
//!   built-in [`synthetic`] dataset, CIFAR-10/100 ([`cifar`]) and TinyImageNet ([`tinyimagenet`],
//!   its JPEGs decoded once into a [`cache`] file).
//! - [`distilled`]: the training set of one train task (`random` subsets or distilled-set files).
//! - [`npz`]: NumPy `.npz` archives of distilled sets.
//! - [`mosaic`]: IDM's and BACON's 2x2 mosaic images.
//! - [`fetch`]: the official dataset archives, downloaded, verified and unpacked
//!   (`agent datasets fetch`).
//! - [`rng`]: the host RNG behind every seeded draw.

pub mod cache;
pub mod cifar;
pub mod distilled;
pub mod fetch;
pub mod mosaic;
pub mod npz;
pub mod rng;
pub mod synthetic;
pub mod tinyimagenet;

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use beard_proto::v1::DatasetRef;
use tch::{Device, Kind, TchError, Tensor};

use beard_formats::torchfile::TorchFileError;

/// Per-channel mean and standard deviation of a dataset's pixels in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The normalization of images already in a normalized space: mean 0, std 1.
    pub const IDENTITY: Self = Self { mean: [0.0; 3], std: [1.0; 3] };

    /// `(mean, std)` as `[1, 3, 1, 1]` columns on `device`.
    pub fn columns(&self, device: Device) -> Result<(Tensor, Tensor), TchError> {
        let column = |values: &[f32; 3]| Tensor::f_from_slice(values)?.f_reshape([1, 3, 1, 1])?.f_to(device);
        Ok((column(&self.mean)?, column(&self.std)?))
    }

    /// Pixels `[n, 3, h, w]` in [0, 1] mapped to the normalized space: `(x - mean) / std`.
    pub fn normalize(&self, pixels: &Tensor) -> Result<Tensor, TchError> {
        let (mean, std) = self.columns(pixels.device())?;
        pixels.f_sub(&mean)?.f_div(&std)
    }

    /// Normalized images mapped back to pixels: `x * std + mean`.
    pub fn to_pixels(&self, normalized: &Tensor) -> Result<Tensor, TchError> {
        let (mean, std) = self.columns(normalized.device())?;
        normalized.f_mul(&std)?.f_add(&mean)
    }
}

/// The static facts about a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DatasetInfo {
    /// Canonical name as in sweep files.
    pub name: &'static str,
    pub classes: usize,
    /// Height and width of the (square) images.
    pub image_size: usize,
    pub normalization: Normalization,
}

const CIFAR10: DatasetInfo = DatasetInfo {
    name: "cifar10",
    classes: 10,
    image_size: 32,
    normalization: Normalization { mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.2010] },
};
const CIFAR100: DatasetInfo = DatasetInfo {
    name: "cifar100",
    classes: 100,
    image_size: 32,
    normalization: Normalization { mean: [0.5071, 0.4866, 0.4409], std: [0.2673, 0.2564, 0.2762] },
};
const TINY_IMAGENET: DatasetInfo = DatasetInfo {
    name: "tinyimagenet",
    classes: 200,
    image_size: 64,
    normalization: Normalization { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
};
const SYNTHETIC: DatasetInfo = DatasetInfo {
    name: "synthetic",
    classes: synthetic::CLASSES,
    image_size: synthetic::IMAGE_SIZE,
    normalization: synthetic::NORMALIZATION,
};
const KNOWN: [DatasetInfo; 4] = [SYNTHETIC, CIFAR10, CIFAR100, TINY_IMAGENET];

/// Why a dataset or a distilled set could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("unknown dataset {0:?}; known datasets: synthetic, cifar10, cifar100, tinyimagenet")]
    UnknownDataset(String),
    #[error("dataset {0} has no loader in this agent")]
    Unavailable(&'static str),
    #[error(
        "dataset {0} needs the directory of its files: give it as --data-dir (the dataset's `root:` in a sweep); `agent datasets fetch {0} --to DIR` downloads them"
    )]
    MissingRoot(&'static str),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{}: no such file; get {dataset} with `agent datasets fetch {dataset} --to DIR` and give DIR as --data-dir (the dataset's `root:` in a sweep)",
        path.display()
    )]
    MissingDatasetFile { dataset: &'static str, path: PathBuf },
    #[error("{}: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("the train spec names no distilled-set source")]
    MissingSource,
    #[error("a model-pool entry has no training set: its checkpoint is attacked as it is")]
    PooledCheckpoint,
    #[error("the set of distill task {0} was not fetched: the worker hands it over as a file")]
    UnfetchedDistillOutput(String),
    #[error("distilled set {path}: {message}")]
    Distilled { path: String, message: String },
    #[error(transparent)]
    TorchFile(#[from] TorchFileError),
    #[error("ipc {ipc} is not possible: the train split has {available} images of class {class}")]
    NotEnoughImages { ipc: u32, class: usize, available: usize },
    #[error("ipc must be at least 1")]
    ZeroIpc,
    #[error(transparent)]
    Torch(#[from] TchError),
}

/// Read a file of real dataset `dataset`; a missing one says how to get the dataset.
fn read_dataset_file(dataset: &'static str, path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::MissingDatasetFile { dataset, path: path.into() },
        _ => DataError::Io { path: path.into(), source },
    })
}

/// The facts about a dataset by its canonical name.
pub fn dataset_info(name: &str) -> Result<DatasetInfo, DataError> {
    KNOWN.into_iter().find(|info| info.name == name).ok_or_else(|| DataError::UnknownDataset(name.to_owned()))
}

/// The two splits of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Train,
    Test,
}

/// One split as host buffers: `pixels` is `[n, 3, size, size]` in row-major order, in [0, 1].
pub struct HostImages {
    pub pixels: Vec<f32>,
    pub labels: Vec<i64>,
}

/// One split as host bytes: `pixels` is `[n, 3, size, size]` in row-major order, each byte a
/// pixel value in 0..=255 (the value in [0, 1] times 255).
pub struct HostBytes {
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
}

/// One split on the device.
pub struct Split {
    /// `[n, 3, h, w]` float32 pixels in [0, 1].
    pub images: Tensor,
    /// `[n]` int64 class indices.
    pub labels: Tensor,
    /// The labels on the host, for seeded draws without device round trips.
    labels_host: Vec<i64>,
}

impl Split {
    /// Upload host pixels (`[n, 3, size, size]` row-major) and labels to `device`.
    pub fn upload(host: HostImages, image_size: usize, device: Device) -> Result<Self, TchError> {
        let shape = [host.labels.len() as i64, 3, image_size as i64, image_size as i64];
        let images = Tensor::f_from_slice(&host.pixels)?.f_reshape(shape)?.f_to(device)?;
        let labels = Tensor::f_from_slice(&host.labels)?.f_to(device)?;
        Ok(Self { images, labels, labels_host: host.labels })
    }

    /// Upload host bytes (`[n, 3, size, size]` row-major) and labels to `device`, where they
    /// become float32 pixels in [0, 1].
    pub fn upload_bytes(host: HostBytes, image_size: usize, device: Device) -> Result<Self, TchError> {
        let shape = [host.labels.len() as i64, 3, image_size as i64, image_size as i64];
        let bytes = Tensor::f_from_slice(&host.pixels)?.f_reshape(shape)?.f_to(device)?;
        let images = bytes.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?;
        let labels = Tensor::f_from_slice(&host.labels)?.f_to(device)?;
        Ok(Self { images, labels, labels_host: host.labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels_host.len()
    }

    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels_host.is_empty()
    }

    /// The labels, on the host.
    pub fn labels_host(&self) -> &[i64] {
        &self.labels_host
    }

    /// The indices of each of `classes` classes' images, in split order.
    pub fn indices_by_class(&self, classes: usize) -> Vec<Vec<i64>> {
        let mut by_class = vec![Vec::new(); classes];
        for (index, &label) in self.labels_host.iter().enumerate() {
            if let Some(members) = usize::try_from(label).ok().and_then(|class| by_class.get_mut(class)) {
                members.push(index as i64);
            }
        }
        by_class
    }
}

/// A dataset on one device.
pub struct Dataset {
    pub info: DatasetInfo,
    pub test: Split,
    train: OnceCell<Split>,
    root: PathBuf,
    device: Device,
}

impl Dataset {
    /// Load the dataset `reference` names (its test split) onto `device`.
    pub fn load(reference: &DatasetRef, device: Device) -> Result<Self, DataError> {
        let info = dataset_info(&reference.name)?;
        let root = PathBuf::from(&reference.root);
        let test = load_part(&info, &root, Part::Test, device)?;
        Ok(Self { info, test, train: OnceCell::new(), root, device })
    }

    /// The train split, uploaded the first time it is asked for.
    pub fn train(&self) -> Result<&Split, DataError> {
        if let Some(split) = self.train.get() {
            return Ok(split);
        }
        let split = load_part(&self.info, &self.root, Part::Train, self.device)?;
        Ok(self.train.get_or_init(|| split))
    }
}

/// One split of a dataset, read from its files (or generated) and uploaded to `device`.
fn load_part(info: &DatasetInfo, root: &Path, part: Part, device: Device) -> Result<Split, DataError> {
    let files = || if root.as_os_str().is_empty() { Err(DataError::MissingRoot(info.name)) } else { Ok(root) };
    let cifar = |variant| -> Result<Split, DataError> {
        Ok(Split::upload(cifar::load(variant, files()?, part)?, info.image_size, device)?)
    };
    match info.name {
        "synthetic" => Ok(Split::upload(synthetic::generate(part), info.image_size, device)?),
        "cifar10" => cifar(cifar::Variant::Cifar10),
        "cifar100" => cifar(cifar::Variant::Cifar100),
        "tinyimagenet" => Ok(Split::upload_bytes(tinyimagenet::load(files()?, part)?, info.image_size, device)?),
        _ => Err(DataError::Unavailable(info.name)),
    }
}
