//! The Square attack under L∞ (Andriushchenko et al. 2020), as fra31/auto-attack's
//! `SquareAttack` runs it in AutoAttack's 'standard' version (margin loss, one restart);
//! untargeted only and gradient-free.
//!
//! Following the reference:
//!
//! - Start: vertical stripes, `x + eps * s` with one random sign `s` per channel and column,
//!   clamped to [0, 1] (query 1).
//! - Query `q + 1` (q = 1 .. n_queries): a square of side `round(sqrt(p * h * w))` (at least 1,
//!   at most the image side) at one random position, with one random sign per channel, shared by
//!   every image of the chunk; `p` follows the reference's piecewise schedule from `p_init`
//!   (rescaled to the query budget). Each image still correctly classified adds `2 eps * sign` on
//!   the square to its best point, projects onto the ball and [0, 1], and keeps the candidate if
//!   its margin `z_y - max_{k != y} z_k` went down.
//! - The result is the best point of a misclassified image and the clean image otherwise.
//!
//! A sample's success step is the query after which its margin first dropped to 0 or below; the
//! starting stripes are query 1, so [`Attack::max_steps`] is `n_queries + 1`.
//!
//! Compaction: images already fooled keep their point (their updates are masked on the device);
//! every [`COMPACT_EVERY`] queries the number still robust is read on the host (the only
//! synchronization in the loop) to drop the fooled ones from the working set, and to stop when
//! none is left. The random draws are shared by the chunk, so compaction does not change them.
//!
//! Seeding: stripes, positions and signs come from the host generator under the attack's seed,
//! one stream per chunk.

use tch::{Kind, TchError, Tensor};

use super::{Adversarial, Attack, Goal};
use crate::data::rng::Rng;
use crate::model::ConvNet;

/// The host random stream label of Square's draws ("SQRE").
const STREAM: u64 = 0x5351_5245;
/// Queries between two compactions of the working set.
const COMPACT_EVERY: u32 = 25;

/// The Square attack under L∞.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Square {
    eps: f64,
    queries: u32,
    p_init: f64,
    seed: u64,
}

/// The images of a chunk still being attacked.
struct WorkingSet {
    /// `[m]` int64: their rows in the chunk.
    rows: Tensor,
    clean: Tensor,
    labels: Tensor,
    /// `[m, 3, h, w]`: their best points.
    best: Tensor,
    /// `[m]`: the margins of their best points.
    margin: Tensor,
    /// `[m]` int64: the query after which the margin first dropped to 0 or below, -1 if not.
    first_success: Tensor,
}

impl WorkingSet {
    /// The subset at the positions `keep` (`[m']` int64).
    fn select(&self, keep: &Tensor) -> Result<Self, TchError> {
        Ok(Self {
            rows: self.rows.f_index_select(0, keep)?,
            clean: self.clean.f_index_select(0, keep)?,
            labels: self.labels.f_index_select(0, keep)?,
            best: self.best.f_index_select(0, keep)?,
            margin: self.margin.f_index_select(0, keep)?,
            first_success: self.first_success.f_index_select(0, keep)?,
        })
    }
}

impl Square {
    /// Square with budget `eps` in [0, 1], at most `queries` queries after the start, initial
    /// square fraction `p_init` in (0, 1], and the host seed of its draws.
    pub fn new(eps: f64, queries: u32, p_init: f64, seed: u64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&eps) {
            return Err(format!("eps must be in [0, 1] (pixel scale), got {eps}"));
        }
        if queries == 0 {
            return Err("n_queries must be at least 1".to_owned());
        }
        if !(p_init > 0.0 && p_init <= 1.0) {
            return Err(format!("p_init must be in (0, 1], got {p_init}"));
        }
        Ok(Self { eps, queries, p_init, seed })
    }

    /// The reference's square fraction at 0-based query `query`.
    fn fraction(&self, query: u32) -> f64 {
        let it = (f64::from(query) / f64::from(self.queries) * 10000.0) as u32;
        let divisor = match it {
            0..=10 => 1.0,
            11..=50 => 2.0,
            51..=200 => 4.0,
            201..=500 => 8.0,
            501..=1000 => 16.0,
            1001..=2000 => 32.0,
            2001..=4000 => 64.0,
            4001..=6000 => 128.0,
            6001..=8000 => 256.0,
            _ => 512.0,
        };
        self.p_init / divisor
    }

    /// The perturbation of query `query` (`[c, h, w]` on `device`): `2 eps` times one random
    /// sign per channel on one random square, zero elsewhere.
    fn square(&self, query: u32, shape: [i64; 3], rng: &mut Rng, device: tch::Device) -> Result<Tensor, TchError> {
        let [channels, height, width] = shape;
        let side =
            ((self.fraction(query) * (height * width) as f64).sqrt().round() as i64).max(1).min(height.min(width));
        let offset =
            |extent: i64, rng: &mut Rng| if extent > side { rng.below((extent - side) as u64) as i64 } else { 0 };
        let (top, left) = (offset(height, rng), offset(width, rng));
        let mut values = vec![0f32; (channels * height * width) as usize];
        for channel in 0..channels {
            let value = (2.0 * self.eps * random_sign(rng)) as f32;
            for row in top..top + side {
                let start = ((channel * height + row) * width + left) as usize;
                values[start..start + side as usize].fill(value);
            }
        }
        Tensor::f_from_slice(&values)?.f_reshape([channels, height, width])?.f_to_device(device)
    }

    /// The starting stripes: one random sign per image, channel and column.
    fn stripes(&self, images: &Tensor, rng: &mut Rng) -> Result<Tensor, TchError> {
        let (count, channels, _, width) = images.size4()?;
        let signs: Vec<f32> = (0..count * channels * width).map(|_| (self.eps * random_sign(rng)) as f32).collect();
        let delta =
            Tensor::f_from_slice(&signs)?.f_reshape([count, channels, 1, width])?.f_to_device(images.device())?;
        images.f_add(&delta)?.f_clamp(0.0, 1.0)
    }

    /// `z_y - max_{k != y} z_k` of `images` per sample.
    fn margin(model: &ConvNet, images: &Tensor, labels: &Tensor) -> Result<Tensor, TchError> {
        let logits = tch::no_grad(|| model.forward(images, false))?;
        let labels = labels.f_unsqueeze(1)?;
        let own = logits.f_gather(1, &labels, false)?.f_squeeze_dim(1)?;
        let others = logits.f_scatter_value(1, &labels, f64::NEG_INFINITY)?.f_amax([1], false)?;
        own.f_sub(&others)
    }
}

