//! Content-addressed files beside the database, `blobs/<sha256>`: checkpoints and distilled sets.
//!
//! A file appears under its digest only whole: it is written under a temporary name in the same
//! directory and renamed. Small files (checkpoints, inline in a completion) are put at once; large
//! ones (distilled sets) arrive as chunk streams through an [`Incoming`], which checks the size
//! and SHA-256 the stream's header announced before keeping the file. Writers never collide: a
//! temporary name is unique, and two writers of one digest write the same bytes.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use beard_proto::blob::{Assembler, BlobError};
use beard_proto::keys::is_valid_key;
use beard_proto::v1::BlobChunk;

use crate::store::{StoreError, StoreResult};

/// The blob directory.
#[derive(Clone, Debug)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    /// The blobs in `dir`, created when missing.
    pub fn open(dir: PathBuf) -> StoreResult<Self> {
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        Ok(Self { dir })
    }

    /// Where the blob `digest` lives (whether or not it is there).
    pub fn path(&self, digest: &str) -> StoreResult<PathBuf> {
        if !is_valid_key(digest) {
            return Err(StoreError::InvalidDigest(digest.to_owned()));
        }
        Ok(self.dir.join(digest))
    }

    /// Whether the blob `digest` is stored.
    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|path| path.is_file())
    }

    /// Store `bytes` under their SHA-256 `digest` (verified by the caller).
    pub fn put(&self, digest: &str, bytes: &[u8]) -> StoreResult<()> {
        let path = self.path(digest)?;
        if path.exists() {
            return Ok(());
        }
        let tmp = self.temporary();
        let io = |source| StoreError::Io { path: tmp.clone(), source };
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Delete the blob `digest` (nothing when it is not there).
    pub fn remove(&self, digest: &str) -> StoreResult<()> {
        let path = self.path(digest)?;
        match std::fs::remove_file(&path) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io { path, source }),
            _ => Ok(()),
        }
    }

    pub fn get(&self, digest: &str) -> StoreResult<Vec<u8>> {
        let path = self.path(digest)?;
        std::fs::read(&path).map_err(|source| StoreError::Io { path, source })
    }

    /// A streamed file on its way in.
    pub fn incoming(&self) -> StoreResult<Incoming> {
        let tmp = self.temporary();
        let file = File::create(&tmp).map_err(|source| StoreError::Io { path: tmp.clone(), source })?;
        Ok(Incoming { assembler: Assembler::new(BufWriter::new(file)), partial: Partial(tmp), blobs: self.clone() })
    }

    fn temporary(&self) -> PathBuf {
        self.dir.join(format!(".{}.partial", uuid::Uuid::new_v4()))
    }
}

/// A file arriving in chunks; kept under its digest by [`Incoming::keep`], removed otherwise.
pub struct Incoming {
    assembler: Assembler<BufWriter<File>>,
    partial: Partial,
    blobs: Blobs,
}

/// A temporary file, removed when dropped unless it was renamed away.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Incoming {
    pub fn push(&mut self, chunk: BlobChunk) -> Result<(), BlobError> {
        self.assembler.push(chunk)
    }

    /// Keep the whole, checked file under its digest; returns the digest.
    pub fn keep(self) -> Result<String, IncomingError> {
        let Incoming { assembler, partial, blobs } = self;
        let (header, _) = assembler.finish()?;
        let path = blobs.path(&header.sha256)?;
        std::fs::rename(&partial.0, &path).map_err(|source| StoreError::Io { path, source })?;
        Ok(header.sha256)
    }
}

/// Why a streamed file was not kept.
#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    #[error(transparent)]
    Stream(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use beard_proto::blob::chunks;
    use beard_proto::keys::sha256_hex;
    use beard_proto::v1::BlobHeader;

    #[test]
    fn streamed_files_are_kept_whole_and_checked_or_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path().join("blobs")).expect("blobs");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut incoming = blobs.incoming().expect("incoming");
        for chunk in chunks(&bytes, BlobHeader::default()) {
            incoming.push(chunk).expect("a good chunk");
        }
        let digest = incoming.keep().expect("kept");
        assert_eq!(digest, sha256_hex(&bytes));
        assert_eq!(blobs.get(&digest).expect("stored"), bytes);

        let mut corrupt = chunks(&bytes, BlobHeader::default());
        corrupt[2].data[0] ^= 1;
        let other = BlobHeader { sha256: sha256_hex(b"other"), ..corrupt[0].header.clone().expect("header") };
        corrupt[0].header = Some(other);
        let mut incoming = blobs.incoming().expect("incoming");
        for chunk in corrupt {
            incoming.push(chunk).expect("sizes fit");
        }
        assert!(matches!(incoming.keep(), Err(IncomingError::Stream(BlobError::Digest { .. }))));
        assert!(!blobs.contains(&sha256_hex(b"other")));
        let left: Vec<_> = std::fs::read_dir(dir.path().join("blobs")).expect("dir").collect();
        assert_eq!(left.len(), 1, "only the kept blob; no partial file is left behind");
    }
}
