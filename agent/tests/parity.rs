//! Parity with torchattacks 3.5.1: the same ConvNet weights and images through our attacks and
//! through `scripts/parity/torchattacks_parity.py` in the project venv, chunk by chunk with the
//! same chunks and thread count.
//!
//! FGSM, PGD and PGD-L2 (no random start) are deterministic and compute the same float32
//! operations on both sides, so their robust accuracies must be equal and FGSM's adversarial
//! images equal up to float rounding. C&W and DeepFool may differ on a few samples near a
//! decision boundary: C&W runs 100 Adam steps whose rounding differs (our margin also reads
//! negative logits as they are, where torchattacks' reads them as 0) and its early abort compares
//! chunk costs that may then differ; DeepFool takes gradients of logit differences in one batched
//! backward pass per class, torchattacks per image and class, so a sample whose two best
//! candidate classes are nearly tied may pick the other one. They must agree within 2 points
//! (2 of 100 samples). C&W runs 30 steps rather than BEARD's 100 to keep the test short on two
//! CPU cores (torchattacks' C&W and per-image DeepFool are the slow part). The table is printed with `--nocapture`.
//!
//! The venv's Python comes from `BEARD_PYTHON` or `<workspace>/.venv/bin/python`; without it, or
//! without torchattacks in it, the test fails and says to run `make venv`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use beard_agent::attack_spec;
use beard_agent::attacks::{self, Attack, CarliniWagner, Goal, Margin};
use beard_proto::v1::attack_config;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use tch::{Kind, Tensor};

const SAMPLES: i64 = 100;
const CHUNK: i64 = 100;

/// Spec, targeted, allowed difference in robust accuracy (points).
const RUNS: [(&str, bool, f64); 8] = [
    ("fgsm:eps=8/255", false, 0.0),
    ("pgd:eps=8/255,alpha=2/255,steps=10", false, 0.0),
    ("pgd:eps=8/255,alpha=2/255,steps=10", true, 0.0),
    ("pgdl2:eps=128/255,alpha=15/255,steps=10", false, 0.0),
    ("pgdl2:eps=128/255,alpha=15/255,steps=10", true, 0.0),
    ("cw:c=1,kappa=0,steps=30,lr=0.01", false, 2.0),
    ("cw:c=1,kappa=0,steps=30,lr=0.01", true, 2.0),
    ("deepfool:steps=50,overshoot=0.02", false, 2.0),
];