impl Attack for Square {
    fn max_steps(&self) -> u32 {
        self.queries.saturating_add(1)
    }

    fn supports_targeted(&self) -> bool {
        false
    }

    fn perturb(&self, model: &ConvNet, images: &Tensor, goal: &Goal) -> Result<Adversarial, TchError> {
        if goal.is_targeted() {
            return Err(TchError::Torch("Square runs untargeted only".to_owned()));
        }
        let images = images.f_detach()?;
        let (_, channels, height, width) = images.size4()?;
        let device = images.device();
        let labels = goal.classes();
        let clean_logits = tch::no_grad(|| model.forward(&images, false))?;
        let robust = clean_logits.f_argmax(1, false)?.f_eq_tensor(labels)?;
        let mut first_success = Tensor::f_where_scalar(&robust, -1, 0)?;
        let mut found = images.shallow_clone();
        let mut rng = Rng::stream(self.seed, &[STREAM]);

        // Choosing the robust images needs their count on the host (see the module doc).
        let rows = robust.f_nonzero()?.f_squeeze_dim(1)?;
        if rows.numel() > 0 {
            let clean = images.f_index_select(0, &rows)?;
            let set_labels = labels.f_index_select(0, &rows)?;
            let best = self.stripes(&clean, &mut rng)?;
            let margin = Self::margin(model, &best, &set_labels)?;
            let first = Tensor::f_where_scalar(&margin.f_le(0.0)?, 1, -1)?;
            let mut set = WorkingSet { rows, clean, labels: set_labels, best, margin, first_success: first };
            let mut done = WorkingSet::select(&set, &Tensor::f_zeros([0], (Kind::Int64, device))?)?;
            for query in 0..self.queries {
                if query % COMPACT_EVERY == 0 {
                    let active = set.margin.f_gt(0.0)?;
                    let keep = active.f_nonzero()?.f_squeeze_dim(1)?;
                    if keep.numel() < set.rows.numel() {
                        let fooled = active.f_logical_not()?.f_nonzero()?.f_squeeze_dim(1)?;
                        done = concat(&done, &set.select(&fooled)?)?;
                        set = set.select(&keep)?;
                    }
                    if set.rows.numel() == 0 {
                        break;
                    }
                }
                let square = self.square(query, [channels, height, width], &mut rng, device)?;
                let candidate = set
                    .best
                    .f_add(&square)?
                    .f_clamp_tensor(Some(&set.clean.f_sub_scalar(self.eps)?), Some(&set.clean.f_add_scalar(self.eps)?))?
                    .f_clamp(0.0, 1.0)?;
                let margin = Self::margin(model, &candidate, &set.labels)?;
                let improved = margin.f_lt_tensor(&set.margin)?.f_logical_and(&set.margin.f_gt(0.0)?)?;
                let newly = improved.f_logical_and(&margin.f_le(0.0)?)?;
                set.first_success = set.first_success.f_masked_fill(&newly, i64::from(query) + 2)?;
                set.best = candidate.f_where_self(&improved.f_reshape([-1, 1, 1, 1])?, &set.best)?;
                set.margin = margin.f_where_self(&improved, &set.margin)?;
            }
            let all = concat(&done, &set)?;
            found = found.f_index_copy(0, &all.rows, &all.best)?;
            first_success = first_success.f_index_copy(0, &all.rows, &all.first_success)?;
        }
        // As the reference: keep the found point only where the model now misclassifies it.
        let logits = tch::no_grad(|| model.forward(&found, false))?;
        let fooled = logits.f_argmax(1, false)?.f_ne_tensor(labels)?;
        let adversarial = found.f_where_self(&fooled.f_reshape([-1, 1, 1, 1])?, &images)?;
        let logits = logits.f_where_self(&fooled.f_unsqueeze(1)?, &clean_logits)?;
        let first_success = first_success.f_where_self(&fooled, &Tensor::f_full_like(&first_success, -1)?)?;
        Ok(Adversarial { images: adversarial, logits, first_success })
    }
}

/// -1 or 1 with equal probability.
fn random_sign(rng: &mut Rng) -> f64 {
    if rng.uniform() < 0.5 { -1.0 } else { 1.0 }
}

/// The union of two disjoint working sets.
fn concat(a: &WorkingSet, b: &WorkingSet) -> Result<WorkingSet, TchError> {
    let cat = |x: &Tensor, y: &Tensor| Tensor::f_cat(&[x, y], 0);
    Ok(WorkingSet {
        rows: cat(&a.rows, &b.rows)?,
        clean: cat(&a.clean, &b.clean)?,
        labels: cat(&a.labels, &b.labels)?,
        best: cat(&a.best, &b.best)?,
        margin: cat(&a.margin, &b.margin)?,
        first_success: cat(&a.first_success, &b.first_success)?,
    })
}
