//! NumPy `.npz` archives as a dict of tensors: each `<name>.npy` entry (stored or deflated)
//! becomes the tensor `<name>`, so a distilled set saved with `np.savez(path, images=...,
//! labels=...)` reads like the other layouts.
//!
//! A `.npy` entry is the magic `\x93NUMPY`, a version byte pair, a little-endian header length
//! (2 bytes in version 1, 4 in versions 2 and 3), a Python-literal header
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (n, ...), }`, then the raw data. Supported
//! are C-order arrays of little-endian (or one-byte) floats, ints, `uint8` and `bool`; anything
//! else (Fortran order, big-endian, object or complex arrays, a wrong data length) is an error
//! that names the entry.

use std::io::{Cursor, Read};
use std::path::Path;

use zip::ZipArchive;

use super::DataError;
use beard_formats::torchfile::{Dtype, StoredTensor, Value};

const MAGIC: &[u8] = b"\x93NUMPY";

/// The arrays of the `.npz` file at `path`, in archive order.
pub fn load(path: &Path) -> Result<Value, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    let invalid = |message: String| DataError::Distilled { path: path.display().to_string(), message };
    let mut archive = ZipArchive::new(Cursor::new(bytes.as_slice()))
        .map_err(|e| invalid(format!("not an npz (zip) archive: {e}")))?;
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).map_err(|e| invalid(format!("entry {index}: {e}")))?;
        let name = file.name().to_owned();
        let Some(array) = name.strip_suffix(".npy") else {
            return Err(invalid(format!("entry {name} is not a .npy array")));
        };
        let mut data = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut data).map_err(|e| invalid(format!("entry {name}: {e}")))?;
        let tensor = parse_npy(&data).map_err(|message| invalid(format!("entry {name}: {message}")))?;
        entries.push((Value::Str(array.to_owned()), Value::Tensor(tensor)));
    }
    Ok(Value::Dict(entries))
}

/// One `.npy` array.
pub fn parse_npy(bytes: &[u8]) -> Result<StoredTensor, String> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("not a .npy array (no \\x93NUMPY magic)")?;
    let (header_length, rest) = match rest {
        [1, _, a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        [2 | 3, _, a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, rest),
        [major, ..] => return Err(format!(".npy format version {major} is not supported (1 to 3)")),
        [] => return Err("truncated .npy header".into()),
    };
    let header = rest.get(..header_length).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let data = &rest[header_length..];
    let descr = quoted(field(header, "descr")?).ok_or_else(|| format!("no 'descr' string in header {header:?}"))?;
    let dtype = dtype(descr)?;
    if field(header, "fortran_order")?.starts_with("True") {
        return Err("Fortran-order arrays are not supported; save np.ascontiguousarray(array)".into());
    }
    let shape = shape(field(header, "shape")?).ok_or_else(|| format!("no 'shape' tuple in header {header:?}"))?;
    let expected = shape.iter().product::<usize>() * dtype.size();
    if data.len() != expected {
        return Err(format!("{} data bytes; shape {shape:?} of {descr} needs {expected}", data.len()));
    }
    Ok(StoredTensor { dtype, shape, data: data.to_vec() })
}

/// The text after `'key':` in a header.
fn field<'a>(header: &'a str, key: &str) -> Result<&'a str, String> {
    let quoted_key = format!("'{key}':");
    let start = header.find(&quoted_key).ok_or_else(|| format!("no '{key}' in header {header:?}"))?;
    Ok(header[start + quoted_key.len()..].trim_start())
}

/// The contents of the leading `'...'` string.
fn quoted(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('\'')?;
    rest.get(..rest.find('\'')?)
}

/// The leading `(a, b, ...)` tuple of integers.
fn shape(text: &str) -> Option<Vec<usize>> {
    let rest = text.strip_prefix('(')?;
    let inner = rest.get(..rest.find(')')?)?;
    inner.split(',').map(str::trim).filter(|item| !item.is_empty()).map(|item| item.parse().ok()).collect()
}

fn dtype(descr: &str) -> Result<Dtype, String> {
    Ok(match descr {
        "<f8" => Dtype::F64,
        "<f4" => Dtype::F32,
        "<f2" => Dtype::F16,
        "<i8" => Dtype::I64,
        "<i4" => Dtype::I32,
        "<i2" => Dtype::I16,
        "|i1" => Dtype::I8,
        "|u1" => Dtype::U8,
        "|b1" => Dtype::Bool,
        other => {
            return Err(format!(
                "dtype {other:?} is not supported (little-endian float16/32/64, int8/16/32/64, uint8 or bool)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[version, 0]);
        if version == 1 {
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn headers_of_every_version_parse() {
        let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }          \n";
        let data: Vec<u8> = [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        for version in [1, 2, 3] {
            let tensor = parse_npy(&npy(version, header, &data)).unwrap();
            assert_eq!((tensor.dtype, tensor.shape.clone(), tensor.data.clone()), (Dtype::I64, vec![2], data.clone()));
        }
        let scalar = parse_npy(&npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (), }", &[7])).unwrap();
        assert_eq!((scalar.shape.len(), scalar.data), (0, vec![7]));
    }

    #[test]
    fn unsupported_or_inconsistent_arrays_are_errors() {
        let cases = [
            (npy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", &[0; 4]), "not supported"),
            (npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", &[0; 4]), "Fortran"),
            (npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", &[0; 4]), "needs 8"),
            (npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }", &[0; 4]), "shape"),
            (npy(4, "{}", &[]), "version 4"),
            (b"PK\x03\x04".to_vec(), "magic"),
            (MAGIC.to_vec(), "truncated"),
        ];
        for (bytes, expected) in cases {
            let error = parse_npy(&bytes).unwrap_err();
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
    }
}
