//! One cleaning pass over a log (see `crate::clean`): pick the cleanable
//! sealed segments, let the policy observe them, rewrite each through the
//! policy and swap the smaller copies in, then checkpoint the first dirty
//! offset.

use super::*;
use crate::clean::rewrite::{CleanedWriter, Filtered, filter_batch};
use crate::clean::{CleanBatch, CleanOptions, CleanOutcome, CleanPolicy, Retain, Throttle, swap};
use crate::segment::SCAN_CHUNK_BYTES;

/// A sealed segment as the pass saw it under the lock.
struct Sealed {
    base_offset: i64,
    next_offset: i64,
    size: u64,
    max_timestamp: i64,
    view: segment::SegmentView,
}

impl Log {
    /// Cleans the log once, if it is due: the sealed segments from the
    /// first up to the first one that is too young (`min_compaction_lag_ms`),
    /// reaches `end_offset_max`, or is the active one, when their dirty
    /// share reaches `min_cleanable_dirty_ratio` or their oldest dirty
    /// record is older than `max_compaction_lag_ms`. Each segment whose
    /// policy verdicts drop something is rewritten beside itself and
    /// swapped in (crash-safe; see `crate::clean::swap`); surviving records
    /// keep their offsets. I/O goes through `throttle`. One pass at a time
    /// per log; appends and reads go on meanwhile.
    pub fn clean(
        &self,
        options: &CleanOptions,
        policy: &mut dyn CleanPolicy,
        throttle: &Throttle,
    ) -> Result<CleanOutcome> {
        let _cleaning = self
            .shared
            .cleaning
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = self.shared.clock.now_ms();
        let (sealed, log_start, clean_offset, index_interval) = {
            let st = lock(&self.shared.state);
            self.shared.check_writable(&st)?;
            let sealed: Vec<Sealed> = st.segments[..st.segments.len() - 1]
                .iter()
                .map(|s| Sealed {
                    base_offset: s.base_offset,
                    next_offset: s.next_offset,
                    size: s.size,
                    max_timestamp: s.max_timestamp,
                    view: s.view(),
                })
                .collect();
            let interval = st.config.index_interval_bytes;
            (sealed, st.start_offset(), st.clean_offset, interval)
        };
        let young_after = now.saturating_sub(options.min_compaction_lag_ms);
        let cleanable: Vec<Sealed> = sealed
            .into_iter()
            .take_while(|s| {
                s.next_offset <= options.end_offset_max && s.max_timestamp <= young_after
            })
            .collect();
        let dirty_start = clean_offset.max(log_start);
        let mut outcome = CleanOutcome {
            clean_offset: dirty_start,
            ..CleanOutcome::default()
        };
        let Some(first_dirty) = cleanable.iter().position(|s| s.next_offset > dirty_start) else {
            return Ok(outcome);
        };
        let dirty_bytes: u64 = cleanable[first_dirty..].iter().map(|s| s.size).sum();
        let clean_bytes: u64 = cleanable[..first_dirty].iter().map(|s| s.size).sum();
        if dirty_bytes == 0 {
            return Ok(outcome);
        }
        outcome.dirty_ratio = dirty_bytes as f64 / (dirty_bytes + clean_bytes) as f64;
        let overdue = options.max_compaction_lag_ms < i64::MAX
            && first_timestamp(&cleanable[first_dirty..])?
                .is_some_and(|ts| ts < now.saturating_sub(options.max_compaction_lag_ms));
        if outcome.dirty_ratio < options.min_cleanable_dirty_ratio && !overdue {
            return Ok(outcome);
        }
        outcome.ran = true;

        // Pass one: the policy sees every batch of the cleanable range.
        let mut end = cleanable.len();
        'segments: for (i, seg) in cleanable.iter().enumerate() {
            let dirty = i >= first_dirty;
            let mut full = false;
            for_each_batch(seg, throttle, |header, bytes| {
                let batch = CleanBatch {
                    header,
                    bytes,
                    dirty,
                    segment_max_timestamp: seg.max_timestamp,
                };
                if !policy.observe(&batch) && dirty {
                    full = true;
                    return false;
                }
                true
            })?;
            if full {
                end = i.max(first_dirty + 1);
                break 'segments;
            }
        }

