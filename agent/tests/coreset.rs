//! The coreset baselines through the backend, on `synthetic`: herding and k-center sets are real
//! training images of their classes, written in DC-bench's layout, the same for the same seed
//! and another for another seed (whose embedding network is another). The selection rules
//! themselves are unit-tested on fixed points (`distill::coreset`).

mod common;

use beard_agent::backend::{Backend, DistilledOutput, TaskContext};
use beard_agent::data::Dataset;
use beard_agent::host_tensor;
use beard_agent::tch_backend::TchBackend;
use beard_formats::torchfile::{self, Value};
use beard_proto::v1::{CoresetConfig, DistillSpec, NormKind, distill_spec};
use tch::{Device, Kind, Tensor};

const IPC: u32 = 3;

fn spec(kcenter: bool, seed: u32) -> DistillSpec {
    let training = common::train_spec(seed, 3).training;
    let config = CoresetConfig { training };
    let algorithm =
        if kcenter { distill_spec::Algorithm::Kcenter(config) } else { distill_spec::Algorithm::Herding(config) };
    DistillSpec {
        dataset: Some(common::synthetic()),
        method: "coreset".into(),
        ipc: IPC,
        seed,
        model: Some(common::model_config(8, NormKind::Instance)),
        algorithm: Some(algorithm),
    }
}

fn run(spec: &DistillSpec) -> DistilledOutput {
    TchBackend::new(Device::Cpu).distill(spec, None, &TaskContext::detached()).expect("selects")
}

/// The images (normalized) and labels of a DC-bench result file.
fn read_set(bytes: &[u8]) -> (Tensor, Tensor) {
    let value = torchfile::read(bytes, "the set").expect("a torch.save file");
    let data = value.get("data").and_then(Value::as_sequence).expect("'data'");
    match data[0].as_sequence() {
        Some([Value::Tensor(images), Value::Tensor(labels)]) => {
            (host_tensor::to_tensor(images).expect("images"), host_tensor::to_tensor(labels).expect("labels"))
        }
        other => panic!("not [images, labels]: {other:?}"),
    }
}

/// For each of `images` (normalized), the index of the training image it is.
fn training_indices(images: &Tensor, dataset: &Dataset) -> Vec<i64> {
    let train = dataset.train().expect("train split");
    let normalization = &dataset.info.normalization;
    let column = |values: &[f32; 3]| Tensor::from_slice(values).reshape([1, 3, 1, 1]);
    let pixels = images * column(&normalization.std) + column(&normalization.mean);
    let flat = |t: &Tensor| t.reshape([t.size()[0], -1]).to_kind(Kind::Double);
    let distances = Tensor::cdist(&flat(&pixels), &flat(&train.images), 2.0, None);
    let (nearest, index) = distances.min_dim(1, false);
    assert!(nearest.max().double_value(&[]) < 1e-4, "every image is a training image");
    Vec::<i64>::try_from(&index).expect("indices")
}

#[test]
fn coresets_are_real_images_of_their_classes_and_follow_the_seed() {
    let dataset = Dataset::load(&common::synthetic(), Device::Cpu).expect("synthetic");
    let classes = dataset.info.classes as i64;
    let train_labels = Vec::<i64>::try_from(&dataset.train().expect("train").labels).expect("labels");
    let mut chosen = Vec::new();
    for kcenter in [false, true] {
        let result = run(&spec(kcenter, 0));
        assert_eq!(result.record.resumed_from, 0);
        let loss = result.record.final_loss;
        assert!(loss.is_finite(), "the embedding network trained: {loss}");
        assert_eq!(result.record.set_sha256, beard_proto::keys::sha256_hex(&result.set));
        let (images, labels) = read_set(&result.set);
        assert_eq!(images.size(), [classes * i64::from(IPC), 3, 32, 32]);
        let expected: Vec<i64> = (0..classes).flat_map(|class| [class; IPC as usize]).collect();
        assert_eq!(Vec::<i64>::try_from(&labels).expect("labels"), expected, "class-sorted labels");
        let indices = training_indices(&images, &dataset);
        let of_class: Vec<i64> = indices.iter().map(|&index| train_labels[index as usize]).collect();
        assert_eq!(of_class, expected, "each image is a training image of its label's class");
        let mut distinct = indices.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), indices.len(), "no image twice");
        assert_eq!(run(&spec(kcenter, 0)).set, result.set, "the same seed, the same set");
        chosen.push(indices);
    }
    assert_ne!(chosen[0], chosen[1], "herding and k-center choose differently");
    let herding_again = training_indices(&read_set(&run(&spec(false, 1)).set).0, &dataset);
    assert_ne!(herding_again, chosen[0], "another seed trains another embedding network");
}
