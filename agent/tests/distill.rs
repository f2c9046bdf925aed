//! The matching methods on the CPU.
//!
//! - DM, distribution matching: its loss and gradient against a PyTorch reference on fixed
//!   tensors (`scripts/distill/dm_reference.py`), a whole run twice under one seed, bit for bit,
//!   and a run resumed from its snapshots, bit for bit too.
//! - DC and DSA, gradient matching: the double backward against finite differences, and the same
//!   seed and resume properties for a run with the inner loop and DSA.
//! - IDM and BACON: BACON's term against its reference code (`scripts/distill/bacon_reference.py`)
//!   where that is finite, and the same seed and resume properties with the queue of nets.

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beard_agent::backend::TaskContext;
use beard_agent::data::{Dataset, Split, dataset_info};
use beard_agent::distill::dm;
use beard_agent::distill::gm::{self, GmSettings};
use beard_agent::distill::idm::{self, IdmSettings, Term};
use beard_agent::distill::{Matching, Run, Start};
use beard_agent::host_tensor;
use beard_agent::model::checkpoint;
use beard_agent::model::{ConvNet, ConvNetConfig, Norm, Pool};
use beard_formats::state_dict;
use beard_proto::v1::{DatasetRef, Snapshot};
use common::files::python;
use tch::{Device, Kind, Tensor};

const CLASSES: i64 = 3;

fn small_net() -> (ConvNetConfig, ConvNet) {
    let info = dataset_info("cifar10").expect("cifar10");
    let config = ConvNetConfig {
        width: 8,
        depth: 3,
        norm: Norm::Instance,
        pool: Pool::Avg,
        classes: CLASSES,
        image_size: 32,
        normalization: info.normalization,
    };
    let mut net = ConvNet::new(&config, 11, Device::Cpu).expect("a net");
    net.take_normalizer();
    net.freeze();
    (config, net)
}

#[test]
fn the_loss_and_its_gradient_match_pytorch() {
    let (_, net) = small_net();
    tch::manual_seed(5);
    let real: Vec<Tensor> = (0..CLASSES).map(|_| Tensor::randn([6, 3, 32, 32], (Kind::Float, Device::Cpu))).collect();
    let syn: Vec<Tensor> = (0..CLASSES)
        .map(|_| Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu)).set_requires_grad(true))
        .collect();
    let loss = dm::loss(&net, &real, &syn).expect("the loss");
    let inputs: Vec<&Tensor> = syn.iter().collect();
    let gradients = Tensor::run_backward(&[&loss], &inputs, false, false);

    let dir = tempfile::tempdir().expect("tempdir");
    let weights = dir.path().join("net.safetensors");
    std::fs::write(&weights, net.checkpoint().expect("weights")).expect("write");
    let mut batches = HashMap::new();
    for class in 0..CLASSES as usize {
        batches.insert(format!("real.{class}"), real[class].shallow_clone());
        batches.insert(format!("syn.{class}"), syn[class].detach());
    }
    let classes = CLASSES.to_string();
    let args =
        [OsStr::new("--checkpoint"), weights.as_os_str(), "--width".as_ref(), "8".as_ref(), "--classes".as_ref()];
    let reference = reference(dir.path(), "dm_reference.py", &batches, &[&args[..], &[classes.as_ref()]].concat());

    let (ours, theirs) = (loss.double_value(&[]), reference["loss"].double_value(&[0]));
    assert!(ours > 0.0 && ((ours - theirs) / theirs).abs() < 1e-5, "loss {ours} vs PyTorch {theirs}");
    for (class, gradient) in gradients.iter().enumerate() {
        let expected = &reference[&format!("grad.{class}")];
        let scale = expected.abs().max().double_value(&[]);
        let difference = (gradient - expected).abs().max().double_value(&[]);
        assert!(
            scale > 0.0 && difference <= 1e-5 * scale,
            "class {class}: gradients differ by {difference} (scale {scale})"
        );
    }
}

/// What `scripts/distill/{script}` computes from `tensors` (its `--tensors`, written to `dir`),
/// given `args` besides: the tensors it writes to `--out`.
fn reference(dir: &Path, script: &str, tensors: &HashMap<String, Tensor>, args: &[&OsStr]) -> HashMap<String, Tensor> {
    let input = dir.join("tensors.safetensors");
    std::fs::write(&input, checkpoint::save(tensors).expect("encode")).expect("write");
    let out = dir.join("out.safetensors");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/distill").join(script);
    let output = Command::new(python())
        .arg(&script)
        .arg("--tensors")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .args(args)
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&output.stderr));
    state_dict::read(&std::fs::read(&out).expect("read"))
        .expect("safetensors")
        .into_iter()
        .map(|(name, stored)| (name, host_tensor::to_tensor(&stored).expect("a tensor")))
        .collect()
}

