//! A sweep over the published model pool: BEARD's DC and DM checkpoints for CIFAR-10 at IPC 50,
//! submitted with `coordinator submit` as a user does (the CLI reads and uploads the files),
//! attacked by a real agent without any train task, and checked against `agent eval` on the same
//! checkpoints, image counts and attacks. A bad checkpoint is refused at submit with its place in
//! the sweep file, and nothing is stored.

mod common;

use std::path::Path;
use std::process::Command;

use beard_proto::describe::is_pooled;
use beard_proto::v1::{AttackShard, AttackSpec};
use common::*;

const CHECKPOINTS: [(&str, &str); 2] =
    [("DC", "DC_ConvNet_CIFAR10_50_None.pth"), ("DM", "DM_ConvNet_CIFAR10_50_None.pth")];
/// The test images FGSM runs on. The checkpoints' accuracies on all 10,000 are checked by
/// `agent/tests/real_data.rs` and `eval_cli.rs`; here the sweep must agree with `agent eval`.
const FGSM_IMAGES: u32 = 2_000;

/// Both checkpoints as the methods of a sweep running `attacks` on the first `test_samples` test
/// images.
fn sweep(name: &str, data: &Path, attacks: &str, test_samples: u32) -> String {
    let pool = data.join("model_pool");
    let method = |(method, file): (&str, &str)| {
        format!("  {method}:\n    checkpoints: {{ cifar10: {{ 50: {} }} }}\n", pool.join(file).display())
    };
    let methods: String = CHECKPOINTS.into_iter().map(method).collect();
    format!(
        "name: {name}\ndatasets:\n  cifar10: {{ root: {} }}\nmethods:\n{methods}ipc: [50]\nattacks:\n{attacks}\
         evaluation: {{ test_samples: {test_samples}, batch_size: 250 }}\n",
        data.join("cifar-10-batches-bin").display()
    )
}

