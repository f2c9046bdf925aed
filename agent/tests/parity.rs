//! Parity with torchattacks 3.5.1 on a small model trained on `synthetic`: the same weights,
//! images, chunks and thread count through our attacks and through
//! `scripts/parity/torchattacks_parity.py` in the project venv (see `common::parity`).
//!
//! FGSM, PGD and PGD-L2 (no random start) are deterministic and compute the same float32
//! operations on both sides, so they must agree sample by sample: every verdict, and every
//! adversarial pixel within `common::parity::PIXEL_TOLERANCE` (measured: bit-identical). C&W and
//! DeepFool may differ on a few samples near a decision boundary: C&W's Adam steps round
//! differently and its early abort compares chunk costs that may then differ; DeepFool
//! computes its gradients batched, torchattacks image by image, and a sample it leaves within a
//! few float32 ulps of the boundary (see `cifar_parity.rs`) may end on either side. They must
//! agree within 2 points (2 of 100 samples). C&W runs 30 steps rather than BEARD's 100 to keep
//! the test short on two CPU cores. The table is printed with `--nocapture`; the same comparison
//! on the CIFAR-10 reference checkpoint is `cifar_parity.rs`.

mod common;

use common::parity::{Run, ScriptModel, compare};

const SAMPLES: i64 = 100;
const CHUNK: i64 = 100;

const RUNS: [Run; 8] = [
    Run::exact("fgsm:eps=8/255", false),
    Run::exact("pgd:eps=8/255,alpha=2/255,steps=10", false),
    Run::exact("pgd:eps=8/255,alpha=2/255,steps=10", true),
    Run::exact("pgdl2:eps=128/255,alpha=15/255,steps=10", false),
    Run::exact("pgdl2:eps=128/255,alpha=15/255,steps=10", true),
    Run::within("cw:c=1,kappa=0,steps=30,lr=0.01,torchattacks_margin=true", false, 2.0),
    Run::within("cw:c=1,kappa=0,steps=30,lr=0.01,torchattacks_margin=true", true, 2.0),
    Run::within("deepfool:steps=50,overshoot=0.02", false, 2.0),
];

#[test]
fn robust_accuracy_matches_torchattacks() {
    let trained = common::trained(0, 20);
    let images = trained.dataset.test.images.narrow(0, 0, SAMPLES);
    let labels = trained.dataset.test.labels.narrow(0, 0, SAMPLES);
    let targets = (&labels + 1).remainder(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoint = dir.path().join("model.safetensors");
    std::fs::write(&checkpoint, &trained.checkpoint).expect("write checkpoint");
    let script_model = ScriptModel {
        checkpoint: &checkpoint,
        width: 16,
        classes: 10,
        normalization: trained.dataset.info.normalization,
    };
    let failures = compare(&trained.model, &script_model, &RUNS, &images, &labels, &targets, CHUNK);
    assert!(failures.is_empty(), "parity failures: {failures:#?}");
}
