//! One partition log: append with offset assignment, segment roll, and the
//! sync state the scheduler drives; reads that never pass what readers may
//! see and lookups by time are in `read.rs`, retention and DeleteRecords
//! in `retention.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::batch::{self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD_BYTES};
use crate::checkpoint;
use crate::config::{BATCH_BYTES_LIMIT, Clock, FsyncPolicy, LogConfig};
use crate::error::{BatchError, LogError, Result};
use crate::segment::{self, ChunkReader, SEEK_CHUNK_BYTES, Segment};
use crate::storage::{Storage, StorageFile};
use crate::sync::{SyncScheduler, UntilDurable};

mod clean;
mod read;
mod retention;

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The log's clock when the append was written.
    pub log_append_time_ms: i64,
}

/// Whole batches read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatches {
    /// Concatenated batches exactly as stored (possibly empty).
    pub bytes: Vec<u8>,
    /// The offset after the last returned batch: where to read next.
    pub next_offset: i64,
    pub log_start_offset: i64,
    /// The end of what readers may see, at the time of the read.
    pub high_watermark: i64,
}

/// The record a time lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeMatch {
    pub offset: i64,
    pub timestamp: i64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

/// What [`Log::delete_records_before`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordsDeleted {
    /// The log start offset before the call.
    pub start_offset_before: i64,
    /// The log start offset now (durable): `start_offset_before` when the
    /// call asked for an offset at or below it.
    pub log_start_offset: i64,
    /// Whole segments removed from disk because every record in them lies
    /// below the new start.
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
}

impl RecordsDeleted {
    /// How many offsets the start moved over.
    pub fn n_records(&self) -> u64 {
        (self.log_start_offset - self.start_offset_before) as u64
    }
}

/// A handle to one open log; clones share it.
#[derive(Debug, Clone)]
pub struct Log {
    pub(crate) shared: Arc<LogShared>,
}

#[derive(Debug)]
pub(crate) struct LogShared {
    pub name: String,
    pub dir: PathBuf,
    pub(crate) storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    sched: Arc<SyncScheduler>,
    state: Mutex<LogState>,
    /// Held across a whole [`Log::delete_records_before`], so checkpoints
    /// reach the disk in the order their starts were decided (the state
    /// lock is not held while the checkpoint is synced: appends and sync
    /// rounds go on meanwhile).
    start_moves: Mutex<()>,
    /// Held across a whole [`Log::clean`]: one cleaning pass at a time.
    cleaning: Mutex<()>,
    /// Every offset below this is on disk and survives a crash.
    durable_offset: AtomicI64,
    /// Whether the log sits in the scheduler's dirty list.
    pub queued: AtomicBool,
    /// Someone waits for durability (or closes): sync data even under
    /// [`FsyncPolicy::Never`].
    pub sync_requested: AtomicBool,
    /// Set once the log turned read-only; waiters check it without the lock.
    failed: AtomicBool,
}

#[derive(Debug)]
struct LogState {
    config: LogConfig,
    /// Ordered by base offset, each one's offsets below the next one's base
    /// (contiguous as appended; with gaps where the cleaner removed
    /// records); the last is active.
    segments: Vec<Segment>,
    /// The first offset readers may read (Kafka's log start offset):
    /// `segments[0].base_offset <= log_start_offset <= the high watermark`.
    /// It never decreases. Above the first segment's base it was moved by
    /// [`Log::delete_records_before`] and is in the log's checkpoint file.
    log_start_offset: i64,
    /// The cleaner's first dirty offset: every sealed segment below it was
    /// cleaned by the last pass (checkpointed; 0 for a log never cleaned).
    clean_offset: i64,
    /// A file was created or deleted in the log's directory since its last
    /// sync.
    dir_dirty: bool,
    read_only: Option<String>,
    closed: bool,
    last_sync_ms: i64,
}

/// What one sync round must do for one log, taken under its lock.
#[derive(Debug)]
pub(crate) struct SyncPlan {
    file: Option<(Arc<dyn StorageFile>, PathBuf)>,
    dir: bool,
    next_offset: i64,
}

fn lock(state: &Mutex<LogState>) -> MutexGuard<'_, LogState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogState {
    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    fn start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// After segments were deleted (by retention or an owner), the start is
    /// at least the first remaining segment's base.
    fn start_at_least_first_segment(&mut self) {
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
    }

    fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
}