/// A run of `ipc` images per class of `dataset`'s `train` split.
fn run_of<'a>(
    train: &'a Split,
    dataset: &'a Dataset,
    config: &'a ConvNetConfig,
    ipc: u32,
    seed: u64,
    resume: Option<&'a Snapshot>,
    ctx: &'a TaskContext,
) -> Run<'a> {
    Run { train, dataset: &dataset.info, model: config, ipc, seed, resume, ctx }
}

/// The `synthetic` dataset and the small ConvNet for its classes.
fn synthetic_run() -> (Dataset, ConvNetConfig) {
    let dataset =
        Dataset::load(&DatasetRef { name: "synthetic".into(), root: String::new() }, Device::Cpu).expect("synthetic");
    let config = ConvNetConfig { classes: dataset.info.classes as i64, ..small_net().0 };
    (dataset, config)
}

#[test]
fn one_seed_gives_the_same_set_twice_and_another_seed_another() {
    let (dataset, config) = synthetic_run();
    let train = dataset.train().expect("a train split");
    let settings =
        Matching { iterations: 3, batch_real: 8, lr_img: 1.0, momentum: 0.5, dsa: true, start: Start::Noise };
    let run = |seed| {
        dm::distill(&run_of(train, &dataset, &config, 2, seed, None, &TaskContext::detached()), &settings)
            .expect("distils")
            .set
            .images()
            .detach()
    };
    let first = run(3);
    assert_eq!(first.size(), [2 * dataset.info.classes as i64, 3, 32, 32]);
    assert!(first.equal(&run(3)), "the same seed, bit for bit");
    assert!(!first.equal(&run(4)), "another seed, another set");
    let start = dm::distill(
        &run_of(train, &dataset, &config, 2, 3, None, &TaskContext::detached()),
        &Matching { iterations: 1, lr_img: 0.0, ..settings },
    )
    .expect("distils")
    .set
    .images()
    .detach();
    assert!(!first.allclose(&start, 1e-6, 1e-6, false), "three iterations moved the images");
}

