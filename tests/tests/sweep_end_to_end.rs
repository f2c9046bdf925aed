//! One sweep end to end with real processes: `coordinator serve`, two `agent run` processes on
//! loopback, a small synthetic sweep, and the report checked against an independent
//! recomputation of RR / AE / CREI from the stored shards.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use beard_coordinator::metrics::{self, AttackObservation, MetricOptions, SettingObservation, stats};
use beard_proto::describe::attack_name;
use beard_proto::v1::ReportRequest;
use common::*;
use serde_json::Value;

/// Per (method, ipc, targeted): per attack, per seed: (clean %, robust %, clean s, attack s).
type Raw = BTreeMap<(String, u32, bool), BTreeMap<String, BTreeMap<u32, (f64, f64, f64, f64)>>>;

fn stored_shards(conn: &rusqlite::Connection, sweep: &str) -> anyhow::Result<Raw> {
    let mut raw = Raw::new();
    for (attack, shard) in attack_results(conn, sweep)? {
        let train = attack.train.clone().unwrap_or_default();
        let name = attack.attack.as_ref().map(attack_name).unwrap_or("none").to_owned();
        let cell = (shard.clean_accuracy, shard.robust_accuracy, shard.clean_seconds, shard.attack_seconds);
        raw.entry((train.method, train.ipc, attack.targeted))
            .or_default()
            .entry(name)
            .or_default()
            .insert(train.seed, cell);
    }
    Ok(raw)
}

/// The clean time of a (method, ipc): the smaller of the mean clean times of its two modes.
fn clean_time(raw: &Raw, method: &str, ipc: u32) -> f64 {
    [false, true]
        .iter()
        .filter_map(|targeted| raw.get(&(method.to_owned(), ipc, *targeted)))
        .map(|attacks| stats::mean(&attacks.values().flat_map(|seeds| seeds.values().map(|c| c.2)).collect::<Vec<_>>()))
        .fold(f64::INFINITY, f64::min)
}

fn observation(raw: &Raw, key: &(String, u32, bool)) -> SettingObservation {
    let attacks = &raw[key];
    let per_seed_clean: BTreeMap<u32, f64> =
        attacks.values().flat_map(|seeds| seeds.iter().map(|(seed, c)| (*seed, c.0))).collect();
    SettingObservation {
        clean_accuracy: stats::mean(&per_seed_clean.values().copied().collect::<Vec<_>>()),
        clean_time: clean_time(raw, &key.0, key.1),
        attacks: attacks
            .values()
            .map(|seeds| AttackObservation {
                robust_accuracy: stats::mean(&seeds.values().map(|c| c.1).collect::<Vec<_>>()),
                time: stats::mean(&seeds.values().map(|c| c.3).collect::<Vec<_>>()),
            })
            .collect(),
    }
}

