//! Tests of the sweep module as a whole: `parse` on whole files (rejections with their positions
//! and paths, defaults, order) and `expand` on the shipped examples.

use std::collections::HashSet;

use beard_proto::describe::{attack_name, is_pooled};
use beard_proto::keys::{attack_key, train_key};
use beard_proto::v1::{
    self, AttackConfig, DatasetRef, DistilledFile, DistilledSource, EvaluationConfig, ModelConfig, TrainingConfig,
    attack_config, distilled_source,
};

use super::*;
use crate::metrics::MetricOptions;

/// A valid sweep; tests replace single lines (numbered from 1) to break it.
const BASE: &str = "\
name: test
datasets:
  synthetic: {}
methods:
  random: random
ipc: [1, 10]
attacks:
  fgsm: {}
  pgd: { eps: 8/255, steps: 10 }
targeted: [false, true]
seeds: 2
";

/// `BASE` with line `line` replaced by `replacement` (which may span several lines).
fn with(line: usize, replacement: &str) -> String {
    let mut lines: Vec<&str> = BASE.lines().collect();
    lines[line - 1] = replacement;
    lines.join("\n") + "\n"
}

/// `BASE` with `extra` appended.
fn plus(extra: &str) -> String {
    format!("{BASE}{extra}\n")
}

fn rejected(text: &str) -> SweepError {
    match parse(text, "sweep.yaml") {
        Ok(sweep) => panic!("accepted {sweep:?} from:\n{text}"),
        Err(err) => err,
    }
}

/// Asserts the error's line, its field path, and a part of its message.
fn assert_rejected(text: &str, line: usize, path: &str, needle: &str) -> SweepError {
    let err = rejected(text);
    let shown = err.to_string();
    assert_eq!((err.line, err.path.as_str()), (line, path), "{shown}\n---\n{text}");
    assert!(err.message.contains(needle), "message lacks {needle:?}: {shown}");
    assert!(shown.starts_with(&format!("sweep.yaml:{line}:")), "{shown}");
    assert!(path.is_empty() || shown.contains(&format!(": {path}: ")), "{shown}");
    err
}

fn accepted(text: &str) -> Sweep {
    match parse(text, "sweep.yaml") {
        Ok(sweep) => sweep,
        Err(err) => panic!("{err}\n---\n{text}"),
    }
}

// ------------------------------------------------------------------------------------------
// Rejections
// ------------------------------------------------------------------------------------------

#[test]
fn errors_read_file_line_column_path_message() {
    let text = "name: x\ndatasets: { synthetic: {} }\nmethods: { random: random }\nipc: [1]\n\
                targeted: [false]\nattacks:\n    pgdd: {}\n";
    let err = parse(text, "demo.yaml").expect_err("pgdd is no attack");
    assert_eq!(
        err.to_string(),
        "demo.yaml:7:5: attacks.pgdd: unknown attack 'pgdd', expected one of fgsm, pgd, pgdl2, cw, \
         deepfool, autoattack, apgd-ce, apgd-t, fab-t, square, spsa"
    );
    assert_eq!((err.file.as_str(), err.line, err.column, err.path.as_str()), ("demo.yaml", 7, 5, "attacks.pgdd"));
}

#[test]
fn unknown_top_level_key() {
    assert_rejected(&with(11, "seed: 2"), 11, "seed", "unknown field `seed`");
}

#[test]
fn unknown_nested_keys() {
    assert_rejected(
        &plus("training:\n  optimizer: sgd\n  learning_rate: 0.1"),
        14,
        "training.learning_rate",
        "unknown field `learning_rate`",
    );
    assert_rejected(&with(9, "  pgd: { eps: 8/255, stepz: 10 }"), 9, "attacks.pgd.stepz", "unknown field `stepz`");
    assert_rejected(&with(3, "  synthetic: { rot: /x }"), 3, "datasets.synthetic.rot", "unknown field `rot`");
    assert_rejected(&plus("metrics:\n  beta: 0.5"), 13, "metrics.beta", "unknown field `beta`");
}

#[test]
fn parameters_of_another_attack_are_unknown_keys() {
    assert_rejected(&with(8, "  fgsm: { steps: 3 }"), 8, "attacks.fgsm.steps", "unknown field `steps`");
}

#[test]
fn wrong_types() {
    assert_rejected(&with(11, "seeds: five"), 11, "seeds", "an integer >= 1");
    assert_rejected(&with(6, "ipc: 10"), 6, "ipc", "invalid type");
    assert_rejected(&with(10, "targeted: [false, yes]"), 10, "targeted[1]", "invalid type");
    assert_rejected(&with(9, "  pgd: { eps: big }"), 9, "attacks.pgd.eps", "a number > 0");
    assert_rejected(&with(9, "  pgd: { random_start: 1 }"), 9, "attacks.pgd.random_start", "invalid type");
    assert_rejected(&with(1, "name: [a, b]"), 1, "name", "invalid type");
    assert_rejected(&with(5, "  random: [random]"), 5, "methods.random", "invalid type");
    assert_rejected(&plus("training: { optimizer: adamw }"), 12, "training.optimizer", "unknown variant `adamw`");
    assert_rejected(&plus("training:\n  lr_schedule: cosine"), 13, "training.lr_schedule", "unknown variant `cosine`");
    assert_rejected(&plus("training: { aug: autoaugment }"), 12, "training.aug", "unknown variant `autoaugment`");
    assert_rejected(&plus("model: { depth: deep }"), 12, "model.depth", "`auto` or an integer >= 1");
    assert_rejected(&plus("evaluation: { test_samples: -1 }"), 12, "evaluation.test_samples", "invalid");
}

#[test]
fn empty_lists_and_maps() {
    assert_rejected(&with(6, "ipc: []"), 6, "ipc", "non-empty list");
    assert_rejected(&with(10, "targeted: []"), 10, "targeted", "non-empty list");
    let no_attacks = BASE.replace("attacks:\n  fgsm: {}\n  pgd: { eps: 8/255, steps: 10 }", "attacks: {}");
    assert_rejected(&no_attacks, 7, "attacks", "at least one attack");
    let no_datasets = BASE.replace("datasets:\n  synthetic: {}", "datasets: {}\n# none");
    assert_rejected(&no_datasets, 2, "datasets", "at least one dataset");
    let no_methods = BASE.replace("  random: random", "  # none yet");
    let err = rejected(&no_methods);
    assert_eq!(err.path, "methods", "{err}");
    assert!(err.message.contains("at least one method"), "{err}");
    assert_rejected(&with(1, "name: ''"), 1, "name", "non-empty string");
}

