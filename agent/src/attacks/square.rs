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
//! A query reads nothing from the host: the squares of all queries are drawn up front and kept on
//! the device, and the query's index is a counter on the device. So on CUDA a query is one
//! replay of a CUDA graph ([`ReplayedStep`]) instead of a few dozen tiny launches; on CUDA the
//! working set shrinks only to powers of two ([`super::shrink`]; fooled images fill it up, their
//! margin masks their updates), so that a few captures serve the whole attack. Neither changes a
//! result.
//!
//! Seeding: stripes, positions and signs come from the host generator under the attack's seed,
//! one stream per chunk.

use tch::{Kind, TchError, Tensor};

use super::shrink::{Compaction, Sizing};
use super::{Adversarial, Attack, Ball, Goal, linf_ball};
use crate::data::rng::Rng;
use crate::graph::ReplayedStep;
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

/// The squares of every query, drawn up front, on the device.
struct Draws {
    /// Bool `[n, h, 1]`: the rows query q's square covers.
    rows: Tensor,
    /// Bool `[n, 1, w]`: the columns it covers.
    columns: Tensor,
    /// `[n, c, 1, 1]`: `2 eps` times query q's random sign per channel.
    values: Tensor,
}

impl Draws {
    /// The perturbation `[c, h, w]` of the query whose 0-based index `query` (`[1]` int64) holds:
    /// its values on its square, zero elsewhere.
    fn square(&self, query: &Tensor) -> Result<Tensor, TchError> {
        let pick = |draws: &Tensor| draws.f_index_select(0, query)?.f_squeeze_dim(0);
        let window = pick(&self.rows)?.f_logical_and(&pick(&self.columns)?)?;
        pick(&self.values)?.f_where_scalarother(&window, 0.0)
    }
}

impl WorkingSet {
    /// The same tensors (sharing their storage).
    fn shallow(&self) -> Self {
        Self {
            rows: self.rows.shallow_clone(),
            clean: self.clean.shallow_clone(),
            labels: self.labels.shallow_clone(),
            best: self.best.shallow_clone(),
            margin: self.margin.shallow_clone(),
            first_success: self.first_success.shallow_clone(),
        }
    }

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

