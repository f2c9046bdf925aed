//! Transfer tasks: the `transfer:` section resolved ([`Transfer`]) and expanded. Each source
//! model (a method's trained model per dataset, IPC, regime and seed, or its model-pool entry)
//! gets one task per transfer attack, evaluation mode and targeted mode; the task crafts on the
//! source once and has every target method's matching model judge the examples.
//!
//! A target's matching model has the source's dataset, IPC and regime, and its seed; a target
//! method that is a model-pool entry there has one model, which judges every seed of the source
//! (and a pooled source, seed 0, is judged by seed 0 of trained targets). The source's own method
//! is never a target: its column of the matrix is the shard's own (white-box) figure. A source
//! without any target gets no task.

use beard_proto::describe::is_pooled;
use beard_proto::evaluation::attack_in;
use beard_proto::keys::train_key;
use beard_proto::v1::{AttackSpec, TrainSpec, TransferTarget};

use super::document::TransferSection;
use super::plan::{Attack, Sweep};

/// A sweep's `transfer:` section, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// In the order the section lists them; their modes default to the section's `targeted`,
    /// else the sweep's.
    pub attacks: Vec<Attack>,
    /// Methods whose models craft, in the sweep's method order.
    pub sources: Vec<String>,
    /// Methods whose models judge, in the sweep's method order.
    pub targets: Vec<String>,
}

impl Transfer {
    /// The section resolved against the sweep's methods (in file order) and sweep-level modes.
    pub(super) fn resolve(section: TransferSection, methods: &[String], sweep_modes: &[bool]) -> Self {
        let modes = section.targeted.map_or_else(|| sweep_modes.to_vec(), |modes| modes.0);
        let chosen = |names: Option<Vec<String>>| -> Vec<String> {
            methods.iter().filter(|method| names.as_ref().is_none_or(|names| names.contains(method))).cloned().collect()
        };
        let names = |list: Option<super::collections::NonEmpty<super::scalars::Text>>| {
            list.map(|list| list.0.into_iter().map(|text| text.0).collect())
        };
        Self {
            attacks: Attack::resolve_all(section.attacks, &modes),
            sources: chosen(names(section.sources)),
            targets: chosen(names(section.targets)),
        }
    }
}

impl Sweep {
    /// The transfer tasks over `models` (the sweep's trains, then its model-pool entries), ordered
    /// by source model, attack, evaluation mode and targeted mode.
    pub(super) fn transfer_specs(&self, models: &[TrainSpec]) -> Vec<AttackSpec> {
        let Some(transfer) = &self.transfer else { return Vec::new() };
        let mut specs = Vec::new();
        for source in models.iter().filter(|model| transfer.sources.contains(&model.method)) {
            let targets: Vec<TransferTarget> = transfer
                .targets
                .iter()
                .filter(|method| **method != source.method)
                .filter_map(|method| models.iter().find(|model| model.method == *method && judges(model, source)))
                .map(|model| TransferTarget { train_task_id: train_key(model), train: Some(model.clone()) })
                .collect();
            if targets.is_empty() {
                continue;
            }
            let train_task_id = train_key(source);
            for attack in &transfer.attacks {
                for &mode in &self.evaluation_modes {
                    for &targeted in &attack.modes {
                        specs.push(AttackSpec {
                            train_task_id: train_task_id.clone(),
                            train: Some(source.clone()),
                            attack: Some(attack_in(&attack.config, mode)),
                            targeted,
                            evaluation: Some(self.evaluation_in(mode)),
                            transfer_targets: targets.clone(),
                        });
                    }
                }
            }
        }
        specs
    }
}

/// Whether `model` is the one of its method that judges examples crafted on `source`.
fn judges(model: &TrainSpec, source: &TrainSpec) -> bool {
    let regime = |spec: &TrainSpec| spec.training.as_ref().is_some_and(|training| training.adversarial.is_some());
    let same_seed = is_pooled(model) || model.seed == source.seed;
    model.dataset == source.dataset && model.ipc == source.ipc && regime(model) == regime(source) && same_seed
}
