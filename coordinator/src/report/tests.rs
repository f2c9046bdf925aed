//! Report tests on hand-built shards: grouping, seed averaging, ranking, the clean-time rule, the
//! time bases, completeness, robustness, and a golden rendering of a tiny sweep.

use beard_proto::v1::{
    AdversarialTraining, ApgdCe, ApgdT, AttackConfig, AttackShard, AttackSpec, AutoAttack, CarliniWagner, DatasetRef,
    DeepFool, DistilledSource, EvaluationConfig, EvaluationMode, FabT, Fgsm, FullTrainSplit, Pgd, PgdL2, SampleOutcome,
    Spsa, Square, TrainSpec, TrainingConfig, attack_config, distilled_source,
};

use super::*;
use crate::metrics::{AttackObservation, RrVariant, SettingObservation, TimeBasis, evaluate, pool_across_ipcs};

// ----- fixtures -------------------------------------------------------------------------------

fn attack(name: &str) -> AttackConfig {
    let attack = match name {
        "fgsm" => attack_config::Attack::Fgsm(Fgsm { eps: 8.0 / 255.0 }),
        "pgd" => attack_config::Attack::Pgd(Pgd::default()),
        "pgdl2" => attack_config::Attack::Pgdl2(PgdL2::default()),
        "cw" => attack_config::Attack::Cw(CarliniWagner::default()),
        "deepfool" => attack_config::Attack::Deepfool(DeepFool::default()),
        "apgd-ce" => attack_config::Attack::ApgdCe(ApgdCe::default()),
        "apgd-t" => attack_config::Attack::ApgdT(ApgdT::default()),
        "fab-t" => attack_config::Attack::FabT(FabT::default()),
        "square" => attack_config::Attack::Square(Square::default()),
        "spsa" => attack_config::Attack::Spsa(Spsa::default()),
        _ => attack_config::Attack::Autoattack(AutoAttack::default()),
    };
    AttackConfig { attack: Some(attack) }
}

/// Where a result belongs: dataset, method, IPC, seed, attack, targeted.
pub(super) struct Cell<'a>(pub &'a str, pub &'a str, pub u32, pub u32, pub &'a str, pub bool);

fn spec(cell: &Cell<'_>) -> AttackSpec {
    let Cell(dataset, method, ipc, seed, name, targeted) = *cell;
    AttackSpec {
        train: Some(TrainSpec {
            dataset: Some(DatasetRef { name: dataset.into(), root: String::new() }),
            method: method.into(),
            ipc,
            seed,
            ..Default::default()
        }),
        attack: Some(attack(name)),
        targeted,
        ..Default::default()
    }
}

/// A shard of 100 samples and 10 steps: clean and robust accuracy, attack and clean seconds.
pub(super) fn shard(clean: f64, robust: f64, attack_seconds: f64, clean_seconds: f64) -> AttackShard {
    AttackShard {
        samples: 100,
        clean_accuracy: clean,
        robust_accuracy: robust,
        attack_seconds,
        clean_seconds,
        max_steps: 10,
        ..Default::default()
    }
}

pub(super) fn result(cell: Cell<'_>, shard: AttackShard) -> (AttackSpec, AttackShard) {
    (spec(&cell), shard)
}

pub(super) fn input(results: Vec<(AttackSpec, AttackShard)>) -> ReportInput {
    ReportInput {
        sweep_name: "unit".into(),
        options: MetricOptions::default(),
        method_order: vec!["dc".into(), "dsa".into(), "dm".into()],
        results,
    }
}

fn close(left: f64, right: f64) -> bool {
    (left - right).abs() < 1e-9
}

/// A result of a model trained on the whole training split (its spec's IPC is 0).
fn full((mut spec, shard): (AttackSpec, AttackShard)) -> (AttackSpec, AttackShard) {
    if let Some(train) = spec.train.as_mut() {
        train.ipc = 0;
        train.source = Some(DistilledSource { source: Some(distilled_source::Source::Full(FullTrainSplit {})) });
    }
    (spec, shard)
}

/// A result of an adversarially trained model.
fn adversarial((mut spec, shard): (AttackSpec, AttackShard)) -> (AttackSpec, AttackShard) {
    if let Some(train) = spec.train.as_mut() {
        let adversarial = AdversarialTraining { attack: Some(attack("pgd")), targeted: false, ratio: 1.0 };
        train.training = Some(TrainingConfig { adversarial: Some(adversarial), ..Default::default() });
    }
    (spec, shard)
}

/// A result evaluated the way BEARD's reference code does (the beard-compat mode).
pub(super) fn compat((mut spec, shard): (AttackSpec, AttackShard)) -> (AttackSpec, AttackShard) {
    spec.evaluation =
        Some(EvaluationConfig { mode: EvaluationMode::BeardCompat as i32, batch_size: 64, ..Default::default() });
    (spec, shard)
}

fn trained_board<'a>(report: &'a Report, dataset: &str, ipc: Ipc, training: Training, mode: Mode) -> &'a Leaderboard {
    evaluated_board(report, dataset, ipc, training, Evaluation::STANDARD, mode)
}

fn evaluated_board<'a>(
    report: &'a Report,
    dataset: &str,
    ipc: Ipc,
    training: Training,
    evaluation: Evaluation,
    mode: Mode,
) -> &'a Leaderboard {
    report
        .leaderboards
        .iter()
        .find(|board| {
            board.dataset == dataset
                && board.ipc == ipc
                && board.training == training
                && board.evaluation == evaluation
                && board.mode == mode
        })
        .unwrap_or_else(|| panic!("no leaderboard {dataset} ipc {ipc} {training:?} {evaluation:?} {mode:?}"))
}

fn board<'a>(report: &'a Report, dataset: &str, ipc: u32, mode: Mode) -> &'a Leaderboard {
    trained_board(report, dataset, Ipc::PerClass(ipc), Training::Standard, mode)
}

fn row<'a>(board: &'a Leaderboard, method: &str) -> &'a LeaderboardRow {
    board.rows.iter().find(|row| row.method == method).unwrap_or_else(|| panic!("no row {method}"))
}

fn cell<'a>(row: &'a LeaderboardRow, attack: &str) -> &'a AttackCell {
    row.attacks.iter().find(|cell| cell.attack == attack).unwrap_or_else(|| panic!("no cell {attack}"))
}

/// dc on cifar10 IPC 10, untargeted, seeds 0 and 1, attacks fgsm / pgd / cw:
///
/// | seed | clean | fgsm (acc, s) | pgd (acc, s) | cw (acc, s) | clean s |
/// |    0 |    50 | 30, 2         | 10, 8        | 20, 20      | 1       |
/// |    1 |    54 | 34, 4         | 14, 12       | 28, 28      | 1       |
fn two_seed_setting() -> Vec<(AttackSpec, AttackShard)> {
    vec![
        result(Cell("cifar10", "dc", 10, 0, "fgsm", false), shard(50.0, 30.0, 2.0, 1.0)),
        result(Cell("cifar10", "dc", 10, 0, "pgd", false), shard(50.0, 10.0, 8.0, 1.0)),
        result(Cell("cifar10", "dc", 10, 0, "cw", false), shard(50.0, 20.0, 20.0, 1.0)),
        result(Cell("cifar10", "dc", 10, 1, "fgsm", false), shard(54.0, 34.0, 4.0, 1.0)),
        result(Cell("cifar10", "dc", 10, 1, "pgd", false), shard(54.0, 14.0, 12.0, 1.0)),
        result(Cell("cifar10", "dc", 10, 1, "cw", false), shard(54.0, 28.0, 28.0, 1.0)),
    ]
}

