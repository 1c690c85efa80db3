//! Unit tests of the broker: topics across restarts, named errors, topic
//! configs and their broker-level defaults on the produce path.

use super::*;
use weir_log::DirConfig;

fn open(path: &std::path::Path) -> Broker {
    Broker::open(
        DataDir::open(path, DirConfig::default()).unwrap(),
        BrokerConfig::default(),
    )
    .unwrap()
}

#[test]
fn topics_survive_restarts_with_their_configs() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let broker = open(tmp.path());
        broker
            .create_topic("orders", 3, -1, &[("retention.ms", "60000")], false)
            .unwrap();
        broker.create_topic("doomed", 1, 1, &[], false).unwrap();
        broker.delete_topic("doomed").unwrap();
        broker.create_partitions("orders", 4, false).unwrap();
    }
    let broker = open(tmp.path());
    let names: Vec<_> = broker.topics().iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, vec!["orders".to_string()]);
    let orders = broker.topic("orders").unwrap();
    assert_eq!(orders.partition_count(), 4);
    assert_eq!(
        orders
            .config()
            .overrides()
            .get("retention.ms")
            .map(String::as_str),
        Some("60000")
    );
    assert_eq!(broker.data_dir().list_logs().unwrap().len(), 4);
}

#[test]
fn bad_requests_get_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    broker.create_topic("t", 1, 1, &[], false).unwrap();
    assert!(matches!(
        broker.create_topic("t", 1, 1, &[], false),
        Err(BrokerError::TopicAlreadyExists { .. })
    ));
    assert!(matches!(
        broker.create_topic("bad name", 1, 1, &[], false),
        Err(BrokerError::InvalidTopic { .. })
    ));
    assert!(matches!(
        broker.create_topic("__mine", 1, 1, &[], false),
        Err(BrokerError::InvalidTopic { .. })
    ));
    assert!(matches!(
        broker.create_topic("u", 0, 1, &[], false),
        Err(BrokerError::InvalidPartitions { .. })
    ));
    assert!(matches!(
        broker.create_topic("u", 5000, 1, &[], false),
        Err(BrokerError::InvalidPartitions { .. })
    ));
    assert!(matches!(
        broker.create_topic("u", 1, 3, &[], false),
        Err(BrokerError::InvalidReplicationFactor { factor: 3 })
    ));
    assert!(matches!(
        broker.create_partitions("t", 1, false),
        Err(BrokerError::InvalidPartitions { .. })
    ));
    assert!(matches!(
        broker.produce("t", 1, &mut []),
        Err(BrokerError::UnknownPartition { .. })
    ));
    assert!(matches!(
        broker.produce("nope", 0, &mut []),
        Err(BrokerError::UnknownTopic { .. })
    ));
    let internal = broker
        .ensure_internal_topic("__weir_events", 1, &[])
        .unwrap();
    assert!(internal.internal);
    assert!(matches!(
        broker.delete_topic("__weir_events"),
        Err(BrokerError::PolicyViolation { .. })
    ));
    assert!(matches!(
        broker.produce("__weir_events", 0, &mut []),
        Err(BrokerError::InvalidTopic { .. })
    ));
    // validate_only creates nothing.
    broker.create_topic("dry", 2, 1, &[], true).unwrap();
    assert!(broker.topic("dry").is_err());
}

fn now_ms() -> i64 {
    weir_log::SystemClock.now_ms()
}

fn batch_at(ts: i64) -> Vec<u8> {
    let mut b = weir_log::batch::BatchBuilder::new(ts);
    b.push(
        ts,
        Some(b"k"),
        Some(b"a value that compresses, a value that compresses"),
        &[],
    );
    b.build()
}

use weir_log::Clock;

#[test]
fn topic_configs_shape_what_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    broker
        .create_topic(
            "lat",
            1,
            1,
            &[
                ("message.timestamp.type", "LogAppendTime"),
                ("compression.type", "zstd"),
            ],
            false,
        )
        .unwrap();
    let before = now_ms();
    let info = broker.produce("lat", 0, &mut batch_at(1_000)).unwrap();
    assert!(info.log_append_time_ms >= before, "{info:?}");
    let read = broker
        .partition("lat", 0)
        .unwrap()
        .read(0, 1 << 20)
        .unwrap();
    let header = BatchHeader::parse(&read.bytes).unwrap();
    assert_eq!(header.compression(), 4);
    assert!(header.is_log_append_time());
    assert_eq!(header.max_timestamp, info.log_append_time_ms);
    weir_log::batch::validate(&read.bytes[..header.total_bytes()]).unwrap();

    // CreateTime: the producer's timestamps, bounded.
    broker
        .create_topic(
            "ct",
            1,
            1,
            &[("message.timestamp.before.max.ms", "60000")],
            false,
        )
        .unwrap();
    let info = broker.produce("ct", 0, &mut batch_at(now_ms())).unwrap();
    assert_eq!(info.log_append_time_ms, -1);
    assert!(matches!(
        broker.produce("ct", 0, &mut batch_at(now_ms() - 120_000)),
        Err(BrokerError::InvalidTimestamp { .. })
    ));
    assert!(matches!(
        broker.produce("ct", 0, &mut batch_at(now_ms() + 7_200_000)),
        Err(BrokerError::InvalidTimestamp { .. })
    ));
}

