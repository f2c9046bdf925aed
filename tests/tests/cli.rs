//! The command lines as users run them: help, dry runs, rejected sweep files, and the build
//! properties operators rely on (no libtorch in the coordinator, libtorch_cuda in the agent).

mod common;

use std::process::{Command, Output};

use common::*;

fn run(binary: &str, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(common::binary(binary)).args(args).current_dir(workspace_root()).output()?)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dry_run_of_the_beard_grid_counts_570_train_and_5700_attack_tasks() -> anyhow::Result<()> {
    let output = run("coordinator", &["submit", "--dry-run", "examples/beard.yaml"])?;
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("570 train tasks, 5700 attack tasks"), "{stdout}");
    Ok(())
}

#[test]
fn every_command_has_help() -> anyhow::Result<()> {
    let commands: [(&str, &[&str]); 8] = [
        ("coordinator", &[]),
        ("coordinator", &["serve"]),
        ("coordinator", &["submit"]),
        ("coordinator", &["status"]),
        ("coordinator", &["cancel"]),
        ("coordinator", &["report"]),
        ("agent", &[]),
        ("agent", &["run"]),
    ];
    for (binary, args) in commands {
        let mut with_help = args.to_vec();
        with_help.push("--help");
        let output = run(binary, &with_help)?;
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{binary} {args:?} --help failed");
        assert!(stdout.contains("Usage:"), "{binary} {args:?}: {stdout}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_sweep_is_rejected_at_submit_with_its_line_and_field_and_nothing_is_stored() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 30.0)?;
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\ndatasets:\n  synthetic: {}\nmethods:\n  random: random\nipc: [1, 0]\nattacks:\n  fgsm: {}\n",
    )?;
    let token_file = coordinator.token_file();
    let output = run(
        "coordinator",
        &[
            "submit",
            bad.to_str().unwrap_or_default(),
            "--coordinator",
            &coordinator.url,
            "--token-file",
            token_file.to_str().unwrap_or_default(),
        ],
    )?;
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("bad.yaml:6:"), "the message names the line: {stderr}");
    assert!(stderr.contains("ipc"), "the message names the field: {stderr}");

    let mut client = control(&coordinator).await?;
    let sweeps = client.status(beard_proto::v1::StatusRequest::default()).await?.into_inner().sweeps;
    assert!(sweeps.is_empty(), "nothing was stored: {sweeps:?}");
    Ok(())
}

#[test]
fn the_coordinator_does_not_link_libtorch() -> anyhow::Result<()> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", "beard-coordinator", "--prefix", "none"])
        .current_dir(workspace_root())
        .output()?;
    let tree = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(tree.contains("beard-proto"), "cargo tree printed the dependencies: {tree}");
    assert!(!tree.contains("tch ") && !tree.contains("torch-sys"), "{tree}");
    Ok(())
}

#[test]
fn the_agent_links_libtorch_cuda_so_a_gpu_node_uses_its_cards() -> anyhow::Result<()> {
    let output = Command::new("ldd").arg(binary("agent")).output()?;
    let libraries = text(&output.stdout);
    assert!(libraries.contains("libtorch_cpu.so"), "{libraries}");
    assert!(libraries.contains("libtorch_cuda.so"), "the CUDA part of libtorch is linked: {libraries}");
    assert!(!libraries.contains("not found"), "every library resolves through the rpath: {libraries}");
    Ok(())
}

#[test]
fn an_unreachable_coordinator_is_reported_with_each_cause_once() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(); // closed again at once
    let url = format!("http://127.0.0.1:{port}");
    let output = run("coordinator", &["status", "--coordinator", &url])?;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    let line = stderr.lines().find(|line| line.starts_with("error: ")).unwrap_or_else(|| panic!("{stderr}"));
    let expected = format!("error: cannot reach the coordinator at {url} (is `coordinator serve` running?): ");
    assert!(line.starts_with(&expected), "{line}");
    let causes: Vec<&str> = line[expected.len()..].split(": ").collect();
    assert_eq!(causes, ["transport error", "tcp connect error", "Connection refused (os error 111)"], "{line}");
    Ok(())
}

#[test]
fn bench_distill_prints_dm_iterations_per_second() -> anyhow::Result<()> {
    let args = ["bench", "--distill", "dm", "--iterations", "2", "--batch-real", "8", "--ipc", "1", "--width", "8"];
    let output = Command::new(common::binary("agent")).args(args).env("OMP_NUM_THREADS", "2").output()?;
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let row = stdout.lines().find(|line| line.trim_end().ends_with(" dm")).expect("a dm row");
    let fields: Vec<&str> = row.split_whitespace().collect();
    let (per_second, seconds): (f64, f64) = (fields[0].parse()?, fields[1].parse()?);
    assert_eq!(fields[2], "2", "{stdout}");
    assert!(per_second > 0.0 && (per_second * seconds - 2.0).abs() < 0.05, "{stdout}");
    let refused =
        Command::new(common::binary("agent")).args(["bench", "--distill", "dm", "--attacks", "fgsm"]).output()?;
    assert!(!refused.status.success() && text(&refused.stderr).contains("cannot be used with"));
    Ok(())
}
