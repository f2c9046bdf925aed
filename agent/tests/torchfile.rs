//! The `torch.save` reader on the real files in the shared data and on files torch writes here.

mod common;

use std::path::Path;

use beard_formats::torchfile::{self, Dtype, StoredTensor, Value};
use common::files::{run_python, shared_data};

fn tensor(value: &Value) -> &StoredTensor {
    match value {
        Value::Tensor(tensor) => tensor,
        other => panic!("expected a tensor, found {}", other.describe()),
    }
}

fn f32s(tensor: &StoredTensor) -> Vec<f32> {
    assert_eq!(tensor.dtype, Dtype::F32);
    tensor.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn i64s(tensor: &StoredTensor) -> Vec<i64> {
    assert_eq!(tensor.dtype, Dtype::I64);
    tensor.data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()
}

#[test]
fn dc_result_files_decode_to_the_raw_copies() {
    let Some(data) = shared_data("dc_result_files_decode_to_the_raw_copies") else { return };
    for ipc in [1usize, 10] {
        let dir = data.join("distilled");
        let value = torchfile::load(&dir.join(format!("DC_CIFAR10_ConvNet_ipc{ipc}.res.pt"))).expect("decodes");
        let entry = value.get("data").and_then(Value::as_sequence).and_then(|d| d.first()).expect("data[0]");
        let [images, labels] = entry.as_sequence().expect("[images, labels]") else { panic!("two items") };
        let (images, labels) = (tensor(images), tensor(labels));
        assert_eq!(images.shape, [10 * ipc, 3, 32, 32]);
        let raw = std::fs::read(dir.join(format!("DC_CIFAR10_ConvNet_ipc{ipc}.images_f32le.bin"))).expect("raw");
        assert_eq!(images.data, raw, "ipc {ipc} images");
        let raw_labels = std::fs::read(dir.join(format!("DC_CIFAR10_ConvNet_ipc{ipc}.labels_u8.bin"))).expect("raw");
        assert_eq!(i64s(labels), raw_labels.iter().map(|&l| i64::from(l)).collect::<Vec<_>>());
        // The rest of the file (numpy scalars in accs_all_exps) stays opaque, never executed.
        let accs = value.get("accs_all_exps").expect("accs_all_exps");
        assert!(matches!(accs.get("ConvNet"), Some(Value::List(_))), "{accs:?}");
    }
}

#[test]
fn model_pool_files_are_eight_tensor_state_dicts() {
    let Some(data) = shared_data("model_pool_files_are_eight_tensor_state_dicts") else { return };
    let expected: Vec<(String, Vec<usize>)> = [0, 4, 8]
        .into_iter()
        .flat_map(|conv| {
            let cin = if conv == 0 { 3 } else { 128 };
            [
                (format!("features.{conv}.weight"), vec![128, cin, 3, 3]),
                (format!("features.{conv}.bias"), vec![128]),
                (format!("features.{}.weight", conv + 1), vec![128]),
                (format!("features.{}.bias", conv + 1), vec![128]),
            ]
        })
        .chain([("classifier.weight".to_owned(), vec![10, 2048]), ("classifier.bias".to_owned(), vec![10])])
        .collect();
    for name in ["DC_ConvNet_CIFAR10_50_None.pth", "DM_ConvNet_CIFAR10_50_None.pth"] {
        let Value::Dict(entries) = torchfile::load(&data.join("model_pool").join(name)).expect("decodes") else {
            panic!("{name}: not a dict");
        };
        let mut found: Vec<(String, Vec<usize>)> = entries
            .iter()
            .map(|(key, value)| match key {
                Value::Str(key) => (key.clone(), tensor(value).shape.clone()),
                other => panic!("key {other:?}"),
            })
            .collect();
        assert_eq!(found.len(), 14, "{name}: {found:?}");
        found.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(found, want, "{name}");
    }
}

#[test]
fn strided_views_dtypes_and_containers_written_by_torch_decode_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_python(
        dir.path(),
        r#"
import torch, collections
base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
value = {
    "t": base.transpose(0, 2),          # non-contiguous strides
    "slice": base[1, 1:, ::2],          # storage offset + step
    "shared": (base, base[0]),          # one storage, two views
    "f64": torch.tensor([1.5, -2.25], dtype=torch.float64),
    "i64": torch.tensor([-3, 2**40]),
    "u8": torch.tensor([[0, 255]], dtype=torch.uint8),
    "scalars": [None, True, False, 7, -70000, 2**62, 3.25, "héllo", b"\x00\x01"],
    "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
    "empty": torch.zeros(0, 3),
}
torch.save(value, "mixed.pt")
torch.save(torch.nn.Parameter(torch.ones(2, 2)), "param.pt")
"#,
    );
    let value = torchfile::load(&dir.path().join("mixed.pt")).expect("decodes");
    let t = tensor(value.get("t").expect("t"));
    assert_eq!(t.shape, [4, 3, 2]);
    let expected: Vec<f32> =
        (0..4).flat_map(|k| (0..3).flat_map(move |j| (0..2).map(move |i| (i * 12 + j * 4 + k) as f32))).collect();
    assert_eq!(f32s(t), expected);
    assert_eq!(f32s(tensor(value.get("slice").expect("slice"))), [16.0, 18.0, 20.0, 22.0]);
    let shared = value.get("shared").and_then(Value::as_sequence).expect("shared");
    assert_eq!(f32s(tensor(&shared[1])), (0..12).map(|v| v as f32).collect::<Vec<_>>());
    let f64s = tensor(value.get("f64").expect("f64"));
    assert_eq!((f64s.dtype, f64s.data[..8].to_vec()), (Dtype::F64, 1.5f64.to_le_bytes().to_vec()));
    assert_eq!(i64s(tensor(value.get("i64").expect("i64"))), [-3, 1 << 40]);
    let u8s = tensor(value.get("u8").expect("u8"));
    assert_eq!((u8s.dtype, u8s.shape.clone(), u8s.data.clone()), (Dtype::U8, vec![1, 2], vec![0, 255]));
    assert_eq!(
        value.get("scalars"),
        Some(&Value::List(vec![
            Value::None,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(7),
            Value::Int(-70000),
            Value::Int(1 << 62),
            Value::Float(3.25),
            Value::Str("héllo".into()),
            Value::Bytes(vec![0, 1]),
        ]))
    );
    assert_eq!(
        value.get("ordered"),
        Some(&Value::Dict(vec![(Value::Str("b".into()), Value::Int(1)), (Value::Str("a".into()), Value::Int(2))]))
    );
    assert_eq!(tensor(value.get("empty").expect("empty")).shape, [0, 3]);
    let param = torchfile::load(&dir.path().join("param.pt")).expect("decodes");
    assert_eq!(f32s(tensor(&param)), [1.0; 4]);
}

