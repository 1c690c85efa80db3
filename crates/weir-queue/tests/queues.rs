//! The queue manager over an in-memory journal: state survives a reopen
//! (from the journal, and from a snapshot with the journal below it
//! gone), dead letters are written before the settlement, a failed write
//! leaves the partition as it was, and the limits refuse.

use std::sync::Mutex;

use weir_queue::{
    AckKind, Create, DeadLetter, JournalRecord, JournalVisitor, QueueError, QueueIo, QueueKey,
    Queues, QueuesConfig,
};

#[derive(Default)]
struct MemIo {
    journal: Mutex<(i64, Vec<(i64, JournalRecord)>)>,
    snapshot: Mutex<Option<Vec<u8>>>,
    letters: Mutex<Vec<(QueueKey, DeadLetter, usize)>>,
    fail: Mutex<bool>,
}

impl QueueIo for &MemIo {
    fn append(&self, records: &[JournalRecord]) -> Result<(), String> {
        if *self.fail.lock().unwrap() {
            return Err("disk full".into());
        }
        let mut j = self.journal.lock().unwrap();
        for r in records {
            let offset = j.0;
            j.1.push((offset, r.clone()));
            j.0 += 1;
        }
        Ok(())
    }
    fn journal_end(&self) -> Result<i64, String> {
        Ok(self.journal.lock().unwrap().0)
    }
    fn read_journal(&self, from: i64, f: &mut JournalVisitor<'_>) -> Result<(), String> {
        for (o, (k, v)) in &self.journal.lock().unwrap().1 {
            if *o >= from {
                f(*o, k, v);
            }
        }
        Ok(())
    }
    fn write_snapshot(&self, bytes: &[u8]) -> Result<(), String> {
        *self.snapshot.lock().unwrap() = Some(bytes.to_vec());
        Ok(())
    }
    fn read_snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(self.snapshot.lock().unwrap().clone())
    }
    fn truncate_before(&self, offset: i64) -> Result<(), String> {
        self.journal.lock().unwrap().1.retain(|(o, _)| *o >= offset);
        Ok(())
    }
    fn dead_letter(&self, key: &QueueKey, letters: &[DeadLetter]) -> Result<(), String> {
        if *self.fail.lock().unwrap() {
            return Err("disk full".into());
        }
        let settled_before = self.journal.lock().unwrap().1.len();
        for l in letters {
            self.letters
                .lock()
                .unwrap()
                .push((key.clone(), *l, settled_before));
        }
        Ok(())
    }
}

fn key(p: i32) -> QueueKey {
    QueueKey {
        group: "g".into(),
        topic: "t".into(),
        partition: p,
    }
}

const CREATE: Create = Create {
    delivery_limit: 2,
    start: 0,
};

fn config() -> QueuesConfig {
    QueuesConfig {
        groups_max: 2,
        partitions_per_group_max: 2,
        in_flight_max: 100,
        snapshot_records: 5,
    }
}

#[test]
fn state_survives_reopen_from_journal_and_snapshot() {
    let io = MemIo::default();
    {
        let (q, rec) = Queues::open(&io, config()).unwrap();
        assert_eq!(rec.partitions, 0);
        let got = q.acquire(&key(0), &CREATE, "a", 4, 1000, 0, 10, 0).unwrap();
        assert_eq!((got[0].first, got[0].last), (0, 3));
        q.acknowledge(&key(0), "a", 0, 1, AckKind::Accept).unwrap();
        // Released after its last delivery (2): dead-lettered.
        q.acknowledge(&key(0), "a", 2, 2, AckKind::Release).unwrap();
        q.acquire(&key(0), &CREATE, "b", 1, 1000, 0, 10, 10)
            .unwrap();
        q.acknowledge(&key(0), "b", 2, 2, AckKind::Release).unwrap();
        assert_eq!(io.letters.lock().unwrap().len(), 1);
        // The letter was written before the settlement was appended.
        let (_, letter, journal_len) = io.letters.lock().unwrap()[0].clone();
        assert_eq!(letter.offset, 2);
        let settled_at = io.journal.lock().unwrap().1.len();
        assert!(journal_len < settled_at);
        assert!(q.maintain().unwrap(), "enough records for a snapshot");
        assert!(io.journal.lock().unwrap().1.is_empty(), "journal truncated");
        q.acknowledge(&key(0), "a", 3, 3, AckKind::Accept).unwrap();
    }
    let (q, rec) = Queues::open(&io, config()).unwrap();
    assert_eq!(rec.partitions, 1);
    assert!(rec.snapshot_base.is_some());
    assert!(rec.skipped.is_empty(), "{:?}", rec.skipped);
    // 0, 1, 3 accepted and 2 dead-lettered: the next delivery is 4.
    assert_eq!(q.start_offset(&key(0)), Some(4));
    let got = q
        .acquire(&key(0), &CREATE, "c", 10, 1000, 0, 10, 20)
        .unwrap();
    assert_eq!((got[0].first, got[0].last, got[0].deliveries), (4, 9, 1));
}

