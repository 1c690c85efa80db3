//! Idempotent producers through the broker's API, across a restart: a
//! retried batch is acknowledged with its original offsets and written
//! once, a gap is refused, a stale epoch is fenced, and producer ids are
//! never handed out twice.

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

fn batch(pid: i64, epoch: i16, first_seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(0).producer(pid, epoch, first_seq);
    for i in 0..n {
        b.push(
            0,
            None,
            Some(format!("{pid}-{epoch}-{}", first_seq as usize + i).as_bytes()),
            &[],
        );
    }
    b.build()
}

#[test]
fn retries_dedupe_and_state_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (pid, first_ids) = {
        let broker = open(tmp.path());
        broker.create_topic("t", 1, 1, &[], false).unwrap();
        let (pid, epoch) = broker.init_producer_id(-1, -1).unwrap();
        assert_eq!(epoch, 0);
        let a = broker.produce("t", 0, &mut batch(pid, 0, 0, 3)).unwrap();
        let b = broker.produce("t", 0, &mut batch(pid, 0, 3, 2)).unwrap();
        assert_eq!((a.base_offset, b.base_offset), (0, 3));
        // A retry of either is acknowledged with its offsets, not written.
        assert_eq!(
            broker
                .produce("t", 0, &mut batch(pid, 0, 0, 3))
                .unwrap()
                .base_offset,
            0
        );
        assert_eq!(
            broker
                .produce("t", 0, &mut batch(pid, 0, 3, 2))
                .unwrap()
                .base_offset,
            3
        );
        assert_eq!(broker.partition("t", 0).unwrap().end_offset(), 5);
        let more: Vec<i64> = (0..3)
            .map(|_| broker.init_producer_id(-1, -1).unwrap().0)
            .collect();
        (pid, more)
    };
    let broker = open(tmp.path());
    // Rebuilt from the batch headers on open.
    assert_eq!(
        broker
            .produce("t", 0, &mut batch(pid, 0, 3, 2))
            .unwrap()
            .base_offset,
        3
    );
    assert!(matches!(
        broker.produce("t", 0, &mut batch(pid, 0, 9, 1)),
        Err(BrokerError::OutOfOrderSequence {
            expected: 5,
            got: 9,
            ..
        })
    ));
    assert_eq!(
        broker
            .produce("t", 0, &mut batch(pid, 0, 5, 1))
            .unwrap()
            .base_offset,
        5
    );
    // A new epoch starts at 0 and fences the old one.
    let (same, epoch) = broker.init_producer_id(pid, 0).unwrap();
    assert_eq!((same, epoch), (pid, 1));
    assert_eq!(
        broker
            .produce("t", 0, &mut batch(pid, 1, 0, 1))
            .unwrap()
            .base_offset,
        6
    );
    assert!(matches!(
        broker.produce("t", 0, &mut batch(pid, 0, 6, 1)),
        Err(BrokerError::InvalidProducerEpoch { current: 1, .. })
    ));
    // A producer the broker never saw must start at 0.
    assert!(matches!(
        broker.produce("t", 0, &mut batch(4242, 0, 17, 1)),
        Err(BrokerError::UnknownProducerId { .. })
    ));
    // Ids are never reused across the restart.
    let fresh = broker.init_producer_id(-1, -1).unwrap().0;
    assert!(fresh > *first_ids.iter().max().unwrap() && fresh != pid);
    assert_eq!(broker.partition("t", 0).unwrap().end_offset(), 7);
}
