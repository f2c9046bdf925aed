//! TinyImageNet (`tiny-imagenet-200/`) from the JPEGs of the official archive.
//!
//! Layout under the root: `wnids.txt` (one WordNet id per line, 200 of them),
//! `train/<wnid>/images/*.JPEG` (500 per class) and `val/val_annotations.txt` (`<file>\t<wnid>\t`
//! and a bounding box per line) with `val/images/<file>`. The labelled `val` split is the test
//! split (the official `test/` images have no labels).
//!
//! Label convention: a class's label is the index of its wnid in the sorted wnids. That is the
//! index torchvision's `ImageFolder` assigns (it sorts the class folder names), which is how
//! DC-bench's `get_dataset` loads `train/` and the per-class `val/` folders; the order of
//! `wnids.txt` itself does not matter. Order of the images: train by label, then file name; val
//! as `val_annotations.txt` lists them (classes interleaved, so every prefix is a fair sample).
//!
//! Every image must be a 64x64 JPEG; grayscale (and CMYK) JPEGs, which the real dataset contains,
//! become RGB. The first time a split is loaded its JPEGs are decoded on all cores and kept in
//! `<root>/beard-cache/<split>.safetensors` ([`super::cache`]); later loads read that file unless
//! the list of source files or their labels changed. When the root is read-only the cache is
//! skipped with a warning and the JPEGs are decoded on every load. Missing files and directories
//! are I/O errors naming them; a malformed `wnids.txt` or annotation line, an unknown wnid, an
//! undecodable JPEG or a wrong image size is reported with the file, the line where there is one,
//! and what was expected.

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::ImageFormat;
use sha2::{Digest, Sha256};

use super::cache::{self, Key};
use super::{DataError, HostBytes, Part, TINY_IMAGENET, read_dataset_file};

const SIZE: usize = TINY_IMAGENET.image_size;
const PLANE: usize = SIZE * SIZE;

/// One source image and its label.
struct Entry {
    path: PathBuf,
    label: i64,
}

/// Read one split from the `tiny-imagenet-200` directory `root`, from its cache when it is fresh.
pub fn load(root: &Path, part: Part) -> Result<HostBytes, DataError> {
    let wnids = read_wnids(root)?;
    let (name, entries) = match part {
        Part::Train => ("train", train_entries(root, &wnids)?),
        Part::Test => ("val", val_entries(root, &wnids)?),
    };
    let key = Key { images: entries.len(), image_size: SIZE, fingerprint: fingerprint(root, &entries) };
    let cache_path = root.join("beard-cache").join(format!("{name}.safetensors"));
    match cache::read(&cache_path, &key) {
        Ok(Some(split)) => return Ok(split),
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "ignoring the unreadable TinyImageNet cache; decoding the JPEGs again"),
    }
    let started = Instant::now();
    tracing::info!(split = name, images = entries.len(), root = %root.display(), "decoding TinyImageNet JPEGs");
    let split = decode_all(&entries)?;
    tracing::info!(split = name, seconds = started.elapsed().as_secs_f64(), "decoded TinyImageNet");
    if let Err(error) = cache::write(&cache_path, &key, &split) {
        tracing::warn!(%error, "cannot cache the decoded TinyImageNet split; it will be decoded again next time");
    }
    Ok(split)
}

fn malformed(path: &Path, message: String) -> DataError {
    DataError::Malformed { path: path.into(), message }
}

fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = read_dataset_file("tinyimagenet", path)?;
    String::from_utf8(bytes).map_err(|_| malformed(path, "not UTF-8 text".into()))
}

/// The class wnids of `root/wnids.txt`, sorted: a wnid's label is its index.
fn read_wnids(root: &Path) -> Result<Vec<String>, DataError> {
    let path = root.join("wnids.txt");
    let mut wnids: Vec<(String, usize)> = Vec::new();
    for (index, line) in read_text(&path)?.lines().enumerate() {
        let wnid = line.trim();
        if wnid.is_empty() {
            continue;
        }
        if wnid.contains(|c: char| c.is_whitespace() || c == '/' || c == '\\') || wnid.starts_with('.') {
            return Err(malformed(&path, format!("line {}: {wnid:?} is not a WordNet id like n01443537", index + 1)));
        }
        if let Some((_, first)) = wnids.iter().find(|(seen, _)| seen == wnid) {
            return Err(malformed(&path, format!("line {}: wnid {wnid} repeats line {first}", index + 1)));
        }
        wnids.push((wnid.to_owned(), index + 1));
    }
    if wnids.is_empty() || wnids.len() > TINY_IMAGENET.classes {
        return Err(malformed(
            &path,
            format!("{} wnids, expected 1 to {} (one WordNet id per line)", wnids.len(), TINY_IMAGENET.classes),
        ));
    }
    let mut wnids: Vec<String> = wnids.into_iter().map(|(wnid, _)| wnid).collect();
    wnids.sort_unstable();
    Ok(wnids)
}

