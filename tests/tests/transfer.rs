//! A transfer sweep over the published model pool: BEARD's DC and DM checkpoints for CIFAR-10 at
//! IPC 50, FGSM crafted on each and judged by both, in the standard and the beard-compat
//! evaluation, targeted and untargeted, through a real coordinator and agent.
//!
//! Checked: every transfer task waits for both checkpoints (a DAG fan-in) and crafts once; the
//! diagonal of each 2 × 2 matrix is the white-box result of the same sweep, image by image; each
//! off-diagonal cell equals a direct computation (`agent eval --judge`: examples crafted on the
//! source, judged by the target), image by image; the report's matrices and black-box boards
//! carry those numbers.

mod common;

use std::path::Path;
use std::process::Command;

use beard_proto::v1::{AttackShard, AttackSpec, EvaluationMode};
use common::*;

const IMAGES: u32 = 200;
const CHECKPOINTS: [(&str, &str); 2] =
    [("DC", "DC_ConvNet_CIFAR10_50_None.pth"), ("DM", "DM_ConvNet_CIFAR10_50_None.pth")];

fn sweep(data: &Path) -> String {
    let pool = data.join("model_pool");
    let methods: String = CHECKPOINTS
        .iter()
        .map(|(method, file)| {
            format!("  {method}:\n    checkpoints: {{ cifar10: {{ 50: {} }} }}\n", pool.join(file).display())
        })
        .collect();
    format!(
        "name: transfer\ndatasets:\n  cifar10: {{ root: {} }}\nmethods:\n{methods}ipc: [50]\n\
         attacks:\n  fgsm: {{}}\ntransfer:\n  attacks:\n    fgsm: {{}}\n\
         evaluation: {{ test_samples: {IMAGES}, batch_size: 250, modes: [standard, beard-compat] }}\n",
        data.join("cifar-10-batches-bin").display()
    )
}