#[test]
fn other_classes_stay_opaque_and_bad_files_get_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_python(
        dir.path(),
        r#"
import torch, datetime
torch.save({"when": datetime.date(2024, 1, 2)}, "object.pt")
torch.save(torch.ones(3), "ok.pt", _use_new_zipfile_serialization=False)
"#,
    );
    let value = torchfile::load(&dir.path().join("object.pt")).expect("decodes");
    assert!(matches!(value.get("when"), Some(Value::Object { class, .. }) if class == "datetime.date"), "{value:?}");

    let error = |path: &Path| torchfile::load(path).expect_err("fails").to_string();
    let legacy = error(&dir.path().join("ok.pt"));
    assert!(legacy.contains("legacy") && legacy.contains("ok.pt"), "{legacy}");
    let missing = error(&dir.path().join("absent.pt"));
    assert!(missing.contains("absent.pt"), "{missing}");
    let text = dir.path().join("text.pt");
    std::fs::write(&text, b"hello, not a zip").expect("write");
    assert!(error(&text).contains("not a zip archive"), "{}", error(&text));
    let good = std::fs::read(dir.path().join("object.pt")).expect("read");
    let truncated = dir.path().join("truncated.pt");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write");
    assert!(error(&truncated).contains("truncated.pt"), "{}", error(&truncated));
}
