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
//!
//! **Gathering.** With many appenders that each wait for their append
//! before making the next (a closed loop), the waiters a round wakes come
//! back a moment after the next round has started, so rounds alternate
//! between two halves of the appenders. To keep rounds full, a round
//! remembers how many appenders were waiting when it ended (those it served
//! and those that arrived while it ran): that many are active. The next
//! leader waits, before it takes the dirty logs, until that many have come
//! to wait since the last round took its logs, or [`GATHER_WAIT_MAX`] (and
//! never longer than the last round's sync took) has passed. A lone appender never waits: one active
//! appender is already there. When appenders go away the estimate is too
//! high for one round, which waits its bound and corrects it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

/// The longest a leader waits for the appenders it expects before it
/// starts a round without them.
pub const GATHER_WAIT_MAX: Duration = Duration::from_micros(500);

#[derive(Debug, Default)]
struct SchedState {
    dirty: Vec<Arc<LogShared>>,
    /// A round is gathering or syncing: waiters wait for it to end.
    round_running: bool,
    /// Threads inside `wait_durable` that have not returned yet.
    waiting: usize,
    /// Threads that came to `wait_durable` since the last round took the
    /// dirty logs: their appends may need the next round.
    uncovered: usize,
    /// How many waiters the leader gathering now waits for (0: none).
    gather_target: usize,
    /// Waiters when the last round ended: the appenders active now.
    active_estimate: usize,
    /// How long the last round's syncs took.
    last_sync: Duration,
}

#[derive(Debug)]
pub(crate) struct SyncScheduler {
    clock: Arc<dyn Clock>,
    /// Moved whenever a round makes records durable (and so visible).
    pub changes: Arc<Changes>,
    state: Mutex<SchedState>,
    round_done: Condvar,
    /// Signalled when the waiters a gathering leader expects are there.
    gathered: Condvar,
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
            gathered: Condvar::new(),
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
        if log.durable() >= offset {
            return Ok(());
        }
        let mut st = self.lock();
        st.waiting += 1;
        st.uncovered += 1;
        if st.gather_target > 0 && st.uncovered >= st.gather_target {
            self.gathered.notify_one();
        }
        let result = loop {
            if log.durable() >= offset {
                break Ok(());
            }
            if let Some(err) = log.failure() {
                break Err(err);
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
            st = self.lead_round(st, true);
        };
        st.waiting -= 1;
        result
    }

    /// Runs a round now if any `IntervalMs` log is due (the flusher's tick).
    pub fn flush_due(&self) {
        let st = self.lock();
        if st.round_running {
            return;
        }
        let now = self.clock.now_ms();
        if st.dirty.iter().any(|l| l.interval_due(now)) {
            drop(self.lead_round(st, false));
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
        drop(self.lead_round(st, false));
        match logs.iter().find_map(|l| l.failure()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs one round as leader, first gathering the appenders it expects
    /// if `gather`. Called with the lock held and no round running; returns
    /// with the lock held again.
    fn lead_round<'a>(
        &'a self,
        mut st: MutexGuard<'a, SchedState>,
        gather: bool,
    ) -> MutexGuard<'a, SchedState> {
        st.round_running = true;
        // (Count arrivals since the last round took its logs, not waiters:
        // those the last round served may not have left yet.)
        if gather && st.uncovered < st.active_estimate {
            let deadline = Instant::now() + GATHER_WAIT_MAX.min(st.last_sync);
            st.gather_target = st.active_estimate;
            while st.uncovered < st.gather_target {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                st = self
                    .gathered
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            st.gather_target = 0;
        }
        let logs = std::mem::take(&mut st.dirty);
        st.uncovered = 0;
        drop(st);
        let started = Instant::now();

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
        let synced_in = started.elapsed();

        let mut st = self.lock();
        st.last_sync = synced_in;
        // Everyone waiting now (served or not) is an active appender.
        st.active_estimate = st.waiting;
        st.round_running = false;
        self.round_done.notify_all();
        st
    }
}
