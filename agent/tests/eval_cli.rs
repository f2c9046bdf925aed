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
