//! The `methods:` section: each method's name and where its models come from — the built-in
//! `random` baseline, one distilled-set file per dataset and IPC, one trained checkpoint per
//! dataset and IPC (the model pool; a method may mix files and checkpoints), the dataset's
//! whole training split (`full`, BEARD's Full-size baseline) with its own epochs and batch size,
//! or sets distilled on the cluster (`distill:`, see [`super::distill`]). A method that trains
//! models may carry its own `training:` protocol, whose fields replace the sweep's.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

use super::collections::{MapKey, OrderedMap};
use super::distill::DistillSettings;
use super::document::{Norm, OwnTraining, Pool};
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

/// A method whose models come from files: distilled sets to train on, or trained checkpoints to
/// attack as they are, per dataset and IPC (one of the two maps at least).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FileSet {
    pub(super) files: Option<OrderedMap<DatasetName, OrderedMap<Count, FileEntry>>>,
    pub(super) stored: Stored,
    /// Index of the experiment inside DC/DSA/DM/IDM result files.
    pub(super) experiment: u32,
    /// The images are IDM's and BACON's 2x2 mosaics, decoded to four images each for training.
    pub(super) mosaic: bool,
    /// Model-pool checkpoints: PyTorch state dicts or safetensors, read by `coordinator submit`.
    pub(super) checkpoints: Option<OrderedMap<DatasetName, OrderedMap<Count, Text>>>,
    pub(super) model: CheckpointModel,
}

impl FileSet {
    /// The distilled-set file of a dataset and IPC.
    pub(super) fn file(&self, dataset: DatasetName, ipc: Count) -> Option<&FileEntry> {
        self.files.as_ref()?.get(&dataset)?.get(&ipc)
    }

    /// The checkpoint of a dataset and IPC.
    pub(super) fn checkpoint(&self, dataset: DatasetName, ipc: Count) -> Option<&Text> {
        self.checkpoints.as_ref()?.get(&dataset)?.get(&ipc)
    }
}

/// `model:` of a method with checkpoints: the pooling, which the weights cannot tell (average by
/// default), and any of width, depth and norm to check against what the weights hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the checkpoints' model (width, depth, norm, pool)")]
pub(super) struct CheckpointModel {
    pub(super) width: Option<Count>,
    pub(super) depth: Option<Count>,
    pub(super) norm: Option<Norm>,
    pub(super) pool: Option<Pool>,
}

/// `full:` — training on the whole training split, which takes far fewer epochs than a distilled
/// set (and usually a larger batch) than the sweep's `training:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "full-set training settings (epochs, batch_size)")]
pub(super) struct FullSettings {
    pub(super) epochs: Count,
    /// The sweep's `training.batch_size` when left out.
    #[serde(default)]
    pub(super) batch_size: Option<Count>,
}

/// One entry of `methods:`: where the method's training sets come from, and its own training
/// protocol where it has one.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MethodEntry {
    pub(super) source: MethodSource,
    pub(super) training: Option<OwnTraining>,
}

/// Where a method's training sets come from.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum MethodSource {
    /// `random`: IPC real images per class, drawn with the task's seed.
    Random,
    Files(FileSet),
    /// `{ full: { epochs, batch_size } }`: the whole training split; IPC does not apply.
    Full(FullSettings),
    /// `{ distill: { method, ... } }`: a set learned per dataset, IPC and seed by a distill task.
    Distill(DistillSettings),
}

impl<'de> Deserialize<'de> for MethodEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SourceVisitor)
    }
}

const EXPECTED: &str = "`random`, a mapping with `files:` (and optionally stored and experiment) and/or \
                        `checkpoints:` (and optionally model), a mapping with `full:`, or one with `distill:`";

/// A method's mapping as written, before deciding between files and `full:`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with files, stored, experiment, mosaic, checkpoints, model, full or distill (and training)"
)]
struct SourceFields {
    files: Option<OrderedMap<DatasetName, OrderedMap<Count, FileEntry>>>,
    stored: Option<Stored>,
    experiment: Option<u32>,
    mosaic: Option<bool>,
    checkpoints: Option<OrderedMap<DatasetName, OrderedMap<Count, Text>>>,
    model: Option<CheckpointModel>,
    full: Option<FullSettings>,
    distill: Option<DistillSettings>,
    training: Option<OwnTraining>,
}

