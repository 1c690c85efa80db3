//! Reading a log: whole batches from an offset up to what readers may see
//! (within a byte budget, at least one batch or only whole ones), found
//! through the sparse index or by seeking, and lookups by time.

use super::*;

impl Log {
    /// Reads whole batches from the one containing `offset`, up to about
    /// `bytes_max` bytes (at least one batch, however large: a reader must
    /// always make progress), never past the high watermark.
    pub fn read(&self, offset: i64, bytes_max: usize) -> Result<ReadBatches> {
        self.read_batches(offset, bytes_max, true)
    }

    /// Like [`Log::read`], but strictly within `bytes_max`: when the batch
    /// holding `offset` is larger, nothing is returned (with the offsets
    /// still reported). A Fetch reads every partition after the first
    /// non-empty one this way, so its response keeps to its limit (KIP-74).
    pub fn read_within(&self, offset: i64, bytes_max: usize) -> Result<ReadBatches> {
        self.read_batches(offset, bytes_max, false)
    }

    pub(super) fn read_batches(
        &self,
        mut offset: i64,
        bytes_max: usize,
        min_one: bool,
    ) -> Result<ReadBatches> {
        // A loop, not recursion: a run of segments the cleaner emptied is
        // passed one segment per turn.
        loop {
            match self.read_in_segment(offset, bytes_max, min_one)? {
                Ok(read) => return Ok(read),
                Err(next) => offset = next,
            }
        }
    }

