//! The training set of one train task, resident on the device.
//!
//! Sources: `random` (IPC real images per class drawn from the train split with the task's seed,
//! class-major order), `full` (the whole train split, shared with the loaded dataset rather than
//! copied; the task's IPC is ignored), and distilled-set files as their authors release them (a
//! distill task's set too: the worker fetches it and hands it over as such a file):
//!
//! - DC / DSA / DM / IDM result files, `{'data': [[images, labels], ...], ...}`: the file's
//!   `experiment` picks the entry;
//! - a plain `(images, labels)` tuple or list, or a dict with `images` and `labels`;
//! - MTT's `images_best.pt` with a separate `labels_best.pt` (the file's `labels_path`);
//! - `.safetensors` with tensors `images` and `labels` (or one tensor each, with `labels_path`);
//! - NumPy `.npz` with arrays `images` and `labels` (or one array each, with `labels_path`).
//!
//! PyTorch files go through [`beard_formats::torchfile`]. Images must be `[n, 3, size, size]` floats;
//! `stored: normalized` maps them back to pixel space with the dataset's mean and std
//! (`x * std + mean`, no clamping: distilled pixels may leave [0, 1]), `stored: pixels` keeps
//! them. Labels are class indices `[n]` (every class must have exactly IPC images) or soft
//! labels `[n, classes]` (floats, kept as they are; `n` must be IPC x classes).

use std::path::Path;

use beard_formats::torchfile::{self, Dtype, StoredTensor, Value};
use beard_proto::v1::{DistilledFile, DistilledSource, distilled_source};

use super::mosaic;
use safetensors::SafeTensors;
use tch::{Device, Kind, TchError, Tensor};

use super::npz;
use super::rng::{Rng, streams};
use super::{DataError, Dataset, DatasetInfo, Split};
use crate::host_tensor;

/// Images and labels a model is trained on.
pub struct DistilledSet {
    /// `[n, 3, h, w]` float32 pixels (in [0, 1] for real images).
    pub images: Tensor,
    /// `[n]` int64 class indices, or `[n, classes]` float32 soft labels.
    pub labels: Tensor,
}

impl DistilledSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size().first().map_or(0, |&n| n as usize)
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the labels are soft (a distribution over classes per image).
    pub fn has_soft_labels(&self) -> bool {
        self.labels.dim() == 2
    }
}

/// The distilled set `source` describes for `ipc` images per class of `dataset`.
pub fn select(
    source: Option<&DistilledSource>,
    dataset: &Dataset,
    ipc: u32,
    seed: u32,
) -> Result<DistilledSet, DataError> {
    match source.and_then(|s| s.source.as_ref()) {
        None => Err(DataError::MissingSource),
        Some(distilled_source::Source::File(file)) => load_file(file, &dataset.info, ipc, dataset.test.images.device()),
        Some(distilled_source::Source::Random(_)) => random_subset(dataset.train()?, dataset.info.classes, ipc, seed),
        Some(distilled_source::Source::Full(_)) => Ok(full_split(dataset.train()?)),
        Some(distilled_source::Source::Checkpoint(_)) => Err(DataError::PooledCheckpoint),
        Some(distilled_source::Source::Distilled(output)) => {
            Err(DataError::UnfetchedDistillOutput(output.distill_task_id.clone()))
        }
    }
}

/// The whole train split, sharing its device tensors.
pub fn full_split(train: &Split) -> DistilledSet {
    DistilledSet { images: train.images.shallow_clone(), labels: train.labels.shallow_clone() }
}

/// `ipc` images of every class, drawn without replacement with `seed`, class-major.
pub fn random_subset(train: &Split, classes: usize, ipc: u32, seed: u32) -> Result<DistilledSet, DataError> {
    if ipc == 0 {
        return Err(DataError::ZeroIpc);
    }
    let by_class = train.indices_by_class(classes);
    let mut chosen = Vec::with_capacity(classes * ipc as usize);
    for (class, mut members) in by_class.into_iter().enumerate() {
        if members.len() < ipc as usize {
            return Err(DataError::NotEnoughImages { ipc, class, available: members.len() });
        }
        Rng::stream(u64::from(seed), &[streams::RANDOM_SUBSET, class as u64]).shuffle(&mut members);
        chosen.extend_from_slice(&members[..ipc as usize]);
    }
    Ok(gather(train, &chosen)?)
}

