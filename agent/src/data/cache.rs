//! One decoded split kept as a safetensors file, so that datasets stored as many small image
//! files (TinyImageNet's JPEGs) are decoded once.
//!
//! The file holds `images` (uint8, `[n, 3, size, size]`) and `labels` (int64, `[n]`), and its
//! header records a format tag, the number of source files (`n`), the image size and a
//! fingerprint of the sources (their names and labels). [`read`] uses a file only when all four
//! match what the caller expects now; anything else is stale and the caller rebuilds it. [`write`]
//! writes a temporary file beside the target and renames it, so a reader never sees half a file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{DataError, HostBytes};

const FORMAT: &str = "beard-split-u8-v1";

/// What a cache file must match to be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// Number of source files, one image each.
    pub images: usize,
    pub image_size: usize,
    /// A digest of the source files' names and labels.
    pub fingerprint: String,
}

impl Key {
    fn header(&self) -> HashMap<String, String> {
        HashMap::from([
            ("format".to_owned(), FORMAT.to_owned()),
            ("source_files".to_owned(), self.images.to_string()),
            ("image_size".to_owned(), self.image_size.to_string()),
            ("fingerprint".to_owned(), self.fingerprint.clone()),
        ])
    }
}

/// The split cached at `path`, if that file exists and was built from the sources `key`
/// describes; `Ok(None)` when it is absent or stale.
pub fn read(path: &Path, key: &Key) -> Result<Option<HostBytes>, DataError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DataError::Io { path: path.into(), source }),
    };
    let malformed = |message: String| DataError::Malformed { path: PathBuf::from(path), message };
    let not_safetensors = |e| malformed(format!("not a safetensors file: {e}"));
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;
    if header.metadata().as_ref() != Some(&key.header()) {
        return Ok(None);
    }
    let file = SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
    let size = key.image_size;
    let images = file.tensor("images").map_err(|e| malformed(format!("tensor `images`: {e}")))?;
    let labels = file.tensor("labels").map_err(|e| malformed(format!("tensor `labels`: {e}")))?;
    if images.dtype() != Dtype::U8 || images.shape() != [key.images, 3, size, size] {
        return Err(malformed(format!(
            "tensor `images` is {:?} {:?}, expected U8 [{}, 3, {size}, {size}]",
            images.dtype(),
            images.shape(),
            key.images
        )));
    }
    if labels.dtype() != Dtype::I64 || labels.shape() != [key.images] {
        return Err(malformed(format!(
            "tensor `labels` is {:?} {:?}, expected I64 [{}]",
            labels.dtype(),
            labels.shape(),
            key.images
        )));
    }
    let labels = labels.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
    Ok(Some(HostBytes { pixels: images.data().to_vec(), labels }))
}

/// Write `split`, built from the sources `key` describes, to `path` (creating its directory).
pub fn write(path: &Path, key: &Key, split: &HostBytes) -> Result<(), DataError> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let io = |source| DataError::Io { path: path.into(), source };
    std::fs::create_dir_all(directory).map_err(io)?;
    let size = key.image_size;
    let labels: Vec<u8> = split.labels.iter().flat_map(|label| label.to_le_bytes()).collect();
    let view = |dtype, shape, data| {
        TensorView::new(dtype, shape, data)
            .map_err(|e| DataError::Malformed { path: path.into(), message: format!("cannot encode the cache: {e}") })
    };
    let tensors = [
        ("images", view(Dtype::U8, vec![key.images, 3, size, size], &split.pixels)?),
        ("labels", view(Dtype::I64, vec![key.images], &labels)?),
    ];
    let temporary = tempfile::Builder::new().prefix(".partial-").tempfile_in(directory).map_err(io)?;
    safetensors::serialize_to_file(tensors, Some(key.header()), temporary.path())
        .map_err(|e| DataError::Malformed { path: path.into(), message: format!("cannot write the cache: {e}") })?;
    temporary.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(images: usize, fingerprint: &str) -> Key {
        Key { images, image_size: 2, fingerprint: fingerprint.into() }
    }

    #[test]
    fn a_written_split_reads_back_only_under_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache/val.safetensors");
        let split = HostBytes { pixels: (0..24).collect(), labels: vec![7, -1] };
        assert!(read(&path, &key(2, "a")).unwrap().is_none(), "absent");
        write(&path, &key(2, "a"), &split).unwrap();
        let back = read(&path, &key(2, "a")).unwrap().expect("cached");
        assert_eq!((back.pixels, back.labels), (split.pixels, split.labels));
        assert!(read(&path, &key(2, "b")).unwrap().is_none(), "other sources");
        assert!(read(&path, &key(3, "a")).unwrap().is_none(), "another file count");
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["val.safetensors"], "no temporary file is left");
    }

    #[test]
    fn a_corrupt_cache_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.safetensors");
        std::fs::write(&path, b"garbage").unwrap();
        let error = read(&path, &key(1, "a")).err().expect("corrupt").to_string();
        assert!(error.contains("train.safetensors") && error.contains("not a safetensors file"), "{error}");
    }
}
