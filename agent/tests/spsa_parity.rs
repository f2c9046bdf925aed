//! SPSA against torchattacks 3.5.1's on real data: the DM reference checkpoint of the model pool
//! and the first 500 CIFAR-10 test images, untargeted and targeted (targets (y + 1) % 10), at
//! torchattacks' settings (eps 8/255, delta 0.01, lr 0.01, one iteration) except the sample
//! count: 32 sign vectors instead of 128, since every sample costs two forward passes per image
//! (torchattacks' 128 take about 3.5 minutes per mode and side on two cores; they agree as
//! closely, see the README). The two sides draw their sign vectors from different generators
//! (ours the host generator under the attack's seed, torchattacks torch's global one, seeded by
//! the script), so the robust accuracies agree within 2 points, not image by image. The table
//! prints images per second of both sides and their ratio.

mod common;

use beard_agent::data::{Dataset, dataset_info};
use common::cifar::{cifar10, reference_model};
use common::files::shared_data;
use common::parity::{Run, ScriptModel, compare};
use tch::Device;

const SAMPLES: i64 = 500;
const CHUNK: i64 = 100;
const SPSA: &str = "spsa:eps=8/255,delta=0.01,lr=0.01,nb_iter=1,nb_sample=32,max_batch_size=32,seed=0";

#[test]
fn spsa_matches_torchattacks_on_the_reference_checkpoint() {
    let Some(data) = shared_data("spsa_matches_torchattacks_on_the_reference_checkpoint") else { return };
    let dataset = Dataset::load(&cifar10(&data), Device::Cpu).expect("CIFAR-10 loads");
    let info = dataset_info("cifar10").expect("cifar10");
    let (checkpoint, model) = reference_model(&data);
    let script_model =
        ScriptModel { checkpoint: &checkpoint, width: 128, classes: 10, normalization: info.normalization };
    let labels = dataset.test.labels.narrow(0, 0, SAMPLES);
    let targets = (&labels + 1).remainder(10);
    let images = dataset.test.images.narrow(0, 0, SAMPLES);
    let runs = [Run::within(SPSA, false, 2.0), Run::within(SPSA, true, 2.0)];
    let failures = compare(&model, &script_model, &runs, &images, &labels, &targets, CHUNK);
    assert!(failures.is_empty(), "parity failures: {failures:#?}");
}