impl Log {
    /// Opens (recovering) or creates the log in `dir`.
    pub(crate) fn open(
        name: &str,
        dir: PathBuf,
        config: LogConfig,
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        sched: Arc<SyncScheduler>,
    ) -> Result<Self> {
        config.validate()?;
        // A cleaned segment a crash left half swapped in is finished or
        // undone before any segment is read.
        crate::clean::swap::recover(&*storage, &dir, name)?;
        let mut bases: Vec<i64> = storage
            .list_dir(&dir)
            .map_err(LogError::io("list", &dir))?
            .iter()
            .filter_map(|n| segment::parse_data_file_name(n))
            .collect();
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied();
            segments.push(Segment::open(&*storage, &dir, *base, next, name)?);
        }
        if segments.is_empty() {
            segments.push(Segment::create(&*storage, &dir, 0)?);
        }
        let log_start_offset = recovered_start(
            name,
            checkpoint::read(&*storage, &dir, checkpoint::START)?,
            &segments,
        );
        // A move whose segment deletions did not reach the disk before a
        // crash (or a checkpoint from before a retention pass): the segments
        // wholly below the start go now; the sync below makes it durable.
        while segments.len() > 1 && segments[0].next_offset <= log_start_offset {
            for path in segments.remove(0).paths() {
                if let Err(e) = storage.remove_file(path) {
                    tracing::warn!(path = %path.display(), %e, "could not delete a segment file");
                }
            }
        }
        // Recovery synced the active segment's data (or created it); its
        // entry in the directory must be durable too before the log's
        // records count as such.
        storage
            .sync_dir(&dir)
            .map_err(LogError::sync(dir.clone()))?;
        let end = segments.last().expect("just ensured").next_offset;
        let clean_offset = checkpoint::read(&*storage, &dir, checkpoint::CLEANER)?.unwrap_or(0);
        let shared = Arc::new(LogShared {
            name: name.to_owned(),
            dir,
            storage,
            clock: clock.clone(),
            sched,
            start_moves: Mutex::new(()),
            cleaning: Mutex::new(()),
            state: Mutex::new(LogState {
                config,
                segments,
                log_start_offset,
                clean_offset,
                dir_dirty: false,
                read_only: None,
                closed: false,
                last_sync_ms: clock.now_ms(),
            }),
            // What recovery found is on disk: sealed segments were synced and
            // the active tail was validated (and its truncation synced).
            durable_offset: AtomicI64::new(end),
            queued: AtomicBool::new(false),
            sync_requested: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        });
        Ok(Self { shared })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn config(&self) -> LogConfig {
        lock(&self.shared.state).config.clone()
    }

