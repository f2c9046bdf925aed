//! A `distill:` method: sets learned on the cluster from the dataset's training split, one per
//! dataset, IPC and seed, each by a distill task its models' train tasks wait for.
//!
//! ```yaml
//! methods:
//!   DM: { distill: { method: dm, iterations: 200, batch_real: 64, init: noise } }
//! ```
//!
//! Every hyper-parameter left out takes the value of the method's official command (for DM,
//! `main_DM.py` with the readme's flags for CIFAR: 20,000 iterations, 256 real images per class,
//! lr 1, momentum 0.5, siamese DSA, real images to start from).

use beard_proto::v1::{self, DistillInit, DmConfig, distill_spec};
use serde::Deserialize;

use super::scalars::{Count, NonNegative, Positive};

/// The distillation algorithms a sweep can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Algorithm {
    /// Distribution matching (Zhao & Bilen).
    Dm,
}

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
    expecting = "distillation settings (method, iterations, batch_real, lr_img, momentum, dsa, init)"
)]
pub(super) struct DistillSettings {
    pub(super) method: Algorithm,
    iterations: Option<Count>,
    batch_real: Option<Count>,
    lr_img: Option<Positive>,
    momentum: Option<NonNegative>,
    dsa: Option<bool>,
    init: Option<Init>,
}

impl DistillSettings {
    /// The algorithm and its hyper-parameters, defaults filled in.
    pub(super) fn algorithm(&self) -> distill_spec::Algorithm {
        match self.method {
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
        algorithm: Some(*algorithm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dm(text: &str) -> DmConfig {
        let settings: DistillSettings = yaml_serde::from_str(text).expect("parses");
        let distill_spec::Algorithm::Dm(config) = settings.algorithm();
        config
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
            ("method: mtt", "unknown variant `mtt`, expected `dm`"),
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