fn number(value: &Value, field: &str) -> f64 {
    value[field].as_f64().unwrap_or_else(|| panic!("{field} is not a number in {value}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_sweep_completes_once_per_task_and_its_report_matches_the_shards() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 10.0)?;
    let _agents =
        [start_agent(dir.path(), &coordinator, "agent-0")?, start_agent(dir.path(), &coordinator, "agent-1")?];
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, &small_sweep("end-to-end", 30)).await?;
    let status = wait_finished(&mut client, &sweep, Duration::from_secs(900)).await?;
    assert_eq!((status.state.as_str(), status.failed), ("completed", 0), "{status:?}");

    // Every task completed exactly once.
    let conn = open_state(&coordinator.state)?;
    let (tasks, results, wrong) = result_accounting(&conn, &sweep)?;
    assert_eq!(tasks, 8 + 32);
    assert_eq!((results, wrong), (tasks, 0));

    let raw = stored_shards(&conn, &sweep)?;
    for ((_, _, targeted), attacks) in &raw {
        for seeds in attacks.values() {
            for (clean, robust, _, _) in seeds.values() {
                assert!((0.0..=100.0).contains(clean) && (0.0..=100.0).contains(robust));
                if !targeted {
                    assert!(robust <= clean, "untargeted robust accuracy {robust} > clean {clean}");
                }
            }
        }
    }

    let report = client.report(ReportRequest { sweep_id: sweep.clone(), ..Default::default() }).await?.into_inner();
    let json: Value = serde_json::from_str(&report.json)?;
    let leaderboards = json["leaderboards"].as_array().cloned().unwrap_or_default();
    assert_eq!(leaderboards.len(), 4, "2 IPCs x 2 modes");
    let options = MetricOptions::default();
    let mut cells = 0;
    for board in &leaderboards {
        let ipc = board["ipc"].as_u64().unwrap_or_default() as u32;
        let targeted = board["mode"].as_str() == Some("targeted");
        let rows = board["rows"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 2, "both methods are on the board: {board}");
        for row in &rows {
            let method = row["method"].as_str().unwrap_or_default().to_owned();
            assert_eq!(row["complete"], Value::Bool(true), "{row}");
            assert_eq!(row["attacks"].as_array().map(Vec::len), Some(2), "fgsm and pgd: {row}");
            let expected = metrics::evaluate(&observation(&raw, &(method.clone(), ipc, targeted)), &options);
            for (field, want) in [("rr", expected.rr), ("ae", expected.ae), ("crei", expected.crei)] {
                let got = number(row, field);
                assert!((got - want).abs() < 1e-9, "{method} ipc {ipc} targeted {targeted}: {field} {got} != {want}");
            }
            cells += 1;
        }
    }
    assert_eq!(cells, 8, "every (method, ipc, mode) cell is in the report");
    assert!(report.markdown.contains("random-b"), "{}", report.markdown);
    assert_eq!(json["multi_ipc"].as_array().map(Vec::len), Some(1), "one multi-IPC table for synthetic");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_cannot_run_fails_with_a_typed_error_that_status_shows() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("broken.pt"), b"not a torch.save archive")?;
    let coordinator = start_coordinator(dir.path(), 10.0)?;
    let _agent = start_agent(dir.path(), &coordinator, "agent-0")?;
    let mut client = control(&coordinator).await?;
    let yaml = format!(
        "name: broken\npool_dir: {}\ndatasets:\n  synthetic: {{}}\n\
         methods:\n  broken:\n    files: {{ synthetic: {{ 1: broken.pt }} }}\n    stored: pixels\n\
         ipc: [1]\nattacks:\n  fgsm: {{}}\ntargeted: [false]\nseeds: 1\n\
         training: {{ epochs: 2 }}\nmodel: {{ width: 8 }}\nevaluation: {{ test_samples: 16 }}\n",
        dir.path().display()
    );
    let sweep = submit(&mut client, &yaml).await?;
    let status = wait_finished(&mut client, &sweep, Duration::from_secs(120)).await?;
    assert_eq!((status.done, status.failed), (0, 2), "the train task failed, and with it its attack: {status:?}");
    let codes: Vec<(String, beard_proto::v1::ErrorClass)> = status
        .errors
        .iter()
        .filter_map(|e| e.failure.as_ref())
        .map(|failure| (failure.code.clone(), failure.class()))
        .collect();
    assert!(codes.contains(&("invalid_distilled_set".to_owned(), beard_proto::v1::ErrorClass::Permanent)), "{codes:?}");
    assert!(codes.iter().any(|(code, _)| code == beard_proto::failure::codes::DEPENDENCY_FAILED), "{codes:?}");

    let output = std::process::Command::new(binary("coordinator"))
        .args(["status", &sweep, "--coordinator", &coordinator.url, "--token-file"])
        .arg(coordinator.token_file())
        .output()?;
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("invalid_distilled_set (permanent)"), "{printed}");
    assert!(printed.contains("broken.pt"), "the error names the file: {printed}");

    let output = std::process::Command::new(binary("coordinator"))
        .args(["agents", "--coordinator", &coordinator.url, "--token-file"])
        .arg(coordinator.token_file())
        .output()?;
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.starts_with("agent-0  cpu"), "{printed}");
    assert!(printed.contains("alive") && printed.contains("idle"), "{printed}");
    Ok(())
}
