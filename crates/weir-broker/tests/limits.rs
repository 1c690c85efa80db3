//! The broker's limits: topics per broker and partitions per topic are
//! refused by name when passed, and nothing is created.

use weir_broker::{Broker, BrokerConfig, BrokerError};
use weir_log::{DataDir, DirConfig};

#[test]
fn topics_and_partitions_over_their_limits_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        topics_max: 2,
        partitions_max: 4,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(
        DataDir::open(tmp.path(), DirConfig::default()).unwrap(),
        config,
    )
    .unwrap();
    broker.create_topic("a", 4, 1, &[], false).unwrap();
    assert!(matches!(
        broker.create_topic("b", 5, 1, &[], false),
        Err(BrokerError::InvalidPartitions { count: 5, .. })
    ));
    broker.create_topic("b", 1, 1, &[], false).unwrap();
    assert!(matches!(
        broker.create_topic("c", 1, 1, &[], false),
        Err(BrokerError::PolicyViolation { .. })
    ));
    assert!(matches!(
        broker.create_partitions("b", 5, false),
        Err(BrokerError::InvalidPartitions { .. })
    ));
    assert_eq!(broker.topics().len(), 2);
    assert_eq!(broker.data_dir().list_logs().unwrap().len(), 5);
}
