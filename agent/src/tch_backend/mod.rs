//! The libtorch [`Backend`]: distils sets, trains ConvNets on them and attacks them on one device.
//!
//! It keeps every dataset it loaded resident on its device for the life of the agent, so a run of
//! tasks on one dataset uploads it once. Task input never reaches an `unwrap`: bad specs and
//! checkpoints fail permanently, libtorch errors become retryable or `out_of_memory` failures
//! ([`failure`]), and a panic inside libtorch is caught at the task boundary and reported the same
//! way.
//!
//! - [`device`]: parsing and describing devices.
//! - [`failure`]: mapping errors to [`TaskFailure`]s.

pub mod device;
pub mod failure;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use beard_proto::keys::sha256_hex;
use beard_proto::v1::{
    AttackShard, AttackSpec, DatasetRef, DistillResult, DistillSpec, Snapshot, TaskFailure, TrainResult, TrainSpec,
};
use tch::Device;

use crate::attacks::{self, AttackConfigError};
use crate::backend::{AttackCheckpoints, Backend, DistilledOutput, TaskContext};
use crate::data::DatasetInfo;
use crate::data::{DataError, Dataset, distilled};
use crate::distill::{self, output};
use crate::eval::{self, Plan, Protocol};
use crate::model::{ConvNet, ConvNetConfig};
use crate::precision::{self, Tf32, Work};
use crate::random::TaskGenerator;
use crate::train;
use crate::transfer::Judge;

pub use device::{DeviceError, describe, parse_device};
use failure::invalid_spec;

/// Images per attack chunk when the task leaves it to the agent: small chunks keep a CPU's
/// activations in cache, a GPU wants large ones.
const DEFAULT_CPU_CHUNK: usize = 50;
const DEFAULT_GPU_CHUNK: usize = 1000;

/// The libtorch backend on one device.
pub struct TchBackend {
    device: Device,
    tf32: Tf32,
    datasets: HashMap<(String, String), Dataset>,
}

impl TchBackend {
    /// A backend that runs everything on `device`, in exact float32 on a GPU.
    pub fn new(device: Device) -> Self {
        Self::with_tf32(device, Tf32::Off)
    }

    /// A backend that may use TF32 on a GPU where `tf32` allows it; results say so. The
    /// precision is set before each task ([`Self::prepare_precision`]).
    pub fn with_tf32(device: Device, tf32: Tf32) -> Self {
        Self { device, tf32, datasets: HashMap::new() }
    }

    /// Set the precision of `work` before it starts (on a GPU; a CPU computes in fp32).
    fn prepare_precision(&self, work: Work) {
        if self.device.is_cuda() {
            precision::use_for(self.tf32, work);
        }
    }

    /// The device this backend runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The chunk size used when a task's evaluation config says 0.
    pub fn default_chunk(&self) -> usize {
        if self.device.is_cuda() { DEFAULT_GPU_CHUNK } else { DEFAULT_CPU_CHUNK }
    }