#[test]
fn a_failed_write_changes_nothing_and_limits_refuse() {
    let io = MemIo::default();
    let (q, _) = Queues::open(&io, config()).unwrap();
    q.acquire(&key(0), &CREATE, "a", 2, 1000, 0, 10, 0).unwrap();
    *io.fail.lock().unwrap() = true;
    assert!(matches!(
        q.acknowledge(&key(0), "a", 0, 0, AckKind::Accept),
        Err(QueueError::Storage(_))
    ));
    assert!(matches!(
        q.acknowledge(&key(0), "a", 1, 1, AckKind::Reject),
        Err(QueueError::Storage(_))
    ));
    assert!(io.letters.lock().unwrap().is_empty());
    *io.fail.lock().unwrap() = false;
    // Still held by "a", so the retry succeeds.
    q.acknowledge(&key(0), "a", 0, 0, AckKind::Accept).unwrap();
    assert_eq!(
        q.acknowledge(&key(0), "b", 1, 1, AckKind::Accept),
        Err(QueueError::NotAcquired {
            offset: 1,
            member: "b".into()
        })
    );
    q.acquire(&key(1), &CREATE, "a", 1, 1000, 0, 10, 0).unwrap();
    assert!(matches!(
        q.acquire(&key(2), &CREATE, "a", 1, 1000, 0, 10, 0),
        Err(QueueError::TooManyPartitions { .. })
    ));
    let other = |g: &str| QueueKey {
        group: g.into(),
        topic: "t".into(),
        partition: 0,
    };
    q.acquire(&other("h"), &CREATE, "a", 1, 1000, 0, 10, 0)
        .unwrap();
    assert!(matches!(
        q.acquire(&other("i"), &CREATE, "a", 1, 1000, 0, 10, 0),
        Err(QueueError::TooManyGroups { max: 2 })
    ));
    assert!(matches!(
        q.acquire(&key(0), &CREATE, "a", 1, 0, 0, 10, 0),
        Err(QueueError::InvalidConfig(_))
    ));
    // Locks time out: what "a" held of partition 1 is released, not before.
    q.expire(999).unwrap();
    assert!(q.pending("g", 999).iter().any(|(k, _)| k.partition == 1));
    q.expire(2_000).unwrap();
    assert!(q.pending("g", 2_000).iter().all(|(k, _)| k.partition != 1));
}

#[test]
fn a_deleted_group_is_gone_after_a_reopen_and_frees_its_slot() {
    let io = MemIo::default();
    let other = |p| QueueKey {
        group: "h".into(),
        ..key(p)
    };
    {
        let (q, _) = Queues::open(&io, config()).unwrap();
        q.acquire(&key(0), &CREATE, "a", 3, 1000, 0, 10, 0).unwrap();
        q.acknowledge(&key(0), "a", 0, 2, AckKind::Accept).unwrap();
        q.acquire(&key(1), &CREATE, "a", 1, 1000, 0, 10, 0).unwrap();
        q.acquire(&other(0), &CREATE, "a", 1, 1000, 0, 10, 0)
            .unwrap();
        // groups_max is 2: a third group is refused until one is deleted.
        let third = QueueKey {
            group: "i".into(),
            ..key(0)
        };
        assert!(matches!(
            q.acquire(&third, &CREATE, "a", 1, 1000, 0, 10, 0),
            Err(QueueError::TooManyGroups { .. })
        ));
        assert_eq!(q.delete_group("g").unwrap(), 2);
        assert_eq!(q.delete_group("g").unwrap(), 0);
        assert!(q.partitions("g").is_empty());
        q.acquire(&third, &CREATE, "a", 1, 1000, 0, 10, 0).unwrap();
    }
    let (q, rec) = Queues::open(&io, config()).unwrap();
    assert!(rec.skipped.is_empty(), "{:?}", rec.skipped);
    assert!(q.partitions("g").is_empty());
    assert_eq!(q.start_offset(&other(0)), Some(0));
    // Created again, it starts afresh, not at its old start 3.
    let got = q.acquire(&key(0), &CREATE, "b", 10, 1000, 0, 10, 0);
    assert!(
        matches!(got, Err(QueueError::TooManyGroups { .. })),
        "h and i hold the two slots"
    );
    q.delete_group("i").unwrap();
    let got = q
        .acquire(&key(0), &CREATE, "b", 10, 1000, 0, 10, 0)
        .unwrap();
    assert_eq!((got[0].first, got[0].deliveries), (0, 1));
}

#[test]
fn a_departed_member_releases_what_it_holds_in_every_partition() {
    let io = MemIo::default();
    let (q, _) = Queues::open(&io, config()).unwrap();
    q.acquire(&key(0), &CREATE, "a", 3, 60_000, 0, 10, 0)
        .unwrap();
    q.acquire(&key(1), &CREATE, "a", 2, 60_000, 0, 10, 0)
        .unwrap();
    q.acquire(&key(1), &CREATE, "b", 1, 60_000, 0, 10, 0)
        .unwrap();
    q.release_member("g", "a").unwrap();
    // Long before their locks end, a's records go to another consumer
    // (one delivery spent); b keeps its own.
    let got = q
        .acquire(&key(0), &CREATE, "c", 10, 60_000, 0, 3, 1)
        .unwrap();
    assert_eq!((got[0].first, got[0].last, got[0].deliveries), (0, 2, 2));
    let got = q
        .acquire(&key(1), &CREATE, "c", 10, 60_000, 0, 3, 1)
        .unwrap();
    assert_eq!((got[0].first, got[0].last, got[0].deliveries), (0, 1, 2));
    assert_eq!(got.len(), 1, "offset 2 is still b's: {got:?}");
    q.acknowledge(&key(1), "b", 2, 2, AckKind::Accept).unwrap();
    // A member of another group, or one holding nothing: nothing to do.
    q.release_member("other", "c").unwrap();
    q.release_member("g", "nobody").unwrap();
    q.acknowledge(&key(0), "c", 0, 2, AckKind::Accept).unwrap();
}
