//! Distilled-set files in each published layout, written here by torch itself, plus CIFAR-100
//! in its binary format, soft labels in training, and the errors for files that do not fit.

mod common;

use std::path::Path;

use beard_agent::backend::TaskContext;
use beard_agent::data::distilled::{DistilledSet, load_file};
use beard_agent::data::{DataError, Dataset, dataset_info};
use beard_agent::model::ConvNet;
use beard_agent::train;
use beard_proto::v1::{DatasetRef, DistilledFile};
use common::files::run_python;
use tch::{Device, Kind, Tensor};

/// Writes, for cifar10 at ipc 2 (20 images of value `(i % 7) / 10` per image `i`, labels
/// `i // 2`): every layout, and broken variants.
const WRITER: &str = r#"
import torch
n = 20
images = torch.stack([torch.full((3, 32, 32), (i % 7) / 10) for i in range(n)])
labels = torch.arange(n) // 2
torch.save({"data": [[images * 0, labels], [images, labels]], "accs_all_exps": {"ConvNet": [0.5]}}, "res.pt")
torch.save(images.clone().requires_grad_(True), "images_best.pt")
torch.save(labels, "labels_best.pt")
torch.save((images, labels), "tuple.pt")
torch.save({"images": images.double(), "labels": labels.int()}, "dict.pt")
soft = torch.nn.functional.one_hot(labels, 10).float()
torch.save((images, soft), "soft.pt")
torch.save((images, torch.cat([labels[:-1], labels[:1]])), "counts.pt")
torch.save((images[:, :, :16], labels), "shape.pt")
torch.save([1, 2, 3], "list.pt")
"#;

fn file(dir: &Path, path: &str, labels: &str, stored: &str, experiment: u32) -> DistilledFile {
    let at = |name: &str| if name.is_empty() { String::new() } else { dir.join(name).display().to_string() };
    DistilledFile { path: at(path), experiment, stored: stored.into(), labels_path: at(labels), mosaic: false }
}

fn load(file: &DistilledFile, ipc: u32) -> Result<DistilledSet, DataError> {
    load_file(file, &dataset_info("cifar10").expect("cifar10"), ipc, Device::Cpu)
}

/// Image `i`'s first pixel of every channel.
fn corners(set: &DistilledSet) -> Vec<Vec<f32>> {
    let corner = set.images.narrow(2, 0, 1).narrow(3, 0, 1).reshape([-1, 3]);
    Vec::<Vec<f32>>::try_from(&corner).expect("floats")
}

#[test]
fn every_layout_loads_with_its_labels_and_pixel_mapping() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_python(dir.path(), WRITER);
    let d = dir.path();
    let labels: Vec<i64> = (0..20).map(|i| i / 2).collect();
    let pixels: Vec<Vec<f32>> = (0..20).map(|i| vec![(i % 7) as f32 / 10.0; 3]).collect();
    let normalization = dataset_info("cifar10").expect("cifar10").normalization;
    let mapped: Vec<Vec<f32>> =
        pixels.iter().map(|p| (0..3).map(|c| p[c] * normalization.std[c] + normalization.mean[c]).collect()).collect();
    for (file, expected) in [
        (file(d, "res.pt", "", "pixels", 1), &pixels),
        (file(d, "images_best.pt", "labels_best.pt", "pixels", 0), &pixels),
        (file(d, "tuple.pt", "", "normalized", 0), &mapped),
        (file(d, "dict.pt", "", "pixels", 0), &pixels),
    ] {
        let set = load(&file, 2).unwrap_or_else(|e| panic!("{}: {e}", file.path));
        assert_eq!(set.images.size(), [20, 3, 32, 32], "{}", file.path);
        assert_eq!(set.images.kind(), Kind::Float);
        assert_eq!(Vec::<i64>::try_from(&set.labels).expect("labels"), labels, "{}", file.path);
        let found = corners(&set);
        for (a, b) in found.iter().flatten().zip(expected.iter().flatten()) {
            assert!((a - b).abs() < 1e-6, "{}: {found:?} vs {expected:?}", file.path);
        }
    }
    // Experiment 0 of the result file is the zero images.
    let first = load(&file(d, "res.pt", "", "pixels", 0), 2).expect("loads");
    assert_eq!(first.images.abs().max().double_value(&[]), 0.0);
    let soft = load(&file(d, "soft.pt", "", "pixels", 0), 2).expect("loads");
    assert!(soft.has_soft_labels());
    assert_eq!(soft.labels.size(), [20, 10]);
    // As IDM's and BACON's mosaics: four images each (constant images decode to themselves),
    // all the top-left quadrants first, the labels repeated in that order.
    let mosaics = load(&DistilledFile { mosaic: true, ..file(d, "tuple.pt", "", "pixels", 0) }, 2).expect("loads");
    assert_eq!(mosaics.images.size(), [80, 3, 32, 32]);
    let repeated: Vec<i64> = labels.iter().cycle().take(80).copied().collect();
    assert_eq!(Vec::<i64>::try_from(&mosaics.labels).expect("labels"), repeated);
    let quadrants = corners(&mosaics);
    assert!(quadrants.chunks(20).all(|quadrant| quadrant.iter().zip(&pixels).all(|(a, b)| (a[0] - b[0]).abs() < 1e-6)));
    let soft_mosaics = load(&DistilledFile { mosaic: true, ..file(d, "soft.pt", "", "pixels", 0) }, 2).expect("loads");
    assert_eq!(soft_mosaics.labels.size(), [80, 10]);
}

