//! The `attacks:` section: one entry per attack with its torchattacks-named parameters, BEARD's
//! reference defaults, an optional per-attack `targeted:` override, and the proto config each
//! entry becomes.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use beard_proto::v1::{self, attack_config};

use super::collections::{NonEmpty, read_entries};
use super::names::AttackName;
use super::scalars::{Count, NonNegative, Positive};

/// One attack as the file configures it, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AttackEntry {
    pub(super) name: AttackName,
    pub(super) config: attack_config::Attack,
    /// The attack's own `targeted:` list, overriding the sweep-level one.
    pub(super) targeted: Option<Vec<bool>>,
}

/// The whole `attacks:` mapping, in the order written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Attacks(pub(super) Vec<AttackEntry>);

impl<'de> Deserialize<'de> for Attacks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AttacksVisitor)
    }
}

struct AttacksVisitor;

impl<'de> Visitor<'de> for AttacksVisitor {
    type Value = Attacks;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping from attack names to their settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Attacks, A::Error> {
        let entries = read_entries(map, |name: &AttackName, map| {
            let (config, targeted) = match name {
                AttackName::Fgsm => read_settings::<FgsmSettings, _>(map)?,
                AttackName::Pgd => read_settings::<PgdSettings, _>(map)?,
                AttackName::PgdL2 => read_settings::<PgdL2Settings, _>(map)?,
                AttackName::Cw => read_settings::<CwSettings, _>(map)?,
                AttackName::DeepFool => read_settings::<DeepFoolSettings, _>(map)?,
                AttackName::AutoAttack => read_settings::<AutoAttackSettings, _>(map)?,
                AttackName::ApgdCe => read_settings::<ApgdCeSettings, _>(map)?,
                AttackName::ApgdT => read_settings::<ApgdTSettings, _>(map)?,
                AttackName::FabT => read_settings::<FabTSettings, _>(map)?,
                AttackName::Square => read_settings::<SquareSettings, _>(map)?,
                AttackName::Spsa => read_settings::<SpsaSettings, _>(map)?,
            };
            Ok(AttackEntry { name: *name, config, targeted })
        })?;
        Ok(Attacks(entries.into_iter().map(|(_, entry)| entry).collect()))
    }
}

/// The settings of one attack: `{}` or an empty value means all defaults.
trait Settings: Default + for<'de> Deserialize<'de> {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>);
}

fn read_settings<'de, S: Settings, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<(attack_config::Attack, Option<Vec<bool>>), A::Error> {
    Ok(map.next_value::<Option<S>>()?.unwrap_or_default().into_config())
}

fn modes(list: Option<NonEmpty<bool>>) -> Option<Vec<bool>> {
    list.map(|list| list.0)
}

/// FGSM (L∞, one step).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "fgsm settings (eps, targeted)")]
struct FgsmSettings {
    eps: Positive,
    targeted: Option<NonEmpty<bool>>,
}

impl Default for FgsmSettings {
    fn default() -> Self {
        Self { eps: Positive(8.0 / 255.0), targeted: None }
    }
}

impl Settings for FgsmSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        (attack_config::Attack::Fgsm(v1::Fgsm { eps: self.eps.0 }), modes(self.targeted))
    }
}

/// PGD under L∞.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "pgd settings (eps, alpha, steps, random_start, targeted)")]
struct PgdSettings {
    eps: Positive,
    alpha: Positive,
    steps: Count,
    random_start: bool,
    targeted: Option<NonEmpty<bool>>,
}

impl Default for PgdSettings {
    fn default() -> Self {
        Self {
            eps: Positive(8.0 / 255.0),
            alpha: Positive(2.0 / 255.0),
            steps: Count(10),
            random_start: false,
            targeted: None,
        }
    }
}

impl Settings for PgdSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        let pgd =
            v1::Pgd { eps: self.eps.0, alpha: self.alpha.0, steps: self.steps.0, random_start: self.random_start };
        (attack_config::Attack::Pgd(pgd), modes(self.targeted))
    }
}

