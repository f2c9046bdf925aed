//! Grid expansion: a [`Sweep`] becomes one train task per (dataset, method, IPC, training regime,
//! seed) — a `full` method has the one IPC 0 — or, where the method names a checkpoint, one
//! model-pool entry per (dataset, method, IPC), never trained; one distill task per (dataset,
//! `distill:` method, IPC, seed), which that seed's train tasks read; and one attack task per
//! (model, attack, evaluation mode, targeted or not), in a deterministic order; then the transfer
//! tasks of a `transfer:` section (see the transfer module).

use beard_proto::evaluation::attack_in;
use beard_proto::keys::{distill_key, train_key};
use beard_proto::v1::{
    AttackSpec, DistillOutput, DistillSpec, DistilledSource, PooledCheckpoint, TrainSpec, distill_spec,
    distilled_source,
};

use super::distill;
use super::plan::{Dataset, Method, Source, Sweep};
use super::pool::PoolModels;

/// The tasks of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    /// Sets to learn, ordered by dataset, method, IPC, seed.
    pub distills: Vec<DistillSpec>,
    /// Models to train, ordered by dataset, method, IPC, regime, seed (datasets, methods, IPCs and
    /// regimes in file order).
    pub trains: Vec<TrainSpec>,
    /// Model-pool entries, ordered by dataset, method, IPC: their source is the checkpoint, their
    /// seed 0, and they have no training config (the model was trained elsewhere).
    pub pooled: Vec<TrainSpec>,
    /// Ordered by model (the trains, then the model-pool entries), attack (file order), evaluation
    /// mode and targeted mode (both as listed).
    pub attacks: Vec<AttackSpec>,
    /// Transfer tasks (attack specs with transfer targets), in the same order over their source
    /// models and the `transfer:` section's attacks.
    pub transfers: Vec<AttackSpec>,
}

impl Sweep {
    /// Every task of the sweep, its checkpoints read into `pool` ([`Sweep::read_checkpoints`]).
    /// The same sweep and pool always give the same tasks in the same order.
    ///
    /// # Panics
    ///
    /// When `pool` lacks a checkpoint the sweep names: it must come from this sweep.
    pub fn expand(&self, pool: &PoolModels) -> Expansion {
        let mut distills = Vec::new();
        let mut trains = Vec::new();
        let mut pooled = Vec::new();
        for dataset in &self.datasets {
            for method in &self.methods {
                for &ipc in method.ipcs(&self.ipcs) {
                    if let Source::Distill { algorithm } = &method.source {
                        let sets: Vec<DistillSpec> = (0..self.seeds)
                            .map(|seed| {
                                distill::spec(algorithm, dataset.reference(), &method.name, ipc, seed, dataset.model)
                            })
                            .collect();
                        trains.extend(self.train_specs(dataset, method, ipc, |seed| output_of(&sets[seed as usize])));
                        distills.extend(sets);
                        continue;
                    }
                    match method.distilled(dataset.name, ipc) {
                        Some(source) => trains.extend(self.train_specs(dataset, method, ipc, |_| source.clone())),
                        None => pooled.push(pool_spec(dataset, method, ipc, pool)),
                    }
                }
            }
        }
        let attacks = trains.iter().chain(&pooled).flat_map(|model| self.attack_specs(model)).collect();
        let models: Vec<TrainSpec> = trains.iter().chain(&pooled).cloned().collect();
        let transfers = self.transfer_specs(&models);
        Expansion { distills, trains, pooled, attacks, transfers }
    }

    /// One train spec per regime and seed, the seed's training set from `source`.
    fn train_specs<'a>(
        &'a self,
        dataset: &'a Dataset,
        method: &'a Method,
        ipc: u32,
        source: impl Fn(u32) -> DistilledSource + Copy + 'a,
    ) -> impl Iterator<Item = TrainSpec> + 'a {
        self.regimes.iter().flat_map(move |&regime| {
            let training = self.training_config(method, regime);
            (0..self.seeds).map(move |seed| TrainSpec {
                dataset: Some(dataset.reference()),
                method: method.name.clone(),
                ipc,
                seed,
                source: Some(source(seed)),
                training: Some(training.clone()),
                model: Some(dataset.model),
            })
        })
    }

    /// One attack spec per attack, evaluation mode and targeted mode.
    fn attack_specs<'a>(&'a self, model: &'a TrainSpec) -> impl Iterator<Item = AttackSpec> + 'a {
        let train_task_id = train_key(model);
        self.attacks.iter().flat_map(move |attack| {
            let train_task_id = train_task_id.clone();
            self.evaluation_modes.iter().flat_map(move |&mode| {
                let train_task_id = train_task_id.clone();
                let config = attack_in(&attack.config, mode);
                attack.modes.iter().map(move |&targeted| AttackSpec {
                    train_task_id: train_task_id.clone(),
                    train: Some(model.clone()),
                    attack: Some(config.clone()),
                    targeted,
                    evaluation: Some(self.evaluation_in(mode)),
                    transfer_targets: Vec::new(),
                })
            })
        })
    }
}

/// The training-set source that reads a distill task's output.
fn output_of(distill: &DistillSpec) -> DistilledSource {
    let mosaic = matches!(distill.algorithm, Some(distill_spec::Algorithm::Idm(_)));
    let output = DistillOutput { distill_task_id: distill_key(distill), mosaic };
    DistilledSource { source: Some(distilled_source::Source::Distilled(output)) }
}

fn pool_spec(dataset: &Dataset, method: &Method, ipc: u32, pool: &PoolModels) -> TrainSpec {
    let Some(model) = pool.get(&method.name, dataset.name, ipc) else {
        panic!("no checkpoint read for {} {} ipc {ipc}: expand with this sweep's pool", method.name, dataset.name)
    };
    let checkpoint = PooledCheckpoint { sha256: model.sha256.clone() };
    TrainSpec {
        dataset: Some(dataset.reference()),
        method: method.name.clone(),
        ipc,
        seed: 0,
        source: Some(DistilledSource { source: Some(distilled_source::Source::Checkpoint(checkpoint)) }),
        training: None,
        model: Some(model.model),
    }
}
