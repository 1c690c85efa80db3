//! One segment: a data file of concatenated batches named by its base offset,
//! a sparse offset index and a time index, and the recovery that finds the
//! last good batch of a segment after a crash.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader};
use crate::error::{LogError, Result};
use crate::storage::{Storage, StorageFile};

mod index;
mod reader;

use index::{INDEX_FLUSH_DATA_BYTES, INDEX_FLUSH_ENTRIES, Index};
pub(crate) use index::{IndexEntry, IndexKind};
pub(crate) use reader::{ChunkReader, SCAN_CHUNK_BYTES, SEEK_CHUNK_BYTES};
use reader::{is_zero_from, read_header, valid_batch_at};

pub(crate) const DATA_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// File name stem of a segment: the base offset, zero-padded to 20 digits so
/// names sort like offsets.
pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Parses `00000000000000001234.log` into 1234.
pub(crate) fn parse_data_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(DATA_SUFFIX)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// The largest append whose bytes are deferred (see [`Segment::deferred`]):
/// a small append saves its own `pwrite`, while a large one's copy would
/// only move from beside the running round's sync to before the next one.
pub(crate) const DEFERRED_APPEND_BYTES_MAX: usize = 8 * 1024;
/// The most bytes an active segment defers before the next append writes
/// them, so the round's one `pwrite` stays short.
pub(crate) const DEFERRED_BYTES_MAX: usize = 64 * 1024;
/// Capacity the deferred buffer keeps once written (a round's worth of
/// small appends; more is freed, so idle partitions hold little).
const DEFERRED_KEPT_BYTES: usize = 16 * 1024;

/// A segment's data file plus its two indexes.
///
/// Invariants: batches in `[0, size)` are valid and their offsets strictly
/// increase within `[base_offset, next_offset)`: contiguous as appended, with
/// gaps once the cleaner removed batches (see `crate::clean`), so a sealed
/// segment may start after its base and even be empty; every segment but the
/// last is sealed (its data and indexes were synced and its file is exactly
/// `size` bytes long).
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    pub data: Arc<dyn StorageFile>,
    pub data_path: PathBuf,
    offset_index: Index,
    time_index: Index,
    /// Bytes of batches in the segment (the data file's, and the deferred
    /// tail's).
    pub size: u64,
    /// One past the last offset stored in this segment.
    pub next_offset: i64,
    /// Largest batch max-timestamp in the segment, or -1 when empty.
    pub max_timestamp: i64,
    /// Log-append time of the first batch, for roll by age.
    pub first_append_ms: Option<i64>,
    /// Bytes appended since the last index entry.
    bytes_since_index: u64,
    /// File length reserved by preallocation (active segment only).
    pub allocated: u64,
    /// Bytes before this are data or zeros written by the log (active
    /// segment only; see `LogConfig::zero_ahead_bytes`).
    pub zeroed_end: u64,
    /// The last bytes of `size`, appended but not yet in the data file:
    /// `[size - deferred.len(), size)`. Only appends that wait for a sync
    /// round are deferred, so the round writes them all with one `pwrite`
    /// before its `fdatasync`; readers never need them (they are past the
    /// durable offset), and a crash loses only what was never acknowledged.
    pub deferred: Vec<u8>,
}

/// What a reader needs of a segment, copied out under the log's lock.
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    pub data: Arc<dyn StorageFile>,
    pub data_path: PathBuf,
    /// Bytes of batches in the data file (not the deferred tail).
    pub size: u64,
    pub base_offset: i64,
    /// The offset and time indexes of a sealed segment (file-backed).
    pub sealed_indexes: Option<(Index, Index)>,
}

fn position_floor(index: &Index, base_offset: i64, offset: i64) -> Result<(u64, i64)> {
    Ok(index
        .floor(offset - base_offset)?
        .map_or((0, base_offset), |e| {
            (u64::from(e.value), base_offset + e.key)
        }))
}

/// Every batch up to the last time entry with a timestamp below `timestamp`
/// is too old, so the scan may start at that entry's batch.
fn position_for_time(
    offsets: &Index,
    times: &Index,
    base_offset: i64,
    timestamp: i64,
) -> Result<u64> {
    let offset = times
        .floor(timestamp - 1)?
        .map_or(base_offset, |e| base_offset + i64::from(e.value));
    Ok(position_floor(offsets, base_offset, offset)?.0)
}

impl SegmentView {
    /// [`Segment::position_floor`] for a sealed segment.
    pub fn sealed_position_floor(&self, offset: i64) -> Option<Result<(u64, i64)>> {
        let (offsets, _) = self.sealed_indexes.as_ref()?;
        Some(position_floor(offsets, self.base_offset, offset))
    }

