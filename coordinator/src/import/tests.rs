//! Import tests on BEARD-format logs written from hand-worked numbers: the metrics they give,
//! the rules for clean values and unsupported targeted rows, errors, and golden renderings.

use super::*;
use crate::report::{Evaluation, Ipc, Mode, Stat, golden};

/// One logged attack: name, (targeted accuracy, seconds), (untargeted accuracy, seconds).
pub(crate) type Logged = (&'static str, (f64, f64), (f64, f64));

/// BACON on CIFAR10 at IPC 1. Clean: c = 50, times 2 and 3, so t_c = 2. The targeted DeepFool
/// and AA rows repeat the clean values, as the reference writes them.
pub(crate) const BACON_IPC1: [Logged; 7] = [
    ("Clean", (50.0, 2.0), (50.0, 3.0)),
    ("FGSM", (40.0, 4.0), (30.0, 4.0)),
    ("PGD", (35.0, 10.0), (20.0, 12.0)),
    ("PGD_L2", (45.0, 6.0), (44.0, 6.0)),
    ("Deepfool", (50.0, 2.0), (10.0, 22.0)),
    ("CW", (30.0, 8.0), (15.0, 10.0)),
    ("AA", (50.0, 2.0), (14.0, 18.0)),
];

/// BACON on CIFAR10 at IPC 10. Clean: c = 60, times 5 and 4, so t_c = 4.
const BACON_IPC10: [Logged; 7] = [
    ("Clean", (60.0, 5.0), (60.0, 4.0)),
    ("FGSM", (50.0, 6.0), (40.0, 6.0)),
    ("PGD", (45.0, 14.0), (30.0, 16.0)),
    ("PGD_L2", (55.0, 8.0), (54.0, 8.0)),
    ("Deepfool", (60.0, 5.0), (20.0, 34.0)),
    ("CW", (40.0, 12.0), (25.0, 14.0)),
    ("AA", (60.0, 5.0), (24.0, 24.0)),
];

/// A BEARD log of one model, in the reference's line format, after its set-up line.
pub(crate) fn log(method: &str, dataset: &str, ipc: u32, attacks: &[Logged]) -> String {
    let mut text = String::from("2024-11-10 11:59:00,000 - INFO - Logging setup complete.\n");
    for (attack, (targeted, targeted_time), (untargeted, untargeted_time)) in attacks {
        text.push_str(&format!(
            "2024-11-10 12:00:00,000 - INFO - {attack} attack on {method}: final acc is:  target_attack: \
             {targeted:.2} +- 0.00, attack time is {targeted_time:.2}; non_target_attack: {untargeted:.2} +- 0.00, \
             attack time is {untargeted_time:.2}, dataset: {dataset}, IPC: {ipc}, DSA:True, num_eval: 0, aug:False \
             , model: ConvNet, attack_type: ['Clean','FGSM','PGD','PGD_L2','Deepfool','CW','AA'], target_attack: \
             [True, False], src_dataset: True\n"
        ));
    }
    text
}

fn bacon_logs() -> Vec<(String, String)> {
    vec![
        ("ConvNet_CIFAR10_1_evaluation_log.txt".into(), log("BACON", "CIFAR10", 1, &BACON_IPC1)),
        ("ConvNet_CIFAR10_10_evaluation_log.txt".into(), log("BACON", "CIFAR10", 10, &BACON_IPC10)),
    ]
}

fn import_texts(files: &[(String, String)]) -> Result<Imported, ImportError> {
    let files: Vec<LogFile<'_>> = files.iter().map(|(name, text)| LogFile { name, text }).collect();
    import(&files)
}

fn assert_scores(got: Option<PaperScores>, (rr, ae, crei): (f64, f64, f64), what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: no scores"));
    for (name, got, want) in [("RR", got.rr, rr), ("AE", got.ae, ae), ("CREI", got.crei, crei)] {
        assert!((got - want).abs() <= 0.01, "{what} {name}: {got} != {want}");
    }
}

#[test]
fn imported_metrics_equal_hand_worked_numbers() {
    let report = import_texts(&bacon_logs()).unwrap().report(MetricOptions::default());
    // Read back from the printed JSON, so that its shape is checked too.
    let json: serde_json::Value = serde_json::from_str(&scores_json(&scores(&report))).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["combined", "dataset", "evaluation", "method", "per_ipc"]);
    assert_eq!((json["method"].as_str(), json["dataset"].as_str()), (Some("BACON"), Some("CIFAR10")));
    assert_eq!(json["evaluation"], "beard-compat", "BEARD's reference code wrote these numbers");
    let ipcs: Vec<&String> = json["per_ipc"].as_object().unwrap().keys().collect();
    assert_eq!(ipcs, ["1", "10"]);

    // IPC 1, targeted (FGSM, PGD, PGD_L2, CW): a = [40, 35, 45, 30], mean 37.5, min 30;
    // RR = 100 (1 - 12.5 / 20) = 37.5. t = [4, 10, 6, 8], mean 7, max 10, t_c = 2;
    // AE = 100 * 5 / 8 = 62.5. CREI = 50.
    let ipc1 = &json["per_ipc"]["1"];
    assert_scores(paper_scores(ipc1, "targeted"), (37.5, 62.5, 50.0), "IPC 1 targeted");
    // IPC 1, untargeted (all six): a sums to 133, mean 22.1667, min 10;
    // RR = 100 (1 - 27.8333 / 40) = 30.4167. t sums to 72, mean 12, max 22;
    // AE = 100 * 10 / 20 = 50. CREI = 40.2083.
    assert_scores(paper_scores(ipc1, "untargeted"), (30.4167, 50.0, 40.2083), "IPC 1 untargeted");
    // IPC 10, targeted: a = [50, 45, 55, 40], mean 47.5, min 40; RR = 37.5.
    // t = [6, 14, 8, 12], mean 10, max 14, t_c = 4; AE = 100 * 6 / 10 = 60. CREI = 48.75.
    let ipc10 = &json["per_ipc"]["10"];
    assert_scores(paper_scores(ipc10, "targeted"), (37.5, 60.0, 48.75), "IPC 10 targeted");
    // IPC 10, untargeted: a sums to 193, mean 32.1667, min 20; RR = 100 (1 - 27.8333 / 40) =
    // 30.4167. t sums to 102, mean 17, max 34; AE = 100 * 13 / 30 = 43.3333. CREI = 36.875.
    assert_scores(paper_scores(ipc10, "untargeted"), (30.4167, 43.3333, 36.875), "IPC 10 untargeted");
    // Combined: c = 55, t_c = 3. Targeted: a sums to 340 over 8, mean 42.5, min 30;
    // RR = 100 (1 - 12.5 / 25) = 50. t sums to 68, mean 8.5, max 14; AE = 100 * 5.5 / 11 = 50.
    assert_scores(paper_scores(&json["combined"], "targeted"), (50.0, 50.0, 50.0), "combined targeted");
    // Untargeted: a sums to 326 over 12, mean 27.1667, min 10; RR = 100 (1 - 27.8333 / 45) =
    // 38.1481. t sums to 174, mean 14.5, max 34; AE = 100 * 11.5 / 31 = 37.0968.
    // CREI = 37.6225.
    assert_scores(paper_scores(&json["combined"], "untargeted"), (38.1481, 37.0968, 37.6225), "combined untargeted");
}