#[test]
fn configs_and_live_broker_defaults_survive_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let broker = open(tmp.path());
        broker
            .create_topic(
                "t",
                1,
                1,
                &[("compression.type", "gzip"), ("min.insync.replicas", "2")],
                false,
            )
            .unwrap();
        broker
            .create_topic("u", 1, 1, &[("retention.ms", "1000")], false)
            .unwrap();
        broker
            .alter_topic_config_ops(
                "t",
                &[(
                    "leader.replication.throttled.replicas",
                    ConfigOp::Append("0:0"),
                )],
                false,
            )
            .unwrap();
        broker
            .set_topic_defaults(
                DefaultsScope::Node,
                &[("retention.ms", Some("90000"))],
                false,
            )
            .unwrap();
        // Applied live to the topic without an override, not the other.
        assert_eq!(
            broker.partition("t", 0).unwrap().config().retention_ms,
            Some(90_000)
        );
        assert_eq!(
            broker.partition("u", 0).unwrap().config().retention_ms,
            Some(1000)
        );
        // Checked like a topic value, and validate_only changes nothing.
        assert!(
            broker
                .set_topic_defaults(DefaultsScope::Node, &[("retention.ms", Some("x"))], false)
                .is_err()
        );
        broker
            .set_topic_defaults(
                DefaultsScope::Cluster,
                &[("segment.ms", Some("5000"))],
                true,
            )
            .unwrap();
        assert!(broker.topic_defaults().cluster.is_empty());
    }
    let broker = open(tmp.path());
    let t = broker.topic("t").unwrap().config();
    assert_eq!(t.get("compression.type"), "gzip");
    assert_eq!(t.get("min.insync.replicas"), "2");
    assert_eq!(t.get("leader.replication.throttled.replicas"), "0:0");
    assert_eq!(t.get("retention.ms"), "90000");
    assert_eq!(
        broker.partition("t", 0).unwrap().config().retention_ms,
        Some(90_000)
    );
    assert_eq!(
        broker.topic("u").unwrap().config().get("retention.ms"),
        "1000"
    );
}

#[test]
fn registries_of_older_versions_still_load() {
    // A `.topics` file as Weir wrote it before topic configs grew.
    let tmp = tempfile::tempdir().unwrap();
    {
        let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
        dir.write_meta(
            ".topics",
            br#"{"version":1,"topics":[{"name":"old","id":"0000000000000000000000000000abcd","partitions":1,
                "configs":{"cleanup.policy":"delete","max.message.bytes":"2000","retention.bytes":"-1",
                "retention.ms":"60000","segment.bytes":"1048576"}}]}"#,
        )
        .unwrap();
    }
    let broker = open(tmp.path());
    let old = broker.topic("old").unwrap();
    assert_eq!(old.config().get("retention.ms"), "60000");
    assert_eq!(old.config().get("compression.type"), "producer");
    assert_eq!(old.partition(0).unwrap().config().batch_bytes_max, 2000);
}

#[test]
fn records_are_deleted_per_partition_and_bad_requests_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let broker = open(tmp.path());
        broker.create_topic("t", 2, 1, &[], false).unwrap();
        for _ in 0..5 {
            broker.produce("t", 1, &mut batch_at(now_ms())).unwrap();
        }
        let deleted = broker.delete_records("t", 1, 3).unwrap();
        assert_eq!(
            (
                deleted.start_offset_before,
                deleted.log_start_offset,
                deleted.n_records()
            ),
            (0, 3, 3)
        );
        let log = broker.partition("t", 1).unwrap();
        assert_eq!(log.start_offset(), 3);
        // The other partition is untouched.
        assert_eq!(broker.partition("t", 0).unwrap().start_offset(), 0);

        let refused = [
            broker.delete_records("nope", 0, 1).unwrap_err(),
            broker.delete_records("t", 2, 1).unwrap_err(),
            broker.delete_records("t", 1, 6).unwrap_err(),
            broker.delete_records("t", 1, -1).unwrap_err(),
        ];
        assert!(matches!(refused[0], BrokerError::UnknownTopic { .. }));
        assert!(matches!(
            refused[1],
            BrokerError::UnknownPartition { partition: 2, .. }
        ));
        assert_eq!(
            refused[2].to_string(),
            "cannot delete the records of t-1 before offset 6: it must lie in [0, 5], the high watermark"
        );
        assert!(matches!(
            refused[3],
            BrokerError::DeleteRecordsOutOfRange { offset: -1, .. }
        ));
        assert_eq!(log.start_offset(), 3);

        broker.ensure_internal_topic("__internal", 1, &[]).unwrap();
        assert!(matches!(
            broker.delete_records("__internal", 0, 0),
            Err(BrokerError::InvalidTopic { .. })
        ));
    }
    // Durable across a restart.
    let broker = open(tmp.path());
    assert_eq!(broker.partition("t", 1).unwrap().start_offset(), 3);
}

#[test]
fn only_partition_logs_no_topic_owns_are_deleted_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let b = open(tmp.path());
        b.create_topic("kept", 1, -1, &[], false).unwrap();
        b.create_topic("gone", 1, -1, &[], false).unwrap();
    }
    // A partition log left behind by a topic the registry no longer has,
    // and directories of the user's beside the logs.
    std::fs::create_dir_all(tmp.path().join("orphan-0")).unwrap();
    std::fs::create_dir_all(tmp.path().join("demo-services")).unwrap();
    std::fs::create_dir_all(tmp.path().join("backups")).unwrap();
    let b = open(tmp.path());
    assert!(tmp.path().join("kept-0").is_dir());
    assert!(!tmp.path().join("orphan-0").exists());
    assert!(tmp.path().join("demo-services").is_dir());
    assert!(tmp.path().join("backups").is_dir());
    drop(b);
}
