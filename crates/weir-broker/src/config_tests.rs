//! Unit tests of topic configs: validation by type and range, list
//! operations, resolution through broker defaults, synonyms.

use super::*;

#[test]
fn values_are_checked_and_defaults_described() {
    let config =
        TopicConfig::from_pairs([("retention.ms", "1000"), ("segment.bytes", "2097152")]).unwrap();
    let entries = config.entries();
    assert_eq!(entries.len(), TOPIC_CONFIGS.len());
    let retention = entries.iter().find(|e| e.name == RETENTION_MS).unwrap();
    assert_eq!(
        (retention.value.as_str(), retention.is_default),
        ("1000", false)
    );
    let cleanup = entries.iter().find(|e| e.name == CLEANUP_POLICY).unwrap();
    assert_eq!(
        (cleanup.value.as_str(), cleanup.is_default),
        ("delete", true)
    );
    let log = config.log_config(FsyncPolicy::Always);
    assert_eq!(
        (log.retention_ms, log.segment_bytes_max, log.retention_bytes),
        (Some(1000), 2 << 20, None)
    );
    // The default max.message.bytes (1 MiB + 12) does not fit a 1 MiB segment.
    assert!(
        TopicConfig::from_pairs([
            ("segment.bytes", "1048576"),
            ("max.message.bytes", "2000000")
        ])
        .is_err()
    );
}

