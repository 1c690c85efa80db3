//! The cleaner's writing half: a batch cut down to the records a policy
//! keeps (same base offset, last offset delta and timestamps, so each
//! surviving record keeps its offset and a producer's sequence range is
//! unchanged), and a cleaned segment written beside the original with its
//! two indexes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader, HEADER_BYTES, Record};
use crate::error::{LogError, Result};
use crate::segment::{IndexEntry, IndexKind};
use crate::storage::{Storage, StorageFile};

/// Bytes of a batch header before the CRC-covered part, and field places.
const LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const RECORD_COUNT_AT: usize = 57;

/// How much of a batch a filter kept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filtered {
    All,
    Nothing,
    /// The cut-down batch, and how many records went.
    Some(Vec<u8>, u64),
}

/// Keeps the records of an uncompressed batch for which `keep` says so.
/// The records' bytes are copied unchanged (their offset and timestamp
/// deltas are relative to the header, which keeps its base offset, last
/// offset delta and timestamps); the length, count and CRC are rewritten.
pub(crate) fn filter_batch(
    bytes: &[u8],
    header: &BatchHeader,
    mut keep: impl FnMut(&Record<'_>) -> bool,
) -> std::result::Result<Filtered, crate::BatchError> {
    let body = &bytes[HEADER_BYTES..header.total_bytes()];
    let one = BatchHeader {
        record_count: 1,
        ..*header
    };
    let mut kept: Vec<std::ops::Range<usize>> = Vec::new();
    let mut pos = 0;
    for _ in 0..header.record_count.max(0) {
        let (len, n) = varint(&body[pos..]).ok_or(crate::BatchError::BadRecord)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| (pos + n).checked_add(len))
            .filter(|end| *end <= body.len())
            .ok_or(crate::BatchError::BadRecord)?;
        let mut decision = false;
        batch::for_each_record(&body[pos..end], &one, |r| {
            decision = keep(r);
            Ok::<_, crate::BatchError>(())
        })?;
        if decision {
            match kept.last_mut() {
                Some(last) if last.end == pos => last.end = end,
                _ => kept.push(pos..end),
            }
        }
        pos = end;
    }
    let n_kept_bytes: usize = kept.iter().map(|r| r.len()).sum();
    if n_kept_bytes == body.len() {
        return Ok(Filtered::All);
    }
    if kept.is_empty() {
        return Ok(Filtered::Nothing);
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + n_kept_bytes);
    out.extend_from_slice(&bytes[..HEADER_BYTES]);
    let mut n_kept = 0i32;
    for range in kept {
        let mut at = 0;
        let part = &body[range];
        while at < part.len() {
            let (len, n) = varint(&part[at..]).expect("walked above");
            at += n + len as usize;
            n_kept += 1;
        }
        out.extend_from_slice(part);
    }
    let length = (out.len() - 12) as i32;
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    out[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&n_kept.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(Filtered::Some(
        out,
        (header.record_count - n_kept).max(0) as u64,
    ))
}

/// A zigzag varint (Kafka's record framing): the value and its length.
fn varint(b: &[u8]) -> Option<(i64, usize)> {
    let mut raw = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Some((value, i + 1));
        }
    }
    None
}

/// File names of a cleaned segment before it is swapped in.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";

/// A cleaned copy of one segment being written: `<base>.log.cleaned` and its
/// `.index.cleaned` and `.timeindex.cleaned`, indexed as appends index.
/// Nothing is written while every batch so far is kept whole (the copy
/// would be the segment's own prefix): the first batch dropped or cut
/// copies that prefix over, so a segment with nothing to remove costs no
/// writes at all.
pub(crate) struct CleanedWriter<'a> {
    pub paths: [PathBuf; 3],
    storage: &'a dyn Storage,
    /// The segment's data: the source of the prefix.
    source: Arc<dyn StorageFile>,
    /// The cleaned data file, once something changed.
    data: Option<Arc<dyn StorageFile>>,
    base_offset: i64,
    buf: Vec<u8>,
    /// Bytes written to the file so far (`buf` follows them).
    written: u64,
    offsets: Vec<IndexEntry>,
    times: Vec<IndexEntry>,
    index_interval_bytes: u64,
    bytes_since_index: u64,
    pub max_timestamp: i64,
    last_offset: i64,
}

const WRITE_CHUNK_BYTES: usize = 1024 * 1024;