#[test]
fn a_run_resumed_from_a_snapshot_ends_with_the_uninterrupted_set() {
    let (dataset, config) = synthetic_run();
    let train = dataset.train().expect("a train split");
    let settings = Matching { iterations: 5, batch_real: 8, lr_img: 1.0, momentum: 0.5, dsa: true, start: Start::Real };
    let snapshots = Arc::new(Mutex::new(Vec::new()));
    let sink = snapshots.clone();
    // A zero interval: a snapshot after every iteration but the last.
    let ctx = TaskContext::new(|_| {}, Arc::new(AtomicBool::new(false)))
        .with_snapshots(Duration::ZERO, move |snapshot| sink.lock().expect("lock").push(snapshot));
    let run = |resume: Option<&Snapshot>, ctx: &TaskContext| {
        dm::distill(&run_of(train, &dataset, &config, 1, 7, resume, ctx), &settings).expect("distils")
    };
    let whole = run(None, &ctx);
    let snapshots = snapshots.lock().expect("lock").clone();
    assert_eq!(snapshots.iter().map(|s| s.iteration).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(snapshots.iter().all(|s| s.state_sha256 == beard_proto::keys::sha256_hex(&s.state)));
    for snapshot in [&snapshots[0], &snapshots[2]] {
        let resumed = run(Some(snapshot), &TaskContext::detached());
        assert_eq!(resumed.resumed_from, snapshot.iteration);
        assert!(resumed.set.images().equal(whole.set.images()), "resumed at {}: the same set", snapshot.iteration);
        assert_eq!(resumed.final_loss.to_bits(), whole.final_loss.to_bits());
    }
    let too_late = Snapshot { iteration: 5, ..snapshots[0].clone() };
    let error =
        dm::distill(&run_of(train, &dataset, &config, 1, 7, Some(&too_late), &TaskContext::detached()), &settings)
            .err()
            .expect("a snapshot at the end is refused")
            .to_string();
    assert!(error.contains("iteration 5"), "{error}");
    let other_ipc = dm::distill(&run_of(train, &dataset, &config, 2, 7, Some(&snapshots[0]), &ctx), &settings)
        .err()
        .expect("a snapshot of another shape is refused")
        .to_string();
    assert!(other_ipc.contains("expected F32"), "{other_ipc}");
}

/// A tiny gradient-matching run: two outer steps with one epoch of inner training between them,
/// siamese DSA and DSA in the inner loop.
fn gm_settings() -> GmSettings {
    let official = GmSettings::dsa(2, 1);
    let matching = Matching { iterations: 3, batch_real: 8, ..official.matching };
    GmSettings { matching, batch_train: 4, ..official }
}

#[test]
fn gradient_matchings_double_backward_agrees_with_finite_differences() {
    let (config, _) = small_net();
    let net = gm_net(&config);
    tch::manual_seed(9);
    let real: Vec<Tensor> = (0..CLASSES).map(|_| Tensor::randn([6, 3, 32, 32], (Kind::Float, Device::Cpu))).collect();
    let images = Tensor::randn([CLASSES * 2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let loss_at = |images: &Tensor| {
        let synthetic: Vec<Tensor> = (0..CLASSES).map(|class| images.narrow(0, class * 2, 2)).collect();
        gm::loss(&net, &real, &synthetic).expect("the loss")
    };
    let leaf = images.copy().set_requires_grad(true);
    let loss = loss_at(&leaf);
    let gradient = Tensor::run_backward(&[&loss], &[&leaf], false, false).pop().expect("a gradient");
    let norm = gradient.norm().double_value(&[]);
    assert!(loss.double_value(&[]) > 0.0 && norm > 0.0, "loss {loss:?}, gradient norm {norm}");
    // Along the gradient's direction, the slope is the gradient's norm.
    let direction = &gradient / norm;
    // Small enough to cross no ReLU's kink (at 1e-2 some do), large enough for float32.
    let h = 3e-3;
    // Not under `no_grad`: the loss itself differentiates the network.
    let ahead = loss_at(&(&images + &direction * h)).double_value(&[]);
    let behind = loss_at(&(&images - &direction * h)).double_value(&[]);
    let slope = (ahead - behind) / (2.0 * h);
    assert!(((slope - norm) / norm).abs() < 1e-2, "finite differences {slope} vs the double backward {norm}");
}

/// A ConvNet that trains (gradient matching needs its parameter gradients), on normalized images.
fn gm_net(config: &ConvNetConfig) -> ConvNet {
    let mut net = ConvNet::new(config, 11, Device::Cpu).expect("a net");
    net.take_normalizer();
    net
}

#[test]
fn gradient_matching_gives_the_same_set_for_a_seed_and_resumes_bit_for_bit() {
    let (dataset, config) = synthetic_run();
    let train = dataset.train().expect("a train split");
    let settings = gm_settings();
    let snapshots = Arc::new(Mutex::new(Vec::new()));
    let sink = snapshots.clone();
    let ctx = TaskContext::new(|_| {}, Arc::new(AtomicBool::new(false)))
        .with_snapshots(Duration::ZERO, move |snapshot| sink.lock().expect("lock").push(snapshot));
    let run = |seed, resume: Option<&Snapshot>, ctx: &TaskContext| {
        gm::distill(&run_of(train, &dataset, &config, 2, seed, resume, ctx), &settings).expect("distils")
    };
    let whole = run(3, None, &ctx);
    assert_eq!(whole.set.images().size(), [2 * dataset.info.classes as i64, 3, 32, 32]);
    assert!(whole.final_loss.is_finite() && whole.final_loss > 0.0, "loss {}", whole.final_loss);
    assert!(
        run(3, None, &TaskContext::detached()).set.images().equal(whole.set.images()),
        "the same seed, bit for bit"
    );
    assert!(!run(4, None, &TaskContext::detached()).set.images().equal(whole.set.images()), "another seed");
    let snapshots = snapshots.lock().expect("lock").clone();
    assert_eq!(snapshots.iter().map(|s| s.iteration).collect::<Vec<_>>(), [1, 2]);
    let resumed = run(3, Some(&snapshots[0]), &TaskContext::detached());
    assert_eq!(resumed.resumed_from, 1);
    assert!(resumed.set.images().equal(whole.set.images()), "resumed at 1: the same set");
    let error = gm::distill(
        &run_of(train, &dataset, &config, 2, 3, None, &TaskContext::detached()),
        &GmSettings { inner_loop: 0, ..settings },
    )
    .err()
    .expect("an empty inner loop is refused")
    .to_string();
    assert!(error.contains("inner_loop"), "{error}");
}

#[test]
fn bacons_term_matches_its_reference_where_the_reference_is_finite() {
    let options = (Kind::Float, Device::Cpu);
    tch::manual_seed(13);
    let real = Tensor::randn([16, 32], options) * 0.5;
    let synthetic = Tensor::randn([4, 32], options) * 0.5 + 0.3;
    // Far apart with a small spread: the reference's density underflows to 0 and its log to -inf.
    let real_far = Tensor::randn([16, 32], options) * 0.01;
    let synthetic_far = real_far.narrow(0, 0, 4) + 200.0;
    let mut features = HashMap::new();
    for (name, tensor) in
        [("real.near", &real), ("syn.near", &synthetic), ("real.far", &real_far), ("syn.far", &synthetic_far)]
    {
        features.insert(name.to_owned(), tensor.shallow_clone());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = reference(dir.path(), "bacon_reference.py", &features, &[]);

    let leaf = synthetic.copy().set_requires_grad(true);
    let loss = idm::bacon_term(&real, &leaf).expect("the term");
    let gradient = Tensor::run_backward(&[&loss], &[&leaf], false, false).pop().expect("a gradient");
    let (ours, theirs) = (loss.double_value(&[]), reference["loss.near"].double_value(&[0]));
    assert!(((ours - theirs) / theirs).abs() < 1e-5, "BACON's term {ours} vs the reference's {theirs}");
    let expected = &reference["grad.near"];
    let scale = expected.abs().max().double_value(&[]);
    let difference = (&gradient - expected).abs().max().double_value(&[]);
    assert!(scale > 0.0 && difference <= 1e-4 * scale, "gradients differ by {difference} (scale {scale})");

    let far = idm::bacon_term(&real_far, &synthetic_far).expect("the term").double_value(&[]);
    assert!(reference["loss.far"].double_value(&[0]).is_infinite(), "the reference overflows here");
    // About 32 dimensions x (200 / e^0.01)^2 / 2.
    assert!(far.is_finite() && far > 5e5, "the log form stays finite: {far}");
}

/// A tiny IDM or BACON run on `synthetic`: a queue of at most 3 nets, a new one every 2
/// iterations, 2 of them training 2 steps each per iteration, meters reset at iteration 3.
fn idm_settings(term: Term) -> IdmSettings {
    let official = IdmSettings::official("synthetic", 1, term);
    IdmSettings {
        matching: Matching { iterations: 4, batch_real: 8, ..official.matching },
        net_num: 3,
        net_generate_interval: 2,
        fetch_net_num: 2,
        model_train_steps: 2,
        trained_bs: 16,
        eval_interval: 3,
        ..official
    }
}

#[test]
fn idm_and_bacon_give_the_same_set_for_a_seed_and_resume_with_their_queue_bit_for_bit() {
    let (dataset, config) = synthetic_run();
    let train = dataset.train().expect("a train split");
    let snapshots = Arc::new(Mutex::new(Vec::new()));
    let sink = snapshots.clone();
    let ctx = TaskContext::new(|_| {}, Arc::new(AtomicBool::new(false)))
        .with_snapshots(Duration::ZERO, move |snapshot| sink.lock().expect("lock").push(snapshot));
    let run = |term, seed, resume: Option<&Snapshot>, ctx: &TaskContext| {
        idm::distill(&run_of(train, &dataset, &config, 1, seed, resume, ctx), &idm_settings(term)).expect("distils")
    };
    let whole = run(Term::Mean, 3, None, &ctx);
    assert_eq!(whole.set.images().size(), [dataset.info.classes as i64, 3, 32, 32], "one mosaic per class");
    assert!(whole.final_loss.is_finite() && whole.final_loss > 0.0, "loss {}", whole.final_loss);
    let detached = TaskContext::detached();
    assert!(run(Term::Mean, 3, None, &detached).set.images().equal(whole.set.images()), "the same seed, bit for bit");
    assert!(!run(Term::Bacon, 3, None, &detached).set.images().equal(whole.set.images()), "BACON's term differs");
    let snapshots = snapshots.lock().expect("lock").clone();
    assert_eq!(snapshots.iter().map(|s| s.iteration).collect::<Vec<_>>(), [1, 2, 3]);
    for snapshot in [&snapshots[0], &snapshots[2]] {
        let resumed = run(Term::Mean, 3, Some(snapshot), &detached);
        assert_eq!(resumed.resumed_from, snapshot.iteration);
        assert!(resumed.set.images().equal(whole.set.images()), "resumed at {}: the same set", snapshot.iteration);
    }
}
