//! Helpers the agent's integration tests share: small specs on the built-in `synthetic` dataset
//! and a small trained model, all with fixed seeds.
#![allow(dead_code)] // each test binary uses a different subset

pub mod cifar;
pub mod files;
pub mod parity;
pub mod tinyimagenet;

use beard_agent::backend::{Backend, TaskContext};
use beard_agent::data::Dataset;
use beard_agent::model::{ConvNet, ConvNetConfig};
use beard_agent::random::TaskGenerator;
use beard_agent::tch_backend::TchBackend;
use beard_proto::v1::{
    AttackConfig, AttackSpec, DatasetRef, DistilledSource, EvaluationConfig, ModelConfig, NormKind, Optimizer,
    PoolKind, RandomSubset, TargetPolicy, TrainSpec, TrainingConfig, distilled_source,
};
use tch::Device;

pub const EPS: f64 = 8.0 / 255.0;

/// Every test binary of the agent keeps freed host memory for reuse from its start, before any
/// test thread allocates, as the agent's binary does: in-process training and attacks then run
/// as fast as the agent's (`beard_agent::host_memory`).
#[ctor::ctor(unsafe)]
fn keep_freed_memory() {
    beard_agent::host_memory::keep_freed_memory();
}

/// A task's random stream of seed 0 on the CPU, for attacks with random starts.
pub fn generator() -> TaskGenerator {
    TaskGenerator::seeded(0, Device::Cpu).expect("a CPU generator")
}

pub fn synthetic() -> DatasetRef {
    DatasetRef { name: "synthetic".into(), root: String::new() }
}

pub fn model_config(width: u32, norm: NormKind) -> ModelConfig {
    ModelConfig { width, depth: 3, norm: norm as i32, pool: PoolKind::Avg as i32 }
}

/// IPC-10 random subset of `synthetic`, Adam 1e-3, batch 128, a width-16 instance-norm ConvNet.
pub fn train_spec(seed: u32, epochs: u32) -> TrainSpec {
    TrainSpec {
        dataset: Some(synthetic()),
        method: "random".into(),
        ipc: 10,
        seed,
        source: Some(DistilledSource { source: Some(distilled_source::Source::Random(RandomSubset {})) }),
        training: Some(TrainingConfig {
            optimizer: Optimizer::Adam as i32,
            lr: 1e-3,
            momentum: 0.0,
            weight_decay: 0.0,
            epochs,
            batch_size: 128,
            ..Default::default()
        }),
        model: Some(model_config(16, NormKind::Instance)),
    }
}

pub fn attack_spec(train: &TrainSpec, attack: AttackConfig, targeted: bool, samples: u32) -> AttackSpec {
    AttackSpec {
        train_task_id: beard_proto::keys::train_key(train),
        train: Some(train.clone()),
        attack: Some(attack),
        targeted,
        evaluation: Some(EvaluationConfig {
            test_samples: samples,
            batch_size: 64,
            target_policy: TargetPolicy::Next as i32,
            ..Default::default()
        }),
        transfer_targets: Vec::new(),
    }
}

/// A model trained by the backend with [`train_spec`], its checkpoint, and the dataset.
pub struct Trained {
    pub backend: TchBackend,
    pub spec: TrainSpec,
    pub checkpoint: Vec<u8>,
    pub model: ConvNet,
    pub dataset: Dataset,
}

pub fn trained(seed: u32, epochs: u32) -> Trained {
    let mut backend = TchBackend::new(Device::Cpu);
    let spec = train_spec(seed, epochs);
    let result = backend.train(&spec, &TaskContext::detached()).expect("training succeeds");
    let dataset = Dataset::load(&synthetic(), Device::Cpu).expect("synthetic loads");
    let config = ConvNetConfig::new(spec.model.as_ref().expect("model"), &dataset.info).expect("config");
    let mut model = ConvNet::from_checkpoint(&config, &result.checkpoint, Device::Cpu).expect("checkpoint loads");
    model.freeze();
    Trained { backend, spec, checkpoint: result.checkpoint, model, dataset }
}