#[test]
fn unknown_attack_names() {
    let err = assert_rejected(&with(9, "  pgdd: {}"), 9, "attacks.pgdd", "unknown attack 'pgdd'");
    assert!(
        err.message.ends_with(
            "expected one of fgsm, pgd, pgdl2, cw, deepfool, autoattack, apgd-ce, apgd-t, fab-t, square, spsa"
        ),
        "{err}"
    );
    assert_eq!(err.column, 3);
}

#[test]
fn unknown_dataset_names() {
    let err = assert_rejected(
        &with(3, "  cifar-10: { root: /data }"),
        3,
        "datasets.cifar-10",
        "unknown dataset 'cifar-10', expected one of synthetic, cifar10, cifar100, tinyimagenet",
    );
    assert_eq!(err.column, 3);
}

#[test]
fn ipc_below_one() {
    let err = assert_rejected(&with(6, "ipc: [1, 0]"), 6, "ipc[1]", "expected an integer >= 1, found 0");
    assert_eq!(err.column, 10);
    assert_rejected(&with(6, "ipc:\n  - 1\n  - -3"), 8, "ipc[1]", "found -3");
}

#[test]
fn seeds_below_one() {
    let err = assert_rejected(&with(11, "seeds: 0"), 11, "seeds", "expected an integer >= 1, found 0");
    assert_eq!(err.column, 8);
}

#[test]
fn alpha_outside_the_unit_interval() {
    let err = assert_rejected(
        &plus("metrics:\n  rr_variant: i-rr\n  alpha: 1.5"),
        14,
        "metrics.alpha",
        "expected a number in [0, 1], found 1.5",
    );
    assert_eq!(err.column, 3);
    assert_rejected(&plus("metrics: { alpha: -0.1 }"), 12, "metrics.alpha", "[0, 1]");
}

#[test]
fn deepfool_under_sweep_level_targeted_modes_asks_for_an_override() {
    let err = assert_rejected(
        &with(8, "  deepfool: { steps: 20 }"),
        8,
        "attacks.deepfool",
        "add `targeted: [false]` to this attack",
    );
    assert!(err.message.starts_with("deepfool runs untargeted only"), "{err}");
    assert_rejected(&with(8, "  autoattack:"), 8, "attacks.autoattack", "untargeted only");
}

#[test]
fn targeted_override_of_an_untargeted_attack_is_refused_at_the_true() {
    let text = with(8, "  deepfool:\n    targeted:\n      - false\n      - true");
    let err = assert_rejected(&text, 11, "attacks.deepfool.targeted[1]", "untargeted only");
    assert_eq!(err.column, 9);
}

#[test]
fn untargeted_attacks_are_fine_with_an_override_or_untargeted_sweeps() {
    accepted(&with(8, "  deepfool: { targeted: [false] }"));
    let untargeted = with(10, "targeted: [false]");
    let text = untargeted.replace("  fgsm: {}", "  deepfool: {}\n  autoattack: ~");
    let sweep = accepted(&text);
    assert!(sweep.attacks.iter().all(|attack| attack.modes == [false]));
}

#[test]
fn repeated_entries() {
    assert_rejected(&with(6, "ipc: [1, 10, 1]"), 6, "ipc[2]", "duplicate ipc 1");
    assert_rejected(&with(10, "targeted:\n  - true\n  - true"), 12, "targeted[1]", "duplicate mode true");
    assert_rejected(&with(9, "  fgsm: {}"), 9, "attacks.fgsm", "duplicate attack 'fgsm'");
    assert_rejected(&with(11, "seeds: 2\nname: again"), 12, "name", "duplicate field `name`");
    assert_rejected(&with(9, "  pgd: { targeted: [true, true] }"), 9, "attacks.pgd.targeted[1]", "duplicate mode true");
}

#[test]
fn real_datasets_need_a_root_and_synthetic_takes_none() {
    let err = assert_rejected(&with(3, "  cifar10:"), 3, "datasets.cifar10", "needs `root:`");
    assert_eq!(err.column, 3);
    assert_rejected(&with(3, "  synthetic: { root: /x }"), 3, "datasets.synthetic.root", "takes no root");
}

#[test]
fn checkpoints_and_files_cover_each_dataset_and_ipc_once() {
    let mixed =
        with(5, "  DC:\n    files: { synthetic: { 1: a.pt } }\n    checkpoints:\n      synthetic: { 10: b.pth }");
    let sweep = accepted(&mixed);
    assert_eq!(sweep.checkpoint_paths(), ["b.pth"]);
    let error =
        sweep.read_checkpoints(&mixed, "sweep.yaml", |path| Err(format!("no {path} here"))).expect_err("unread");
    assert_eq!((error.line, error.path.as_str()), (8, "methods.DC.checkpoints.synthetic.10"), "{error}");
    assert!(error.message.ends_with("b.pth: no b.pth here"), "{error}");
    let both = with(
        5,
        "  DC:\n    files: { synthetic: { 1: a.pt, 10: c.pt } }\n    checkpoints:\n      synthetic:\n        10: b.pth",
    );
    assert_rejected(&both, 9, "methods.DC.checkpoints.synthetic.10", "both a distilled-set file and a checkpoint");
    let short = with(5, "  DC:\n    checkpoints:\n      synthetic: { 10: b.pth }");
    assert_rejected(&short, 7, "methods.DC.checkpoints.synthetic", "no file or checkpoint for ipc 1");
    // Checkpoints of IPCs the sweep does not evaluate are neither read nor sent.
    let larger = with(5, "  DC:\n    checkpoints: { synthetic: { 1: a.pth, 10: b.pth, 50: c.pth } }");
    assert_eq!(accepted(&larger).checkpoint_paths(), ["a.pth", "b.pth"]);
}

