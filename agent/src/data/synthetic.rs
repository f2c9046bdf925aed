//! The built-in `synthetic` dataset: 10 classes of 32x32 RGB images in [0, 1], generated from a
//! fixed seed with the host RNG, so it is identical on every machine and needs no files.
//!
//! Each class has a prototype: an oriented sinusoidal grating (class `c` at `c * 18` degrees)
//! tinted with a class colour, plus a colour blob anchored at a class-specific position. Every
//! sample jitters the orientation, frequency, phase, contrast, background colour, blob position,
//! size and strength, and adds pixel noise. Neighbouring classes overlap, so a small ConvNet
//! trained on 10 images per class reaches roughly 70% test accuracy, not 100%, and an 8/255
//! attack has plenty to do.
//!
//! Samples are interleaved by class (sample `i` has label `i % 10`), so every prefix of a split
//! is class-balanced.

use std::f64::consts::{PI, TAU};

use super::rng::Rng;
use super::{HostImages, Normalization, Part};

/// Number of classes.
pub const CLASSES: usize = 10;
/// Height and width of every image.
pub const IMAGE_SIZE: usize = 32;
/// Training images per class.
pub const TRAIN_PER_CLASS: usize = 500;
/// Test images per class.
pub const TEST_PER_CLASS: usize = 100;
/// Per-channel mean and standard deviation of the training split (see the test that checks them).
pub const NORMALIZATION: Normalization =
    Normalization { mean: [0.4506, 0.4493, 0.4530], std: [0.1912, 0.1904, 0.1910] };

const SEED: u64 = 0x5EED_BEA2D;
const PIXELS: usize = IMAGE_SIZE * IMAGE_SIZE;

/// Generate one split.
pub fn generate(part: Part) -> HostImages {
    let per_class = match part {
        Part::Train => TRAIN_PER_CLASS,
        Part::Test => TEST_PER_CLASS,
    };
    let count = per_class * CLASSES;
    let mut pixels = vec![0.0f32; count * 3 * PIXELS];
    let mut labels = Vec::with_capacity(count);
    for (index, image) in pixels.chunks_exact_mut(3 * PIXELS).enumerate() {
        let class = index % CLASSES;
        draw(class, &mut Rng::stream(SEED, &[part as u64, index as u64]), image);
        labels.push(class as i64);
    }
    HostImages { pixels, labels }
}

/// Draw one image of `class` into `out` (`3 * 32 * 32` values, channel-major).
fn draw(class: usize, rng: &mut Rng, out: &mut [f32]) {
    let position = class as f64 / CLASSES as f64;
    let theta = PI * position + 0.22 * rng.normal();
    let frequency = (2.5 + 1.5 * rng.uniform()) / IMAGE_SIZE as f64;
    let phase = TAU * rng.uniform();
    let contrast = 0.07 + 0.15 * rng.uniform();
    let background: [f64; 3] = std::array::from_fn(|_| 0.25 + 0.4 * rng.uniform());
    let anchor = 3.0 * TAU * position;
    let centre_x = 16.0 + 8.0 * anchor.cos() + 4.5 * rng.normal();
    let centre_y = 16.0 + 8.0 * anchor.sin() + 4.5 * rng.normal();
    let sigma = 3.0 + 2.0 * rng.uniform();
    let strength = 0.07 + 0.15 * rng.uniform();
    let colour: [f64; 3] = std::array::from_fn(|ch| 0.5 + 0.5 * (TAU * (position + ch as f64 / 3.0)).cos());

    let (sin, cos) = theta.sin_cos();
    let mut grating = [0.0f64; PIXELS];
    let mut blob = [0.0f64; PIXELS];
    for (pixel, (g, b)) in grating.iter_mut().zip(blob.iter_mut()).enumerate() {
        let x = (pixel % IMAGE_SIZE) as f64;
        let y = (pixel / IMAGE_SIZE) as f64;
        *g = (TAU * frequency * (x * cos + y * sin) + phase).cos();
        let distance2 = (x - centre_x).powi(2) + (y - centre_y).powi(2);
        *b = (-distance2 / (2.0 * sigma * sigma)).exp();
    }
    for (ch, plane) in out.chunks_exact_mut(PIXELS).enumerate() {
        let tint = contrast * (0.4 + 0.6 * colour[ch]);
        let blob_tint = strength * (2.0 * colour[ch] - 1.0);
        for ((value, g), b) in plane.iter_mut().zip(&grating).zip(&blob) {
            let noisy = background[ch] + tint * g + blob_tint * b + 0.13 * rng.normal();
            *value = noisy.clamp(0.0, 1.0) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_deterministic_balanced_and_in_range() {
        let test = generate(Part::Test);
        assert_eq!(test.labels.len(), CLASSES * TEST_PER_CLASS);
        assert_eq!(test.pixels.len(), test.labels.len() * 3 * PIXELS);
        assert!(test.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
        assert_eq!(test.labels[..CLASSES], (0..CLASSES as i64).collect::<Vec<_>>()[..]);
        let again = generate(Part::Test);
        assert_eq!(test.pixels, again.pixels);
        let train = generate(Part::Train);
        assert_ne!(train.pixels[..3 * PIXELS], test.pixels[..3 * PIXELS]);
    }

    #[test]
    fn normalization_constants_match_the_training_split() {
        let train = generate(Part::Train);
        let images = train.labels.len() as f64;
        let mut failures = Vec::new();
        for ch in 0..3 {
            let values = train
                .pixels
                .chunks_exact(3 * PIXELS)
                .flat_map(|image| &image[ch * PIXELS..(ch + 1) * PIXELS])
                .map(|&v| f64::from(v));
            let (sum, sum2) = values.fold((0.0, 0.0), |(s, s2), v| (s + v, s2 + v * v));
            let count = images * PIXELS as f64;
            let mean = sum / count;
            let std = (sum2 / count - mean * mean).sqrt();
            let expected = (f64::from(NORMALIZATION.mean[ch]), f64::from(NORMALIZATION.std[ch]));
            if (mean - expected.0).abs() > 5e-4 || (std - expected.1).abs() > 5e-4 {
                failures.push(format!("channel {ch}: mean {mean:.4} std {std:.4}, constants say {expected:?}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
