//! Transactions in the broker's partitions: transactional batches hold the
//! last stable offset back until their marker, aborted transactions are
//! listed for `read_committed` fetches, the state comes back after a
//! restart, a marker at a bumped epoch fences the producer's older epoch,
//! and clients may not write control batches.

use weir_broker::txn_index::AbortedTxn;
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

/// A transactional batch of `n` records from producer `pid`.
fn txn_batch(pid: i64, epoch: i16, first_seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(0)
        .producer(pid, epoch, first_seq)
        .transactional();
    for i in 0..n {
        b.push(0, None, Some(format!("{pid}-{i}").as_bytes()), &[]);
    }
    b.build()
}

fn plain(n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(0);
    for _ in 0..n {
        b.push(0, None, Some(b"plain"), &[]);
    }
    b.build()
}

fn marker(broker: &Broker, pid: i64, epoch: i16, commit: bool) -> i64 {
    broker
        .write_marker("t", 0, pid, epoch, commit, 0)
        .unwrap()
        .wait()
        .unwrap()
        .base_offset
}

#[test]
fn open_transactions_hold_the_stable_offset_and_aborts_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    broker.create_topic("t", 1, 1, &[], false).unwrap();
    let lso = |b: &Broker| b.last_stable_offset("t", 0).unwrap();
    assert_eq!(lso(&broker), 0);
    broker.produce("t", 0, &mut plain(2)).unwrap(); // 0-1
    assert_eq!(lso(&broker), 2);
    // Producer 1 opens at 2, producer 2 at 4.
    broker.produce("t", 0, &mut txn_batch(1, 0, 0, 2)).unwrap(); // 2-3
    broker.produce("t", 0, &mut txn_batch(2, 0, 0, 1)).unwrap(); // 4
    broker.produce("t", 0, &mut plain(1)).unwrap(); // 5
    assert_eq!(lso(&broker), 2);
    assert_eq!(marker(&broker, 1, 0, true), 6);
    assert_eq!(lso(&broker), 4);
    assert!(
        broker
            .aborted_transactions("t", 0, 0, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(marker(&broker, 2, 0, false), 7);
    assert_eq!(lso(&broker), 8);
    let aborted = AbortedTxn {
        producer_id: 2,
        first_offset: 4,
        last_offset: 7,
    };
    assert_eq!(
        broker.aborted_transactions("t", 0, 0, 8).unwrap(),
        [aborted]
    );
    assert!(
        broker
            .aborted_transactions("t", 0, 8, 20)
            .unwrap()
            .is_empty()
    );
    // Producer 1's next transaction, left open across a restart.
    broker.produce("t", 0, &mut txn_batch(1, 0, 2, 1)).unwrap(); // 8
    assert_eq!(lso(&broker), 8);
    drop(broker);

    let broker = open(tmp.path());
    assert_eq!(lso(&broker), 8);
    assert_eq!(
        broker.aborted_transactions("t", 0, 0, 9).unwrap(),
        [aborted]
    );
    assert_eq!(marker(&broker, 1, 0, true), 9);
    assert_eq!(lso(&broker), 10);
}

#[test]
fn a_marker_at_a_bumped_epoch_fences_the_older_one() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    broker.create_topic("t", 1, 1, &[], false).unwrap();
    broker.produce("t", 0, &mut txn_batch(5, 0, 0, 1)).unwrap();
    // The coordinator aborted the transaction with epoch 1 (a new
    // instance took the transactional id).
    marker(&broker, 5, 1, false);
    let zombie = broker.produce("t", 0, &mut txn_batch(5, 0, 1, 1));
    assert!(
        matches!(
            zombie,
            Err(BrokerError::InvalidProducerEpoch {
                epoch: 0,
                current: 1,
                ..
            })
        ),
        "{zombie:?}"
    );
    // An older epoch's marker is refused too; the new epoch writes.
    assert!(matches!(
        broker.write_marker("t", 0, 5, 0, true, 0),
        Err(BrokerError::InvalidProducerEpoch { .. })
    ));
    broker.produce("t", 0, &mut txn_batch(5, 2, 0, 1)).unwrap();
    assert_eq!(broker.last_stable_offset("t", 0).unwrap(), 2);
}

#[test]
fn clients_may_not_write_control_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    broker.create_topic("t", 1, 1, &[], false).unwrap();
    let mut forged = weir_broker::txn_index::marker_batch(1, 0, true, 0, 0);
    assert!(matches!(
        broker.produce("t", 0, &mut forged),
        Err(BrokerError::ControlRecordsRefused { .. })
    ));
    assert_eq!(broker.partition("t", 0).unwrap().end_offset(), 0);
}