#[test]
fn file_methods_need_a_file_per_dataset_and_ipc() {
    let text = with(5, "  DC:\n    files:\n      synthetic:\n        1: a.pt");
    assert_rejected(&text, 7, "methods.DC.files.synthetic", "no file or checkpoint for ipc 10");
    let text = with(3, "  synthetic: {}\n  cifar10: { root: /c }")
        .replace("  random: random", "  DC:\n    files:\n      synthetic: { 1: a.pt, 10: b.pt }");
    assert_rejected(&text, 7, "methods.DC.files", "no file or checkpoint for dataset cifar10");
    let text = with(5, "  DC:\n    files: { synthetic: { 1: a.pt, 10: b.pt } }\n    stored: raw");
    assert_rejected(&text, 7, "methods.DC.stored", "unknown variant `raw`");
    assert_rejected(&with(5, "  DC: gaussian"), 5, "methods.DC", "unknown built-in method 'gaussian'");
    assert_rejected(
        &with(5, "  DC: { files: { synthetic: { 0: a.pt } } }"),
        5,
        "methods.DC.files.synthetic.0",
        "found 0",
    );
}

#[test]
fn missing_required_fields() {
    let text: String = BASE.lines().filter(|line| !line.starts_with("name:")).map(|l| format!("{l}\n")).collect();
    assert_rejected(&text, 1, "", "missing field `name`");
}

#[test]
fn yaml_syntax_errors_and_empty_files_have_a_position() {
    let err = rejected(&with(9, "  pgd: { eps: 8/255"));
    assert!(err.line >= 9, "{err}");
    let err = rejected("");
    assert_eq!((err.line, err.column), (1, 1), "{err}");
    let err = rejected("- a\n- b\n");
    assert_eq!(err.line, 1, "{err}");
}

// ------------------------------------------------------------------------------------------
// Accepted files
// ------------------------------------------------------------------------------------------

#[test]
fn defaults_are_filled_in() {
    let text = "name: d\ndatasets:\n  cifar10: { root: /c }\n  tinyimagenet: { root: /t }\n\
                methods: { random: random }\nipc: [1]\n\
                attacks: { fgsm: {}, deepfool: { targeted: [false] } }\n";
    let sweep = accepted(text);
    assert_eq!(sweep.seeds, 5);
    assert_eq!(sweep.attacks[0].modes, [false, true]);
    assert_eq!(sweep.attacks[1].modes, [false]);
    assert_eq!(
        sweep.training,
        TrainingConfig {
            optimizer: v1::Optimizer::Sgd.into(),
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            epochs: 1000,
            batch_size: 256,
            lr_schedule: v1::LrSchedule::StepHalf.into(),
            augmentation: v1::Augmentation::Dsa.into(),
            adversarial: None,
        }
    );
    assert_eq!(sweep.regimes, [Regime::Standard]);
    let model =
        |depth| ModelConfig { width: 128, depth, norm: v1::NormKind::Instance.into(), pool: v1::PoolKind::Avg.into() };
    assert_eq!(sweep.datasets[0].model, model(3));
    assert_eq!(sweep.datasets[1].model, model(4));
    assert_eq!(
        sweep.evaluation,
        EvaluationConfig {
            test_samples: 0,
            batch_size: 256,
            target_policy: v1::TargetPolicy::Next.into(),
            mode: v1::EvaluationMode::Standard.into(),
        }
    );
    assert_eq!(sweep.evaluation_modes, [v1::EvaluationMode::Standard]);
    assert_eq!(sweep.metrics, MetricOptions::default());
    assert_eq!(
        sweep.attacks[0].config,
        AttackConfig { attack: Some(attack_config::Attack::Fgsm(v1::Fgsm { eps: 8.0 / 255.0 })) }
    );
}

#[test]
fn explicit_settings_are_kept() {
    let sweep = accepted(&plus(
        "training: { optimizer: sgd, lr: 0.01, momentum: 0.9, weight_decay: 5e-4 }\n\
         model: { width: 64, depth: 2, norm: batch, pool: max }\n\
         evaluation: { test_samples: 500, batch_size: 50, target_policy: least-likely }\n\
         metrics: { alpha: 1, rr_variant: i-rr, time_basis: per-sample }",
    ));
    assert_eq!(sweep.training.optimizer, i32::from(v1::Optimizer::Sgd));
    assert_eq!((sweep.training.weight_decay, sweep.training.epochs), (5e-4, 1000));
    let dc = accepted(&plus("training: { optimizer: sgd, lr: 0.01, batch_size: 256, lr_schedule: half, aug: dsa }"));
    assert_eq!(dc.training.lr_schedule(), v1::LrSchedule::StepHalf);
    assert_eq!(dc.training.augmentation(), v1::Augmentation::Dsa);
    assert_eq!(
        sweep.datasets[0].model,
        ModelConfig { width: 64, depth: 2, norm: v1::NormKind::Batch.into(), pool: v1::PoolKind::Max.into() }
    );
    assert_eq!(sweep.evaluation.target_policy, i32::from(v1::TargetPolicy::LeastLikely));
    assert_eq!(sweep.metrics.alpha, 1.0);
}

#[test]
fn earlier_default_training_written_out_keeps_its_content_keys() {
    // Fields 1-6 only, as the earlier default (Adam, lr 1e-4, batch 128, constant lr, no
    // augmentation) was encoded before `lr_schedule` and `augmentation` existed: results of
    // sweeps that relied on it are reused by a sweep that writes it out.
    let before = "0801112d431cebe2361a3f19cdccccccccccec3f28e807308001";
    let earlier = accepted(&plus(
        "training: { optimizer: adam, lr: 1e-4, weight_decay: 0, batch_size: 128, lr_schedule: constant, aug: none }",
    ));
    let encoded = |sweep: &Sweep| prost::Message::encode_to_vec(&sweep.training);
    let hex = |bytes: Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(encoded(&earlier)), before);
    let keys = |sweep: &Sweep| sweep.expand(&PoolModels::default()).trains.iter().map(train_key).collect::<Vec<_>>();
    assert_ne!(keys(&earlier), keys(&accepted(BASE)), "the reference protocol is another training");
    let written_out = "training: { optimizer: sgd, lr: 0.01, momentum: 0.9, weight_decay: 5e-4, epochs: 1000, \
                       batch_size: 256, lr_schedule: half, aug: dsa }";
    assert_eq!(keys(&accepted(&plus(written_out))), keys(&accepted(BASE)), "the defaults are the reference protocol");
}

