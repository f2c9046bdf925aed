//! Distillation as a task kind, with real processes: a sweep with a `distill: dm` method runs
//! distill -> train -> attack through the coordinator and agents; an agent killed in the middle of
//! a distillation leaves a snapshot that another agent resumes from, and the set it ends with is,
//! bit for bit, the set an uninterrupted run learns. The stored set is DC-bench's file, which
//! PyTorch reads as it reads the released ones.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use beard_proto::blob::Assembler;
use beard_proto::v1::{DistillResult, FetchOutputRequest, TrainResult};
use common::*;
use prost::Message;

/// One DM set (IPC 1 of `synthetic`, from noise) long enough to be killed in the middle of, one
/// model trained on it, one attack.
fn distill_sweep(name: &str) -> String {
    format!(
        r#"name: {name}
datasets:
  synthetic: {{}}
methods:
  DM: {{ distill: {{ method: dm, iterations: 400, batch_real: 16, init: noise }} }}
ipc: [1]
attacks:
  fgsm: {{}}
targeted: [false]
seeds: 1
training: {{ optimizer: adam, lr: 0.001, epochs: 20, batch_size: 64, weight_decay: 0, lr_schedule: constant, aug: none }}
model: {{ width: 16 }}
evaluation: {{ test_samples: 64, batch_size: 64 }}
"#
    )
}

/// Snapshots every 0.3 s, so the test sees one long before the distillation ends.
fn snapshot_often() -> Vec<String> {
    vec!["--snapshot-every-secs".into(), "0.3".into()]
}

