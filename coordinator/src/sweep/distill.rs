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
//! - IDM and BACON: their `command.txt` (BACON's repeats IDM's but for 50 train steps on CIFAR-100
//!   at IPC 50): 20,000 iterations, lr 0.2, momentum
//!   0.5, siamese DSA, the mosaic start, a queue of 100 nets (1 matching, 2 training 10 steps of 256
//!   images per iteration), lr_net 0.01; the real batch, cross-entropy weight, net interval, train
//!   steps and evaluation interval by dataset and IPC (`idm_official`).
//! - DC and DSA: `main.py`: 1,000 iterations, 256 real images per class, lr 0.1, momentum 0.5,
//!   lr_net 0.01, inner batches of 256, and the outer and inner loops of `get_loops` for the IPC
//!   (`official_loops`; another IPC must set both). DC starts from noise without DSA; DSA from
//!   real images with siamese DSA, as the readme's commands do.
//!
//! The coreset baselines (`herding`, `kcenter`) choose real images in the embedding space of a
//! ConvNet trained on the whole training split with the sweep's `training:` protocol for `epochs`
//! epochs (default [`CORESET_EPOCHS`]).
use beard_proto::distillation::{idm_official, official_loops};
use beard_proto::v1::{
    self, CoresetConfig, DistillInit, GradientMatchingConfig, IdmConfig, MatchingConfig, TrainingConfig, distill_spec,
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
    /// DM through a queue of trained ConvNets on mosaic images (Zhao et al.).
    Idm,
    /// IDM with BACON's matching term (Zhou et al.).
    Bacon,
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
                 outer_loop, inner_loop, batch_train, ce_weight, net_num, net_generate_interval, train_net_num, \
                 fetch_net_num, model_train_steps, trained_bs, eval_interval, epochs)"
)]
pub(super) struct DistillSettings {
    pub(super) method: Algorithm,
    iterations: Option<Count>,
    batch_real: Option<Count>,
    lr_img: Option<Positive>,
    momentum: Option<NonNegative>,
    dsa: Option<bool>,
    init: Option<Init>,
    /// The nets trained along the way (DC's and DSA's inner loop, IDM's and BACON's queue).
    lr_net: Option<Positive>,
    outer_loop: Option<Count>,
    inner_loop: Option<Count>,
    batch_train: Option<Count>,
    /// IDM's and BACON's queue.
    ce_weight: Option<NonNegative>,
    net_num: Option<Count>,
    net_generate_interval: Option<Count>,
    train_net_num: Option<Count>,
    fetch_net_num: Option<Count>,
    model_train_steps: Option<Count>,
    trained_bs: Option<Count>,
    eval_interval: Option<Count>,
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
        let lr_net = self.lr_net.is_some();
        let loops = self.outer_loop.is_some() || self.inner_loop.is_some() || self.batch_train.is_some();
        let queue = self.ce_weight.is_some()
            || self.net_num.is_some()
            || self.net_generate_interval.is_some()
            || self.train_net_num.is_some()
            || self.fetch_net_num.is_some()
            || self.model_train_steps.is_some()
            || self.trained_bs.is_some()
            || self.eval_interval.is_some();
        let epochs = self.epochs.is_some();
        match self.method {
            Algorithm::Dm if lr_net || loops || queue || epochs => {
                Some("DM takes `iterations`, `batch_real`, `lr_img`, `momentum`, `dsa` and `init`")
            }
            Algorithm::Dc | Algorithm::Dsa if queue || epochs => Some(
                "DC and DSA take `iterations`, `batch_real`, `lr_img`, `momentum`, `dsa`, `init`, `lr_net`, \
                 `outer_loop`, `inner_loop` and `batch_train`",
            ),
            Algorithm::Idm | Algorithm::Bacon if loops || epochs => Some(
                "IDM and BACON take `iterations`, `batch_real`, `lr_img`, `momentum`, `dsa`, `init`, `lr_net`, \
                 `ce_weight`, `net_num`, `net_generate_interval`, `train_net_num`, `fetch_net_num`, \
                 `model_train_steps`, `trained_bs` and `eval_interval`",
            ),
            Algorithm::Herding | Algorithm::Kcenter if matching || lr_net || loops || queue => {
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

    /// The algorithm and its hyper-parameters, defaults filled in but those that depend on the
    /// dataset or the IPC where the sweep leaves them out (0 or unset, which [`spec`] resolves):
    /// DC's and DSA's loops, IDM's and BACON's real batch, cross-entropy weight, net interval,
    /// train steps and evaluation interval. A coreset baseline's ConvNet trains as `training`
    /// says, for its own epochs.
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
        let queue = |bacon: bool| {
            distill_spec::Algorithm::Idm(IdmConfig {
                matching: Some(MatchingConfig {
                    batch_real: count(self.batch_real, 0),
                    ..matching(20_000, 0.2, true, Init::Real)
                }),
                bacon,
                ce_weight: self.ce_weight.map(|weight| weight.0),
                net_num: count(self.net_num, 100),
                net_generate_interval: count(self.net_generate_interval, 0),
                train_net_num: count(self.train_net_num, 1),
                fetch_net_num: count(self.fetch_net_num, 2),
                model_train_steps: count(self.model_train_steps, 0),
                trained_bs: count(self.trained_bs, 256),
                lr_net: self.lr_net.map_or(0.01, |lr| lr.0),
                eval_interval: count(self.eval_interval, 0),
            })
        };
        match self.method {
            Algorithm::Idm => queue(false),
            Algorithm::Bacon => queue(true),
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
    let fill = |value: &mut u32, official: u32| {
        if *value == 0 {
            *value = official;
        }
    };
    match &mut algorithm {
        distill_spec::Algorithm::GradientMatching(config) => {
            // Validation refuses an IPC without official loops unless the sweep sets both.
            let (outer, inner) = official_loops(ipc).unwrap_or_default();
            fill(&mut config.outer_loop, outer);
            fill(&mut config.inner_loop, inner);
        }
        distill_spec::Algorithm::Idm(config) => {
            let official = idm_official(&dataset.name, ipc, config.bacon);
            if let Some(matching) = &mut config.matching {
                fill(&mut matching.batch_real, official.batch_real);
            }
            config.ce_weight = Some(config.ce_weight.unwrap_or(official.ce_weight));
            fill(&mut config.net_generate_interval, official.net_generate_interval);
            fill(&mut config.model_train_steps, official.model_train_steps);
            fill(&mut config.eval_interval, official.eval_interval);
        }
        _ => {}
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
            ("{ method: dsa, net_num: 3 }", "DC and DSA take"),
            ("{ method: idm, outer_loop: 3 }", "IDM and BACON take"),
            ("{ method: herding, ce_weight: 0.5 }", "take `epochs`"),
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

    fn queue_matching(text: &str, dataset: &str, ipc: u32) -> IdmConfig {
        let reference = v1::DatasetRef { name: dataset.into(), root: String::new() };
        match spec(&algorithm(text), reference, "m", ipc, 0, v1::ModelConfig::default()).algorithm {
            Some(distill_spec::Algorithm::Idm(config)) => config,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn idm_and_bacon_default_to_the_official_commands_for_the_dataset_and_ipc() {
        let ipc10 = queue_matching("method: idm", "cifar10", 10);
        let matching = MatchingConfig {
            iterations: 20_000,
            batch_real: 256,
            lr_img: 0.2,
            momentum: 0.5,
            dsa: true,
            init: DistillInit::Real.into(),
        };
        let expected = IdmConfig {
            matching: Some(matching),
            bacon: false,
            ce_weight: Some(0.5),
            net_num: 100,
            net_generate_interval: 30,
            train_net_num: 1,
            fetch_net_num: 2,
            model_train_steps: 10,
            trained_bs: 256,
            lr_net: 0.01,
            eval_interval: 100,
        };
        assert_eq!(ipc10, expected);
        let ipc1 = queue_matching("method: bacon", "cifar100", 1);
        assert!(ipc1.bacon);
        assert_eq!(ipc1.matching.map(|m| m.batch_real), Some(5_000));
        assert_eq!((ipc1.net_generate_interval, ipc1.ce_weight), (5, Some(0.5)));
        let c100 = queue_matching("method: idm", "cifar100", 10);
        assert_eq!((c100.model_train_steps, c100.ce_weight), (50, Some(0.1)));
        let steps = |method: &str| queue_matching(&format!("method: {method}"), "cifar100", 50).model_train_steps;
        assert_eq!((steps("idm"), steps("bacon")), (10, 50), "BACON's command trains C100 IPC 50 nets longer");
        assert_eq!(queue_matching("method: idm", "cifar10", 50).eval_interval, 500);
        let set = queue_matching(
            "{ method: bacon, batch_real: 8, ce_weight: 0, net_num: 4, net_generate_interval: 2, train_net_num: 2, \
             fetch_net_num: 1, model_train_steps: 3, trained_bs: 16, lr_net: 0.1, eval_interval: 5 }",
            "cifar10",
            1,
        );
        let written = IdmConfig {
            matching: Some(MatchingConfig { batch_real: 8, ..matching }),
            bacon: true,
            ce_weight: Some(0.0),
            net_num: 4,
            net_generate_interval: 2,
            train_net_num: 2,
            fetch_net_num: 1,
            model_train_steps: 3,
            trained_bs: 16,
            lr_net: 0.1,
            eval_interval: 5,
        };
        assert_eq!(set, written, "every field can be set, a cross-entropy weight of 0 too");
    }

    #[test]
    fn unknown_methods_fields_and_bad_values_are_refused() {
        for (bad, needle) in [
            (
                "method: mtt",
                "unknown variant `mtt`, expected one of `dm`, `dc`, `dsa`, `idm`, `bacon`, `herding`, `kcenter`",
            ),
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
