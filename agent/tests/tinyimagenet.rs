//! TinyImageNet from fake `tiny-imagenet-200` trees the tests write in the official layout: labels
//! by sorted wnid, pixels as encoded (grayscale JPEGs become RGB), the decoded cache written,
//! reused and rebuilt, malformed input reported with its file and line, and a depth-4 ConvNet
//! trained and attacked on it through the backend.

mod common;

use std::path::Path;

use beard_agent::backend::{AttackCheckpoints, Backend, TaskContext};
use beard_agent::data::{Dataset, Split, dataset_info};
use beard_agent::model::{ConvNet, ConvNetConfig};
use beard_agent::tch_backend::TchBackend;
use beard_proto::v1::{
    AttackConfig, DatasetRef, DistilledSource, ModelConfig, NormKind, Optimizer, PoolKind, RandomSubset, TrainSpec,
    TrainingConfig, attack_config, distilled_source,
};
use common::tinyimagenet::{Image, JPEG_TOLERANCE, Tree, picture, small, write_jpeg};
use tch::{Device, Kind};

fn reference(root: &Path) -> DatasetRef {
    DatasetRef { name: "tinyimagenet".into(), root: root.display().to_string() }
}

fn load(root: &Path) -> Result<Dataset, String> {
    Dataset::load(&reference(root), Device::Cpu).map_err(|error| error.to_string())
}

/// The split's pixels as bytes (`[n, 3, 64, 64]`), back from [0, 1].
fn bytes(split: &Split) -> Vec<u8> {
    let bytes = (&split.images * 255.0).round().to_kind(Kind::Uint8).flatten(0, -1);
    Vec::<u8>::try_from(&bytes).expect("bytes")
}

/// The split holds `expected`, in order, each pixel within JPEG tolerance.
fn assert_holds(split: &Split, expected: &[Image]) {
    assert_eq!(split.images.size(), [expected.len() as i64, 3, 64, 64]);
    assert_eq!(split.images.kind(), Kind::Float);
    let labels: Vec<i64> = expected.iter().map(|image| image.label).collect();
    assert_eq!(split.labels_host(), labels);
    assert_eq!(Vec::<i64>::try_from(&split.labels).expect("labels"), labels);
    let loaded = bytes(split);
    for (image, loaded) in expected.iter().zip(loaded.chunks_exact(3 * 64 * 64)) {
        let worst = image.pixels.iter().zip(loaded).map(|(a, b)| a.abs_diff(*b)).max().expect("pixels");
        assert!(worst <= JPEG_TOLERANCE, "{}: a pixel is {worst} levels off", image.file);
    }
}

#[test]
fn splits_load_with_sorted_wnid_labels_rgb_pixels_and_a_reused_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("tiny-imagenet-200");
    let mut tree = small(&root);
    let dataset = load(&root).expect("loads");
    assert_eq!(dataset.info, dataset_info("tinyimagenet").expect("info"));
    // wnids.txt lists n03, n01, n02: labels follow the sorted order; val keeps the annotation order.
    assert_eq!(dataset.test.labels_host(), [2, 0, 1, 2]);
    assert_holds(&dataset.test, &tree.val);
    let gray = dataset.test.images.get(2);
    assert!(gray.get(0).equal(&gray.get(1)) && gray.get(1).equal(&gray.get(2)), "grayscale becomes equal RGB");
    let cache = root.join("beard-cache");
    assert!(cache.join("val.safetensors").is_file());
    assert!(!cache.join("train.safetensors").exists(), "the train split loads only when asked for");

    let train = dataset.train().expect("train split");
    assert_eq!(train.labels_host(), [0, 0, 1, 1, 2, 2]);
    assert_holds(train, &tree.train());
    assert!(cache.join("train.safetensors").is_file());

    // Same source files: the cache is read and the JPEGs are not (this one no longer decodes).
    let first = bytes(&dataset.test);
    std::fs::write(root.join("val/images/val_1.JPEG"), b"not a jpeg any more").expect("overwrite");
    let again = load(&root).expect("loads from the cache");
    assert_eq!(bytes(&again.test), first);
    assert_eq!(again.train().expect("train").labels_host(), [0, 0, 1, 1, 2, 2]);

    // Another file list: the cache is stale and rebuilt from the JPEGs as they are now.
    tree.val[1].pixels = write_jpeg(&root.join("val/images/val_1.JPEG"), picture(40, false));
    tree.add_val("n01000001", true);
    let rebuilt = load(&root).expect("rebuilds");
    assert_eq!(rebuilt.test.labels_host(), [2, 0, 1, 2, 0]);
    assert_holds(&rebuilt.test, &tree.val);
    assert_eq!(load(&root).map(|d| bytes(&d.test)), Ok(bytes(&rebuilt.test)), "the rebuilt cache is used");
}

/// The error of loading the test split of `tree` (or, with `train`, the train split).
fn error(root: &Path, train: bool) -> String {
    match load(root) {
        Err(error) => error,
        Ok(dataset) if train => dataset.train().err().expect("the train split fails").to_string(),
        Ok(_) => panic!("{} loads", root.display()),
    }
}

