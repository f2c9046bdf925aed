//! Agent faults with real processes: an agent SIGKILLed in the middle of a task loses only its
//! lease; an agent sent SIGTERM stops leasing and finishes, or hands back, its task.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn agent_killed_mid_task_loses_only_its_lease_and_the_sweep_completes_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 3.0)?;
    let mut victim = start_agent(dir.path(), &coordinator, "victim")?;
    let _survivor = start_agent(dir.path(), &coordinator, "survivor")?;
    let mut client = control(&coordinator).await?;
    // Long enough training that the victim is surely mid-task when it dies.
    let sweep = submit(&mut client, &small_sweep("faults", 400)).await?;

    let conn = open_state(&coordinator.state)?;
    let killed_task = wait_for_lease(&conn, "victim", Duration::from_secs(60)).await?;
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

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_makes_an_agent_finish_its_task_and_stop_leasing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 5.0)?;
    let mut agent = start_agent_draining(dir.path(), &coordinator, "polite", 120.0)?;
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, &small_sweep("drain-finish", 200)).await?;
    let conn = open_state(&coordinator.state)?;
    let task = wait_for_lease(&conn, "polite", Duration::from_secs(60)).await?;
    agent.terminate()?;
    let exit = agent.wait_exit(Duration::from_secs(120))?.expect("the agent exits after draining");
    assert!(exit.success(), "a drained agent exits cleanly: {exit:?}");
    let winner: String = conn.query_row("SELECT agent FROM results WHERE task_id = ?1", [&task], |r| r.get(0))?;
    assert_eq!(winner, "polite", "the running task was finished and delivered");
    let leased_after: u32 = conn.query_row("SELECT COUNT(*) FROM results WHERE agent = 'polite'", [], |r| r.get(0))?;
    assert_eq!(leased_after, 1, "no further task was leased after SIGTERM");
    let status = status(&mut client, &sweep).await?;
    assert_eq!((status.leased, status.failed), (0, 0), "{status:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_a_short_drain_timeout_hands_the_task_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 5.0)?;
    let mut agent = start_agent_draining(dir.path(), &coordinator, "hasty", 0.5)?;
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, &small_sweep("drain-hand-back", 5000)).await?;
    let conn = open_state(&coordinator.state)?;
    let task = wait_for_lease(&conn, "hasty", Duration::from_secs(60)).await?;
    agent.terminate()?;
    let exit = agent.wait_exit(Duration::from_secs(60))?.expect("the agent exits after its drain timeout");
    assert!(exit.success(), "{exit:?}");
    let (state, results): (String, u32) = conn.query_row(
        "SELECT state, (SELECT COUNT(*) FROM results WHERE task_id = tasks.id) FROM tasks WHERE id = ?1",
        [&task],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    assert_eq!((state.as_str(), results), ("pending", 0), "the task went back to the queue at once");
    let failure: Vec<u8> =
        conn.query_row("SELECT failure FROM task_errors WHERE task_id = ?1", [&task], |r| r.get(0))?;
    assert!(String::from_utf8_lossy(&failure).contains("cancelled"), "the hand-back is recorded as such");
    assert_eq!(status(&mut client, &sweep).await?.failed, 0);
    Ok(())
}