#[test]
fn numbers_may_be_written_as_fractions() {
    let sweep = accepted(&with(9, "  pgd: { eps: '16/255', alpha: 2 / 255, steps: 5 }\n  cw: { c: 0.5, lr: 1e-2 }"));
    let Some(attack_config::Attack::Pgd(pgd)) = &sweep.attacks[1].config.attack else {
        panic!("expected pgd: {:?}", sweep.attacks[1]);
    };
    assert_eq!((pgd.eps, pgd.alpha, pgd.steps), (16.0 / 255.0, 2.0 / 255.0, 5));
    let Some(attack_config::Attack::Cw(cw)) = &sweep.attacks[2].config.attack else {
        panic!("expected cw: {:?}", sweep.attacks[2]);
    };
    assert_eq!((cw.c, cw.lr, cw.steps), (0.5, 0.01, 100));
}

#[test]
fn methods_keep_yaml_order() {
    let sweep = accepted(&with(5, "  zeta: random\n  alpha: random\n  mid: random"));
    assert_eq!(sweep.method_names(), ["zeta", "alpha", "mid"]);
    let trains = sweep.expand(&PoolModels::default()).trains;
    let order: Vec<&str> = trains.iter().map(|t| t.method.as_str()).collect();
    assert_eq!(order[..4], ["zeta"; 4]);
    assert_eq!(order[4..8], ["alpha"; 4]);
    assert_eq!(order[8..], ["mid"; 4]);
}

#[test]
fn file_paths_are_joined_onto_the_pool_dir() {
    let text = with(
        5,
        "  DC:\n    files:\n      synthetic: { 1: DC/a.pt, 10: /abs/b.pt }\n    experiment: 2\n    mosaic: true",
    ) + "pool_dir: /pool\n";
    let sweep = accepted(&text);
    let source = |ipc| sweep.methods[0].distilled(DatasetName::Synthetic, ipc);
    let file = |path: &str| DistilledSource {
        source: Some(distilled_source::Source::File(DistilledFile {
            path: path.into(),
            experiment: 2,
            stored: "normalized".into(),
            labels_path: String::new(),
            mosaic: true,
        })),
    };
    assert_eq!(source(1), Some(file("/pool/DC/a.pt")));
    assert_eq!(source(10), Some(file("/abs/b.pt")));
    let without_pool = accepted(&text.replace("pool_dir: /pool\n", ""));
    assert_eq!(without_pool.methods[0].distilled(DatasetName::Synthetic, 1), Some(file("DC/a.pt")));
}

#[test]
fn separate_labels_files_are_joined_onto_the_pool_dir() {
    let text = with(
        5,
        "  MTT:\n    files:\n      synthetic:\n        1: { images: m/i1.pt, labels: m/l1.pt }\n        10: b.pt",
    ) + "pool_dir: /pool\n";
    let sweep = accepted(&text);
    let file = |ipc| match sweep.methods[0].distilled(DatasetName::Synthetic, ipc).and_then(|s| s.source) {
        Some(distilled_source::Source::File(file)) => (file.path, file.labels_path),
        other => panic!("expected a file source: {other:?}"),
    };
    assert_eq!(file(1), ("/pool/m/i1.pt".to_owned(), "/pool/m/l1.pt".to_owned()));
    assert_eq!(file(10), ("/pool/b.pt".to_owned(), String::new()));
    let text = with(5, "  MTT:\n    files:\n      synthetic:\n        1: { images: i.pt }\n        10: b.pt");
    assert_rejected(&text, 8, "methods.MTT.files.synthetic.1", "missing field `labels`");
}

#[test]
fn full_methods_need_their_own_epochs_and_take_no_files() {
    assert_rejected(&with(5, "  full: full"), 5, "methods.full", "needs its own epochs");
    assert_rejected(&with(5, "  full: { full: {} }"), 5, "methods.full.full", "missing field `epochs`");
    assert_rejected(
        &with(5, "  full: { full: { epochs: 2, lr: 1 } }"),
        5,
        "methods.full.full.lr",
        "unknown field `lr`",
    );
    let both = with(5, "  full:\n    full: { epochs: 2 }\n    files: { synthetic: { 1: a.pt, 10: b.pt } }");
    let err = rejected(&both);
    assert_eq!(err.path, "methods.full", "{err}");
    assert!(err.message.contains("not both"), "{err}");
}

#[test]
fn adversarial_settings_need_the_adversarial_regime() {
    let err = assert_rejected(
        &plus("training:\n  epochs: 3\n  adversarial: { eps: 4/255 }"),
        14,
        "training.adversarial",
        "add `training_regimes: [standard, adversarial]`",
    );
    assert_eq!(err.column, 3);
    assert_rejected(&plus("training_regimes: [standard, standard]"), 12, "training_regimes[1]", "duplicate regime");
    assert_rejected(&plus("training_regimes: [robust]"), 12, "training_regimes[0]", "unknown variant `robust`");
    assert_rejected(&plus("training_regimes: []"), 12, "training_regimes", "non-empty list");
    assert_rejected(
        &plus("training_regimes: [adversarial]\ntraining: { adversarial: { ratio: 2 } }"),
        13,
        "training.adversarial.ratio",
        "a number in (0, 1]",
    );
}

// ------------------------------------------------------------------------------------------
// Expansion
// ------------------------------------------------------------------------------------------

#[test]
fn expansion_is_deterministic_with_unique_keys() {
    let sweep = accepted(BASE);
    let first = sweep.expand(&PoolModels::default());
    assert_eq!(first, accepted(BASE).expand(&PoolModels::default()));
    assert_eq!(first.trains.len(), 2 * 2);
    assert_eq!(first.attacks.len(), 4 * 2 * 2);
    let train_keys: HashSet<String> = first.trains.iter().map(train_key).collect();
    let attack_keys: HashSet<String> = first.attacks.iter().map(attack_key).collect();
    assert_eq!(train_keys.len(), first.trains.len());
    assert_eq!(attack_keys.len(), first.attacks.len());
    assert!(train_keys.is_disjoint(&attack_keys));
}

