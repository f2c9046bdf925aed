//! The evaluation modes' names and the attack settings BEARD's reference code hard-codes, shared
//! by the sweep expansion (coordinator) and `agent eval --mode` (agent), so both give a
//! `beard-compat` task the same attack config and the same content key.

use crate::v1::{AttackConfig, EvaluationMode, attack_config};

/// PGD's step in the reference code: written 2/225 where 2/255 was meant.
pub const REFERENCE_PGD_ALPHA: f64 = 2.0 / 225.0;

/// Iterations of APGD-CE, APGD-T and FAB-T in torchattacks' AutoAttack, which the reference runs.
pub const REFERENCE_AUTOATTACK_STEPS: u32 = 10;

/// Classes the reference's targets wrap around: its targeted label is `(y + 1) % 10` on every
/// dataset.
pub const REFERENCE_TARGET_CLASSES: i64 = 10;

/// The name of a mode in sweep files, on the command line and in reports.
pub fn mode_name(mode: EvaluationMode) -> &'static str {
    match mode {
        EvaluationMode::Standard => "standard",
        EvaluationMode::BeardCompat => "beard-compat",
    }
}

/// The mode called `name`, as [`mode_name`] spells it.
pub fn mode_named(name: &str) -> Option<EvaluationMode> {
    [EvaluationMode::Standard, EvaluationMode::BeardCompat].into_iter().find(|mode| mode_name(*mode) == name)
}

/// `attack` as it runs in `mode`: as configured in `standard`; in `beard-compat` as the reference
/// code runs it.
pub fn attack_in(attack: &AttackConfig, mode: EvaluationMode) -> AttackConfig {
    match mode {
        EvaluationMode::Standard => attack.clone(),
        EvaluationMode::BeardCompat => reference_attack(attack),
    }
}

/// PGD with the step 2/225 and no random start, AutoAttack with 10 iterations per part, C&W with
/// torchattacks' margin, DeepFool over all classes image by image (torchattacks' arithmetic, see
/// the agent's DeepFool); every other attack (and every other parameter) as configured.
fn reference_attack(attack: &AttackConfig) -> AttackConfig {
    let mut attack = attack.clone();
    match &mut attack.attack {
        Some(attack_config::Attack::Pgd(pgd)) => {
            pgd.alpha = REFERENCE_PGD_ALPHA;
            pgd.random_start = false;
        }
        Some(attack_config::Attack::Autoattack(autoattack)) => autoattack.steps = REFERENCE_AUTOATTACK_STEPS,
        Some(attack_config::Attack::Cw(cw)) => cw.torchattacks_margin = true,
        Some(attack_config::Attack::Deepfool(deepfool)) => {
            deepfool.top_k = 0;
            deepfool.per_image = true;
        }
        _ => {}
    }
    attack
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{AutoAttack, CarliniWagner, DeepFool, Fgsm, Pgd};

    #[test]
    fn mode_names_round_trip() {
        for mode in [EvaluationMode::Standard, EvaluationMode::BeardCompat] {
            assert_eq!(mode_named(mode_name(mode)), Some(mode));
        }
        assert_eq!(mode_named("compat"), None);
    }

    #[test]
    fn the_reference_overrides_pgd_autoattack_cw_and_deepfool_only() {
        let pgd = AttackConfig {
            attack: Some(attack_config::Attack::Pgd(Pgd { eps: 0.03, alpha: 0.01, steps: 7, random_start: true })),
        };
        let expected = Pgd { eps: 0.03, alpha: 2.0 / 225.0, steps: 7, random_start: false };
        assert_eq!(reference_attack(&pgd).attack, Some(attack_config::Attack::Pgd(expected)));

        let autoattack = AttackConfig {
            attack: Some(attack_config::Attack::Autoattack(AutoAttack { eps: 0.03, ..Default::default() })),
        };
        let expected = AutoAttack { eps: 0.03, steps: 10, ..Default::default() };
        assert_eq!(reference_attack(&autoattack).attack, Some(attack_config::Attack::Autoattack(expected)));

        let cw = CarliniWagner { c: 1.0, kappa: 0.0, steps: 100, lr: 0.01, torchattacks_margin: false };
        let cw = AttackConfig { attack: Some(attack_config::Attack::Cw(cw)) };
        let expected = CarliniWagner { c: 1.0, kappa: 0.0, steps: 100, lr: 0.01, torchattacks_margin: true };
        assert_eq!(reference_attack(&cw).attack, Some(attack_config::Attack::Cw(expected)));

        let deepfool = DeepFool { steps: 50, overshoot: 0.02, top_k: 3, per_image: false };
        let deepfool = AttackConfig { attack: Some(attack_config::Attack::Deepfool(deepfool)) };
        let expected = DeepFool { steps: 50, overshoot: 0.02, top_k: 0, per_image: true };
        assert_eq!(reference_attack(&deepfool).attack, Some(attack_config::Attack::Deepfool(expected)));

        let fgsm = AttackConfig { attack: Some(attack_config::Attack::Fgsm(Fgsm { eps: 0.03 })) };
        assert_eq!(reference_attack(&fgsm), fgsm);
        assert_eq!(attack_in(&pgd, EvaluationMode::Standard), pgd);
    }
}