#[test]
fn every_type_is_validated_as_kafka_does() {
    for (key, value) in [
        ("retention.ms", "soon"),
        ("retention.ms", "0"),
        ("retention.ms", "-2"),
        ("segment.bytes", "10"),
        ("segment.bytes", "4294967296"),
        ("cleanup.policy", "shred"),
        ("cleanup.policy", ""),
        ("compression.type", "brotli"),
        ("compression.type", "GZIP"),
        ("compression.gzip.level", "10"),
        ("compression.gzip.level", "0"),
        ("compression.zstd.level", "23"),
        ("compression.lz4.level", "0"),
        ("message.timestamp.type", "logappendtime"),
        ("message.timestamp.before.max.ms", "-1"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "half"),
        ("min.insync.replicas", "0"),
        ("min.insync.replicas", "3000000000"),
        ("preallocate", "yes"),
        ("segment.ms", "0"),
        ("local.retention.ms", "-3"),
        ("leader.replication.throttled.replicas", "0:x"),
        ("leader.replication.throttled.replicas", "*,0:0"),
        ("message.timestamp.difference.max.ms", "1000"),
        ("message.downconversion.enable", "true"),
        ("no.such.key", "1"),
    ] {
        assert!(
            matches!(
                TopicConfig::from_pairs([(key, value)]),
                Err(BrokerError::InvalidConfig { .. })
            ),
            "{key}={value}"
        );
    }
    let ok = TopicConfig::from_pairs([
        ("compression.type", "zstd"),
        ("compression.gzip.level", "-1"),
        ("compression.zstd.level", "-5"),
        ("message.timestamp.type", "LogAppendTime"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("preallocate", "TRUE"),
        ("unclean.leader.election.enable", "false"),
        ("leader.replication.throttled.replicas", "0:0, 1:0"),
        ("follower.replication.throttled.replicas", "*"),
        ("local.retention.ms", "-2"),
        ("remote.storage.enable", "false"),
        ("delete.retention.ms", "1000"),
        ("segment.index.bytes", "4096"),
        ("flush.messages", "1"),
        ("message.format.version", "3.0-IV1"),
    ])
    .unwrap();
    let overrides = ok.overrides();
    assert_eq!(overrides["preallocate"], "true");
    assert_eq!(
        overrides["leader.replication.throttled.replicas"],
        "0:0,1:0"
    );
    // Kafka 4 dropped message.format.version: accepted, not kept.
    assert!(!overrides.contains_key("message.format.version"));
    let rules = ok.produce_rules();
    assert_eq!(rules.codec, TargetCodec::Codec(4));
    assert!(rules.log_append_time);
    assert_eq!(rules.gzip_level, None);
}

#[test]
fn list_configs_take_append_and_subtract() {
    let mut config = TopicConfig::default();
    // APPEND starts from the default value ("delete") and adds only what
    // is missing.
    config
        .apply(CLEANUP_POLICY, ConfigOp::Append("delete"))
        .unwrap();
    assert_eq!(config.overrides()[CLEANUP_POLICY], "delete");
    assert!(!config.compacted() && config.deletes());
    config
        .apply(CLEANUP_POLICY, ConfigOp::Append("compact"))
        .unwrap();
    assert_eq!(config.get(CLEANUP_POLICY), "delete,compact");
    assert!(config.compacted() && config.deletes());
    config
        .apply(CLEANUP_POLICY, ConfigOp::Subtract("delete"))
        .unwrap();
    assert!(config.compacted() && !config.deletes());
    let logs = config.log_config(FsyncPolicy::Always);
    assert_eq!(
        logs.retention_ms, None,
        "a compact-only topic keeps its segments"
    );
    assert!(config.produce_rules().keys_required);
    config.set(CLEANUP_POLICY, Some("delete")).unwrap();
    let key = "leader.replication.throttled.replicas";
    config.apply(key, ConfigOp::Append("0:0,1:0")).unwrap();
    config.apply(key, ConfigOp::Append("1:0, 2:0")).unwrap();
    assert_eq!(config.get(key), "0:0,1:0,2:0");
    config.apply(key, ConfigOp::Subtract("1:0,9:9")).unwrap();
    assert_eq!(config.get(key), "0:0,2:0");
    // Subtracting the last item of cleanup.policy leaves no policy.
    assert!(
        config
            .apply(CLEANUP_POLICY, ConfigOp::Subtract("delete"))
            .is_err()
    );
    // Not a list.
    assert!(matches!(
        config.apply(RETENTION_MS, ConfigOp::Append("5")),
        Err(BrokerError::InvalidConfig { .. })
    ));
    config.apply(key, ConfigOp::Delete).unwrap();
    assert_eq!(config.get(key), "");
}

#[test]
fn broker_defaults_fill_in_under_overrides_with_synonyms() {
    let defaults = TopicDefaults {
        node: [("retention.ms".to_owned(), "5000".to_owned())].into(),
        cluster: [
            ("retention.ms".to_owned(), "6000".to_owned()),
            ("segment.ms".to_owned(), "7000".to_owned()),
        ]
        .into(),
    };
    let config = TopicConfig::from_pairs([("segment.ms", "8000")])
        .unwrap()
        .with_defaults(Arc::new(defaults));
    let entries = config.entries();
    let retention = entries.iter().find(|e| e.name == RETENTION_MS).unwrap();
    assert_eq!(retention.value, "5000");
    assert_eq!(retention.source, ConfigSource::DynamicBroker);
    let names: Vec<_> = retention
        .synonyms
        .iter()
        .map(|s| (s.name, s.value.as_str(), s.source))
        .collect();
    assert_eq!(
        names,
        [
            ("log.retention.ms", "5000", ConfigSource::DynamicBroker),
            (
                "log.retention.ms",
                "6000",
                ConfigSource::DynamicDefaultBroker
            ),
            ("log.retention.ms", "604800000", ConfigSource::Default),
        ]
    );
    assert_eq!(
        config.log_config(FsyncPolicy::Always).retention_ms,
        Some(5000)
    );
    let segment = entries.iter().find(|e| e.name == SEGMENT_MS).unwrap();
    assert_eq!(
        (segment.value.as_str(), segment.source),
        ("8000", ConfigSource::Topic)
    );
    assert_eq!(segment.synonyms[0].name, "segment.ms");
    assert_eq!(segment.synonyms[1].name, "log.roll.ms");
    // A config with no broker default names itself.
    let remote = entries
        .iter()
        .find(|e| e.name == "remote.storage.enable")
        .unwrap();
    assert_eq!(remote.synonyms[0].name, "remote.storage.enable");
}