fn python() -> PathBuf {
    std::env::var_os("BEARD_PYTHON").map(PathBuf::from).unwrap_or_else(|| workspace().join(".venv/bin/python"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn floats(tensor: &Tensor) -> Vec<u8> {
    let values: Vec<f32> = tensor.flatten(0, -1).try_into().expect("float32 values");
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn longs(tensor: &Tensor) -> Vec<u8> {
    let values: Vec<i64> = tensor.try_into().expect("int64 values");
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write_images(path: &Path, images: &Tensor, labels: &Tensor, targets: &Tensor) {
    let buffers = [
        ("images", Dtype::F32, images.size(), floats(images)),
        ("labels", Dtype::I64, labels.size(), longs(labels)),
        ("targets", Dtype::I64, targets.size(), longs(targets)),
    ];
    let views: Vec<(&str, TensorView<'_>)> = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            let shape = shape.iter().map(|&d| d as usize).collect();
            (*name, TensorView::new(*dtype, shape, bytes).expect("tensor view"))
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).expect("serialize")).expect("write images");
}

/// One run's outcome on one side.
struct Outcome {
    adversarial: Tensor,
    correct: Vec<bool>,
    seconds: f64,
}

fn ours(
    attack: &dyn Attack,
    trained: &common::Trained,
    targeted: bool,
    images: &Tensor,
    labels: &Tensor,
    targets: &Tensor,
) -> Outcome {
    let started = std::time::Instant::now();
    let mut chunks = Vec::new();
    for start in (0..SAMPLES).step_by(CHUNK as usize) {
        let goal_classes = if targeted { targets } else { labels }.narrow(0, start, CHUNK);
        let goal = if targeted { Goal::targeted(&goal_classes) } else { Goal::untargeted(&goal_classes) };
        let adversarial = attack.perturb(&trained.model, &images.narrow(0, start, CHUNK), &goal).expect("attack");
        chunks.push(adversarial.images);
    }
    let seconds = started.elapsed().as_secs_f64();
    let adversarial = Tensor::cat(&chunks, 0);
    let predictions = trained.model.forward(&adversarial, false).expect("forward").argmax(1, false);
    let correct = Vec::<bool>::try_from(predictions.eq_tensor(labels)).expect("correct");
    Outcome { adversarial, correct, seconds }
}

fn theirs(file: &SafeTensors<'_>, key: &str, shape: &[i64]) -> Outcome {
    let tensor = |name: &str| file.tensor(&format!("{key}/{name}")).unwrap_or_else(|_| panic!("{key}/{name} missing"));
    let adversarial = tensor("adversarial");
    let adversarial = Tensor::from_data_size(adversarial.data(), shape, Kind::Float);
    let correct = tensor("correct").data().iter().map(|&b| b != 0).collect();
    let seconds = f64::from_le_bytes(tensor("seconds").data()[..8].try_into().expect("8 bytes"));
    Outcome { adversarial, correct, seconds }
}

fn accuracy(correct: &[bool]) -> f64 {
    100.0 * correct.iter().filter(|&&c| c).count() as f64 / correct.len() as f64
}

#[test]
fn robust_accuracy_matches_torchattacks() {
    let python = python();
    assert!(
        python.exists(),
        "no Python at {} (set BEARD_PYTHON or run `make venv`, which installs torch and torchattacks==3.5.1)",
        python.display()
    );
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, SAMPLES);
    let labels = trained.dataset.test.labels.narrow(0, 0, SAMPLES);
    let targets = (&labels + 1).remainder(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let (checkpoint, inputs, results) = (
        dir.path().join("model.safetensors"),
        dir.path().join("images.safetensors"),
        dir.path().join("out.safetensors"),
    );
    std::fs::write(&checkpoint, &trained.checkpoint).expect("write checkpoint");
    write_images(&inputs, &images, &labels, &targets);

    let normalization = trained.dataset.info.normalization;
    let join = |values: [f32; 3]| values.map(|v| v.to_string()).join(",");
    let mut command = Command::new(&python);
    command
        .arg(workspace().join("scripts/parity/torchattacks_parity.py"))
        .args(["--checkpoint".as_ref(), checkpoint.as_os_str(), "--images".as_ref(), inputs.as_os_str()])
        .args(["--out".as_ref(), results.as_os_str()])
        .args(["--width", "16", "--depth", "3", "--norm", "instance", "--pool", "avg", "--classes", "10"])
        .args(["--mean", &join(normalization.mean), "--std", &join(normalization.std)])
        .args(["--batch-size", &CHUNK.to_string(), "--threads", &tch::get_num_threads().to_string()]);
    for (spec, targeted, _) in RUNS {
        command.args([if targeted { "--targeted" } else { "--attack" }, spec]);
    }
    let output = command.output().expect("the parity script starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the parity script failed ({}):\n{stdout}\n{stderr}", output.status);
    let bytes = std::fs::read(&results).expect("results written");
    let file = SafeTensors::deserialize(&bytes).expect("results parse");

    println!("{stdout}");
    println!(
        "{:<44} {:>7} {:>7} {:>6} {:>9} {:>9} {:>7}",
        "attack", "ours%", "ta%", "agree", "max|dx|", "ours/s", "ta/s"
    );
    let mut failures: HashMap<String, String> = HashMap::new();
    for (spec, targeted, tolerance) in RUNS {
        let key = if targeted { format!("{spec}@targeted") } else { spec.to_owned() };
        let attack = attacks::from_config(&attack_spec::parse(spec).expect("spec"), targeted).expect("attack");
        let attack = match attack_spec::parse(spec).expect("spec").attack {
            Some(attack_config::Attack::Cw(cw)) => {
                let paper = ours(attack.as_ref(), &trained, targeted, &images, &labels, &targets);
                println!("{key}: the paper's margin gives {:.1}%", accuracy(&paper.correct));
                let compatible = CarliniWagner::new(cw.c, cw.kappa, cw.steps, cw.lr).expect("cw");
                Box::new(compatible.with_margin(Margin::Torchattacks))
            }
            _ => attack,
        };
        let ours = ours(attack.as_ref(), &trained, targeted, &images, &labels, &targets);
        let theirs = theirs(&file, &key, &images.size());
        let agree = ours.correct.iter().zip(&theirs.correct).filter(|(a, b)| a == b).count();
        let max_diff = (&ours.adversarial - &theirs.adversarial).abs().max().double_value(&[]);
        let (a, b) = (accuracy(&ours.correct), accuracy(&theirs.correct));
        let rate = |seconds: f64| SAMPLES as f64 / seconds;
        println!(
            "{key:<44} {a:>7.1} {b:>7.1} {agree:>6} {max_diff:>9.2e} {:>9.1} {:>7.1}",
            rate(ours.seconds),
            rate(theirs.seconds)
        );
        if (a - b).abs() > tolerance + 1e-9 {
            failures.insert(key.clone(), format!("robust accuracy {a:.1}% vs torchattacks {b:.1}%"));
        }
        if spec.starts_with("fgsm") && max_diff > 1e-4 {
            failures.insert(key, format!("adversarial images differ by {max_diff:.2e}"));
        }
    }
    assert!(failures.is_empty(), "parity failures: {failures:#?}");
}
