//! A `distill:` method: sets learned on the cluster from the dataset's training split, one per
//! dataset, IPC and seed, each by a distill task its models' train tasks wait for.
//!
//! ```yaml
//! methods:
//!   DM: { distill: { method: dm, iterations: 200, batch_real: 64, init: noise } }
//!   DSA: { distill: { method: dsa, iterations: 10, outer_loop: 2, inner_loop: 5 } }
//!   herding: { distill: { method: herding, epochs: 20 } }
//! ```
//!
//! Every hyper-parameter left out takes the value of the method's official command:
//! - DM: `main_DM.py` with the readme's flags for CIFAR: 20,000 iterations, 256 real images per
//!   class, lr 1, momentum 0.5, siamese DSA, real images to start from.
//! - DC and DSA: `main.py`: 1,000 iterations, 256 real images per class, lr 0.1, momentum 0.5,
//!   lr_net 0.01, inner batches of 256, and the outer and inner loops of `get_loops` for the IPC
//!   (`official_loops`; another IPC must set both). DC starts from noise without DSA; DSA from
//!   real images with siamese DSA, as the readme's commands do.
//!
//! The coreset baselines (`herding`, `kcenter`) choose real images in the embedding space of a
//! ConvNet trained on the whole training split with the sweep's `training:` protocol for `epochs`
//! epochs (default [`CORESET_EPOCHS`]).
use beard_proto::distillation::official_loops;
use beard_proto::v1::{
    self, CoresetConfig, DistillInit, GradientMatchingConfig, MatchingConfig, TrainingConfig, distill_spec,
};
use serde::Deserialize;

use super::scalars::{Count, NonNegative, Positive};

/// The distillation algorithms a sweep can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Algorithm {
    /// Distribution matching (Zhao & Bilen).
    Dm,
    /// Gradient matching (Zhao, Mopuri & Bilen).
    Dc,
    /// Gradient matching with siamese augmentation (Zhao & Bilen).
    Dsa,
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

impl From<Init> for DistillInit {
    fn from(init: Init) -> Self {
        match init {
            Init::Real => DistillInit::Real,
            Init::Noise => DistillInit::Noise,
        }
    }
}

/// `distill:` as the file writes it; unset fields take the official command's values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "distillation settings (method, iterations, batch_real, lr_img, momentum, dsa, init, lr_net, \
                 outer_loop, inner_loop, batch_train, epochs)"
)]
pub(super) struct DistillSettings {
    pub(super) method: Algorithm,
    iterations: Option<Count>,
    batch_real: Option<Count>,
    lr_img: Option<Positive>,
    momentum: Option<NonNegative>,
    dsa: Option<bool>,
    init: Option<Init>,
    /// DC's and DSA's inner loop.
    lr_net: Option<Positive>,
    outer_loop: Option<Count>,
    inner_loop: Option<Count>,
    batch_train: Option<Count>,
    /// The coreset baselines' embedding ConvNet.
    epochs: Option<Count>,
}

