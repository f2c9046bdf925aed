//! The distilled training set of one train task, resident on the device.
//!
//! Sources: `random` (IPC real images per class drawn from the train split with the task's seed,
//! class-major order) is built here; distilled-set files are not loadable yet and fail with
//! [`DataError::DistilledSourceUnavailable`].

use beard_proto::v1::{DistilledSource, distilled_source};
use tch::{TchError, Tensor};

use super::rng::{Rng, streams};
use super::{DataError, Split};

/// Images and labels a model is trained on.
pub struct DistilledSet {
    /// `[n, 3, h, w]` float32 pixels in [0, 1].
    pub images: Tensor,
    /// `[n]` int64 class indices.
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
}

/// The distilled set `source` describes for `ipc` images per class of `classes` classes.
pub fn select(
    source: Option<&DistilledSource>,
    train: &Split,
    classes: usize,
    ipc: u32,
    seed: u32,
) -> Result<DistilledSet, DataError> {
    match source.and_then(|s| s.source.as_ref()) {
        None => Err(DataError::MissingSource),
        Some(distilled_source::Source::File(file)) => Err(DataError::DistilledSourceUnavailable(file.path.clone())),
        Some(distilled_source::Source::Random(_)) => random_subset(train, classes, ipc, seed),
    }
}

/// `ipc` images of every class, drawn without replacement with `seed`, class-major.
pub fn random_subset(train: &Split, classes: usize, ipc: u32, seed: u32) -> Result<DistilledSet, DataError> {
    if ipc == 0 {
        return Err(DataError::ZeroIpc);
    }
    let mut by_class = vec![Vec::new(); classes];
    for (index, &label) in train.labels_host().iter().enumerate() {
        if let Some(members) = usize::try_from(label).ok().and_then(|class| by_class.get_mut(class)) {
            members.push(index as i64);
        }
    }
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
