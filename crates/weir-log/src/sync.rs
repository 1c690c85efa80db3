//! The data directory's one sync scheduler: group commit across every log.
//!
//! Appenders that need durability wait here. If no round is running, the
//! waiter becomes the leader and runs one itself (no thread hand-off on the
//! fast path); otherwise it sleeps until the running round ends and checks
//! again. A round takes every dirty log, syncs its data file and, if files
//! were created or removed, its directory, and only then publishes each
//! log's new durable offset and wakes all waiters. Appends that arrive
//! during a round are all served by the next one, so many partitions and
//! appenders share each `fdatasync`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::changes::Changes;
use crate::config::Clock;
use crate::error::Result;
use crate::log::LogShared;

/// Counters of the scheduler's work, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub rounds: u64,
    /// `fdatasync` calls on data files.
    pub data_syncs: u64,
    /// `fsync` calls on directories.
    pub dir_syncs: u64,
}

#[derive(Debug, Default)]
struct SchedState {
    dirty: Vec<Arc<LogShared>>,
    round_running: bool,
}

#[derive(Debug)]
pub(crate) struct SyncScheduler {
    clock: Arc<dyn Clock>,
    /// Moved whenever a round makes records durable (and so visible).
    pub changes: Arc<Changes>,
    state: Mutex<SchedState>,
    round_done: Condvar,
    rounds: AtomicU64,
    data_syncs: AtomicU64,
    dir_syncs: AtomicU64,
}

impl SyncScheduler {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            changes: Arc::default(),
            state: Mutex::default(),
            round_done: Condvar::new(),
            rounds: AtomicU64::new(0),
            data_syncs: AtomicU64::new(0),
            dir_syncs: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SchedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> SyncStats {
        SyncStats {
            rounds: self.rounds.load(Ordering::Relaxed),
            data_syncs: self.data_syncs.load(Ordering::Relaxed),
            dir_syncs: self.dir_syncs.load(Ordering::Relaxed),
        }
    }

    /// Puts a log on the list for the next round (once). The flag changes
    /// only under the scheduler's lock, so a waiter that sees it set knows
    /// the log is on the list.
    pub fn mark_dirty(&self, log: &Arc<LogShared>) {
        if log.queued.load(Ordering::Acquire) {
            return;
        }
        let mut st = self.lock();
        if !log.queued.swap(true, Ordering::AcqRel) {
            st.dirty.push(log.clone());
        }
    }

    /// Blocks until `log` is durable up to `offset` or has failed.
    pub fn wait_durable(&self, log: &Arc<LogShared>, offset: i64) -> Result<()> {
        let mut st = self.lock();
        loop {
            if log.durable() >= offset {
                return Ok(());
            }
            if let Some(err) = log.failure() {
                return Err(err);
            }
            if st.round_running {
                st = self.round_done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            log.sync_requested.store(true, Ordering::Release);
            if !log.queued.load(Ordering::Acquire) {
                // Not durable yet not queued: written under `Never`. Queue
                // it so the round covers it.
                log.queued.store(true, Ordering::Release);
                st.dirty.push(log.clone());
            }
            st = self.lead_round(st);
        }
    }

    /// Runs a round now if any `IntervalMs` log is due (the flusher's tick).
    pub fn flush_due(&self) {
        let st = self.lock();
        if st.round_running {
            return;
        }
        let now = self.clock.now_ms();
        if st.dirty.iter().any(|l| l.interval_due(now)) {
            drop(self.lead_round(st));
        }
    }

    /// Runs one round over `logs`, whatever their policy: used on close.
    pub fn sync_all(&self, logs: &[Arc<LogShared>]) -> Result<()> {
        let mut st = self.lock();
        while st.round_running {
            st = self.round_done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        for log in logs {
            log.sync_requested.store(true, Ordering::Release);
            if !log.queued.swap(true, Ordering::AcqRel) {
                st.dirty.push(log.clone());
            }
        }
        drop(self.lead_round(st));
        match logs.iter().find_map(|l| l.failure()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs one round as leader. Called with the lock held and no round
    /// running; returns with the lock held again.
    fn lead_round<'a>(&'a self, mut st: MutexGuard<'a, SchedState>) -> MutexGuard<'a, SchedState> {
        st.round_running = true;
        let logs = std::mem::take(&mut st.dirty);
        drop(st);

        let now = self.clock.now_ms();
        let plans: Vec<_> = logs
            .iter()
            .filter_map(|log| {
                // Clear before planning: an append after the plan re-queues.
                log.queued.store(false, Ordering::Release);
                log.plan_sync(now).map(|plan| (log, plan))
            })
            .collect();
        for (log, plan) in plans {
            match log.execute_sync(plan) {
                Ok((n_data, n_dir)) => {
                    self.data_syncs.fetch_add(n_data, Ordering::Relaxed);
                    self.dir_syncs.fetch_add(n_dir, Ordering::Relaxed);
                }
                // Never retry an fsync and trust it: the kernel may have
                // dropped the dirty pages already.
                Err(e) => log.fail(&e.to_string()),
            }
        }
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.changes.advance();

        let mut st = self.lock();
        st.round_running = false;
        self.round_done.notify_all();
        st
    }
}