#[test]
fn attack_tasks_carry_their_train_task_and_full_configs() {
    let expansion = accepted(BASE).expand(&PoolModels::default());
    let first = &expansion.trains[0];
    assert_eq!(first.dataset, Some(DatasetRef { name: "synthetic".into(), root: String::new() }));
    assert_eq!((first.method.as_str(), first.ipc, first.seed), ("random", 1, 0));
    assert_eq!(
        first.source,
        Some(DistilledSource { source: Some(distilled_source::Source::Random(v1::RandomSubset {})) })
    );
    let seeds: Vec<(u32, u32)> = expansion.trains.iter().map(|t| (t.ipc, t.seed)).collect();
    assert_eq!(seeds, [(1, 0), (1, 1), (10, 0), (10, 1)]);
    for attack in &expansion.attacks {
        let train = attack.train.as_ref().expect("attack tasks carry their train task");
        assert_eq!(attack.train_task_id, train_key(train));
        assert!(attack.attack.as_ref().is_some_and(|config| config.attack.is_some()));
        assert_eq!(attack.evaluation.as_ref().map(|e| e.target_policy), Some(v1::TargetPolicy::Next.into()));
        assert!(train.training.as_ref().is_some_and(|t| t.optimizer == i32::from(v1::Optimizer::Sgd)));
        let model = train.model.as_ref().expect("train tasks carry their model");
        assert_ne!(model.norm, i32::from(v1::NormKind::Unspecified));
        assert_ne!(model.pool, i32::from(v1::PoolKind::Unspecified));
    }
    let modes: Vec<(&str, bool)> = expansion.attacks[..4]
        .iter()
        .map(|a| (beard_proto::describe::attack_name(a.attack.as_ref().expect("config")), a.targeted))
        .collect();
    assert_eq!(modes, [("fgsm", false), ("fgsm", true), ("pgd", false), ("pgd", true)]);
}

#[test]
fn the_module_documentation_example_parses() {
    let doc = include_str!("mod.rs");
    let yaml: String = doc
        .lines()
        .skip_while(|line| *line != "//! ```yaml")
        .skip(1)
        .take_while(|line| *line != "//! ```")
        .map(|line| format!("{}\n", line.trim_start_matches("//!").strip_prefix(' ').unwrap_or("")))
        .collect();
    let sweep = accepted(&yaml);
    assert_eq!(sweep.method_names(), ["random", "DC", "full", "DM"]);
    let expansion = sweep.expand(&PoolModels::default());
    assert_eq!(expansion.trains.len(), 4 * 5);
    assert_eq!(expansion.distills.len(), 5, "one DM set per seed");
}

fn example(name: &str) -> Sweep {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    accepted(&text)
}

#[test]
fn the_demo_example_is_small() {
    let sweep = example("demo.yaml");
    let expansion = sweep.expand(&PoolModels::default());
    assert_eq!(sweep.method_names(), ["random", "herding", "DM"]);
    assert_eq!((expansion.distills.len(), expansion.trains.len(), expansion.attacks.len()), (18, 27, 108));
    assert_eq!(sweep.name, "demo");
    let train = &expansion.trains[0];
    assert_eq!(train.model.as_ref().map(|m| (m.width, m.depth)), Some((32, 3)));
    assert_eq!(train.training.as_ref().map(|t| (t.lr, t.epochs)), Some((1e-3, 40)));
    assert_eq!(sweep.evaluation.test_samples, 500);
}

#[test]
fn the_beard_example_is_the_papers_grid() {
    let sweep = example("beard.yaml");
    let expansion = sweep.expand(&PoolModels::default());
    // 3 datasets x (6 methods x 3 IPCs + full) x 2 regimes x 5 seeds; 10 attack tasks each.
    assert_eq!((expansion.trains.len(), expansion.attacks.len()), (570, 5700));
    assert_eq!(sweep.method_names(), ["DC", "DSA", "MTT", "DM", "IDM", "BACON", "full"]);
    assert_eq!(sweep.regimes, [Regime::Standard, Regime::Adversarial]);
    assert_eq!(sweep.methods[6].source, Source::Full { epochs: 50, batch_size: 256 });
    let tiny = expansion
        .trains
        .iter()
        .find(|t| t.dataset.as_ref().is_some_and(|d| d.name == "tinyimagenet"))
        .expect("tinyimagenet tasks");
    assert_eq!(tiny.model.as_ref().map(|m| m.depth), Some(4));
    let Some(distilled_source::Source::File(file)) = tiny.source.as_ref().and_then(|s| s.source.as_ref()) else {
        panic!("expected a file source: {tiny:?}");
    };
    assert!(file.path.starts_with("/data/beard/dataset_pool/DC/"), "{}", file.path);
    let keys: HashSet<String> = expansion.attacks.iter().map(attack_key).collect();
    assert_eq!(keys.len(), 5700);
}

#[test]
fn the_model_pool_example_attacks_six_checkpoints_and_trains_nothing() {
    let sweep = example("beard-model-pool.yaml");
    let paths = sweep.checkpoint_paths();
    assert_eq!(paths.len(), 6);
    assert!(paths.iter().all(|path| path.starts_with("model_pool/") && path.ends_with(".pth")), "{paths:?}");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/beard-model-pool.yaml"))
        .expect("the example");
    let mut weight = 0.0;
    let pool = sweep
        .read_checkpoints(&text, "beard-model-pool.yaml", |_| {
            weight += 1.0;
            Ok(small_convnet(weight))
        })
        .expect("valid checkpoints");
    let expansion = sweep.expand(&pool);
    // 4 attacks in both modes and 2 untargeted only, per checkpoint.
    assert_eq!((expansion.trains.len(), expansion.pooled.len(), expansion.attacks.len()), (0, 6, 60));
    let methods: Vec<&str> = expansion.pooled.iter().map(|model| model.method.as_str()).collect();
    assert_eq!(methods, ["DC", "DSA", "MTT", "DM", "IDM", "BACON"]);
    assert!(expansion.pooled.iter().all(|model| model.seed == 0 && model.training.is_none() && model.ipc == 50));
    let keys: HashSet<String> = expansion.pooled.iter().map(train_key).collect();
    assert_eq!(keys.len(), 6, "distinct checkpoints, distinct entries");
    assert_eq!(pool.get("DM", DatasetName::Cifar10, 50).map(|model| model.model.width), Some(4));
}

