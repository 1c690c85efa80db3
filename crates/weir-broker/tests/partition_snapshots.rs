//! A partition's producer and transaction state across restarts when its
//! batches lie many segments back: a silent idempotent producer's retry
//! is still recognised, its next batch accepted and a gap refused, and an
//! old aborted transaction is still listed for `read_committed` readers,
//! whether the state comes from a snapshot plus the tail after it or,
//! with no snapshot, from the whole log.

use weir_broker::{Broker, BrokerConfig, BrokerError};
use weir_log::batch::BatchBuilder;
use weir_log::{DataDir, DirConfig};

fn open(path: &std::path::Path) -> Broker {
    Broker::open(
        DataDir::open(path, DirConfig::default()).unwrap(),
        BrokerConfig::default(),
    )
    .unwrap()
}

const SMALL: [(&str, &str); 2] = [("segment.bytes", "4096"), ("max.message.bytes", "4096")];

fn idempotent(pid: i64, seq: i32) -> Vec<u8> {
    let mut b = BatchBuilder::new(0).producer(pid, 0, seq);
    b.push(0, None, Some(b"idempotent"), &[]);
    b.build()
}

fn filler(broker: &Broker, topic: &str, n: usize) {
    for _ in 0..n {
        let mut b = BatchBuilder::new(0);
        b.push(0, None, Some(&[7; 200]), &[]);
        broker.produce(topic, 0, &mut b.build()).unwrap();
    }
}

/// An aborted transaction of producer `pid` written to `topic`: its
/// record's offset and the abort marker's.
fn aborted_txn(broker: &Broker, topic: &str, pid: i64) -> (i64, i64) {
    let mut b = BatchBuilder::new(0).producer(pid, 0, 0).transactional();
    b.push(0, None, Some(b"aborted"), &[]);
    let data = broker.produce(topic, 0, &mut b.build()).unwrap();
    let marker = broker
        .write_marker(topic, 0, pid, 0, false, 0)
        .unwrap()
        .wait()
        .unwrap();
    (data.base_offset, marker.base_offset)
}

#[test]
fn producer_and_transaction_state_outlive_many_segments_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, aborted, ends) = {
        let broker = open(tmp.path());
        broker.create_topic("snap", 1, 1, &SMALL, false).unwrap();
        broker.create_topic("scan", 1, 1, &SMALL, false).unwrap();
        let mut firsts = Vec::new();
        let mut aborts = Vec::new();
        for (topic, pid) in [("snap", 100), ("scan", 200)] {
            firsts.push(broker.produce(topic, 0, &mut idempotent(pid, 0)).unwrap());
            aborts.push(aborted_txn(&broker, topic, pid + 1));
            filler(&broker, topic, 100);
        }
        // The maintenance pass snapshots both.
        assert!(broker.save_partition_snapshots(false) >= 2);
        // More history after the snapshots: both replay it.
        filler(&broker, "snap", 60);
        filler(&broker, "scan", 60);
        let ends = (
            broker.partition("snap", 0).unwrap().end_offset(),
            broker.partition("scan", 0).unwrap().end_offset(),
        );
        assert!(broker.partition("snap", 0).unwrap().segment_count() > 5);
        (firsts, aborts, ends)
    };
    // "scan" loses its snapshots: its state comes from the whole log.
    for entry in std::fs::read_dir(tmp.path().join("scan-0")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".snapshot") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let broker = open(tmp.path());
    for (i, (topic, pid)) in [("snap", 100), ("scan", 200)].into_iter().enumerate() {
        // The retry of the old batch is a duplicate, answered with its
        // offsets and not written again.
        let retry = broker.produce(topic, 0, &mut idempotent(pid, 0)).unwrap();
        assert_eq!(retry.base_offset, first[i].base_offset, "{topic}");
        let end = broker.partition(topic, 0).unwrap().end_offset();
        assert_eq!(end, if i == 0 { ends.0 } else { ends.1 }, "{topic}");
        // A gap is refused; the next sequence is accepted.
        assert!(
            matches!(
                broker.produce(topic, 0, &mut idempotent(pid, 5)),
                Err(BrokerError::OutOfOrderSequence { .. })
            ),
            "{topic}"
        );
        broker.produce(topic, 0, &mut idempotent(pid, 1)).unwrap();
        // The old abort is still listed for read_committed readers.
        let listed = broker.aborted_transactions(topic, 0, 0, end).unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|a| (a.producer_id, a.first_offset, a.last_offset))
                .collect::<Vec<_>>(),
            [(pid + 1, aborted[i].0, aborted[i].1)],
            "{topic}"
        );
    }
}