    /// Changes the log's configuration; it applies from the next append or
    /// retention pass.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        let mut st = lock(&self.shared.state);
        if config.fsync != FsyncPolicy::Always {
            // Readers will see up to the end offset, so every byte must be
            // in the file.
            self.shared.write_deferred(&mut st)?;
        }
        st.config = config;
        Ok(())
    }

    /// The first offset still in the log (Kafka's log start offset): the
    /// first segment's base, or further when
    /// [`Log::delete_records_before`] moved it.
    pub fn start_offset(&self) -> i64 {
        lock(&self.shared.state).start_offset()
    }

    /// The offset the next append gets (Kafka's log end offset).
    pub fn end_offset(&self) -> i64 {
        lock(&self.shared.state).active().next_offset
    }

    /// Every offset below this survives a crash.
    pub fn durable_offset(&self) -> i64 {
        self.shared.durable_offset.load(Ordering::Acquire)
    }

    /// The end of what readers see: the durable offset under
    /// [`FsyncPolicy::Always`], the end offset otherwise.
    pub fn high_watermark(&self) -> i64 {
        let st = lock(&self.shared.state);
        self.shared.visible_end(&st)
    }

    /// Bytes of batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        lock(&self.shared.state).size_bytes()
    }

    /// The base offset of the active segment: the cleaner never goes
    /// there, so compaction leaves every record from it on as appended.
    pub fn active_base_offset(&self) -> i64 {
        lock(&self.shared.state).active().base_offset
    }

    pub fn segment_count(&self) -> usize {
        lock(&self.shared.state).segments.len()
    }

    /// The policy appends are acknowledged under.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        lock(&self.shared.state).config.fsync
    }

    /// An offset from which reading to the end covers at most about
    /// `bytes_back` bytes of the active segment (its base when it is
    /// smaller): where a scan of the recent past can start.
    pub fn recent_offset(&self, bytes_back: u64) -> i64 {
        let st = lock(&self.shared.state);
        let active = st.active();
        active
            .offset_at_or_before(active.size.saturating_sub(bytes_back))
            .max(st.start_offset())
    }

    /// Appends one or more concatenated RecordBatch v2 batches, all or none.
    /// Offsets are assigned and written into `batches`. Under
    /// [`FsyncPolicy::Always`] this returns only once the batches are
    /// durable.
    pub fn append(&self, batches: &mut [u8]) -> Result<AppendInfo> {
        let (info, fsync) = self.write(batches)?;
        if fsync == FsyncPolicy::Always {
            self.shared
                .sched
                .wait_durable(&self.shared, info.last_offset + 1)?;
        }
        Ok(info)
    }

    /// Like [`Log::append`] but returns once written, before the sync; pair
    /// it with [`Log::wait_durable`].
    pub fn append_nowait(&self, batches: &mut [u8]) -> Result<AppendInfo> {
        self.write(batches).map(|(info, _)| info)
    }

    /// Validates, stamps and writes; returns the policy the write was made
    /// under.
    fn write(&self, batches: &mut [u8]) -> Result<(AppendInfo, FsyncPolicy)> {
        // Checked against the limit again under the lock: the config may
        // change in between, and validation is better done without it.
        if batches.len() > BATCH_BYTES_LIMIT {
            return Err(BatchError::TooLarge {
                bytes: batches.len(),
                bytes_max: BATCH_BYTES_LIMIT,
            }
            .into());
        }
        let mut headers = batch::validate_all(batches)?;
        let n_offsets: i64 = headers
            .iter()
            .map(|(h, _)| i64::from(h.last_offset_delta) + 1)
            .sum();

        let mut st = lock(&self.shared.state);
        self.shared.check_writable(&st)?;
        if batches.len() > st.config.batch_bytes_max {
            return Err(BatchError::TooLarge {
                bytes: batches.len(),
                bytes_max: st.config.batch_bytes_max,
            }
            .into());
        }
        let now = self.shared.clock.now_ms();
        self.maybe_roll(&mut st, batches.len() as u64, n_offsets, now)?;
        let base_offset = st.active().next_offset;
        if base_offset.checked_add(n_offsets).is_none() {
            return Err(LogError::OffsetOverflow {
                log: self.shared.name.clone(),
                offset: base_offset,
            });
        }
        let mut next = base_offset;
        for (header, range) in &mut headers {
            batch::stamp(&mut batches[range.clone()], next, 0, now);
            *header = BatchHeader::parse(&batches[range.start..range.start + HEADER_BYTES])?;
            next = header.last_offset() + 1;
        }
        let config = st.config.clone();
        let active = st.active_mut();
        let pos = active.size;
        let end = pos + batches.len() as u64;
        if end > active.allocated && config.preallocate_bytes > 0 {
            let target = (active.allocated + config.preallocate_bytes)
                .max(end)
                .min(config.segment_bytes_max.max(end));
            active
                .data
                .preallocate(active.allocated, target)
                .map_err(LogError::io("preallocate", &active.data_path))?;
            active.allocated = target;
        }
        // Under `Always` the append waits for a round anyway: a small one
        // into space already written (zeros ahead), where a write needs no
        // block and cannot meet a full disk, leaves its bytes for the
        // round's one `pwrite`. Otherwise they are written now, after any
        // deferred ones, so that a full disk fails this append alone.
        let defer = config.fsync == FsyncPolicy::Always
            && end <= active.zeroed_end
            && batches.len() <= segment::DEFERRED_APPEND_BYTES_MAX
            && active.deferred.len() + batches.len() <= segment::DEFERRED_BYTES_MAX;
        if defer {
            active.deferred.extend_from_slice(batches);
        } else {
            self.shared.write_deferred(&mut st)?;
            let active = st.active_mut();
            active
                .data
                .write_all_at(batches, pos)
                .map_err(LogError::io("write", &active.data_path))?;
        }
        let active = st.active_mut();
        zero_ahead(active, end, batches.len() as u64, &config);
        active.on_append(&headers, pos, u64::from(config.index_interval_bytes), now);
        drop(st);
        if config.fsync != FsyncPolicy::Never {
            self.shared.sched.mark_dirty(&self.shared);
        }
        if config.fsync != FsyncPolicy::Always {
            // Visible at once under these policies.
            self.shared.sched.changes.advance();
        }
        let info = AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time_ms: now,
        };
        Ok((info, config.fsync))
    }

    /// Resolves once every offset below `offset` is durable (or the log
    /// has failed), blocking no thread: the async form of
    /// [`Log::wait_durable`], to pair with [`Log::append_nowait`].
    pub fn until_durable(&self, offset: i64) -> UntilDurable {
        let offset = offset.min(self.end_offset());
        UntilDurable::new(self.shared.sched.clone(), self.shared.clone(), offset)
    }

    /// Blocks until every offset below `offset` is durable, running a sync
    /// round itself when none is under way (group commit: one round serves
    /// every log and appender that is waiting).
    pub fn wait_durable(&self, offset: i64) -> Result<()> {
        let offset = offset.min(self.end_offset());
        self.shared.sched.wait_durable(&self.shared, offset)
    }

    fn maybe_roll(&self, st: &mut LogState, bytes: u64, n_offsets: i64, now: i64) -> Result<()> {
        let active = st.active();
        let too_big = active.size + bytes > st.config.segment_bytes_max;
        let too_old = active
            .first_append_ms
            .is_some_and(|t| now.saturating_sub(t) >= st.config.segment_ms);
        let rel_overflow =
            active.next_offset + n_offsets - active.base_offset > i64::from(u32::MAX);
        if active.size > 0 && (too_big || too_old || rel_overflow) {
            self.roll(st)?;
        }
        Ok(())
    }

    /// Seals the active segment (synced) and starts a new one; the new
    /// file's directory entry is synced by the next round before any record
    /// in it counts as durable.
    fn roll(&self, st: &mut LogState) -> Result<()> {
        self.shared.write_deferred(st)?;
        if let Err(e) = st.active_mut().seal() {
            // A failed fsync is final; anything else (a full disk) leaves
            // the segment active and the log writable.
            if matches!(e, LogError::SyncFailed { .. }) {
                self.shared.fail_locked(st, &e.to_string());
            }
            return Err(e);
        }
        let base = st.active().next_offset;
        let segment = Segment::create(&*self.shared.storage, &self.shared.dir, base)?;
        st.active_mut().mark_sealed();
        st.segments.push(segment);
        st.dir_dirty = true;
        Ok(())
    }
}

