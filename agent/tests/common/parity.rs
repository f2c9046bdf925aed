//! Parity runs against torchattacks 3.5.1: our attacks in process, torchattacks through
//! `scripts/parity/torchattacks_parity.py` in the project venv, on the same ConvNet weights,
//! images, chunks and thread count, and a side-by-side table of the two.
//!
//! A [`Run`] bounds the difference in robust accuracy, and for the deterministic attacks (FGSM,
//! PGD without random start, PGD-L2: [`Run::exact`]) asks for agreement sample by sample: every
//! verdict equal and every adversarial pixel within [`PIXEL_TOLERANCE`] (1e-6) of torchattacks'.
//! Both sides run the same libtorch (the build links the venv's) on the same chunks and thread
//! count, and the measured largest difference is 0 (bit-identical images on 500 CIFAR-10 images
//! of the DM checkpoint and on 100 `synthetic` ones, untargeted and targeted). The tolerance
//! leaves about eight float32 ulps at 1.0 for a reduction ordered differently on another machine
//! and stays far below a real divergence: one gradient sign flipped in FGSM or PGD moves a pixel
//! by twice the step (4/255 for PGD's 2/255).

use std::path::{Path, PathBuf};
use std::process::Command;

use beard_agent::attack_spec;
use beard_agent::attacks::{self, Attack, Goal};
use beard_agent::data::Normalization;
use beard_agent::model::ConvNet;
use tch::{Kind, Tensor};

/// The venv's Python (`BEARD_PYTHON`, else the venv's, see [`super::files::python`]); the
/// parity tests fail, saying how to get it, when it is missing.
pub fn python() -> PathBuf {
    let python = std::env::var_os("BEARD_PYTHON").map(PathBuf::from).unwrap_or_else(super::files::python);
    assert!(
        python.exists(),
        "no Python at {} (set BEARD_PYTHON or run `make venv`, which installs torch and torchattacks==3.5.1)",
        python.display()
    );
    python
}

/// How far apart an adversarial pixel of ours and of torchattacks' may be in a deterministic
/// run (see the module doc).
pub const PIXEL_TOLERANCE: f64 = 1e-6;

/// The model as the parity script rebuilds it.
pub struct ScriptModel<'a> {
    /// A safetensors checkpoint saved by the agent or a PyTorch state-dict file.
    pub checkpoint: &'a Path,
    pub width: u32,
    pub classes: u32,
    pub normalization: Normalization,
}

/// One attack run: its spec, whether targeted, the allowed difference in robust accuracy
/// (points) of ours minus torchattacks' (`below`: how much lower ours may be; `above`: higher),
/// and for a deterministic attack the per-sample agreement asked for.
pub struct Run {
    pub spec: &'static str,
    pub targeted: bool,
    pub below: f64,
    pub above: f64,
    /// `Some(tolerance)`: every sample's verdict equal to torchattacks' and every adversarial
    /// pixel within `tolerance` of its.
    pub exact: Option<f64>,
}

impl Run {
    /// Robust accuracies within `points` of each other either way.
    pub const fn within(spec: &'static str, targeted: bool, points: f64) -> Self {
        Self { spec, targeted, below: points, above: points, exact: None }
    }

    /// A deterministic attack: every verdict equal, every pixel within [`PIXEL_TOLERANCE`].
    pub const fn exact(spec: &'static str, targeted: bool) -> Self {
        Self { spec, targeted, below: 0.0, above: 0.0, exact: Some(PIXEL_TOLERANCE) }
    }

    /// Ours at least as strong, untargeted: lower by any amount, higher by at most `above` points.
    pub const fn not_weaker(spec: &'static str, above: f64) -> Self {
        Self { spec, targeted: false, below: f64::INFINITY, above, exact: None }
    }
}

/// One run's outcome on one side.
pub struct Outcome {
    pub adversarial: Tensor,
    pub correct: Vec<bool>,
    pub seconds: f64,
}

