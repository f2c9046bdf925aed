//! DM on the real CIFAR-10 training set, sized for CI's two cores: IPC 1 from noise, 64 real
//! images per class, 100 iterations, then the standard evaluation (a fresh ConvNet trained with
//! SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x0.1 at half, DSA) for 300 epochs
//! on the whole test set: two nets for the learned set, one for the noise it started from. It
//! must reach 20 % and gain 12 points over that noise (../shared/DISTILLATION.md, section 10: a
//! reimplementation of the reference reached 25.5 % in 171 s).
//!
//! On this 2-core machine, undisturbed, it reached 25.69 % from 10.39 % in 160 s (87 s of
//! distillation); 200 iterations gave 26.05 %, so half of them leave the margin as it was. On
//! cores shared with other work its iterations take several times longer.

mod common;

use std::time::Instant;

use beard_agent::backend::TaskContext;
use beard_agent::data::Dataset;
use beard_agent::data::distilled::DistilledSet;
use beard_agent::distill::dm;
use beard_agent::distill::{Matching, Run, Start};
use beard_agent::model::{ConvNet, ConvNetConfig};
use beard_agent::train;
use beard_proto::v1::{Augmentation, LrSchedule, NormKind};
use common::cifar::{cifar10, correct, reference_training};
use common::files::shared_data;
use tch::Device;

/// Mean test accuracy (percent) of `nets` ConvNets trained on `set` by the standard evaluation.
fn evaluate(set: &DistilledSet, dataset: &Dataset, config: &ConvNetConfig, nets: u32, epochs: u32) -> f64 {
    let training = reference_training(epochs, LrSchedule::StepHalf, Augmentation::Dsa);
    let total: f64 = (0..nets)
        .map(|seed| {
            let model = ConvNet::new(config, u64::from(seed), Device::Cpu).expect("a model");
            train::train(&model, set, &dataset.info, &training, seed, &TaskContext::detached()).expect("trains");
            100.0 * correct(&model, &dataset.test, dataset.test.len()) as f64 / dataset.test.len() as f64
        })
        .sum();
    total / f64::from(nets)
}

#[test]
fn dm_from_noise_learns_a_cifar10_set_worth_20_percent_in_100_iterations() {
    let Some(data) = shared_data("dm_from_noise_learns_a_cifar10_set_worth_20_percent_in_100_iterations") else {
        return;
    };
    let dataset = Dataset::load(&cifar10(&data), Device::Cpu).expect("CIFAR-10 loads");
    let train_split = dataset.train().expect("the training split");
    let config = ConvNetConfig::new(&common::model_config(128, NormKind::Instance), &dataset.info).expect("config");
    let settings =
        Matching { iterations: 100, batch_real: 64, lr_img: 1.0, momentum: 0.5, dsa: true, start: Start::Noise };
    let start_set = Matching { iterations: 1, lr_img: 0.0, ..settings };
    let context = TaskContext::detached();
    let run = Run {
        train: train_split,
        dataset: &dataset.info,
        model: &config,
        ipc: 1,
        seed: 0,
        resume: None,
        ctx: &context,
    };

    let started = Instant::now();
    let noise = dm::distill(&run, &start_set).expect("the start").set;
    let learned = dm::distill(&run, &settings).expect("distils").set;
    let distilled = started.elapsed().as_secs_f64();
    let normalization = &dataset.info.normalization;
    let before = evaluate(&noise.to_pixels(normalization).expect("pixels"), &dataset, &config, 1, 300);
    let after = evaluate(&learned.to_pixels(normalization).expect("pixels"), &dataset, &config, 2, 300);
    println!(
        "DM CIFAR-10 IPC 1 from noise, 100 iterations of 64 real images per class ({distilled:.0} s): \
         {before:.2} % (1 net) -> {after:.2} % (2 nets), 300 epochs each, {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    assert!(after >= 20.0, "{after:.2} % after 100 iterations");
    assert!(after - before >= 12.0, "{before:.2} % -> {after:.2} %: less than 12 points gained");
}
