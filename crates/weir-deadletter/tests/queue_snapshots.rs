//! The queue manager on a broker in a temp dir with small journal
//! segments: snapshots let the journal's old segments go, a restart
//! replays only the tail after the snapshot, and the state is the same
//! (nothing accepted comes back, nothing unsettled is lost).

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_deadletter::queue_io::BrokerQueueIo;
use weir_log::batch::BatchBuilder;
use weir_log::{DataDir, DirConfig};
use weir_queue::{AckKind, Create, QueueKey, Queues, QueuesConfig};

const RECORDS: i64 = 1_500;

fn open(path: &std::path::Path) -> Arc<Broker> {
    let dir = DataDir::open(path, DirConfig::default()).unwrap();
    Arc::new(Broker::open(dir, BrokerConfig::default()).unwrap())
}

fn key() -> QueueKey {
    QueueKey {
        group: "g".into(),
        topic: "jobs".into(),
        partition: 0,
    }
}

fn config() -> QueuesConfig {
    QueuesConfig {
        snapshot_records: 200,
        ..QueuesConfig::default()
    }
}

const CREATE: Create = Create {
    delivery_limit: 5,
    start: 0,
};

#[test]
fn snapshots_bound_the_journal_and_the_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    broker.create_topic("jobs", 1, 1, &[], false).unwrap();
    let mut b = BatchBuilder::new(0);
    for i in 0..RECORDS {
        b.push(0, None, Some(i.to_string().as_bytes()), &[]);
    }
    broker.produce("jobs", 0, &mut b.build()).unwrap();
    broker.ensure_share_state("16384").unwrap();
    let (q, _) = Queues::open(BrokerQueueIo::new(broker.clone()), config()).unwrap();
    let mut snapshots = 0;
    // Every 10th record is released at its first delivery (and accepted at
    // its second), the rest accepted; the last claim is left held.
    let mut held = Vec::new();
    for round in 0.. {
        let got = q
            .acquire(&key(), &CREATE, "m", 10, 60_000, 0, RECORDS, round)
            .unwrap();
        if got.last().is_some_and(|a| a.last >= RECORDS - 25) {
            held = got;
            break;
        }
        for a in &got {
            for offset in a.first..=a.last {
                let kind = if offset % 10 == 9 && a.deliveries == 1 {
                    AckKind::Release
                } else {
                    AckKind::Accept
                };
                q.acknowledge(&key(), "m", offset, offset, kind).unwrap();
            }
        }
        snapshots += usize::from(q.maintain().unwrap());
    }
    let journal_end = broker.share_state_end().unwrap();
    let journal_start = broker.share_state_start().unwrap();
    assert!(snapshots >= 5, "{snapshots} snapshots");
    assert!(
        journal_start > journal_end / 2,
        "old segments deleted: journal {journal_start}..{journal_end}"
    );
    drop(q);
    drop(broker);

    let broker = open(tmp.path());
    let (q, recovery) = Queues::open(BrokerQueueIo::new(broker.clone()), config()).unwrap();
    assert!(recovery.skipped.is_empty(), "{recovery:?}");
    assert!(recovery.snapshot_base.is_some());
    eprintln!(
        "{snapshots} snapshots; journal {journal_start}..{journal_end}; replayed {}",
        recovery.replayed
    );
    assert!(
        (recovery.replayed as i64) < journal_end - journal_start + 1 && recovery.replayed < 400,
        "replayed {} of a journal ending at {journal_end}",
        recovery.replayed
    );
    // What was held comes back, one delivery on; nothing else does.
    let mut again = Vec::new();
    loop {
        let got = q
            .acquire(&key(), &CREATE, "n", 100, 60_000, 0, RECORDS - 25, 0)
            .unwrap();
        if got.is_empty() {
            break;
        }
        again.extend(got);
    }
    let expected: Vec<(i64, u16)> = held
        .iter()
        .flat_map(|a| (a.first..=a.last).map(|o| (o, a.deliveries + 1)))
        .collect();
    let again: Vec<(i64, u16)> = again
        .iter()
        .flat_map(|a| (a.first..=a.last).map(|o| (o, a.deliveries)))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(again, expected);
}
