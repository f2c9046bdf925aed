//! Drawing one DSA transform and its per-image parameters on the host.
//!
//! The draws come from the agent's seeded host RNG, so a seed gives the same augmentations on
//! every device.
//! The ranges are DSA's `ParamDiffAug` defaults (VICO-UoE/DatasetCondensation): flip with
//! probability 0.5, scale each axis by U(1/1.2, 1.2), rotate by U(-15°, 15°), translate by up to
//! round(0.125 * size) pixels, cut out a round(0.5 * size) square, brightness offset
//! U(-0.5, 0.5), saturation factor U(0, 2), contrast factor U(0.5, 1.5).

use crate::data::rng::Rng;

const FLIP_PROBABILITY: f64 = 0.5;
const SCALE_RATIO: f64 = 1.2;
const ROTATE_DEGREES: f64 = 15.0;
const CROP_PAD_RATIO: f64 = 0.125;
const CUTOUT_RATIO: f64 = 0.5;
const BRIGHTNESS: f64 = 1.0;
const SATURATION: f64 = 2.0;
const CONTRAST: f64 = 0.5;

/// One of DSA's six transforms ('color_crop_cutout_flip_scale_rotate'); DSA's single mode
/// applies one of them, chosen uniformly, to each batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Brightness, then saturation, then contrast. Parameters: offset, saturation factor,
    /// contrast factor.
    Color,
    /// Translation with zero fill. Parameters: row shift, column shift (whole pixels).
    Crop,
    /// A zeroed square. Parameters: its center row and column (whole pixels).
    Cutout,
    /// Horizontal flip. Parameter: 1 to flip, 0 to keep.
    Flip,
    /// Per-axis scaling, as the 2x3 affine matrix of `affine_grid` (row-major).
    Scale,
    /// Rotation about the center, as the 2x3 affine matrix of `affine_grid` (row-major).
    Rotate,
}

impl Transform {
    pub const ALL: [Transform; 6] =
        [Transform::Color, Transform::Crop, Transform::Cutout, Transform::Flip, Transform::Scale, Transform::Rotate];

    /// Parameters per image.
    pub fn columns(self) -> usize {
        match self {
            Transform::Color => 3,
            Transform::Crop | Transform::Cutout => 2,
            Transform::Flip => 1,
            Transform::Scale | Transform::Rotate => 6,
        }
    }

    /// One of the six, uniformly.
    pub fn choose(rng: &mut Rng) -> Self {
        Self::ALL[rng.below(Self::ALL.len() as u64) as usize]
    }

    /// Appends the parameters of `images` images of `height` x `width` to `out`, image after
    /// image.
    pub fn draw(self, rng: &mut Rng, images: usize, height: i64, width: i64, out: &mut Vec<f32>) {
        for _ in 0..images {
            self.draw_one(rng, height, width, out);
        }
    }

    fn draw_one(self, rng: &mut Rng, height: i64, width: i64, out: &mut Vec<f32>) {
        let mut push = |value: f64| out.push(value as f32);
        match self {
            Transform::Color => {
                push((rng.uniform() - 0.5) * BRIGHTNESS);
                push(rng.uniform() * SATURATION);
                push(rng.uniform() + CONTRAST);
            }
            Transform::Crop => {
                for size in [height, width] {
                    let shift = scaled(size, CROP_PAD_RATIO);
                    push(integer(rng, -shift, shift) as f64);
                }
            }
            Transform::Cutout => {
                for size in [height, width] {
                    // DSA draws the center from 0..=size (0..=size-1 for an odd cutout).
                    push(integer(rng, 0, size - cutout_size(size) % 2) as f64);
                }
            }
            Transform::Flip => push(if rng.uniform() < FLIP_PROBABILITY { 1.0 } else { 0.0 }),
            Transform::Scale => {
                let mut factor = || rng.uniform() * (SCALE_RATIO - 1.0 / SCALE_RATIO) + 1.0 / SCALE_RATIO;
                let (sx, sy) = (factor(), factor());
                [sx, 0.0, 0.0, 0.0, sy, 0.0].into_iter().for_each(push);
            }
            Transform::Rotate => {
                let angle = (rng.uniform() - 0.5) * 2.0 * ROTATE_DEGREES.to_radians();
                let (sin, cos) = angle.sin_cos();
                [cos, -sin, 0.0, sin, cos, 0.0].into_iter().for_each(push);
            }
        }
    }
}

/// The side of the cutout square along an axis of `size` pixels.
pub fn cutout_size(size: i64) -> i64 {
    scaled(size, CUTOUT_RATIO)
}

/// `int(size * ratio + 0.5)`, DSA's rounding of pixel counts.
fn scaled(size: i64, ratio: f64) -> i64 {
    (size as f64 * ratio + 0.5).floor() as i64
}

/// Uniform in `low..=high`.
fn integer(rng: &mut Rng, low: i64, high: i64) -> i64 {
    low + rng.below((high - low + 1) as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column_range(transform: Transform, column: usize) -> (f32, f32) {
        let mut params = Vec::new();
        transform.draw(&mut Rng::stream(1, &[]), 2000, 32, 32, &mut params);
        assert_eq!(params.len(), 2000 * transform.columns());
        let values = params.iter().skip(column).step_by(transform.columns());
        values.fold((f32::INFINITY, f32::NEG_INFINITY), |(low, high), &v| (low.min(v), high.max(v)))
    }

    #[test]
    fn parameters_cover_dsas_ranges() {
        let near = |(low, high): (f32, f32), (want_low, want_high): (f32, f32)| {
            (low - want_low).abs() < 0.01 && (high - want_high).abs() < 0.01
        };
        assert!(near(column_range(Transform::Color, 0), (-0.5, 0.5)));
        assert!(near(column_range(Transform::Color, 1), (0.0, 2.0)));
        assert!(near(column_range(Transform::Color, 2), (0.5, 1.5)));
        assert_eq!(column_range(Transform::Crop, 0), (-4.0, 4.0));
        assert_eq!(column_range(Transform::Crop, 1), (-4.0, 4.0));
        assert_eq!(column_range(Transform::Cutout, 0), (0.0, 32.0));
        assert_eq!(column_range(Transform::Flip, 0), (0.0, 1.0));
        assert!(near(column_range(Transform::Scale, 0), (1.0 / 1.2, 1.2)));
        assert!(near(column_range(Transform::Scale, 4), (1.0 / 1.2, 1.2)));
        assert_eq!(column_range(Transform::Scale, 1), (0.0, 0.0));
        let limit = 15f32.to_radians().sin();
        assert!(near(column_range(Transform::Rotate, 3), (-limit, limit)));
        assert_eq!(cutout_size(32), 16);
        assert_eq!(cutout_size(64), 32);
    }

    #[test]
    fn every_transform_is_chosen_and_draws_are_seeded() {
        let mut rng = Rng::stream(9, &[]);
        let chosen: Vec<Transform> = (0..300).map(|_| Transform::choose(&mut rng)).collect();
        assert!(Transform::ALL.iter().all(|t| chosen.contains(t)));
        let draw = |seed| {
            let mut params = Vec::new();
            Transform::Color.draw(&mut Rng::stream(seed, &[]), 8, 32, 32, &mut params);
            params
        };
        assert_eq!(draw(4), draw(4));
        assert_ne!(draw(4), draw(5));
    }
}