/// The RR / AE / CREI object at `value[mode]`, checking it has exactly those keys.
fn paper_scores(value: &serde_json::Value, mode: &str) -> Option<PaperScores> {
    let object = value.get(mode)?.as_object()?;
    assert_eq!(object.keys().collect::<Vec<_>>(), ["AE", "CREI", "RR"]);
    let number = |key: &str| object[key].as_f64();
    Some(PaperScores { rr: number("RR")?, ae: number("AE")?, crei: number("CREI")? })
}

#[test]
fn targeted_deepfool_and_autoattack_are_absent_and_clean_time_is_the_smaller() {
    let report = import_texts(&bacon_logs()).unwrap().report(MetricOptions::default());
    let board = |mode: Mode| {
        report
            .leaderboards
            .iter()
            .find(|board| board.ipc == Ipc::PerClass(1) && board.mode == mode)
            .expect("IPC 1 board")
    };
    assert_eq!(board(Mode::Targeted).attacks, ["fgsm", "pgd", "pgdl2", "cw"]);
    assert_eq!(board(Mode::Untargeted).attacks, ["fgsm", "pgd", "pgdl2", "cw", "deepfool", "autoattack"]);
    for mode in [Mode::Targeted, Mode::Untargeted] {
        let row = &board(mode).rows[0];
        assert_eq!(row.clean_time, 2.0, "the smaller of 2 (targeted) and 3 (untargeted)");
        assert_eq!(row.clean_accuracy, Stat { mean: 50.0, std: 0.0 });
        assert_eq!(row.seeds, 1);
        assert!(row.complete);
    }
    let untargeted_pgd = board(Mode::Untargeted).rows[0].attacks.iter().find(|cell| cell.attack == "pgd");
    assert_eq!(untargeted_pgd.map(|cell| (cell.robust_accuracy.mean, cell.time)), Some((20.0, 12.0)));
}

