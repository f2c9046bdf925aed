//! Fault tolerance with real processes: an agent SIGKILLed in the middle of a task loses only
//! its lease, the task runs again elsewhere, and every task ends with exactly one result.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The task `agent` currently leases, if any.
fn leased_by(conn: &rusqlite::Connection, agent: &str) -> anyhow::Result<Option<String>> {
    let mut stmt = conn.prepare("SELECT id FROM tasks WHERE state = 'leased' AND lease_agent = ?1 LIMIT 1")?;
    let mut rows = stmt.query([agent])?;
    Ok(match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_killed_mid_task_loses_only_its_lease_and_the_sweep_completes_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 3.0)?;
    let mut victim = start_agent(dir.path(), &coordinator.url, "victim")?;
    let _survivor = start_agent(dir.path(), &coordinator.url, "survivor")?;
    let mut client = control(&coordinator.url).await?;
    // Long enough training that the victim is surely mid-task when it dies.
    let sweep = submit(&mut client, &small_sweep("faults", 400)).await?;

    let conn = open_state(&coordinator.state)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_task = loop {
        if let Some(task) = leased_by(&conn, "victim")? {
            break task;
        }
        anyhow::ensure!(Instant::now() < deadline, "the victim never leased a task");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    victim.kill();

    let status = wait_finished(&mut client, &sweep, Duration::from_secs(600)).await?;
    assert_eq!(status.state, "completed", "{status:?}");
    assert_eq!(status.failed, 0, "{status:?}");
    assert_eq!(status.done, status.total);

    let (tasks, results, wrong) = result_accounting(&conn, &sweep)?;
    assert_eq!(tasks, 40, "2 methods x 2 ipc x 2 seeds train tasks and 4 attack tasks each");
    assert_eq!(results, tasks, "every task has one accepted result");
    assert_eq!(wrong, 0, "no task has zero or several accepted results");

    let (winner, attempts): (String, u32) = conn.query_row(
        "SELECT r.agent, t.attempts FROM results r JOIN tasks t ON t.id = r.task_id WHERE r.task_id = ?1",
        [&killed_task],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    assert_eq!(winner, "survivor", "the killed agent's task was finished by the other agent");
    assert!(attempts >= 2, "the lost lease counted as an attempt (attempts = {attempts})");
    let expiries: u32 = conn.query_row(
        "SELECT COUNT(*) FROM task_errors WHERE task_id = ?1 AND agent = 'victim'",
        [&killed_task],
        |r| r.get(0),
    )?;
    assert_eq!(expiries, 1, "the lost lease was recorded once");
    Ok(())
}