/// PGD under L2.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "pgdl2 settings (eps, alpha, steps, random_start, targeted)")]
struct PgdL2Settings {
    eps: Positive,
    alpha: Positive,
    steps: Count,
    random_start: bool,
    targeted: Option<NonEmpty<bool>>,
}

impl Default for PgdL2Settings {
    fn default() -> Self {
        Self {
            eps: Positive(128.0 / 255.0),
            alpha: Positive(15.0 / 255.0),
            steps: Count(10),
            random_start: false,
            targeted: None,
        }
    }
}

impl Settings for PgdL2Settings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        let pgdl2 =
            v1::PgdL2 { eps: self.eps.0, alpha: self.alpha.0, steps: self.steps.0, random_start: self.random_start };
        (attack_config::Attack::Pgdl2(pgdl2), modes(self.targeted))
    }
}

/// Carlini & Wagner L2.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "cw settings (c, kappa, steps, lr, targeted)")]
struct CwSettings {
    c: Positive,
    kappa: NonNegative,
    steps: Count,
    lr: Positive,
    targeted: Option<NonEmpty<bool>>,
}

impl Default for CwSettings {
    fn default() -> Self {
        Self { c: Positive(1.0), kappa: NonNegative(0.0), steps: Count(100), lr: Positive(0.01), targeted: None }
    }
}

impl Settings for CwSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        let cw = v1::CarliniWagner {
            c: self.c.0,
            kappa: self.kappa.0,
            steps: self.steps.0,
            lr: self.lr.0,
            torchattacks_margin: false,
        };
        (attack_config::Attack::Cw(cw), modes(self.targeted))
    }
}

/// A `targeted:` entry of an attack that BEARD runs untargeted only: must be `false`.
#[derive(Debug)]
struct Untargeted;

impl<'de> Deserialize<'de> for Untargeted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bool(UntargetedVisitor)
    }
}

struct UntargetedVisitor;

impl Visitor<'_> for UntargetedVisitor {
    type Value = Untargeted;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("false")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Untargeted, E> {
        if v {
            Err(E::custom("this attack runs untargeted only (as in BEARD), expected false"))
        } else {
            Ok(Untargeted)
        }
    }
}

fn untargeted_modes(list: Option<NonEmpty<Untargeted>>) -> Option<Vec<bool>> {
    list.map(|list| vec![false; list.0.len()])
}

/// DeepFool's number of candidate classes, the true class included: at least 2.
#[derive(Debug)]
struct TopK(u32);

impl<'de> Deserialize<'de> for TopK {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Count(k) = Count::deserialize(deserializer)?;
        if k < 2 {
            return Err(de::Error::custom("expected an integer >= 2 (the true class and at least one other), found 1"));
        }
        Ok(TopK(k))
    }
}

/// DeepFool (untargeted only), over the true class and the `top_k - 1` most likely others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "deepfool settings (steps, overshoot, top_k, targeted)")]
struct DeepFoolSettings {
    steps: Count,
    overshoot: NonNegative,
    top_k: TopK,
    targeted: Option<NonEmpty<Untargeted>>,
}

impl Default for DeepFoolSettings {
    fn default() -> Self {
        Self { steps: Count(50), overshoot: NonNegative(0.02), top_k: TopK(10), targeted: None }
    }
}

impl Settings for DeepFoolSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        let deepfool =
            v1::DeepFool { steps: self.steps.0, overshoot: self.overshoot.0, top_k: self.top_k.0, per_image: false };
        (attack_config::Attack::Deepfool(deepfool), untargeted_modes(self.targeted))
    }
}

/// AutoAttack's ensemble versions.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AutoAttackVersion {
    /// APGD-CE, APGD-T, FAB-T, Square, as fra31/auto-attack runs them.
    #[default]
    Standard,
}