/// The distill task's accepted run record, set digest and attempts.
fn distill_result(state: &Path, sweep: &str, method: &str) -> anyhow::Result<(DistillResult, String, u32)> {
    let conn = open_state(state)?;
    let (record, digest, attempts): (Vec<u8>, String, u32) = conn.query_row(
        "SELECT r.shard, r.checkpoint_sha256, t.attempts FROM sweep_tasks st JOIN tasks t ON t.id = st.task_id
         JOIN results r ON r.task_id = t.id WHERE st.sweep_id = ?1 AND t.kind = 'distill'
         AND t.description LIKE '%/' || ?2 || '/%'",
        [sweep, method],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok((DistillResult::decode(record.as_slice())?, digest, attempts))
}

/// The iteration of the latest snapshot of `task`, once there is one.
async fn wait_for_snapshot(state: &Path, task: &str, timeout: Duration) -> anyhow::Result<u32> {
    let conn = open_state(state)?;
    let deadline = Instant::now() + timeout;
    loop {
        let iteration: Option<u32> =
            conn.query_row("SELECT iteration FROM snapshots WHERE task_id = ?1", [task], |r| r.get(0)).ok();
        if let Some(iteration) = iteration {
            return Ok(iteration);
        }
        anyhow::ensure!(Instant::now() < deadline, "no snapshot of {task} arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The progress `status` shows for the victim's running task, once it reported some.
async fn wait_for_progress(client: &mut Control, sweep: &str, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let running = status(client, sweep).await?.running;
        if let Some(task) = running.iter().find(|task| task.agent == "victim" && !task.progress.is_empty()) {
            anyhow::ensure!(task.description.starts_with("distill "), "{task:?}");
            return Ok(task.progress.clone());
        }
        anyhow::ensure!(Instant::now() < deadline, "no progress shown: {running:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_distillation_resumes_from_its_snapshot_and_learns_the_uninterrupted_set() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 3.0)?;
    let mut victim = start_agent_with(dir.path(), &coordinator, &coordinator.url, "victim", &snapshot_often())?;
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, &distill_sweep("distill-resume")).await?;

    let conn = open_state(&coordinator.state)?;
    let task = wait_for_lease(&conn, "victim", Duration::from_secs(60)).await?;
    let kind: String = conn.query_row("SELECT kind FROM tasks WHERE id = ?1", [&task], |r| r.get(0))?;
    assert_eq!(kind, "distill", "the distill task goes first");
    let progress = wait_for_progress(&mut client, &sweep, Duration::from_secs(120)).await?;
    assert!(progress.contains("/400: loss "), "status shows the iteration and loss: {progress:?}");
    let snapshot = wait_for_snapshot(&coordinator.state, &task, Duration::from_secs(120)).await?;
    victim.kill();
    let _survivor = start_agent_with(dir.path(), &coordinator, &coordinator.url, "survivor", &snapshot_often())?;

    let finished = wait_finished(&mut client, &sweep, Duration::from_secs(600)).await?;
    assert_eq!((finished.state.as_str(), finished.failed), ("completed", 0), "{finished:?}");
    assert_eq!((finished.done, finished.total), (3, 3), "distill, train, attack");
    let (record, resumed_digest, attempts) = distill_result(&coordinator.state, &sweep, "DM")?;
    assert!(attempts >= 2, "the killed attempt counted ({attempts})");
    assert!(
        record.resumed_from >= snapshot && record.resumed_from < 400,
        "the survivor resumed from a snapshot (iteration {}), not from 0; the first arrived at {snapshot}",
        record.resumed_from
    );
    assert!(record.final_loss.is_finite() && record.seconds > 0.0, "{record:?}");
    let remaining: u32 = conn.query_row("SELECT COUNT(*) FROM snapshots", [], |r| r.get(0))?;
    assert_eq!(remaining, 0, "a finished task's snapshot is dropped");
    let blobs = std::fs::read_dir(coordinator.state.join("blobs"))?.count();
    assert_eq!(blobs, 3, "the set in two encodings and the model's checkpoint; no snapshot state is left");
    let attacks = attack_results(&conn, &sweep)?;
    assert_eq!(attacks.len(), 1);
    assert_eq!(attacks[0].1.samples, 64, "the model trained on the learned set was attacked");

    // The same sweep, uninterrupted, on a fresh coordinator: the same set, bit for bit.
    let fresh = tempfile::tempdir()?;
    let uninterrupted = complete_sweep(fresh.path(), &distill_sweep("distill-resume")).await?;
    let (record, digest, attempts) = distill_result(&uninterrupted.coordinator.state, &uninterrupted.sweep, "DM")?;
    assert_eq!((attempts, record.resumed_from), (1, 0));
    assert_eq!(digest, resumed_digest, "the resumed run learned the uninterrupted run's set");

    // The stored set is DC-bench's layout, read by PyTorch, normalized images with IPC 1 labels.
    let set = coordinator.state.join("blobs").join(&resumed_digest);
    let check = format!(
        "import torch\n\
         f = torch.load({path:?}, weights_only=True)\n\
         images, labels = f['data'][0]\n\
         assert f['accs_all_exps'] == {{}}, f\n\
         assert images.dtype == torch.float32 and tuple(images.shape) == (10, 3, 32, 32), images.shape\n\
         assert labels.tolist() == list(range(10)), labels\n\
         assert images.min() < 0, 'normalized, not pixels'\n",
        path = set.display().to_string()
    );
    let output = std::process::Command::new(python()).arg("-c").arg(&check).output()?;
    assert!(output.status.success(), "torch.load of the set failed: {}", text(&output.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sets_larger_than_a_chunk_travel_both_ways_and_train_their_models() -> anyhow::Result<()> {
    // Herding at IPC 50: 500 images, 6 MB in each encoding, several chunks up and down. IDM's
    // 500 mosaics train their model as 2,000 decoded images.
    let yaml = r#"name: herding-50
datasets:
  synthetic: {}
methods:
  herding: { distill: { method: herding, epochs: 1 } }
  IDM: { distill: { method: idm, iterations: 2, batch_real: 8, net_num: 3, model_train_steps: 1, trained_bs: 16 } }
ipc: [50]
attacks:
  fgsm: {}
targeted: [false]
seeds: 1
training: { optimizer: adam, lr: 0.001, epochs: 2, batch_size: 128, weight_decay: 0, lr_schedule: constant, aug: none }
model: { width: 8 }
evaluation: { test_samples: 64, batch_size: 64 }
"#;
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 10.0)?;
    let _agent = start_agent(dir.path(), &coordinator, "agent")?;
    let mut client = control(&coordinator).await?;
    let sweep = submit(&mut client, yaml).await?;
    let finished = wait_finished(&mut client, &sweep, Duration::from_secs(600)).await?;
    assert_eq!((finished.state.as_str(), finished.failed, finished.done), ("completed", 0, 6), "{finished:?}");
    let conn = open_state(&coordinator.state)?;
    let idm_model: Vec<u8> = conn.query_row(
        "SELECT r.shard FROM tasks t JOIN results r ON r.task_id = t.id WHERE t.kind = 'train'
         AND t.description LIKE '%/IDM/%'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(TrainResult::decode(idm_model.as_slice())?.train_images, 4 * 50 * 10, "decoded mosaics");
    let (record, digest, _) = distill_result(&coordinator.state, &sweep, "herding")?;
    let blobs = coordinator.state.join("blobs");
    let set = std::fs::read(blobs.join(&digest))?;
    assert!(set.len() > 4 * beard_proto::blob::CHUNK_BYTES, "{} bytes", set.len());
    assert_eq!(beard_proto::keys::sha256_hex(&set), digest);
    let safetensors = std::fs::read(blobs.join(&record.safetensors_sha256))?;
    assert_eq!(beard_proto::keys::sha256_hex(&safetensors), record.safetensors_sha256);
    let leftovers = std::fs::read_dir(&blobs)?
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.file_name().to_string_lossy().ends_with(".partial")));
    assert_eq!(leftovers.count(), 0, "no partial upload is left behind");

    // Down again, as a train task on another agent fetches it: in chunks, checked, whole.
    let mut agent = agent_client(&coordinator.url, Some(&coordinator.token()?)).await?;
    let task_id: String =
        conn.query_row("SELECT id FROM tasks WHERE kind = 'distill' AND description LIKE '%/herding/%'", [], |r| {
            r.get(0)
        })?;
    let mut chunks = agent.fetch_output(FetchOutputRequest { task_id }).await?.into_inner();
    let mut assembler = Assembler::new(Vec::new());
    let mut count = 0;
    while let Some(chunk) = chunks.message().await? {
        assembler.push(chunk)?;
        count += 1;
    }
    let (header, fetched) = assembler.finish()?;
    assert_eq!((header.sha256.as_str(), fetched.len()), (digest.as_str(), set.len()));
    assert_eq!(count, set.len().div_ceil(beard_proto::blob::CHUNK_BYTES), "one chunk per MiB");
    Ok(())
}
