//! `agent eval` as a user runs it: the real binary on the published model-pool checkpoints and
//! the exact CIFAR-10 test set, with `--json`.

mod common;

use std::path::Path;
use std::process::Command;

use common::files::shared_data;
use serde_json::Value;

/// Run `agent eval ARGS --json`; the parsed object, or the failure's stderr.
fn eval(args: &[&str]) -> Result<Value, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_agent"))
        .arg("eval")
        .args(args)
        .arg("--json")
        .env("OMP_NUM_THREADS", "2")
        .output()
        .expect("the agent binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(stderr);
    }
    serde_json::from_str(&stdout).map_err(|e| format!("not one JSON object ({e}): {stdout}\n{stderr}"))
}

fn number(value: &Value, field: &str) -> f64 {
    value[field].as_f64().unwrap_or_else(|| panic!("{field} is not a number in {value}"))
}

fn cifar10_root(data: &Path) -> String {
    data.join("cifar-10-batches-bin").display().to_string()
}

#[test]
fn model_pool_checkpoints_reach_their_documented_clean_accuracy_through_agent_eval() {
    let Some(data) = shared_data("model_pool_checkpoints_reach_their_documented_clean_accuracy_through_agent_eval")
    else {
        return;
    };
    let root = cifar10_root(&data);
    for (name, expected) in [("DC_ConvNet_CIFAR10_50_None.pth", 54.31), ("DM_ConvNet_CIFAR10_50_None.pth", 62.06)] {
        let checkpoint = data.join("model_pool").join(name).display().to_string();
        let report = eval(&["--checkpoint", &checkpoint, "--dataset", "cifar10", "--data-dir", &root])
            .unwrap_or_else(|stderr| panic!("{name}: {stderr}"));
        assert_eq!(report["n"], 10_000, "{report}");
        assert_eq!(report["mode"], "standard", "{report}");
        assert_eq!(report["dataset"], "cifar10", "{report}");
        assert_eq!(report["checkpoint"], checkpoint.as_str(), "{report}");
        let accuracy = number(&report, "clean_accuracy");
        assert!((accuracy - expected).abs() < 0.01, "{name}: {accuracy} % clean, SOURCES.md says {expected} %");
        assert_eq!(report["correct"].as_u64(), Some((expected * 100.0).round() as u64), "{report}");
        assert_eq!(report["attacks"].as_array().map(Vec::len), Some(0), "{report}");
    }
}

#[test]
fn attacks_report_robust_accuracy_and_times_and_bad_input_fails_clearly() {
    let Some(data) = shared_data("attacks_report_robust_accuracy_and_times_and_bad_input_fails_clearly") else {
        return;
    };
    let root = cifar10_root(&data);
    let checkpoint = data.join("model_pool/DC_ConvNet_CIFAR10_50_None.pth").display().to_string();
    let base = ["--checkpoint", checkpoint.as_str(), "--dataset", "cifar10", "--data-root", root.as_str()];
    let report = eval(
        &[&base[..], &["--n", "100", "--attack", "fgsm", "--attack", "pgd:steps=2", "--batch-size", "50"]].concat(),
    )
    .unwrap_or_else(|stderr| panic!("{stderr}"));
    assert_eq!(report["n"], 100, "{report}");
    let clean = number(&report, "clean_accuracy");
    assert!(clean > 30.0, "{report}");
    let attacks = report["attacks"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = attacks.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["fgsm", "pgd"], "{report}");
    for attack in &attacks {
        assert_eq!(attack["targeted"], false, "{attack}");
        let robust = number(attack, "accuracy");
        assert!(robust < clean, "an 8/255 attack leaves {robust} % of {clean} %: {attack}");
        assert!(number(attack, "seconds") > 0.0 && number(attack, "clean_seconds") > 0.0, "{attack}");
    }
    assert_eq!(attacks[1]["spec"], "pgd:eps=0.03137254901960784,alpha=0.00784313725490196,steps=2,random_start=false");

    let targeted = eval(&[&base[..], &["--n", "20", "--attack", "fgsm", "--targeted", "least-likely"]].concat())
        .unwrap_or_else(|stderr| panic!("{stderr}"));
    assert_eq!(targeted["attacks"][0]["targeted"], true, "{targeted}");

    let error = eval(&["--checkpoint", "/nonexistent/model.pth", "--dataset", "cifar10", "--data-dir", &root])
        .expect_err("a missing checkpoint fails");
    assert!(error.contains("/nonexistent/model.pth"), "{error}");
    let error = eval(&[&base[..], &["--width", "64"]].concat()).expect_err("a wrong width fails");
    assert!(error.contains("does not fit the model"), "{error}");
    let error = eval(&[&base[..], &["--attack", "fgsm:epsilon=1"]].concat()).expect_err("a bad spec fails");
    assert!(error.contains("epsilon"), "{error}");
}