impl AutoAttackVersion {
    fn as_str(self) -> &'static str {
        match self {
            AutoAttackVersion::Standard => "standard",
        }
    }
}

/// AutoAttack under L∞ (untargeted only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "autoattack settings (eps, version, seed, targeted)")]
struct AutoAttackSettings {
    eps: Positive,
    version: AutoAttackVersion,
    seed: u32,
    targeted: Option<NonEmpty<Untargeted>>,
}

impl Default for AutoAttackSettings {
    fn default() -> Self {
        Self { eps: Positive(8.0 / 255.0), version: AutoAttackVersion::default(), seed: 0, targeted: None }
    }
}

impl Settings for AutoAttackSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        // steps 0: the reference implementation's 100 iterations per part.
        let autoattack =
            v1::AutoAttack { eps: self.eps.0, version: self.version.as_str().to_owned(), seed: self.seed, steps: 0 };
        (attack_config::Attack::Autoattack(autoattack), untargeted_modes(self.targeted))
    }
}

/// APGD on the cross-entropy loss (L∞, untargeted only), AutoAttack's first part.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "apgd-ce settings (eps, steps, n_restarts, seed, targeted)")]
struct ApgdCeSettings {
    eps: Positive,
    steps: Count,
    n_restarts: Count,
    seed: u32,
    targeted: Option<NonEmpty<Untargeted>>,
}

impl Default for ApgdCeSettings {
    fn default() -> Self {
        Self { eps: Positive(8.0 / 255.0), steps: Count(100), n_restarts: Count(1), seed: 0, targeted: None }
    }
}

impl Settings for ApgdCeSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        let apgd = v1::ApgdCe { eps: self.eps.0, steps: self.steps.0, n_restarts: self.n_restarts.0, seed: self.seed };
        (attack_config::Attack::ApgdCe(apgd), untargeted_modes(self.targeted))
    }
}

/// APGD on the targeted DLR loss over the most likely other classes (L∞, untargeted only).
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "apgd-t settings (eps, steps, n_restarts, n_target_classes, seed, targeted)"
)]
struct ApgdTSettings {
    eps: Positive,
    steps: Count,
    n_restarts: Count,
    n_target_classes: Count,
    seed: u32,
    targeted: Option<NonEmpty<Untargeted>>,
}

impl Default for ApgdTSettings {
    fn default() -> Self {
        Self {
            eps: Positive(8.0 / 255.0),
            steps: Count(100),
            n_restarts: Count(1),
            n_target_classes: Count(9),
            seed: 0,
            targeted: None,
        }
    }
}

impl Settings for ApgdTSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        let apgd = v1::ApgdT {
            eps: self.eps.0,
            steps: self.steps.0,
            n_restarts: self.n_restarts.0,
            n_target_classes: self.n_target_classes.0,
            seed: self.seed,
        };
        (attack_config::Attack::ApgdT(apgd), untargeted_modes(self.targeted))
    }
}

/// FAB-T (L∞, untargeted only: its targets only steer the search), AutoAttack's third part.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "fab-t settings (eps, steps, n_restarts, n_target_classes, alpha_max, eta, beta, seed, targeted)"
)]
struct FabTSettings {
    eps: Positive,
    steps: Count,
    n_restarts: Count,
    n_target_classes: Count,
    alpha_max: NonNegative,
    eta: Positive,
    beta: Positive,
    seed: u32,
    targeted: Option<NonEmpty<Untargeted>>,
}

impl Default for FabTSettings {
    fn default() -> Self {
        Self {
            eps: Positive(8.0 / 255.0),
            steps: Count(100),
            n_restarts: Count(1),
            n_target_classes: Count(9),
            alpha_max: NonNegative(0.1),
            eta: Positive(1.05),
            beta: Positive(0.9),
            seed: 0,
            targeted: None,
        }
    }
}

