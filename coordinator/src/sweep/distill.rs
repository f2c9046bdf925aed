//! A `distill:` method: sets learned on the cluster from the dataset's training split, one per
//! dataset, IPC and seed, each by a distill task its models' train tasks wait for.
//!
//! ```yaml
//! methods:
//!   DM: { distill: { method: dm, iterations: 200, batch_real: 64, init: noise } }
//!   herding: { distill: { method: herding, epochs: 20 } }
//! ```
//!
//! Every hyper-parameter left out takes the value of the method's official command (for DM,
//! `main_DM.py` with the readme's flags for CIFAR: 20,000 iterations, 256 real images per class,
//! lr 1, momentum 0.5, siamese DSA, real images to start from). The coreset baselines (`herding`,
//! `kcenter`) choose real images in the embedding space of a ConvNet trained on the whole
//! training split with the sweep's `training:` protocol for `epochs` epochs (default
//! [`CORESET_EPOCHS`]).
use beard_proto::v1::{self, CoresetConfig, DistillInit, DmConfig, TrainingConfig, distill_spec};
use serde::Deserialize;

use super::scalars::{Count, NonNegative, Positive};

/// The distillation algorithms a sweep can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Algorithm {
    /// Distribution matching (Zhao & Bilen).
    Dm,
    /// Herding in a trained ConvNet's embedding space.
    Herding,
    /// k-center greedy in a trained ConvNet's embedding space.
    Kcenter,
}

/// Epochs of the embedding ConvNet of a coreset baseline unless `epochs:` says otherwise.
pub(super) const CORESET_EPOCHS: u32 = 30;

/// Where the synthetic images start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Init {
    Real,
    Noise,
}

/// `distill:` as the file writes it; unset fields take the official command's values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "distillation settings (method, iterations, batch_real, lr_img, momentum, dsa, init, epochs)"
)]
pub(super) struct DistillSettings {
    pub(super) method: Algorithm,
    iterations: Option<Count>,
    batch_real: Option<Count>,
    lr_img: Option<Positive>,
    momentum: Option<NonNegative>,
    dsa: Option<bool>,
    init: Option<Init>,
    /// The coreset baselines' embedding ConvNet.
    epochs: Option<Count>,
}

impl DistillSettings {
    /// Why these settings do not fit their method, if they do not.
    pub(super) fn mismatch(&self) -> Option<&'static str> {
        let dm_fields = self.iterations.is_some()
            || self.batch_real.is_some()
            || self.lr_img.is_some()
            || self.momentum.is_some()
            || self.dsa.is_some()
            || self.init.is_some();
        match self.method {
            Algorithm::Dm if self.epochs.is_some() => {
                Some("`epochs` is the coreset baselines' (herding, kcenter); DM takes `iterations`")
            }
            Algorithm::Herding | Algorithm::Kcenter if dm_fields => Some(
                "`iterations`, `batch_real`, `lr_img`, `momentum`, `dsa` and `init` are DM's; the coreset \
                 baselines (herding, kcenter) take `epochs`",
            ),
            _ => None,
        }
    }

    /// The algorithm and its hyper-parameters, defaults filled in; a coreset baseline's ConvNet
    /// trains as `training` says, for its own epochs.
    pub(super) fn algorithm(&self, training: &TrainingConfig) -> distill_spec::Algorithm {
        let coreset = || CoresetConfig {
            training: Some(TrainingConfig {
                epochs: self.epochs.map_or(CORESET_EPOCHS, |count| count.0),
                adversarial: None,
                ..training.clone()
            }),
        };
        match self.method {
            Algorithm::Herding => distill_spec::Algorithm::Herding(coreset()),
            Algorithm::Kcenter => distill_spec::Algorithm::Kcenter(coreset()),
            Algorithm::Dm => distill_spec::Algorithm::Dm(DmConfig {
                iterations: self.iterations.map_or(20_000, |count| count.0),
                batch_real: self.batch_real.map_or(256, |count| count.0),
                lr_img: self.lr_img.map_or(1.0, |lr| lr.0),
                momentum: self.momentum.map_or(0.5, |momentum| momentum.0),
                dsa: self.dsa.unwrap_or(true),
                init: match self.init.unwrap_or(Init::Real) {
                    Init::Real => DistillInit::Real,
                    Init::Noise => DistillInit::Noise,
                }
                .into(),
            }),
        }
    }
}

/// The distill spec of one dataset, IPC and seed.
pub(super) fn spec(
    algorithm: &distill_spec::Algorithm,
    dataset: v1::DatasetRef,
    method: &str,
    ipc: u32,
    seed: u32,
    model: v1::ModelConfig,
) -> v1::DistillSpec {
    v1::DistillSpec {
        dataset: Some(dataset),
        method: method.to_owned(),
        ipc,
        seed,
        model: Some(model),
        algorithm: Some(algorithm.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn algorithm(text: &str) -> distill_spec::Algorithm {
        let settings: DistillSettings = yaml_serde::from_str(text).expect("parses");
        assert_eq!(settings.mismatch(), None, "{text}");
        settings.algorithm(&TrainingConfig { epochs: 1000, batch_size: 256, ..Default::default() })
    }

    fn dm(text: &str) -> DmConfig {
        match algorithm(text) {
            distill_spec::Algorithm::Dm(config) => config,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn coresets_train_their_convnet_with_the_sweep_protocol_for_their_own_epochs() {
        let training = |epochs| TrainingConfig { epochs, batch_size: 256, ..Default::default() };
        let herding = CoresetConfig { training: Some(training(CORESET_EPOCHS)) };
        assert_eq!(algorithm("method: herding"), distill_spec::Algorithm::Herding(herding));
        let kcenter = CoresetConfig { training: Some(training(5)) };
        assert_eq!(algorithm("{ method: kcenter, epochs: 5 }"), distill_spec::Algorithm::Kcenter(kcenter));
        for (bad, needle) in [
            ("{ method: herding, iterations: 3 }", "are DM's"),
            ("{ method: kcenter, init: noise }", "are DM's"),
            ("{ method: dm, epochs: 3 }", "DM takes `iterations`"),
        ] {
            let settings: DistillSettings = yaml_serde::from_str(bad).expect("parses");
            assert!(settings.mismatch().is_some_and(|text| text.contains(needle)), "{bad}");
        }
    }

    #[test]
    fn dm_defaults_to_the_official_command_and_every_field_can_be_set() {
        assert_eq!(
            dm("method: dm"),
            DmConfig {
                iterations: 20_000,
                batch_real: 256,
                lr_img: 1.0,
                momentum: 0.5,
                dsa: true,
                init: DistillInit::Real.into()
            }
        );
        assert_eq!(
            dm("{ method: dm, iterations: 200, batch_real: 64, lr_img: 0.5, momentum: 0, dsa: false, init: noise }"),
            DmConfig {
                iterations: 200,
                batch_real: 64,
                lr_img: 0.5,
                momentum: 0.0,
                dsa: false,
                init: DistillInit::Noise.into()
            }
        );
    }

    #[test]
    fn unknown_methods_fields_and_bad_values_are_refused() {
        for (bad, needle) in [
            ("method: mtt", "unknown variant `mtt`, expected one of `dm`, `herding`, `kcenter`"),
            ("{ method: dm, steps: 3 }", "unknown field `steps`"),
            ("{ method: dm, iterations: 0 }", "found 0"),
            ("{ method: dm, init: zeros }", "unknown variant `zeros`"),
            ("{ iterations: 3 }", "missing field `method`"),
        ] {
            let error = yaml_serde::from_str::<DistillSettings>(bad).unwrap_err().to_string();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }
}
