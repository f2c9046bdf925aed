//! A coordinator killed mid-sweep and restarted on its state directory resumes: nothing is
//! lost, nothing is counted twice, and the agents carry on without being restarted.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_killed_mid_sweep_resumes_from_its_state() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 4.0)?;
    let _agents =
        [start_agent(dir.path(), &coordinator, "agent-0")?, start_agent(dir.path(), &coordinator, "agent-1")?];
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, &small_sweep("restart", 60)).await?;

    // Let some, but not all, tasks finish.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = status(&mut client, &sweep).await?;
        if status.done >= 6 {
            anyhow::ensure!(status.state == "running", "the sweep finished before the restart: {status:?}");
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no progress: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let coordinator = restart_coordinator(coordinator, dir.path(), 4.0)?;

    let mut client = control(&coordinator).await?;
    let status = wait_finished(&mut client, &sweep, Duration::from_secs(600)).await?;
    assert_eq!((status.state.as_str(), status.failed, status.done), ("completed", 0, status.total), "{status:?}");
    let conn = open_state(&coordinator.state)?;
    let (tasks, results, wrong) = result_accounting(&conn, &sweep)?;
    assert_eq!((tasks, results, wrong), (40, 40, 0), "every task has exactly one accepted result");
    let report =
        client.report(beard_proto::v1::ReportRequest { sweep_id: sweep, ..Default::default() }).await?.into_inner();
    let json: serde_json::Value = serde_json::from_str(&report.json)?;
    assert_eq!(json["results"], 32, "every attack shard is in the report");
    Ok(())
}
