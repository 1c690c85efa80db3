//! A segment's sparse indexes: the offset index (relative offset → byte
//! position) and the time index (largest timestamp so far → relative
//! offset), their entry encodings, and lookups in memory or in the file.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{LogError, Result};
use crate::storage::StorageFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    /// key: offset relative to the segment base; value: byte position.
    Offset,
    /// key: largest timestamp so far; value: relative offset of the batch
    /// that was being indexed. One entry per offset-index entry (plus a
    /// final one at seal), 16 bytes with a CRC so a torn entry is detected.
    Time,
}

impl IndexKind {
    pub(crate) fn entry_bytes(self) -> usize {
        match self {
            Self::Offset => 8,
            Self::Time => 16,
        }
    }

    pub(crate) fn encode(self, e: IndexEntry) -> Vec<u8> {
        match self {
            Self::Offset => {
                let mut out = (e.key as u32).to_be_bytes().to_vec();
                out.extend_from_slice(&e.value.to_be_bytes());
                out
            }
            Self::Time => {
                let mut out = e.key.to_be_bytes().to_vec();
                out.extend_from_slice(&e.value.to_be_bytes());
                let crc = crc32c::crc32c(&out);
                out.extend_from_slice(&crc.to_be_bytes());
                out
            }
        }
    }

