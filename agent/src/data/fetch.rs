//! The official dataset archives: where they are published, their published MD5 checksums, and
//! how each becomes the directory its loader reads.
//!
//! [`fetch`] is [`download`] into a temporary file beside the destination, then [`install`]:
//! [`verify`] the checksum, [`extract`] into a temporary directory beside the destination, check
//! that the dataset's files are there, and only then move the dataset's directory into place, so
//! a failure at any step leaves nothing behind. CIFAR-10 unpacks to `cifar-10-batches-bin/`,
//! CIFAR-100 to `cifar-100-binary/`, TinyImageNet to `tiny-imagenet-200/`: the roots the loaders
//! take. HTTP(S) goes through `ureq` with rustls and without transparent decompression, so the
//! bytes checked are the bytes published.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use super::Part;
use super::cifar::Variant;

/// How an archive is packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    TarGz,
    Zip,
}

/// Where a dataset's archive is and what it must unpack to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub url: String,
    /// The published MD5 of the archive, lowercase hex.
    pub md5: String,
    pub kind: ArchiveKind,
    /// The directory the archive unpacks to: the dataset's root.
    pub root: &'static str,
    /// Files the root must hold, relative to it.
    pub files: Vec<&'static str>,
}

/// The datasets [`official`] knows.
pub const DATASETS: [&str; 3] = ["cifar10", "cifar100", "tinyimagenet"];

/// The official archive of `dataset` (one of [`DATASETS`]).
pub fn official(dataset: &str) -> Result<Source, FetchError> {
    let cifar = |variant: Variant, url: &str, md5: &str, root| Source {
        url: url.into(),
        md5: md5.into(),
        kind: ArchiveKind::TarGz,
        root,
        files: [variant.files(Part::Train), variant.files(Part::Test)].concat(),
    };
    Ok(match dataset {
        "cifar10" => cifar(
            Variant::Cifar10,
            "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530",
            "cifar-10-batches-bin",
        ),
        "cifar100" => cifar(
            Variant::Cifar100,
            "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
            "03b5dce01913d631647c71ecec9e9cb8",
            "cifar-100-binary",
        ),
        "tinyimagenet" => Source {
            url: "http://cs231n.stanford.edu/tiny-imagenet-200.zip".into(),
            md5: "90528d7ca1a48142e341f4ef8d21d0de".into(),
            kind: ArchiveKind::Zip,
            root: "tiny-imagenet-200",
            files: vec!["wnids.txt", "val/val_annotations.txt"],
        },
        _ => return Err(FetchError::UnknownDataset(dataset.to_owned())),
    })
}

/// Why an archive could not be fetched or installed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no archive for dataset {0:?}: the datasets to fetch are cifar10, cifar100 and tinyimagenet")]
    UnknownDataset(String),
    #[error("{} already exists: remove it to fetch the dataset again", .0.display())]
    Exists(PathBuf),
    #[error("cannot download {url}: {message}")]
    Download { url: String, message: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: MD5 {actual}, expected the published {expected}: a corrupt or different archive", path.display())]
    Checksum { path: PathBuf, expected: String, actual: String },
    #[error("{}: cannot unpack the archive: {message}", path.display())]
    Extract { path: PathBuf, message: String },
}

/// What a fetch is doing, for progress display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The server answered; `total` is the archive's size when it said so.
    Downloading {
        url: String,
        total: Option<u64>,
    },
    /// Bytes received so far.
    Received(u64),
    Verifying,
    Extracting,
}

/// Download `source`'s archive and install it under `to`; the dataset's root.
pub fn fetch(source: &Source, to: &Path, mut progress: impl FnMut(Progress)) -> Result<PathBuf, FetchError> {
    absent(&to.join(source.root))?;
    std::fs::create_dir_all(to).map_err(|error| FetchError::Io { path: to.into(), source: error })?;
    let mut archive = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(to)
        .map_err(|error| FetchError::Io { path: to.into(), source: error })?;
    download(&source.url, &mut archive, &mut progress)?;
    install(archive.path(), source, to, progress)
}

/// Download `url` into `out`, reporting progress; the number of bytes.
pub fn download(
    url: &str,
    out: &mut tempfile::NamedTempFile,
    mut progress: impl FnMut(Progress),
) -> Result<u64, FetchError> {
    let failed = |message: String| FetchError::Download { url: url.to_owned(), message };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("beard-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|error| failed(error.to_string()))?;
    progress(Progress::Downloading { url: url.to_owned(), total: response.body().content_length() });
    let mut reader = response.body_mut().as_reader();
    let mut buffer = vec![0u8; 1 << 20];
    let mut received = 0u64;
    loop {
        let read = reader.read(&mut buffer).map_err(|error| failed(format!("after {received} bytes: {error}")))?;
        if read == 0 {
            break;
        }
        out.write_all(&buffer[..read]).map_err(|error| FetchError::Io { path: out.path().into(), source: error })?;
        received += read as u64;
        progress(Progress::Received(received));
    }
    out.flush().map_err(|error| FetchError::Io { path: out.path().into(), source: error })?;
    Ok(received)
}

/// Verify `archive` against `source`'s checksum and unpack it under `to`; the dataset's root.
pub fn install(
    archive: &Path,
    source: &Source,
    to: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<PathBuf, FetchError> {
    let target = to.join(source.root);
    absent(&target)?;
    progress(Progress::Verifying);
    verify(archive, &source.md5)?;
    progress(Progress::Extracting);
    std::fs::create_dir_all(to).map_err(|error| FetchError::Io { path: to.into(), source: error })?;
    let staging = tempfile::Builder::new()
        .prefix(".extract-")
        .tempdir_in(to)
        .map_err(|error| FetchError::Io { path: to.into(), source: error })?;
    extract(archive, source.kind, staging.path())?;
    let unpacked = staging.path().join(source.root);
    if let Some(missing) = source.files.iter().find(|file| !unpacked.join(file).is_file()) {
        return Err(FetchError::Extract {
            path: archive.into(),
            message: format!("it holds no {}/{missing}, expected the dataset's files there", source.root),
        });
    }
    std::fs::rename(&unpacked, &target).map_err(|error| FetchError::Io { path: target.clone(), source: error })?;
    Ok(target)
}

/// Check that the file `archive` has the MD5 `expected` (hex, any case).
pub fn verify(archive: &Path, expected: &str) -> Result<(), FetchError> {
    let io = |error| FetchError::Io { path: archive.into(), source: error };
    let mut hasher = Md5::new();
    std::io::copy(&mut BufReader::new(File::open(archive).map_err(io)?), &mut hasher).map_err(io)?;
    let actual = hex::encode(hasher.finalize());
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(FetchError::Checksum { path: archive.into(), expected: expected.to_ascii_lowercase(), actual })
    }
}

/// Unpack `archive` into the directory `into`; entries that would land outside it are refused.
pub fn extract(archive: &Path, kind: ArchiveKind, into: &Path) -> Result<(), FetchError> {
    let file = File::open(archive).map_err(|error| FetchError::Io { path: archive.into(), source: error })?;
    let failed = |message: String| FetchError::Extract { path: archive.into(), message };
    match kind {
        ArchiveKind::TarGz => tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)))
            .unpack(into)
            .map_err(|error| failed(error.to_string())),
        ArchiveKind::Zip => zip::ZipArchive::new(BufReader::new(file))
            .and_then(|mut zip| zip.extract(into))
            .map_err(|error| failed(error.to_string())),
    }
}

fn absent(target: &Path) -> Result<(), FetchError> {
    if target.exists() { Err(FetchError::Exists(target.into())) } else { Ok(()) }
}
