//! Training on the DC distilled CIFAR-10 sets in the shared data directory, tested on the exact
//! CIFAR-10 test set: DSA augmentation beats no augmentation (issue 3, done-when 4), and DC's
//! evaluation recipe lands in the range of the sets' reruns (done-when 6, SOURCES.md): in full on
//! IPC 1, at a quarter of its epochs (with a range calibrated here) on IPC 10.
//!
//! Each test prints its accuracies; all skip with a SKIPPED line when the data is absent.

mod common;

use std::path::Path;
use std::time::Instant;

use beard_agent::backend::{Backend, TaskContext};
use beard_agent::data::Dataset;
use beard_agent::model::{ConvNet, ConvNetConfig};
use beard_agent::tch_backend::TchBackend;
use beard_proto::v1::{Augmentation, LrSchedule, TrainSpec};
use common::cifar::{cifar10, correct, dc_spec};
use common::files::shared_data;
use tch::Device;

/// Trains `spec` through the backend on the CPU and returns its accuracy in percent on the
/// 10,000 CIFAR-10 test images (in chunks of 500).
///
/// One intra-op thread: the tests of this file run in parallel, oversubscribed OpenMP threads on
/// a shared CPU ran several times slower, and the float reductions (so the accuracies) then do
/// not depend on the machine's core count.
fn test_accuracy(spec: &TrainSpec, dataset: &Dataset) -> f64 {
    tch::set_num_threads(1);
    let started = Instant::now();
    let trained = TchBackend::new(Device::Cpu).train(spec, &TaskContext::detached()).expect("trains");
    let config = ConvNetConfig::new(spec.model.as_ref().expect("model"), &dataset.info).expect("config");
    let model = ConvNet::from_checkpoint(&config, &trained.checkpoint, Device::Cpu).expect("loads");
    let count = dataset.test.len();
    let correct = correct(&model, &dataset.test, count);
    let training = spec.training.as_ref().expect("training");
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("  {} epochs, {:?}: trained and tested in {seconds:.1} s", training.epochs, training.augmentation());
    100.0 * correct as f64 / count as f64
}

fn load_cifar10(data: &Path) -> Dataset {
    Dataset::load(&cifar10(data), Device::Cpu).expect("CIFAR-10 loads")
}

#[test]
fn dsa_augmentation_beats_no_augmentation_on_dc_ipc10() {
    let Some(data) = shared_data("dsa_augmentation_beats_no_augmentation_on_dc_ipc10") else { return };
    let dataset = load_cifar10(&data);
    // A narrow model keeps this near 10 s per run; seeds 0-3 gave DSA +2.0 to +4.1 points.
    let (width, epochs) = (16, 300);
    let plain = test_accuracy(&dc_spec(&data, 10, width, epochs, LrSchedule::StepHalf, Augmentation::None), &dataset);
    let dsa = test_accuracy(&dc_spec(&data, 10, width, epochs, LrSchedule::StepHalf, Augmentation::Dsa), &dataset);
    eprintln!(
        "DC ipc10, width-{width} ConvNet, {epochs} epochs, DC's recipe otherwise, 10,000 test images: \
         no augmentation {plain:.2} %, DSA {dsa:.2} %"
    );
    assert!(dsa > plain + 1.0, "DSA {dsa:.2} % does not beat no augmentation {plain:.2} % by a point");
}

/// Trains the DC set of `ipc` with DC's recipe (no augmentation, width 128, SGD, lr x0.1 at half
/// the epochs) for `epochs` epochs and checks its accuracy on the whole test set against `range`.
fn dc_recipe_lands_in_range(test: &str, ipc: u32, epochs: u32, range: std::ops::RangeInclusive<f64>) {
    let Some(data) = shared_data(test) else { return };
    let dataset = load_cifar10(&data);
    let accuracy = test_accuracy(&dc_spec(&data, ipc, 128, epochs, LrSchedule::StepHalf, Augmentation::None), &dataset);
    eprintln!(
        "DC ipc{ipc}, DC's recipe for {epochs} epochs: {accuracy:.2} % on the 10,000 CIFAR-10 test images \
         (expected {range:?})"
    );
    assert!(range.contains(&accuracy), "DC ipc{ipc}: {accuracy:.2} % is outside {range:?}");
}

#[test]
fn dc_ipc1_with_dcs_recipe_lands_in_its_rerun_range() {
    dc_recipe_lands_in_range("dc_ipc1_with_dcs_recipe_lands_in_its_rerun_range", 1, 1000, 24.0..=30.0);
}

/// DC's IPC-10 recipe at a quarter of its 1000 epochs (250, lr step at 125), so that it runs in
/// CI (about 4 minutes on one thread of the 2-core CI machine instead of 11). Calibration on that
/// machine, seeds 0-3: 42.34, 42.43, 41.57, 42.22 %; the full 1000-epoch recipe gave 42.63 % (seed
/// 0, SOURCES.md) and DC's own log 41.5-42.8 %. The range is the seeds' spread widened by about
/// 1.5 points each way. The same run without momentum reached 38.58 %, outside it. (Reading the
/// set in the wrong pixel space is not caught here: 42.14 %, since the instance norm after the
/// first convolution undoes a per-channel affine change of the inputs; `distilled.rs` checks the
/// pixel mapping itself.)
#[test]
fn dc_ipc10_with_dcs_recipe_at_a_quarter_of_its_epochs_lands_in_its_calibrated_range() {
    dc_recipe_lands_in_range(
        "dc_ipc10_with_dcs_recipe_at_a_quarter_of_its_epochs_lands_in_its_calibrated_range",
        10,
        250,
        40.0..=44.0,
    );
}
