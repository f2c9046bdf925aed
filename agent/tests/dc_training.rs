//! Training on the DC distilled CIFAR-10 sets in the shared data directory, tested on the exact
//! CIFAR-10 test set: DSA augmentation beats no augmentation (issue 3, done-when 4), and DC's
//! evaluation recipe lands in the range of the sets' reruns (done-when 6, SOURCES.md).
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

/// Trains the DC set of `ipc` with DC's recipe (1000 epochs, no augmentation, width 128) and
/// checks its accuracy on the whole test set against the range of the set's reruns.
fn dc_recipe_lands_in_range(test: &str, ipc: u32, range: std::ops::RangeInclusive<f64>) {
    let Some(data) = shared_data(test) else { return };
    let dataset = load_cifar10(&data);
    let accuracy = test_accuracy(&dc_spec(&data, ipc, 128, 1000, LrSchedule::StepHalf, Augmentation::None), &dataset);
    eprintln!("DC ipc{ipc}, DC's recipe: {accuracy:.2} % on the 10,000 CIFAR-10 test images (expected {range:?})");
    assert!(range.contains(&accuracy), "DC ipc{ipc}: {accuracy:.2} % is outside {range:?}");
}

#[test]
fn dc_ipc1_with_dcs_recipe_lands_in_its_rerun_range() {
    dc_recipe_lands_in_range("dc_ipc1_with_dcs_recipe_lands_in_its_rerun_range", 1, 24.0..=30.0);
}

#[test]
#[ignore = "about 11 minutes on a 2-core CPU (100 images x 1000 epochs at width 128); \
            run with `cargo test --release -p beard-agent --test dc_training -- --ignored`"]
fn dc_ipc10_with_dcs_recipe_lands_in_its_rerun_range() {
    dc_recipe_lands_in_range("dc_ipc10_with_dcs_recipe_lands_in_its_rerun_range", 10, 40.0..=45.0);
}