/// `agent eval --judge`: FGSM crafted on `source`, judged by `target`, image by image.
fn direct(data: &Path, source: &str, target: &str, targeted: bool, mode: EvaluationMode) -> anyhow::Result<Vec<bool>> {
    let pool = data.join("model_pool");
    let mut command = Command::new(binary("agent"));
    command.arg("eval").arg("--checkpoint").arg(pool.join(source)).arg("--judge").arg(pool.join(target));
    command.args(["--dataset", "cifar10"]).arg("--data-dir").arg(data.join("cifar-10-batches-bin"));
    command.args(["--attack", "fgsm", "--n", &IMAGES.to_string(), "--batch-size", "250", "--json"]);
    if targeted {
        command.args(["--targeted", "next"]);
    }
    if mode == EvaluationMode::BeardCompat {
        command.args(["--mode", "beard-compat"]);
    }
    let output = command.env("OMP_NUM_THREADS", "2").output()?;
    anyhow::ensure!(output.status.success(), "agent eval failed: {}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let bits = report["attacks"][0]["transfer"][0]["adversarial_correct"].as_str().expect("per-image judgements");
    Ok(bits.chars().map(|bit| bit == '1').collect())
}

fn mode_of(spec: &AttackSpec) -> EvaluationMode {
    spec.evaluation.as_ref().map_or(EvaluationMode::Standard, |evaluation| evaluation.mode())
}

fn method(spec: &AttackSpec) -> &str {
    spec.train.as_ref().map_or("", |train| train.method.as_str())
}

fn adversarial_correct(shard: &AttackShard) -> Vec<bool> {
    shard.outcomes.iter().map(|outcome| outcome.adversarial_correct).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn transfer_matrices_have_the_white_box_diagonal_and_direct_off_diagonals() -> anyhow::Result<()> {
    let Some(data) = shared_data("transfer_matrices_have_the_white_box_diagonal_and_direct_off_diagonals") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("transfer.yaml");
    std::fs::write(&file, sweep(&data))?;
    let file = file.display().to_string();

    let dry = Command::new(binary("coordinator")).args(["submit", "--dry-run", &file]).output()?;
    let dry_out = text(&dry.stdout);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(dry_out.contains("0 train tasks, 2 model-pool entries, 8 attack tasks, 8 transfer tasks"), "{dry_out}");
    assert!(dry_out.contains("fgsm untargeted -> DM"), "{dry_out}");

    let coordinator = start_coordinator(dir.path(), 30.0)?;
    let _agent = start_agent(dir.path(), &coordinator, "agent-0")?;
    let submitted = coordinator_cli(&coordinator, &["submit", &file, "--wait"])?;
    let stdout = text(&submitted.stdout);
    assert!(submitted.status.success(), "{stdout}{}", text(&submitted.stderr));

    let conn = open_state(&coordinator.state)?;
    let sweep_id: String = conn.query_row("SELECT id FROM sweeps", [], |row| row.get(0))?;
    let inputs: u32 = conn.query_row("SELECT COUNT(*) FROM task_inputs", [], |row| row.get(0))?;
    assert_eq!(inputs, 8, "each transfer task waits for its one target's checkpoint too");
    let results = attack_results(&conn, &sweep_id)?;
    let (transfers, white_box): (Vec<_>, Vec<_>) =
        results.iter().partition(|(spec, _)| !spec.transfer_targets.is_empty());
    assert_eq!((transfers.len(), white_box.len()), (8, 8));

    let file_of = |name: &str| CHECKPOINTS.iter().find(|(method, _)| *method == name).map(|(_, file)| *file).unwrap();
    for (spec, shard) in &transfers {
        let (source, mode, targeted) = (method(spec), mode_of(spec), spec.targeted);
        let context = format!("{source} {mode:?} targeted={targeted}");
        let (_, own) = white_box
            .iter()
            .find(|(other, _)| method(other) == source && mode_of(other) == mode && other.targeted == targeted)
            .expect("the white-box task of the same setting");
        assert_eq!(shard.robust_accuracy, own.robust_accuracy, "{context}: the diagonal is the white-box result");
        assert_eq!(adversarial_correct(shard), adversarial_correct(own), "{context}: image by image");

        assert_eq!(shard.transfer.len(), 1, "{context}");
        let outcome = &shard.transfer[0];
        let target = spec.transfer_targets[0].train.as_ref().map(|train| train.method.as_str()).unwrap_or_default();
        assert_ne!(target, source);
        let judged = direct(&data, file_of(source), file_of(target), targeted, mode)?;
        assert_eq!(outcome.adversarial_correct, judged, "{context} -> {target}: the judge, image by image");
        let percent = 100.0 * judged.iter().filter(|&&correct| correct).count() as f64 / f64::from(IMAGES);
        assert_eq!(outcome.robust_accuracy, percent, "{context} -> {target}");
        assert!(
            outcome.robust_accuracy < outcome.clean_accuracy,
            "{context} -> {target}: the transferred examples hurt the target ({} vs {} clean)",
            outcome.robust_accuracy,
            outcome.clean_accuracy
        );
        println!("{context}: white-box {:.2} %, on {target} {:.2} %", shard.robust_accuracy, outcome.robust_accuracy);
    }

    let report = coordinator_cli(&coordinator, &["report", &sweep_id, "--format", "json"])?;
    assert!(report.status.success(), "{}", text(&report.stderr));
    let json: serde_json::Value = serde_json::from_slice(&report.stdout)?;
    let matrices = json["transfer"]["matrices"].as_array().expect("transfer matrices");
    assert_eq!(matrices.len(), 4, "two evaluation modes × two modes, one attack");
    for matrix in matrices {
        assert_eq!(matrix["sources"], serde_json::json!(["DC", "DM"]));
        assert_eq!(matrix["targets"], serde_json::json!(["DC", "DM"]));
        let mode =
            if matrix["evaluation"] == "beard-compat" { EvaluationMode::BeardCompat } else { EvaluationMode::Standard };
        let targeted = matrix["mode"] == "targeted";
        for (row, source) in ["DC", "DM"].into_iter().enumerate() {
            let (spec, shard) = transfers
                .iter()
                .find(|(spec, _)| method(spec) == source && mode_of(spec) == mode && spec.targeted == targeted)
                .expect("the transfer task of the row");
            let target_column = 1 - row;
            assert_eq!(matrix["cells"][row][row]["mean"].as_f64(), Some(shard.robust_accuracy));
            assert_eq!(matrix["cells"][row][target_column]["mean"].as_f64(), Some(shard.transfer[0].robust_accuracy));
            assert!(spec.transfer_targets.len() == 1);
        }
    }
    let boards = json["transfer"]["black_box"].as_array().expect("black-box boards");
    assert_eq!(boards.len(), 8, "one per target, evaluation mode and mode");

    let markdown = coordinator_cli(&coordinator, &["report", &sweep_id])?;
    let markdown = text(&markdown.stdout);
    assert!(
        markdown.contains("## Transfer attacks") && markdown.contains("| Source (row) / target (column) | DC | DM |"),
        "{markdown}"
    );
    assert!(markdown.contains("#### Target DM: cifar10, IPC 50, untargeted, beard-compat evaluation"), "{markdown}");
    Ok(())
}
