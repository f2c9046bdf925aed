//! A writer for the two kinds of `torch.save` file this project exports, in the zip layout
//! PyTorch (>= 1.6) writes and `torch.load(..., weights_only=True)` accepts:
//!
//! - a state dict, an `OrderedDict` of tensors ([`save_state_dict`]);
//! - a distilled set in DC-bench's result layout, `{'data': [[images, labels]], 'accs_all_exps':
//!   {}}` ([`save_distilled_set`]), which DC-bench's and BEARD's code read as they read the
//!   released sets.
//!
//! The archive holds `archive/data.pkl` (first, as PyTorch's reader expects), `archive/byteorder`
//! (`little`), one `archive/data/<i>` entry per tensor with its raw little-endian bytes (stored,
//! 64-byte aligned so `mmap=True` works) and `archive/version` (`3`). The pickle is protocol 2;
//! every tensor is `torch._utils._rebuild_tensor_v2((storage persistent id), 0, shape, contiguous
//! strides, False, OrderedDict())` over its own storage `('storage', torch.<Type>Storage, '<i>',
//! 'cpu', numel)`. Nothing is memoized: the output depends only on the names, dtypes, shapes and
//! bytes.

use std::io::{Cursor, Write};

use zip::write::{FileOptions, ZipWriter};
use zip::{CompressionMethod, DateTime};

use super::TorchFileError;
use super::value::StoredTensor;

const ARCHIVE: &str = "archive";
/// PyTorch aligns storage records to 64 bytes (`.storage_alignment`).
const ALIGNMENT: u16 = 64;
/// The serialization format version current PyTorch writes.
const VERSION: &[u8] = b"3\n";

/// `torch.save(OrderedDict(tensors))` bytes, entries in the given order.
pub fn save_state_dict(tensors: &[(String, StoredTensor)]) -> Result<Vec<u8>, TorchFileError> {
    let mut pickle = Pickle::start();
    pickle.new_ordered_dict();
    pickle.0.push(b'(');
    for (key, (name, tensor)) in tensors.iter().enumerate() {
        pickle.unicode(name);
        pickle.tensor(key, tensor);
    }
    pickle.0.push(b'u'); // SETITEMS
    archive(pickle.finish(), tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)))
}

/// `torch.save({'data': [[images, labels]], 'accs_all_exps': {}})` bytes: one experiment of a
/// distilled set in DC-bench's result layout.
pub fn save_distilled_set(images: &StoredTensor, labels: &StoredTensor) -> Result<Vec<u8>, TorchFileError> {
    let mut pickle = Pickle::start();
    pickle.0.extend_from_slice(b"}("); // EMPTY_DICT, MARK
    pickle.unicode("data");
    pickle.0.extend_from_slice(b"](]("); // EMPTY_LIST, MARK, EMPTY_LIST, MARK
    pickle.tensor(0, images);
    pickle.tensor(1, labels);
    pickle.0.extend_from_slice(b"ee"); // APPENDS, APPENDS
    pickle.unicode("accs_all_exps");
    pickle.0.extend_from_slice(b"}u"); // EMPTY_DICT, SETITEMS
    archive(pickle.finish(), [("images", images), ("labels", labels)])
}

/// The zip archive around `pickle`; storage `i` holds the bytes of the `i`-th tensor.
fn archive<'a>(
    pickle: Vec<u8>,
    tensors: impl IntoIterator<Item = (&'a str, &'a StoredTensor)>,
) -> Result<Vec<u8>, TorchFileError> {
    let tensors: Vec<_> = tensors.into_iter().collect();
    for (name, tensor) in &tensors {
        if tensor.data.len() != tensor.numel() * tensor.dtype.size() {
            return Err(TorchFileError::Write(format!(
                "tensor {name:?} of shape {:?} ({:?}) holds {} bytes",
                tensor.shape,
                tensor.dtype,
                tensor.data.len()
            )));
        }
    }
    let zip_error = |error: zip::result::ZipError| TorchFileError::Write(error.to_string());
    let io_error = |error: std::io::Error| TorchFileError::Write(error.to_string());
    let options = FileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::default())
        .large_file(true);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file(format!("{ARCHIVE}/data.pkl"), options).map_err(zip_error)?;
    zip.write_all(&pickle).map_err(io_error)?;
    zip.start_file(format!("{ARCHIVE}/byteorder"), options).map_err(zip_error)?;
    zip.write_all(b"little").map_err(io_error)?;
    for (key, (_, tensor)) in tensors.iter().enumerate() {
        zip.start_file_aligned(format!("{ARCHIVE}/data/{key}"), options, ALIGNMENT).map_err(zip_error)?;
        zip.write_all(&tensor.data).map_err(io_error)?;
    }
    zip.start_file(format!("{ARCHIVE}/version"), options).map_err(zip_error)?;
    zip.write_all(VERSION).map_err(io_error)?;
    Ok(zip.finish().map_err(zip_error)?.into_inner())
}

/// Row-major strides of `shape`, in elements.
fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// A pickle program under construction.
struct Pickle(Vec<u8>);

impl Pickle {
    /// `PROTO 2`.
    fn start() -> Self {
        Self(vec![0x80, 2])
    }

    /// The program with its `STOP`.
    fn finish(mut self) -> Vec<u8> {
        self.0.push(b'.');
        self.0
    }