impl<'a> CleanedWriter<'a> {
    pub fn new(
        storage: &'a dyn Storage,
        segment_paths: [&Path; 3],
        source: Arc<dyn StorageFile>,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> Self {
        let paths = segment_paths.map(|p| {
            let mut name = p.as_os_str().to_owned();
            name.push(CLEANED_SUFFIX);
            PathBuf::from(name)
        });
        Self {
            paths,
            storage,
            source,
            data: None,
            base_offset,
            buf: Vec::new(),
            written: 0,
            offsets: Vec::new(),
            times: Vec::new(),
            index_interval_bytes: u64::from(index_interval_bytes),
            bytes_since_index: 0,
            max_timestamp: -1,
            last_offset: base_offset - 1,
        }
    }

    pub fn size(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Whether the copy differs from the segment (something was dropped
    /// or cut).
    pub fn changed(&self) -> bool {
        self.data.is_some()
    }

    /// The copy stops being the segment's prefix: create the file and copy
    /// that prefix over. Returns the bytes read and written.
    fn diverge(&mut self) -> Result<u64> {
        if self.data.is_some() {
            return Ok(0);
        }
        let data = self
            .storage
            .open(&self.paths[0], true)
            .map_err(LogError::io("create", &self.paths[0]))?;
        data.set_len(0)
            .map_err(LogError::io("truncate", &self.paths[0]))?;
        let prefix = self.written;
        let mut chunk = vec![0u8; WRITE_CHUNK_BYTES];
        let mut at = 0u64;
        while at < prefix {
            let n = (prefix - at).min(WRITE_CHUNK_BYTES as u64) as usize;
            let got = self
                .source
                .read_at(&mut chunk[..n], at)
                .map_err(LogError::io("read", &self.paths[0]))?;
            if got != n {
                return Err(LogError::CorruptSegment {
                    path: self.paths[0].clone(),
                    position: at,
                    reason: "segment shorter than its batches".into(),
                });
            }
            data.write_all_at(&chunk[..n], at)
                .map_err(LogError::io("write", &self.paths[0]))?;
            at += n as u64;
        }
        self.data = Some(data);
        Ok(2 * prefix)
    }

    /// A batch is dropped. Returns the bytes of I/O done now.
    pub fn drop_batch(&mut self) -> Result<u64> {
        self.diverge()
    }

    /// Appends one kept batch, `whole` when unchanged. Returns the bytes of
    /// I/O done now (for the throttle).
    pub fn push(&mut self, header: &BatchHeader, bytes: &[u8], whole: bool) -> Result<u64> {
        let mut io = 0;
        if !whole {
            io += self.diverge()?;
        }
        let pos = self.size();
        let rel = header.base_offset - self.base_offset;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        if self.offsets.is_empty() || self.bytes_since_index >= self.index_interval_bytes {
            self.offsets.push(IndexEntry {
                key: rel,
                value: pos as u32,
            });
            self.times.push(IndexEntry {
                key: self.max_timestamp,
                value: rel as u32,
            });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += bytes.len() as u64;
        self.last_offset = header.last_offset();
        if self.data.is_none() {
            // Still the segment's own prefix: nothing to write.
            self.written += bytes.len() as u64;
            return Ok(io);
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= WRITE_CHUNK_BYTES {
            io += self.flush()?;
        }
        Ok(io)
    }

    fn flush(&mut self) -> Result<u64> {
        let n = self.buf.len() as u64;
        let data = self.data.as_ref().expect("flushed only once diverged");
        data.write_all_at(&self.buf, self.written)
            .map_err(LogError::io("write", &self.paths[0]))?;
        self.written += n;
        self.buf.clear();
        Ok(n)
    }

    /// Writes the rest and both indexes (with the final time entry a seal
    /// adds) and syncs all three files (only for a copy that
    /// [`CleanedWriter::changed`]).
    pub fn finish(mut self) -> Result<u64> {
        let storage = self.storage;
        let n = self.flush()?;
        let last_ts = self.times.last().map_or(-1, |e| e.key);
        if self.max_timestamp > last_ts {
            self.times.push(IndexEntry {
                key: self.max_timestamp,
                value: (self.last_offset - self.base_offset) as u32,
            });
        }
        for (path, kind, entries) in [
            (&self.paths[1], IndexKind::Offset, &self.offsets),
            (&self.paths[2], IndexKind::Time, &self.times),
        ] {
            let bytes: Vec<u8> = entries.iter().flat_map(|e| kind.encode(*e)).collect();
            let file = storage
                .open(path, true)
                .map_err(LogError::io("create", path))?;
            file.set_len(0)
                .and_then(|()| file.write_all_at(&bytes, 0))
                .map_err(LogError::io("write", path))?;
            file.sync_data().map_err(LogError::sync(path.clone()))?;
        }
        self.data
            .as_ref()
            .expect("finished only once diverged")
            .sync_data()
            .map_err(LogError::sync(self.paths[0].clone()))?;
        Ok(n)
    }
}

impl std::fmt::Debug for CleanedWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanedWriter")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    fn keyed(n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000);
        for i in 0..n {
            let key = format!("k{i}");
            b.push(1_000 + i as i64, Some(key.as_bytes()), Some(b"v"), &[]);
        }
        let mut bytes = b.build();
        batch::stamp(&mut bytes, 100, 0, 0);
        bytes
    }

    #[test]
    fn a_cut_batch_keeps_its_offsets_and_validates() {
        let bytes = keyed(5);
        let header = batch::validate(&bytes).unwrap();
        let even = |r: &Record<'_>| r.offset % 2 == 0;
        let Filtered::Some(out, removed) = filter_batch(&bytes, &header, even).unwrap() else {
            panic!("some records go");
        };
        assert_eq!(removed, 2);
        let cut = batch::validate(&out).expect("a valid batch");
        assert_eq!(cut.base_offset, 100);
        assert_eq!(cut.last_offset(), 104, "the last offset is kept");
        assert_eq!(cut.record_count, 3);
        let offsets: Vec<i64> = batch::records(&out)
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, [100, 102, 104]);
        assert_eq!(
            filter_batch(&bytes, &header, |_| true).unwrap(),
            Filtered::All
        );
        assert_eq!(
            filter_batch(&bytes, &header, |_| false).unwrap(),
            Filtered::Nothing
        );
    }

    #[test]
    fn varints_decode() {
        assert_eq!(varint(&[0x00]), Some((0, 1)));
        assert_eq!(varint(&[0x01]), Some((-1, 1)));
        assert_eq!(varint(&[0xac, 0x02]), Some((150, 2)));
        assert_eq!(varint(&[0x80]), None);
    }
}
