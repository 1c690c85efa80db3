//! The queue manager's group commit over an in-memory journal that
//! separates appending from syncing: a call waiting for its sync holds no
//! partition lock (a second call on the same partition appends meanwhile
//! and both are answered by one sync), nothing is answered before its
//! sync, and a failed sync fails the manager until it is reopened from
//! what was durable.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use weir_queue::{
    AckKind, Create, DeadLetter, JournalRecord, JournalVisitor, QueueError, QueueIo, QueueKey,
    Queues, QueuesConfig,
};

#[derive(Default)]
struct Journal {
    records: Vec<JournalRecord>,
    /// Records below this are durable.
    durable: usize,
    /// Calls waiting in `wait_durable`.
    waiting: usize,
    /// Whether syncs are held back (waiters block until released).
    held: bool,
    /// Whether the next sync fails.
    fail: bool,
    syncs: usize,
}

#[derive(Default, Clone)]
struct PipeIo(Arc<(Mutex<Journal>, Condvar)>);

impl PipeIo {
    fn with<T>(&self, f: impl FnOnce(&mut Journal) -> T) -> T {
        let t = f(&mut self.0.0.lock().unwrap());
        self.0.1.notify_all();
        t
    }

    /// Waits up to 10 s for `cond` on the journal.
    fn until(&self, cond: impl Fn(&Journal) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut j = self.0.0.lock().unwrap();
        while !cond(&j) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            j = self.0.1.wait_timeout(j, left).unwrap().0;
        }
        true
    }

    /// What a crash would leave: the durable records only.
    fn crash(&self) -> PipeIo {
        let j = self.0.0.lock().unwrap();
        let survived = Journal {
            records: j.records[..j.durable].to_vec(),
            durable: j.durable,
            ..Journal::default()
        };
        PipeIo(Arc::new((Mutex::new(survived), Condvar::new())))
    }
}

impl QueueIo for PipeIo {
    fn append(&self, records: &[JournalRecord]) -> Result<(), String> {
        let end = self.append_nowait(records)?;
        self.wait_durable(end)
    }
    fn append_nowait(&self, records: &[JournalRecord]) -> Result<i64, String> {
        Ok(self.with(|j| {
            j.records.extend_from_slice(records);
            j.records.len() as i64
        }))
    }
    fn wait_durable(&self, end: i64) -> Result<(), String> {
        let (lock, cv) = &*self.0;
        let mut j = lock.lock().unwrap();
        j.waiting += 1;
        cv.notify_all();
        while j.held {
            j = cv.wait(j).unwrap();
        }
        j.waiting -= 1;
        if j.durable as i64 >= end {
            return Ok(());
        }
        if j.fail {
            return Err("fdatasync: EIO".into());
        }
        // One sync makes everything appended so far durable.
        j.durable = j.records.len();
        j.syncs += 1;
        Ok(())
    }
    fn journal_end(&self) -> Result<i64, String> {
        Ok(self.with(|j| j.records.len() as i64))
    }
    fn read_journal(&self, from: i64, f: &mut JournalVisitor<'_>) -> Result<(), String> {
        let j = self.0.0.lock().unwrap();
        for (o, (k, v)) in j.records.iter().enumerate().skip(from.max(0) as usize) {
            f(o as i64, k, v);
        }
        Ok(())
    }
    fn write_snapshot(&self, _: &[u8]) -> Result<(), String> {
        Err("no snapshots here".into())
    }
    fn read_snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    fn truncate_before(&self, _: i64) -> Result<(), String> {
        Ok(())
    }
    fn dead_letter(&self, _: &QueueKey, _: &[DeadLetter]) -> Result<(), String> {
        Ok(())
    }
}

fn key() -> QueueKey {
    QueueKey {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
    }
}

const CREATE: Create = Create {
    delivery_limit: 5,
    start: 0,
};

#[test]
fn acks_on_one_partition_share_a_sync_and_wait_for_it() {
    let io = PipeIo::default();
    let (q, _) = Queues::open(io.clone(), QueuesConfig::default()).unwrap();
    let q = Arc::new(q);
    q.acquire(&key(), &CREATE, "a", 2, 60_000, 0, 10, 0)
        .unwrap();
    let syncs_before = io.with(|j| j.syncs);
    io.with(|j| j.held = true);
    let ack = |offset: i64| {
        let q = q.clone();
        std::thread::spawn(move || q.acknowledge(&key(), "a", offset, offset, AckKind::Accept))
    };
    let first = ack(0);
    assert!(io.until(|j| j.waiting == 1), "the first ack never waited");
    // The first ack waits for its sync; the second gets the partition's
    // lock meanwhile and appends behind it.
    let second = ack(1);
    assert!(
        io.until(|j| j.waiting == 2),
        "the second ack could not append while the first waited for its sync"
    );
    assert!(
        !first.is_finished() && !second.is_finished(),
        "answered before durable"
    );
    io.with(|j| j.held = false);
    first.join().unwrap().unwrap();
    second.join().unwrap().unwrap();
    assert_eq!(io.with(|j| j.syncs) - syncs_before, 1, "one sync for both");
    assert_eq!(q.start_offset(&key()), Some(2));
}

#[test]
fn a_failed_sync_fails_the_manager_until_reopened_from_what_was_durable() {
    let io = PipeIo::default();
    let (q, _) = Queues::open(io.clone(), QueuesConfig::default()).unwrap();
    let got = q
        .acquire(&key(), &CREATE, "a", 3, 60_000, 0, 10, 0)
        .unwrap();
    assert_eq!((got[0].first, got[0].last), (0, 2));
    q.acknowledge(&key(), "a", 0, 0, AckKind::Accept).unwrap();
    io.with(|j| j.fail = true);
    let failed = q.acknowledge(&key(), "a", 1, 1, AckKind::Accept);
    assert!(matches!(failed, Err(QueueError::Storage(_))), "{failed:?}");
    io.with(|j| j.fail = false);
    // Memory holds the accept of 1, the journal may not: every call is
    // refused, even with the journal working again.
    for refused in [
        q.acknowledge(&key(), "a", 2, 2, AckKind::Accept).err(),
        q.renew(&key(), "a", 2, 2, 1_000, 1).err(),
        q.acquire(&key(), &CREATE, "b", 1, 1_000, 0, 10, 1).err(),
        q.maintain().err(),
    ] {
        assert!(
            matches!(&refused, Some(QueueError::Storage(m)) if m.contains("reopen")),
            "{refused:?}"
        );
    }
    // Reopened from what a crash leaves: 0 accepted, 1 and 2 again.
    let (q, rec) = Queues::open(io.crash(), QueuesConfig::default()).unwrap();
    assert!(rec.skipped.is_empty(), "{:?}", rec.skipped);
    assert_eq!(q.start_offset(&key()), Some(1));
    let got = q
        .acquire(&key(), &CREATE, "b", 10, 60_000, 0, 3, 2)
        .unwrap();
    assert_eq!((got[0].first, got[0].last, got[0].deliveries), (1, 2, 2));
}