/// The key of a run in the script's results file.
fn key(run: &Run) -> String {
    if run.targeted { format!("{}@targeted", run.spec) } else { run.spec.to_owned() }
}

/// Robust accuracy in percent.
pub fn accuracy(correct: &[bool]) -> f64 {
    100.0 * correct.iter().filter(|&&c| c).count() as f64 / correct.len().max(1) as f64
}

/// Our attack `run` on `images` in chunks of `chunk`, towards `targets` when targeted; a sample
/// is correct where the logits the attack returns (what a result shard records) say so.
pub fn ours(
    attack: &dyn Attack,
    model: &ConvNet,
    run: &Run,
    images: &Tensor,
    labels: &Tensor,
    targets: &Tensor,
    chunk: i64,
) -> Outcome {
    let count = images.size()[0];
    let started = std::time::Instant::now();
    let (mut chunks, mut logits) = (Vec::new(), Vec::new());
    for start in (0..count).step_by(chunk as usize) {
        let length = chunk.min(count - start);
        let classes = if run.targeted { targets } else { labels }.narrow(0, start, length);
        let goal = if run.targeted { Goal::targeted(&classes) } else { Goal::untargeted(&classes) };
        let adversarial = attack.perturb(model, &images.narrow(0, start, length), &goal).expect("attack runs");
        chunks.push(adversarial.images);
        logits.push(adversarial.logits);
    }
    let seconds = started.elapsed().as_secs_f64();
    let predictions = Tensor::cat(&logits, 0).argmax(1, false);
    let correct = Vec::<bool>::try_from(predictions.eq_tensor(labels)).expect("correct");
    Outcome { adversarial: Tensor::cat(&chunks, 0), correct, seconds }
}

/// torchattacks' outcomes of every run, from one script invocation.
pub struct Theirs {
    tensors: Vec<(String, Tensor)>,
    pub stdout: String,
}

impl Theirs {
    /// Runs the script on `images` (labels, and targets for targeted runs) in chunks of `chunk`
    /// with this process's torch thread count.
    pub fn run(
        model: &ScriptModel<'_>,
        runs: &[Run],
        images: &Tensor,
        labels: &Tensor,
        targets: &Tensor,
        chunk: i64,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (inputs, results) = (dir.path().join("images.safetensors"), dir.path().join("out.safetensors"));
        Tensor::write_safetensors(&[("images", images), ("labels", labels), ("targets", targets)], &inputs)
            .expect("write images");
        let join = |values: [f32; 3]| values.map(|v| v.to_string()).join(",");
        let mut command = Command::new(python());
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/parity/torchattacks_parity.py"))
            .args(["--checkpoint".as_ref(), model.checkpoint.as_os_str(), "--images".as_ref(), inputs.as_os_str()])
            .args(["--out".as_ref(), results.as_os_str()])
            .args(["--width", &model.width.to_string(), "--classes", &model.classes.to_string()])
            .args(["--mean", &join(model.normalization.mean), "--std", &join(model.normalization.std)])
            .args(["--batch-size", &chunk.to_string(), "--threads", &tch::get_num_threads().to_string()]);
        for run in runs {
            command.args([if run.targeted { "--targeted" } else { "--attack" }, run.spec]);
        }
        let output = command.output().expect("the parity script starts");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "the parity script failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Self { tensors: Tensor::read_safetensors(&results).expect("results parse"), stdout }
    }

    fn field(&self, run: &Run, name: &str) -> Tensor {
        let wanted = format!("{}/{name}", key(run));
        let found = self.tensors.iter().find(|(key, _)| *key == wanted);
        found.map(|(_, tensor)| tensor.shallow_clone()).unwrap_or_else(|| panic!("{wanted} missing"))
    }

