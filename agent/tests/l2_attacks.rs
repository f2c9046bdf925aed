//! PGD-L2, C&W and DeepFool: the threat model on every sample, their strength on a trained model,
//! and the modes they refuse.

mod common;

use beard_agent::attacks::{self, Attack, AttackConfigError, CarliniWagner, DeepFool, Goal, PgdL2, Start};
use beard_agent::backend::{AttackCheckpoints, Backend, TaskContext};
use beard_proto::v1::{self as proto, AttackConfig, AttackShard, ErrorClass, attack_config};
use tch::{Kind, Tensor};

const SAMPLES: i64 = 100;

struct Norms {
    l2: Vec<f32>,
    low: Vec<f32>,
    high: Vec<f32>,
}

fn norms(adversarial: &Tensor, images: &Tensor) -> Norms {
    let delta = (adversarial - images).flatten(1, -1);
    Norms {
        l2: delta.norm_scalaropt_dim(2, [1], false).try_into().expect("l2"),
        low: adversarial.flatten(1, -1).amin([1], false).try_into().expect("minima"),
        high: adversarial.flatten(1, -1).amax([1], false).try_into().expect("maxima"),
    }
}

fn rate(hits: &Tensor) -> f64 {
    100.0 * hits.to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
}

#[test]
fn every_adversarial_sample_is_in_pixel_range_and_pgdl2_stays_in_its_ball() {
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, SAMPLES);
    let labels = trained.dataset.test.labels.narrow(0, 0, SAMPLES);
    let targets = (&labels + 1).remainder(10);
    let eps = 0.5;
    let attacks: [(&str, Box<dyn Attack>, Option<f64>); 5] = [
        ("pgdl2", Box::new(PgdL2::new(eps, 0.1, 10, Start::Clean).expect("pgdl2")), Some(eps)),
        (
            "pgdl2 random start",
            Box::new(PgdL2::new(eps, 0.1, 5, Start::Random(common::generator())).expect("pgdl2")),
            Some(eps),
        ),
        (
            "pgdl2 big steps",
            Box::new(PgdL2::new(eps, 2.0, 3, Start::Random(common::generator())).expect("pgdl2")),
            Some(eps),
        ),
        ("cw", Box::new(CarliniWagner::new(1.0, 0.0, 30, 0.01).expect("cw")), None),
        ("deepfool", Box::new(DeepFool::new(50, 0.02, 10).expect("deepfool")), None),
    ];
    for (name, attack, budget) in &attacks {
        let mut goals = vec![("untargeted", Goal::untargeted(&labels))];
        if attack.supports_targeted() {
            goals.push(("targeted", Goal::targeted(&targets)));
        }
        for (mode, goal) in goals {
            let adversarial = attack.perturb(&trained.model, &images, &goal).expect("attack runs");
            assert_eq!(adversarial.images.size(), images.size());
            let norms = norms(&adversarial.images, &images);
            for i in 0..norms.l2.len() {
                if let Some(eps) = budget {
                    assert!(f64::from(norms.l2[i]) <= eps + 1e-4, "{name} {mode}: sample {i} has L2 {}", norms.l2[i]);
                }
                assert!(norms.low[i] >= 0.0 && norms.high[i] <= 1.0, "{name} {mode}: sample {i} leaves [0, 1]");
                assert!(norms.l2[i].is_finite(), "{name} {mode}: sample {i} has a non-finite perturbation");
            }
            let first: Vec<i64> = adversarial.first_success.shallow_clone().try_into().expect("steps");
            assert!(first.iter().all(|&s| (-1..=i64::from(attack.max_steps())).contains(&s)));
            let success = goal.reached(&adversarial.logits).expect("reached");
            let succeeded: Vec<bool> = success.shallow_clone().try_into().expect("success");
            assert!(
                succeeded.iter().zip(&first).all(|(&s, &f)| !s || f >= 0),
                "{name} {mode}: a successful sample has no success step"
            );
            let mean_l2 = norms.l2.iter().map(|&l| f64::from(l)).sum::<f64>() / norms.l2.len() as f64;
            println!("{name} {mode}: success {:.0}%, mean L2 {mean_l2:.3}", rate(&success));
        }
    }
}

#[test]
fn cw_and_deepfool_fool_most_samples_and_deepfool_needs_few_steps() {
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, SAMPLES);
    let labels = trained.dataset.test.labels.narrow(0, 0, SAMPLES);
    let targets = (&labels + 1).remainder(10);
    let cw = CarliniWagner::new(1.0, 0.0, 100, 0.01).expect("cw");
    for (mode, goal) in [("untargeted", Goal::untargeted(&labels)), ("targeted", Goal::targeted(&targets))] {
        let adversarial = cw.perturb(&trained.model, &images, &goal).expect("cw");
        let success = rate(&goal.reached(&adversarial.logits).expect("reached"));
        println!("C&W {mode}: {success:.0}% successful");
        assert!(success > 80.0, "C&W {mode} succeeded on only {success:.0}%");
    }
    let goal = Goal::untargeted(&labels);
    for top_k in [10, 3] {
        let deepfool = DeepFool::new(50, 0.02, top_k).expect("deepfool");
        let adversarial = deepfool.perturb(&trained.model, &images, &goal).expect("deepfool");
        let success = rate(&goal.reached(&adversarial.logits).expect("reached"));
        let steps = adversarial.first_success.to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        println!("DeepFool top-{top_k}: {success:.0}% successful, mean success step {steps:.2}");
        assert!(success > 90.0, "DeepFool top-{top_k} succeeded on only {success:.0}%");
        assert!(steps < 10.0, "DeepFool top-{top_k} took {steps:.1} steps on average");
    }
}

