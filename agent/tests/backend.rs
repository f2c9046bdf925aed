//! Attack tasks through the backend: typed failures for what it cannot do, and shards whose
//! per-sample outcomes agree with their aggregates and with the target policy.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use beard_agent::backend::{AttackCheckpoints, Backend, TaskContext};
use beard_agent::tch_backend::{TchBackend, parse_device};
use beard_proto::failure::codes::UNSUPPORTED_ATTACK;
use beard_proto::v1::{
    AttackConfig, AttackShard, DistilledFile, DistilledSource, ErrorClass, Pgd, TargetPolicy, TaskFailure,
    attack_config, distilled_source,
};
use tch::Device;

fn pgd(steps: u32) -> AttackConfig {
    AttackConfig {
        attack: Some(attack_config::Attack::Pgd(Pgd {
            eps: common::EPS,
            alpha: 2.0 / 255.0,
            steps,
            random_start: false,
        })),
    }
}

fn assert_permanent(failure: &TaskFailure, code: &str) {
    assert_eq!((failure.class(), failure.code.as_str()), (ErrorClass::Permanent, code), "{failure}");
}

#[test]
fn unknown_attacks_fail_with_the_typed_unsupported_attack_failure() {
    let mut backend = TchBackend::new(Device::Cpu);
    let train = common::train_spec(0, 1);
    // What this agent decodes from an attack that a newer coordinator added to the oneof.
    let spec = common::attack_spec(&train, AttackConfig { attack: None }, false, 10);
    let failure = backend
        .attack(&spec, &AttackCheckpoints::white_box(Vec::new()), &TaskContext::detached())
        .expect_err("unsupported");
    assert_permanent(&failure, UNSUPPORTED_ATTACK);
    assert!(failure.message.contains("newer"), "{failure}");
}

#[test]
fn missing_data_and_unusable_sources_fail_with_their_codes() {
    let mut backend = TchBackend::new(Device::Cpu);
    let mut tiny = common::train_spec(0, 1);
    tiny.dataset = Some(beard_proto::v1::DatasetRef { name: "tinyimagenet".into(), root: "/nonexistent".into() });
    let failure = backend.train(&tiny, &TaskContext::detached()).expect_err("no files");
    assert_eq!((failure.class(), failure.code.as_str()), (ErrorClass::Retryable, "data_io"), "{failure:?}");
    assert!(failure.message.contains("/nonexistent/wnids.txt"), "{failure:?}");
    let mut cifar = common::train_spec(0, 1);
    cifar.dataset = Some(beard_proto::v1::DatasetRef { name: "cifar10".into(), root: "/nonexistent".into() });
    let failure = backend.train(&cifar, &TaskContext::detached()).expect_err("no files");
    assert_eq!((failure.class(), failure.code.as_str()), (ErrorClass::Retryable, "data_io"), "{failure:?}");
    let mut file = common::train_spec(0, 1);
    file.source = Some(DistilledSource {
        source: Some(distilled_source::Source::File(DistilledFile {
            path: "/nonexistent/dc.pt".into(),
            experiment: 0,
            stored: "pixels".into(),
            labels_path: String::new(),
            mosaic: false,
        })),
    });
    let failure = backend.train(&file, &TaskContext::detached()).expect_err("no file");
    assert!(failure.message.contains("/nonexistent/dc.pt"), "{failure:?}");
    let mut unknown = common::train_spec(0, 1);
    unknown.dataset = Some(beard_proto::v1::DatasetRef { name: "mnist".into(), root: String::new() });
    assert_permanent(&backend.train(&unknown, &TaskContext::detached()).expect_err("unknown"), "invalid_spec");
}

#[test]
fn checkpoints_that_do_not_fit_fail_permanently() {
    let mut backend = TchBackend::new(Device::Cpu);
    let spec = common::attack_spec(&common::train_spec(0, 1), pgd(2), false, 10);
    let failure = backend
        .attack(&spec, &AttackCheckpoints::white_box(b"definitely not safetensors".to_vec()), &TaskContext::detached())
        .expect_err("bad");
    assert_permanent(&failure, "invalid_checkpoint");
}

fn check_consistency(shard: &AttackShard, samples: usize) {
    assert_eq!(shard.samples as usize, samples);
    assert_eq!(shard.outcomes.len(), samples);
    let percent = |count: usize| 100.0 * count as f64 / samples as f64;
    assert_eq!(shard.clean_accuracy, percent(shard.outcomes.iter().filter(|o| o.clean_correct).count()));
    assert_eq!(shard.robust_accuracy, percent(shard.outcomes.iter().filter(|o| o.adversarial_correct).count()));
    assert!(shard.clean_seconds > 0.0 && shard.attack_seconds > shard.clean_seconds);
    for (i, outcome) in shard.outcomes.iter().enumerate() {
        assert_eq!(outcome.label as usize, i % 10, "synthetic interleaves classes");
        assert!(f64::from(outcome.linf) <= common::EPS + 1e-6);
        assert!(outcome.l2 >= outcome.linf);
        assert!(outcome.success_step <= shard.max_steps);
    }
}

