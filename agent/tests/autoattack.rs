//! AutoAttack's parts (APGD-CE, APGD-T, Square): the L∞ budget and pixel range on every sample,
//! their strength against PGD-10 and against each other on a trained model, the cascade of the
//! parts never weaker than APGD-CE alone, the typed refusal of the full AutoAttack (FAB-T is not
//! built yet), and parity with torchattacks 3.5.1's `APGD`, `APGDT` and `Square` on the same
//! weights and images (the table is printed with `--nocapture`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use beard_agent::attack_spec;
use beard_agent::attacks::{self, Adversarial, Apgd, ApgdLoss, Attack, AttackConfigError, Goal, Pgd, Square};
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

/// `base`, with the rows it left robust replaced by `next` run on their clean images.
fn cascade(
    model: &beard_agent::model::ConvNet,
    base: Adversarial,
    next: &dyn Attack,
    images: &Tensor,
    labels: &Tensor,
) -> Adversarial {
    let robust = base.logits.argmax(1, false).eq_tensor(labels).nonzero().squeeze_dim(1);
    if robust.numel() == 0 {
        return base;
    }
    let goal = Goal::untargeted(&labels.index_select(0, &robust));
    let later = next.perturb(model, &images.index_select(0, &robust), &goal).expect("attack runs");
    Adversarial {
        images: base.images.index_copy(0, &robust, &later.images),
        logits: base.logits.index_copy(0, &robust, &later.logits),
        first_success: base.first_success.index_copy(0, &robust, &later.first_success),
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
    let pgd = Pgd::new(EPS, EPS / 4.0, 10, false).expect("pgd");
    let apgd_ce = Apgd::new(EPS, 50, 1, ApgdLoss::CrossEntropy, 0).expect("apgd-ce");
    let apgd_t = Apgd::new(EPS, 25, 1, ApgdLoss::TargetedDlr { target_classes: 3 }, 0).expect("apgd-t");
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
    let (ce, ce_robust) = run("apgd-ce", &apgd_ce);
    let (_, t_robust) = run("apgd-t", &apgd_t);
    let (_, square_robust) = run("square (500 queries)", &square);
    assert!(ce_robust <= pgd_robust, "APGD-CE {ce_robust}% weaker than PGD-10 {pgd_robust}%");
    assert!(t_robust < clean && square_robust < clean, "APGD-T or Square fooled nothing");

    let all = cascade(model, cascade(model, ce, &apgd_t, &images, &labels), &square, &images, &labels);
    in_budget("cascade", &all.images, &images);
    let cascade_robust = accuracy(&model.forward(&all.images, false).expect("forward"), &labels);
    println!("cascade apgd-ce -> apgd-t -> square: robust {cascade_robust:.1}%");
    assert!(cascade_robust <= ce_robust, "the cascade {cascade_robust}% is weaker than APGD-CE {ce_robust}%");
}

#[test]
fn autoattack_without_fab_t_is_refused_and_its_parts_are_untargeted_only() {
    let config = attack_spec::parse("autoattack").expect("spec");
    assert!(matches!(attacks::from_config(&config, false), Err(AttackConfigError::Unsupported("autoattack"))));
    for spec in ["apgd-ce", "apgd-t", "square"] {
        let config = attack_spec::parse(spec).expect("spec");
        assert!(attacks::from_config(&config, false).is_ok(), "{spec} builds");
        assert!(matches!(attacks::from_config(&config, true), Err(AttackConfigError::UntargetedOnly(_))), "{spec}");
    }
    for bad in ["apgd-ce:steps=0", "apgd-t:n_target_classes=0", "square:p_init=2", "square:eps=2"] {
        let config = attack_spec::parse(bad).expect("spec");
        assert!(matches!(attacks::from_config(&config, false), Err(AttackConfigError::Invalid { .. })), "{bad}");
    }
}

/// The same spec through torchattacks and through ours; the allowed excess of our robust
/// accuracy over torchattacks' in points.
/// Shortened like the strength test: torchattacks' APGD runs at half our speed on CPU.
const PARITY: [(&str, f64); 3] = [
    ("apgd-ce:eps=2/255,steps=25", 1.0),
    ("apgd-t:eps=2/255,steps=25,n_target_classes=3", 1.0),
    ("square:eps=2/255,n_queries=200", 1.0),
];

fn python() -> PathBuf {
    std::env::var_os("BEARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

#[test]
fn robust_accuracy_is_within_a_point_of_torchattacks_or_lower() {
    let python = python();
    assert!(python.exists(), "no Python at {} (set BEARD_PYTHON or run `make venv`)", python.display());
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, SAMPLES);
    let labels = trained.dataset.test.labels.narrow(0, 0, SAMPLES);
    let dir = tempfile::tempdir().expect("temp dir");
    let (checkpoint, inputs, results) = (
        dir.path().join("model.safetensors"),
        dir.path().join("images.safetensors"),
        dir.path().join("out.safetensors"),
    );
    std::fs::write(&checkpoint, &trained.checkpoint).expect("write checkpoint");
    Tensor::write_safetensors(&[("images", &images), ("labels", &labels)], &inputs).expect("write images");
    let normalization = trained.dataset.info.normalization;
    let join = |values: [f32; 3]| values.map(|v| v.to_string()).join(",");
    let mut command = Command::new(&python);
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/parity/torchattacks_parity.py"))
        .args(["--checkpoint".as_ref(), checkpoint.as_os_str(), "--images".as_ref(), inputs.as_os_str()])
        .args(["--out".as_ref(), results.as_os_str()])
        .args(["--width", "16", "--depth", "3", "--norm", "instance", "--pool", "avg", "--classes", "10"])
        .args(["--mean", &join(normalization.mean), "--std", &join(normalization.std)])
        .args(["--batch-size", &SAMPLES.to_string(), "--threads", &tch::get_num_threads().to_string()]);
    for (spec, _) in PARITY {
        command.args(["--attack", spec]);
    }
    let output = command.output().expect("the parity script starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the parity script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{stdout}");
    let theirs = Tensor::read_safetensors(&results).expect("results");
    let field = |key: &str| theirs.iter().find(|(name, _)| name == key).map(|(_, t)| t.shallow_clone());

    println!("{:<40} {:>7} {:>7} {:>9} {:>9}", "attack", "ours%", "ta%", "ours/s", "ta/s");
    let mut failures = Vec::new();
    for (spec, tolerance) in PARITY {
        let attack = attacks::from_config(&attack_spec::parse(spec).expect("spec"), false).expect("attack");
        let started = std::time::Instant::now();
        let ours = attack.perturb(&trained.model, &images, &Goal::untargeted(&labels)).expect("attack runs");
        let seconds = started.elapsed().as_secs_f64();
        let ours_accuracy = accuracy(&ours.logits, &labels);
        let correct = field(&format!("{spec}/correct")).expect("their correctness");
        let their_accuracy = 100.0 * correct.to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        let their_seconds = field(&format!("{spec}/seconds")).expect("their time").double_value(&[0]);
        let rate = |seconds: f64| SAMPLES as f64 / seconds;
        println!(
            "{spec:<40} {ours_accuracy:>7.1} {their_accuracy:>7.1} {:>9.1} {:>9.1}",
            rate(seconds),
            rate(their_seconds)
        );
        if ours_accuracy > their_accuracy + tolerance + 1e-9 {
            failures.push(format!("{spec}: ours {ours_accuracy:.1}% vs torchattacks {their_accuracy:.1}%"));
        }
    }
    assert!(failures.is_empty(), "weaker than torchattacks: {failures:#?}");
}
