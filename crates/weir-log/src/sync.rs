//! The data directory's one sync scheduler: group commit across every log.
//!
//! Appenders that need durability wait here. If no round is running, the
//! waiter becomes the leader and runs one itself (no thread hand-off on the
//! fast path); otherwise it sleeps until the running round ends and checks
//! again. A round takes every dirty log, writes the bytes its appends
//! deferred (one `pwrite` for all of them), syncs its data file and, if
//! files were created or removed, its directory, and only then publishes each
//! log's new durable offset and wakes all waiting threads. Appends that
//! arrive during a round are all served by the next one, so many
//! partitions and appenders share each `fdatasync`. (Letting two or more
//! rounds sync at once was measured slower: one file's `fdatasync`s wait
//! for each other's writeback, and rounds got smaller. Waking each thread
//! on its own, instead of one `notify_all`, was measured no faster.)
//!
//! **Tasks.** An async caller awaits [`UntilDurable`] instead of blocking
//! a thread. Its waker is kept on a list; a round's end wakes the tasks it
//! served (their log is durable past their offset, or failed) and no other.
//! A task cannot run a round (that would block its executor), so when only
//! tasks wait, the data directory's sync thread leads the round. An async
//! server thus holds no thread per append in flight.
//!
//! **Gathering.** With many appenders that each wait for their append
//! before making the next (a closed loop), a leader that starts at once
//! carries only the few appends made so far. A round therefore remembers
//! how many appenders were waiting when it ended (those it served and
//! those still waiting): that many are active. The next leader waits,
//! before it takes the dirty logs, until that many have come to wait since
//! the last round took its logs, or [`GATHER_WAIT_MAX`] (and never longer
//! than the last round's sync took) has passed. A lone appender never waits: one active appender is already
//! there. When appenders go away the estimate is too high for one round,
//! which waits its bound and corrects it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::changes::Changes;
use crate::config::Clock;
use crate::error::Result;
use crate::log::{LogShared, SyncPlan};

/// Counters of the scheduler's work, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub rounds: u64,
    /// `fdatasync` calls on data files.
    pub data_syncs: u64,
    /// `fsync` calls on directories.
    pub dir_syncs: u64,
}

/// Distributions of the scheduler's rounds, for metrics.
#[derive(Debug)]
pub struct SyncHistograms {
    /// How long each round's writes and syncs took, in nanoseconds.
    pub round_ns: crate::stats::Histogram,
    /// Appends (waiting threads and tasks) each round made durable.
    pub round_appends: crate::stats::Histogram,
}

impl Default for SyncHistograms {
    fn default() -> Self {
        Self {
            round_ns: crate::stats::Histogram::latency(),
            round_appends: crate::stats::Histogram::new(crate::stats::COUNT_BOUNDS),
        }
    }
}

/// The longest a leader waits for the appenders it expects before it
/// starts a round without them.
pub const GATHER_WAIT_MAX: Duration = Duration::from_micros(500);
/// Threads that sync one round's files side by side, this one included.
const SYNC_WORKERS_MAX: usize = 4;

/// A task waiting until a round covers `offset` of `log`.
#[derive(Debug)]
struct Parked {
    waker: Mutex<Waker>,
    log: Arc<LogShared>,
    offset: i64,
    /// Set by the round that takes it off the parked list, before the
    /// wake.
    woken: AtomicBool,
}

impl Parked {
    fn served(&self) -> bool {
        self.log.durable() >= self.offset || self.log.has_failed()
    }

    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        // Woken outside the lock, in case the waker polls at once.
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
        waker.wake();
    }
}

#[derive(Debug, Default)]
struct SchedState {
    dirty: Vec<Arc<LogShared>>,
    /// A round is gathering or syncing: waiters wait for it to end.
    round_running: bool,
    /// Tasks waiting, not yet served.
    parked: Vec<Arc<Parked>>,
    /// Waiters that came since the last round took the dirty logs: their
    /// appends may need the next round.
    uncovered: usize,
    /// How many waiters the leader gathering now waits for (0: none).
    gather_target: usize,
    /// Waiters when the last round ended: the appenders active now.
    active_estimate: usize,
    /// How long the last round's syncs took.
    last_sync: Duration,
    /// A task waits and no thread leads a round for it: the sync thread
    /// should.
    round_wanted: bool,
    /// The data directory is closing: the sync thread ends.
    stopping: bool,
}