impl SourceFields {
    fn entry(mut self) -> Result<MethodEntry, &'static str> {
        let training = self.training.take();
        if training.is_some() && self.files.is_none() && self.checkpoints.is_some() {
            return Err("a method with only `checkpoints:` attacks its models as they are; no `training:` applies");
        }
        if let (Some(_), Some(own)) = (&self.full, &training)
            && (own.epochs.is_some() || own.batch_size.is_some())
        {
            return Err("`full:` sets the epochs and batch size of its training; its `training:` takes the other \
                        fields");
        }
        Ok(MethodEntry { source: self.source()?, training })
    }

    fn source(self) -> Result<MethodSource, &'static str> {
        let SourceFields { files, stored, experiment, mosaic, checkpoints, model, full, distill, training: _ } = self;
        let describes_files = stored.is_some() || experiment.is_some() || mosaic.is_some();
        if let Some(distill) = distill {
            let others = files.is_some() || checkpoints.is_some() || full.is_some();
            if others || describes_files || model.is_some() {
                return Err("`distill:` learns the method's sets on the cluster; it takes no `files`, \
                            `checkpoints`, `full`, `stored`, `experiment`, `mosaic` or `model` beside it");
            }
            return match distill.mismatch() {
                Some(mismatch) => Err(mismatch),
                None => Ok(MethodSource::Distill(distill)),
            };
        }
        if let Some(full) = full {
            return match (files.is_some() || checkpoints.is_some(), describes_files || model.is_some()) {
                (false, false) => Ok(MethodSource::Full(full)),
                (true, _) => Err("a method takes its models either from files (`files:`, `checkpoints:`) or from \
                                  `full:`, not both"),
                (false, true) => {
                    Err("`stored`, `experiment`, `mosaic` and `model` describe files; `full:` takes none of them")
                }
            };
        }
        if files.is_none() && describes_files {
            return Err(
                "`stored`, `experiment` and `mosaic` describe distilled-set files, and this method has no `files:`",
            );
        }
        if checkpoints.is_none() && model.is_some() {
            return Err("`model` describes the method's checkpoints, and it has no `checkpoints:` (the sweep's \
                        top-level `model:` is the one for trained models)");
        }
        if files.is_none() && checkpoints.is_none() {
            return Err("missing field `files` (or `checkpoints`, or `full`, or `distill`)");
        }
        Ok(MethodSource::Files(FileSet {
            files,
            stored: stored.unwrap_or_default(),
            experiment: experiment.unwrap_or(0),
            mosaic: mosaic.unwrap_or(false),
            checkpoints,
            model: model.unwrap_or_default(),
        }))
    }
}

struct SourceVisitor;