/// Writes zeros ahead of a small append when the zeroed region runs short
/// (see [`LogConfig::zero_ahead_bytes`]). Zeros past the end of the data
/// are what recovery expects there, so this never needs undoing; a failure
/// only loses the speed-up.
fn zero_ahead(active: &mut Segment, end: u64, append_bytes: u64, config: &LogConfig) {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let step = config.zero_ahead_bytes;
    if step == 0 || append_bytes.saturating_mul(4) > step || active.zeroed_end >= end + step / 2 {
        return;
    }
    let from = active.zeroed_end.max(end);
    let to = (from + step).min(config.segment_bytes_max);
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64);
        if let Err(err) = active.data.write_all_at(&ZEROS[..n as usize], at) {
            tracing::warn!(segment = %active.data_path.display(), %err, "zeroing ahead failed");
            return;
        }
        at += n;
    }
    active.zeroed_end = to;
}

/// The log start offset of a reopened log: the checkpoint's, but never below
/// the first segment's base (retention may have deleted past it) and never
/// above the recovered end of the log.
fn recovered_start(name: &str, checkpoint: Option<i64>, segments: &[Segment]) -> i64 {
    let first_base = segments[0].base_offset;
    let end = segments.last().expect("a log has a segment").next_offset;
    let Some(checkpointed) = checkpoint else {
        return first_base;
    };
    if checkpointed > end {
        // A start past the recovered end: under `fsync=interval`/`never` the
        // high watermark is the (unsynced) end offset, so a start moved up
        // to it is durable while the records below it may not be, and a
        // crash takes them back. Those offsets were deleted anyway; the
        // start clamps to the end, and appends go on from there.
        tracing::warn!(
            log = name,
            checkpointed,
            end,
            "the log start checkpoint is past the recovered end; starting at the end"
        );
        return end;
    }
    checkpointed.max(first_base)
}

