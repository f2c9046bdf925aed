//! Adversarial training in the sweep file: the `training.adversarial:` settings (Madry-style PGD
//! training, with defaults) and the `training_regimes:` axis that trains every model with, without
//! or both with and without them.

use std::fmt;

use serde::Deserialize;

use beard_proto::v1::{self, AdversarialTraining, AttackConfig, attack_config};

use super::scalars::{Count, Positive, Ratio};

/// How a model of the sweep is trained: one entry of `training_regimes:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    /// On the training set as it is.
    Standard,
    /// With `training.adversarial` (its defaults when the section is left out).
    Adversarial,
}

impl fmt::Display for Regime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Regime::Standard => "standard",
            Regime::Adversarial => "adversarial",
        })
    }
}

/// The attack that crafts the training examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum TrainingAttack {
    /// PGD in the L∞ ball.
    #[default]
    Pgd,
}

/// `training.adversarial:` — Madry et al.'s PGD training by default: eps 8/255, step 2/255,
/// 10 steps from a random start, untargeted, the whole batch replaced.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "adversarial training settings (attack, eps, alpha, steps, random_start, targeted, ratio)"
)]
pub(super) struct AdversarialSettings {
    pub(super) attack: TrainingAttack,
    pub(super) eps: Positive,
    /// The step size; `step` is accepted as another name.
    #[serde(alias = "step")]
    pub(super) alpha: Positive,
    pub(super) steps: Count,
    pub(super) random_start: bool,
    /// Aim at seeded random target classes instead of away from the true class.
    pub(super) targeted: bool,
    /// Share of each batch replaced by adversarial examples.
    pub(super) ratio: Ratio,
}

impl Default for AdversarialSettings {
    fn default() -> Self {
        Self {
            attack: TrainingAttack::Pgd,
            eps: Positive(8.0 / 255.0),
            alpha: Positive(2.0 / 255.0),
            steps: Count(10),
            random_start: true,
            targeted: false,
            ratio: Ratio(1.0),
        }
    }
}

impl AdversarialSettings {
    /// The proto config train tasks of the adversarial regime carry.
    pub(super) fn config(&self) -> AdversarialTraining {
        let attack = match self.attack {
            TrainingAttack::Pgd => attack_config::Attack::Pgd(v1::Pgd {
                eps: self.eps.0,
                alpha: self.alpha.0,
                steps: self.steps.0,
                random_start: self.random_start,
            }),
        };
        AdversarialTraining {
            attack: Some(AttackConfig { attack: Some(attack) }),
            targeted: self.targeted,
            ratio: self.ratio.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_madrys_pgd_training() {
        let settings: AdversarialSettings = yaml_serde::from_str("{}").unwrap();
        assert_eq!(settings, AdversarialSettings::default());
        let config = settings.config();
        assert_eq!((config.targeted, config.ratio), (false, 1.0));
        assert_eq!(
            config.attack.and_then(|a| a.attack),
            Some(attack_config::Attack::Pgd(v1::Pgd {
                eps: 8.0 / 255.0,
                alpha: 2.0 / 255.0,
                steps: 10,
                random_start: true
            }))
        );
    }

    #[test]
    fn step_is_another_name_for_alpha_and_bad_values_are_refused() {
        let settings: AdversarialSettings =
            yaml_serde::from_str("{ attack: pgd, eps: 4/255, step: 1/255, steps: 3, ratio: 0.5 }").unwrap();
        assert_eq!((settings.alpha.0, settings.steps.0, settings.ratio.0), (1.0 / 255.0, 3, 0.5));
        for (bad, needle) in [
            ("{ attack: fgsm }", "unknown variant `fgsm`"),
            ("{ ratio: 0 }", "a number in (0, 1]"),
            ("{ steps: 0 }", "found 0"),
            ("{ epsilon: 1 }", "unknown field `epsilon`"),
        ] {
            let err = yaml_serde::from_str::<AdversarialSettings>(bad).unwrap_err();
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }
}