impl<'de> Visitor<'de> for SourceVisitor {
    type Value = MethodEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MethodEntry, E> {
        match v {
            "random" => Ok(MethodEntry { source: MethodSource::Random, training: None }),
            "full" => Err(E::custom("`full` needs its own epochs: write `{ full: { epochs: N, batch_size: B } }`")),
            other => Err(E::custom(format_args!("unknown built-in method '{other}', expected {EXPECTED}"))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MethodEntry, A::Error> {
        SourceFields::deserialize(MapAccessDeserializer::new(map))?.entry().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Result<MethodSource, yaml_serde::Error> {
        yaml_serde::from_str::<MethodEntry>(text).map(|entry| entry.source)
    }

    #[test]
    fn a_method_may_carry_its_own_training_protocol() {
        let entry: MethodEntry =
            yaml_serde::from_str("files: { cifar10: { 1: a.pt } }\ntraining: { aug: none, epochs: 300 }").unwrap();
        let own = entry.training.expect("its own protocol");
        assert_eq!(own.over(&super::super::document::Training::default()).epochs, Count(300));
        for (bad, needle) in [
            ("checkpoints: { cifar10: { 1: a.pth } }\ntraining: { aug: none }", "no `training:` applies"),
            ("full: { epochs: 3 }\ntraining: { epochs: 5 }", "`full:` sets the epochs"),
            ("files: { cifar10: { 1: a.pt } }\ntraining: { adversarial: {} }", "unknown field `adversarial`"),
        ] {
            let error = yaml_serde::from_str::<MethodEntry>(bad).unwrap_err().to_string();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }

    #[test]
    fn sources_are_random_or_files() {
        let random = source("random").unwrap();
        assert_eq!(random, MethodSource::Random);
        let files = source("files: { cifar10: { 1: a.pt, 10: b.pt } }\nstored: pixels\n").unwrap();
        let MethodSource::Files(set) = files else { panic!("expected files") };
        assert_eq!(set.stored, Stored::Pixels);
        assert_eq!(set.experiment, 0);
        let cifar = set.files.as_ref().and_then(|files| files.get(&DatasetName::Cifar10)).unwrap();
        assert_eq!(cifar.get(&Count(10)).map(|t| t.images.0.as_str()), Some("b.pt"));
        assert_eq!(cifar.get(&Count(10)).map(|t| t.labels.is_none()), Some(true));
    }

    #[test]
    fn a_file_entry_may_name_a_separate_labels_file() {
        let files = source("files: { cifar10: { 10: { images: i.pt, labels: l.pt } } }").unwrap();
        let MethodSource::Files(set) = files else { panic!("expected files") };
        let entry = set.file(DatasetName::Cifar10, Count(10)).cloned();
        assert_eq!(entry.map(|e| (e.images.0, e.labels.map(|l| l.0))), Some(("i.pt".into(), Some("l.pt".into()))));
        assert!(source("files: { cifar10: { 10: { images: i.pt } } }").is_err());
        assert!(source("files: { cifar10: { 10: { images: i.pt, labels: l.pt, x: y } } }").is_err());
    }

    #[test]
    fn full_sources_have_their_own_epochs_and_optional_batch_size() {
        let full = source("full: { epochs: 2, batch_size: 256 }").unwrap();
        assert_eq!(full, MethodSource::Full(FullSettings { epochs: Count(2), batch_size: Some(Count(256)) }));
        let full = source("full: { epochs: 3 }").unwrap();
        assert_eq!(full, MethodSource::Full(FullSettings { epochs: Count(3), batch_size: None }));
        for (bad, needle) in [
            ("full", "needs its own epochs"),
            ("full: {}", "missing field `epochs`"),
            ("full: { epochs: 0 }", "found 0"),
            ("{ full: { epochs: 1 }, files: { cifar10: { 1: a.pt } } }", "not both"),
            ("{ full: { epochs: 1 }, stored: pixels }", "takes none of them"),
            ("{ stored: pixels }", "has no `files:`"),
            ("{ experiment: 1, checkpoints: { cifar10: { 1: a.pth } } }", "has no `files:`"),
            ("{ model: { pool: max }, files: { cifar10: { 1: a.pt } } }", "has no `checkpoints:`"),
            ("{ full: { epochs: 1 }, checkpoints: { cifar10: { 1: a.pth } } }", "not both"),
            ("{ full: { epochs: 1 }, model: { pool: max } }", "takes none of them"),
            ("{}", "missing field `files` (or `checkpoints`, or `full`, or `distill`)"),
            ("{ distill: { method: dm }, full: { epochs: 1 } }", "takes no `files`"),
            ("{ distill: { method: dm }, stored: pixels }", "takes no `files`"),
        ] {
            let err = source(bad).unwrap_err();
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn checkpoints_mix_with_files_and_may_describe_their_model() {
        let text = "files: { cifar10: { 1: a.pt } }\ncheckpoints: { cifar10: { 50: DM.pth } }\nmodel: { pool: max, width: 128 }";
        let MethodSource::Files(set) = source(text).unwrap() else { panic!("expected files") };
        assert!(set.file(DatasetName::Cifar10, Count(1)).is_some());
        assert_eq!(set.checkpoint(DatasetName::Cifar10, Count(50)).map(|path| path.0.as_str()), Some("DM.pth"));
        assert_eq!(set.model, CheckpointModel { width: Some(Count(128)), pool: Some(Pool::Max), ..Default::default() });
        let MethodSource::Files(only) = source("checkpoints: { cifar10: { 50: DM.pth } }").unwrap() else {
            panic!("expected files")
        };
        assert!(only.files.is_none());
        assert!(source("checkpoints: { cifar10: { 50: DM.pth } }\nmodel: { kernel: 5 }").is_err());
    }

    #[test]
    fn other_sources_are_refused() {
        assert!(source("gaussian").is_err());
        assert!(source("files: { cifar10: { 0: a.pt } }").is_err());
        assert!(source("{ files: { cifar10: { 1: a.pt } }, x: 1 }").is_err());
    }
}