        // Pass two: rewrite, one segment at a time.
        policy.begin_rewrite();
        for seg in &cleanable[..end] {
            let dirty = seg.next_offset > dirty_start;
            self.clean_segment(seg, dirty, index_interval, policy, throttle, &mut outcome)?;
        }
        let new_clean_offset = cleanable[end - 1].next_offset;
        checkpoint::write(
            &*self.shared.storage,
            &self.shared.dir,
            checkpoint::CLEANER,
            new_clean_offset,
        )?;
        lock(&self.shared.state).clean_offset = new_clean_offset;
        outcome.clean_offset = new_clean_offset;
        tracing::info!(log = %self.shared.name, ?outcome, "cleaned");
        Ok(outcome)
    }

    /// Rewrites one segment through the policy and swaps the copy in if it
    /// dropped anything.
    fn clean_segment(
        &self,
        seg: &Sealed,
        dirty: bool,
        index_interval: u32,
        policy: &mut dyn CleanPolicy,
        throttle: &Throttle,
        outcome: &mut CleanOutcome,
    ) -> Result<()> {
        let storage = &*self.shared.storage;
        let paths = segment_paths(&self.shared.dir, seg.base_offset);
        let path_refs = [&*paths[0], &*paths[1], &*paths[2]];
        let mut writer = CleanedWriter::new(
            storage,
            path_refs,
            seg.view.data.clone(),
            seg.base_offset,
            index_interval,
        );
        let (mut batches_removed, mut records_removed) = (0u64, 0u64);
        let mut failure = None;
        for_each_batch(seg, throttle, |header, bytes| {
            let batch = CleanBatch {
                header,
                bytes,
                dirty,
                segment_max_timestamp: seg.max_timestamp,
            };
            let kept = match policy.retain_batch(&batch) {
                Retain::All => Filtered::All,
                Retain::Nothing => Filtered::Nothing,
                Retain::Records if header.compression() != 0 => Filtered::All,
                Retain::Records => {
                    match filter_batch(bytes, header, |r| policy.retain_record(&batch, r)) {
                        Ok(kept) => kept,
                        Err(e) => {
                            failure = Some(LogError::from(e));
                            return false;
                        }
                    }
                }
            };
            let written = match kept {
                Filtered::All => writer.push(header, bytes, true),
                Filtered::Nothing => {
                    batches_removed += 1;
                    records_removed += header.record_count.max(0) as u64;
                    writer.drop_batch()
                }
                Filtered::Some(cut, removed) => {
                    records_removed += removed;
                    let cut_header = BatchHeader::parse(&cut).expect("a cut batch parses");
                    writer.push(&cut_header, &cut, false)
                }
            };
            match written {
                Ok(n) => {
                    throttle.spend(n);
                    true
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failure {
            swap::discard(storage, path_refs);
            return Err(e);
        }
        outcome.bytes_before += seg.size;
        if !writer.changed() {
            // Nothing went: the segment stays as it is (nothing was written).
            outcome.bytes_after += seg.size;
            return Ok(());
        }
        let size_after = writer.size();
        let written = writer.finish()?;
        throttle.spend(written);
        storage
            .sync_dir(&self.shared.dir)
            .map_err(LogError::sync(self.shared.dir.clone()))?;
        let mut st = lock(&self.shared.state);
        let position = st.segments[..st.segments.len() - 1]
            .iter()
            .position(|s| s.base_offset == seg.base_offset && Arc::ptr_eq(&s.data, &seg.view.data));
        let Some(i) = position else {
            // Retention or DeleteRecords removed it meanwhile.
            drop(st);
            swap::discard(storage, path_refs);
            outcome.bytes_after += seg.size;
            return Ok(());
        };
        let next_base = st.segments[i + 1].base_offset;
        swap::swap_in(storage, path_refs)?;
        st.dir_dirty = true;
        let reopened = Segment::open(
            storage,
            &self.shared.dir,
            seg.base_offset,
            Some(next_base),
            &self.shared.name,
        );
        match reopened {
            Ok(new) => st.segments[i] = new,
            Err(e) => {
                self.shared
                    .fail_locked(&mut st, &format!("reopening a cleaned segment: {e}"));
                return Err(e);
            }
        }
        drop(st);
        self.shared.sched.mark_dirty(&self.shared);
        outcome.segments_rewritten += 1;
        outcome.bytes_after += size_after;
        outcome.batches_removed += batches_removed;
        outcome.records_removed += records_removed;
        Ok(())
    }
}

fn segment_paths(dir: &Path, base_offset: i64) -> [PathBuf; 3] {
    let stem = segment::file_stem(base_offset);
    [
        segment::DATA_SUFFIX,
        segment::INDEX_SUFFIX,
        segment::TIME_INDEX_SUFFIX,
    ]
    .map(|s| dir.join(format!("{stem}{s}")))
}

/// Calls `f` with each batch of a sealed segment, in order, until it says
/// stop; reads count against the throttle.
fn for_each_batch(
    seg: &Sealed,
    throttle: &Throttle,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> bool,
) -> Result<()> {
    let view = &seg.view;
    let mut reader = ChunkReader::new(&*view.data, &view.data_path, view.size, SCAN_CHUNK_BYTES);
    let mut pos = 0u64;
    while pos < view.size {
        let Some(bytes) = reader.batch_at(pos)? else {
            return Err(corrupt(
                &view.data_path,
                pos,
                "a sealed segment's batch is cut short",
            ));
        };
        let header = BatchHeader::parse(bytes).map_err(|_| {
            corrupt(
                &view.data_path,
                pos,
                "a sealed segment's batch header is bad",
            )
        })?;
        let n = bytes.len() as u64;
        throttle.spend(n);
        if !f(&header, bytes) {
            break;
        }
        pos += n;
    }
    Ok(())
}

/// The first batch's base timestamp of the first non-empty segment.
fn first_timestamp(segs: &[Sealed]) -> Result<Option<i64>> {
    let Some(seg) = segs.iter().find(|s| s.size > 0) else {
        return Ok(None);
    };
    let view = &seg.view;
    let mut reader = ChunkReader::new(&*view.data, &view.data_path, view.size, SEEK_CHUNK_BYTES);
    Ok(reader.header_at(0)?.map(|h| h.base_timestamp))
}

fn corrupt(path: &Path, position: u64, reason: &str) -> LogError {
    LogError::CorruptSegment {
        path: path.to_path_buf(),
        position,
        reason: reason.to_owned(),
    }
}
