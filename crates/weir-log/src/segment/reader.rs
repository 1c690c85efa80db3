//! Reading a segment's data file batch by batch: a buffered sequential
//! reader for scans, and single-header reads for recovery's checks.

use std::path::Path;

use crate::batch::{self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD_BYTES};
use crate::error::{LogError, Result};
use crate::storage::StorageFile;

/// Reads whole batches sequentially through a buffer, so scanning costs one
/// read per megabyte rather than one per batch.
pub(crate) struct ChunkReader<'a> {
    file: &'a dyn StorageFile,
    path: &'a Path,
    limit: u64,
    chunk_bytes: usize,
    buf: Vec<u8>,
    buf_pos: u64,
}

/// Read size for scans over whole segments.
pub(crate) const SCAN_CHUNK_BYTES: usize = 1024 * 1024;
/// Read size for walking a few headers from an index entry to a batch.
pub(crate) const SEEK_CHUNK_BYTES: usize = 16 * 1024;

impl<'a> ChunkReader<'a> {
    pub fn new(file: &'a dyn StorageFile, path: &'a Path, limit: u64, chunk_bytes: usize) -> Self {
        Self {
            file,
            path,
            limit,
            chunk_bytes,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    fn fill(&mut self, pos: u64, len: usize) -> Result<bool> {
        let in_buf =
            pos >= self.buf_pos && pos + len as u64 <= self.buf_pos + self.buf.len() as u64;
        if in_buf {
            return Ok(true);
        }
        if pos + len as u64 > self.limit {
            return Ok(false);
        }
        let want = (len.max(self.chunk_bytes) as u64).min(self.limit - pos) as usize;
        self.buf.resize(want, 0);
        let got = self
            .file
            .read_at(&mut self.buf, pos)
            .map_err(LogError::io("read", self.path))?;
        self.buf.truncate(got);
        self.buf_pos = pos;
        Ok(got >= len)
    }

    fn slice(&self, pos: u64, len: usize) -> &[u8] {
        let at = (pos - self.buf_pos) as usize;
        &self.buf[at..at + len]
    }

    /// The header fields of the batch at `pos`, if a whole header is there.
    pub fn header_at(&mut self, pos: u64) -> Result<Option<BatchHeader>> {
        if !self.fill(pos, HEADER_BYTES)? {
            return Ok(None);
        }
        Ok(BatchHeader::parse(self.slice(pos, HEADER_BYTES)).ok())
    }

    /// The whole batch at `pos`, if its length field fits before `limit`
    /// (unvalidated).
    pub fn batch_at(&mut self, pos: u64) -> Result<Option<&[u8]>> {
        if !self.fill(pos, LOG_OVERHEAD_BYTES)? {
            return Ok(None);
        }
        let (_, length) =
            batch::peek_offset_and_length(self.slice(pos, LOG_OVERHEAD_BYTES)).expect("12 bytes");
        let total = i64::from(length) + LOG_OVERHEAD_BYTES as i64;
        if total < HEADER_BYTES as i64 || pos + total as u64 > self.limit {
            return Ok(None);
        }
        if !self.fill(pos, total as usize)? {
            return Ok(None);
        }
        Ok(Some(self.slice(pos, total as usize)))
    }
}

impl std::fmt::Debug for ChunkReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

pub(crate) fn read_header(file: &dyn StorageFile, pos: u64) -> Result<Option<BatchHeader>> {
    let mut buf = [0u8; HEADER_BYTES];
    let n = file
        .read_at(&mut buf, pos)
        .map_err(LogError::io("read", "segment"))?;
    Ok((n == HEADER_BYTES)
        .then(|| BatchHeader::parse(&buf).ok())
        .flatten())
}

pub(crate) fn valid_batch_at(
    file: &dyn StorageFile,
    pos: u64,
    offset: i64,
    limit: u64,
) -> Result<bool> {
    let Some(header) = read_header(file, pos)? else {
        return Ok(false);
    };
    let total = header.total_bytes() as u64;
    if header.base_offset != offset || header.length < 0 || pos + total > limit {
        return Ok(false);
    }
    let mut bytes = vec![0; total as usize];
    let n = file
        .read_at(&mut bytes, pos)
        .map_err(LogError::io("read", "segment"))?;
    Ok(n == bytes.len() && batch::validate(&bytes).is_ok())
}

pub(crate) fn is_zero_from(file: &dyn StorageFile, pos: u64, end: u64) -> Result<bool> {
    // Looking at the first bytes is enough to tell preallocated space from a
    // torn batch for the log message; correctness does not depend on it.
    let mut buf = vec![0u8; (end - pos).min(4096) as usize];
    let n = file
        .read_at(&mut buf, pos)
        .map_err(LogError::io("read", "segment"))?;
    Ok(buf[..n].iter().all(|b| *b == 0))
}
