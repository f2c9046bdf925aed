//! The model pool of a sweep: the trained checkpoints its methods name per dataset and IPC, read
//! by whoever holds the files (`coordinator submit` from disk, the coordinator from the submit
//! request), checked to be a DC-bench ConvNet that fits its dataset, and addressed by the SHA-256
//! of their bytes.
//!
//! The check reads the state dict (a PyTorch `torch.save` file or safetensors) without libtorch
//! and infers the ConvNet's width, depth and norm from its weights ([`beard_formats::convnet`]);
//! the method's `model:` gives the pooling (average unless set) and may pin width, depth and norm,
//! which must then match. A bad file is an error at the node that names it:
//! `sweep.yaml:12:13: methods.DM.checkpoints.cifar10.50: DM.pth: ...`.

use beard_formats::convnet::{self, NormLayer};
use beard_formats::state_dict;
use beard_proto::keys::sha256_hex;
use beard_proto::v1::{ModelConfig, NormKind};

use super::error::{Issue, SweepError};
use super::names::DatasetName;
use super::path::FieldPath;
use super::plan::{CheckpointSettings, Source, Sweep};

/// One checkpoint of the pool, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolModel {
    pub method: String,
    pub dataset: DatasetName,
    pub ipc: u32,
    /// As the sweep writes it.
    pub path: String,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
    /// The ConvNet the weights hold.
    pub model: ModelConfig,
    pub bytes: Vec<u8>,
}

/// Every checkpoint a sweep evaluates, in file order (methods, then datasets and IPCs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolModels(Vec<PoolModel>);

impl PoolModels {
    /// The checkpoint of one method, dataset and IPC.
    pub fn get(&self, method: &str, dataset: DatasetName, ipc: u32) -> Option<&PoolModel> {
        self.0.iter().find(|model| model.method == method && model.dataset == dataset && model.ipc == ipc)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PoolModel> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Sweep {
    /// The checkpoint paths the sweep evaluates, as written, each once, in file order.
    pub fn checkpoint_paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = Vec::new();
        for method in &self.methods {
            if let Source::Files { checkpoints, .. } = &method.source {
                for checkpoint in checkpoints {
                    if !paths.contains(&checkpoint.path.as_str()) {
                        paths.push(&checkpoint.path);
                    }
                }
            }
        }
        paths
    }

    /// Reads and checks every checkpoint the sweep evaluates. `read` gives a path's bytes, or
    /// why it cannot; `text` and `file_name` are the sweep file's, to place errors in it.
    pub fn read_checkpoints(
        &self,
        text: &str,
        file_name: &str,
        mut read: impl FnMut(&str) -> Result<Vec<u8>, String>,
    ) -> Result<PoolModels, SweepError> {
        let mut models = Vec::new();
        for method in &self.methods {
            let Source::Files { checkpoints, checkpoint_model, .. } = &method.source else { continue };
            for checkpoint in checkpoints {
                let located = |message: String| {
                    let path = FieldPath::root()
                        .key("methods")
                        .key(&method.name)
                        .key("checkpoints")
                        .key(checkpoint.dataset)
                        .key(checkpoint.ipc);
                    SweepError::from_issue(file_name, text, Issue::new(path, format!("{}: {message}", checkpoint.path)))
                };
                let bytes = read(&checkpoint.path).map_err(located)?;
                let model = inspect(&bytes, checkpoint.dataset, checkpoint_model).map_err(located)?;
                models.push(PoolModel {
                    method: method.name.clone(),
                    dataset: checkpoint.dataset,
                    ipc: checkpoint.ipc,
                    path: checkpoint.path.clone(),
                    sha256: sha256_hex(&bytes),
                    model,
                    bytes,
                });
            }
        }
        Ok(PoolModels(models))
    }
}

/// The ConvNet config of checkpoint `bytes` for `dataset`, or what is wrong with them.
pub fn inspect(bytes: &[u8], dataset: DatasetName, settings: &CheckpointSettings) -> Result<ModelConfig, String> {
    let tensors = state_dict::read(bytes).map_err(|error| error.to_string())?;
    let layout = convnet::infer(&tensors).map_err(|error| error.to_string())?;
    let fits = [
        ("input channels", layout.channels, 3),
        ("classes", layout.classes, dataset.classes()),
        ("image size", layout.image_size, dataset.image_size()),
    ];
    if let Some((what, found, wanted)) = fits.into_iter().find(|(_, found, wanted)| found != wanted) {
        return Err(format!("the weights are for {what} {found}, {dataset} has {wanted}"));
    }
    let too_large = |what: &str, value: usize| format!("{what} {value} is too large");
    let width = u32::try_from(layout.width).map_err(|_| too_large("width", layout.width))?;
    let depth = u32::try_from(layout.depth).map_err(|_| too_large("depth", layout.depth))?;
    for (what, pinned, held) in [("width", settings.width, width), ("depth", settings.depth, depth)] {
        if let Some(pinned) = pinned.filter(|pinned| *pinned != held) {
            return Err(format!("the method's model.{what} is {pinned}, the weights have {what} {held}"));
        }
    }
    let norm = norm_kind(layout.norm);
    if let Some(pinned) = settings.norm.filter(|pinned| *pinned != norm) {
        return Err(format!("the method's model.norm is {}, the weights have {}", norm_name(pinned), norm_name(norm)));
    }
    Ok(ModelConfig { width, depth, norm: norm.into(), pool: settings.pool.into() })
}

fn norm_kind(layer: NormLayer) -> NormKind {
    match layer {
        NormLayer::Instance => NormKind::Instance,
        NormLayer::Batch => NormKind::Batch,
        NormLayer::None => NormKind::None,
    }
}

/// The sweep file's word for a norm.
fn norm_name(norm: NormKind) -> &'static str {
    match norm {
        NormKind::Instance => "instance",
        NormKind::Batch => "batch",
        NormKind::None | NormKind::Unspecified => "none",
    }
}

/// safetensors bytes of a small ConvNet (width 4, depth 3, instance norm) for 32x32 images and
/// 10 classes, every weight `value`: a valid checkpoint for tests.
#[cfg(test)]
pub(crate) fn small_convnet(value: f32) -> Vec<u8> {
    use beard_formats::state_dict::{Format, encode};
    use beard_formats::torchfile::{Dtype, StoredTensor};
    let tensor = |shape: &[usize]| StoredTensor {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        data: value.to_le_bytes().repeat(shape.iter().product()),
    };
    let mut dict = Vec::new();
    for block in 0..3 {
        let inputs = if block == 0 { 3 } else { 4 };
        dict.push((format!("features.{}.weight", 4 * block), tensor(&[4, inputs, 3, 3])));
        dict.push((format!("features.{}.bias", 4 * block), tensor(&[4])));
        dict.push((format!("features.{}.weight", 4 * block + 1), tensor(&[4])));
        dict.push((format!("features.{}.bias", 4 * block + 1), tensor(&[4])));
    }
    dict.push(("classifier.weight".to_owned(), tensor(&[10, 64])));
    dict.push(("classifier.bias".to_owned(), tensor(&[10])));
    encode(&dict, Format::Safetensors).expect("encodes")
}
