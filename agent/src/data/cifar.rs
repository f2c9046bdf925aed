//! CIFAR-10 and CIFAR-100 in their official binary formats.
//!
//! CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` .. `data_batch_5.bin` and
//! `test_batch.bin`, each record one label byte and 3072 pixel bytes (1024 R, 1024 G, 1024 B,
//! row-major). CIFAR-100 (`cifar-100-binary/`): `train.bin` and `test.bin`, each record a coarse
//! and a fine label byte, then the same 3072 pixel bytes; the fine label (100 classes) is used.
//! Pixels become float32 in [0, 1]. A file whose length is not a whole number of records, or a
//! label outside the classes, is reported with the file, the record and its byte offset.

use std::path::{Path, PathBuf};

use super::{DataError, HostImages, Part, read_dataset_file};

const PIXELS: usize = 3 * 32 * 32;

/// The two CIFAR variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
        }
    }

    fn classes(self) -> usize {
        match self {
            Self::Cifar10 => 10,
            Self::Cifar100 => 100,
        }
    }

    /// Label bytes before the pixels, and which of them is the label used.
    fn label_bytes(self) -> (usize, usize) {
        match self {
            Self::Cifar10 => (1, 0),
            Self::Cifar100 => (2, 1),
        }
    }

    /// The files of one split, in order.
    pub fn files(self, part: Part) -> Vec<&'static str> {
        match (self, part) {
            (Self::Cifar10, Part::Train) => {
                vec!["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"]
            }
            (Self::Cifar10, Part::Test) => vec!["test_batch.bin"],
            (Self::Cifar100, Part::Train) => vec!["train.bin"],
            (Self::Cifar100, Part::Test) => vec!["test.bin"],
        }
    }
}

/// Read one split from the directory `root`.
pub fn load(variant: Variant, root: &Path, part: Part) -> Result<HostImages, DataError> {
    let mut images = HostImages { pixels: Vec::new(), labels: Vec::new() };
    for name in variant.files(part) {
        let path = root.join(name);
        let bytes = read_dataset_file(variant.name(), &path)?;
        decode(variant, &path, &bytes, &mut images)?;
    }
    Ok(images)
}

/// Append the records of one file's `bytes` to `out`.
pub fn decode(variant: Variant, path: &Path, bytes: &[u8], out: &mut HostImages) -> Result<(), DataError> {
    let (label_bytes, label_at) = variant.label_bytes();
    let record = label_bytes + PIXELS;
    let malformed = |message: String| DataError::Malformed { path: PathBuf::from(path), message };
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(malformed(format!(
            "{} bytes is not a whole number of {record}-byte records ({label_bytes} label byte(s) + {PIXELS} pixels); \
             the last record starting at byte {} is truncated",
            bytes.len(),
            bytes.len() / record * record
        )));
    }
    out.pixels.reserve(bytes.len() / record * PIXELS);
    for (index, chunk) in bytes.chunks_exact(record).enumerate() {
        let label = chunk[label_at];
        if usize::from(label) >= variant.classes() {
            return Err(malformed(format!(
                "record {index} (byte {}) has label {label}, expected 0..{}",
                index * record + label_at,
                variant.classes()
            )));
        }
        out.labels.push(i64::from(label));
        out.pixels.extend(chunk[label_bytes..].iter().map(|&p| f32::from(p) / 255.0));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(variant: Variant, label: u8, fill: u8) -> Vec<u8> {
        let mut bytes = match variant {
            Variant::Cifar10 => vec![label],
            Variant::Cifar100 => vec![label / 5, label],
        };
        bytes.extend(std::iter::repeat_n(fill, PIXELS));
        bytes
    }

    #[test]
    fn records_decode_to_labels_and_unit_pixels() {
        for variant in [Variant::Cifar10, Variant::Cifar100] {
            let bytes = [record(variant, 7, 255), record(variant, 3, 51)].concat();
            let mut out = HostImages { pixels: Vec::new(), labels: Vec::new() };
            decode(variant, Path::new("x.bin"), &bytes, &mut out).unwrap();
            assert_eq!(out.labels, [7, 3]);
            assert_eq!(out.pixels.len(), 2 * PIXELS);
            assert_eq!((out.pixels[0], out.pixels[PIXELS]), (1.0, 0.2));
        }
    }

    #[test]
    fn truncated_files_and_bad_labels_name_the_place() {
        let mut out = HostImages { pixels: Vec::new(), labels: Vec::new() };
        let mut bytes = [record(Variant::Cifar10, 1, 0), record(Variant::Cifar10, 2, 0)].concat();
        bytes.pop();
        let error = decode(Variant::Cifar10, Path::new("b.bin"), &bytes, &mut out).unwrap_err().to_string();
        assert!(error.contains("b.bin") && error.contains("6145 bytes") && error.contains("byte 3073"), "{error}");
        let bytes = [record(Variant::Cifar100, 1, 0), record(Variant::Cifar100, 1, 0)].concat();
        let mut bad = bytes.clone();
        bad[3074 + 1] = 100;
        let error = decode(Variant::Cifar100, Path::new("t.bin"), &bad, &mut out).unwrap_err().to_string();
        assert!(
            error.contains("t.bin") && error.contains("record 1 (byte 3075)") && error.contains("0..100"),
            "{error}"
        );
    }
}
