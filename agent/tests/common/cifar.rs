//! Helpers for the tests on the real CIFAR-10 files in the shared data directory: the dataset
//! reference, the model pool's DM reference checkpoint, DC's distilled sets as train specs, and
//! counting correct predictions.

use std::path::{Path, PathBuf};

use beard_agent::data::{Split, dataset_info};
use beard_agent::model::{ConvNet, ConvNetConfig};
use beard_proto::v1::{
    Augmentation, DatasetRef, DistilledFile, DistilledSource, LrSchedule, NormKind, Optimizer, TrainSpec,
    TrainingConfig, distilled_source,
};
use tch::{Device, Kind};

/// The model pool's DM checkpoint (CIFAR-10, IPC 50, width 128) the parity tests attack.
pub const REFERENCE_CHECKPOINT: &str = "DM_ConvNet_CIFAR10_50_None.pth";

/// [`REFERENCE_CHECKPOINT`]'s path and a frozen CPU model with its weights.
pub fn reference_model(data: &Path) -> (PathBuf, ConvNet) {
    let info = dataset_info("cifar10").expect("cifar10");
    let config = ConvNetConfig::new(&super::model_config(128, NormKind::Instance), &info).expect("config");
    let checkpoint = data.join("model_pool").join(REFERENCE_CHECKPOINT);
    let bytes = std::fs::read(&checkpoint).expect("read the checkpoint");
    let mut model = ConvNet::from_checkpoint(&config, &bytes, Device::Cpu).expect("checkpoint loads");
    model.freeze();
    (checkpoint, model)
}

pub fn cifar10(data: &Path) -> DatasetRef {
    DatasetRef { name: "cifar10".into(), root: data.join("cifar-10-batches-bin").display().to_string() }
}

/// DC's `evaluate_synset` optimizer (SOURCES.md: SGD lr 0.01, momentum 0.9, weight decay 5e-4,
/// batch 256) on the DC set of `ipc` images per class (stored normalized), an instance-norm
/// avg-pool depth-3 ConvNet of `width` channels.
pub fn dc_spec(
    data: &Path,
    ipc: u32,
    width: u32,
    epochs: u32,
    lr_schedule: LrSchedule,
    augmentation: Augmentation,
) -> TrainSpec {
    let path = data.join(format!("distilled/DC_CIFAR10_ConvNet_ipc{ipc}.res.pt"));
    TrainSpec {
        dataset: Some(cifar10(data)),
        method: "DC".into(),
        ipc,
        seed: 0,
        source: Some(DistilledSource {
            source: Some(distilled_source::Source::File(DistilledFile {
                path: path.display().to_string(),
                experiment: 0,
                stored: "normalized".into(),
                labels_path: String::new(),
                mosaic: false,
            })),
        }),
        training: Some(reference_training(epochs, lr_schedule, augmentation)),
        model: Some(super::model_config(width, NormKind::Instance)),
    }
}

/// DC-bench's `evaluate_synset` optimizer: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256.
pub fn reference_training(epochs: u32, lr_schedule: LrSchedule, augmentation: Augmentation) -> TrainingConfig {
    TrainingConfig {
        optimizer: Optimizer::Sgd.into(),
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 5e-4,
        epochs,
        batch_size: 256,
        lr_schedule: lr_schedule.into(),
        augmentation: augmentation.into(),
        ..Default::default()
    }
}

/// Correct predictions of `model` on the first `limit` images of `split`, in chunks of 500.
pub fn correct(model: &ConvNet, split: &Split, limit: usize) -> i64 {
    let limit = limit.min(split.len()) as i64;
    tch::no_grad(|| {
        (0..limit)
            .step_by(500)
            .map(|start| {
                let length = 500.min(limit - start);
                let logits = model.forward(&split.images.narrow(0, start, length), false).expect("forward");
                let hits = logits.argmax(1, false).eq_tensor(&split.labels.narrow(0, start, length));
                hits.to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[])
            })
            .sum()
    })
}
