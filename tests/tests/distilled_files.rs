//! A sweep whose methods point at distilled-set files runs end to end through the coordinator and
//! two agents: the DC result files in the shared data (stored normalized) next to the `random`
//! baseline, on the real CIFAR-10 test set.

mod common;

use std::time::Duration;

use beard_proto::v1::ReportRequest;
use common::*;
use serde_json::Value;

fn sweep(data: &std::path::Path) -> String {
    format!(
        r#"name: distilled-files
pool_dir: {distilled}
datasets:
  cifar10: {{ root: {root} }}
methods:
  DC:
    files: {{ cifar10: {{ 1: DC_CIFAR10_ConvNet_ipc1.res.pt, 10: DC_CIFAR10_ConvNet_ipc10.res.pt }} }}
    stored: normalized
  random: random
ipc: [1, 10]
attacks:
  fgsm: {{}}
targeted: [false]
seeds: 1
training: {{ optimizer: sgd, lr: 0.01, momentum: 0.9, weight_decay: 0.0005, epochs: 20, batch_size: 256, lr_schedule: constant, aug: none }}
model: {{ width: 16 }}
evaluation: {{ test_samples: 200, batch_size: 100 }}
"#,
        distilled = data.join("distilled").display(),
        root = data.join("cifar-10-batches-bin").display(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_over_distilled_set_files_completes_once_per_task_with_both_methods_reported() -> anyhow::Result<()> {
    let Some(data) = shared_data("a_sweep_over_distilled_set_files_completes_once_per_task_with_both_methods_reported")
    else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 10.0)?;
    let _agents =
        [start_agent(dir.path(), &coordinator, "agent-0")?, start_agent(dir.path(), &coordinator, "agent-1")?];
    let mut client = control(&coordinator).await?;
    let sweep_id = submit(&mut client, &sweep(&data)).await?;
    let status = wait_finished(&mut client, &sweep_id, Duration::from_secs(300)).await?;
    assert_eq!((status.state.as_str(), status.failed), ("completed", 0), "{status:?}");

    // 2 methods x 2 IPCs train tasks, one FGSM attack task each; every one accepted exactly once.
    let conn = open_state(&coordinator.state)?;
    let (tasks, results, wrong) = result_accounting(&conn, &sweep_id)?;
    assert_eq!((tasks, results, wrong), (8, 8, 0));

    let mut cells = Vec::new();
    for (attack, shard) in attack_results(&conn, &sweep_id)? {
        let train = attack.train.unwrap_or_default();
        assert_eq!(shard.samples, 200, "{} ipc {}", train.method, train.ipc);
        assert!(shard.robust_accuracy <= shard.clean_accuracy, "{shard:?}");
        cells.push((train.method, train.ipc));
    }
    cells.sort();
    let expected = [("DC", 1), ("DC", 10), ("random", 1), ("random", 10)].map(|(m, i)| (m.to_owned(), i));
    assert_eq!(cells, expected);

    let report = client.report(ReportRequest { sweep_id, ..Default::default() }).await?.into_inner();
    let json: Value = serde_json::from_str(&report.json)?;
    let boards = json["leaderboards"].as_array().cloned().unwrap_or_default();
    assert_eq!(boards.len(), 2, "one board per IPC: {json}");
    for board in &boards {
        let mut methods: Vec<&str> =
            board["rows"].as_array().into_iter().flatten().filter_map(|row| row["method"].as_str()).collect();
        methods.sort_unstable();
        assert_eq!(methods, ["DC", "random"], "{board}");
    }
    assert!(report.markdown.contains("DC") && report.markdown.contains("random"), "{}", report.markdown);
    Ok(())
}