#[test]
fn safetensors_files_load_by_tensor_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images: Vec<f32> = (0..10 * 3 * 32 * 32).map(|i| (i % 255) as f32 / 255.0).collect();
    let labels: Vec<i64> = (0..10).collect();
    let image_data: Vec<u8> = images.iter().flat_map(|v| v.to_le_bytes()).collect();
    let label_data: Vec<u8> = labels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = [
        ("images", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![10, 3, 32, 32], &image_data)),
        ("labels", safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![10], &label_data)),
    ]
    .map(|(name, view)| (name, view.expect("view")));
    let path = dir.path().join("set.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).expect("serialize")).expect("write");
    let set = load(&file(dir.path(), "set.safetensors", "", "pixels", 0), 1).expect("loads");
    assert_eq!(Vec::<i64>::try_from(&set.labels).expect("labels"), labels);
    let flat = Vec::<f32>::try_from(&set.images.reshape([-1])).expect("floats");
    assert_eq!(flat, images);
}

#[test]
fn files_that_do_not_fit_get_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_python(dir.path(), WRITER);
    std::fs::write(dir.path().join("junk.pt"), b"PK\x03\x04 not really a zip").expect("write");
    let d = dir.path();
    for (file, ipc, needle) in [
        (file(d, "res.pt", "", "pixels", 0), 3, "class 0 has 2 images; ipc 3 needs 3 per class"),
        (file(d, "res.pt", "", "pixels", 2), 2, "experiment 2 asked for, the file holds 2 experiment(s)"),
        (file(d, "counts.pt", "", "pixels", 0), 2, "class 0 has 3 images"),
        (file(d, "shape.pt", "", "pixels", 0), 2, "needs floats of shape [n, 3, 32, 32]"),
        (file(d, "soft.pt", "", "pixels", 0), 1, "ipc 1 x 10 classes needs 10"),
        (file(d, "images_best.pt", "", "pixels", 0), 2, "name its labels file"),
        (file(d, "list.pt", "", "pixels", 0), 2, "found a list of 3"),
        (file(d, "tuple.pt", "", "raw", 0), 2, "stored is \"raw\""),
        (file(d, "junk.pt", "", "pixels", 0), 2, "bad zip archive"),
        (file(d, "absent.pt", "", "pixels", 0), 2, "absent.pt"),
    ] {
        let error = load(&file, ipc).err().unwrap_or_else(|| panic!("{} loaded", file.path)).to_string();
        assert!(error.contains(needle), "{}: {error}", file.path);
        assert!(error.contains(&*file.path), "{error}");
    }
}

#[test]
fn one_hot_soft_labels_train_exactly_like_hard_labels() {
    let dataset = Dataset::load(&common::synthetic(), Device::Cpu).expect("synthetic");
    let spec = common::train_spec(3, 3);
    let config =
        beard_agent::model::ConvNetConfig::new(spec.model.as_ref().expect("model"), &dataset.info).expect("config");
    let images = dataset.test.images.narrow(0, 0, 40);
    let hard = dataset.test.labels.narrow(0, 0, 40);
    let soft = hard.one_hot(10).to_kind(Kind::Float);
    let run = |labels: Tensor| {
        let model = ConvNet::new(&config, 3, Device::Cpu).expect("model");
        let set = DistilledSet { images: images.shallow_clone(), labels };
        let training = spec.training.as_ref().expect("training");
        let loss = train::train(&model, &set, &dataset.info, training, 3, &TaskContext::detached()).expect("trains");
        (loss, model.checkpoint().expect("checkpoint"))
    };
    let (hard_loss, hard_weights) = run(hard.shallow_clone());
    let (soft_loss, soft_weights) = run(soft);
    assert!((hard_loss - soft_loss).abs() < 1e-5, "{hard_loss} vs {soft_loss}");
    let weights = |bytes: &[u8]| ConvNet::from_checkpoint(&config, bytes, Device::Cpu).expect("loads");
    let probe = dataset.test.images.narrow(0, 100, 20);
    let difference = (weights(&hard_weights).forward(&probe, false).expect("forward")
        - weights(&soft_weights).forward(&probe, false).expect("forward"))
    .abs()
    .max()
    .double_value(&[]);
    assert!(difference < 1e-4, "{difference}");
}

#[test]
fn cifar100_binary_files_load_with_fine_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = |coarse: u8, fine: u8, fill: u8| [vec![coarse, fine], vec![fill; 3072]].concat();
    let train: Vec<u8> = (0..200u32).flat_map(|i| record((i % 20) as u8, (i % 100) as u8, i as u8)).collect();
    let test: Vec<u8> = (0..3u8).flat_map(|i| record(i, 99 - i, 255)).collect();
    std::fs::write(dir.path().join("train.bin"), &train).expect("write");
    std::fs::write(dir.path().join("test.bin"), &test).expect("write");
    let reference = DatasetRef { name: "cifar100".into(), root: dir.path().display().to_string() };
    let dataset = Dataset::load(&reference, Device::Cpu).expect("loads");
    assert_eq!((dataset.info.classes, dataset.test.labels_host()), (100, &[99, 98, 97][..]));
    assert_eq!(dataset.test.images.max().double_value(&[]), 1.0);
    let train = dataset.train().expect("train");
    assert_eq!((train.len(), train.labels_host()[150]), (200, 50));
    std::fs::write(dir.path().join("test.bin"), &test[..3 * 3074 - 5]).expect("write");
    let error = Dataset::load(&reference, Device::Cpu).err().expect("truncated").to_string();
    assert!(error.contains("test.bin") && error.contains("byte 6148 is truncated"), "{error}");
}
