//! The async durability wait (`Log::until_durable`): tasks wait for fsync
//! rounds without a thread each, share rounds with each other and with
//! blocked threads, see failures, and may be dropped while pending.
//!
//! The futures are polled by hand (a waker that counts its wakes) rather
//! than by a runtime: `weir-log` has none, and counting wakes shows that a
//! task is woken when, and only when, a round has served it.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::*;
use weir_log::sim::SimStorage;
use weir_log::{LogError, ManualClock, UntilDurable};

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls every future until all are ready (or `limit` passes), sleeping
/// between passes; returns their outputs in order.
fn poll_all(
    mut futures: Vec<UntilDurable>,
    wakers: &[Arc<CountingWaker>],
    limit: Duration,
) -> Vec<weir_log::Result<()>> {
    let mut out: Vec<Option<weir_log::Result<()>>> = futures.iter().map(|_| None).collect();
    let deadline = Instant::now() + limit;
    while out.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "futures still pending");
        for (i, f) in futures.iter_mut().enumerate() {
            if out[i].is_some() {
                continue;
            }
            let waker = Waker::from(wakers[i].clone());
            if let Poll::Ready(r) = Pin::new(f).poll(&mut Context::from_waker(&waker)) {
                out[i] = Some(r);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    out.into_iter().map(Option::unwrap).collect()
}

/// Writes one record without waiting and returns the wait for it.
fn write(log: &weir_log::Log, value: &str) -> UntilDurable {
    let info = log.append_nowait(&mut one(value.as_bytes(), 0)).unwrap();
    log.until_durable(info.last_offset + 1)
}

/// Polls one future until it is ready; returns its output and its waker.
fn poll_one(f: UntilDurable, limit: Duration) -> (weir_log::Result<()>, Arc<CountingWaker>) {
    let waker: Arc<CountingWaker> = Arc::default();
    let result = poll_all(vec![f], std::slice::from_ref(&waker), limit)
        .pop()
        .unwrap();
    (result, waker)
}

#[test]
fn tasks_share_rounds_run_by_the_sync_thread_and_are_woken_once_served() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let logs: Vec<_> = (0..4)
        .map(|p| dir.open_log(&format!("t-{p}"), sim_default()).unwrap())
        .collect();
    disk.set_sync_delay(Duration::from_millis(1));
    let before = dir.sync_stats();
    let n = 64;
    let mut futures = Vec::new();
    let mut ends = Vec::new();
    for i in 0..n {
        let log = &logs[i % 4];
        let info = log
            .append_nowait(&mut one(format!("{i}").as_bytes(), 0))
            .unwrap();
        // Written, not yet durable: readers do not see it.
        assert!(log.durable_offset() <= info.last_offset);
        ends.push((i % 4, info.last_offset + 1));
        futures.push(log.until_durable(info.last_offset + 1));
    }
    let wakers: Vec<_> = (0..n).map(|_| Arc::default()).collect();
    let results = poll_all(futures, &wakers, Duration::from_secs(20));
    for (r, &(l, end)) in results.iter().zip(&ends) {
        assert!(r.is_ok(), "{r:?}");
        assert!(logs[l].durable_offset() >= end);
    }
    // No thread waited: the sync thread ran the rounds, and far fewer
    // than one per append.
    let rounds = dir.sync_stats().rounds - before.rounds;
    assert!(rounds >= 1 && rounds * 4 <= n as u64, "{rounds} rounds");
    // Each task is woken by the round that served it (and not in a loop).
    for w in &wakers {
        assert!(w.0.load(Ordering::SeqCst) <= 2, "woken {:?}", w.0);
    }
    assert!(logs.iter().all(|l| l.durable_offset() == l.end_offset()));
}

#[test]
fn tasks_and_blocked_threads_wait_together() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", sim_default()).unwrap();
    disk.set_sync_delay(Duration::from_millis(2));
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..20 {
                    log.append(&mut one(format!("thread {t} {i}").as_bytes(), 0))
                        .unwrap();
                }
            });
        }
        for _ in 0..20 {
            let futures: Vec<_> = (0..4).map(|i| write(&log, &format!("task {i}"))).collect();
            let wakers: Vec<_> = (0..4).map(|_| Arc::default()).collect();
            for r in poll_all(futures, &wakers, Duration::from_secs(20)) {
                r.unwrap();
            }
        }
    });
    assert_eq!(log.end_offset(), 160);
    assert_eq!(log.durable_offset(), 160);
}

#[test]
fn a_failed_sync_fails_waiting_tasks_and_nothing_unsynced_is_visible() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", sim_default()).unwrap();
    log.append(&mut one(b"safe", 0)).unwrap();
    disk.fail_next_syncs(1);
    let (result, _) = poll_one(write(&log, "lost"), Duration::from_secs(20));
    assert!(
        matches!(result, Err(LogError::ReadOnly { .. })),
        "{result:?}"
    );
    assert_eq!(
        decode(&log.read(0, 1 << 20).unwrap().bytes),
        vec![(0, b"safe".to_vec())]
    );
}

#[test]
fn a_dropped_wait_leaves_nothing_behind() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", sim_default()).unwrap();
    disk.set_sync_delay(Duration::from_millis(5));
    for i in 0..50 {
        let mut f = write(&log, &i.to_string());
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        // Registered (pending), then dropped before any round ends.
        let polled = Pin::new(&mut f).poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending() || i > 0);
        drop(f);
    }
    // The rounds it asked for still run, and waits made later work.
    poll_one(write(&log, "last"), Duration::from_secs(20))
        .0
        .unwrap();
    assert_eq!(log.durable_offset(), 51);
    // A wait for what is durable already is ready at once, no round.
    let before = dir.sync_stats();
    let (result, waker) = poll_one(log.until_durable(51), Duration::from_secs(1));
    result.unwrap();
    assert_eq!(dir.sync_stats().rounds, before.rounds);
    assert_eq!(waker.0.load(Ordering::SeqCst), 0);
}
