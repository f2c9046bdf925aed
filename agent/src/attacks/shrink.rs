//! How an iterative attack's working set shrinks as its samples are done.
//!
//! Every few iterations an attack reads on the host how many samples of its working set are still
//! open (not yet fooled) and drops the others. On a CPU the set keeps exactly the open ones. On
//! CUDA it shrinks only to powers of two, the open samples first and done ones after them as
//! padding: each size is one CUDA graph capture ([`crate::graph::ReplayedStep`]), and a few sizes
//! serve a whole attack. The attack masks the updates of the padding rows ([`Shrink::live`]), so
//! that a done sample's result is the one it had when it left, as on a CPU, and the padding
//! changes no result.

use tch::{Device, Kind, TchError, Tensor};

/// How many samples the working set keeps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Sizing {
    /// The open ones.
    Exact,
    /// The least power of two that holds the open ones.
    PowersOfTwo,
}

/// What a compaction finds.
pub(super) enum Compaction {
    /// No sample is open: the attack on this set is over.
    AllDone,
    /// The set keeps its size.
    Unchanged,
    /// The set shrinks.
    Shrink(Shrink),
}

/// One shrink of a working set: which of its rows stay, in which order, and which leave.
pub(super) struct Shrink {
    /// `[k]` int64: the positions that stay, the open ones first.
    pub keep: Tensor,
    /// `[l]` int64: the positions of the done samples that leave.
    pub leave: Tensor,
    /// How many of `keep` are open.
    pub open: i64,
}

impl Sizing {
    /// Powers of two on CUDA (graphs or not, so that turning them off changes no batch), exact
    /// elsewhere.
    pub fn for_device(device: Device) -> Self {
        if device.is_cuda() { Sizing::PowersOfTwo } else { Sizing::Exact }
    }

    fn rows_for(self, open: i64) -> i64 {
        match self {
            Sizing::Exact => open,
            Sizing::PowersOfTwo => (open.max(1) as u64).next_power_of_two() as i64,
        }
    }

    /// The compaction of a working set whose open samples `open` (bool `[m]`) marks, reading
    /// their count on the host.
    pub fn compact(self, open: &Tensor) -> Result<Compaction, TchError> {
        let open_rows = open.f_nonzero()?.f_squeeze_dim(1)?;
        let open_count = open_rows.size1()?;
        if open_count == 0 {
            return Ok(Compaction::AllDone);
        }
        let size = self.rows_for(open_count);
        if size >= open.size1()? {
            return Ok(Compaction::Unchanged);
        }
        let done = open.f_logical_not()?.f_nonzero()?.f_squeeze_dim(1)?;
        let padding = size - open_count;
        Ok(Compaction::Shrink(Shrink {
            keep: Tensor::f_cat(&[open_rows, done.f_narrow(0, 0, padding)?], 0)?,
            leave: done.f_narrow(0, padding, done.size1()? - padding)?,
            open: open_count,
        }))
    }
}

impl Shrink {
    /// Bool `[k]`: which kept rows are open (the others are padding whose updates the attack
    /// masks); `None` when all are.
    pub fn live(&self) -> Result<Option<Tensor>, TchError> {
        let kept = self.keep.size1()?;
        if kept == self.open {
            return Ok(None);
        }
        Tensor::f_arange(kept, (Kind::Int64, self.keep.device()))?.f_lt(self.open).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(tensor: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(tensor).expect("int64 rows")
    }

    fn shrink(sizing: Sizing, open: &[bool]) -> Option<Shrink> {
        match sizing.compact(&Tensor::from_slice(open)).expect("compaction") {
            Compaction::Shrink(shrink) => Some(shrink),
            Compaction::Unchanged => None,
            Compaction::AllDone => panic!("{open:?}: some are open"),
        }
    }

    #[test]
    fn exact_sets_keep_the_open_samples_and_powers_of_two_pad_with_done_ones() {
        let open = [true, false, true, false, false, true, false, false, false, false];
        let exact = shrink(Sizing::Exact, &open).expect("shrinks");
        assert_eq!((rows(&exact.keep), rows(&exact.leave), exact.open), (vec![0, 2, 5], vec![1, 3, 4, 6, 7, 8, 9], 3));
        assert!(exact.live().expect("live").is_none());
        let padded = shrink(Sizing::PowersOfTwo, &open).expect("shrinks");
        assert_eq!(
            (rows(&padded.keep), rows(&padded.leave), padded.open),
            (vec![0, 2, 5, 1], vec![3, 4, 6, 7, 8, 9], 3)
        );
        let live = Vec::<bool>::try_from(padded.live().expect("live").expect("padding")).expect("bools");
        assert_eq!(live, [true, true, true, false]);
    }

    #[test]
    fn a_set_that_cannot_get_smaller_stays_and_one_without_open_samples_is_done() {
        assert!(shrink(Sizing::PowersOfTwo, &[true, true, true, false]).is_none());
        assert!(shrink(Sizing::Exact, &[true, true]).is_none());
        for sizing in [Sizing::Exact, Sizing::PowersOfTwo] {
            let compaction = sizing.compact(&Tensor::from_slice(&[false, false, false])).expect("compaction");
            assert!(matches!(compaction, Compaction::AllDone));
        }
    }
}
