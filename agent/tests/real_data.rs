//! Real data from the shared data directory: CIFAR-10, the published model-pool checkpoints at
//! their documented clean accuracies, and the DC distilled sets trained and attacked through the
//! backend.

mod common;

use beard_agent::backend::{AttackCheckpoints, Backend, TaskContext};
use beard_agent::data::{Dataset, dataset_info};
use beard_agent::model::{ConvNet, ConvNetConfig};
use beard_agent::tch_backend::TchBackend;
use beard_proto::v1::{AttackConfig, Augmentation, DatasetRef, LrSchedule, NormKind, attack_config};
use common::cifar::{cifar10, correct, dc_spec};
use common::files::shared_data;
use tch::Device;

fn convnet_config() -> ConvNetConfig {
    let info = dataset_info("cifar10").expect("cifar10");
    ConvNetConfig::new(&common::model_config(128, NormKind::Instance), &info).expect("config")
}

#[test]
fn cifar10_loads_exactly() {
    let Some(data) = shared_data("cifar10_loads_exactly") else { return };
    let dataset = Dataset::load(&cifar10(&data), Device::Cpu).expect("loads");
    assert_eq!(dataset.test.len(), 10_000);
    assert_eq!(dataset.test.labels_host()[..10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    assert_eq!(dataset.test.images.size(), [10_000, 3, 32, 32]);
    let train = dataset.train().expect("train split");
    assert_eq!(train.len(), 50_000);
    assert_eq!(train.labels_host()[..10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    let mut counts = [0usize; 10];
    train.labels_host().iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [5000; 10]);
    let missing = DatasetRef { name: "cifar10".into(), root: data.join("nowhere").display().to_string() };
    let error = Dataset::load(&missing, Device::Cpu).err().expect("fails").to_string();
    assert!(error.contains("nowhere/test_batch.bin"), "{error}");
}

#[test]
fn model_pool_checkpoints_reach_their_documented_clean_accuracy() {
    let Some(data) = shared_data("model_pool_checkpoints_reach_their_documented_clean_accuracy") else { return };
    let dataset = Dataset::load(&cifar10(&data), Device::Cpu).expect("loads");
    for (name, expected) in [("DC_ConvNet_CIFAR10_50_None.pth", 5431), ("DM_ConvNet_CIFAR10_50_None.pth", 6206)] {
        let bytes = std::fs::read(data.join("model_pool").join(name)).expect("read");
        let model = ConvNet::from_checkpoint(&convnet_config(), &bytes, Device::Cpu).expect("loads");
        assert_eq!(correct(&model, &dataset.test, 10_000), expected, "{name}");
    }
}

#[test]
fn dc_distilled_sets_train_and_attack_through_the_backend() {
    let Some(data) = shared_data("dc_distilled_sets_train_and_attack_through_the_backend") else { return };
    let mut backend = TchBackend::new(Device::Cpu);
    let spec = dc_spec(&data, 10, 128, 30, LrSchedule::Constant, Augmentation::None);
    let trained = backend.train(&spec, &TaskContext::detached()).expect("trains");
    assert_eq!(trained.train_images, 100);
    let dataset = Dataset::load(&cifar10(&data), Device::Cpu).expect("loads");
    let model = ConvNet::from_checkpoint(&convnet_config(), &trained.checkpoint, Device::Cpu).expect("loads");
    let accuracy = correct(&model, &dataset.test, 2000) as f64 / 20.0;
    eprintln!("DC ipc10, 30 epochs SGD: {accuracy:.2} % on the first 2000 CIFAR-10 test images");
    assert!(accuracy > 25.0, "{accuracy} % is not clearly above chance");

    let fgsm = AttackConfig { attack: Some(attack_config::Attack::Fgsm(beard_proto::v1::Fgsm { eps: common::EPS })) };
    let attack = common::attack_spec(&spec, fgsm, false, 100);
    let shard = backend
        .attack(&attack, &AttackCheckpoints::white_box(trained.checkpoint.clone()), &TaskContext::detached())
        .expect("attacks");
    assert_eq!(shard.samples, 100);
    assert!(shard.robust_accuracy < shard.clean_accuracy, "{shard:?}");

    // The IPC must match the file: ipc 1 asked of the ipc-10 set is a permanent error.
    let mut wrong = spec.clone();
    wrong.ipc = 1;
    let failure = backend.train(&wrong, &TaskContext::detached()).expect_err("ipc mismatch");
    assert_eq!(failure.code, "invalid_distilled_set", "{failure:?}");
    assert!(failure.message.contains("class 0 has 10 images; ipc 1"), "{failure:?}");
}
