//! The ConvNet's PyTorch state-dict names and its safetensors checkpoints.

mod common;

use beard_agent::data::dataset_info;
use beard_agent::model::{ConvNet, ConvNetConfig, ModelError};
use beard_proto::v1::NormKind;
use tch::{Device, Kind, Tensor};

fn config(norm: NormKind) -> ConvNetConfig {
    let info = dataset_info("cifar10").expect("cifar10 is known");
    ConvNetConfig::new(&common::model_config(16, norm), &info).expect("valid config")
}

fn names(keys: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    names.sort_unstable();
    names
}

#[test]
fn state_dict_names_are_pytorchs_for_depth_3_instance_norm() {
    let model = ConvNet::new(&config(NormKind::Instance), 0, Device::Cpu).expect("model");
    let expected = names(&[
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "features.4.weight",
        "features.4.bias",
        "features.5.weight",
        "features.5.bias",
        "features.8.weight",
        "features.8.bias",
        "features.9.weight",
        "features.9.bias",
        "classifier.weight",
        "classifier.bias",
    ]);
    assert_eq!(model.state_dict_names(), expected);
}

#[test]
fn state_dict_names_follow_sequential_numbering_without_norm_and_with_batch_norm() {
    let plain = ConvNet::new(&config(NormKind::None), 0, Device::Cpu).expect("model");
    let expected = names(&[
        "features.0.weight",
        "features.0.bias",
        "features.3.weight",
        "features.3.bias",
        "features.6.weight",
        "features.6.bias",
        "classifier.weight",
        "classifier.bias",
    ]);
    assert_eq!(plain.state_dict_names(), expected);
    let batch = ConvNet::new(&config(NormKind::Batch), 0, Device::Cpu).expect("model");
    assert!(batch.state_dict_names().contains(&"features.5.running_var".to_owned()));
}

#[test]
fn checkpoint_roundtrip_gives_identical_logits() {
    let config = config(NormKind::Instance);
    let original = ConvNet::new(&config, 1, Device::Cpu).expect("model");
    let bytes = original.checkpoint().expect("save");
    let restored = ConvNet::from_checkpoint(&config, &bytes, Device::Cpu).expect("load");
    let fresh = ConvNet::new(&config, 2, Device::Cpu).expect("model");
    let images = Tensor::rand([8, 3, 32, 32], (Kind::Float, Device::Cpu));
    let logits = |model: &ConvNet| model.forward(&images, false).expect("forward");
    assert!(logits(&original).equal(&logits(&restored)), "restored logits differ");
    assert!(!logits(&original).equal(&logits(&fresh)), "a differently seeded model should differ");
    assert_eq!(restored.checkpoint().expect("save"), bytes, "saving is deterministic");
}

#[test]
fn checkpoints_of_another_shape_or_garbage_are_rejected() {
    let bytes = ConvNet::new(&config(NormKind::Instance), 0, Device::Cpu).expect("model").checkpoint().expect("save");
    let wider = ConvNetConfig { width: 32, ..config(NormKind::Instance) };
    for (what, result) in [
        ("wider model", ConvNet::from_checkpoint(&wider, &bytes, Device::Cpu)),
        ("no norm", ConvNet::from_checkpoint(&config(NormKind::None), &bytes, Device::Cpu)),
    ] {
        assert!(matches!(result, Err(ModelError::Checkpoint(_))), "{what} was not rejected as a checkpoint mismatch");
    }
    let garbage = ConvNet::from_checkpoint(&config(NormKind::Instance), b"not safetensors", Device::Cpu);
    assert!(matches!(garbage, Err(ModelError::NotACheckpoint)), "garbage is not taken for a checkpoint");
}
