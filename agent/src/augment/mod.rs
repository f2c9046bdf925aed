//! Training-time augmentation of distilled sets: DSA (Differentiable Siamese Augmentation),
//! as DC and DSA train their evaluation models on a distilled set.
//!
//! Each batch gets one of DSA's six transforms ('color_crop_cutout_flip_scale_rotate' in DSA's
//! single mode), chosen uniformly, with parameters drawn per image on the host ([`draw`]); the
//! transforms are tensor ops on the device ([`ops`]). [`Dsa::epoch`] draws every batch of an
//! epoch at once, so the parameters reach the device in one copy per epoch (like the epoch's
//! shuffle) rather than a host synchronization per batch. When DC/DSA train a model on a
//! distilled set they call `DiffAugment` without a seed, so parameters are not shared between
//! the images of a batch; the siamese sharing (one draw for a real and a synthetic batch) only
//! matters while distilling, which this project does not do.
//!
//! Space: DSA's reference code works on normalized images (its loaders normalize), while our
//! models take [0, 1] pixels and normalize inside. [`EpochAugmentation::apply`] therefore
//! normalizes with the dataset's mean and std, augments, and maps back to pixels. This keeps
//! DSA's semantics exactly: the brightness offset of up to ±0.5 is in units of each channel's
//! std (about ±0.1 in pixels), saturation and contrast scale about means of normalized values,
//! and the zero fill of crop, cutout, scale and rotate is the dataset's mean color. Augmenting
//! pixels directly would make the brightness offset about five times larger, fill with black
//! and change which color is "gray". Pixels are not clamped, as distilled pixels may leave
//! [0, 1].

pub mod draw;
pub mod ops;

use tch::{Device, TchError, Tensor};

use crate::data::Normalization;
use crate::data::rng::Rng;
use draw::Transform;

/// The first label of the host RNG streams augmentation draws from (`[STREAM, epoch]` in
/// training). It lies far from the small labels of [`crate::data::rng::streams`], so no other
/// purpose shares its draws.
pub const STREAM: u64 = 0x4453_4100;

/// DSA for one dataset's normalization on one device.
pub struct Dsa {
    mean: Tensor,
    std: Tensor,
}

impl Dsa {
    pub fn new(normalization: &Normalization, device: Device) -> Result<Self, TchError> {
        let (mean, std) = normalization.columns(device)?;
        Ok(Self { mean, std })
    }

    /// The augmentation of one epoch whose batches hold `batch_sizes` images of `height` x
    /// `width`: a transform per batch and parameters per image, drawn from `rng`.
    pub fn epoch(
        &self,
        rng: &mut Rng,
        batch_sizes: &[usize],
        height: i64,
        width: i64,
    ) -> Result<EpochAugmentation<'_>, TchError> {
        let mut batches = Vec::with_capacity(batch_sizes.len());
        let mut params = Vec::new();
        for &images in batch_sizes {
            let transform = Transform::choose(rng);
            batches.push(BatchDraw { transform, images: images as i64, offset: params.len() as i64 });
            transform.draw(rng, images, height, width, &mut params);
        }
        let params = Tensor::f_from_slice(&params)?.f_to(self.mean.device())?;
        Ok(EpochAugmentation { dsa: self, batches, params })
    }
}

/// Where one batch's transform and parameters sit in an epoch's draws.
#[derive(Clone, Copy, Debug)]
struct BatchDraw {
    transform: Transform,
    images: i64,
    /// Index of the batch's first parameter.
    offset: i64,
}

/// The drawn augmentation of one epoch's batches, parameters on the device.
pub struct EpochAugmentation<'a> {
    dsa: &'a Dsa,
    batches: Vec<BatchDraw>,
    params: Tensor,
}

impl EpochAugmentation<'_> {
    /// The augmented copy of batch `batch`, the pixels `[n, 3, h, w]` with `n` as drawn.
    pub fn apply(&self, batch: usize, pixels: &Tensor) -> Result<Tensor, TchError> {
        let images = pixels.size4()?.0;
        let draw = match self.batches.get(batch) {
            Some(draw) if draw.images == images => *draw,
            _ => return Err(TchError::Shape(format!("no batch {batch} of {images} images was drawn this epoch"))),
        };
        let columns = draw.transform.columns() as i64;
        let params = self.params.f_narrow(0, draw.offset, images * columns)?.f_reshape([images, columns])?;
        let (mean, std) = (&self.dsa.mean, &self.dsa.std);
        let normalized = pixels.f_sub(mean)?.f_div(std)?;
        ops::apply(draw.transform, &params, &normalized)?.f_mul(std)?.f_add(mean)
    }
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;

    const NORMALIZATION: Normalization = Normalization { mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] };

    #[test]
    fn augmentation_is_seeded_and_keeps_the_shape() {
        let dsa = Dsa::new(&NORMALIZATION, Device::Cpu).expect("dsa");
        let pixels = Tensor::rand([16, 3, 32, 32], (Kind::Float, Device::Cpu));
        let augment = |seed| {
            let epoch = dsa.epoch(&mut Rng::stream(seed, &[STREAM]), &[16, 16], 32, 32).expect("draws");
            (epoch.apply(0, &pixels).expect("applies"), epoch.apply(1, &pixels).expect("applies"))
        };
        let (first, second) = augment(1);
        assert_eq!(first.size(), [16, 3, 32, 32]);
        assert!(first.equal(&augment(1).0) && second.equal(&augment(1).1));
        assert!(!first.equal(&second));
        let changed = (1..20).filter(|&seed| !augment(seed).0.allclose(&pixels, 1e-5, 1e-5, false)).count();
        assert!(changed >= 15, "only {changed} of 19 seeds changed the batch");
    }

    #[test]
    fn batches_must_be_the_ones_drawn() {
        let dsa = Dsa::new(&NORMALIZATION, Device::Cpu).expect("dsa");
        let epoch = dsa.epoch(&mut Rng::stream(0, &[STREAM]), &[4, 2], 8, 8).expect("draws");
        let pixels = |n| Tensor::rand([n, 3, 8, 8], (Kind::Float, Device::Cpu));
        assert!(epoch.apply(1, &pixels(2)).is_ok());
        assert!(epoch.apply(1, &pixels(4)).is_err());
        assert!(epoch.apply(2, &pixels(2)).is_err());
    }

    #[test]
    fn the_fill_is_the_mean_color() {
        let dsa = Dsa::new(&NORMALIZATION, Device::Cpu).expect("dsa");
        let pixels = Tensor::ones([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let shift_everything_out = Tensor::from_slice(&[8f32, 0.0]).reshape([1, 2]);
        let normalized = (&pixels - &dsa.mean) / &dsa.std;
        let shifted = ops::apply(Transform::Crop, &shift_everything_out, &normalized).expect("applies");
        let filled = shifted * &dsa.std + &dsa.mean;
        assert!(filled.allclose(&dsa.mean.expand([1, 3, 8, 8], false), 1e-6, 1e-6, false));
    }
}
