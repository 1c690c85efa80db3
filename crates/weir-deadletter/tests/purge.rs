//! Purging dead letters over a real broker in a temporary directory: all
//! partitions or one up to an offset (exclusive), the counts per partition,
//! list and read afterwards, a restart, and refusals that purge nothing
//! (not a dead-letter topic, unknown partition, an offset past the end).

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig, BrokerError};
use weir_deadletter::format::{DEFAULT_SUFFIX, ErrorKind, Failure, Origin};
use weir_deadletter::{DeadLetterError, Original, PartitionPurged, Purge, list, purge, read, send};
use weir_log::{DataDir, DirConfig};

fn open(path: &std::path::Path) -> Arc<Broker> {
    let data = DataDir::open(path, DirConfig::default()).unwrap();
    Arc::new(Broker::open(data, BrokerConfig::default()).unwrap())
}

/// `n` dead letters of orders-`partition`.
fn dead_letters(broker: &Broker, partition: i32, n: i64) {
    let failure = Failure {
        error: "boom".into(),
        kind: ErrorKind::Permanent,
        attempts: 1,
        first_failure_ms: 1,
        last_failure_ms: 1,
        group: "billing".into(),
    };
    for offset in 0..n {
        let origin = Origin {
            topic: "orders".into(),
            partition,
            offset,
            timestamp_ms: 1,
        };
        let original = Original {
            key: Some(b"k"),
            value: Some(b"v"),
            headers: &[],
        };
        send(broker, DEFAULT_SUFFIX, original, &failure, &origin).unwrap();
    }
}

fn purged(partition: i32, purged: u64, log_start_offset: i64) -> PartitionPurged {
    PartitionPurged {
        partition,
        purged,
        log_start_offset,
    }
}

#[test]
fn one_partition_up_to_an_offset_then_all() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let broker = open(tmp.path());
        broker.create_topic("orders", 3, -1, &[], false).unwrap();
        dead_letters(&broker, 0, 4);
        dead_letters(&broker, 2, 6);
        assert_eq!(list(&broker, DEFAULT_SUFFIX).unwrap()[0].depth, 10);

        // The record at to_offset stays.
        let below = Purge::Below {
            partition: 2,
            to_offset: 4,
        };
        let out = purge(&broker, DEFAULT_SUFFIX, "orders.dlq", below).unwrap();
        assert_eq!(out, vec![purged(2, 4, 4)]);
        let page = read(&broker, "orders.dlq", 2, 0, 100).unwrap();
        assert_eq!(
            page.dead_letters
                .iter()
                .map(|(o, d)| (*o, d.origin.offset))
                .collect::<Vec<_>>(),
            vec![(4, 4), (5, 5)]
        );
        assert_eq!(list(&broker, DEFAULT_SUFFIX).unwrap()[0].depth, 6);
        // Again: nothing left below 4.
        let out = purge(&broker, DEFAULT_SUFFIX, "orders.dlq", below).unwrap();
        assert_eq!(out, vec![purged(2, 0, 4)]);
    }
    // Durable across a restart; then everything goes.
    let broker = open(tmp.path());
    assert_eq!(list(&broker, DEFAULT_SUFFIX).unwrap()[0].depth, 6);
    let out = purge(&broker, DEFAULT_SUFFIX, "orders.dlq", Purge::All).unwrap();
    assert_eq!(out, vec![purged(0, 4, 4), purged(1, 0, 0), purged(2, 2, 6)]);
    let topics = list(&broker, DEFAULT_SUFFIX).unwrap();
    assert_eq!((topics[0].depth, topics[0].oldest_timestamp_ms), (0, None));
    assert!(
        read(&broker, "orders.dlq", 0, 0, 100)
            .unwrap()
            .dead_letters
            .is_empty()
    );
    // New dead letters come after the purged ones.
    dead_letters(&broker, 0, 1);
    let page = read(&broker, "orders.dlq", 0, 0, 100).unwrap();
    assert_eq!(page.dead_letters.len(), 1);
    assert_eq!(page.dead_letters[0].0, 4);
}

#[test]
fn refusals_purge_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    broker.create_topic("orders", 2, -1, &[], false).unwrap();
    broker
        .produce("orders", 0, &mut {
            let mut b = weir_log::batch::BatchBuilder::new(1);
            b.push(1, None, Some(b"an order"), &[]);
            b.build()
        })
        .unwrap();
    dead_letters(&broker, 0, 3);

    // Not a dead-letter topic: an ordinary topic, or an internal one.
    for topic in ["orders", "__consumer_offsets"] {
        if topic.starts_with("__") {
            broker.ensure_internal_topic(topic, 1, &[]).unwrap();
        }
        match purge(&broker, DEFAULT_SUFFIX, topic, Purge::All) {
            Err(e @ DeadLetterError::NotDeadLetterTopic { .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "{topic:?} is not a dead-letter topic: its name does not end with \".dlq\", or it is internal"
                )
            ),
            other => panic!("{topic}: expected NotDeadLetterTopic, got {other:?}"),
        }
    }
    assert_eq!(broker.partition("orders", 0).unwrap().start_offset(), 0);

    let refused = |what| purge(&broker, DEFAULT_SUFFIX, "orders.dlq", what).unwrap_err();
    assert!(matches!(
        refused(Purge::Below {
            partition: 2,
            to_offset: 1
        }),
        DeadLetterError::Broker(BrokerError::UnknownPartition { partition: 2, .. })
    ));
    assert!(matches!(
        refused(Purge::Below {
            partition: 0,
            to_offset: 4
        }),
        DeadLetterError::Broker(BrokerError::DeleteRecordsOutOfRange {
            offset: 4,
            high_watermark: 3,
            ..
        })
    ));
    assert!(matches!(
        refused(Purge::Below {
            partition: 0,
            to_offset: -1
        }),
        DeadLetterError::Broker(BrokerError::DeleteRecordsOutOfRange { .. })
    ));
    assert!(matches!(
        purge(&broker, DEFAULT_SUFFIX, "nope.dlq", Purge::All),
        Err(DeadLetterError::Broker(BrokerError::UnknownTopic { .. }))
    ));
    assert!(matches!(
        purge(&broker, "", "orders.dlq", Purge::All),
        Err(DeadLetterError::InvalidSuffix { .. })
    ));
    assert_eq!(list(&broker, DEFAULT_SUFFIX).unwrap()[0].depth, 3);
}