    /// Their outcome of `run`.
    pub fn outcome(&self, run: &Run) -> Outcome {
        let correct = Vec::<bool>::try_from(self.field(run, "correct").to_kind(Kind::Bool)).expect("correct");
        Outcome {
            adversarial: self.field(run, "adversarial"),
            correct,
            seconds: self.field(run, "seconds").double_value(&[0]),
        }
    }
}

/// Our attack for a run, as its spec configures it (C&W runs compare with
/// `torchattacks_margin=true`, which the script ignores: torchattacks always reads its own).
pub fn our_attack(run: &Run) -> Box<dyn Attack> {
    attacks::from_config(&attack_spec::parse(run.spec).expect("spec"), run.targeted, &super::generator())
        .expect("attack")
}

/// How one run's two outcomes compare.
struct Comparison {
    /// Robust accuracies (percent), ours and torchattacks'.
    ours: f64,
    theirs: f64,
    /// Samples whose verdicts agree.
    agree: usize,
    /// The largest difference of an adversarial pixel.
    max_diff: f64,
}

impl Comparison {
    fn of(ours: &Outcome, theirs: &Outcome) -> Self {
        Self {
            ours: accuracy(&ours.correct),
            theirs: accuracy(&theirs.correct),
            agree: ours.correct.iter().zip(&theirs.correct).filter(|(a, b)| a == b).count(),
            max_diff: (&ours.adversarial - &theirs.adversarial).abs().max().double_value(&[]),
        }
    }

    /// What this comparison breaks of `run`'s tolerances, on `count` samples.
    fn failures(&self, run: &Run, count: usize) -> Vec<String> {
        let (a, b, name) = (self.ours, self.theirs, key(run));
        let mut failures = Vec::new();
        if a < b - run.below - 1e-9 || a > b + run.above + 1e-9 {
            failures.push(format!("{name}: robust accuracy {a:.2}% vs torchattacks {b:.2}%"));
        }
        if let Some(tolerance) = run.exact {
            if self.agree != count {
                failures.push(format!("{name}: {} of {count} verdicts differ", count - self.agree));
            }
            if self.max_diff.is_nan() || self.max_diff > tolerance {
                failures.push(format!(
                    "{name}: adversarial images differ by {:.2e} (tolerance {tolerance:.0e})",
                    self.max_diff
                ));
            }
        }
        failures
    }
}

/// Runs every run on both sides, prints the table (robust accuracies, agreement, the largest
/// pixel difference, images per second and the ratio ours / torchattacks) and returns the
/// failures: accuracy differences outside a run's tolerance and, for the runs asking for
/// per-sample agreement, verdicts that differ and pixels farther apart than asked.
pub fn compare(
    model: &ConvNet,
    script_model: &ScriptModel<'_>,
    runs: &[Run],
    images: &Tensor,
    labels: &Tensor,
    targets: &Tensor,
    chunk: i64,
) -> Vec<String> {
    let theirs = Theirs::run(script_model, runs, images, labels, targets, chunk);
    println!("{}", theirs.stdout);
    let count = images.size()[0];
    println!(
        "{:<52} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8} {:>6}",
        "attack", "ours%", "ta%", "agree", "max|dx|", "ours/s", "ta/s", "ratio"
    );
    let mut failures = Vec::new();
    for run in runs {
        let attack = our_attack(run);
        let ours = ours(attack.as_ref(), model, run, images, labels, targets, chunk);
        let theirs = theirs.outcome(run);
        let comparison = Comparison::of(&ours, &theirs);
        let Comparison { ours: a, theirs: b, agree, max_diff } = comparison;
        let (ours_rate, their_rate) = (count as f64 / ours.seconds, count as f64 / theirs.seconds);
        println!(
            "{:<52} {a:>6.1} {b:>6.1} {agree:>6} {max_diff:>9.2e} {ours_rate:>8.1} {their_rate:>8.1} {:>5.2}x",
            key(run),
            ours_rate / their_rate
        );
        failures.extend(comparison.failures(run, count as usize));
    }
    failures
}