impl DistillSettings {
    /// Why these settings do not fit their method, if they do not: a field another method takes.
    pub(super) fn mismatch(&self) -> Option<&'static str> {
        let matching = self.iterations.is_some()
            || self.batch_real.is_some()
            || self.lr_img.is_some()
            || self.momentum.is_some()
            || self.dsa.is_some()
            || self.init.is_some();
        let inner_loop = self.lr_net.is_some()
            || self.outer_loop.is_some()
            || self.inner_loop.is_some()
            || self.batch_train.is_some();
        let epochs = self.epochs.is_some();
        match self.method {
            Algorithm::Dm if inner_loop || epochs => {
                Some("DM takes `iterations`, `batch_real`, `lr_img`, `momentum`, `dsa` and `init`")
            }
            Algorithm::Dc | Algorithm::Dsa if epochs => Some(
                "DC and DSA take `iterations`, `batch_real`, `lr_img`, `momentum`, `dsa`, `init`, `lr_net`, \
                 `outer_loop`, `inner_loop` and `batch_train`",
            ),
            Algorithm::Herding | Algorithm::Kcenter if matching || inner_loop => {
                Some("the coreset baselines (herding, kcenter) take `epochs`")
            }
            _ => None,
        }
    }

    /// Whether DC or DSA lacks its loops at `ipc`: the sweep sets neither and the reference has
    /// none for that IPC.
    pub(super) fn lacks_loops(&self, ipc: u32) -> bool {
        let gradient_matching = matches!(self.method, Algorithm::Dc | Algorithm::Dsa);
        let unset = self.outer_loop.is_none() || self.inner_loop.is_none();
        gradient_matching && unset && official_loops(ipc).is_none()
    }

    /// The algorithm and its hyper-parameters, defaults filled in but DC's and DSA's loops where
    /// the sweep leaves them to the IPC (0, which [`spec`] resolves); a coreset baseline's
    /// ConvNet trains as `training` says, for its own epochs.
    pub(super) fn algorithm(&self, training: &TrainingConfig) -> distill_spec::Algorithm {
        let coreset = || CoresetConfig {
            training: Some(TrainingConfig {
                epochs: self.epochs.map_or(CORESET_EPOCHS, |count| count.0),
                adversarial: None,
                ..training.clone()
            }),
        };
        let count = |value: Option<Count>, official: u32| value.map_or(official, |count| count.0);
        let matching = |iterations: u32, lr_img: f64, dsa: bool, init: Init| MatchingConfig {
            iterations: count(self.iterations, iterations),
            batch_real: count(self.batch_real, 256),
            lr_img: self.lr_img.map_or(lr_img, |lr| lr.0),
            momentum: self.momentum.map_or(0.5, |momentum| momentum.0),
            dsa: self.dsa.unwrap_or(dsa),
            init: DistillInit::from(self.init.unwrap_or(init)).into(),
        };
        let gradient_matching = |matching: MatchingConfig| {
            distill_spec::Algorithm::GradientMatching(GradientMatchingConfig {
                matching: Some(matching),
                lr_net: self.lr_net.map_or(0.01, |lr| lr.0),
                outer_loop: count(self.outer_loop, 0),
                inner_loop: count(self.inner_loop, 0),
                batch_train: count(self.batch_train, 256),
            })
        };
        match self.method {
            Algorithm::Herding => distill_spec::Algorithm::Herding(coreset()),
            Algorithm::Kcenter => distill_spec::Algorithm::Kcenter(coreset()),
            Algorithm::Dm => distill_spec::Algorithm::Dm(matching(20_000, 1.0, true, Init::Real)),
            Algorithm::Dc => gradient_matching(matching(1_000, 0.1, false, Init::Noise)),
            Algorithm::Dsa => gradient_matching(matching(1_000, 0.1, true, Init::Real)),
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
    let mut algorithm = algorithm.clone();
    if let distill_spec::Algorithm::GradientMatching(config) = &mut algorithm {
        // Validation refuses an IPC without official loops unless the sweep sets both.
        let (outer, inner) = official_loops(ipc).unwrap_or_default();
        if config.outer_loop == 0 {
            config.outer_loop = outer;
        }
        if config.inner_loop == 0 {
            config.inner_loop = inner;
        }
    }
    v1::DistillSpec {
        dataset: Some(dataset),
        method: method.to_owned(),
        ipc,
        seed,
        model: Some(model),
        algorithm: Some(algorithm),
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

    fn dm(text: &str) -> MatchingConfig {
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
            ("{ method: herding, iterations: 3 }", "coreset baselines (herding, kcenter) take `epochs`"),
            ("{ method: kcenter, outer_loop: 2 }", "take `epochs`"),
            ("{ method: dm, epochs: 3 }", "DM takes `iterations`"),
            ("{ method: dm, lr_net: 0.1 }", "DM takes `iterations`"),
            ("{ method: dsa, epochs: 3 }", "DC and DSA take"),
        ] {
            let settings: DistillSettings = yaml_serde::from_str(bad).expect("parses");
            assert!(settings.mismatch().is_some_and(|text| text.contains(needle)), "{bad}");
        }
    }

    #[test]
    fn dm_defaults_to_the_official_command_and_every_field_can_be_set() {
        assert_eq!(
            dm("method: dm"),
            MatchingConfig {
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
            MatchingConfig {
                iterations: 200,
                batch_real: 64,
                lr_img: 0.5,
                momentum: 0.0,
                dsa: false,
                init: DistillInit::Noise.into()
            }
        );
    }

    fn gradient_matching(text: &str, ipc: u32) -> GradientMatchingConfig {
        let dataset = v1::DatasetRef { name: "synthetic".into(), root: String::new() };
        match spec(&algorithm(text), dataset, "m", ipc, 0, v1::ModelConfig::default()).algorithm {
            Some(distill_spec::Algorithm::GradientMatching(config)) => config,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn dc_and_dsa_default_to_their_official_commands_and_the_loops_of_the_ipc() {
        let matching = MatchingConfig {
            iterations: 1_000,
            batch_real: 256,
            lr_img: 0.1,
            momentum: 0.5,
            dsa: false,
            init: DistillInit::Noise.into(),
        };
        let dc = GradientMatchingConfig {
            matching: Some(matching),
            lr_net: 0.01,
            outer_loop: 10,
            inner_loop: 50,
            batch_train: 256,
        };
        assert_eq!(gradient_matching("method: dc", 10), dc);
        let dsa = GradientMatchingConfig {
            matching: Some(MatchingConfig { dsa: true, init: DistillInit::Real.into(), ..matching }),
            outer_loop: 1,
            inner_loop: 1,
            ..dc
        };
        assert_eq!(gradient_matching("method: dsa", 1), dsa);
        let set = "{ method: dsa, iterations: 5, batch_real: 8, lr_img: 1, momentum: 0, dsa: false, init: noise, \
                   lr_net: 0.1, outer_loop: 2, inner_loop: 3, batch_train: 16 }";
        let expected = GradientMatchingConfig {
            matching: Some(MatchingConfig {
                iterations: 5,
                batch_real: 8,
                lr_img: 1.0,
                momentum: 0.0,
                dsa: false,
                init: DistillInit::Noise.into(),
            }),
            lr_net: 0.1,
            outer_loop: 2,
            inner_loop: 3,
            batch_train: 16,
        };
        assert_eq!(gradient_matching(set, 7), expected);
        assert_eq!(gradient_matching("{ method: dc, inner_loop: 4 }", 50).outer_loop, 50);
        let settings = |text: &str| yaml_serde::from_str::<DistillSettings>(text).expect("parses");
        assert!(settings("method: dc").lacks_loops(7));
        assert!(settings("{ method: dsa, outer_loop: 2 }").lacks_loops(7));
        assert!(!settings("{ method: dsa, outer_loop: 2, inner_loop: 1 }").lacks_loops(7));
        assert!(!settings("method: dm").lacks_loops(7));
    }

    #[test]
    fn unknown_methods_fields_and_bad_values_are_refused() {
        for (bad, needle) in [
            ("method: mtt", "unknown variant `mtt`, expected one of `dm`, `dc`, `dsa`, `herding`, `kcenter`"),
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
