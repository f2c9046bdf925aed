//! AutoAttack and its parts (APGD-CE, APGD-T, FAB-T, Square): the L∞ budget and pixel range on
//! every sample, their strength against PGD-10 on a trained model, the 'standard' cascade never
//! weaker than its APGD-CE alone, untargeted only, and parity with torchattacks 3.5.1's `APGD`,
//! `APGDT`, `FAB` and `AutoAttack` on the same weights and images, ours at least as strong (the
//! table is printed with `--nocapture`; `cifar_parity.rs` holds AutoAttack to torchattacks' both
//! ways at its settings).

mod common;

use beard_agent::attack_spec;
use beard_agent::attacks::{
    self, Adversarial, Apgd, ApgdLoss, Attack, AttackConfigError, AutoAttack, FabT, Goal, Pgd, Square, Start,
};
use common::parity::{Run, ScriptModel, compare};
use tch::{Kind, Tensor};

const SAMPLES: i64 = 100;
/// Smaller than BEARD's 8/255, under which every attack fools every sample of this small
/// model, so that the comparisons between attacks mean something.
const EPS: f64 = 2.0 / 255.0;

/// Robust accuracy (percent) of `logits` against `labels`.
fn accuracy(logits: &Tensor, labels: &Tensor) -> f64 {
    100.0 * logits.argmax(1, false).eq_tensor(labels).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
}

/// Every sample inside the L∞ ball and [0, 1].
fn in_budget(name: &str, adversarial: &Tensor, images: &Tensor) {
    let worst = (adversarial - images).abs().max().double_value(&[]);
    assert!(worst <= EPS + 1e-6, "{name}: L∞ {worst} exceeds {EPS}");
    assert!(adversarial.min().double_value(&[]) >= 0.0, "{name}: a pixel below 0");
    assert!(adversarial.max().double_value(&[]) <= 1.0, "{name}: a pixel above 1");
}

/// In budget, and success steps within the attack's range and present for every fooled sample.
fn check(name: &str, attack: &dyn Attack, adversarial: &Adversarial, images: &Tensor, labels: &Tensor) {
    in_budget(name, &adversarial.images, images);
    let steps: Vec<i64> = adversarial.first_success.shallow_clone().try_into().expect("steps");
    let fooled: Vec<bool> = adversarial.logits.argmax(1, false).ne_tensor(labels).try_into().expect("fooled");
    for (i, (&step, &fooled)) in steps.iter().zip(&fooled).enumerate() {
        assert!((-1..=i64::from(attack.max_steps())).contains(&step), "{name}: sample {i} step {step}");
        assert!(!fooled || step >= 0, "{name}: fooled sample {i} has no success step");
    }
}

#[test]
fn autoattack_parts_stay_in_budget_and_are_at_least_as_strong_as_pgd() {
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, SAMPLES);
    let labels = trained.dataset.test.labels.narrow(0, 0, SAMPLES);
    let goal = Goal::untargeted(&labels);
    let model = &trained.model;
    let clean = accuracy(&model.forward(&images, false).expect("forward"), &labels);

    // Fewer iterations, targets and queries than 'standard' to stay quick on two CPU cores.
    let pgd = Pgd::new(EPS, EPS / 4.0, 10, Start::Clean).expect("pgd");
    let apgd_ce = Apgd::new(EPS, 50, 1, ApgdLoss::CrossEntropy, 0).expect("apgd-ce");
    let apgd_t = Apgd::new(EPS, 25, 1, ApgdLoss::TargetedDlr { target_classes: 3 }, 0).expect("apgd-t");
    let fab_t = FabT::new(EPS, 20, 1, 3, 0.1, 1.05, 0.9, 0).expect("fab-t");
    let square = Square::new(EPS, 500, 0.8, 0).expect("square");
    let run = |name: &str, attack: &dyn Attack| {
        let started = std::time::Instant::now();
        let adversarial = attack.perturb(model, &images, &goal).expect("attack runs");
        check(name, attack, &adversarial, &images, &labels);
        let robust = accuracy(&adversarial.logits, &labels);
        println!("{name}: robust {robust:.1}% (clean {clean:.1}%), {:.2} s", started.elapsed().as_secs_f64());
        assert!(robust <= clean, "{name}: robust {robust}% above clean {clean}%");
        (adversarial, robust)
    };
    let (_, pgd_robust) = run("pgd-10", &pgd);
    let (_, ce_robust) = run("apgd-ce", &apgd_ce);
    let (_, t_robust) = run("apgd-t", &apgd_t);
    let (_, fab_robust) = run("fab-t", &fab_t);
    let (_, square_robust) = run("square (500 queries)", &square);
    assert!(ce_robust <= pgd_robust, "APGD-CE {ce_robust}% weaker than PGD-10 {pgd_robust}%");
    for (name, robust) in [("APGD-T", t_robust), ("FAB-T", fab_robust), ("Square", square_robust)] {
        assert!(robust < clean, "{name} fooled nothing");
    }
}