    /// Every query's square, in the order the host generator draws them: the position (top,
    /// then left), then one sign per channel.
    fn draws(&self, shape: [i64; 3], rng: &mut Rng, device: tch::Device) -> Result<Draws, TchError> {
        let [channels, height, width] = shape;
        let queries = self.queries as usize;
        let mut rows = vec![false; queries * height as usize];
        let mut columns = vec![false; queries * width as usize];
        let mut values = Vec::with_capacity(queries * channels as usize);
        for query in 0..self.queries {
            let side =
                ((self.fraction(query) * (height * width) as f64).sqrt().round() as i64).max(1).min(height.min(width));
            let offset =
                |extent: i64, rng: &mut Rng| if extent > side { rng.below((extent - side) as u64) as i64 } else { 0 };
            let (top, left) = (offset(height, rng), offset(width, rng));
            let (row, column) = (query as usize * height as usize, query as usize * width as usize);
            rows[row + top as usize..row + (top + side) as usize].fill(true);
            columns[column + left as usize..column + (left + side) as usize].fill(true);
            values.extend((0..channels).map(|_| (2.0 * self.eps * random_sign(rng)) as f32));
        }
        let queries = i64::from(self.queries);
        let on_device = |values: Tensor, shape: &[i64]| values.f_reshape(shape)?.f_to_device(device);
        Ok(Draws {
            rows: on_device(Tensor::f_from_slice(&rows)?, &[queries, height, 1])?,
            columns: on_device(Tensor::f_from_slice(&columns)?, &[queries, 1, width])?,
            values: on_device(Tensor::f_from_slice(&values)?, &[queries, channels, 1, 1])?,
        })
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

    /// One query on every image of `set`, whose 0-based index `query` (`[1]` int64 on the
    /// device) holds: updates the best points, margins and success steps of `set` and the
    /// counter `query` in place, reading nothing from the host.
    fn query(
        &self,
        model: &ConvNet,
        set: &WorkingSet,
        ball: &Ball,
        draws: &Draws,
        query: &Tensor,
    ) -> Result<(), TchError> {
        let candidate =
            set.best.f_add(&draws.square(query)?)?.f_clamp_tensor(Some(&ball.0), Some(&ball.1))?.f_clamp(0.0, 1.0)?;
        let margin = Self::margin(model, &candidate, &set.labels)?;
        let improved = margin.f_lt_tensor(&set.margin)?.f_logical_and(&set.margin.f_gt(0.0)?)?;
        let newly = improved.f_logical_and(&margin.f_le(0.0)?)?;
        // Each `where` writes into the tensor whose old values it keeps (element by element),
        // and returns that tensor.
        let _first_success = query.f_add_scalar(2)?.f_where_self_out(&set.first_success, &newly, &set.first_success)?;
        let _best = candidate.f_where_self_out(&set.best, &improved.f_reshape([-1, 1, 1, 1])?, &set.best)?;
        let _margin = margin.f_where_self_out(&set.margin, &improved, &set.margin)?;
        let _next_query = query.f_add_scalar_out(query, 1)?;
        Ok(())
    }

    /// The queries on the images at `rows` of `images` (those correctly classified): every one
    /// of them with its best point and success step, in some order; the working set shrinks per
    /// `sizing`.
    fn search(
        &self,
        model: &ConvNet,
        images: &Tensor,
        labels: &Tensor,
        rows: Tensor,
        sizing: Sizing,
    ) -> Result<WorkingSet, TchError> {
        let (_, channels, height, width) = images.size4()?;
        let device = images.device();
        let mut rng = Rng::stream(self.seed, &[STREAM]);
        let clean = images.f_index_select(0, &rows)?;
        let labels = labels.f_index_select(0, &rows)?;
        let best = self.stripes(&clean, &mut rng)?;
        let draws = self.draws([channels, height, width], &mut rng, device)?;
        let margin = Self::margin(model, &best, &labels)?;
        let first_success = Tensor::f_where_scalar(&margin.f_le(0.0)?, 1, -1)?;
        let mut set = WorkingSet { rows, clean, labels, best, margin, first_success };
        let mut done = set.select(&Tensor::f_zeros([0], (Kind::Int64, device))?)?;
        let counter = Tensor::f_zeros([1], (Kind::Int64, device))?;
        let mut step: Option<ReplayedStep> = None;
        for query in 0..self.queries {
            if query % COMPACT_EVERY == 0 {
                // The host reads how many are still robust (see the module doc); fooled images
                // that stay as padding are masked by their margin.
                match sizing.compact(&set.margin.f_gt(0.0)?)? {
                    Compaction::AllDone => break,
                    Compaction::Unchanged => {}
                    Compaction::Shrink(shrink) => {
                        done = concat(&done, &set.select(&shrink.leave)?)?;
                        set = set.select(&shrink.keep)?;
                        step = None;
                    }
                }
            }
            match &mut step {
                Some(step) => step.run()?,
                None => {
                    let (working, draws, counter_now) = (set.shallow(), &draws, counter.shallow_clone());
                    let ball = linf_ball(&set.clean, self.eps)?;
                    let query = move || self.query(model, &working, &ball, draws, &counter_now);
                    let state = [&set.best, &set.margin, &set.first_success, &counter];
                    step = Some(ReplayedStep::first("Square's queries", query, &state)?);
                }
            }
        }
        concat(&done, &set)
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
        self.perturb_sized(model, images, goal, Sizing::for_device(images.device()))
    }
}

impl Square {
    /// [`Attack::perturb`] with the working set shrinking per `sizing`.
    fn perturb_sized(
        &self,
        model: &ConvNet,
        images: &Tensor,
        goal: &Goal,
        sizing: Sizing,
    ) -> Result<Adversarial, TchError> {
        if goal.is_targeted() {
            return Err(TchError::Torch("Square runs untargeted only".to_owned()));
        }
        let images = images.f_detach()?;
        let labels = goal.classes();
        let clean_logits = tch::no_grad(|| model.forward(&images, false))?;
        let robust = clean_logits.f_argmax(1, false)?.f_eq_tensor(labels)?;
        let mut first_success = Tensor::f_where_scalar(&robust, -1, 0)?;
        let mut found = images.shallow_clone();

        // Choosing the robust images needs their count on the host (see the module doc).
        let rows = robust.f_nonzero()?.f_squeeze_dim(1)?;
        if rows.numel() > 0 {
            let all = self.search(model, &images, labels, rows, sizing)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn square_attack() -> Square {
        Square::new(1.0 / 255.0, 300, 0.8, 11).expect("valid")
    }

    /// The first index and the length of the one run of `true` in `mask`.
    fn one_run(mask: &[bool]) -> (usize, usize) {
        let start = mask.iter().position(|covered| *covered).expect("covers something");
        let length = mask[start..].iter().take_while(|covered| **covered).count();
        assert!(mask[start + length..].iter().all(|covered| !covered), "{mask:?}: one run");
        (start, length)
    }

    #[test]
    fn a_query_square_is_its_drawn_values_on_its_drawn_window() {
        let attack = square_attack();
        let draws = attack.draws([3, 8, 6], &mut Rng::stream(5, &[STREAM]), Device::Cpu).expect("draws");
        for query in [0i64, 1, 37, 299] {
            let square = draws.square(&Tensor::from_slice(&[query])).expect("square");
            let flat = |draws: &Tensor| draws.get(query).flatten(0, -1);
            let (top, side) = one_run(&Vec::<bool>::try_from(flat(&draws.rows)).expect("rows"));
            let (left, width) = one_run(&Vec::<bool>::try_from(flat(&draws.columns)).expect("columns"));
            assert_eq!(side, width, "query {query}: a square");
            let values = Vec::<f32>::try_from(flat(&draws.values)).expect("values");
            let mut expected = vec![0f32; 3 * 8 * 6];
            for (channel, value) in values.iter().enumerate() {
                for row in top..top + side {
                    for column in left..left + side {
                        expected[channel * 48 + row * 6 + column] = *value;
                    }
                }
            }
            assert_eq!(Vec::<f32>::try_from(square.flatten(0, -1)).expect("square"), expected, "query {query}");
        }
    }

    #[test]
    fn keeping_fooled_images_in_the_working_set_changes_no_result() {
        let (model, images, labels) = crate::attacks::testing::random_model_and_images(40);
        let goal = Goal::untargeted(&labels);
        let attack = square_attack();
        let exact = attack.perturb_sized(&model, &images, &goal, Sizing::Exact).expect("exact");
        let padded = attack.perturb_sized(&model, &images, &goal, Sizing::PowersOfTwo).expect("padded");
        crate::attacks::testing::assert_same_and_some_fooled(&exact, &padded, 40);
    }
}
