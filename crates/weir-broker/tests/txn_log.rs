//! The transaction coordinator on the broker's storage: a committed and an
//! aborted transaction reach their partitions' markers and stable offsets,
//! the coordinator's state comes back from `__transaction_state` after a
//! restart, and a transaction whose markers were not written before the
//! process stopped gets them on the next start.

use std::collections::BTreeSet;

use weir_broker::txn_log::BrokerTxnIo;
use weir_broker::{Broker, BrokerConfig};
use weir_log::batch::BatchBuilder;
use weir_log::{DataDir, DirConfig};
use weir_txn::{
    CoordinatorConfig, LogRecord, TopicPartition, TxnCoordinator, TxnError, TxnIo, TxnState,
};

fn open(path: &std::path::Path) -> Broker {
    Broker::open(
        DataDir::open(path, DirConfig::default()).unwrap(),
        BrokerConfig::default(),
    )
    .unwrap()
}

fn recovered(broker: &Broker) -> TxnCoordinator {
    let c = TxnCoordinator::new(CoordinatorConfig::default());
    let log = broker.transaction_log().unwrap();
    let r = c.recover(log.iter().map(|(k, v)| (&k[..], v.as_deref())));
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    c
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(0)
        .producer(pid, epoch, seq)
        .transactional();
    b.push(0, None, Some(value.as_bytes()), &[]);
    b.build()
}

fn parts() -> Vec<TopicPartition> {
    vec![TopicPartition::new("a", 0), TopicPartition::new("b", 1)]
}

fn lsos(broker: &Broker) -> (i64, i64) {
    (
        broker.last_stable_offset("a", 0).unwrap(),
        broker.last_stable_offset("b", 1).unwrap(),
    )
}

#[test]
fn transactions_commit_and_abort_through_the_broker_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (pid, epoch) = {
        let broker = open(tmp.path());
        broker.create_topic("a", 1, 1, &[], false).unwrap();
        broker.create_topic("b", 2, 1, &[], false).unwrap();
        let io = BrokerTxnIo::new(&broker);
        let c = recovered(&broker);
        let p = c.init_producer_id(&io, "tx", 60_000, None, 0).unwrap();
        let (pid, epoch) = (p.producer_id, p.producer_epoch);
        c.add_partitions(&io, "tx", pid, epoch, &parts(), 1)
            .unwrap();
        broker
            .produce("a", 0, &mut txn_batch(pid, epoch, 0, "a1"))
            .unwrap();
        broker
            .produce("b", 1, &mut txn_batch(pid, epoch, 0, "b1"))
            .unwrap();
        assert_eq!(lsos(&broker), (0, 0));
        c.end_txn(&io, "tx", pid, epoch, true, 2).unwrap();
        // Data at 0, the commit marker at 1: stable up to the end.
        assert_eq!(lsos(&broker), (2, 2));
        // A second transaction, aborted.
        c.add_partitions(&io, "tx", pid, epoch, &parts()[..1], 3)
            .unwrap();
        broker
            .produce("a", 0, &mut txn_batch(pid, epoch, 1, "a2"))
            .unwrap();
        c.end_txn(&io, "tx", pid, epoch, false, 4).unwrap();
        assert_eq!(lsos(&broker).0, 4);
        let aborted = broker.aborted_transactions("a", 0, 0, 4).unwrap();
        assert_eq!(
            aborted
                .iter()
                .map(|a| (a.first_offset, a.last_offset))
                .collect::<Vec<_>>(),
            [(2, 3)]
        );
        (pid, epoch)
    };
    let broker = open(tmp.path());
    let c = recovered(&broker);
    let m = c.describe("tx").unwrap();
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.state),
        (pid, epoch, TxnState::CompleteAbort)
    );
    // The next instance gets the next epoch, from the recovered state.
    let io = BrokerTxnIo::new(&broker);
    let next = c.init_producer_id(&io, "tx", 60_000, None, 5).unwrap();
    assert_eq!((next.producer_id, next.producer_epoch), (pid, epoch + 1));
}

/// The broker's storage, with the markers failing (a process that stops
/// after the decision is durable and before its markers are written).
struct NoMarkers<'a>(BrokerTxnIo<'a>);

impl TxnIo for NoMarkers<'_> {
    fn allocate_producer_id(&self) -> Result<i64, TxnError> {
        self.0.allocate_producer_id()
    }

    fn append(&self, record: &LogRecord) -> Result<(), TxnError> {
        self.0.append(record)
    }

    fn write_markers(
        &self,
        _: i64,
        _: i16,
        _: bool,
        _: &BTreeSet<TopicPartition>,
    ) -> Result<(), TxnError> {
        Err(TxnError::Storage("stopped".into()))
    }
}

#[test]
fn a_decided_transaction_gets_its_markers_on_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let broker = open(tmp.path());
        broker.create_topic("a", 1, 1, &[], false).unwrap();
        broker.create_topic("b", 2, 1, &[], false).unwrap();
        let io = NoMarkers(BrokerTxnIo::new(&broker));
        let c = recovered(&broker);
        let p = c.init_producer_id(&io, "tx", 60_000, None, 0).unwrap();
        let (pid, epoch) = (p.producer_id, p.producer_epoch);
        c.add_partitions(&io, "tx", pid, epoch, &parts(), 1)
            .unwrap();
        broker
            .produce("a", 0, &mut txn_batch(pid, epoch, 0, "a1"))
            .unwrap();
        broker
            .produce("b", 1, &mut txn_batch(pid, epoch, 0, "b1"))
            .unwrap();
        // Answered: the commit decision is durable.
        c.end_txn(&io, "tx", pid, epoch, true, 2).unwrap();
        assert_eq!(lsos(&broker), (0, 0));
    }
    let broker = open(tmp.path());
    let c = recovered(&broker);
    assert_eq!(c.describe("tx").unwrap().state, TxnState::PrepareCommit);
    // Still open in the partitions after the restart, until completed.
    assert_eq!(lsos(&broker), (0, 0));
    let io = BrokerTxnIo::new(&broker);
    assert_eq!(c.complete_prepared(&io, 3).unwrap(), ["tx"]);
    assert_eq!(lsos(&broker), (2, 2));
    assert!(
        broker
            .aborted_transactions("a", 0, 0, 2)
            .unwrap()
            .is_empty()
    );
    assert_eq!(c.describe("tx").unwrap().state, TxnState::CompleteCommit);
}