fn gather(train: &Split, indices: &[i64]) -> Result<DistilledSet, TchError> {
    let index = Tensor::f_from_slice(indices)?.f_to(train.images.device())?;
    Ok(DistilledSet {
        images: train.images.f_index_select(0, &index)?,
        labels: train.labels.f_index_select(0, &index)?,
    })
}

/// The distilled set in `file`, checked against `dataset` and `ipc`, on `device`.
pub fn load_file(
    file: &DistilledFile,
    dataset: &DatasetInfo,
    ipc: u32,
    device: Device,
) -> Result<DistilledSet, DataError> {
    let invalid = |message: String| DataError::Distilled { path: file.path.clone(), message };
    let (images, labels) = if file.labels_path.is_empty() {
        pair(read(&file.path)?, file.experiment).map_err(invalid)?
    } else {
        let labels_invalid = |message| DataError::Distilled { path: file.labels_path.clone(), message };
        (single(read(&file.path)?).map_err(invalid)?, single(read(&file.labels_path)?).map_err(labels_invalid)?)
    };
    let images = pixel_images(&images, dataset, &file.stored).map_err(invalid)?;
    let labels = checked_labels(&labels, images.size()[0], dataset.classes, ipc).map_err(invalid)?;
    let (images, labels) = if file.mosaic {
        if !dataset.image_size.is_multiple_of(2) {
            return Err(invalid(format!("mosaics need an even image size, not {}", dataset.image_size)));
        }
        (mosaic::decode(&images)?, mosaic::decode_labels(&labels)?)
    } else {
        (images, labels)
    };
    Ok(DistilledSet { images: images.f_to(device)?, labels: labels.f_to(device)? })
}

/// A PyTorch file, or a `.safetensors` or `.npz` file as a dict of its tensors.
fn read(path: &str) -> Result<Value, DataError> {
    match Path::new(path).extension().and_then(|ext| ext.to_str()) {
        Some("safetensors") => {}
        Some("npz") => return npz::load(Path::new(path)),
        _ => return Ok(torchfile::load(Path::new(path))?),
    }
    let invalid = |message: String| DataError::Distilled { path: path.to_owned(), message };
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
    let mut entries = Vec::new();
    for (name, view) in file.tensors() {
        let dtype = Dtype::from_safetensors(view.dtype())
            .ok_or_else(|| invalid(format!("tensor {name:?} has unsupported dtype {:?}", view.dtype())))?;
        let tensor = StoredTensor { dtype, shape: view.shape().to_vec(), data: view.data().to_vec() };
        entries.push((name, tensor));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Dict(entries.into_iter().map(|(name, tensor)| (Value::Str(name), Value::Tensor(tensor))).collect()))
}

const LAYOUTS: &str = "expected {'data': [[images, labels], ...]}, (images, labels), {'images', 'labels'}, \
                       or an images tensor with a separate labels file";

/// Images and labels from one file's value.
fn pair(value: Value, experiment: u32) -> Result<(StoredTensor, StoredTensor), String> {
    if let Some(data) = value.get("data") {
        let experiments = data.as_sequence().ok_or_else(|| format!("'data' is {}, not a list", data.describe()))?;
        let entry = experiments.get(experiment as usize).ok_or_else(|| {
            format!("experiment {experiment} asked for, the file holds {} experiment(s)", experiments.len())
        })?;
        return tensor_pair(entry)
            .ok_or_else(|| format!("'data'[{experiment}] is {}, not [images, labels]", entry.describe()));
    }
    if let (Some(images), Some(labels)) = (value.get("images"), value.get("labels")) {
        return match (images, labels) {
            (Value::Tensor(images), Value::Tensor(labels)) => Ok((images.clone(), labels.clone())),
            _ => Err(format!(
                "'images' is {} and 'labels' {}; both must be tensors",
                images.describe(),
                labels.describe()
            )),
        };
    }
    if let Value::Tensor(_) = value {
        return Err("the file holds one tensor (MTT's images_best.pt layout): name its labels file too".into());
    }
    tensor_pair(&value).ok_or_else(|| format!("{LAYOUTS}; found {}", value.describe()))
}

