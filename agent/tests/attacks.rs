//! The attacks' threat model on every sample, and their strength relative to each other.

mod common;

use beard_agent::attacks::{Attack, Fgsm, Goal, Pgd, Start};
use beard_agent::backend::{AttackCheckpoints, Backend, TaskContext};
use beard_proto::v1::{AttackConfig, AttackShard, attack_config};
use tch::Kind;

#[test]
fn every_adversarial_sample_stays_in_the_eps_ball_and_in_pixel_range() {
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, 100);
    let labels = trained.dataset.test.labels.narrow(0, 0, 100);
    let targets = (&labels + 1).remainder(10);
    let eps = common::EPS;
    let attacks: [(&str, Box<dyn Attack>); 4] = [
        ("fgsm", Box::new(Fgsm::new(eps).expect("fgsm"))),
        ("pgd", Box::new(Pgd::new(eps, 2.0 / 255.0, 10, Start::Clean).expect("pgd"))),
        ("pgd random start", Box::new(Pgd::new(eps, 2.0 / 255.0, 5, Start::Random(common::generator())).expect("pgd"))),
        ("pgd big steps", Box::new(Pgd::new(eps, 0.1, 3, Start::Random(common::generator())).expect("pgd"))),
    ];
    for (name, attack) in &attacks {
        for (mode, goal) in [("untargeted", Goal::untargeted(&labels)), ("targeted", Goal::targeted(&targets))] {
            let adversarial = attack.perturb(&trained.model, &images, &goal).expect("attack runs");
            let x = &adversarial.images;
            assert_eq!(x.size(), images.size());
            let linf: Vec<f32> =
                (x - &images).abs().flatten(1, -1).amax([1], false).try_into().expect("per-sample norms");
            let low: Vec<f32> = x.flatten(1, -1).amin([1], false).try_into().expect("per-sample minima");
            let high: Vec<f32> = x.flatten(1, -1).amax([1], false).try_into().expect("per-sample maxima");
            for i in 0..linf.len() {
                assert!(f64::from(linf[i]) <= eps + 1e-6, "{name} {mode}: sample {i} has linf {}", linf[i]);
                assert!(low[i] >= 0.0 && high[i] <= 1.0, "{name} {mode}: sample {i} leaves [0, 1]");
            }
            let moved = linf.iter().filter(|&&l| l > 0.0).count();
            assert!(moved > 90, "{name} {mode}: only {moved} of 100 samples were perturbed");
            let first: Vec<i64> = adversarial.first_success.try_into().expect("steps");
            assert!(first.iter().all(|&s| (-1..=i64::from(attack.max_steps())).contains(&s)));
        }
    }
}

#[test]
fn targeted_attacks_reach_their_targets() {
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, 100);
    let targets = (trained.dataset.test.labels.narrow(0, 0, 100) + 1).remainder(10);
    let pgd = Pgd::new(common::EPS, 2.0 / 255.0, 10, Start::Clean).expect("pgd");
    let adversarial = pgd.perturb(&trained.model, &images, &Goal::targeted(&targets)).expect("attack");
    let hit = adversarial.logits.argmax(1, false).eq_tensor(&targets).to_kind(Kind::Float).mean(Kind::Float);
    let rate = 100.0 * hit.double_value(&[]);
    println!("targeted PGD-10 at 8/255 reaches the next class on {rate:.0}% of samples");
    assert!(rate > 50.0, "targeted PGD reached its target on only {rate:.0}%");
}

fn shard(trained: &mut common::Trained, attack: attack_config::Attack, samples: u32) -> AttackShard {
    let spec = common::attack_spec(&trained.spec, AttackConfig { attack: Some(attack) }, false, samples);
    trained
        .backend
        .attack(&spec, &AttackCheckpoints::white_box(trained.checkpoint.clone()), &TaskContext::detached())
        .expect("attack task")
}

#[test]
fn pgd_is_no_weaker_than_fgsm_and_never_raises_accuracy() {
    let mut trained = common::trained(0, 20);
    for eps in [2.0 / 255.0, common::EPS] {
        let fgsm = shard(&mut trained, attack_config::Attack::Fgsm(beard_proto::v1::Fgsm { eps }), 300);
        let pgd_config = beard_proto::v1::Pgd { eps, alpha: eps / 4.0, steps: 10, random_start: false };
        let pgd = shard(&mut trained, attack_config::Attack::Pgd(pgd_config), 300);
        println!(
            "eps {:.0}/255: clean {:.1}%, FGSM {:.1}%, PGD-10 {:.1}% (clean {:.3}s, FGSM {:.3}s, PGD {:.3}s)",
            eps * 255.0,
            pgd.clean_accuracy,
            fgsm.robust_accuracy,
            pgd.robust_accuracy,
            pgd.clean_seconds,
            fgsm.attack_seconds,
            pgd.attack_seconds
        );
        assert_eq!(fgsm.clean_accuracy, pgd.clean_accuracy);
        assert!(pgd.robust_accuracy <= pgd.clean_accuracy);
        assert!(pgd.robust_accuracy <= fgsm.robust_accuracy);
        assert!(pgd.robust_accuracy < pgd.clean_accuracy, "PGD changed nothing");
    }
}

#[test]
fn zero_budget_attacks_leave_images_unchanged() {
    let trained = common::trained(0, 1);
    let images = trained.dataset.test.images.narrow(0, 0, 20);
    let goal = Goal::untargeted(&trained.dataset.test.labels.narrow(0, 0, 20));
    for attack in [
        Box::new(Fgsm::new(0.0).expect("fgsm")) as Box<dyn Attack>,
        Box::new(Pgd::new(0.0, 0.01, 3, Start::Random(common::generator())).expect("pgd")),
    ] {
        let adversarial = attack.perturb(&trained.model, &images, &goal).expect("attack");
        assert!(adversarial.images.equal(&images));
    }
    assert!(Pgd::new(f64::NAN, 0.01, 3, Start::Clean).is_err());
    assert!(Pgd::new(0.1, 0.01, 0, Start::Clean).is_err());
    assert!(Fgsm::new(1.5).is_err());
}