/// The same setting averaged by hand: c = 52; fgsm (32, 3), pgd (12, 10), cw (24, 24); t_c = 1.
fn two_seed_observation() -> SettingObservation {
    SettingObservation {
        clean_accuracy: 52.0,
        clean_time: 1.0,
        attacks: vec![
            AttackObservation { robust_accuracy: 32.0, time: 3.0 },
            AttackObservation { robust_accuracy: 12.0, time: 10.0 },
            AttackObservation { robust_accuracy: 24.0, time: 24.0 },
        ],
    }
}

// ----- grouping and averaging -----------------------------------------------------------------

#[test]
fn empty_input_gives_a_report_saying_there_are_no_results() {
    let report = build(&input(vec![]));
    assert!(report.leaderboards.is_empty() && report.multi_ipc.is_empty());
    assert_eq!(report.results, 0);
    assert!(report.to_markdown().contains("No results yet."));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["leaderboards"], serde_json::json!([]));
    assert!(observations(&input(vec![])).is_empty());
}

#[test]
fn seeds_are_averaged_with_sample_std() {
    let report = build(&input(two_seed_setting()));
    let dc = row(board(&report, "cifar10", 10, Mode::Untargeted), "dc");
    assert_eq!(dc.seeds, 2);
    // clean 50, 54: mean 52, sample std sqrt(((-2)^2 + 2^2) / 1) = sqrt(8).
    assert!(close(dc.clean_accuracy.mean, 52.0));
    assert!(close(dc.clean_accuracy.std, 8.0_f64.sqrt()));
    // cw 20, 28: mean 24, std sqrt(32); time (20 + 28) / 2 = 24.
    let cw = cell(dc, "cw");
    assert!(close(cw.robust_accuracy.mean, 24.0));
    assert!(close(cw.robust_accuracy.std, 32.0_f64.sqrt()));
    assert!(close(cw.time, 24.0));
    assert_eq!(cw.seeds, 2);
    assert!(dc.complete && dc.missing.is_empty());
}

#[test]
fn one_seed_has_zero_std() {
    let report = build(&input(two_seed_setting()[..3].to_vec()));
    let dc = row(board(&report, "cifar10", 10, Mode::Untargeted), "dc");
    assert_eq!(dc.clean_accuracy, Stat { mean: 50.0, std: 0.0 });
    assert!(dc.attacks.iter().all(|cell| cell.robust_accuracy.std == 0.0));
}

#[test]
fn a_seeds_clean_accuracy_is_the_mean_of_its_shards() {
    let results = vec![
        result(Cell("cifar10", "dc", 1, 0, "fgsm", false), shard(50.0, 30.0, 2.0, 1.0)),
        result(Cell("cifar10", "dc", 1, 0, "pgd", false), shard(52.0, 10.0, 8.0, 1.0)),
    ];
    let report = build(&input(results));
    let dc = row(board(&report, "cifar10", 1, Mode::Untargeted), "dc");
    // One seed: clean (50 + 52) / 2 = 51, std 0 (a spread over shards is not a spread over seeds).
    assert_eq!(dc.clean_accuracy, Stat { mean: 51.0, std: 0.0 });
}

#[test]
fn settings_are_grouped_by_dataset_ipc_mode_and_method() {
    let results = vec![
        result(Cell("cifar100", "dc", 1, 0, "fgsm", false), shard(20.0, 5.0, 1.0, 1.0)),
        result(Cell("cifar10", "dm", 50, 0, "fgsm", true), shard(60.0, 40.0, 1.0, 1.0)),
        result(Cell("cifar10", "dm", 10, 0, "fgsm", false), shard(50.0, 30.0, 1.0, 1.0)),
        result(Cell("cifar10", "dc", 10, 0, "fgsm", false), shard(45.0, 25.0, 1.0, 1.0)),
        result(Cell("cifar10", "dc", 10, 0, "pgd", true), shard(45.0, 35.0, 1.0, 1.0)),
    ];
    let report = build(&input(results));
    let boards: Vec<(&str, Ipc, Mode, usize)> = report
        .leaderboards
        .iter()
        .map(|board| (board.dataset.as_str(), board.ipc, board.mode, board.rows.len()))
        .collect();
    assert_eq!(
        boards,
        vec![
            ("cifar10", Ipc::PerClass(10), Mode::Untargeted, 2),
            ("cifar10", Ipc::PerClass(10), Mode::Targeted, 1),
            ("cifar10", Ipc::PerClass(50), Mode::Targeted, 1),
            ("cifar100", Ipc::PerClass(1), Mode::Untargeted, 1),
        ]
    );
    // Attack columns are per dataset and mode.
    assert_eq!(board(&report, "cifar10", 10, Mode::Untargeted).attacks, vec!["fgsm"]);
    assert_eq!(board(&report, "cifar10", 10, Mode::Targeted).attacks, vec!["fgsm", "pgd"]);
    let datasets: Vec<&str> = report.multi_ipc.iter().map(|t| t.dataset.as_str()).collect();
    assert_eq!(datasets, vec!["cifar10", "cifar100"]);
}

#[test]
fn attack_columns_follow_the_attack_order() {
    let names =
        ["spsa", "square", "fab-t", "apgd-t", "apgd-ce", "autoattack", "deepfool", "cw", "pgdl2", "pgd", "fgsm"];
    let results = names
        .iter()
        .map(|name| result(Cell("cifar10", "dc", 1, 0, name, false), shard(50.0, 10.0, 1.0, 1.0)))
        .collect();
    let report = build(&input(results));
    let board = board(&report, "cifar10", 1, Mode::Untargeted);
    assert_eq!(board.attacks, ATTACK_ORDER.to_vec());
    let cells: Vec<&str> = board.rows[0].attacks.iter().map(|cell| cell.attack).collect();
    assert_eq!(cells, ATTACK_ORDER.to_vec());
}

// ----- scores ---------------------------------------------------------------------------------

#[test]
fn report_scores_equal_the_metrics_of_hand_computed_observations() {
    let input = input(two_seed_setting());
    let hand = two_seed_observation();
    let key = SettingKey {
        dataset: "cifar10".into(),
        method: "dc".into(),
        ipc: Ipc::PerClass(10),
        training: Training::Standard,
        evaluation: Evaluation::STANDARD,
        mode: Mode::Untargeted,
    };
    assert_eq!(observations(&input), vec![(key, hand.clone())]);

    // RR: mean a = 68/3, min a = 12: 100 (1 - (52 - 68/3) / 40) = 100 (1 - 88/120) = 26.667.
    // AE: mean t = 37/3, max t = 24: 100 (37/3 - 1) / 23 = 100 * 34 / 69 = 49.275.
    let report = build(&input);
    let dc = row(board(&report, "cifar10", 10, Mode::Untargeted), "dc");
    let scores = evaluate(&hand, &MetricOptions::default());
    assert!(close(dc.rr, 80.0 / 3.0) && close(scores.rr, dc.rr));
    assert!(close(dc.ae, 3400.0 / 69.0) && close(scores.ae, dc.ae));
    assert!(close(dc.crei, scores.crei));
    // Per-attack: RRS pgd = 0 (the weakest robust accuracy); AES cw = 100 (the slowest).
    assert!(close(cell(dc, "pgd").rrs, 0.0));
    assert!(close(cell(dc, "cw").aes, 100.0));
    // fgsm: RRS = 100 (1 - 20/40) = 50; AES = 100 * 2 / 23.
    assert!(close(cell(dc, "fgsm").rrs, 50.0));
    assert!(close(cell(dc, "fgsm").aes, 200.0 / 23.0));
}