    /// [`Segment::position_for_time`] for a sealed segment.
    pub fn sealed_position_for_time(&self, timestamp: i64) -> Option<Result<u64>> {
        let (offsets, times) = self.sealed_indexes.as_ref()?;
        Some(position_for_time(
            offsets,
            times,
            self.base_offset,
            timestamp,
        ))
    }
}

fn paths(dir: &Path, base_offset: i64) -> [PathBuf; 3] {
    let stem = file_stem(base_offset);
    [DATA_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX].map(|s| dir.join(format!("{stem}{s}")))
}

fn open_file(storage: &dyn Storage, path: &Path, create: bool) -> Result<Arc<dyn StorageFile>> {
    storage
        .open(path, create)
        .map_err(LogError::io("open", path))
}

impl Segment {
    /// Creates a new, empty active segment (its directory entry is durable
    /// only after the caller syncs `dir`).
    pub fn create(storage: &dyn Storage, dir: &Path, base_offset: i64) -> Result<Self> {
        let [data_path, index_path, time_path] = paths(dir, base_offset);
        let data = open_file(storage, &data_path, true)?;
        // A file left over from a crash is stale by definition: the log's end
        // is before this base offset.
        data.set_len(0)
            .map_err(LogError::io("truncate", &data_path))?;
        let mut seg = Self {
            base_offset,
            data,
            data_path,
            offset_index: Index {
                kind: IndexKind::Offset,
                file: open_file(storage, &index_path, true)?,
                path: index_path,
                memory: Some(Vec::new()),
                n_entries: 0,
                n_written: 0,
                allocated: 0,
            },
            time_index: Index {
                kind: IndexKind::Time,
                file: open_file(storage, &time_path, true)?,
                path: time_path,
                memory: Some(Vec::new()),
                n_entries: 0,
                n_written: 0,
                allocated: 0,
            },
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            first_append_ms: None,
            bytes_since_index: 0,
            allocated: 0,
            zeroed_end: 0,
            deferred: Vec::new(),
        };
        seg.offset_index.rewrite(&[])?;
        seg.time_index.rewrite(&[])?;
        Ok(seg)
    }

    /// Opens an existing segment. A sealed segment (`active == false`) is
    /// trusted after cheap checks of its indexes, which are rebuilt if they
    /// fail; the active one is validated from its last good index entry to
    /// the end, and a torn tail is cut off.
    pub fn open(
        storage: &dyn Storage,
        dir: &Path,
        base_offset: i64,
        next_base_offset: Option<i64>,
        log_name: &str,
    ) -> Result<Self> {
        let active = next_base_offset.is_none();
        let [data_path, index_path, time_path] = paths(dir, base_offset);
        let data = open_file(storage, &data_path, false)?;
        let file_len = data.len().map_err(LogError::io("stat", &data_path))?;
        let mut seg = Self {
            base_offset,
            data,
            data_path,
            offset_index: Index {
                kind: IndexKind::Offset,
                file: open_file(storage, &index_path, true)?,
                path: index_path,
                memory: None,
                n_entries: 0,
                n_written: 0,
                allocated: 0,
            },
            time_index: Index {
                kind: IndexKind::Time,
                file: open_file(storage, &time_path, true)?,
                path: time_path,
                memory: None,
                n_entries: 0,
                n_written: 0,
                allocated: 0,
            },
            size: file_len,
            next_offset: next_base_offset.unwrap_or(base_offset),
            max_timestamp: -1,
            first_append_ms: None,
            bytes_since_index: 0,
            allocated: file_len,
            zeroed_end: 0,
            deferred: Vec::new(),
        };
        if active {
            seg.recover_tail(file_len, log_name)?;
        } else if !seg.sealed_indexes_ok()? {
            tracing::warn!(log = log_name, segment = %seg.data_path.display(), "sealed segment index missing or corrupt; rebuilding");
            seg.rebuild_sealed()?;
        }
        Ok(seg)
    }