#[test]
fn standard_autoattack_stays_in_budget_and_is_never_weaker_than_its_apgd_ce() {
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, AUTOATTACK_SAMPLES);
    let labels = trained.dataset.test.labels.narrow(0, 0, AUTOATTACK_SAMPLES);
    let goal = Goal::untargeted(&labels);
    let model = &trained.model;
    let clean = accuracy(&model.forward(&images, false).expect("forward"), &labels);
    let apgd_ce = Apgd::new(EPS, 100, 1, ApgdLoss::CrossEntropy, 5).expect("apgd-ce");
    let ce = apgd_ce.perturb(model, &images, &goal).expect("apgd-ce runs");
    let ce_robust = accuracy(&ce.logits, &labels);
    let autoattack = AutoAttack::standard(EPS, 5).expect("autoattack");
    let started = std::time::Instant::now();
    let all = autoattack.perturb(model, &images, &goal).expect("autoattack runs");
    check("autoattack", &autoattack, &all, &images, &labels);
    let robust = accuracy(&model.forward(&all.images, false).expect("forward"), &labels);
    assert_eq!(robust, accuracy(&all.logits, &labels), "the logits returned are those of the images returned");
    println!(
        "autoattack: robust {robust:.1}% (apgd-ce alone {ce_robust:.1}%, clean {clean:.1}%), {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(robust <= ce_robust, "AutoAttack {robust}% is weaker than its APGD-CE alone {ce_robust}%");
    assert!(robust <= clean);
}

#[test]
fn autoattack_and_its_parts_are_untargeted_only() {
    for spec in ["autoattack", "apgd-ce", "apgd-t", "fab-t", "square"] {
        let config = attack_spec::parse(spec).expect("spec");
        assert!(attacks::from_config(&config, false, &common::generator()).is_ok(), "{spec} builds");
        assert!(
            matches!(
                attacks::from_config(&config, true, &common::generator()),
                Err(AttackConfigError::UntargetedOnly(_))
            ),
            "{spec}"
        );
    }
    for bad in [
        "apgd-ce:steps=0",
        "apgd-t:n_target_classes=0",
        "fab-t:n_target_classes=0",
        "fab-t:eta=0.5",
        "fab-t:beta=0",
        "square:p_init=2",
        "square:eps=2",
        "autoattack:version=plus",
    ] {
        let config = attack_spec::parse(bad).expect("spec");
        assert!(
            matches!(
                attacks::from_config(&config, false, &common::generator()),
                Err(AttackConfigError::Invalid { .. })
            ),
            "{bad}"
        );
    }
}

/// The same spec through torchattacks and through ours, shortened like the strength test
/// (torchattacks' APGD runs at half our speed on CPU); ours may be stronger by any amount and
/// weaker by at most a point (half a point for the whole AutoAttack).
const PARITY: [Run; 4] = [
    Run::not_weaker("apgd-ce:eps=2/255,steps=25", 1.0),
    Run::not_weaker("apgd-t:eps=2/255,steps=25,n_target_classes=3", 1.0),
    Run::not_weaker("fab-t:eps=2/255,steps=10,n_target_classes=3", 1.0),
    Run::not_weaker("square:eps=2/255,n_queries=200", 1.0),
];

/// The whole AutoAttack, on fewer samples: Square's 5000 queries on the points the gradient
/// parts leave robust dominate both sides' time. Ours runs the reference's 100 iterations per
/// part where torchattacks runs 10.
const AUTOATTACK_PARITY: [Run; 1] = [Run::not_weaker("autoattack:eps=2/255", 0.5)];
const AUTOATTACK_SAMPLES: i64 = 30;

#[test]
fn robust_accuracy_is_within_a_point_of_torchattacks_or_lower() {
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, SAMPLES);
    let labels = trained.dataset.test.labels.narrow(0, 0, SAMPLES);
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoint = dir.path().join("model.safetensors");
    std::fs::write(&checkpoint, &trained.checkpoint).expect("write checkpoint");
    let script_model = ScriptModel {
        checkpoint: &checkpoint,
        width: 16,
        classes: 10,
        normalization: trained.dataset.info.normalization,
    };
    let mut failures = compare(&trained.model, &script_model, &PARITY, &images, &labels, &labels, SAMPLES);
    let (images, labels) = (images.narrow(0, 0, AUTOATTACK_SAMPLES), labels.narrow(0, 0, AUTOATTACK_SAMPLES));
    failures.extend(compare(&trained.model, &script_model, &AUTOATTACK_PARITY, &images, &labels, &labels, SAMPLES));
    assert!(failures.is_empty(), "weaker than torchattacks: {failures:#?}");
}