#[test]
fn full_methods_train_once_per_dataset_and_seed_with_their_own_epochs() {
    let text =
        with(5, "  random: random\n  full: { full: { epochs: 2, batch_size: 256 } }\n  whole: { full: { epochs: 3 } }")
            + "training: { epochs: 50, batch_size: 64 }\n";
    let expansion = accepted(&text).expand(&PoolModels::default());
    // random: 2 IPCs x 2 seeds; full and whole: 2 seeds each.
    assert_eq!(expansion.trains.len(), 4 + 2 + 2);
    assert_eq!(expansion.attacks.len(), expansion.trains.len() * 4);
    let full: Vec<&v1::TrainSpec> = expansion.trains.iter().filter(|t| t.method != "random").collect();
    for train in &full {
        assert_eq!(train.ipc, 0, "{train:?}");
        assert_eq!(
            train.source,
            Some(DistilledSource { source: Some(distilled_source::Source::Full(v1::FullTrainSplit {})) })
        );
    }
    let settings = |train: &v1::TrainSpec| train.training.as_ref().map(|t| (t.epochs, t.batch_size, t.lr));
    assert_eq!(settings(full[0]), Some((2, 256, 0.01)));
    assert_eq!(settings(full[2]), Some((3, 64, 0.01)), "the sweep's batch size when full leaves it out");
    assert_eq!(settings(&expansion.trains[0]), Some((50, 64, 0.01)));
    let seeds: Vec<u32> = full.iter().map(|t| t.seed).collect();
    assert_eq!(seeds, [0, 1, 0, 1]);
    assert_eq!(beard_proto::describe::describe_train(full[0]), "synthetic/full/full/seed0");
}

#[test]
fn both_regimes_train_every_model_twice_and_keep_the_standard_keys() {
    let standard = accepted(BASE).expand(&PoolModels::default());
    let both = accepted(&plus(
        "training_regimes: [standard, adversarial]\ntraining:\n  adversarial: { eps: 4/255, step: 1/255, steps: 5, ratio: 0.5 }",
    ))
    .expand(&PoolModels::default());
    assert_eq!(both.trains.len(), 2 * standard.trains.len());
    assert_eq!(both.attacks.len(), 2 * standard.attacks.len());
    let (plain, adversarial): (Vec<&v1::TrainSpec>, Vec<&v1::TrainSpec>) =
        both.trains.iter().partition(|t| t.training.as_ref().is_some_and(|c| c.adversarial.is_none()));
    let keys = |trains: &[&v1::TrainSpec]| trains.iter().map(|t| train_key(t)).collect::<Vec<_>>();
    assert_eq!(keys(&plain), standard.trains.iter().map(train_key).collect::<Vec<_>>());
    assert_eq!(adversarial.len(), plain.len());
    let adversarial_keys: HashSet<String> = keys(&adversarial).into_iter().collect();
    assert!(keys(&plain).iter().all(|key| !adversarial_keys.contains(key)), "the regime is part of the content key");
    let config = adversarial[0].training.as_ref().and_then(|t| t.adversarial.clone()).expect("adversarial config");
    assert_eq!((config.targeted, config.ratio), (false, 0.5));
    assert_eq!(
        config.attack.and_then(|a| a.attack),
        Some(attack_config::Attack::Pgd(v1::Pgd {
            eps: 4.0 / 255.0,
            alpha: 1.0 / 255.0,
            steps: 5,
            random_start: true
        }))
    );
    // Regimes come after the IPC and before the seed.
    let order: Vec<(u32, bool, u32)> = both
        .trains
        .iter()
        .map(|t| (t.ipc, t.training.as_ref().is_some_and(|c| c.adversarial.is_some()), t.seed))
        .collect();
    assert_eq!(order[..4], [(1, false, 0), (1, false, 1), (1, true, 0), (1, true, 1)]);
    // The attack tasks carry the regime of the model they attack.
    let attacked = both.attacks.iter().filter(|a| a.train.as_ref().is_some_and(|t| adversarial.contains(&t))).count();
    assert_eq!(attacked, standard.attacks.len());
    // Without settings the adversarial regime takes the defaults.
    let defaults = accepted(&plus("training_regimes: [adversarial]")).expand(&PoolModels::default());
    let config = defaults.trains[0].training.as_ref().and_then(|t| t.adversarial.clone()).expect("adversarial config");
    assert_eq!(config.ratio, 1.0);
}

#[test]
fn full_methods_count_once_towards_the_grid_limit() {
    // 250,000 seeds of one full method: 250,000 trains and 750,000 attacks (fgsm x2, pgd x1).
    let text = |seeds: u32| {
        format!(
            "name: g\ndatasets: {{ synthetic: {{}} }}\nmethods: {{ full: {{ full: {{ epochs: 1 }} }} }}\n\
             ipc: [1, 10, 50]\nattacks: {{ fgsm: {{}}, pgd: {{ targeted: [false] }} }}\nseeds: {seeds}\n"
        )
    };
    assert_eq!(accepted(&text(250_000)).seeds, 250_000);
    assert_rejected(&text(250_001), 6, "seeds", "more than the limit");
}

#[test]
fn evaluation_modes_are_written_alone_or_in_the_mapping() {
    let compat = accepted(&plus("evaluation: beard-compat"));
    assert_eq!(compat.evaluation_modes, [v1::EvaluationMode::BeardCompat]);
    assert_eq!(compat.evaluation.batch_size, 256, "the shorthand keeps the other defaults");
    let both = accepted(&plus("evaluation: [standard, beard-compat]"));
    assert_eq!(both.evaluation_modes, [v1::EvaluationMode::Standard, v1::EvaluationMode::BeardCompat]);
    let mapping = accepted(&plus("evaluation: { test_samples: 100, modes: beard-compat }"));
    assert_eq!(mapping.evaluation_modes, [v1::EvaluationMode::BeardCompat]);
    assert_eq!(mapping.evaluation.test_samples, 100);

    assert_rejected(&plus("evaluation: { modes: [standard, standard] }"), 12, "evaluation.modes[1]", "duplicate");
    assert_rejected(&plus("evaluation: { modes: [] }"), 12, "evaluation.modes", "non-empty");
    assert_rejected(&plus("evaluation: { modes: compat }"), 12, "evaluation.modes", "unknown variant");
    assert_rejected(&plus("evaluation: honest"), 12, "evaluation", "unknown variant");
}