impl Settings for FabTSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        let fab = v1::FabT {
            eps: self.eps.0,
            steps: self.steps.0,
            n_restarts: self.n_restarts.0,
            n_target_classes: self.n_target_classes.0,
            alpha_max: self.alpha_max.0,
            eta: self.eta.0,
            beta: self.beta.0,
            seed: self.seed,
        };
        (attack_config::Attack::FabT(fab), untargeted_modes(self.targeted))
    }
}

/// The Square attack (L∞, untargeted only), AutoAttack's score-based part.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "square settings (eps, n_queries, p_init, seed, targeted)")]
struct SquareSettings {
    eps: Positive,
    n_queries: Count,
    p_init: Positive,
    seed: u32,
    targeted: Option<NonEmpty<Untargeted>>,
}

impl Default for SquareSettings {
    fn default() -> Self {
        Self { eps: Positive(8.0 / 255.0), n_queries: Count(5000), p_init: Positive(0.8), seed: 0, targeted: None }
    }
}

impl Settings for SquareSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        let square =
            v1::Square { eps: self.eps.0, n_queries: self.n_queries.0, p_init: self.p_init.0, seed: self.seed };
        (attack_config::Attack::Square(square), untargeted_modes(self.targeted))
    }
}

/// SPSA (L∞, query-only), with torchattacks 3.5.1's parameter names; eps defaults to BEARD's
/// 8/255 (torchattacks' own default is 0.3), the rest to torchattacks'.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "spsa settings (eps, delta, lr, nb_iter, nb_sample, max_batch_size, seed, targeted)"
)]
struct SpsaSettings {
    eps: Positive,
    delta: Positive,
    lr: Positive,
    nb_iter: Count,
    nb_sample: Count,
    max_batch_size: Count,
    seed: u32,
    targeted: Option<NonEmpty<bool>>,
}

impl Default for SpsaSettings {
    fn default() -> Self {
        Self {
            eps: Positive(8.0 / 255.0),
            delta: Positive(0.01),
            lr: Positive(0.01),
            nb_iter: Count(1),
            nb_sample: Count(128),
            max_batch_size: Count(64),
            seed: 0,
            targeted: None,
        }
    }
}