#[test]
fn options_reach_the_scores() {
    let mut input = input(two_seed_setting());
    input.options = MetricOptions { alpha: 1.0, rr_variant: RrVariant::IRr, ..MetricOptions::default() };
    let report = build(&input);
    let dc = row(board(&report, "cifar10", 10, Mode::Untargeted), "dc");
    // I-RR: 100 (1 - (52 - 68/3) * 40 / 52^2) = 100 (1 - (88/3) * 40 / 2704) = 56.607...
    let expected = 100.0 * (1.0 - (88.0 / 3.0) * 40.0 / 2704.0);
    assert!(close(dc.rr, expected));
    assert!(close(dc.crei, expected));
}

#[test]
fn rows_are_ranked_by_crei_descending() {
    // c = 50 and the same times for all, so AE ties and RR decides:
    // dsa a = [45, 44, 20]: 100 (1 - (50 - 109/3) / 30) = 54.44;
    // dc  a = [40, 30, 20]: 100 (1 - 20 / 30) = 33.33;
    // dm  a = [40, 0, 0]:   100 (1 - (50 - 40/3) / 50) = 26.67.
    let mut results = Vec::new();
    for (method, fgsm, pgd, cw) in [("dm", 40.0, 0.0, 0.0), ("dc", 40.0, 30.0, 20.0), ("dsa", 45.0, 44.0, 20.0)] {
        let mut push = |attack, robust, seconds| {
            let cell = Cell("cifar10", method, 1, 0, attack, false);
            results.push(result(cell, shard(50.0, robust, seconds, 1.0)));
        };
        push("fgsm", fgsm, 2.0);
        push("pgd", pgd, 4.0);
        push("cw", cw, 8.0);
    }
    let report = build(&input(results));
    let board = board(&report, "cifar10", 1, Mode::Untargeted);
    let ranking: Vec<(usize, &str)> = board.rows.iter().map(|row| (row.rank, row.method.as_str())).collect();
    assert_eq!(ranking, vec![(1, "dsa"), (2, "dc"), (3, "dm")]);
    assert!(board.rows.windows(2).all(|pair| pair[0].crei >= pair[1].crei));
}

#[test]
fn ties_follow_the_sweep_method_order_then_names() {
    let results = ["zeta", "dm", "alpha", "dc"]
        .iter()
        .map(|method| result(Cell("cifar10", method, 1, 0, "fgsm", false), shard(50.0, 10.0, 2.0, 1.0)))
        .collect();
    let report = build(&input(results));
    let methods: Vec<&str> =
        board(&report, "cifar10", 1, Mode::Untargeted).rows.iter().map(|row| row.method.as_str()).collect();
    assert_eq!(methods, vec!["dc", "dm", "alpha", "zeta"]);
}

#[test]
fn clean_time_is_the_smaller_of_targeted_and_untargeted() {
    let results = vec![
        result(Cell("cifar10", "dc", 1, 0, "fgsm", false), shard(50.0, 30.0, 5.0, 3.0)),
        result(Cell("cifar10", "dc", 1, 0, "pgd", false), shard(50.0, 10.0, 9.0, 3.0)),
        result(Cell("cifar10", "dc", 1, 0, "fgsm", true), shard(50.0, 40.0, 6.0, 2.0)),
        result(Cell("cifar10", "dc", 1, 0, "pgd", true), shard(50.0, 20.0, 10.0, 2.0)),
        // Another model with only untargeted results keeps its own clean time.
        result(Cell("cifar10", "dm", 1, 0, "fgsm", false), shard(50.0, 30.0, 5.0, 4.0)),
    ];
    let report = build(&input(results));
    let untargeted = row(board(&report, "cifar10", 1, Mode::Untargeted), "dc");
    let targeted = row(board(&report, "cifar10", 1, Mode::Targeted), "dc");
    assert_eq!(untargeted.clean_time, 2.0);
    assert_eq!(targeted.clean_time, 2.0);
    // Untargeted AE with t_c = 2: 100 (7 - 2) / (9 - 2) = 71.43 (with t_c = 3 it would be 66.67).
    assert!(close(untargeted.ae, 500.0 / 7.0));
    assert_eq!(row(board(&report, "cifar10", 1, Mode::Untargeted), "dm").clean_time, 4.0);
}

// ----- time bases -----------------------------------------------------------------------------

fn outcomes(steps: &[u32]) -> Vec<SampleOutcome> {
    steps.iter().map(|&step| SampleOutcome { success: step > 0, success_step: step, ..Default::default() }).collect()
}

/// Two seeds of one pgd setting with per-sample outcomes, under a time basis.
fn timed_pgd(basis: TimeBasis) -> LeaderboardRow {
    let mut seed0 = shard(50.0, 10.0, 20.0, 4.0);
    seed0.outcomes = outcomes(&[5, 10, 0]);
    let mut seed1 = shard(50.0, 10.0, 40.0, 5.0);
    seed1.outcomes = outcomes(&[0, 0, 0]);
    let mut input = input(vec![
        result(Cell("cifar10", "dc", 1, 0, "pgd", false), seed0),
        result(Cell("cifar10", "dc", 1, 1, "pgd", false), seed1),
    ]);
    input.options.time_basis = basis;
    let report = build(&input);
    row(board(&report, "cifar10", 1, Mode::Untargeted), "dc").clone()
}

#[test]
fn wall_time_basis_averages_measured_seconds() {
    let dc = timed_pgd(TimeBasis::Wall);
    assert!(close(cell(&dc, "pgd").time, 30.0));
    assert!(close(dc.clean_time, 4.5));
}

#[test]
fn per_sample_time_basis_is_mean_time_to_first_success() {
    let dc = timed_pgd(TimeBasis::PerSample);
    // Seed 0: a step costs 20 s / (10 steps * 100 samples) = 0.02 s; successes at steps 5 and 10
    // take 0.1 s and 0.2 s, mean 0.15 s. Seed 1: no success, 0. Over seeds: 0.075 s.
    assert!(close(cell(&dc, "pgd").time, 0.075));
    // Clean: 4 s / 100 = 0.04 s and 5 s / 100 = 0.05 s: 0.045 s.
    assert!(close(dc.clean_time, 0.045));
}

#[test]
fn normalized_time_basis_divides_by_each_shards_clean_time() {
    let dc = timed_pgd(TimeBasis::Normalized);
    // 20 / 4 = 5 and 40 / 5 = 8: 6.5 clean times.
    assert!(close(cell(&dc, "pgd").time, 6.5));
    assert_eq!(dc.clean_time, 1.0);
}

// ----- multi-IPC ------------------------------------------------------------------------------

#[test]
fn multi_ipc_rows_pool_the_ipcs_of_a_method() {
    // IPC 1: c = 30, t_c = 1, fgsm (20, 3), pgd (10, 5).
    // IPC 10: c = 50, t_c = 3, fgsm (40, 4), pgd (30, 9).
    let results = vec![
        result(Cell("cifar10", "dc", 1, 0, "fgsm", false), shard(30.0, 20.0, 3.0, 1.0)),
        result(Cell("cifar10", "dc", 1, 0, "pgd", false), shard(30.0, 10.0, 5.0, 1.0)),
        result(Cell("cifar10", "dc", 10, 0, "fgsm", false), shard(50.0, 40.0, 4.0, 3.0)),
        result(Cell("cifar10", "dc", 10, 0, "pgd", false), shard(50.0, 30.0, 9.0, 3.0)),
    ];
    let input = input(results);
    let report = build(&input);
    let table = &report.multi_ipc[0];
    assert_eq!(table.ipcs, vec![Ipc::PerClass(1), Ipc::PerClass(10)]);
    let dc = &table.rows[0];
    assert_eq!(
        (dc.method.as_str(), dc.mode, dc.ipcs.clone()),
        ("dc", Mode::Untargeted, vec![Ipc::PerClass(1), Ipc::PerClass(10)])
    );
    // Pooled: c = 40, t_c = 2, a = [20, 10, 40, 30] -> RRM = 100 (1 - 15/30) = 50;
    // t = [3, 5, 4, 9] -> AEM = 100 * 3.25 / 7 = 46.43.
    assert!(close(dc.rrm, 50.0));
    assert!(close(dc.aem, 325.0 / 7.0));
    let settings: Vec<SettingObservation> =
        observations(&input).into_iter().map(|(_, observation)| observation).collect();
    let scores = evaluate(&pool_across_ipcs(&settings), &input.options);
    assert!(close(dc.crei, scores.crei));
    assert!(dc.complete);
}