#[test]
fn imported_numbers_are_labelled_beard_compat() {
    let report = import_texts(&bacon_logs()).unwrap().report(MetricOptions::default());
    assert!(report.leaderboards.iter().all(|board| board.evaluation == Evaluation::BEARD_COMPAT));
    assert!(
        report.multi_ipc.iter().flat_map(|table| &table.rows).all(|row| row.evaluation == Evaluation::BEARD_COMPAT)
    );
    let markdown = report.to_markdown();
    assert!(markdown.contains("### IPC 1, untargeted, beard-compat evaluation\n"), "{markdown}");
    assert!(!markdown.contains("standard evaluation"), "{markdown}");
    assert!(report.to_csv().lines().skip(1).all(|line| line.split(',').nth(4) == Some("beard-compat")));
}

#[test]
fn one_file_may_hold_several_models_and_methods_order_by_name() {
    let text = log("DM", "CIFAR10", 1, &BACON_IPC1) + &log("BACON", "CIFAR10", 1, &BACON_IPC10);
    let report = import_texts(&[("all.log".into(), text)]).unwrap().report(MetricOptions::default());
    assert_eq!(report.results, 14);
    let all = scores(&report);
    assert_eq!(all.iter().map(|scores| scores.method.as_str()).collect::<Vec<_>>(), ["BACON", "DM"]);
    assert!(scores_json(&all).starts_with('['));
}

#[test]
fn a_model_without_clean_line_is_an_error_at_its_first_attack() {
    let text = log("BACON", "CIFAR10", 1, &BACON_IPC1[1..]);
    let error = import_texts(&[("run.log".into(), text)]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "run.log:2: FGSM of BACON on CIFAR10 IPC 1 has no `Clean` line to take the clean accuracy and time from"
    );
}

#[test]
fn a_measurement_logged_twice_is_an_error_naming_both_lines() {
    let mut logs = bacon_logs();
    logs.push(("again.log".into(), log("BACON", "CIFAR10", 10, &BACON_IPC10[..1])));
    let error = import_texts(&logs).unwrap_err();
    assert_eq!(
        error.to_string(),
        "again.log:2: Clean of BACON on CIFAR10 IPC 10 is logged twice (first at ConvNet_CIFAR10_10_evaluation_log.txt:2)"
    );
}

#[test]
fn errors_name_the_file_and_line_of_a_malformed_line() {
    let text = log("BACON", "CIFAR10", 1, &BACON_IPC1).replace("IPC: 1,", "IPC: ?,");
    let error = import_texts(&[("bad.log".into(), text)]).unwrap_err();
    assert_eq!(error.to_string(), "bad.log:2: malformed BEARD result line: IPC `?` is not a whole number");
}

// ----- golden ---------------------------------------------------------------------------------

/// BACON at IPC 1 and 10 as above, and DM at IPC 1 only (its combined row is incomplete).
fn golden_report() -> Report {
    let mut logs = bacon_logs();
    let dm: Vec<Logged> = BACON_IPC1
        .iter()
        .map(|&(attack, (targeted, targeted_time), (untargeted, untargeted_time))| {
            let shift = if attack == "Clean" { 0.0 } else { 3.0 };
            (attack, (targeted + shift, targeted_time * 1.5), (untargeted + shift, untargeted_time * 1.5))
        })
        .collect();
    logs.push(("ConvNet_CIFAR10_1_DM.txt".into(), log("DM", "CIFAR10", 1, &dm)));
    import_texts(&logs).unwrap().report(MetricOptions::default())
}

#[test]
fn golden_import_markdown() {
    golden::check("beard_logs.md", &golden_report().to_markdown());
}

#[test]
fn golden_import_json() {
    golden::check("beard_logs.json", &scores_json(&scores(&golden_report())));
}

#[test]
fn golden_import_csv() {
    golden::check("beard_logs.csv", &golden_report().to_csv());
}

/// BEARD's black-box logs, copied into coordinator/tests/fixtures/beard-logs.
fn black_box_logs() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/beard-logs");
    ["Transfer_BACON_ConvNet_CIFAR10_50_evaluation_log.txt", "Query_BACON_ConvNet_CIFAR10_50_evaluation_log.txt"]
        .into_iter()
        .map(|name| (name.to_owned(), std::fs::read_to_string(format!("{dir}/{name}")).expect("fixture")))
        .collect()
}

fn near(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 0.005, "{what}: {got} != {want}");
}

