//! Removing a log's old data: retention by time and size (whole segments),
//! segments below an owner's offset, and Kafka's DeleteRecords (the log
//! start offset moved and checkpointed, then whole segments below it).

use super::*;

impl Log {
    /// Deletes whole segments that retention no longer keeps: those whose
    /// newest record is older than `retention_ms`, then the oldest while the
    /// log is over `retention_bytes`. An expired active segment is rolled
    /// first, so an idle log also shrinks.
    pub fn enforce_retention(&self) -> Result<RetentionOutcome> {
        let mut st = lock(&self.shared.state);
        self.shared.check_writable(&st)?;
        let now = self.shared.clock.now_ms();
        let expired = |s: &Segment, ms: Option<i64>| {
            ms.is_some_and(|ms| s.size > 0 && s.max_timestamp < now.saturating_sub(ms))
        };
        let retention_ms = st.config.retention_ms;
        let hwm = self.shared.visible_end(&st);
        // Roll an expired active segment only once all of it is visible, so
        // retention never races a pending sync.
        if expired(st.active(), retention_ms) && st.active().next_offset <= hwm {
            self.roll(&mut st)?;
        }
        let mut outcome = RetentionOutcome::default();
        loop {
            let n = st.segments.len();
            if n < 2 {
                break;
            }
            let oldest = &st.segments[0];
            // A sealed segment the cleaner emptied holds nothing to keep
            // (and, without a timestamp, would never expire by time).
            let by_time =
                expired(oldest, retention_ms) || (retention_ms.is_some() && oldest.size == 0);
            let by_size = st
                .config
                .retention_bytes
                .is_some_and(|max| st.size_bytes() - oldest.size >= max);
            if !(by_time || by_size) {
                break;
            }
            self.delete_oldest_segment(&mut st, &mut outcome);
        }
        st.start_at_least_first_segment();
        outcome.log_start_offset = st.start_offset();
        drop(st);
        if outcome.segments_deleted > 0 {
            tracing::info!(log = %self.shared.name, ?outcome, "retention deleted segments");
            self.shared.sched.mark_dirty(&self.shared);
        }
        Ok(outcome)
    }

    /// Deletes the whole segments that lie entirely below `offset` (their
    /// next offset is at or before it), for an owner that keeps what they
    /// held elsewhere, e.g. in a snapshot covering every record below
    /// `offset`. The active segment is never deleted, so the log start
    /// offset moves to the base of the first segment that holds `offset`
    /// or later, never past the active segment's base. Like retention, the
    /// deletions become durable with the next sync round; a crash may bring
    /// deleted segments back, and the next call deletes them again.
    pub fn delete_segments_before(&self, offset: i64) -> Result<RetentionOutcome> {
        let mut st = lock(&self.shared.state);
        self.shared.check_writable(&st)?;
        let mut outcome = RetentionOutcome::default();
        while st.segments.len() > 1 && st.segments[0].next_offset <= offset {
            self.delete_oldest_segment(&mut st, &mut outcome);
        }
        st.start_at_least_first_segment();
        outcome.log_start_offset = st.start_offset();
        drop(st);
        if outcome.segments_deleted > 0 {
            tracing::info!(log = %self.shared.name, offset, ?outcome, "deleted segments below an offset");
            self.shared.sched.mark_dirty(&self.shared);
        }
        Ok(outcome)
    }

    /// Moves the log start offset to `offset` (Kafka's DeleteRecords):
    /// records below it can no longer be read (a read there is
    /// `OffsetOutOfRange`, and reads report the new start), and the whole
    /// segments below it are deleted. When `offset` is the end of the log
    /// the active segment is rolled first, so its bytes go too.
    ///
    /// The move is durable when this returns: the start is written to the
    /// log's checkpoint file (synced, renamed, directory synced) before
    /// anything else changes, and a reopen, after a crash too, never starts
    /// lower. An `offset` at or below the current start changes nothing and
    /// answers the current start; one above the high watermark is refused
    /// with `StartPastHighWatermark`, and the log is untouched.
    pub fn delete_records_before(&self, offset: i64) -> Result<RecordsDeleted> {
        let _moving = self
            .shared
            .start_moves
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let start_offset_before = {
            let st = lock(&self.shared.state);
            self.shared.check_writable(&st)?;
            let high_watermark = self.shared.visible_end(&st);
            if offset > high_watermark {
                return Err(LogError::StartPastHighWatermark {
                    log: self.shared.name.clone(),
                    offset,
                    high_watermark,
                });
            }
            st.start_offset()
        };
        let mut outcome = RecordsDeleted {
            start_offset_before,
            log_start_offset: start_offset_before,
            ..RecordsDeleted::default()
        };
        if offset <= start_offset_before {
            return Ok(outcome);
        }
        // Outside the state lock (an fsync or two), but under `start_moves`:
        // the start cannot move meanwhile except by retention, which only
        // deletes whole segments, and the high watermark only grows.
        if let Err(e) = checkpoint::write(
            &*self.shared.storage,
            &self.shared.dir,
            checkpoint::START,
            offset,
        ) {
            if matches!(e, LogError::SyncFailed { .. }) {
                // A failed fsync is final, here as for segments.
                self.shared.fail(&e.to_string());
            }
            return Err(e);
        }
        let mut st = lock(&self.shared.state);
        st.log_start_offset = st.log_start_offset.max(offset);
        let hwm = self.shared.visible_end(&st);
        let active = st.active();
        if active.size > 0 && active.next_offset <= st.log_start_offset && active.next_offset <= hwm
        {
            // Best effort: the start moved and is durable whatever happens
            // to the roll (a failed seal turns the log read-only itself).
            if let Err(e) = self.roll(&mut st) {
                tracing::warn!(log = %self.shared.name, %e, "could not roll a segment wholly below the log start");
            }
        }
        let mut deleted = RetentionOutcome::default();
        while st.segments.len() > 1 && st.segments[0].next_offset <= st.log_start_offset {
            self.delete_oldest_segment(&mut st, &mut deleted);
        }
        outcome.log_start_offset = st.start_offset();
        outcome.segments_deleted = deleted.segments_deleted;
        outcome.bytes_deleted = deleted.bytes_deleted;
        let dir_dirty = st.dir_dirty;
        drop(st);
        tracing::info!(log = %self.shared.name, ?outcome, "moved the log start offset");
        if dir_dirty {
            // The deletions (and a roll's new file) become durable with the
            // next round; if a crash brings a segment back, the next open
            // deletes it again, as it lies below the checkpoint.
            self.shared.sched.mark_dirty(&self.shared);
        }
        Ok(outcome)
    }

    /// Removes the oldest (sealed) segment and its files; the caller marks
    /// the log dirty so the directory is synced.
    pub(super) fn delete_oldest_segment(&self, st: &mut LogState, outcome: &mut RetentionOutcome) {
        assert!(st.segments.len() > 1, "the active segment is never deleted");
        let seg = st.segments.remove(0);
        outcome.segments_deleted += 1;
        outcome.bytes_deleted += seg.size;
        for path in seg.paths() {
            if let Err(e) = self.shared.storage.remove_file(path) {
                tracing::warn!(path = %path.display(), %e, "could not delete a segment file");
            }
        }
        st.dir_dirty = true;
    }
}