/// The `error:` line `agent eval ARGS` ends with.
fn error_line(args: &[&str]) -> String {
    let stderr = eval(args).expect_err("the command fails");
    stderr.lines().find(|line| line.starts_with("error: ")).map(str::to_owned).unwrap_or_else(|| panic!("{stderr}"))
}

#[test]
fn a_file_that_is_no_checkpoint_and_a_missing_dataset_are_said_once_and_plainly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("passwd");
    std::fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n").expect("write");
    let text = text.display().to_string();
    assert_eq!(
        error_line(&["--checkpoint", &text, "--dataset", "synthetic"]),
        format!("error: {text}: not a checkpoint: not a PyTorch zip archive, a legacy torch.save file, or safetensors")
    );

    let empty = dir.path().join("empty").display().to_string();
    let line = error_line(&["--checkpoint", &text, "--dataset", "cifar10", "--data-dir", &empty]);
    let missing =
        format!("{empty}/data_batch_1.bin: no such file; get cifar10 with `agent datasets fetch cifar10 --to DIR`");
    let missing_test = missing.replace("data_batch_1", "test_batch");
    assert!(
        line.starts_with(&format!("error: {missing}")) || line.starts_with(&format!("error: {missing_test}")),
        "{line}"
    );
    assert!(line.ends_with("give DIR as --data-dir (the dataset's `root:` in a sweep)"), "{line}");
    assert!(!line.contains("os error"), "the cause is said once, in words: {line}");

    assert_eq!(
        error_line(&["--checkpoint", &text, "--dataset", "cifar10"]),
        "error: dataset cifar10 needs the directory of its files: give it as --data-dir (the dataset's `root:` in a \
         sweep); `agent datasets fetch cifar10 --to DIR` downloads them"
    );
}

/// Run one test of this binary in a child process with `env`; (passed, its output).
fn run_this_test(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command.args([name, "--exact", "--nocapture"]).env_remove("CI").env_remove("BEARD_REQUIRE_DATA");
    let output = command.envs(env.iter().copied()).output().expect("the test binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn missing_shared_data_fails_in_ci_and_skips_visibly_elsewhere() {
    let test = "model_pool_checkpoints_reach_their_documented_clean_accuracy_through_agent_eval";
    let missing = "/nonexistent/beard-data";
    for env in [[("CI", "true")], [("BEARD_REQUIRE_DATA", "1")]] {
        let (passed, output) = run_this_test(test, &[&env[..], &[("BEARD_DATA_DIR", missing)]].concat());
        assert!(!passed, "{env:?}: a missing data set fails the run:\n{output}");
        assert!(output.contains(&format!("no shared data at {missing}")), "{env:?}: names the path:\n{output}");
    }
    let (passed, output) = run_this_test(test, &[("BEARD_DATA_DIR", missing)]);
    assert!(passed && output.contains(&format!("SKIPPED {test}: no shared data at {missing}")), "{output}");
}