#[test]
fn the_transfer_log_gives_per_target_boards_worked_out_by_hand() {
    let report = import_texts(&black_box_logs()).unwrap().report(MetricOptions::default());
    let tables = &report.transfer;
    // Attacks x modes the reference ran: FGSM, PGD, PGD_L2, CW both ways; DeepFool and AA untargeted.
    assert_eq!(tables.matrices.len(), 10);
    let fgsm = tables
        .matrices
        .iter()
        .find(|m| m.attack == "fgsm" && m.setting.mode == Mode::Untargeted)
        .expect("the untargeted FGSM matrix");
    assert_eq!(fgsm.sources, ["BACON"]);
    assert_eq!(fgsm.targets, ["BACON", "DC", "DM", "DSA", "IDM", "MTT", "ROME", "VULCAN"]);
    assert_eq!(fgsm.setting.evaluation, Evaluation::BEARD_COMPAT);
    let cell = |target: &str| fgsm.cells[0][fgsm.targets.iter().position(|t| t == target).unwrap()].unwrap().mean;
    near(cell("DC"), 29.42, "FGSM-U BACON -> DC");
    near(cell("BACON"), 38.16, "FGSM-U on the source itself: the white-box figure");
    assert!(!tables.matrices.iter().any(|m| m.attack == "deepfool" && m.setting.mode == Mode::Targeted));

    let board = |target: &str, mode: Mode| {
        let board = tables
            .black_box
            .iter()
            .find(|b| b.target == target && b.setting.mode == mode)
            .unwrap_or_else(|| panic!("no board for {target} {mode:?}"));
        assert_eq!(board.rows.len(), 1);
        &board.rows[0]
    };
    // Target DC, untargeted: c = 54.31; A = 29.42, 28.82, 32.09, 28.08, 30.79, 35.01 (mean
    // 30.7017, min 28.08): RR = 100 (1 - 23.6083 / 26.23) = 9.99. Source times 3.82, 6.53, 6.49,
    // 1844.94, 36.68, 476.25 (mean 395.785), t_c = min(4.43, 3.91) = 3.91:
    // AE = 100 (395.785 - 3.91) / (1844.94 - 3.91) = 21.29.
    let dc = board("DC", Mode::Untargeted);
    near(dc.clean_accuracy, 54.31, "DC clean");
    near(dc.scores.rr, 9.99, "DC RR-U");
    near(dc.scores.ae, 21.29, "DC AE-U");
    near(dc.scores.crei, (9.9949 + 21.2856) / 2.0, "DC CREI-U");
    // Targeted: FGSM, PGD, PGD_L2, CW only: A = 30.56, 30.69, 32.09, 44.08 (mean 34.355):
    // RR = 100 (1 - 19.955 / 23.75) = 15.98; times 4.12, 6.69, 6.51, 38.21 (mean 13.8825):
    // AE = 100 (13.8825 - 3.91) / (38.21 - 3.91) = 29.07.
    let dc = board("DC", Mode::Targeted);
    near(dc.scores.rr, 15.98, "DC RR-T");
    near(dc.scores.ae, 29.07, "DC AE-T");
    // AE is the source's, the same on every board; VULCAN's accuracy rises under attack.
    near(board("DM", Mode::Targeted).scores.ae, 29.07, "DM AE-T");
    near(board("VULCAN", Mode::Targeted).scores.rr, -265.52, "VULCAN RR-T");
    near(board("VULCAN", Mode::Untargeted).scores.rr, 427.00, "VULCAN RR-U");
}

#[test]
fn the_query_log_puts_spsa_and_square_on_the_boards_without_the_untargeted_autoattack_row() {
    let report = import_texts(&black_box_logs()).unwrap().report(MetricOptions::default());
    let board = |mode: Mode| {
        report
            .leaderboards
            .iter()
            .find(|b| b.ipc == Ipc::PerClass(1) && b.mode == mode)
            .unwrap_or_else(|| panic!("no IPC 1 {mode:?} board"))
    };
    let targeted = board(Mode::Targeted);
    // The board's columns are those of the dataset (the Transfer log's IPC 50 adds its own).
    assert!(targeted.attacks.ends_with(&["square", "spsa"]), "{:?}", targeted.attacks);
    let row = &targeted.rows[0];
    let logged: Vec<&str> = row.attacks.iter().map(|c| c.attack).collect();
    assert_eq!(logged, ["square", "spsa"]);
    let accuracy = |attack: &str| row.attacks.iter().find(|c| c.attack == attack).unwrap().robust_accuracy.mean;
    assert_eq!((accuracy("spsa"), accuracy("square")), (50.29, 63.1));
    // c = 69.95, A = 50.29, 63.1: RR = 100 (1 - 13.255 / 19.66) = 32.58; times 36.8, 2570.94,
    // t_c = min(6.68, 4.84): AE = 100 (1303.87 - 4.84) / (2570.94 - 4.84) = 50.62.
    near(row.rr, 32.58, "query RR-T");
    near(row.ae, 50.62, "query AE-T");
    // The untargeted `Spsa` row is AutoAttack's: only Square is left.
    let untargeted = &board(Mode::Untargeted).rows[0];
    let logged: Vec<&str> = untargeted.attacks.iter().map(|c| c.attack).collect();
    assert_eq!(logged, ["square"]);
    assert_eq!(untargeted.attacks[0].robust_accuracy, Stat { mean: 29.2, std: 0.0 });
}
