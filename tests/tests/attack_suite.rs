//! BEARD's six attacks — FGSM, PGD, PGD-L2, C&W, DeepFool and AutoAttack — in every mode each
//! supports (DeepFool and AutoAttack untargeted only) through a real coordinator and agent, with
//! small sizes: every task completes once, every shard is sane, and the report has a column for
//! every attack.

mod common;

use beard_proto::describe::attack_name;
use beard_proto::v1::ReportRequest;
use common::*;
use serde_json::Value;

const SWEEP: &str = r#"name: attack-suite
datasets:
  synthetic: {}
methods:
  random: random
ipc: [5]
attacks:
  fgsm: {}
  pgd: { steps: 5 }
  pgdl2: { steps: 5 }
  cw: { steps: 10 }
  deepfool: { steps: 10, targeted: [false] }
  autoattack: { targeted: [false] }
targeted: [false, true]
seeds: 1
training: { optimizer: adam, lr: 0.001, epochs: 20, batch_size: 64, weight_decay: 0, lr_schedule: constant, aug: none }
model: { width: 8 }
evaluation: { test_samples: 32, batch_size: 32 }
"#;

const ATTACKS: [&str; 6] = ["fgsm", "pgd", "pgdl2", "cw", "deepfool", "autoattack"];

#[tokio::test(flavor = "multi_thread")]
async fn all_six_attacks_run_in_their_modes_and_the_report_shows_each() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let CompletedSweep { coordinator, agent: _agent, mut client, sweep } = complete_sweep(dir.path(), SWEEP).await?;

    // One train task, then 4 attacks in both modes and 2 untargeted only.
    let conn = open_state(&coordinator.state)?;
    let (tasks, results, wrong) = result_accounting(&conn, &sweep)?;
    assert_eq!((tasks, results, wrong), (1 + 4 * 2 + 2, 1 + 4 * 2 + 2, 0));

    let mut seen = Vec::new();
    for (attack, shard) in attack_results(&conn, &sweep)? {
        let name = attack.attack.as_ref().map(attack_name).unwrap_or("none");
        assert_eq!(shard.samples, 32, "{name}");
        assert_eq!(shard.outcomes.len(), 32, "{name}: one outcome per sample");
        if !attack.targeted {
            assert!(shard.robust_accuracy <= shard.clean_accuracy, "{name}: {shard:?}");
        }
        println!(
            "{name:<10} {:<10} clean {:5.1}%  robust {:5.1}%  {:.2} s",
            if attack.targeted { "targeted" } else { "untargeted" },
            shard.clean_accuracy,
            shard.robust_accuracy,
            shard.attack_seconds
        );
        seen.push((name.to_owned(), attack.targeted));
    }
    seen.sort();
    let mut expected: Vec<(String, bool)> = ATTACKS
        .iter()
        .flat_map(|name| {
            let modes: &[bool] = if matches!(*name, "deepfool" | "autoattack") { &[false] } else { &[false, true] };
            modes.iter().map(move |targeted| (name.to_string(), *targeted))
        })
        .collect();
    expected.sort();
    assert_eq!(seen, expected);

    let report = client.report(ReportRequest { sweep_id: sweep.clone(), ..Default::default() }).await?.into_inner();
    let json: Value = serde_json::from_str(&report.json)?;
    let boards = json["leaderboards"].as_array().unwrap_or_else(|| panic!("no leaderboards in {json}"));
    let mut modes: Vec<&str> = boards.iter().filter_map(|board| board["mode"].as_str()).collect();
    modes.sort_unstable();
    assert_eq!(modes, ["targeted", "untargeted"], "one board per mode: {json}");
    for board in boards {
        let columns: Vec<&str> = board["attacks"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let want: &[&str] = if board["mode"] == "targeted" { &ATTACKS[..4] } else { &ATTACKS };
        assert_eq!(columns, want, "{board}");
    }
    assert_eq!(
        markdown_attack_columns(&report.markdown),
        [ATTACKS.to_vec(), ATTACKS[..4].to_vec()],
        "{}",
        report.markdown
    );
    // The report says which device and precision computed the results: one CPU agent, fp32.
    let devices = json["devices"].as_array().unwrap_or_else(|| panic!("no devices in the report: {json}"));
    assert_eq!(devices.len(), 1, "{json}");
    let device = devices[0]["device"].as_str().unwrap_or_default();
    assert!(device.starts_with("cpu (") && device.ends_with(", fp32)"), "{device}");
    assert_eq!(devices[0]["results"], 10, "{json}");
    let line = format!("Computed on (device, precision): `{device}` (10 results).");
    assert!(report.markdown.contains(&line), "{line} missing:\n{}", report.markdown);
    Ok(())
}

/// The attack columns (between `Clean` and `RR`) of every leaderboard table in a markdown report.
fn markdown_attack_columns(markdown: &str) -> Vec<Vec<&str>> {
    markdown
        .lines()
        .filter(|line| line.starts_with("| # | Method |"))
        .map(|header| {
            let cells: Vec<&str> = header.split('|').map(str::trim).collect();
            let clean = cells.iter().position(|&c| c == "Clean").expect("a Clean column");
            let rr = cells.iter().position(|&c| c == "RR").expect("an RR column");
            cells[clean + 1..rr].to_vec()
        })
        .collect()
}