/// `train/<wnid>/images/*.JPEG` of every class, by label then file name.
fn train_entries(root: &Path, wnids: &[String]) -> Result<Vec<Entry>, DataError> {
    let mut entries = Vec::new();
    for (label, wnid) in wnids.iter().enumerate() {
        let directory = root.join("train").join(wnid).join("images");
        let io = |source| DataError::Io { path: directory.clone(), source };
        let mut files = Vec::new();
        for item in std::fs::read_dir(&directory).map_err(io)? {
            let path = item.map_err(io)?.path();
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpeg") || e.eq_ignore_ascii_case("jpg")) {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(malformed(&directory, "holds no .JPEG file, expected the class's training images".into()));
        }
        files.sort_unstable();
        entries.extend(files.into_iter().map(|path| Entry { path, label: label as i64 }));
    }
    Ok(entries)
}

/// The images `val/val_annotations.txt` lists, in its order.
fn val_entries(root: &Path, wnids: &[String]) -> Result<Vec<Entry>, DataError> {
    let path = root.join("val").join("val_annotations.txt");
    let mut entries = Vec::new();
    for (index, line) in read_text(&path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |message: String| malformed(&path, format!("line {}: {message}", index + 1));
        let mut fields = line.split('\t').map(str::trim);
        let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
            return Err(at(format!("{line:?} is not `<file>\\t<wnid>\\t<box>`")));
        };
        if file.is_empty() || Path::new(file).file_name().is_none_or(|name| name != file) {
            return Err(at(format!("{file:?} is not a file name in val/images")));
        }
        let label = wnids.binary_search_by(|w| w.as_str().cmp(wnid)).map_err(|_| {
            at(format!("wnid {wnid:?} (of {file}) is not in wnids.txt, expected one of its {} classes", wnids.len()))
        })?;
        entries.push(Entry { path: root.join("val").join("images").join(file), label: label as i64 });
    }
    if entries.is_empty() {
        return Err(malformed(&path, "lists no image, expected `<file>\\t<wnid>\\t<box>` lines".into()));
    }
    Ok(entries)
}

/// SHA-256 of the entries' paths under `root` and labels.
fn fingerprint(root: &Path, entries: &[Entry]) -> String {
    let mut hasher = Sha256::new();
    for entry in entries {
        hasher.update(entry.path.strip_prefix(root).unwrap_or(&entry.path).as_os_str().as_encoded_bytes());
        hasher.update(format!("\0{}\n", entry.label));
    }
    hex::encode(hasher.finalize())
}

/// Decode every entry, on all cores, into one `[n, 3, 64, 64]` byte buffer.
fn decode_all(entries: &[Entry]) -> Result<HostBytes, DataError> {
    let mut pixels = vec![0u8; entries.len() * 3 * PLANE];
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = entries.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = entries
            .chunks(per_thread)
            .zip(pixels.chunks_mut(per_thread * 3 * PLANE))
            .map(|(entries, out)| {
                scope.spawn(move || {
                    entries.iter().zip(out.chunks_exact_mut(3 * PLANE)).try_for_each(|(e, o)| decode(&e.path, o))
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })?;
    Ok(HostBytes { pixels, labels: entries.iter().map(|entry| entry.label).collect() })
}

/// Decode the JPEG at `path` into `out` (`[3, 64, 64]`, channel-major).
fn decode(path: &Path, out: &mut [u8]) -> Result<(), DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    let image = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg)
        .map_err(|error| malformed(path, format!("not a decodable JPEG ({error})")))?;
    if (image.width(), image.height()) != (SIZE as u32, SIZE as u32) {
        return Err(malformed(path, format!("{}x{} image, expected {SIZE}x{SIZE}", image.width(), image.height())));
    }
    for (index, pixel) in image.to_rgb8().pixels().enumerate() {
        for (channel, &value) in pixel.0.iter().enumerate() {
            out[channel * PLANE + index] = value;
        }
    }
    Ok(())
}