fn tensor_pair(value: &Value) -> Option<(StoredTensor, StoredTensor)> {
    match value.as_sequence()? {
        [Value::Tensor(images), Value::Tensor(labels), ..] => Some((images.clone(), labels.clone())),
        _ => None,
    }
}

/// The one tensor of an images-only or labels-only file.
fn single(value: Value) -> Result<StoredTensor, String> {
    match value {
        Value::Tensor(tensor) => Ok(tensor),
        Value::Dict(mut entries) if entries.len() == 1 => match entries.pop() {
            Some((_, Value::Tensor(tensor))) => Ok(tensor),
            _ => Err("expected a single tensor".into()),
        },
        other => Err(format!("expected a single tensor, found {}", other.describe())),
    }
}

/// `[n, 3, size, size]` float32 pixels.
fn pixel_images(images: &StoredTensor, dataset: &DatasetInfo, stored: &str) -> Result<Tensor, String> {
    let size = dataset.image_size;
    if !images.dtype.is_float() || images.shape.len() != 4 || images.shape[1..] != [3, size, size] {
        return Err(format!(
            "images are a {:?} tensor of shape {:?}; {} needs floats of shape [n, 3, {size}, {size}]",
            images.dtype, images.shape, dataset.name
        ));
    }
    let tensor = host_tensor::to_tensor(images).and_then(|t| t.f_to_kind(Kind::Float)).map_err(|e| e.to_string())?;
    match stored {
        "pixels" => Ok(tensor),
        "normalized" => dataset.normalization.to_pixels(&tensor).map_err(|e| e.to_string()),
        other => Err(format!("stored is {other:?}, expected \"normalized\" or \"pixels\"")),
    }
}

/// Hard labels `[n]` as int64 with exactly `ipc` per class, or soft labels `[n, classes]` as
/// float32 with `n = ipc * classes`.
fn checked_labels(labels: &StoredTensor, count: i64, classes: usize, ipc: u32) -> Result<Tensor, String> {
    let n = count as usize;
    let expected = classes * ipc as usize;
    let tensor = host_tensor::to_tensor(labels).map_err(|e| e.to_string())?;
    if labels.dtype.is_float() {
        if labels.shape != [n, classes] {
            return Err(format!("soft labels have shape {:?}; expected [{n}, {classes}]", labels.shape));
        }
        if n != expected {
            return Err(format!("{n} images with soft labels; ipc {ipc} x {classes} classes needs {expected}"));
        }
        return tensor.f_to_kind(Kind::Float).map_err(|e| e.to_string());
    }
    if labels.shape != [n] || labels.dtype == Dtype::Bool {
        return Err(format!(
            "labels are a {:?} tensor of shape {:?}; expected {n} class indices",
            labels.dtype, labels.shape
        ));
    }
    let tensor = tensor.f_to_kind(Kind::Int64).map_err(|e| e.to_string())?;
    let values = Vec::<i64>::try_from(&tensor).map_err(|e| e.to_string())?;
    let mut counts = vec![0usize; classes];
    for (index, &label) in values.iter().enumerate() {
        let slot = usize::try_from(label).ok().and_then(|class| counts.get_mut(class));
        *slot.ok_or_else(|| format!("label {label} of image {index} is outside 0..{classes}"))? += 1;
    }
    if let Some((class, &have)) = counts.iter().enumerate().find(|(_, have)| **have != ipc as usize) {
        return Err(format!("class {class} has {have} images; ipc {ipc} needs {ipc} per class (counts {counts:?})"));
    }
    Ok(tensor)
}
