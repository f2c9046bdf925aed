//! `agent export`: a checkpoint trained by the agent, exported to safetensors and to a PyTorch
//! state-dict file, loads back from both with identical logits, and PyTorch itself reads the
//! PyTorch export with `weights_only=True` to the same tensors.

mod common;

use std::path::Path;
use std::process::Command;

use beard_agent::model::{ConvNet, ConvNetConfig};
use beard_formats::state_dict;
use beard_formats::torchfile::StoredTensor;
use common::files::{run_python, shared_data};
use tch::{Device, Tensor};

/// Run `agent export ARGS`; its stdout, or the failure's stderr.
fn export(args: &[&Path]) -> Result<String, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent"));
    command.arg("export");
    for (flag, value) in ["--checkpoint", "--out"].iter().zip(args) {
        command.arg(flag).arg(value);
    }
    let output = command.args(args.get(2..).unwrap_or_default().iter().map(|p| p.as_os_str())).output().expect("runs");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn state_dict(path: &Path) -> Vec<(String, StoredTensor)> {
    state_dict::read(&std::fs::read(path).expect("read")).expect("a state dict")
}

fn sorted(mut tensors: Vec<(String, StoredTensor)>) -> Vec<(String, StoredTensor)> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

fn logits(config: &ConvNetConfig, path: &Path, images: &Tensor) -> Tensor {
    let model = ConvNet::from_checkpoint(config, &std::fs::read(path).expect("read"), Device::Cpu).expect("loads");
    tch::no_grad(|| model.forward(images, false)).expect("forward")
}

#[test]
fn trained_checkpoints_round_trip_through_both_formats_and_torch_reads_the_pytorch_export() {
    let trained = common::trained(3, 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let original = dir.path().join("trained.safetensors");
    std::fs::write(&original, &trained.checkpoint).expect("write");
    let (pth, safetensors, again) =
        (dir.path().join("model.pth"), dir.path().join("model.safetensors"), dir.path().join("again.pt"));
    let printed = export(&[&original, &pth]).expect("exports to .pth");
    assert!(printed.contains("Pytorch") && printed.contains("14 tensors"), "{printed}");
    export(&[&pth, &safetensors]).expect("exports back to .safetensors");
    export(&[&safetensors, &again]).expect("and to .pt again");

    // Every export holds the same tensors, bit for bit; PyTorch exports are deterministic.
    let expected = sorted(state_dict(&original));
    for path in [&pth, &safetensors, &again] {
        assert_eq!(sorted(state_dict(path)), expected, "{}", path.display());
    }
    assert!(std::fs::read(&pth).expect("read") == std::fs::read(&again).expect("read"), "deterministic");
    let names: Vec<String> = state_dict(&pth).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names[..3], ["classifier.bias", "classifier.weight", "features.0.bias"], "sorted names");

    // Both formats give identical logits.
    let config =
        ConvNetConfig::new(trained.spec.model.as_ref().expect("model"), &trained.dataset.info).expect("config");
    let images = trained.dataset.test.images.narrow(0, 0, 64);
    let reference = logits(&config, &original, &images);
    for path in [&pth, &safetensors] {
        assert!(logits(&config, path, &images).equal(&reference), "{}", path.display());
    }

    // PyTorch reads the export as a plain OrderedDict of float32 tensors with weights_only=True.
    run_python(
        dir.path(),
        r#"
import collections, torch
state = torch.load("model.pth", weights_only=True)
assert type(state) is collections.OrderedDict, type(state)
with open("torch.txt", "w") as out:
    for name, tensor in state.items():
        assert tensor.dtype == torch.float32 and tensor.is_contiguous(), (name, tensor.dtype)
        out.write(f"{name} {list(tensor.shape)} {bytes(tensor.untyped_storage()).hex()}\n")
mmapped = torch.load("model.pth", weights_only=True, mmap=True)
assert all(torch.equal(mmapped[k], state[k]) for k in state)
"#,
    );
    let from_torch = std::fs::read_to_string(dir.path().join("torch.txt")).expect("torch.txt");
    let ours: Vec<String> = state_dict(&pth)
        .into_iter()
        .map(|(name, tensor)| {
            let hex: String = tensor.data.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("{name} {:?} {hex}", tensor.shape)
        })
        .collect();
    assert_eq!(from_torch.lines().collect::<Vec<_>>(), ours);
}

#[test]
fn published_checkpoints_export_unchanged_and_bad_input_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_a_checkpoint = dir.path().join("junk.pth");
    std::fs::write(&not_a_checkpoint, b"not a checkpoint").expect("write");
    let error = export(&[&not_a_checkpoint, &dir.path().join("out.safetensors")]).expect_err("junk fails");
    assert!(error.contains("junk.pth"), "{error}");
    let error = export(&[&not_a_checkpoint, &dir.path().join("out.bin")]).expect_err("unknown format");
    assert!(error.contains("--format"), "{error}");

    let Some(data) = shared_data("published_checkpoints_export_unchanged_and_bad_input_fails_clearly") else { return };
    let published = data.join("model_pool/DC_ConvNet_CIFAR10_50_None.pth");
    let out = dir.path().join("dc.bin");
    export(&[&published, &out, Path::new("--format"), Path::new("pytorch")]).expect("exports with --format");
    assert_eq!(state_dict(&out), state_dict(&published), "same tensors in the same order");
}
