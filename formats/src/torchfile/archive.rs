//! The zip container of `torch.save` (PyTorch >= 1.6): `<name>/data.pkl` holds the pickle,
//! `<name>/data/<key>` the raw little-endian bytes of each storage, `<name>/byteorder` (when
//! present) says `little` or `big`.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::rc::Rc;

use zip::ZipArchive;

use super::TorchFileError;
use super::pickle::{self, StorageRef};
use super::value::Value;

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// Legacy (pre-1.6) torch files start with a pickled magic number, protocol 2.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a";

/// Whether `bytes` start as a `torch.save` file does: a zip archive, or a legacy pickle.
pub fn looks_like_torch_file(bytes: &[u8]) -> bool {
    bytes.starts_with(ZIP_MAGIC) || bytes.starts_with(LEGACY_MAGIC)
}

/// Decode the `torch.save` archive in `bytes`; `origin` names it in errors.
pub fn read(bytes: &[u8], origin: &str) -> Result<Value, TorchFileError> {
    let invalid = |message: String| TorchFileError::Archive { file: origin.to_owned(), message };
    if !bytes.starts_with(ZIP_MAGIC) {
        return Err(invalid(if bytes.starts_with(LEGACY_MAGIC) {
            "a legacy (pre-zip, torch < 1.6) torch file; re-save it with a current torch".into()
        } else {
            format!("not a zip archive (starts with {:02x?})", &bytes[..bytes.len().min(4)])
        }));
    }
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| invalid(format!("bad zip archive: {e}")))?;
    let pickles: Vec<String> = archive
        .file_names()
        .filter(|name| name.ends_with("/data.pkl") && name.matches('/').count() == 1)
        .map(str::to_owned)
        .collect();
    let [pickle_name] = pickles.as_slice() else {
        return Err(invalid(format!("expected one <name>/data.pkl entry, found {}", pickles.len())));
    };
    let prefix = pickle_name.trim_end_matches("data.pkl").to_owned();
    if let Ok(order) = entry(&mut archive, &format!("{prefix}byteorder"), origin)
        && order != b"little"
    {
        return Err(invalid(format!(
            "byteorder is {:?}; only little-endian files are supported",
            String::from_utf8_lossy(&order)
        )));
    }
    let program = entry(&mut archive, pickle_name, origin)?;
    let mut cache: HashMap<String, Rc<Vec<u8>>> = HashMap::new();
    let mut storage = |reference: &StorageRef| -> Result<Rc<Vec<u8>>, String> {
        if let Some(data) = cache.get(&reference.key) {
            return Ok(data.clone());
        }
        let name = format!("{prefix}data/{}", reference.key);
        let data = entry(&mut archive, &name, origin).map_err(|e| e.to_string())?;
        let expected = reference.numel * reference.dtype.size();
        if data.len() != expected {
            return Err(format!(
                "storage entry {name} holds {} bytes, expected {expected} ({} x {:?})",
                data.len(),
                reference.numel,
                reference.dtype
            ));
        }
        let data = Rc::new(data);
        cache.insert(reference.key.clone(), data.clone());
        Ok(data)
    };
    pickle::decode(&program, &mut storage).map_err(|error| TorchFileError::Pickle {
        file: origin.to_owned(),
        entry: pickle_name.clone(),
        error,
    })
}

fn entry(archive: &mut ZipArchive<Cursor<&[u8]>>, name: &str, origin: &str) -> Result<Vec<u8>, TorchFileError> {
    let invalid = |message: String| TorchFileError::Archive { file: origin.to_owned(), message };
    let mut file = archive.by_name(name).map_err(|e| invalid(format!("entry {name}: {e}")))?;
    let mut data = Vec::with_capacity(file.size() as usize);
    file.read_to_end(&mut data).map_err(|e| invalid(format!("entry {name}: {e}")))?;
    Ok(data)
}
