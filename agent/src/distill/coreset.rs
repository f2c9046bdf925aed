//! The coreset baselines of the distillation literature, beside `random`: `ipc` real training
//! images per class chosen in the embedding space of a ConvNet trained on the whole training split
//! (the features its classifier reads), as DC-bench's herding and k-center baselines do.
//!
//! - [`Selection::Herding`] (Welling; iCaRL's exemplar selection): per class, greedily the image
//!   whose embedding brings the mean of the chosen ones closest to the class's mean embedding.
//! - [`Selection::KCenter`] (Sener & Savarese's k-center greedy): per class, a first image drawn
//!   with the seed, then greedily the image farthest (in Euclidean distance) from its nearest
//!   chosen one.
//!
//! The ConvNet is initialized and trained with the task's seed, so the same seed selects the same
//! images. Ties go to the lowest index. The selection is class-major, in selection order.

use beard_proto::v1::TrainingConfig;
use tch::{Kind, TchError, Tensor};

use super::{DistillError, Learned, purpose};
use crate::backend::TaskContext;
use crate::data::distilled::full_split;
use crate::data::rng::{Rng, streams};
use crate::data::{DatasetInfo, Split};
use crate::model::{ConvNet, ConvNetConfig};
use crate::train;

/// How a coreset baseline picks its images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    Herding,
    KCenter,
}

/// Images embedded per forward pass.
const EMBED_CHUNK: i64 = 500;

/// Choose `ipc` images per class of `train` (a split of `dataset`) by `selection`, in the
/// embedding space of a ConvNet shaped as `model` trained as `training` says, under `seed`; the
/// loss is the ConvNet's last training loss.
#[allow(clippy::too_many_arguments)]
pub fn select(
    selection: Selection,
    train: &Split,
    dataset: &DatasetInfo,
    model: &ConvNetConfig,
    training: &TrainingConfig,
    ipc: u32,
    seed: u32,
    ctx: &TaskContext,
) -> Result<Learned, DistillError> {
    let by_class = train.indices_by_class(dataset.classes);
    if ipc == 0 {
        return Err(DistillError::Invalid("ipc must be at least 1".into()));
    }
    if let Some((class, members)) = by_class.iter().enumerate().find(|(_, members)| members.len() < ipc as usize) {
        return Err(DistillError::Invalid(format!("class {class} has {} training images, ipc {ipc}", members.len())));
    }
    let device = train.images.device();
    let net = ConvNet::new(model, u64::from(seed), device)?;
    let final_loss = train::train(&net, &full_split(train), dataset, training, seed, ctx)?;
    let mut chosen = Vec::with_capacity(dataset.classes * ipc as usize);
    for (class, members) in by_class.iter().enumerate() {
        ctx.progress(format!("selecting class {}/{}", class + 1, dataset.classes));
        let embeddings = embed(&net, train, members)?;
        let picks = match selection {
            Selection::Herding => herding(&embeddings, ipc as usize)?,
            Selection::KCenter => {
                let mut rng = Rng::stream(u64::from(seed), &[streams::DISTILL, purpose::CORESET, class as u64]);
                let first = rng.below(members.len() as u64) as usize;
                k_center(&embeddings, first, ipc as usize)?
            }
        };
        chosen.extend(picks.into_iter().map(|pick| members[pick]));
    }
    let index = Tensor::f_from_slice(&chosen)?.f_to(device)?;
    let images = dataset.normalization.normalize(&train.images.f_index_select(0, &index)?)?;
    let labels = train.labels.f_index_select(0, &index)?;
    Ok(Learned { images, labels, final_loss, resumed_from: 0 })
}

/// The embeddings `[members, d]` of the training images `members`, in evaluation mode.
fn embed(net: &ConvNet, train: &Split, members: &[i64]) -> Result<Tensor, TchError> {
    let index = Tensor::f_from_slice(members)?.f_to(train.images.device())?;
    let mut parts = Vec::new();
    for start in (0..members.len() as i64).step_by(EMBED_CHUNK as usize) {
        let chunk = index.f_narrow(0, start, EMBED_CHUNK.min(members.len() as i64 - start))?;
        let images = train.images.f_index_select(0, &chunk)?;
        parts.push(tch::no_grad(|| net.embed(&images, false))?);
    }
    Tensor::f_cat(&parts, 0)?.f_to_kind(Kind::Double)
}

/// Herding: `count` rows of `embeddings` `[n, d]`, each the one that brings the mean of the rows
/// chosen so far closest to the mean of all.
pub fn herding(embeddings: &Tensor, count: usize) -> Result<Vec<usize>, TchError> {
    let target = embeddings.f_mean_dim(0, true, None)?;
    let (n, _) = embeddings.size2()?;
    let mut sum = target.f_zeros_like()?;
    let mut taken = Tensor::f_zeros([n], (Kind::Bool, embeddings.device()))?;
    let mut chosen = Vec::with_capacity(count);
    for k in 1..=count {
        let means = embeddings.f_add(&sum)?.f_div_scalar(k as f64)?;
        let distances = means.f_sub(&target)?.f_square()?.f_sum_dim_intlist(1, false, None)?;
        let distances = distances.f_masked_fill(&taken, f64::INFINITY)?;
        let pick = distances.f_argmin(0, false)?.f_int64_value(&[])?;
        sum = sum.f_add(&embeddings.f_narrow(0, pick, 1)?)?;
        taken = taken.f_index_fill(0, &Tensor::f_from_slice(&[pick])?.f_to(embeddings.device())?, 1)?;
        chosen.push(pick as usize);
    }
    Ok(chosen)
}

/// k-center greedy: `count` rows of `embeddings` `[n, d]` from row `first` on, each the row
/// farthest from its nearest chosen one.
pub fn k_center(embeddings: &Tensor, first: usize, count: usize) -> Result<Vec<usize>, TchError> {
    let distance_to = |row: i64| -> Result<Tensor, TchError> {
        embeddings.f_sub(&embeddings.f_narrow(0, row, 1)?)?.f_square()?.f_sum_dim_intlist(1, false, None)
    };
    let mut chosen = vec![first];
    let mut nearest = distance_to(first as i64)?;
    while chosen.len() < count {
        let pick = nearest.f_argmax(0, false)?.f_int64_value(&[])?;
        nearest = nearest.f_minimum(&distance_to(pick)?)?;
        chosen.push(pick as usize);
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(rows: &[[f64; 2]]) -> Tensor {
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).reshape([rows.len() as i64, 2])
    }

    #[test]
    fn herding_tracks_the_mean() {
        // Mean (1, 0): the point on it first, then the pair whose mean is nearest to it.
        let embeddings = points(&[[3.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 1.0], [1.0, -1.0]]);
        assert_eq!(herding(&embeddings, 1).unwrap(), [1]);
        // After (1, 0): (1, 1) and (1, -1) tie at distance 1/4 for the mean of two, and 3 and -1
        // at 1; the lowest index wins the tie, then its mirror image restores the mean.
        assert_eq!(herding(&embeddings, 3).unwrap(), [1, 3, 4]);
        assert_eq!(herding(&embeddings, 5).unwrap().len(), 5, "every point once");
    }

    #[test]
    fn k_center_takes_the_farthest_point_each_time() {
        let embeddings = points(&[[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [5.0, 5.0], [0.0, 1.0]]);
        assert_eq!(k_center(&embeddings, 0, 1).unwrap(), [0]);
        // Farthest from (0, 0) is (10, 0); then (5, 5), 50 from both; then (1, 0) and (0, 1) tie.
        assert_eq!(k_center(&embeddings, 0, 4).unwrap(), [0, 2, 3, 1]);
    }
}
