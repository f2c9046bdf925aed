//! Files in transit as streams of [`BlobChunk`]s: a file cut into chunks, the first carrying its
//! [`BlobHeader`] (size and SHA-256), and an [`Assembler`] that puts one back together into any
//! writer while checking the header's promises. Distilled sets outgrow a single message, so they
//! travel this way in both directions.

use std::io::Write;

use sha2::{Digest, Sha256};

use crate::v1::{BlobChunk, BlobHeader};

/// Bytes per chunk: far below the message limit, large enough that headers cost nothing.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Why a stream of chunks is not the file its header announced.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the stream ended before its first chunk")]
    Empty,
    #[error("the first chunk carries no header")]
    MissingHeader,
    #[error("a chunk after the first carries a header")]
    UnexpectedHeader,
    #[error("{received} bytes received, the header announced {announced}")]
    Size { received: u64, announced: u64 },
    #[error("the file's SHA-256 is {actual}, the header announced {announced}")]
    Digest { actual: String, announced: String },
    #[error("cannot write the file: {0}")]
    Io(#[from] std::io::Error),
}

/// The chunks of `bytes`; the first carries `header` with the size and SHA-256 filled in. An
/// empty file is one chunk without data.
pub fn chunks(bytes: &[u8], header: BlobHeader) -> Vec<BlobChunk> {
    let header = BlobHeader { sha256: crate::keys::sha256_hex(bytes), size: bytes.len() as u64, ..header };
    let mut pieces: Vec<BlobChunk> =
        bytes.chunks(CHUNK_BYTES).map(|data| BlobChunk { header: None, data: data.to_vec() }).collect();
    match pieces.first_mut() {
        Some(first) => first.header = Some(header),
        None => pieces.push(BlobChunk { header: Some(header), data: Vec::new() }),
    }
    pieces
}

/// Puts a file back together from its chunks, writing them to `out` as they come.
pub struct Assembler<W: Write> {
    out: W,
    header: Option<BlobHeader>,
    hasher: Sha256,
    received: u64,
}

impl<W: Write> Assembler<W> {
    pub fn new(out: W) -> Self {
        Self { out, header: None, hasher: Sha256::new(), received: 0 }
    }

    /// Take the next chunk; fails as soon as the stream cannot be the announced file.
    pub fn push(&mut self, chunk: BlobChunk) -> Result<(), BlobError> {
        match (&self.header, chunk.header) {
            (None, None) => return Err(BlobError::MissingHeader),
            (None, Some(header)) => self.header = Some(header),
            (Some(_), Some(_)) => return Err(BlobError::UnexpectedHeader),
            (Some(_), None) => {}
        }
        self.received += chunk.data.len() as u64;
        let announced = self.header.as_ref().map_or(0, |header| header.size);
        if self.received > announced {
            return Err(BlobError::Size { received: self.received, announced });
        }
        self.hasher.update(&chunk.data);
        self.out.write_all(&chunk.data)?;
        Ok(())
    }

    /// The header and the writer, once the whole file arrived as announced.
    pub fn finish(mut self) -> Result<(BlobHeader, W), BlobError> {
        let header = self.header.take().ok_or(BlobError::Empty)?;
        if self.received != header.size {
            return Err(BlobError::Size { received: self.received, announced: header.size });
        }
        let actual = hex::encode(self.hasher.finalize());
        if actual != header.sha256 {
            return Err(BlobError::Digest { actual, announced: header.sha256 });
        }
        self.out.flush()?;
        Ok((header, self.out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::LeaseRef;

    fn assemble(chunks: Vec<BlobChunk>) -> Result<Vec<u8>, BlobError> {
        let mut assembler = Assembler::new(Vec::new());
        for chunk in chunks {
            assembler.push(chunk)?;
        }
        Ok(assembler.finish()?.1)
    }

    #[test]
    fn files_of_any_size_survive_the_round_trip() {
        for size in [0, 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES - 7] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let lease = LeaseRef { task_id: "t".into(), ..Default::default() };
            let pieces = chunks(&bytes, BlobHeader { lease: Some(lease), ..Default::default() });
            assert_eq!(pieces.len(), size.div_ceil(CHUNK_BYTES).max(1));
            let header = pieces[0].header.as_ref().expect("a header");
            assert_eq!((header.size, header.lease.as_ref().map(|l| l.task_id.as_str())), (size as u64, Some("t")));
            assert_eq!(assemble(pieces).expect("assembles"), bytes);
        }
    }

    #[test]
    fn broken_streams_are_refused() {
        let bytes = vec![5u8; CHUNK_BYTES + 10];
        let good = || chunks(&bytes, BlobHeader::default());
        let mut truncated = good();
        truncated.pop();
        assert!(matches!(assemble(truncated), Err(BlobError::Size { .. })));
        let mut corrupt = good();
        corrupt[1].data[0] ^= 1;
        assert!(matches!(assemble(corrupt), Err(BlobError::Digest { .. })));
        let mut headless = good();
        headless[0].header = None;
        assert!(matches!(assemble(headless), Err(BlobError::MissingHeader)));
        let mut two_headers = good();
        two_headers[1].header = Some(BlobHeader::default());
        assert!(matches!(assemble(two_headers), Err(BlobError::UnexpectedHeader)));
        let mut longer = good();
        longer.push(BlobChunk { header: None, data: vec![1] });
        assert!(matches!(assemble(longer), Err(BlobError::Size { .. })));
        assert!(matches!(assemble(Vec::new()), Err(BlobError::Empty)));
    }
}