// ----- completeness and robustness ------------------------------------------------------------

#[test]
fn missing_seeds_attacks_and_methods_are_reported() {
    let mut results = two_seed_setting();
    // dm has seed 0 only and no cw.
    results.push(result(Cell("cifar10", "dm", 10, 0, "fgsm", false), shard(50.0, 30.0, 2.0, 1.0)));
    results.push(result(Cell("cifar10", "dm", 10, 0, "pgd", false), shard(50.0, 10.0, 8.0, 1.0)));
    let report = build(&input(results));
    let board = board(&report, "cifar10", 10, Mode::Untargeted);
    assert_eq!(board.seeds, vec![0, 1]);
    assert!(row(board, "dc").complete);
    let dm = row(board, "dm");
    assert!(!dm.complete);
    assert_eq!(
        dm.missing,
        vec![
            MissingAttack { attack: "fgsm", seeds: vec![1] },
            MissingAttack { attack: "pgd", seeds: vec![1] },
            MissingAttack { attack: "cw", seeds: vec![0, 1] },
        ]
    );
    assert_eq!(board.methods_without_results, vec!["dsa".to_owned()]);
    let multi: Vec<bool> = report.multi_ipc[0].rows.iter().map(|row| row.complete).collect();
    assert_eq!(multi, vec![true, false]);
    let markdown = report.to_markdown();
    assert!(markdown.contains("| dm* |"), "{markdown}");
    assert!(markdown.contains("dm is missing fgsm seed 1; pgd seed 1; cw seeds 0, 1."));
    assert!(markdown.contains("No results yet: dsa."));
}

#[test]
fn the_order_of_results_does_not_matter() {
    let mut results = two_seed_setting();
    results.push(result(Cell("cifar10", "dm", 10, 0, "fgsm", true), shard(40.0, 30.0, 2.0, 0.5)));
    results.push(result(Cell("cifar10", "dm", 1, 1, "pgd", false), shard(30.0, 3.0, 7.0, 0.7)));
    // Clean times measured per shard differ in their last bits: a seed's mean must not depend on
    // the order its shards arrive in ((0.1 + 0.2 + 0.3) / 3 != (0.3 + 0.2 + 0.1) / 3 in binary).
    for (index, (attack, clean_seconds)) in [("fgsm", 0.1), ("pgd", 0.2), ("cw", 0.3)].iter().enumerate() {
        let cell = Cell("cifar100", "dc", 1, 0, attack, false);
        results.push(result(cell, shard(30.0 + index as f64 / 3.0, 3.0, 7.0, *clean_seconds)));
    }
    let forward = build(&input(results.clone()));
    for turn in 0..results.len() {
        results.rotate_left(1);
        assert_eq!(build(&input(results.clone())), forward, "rotation {turn}");
    }
    results.reverse();
    assert_eq!(build(&input(results.clone())), forward);
    assert_eq!(build(&input(results)).to_markdown(), forward.to_markdown());
}

#[test]
fn results_without_dataset_or_attack_are_counted_and_left_out() {
    let mut results = two_seed_setting();
    results.push((AttackSpec::default(), shard(1.0, 1.0, 1.0, 1.0)));
    let mut no_attack = spec(&Cell("cifar10", "dc", 10, 0, "fgsm", false));
    no_attack.attack = Some(AttackConfig { attack: None });
    results.push((no_attack, shard(1.0, 1.0, 1.0, 1.0)));
    let report = build(&input(results));
    assert_eq!((report.results, report.unplaced_results), (6, 2));
    assert_eq!(report.leaderboards, build(&input(two_seed_setting())).leaderboards);
    assert!(report.to_markdown().contains("2 results were left out"));
}

#[test]
fn degenerate_shards_do_not_panic_or_produce_nan() {
    let empty = AttackShard::default();
    for basis in [TimeBasis::Wall, TimeBasis::PerSample, TimeBasis::Normalized] {
        let mut input = input(vec![
            result(Cell("cifar10", "dc", 1, 0, "fgsm", false), empty.clone()),
            result(Cell("cifar10", "dc", 1, 0, "pgd", true), empty.clone()),
        ]);
        input.options.time_basis = basis;
        let report = build(&input);
        let json = report.to_json();
        assert!(!json.contains("null"), "{json}");
        for board in &report.leaderboards {
            assert!(board.rows.iter().all(|row| [row.rr, row.ae, row.crei].iter().all(|score| score.is_finite())));
        }
        assert!(!report.to_markdown().contains("NaN"));
    }
}

#[test]
fn non_finite_shard_values_still_render() {
    let results = vec![
        result(Cell("cifar10", "dc", 1, 0, "fgsm", false), shard(f64::NAN, 3.0, 1.0, 1.0)),
        result(Cell("cifar10", "dm", 1, 0, "fgsm", false), shard(50.0, 3.0, 1.0, 1.0)),
        result(Cell("cifar10", "dm", 1, 0, "pgd", false), shard(50.0, 1.0, 2.0, 1.0)),
    ];
    let report = build(&input(results));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(json["leaderboards"][0]["rows"][1]["clean_accuracy"]["mean"].is_null());
    // A NaN score ranks last.
    assert_eq!(board(&report, "cifar10", 1, Mode::Untargeted).rows[1].method, "dc");
    assert!(report.to_markdown().contains("| dc* |"));
}

#[test]
fn names_cannot_break_markdown_tables() {
    let results = vec![result(Cell("cifar10", "a|b", 1, 0, "fgsm", false), shard(50.0, 3.0, 1.0, 1.0))];
    let markdown = build(&input(results)).to_markdown();
    assert!(markdown.contains("| a\\|b |"), "{markdown}");
}

// ----- full-size models and adversarial training ---------------------------------------------

/// dc at IPC 1 and 10 and a full-size model, fgsm and pgd untargeted, one seed.
fn with_full_size() -> Vec<(AttackSpec, AttackShard)> {
    let mut results = Vec::new();
    for (ipc, clean) in [(1, 30.0), (10, 50.0)] {
        results.push(result(Cell("cifar10", "dc", ipc, 0, "fgsm", false), shard(clean, 20.0, 3.0, 1.0)));
        results.push(result(Cell("cifar10", "dc", ipc, 0, "pgd", false), shard(clean, 10.0, 5.0, 1.0)));
    }
    results.push(full(result(Cell("cifar10", "full", 1, 0, "fgsm", false), shard(80.0, 30.0, 3.0, 1.0))));
    results.push(full(result(Cell("cifar10", "full", 1, 0, "pgd", false), shard(80.0, 5.0, 6.0, 1.0))));
    results
}