#[test]
fn malformed_trees_are_reported_with_the_file_the_line_and_what_was_expected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = |name: &str| small(&dir.path().join(name));

    let corrupt = fresh("corrupt");
    let jpeg = std::fs::read(corrupt.root.join("val/images/val_2.JPEG")).expect("read");
    std::fs::write(corrupt.root.join("val/images/val_2.JPEG"), &jpeg[..jpeg.len() / 3]).expect("truncate");
    let message = error(&corrupt.root, false);
    assert!(message.contains("val/images/val_2.JPEG: not a decodable JPEG"), "{message}");
    assert!(!corrupt.root.join("beard-cache/val.safetensors").exists(), "nothing cached from a failed decode");

    let unknown = fresh("unknown");
    unknown.annotate("val_9.JPEG\tn09999999\t0\t0\t63\t63");
    let message = error(&unknown.root, false);
    assert!(
        message.contains("val/val_annotations.txt: line 5: wnid \"n09999999\" (of val_9.JPEG) is not in wnids.txt"),
        "{message}"
    );

    let short = fresh("short");
    short.annotate("val_9.JPEG");
    assert!(error(&short.root, false).contains("line 5: \"val_9.JPEG\" is not `<file>\\t<wnid>\\t<box>`"));

    let escape = fresh("escape");
    escape.annotate("../wnids.txt\tn01000001\t0\t0\t63\t63");
    assert!(error(&escape.root, false).contains("line 5: \"../wnids.txt\" is not a file name in val/images"));

    let small_image = fresh("size");
    let path = small_image.root.join("train/n02000002/images/n02000002_9.JPEG");
    write_jpeg(&path, picture(0, false).resize_exact(32, 32, image::imageops::FilterType::Nearest));
    let message = error(&small_image.root, true);
    assert!(message.contains("n02000002_9.JPEG: 32x32 image, expected 64x64"), "{message}");

    let repeated = fresh("repeated");
    std::fs::write(repeated.root.join("wnids.txt"), "n01000001\nn02000002\nn01000001\n").expect("write");
    let message = error(&repeated.root, false);
    assert!(message.contains("wnids.txt: line 3: wnid n01000001 repeats line 1"), "{message}");

    let missing = fresh("missing");
    std::fs::remove_file(missing.root.join("wnids.txt")).expect("remove");
    assert!(error(&missing.root, false).contains("missing/wnids.txt"));

    let empty_class = fresh("empty");
    std::fs::create_dir_all(empty_class.root.join("train/n04000004/images")).expect("mkdir");
    std::fs::write(empty_class.root.join("wnids.txt"), "n01000001\nn02000002\nn03000003\nn04000004\n").expect("write");
    let message = error(&empty_class.root, true);
    assert!(message.contains("train/n04000004/images: holds no .JPEG file"), "{message}");

    let rootless = Dataset::load(&DatasetRef { name: "tinyimagenet".into(), root: String::new() }, Device::Cpu);
    assert!(
        rootless
            .err()
            .expect("no root")
            .to_string()
            .contains("needs the directory of its files: give it as --data-dir")
    );
}

#[test]
fn a_depth_4_convnet_trains_and_is_attacked_on_a_200_class_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wnids: Vec<String> = (0..200).rev().map(|class| format!("n{:08}", 1_000_000 + class * 37)).collect();
    let mut tree =
        Tree::new(&dir.path().join("tiny-imagenet-200"), &wnids.iter().map(String::as_str).collect::<Vec<_>>());
    for (index, wnid) in wnids.iter().enumerate() {
        tree.add_train(wnid, index % 50 == 0);
    }
    for wnid in wnids.iter().step_by(10) {
        tree.add_val(wnid, false);
    }
    let model = ModelConfig { width: 8, depth: 4, norm: NormKind::Instance as i32, pool: PoolKind::Avg as i32 };
    let spec = TrainSpec {
        dataset: Some(reference(&tree.root)),
        method: "random".into(),
        ipc: 1,
        seed: 0,
        source: Some(DistilledSource { source: Some(distilled_source::Source::Random(RandomSubset {})) }),
        training: Some(TrainingConfig {
            optimizer: Optimizer::Adam as i32,
            lr: 1e-3,
            epochs: 2,
            batch_size: 64,
            ..Default::default()
        }),
        model: Some(model),
    };
    let mut backend = TchBackend::new(Device::Cpu);
    let trained = backend.train(&spec, &TaskContext::detached()).expect("trains");
    assert_eq!(trained.train_images, 200);
    assert!(trained.final_loss.is_finite(), "{}", trained.final_loss);

    let fgsm = AttackConfig { attack: Some(attack_config::Attack::Fgsm(beard_proto::v1::Fgsm { eps: common::EPS })) };
    let shard = backend.attack(
        &common::attack_spec(&spec, fgsm, false, 20),
        &AttackCheckpoints::white_box(trained.checkpoint.clone()),
        &TaskContext::detached(),
    );
    let shard = shard.expect("attacks");
    assert_eq!(shard.samples, 20);
    let labels: Vec<u32> = shard.outcomes.iter().map(|outcome| outcome.label).collect();
    let expected: Vec<u32> = tree.val.iter().map(|image| image.label as u32).collect();
    assert_eq!(labels, expected);

    // The shard's clean accuracy is the depth-4 model's on the loaded val split.
    let dataset = load(&tree.root).expect("loads");
    let config = ConvNetConfig::new(&model, &dataset.info).expect("config");
    let net = ConvNet::from_checkpoint(&config, &trained.checkpoint, Device::Cpu).expect("checkpoint");
    let logits = tch::no_grad(|| net.forward(&dataset.test.images, false)).expect("forward");
    assert_eq!(logits.size(), [20, 200]);
    let correct = logits.argmax(1, false).eq_tensor(&dataset.test.labels).sum(Kind::Int64).int64_value(&[]);
    assert!((shard.clean_accuracy - correct as f64 * 5.0).abs() < 1e-9, "{correct} correct: {shard:?}");
    assert!(shard.robust_accuracy <= shard.clean_accuracy, "{shard:?}");
}
