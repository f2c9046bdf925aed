//! The Full-size baseline and adversarial training end to end with real processes: a sweep with
//! the `random` and `full` methods on `synthetic`, trained both with and without adversarial
//! training, run by a coordinator and two agents; its report has the Full-size board and rows and
//! the standard-vs-adversarial comparison, with numbers.

mod common;

use std::time::Duration;

use beard_proto::v1::ReportRequest;
use common::*;
use serde_json::Value;

const SWEEP: &str = r#"name: full-and-at
datasets:
  synthetic: {}
methods:
  random: random
  full: { full: { epochs: 1, batch_size: 256 } }
ipc: [2]
attacks:
  fgsm: { eps: 2/255 }
  pgd: { eps: 2/255, alpha: 0.5/255, steps: 3 }
targeted: [false]
seeds: 1
training:
  optimizer: adam
  lr: 0.001
  weight_decay: 0
  epochs: 10
  batch_size: 64
  lr_schedule: constant
  aug: none
  adversarial: { attack: pgd, eps: 2/255, step: 1/255, steps: 2 }
training_regimes: [standard, adversarial]
model: { width: 8 }
evaluation: { test_samples: 64, batch_size: 64 }
"#;

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn full_size_and_adversarially_trained_models_reach_the_report() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 10.0)?;
    let _agents =
        [start_agent(dir.path(), &coordinator, "agent-0")?, start_agent(dir.path(), &coordinator, "agent-1")?];
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, SWEEP).await?;
    let status = wait_finished(&mut client, &sweep, Duration::from_secs(900)).await?;
    assert_eq!((status.state.as_str(), status.failed), ("completed", 0), "{status:?}");
    // (random at IPC 2 + full once) x 2 regimes = 4 train tasks, each attacked by fgsm and pgd.
    let conn = open_state(&coordinator.state)?;
    let (tasks, results, wrong) = result_accounting(&conn, &sweep)?;
    assert_eq!((tasks, results, wrong), (4 + 8, 12, 0));

    let report = client.report(ReportRequest { sweep_id: sweep.clone(), ..Default::default() }).await?.into_inner();
    let json: Value = serde_json::from_str(&report.json)?;
    let boards: Vec<(String, String)> = json["leaderboards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|board| (board["ipc"].to_string(), board["training"].as_str().unwrap_or("standard").to_owned()))
        .collect();
    let expected = [("2", "standard"), ("\"full\"", "standard"), ("2", "adversarial"), ("\"full\"", "adversarial")];
    assert_eq!(boards, expected.map(|(ipc, training)| (ipc.to_owned(), training.to_owned())));

    let rows = json["multi_ipc"][0]["rows"].as_array().cloned().unwrap_or_default();
    let full_rows: Vec<&Value> = rows.iter().filter(|row| row["method"] == "full").collect();
    assert_eq!(full_rows.len(), 2, "a Full-size row per regime: {rows:?}");
    for row in &full_rows {
        assert_eq!(row["ipcs"], serde_json::json!(["full"]));
        assert_eq!(row["complete"], Value::Bool(true), "{row}");
    }

    let comparison = json["adversarial_training"].as_array().cloned().unwrap_or_default();
    assert_eq!(comparison.len(), 1, "one comparison table for synthetic");
    let at_rows = comparison[0]["rows"].as_array().cloned().unwrap_or_default();
    let keys: Vec<(String, String)> =
        at_rows.iter().map(|row| (row["method"].as_str().unwrap_or("").to_owned(), row["ipc"].to_string())).collect();
    assert_eq!(keys, [("random".to_owned(), "2".to_owned()), ("full".to_owned(), "\"full\"".to_owned())]);
    for row in &at_rows {
        for side in ["standard", "adversarial"] {
            let scores = &row[side];
            let clean = number(&scores["clean_accuracy"]["mean"]);
            assert!((0.0..=100.0).contains(&clean), "{side}: {row}");
            for score in ["rrm", "aem", "crei"] {
                assert!(number(&scores[score]).is_finite(), "{side} {score}: {row}");
            }
            assert_eq!(scores["complete"], Value::Bool(true), "{side}: {row}");
        }
        let change = number(&row["adversarial"]["crei"]) - number(&row["standard"]["crei"]);
        assert!((number(&row["crei_change"]) - change).abs() < 1e-9, "{row}");
    }

    assert!(report.markdown.contains("### Full-size, untargeted"), "{}", report.markdown);
    assert!(report.markdown.contains("### Adversarial training: standard (std) vs adversarial (AT)"));
    assert!(report.markdown.contains("| full | full | untargeted |"), "{}", report.markdown);
    assert!(report.csv.starts_with("table,dataset,ipc,mode,evaluation,training,"), "{}", report.csv);
    assert!(
        report.csv.contains("\nadversarial_training,synthetic,full,untargeted,standard,adversarial,,full,true,crei,")
    );
    Ok(())
}
