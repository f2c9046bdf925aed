//! A loop's step replayed from a CUDA graph, trusted only once it matched the step run eagerly.
//!
//! The step reads and updates a fixed set of state tensors in place (no host reads, no shapes
//! that change), so that one capture serves every later run. The first run goes:
//!
//! 1. the step eagerly from the state (which also warms up what a capture cannot do: cuDNN
//!    handles, the allocator), keeping the result;
//! 2. the state back as it was, the step captured, the graph replayed once;
//! 3. the replay's state compared with the eager one, bit for bit.
//!
//! Only a graph whose replay matched is kept; otherwise (or when the capture fails) the state is
//! the eager result, every later run is eager too, and so is every later step of the same kind
//! (a failure that comes from what the step does would only repeat): the agent's log says which
//! kinds replay graphs and why one does not, once each. Off CUDA, or with `BEARD_CUDA_GRAPHS=0`,
//! the step simply runs each time.

use std::sync::Mutex;

use tch::{Kind, TchError, Tensor};

use super::{CudaGraph, owned_copy, replays_on};

/// The work of one step.
type Step<'a> = Box<dyn FnMut() -> Result<(), TchError> + 'a>;

/// A step over state tensors it updates in place, run eagerly or replayed from a graph.
pub struct ReplayedStep<'a> {
    step: Step<'a>,
    graph: Option<CudaGraph>,
}

impl<'a> ReplayedStep<'a> {
    /// Runs `step` (of the kind `what`, e.g. "Square's queries") once, which updates `state` in
    /// place, and prepares the later runs: on a CUDA device (with graphs enabled, and no step of
    /// this kind failed before) as the replay of a verified capture, otherwise eagerly.
    pub fn first(
        what: &'static str,
        step: impl FnMut() -> Result<(), TchError> + 'a,
        state: &[&Tensor],
    ) -> Result<Self, TchError> {
        let mut step: Step<'a> = Box::new(step);
        let Some(device) = state.first().map(|tensor| tensor.device()) else {
            return Err(TchError::Torch("a replayed step needs state tensors".to_owned()));
        };
        if !replays_on(device) || verdict(what) == Some(false) {
            step()?;
            return Ok(Self { step, graph: None });
        }
        let before = copies(state)?;
        step()?;
        let eager = copies(state)?;
        restore(state, &before)?;
        let graph = match CudaGraph::capture(device, &mut step) {
            Ok(graph) => graph,
            Err(error) => {
                restore(state, &eager)?;
                record(what, Err(&format!("the capture failed: {error}")));
                return Ok(Self { step, graph: None });
            }
        };
        graph.replay()?;
        if !same_bits(state, &eager)? {
            restore(state, &eager)?;
            record(what, Err("a replay differed from the step run eagerly"));
            return Ok(Self { step, graph: None });
        }
        record(what, Ok(()));
        Ok(Self { step, graph: Some(graph) })
    }

    /// Runs the step once more.
    pub fn run(&mut self) -> Result<(), TchError> {
        match &self.graph {
            Some(graph) => graph.replay(),
            None => (self.step)(),
        }
    }

    /// Whether later runs replay a graph.
    #[cfg(test)]
    fn is_replayed(&self) -> bool {
        self.graph.is_some()
    }
}

fn copies(state: &[&Tensor]) -> Result<Vec<Tensor>, TchError> {
    state.iter().map(|tensor| owned_copy(tensor)).collect()
}

/// Writes `values` into the state tensors' own storage (which the step and a capture refer to).
fn restore(state: &[&Tensor], values: &[Tensor]) -> Result<(), TchError> {
    for (tensor, value) in state.iter().zip(values) {
        tensor.shallow_clone().f_copy_(value)?;
    }
    Ok(())
}

/// Equal bytes, so that NaNs and signed zeros count too.
fn same_bits(state: &[&Tensor], values: &[Tensor]) -> Result<bool, TchError> {
    for (tensor, value) in state.iter().zip(values) {
        let bytes = |t: &Tensor| t.f_contiguous()?.f_flatten(0, -1)?.f_view_dtype(Kind::Uint8);
        if !bytes(tensor)?.f_equal(&bytes(value)?)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What this process found for each kind of step: whether its graphs replay (`true`) or not.
static VERDICTS: Mutex<Vec<(&'static str, bool)>> = Mutex::new(Vec::new());

fn verdict(what: &str) -> Option<bool> {
    let verdicts = VERDICTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    verdicts.iter().find(|(kind, _)| *kind == what).map(|(_, replays)| *replays)
}

/// Records how a capture of a step of the kind `what` went, and logs it the first time a kind
/// replays and whenever one stops (`scripts/gpu/check.sh` reads these lines).
fn record(what: &'static str, outcome: Result<(), &str>) {
    let mut verdicts = VERDICTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let replays = outcome.is_ok();
    match verdicts.iter_mut().find(|(kind, _)| *kind == what) {
        Some((_, known)) if *known == replays => return,
        Some((_, known)) => *known = replays,
        None => verdicts.push((what, replays)),
    }
    match outcome {
        Ok(()) => tracing::info!("CUDA graphs: replaying {what}, each graph checked against the step run eagerly"),
        Err(reason) => tracing::warn!(
            "{what} run without CUDA graphs from now on: {reason}; their results stay the same, only slower"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn off_cuda_the_step_runs_every_time() {
        let counter = Tensor::zeros([1], (Kind::Int64, Device::Cpu));
        let mut state = counter.shallow_clone();
        let mut step = ReplayedStep::first("a test's steps", || state.f_add_scalar_(1).map(|_| ()), &[&counter])
            .expect("first run");
        assert!(!step.is_replayed());
        for _ in 0..4 {
            step.run().expect("run");
        }
        assert_eq!(counter.int64_value(&[0]), 5);
    }

    #[test]
    fn bits_decide_sameness() {
        let zero = Tensor::from_slice(&[0.0f32, f32::NAN]);
        let negative_zero = Tensor::from_slice(&[-0.0f32, f32::NAN]);
        assert!(same_bits(&[&zero], &[zero.copy()]).expect("compare"));
        assert!(!same_bits(&[&zero], &[negative_zero]).expect("compare"));
    }
}