#[test]
fn untargeted_shards_are_consistent() {
    let mut trained = common::trained(0, 20);
    let spec = common::attack_spec(&trained.spec, pgd(5), false, 120);
    let shard = trained
        .backend
        .attack(&spec, &AttackCheckpoints::white_box(trained.checkpoint.clone()), &TaskContext::detached())
        .expect("attack");
    check_consistency(&shard, 120);
    assert_eq!((shard.max_steps, shard.device.starts_with("cpu")), (5, true));
    for outcome in &shard.outcomes {
        assert_eq!(outcome.success, !outcome.adversarial_correct);
        assert_eq!(outcome.target, 0);
        if outcome.clean_correct && outcome.success {
            assert!(outcome.success_step >= 1, "a clean-correct sample needs a step to be fooled");
        }
    }
}

#[test]
fn targeted_shards_follow_the_target_policy() {
    let mut trained = common::trained(0, 20);
    let mut shard_for = |policy: TargetPolicy| {
        let mut spec = common::attack_spec(&trained.spec, pgd(3), true, 60);
        if let Some(evaluation) = spec.evaluation.as_mut() {
            evaluation.target_policy = policy as i32;
            evaluation.batch_size = 0; // the backend's default chunk
        }
        trained
            .backend
            .attack(&spec, &AttackCheckpoints::white_box(trained.checkpoint.clone()), &TaskContext::detached())
            .expect("attack")
    };
    let next = shard_for(TargetPolicy::Next);
    check_consistency(&next, 60);
    assert!(next.outcomes.iter().all(|o| o.target == (o.label + 1) % 10));
    let random = shard_for(TargetPolicy::Random);
    check_consistency(&random, 60);
    for outcome in &random.outcomes {
        assert!(
            outcome.target != outcome.label && outcome.target < 10,
            "random never picks the true label: {outcome:?}"
        );
    }
    assert!(random.outcomes.iter().any(|o| o.target != (o.label + 1) % 10));
    let again = shard_for(TargetPolicy::Random);
    let targets = |shard: &AttackShard| shard.outcomes.iter().map(|o| o.target).collect::<Vec<_>>();
    assert_eq!(targets(&random), targets(&again), "random targets are seeded");
    let least = shard_for(TargetPolicy::LeastLikely);
    check_consistency(&least, 60);
    let clean_logits = tch::no_grad(|| trained.model.forward(&trained.dataset.test.images.narrow(0, 0, 60), false))
        .expect("clean logits");
    let least_likely = Vec::<i64>::try_from(clean_logits.argmin(1, false)).expect("argmin");
    let least_targets: Vec<i64> = targets(&least).into_iter().map(i64::from).collect();
    assert_eq!(least_targets, least_likely, "least-likely targets the argmin of the clean logits");
    assert!(least_likely.iter().any(|&t| t != least_likely[0]), "a policy that names one class would pass unnoticed");
    for outcome in next.outcomes.iter().chain(&random.outcomes) {
        if outcome.success {
            assert!(!outcome.adversarial_correct, "reaching another class is a misclassification");
        }
    }
    let unspecified = {
        let mut spec = common::attack_spec(&trained.spec, pgd(1), true, 10);
        if let Some(evaluation) = spec.evaluation.as_mut() {
            evaluation.target_policy = TargetPolicy::Unspecified as i32;
        }
        trained
            .backend
            .attack(&spec, &AttackCheckpoints::white_box(trained.checkpoint.clone()), &TaskContext::detached())
            .expect_err("unspecified")
    };
    assert_permanent(&unspecified, "invalid_spec");
}

#[test]
fn cancelled_attacks_stop_with_the_cancelled_failure() {
    let mut trained = common::trained(0, 1);
    let spec = common::attack_spec(&trained.spec, pgd(10), false, 0);
    let ctx = TaskContext::new(|_| {}, Arc::new(AtomicBool::new(true)));
    let failure = trained
        .backend
        .attack(&spec, &AttackCheckpoints::white_box(trained.checkpoint.clone()), &ctx)
        .expect_err("cancelled");
    assert_eq!(failure, beard_agent::backend::cancelled());
}

#[test]
fn device_names_parse_with_typed_errors() {
    assert_eq!(parse_device("cpu").expect("cpu"), Device::Cpu);
    assert_eq!(parse_device(" CPU ").expect("cpu"), Device::Cpu);
    assert!(parse_device("tpu").is_err());
    assert!(parse_device("cuda:x").is_err());
    if !tch::Cuda::is_available() {
        assert!(parse_device("cuda:0").is_err());
        assert_eq!(parse_device("auto").expect("auto"), Device::Cpu);
    }
}