impl LogShared {
    fn visible_end(&self, st: &LogState) -> i64 {
        match st.config.fsync {
            FsyncPolicy::Always => self.durable_offset.load(Ordering::Acquire),
            _ => st.active().next_offset,
        }
    }

    fn check_writable(&self, st: &LogState) -> Result<()> {
        if st.closed {
            return Err(LogError::Closed {
                log: self.name.clone(),
            });
        }
        if let Some(reason) = &st.read_only {
            return Err(LogError::ReadOnly {
                log: self.name.clone(),
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    pub fn durable(&self) -> i64 {
        self.durable_offset.load(Ordering::Acquire)
    }

    /// Whether the log failed (turned read-only after a failed sync).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The error a waiter gets once the log failed, if it did.
    pub fn failure(&self) -> Option<LogError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let st = lock(&self.state);
        Some(LogError::ReadOnly {
            log: self.name.clone(),
            reason: st.read_only.clone().unwrap_or_default(),
        })
    }

    fn fail_locked(&self, st: &mut LogState, reason: &str) {
        if st.read_only.is_none() {
            tracing::error!(log = %self.name, reason, "log turned read-only");
            st.read_only = Some(reason.to_owned());
        }
        self.failed.store(true, Ordering::Release);
    }

    /// Writes the active segment's deferred bytes. Their appends were
    /// taken and their writers wait, so the log cannot go on without them:
    /// a failure turns it read-only, as a failed sync does.
    fn write_deferred(&self, st: &mut LogState) -> Result<()> {
        let written = st.active_mut().write_deferred();
        if let Err(e) = &written {
            self.fail_locked(st, &e.to_string());
        }
        written
    }

    /// Turns the log read-only: an fsync failed, so what the page cache
    /// holds can no longer be trusted to reach the disk.
    pub fn fail(&self, reason: &str) {
        let mut st = lock(&self.state);
        self.fail_locked(&mut st, reason);
    }

    /// Takes what a sync round must do for this log: its unsynced data
    /// (unless the policy is `Never` and nobody asked), and its directory if
    /// files were created or deleted in it.
    pub fn plan_sync(&self, now_ms: i64) -> Option<SyncPlan> {
        let requested = self.sync_requested.swap(false, Ordering::AcqRel);
        let mut st = lock(&self.state);
        if st.read_only.is_some() || st.closed {
            return None;
        }
        let next_offset = st.active().next_offset;
        let needs_data =
            next_offset > self.durable() && (requested || st.config.fsync != FsyncPolicy::Never);
        let dir = std::mem::take(&mut st.dir_dirty);
        if !needs_data && !dir {
            return None;
        }
        st.last_sync_ms = now_ms;
        if needs_data && self.write_deferred(&mut st).is_err() {
            return None;
        }
        let active = st.active();
        Some(SyncPlan {
            file: needs_data.then(|| (active.data.clone(), active.data_path.clone())),
            dir,
            next_offset,
        })
    }

    /// Carries out a plan: data, then directory, then the durable offset.
    pub fn execute_sync(&self, plan: SyncPlan) -> std::result::Result<(u64, u64), LogError> {
        let (mut n_data, mut n_dir) = (0, 0);
        if let Some((file, path)) = plan.file {
            file.sync_data().map_err(LogError::sync(path))?;
            n_data += 1;
        }
        if plan.dir {
            self.storage
                .sync_dir(&self.dir)
                .map_err(LogError::sync(self.dir.clone()))?;
            n_dir += 1;
        }
        if n_data > 0 {
            self.durable_offset
                .fetch_max(plan.next_offset, Ordering::AcqRel);
        }
        Ok((n_data, n_dir))
    }

    /// Whether an `IntervalMs` log is due for its periodic sync.
    pub fn interval_due(&self, now_ms: i64) -> bool {
        let st = lock(&self.state);
        match st.config.fsync {
            FsyncPolicy::IntervalMs(ms) => now_ms.saturating_sub(st.last_sync_ms) >= ms as i64,
            _ => false,
        }
    }

    /// Stops the log: later appends fail with `Closed`. Index entries still
    /// in memory are written, so the next open need not scan for them.
    pub fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        // A failure turns the log read-only; nothing else is left to do.
        let _ = self.write_deferred(&mut st);
        st.active_mut().flush_indexes();
    }
}