#[test]
fn untargeted_only_attacks_refuse_targeted_runs() {
    let deepfool = AttackConfig {
        attack: Some(attack_config::Attack::Deepfool(proto::DeepFool {
            steps: 50,
            overshoot: 0.02,
            top_k: 10,
            per_image: false,
        })),
    };
    assert!(matches!(
        attacks::from_config(&deepfool, true, &common::generator()),
        Err(AttackConfigError::UntargetedOnly("deepfool"))
    ));
    assert!(attacks::from_config(&deepfool, false, &common::generator()).is_ok());
    let cw = AttackConfig {
        attack: Some(attack_config::Attack::Cw(proto::CarliniWagner {
            c: 1.0,
            kappa: 0.0,
            steps: 10,
            lr: 0.01,
            torchattacks_margin: false,
        })),
    };
    assert!(attacks::from_config(&cw, true, &common::generator()).is_ok());

    let mut trained = common::trained(0, 1);
    let spec = common::attack_spec(&trained.spec, deepfool, true, 10);
    let failure = trained
        .backend
        .attack(&spec, &AttackCheckpoints::white_box(trained.checkpoint.clone()), &TaskContext::detached())
        .expect_err("refused");
    assert_eq!((failure.class(), failure.code.as_str()), (ErrorClass::Permanent, "invalid_spec"), "{failure}");

    let images = trained.dataset.test.images.narrow(0, 0, 4);
    let targets = trained.dataset.test.labels.narrow(0, 0, 4);
    let direct =
        DeepFool::new(5, 0.02, 10).expect("deepfool").perturb(&trained.model, &images, &Goal::targeted(&targets));
    assert!(direct.is_err(), "DeepFool must not run a targeted goal untargeted");
}

#[test]
fn invalid_parameters_are_refused() {
    assert!(PgdL2::new(-0.1, 0.1, 10, Start::Clean).is_err());
    assert!(PgdL2::new(0.5, f64::NAN, 10, Start::Clean).is_err());
    assert!(PgdL2::new(0.5, 0.1, 0, Start::Clean).is_err());
    assert!(CarliniWagner::new(0.0, 0.0, 10, 0.01).is_err());
    assert!(CarliniWagner::new(1.0, -1.0, 10, 0.01).is_err());
    assert!(CarliniWagner::new(1.0, 0.0, 10, 0.0).is_err());
    assert!(DeepFool::new(0, 0.02, 10).is_err());
    assert!(DeepFool::new(10, -0.1, 10).is_err());
    assert!(DeepFool::new(10, 0.02, 1).is_err());
    let trained = common::trained(0, 1);
    let images = trained.dataset.test.images.narrow(0, 0, 20);
    let goal = Goal::untargeted(&trained.dataset.test.labels.narrow(0, 0, 20));
    let unchanged = PgdL2::new(0.0, 0.1, 3, Start::Random(common::generator())).expect("pgdl2").perturb(
        &trained.model,
        &images,
        &goal,
    );
    assert!(unchanged.expect("attack").images.equal(&images));
}

fn shard(trained: &mut common::Trained, attack: attack_config::Attack, targeted: bool) -> AttackShard {
    let spec = common::attack_spec(&trained.spec, AttackConfig { attack: Some(attack) }, targeted, 100);
    trained
        .backend
        .attack(&spec, &AttackCheckpoints::white_box(trained.checkpoint.clone()), &TaskContext::detached())
        .expect("attack task")
}

#[test]
fn attack_tasks_report_norms_and_never_raise_accuracy() {
    let mut trained = common::trained(0, 20);
    let attacks = [
        attack_config::Attack::Pgdl2(proto::PgdL2 { eps: 0.5, alpha: 0.06, steps: 10, random_start: false }),
        attack_config::Attack::Cw(proto::CarliniWagner {
            c: 1.0,
            kappa: 0.0,
            steps: 30,
            lr: 0.01,
            torchattacks_margin: false,
        }),
        attack_config::Attack::Deepfool(proto::DeepFool { steps: 50, overshoot: 0.02, top_k: 10, per_image: false }),
    ];
    for attack in attacks {
        let untargeted = shard(&mut trained, attack.clone(), false);
        let name = beard_proto::describe::attack_name(&AttackConfig { attack: Some(attack.clone()) });
        println!(
            "{name}: clean {:.1}%, robust {:.1}% ({:.3}s, clean {:.3}s)",
            untargeted.clean_accuracy, untargeted.robust_accuracy, untargeted.attack_seconds, untargeted.clean_seconds
        );
        assert!(untargeted.robust_accuracy <= untargeted.clean_accuracy, "{name} raised the accuracy");
        assert!(untargeted.robust_accuracy < untargeted.clean_accuracy, "{name} changed nothing");
        for outcome in &untargeted.outcomes {
            assert_eq!(outcome.success, !outcome.adversarial_correct, "{name}: {outcome:?}");
            assert!(outcome.l2.is_finite() && outcome.linf <= 1.0 && outcome.linf <= outcome.l2 + 1e-6);
            if outcome.success && outcome.clean_correct {
                assert!(outcome.l2 > 0.0, "{name}: a clean-correct sample was fooled without moving");
            }
        }
        if !matches!(attack, attack_config::Attack::Deepfool(_)) {
            let targeted = shard(&mut trained, attack, true);
            let hits = targeted.outcomes.iter().filter(|o| o.success).count();
            assert!(targeted.outcomes.iter().all(|o| o.target == (o.label + 1) % 10));
            println!("{name} targeted: {hits} of {} reach the next class", targeted.outcomes.len());
            assert!(hits > 0, "{name} targeted reached no target");
        }
    }
}
