//! Grid expansion: a [`Sweep`] becomes one train task per (dataset, method, IPC, training regime,
//! seed) — a `full` method has the one IPC 0 — and one attack task per (train task, attack,
//! evaluation mode, targeted or not), in a deterministic order.

use beard_proto::evaluation::attack_in;
use beard_proto::keys::train_key;
use beard_proto::v1::{AttackSpec, TrainSpec};

use super::plan::Sweep;

/// The tasks of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    /// Ordered by dataset, method, IPC, regime, seed (datasets, methods, IPCs and regimes in file
    /// order).
    pub trains: Vec<TrainSpec>,
    /// Ordered by train task (as in `trains`), attack (file order), evaluation mode and targeted
    /// mode (both as listed).
    pub attacks: Vec<AttackSpec>,
}

impl Sweep {
    /// Every task of the sweep. The same sweep always gives the same tasks in the same order.
    pub fn expand(&self) -> Expansion {
        let trains = self.train_specs();
        let attacks = trains
            .iter()
            .flat_map(|train| {
                let train_task_id = train_key(train);
                self.attacks.iter().flat_map(move |attack| {
                    let train_task_id = train_task_id.clone();
                    self.evaluation_modes.iter().flat_map(move |&mode| {
                        let train_task_id = train_task_id.clone();
                        let config = attack_in(&attack.config, mode);
                        attack.modes.iter().map(move |&targeted| AttackSpec {
                            train_task_id: train_task_id.clone(),
                            train: Some(train.clone()),
                            attack: Some(config.clone()),
                            targeted,
                            evaluation: Some(self.evaluation_in(mode)),
                        })
                    })
                })
            })
            .collect();
        Expansion { trains, attacks }
    }

    fn train_specs(&self) -> Vec<TrainSpec> {
        let mut trains = Vec::new();
        for dataset in &self.datasets {
            for method in &self.methods {
                for &ipc in method.ipcs(&self.ipcs) {
                    let Some(source) = method.distilled(dataset.name, ipc) else { continue };
                    for &regime in &self.regimes {
                        let training = self.training_config(method, regime);
                        for seed in 0..self.seeds {
                            trains.push(TrainSpec {
                                dataset: Some(dataset.reference()),
                                method: method.name.clone(),
                                ipc,
                                seed,
                                source: Some(source.clone()),
                                training: Some(training.clone()),
                                model: Some(dataset.model),
                            });
                        }
                    }
                }
            }
        }
        trains
    }
}
