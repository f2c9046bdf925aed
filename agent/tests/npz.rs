//! Distilled sets in NumPy `.npz` archives, written here by numpy itself: plain and compressed,
//! images and labels in one archive or two, and malformed archives with clear errors.

mod common;

use std::path::Path;

use beard_agent::data::dataset_info;
use beard_agent::data::distilled::{DistilledSet, load_file};
use beard_proto::v1::DistilledFile;
use common::files::run_python;
use tch::Device;

/// cifar10 at ipc 2: image `i` is filled with `(i % 7) / 10` (stored normalized), label `i // 2`.
const WRITER: &str = r#"
import numpy as np
n = 20
mean = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(1, 3, 1, 1)
std = np.array([0.2023, 0.1994, 0.2010], dtype=np.float32).reshape(1, 3, 1, 1)
pixels = np.stack([np.full((3, 32, 32), (i % 7) / 10, dtype=np.float32) for i in range(n)])
images = ((pixels - mean) / std).astype(np.float32)
labels = np.arange(n) // 2
np.savez("set.npz", images=images, labels=labels)
np.savez_compressed("compressed.npz", images=images, labels=labels.astype(np.uint8))
np.savez("images.npz", images)
np.savez("labels.npz", labels.astype(np.int32))
np.savez("fortran.npz", images=np.asfortranarray(images), labels=labels)
np.savez("nhwc.npz", images=images.transpose(0, 2, 3, 1).copy(), labels=labels)
open("truncated.npz", "wb").write(open("set.npz", "rb").read()[:5000])
"#;

fn file(dir: &Path, path: &str, labels: &str) -> DistilledFile {
    let at = |name: &str| if name.is_empty() { String::new() } else { dir.join(name).display().to_string() };
    DistilledFile { path: at(path), experiment: 0, stored: "normalized".into(), labels_path: at(labels), mosaic: false }
}

fn load(file: &DistilledFile) -> Result<DistilledSet, String> {
    load_file(file, &dataset_info("cifar10").expect("cifar10"), 2, Device::Cpu).map_err(|e| e.to_string())
}

#[test]
fn npz_distilled_sets_load_with_labels_and_pixel_mapping_and_bad_ones_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_python(dir.path(), WRITER);
    let d = dir.path();
    let labels: Vec<i64> = (0..20).map(|i| i / 2).collect();
    for source in [file(d, "set.npz", ""), file(d, "compressed.npz", ""), file(d, "images.npz", "labels.npz")] {
        let set = load(&source).unwrap_or_else(|e| panic!("{}: {e}", source.path));
        assert_eq!(set.images.size(), [20, 3, 32, 32], "{}", source.path);
        assert_eq!(Vec::<i64>::try_from(&set.labels).expect("labels"), labels, "{}", source.path);
        let corners = set.images.narrow(2, 0, 1).narrow(3, 0, 1).reshape([-1]);
        for (index, value) in Vec::<f32>::try_from(&corners).expect("floats").into_iter().enumerate() {
            let expected = ((index / 3) % 7) as f32 / 10.0;
            assert!((value - expected).abs() < 1e-5, "{}: image {} is {value}, not {expected}", source.path, index / 3);
        }
    }
    for (path, expected) in [
        ("fortran.npz", "entry images.npy: Fortran-order arrays are not supported"),
        ("nhwc.npz", "shape [20, 32, 32, 3]"),
        ("truncated.npz", "truncated.npz"),
        ("missing.npz", "missing.npz"),
    ] {
        let error = load(&file(d, path, "")).err().unwrap_or_else(|| panic!("{path} loads"));
        assert!(error.contains(expected), "{path}: {error}");
    }
    let error = load_file(&file(d, "set.npz", ""), &dataset_info("cifar10").expect("cifar10"), 3, Device::Cpu)
        .err()
        .expect("ipc 3 of an ipc-2 set fails")
        .to_string();
    assert!(error.contains("ipc 3"), "{error}");
}