#[derive(Debug)]
pub(crate) struct SyncScheduler {
    clock: Arc<dyn Clock>,
    /// Moved whenever a round makes records durable (and so visible).
    pub changes: Arc<Changes>,
    state: Mutex<SchedState>,
    /// Waiters (threads and tasks) not yet served.
    waiting: AtomicUsize,
    /// Wakes the sync thread: a round is wanted, or the directory closes.
    wanted: Condvar,
    /// Signalled when a round ends, for [`SyncScheduler::sync_all`].
    round_done: Condvar,
    /// Signalled when the waiters a gathering leader expects are there.
    gathered: Condvar,
    rounds: AtomicU64,
    data_syncs: AtomicU64,
    dir_syncs: AtomicU64,
    pub histograms: SyncHistograms,
}

impl SyncScheduler {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            changes: Arc::default(),
            state: Mutex::default(),
            waiting: AtomicUsize::new(0),
            wanted: Condvar::new(),
            round_done: Condvar::new(),
            gathered: Condvar::new(),
            rounds: AtomicU64::new(0),
            data_syncs: AtomicU64::new(0),
            dir_syncs: AtomicU64::new(0),
            histograms: SyncHistograms::default(),
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
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let result = self.wait_slow(log, offset);
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        result
    }

    fn wait_slow(&self, log: &Arc<LogShared>, offset: i64) -> Result<()> {
        let mut st = self.lock();
        self.arrived(&mut st);
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
            self.lead_round(st, true);
            st = self.lock();
        }
    }

    /// Counts a waiter that has come: its append may need the next round.
    fn arrived(&self, st: &mut SchedState) {
        st.uncovered += 1;
        if st.gather_target > 0 && st.uncovered >= st.gather_target {
            self.gathered.notify_one();
        }
    }

    /// With no round running and tasks still parked, asks the sync thread
    /// to lead a round for them (blocked threads, woken by every round's
    /// end, lead their own).
    fn hand_over(&self, st: &mut SchedState) {
        if !st.round_running && !st.parked.is_empty() {
            st.round_wanted = true;
            self.wanted.notify_one();
        }
    }

    /// The sync thread: leads the rounds tasks want and, every `tick`,
    /// syncs `IntervalMs` logs that are due, until [`SyncScheduler::stop`].
    pub fn run_sync_thread(&self, tick: Duration) {
        let mut next_tick = Instant::now() + tick;
        let mut st = self.lock();
        while !st.stopping {
            if st.round_wanted && !st.round_running {
                st.round_wanted = false;
                self.lead_round(st, true);
                st = self.lock();
                continue;
            }
            let now = Instant::now();
            if now >= next_tick {
                drop(st);
                self.flush_due();
                next_tick = Instant::now() + tick;
                st = self.lock();
                continue;
            }
            st = self
                .wanted
                .wait_timeout(st, next_tick - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Ends [`SyncScheduler::run_sync_thread`].
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wanted.notify_all();
    }

    /// Registers (or refreshes) a task's wait; `Ready` once served.
    fn poll_task(
        &self,
        log: &Arc<LogShared>,
        offset: i64,
        me: &mut Option<Arc<Parked>>,
        cx: &Context<'_>,
    ) -> Poll<Result<()>> {
        let mut st = self.lock();
        if log.durable() >= offset {
            return Poll::Ready(Ok(()));
        }
        if let Some(err) = log.failure() {
            return Poll::Ready(Err(err));
        }
        // (A task is taken off the list only once served, which the checks
        // above see: one still pending is on the list.)
        match me {
            Some(p) => p
                .waker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone_from(cx.waker()),
            None => {
                let p = Arc::new(Parked {
                    waker: Mutex::new(cx.waker().clone()),
                    log: log.clone(),
                    offset,
                    woken: AtomicBool::new(false),
                });
                self.waiting.fetch_add(1, Ordering::Relaxed);
                self.arrived(&mut st);
                st.parked.push(p.clone());
                *me = Some(p);
            }
        }
        if !st.round_running {
            st.round_wanted = true;
            self.wanted.notify_one();
        }
        Poll::Pending
    }

    /// A task's wait ends (served, or its future dropped).
    fn task_done(&self, me: &Arc<Parked>) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        if !me.woken.load(Ordering::Acquire) {
            self.lock().parked.retain(|p| !Arc::ptr_eq(p, me));
        }
    }

    /// Runs a round now if any `IntervalMs` log is due (the sync thread's tick).
    pub fn flush_due(&self) {
        let st = self.lock();
        if st.round_running {
            return;
        }
        let now = self.clock.now_ms();
        if st.dirty.iter().any(|l| l.interval_due(now)) {
            self.lead_round(st, false);
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
        self.lead_round(st, false);
        match logs.iter().find_map(|l| l.failure()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs one round as leader, first gathering the appenders it expects
    /// if `gather`. Called with the lock held and no round running;
    /// returns once the round has ended and woken its waiters.
    fn lead_round(&self, mut st: MutexGuard<'_, SchedState>, gather: bool) {
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
        let covered = st.uncovered;
        st.uncovered = 0;
        drop(st);
        let started = Instant::now();
        // Counted before any waiter can see the round's effect.
        self.rounds.fetch_add(1, Ordering::Relaxed);

        let now = self.clock.now_ms();
        let plans: Vec<_> = logs
            .iter()
            .filter_map(|log| {
                // Clear before planning: an append after the plan re-queues.
                log.queued.store(false, Ordering::Release);
                log.plan_sync(now).map(|plan| (log, plan))
            })
            .collect();
        let execute = |plans: Vec<(&Arc<LogShared>, SyncPlan)>| {
            for (log, plan) in plans {
                match log.execute_sync(plan) {
                    Ok((n_data, n_dir)) => {
                        self.data_syncs.fetch_add(n_data, Ordering::Relaxed);
                        self.dir_syncs.fetch_add(n_dir, Ordering::Relaxed);
                    }
                    // Never retry an fsync and trust it: the kernel may
                    // have dropped the dirty pages already.
                    Err(e) => log.fail(&e.to_string()),
                }
            }
        };
        if plans.len() < 2 {
            execute(plans);
        } else {
            // The files of a round are synced side by side, so a round over
            // many logs (a produce to many partitions, a transaction's
            // markers) lasts about one fdatasync, not one per file: the
            // disk and the file system's journal take concurrent flushes
            // together. Workers live for the round only.
            let workers = plans.len().min(SYNC_WORKERS_MAX);
            let mut split: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
            for (i, p) in plans.into_iter().enumerate() {
                split[i % workers].push(p);
            }
            // Each share is taken by whoever runs it, so one whose worker
            // could not start is run here afterwards.
            let shares: Vec<Mutex<Option<Vec<_>>>> =
                split.into_iter().map(|s| Mutex::new(Some(s))).collect();
            let take = |share: &Mutex<Option<Vec<_>>>| {
                share.lock().unwrap_or_else(|e| e.into_inner()).take()
            };
            std::thread::scope(|s| {
                for share in &shares[1..] {
                    let spawned = std::thread::Builder::new()
                        .name("weir-sync-worker".into())
                        .spawn_scoped(s, || {
                            if let Some(plans) = take(share) {
                                execute(plans);
                            }
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(%e, "could not start a sync worker");
                    }
                }
                if let Some(plans) = take(&shares[0]) {
                    execute(plans);
                }
            });
            for share in &shares {
                if let Some(plans) = take(share) {
                    execute(plans);
                }
            }
        }
        self.changes.advance();
        let synced_in = started.elapsed();
        self.histograms.round_ns.record_duration(synced_in);
        self.histograms.round_appends.record(covered as u64);

        let mut st = self.lock();
        st.last_sync = synced_in;
        // Everyone waiting now (served or not) is an active appender.
        st.active_estimate = self.waiting.load(Ordering::Relaxed);
        st.round_running = false;
        let (served, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut st.parked)
            .into_iter()
            .partition(|p| p.served());
        st.parked = rest;
        // Wanted again below if tasks still wait.
        st.round_wanted = false;
        self.hand_over(&mut st);
        self.round_done.notify_all();
        drop(st);
        for p in served {
            p.wake();
        }
    }
}

/// A future that resolves once a log is durable up to an offset (or has
/// failed): [`crate::Log::until_durable`]. It blocks no thread; the rounds
/// it waits for are led by the data directory's sync thread, or by a
/// thread blocked in `wait_durable` if one is, and share their
/// `fdatasync`s with every other waiter.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct UntilDurable {
    sched: Arc<SyncScheduler>,
    log: Arc<LogShared>,
    offset: i64,
    me: Option<Arc<Parked>>,
}

impl UntilDurable {
    pub(crate) fn new(sched: Arc<SyncScheduler>, log: Arc<LogShared>, offset: i64) -> Self {
        Self {
            sched,
            log,
            offset,
            me: None,
        }
    }
}

impl Future for UntilDurable {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.log.durable() >= this.offset {
            if let Some(me) = this.me.take() {
                this.sched.task_done(&me);
            }
            return Poll::Ready(Ok(()));
        }
        let polled = this
            .sched
            .poll_task(&this.log, this.offset, &mut this.me, cx);
        if polled.is_ready()
            && let Some(me) = this.me.take()
        {
            this.sched.task_done(&me);
        }
        polled
    }
}

impl Drop for UntilDurable {
    fn drop(&mut self) {
        if let Some(me) = self.me.take() {
            self.sched.task_done(&me);
        }
    }
}