    /// `None` for a time entry whose CRC does not match (torn or never
    /// written).
    pub(crate) fn decode(self, b: &[u8]) -> Option<IndexEntry> {
        let u32_at = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        match self {
            Self::Offset => Some(IndexEntry {
                key: i64::from(u32_at(0)),
                value: u32_at(4),
            }),
            Self::Time => (crc32c::crc32c(&b[..12]) == u32_at(12)).then(|| IndexEntry {
                key: i64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
                value: u32_at(8),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub key: i64,
    pub value: u32,
}

/// A sparse index file. The active segment keeps its entries in memory too;
/// a sealed segment's index is searched in the file, so memory does not grow
/// with the size of the log.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    pub(crate) kind: IndexKind,
    pub(crate) file: Arc<dyn StorageFile>,
    pub(crate) path: PathBuf,
    /// Entries, when the segment is active.
    pub(crate) memory: Option<Vec<IndexEntry>>,
    pub(crate) n_entries: u64,
    /// Entries written to the file; the rest are only in `memory`.
    pub(crate) n_written: u64,
    /// File bytes reserved ahead of the entries (active segment only), so
    /// appending an entry does not grow the file: growing it would add the
    /// index's inode to the journal commit of every data sync.
    pub(crate) allocated: u64,
}

/// The active segment's index entries are written to their files this many
/// at a time, or once they cover this many bytes of data (and on seal and
/// close): a small write per append would cost more than the append's own
/// write, and after a crash the scan from the last entry on disk covers the
/// rest, so these bound what recovery reads.
pub(crate) const INDEX_FLUSH_ENTRIES: u64 = 256;
pub(crate) const INDEX_FLUSH_DATA_BYTES: u64 = 4 * 1024 * 1024;

/// How far ahead index files are reserved, per step.
const INDEX_PREALLOCATE_BYTES: u64 = 256 * 1024;

impl Index {
    /// The longest prefix of well-formed entries: offset entries strictly
    /// increasing in both fields and pointing inside the data; time entries
    /// with a good CRC, non-decreasing timestamps and increasing offsets.
    pub(crate) fn load_valid_prefix(&self, data_size: u64) -> Result<Vec<IndexEntry>> {
        // Read in chunks and stop at the first bad entry: the active
        // segment's files are reserved ahead, and the zeros are not read.
        let entry_bytes = self.kind.entry_bytes();
        let chunk_entries = 4096;
        let mut out: Vec<IndexEntry> = Vec::new();
        let mut buf = vec![0u8; chunk_entries * entry_bytes];
        loop {
            let pos = (out.len() * entry_bytes) as u64;
            let got = self
                .file
                .read_at(&mut buf, pos)
                .map_err(LogError::io("read", &self.path))?;
            let before = out.len();
            for chunk in buf[..got - got % entry_bytes].chunks_exact(entry_bytes) {
                let Some(e) = self.kind.decode(chunk) else {
                    return Ok(out);
                };
                let ok = match (self.kind, out.last()) {
                    (IndexKind::Offset, None) => e.key >= 0 && u64::from(e.value) < data_size,
                    (IndexKind::Offset, Some(p)) => {
                        e.key > p.key && e.value > p.value && u64::from(e.value) < data_size
                    }
                    (IndexKind::Time, None) => true,
                    (IndexKind::Time, Some(p)) => e.key >= p.key && e.value > p.value,
                };
                if !ok {
                    return Ok(out);
                }
                out.push(e);
            }
            if out.len() - before < chunk_entries {
                return Ok(out);
            }
        }
    }

    /// Replaces the file's contents with `entries`.
    pub(crate) fn rewrite(&mut self, entries: &[IndexEntry]) -> Result<()> {
        let mut bytes = Vec::with_capacity(entries.len() * self.kind.entry_bytes());
        for e in entries {
            bytes.extend_from_slice(&self.kind.encode(*e));
        }
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(&bytes, 0))
            .map_err(LogError::io("rewrite", &self.path))?;
        self.n_entries = entries.len() as u64;
        self.n_written = self.n_entries;
        self.allocated = bytes.len() as u64;
        Ok(())
    }

    /// Adds an entry: to memory for the active segment (the segment decides
    /// when to write them, see [`Segment::on_append`]), to the file for a
    /// sealed one.
    pub(crate) fn push(&mut self, e: IndexEntry) {
        self.n_entries += 1;
        match &mut self.memory {
            Some(memory) => memory.push(e),
            None => self.flush_entries(&self.kind.encode(e)),
        }
    }

    /// The last entry written to the file, if any (active segment).
    pub(crate) fn last_written(&self) -> Option<IndexEntry> {
        let memory = self.memory.as_ref()?;
        self.n_written.checked_sub(1).map(|i| memory[i as usize])
    }

    /// Writes the entries not yet in the file.
    pub(crate) fn flush(&mut self) {
        let Some(memory) = &self.memory else { return };
        let pending = &memory[self.n_written as usize..self.n_entries as usize];
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|e| self.kind.encode(*e)).collect();
        self.flush_entries(&bytes);
    }

    /// Writes encoded entries after the last written one. The index is a
    /// hint: a failed write is repaired at the next open, so it must not
    /// fail an append whose data is already written. Reserved space after
    /// the entries reads as zeros, which no valid entry is.
    pub(crate) fn flush_entries(&mut self, bytes: &[u8]) {
        let pos = self.n_written * self.kind.entry_bytes() as u64;
        let end = pos + bytes.len() as u64;
        if end > self.allocated {
            let target = end.max(self.allocated + INDEX_PREALLOCATE_BYTES);
            match self.file.preallocate(self.allocated, target) {
                Ok(()) => self.allocated = target,
                Err(err) => {
                    tracing::warn!(path = %self.path.display(), %err, "index preallocation failed")
                }
            }
        }
        if let Err(err) = self.file.write_all_at(bytes, pos) {
            tracing::warn!(path = %self.path.display(), %err, "index write failed; it will be rebuilt on open");
        }
        self.n_written = self.n_entries;
    }

    pub(crate) fn last(&self) -> Result<Option<IndexEntry>> {
        if self.n_entries == 0 {
            return Ok(None);
        }
        self.entry(self.n_entries - 1).map(Some)
    }

    pub(crate) fn entry(&self, i: u64) -> Result<IndexEntry> {
        if let Some(memory) = &self.memory {
            return Ok(memory[i as usize]);
        }
        let mut buf = [0u8; 16];
        let buf = &mut buf[..self.kind.entry_bytes()];
        let n = self
            .file
            .read_at(buf, i * self.kind.entry_bytes() as u64)
            .map_err(LogError::io("read", &self.path))?;
        if n != buf.len() {
            return Err(LogError::CorruptSegment {
                path: self.path.clone(),
                position: i * self.kind.entry_bytes() as u64,
                reason: "index entry is cut short".into(),
            });
        }
        self.kind
            .decode(buf)
            .ok_or_else(|| LogError::CorruptSegment {
                path: self.path.clone(),
                position: i * self.kind.entry_bytes() as u64,
                reason: "index entry fails its checksum".into(),
            })
    }

    /// The last entry whose key is `<= key`.
    pub(crate) fn floor(&self, key: i64) -> Result<Option<IndexEntry>> {
        let (mut lo, mut hi) = (0u64, self.n_entries);
        let mut best = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.entry(mid)?;
            if e.key <= key {
                best = Some(e);
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(best)
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(LogError::sync(self.path.clone()))
    }
}
