//! `submit --wait`: follow a sweep until it finishes, with a progress bar and ETA on a terminal
//! and a plain line every few seconds otherwise (CI logs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use beard_proto::v1::{StatusRequest, SweepStatus};
use indicatif::{ProgressBar, ProgressStyle};

use super::Control;

const POLL: Duration = Duration::from_millis(500);
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Poll the sweep's status until no task is pending or running; returns the final status.
pub async fn wait_for(client: &mut Control, sweep_id: &str) -> anyhow::Result<SweepStatus> {
    let interactive = std::io::stderr().is_terminal();
    let bar = if interactive { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} tasks  eta {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut last_plain = Instant::now();
    loop {
        let status = client
            .status(StatusRequest { sweep_id: sweep_id.to_owned() })
            .await?
            .into_inner()
            .sweeps
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("the coordinator no longer knows sweep {sweep_id}"))?;
        let finished = status.done + status.failed;
        let mut note = if status.agents_alive == 0 {
            "waiting: no agents alive".to_owned()
        } else {
            format!("{} running, {} failed, {} agents", status.leased, status.failed, status.agents_alive)
        };
        // A long task's own progress (a distillation's iteration and loss), when one reports it.
        if let Some(task) = status.running.iter().find(|task| !task.progress.is_empty()) {
            note.push_str(&format!("; {}: {}", task.description, task.progress));
        }
        bar.set_length(u64::from(status.total));
        bar.set_position(u64::from(finished));
        bar.set_message(note.clone());
        if !interactive && last_plain.elapsed() >= PLAIN_EVERY {
            eprintln!("progress: {finished}/{} tasks finished; {note}", status.total);
            last_plain = Instant::now();
        }
        if status.state != "running" {
            bar.finish_and_clear();
            return Ok(status);
        }
        tokio::time::sleep(POLL).await;
    }
}