    /// The contiguous `tensor` over its own storage, persistent id `key`.
    fn tensor(&mut self, key: usize, tensor: &StoredTensor) {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.0.push(b'(');
        self.0.push(b'(');
        self.unicode("storage");
        self.global("torch", tensor.dtype.storage_class());
        self.unicode(&key.to_string());
        self.unicode("cpu");
        self.int(tensor.numel() as u64);
        self.0.extend_from_slice(b"tQ"); // TUPLE, BINPERSID
        self.int(0); // storage offset
        self.tuple(&tensor.shape);
        self.tuple(&contiguous_strides(&tensor.shape));
        self.0.push(0x89); // NEWFALSE: requires_grad
        self.new_ordered_dict(); // backward hooks
        self.0.extend_from_slice(b"tR"); // TUPLE, REDUCE
    }

    /// `GLOBAL module\nname\n`.
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        for part in [module, name] {
            self.0.extend_from_slice(part.as_bytes());
            self.0.push(b'\n');
        }
    }

    /// `collections.OrderedDict()`.
    fn new_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.0.extend_from_slice(b")R"); // EMPTY_TUPLE, REDUCE
    }

    /// `BINUNICODE`.
    fn unicode(&mut self, text: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
    }

    /// The shortest of `BININT1`, `BININT2`, `BININT` or an 8-byte `LONG1`.
    fn int(&mut self, value: u64) {
        if let Ok(byte) = u8::try_from(value) {
            self.0.extend_from_slice(&[b'K', byte]);
        } else if let Ok(short) = u16::try_from(value) {
            self.0.push(b'M');
            self.0.extend_from_slice(&short.to_le_bytes());
        } else if let Ok(int) = i32::try_from(value) {
            self.0.push(b'J');
            self.0.extend_from_slice(&int.to_le_bytes());
        } else {
            // Nine bytes keep the sign bit clear for every u64.
            self.0.extend_from_slice(&[0x8a, 9]);
            self.0.extend_from_slice(&value.to_le_bytes());
            self.0.push(0);
        }
    }

    /// `MARK ints TUPLE`.
    fn tuple(&mut self, items: &[usize]) {
        self.0.push(b'(');
        for &item in items {
            self.int(item as u64);
        }
        self.0.push(b't');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torchfile::{Dtype, Value, read};

    fn tensor(dtype: Dtype, shape: &[usize], fill: u8) -> StoredTensor {
        let numel: usize = shape.iter().product();
        StoredTensor { dtype, shape: shape.to_vec(), data: (0..numel * dtype.size()).map(|i| i as u8 ^ fill).collect() }
    }

    #[test]
    fn state_dicts_read_back_in_order() {
        let tensors = vec![
            ("features.0.weight".to_owned(), tensor(Dtype::F32, &[4, 3, 3, 3], 1)),
            ("features.0.bias".to_owned(), tensor(Dtype::F32, &[4], 2)),
            ("scalar".to_owned(), tensor(Dtype::F64, &[], 3)),
            ("steps".to_owned(), tensor(Dtype::I64, &[2], 4)),
            ("empty".to_owned(), tensor(Dtype::F16, &[0, 5], 5)),
            ("wide".to_owned(), tensor(Dtype::U8, &[3, 70_000], 6)),
        ];
        let bytes = save_state_dict(&tensors).unwrap();
        let Value::Dict(entries) = read(&bytes, "written").unwrap() else { panic!("not a dict") };
        let back: Vec<(String, StoredTensor)> = entries
            .into_iter()
            .map(|(key, value)| match (key, value) {
                (Value::Str(name), Value::Tensor(tensor)) => (name, tensor),
                other => panic!("unexpected entry {other:?}"),
            })
            .collect();
        assert_eq!(back, tensors);
        assert_eq!(save_state_dict(&tensors).unwrap(), bytes, "deterministic");
    }

    #[test]
    fn distilled_sets_read_back_in_dc_bench_layout() {
        let images = tensor(Dtype::F32, &[4, 3, 2, 2], 7);
        let labels = tensor(Dtype::I64, &[4], 8);
        let bytes = save_distilled_set(&images, &labels).unwrap();
        let value = read(&bytes, "written").unwrap();
        let data = value.get("data").and_then(Value::as_sequence).expect("a 'data' list");
        assert_eq!(data.len(), 1);
        match data[0].as_sequence() {
            Some([Value::Tensor(a), Value::Tensor(b)]) => assert_eq!((a, b), (&images, &labels)),
            other => panic!("unexpected experiment {other:?}"),
        }
        assert_eq!(value.get("accs_all_exps"), Some(&Value::Dict(Vec::new())));
        assert_eq!(save_distilled_set(&images, &labels).unwrap(), bytes, "deterministic");
    }

    #[test]
    fn strides_are_row_major_and_sizes_are_checked() {
        assert_eq!(contiguous_strides(&[2, 3, 4]), [12, 4, 1]);
        assert_eq!(contiguous_strides(&[]), Vec::<usize>::new());
        let mut bad = tensor(Dtype::F32, &[2], 0);
        bad.data.pop();
        let error = save_state_dict(&[("x".into(), bad)]).unwrap_err().to_string();
        assert!(error.contains("\"x\"") && error.contains("7 bytes"), "{error}");
    }

    #[test]
    fn large_integers_use_long1() {
        let mut pickle = Pickle(Vec::new());
        for value in [7, 300, 70_000, 1 << 40] {
            pickle.int(value);
        }
        assert_eq!(&pickle.0[..3], [b'K', 7, b'M']);
        assert_eq!(pickle.0[pickle.0.len() - 11..pickle.0.len() - 9], [0x8a, 9]);
    }
}