#[test]
fn full_size_models_have_their_own_boards_and_multi_ipc_rows() {
    let mut input = input(with_full_size());
    input.method_order = vec!["dc".into(), "dm".into(), "full".into()];
    let report = build(&input);
    let ipcs: Vec<Ipc> = report.leaderboards.iter().map(|board| board.ipc).collect();
    assert_eq!(ipcs, [Ipc::PerClass(1), Ipc::PerClass(10), Ipc::Full]);
    let full_board = trained_board(&report, "cifar10", Ipc::Full, Training::Standard, Mode::Untargeted);
    assert_eq!(full_board.rows.len(), 1);
    // RR: 100 (1 - (80 - 17.5) / 75) = 16.67; the same setting scored on its own.
    assert!(close(full_board.rows[0].rr, 100.0 * (1.0 - 62.5 / 75.0)));
    // A method with full-size results is missing from no per-class board, and vice versa.
    assert_eq!(full_board.methods_without_results, Vec::<String>::new());
    assert_eq!(board(&report, "cifar10", 1, Mode::Untargeted).methods_without_results, ["dm"]);

    let table = &report.multi_ipc[0];
    assert_eq!(table.ipcs, [Ipc::PerClass(1), Ipc::PerClass(10), Ipc::Full]);
    let rows: Vec<(&str, Vec<Ipc>, bool)> =
        table.rows.iter().map(|row| (row.method.as_str(), row.ipcs.clone(), row.complete)).collect();
    assert_eq!(
        rows,
        [("dc", vec![Ipc::PerClass(1), Ipc::PerClass(10)], true), ("full", vec![Ipc::Full], true)],
        "each row is complete against the IPCs of its kind"
    );
    assert!(report.adversarial_training.is_empty());

    let markdown = report.to_markdown();
    assert!(markdown.contains("### Full-size, untargeted"), "{markdown}");
    assert!(markdown.contains("### All IPCs (1, 10, full)"), "{markdown}");
    assert!(markdown.contains("| full | untargeted | full |"), "{markdown}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["leaderboards"][2]["ipc"], "full");
    assert_eq!(json["multi_ipc"][0]["ipcs"], serde_json::json!([1, 10, "full"]));
    assert!(json.get("adversarial_training").is_none());
    let csv = report.to_csv();
    assert!(
        csv.starts_with("table,dataset,ipc,mode,evaluation,rank,"),
        "no training column without adversarial training"
    );
    assert!(csv.contains("\nleaderboard,cifar10,full,untargeted,standard,1,full,true,crei,"), "{csv}");
    assert!(csv.contains("\nmulti_ipc,cifar10,full,untargeted,standard,,full,true,rrm,"), "{csv}");
}

/// `with_full_size` trained both ways: adversarial training keeps more robust accuracy.
pub(super) fn with_adversarial_training() -> Vec<(AttackSpec, AttackShard)> {
    let mut results = with_full_size();
    for (ipc, clean) in [(1, 25.0), (10, 40.0)] {
        results.push(adversarial(result(Cell("cifar10", "dc", ipc, 0, "fgsm", false), shard(clean, 22.0, 3.0, 1.0))));
        results.push(adversarial(result(Cell("cifar10", "dc", ipc, 0, "pgd", false), shard(clean, 18.0, 5.0, 1.0))));
    }
    results
}

#[test]
fn adversarial_training_gets_its_own_boards_and_the_comparison_table() {
    let input = input(with_adversarial_training());
    let report = build(&input);
    let standard = row(board(&report, "cifar10", 10, Mode::Untargeted), "dc").clone();
    let at_board = trained_board(&report, "cifar10", Ipc::PerClass(10), Training::Adversarial, Mode::Untargeted);
    let at = row(at_board, "dc").clone();
    // Adversarial: c = 40, a = [22, 18]: RR = 100 (1 - (40 - 20) / 22) = 9.09.
    assert!(close(at.rr, 100.0 * (1.0 - 20.0 / 22.0)));
    assert_eq!(at.clean_accuracy.mean, 40.0);
    // Standard boards come first, then the adversarial ones.
    let order: Vec<(Training, Ipc)> = report.leaderboards.iter().map(|board| (board.training, board.ipc)).collect();
    assert_eq!(
        order[..3],
        [
            (Training::Standard, Ipc::PerClass(1)),
            (Training::Standard, Ipc::PerClass(10)),
            (Training::Standard, Ipc::Full)
        ]
    );
    assert_eq!(order[3..], [(Training::Adversarial, Ipc::PerClass(1)), (Training::Adversarial, Ipc::PerClass(10))]);
    let trainings: Vec<(&str, Training)> =
        report.multi_ipc[0].rows.iter().map(|row| (row.method.as_str(), row.training)).collect();
    assert_eq!(trainings, [("dc", Training::Standard), ("dc", Training::Adversarial), ("full", Training::Standard)]);

    let [table] = report.adversarial_training.as_slice() else {
        panic!("one AT table: {:?}", report.adversarial_training)
    };
    assert_eq!(table.dataset, "cifar10");
    let keys: Vec<(&str, Ipc)> = table.rows.iter().map(|row| (row.method.as_str(), row.ipc)).collect();
    assert_eq!(keys, [("dc", Ipc::PerClass(1)), ("dc", Ipc::PerClass(10)), ("full", Ipc::Full)]);
    let ten = &table.rows[1];
    let (Some(std_side), Some(at_side)) = (ten.standard, ten.adversarial) else { panic!("both sides: {ten:?}") };
    assert_eq!((std_side.rrm, std_side.aem, std_side.crei), (standard.rr, standard.ae, standard.crei));
    assert_eq!(
        (at_side.rrm, at_side.aem, at_side.crei, at_side.clean_accuracy),
        (at.rr, at.ae, at.crei, at.clean_accuracy)
    );
    assert!(close(ten.crei_change.expect("both sides"), at.crei - standard.crei));
    // The full-size model was trained one way only.
    assert_eq!((table.rows[2].adversarial, table.rows[2].crei_change), (None, None));

    let markdown = report.to_markdown();
    assert!(markdown.contains("### IPC 10, untargeted, adversarial training"), "{markdown}");
    assert!(markdown.contains("| Method | Training | Mode | IPCs |"), "{markdown}");
    assert!(markdown.contains("### Adversarial training: standard (std) vs adversarial (AT)"), "{markdown}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["adversarial_training"][0]["rows"][1]["adversarial"]["clean_accuracy"]["mean"], 40.0);
    assert_eq!(json["leaderboards"][4]["training"], "adversarial");
    assert!(json["leaderboards"][0].get("training").is_none(), "standard boards keep their shape");
    let csv = report.to_csv();
    assert!(csv.starts_with("table,dataset,ipc,mode,evaluation,training,rank,method,"), "{csv}");
    assert!(csv.contains("\nleaderboard,cifar10,10,untargeted,standard,adversarial,1,dc,true,crei,"), "{csv}");
    assert!(
        csv.contains(
            "\nadversarial_training,cifar10,10,untargeted,standard,adversarial,,dc,true,clean_accuracy,40,0\n"
        ),
        "{csv}"
    );
    let width = csv.lines().next().map(|header| header.split(',').count());
    assert!(csv.lines().all(|line| Some(line.split(',').count()) == width), "every line has every column");
}

#[test]
fn only_one_regime_gives_no_comparison_table() {
    let only_adversarial: Vec<_> = with_adversarial_training().into_iter().skip(6).collect();
    let report = build(&input(only_adversarial));
    assert!(report.adversarial_training.is_empty());
    assert_eq!(report.leaderboards.len(), 2);
    assert!(report.leaderboards.iter().all(|board| board.training == Training::Adversarial));
}

// ----- evaluation modes -----------------------------------------------------------------------

/// dc on cifar10 IPC 10, seeds 0 and 1, evaluated in both modes, and dm in the standard mode only:
///
/// - standard, untargeted: `two_seed_setting` (clean 50 / 54 and clean time 1 in every shard;
///   fgsm 30 / 34, pgd 10 / 14, cw 20 / 28);
/// - standard, targeted: fgsm 40 / 44, clean time 0.25;
/// - beard-compat, untargeted: clean 50 / 54, clean time 0.5; fgsm 40 / 46 (2 / 4 s), pgd 35 / 39
///   (8 / 12 s), cw 26 / 30 (20 / 28 s);
/// - dm, standard, untargeted: fgsm 20 on seeds 0 and 1 (clean 40).
pub(super) fn with_both_evaluations() -> Vec<(AttackSpec, AttackShard)> {
    let mut results = two_seed_setting();
    for (seed, clean, targeted, compat_attacks) in [
        (0, 50.0, 40.0, [("fgsm", 40.0, 2.0), ("pgd", 35.0, 8.0), ("cw", 26.0, 20.0)]),
        (1, 54.0, 44.0, [("fgsm", 46.0, 4.0), ("pgd", 39.0, 12.0), ("cw", 30.0, 28.0)]),
    ] {
        results.push(result(Cell("cifar10", "dc", 10, seed, "fgsm", true), shard(clean, targeted, 2.0, 0.25)));
        for (attack, robust, seconds) in compat_attacks {
            let cell = Cell("cifar10", "dc", 10, seed, attack, false);
            results.push(compat(result(cell, shard(clean, robust, seconds, 0.5))));
        }
        results.push(result(Cell("cifar10", "dm", 10, seed, "fgsm", false), shard(40.0, 20.0, 2.0, 1.0)));
    }
    results
}

#[test]
fn evaluation_modes_never_share_a_setting_and_every_board_is_labelled() {
    let input = input(with_both_evaluations());
    let report = build(&input);
    let boards: Vec<(Evaluation, Ipc, Mode)> =
        report.leaderboards.iter().map(|board| (board.evaluation, board.ipc, board.mode)).collect();
    let ten = Ipc::PerClass(10);
    assert_eq!(
        boards,
        [
            (Evaluation::STANDARD, ten, Mode::Untargeted),
            (Evaluation::STANDARD, ten, Mode::Targeted),
            (Evaluation::BEARD_COMPAT, ten, Mode::Untargeted)
        ],
        "standard boards first, then the beard-compat one"
    );
    let keys: Vec<(String, Evaluation, Mode)> =
        observations(&input).into_iter().map(|(key, _)| (key.method, key.evaluation, key.mode)).collect();
    assert_eq!(
        keys,
        [
            ("dc".to_owned(), Evaluation::STANDARD, Mode::Untargeted),
            ("dc".to_owned(), Evaluation::STANDARD, Mode::Targeted),
            ("dc".to_owned(), Evaluation::BEARD_COMPAT, Mode::Untargeted),
            ("dm".to_owned(), Evaluation::STANDARD, Mode::Untargeted),
        ]
    );

    // The standard numbers are those of the standard shards alone.
    let standard = row(board(&report, "cifar10", 10, Mode::Untargeted), "dc");
    assert_eq!(cell(standard, "fgsm").robust_accuracy, Stat { mean: 32.0, std: 8.0_f64.sqrt() });
    assert!(close(standard.rr, 80.0 / 3.0), "the RR of two_seed_setting alone: {}", standard.rr);
    // Its clean time pairs with the standard targeted one (0.25), not the beard-compat 0.5.
    assert_eq!(standard.clean_time, 0.25);
    let compat_board =
        evaluated_board(&report, "cifar10", ten, Training::Standard, Evaluation::BEARD_COMPAT, Mode::Untargeted);
    let compat = row(compat_board, "dc");
    // beard-compat has no targeted setting: its own clean time 0.5.
    assert_eq!(compat.clean_time, 0.5);
    assert_eq!(cell(compat, "fgsm").robust_accuracy, Stat { mean: 43.0, std: 18.0_f64.sqrt() });
    // c = 52, a = [43, 37, 28]: RR = 100 (1 - (52 - 36) / (52 - 28)) = 33.33.
    assert!(close(compat.rr, 100.0 / 3.0), "{}", compat.rr);
    // t = [3, 10, 24] (cw: 20 and 28 s), t_c = 0.5: AE = 100 (37/3 - 1/2) / (24 - 1/2) = 100 * 71 / 141.
    assert!(close(compat.ae, 7100.0 / 141.0), "{}", compat.ae);
    assert_eq!(compat_board.attacks, ["fgsm", "pgd", "cw"]);
    assert!(compat.complete, "beard-compat columns are those of beard-compat results");
    // The sweep's methods have beard-compat results, so its boards list the methods without.
    assert_eq!(compat_board.methods_without_results, ["dsa", "dm"]);

    let rows: Vec<(&str, Evaluation)> =
        report.multi_ipc[0].rows.iter().map(|row| (row.method.as_str(), row.evaluation)).collect();
    assert_eq!(
        rows,
        [
            ("dc", Evaluation::STANDARD),
            ("dc", Evaluation::STANDARD),
            ("dm", Evaluation::STANDARD),
            ("dc", Evaluation::BEARD_COMPAT)
        ]
    );
    let per_ipc: Vec<(Evaluation, Mode)> =
        report.crei_per_ipc.iter().map(|table| (table.evaluation, table.mode)).collect();
    assert_eq!(
        per_ipc,
        [
            (Evaluation::STANDARD, Mode::Untargeted),
            (Evaluation::STANDARD, Mode::Targeted),
            (Evaluation::BEARD_COMPAT, Mode::Untargeted)
        ]
    );
    assert_eq!(report.crei_per_ipc[2].rows.len(), 1, "only dc has beard-compat results");

    let markdown = report.to_markdown();
    for heading in [
        "### IPC 10, untargeted, standard evaluation\n",
        "### IPC 10, targeted, standard evaluation\n",
        "### IPC 10, untargeted, beard-compat evaluation\n",
        "### All IPCs (10), standard evaluation: RRM, AEM, CREI pooled across IPCs\n",
        "### All IPCs (10), beard-compat evaluation: RRM, AEM, CREI pooled across IPCs\n",
        "### CREI per IPC, untargeted, standard evaluation\n",
        "### CREI per IPC, untargeted, beard-compat evaluation\n",
    ] {
        assert_eq!(markdown.matches(heading).count(), 1, "{heading} in\n{markdown}");
    }
    let comparison = "### Evaluation modes: robust accuracy under standard vs beard-compat";
    assert!(
        markdown.lines().filter(|line| line.starts_with("### ")).all(|line| {
            line.contains("standard evaluation") || line.contains("beard-compat evaluation") || line == comparison
        }),
        "every heading names its evaluation mode:\n{markdown}"
    );

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let labels = |key: &str| -> Vec<String> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["evaluation"].as_str().unwrap_or("none").to_owned())
            .collect()
    };
    assert_eq!(labels("leaderboards"), ["standard", "standard", "beard-compat"]);
    assert_eq!(labels("crei_per_ipc"), ["standard", "standard", "beard-compat"]);
    let multi: Vec<&str> =
        json["multi_ipc"][0]["rows"].as_array().unwrap().iter().filter_map(|row| row["evaluation"].as_str()).collect();
    assert_eq!(multi, ["standard", "standard", "standard", "beard-compat"]);

    let csv = report.to_csv();
    assert!(csv.starts_with("table,dataset,ipc,mode,evaluation,rank,method,"), "{csv}");
    assert!(csv.contains("\nleaderboard,cifar10,10,untargeted,beard-compat,1,dc,true,fgsm_accuracy,43,"), "{csv}");
    assert!(csv.contains("\nleaderboard,cifar10,10,untargeted,standard,2,dc,true,fgsm_accuracy,32,"), "{csv}");
    assert!(csv.contains("\nmulti_ipc,cifar10,10,untargeted,beard-compat,,dc,true,rrm,"), "{csv}");
    assert!(
        csv.lines().skip(1).all(|line| matches!(line.split(',').nth(4), Some("standard" | "beard-compat"))),
        "every CSV line names its evaluation mode"
    );
}