    /// The dataset `reference` names, loading it onto the device the first time.
    fn dataset(&mut self, reference: &DatasetRef) -> Result<&Dataset, DataError> {
        Ok(match self.datasets.entry((reference.name.clone(), reference.root.clone())) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Dataset::load(reference, self.device)?),
        })
    }

    /// Distillation is optimization, so it runs at the training precision.
    fn run_distill(
        &mut self,
        spec: &DistillSpec,
        resume: Option<&Snapshot>,
        ctx: &TaskContext,
    ) -> Result<DistilledOutput, TaskFailure> {
        self.prepare_precision(Work::Training);
        let description = self.device_description();
        let dataset_ref = spec.dataset.as_ref().ok_or_else(|| invalid_spec("the distill spec names no dataset"))?;
        let model_config = spec.model.as_ref().ok_or_else(|| invalid_spec("the distill spec names no model"))?;
        let dataset = self.dataset(dataset_ref)?;
        let config = ConvNetConfig::new(model_config, &dataset.info)?;
        let train = dataset.train()?;
        let started = Instant::now();
        let learned = distill::run(spec, train, &dataset.info, &config, resume, ctx)?;
        let seconds = started.elapsed().as_secs_f64();
        let encoded = output::encode(&learned.images, &learned.labels)?;
        let record = DistillResult {
            set_sha256: sha256_hex(&encoded.torch),
            safetensors_sha256: sha256_hex(&encoded.safetensors),
            seconds,
            resumed_from: learned.resumed_from,
            final_loss: learned.final_loss,
            device: description,
        };
        Ok(DistilledOutput { record, set: encoded.torch, safetensors: encoded.safetensors })
    }

    fn run_train(&mut self, spec: &TrainSpec, ctx: &TaskContext) -> Result<TrainResult, TaskFailure> {
        let device = self.device;
        self.prepare_precision(Work::Training);
        let description = self.device_description();
        let dataset_ref = spec.dataset.as_ref().ok_or_else(|| invalid_spec("the train spec names no dataset"))?;
        let model_config = spec.model.as_ref().ok_or_else(|| invalid_spec("the train spec names no model"))?;
        let training = spec.training.as_ref().ok_or_else(|| invalid_spec("the train spec has no training config"))?;
        let dataset = self.dataset(dataset_ref)?;
        let config = ConvNetConfig::new(model_config, &dataset.info)?;
        let set = distilled::select(spec.source.as_ref(), dataset, spec.ipc, spec.seed)?;
        let model = ConvNet::new(&config, u64::from(spec.seed), device)?;
        let started = Instant::now();
        let final_loss = train::train(&model, &set, &dataset.info, training, spec.seed, ctx)?;
        let train_seconds = started.elapsed().as_secs_f64();
        let checkpoint = model.checkpoint()?;
        Ok(TrainResult {
            checkpoint_sha256: sha256_hex(&checkpoint),
            checkpoint,
            train_seconds,
            train_images: set.len() as u32,
            final_loss,
            device: description,
        })
    }

    fn run_attack(
        &mut self,
        spec: &AttackSpec,
        checkpoints: &AttackCheckpoints,
        ctx: &TaskContext,
    ) -> Result<AttackShard, TaskFailure> {
        let train = spec.train.as_ref().ok_or_else(|| invalid_spec("the attack spec has no train spec"))?;
        let generator =
            TaskGenerator::seeded(u64::from(train.seed), self.device).map_err(|error| failure::torch(&error))?;
        let attack = spec.attack.as_ref().map_or(Err(AttackConfigError::Missing), |config| {
            attacks::from_config(config, spec.targeted, &generator)
        })?;
        let dataset_ref = train.dataset.as_ref().ok_or_else(|| invalid_spec("the train spec names no dataset"))?;
        let model_config = train.model.as_ref().ok_or_else(|| invalid_spec("the train spec names no model"))?;
        let evaluation = spec.evaluation.unwrap_or_default();
        let batch_size = match evaluation.batch_size {
            0 => self.default_chunk(),
            size => size as usize,
        };
        self.prepare_precision(Work::Attack);
        let device_description = self.device_description();
        let device = self.device;
        let dataset = self.dataset(dataset_ref)?;
        let config = ConvNetConfig::new(model_config, &dataset.info)?;
        let mut model = ConvNet::from_checkpoint(&config, &checkpoints.source, device)?;
        model.freeze();
        let judges = judges(spec, &checkpoints.targets, &dataset.info, device)?;
        let plan = Plan {
            protocol: Protocol::prepare(evaluation.mode(), &mut model)?,
            test_samples: evaluation.test_samples as usize,
            batch_size,
            targets: spec.targeted.then(|| evaluation.target_policy()),
            seed: train.seed,
            device: device_description,
        };
        let classes = dataset.info.classes as i64;
        Ok(eval::evaluate_with_judges(&model, &dataset.test, classes, attack.as_ref(), &plan, ctx, &judges)?)
    }
}

/// The transfer targets of `spec`, their models built from `checkpoints` (in the spec's order).
fn judges(
    spec: &AttackSpec,
    checkpoints: &[Vec<u8>],
    info: &DatasetInfo,
    device: Device,
) -> Result<Vec<Judge>, TaskFailure> {
    if checkpoints.len() != spec.transfer_targets.len() {
        return Err(invalid_spec(format!(
            "{} transfer targets but {} checkpoints",
            spec.transfer_targets.len(),
            checkpoints.len()
        )));
    }
    let mode = spec.evaluation.unwrap_or_default().mode();
    spec.transfer_targets
        .iter()
        .zip(checkpoints)
        .map(|(target, checkpoint)| {
            let train = target.train.as_ref().ok_or_else(|| invalid_spec("a transfer target has no train spec"))?;
            let model = train.model.as_ref().ok_or_else(|| invalid_spec("a transfer target names no model"))?;
            let config = ConvNetConfig::new(model, info)?;
            let model = ConvNet::from_checkpoint(&config, checkpoint, device)?;
            Ok(Judge::new(target.train_task_id.clone(), model, mode)?)
        })
        .collect()
}

impl Backend for TchBackend {
    fn device_description(&self) -> String {
        describe(self.device)
    }

    fn distill(
        &mut self,
        spec: &DistillSpec,
        resume: Option<&Snapshot>,
        ctx: &TaskContext,
    ) -> Result<DistilledOutput, TaskFailure> {
        guarded(|| self.run_distill(spec, resume, ctx))
    }

    fn train(&mut self, spec: &TrainSpec, ctx: &TaskContext) -> Result<TrainResult, TaskFailure> {
        guarded(|| self.run_train(spec, ctx))
    }

    fn attack(
        &mut self,
        spec: &AttackSpec,
        checkpoints: &AttackCheckpoints,
        ctx: &TaskContext,
    ) -> Result<AttackShard, TaskFailure> {
        guarded(|| self.run_attack(spec, checkpoints, ctx))
    }
}

/// Run one task, turning a panic (libtorch reports some device errors that way) into a failure.
fn guarded<T>(task: impl FnOnce() -> Result<T, TaskFailure>) -> Result<T, TaskFailure> {
    catch_unwind(AssertUnwindSafe(task)).unwrap_or_else(|payload| Err(failure::panic(payload.as_ref())))
}
