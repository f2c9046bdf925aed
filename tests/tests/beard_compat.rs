//! A sweep evaluating both modes, `standard` and `beard-compat`, end to end through a real
//! coordinator and agent: every attack task runs once per mode, the `beard-compat` tasks carry
//! the reference code's settings (PGD step 2/225 without random start) and its targets
//! ((y + 1) % 10), its budget in normalized units leaves at least the standard robust accuracy,
//! and the report shows both modes, labelled, side by side.

mod common;

use beard_proto::describe::attack_name;
use beard_proto::v1::{EvaluationMode, ReportRequest, attack_config};
use common::*;
use serde_json::Value;

const SWEEP: &str = r#"name: both-modes
datasets:
  synthetic: {}
methods:
  random: random
ipc: [5]
attacks:
  fgsm: {}
  pgd: { steps: 5, random_start: true }
targeted: [false, true]
seeds: 1
training: { optimizer: adam, lr: 0.001, epochs: 20, batch_size: 64, weight_decay: 0, lr_schedule: constant, aug: none }
model: { width: 8 }
evaluation: { test_samples: 64, batch_size: 32, target_policy: least-likely, modes: [standard, beard-compat] }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_in_both_modes_reports_them_side_by_side() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let CompletedSweep { coordinator, agent: _agent, mut client, sweep } = complete_sweep(dir.path(), SWEEP).await?;

    // One train task, then 2 attacks x 2 target modes x 2 evaluation modes.
    let conn = open_state(&coordinator.state)?;
    assert_eq!(result_accounting(&conn, &sweep)?, (1 + 8, 1 + 8, 0));

    let mut untargeted = Vec::new();
    for (spec, shard) in attack_results(&conn, &sweep)? {
        let mode = spec.evaluation.as_ref().map_or(EvaluationMode::Standard, |evaluation| evaluation.mode());
        let name = spec.attack.as_ref().map(attack_name).unwrap_or("none");
        println!(
            "{name:<5} {:<10} {:<12} clean {:5.1}%  robust {:5.1}%",
            if spec.targeted { "targeted" } else { "untargeted" },
            beard_proto::evaluation::mode_name(mode),
            shard.clean_accuracy,
            shard.robust_accuracy
        );
        if let Some(attack_config::Attack::Pgd(pgd)) = spec.attack.as_ref().and_then(|config| config.attack.as_ref()) {
            let expected = match mode {
                EvaluationMode::Standard => (2.0 / 255.0, true),
                EvaluationMode::BeardCompat => (2.0 / 225.0, false),
            };
            assert_eq!((pgd.alpha, pgd.random_start), expected, "{mode:?}");
        }
        if spec.targeted {
            let reference = shard.outcomes.iter().all(|outcome| outcome.target == (outcome.label + 1) % 10);
            assert_eq!(reference, mode == EvaluationMode::BeardCompat, "{name} {mode:?}: targets");
        } else {
            untargeted.push((name.to_owned(), mode, shard.clean_accuracy, shard.robust_accuracy));
        }
    }
    for (name, mode, clean, robust) in untargeted.iter().filter(|(_, mode, ..)| *mode == EvaluationMode::BeardCompat) {
        let standard = untargeted.iter().find(|(other, mode, ..)| other == name && *mode == EvaluationMode::Standard);
        let (_, _, standard_clean, standard_robust) = standard.expect("the standard twin ran");
        assert_eq!(clean, standard_clean, "{name}: one model, one clean accuracy");
        assert!(robust >= standard_robust, "{name} {mode:?}: {robust}% below standard {standard_robust}%");
    }

    let report = client.report(ReportRequest { sweep_id: sweep.clone(), ..Default::default() }).await?.into_inner();
    let json: Value = serde_json::from_str(&report.json)?;
    let mut evaluations: Vec<&str> = json["leaderboards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|board| board["evaluation"].as_str())
        .collect();
    evaluations.sort_unstable();
    evaluations.dedup();
    assert_eq!(evaluations, ["beard-compat", "standard"], "every leaderboard names its mode:\n{}", report.json);
    for label in ["standard", "beard-compat"] {
        assert!(report.markdown.contains(label), "{label} missing from the report:\n{}", report.markdown);
    }
    println!("{}", report.markdown);
    Ok(())
}
