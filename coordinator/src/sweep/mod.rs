//! Sweeps: the `sweep.yaml` schema, strict parsing with `file:line:column: field.path: …` errors,
//! and expansion of a sweep into train and attack tasks.
//!
//! # Layout
//!
//! - [`parse`] reads a file into a [`Sweep`]; [`Sweep::expand`] gives its [`Expansion`].
//! - `document`: the file's structure as written, with section defaults; `attacks` and
//!   `methods` hold the two sections whose value types depend on their keys; `adversarial` the
//!   adversarial-training settings and the `training_regimes` axis; `names` the closed sets of
//!   dataset and attack names.
//! - `scalars` and `collections`: validated building blocks (counts, fractions, non-empty lists,
//!   ordered maps with unique keys) that check themselves while deserializing, so errors carry
//!   the offending node's position.
//! - `validate`: cross-field rules; `locate` finds their node's position in a second pass.
//! - `plan`: the validated [`Sweep`] and its proto configs; `pool`: its model-pool checkpoints,
//!   read and checked ([`Sweep::read_checkpoints`]); `expand`: the task grid; `transfer`: the
//!   `transfer:` section and its tasks.
//! - `error` and `path`: [`SweepError`] and the field paths it names.
//!
//! # The file
//!
//! ```yaml
//! name: demo                       # required
//! pool_dir: /data/beard/pool       # optional; relative method file paths are joined onto it
//! datasets:                        # synthetic | cifar10 | cifar100 | tinyimagenet
//!   cifar10: { root: /data/cifar-10-batches-bin }   # all but synthetic need a root
//! methods:                         # name -> `random`, files per dataset and IPC, or `full`
//!   random: random
//!   DC:
//!     files: { cifar10: { 1: DC/res_DC_CIFAR10_ConvNet_1ipc.pt } }
//!     stored: normalized           # normalized | pixels
//!     experiment: 0
//!     checkpoints: { cifar10: { 50: pool/DC_ConvNet_CIFAR10_50_None.pth } }   # model pool:
//!                                  # trained models, attacked as they are (no train task);
//!                                  # relative to the sweep file; one file or checkpoint per
//!                                  # dataset and IPC
//!     model: { pool: avg }         # the checkpoints' pooling; width, depth, norm are checked
//!     training: { aug: none, epochs: 300 }   # optional: the method's own protocol (DC-bench's
//!                                # for DC), its fields over the sweep's `training:`
//!   full: { full: { epochs: 2, batch_size: 256 } }   # the whole train split; once, not per IPC
//!   DM: { distill: { method: dm, iterations: 200, batch_real: 64, init: noise } }
//!                                # learned on the cluster, per dataset, IPC and seed; unset
//!                                # fields take the official command's (lr_img, momentum, dsa)
//! ipc: [1]
//! attacks:                         # fgsm | pgd | pgdl2 | cw | deepfool | autoattack
//!   pgd: { eps: 8/255, alpha: 2/255, steps: 10, random_start: false }
//!   deepfool: { targeted: [false] } # untargeted only
//! targeted: [false, true]          # default
//! seeds: 5                         # seeds 0..5; default
//! training: { optimizer: sgd, lr: 0.01, momentum: 0.9, weight_decay: 5e-4, epochs: 1000 }
//!                                # also batch_size: 256, lr_schedule: half | constant, aug: dsa | none
//!                                # (the defaults are the reference protocol); optimizer: adam too;
//!                                # adversarial: { attack: pgd, eps: 8/255, alpha: 2/255, steps: 10,
//!                                #   random_start: true, targeted: false, ratio: 1 }
//! training_regimes: [standard]     # default; [standard, adversarial] trains every model both ways
//! model: { width: 128, depth: auto, norm: instance, pool: avg }   # depth auto: 4 for tinyimagenet
//! evaluation: { test_samples: 0, batch_size: 256, target_policy: next, modes: [standard] }
//!                                # modes: standard | beard-compat, one or a list (each attack task
//!                                # runs in each); `evaluation: beard-compat` alone sets just modes
//! metrics: { alpha: 0.5, rr_variant: beard, time_basis: wall }
//! transfer:                        # optional: examples crafted on each source model, judged by
//!   attacks: { fgsm: {}, pgd: {} } # the target methods' models of the same dataset, IPC, regime
//!   targeted: [false, true]        # and seed; attacks written as in `attacks:`, modes default to
//!   sources: [DC]                  # the sweep's; sources and targets default to every method
//!   targets: [DC, full]
//! ```

mod adversarial;
mod attacks;
mod collections;
mod distill;
mod document;
mod error;
mod expand;
mod locate;
mod methods;
mod names;
mod path;
mod plan;
mod pool;
mod scalars;
mod transfer;
mod validate;

#[cfg(test)]
mod tests;

pub use adversarial::Regime;
pub use error::SweepError;
pub use expand::Expansion;
pub use names::{AttackName, DatasetName};
pub use plan::{Attack, CheckpointSettings, Dataset, Method, PoolCheckpoint, PoolFile, Source, Sweep};
#[cfg(test)]
pub(crate) use pool::small_convnet;
pub use pool::{PoolModel, PoolModels, inspect};
pub use transfer::Transfer;

use document::SweepFile;

/// Parses and validates a sweep file. `file_name` is only used to cite the file in errors.
pub fn parse(text: &str, file_name: &str) -> Result<Sweep, SweepError> {
    let deserializer = yaml_serde::Deserializer::from_str(text);
    let file: SweepFile = serde_path_to_error::deserialize(deserializer)
        .map_err(|err| SweepError::from_deserialize(file_name, text, &err))?;
    Sweep::from_document(file).map_err(|issue| SweepError::from_issue(file_name, text, issue))
}