#[test]
fn beard_compat_tasks_carry_the_reference_settings() {
    let text = with(
        9,
        "  pgd: { eps: 8/255, alpha: 2/255, steps: 10, random_start: true }\n  autoattack: { targeted: [false] }",
    );
    let sweep = accepted(&(text + "evaluation: { modes: [standard, beard-compat] }\n"));
    let expansion = sweep.expand(&PoolModels::default());
    let per_mode = |mode: v1::EvaluationMode| -> Vec<&v1::AttackSpec> {
        expansion.attacks.iter().filter(|spec| spec.evaluation.as_ref().is_some_and(|e| e.mode() == mode)).collect()
    };
    let (standard, compat) = (per_mode(v1::EvaluationMode::Standard), per_mode(v1::EvaluationMode::BeardCompat));
    assert_eq!(standard.len(), compat.len(), "every attack task runs in both modes");
    assert_eq!(standard.len() + compat.len(), expansion.attacks.len());
    let config = |spec: &v1::AttackSpec| spec.attack.clone().and_then(|config| config.attack);
    for (standard, compat) in standard.iter().zip(&compat) {
        assert_eq!((&standard.train_task_id, standard.targeted), (&compat.train_task_id, compat.targeted));
        assert_ne!(attack_key(standard), attack_key(compat));
        match (config(standard), config(compat)) {
            (Some(attack_config::Attack::Pgd(ours)), Some(attack_config::Attack::Pgd(reference))) => {
                assert_eq!((ours.alpha, ours.random_start), (2.0 / 255.0, true));
                assert_eq!((reference.alpha, reference.random_start), (2.0 / 225.0, false));
                assert_eq!((reference.eps, reference.steps), (ours.eps, ours.steps));
            }
            (Some(attack_config::Attack::Autoattack(ours)), Some(attack_config::Attack::Autoattack(reference))) => {
                assert_eq!((ours.steps, reference.steps), (0, 10));
            }
            (ours, reference) => assert_eq!(ours, reference, "other attacks run as configured"),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Transfer
// ------------------------------------------------------------------------------------------

/// Three methods (one of them a model-pool checkpoint at IPC 1) and a transfer section.
fn transfer_sweep(section: &str) -> (Sweep, Expansion) {
    let text = with(
        5,
        "  random: random\n  other: random\n  pooled:\n    checkpoints: { synthetic: { 1: a.pth } }\n    \
         files: { synthetic: { 10: b.pt } }",
    ) + section;
    let sweep = accepted(&text);
    let pool = sweep.read_checkpoints(&text, "sweep.yaml", |_| Ok(small_convnet(1.0))).expect("valid checkpoint");
    let expansion = sweep.expand(&pool);
    (sweep, expansion)
}

#[test]
fn transfer_tasks_pair_each_source_with_the_targets_of_its_dataset_ipc_and_seed() {
    let (_, expansion) = transfer_sweep("transfer:\n  attacks: { fgsm: { targeted: [false] } }\n");
    // Trained: random and other at 2 IPCs x 2 seeds, pooled's file at IPC 10 x 2 seeds; pooled's
    // checkpoint is the one model-pool entry, at IPC 1.
    assert_eq!((expansion.trains.len(), expansion.pooled.len()), (10, 1));
    // Every model is a source with two targets: 11 tasks of one attack in one mode.
    assert_eq!(expansion.transfers.len(), 11);
    for transfer in &expansion.transfers {
        let source = transfer.train.as_ref().expect("source");
        let targets: Vec<&v1::TrainSpec> = transfer.transfer_targets.iter().filter_map(|t| t.train.as_ref()).collect();
        assert_eq!(targets.len(), 2, "{}", beard_proto::describe::describe_attack(transfer));
        for target in &targets {
            assert_ne!(target.method, source.method);
            assert_eq!(target.ipc, source.ipc);
            assert!(target.seed == source.seed || is_pooled(target), "{target:?}");
        }
        let ids: Vec<String> = transfer.transfer_targets.iter().map(|t| t.train_task_id.clone()).collect();
        assert_eq!(ids, targets.iter().map(|t| train_key(t)).collect::<Vec<_>>());
    }
    // The pooled entry judges both seeds of the trained sources at IPC 1.
    let judged_by_pool = expansion
        .transfers
        .iter()
        .filter(|t| t.transfer_targets.iter().any(|target| target.train.as_ref().is_some_and(is_pooled)))
        .count();
    assert_eq!(judged_by_pool, 4, "random and other, seeds 0 and 1");
    let keys: HashSet<String> = expansion.transfers.iter().map(attack_key).collect();
    let white_box: HashSet<String> = expansion.attacks.iter().map(attack_key).collect();
    assert_eq!(keys.len(), 11);
    assert!(keys.is_disjoint(&white_box), "a transfer task is not its source's white-box task");
}

#[test]
fn transfer_sources_targets_and_modes_narrow_the_tasks() {
    let (sweep, expansion) = transfer_sweep(
        "transfer:\n  attacks: { fgsm: {}, pgd: { targeted: [false] } }\n  targeted: [true]\n  sources: [other]\n  \
         targets: [random]\n",
    );
    let transfer = sweep.transfer.as_ref().expect("a transfer section");
    assert_eq!(
        (transfer.sources.as_slice(), transfer.targets.as_slice()),
        (&["other".to_owned()][..], &["random".to_owned()][..])
    );
    // other: 2 IPCs x 2 seeds, each with fgsm targeted and pgd untargeted.
    assert_eq!(expansion.transfers.len(), 8);
    assert!(expansion.transfers.iter().all(|t| t.transfer_targets.len() == 1));
    let fgsm_modes: HashSet<bool> = expansion
        .transfers
        .iter()
        .filter(|t| t.attack.as_ref().map(attack_name) == Some("fgsm"))
        .map(|t| t.targeted)
        .collect();
    assert_eq!(fgsm_modes, HashSet::from([true]));
}

#[test]
fn transfer_sections_with_unknown_methods_or_repeats_are_refused_where_written() {
    let base = "transfer:\n  attacks: { fgsm: {} }\n";
    assert_rejected(&plus(&format!("{base}  sources: [random, DM]")), 14, "transfer.sources[1]", "unknown method DM");
    assert_rejected(
        &plus(&format!("{base}  targets: [random, random]")),
        14,
        "transfer.targets[1]",
        "duplicate method",
    );
    assert_rejected(
        &plus("transfer:\n  attacks: { deepfool: {} }"),
        13,
        "transfer.attacks.deepfool",
        "runs untargeted only",
    );
    assert_rejected(&plus("transfer:\n  fgsm: {}"), 13, "transfer.fgsm", "unknown field");
}

#[test]
fn the_blackbox_example_transfers_from_bacon_to_the_other_five() {
    let sweep = example("beard-blackbox.yaml");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/beard-blackbox.yaml"))
        .expect("the example");
    let pool = sweep.read_checkpoints(&text, "beard-blackbox.yaml", |_| Ok(small_convnet(1.0))).expect("checkpoints");
    let expansion = sweep.expand(&pool);
    // SPSA both ways and Square untargeted on six checkpoints; BACON's six attacks, DeepFool and
    // AutoAttack untargeted only, transferred to five targets.
    assert_eq!((expansion.pooled.len(), expansion.attacks.len(), expansion.transfers.len()), (6, 18, 10));
    assert!(
        expansion
            .transfers
            .iter()
            .all(|t| t.transfer_targets.len() == 5 && t.train.as_ref().is_some_and(|source| source.method == "BACON"))
    );
}

#[test]
fn a_distill_method_learns_one_set_per_dataset_ipc_and_seed_that_its_train_tasks_read() {
    let sweep = accepted(
        "name: d\ndatasets: { synthetic: {} }\nmethods:\n  DM: { distill: { method: dm, iterations: 50 } }\n  \
         random: random\nipc: [1, 10]\nattacks: { fgsm: {} }\ntargeted: [false]\nseeds: 2\n\
         training_regimes: [standard, adversarial]\n",
    );
    let expansion = sweep.expand(&PoolModels::default());
    let sets: Vec<(u32, u32)> = expansion.distills.iter().map(|d| (d.ipc, d.seed)).collect();
    assert_eq!(sets, [(1, 0), (1, 1), (10, 0), (10, 1)]);
    assert!(expansion.distills.iter().all(|d| d.method == "DM" && d.model.is_some()));
    let keys: HashSet<String> = expansion.distills.iter().map(beard_proto::keys::distill_key).collect();
    assert_eq!(keys.len(), 4, "distinct content keys");
    let mut readers = 0;
    for train in expansion.trains.iter().filter(|t| t.method == "DM") {
        let Some(distilled_source::Source::Distilled(output)) = train.source.as_ref().and_then(|s| s.source.as_ref())
        else {
            panic!("a DM model reads {:?}", train.source)
        };
        let set = expansion.distills.iter().find(|d| beard_proto::keys::distill_key(d) == output.distill_task_id);
        let set = set.expect("the train task reads one of the sweep's sets");
        assert_eq!((set.ipc, set.seed), (train.ipc, train.seed), "its own IPC and seed's set");
        readers += 1;
    }
    assert_eq!(readers, 2 * 2 * 2, "IPCs x seeds x regimes");
}

#[test]
fn dc_at_an_ipc_without_official_loops_must_set_them() {
    let sweep = |distill: &str| {
        format!(
            "name: d\ndatasets: {{ synthetic: {{}} }}\nmethods:\n  DC: {{ distill: {distill} }}\nipc: [1, 5]\n\
             attacks: {{ fgsm: {{}} }}\ntargeted: [false]\nseeds: 1\n"
        )
    };
    assert_rejected(&sweep("{ method: dc }"), 4, "methods.DC.distill", "no outer and inner loops for ipc 5");
    let expansion = accepted(&sweep("{ method: dsa, outer_loop: 2, inner_loop: 3 }")).expand(&PoolModels::default());
    let loops: Vec<(u32, u32, u32)> = expansion
        .distills
        .iter()
        .map(|d| match &d.algorithm {
            Some(v1::distill_spec::Algorithm::GradientMatching(config)) => {
                (d.ipc, config.outer_loop, config.inner_loop)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(loops, [(1, 2, 3), (5, 2, 3)]);
}

#[test]
fn a_method_with_its_own_training_protocol_trains_its_models_with_it() {
    let sweep = accepted(
        "name: own\ndatasets: { synthetic: {} }\nmethods:\n  random: random\n  \
         DC: { distill: { method: dc, iterations: 2 }, training: { aug: none, epochs: 300 } }\n  \
         herding: { distill: { method: herding }, training: { lr: 0.05 } }\n\
         ipc: [1]\nattacks: { fgsm: {} }\ntargeted: [false]\nseeds: 1\ntraining: { epochs: 20 }\n\
         training_regimes: [standard, adversarial]\n",
    );
    let expansion = sweep.expand(&PoolModels::default());
    let protocol = |method: &str| -> Vec<(u32, i32, f64, bool)> {
        expansion
            .trains
            .iter()
            .filter(|train| train.method == method)
            .map(|train| {
                let t = train.training.as_ref().expect("a training config");
                (t.epochs, t.augmentation, t.lr, t.adversarial.is_some())
            })
            .collect()
    };
    let (none, dsa) = (i32::from(v1::Augmentation::None), i32::from(v1::Augmentation::Dsa));
    assert_eq!(protocol("random"), [(20, dsa, 0.01, false), (20, dsa, 0.01, true)]);
    assert_eq!(protocol("DC"), [(300, none, 0.01, false), (300, none, 0.01, true)], "its own, adversarial too");
    assert_eq!(protocol("herding"), [(20, dsa, 0.05, false), (20, dsa, 0.05, true)]);
    let coreset = expansion.distills.iter().find(|d| d.method == "herding").and_then(|d| d.algorithm.clone());
    let Some(v1::distill_spec::Algorithm::Herding(v1::CoresetConfig { training: Some(embedding) })) = coreset else {
        panic!("{coreset:?}")
    };
    assert_eq!(embedding.lr, 0.05, "the coreset's ConvNet trains with the method's protocol");
    let pooled = "name: own\ndatasets: { synthetic: {} }\nmethods:\n  \
                  P: { checkpoints: { synthetic: { 1: p.pth } }, training: { aug: none } }\n\
                  ipc: [1]\nattacks: { fgsm: {} }\ntargeted: [false]\nseeds: 1\n";
    assert_rejected(pooled, 4, "methods.P", "no `training:` applies");
}

#[test]
fn models_of_idm_and_bacon_sets_train_on_the_decoded_mosaics() {
    let sweep = accepted(
        "name: d\ndatasets: { synthetic: {} }\nmethods:\n  IDM: { distill: { method: idm, iterations: 3 } }\n  \
         BACON: { distill: { method: bacon, iterations: 3 } }\n  DM: { distill: { method: dm, iterations: 3 } }\n\
         ipc: [1]\nattacks: { fgsm: {} }\ntargeted: [false]\nseeds: 1\n",
    );
    let expansion = sweep.expand(&PoolModels::default());
    let mosaics: Vec<(String, bool)> = expansion
        .trains
        .iter()
        .map(|train| match train.source.as_ref().and_then(|s| s.source.as_ref()) {
            Some(distilled_source::Source::Distilled(output)) => (train.method.clone(), output.mosaic),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(mosaics, [("IDM".into(), true), ("BACON".into(), true), ("DM".into(), false)]);
}
