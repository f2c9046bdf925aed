//! The host-side random number generator (SplitMix64) behind everything the agent draws outside
//! torch: synthetic images, random subsets, training shuffles and random target classes.
//!
//! It is plain Rust and independent of torch's generators, so a seed gives the same draws on every
//! device and every libtorch build. Independent streams come from [`Rng::stream`], which mixes a
//! seed with a list of labels (for example `[SHUFFLE, epoch]`).

use std::f64::consts::TAU;

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The first label of every stream the agent draws from, one per purpose, so that no two
/// purposes ever share draws under the same seed.
pub mod streams {
    /// Random-subset distilled sets: `[RANDOM_SUBSET, class]`.
    pub const RANDOM_SUBSET: u64 = 1;
    /// Training shuffles: `[SHUFFLE, epoch]`.
    pub const SHUFFLE: u64 = 2;
    /// `random` target classes: `[TARGETS]`.
    pub const TARGETS: u64 = 3;
    /// Model initialization: `[INIT]`.
    pub const INIT: u64 = 4;
    /// Distillation: `[DISTILL, purpose, ...]` (see `crate::distill`).
    pub const DISTILL: u64 = 5;
}

/// A SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for one labelled stream under `seed`; different labels give independent
    /// streams.
    pub fn stream(seed: u64, labels: &[u64]) -> Self {
        let state = labels.iter().fold(mix(seed), |state, &label| mix(state ^ mix(label.wrapping_add(GOLDEN_GAMMA))));
        Self { state }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// Uniform in [0, 1), with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let radius = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        radius * (TAU * self.uniform()).cos()
    }

    /// Uniform in `0..bound`; `bound` must be positive (multiply-shift, bias below 2^-50 for the
    /// bounds used here).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The SplitMix64 output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |labels: &[u64]| {
            let mut rng = Rng::stream(7, labels);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(&[1, 2]), draw(&[1, 2]));
        assert_ne!(draw(&[1, 2]), draw(&[2, 1]));
        assert_ne!(draw(&[1]), draw(&[1, 0]));
    }

    #[test]
    fn draws_stay_in_range_and_shuffles_permute() {
        let mut rng = Rng::stream(3, &[]);
        for _ in 0..1000 {
            assert!(rng.below(9) < 9);
            let u = rng.uniform();
            assert!((0.0..1.0).contains(&u));
            assert!(rng.normal().is_finite());
        }
        let mut items: Vec<u32> = (0..50).collect();
        rng.shuffle(&mut items);
        assert_ne!(items, (0..50).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..50).collect::<Vec<_>>());
    }
}
