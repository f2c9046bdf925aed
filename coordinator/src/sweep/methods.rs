//! The `methods:` section: each method's name and where its distilled sets come from — the
//! built-in `random` baseline, or one distilled-set file per dataset and IPC.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

use super::collections::{MapKey, OrderedMap};
use super::names::DatasetName;
use super::scalars::{Count, Text};

/// A method's name as the file writes it (a mapping key of `methods:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MethodName(pub(super) String);

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl MapKey for MethodName {
    const WHAT: &'static str = "method";

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        if text.trim().is_empty() {
            Err(E::custom("expected a non-empty method name"))
        } else {
            Ok(MethodName(text.to_owned()))
        }
    }
}

/// An IPC as a mapping key of a method's per-dataset file list.
impl MapKey for Count {
    const WHAT: &'static str = "ipc";

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        Err(E::custom(format_args!("expected an ipc (an integer >= 1) as the key, found '{text}'")))
    }

    fn from_integer<E: de::Error>(value: u64) -> Result<Self, E> {
        match u32::try_from(value) {
            Ok(ipc) if ipc >= 1 => Ok(Count(ipc)),
            _ => Err(E::custom(format_args!("expected an ipc (an integer >= 1), found {value}"))),
        }
    }
}

/// How a distilled-set file stores its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Stored {
    /// Normalized with the dataset's mean and std, as DC/DSA/DM/MTT release them.
    #[default]
    Normalized,
    /// Raw pixels in [0, 1].
    Pixels,
}

impl Stored {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Stored::Normalized => "normalized",
            Stored::Pixels => "pixels",
        }
    }
}

/// One distilled set's files: `path`, or `{ images: path, labels: path }` when the labels are a
/// separate file (MTT's `images_best.pt` / `labels_best.pt`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FileEntry {
    pub(super) images: Text,
    pub(super) labels: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with images and labels")]
struct SplitFiles {
    images: Text,
    labels: Text,
}

impl<'de> Deserialize<'de> for FileEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FileEntryVisitor)
    }
}

struct FileEntryVisitor;

impl<'de> Visitor<'de> for FileEntryVisitor {
    type Value = FileEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a file path or a mapping with images and labels")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FileEntry, E> {
        let images = Text::deserialize(de::value::StrDeserializer::<E>::new(v))?;
        Ok(FileEntry { images, labels: None })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileEntry, A::Error> {
        let split = SplitFiles::deserialize(MapAccessDeserializer::new(map))?;
        Ok(FileEntry { images: split.images, labels: Some(split.labels) })
    }
}

/// A method whose distilled sets are files.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with files (per dataset, per ipc) and optionally stored and experiment"
)]
pub(super) struct FileSet {
    pub(super) files: OrderedMap<DatasetName, OrderedMap<Count, FileEntry>>,
    #[serde(default)]
    pub(super) stored: Stored,
    /// Index of the experiment inside DC/DSA/DM/IDM result files.
    #[serde(default)]
    pub(super) experiment: u32,
}

/// Where a method's distilled training sets come from.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum MethodSource {
    /// `random`: IPC real images per class, drawn with the task's seed.
    Random,
    Files(FileSet),
}

impl<'de> Deserialize<'de> for MethodSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SourceVisitor)
    }
}

struct SourceVisitor;

impl<'de> Visitor<'de> for SourceVisitor {
    type Value = MethodSource;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`random` or a mapping with `files:`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MethodSource, E> {
        match v {
            "random" => Ok(MethodSource::Random),
            other => Err(E::custom(format_args!(
                "unknown built-in method '{other}', expected `random` or a mapping with `files:`"
            ))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MethodSource, A::Error> {
        FileSet::deserialize(MapAccessDeserializer::new(map)).map(MethodSource::Files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_random_or_files() {
        let random: MethodSource = yaml_serde::from_str("random").unwrap();
        assert_eq!(random, MethodSource::Random);
        let files: MethodSource =
            yaml_serde::from_str("files: { cifar10: { 1: a.pt, 10: b.pt } }\nstored: pixels\n").unwrap();
        let MethodSource::Files(set) = files else { panic!("expected files") };
        assert_eq!(set.stored, Stored::Pixels);
        assert_eq!(set.experiment, 0);
        let cifar = set.files.get(&DatasetName::Cifar10).unwrap();
        assert_eq!(cifar.get(&Count(10)).map(|t| t.images.0.as_str()), Some("b.pt"));
        assert_eq!(cifar.get(&Count(10)).map(|t| t.labels.is_none()), Some(true));
    }

    #[test]
    fn a_file_entry_may_name_a_separate_labels_file() {
        let files: MethodSource =
            yaml_serde::from_str("files: { cifar10: { 10: { images: i.pt, labels: l.pt } } }").unwrap();
        let MethodSource::Files(set) = files else { panic!("expected files") };
        let entry = set.files.get(&DatasetName::Cifar10).and_then(|c| c.get(&Count(10))).cloned();
        assert_eq!(entry.map(|e| (e.images.0, e.labels.map(|l| l.0))), Some(("i.pt".into(), Some("l.pt".into()))));
        assert!(yaml_serde::from_str::<MethodSource>("files: { cifar10: { 10: { images: i.pt } } }").is_err());
        assert!(
            yaml_serde::from_str::<MethodSource>("files: { cifar10: { 10: { images: i.pt, labels: l.pt, x: y } } }")
                .is_err()
        );
    }

    #[test]
    fn other_sources_are_refused() {
        assert!(yaml_serde::from_str::<MethodSource>("gaussian").is_err());
        assert!(yaml_serde::from_str::<MethodSource>("files: { cifar10: { 0: a.pt } }").is_err());
        assert!(yaml_serde::from_str::<MethodSource>("{ files: { cifar10: { 1: a.pt } }, x: 1 }").is_err());
    }
}