#[test]
fn both_evaluation_modes_are_compared_side_by_side_per_attack() {
    let report = build(&input(with_both_evaluations()));
    let [table] = report.evaluation_modes.as_slice() else {
        panic!("one comparison table: {:?}", report.evaluation_modes)
    };
    assert_eq!(table.dataset, "cifar10");
    let keys: Vec<(&str, Ipc, Mode, &str)> =
        table.rows.iter().map(|row| (row.method.as_str(), row.ipc, row.mode, row.attack)).collect();
    let ten = Ipc::PerClass(10);
    assert_eq!(
        keys,
        [
            ("dc", ten, Mode::Untargeted, "fgsm"),
            ("dc", ten, Mode::Untargeted, "pgd"),
            ("dc", ten, Mode::Untargeted, "cw"),
            ("dc", ten, Mode::Targeted, "fgsm"),
            ("dm", ten, Mode::Untargeted, "fgsm"),
        ]
    );
    // Clean accuracy 50 and 54 in both modes: 52 ± sqrt(8).
    let clean = Stat { mean: 52.0, std: 8.0_f64.sqrt() };
    // (standard robust, beard-compat robust, beard-compat minus standard), by hand from the shards.
    let expected = [
        (Stat { mean: 32.0, std: 8.0_f64.sqrt() }, Stat { mean: 43.0, std: 18.0_f64.sqrt() }, 11.0),
        (Stat { mean: 12.0, std: 8.0_f64.sqrt() }, Stat { mean: 37.0, std: 8.0_f64.sqrt() }, 25.0),
        (Stat { mean: 24.0, std: 32.0_f64.sqrt() }, Stat { mean: 28.0, std: 8.0_f64.sqrt() }, 4.0),
    ];
    for (row, (standard, compat, difference)) in table.rows.iter().zip(expected) {
        let (Some(standard_side), Some(compat_side)) = (row.standard, row.beard_compat) else {
            panic!("both sides: {row:?}")
        };
        assert_eq!((standard_side.clean_accuracy, compat_side.clean_accuracy), (clean, clean), "{}", row.attack);
        assert_eq!(standard_side.robust_accuracy.mean, standard.mean, "{}", row.attack);
        assert!(close(standard_side.robust_accuracy.std, standard.std), "{}", row.attack);
        assert_eq!(compat_side.robust_accuracy.mean, compat.mean, "{}", row.attack);
        assert!(close(compat_side.robust_accuracy.std, compat.std), "{}", row.attack);
        assert!(close(row.difference.expect("both sides"), difference), "{}", row.attack);
        assert!(standard_side.complete && compat_side.complete);
    }
    // Settings evaluated one way only keep the other side empty.
    for row in &table.rows[3..] {
        assert!(row.standard.is_some() && row.beard_compat.is_none() && row.difference.is_none(), "{row:?}");
    }

    let markdown = report.to_markdown();
    assert!(markdown.contains(
        "### Evaluation modes: robust accuracy under standard vs beard-compat\n\n\
         | Method | IPC | Mode | Attack | Clean standard | Clean beard-compat | Robust standard | Robust beard-compat | \
         Δ (beard-compat − standard) |\n"
    ), "{markdown}");
    assert!(
        markdown.contains(
            "| dc | 10 | untargeted | fgsm | 52.00 ± 2.83 | 52.00 ± 2.83 | 32.00 ± 2.83 | 43.00 ± 4.24 | 11.00 |"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains("| dm | 10 | untargeted | fgsm | 40.00 ± 0.00 | — | 20.00 ± 0.00 | — | — |"),
        "{markdown}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let pgd = &json["evaluation_modes"][0]["rows"][1];
    assert_eq!(pgd["attack"], "pgd");
    assert_eq!(pgd["standard"]["robust_accuracy"]["mean"], 12.0);
    assert_eq!(pgd["beard-compat"]["robust_accuracy"]["mean"], 37.0);
    assert_eq!(pgd["difference"], 25.0);
    assert!(json["evaluation_modes"][0]["rows"][4]["beard-compat"].is_null());
}

#[test]
fn one_evaluation_mode_gives_no_comparison_table() {
    for results in [
        golden_input().results,
        with_both_evaluations()
            .into_iter()
            .filter(|(spec, _)| Evaluation::of(spec) == Evaluation::BEARD_COMPAT)
            .collect(),
    ] {
        let report = build(&input(results));
        assert!(!report.leaderboards.is_empty());
        assert!(report.evaluation_modes.is_empty(), "{:?}", report.evaluation_modes);
        assert!(!report.to_markdown().contains("### Evaluation modes"));
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert!(json.get("evaluation_modes").is_none());
    }
}

#[test]
fn adversarial_training_is_compared_within_each_evaluation_mode() {
    // with_adversarial_training, and again in beard-compat with 5 points more robust accuracy.
    let mut results = with_adversarial_training();
    let compat_results: Vec<_> = results
        .iter()
        .map(|(spec, shard)| {
            let shard = AttackShard { robust_accuracy: shard.robust_accuracy + 5.0, ..shard.clone() };
            compat((spec.clone(), shard))
        })
        .collect();
    results.extend(compat_results);
    let report = build(&input(results));
    let tables: Vec<(Evaluation, usize)> =
        report.adversarial_training.iter().map(|table| (table.evaluation, table.rows.len())).collect();
    assert_eq!(tables, [(Evaluation::STANDARD, 3), (Evaluation::BEARD_COMPAT, 3)]);
    let crei = |evaluation: Evaluation, training: Training| {
        let board = evaluated_board(&report, "cifar10", Ipc::PerClass(10), training, evaluation, Mode::Untargeted);
        row(board, "dc").crei
    };
    for table in &report.adversarial_training {
        let ten = &table.rows[1];
        let change = crei(table.evaluation, Training::Adversarial) - crei(table.evaluation, Training::Standard);
        assert!(close(ten.crei_change.expect("both sides"), change), "{:?}", table.evaluation);
    }
    let [comparison] = report.evaluation_modes.as_slice() else { panic!("one comparison") };
    let trainings: Vec<(Training, Ipc, &str)> =
        comparison.rows.iter().map(|row| (row.training, row.ipc, row.attack)).collect();
    assert_eq!(trainings.len(), 10, "dc at two IPCs trained two ways, full one way, two attacks each");
    assert!(comparison.rows.iter().all(|row| close(row.difference.expect("both modes"), 5.0)));
    assert_eq!(
        trainings[..4],
        [
            (Training::Standard, Ipc::PerClass(1), "fgsm"),
            (Training::Standard, Ipc::PerClass(1), "pgd"),
            (Training::Adversarial, Ipc::PerClass(1), "fgsm"),
            (Training::Adversarial, Ipc::PerClass(1), "pgd"),
        ]
    );
    let markdown = report.to_markdown();
    assert!(
        markdown.contains("### Adversarial training: standard (std) vs adversarial (AT), beard-compat evaluation\n")
    );
    assert!(markdown.contains("### IPC 10, untargeted, adversarial training, beard-compat evaluation\n"));
    assert!(markdown.contains("| Method | IPC | Training | Mode | Attack |"), "{markdown}");
    assert!(markdown.contains("| dc | 10 | adversarial | untargeted | fgsm | 40.00 ± 0.00 | 40.00 ± 0.00 | 22.00 ± 0.00 | 27.00 ± 0.00 | 5.00 |"), "{markdown}");
    let csv = report.to_csv();
    assert!(
        csv.contains(
            "\nadversarial_training,cifar10,10,untargeted,beard-compat,adversarial,,dc,true,clean_accuracy,40,0\n"
        ),
        "{csv}"
    );
}

// ----- golden ---------------------------------------------------------------------------------

/// A tiny sweep: cifar10, dc and dm at IPC 1 and 10, two seeds, fgsm and pgd in both modes;
/// dm's IPC 10 lacks seed 1 of untargeted pgd.
pub(super) fn golden_input() -> ReportInput {
    let mut results = Vec::new();
    for (method, ipc, clean, fgsm, pgd) in [
        ("dc", 1, 28.0, 20.0, 12.0),
        ("dc", 10, 44.0, 30.0, 18.0),
        ("dm", 1, 26.0, 22.0, 15.0),
        ("dm", 10, 48.0, 36.0, 20.0),
    ] {
        for seed in 0..2 {
            let wobble = f64::from(seed) * 1.5;
            let clean = clean + wobble;
            results.push(result(
                Cell("cifar10", method, ipc, seed, "fgsm", false),
                shard(clean, fgsm + wobble, 2.0 + wobble, 0.5),
            ));
            results.push(result(
                Cell("cifar10", method, ipc, seed, "fgsm", true),
                shard(clean, fgsm + 5.0 - wobble, 2.5, 0.4),
            ));
            results.push(result(
                Cell("cifar10", method, ipc, seed, "pgd", true),
                shard(clean, pgd + 8.0 - wobble, 7.0 + wobble, 0.4),
            ));
            if !(method == "dm" && ipc == 10 && seed == 1) {
                results.push(result(
                    Cell("cifar10", method, ipc, seed, "pgd", false),
                    shard(clean, pgd - wobble, 9.0 + wobble, 0.5),
                ));
            }
        }
    }
    ReportInput {
        sweep_name: "golden".into(),
        options: MetricOptions::default(),
        method_order: vec!["dc".into(), "dsa".into(), "dm".into()],
        results,
    }
}

#[test]
fn golden_markdown() {
    golden::check("report_small.md", &build(&golden_input()).to_markdown());
}

#[test]
fn golden_json() {
    golden::check("report_small.json", &build(&golden_input()).to_json());
}

#[test]
fn golden_csv() {
    golden::check("report_small.csv", &build(&golden_input()).to_csv());
}

// ----- metric options -------------------------------------------------------------------------

/// Leaves of two JSON trees that differ, as `a.b.0.c` paths.
fn differing_leaves(left: &serde_json::Value, right: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (left, right) {
        (Value::Object(left), Value::Object(right)) => {
            assert_eq!(left.keys().collect::<Vec<_>>(), right.keys().collect::<Vec<_>>(), "keys at {path}");
            for (key, value) in left {
                differing_leaves(value, &right[key], &format!("{path}.{key}"), out);
            }
        }
        (Value::Array(left), Value::Array(right)) => {
            assert_eq!(left.len(), right.len(), "length at {path}");
            for (index, (left, right)) in left.iter().zip(right).enumerate() {
                differing_leaves(left, right, &format!("{path}.{index}"), out);
            }
        }
        (left, right) if left != right => out.push(path.to_owned()),
        _ => {}
    }
}

/// Every object with a `crei` and its RR / AE (`rr`, `ae` or `rrm`, `aem`): (rr, ae, crei).
fn crei_terms(value: &serde_json::Value, out: &mut Vec<(f64, f64, f64)>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(crei) = map.get("crei").and_then(Value::as_f64) {
                let rr = map.get("rr").or_else(|| map.get("rrm")).and_then(Value::as_f64).unwrap();
                let ae = map.get("ae").or_else(|| map.get("aem")).and_then(Value::as_f64).unwrap();
                out.push((rr, ae, crei));
            }
            map.values().for_each(|value| crei_terms(value, out));
        }
        Value::Array(values) => values.iter().for_each(|value| crei_terms(value, out)),
        _ => {}
    }
}