    /// Cheap checks of a sealed segment's indexes: whole entries, increasing,
    /// the last one pointing at a batch with the offset it claims, and a time
    /// index entry for the segment's largest timestamp.
    fn sealed_indexes_ok(&mut self) -> Result<bool> {
        // O(1) per segment: whole entries, then the first and last entry of
        // each index. The middle is trusted (it was synced at seal); a bad
        // middle entry can only send a reader to a wrong position, where the
        // header walk reports it as corrupt.
        let (mut offsets, mut times) = (self.offset_index.clone(), self.time_index.clone());
        for index in [&mut offsets, &mut times] {
            let len = index
                .file
                .len()
                .map_err(LogError::io("stat", &index.path))?;
            let entry_bytes = index.kind.entry_bytes() as u64;
            if len == 0 && self.size == 0 {
                // A segment the cleaner emptied: no batch, no entry.
                continue;
            }
            if len == 0 || len % entry_bytes != 0 {
                return Ok(false);
            }
            index.n_entries = len / entry_bytes;
            index.n_written = index.n_entries;
            index.allocated = len;
        }
        if self.size == 0 {
            self.offset_index = offsets;
            self.time_index = times;
            self.max_timestamp = -1;
            return Ok(true);
        }
        let entries = |index: &Index| -> Result<Option<(IndexEntry, IndexEntry)>> {
            match (index.entry(0), index.entry(index.n_entries - 1)) {
                (Ok(first), Ok(last)) => Ok(Some((first, last))),
                (Err(LogError::CorruptSegment { .. }), _)
                | (_, Err(LogError::CorruptSegment { .. })) => Ok(None),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        };
        let (Some((first, last)), Some((_, last_time))) = (entries(&offsets)?, entries(&times)?)
        else {
            return Ok(false);
        };
        let last_rel = self.next_offset - 1 - self.base_offset;
        // The first entry is the first batch, at position 0: at the base
        // offset, or after it where the cleaner removed the first batches.
        if first.value != 0
            || first.key < 0
            || u64::from(last.value) >= self.size
            || last.key > last_rel
            || i64::from(last_time.value) > last_rel
        {
            return Ok(false);
        }
        let header = read_header(&*self.data, u64::from(last.value))?;
        if header.is_none_or(|h| h.base_offset != self.base_offset + last.key) {
            return Ok(false);
        }
        self.offset_index = offsets;
        self.time_index = times;
        self.max_timestamp = last_time.key;
        Ok(true)
    }

    /// Rescans a whole sealed segment. A bad batch here is not a crash
    /// artifact (sealed segments were synced), so it is reported, not cut.
    fn rebuild_sealed(&mut self) -> Result<()> {
        let expected_end = self.next_offset;
        let (mut offsets, mut times) = (Vec::new(), Vec::new());
        self.bytes_since_index = u64::MAX / 2;
        let end = self.scan(0, self.base_offset, self.size, &mut offsets, &mut times)?;
        if end.position != self.size || end.next_offset > expected_end {
            return Err(LogError::CorruptSegment {
                path: self.data_path.clone(),
                position: end.position,
                reason: format!(
                    "sealed segment ends in a bad batch (valid up to offset {}, next segment starts at {expected_end})",
                    end.next_offset
                ),
            });
        }
        if self.max_timestamp >= 0 && times.last().is_none_or(|t| t.key < self.max_timestamp) {
            times.push(IndexEntry {
                key: self.max_timestamp,
                value: (end.next_offset - 1 - self.base_offset) as u32,
            });
        }
        self.offset_index.rewrite(&offsets)?;
        self.time_index.rewrite(&times)?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Finds the end of the valid data of the active segment, starting from
    /// the last index entry that points at a valid batch, and cuts off
    /// whatever follows.
    fn recover_tail(&mut self, file_len: u64, log_name: &str) -> Result<()> {
        let mut offsets = self.offset_index.load_valid_prefix(file_len)?;
        let mut times = self.time_index.load_valid_prefix(file_len)?;
        // The two indexes gain one entry each per index point; keep the
        // prefix where both agree (a crash may have kept more of one file).
        let agree = offsets
            .iter()
            .zip(&times)
            .take_while(|(o, t)| o.key == i64::from(t.value))
            .count();
        offsets.truncate(agree);
        times.truncate(agree);
        // Walk back to an index point whose batch is valid. Its time entry
        // bounds the timestamps of every batch up to it, so the scan can
        // restart there with that running maximum.
        let (mut start_pos, mut start_offset) = (0u64, self.base_offset);
        self.max_timestamp = -1;
        while let Some(last) = offsets.pop() {
            let time = times.pop().expect("same length");
            let pos = u64::from(last.value);
            let offset = self.base_offset + last.key;
            if valid_batch_at(&*self.data, pos, offset, file_len)? {
                (start_pos, start_offset) = (pos, offset);
                self.max_timestamp = time.key;
                break;
            }
        }
        self.bytes_since_index = u64::MAX / 2; // index the first scanned batch
        let end = self.scan(start_pos, start_offset, file_len, &mut offsets, &mut times)?;
        if end.position < file_len {
            let tail_zeroed = is_zero_from(&*self.data, end.position, file_len)?;
            if !tail_zeroed {
                tracing::warn!(
                    log = log_name,
                    segment = %self.data_path.display(),
                    valid_bytes = end.position,
                    file_bytes = file_len,
                    next_offset = end.next_offset,
                    "truncating torn tail of the active segment"
                );
            }
            // Cut the tail and its preallocation, so no stale batch beyond
            // the end can ever look like part of the log again.
            self.data
                .set_len(end.position)
                .map_err(LogError::io("truncate", &self.data_path))?;
        }
        // What was read back may have come from the page cache of a process
        // that died before syncing; sync it before calling it durable.
        self.data
            .sync_data()
            .map_err(LogError::sync(self.data_path.clone()))?;
        self.size = end.position;
        self.allocated = end.position;
        self.next_offset = end.next_offset;
        self.offset_index.rewrite(&offsets)?;
        self.time_index.rewrite(&times)?;
        // Synced, so that entries describing batches cut off here can never
        // come back after a later crash and describe the batches that will
        // reuse their offsets.
        self.offset_index.sync()?;
        self.time_index.sync()?;
        self.offset_index.memory = Some(offsets);
        self.time_index.memory = Some(times);
        Ok(())
    }

    /// Validates batches from `pos` (expected to hold `offset` or, past a
    /// gap the cleaner left, a later one) up to `limit`, stopping at the
    /// first that is bad or whose offsets go backwards, and adds index
    /// entries on the way. Returns where the valid data ends.
    fn scan(
        &mut self,
        mut pos: u64,
        mut offset: i64,
        limit: u64,
        offsets: &mut Vec<IndexEntry>,
        times: &mut Vec<IndexEntry>,
    ) -> Result<ScanEnd> {
        let (data, path) = (self.data.clone(), self.data_path.clone());
        let mut reader = ChunkReader::new(&*data, &path, limit, SCAN_CHUNK_BYTES);
        while let Some(bytes) = reader.batch_at(pos)? {
            let Ok(header) = batch::validate(bytes) else {
                break;
            };
            // Offsets only increase. A gap is allowed: a cleaned segment
            // has them, and appends never make one, so a torn tail still
            // ends here (a torn batch fails its CRC, and the file was
            // empty when the segment was created, so nothing stale follows).
            if header.base_offset < offset {
                break;
            }
            let size = bytes.len() as u64;
            self.note_batch(&header, pos, size, offsets, times);
            pos += size;
            offset = header.last_offset() + 1;
        }
        Ok(ScanEnd {
            position: pos,
            next_offset: offset,
        })
    }

    /// Index bookkeeping for one batch at `pos`: an entry when enough bytes
    /// passed since the last one.
    fn note_batch(
        &mut self,
        header: &BatchHeader,
        pos: u64,
        size: u64,
        offsets: &mut Vec<IndexEntry>,
        times: &mut Vec<IndexEntry>,
    ) {
        let rel = header.base_offset - self.base_offset;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        if self.bytes_since_index >= INDEX_INTERVAL_SCAN_BYTES {
            offsets.push(IndexEntry {
                key: rel,
                value: pos as u32,
            });
            times.push(IndexEntry {
                key: self.max_timestamp,
                value: rel as u32,
            });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += size;
    }

    /// Records batches just written at `pos` (validated, stamped) in the
    /// indexes and counters.
    pub fn on_append(
        &mut self,
        headers: &[(BatchHeader, std::ops::Range<usize>)],
        pos: u64,
        index_interval_bytes: u64,
        append_ms: i64,
    ) {
        for (header, range) in headers {
            let rel = header.base_offset - self.base_offset;
            let batch_pos = pos + range.start as u64;
            self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
            if self.offset_index.n_entries == 0 || self.bytes_since_index >= index_interval_bytes {
                self.offset_index.push(IndexEntry {
                    key: rel,
                    value: batch_pos as u32,
                });
                self.time_index.push(IndexEntry {
                    key: self.max_timestamp,
                    value: rel as u32,
                });
                self.bytes_since_index = 0;
            }
            self.bytes_since_index += range.len() as u64;
            self.next_offset = header.last_offset() + 1;
        }
        if let Some((_, last)) = headers.last() {
            self.size = pos + last.end as u64;
        }
        self.first_append_ms.get_or_insert(append_ms);
        let pending = self.offset_index.n_entries - self.offset_index.n_written;
        let written_pos = self
            .offset_index
            .last_written()
            .map_or(0, |e| u64::from(e.value));
        if pending >= INDEX_FLUSH_ENTRIES
            || (pending > 0 && self.size - written_pos >= INDEX_FLUSH_DATA_BYTES)
        {
            self.flush_indexes();
        }
    }

    /// Makes the active segment fit to be sealed: a final time index entry,
    /// both indexes rewritten whole from memory (so no failed or pending
    /// write leaves a hole), the data file cut to its data, and all three
    /// synced. It stays the active segment (entries in memory) until
    /// [`Segment::mark_sealed`]: if the next segment cannot be created, the
    /// log goes on appending here.
    pub fn seal(&mut self) -> Result<()> {
        debug_assert!(
            self.deferred.is_empty(),
            "deferred bytes are written before a seal"
        );
        let last_ts = self.time_index.last()?.map_or(-1, |e| e.key);
        if self.max_timestamp > last_ts {
            self.time_index.push(IndexEntry {
                key: self.max_timestamp,
                value: (self.next_offset - 1 - self.base_offset).max(0) as u32,
            });
        }
        for index in [&mut self.offset_index, &mut self.time_index] {
            let entries = index
                .memory
                .clone()
                .expect("only the active segment is sealed");
            index.rewrite(&entries)?;
        }
        self.data
            .set_len(self.size)
            .map_err(LogError::io("truncate", &self.data_path))?;
        self.allocated = self.size;
        self.zeroed_end = self.size;
        for (file, path) in [
            (&self.data, &self.data_path),
            (&self.offset_index.file, &self.offset_index.path),
            (&self.time_index.file, &self.time_index.path),
        ] {
            file.sync_data().map_err(LogError::sync(path.clone()))?;
        }
        Ok(())
    }

    /// Bytes of batches in the data file: `size` less the deferred tail.
    pub fn written_size(&self) -> u64 {
        self.size - self.deferred.len() as u64
    }

    /// Writes the deferred tail to the data file, with one `pwrite`.
    pub fn write_deferred(&mut self) -> Result<()> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        self.data
            .write_all_at(&self.deferred, self.written_size())
            .map_err(LogError::io("write", &self.data_path))?;
        self.deferred.clear();
        if self.deferred.capacity() > DEFERRED_KEPT_BYTES {
            self.deferred.shrink_to(DEFERRED_KEPT_BYTES);
        }
        Ok(())
    }

    /// Drops the in-memory index entries of a sealed segment: from now on
    /// its indexes are searched in their files.
    pub fn mark_sealed(&mut self) {
        self.offset_index.memory = None;
        self.time_index.memory = None;
    }

    /// Writes index entries gathered in memory to their files (on close).
    pub fn flush_indexes(&mut self) {
        self.offset_index.flush();
        self.time_index.flush();
    }

    /// What a reader needs, to use outside the log's lock. A sealed
    /// segment's index lookups (file reads) then happen outside the lock
    /// too; the active one's (memory) are done under it, cheaply.
    /// The offset of an indexed batch of the active segment that starts at
    /// or before byte `position` (the segment's base if none does).
    pub fn offset_at_or_before(&self, position: u64) -> i64 {
        let memory = self.offset_index.memory.as_deref().unwrap_or_default();
        let n = memory.partition_point(|e| u64::from(e.value) <= position);
        n.checked_sub(1)
            .map_or(self.base_offset, |i| self.base_offset + memory[i].key)
    }

    pub fn view(&self) -> SegmentView {
        let sealed = self.offset_index.memory.is_none();
        SegmentView {
            data: self.data.clone(),
            data_path: self.data_path.clone(),
            size: self.written_size(),
            base_offset: self.base_offset,
            sealed_indexes: sealed.then(|| (self.offset_index.clone(), self.time_index.clone())),
        }
    }

    /// Byte position to start scanning from for `offset`, and the offset of
    /// the batch there.
    pub fn position_floor(&self, offset: i64) -> Result<(u64, i64)> {
        position_floor(&self.offset_index, self.base_offset, offset)
    }

    /// Byte position to start scanning from for the first batch whose
    /// timestamps may reach `timestamp`.
    pub fn position_for_time(&self, timestamp: i64) -> Result<u64> {
        position_for_time(
            &self.offset_index,
            &self.time_index,
            self.base_offset,
            timestamp,
        )
    }

    pub fn paths(&self) -> [&Path; 3] {
        [
            &self.data_path,
            &self.offset_index.path,
            &self.time_index.path,
        ]
    }
}

/// Index spacing used when rebuilding indexes by scanning; appends use the
/// log's configured interval.
const INDEX_INTERVAL_SCAN_BYTES: u64 = 4096;

#[derive(Debug, Clone, Copy)]
struct ScanEnd {
    position: u64,
    next_offset: i64,
}