    /// One segment's part of [`Log::read_batches`]: `Err(next)` when no
    /// batch of the segment holding `offset` reaches it, so the read goes on
    /// at `next`, the next segment's base.
    fn read_in_segment(
        &self,
        offset: i64,
        bytes_max: usize,
        min_one: bool,
    ) -> Result<std::result::Result<ReadBatches, i64>> {
        let (view, floor, log_start, hwm, next_base) = {
            let st = lock(&self.shared.state);
            let hwm = self.shared.visible_end(&st);
            let log_start = st.start_offset();
            if offset < log_start || offset > hwm {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    start: log_start,
                    end: hwm,
                });
            }
            if offset == hwm || (!min_one && bytes_max < HEADER_BYTES) {
                return Ok(Ok(ReadBatches {
                    bytes: Vec::new(),
                    next_offset: offset,
                    log_start_offset: log_start,
                    high_watermark: hwm,
                }));
            }
            let i = st.segments.partition_point(|s| s.base_offset <= offset) - 1;
            let seg = &st.segments[i];
            let view = seg.view();
            let floor = match view.sealed_indexes {
                None => Some(seg.position_floor(offset)?),
                Some(_) => None,
            };
            let next_base = st.segments.get(i + 1).map(|s| s.base_offset);
            (view, floor, log_start, hwm, next_base)
        };
        let (start_pos, start_offset) = match floor {
            Some(floor) => floor,
            None => view.sealed_position_floor(offset).expect("a sealed view")?,
        };
        // One read from the index position. The batch holding `offset` is
        // usually right there (a sequential reader resumes at a batch
        // boundary, and big batches each get an index entry); otherwise it
        // is a few headers in.
        let want = (bytes_max.max(HEADER_BYTES) as u64).min(view.size - start_pos) as usize;
        let mut bytes = pread(&view, start_pos, want)?;
        let (first_pos, skip) = match self.locate_in(&bytes, offset, start_offset, hwm) {
            Some(skip) => (start_pos + skip as u64, skip),
            None => {
                let Some(first_pos) =
                    self.locate_by_seeking(&view, start_pos, start_offset, offset, hwm)?
                else {
                    // No batch of this segment reaches `offset`: the cleaner
                    // removed the segment's last batches (or all of them).
                    // As in Kafka, the read goes on to the next batch there
                    // is, in the next segment.
                    return match next_base {
                        Some(next) if next < hwm => Ok(Err(next.max(offset))),
                        Some(_) => Ok(Ok(ReadBatches {
                            bytes: Vec::new(),
                            next_offset: offset,
                            log_start_offset: log_start,
                            high_watermark: hwm,
                        })),
                        None => Err(self.corrupt(
                            &view.data_path,
                            start_pos,
                            "offset not found where the index points",
                        )),
                    };
                };
                bytes = pread(&view, first_pos, want.min((view.size - first_pos) as usize))?;
                (first_pos, 0)
            }
        };
        let buffer_pos = first_pos - skip as u64;
        // Trim to whole visible batches; the first is returned whole even
        // when larger than `bytes_max`, unless the read is strict.
        let (mut end, mut next_offset) = (skip, offset);
        loop {
            // The buffer began `skip` bytes before the first batch, so a
            // batch within the budget may run past it: then read the rest
            // of the budget (once: the buffer then covers it).
            let read_to = buffer_pos + bytes.len() as u64;
            if bytes.len() < skip + bytes_max && read_to < view.size {
                let past_buffer = match BatchHeader::parse(&bytes[end..]) {
                    Err(_) => true,
                    Ok(h) => {
                        end + h.total_bytes() > bytes.len()
                            && h.total_bytes().saturating_add(end - skip) <= bytes_max
                    }
                };
                if past_buffer {
                    let more = (skip + bytes_max - bytes.len()).min((view.size - read_to) as usize);
                    bytes.extend_from_slice(&pread(&view, read_to, more)?);
                }
            }
            let Ok(h) = BatchHeader::parse(&bytes[end..]) else {
                if end == skip && min_one {
                    let (_, length) =
                        batch::peek_offset_and_length(&bytes[skip..]).ok_or_else(|| {
                            self.corrupt(&view.data_path, first_pos, "short batch header")
                        })?;
                    return self
                        .read_one_large(&view, first_pos, length, log_start, hwm)
                        .map(Ok);
                }
                break;
            };
            if h.base_offset >= hwm {
                break;
            }
            let total = h.total_bytes();
            if end + total > bytes.len() {
                if end == skip && min_one {
                    return self
                        .read_one_large(&view, first_pos, h.length, log_start, hwm)
                        .map(Ok);
                }
                break;
            }
            end += total;
            next_offset = h.last_offset() + 1;
        }
        bytes.truncate(end);
        bytes.drain(..skip);
        Ok(Ok(ReadBatches {
            bytes,
            next_offset,
            log_start_offset: log_start,
            high_watermark: hwm,
        }))
    }

    /// Where, in `bytes` read from an index position holding
    /// `start_offset`, the batch containing `offset` starts; `None` if the
    /// buffer ends first.
    pub(super) fn locate_in(
        &self,
        bytes: &[u8],
        offset: i64,
        start_offset: i64,
        hwm: i64,
    ) -> Option<usize> {
        let mut at = 0;
        loop {
            let h = BatchHeader::parse(bytes.get(at..)?).ok()?;
            if h.last_offset() >= offset || h.base_offset >= hwm || h.base_offset < start_offset {
                // Found, or something the careful path should report.
                return (h.last_offset() >= offset && h.base_offset < hwm).then_some(at);
            }
            at += h.total_bytes().max(HEADER_BYTES);
        }
    }

    /// Steps over batch headers from an index position to the batch that
    /// contains `offset`, reading a little at a time.
    pub(super) fn locate_by_seeking(
        &self,
        view: &segment::SegmentView,
        start_pos: u64,
        start_offset: i64,
        offset: i64,
        hwm: i64,
    ) -> Result<Option<u64>> {
        let mut reader =
            ChunkReader::new(&*view.data, &view.data_path, view.size, SEEK_CHUNK_BYTES);
        let mut pos = start_pos;
        while let Some(h) = reader.header_at(pos)? {
            if h.base_offset >= hwm {
                break;
            }
            if h.last_offset() >= offset {
                return Ok(Some(pos));
            }
            if h.base_offset < start_offset || h.length < (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32
            {
                return Err(self.corrupt(&view.data_path, pos, "batch offsets go backwards"));
            }
            pos += h.total_bytes() as u64;
        }
        Ok(None)
    }

    pub(super) fn read_one_large(
        &self,
        view: &segment::SegmentView,
        pos: u64,
        length: i32,
        log_start: i64,
        hwm: i64,
    ) -> Result<ReadBatches> {
        let total = i64::from(length) + LOG_OVERHEAD_BYTES as i64;
        if length < 0 || pos + total as u64 > view.size {
            return Err(self.corrupt(&view.data_path, pos, "batch length runs past the segment"));
        }
        let bytes = pread(view, pos, total as usize)?;
        let header = BatchHeader::parse(&bytes)?;
        Ok(ReadBatches {
            bytes,
            next_offset: header.last_offset() + 1,
            log_start_offset: log_start,
            high_watermark: hwm,
        })
    }

    pub(super) fn corrupt(&self, path: &Path, position: u64, reason: &str) -> LogError {
        LogError::CorruptSegment {
            path: path.to_path_buf(),
            position,
            reason: reason.to_owned(),
        }
    }

    /// The largest record timestamp in the log (-1 when it is empty).
    /// With [`Log::record_for_time`] it finds the record that has it
    /// (ListOffsets' MAX_TIMESTAMP).
    pub fn max_timestamp(&self) -> i64 {
        let st = lock(&self.shared.state);
        st.segments
            .iter()
            .map(|s| s.max_timestamp)
            .max()
            .unwrap_or(-1)
    }

    /// The first offset whose record timestamp is at or after
    /// `timestamp_ms`, among what readers see; `None` when there is none.
    /// Inside a compressed batch the answer is the batch's first offset.
    pub fn offset_for_time(&self, timestamp_ms: i64) -> Result<Option<i64>> {
        Ok(self.record_for_time(timestamp_ms)?.map(|m| m.offset))
    }

    /// Like [`Log::offset_for_time`], with the timestamp found there (for a
    /// compressed or log-append-time batch, the batch's max timestamp).
    pub fn record_for_time(&self, timestamp_ms: i64) -> Result<Option<TimeMatch>> {
        // Segments from the first whose newest record is recent enough; a
        // segment whose scan finds nothing passes on to the next one.
        let mut from_base = i64::MIN;
        loop {
            let (view, floor, hwm, log_start) = {
                let st = lock(&self.shared.state);
                let hwm = self.shared.visible_end(&st);
                let log_start = st.start_offset();
                let candidate = st.segments.iter().find(|s| {
                    s.base_offset >= from_base
                        && s.next_offset > log_start
                        && s.max_timestamp >= timestamp_ms
                });
                let Some(seg) = candidate else {
                    return Ok(None);
                };
                let view = seg.view();
                let floor = match view.sealed_indexes {
                    None => Some(seg.position_for_time(timestamp_ms)?),
                    Some(_) => None,
                };
                (view, floor, hwm, log_start)
            };
            let start_pos = match floor {
                Some(pos) => pos,
                None => view
                    .sealed_position_for_time(timestamp_ms)
                    .expect("a sealed view")?,
            };
            match self.scan_for_time(&view, start_pos, log_start, hwm, timestamp_ms)? {
                Scan::Found(found) => return Ok(Some(found)),
                Scan::PastVisible => return Ok(None),
                Scan::NotHere => from_base = view.base_offset + 1,
            }
        }
    }

    pub(super) fn scan_for_time(
        &self,
        view: &segment::SegmentView,
        start_pos: u64,
        log_start: i64,
        hwm: i64,
        timestamp_ms: i64,
    ) -> Result<Scan> {
        let mut reader =
            ChunkReader::new(&*view.data, &view.data_path, view.size, SEEK_CHUNK_BYTES);
        let mut pos = start_pos;
        while let Some(bytes) = reader.batch_at(pos)? {
            let h = BatchHeader::parse(bytes)?;
            if h.base_offset >= hwm {
                return Ok(Scan::PastVisible);
            }
            // Records below the log start are deleted, even where their
            // batch is still on disk (as Kafka's lookup skips them).
            if h.max_timestamp >= timestamp_ms && h.last_offset() >= log_start {
                if h.compression() != 0 || h.is_log_append_time() {
                    return Ok(Scan::Found(TimeMatch {
                        offset: h.base_offset.max(log_start),
                        timestamp: h.max_timestamp,
                    }));
                }
                // The header's max timestamp is the producer's claim; a
                // batch whose records do not bear it out is passed over.
                let found = batch::records(bytes)?
                    .iter()
                    .find(|r| r.timestamp >= timestamp_ms && r.offset >= log_start)
                    .map(|r| TimeMatch {
                        offset: r.offset,
                        timestamp: r.timestamp,
                    });
                if let Some(found) = found {
                    return Ok(Scan::Found(found));
                }
            }
            pos += bytes.len() as u64;
        }
        Ok(Scan::NotHere)
    }
}

/// Where a scan for a timestamp ended.
pub(super) enum Scan {
    Found(TimeMatch),
    PastVisible,
    NotHere,
}

/// Reads up to `len` bytes of a segment at `pos` (fewer at its end).
pub(super) fn pread(view: &segment::SegmentView, pos: u64, len: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0; len];
    let n = view
        .data
        .read_at(&mut bytes, pos)
        .map_err(LogError::io("read", &view.data_path))?;
    bytes.truncate(n);
    Ok(bytes)
}
