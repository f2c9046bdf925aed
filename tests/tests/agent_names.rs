//! One live process per agent name, with real processes: same-named agents no longer take the
//! name from each other in turn (which once kept every completion from being accepted), a second
//! agent on a work dir stops at once, and an agent whose name was taken over while it was silent
//! stops instead of taking it back.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const TTL_SECS: f64 = 3.0;

/// The generation that holds agent name `name` in the coordinator's store.
fn holder(state: &Path, name: &str) -> anyhow::Result<Option<String>> {
    let conn = open_state(state)?;
    let mut stmt = conn.prepare("SELECT generation FROM agents WHERE name = ?1")?;
    let mut rows = stmt.query([name])?;
    Ok(match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    })
}

/// The generation that holds `name` once one other than `not` does. The coordinator writes its
/// address only once its store is open, so a failed read is an error, not "not yet".
async fn wait_for_holder(state: &Path, name: &str, not: Option<&str>) -> anyhow::Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(generation) = holder(state, name)?
            && Some(generation.as_str()) != not
        {
            return Ok(generation);
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no new holder of {name}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait for `process` to exit; its `error:` line (it must fail).
fn exit_error(process: &mut Process, dir: &Path, log: &str, within: Duration) -> anyhow::Result<String> {
    let status = process.wait_exit(within)?.unwrap_or_else(|| panic!("{log} is still running after {within:?}"));
    assert!(!status.success(), "{log} exits non-zero: {status:?}");
    let stderr = std::fs::read_to_string(dir.join(format!("{log}.log")))?;
    Ok(stderr.lines().find(|line| line.starts_with("error: ")).unwrap_or_else(|| panic!("{stderr}")).to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_agents_under_one_name_leave_one_holder_and_the_sweep_completes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), TTL_SECS)?;
    let first = start_agent_in(dir.path(), &coordinator, "twin", &dir.path().join("work-1"), "first")?;
    let generation = wait_for_holder(&coordinator.state, "twin", None).await?;

    let mut second = start_agent_in(dir.path(), &coordinator, "twin", &dir.path().join("work-2"), "second")?;
    let mut third = start_agent_in(dir.path(), &coordinator, "twin", &dir.path().join("work-3"), "third")?;
    let mut same_dir = start_agent_in(dir.path(), &coordinator, "other", &dir.path().join("work-1"), "same-dir")?;
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, &small_sweep("one-name", 20)).await?;

    // A second process on a work dir stops at once, naming the first.
    let line = exit_error(&mut same_dir, dir.path(), "same-dir", Duration::from_secs(10))?;
    let work = dir.path().join("work-1");
    assert_eq!(
        line,
        format!(
            "error: the work dir {} is in use by another agent process (pid {}, agent \"twin\"); give each agent its own --work-dir and --name",
            work.display(),
            first.pid()
        )
    );
    // The others wait once (the holder might have just died), then give up with the holder named.
    for (process, log) in [(&mut second, "second"), (&mut third, "third")] {
        let line = exit_error(process, dir.path(), log, Duration::from_secs(30))?;
        assert!(
            line.starts_with(&format!("error: registration refused: agent name \"twin\" is held by a live agent (generation {generation}, device ")),
            "{log}: {line}"
        );
        assert!(line.ends_with("give each agent its own --name"), "{log}: {line}");
    }

    let status = wait_finished(&mut client, &sweep, Duration::from_secs(600)).await?;
    assert_eq!((status.state.as_str(), status.failed), ("completed", 0), "{status:?}");
    let conn = open_state(&coordinator.state)?;
    let (tasks, results, wrong) = result_accounting(&conn, &sweep)?;
    assert_eq!((results, wrong), (tasks, 0), "every task has exactly one accepted result");
    let mut errors = conn.prepare("SELECT failure FROM task_errors")?;
    let failures: Vec<Vec<u8>> = errors.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let takeovers = failures.iter().filter(|f| String::from_utf8_lossy(f).contains("agent_restarted")).count();
    assert_eq!(takeovers, 0, "no lease was lost to a name fight");
    assert_eq!(holder(&coordinator.state, "twin")?.as_deref(), Some(generation.as_str()), "the first kept the name");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_whose_name_was_taken_over_while_it_was_silent_stops() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), TTL_SECS)?;
    let mut sleeper = start_agent_in(dir.path(), &coordinator, "node", &dir.path().join("work-1"), "sleeper")?;
    let old = wait_for_holder(&coordinator.state, "node", None).await?;

    // Frozen (as a partitioned host would be): no heartbeats. A newcomer waits for the TTL to pass.
    signal(&sleeper, "-STOP")?;
    let _newcomer = start_agent_in(dir.path(), &coordinator, "node", &dir.path().join("work-2"), "newcomer")?;
    let new = wait_for_holder(&coordinator.state, "node", Some(&old)).await?;
    signal(&sleeper, "-CONT")?;

    let line = exit_error(&mut sleeper, dir.path(), "sleeper", Duration::from_secs(30))?;
    assert_eq!(
        line,
        format!("error: agent \"node\" generation {old} was replaced by a newer process under the same name; stopping")
    );
    assert_eq!(holder(&coordinator.state, "node")?, Some(new), "the newcomer keeps the name");
    Ok(())
}

fn signal(process: &Process, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill").args([signal, &process.pid().to_string()]).status()?;
    anyhow::ensure!(status.success(), "kill {signal} failed");
    Ok(())
}