/// `agent eval --json` of one checkpoint with the sweep's image count and chunk size.
fn agent_eval(data: &Path, file: &str, attack: &str, targeted: bool, images: u32) -> anyhow::Result<serde_json::Value> {
    let checkpoint = data.join("model_pool").join(file);
    let root = data.join("cifar-10-batches-bin");
    let mut command = Command::new(binary("agent"));
    command
        .arg("eval")
        .arg("--checkpoint")
        .arg(&checkpoint)
        .args(["--dataset", "cifar10"])
        .arg("--data-dir")
        .arg(&root);
    command.args(["--attack", attack, "--n", &images.to_string(), "--batch-size", "250", "--json"]);
    if targeted {
        command.args(["--targeted", "next"]);
    }
    let output = command.env("OMP_NUM_THREADS", "2").output()?;
    anyhow::ensure!(output.status.success(), "agent eval failed: {}", text(&output.stderr));
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn shard_of<'a>(results: &'a [(AttackSpec, AttackShard)], method: &str, targeted: bool) -> &'a AttackShard {
    let found = results.iter().find(|(spec, _)| {
        spec.targeted == targeted && spec.train.as_ref().is_some_and(|train| train.method == method && is_pooled(train))
    });
    &found.unwrap_or_else(|| panic!("no {method} result (targeted: {targeted})")).1
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_pool_is_attacked_as_it_is_and_agrees_with_agent_eval() -> anyhow::Result<()> {
    let Some(data) = shared_data("the_model_pool_is_attacked_as_it_is_and_agrees_with_agent_eval") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let full = dir.path().join("pool-fgsm.yaml");
    std::fs::write(&full, sweep("pool-fgsm", &data, "  fgsm: { targeted: [false] }\n", FGSM_IMAGES))?;
    let pgd_images = 100;
    let pgd = dir.path().join("pool-pgd.yaml");
    std::fs::write(&pgd, sweep("pool-pgd", &data, "  pgd: { steps: 10 }\n", pgd_images))?;

    // The dry run reads and checks the checkpoints and counts them; it needs no server.
    let dry = Command::new(binary("coordinator")).args(["submit", "--dry-run"]).arg(&full).output()?;
    let dry_out = text(&dry.stdout);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(dry_out.contains("0 train tasks, 2 model-pool entries, 2 attack tasks"), "{dry_out}");
    assert!(dry_out.contains("cifar10/DM/ipc50/pool:") && dry_out.contains("width 128, depth 3"), "{dry_out}");

    let coordinator = start_coordinator(dir.path(), 30.0)?;
    let _agent = start_agent(dir.path(), &coordinator, "agent-0")?;
    let full_path = full.display().to_string();
    let submitted = coordinator_cli(&coordinator, &["submit", &full_path, "--wait"])?;
    let stdout = text(&submitted.stdout);
    assert!(submitted.status.success(), "{stdout}{}", text(&submitted.stderr));
    assert!(stdout.contains("0 train tasks, 2 model-pool entries, 2 attack tasks"), "{stdout}");
    let pgd_path = pgd.display().to_string();
    let again = coordinator_cli(&coordinator, &["submit", &pgd_path, "--wait"])?;
    let again_out = text(&again.stdout);
    assert!(again.status.success(), "{again_out}{}", text(&again.stderr));
    assert!(again_out.contains("0 train tasks, 2 model-pool entries, 4 attack tasks, 2 already done"), "{again_out}");

    let conn = open_state(&coordinator.state)?;
    let trains: u32 = conn.query_row("SELECT COUNT(*) FROM tasks WHERE kind = 'train'", [], |row| row.get(0))?;
    assert_eq!(trains, 0, "a model-pool sweep trains nothing");
    let sweeps: Vec<String> = conn
        .prepare("SELECT id FROM sweeps ORDER BY created_ms")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let (full_results, pgd_results) = (attack_results(&conn, &sweeps[0])?, attack_results(&conn, &sweeps[1])?);

    let mut clean_cells = Vec::new();
    for (method, file) in CHECKPOINTS {
        let shard = shard_of(&full_results, method, false);
        assert_eq!(shard.samples, FGSM_IMAGES, "{method}: the sweep's image count");
        let clean_correct = shard.outcomes.iter().filter(|outcome| outcome.clean_correct).count() as u64;
        let direct = agent_eval(&data, file, "fgsm", false, FGSM_IMAGES)?;
        assert_eq!(direct["correct"].as_u64(), Some(clean_correct), "{method}: {direct}");
        assert!(clean_correct > u64::from(FGSM_IMAGES) / 2, "{method}: {clean_correct} correct, not an IPC-50 model");
        let fgsm = direct["attacks"][0]["accuracy"].as_f64().expect("fgsm accuracy");
        assert_eq!(shard.robust_accuracy, fgsm, "{method}: FGSM through the sweep and through agent eval");
        println!(
            "{method}: clean {:.2} %, FGSM {fgsm:.2} % on {FGSM_IMAGES} images (sweep = agent eval)",
            shard.clean_accuracy
        );
        clean_cells.push(format!("| {:.2} ± 0.00 |", shard.clean_accuracy));

        for targeted in [false, true] {
            let shard = shard_of(&pgd_results, method, targeted);
            let direct = agent_eval(&data, file, "pgd:steps=10", targeted, pgd_images)?;
            let robust = direct["attacks"][0]["accuracy"].as_f64().expect("pgd accuracy");
            assert_eq!(shard.samples, pgd_images);
            assert_eq!(shard.robust_accuracy, robust, "{method} targeted={targeted}: PGD sweep vs agent eval");
            println!(
                "{method}: PGD-10 (targeted: {targeted}) {robust:.2} % on {pgd_images} images (sweep = agent eval)"
            );
        }
    }

    let report = coordinator_cli(&coordinator, &["report", &sweeps[0]])?;
    let markdown = text(&report.stdout);
    assert!(report.status.success(), "{}", text(&report.stderr));
    assert!(markdown.contains("| DM (model pool) |") && markdown.contains("| DC (model pool) |"), "{markdown}");
    assert!(clean_cells.iter().all(|cell| markdown.contains(cell.as_str())), "{clean_cells:?} in {markdown}");

    // A file that is no checkpoint is refused where the sweep names it, and nothing is stored.
    let bogus = dir.path().join("notes.pth");
    std::fs::write(&bogus, "these are notes, not weights")?;
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        sweep("bad", &data, "  fgsm: {}\n", 10)
            .replace(&data.join("model_pool").join(CHECKPOINTS[1].1).display().to_string(), "notes.pth"),
    )?;
    let bad_path = bad.display().to_string();
    let refused = coordinator_cli(&coordinator, &["submit", &bad_path])?;
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(&format!("{bad_path}:8:"))
            && stderr.contains("methods.DM.checkpoints.cifar10.50: notes.pth: not a checkpoint"),
        "{stderr}"
    );
    let stored: u32 = conn.query_row("SELECT COUNT(*) FROM sweeps", [], |row| row.get(0))?;
    assert_eq!(stored, 2, "the refused sweep left nothing behind");
    Ok(())
}