impl Settings for SpsaSettings {
    fn into_config(self) -> (attack_config::Attack, Option<Vec<bool>>) {
        let spsa = v1::Spsa {
            eps: self.eps.0,
            delta: self.delta.0,
            lr: self.lr.0,
            nb_iter: self.nb_iter.0,
            nb_sample: self.nb_sample.0,
            max_batch_size: self.max_batch_size.0,
            seed: self.seed,
        };
        (attack_config::Attack::Spsa(spsa), modes(self.targeted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<AttackEntry> {
        yaml_serde::from_str::<Attacks>(text).map(|a| a.0).unwrap()
    }

    #[test]
    fn spsa_takes_torchattacks_names_and_both_modes() {
        let entries = parse("spsa: {}\n");
        let defaults = v1::Spsa {
            eps: 8.0 / 255.0,
            delta: 0.01,
            lr: 0.01,
            nb_iter: 1,
            nb_sample: 128,
            max_batch_size: 64,
            seed: 0,
        };
        assert_eq!(entries[0].config, attack_config::Attack::Spsa(defaults));
        assert_eq!(entries[0].targeted, None, "the sweep's modes");
        let entries = parse("spsa: { nb_iter: 5, nb_sample: 32, max_batch_size: 16, seed: 3, targeted: [true] }\n");
        let tuned = v1::Spsa { nb_iter: 5, nb_sample: 32, max_batch_size: 16, seed: 3, ..defaults };
        assert_eq!(
            (entries[0].config.clone(), entries[0].targeted.clone()),
            (attack_config::Attack::Spsa(tuned), Some(vec![true]))
        );
        assert!(yaml_serde::from_str::<Attacks>("spsa: { nb_samples: 32 }\n").is_err());
    }

    #[test]
    fn empty_settings_take_beard_defaults() {
        let entries = parse("fgsm: {}\npgd:\npgdl2: ~\ncw: {}\ndeepfool: {}\nautoattack: {}\n");
        let configs: Vec<attack_config::Attack> = entries.into_iter().map(|e| e.config).collect();
        assert_eq!(
            configs,
            [
                attack_config::Attack::Fgsm(v1::Fgsm { eps: 8.0 / 255.0 }),
                attack_config::Attack::Pgd(v1::Pgd {
                    eps: 8.0 / 255.0,
                    alpha: 2.0 / 255.0,
                    steps: 10,
                    random_start: false
                }),
                attack_config::Attack::Pgdl2(v1::PgdL2 {
                    eps: 128.0 / 255.0,
                    alpha: 15.0 / 255.0,
                    steps: 10,
                    random_start: false
                }),
                attack_config::Attack::Cw(v1::CarliniWagner {
                    c: 1.0,
                    kappa: 0.0,
                    steps: 100,
                    lr: 0.01,
                    torchattacks_margin: false
                }),
                attack_config::Attack::Deepfool(v1::DeepFool {
                    steps: 50,
                    overshoot: 0.02,
                    top_k: 10,
                    per_image: false
                }),
                attack_config::Attack::Autoattack(v1::AutoAttack {
                    eps: 8.0 / 255.0,
                    version: "standard".into(),
                    seed: 0,
                    steps: 0
                }),
            ]
        );
    }

    #[test]
    fn settings_override_defaults_and_keep_the_targeted_override() {
        let entries = parse("pgd: { eps: 4/255, steps: 20, targeted: [true] }\ndeepfool: { targeted: [false] }\n");
        assert_eq!(
            entries[0].config,
            attack_config::Attack::Pgd(v1::Pgd {
                eps: 4.0 / 255.0,
                alpha: 2.0 / 255.0,
                steps: 20,
                random_start: false
            })
        );
        assert_eq!(entries[0].targeted, Some(vec![true]));
        assert_eq!(entries[1].targeted, Some(vec![false]));
    }

    #[test]
    fn deepfool_top_k_needs_a_class_besides_the_true_one() {
        let entries = parse("deepfool: { top_k: 3 }\n");
        assert_eq!(
            entries[0].config,
            attack_config::Attack::Deepfool(v1::DeepFool { steps: 50, overshoot: 0.02, top_k: 3, per_image: false })
        );
        let err = yaml_serde::from_str::<Attacks>("deepfool: { top_k: 1 }").unwrap_err();
        assert!(err.to_string().contains("expected an integer >= 2"), "{err}");
    }

    #[test]
    fn autoattack_parts_take_the_standard_settings_and_refuse_targeted_runs() {
        let entries = parse("apgd-ce: {}\napgd-t: { n_target_classes: 3 }\nsquare: { n_queries: 100 }\n");
        assert_eq!(
            entries.iter().map(|e| e.config.clone()).collect::<Vec<_>>(),
            [
                attack_config::Attack::ApgdCe(v1::ApgdCe { eps: 8.0 / 255.0, steps: 100, n_restarts: 1, seed: 0 }),
                attack_config::Attack::ApgdT(v1::ApgdT {
                    eps: 8.0 / 255.0,
                    steps: 100,
                    n_restarts: 1,
                    n_target_classes: 3,
                    seed: 0
                }),
                attack_config::Attack::Square(v1::Square { eps: 8.0 / 255.0, n_queries: 100, p_init: 0.8, seed: 0 }),
            ]
        );
        for name in ["apgd-ce", "apgd-t", "square"] {
            let err = yaml_serde::from_str::<Attacks>(&format!("{name}: {{ targeted: [true] }}")).unwrap_err();
            assert!(err.to_string().contains("untargeted only"), "{name}: {err}");
        }
    }

    #[test]
    fn parameters_of_other_attacks_are_refused() {
        let err = yaml_serde::from_str::<Attacks>("fgsm: { steps: 3 }").unwrap_err();
        assert!(err.to_string().contains("unknown field `steps`"), "{err}");
    }
}