#[test]
fn changing_alpha_changes_exactly_the_crei_values() {
    let alpha = 0.3;
    let base = build(&golden_input());
    let mut changed_input = golden_input();
    changed_input.options.alpha = alpha;
    let changed = build(&changed_input);

    let base_json: serde_json::Value = serde_json::from_str(&base.to_json()).unwrap();
    let changed_json: serde_json::Value = serde_json::from_str(&changed.to_json()).unwrap();
    let mut differing = Vec::new();
    differing_leaves(&base_json, &changed_json, "", &mut differing);
    let mut terms = Vec::new();
    crei_terms(&changed_json, &mut terms);
    // Every CREI changes (RR != AE in every row of the golden input), plus the option itself; the
    // CREI-per-IPC tables repeat the leaderboards' eight values.
    let per_ipc = differing.iter().filter(|path| path.starts_with(".crei_per_ipc.") && path.contains(".crei.")).count();
    assert_eq!(per_ipc, 4 * 2, "{differing:?}");
    assert_eq!(differing.len(), terms.len() + per_ipc + 1, "{differing:?}");
    assert!(
        differing.iter().all(|path| path.ends_with(".crei") || path.contains(".crei.") || path == ".options.alpha"),
        "{differing:?}"
    );
    assert_eq!(terms.len(), 4 * 2 + 4, "four leaderboards of two rows and four multi-IPC rows");
    for (rr, ae, crei) in terms {
        assert!(close(crei, alpha * rr + (1.0 - alpha) * ae), "{crei} != CREI({rr}, {ae})");
    }

    // The CSV differs in exactly the `crei` lines too.
    let (base_csv, changed_csv) = (base.to_csv(), changed.to_csv());
    assert_eq!(base_csv.lines().count(), changed_csv.lines().count());
    let differing: Vec<(&str, &str)> =
        base_csv.lines().zip(changed_csv.lines()).filter(|(left, right)| left != right).collect();
    assert_eq!(differing.len(), 12);
    for (left, right) in differing {
        let fields = |line: &str| line.split(',').map(str::to_owned).collect::<Vec<_>>();
        let (left, right) = (fields(left), fields(right));
        assert_eq!(left[..8], right[..8]);
        assert_eq!((left[8].as_str(), right[8].as_str()), ("crei", "crei"));
        assert_eq!(left[10], right[10]);
    }
}

#[test]
fn golden_both_evaluation_modes() {
    let mut input = input(with_both_evaluations());
    input.sweep_name = "golden-modes".into();
    let report = build(&input);
    golden::check("report_modes.md", &report.to_markdown());
    golden::check("report_modes.json", &report.to_json());
    golden::check("report_modes.csv", &report.to_csv());
}

#[test]
fn golden_adversarial_training_and_full_size() {
    let mut input = input(with_adversarial_training());
    input.sweep_name = "golden-at".into();
    input.method_order = vec!["dc".into(), "full".into()];
    let report = build(&input);
    golden::check("report_at.md", &report.to_markdown());
    golden::check("report_at.json", &report.to_json());
    golden::check("report_at.csv", &report.to_csv());
}
