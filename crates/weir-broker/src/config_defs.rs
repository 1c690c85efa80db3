//! The table of every topic config Kafka 4.x defines: its type, default,
//! valid range, the broker setting that backs it, a one-line doc, and
//! whether Weir honours it or only accepts and stores it. `config.rs`
//! validates and resolves values from this table; the Kafka server
//! describes configs from it.

/// A config's type, as Kafka's `ConfigDef` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

/// What Weir does with a config on its one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// The value changes what the broker does.
    Honoured,
    /// Accepted, validated, stored and described, but without effect here
    /// (replication, tiered storage, or a knob Weir's log
    /// handles its own way).
    AcceptedOnly,
}

/// The valid values of a config beyond its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// Any value of the type.
    Any,
    /// An integer at least this.
    AtLeast(i64),
    /// An integer in `[min, max]`.
    Between(i64, i64),
    /// A number in `[min, max]`.
    Fraction(f64, f64),
    /// One of these strings (case-sensitive, as Kafka).
    OneOf(&'static [&'static str]),
    /// A list whose items are each one of these.
    ListOf(&'static [&'static str]),
    /// A list of `partition:broker` pairs, or `*`.
    Replicas,
    /// -1 (the codec's default) or an integer in `[min, max]`.
    LevelOrDefault(i64, i64),
}

/// One topic config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    pub default: &'static str,
    /// The broker config whose value is the default of topics without an
    /// override (Kafka's synonym), if there is one.
    pub broker_name: Option<&'static str>,
    pub check: Check,
    pub support: Support,
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

use Check::{AtLeast, Between, Fraction, LevelOrDefault, ListOf, OneOf, Replicas};
use ConfigType::{Boolean, Double, Int, List, Long, String as Str};
use Support::{AcceptedOnly, Honoured};

const fn def(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    broker_name: Option<&'static str>,
    check: Check,
    support: Support,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        kind,
        default,
        broker_name,
        check,
        support,
        doc,
    }
}

/// Codecs `compression.type` may name.
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Confluent's subject name strategies, by class name or short name.
pub const SUBJECT_STRATEGIES: &[&str] = &[
    "io.confluent.kafka.serializers.subject.TopicNameStrategy",
    "io.confluent.kafka.serializers.subject.RecordNameStrategy",
    "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy",
    "TopicNameStrategy",
    "RecordNameStrategy",
    "TopicRecordNameStrategy",
];

/// Every topic config, sorted by name (the order they are described in).
#[rustfmt::skip]
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", List, "delete", Some("log.cleanup.policy"), ListOf(&["compact", "delete"]), Honoured,
        "What happens to old segments: delete (by retention.ms and retention.bytes), compact (the cleaner keeps the latest record per key; records need a key), or both."),
    def("compression.gzip.level", Int, "-1", Some("compression.gzip.level"), LevelOrDefault(1, 9), Honoured,
        "Level of the gzip compression the broker applies when compression.type is gzip."),
    def("compression.lz4.level", Int, "9", Some("compression.lz4.level"), Between(1, 17), AcceptedOnly,
        "Level of lz4 compression; Weir's lz4 encoder has one level, so this is stored only."),
    def("compression.type", Str, "producer", Some("compression.type"), OneOf(COMPRESSION_TYPES), Honoured,
        "Codec of the stored batches: producer keeps what the producer sent; a codec name makes the broker recompress to it."),
    def("compression.zstd.level", Int, "3", Some("compression.zstd.level"), Between(-131072, 22), AcceptedOnly,
        "Level of zstd compression; Weir's zstd encoder has one level, so this is stored only."),
    def("confluent.key.schema.validation", Boolean, "false", None, Check::Any, Honoured,
        "Whether each record's key must carry, in the schema registry's wire format, the id of a schema registered under its subject, and match it; others get INVALID_RECORD."),
    def("confluent.key.subject.name.strategy", Str, "io.confluent.kafka.serializers.subject.TopicNameStrategy", None, OneOf(SUBJECT_STRATEGIES), Honoured,
        "How the subject of a key is named for confluent.key.schema.validation: <topic>-key, the record name, or <topic>-<record name>."),
    def("confluent.value.schema.validation", Boolean, "false", None, Check::Any, Honoured,
        "Whether each record's value must carry, in the schema registry's wire format, the id of a schema registered under its subject, and match it; others get INVALID_RECORD."),
    def("confluent.value.subject.name.strategy", Str, "io.confluent.kafka.serializers.subject.TopicNameStrategy", None, OneOf(SUBJECT_STRATEGIES), Honoured,
        "How the subject of a value is named for confluent.value.schema.validation: <topic>-value, the record name, or <topic>-<record name>."),
    def("delete.retention.ms", Long, "86400000", Some("log.cleaner.delete.retention.ms"), AtLeast(0), Honoured,
        "How long tombstones and transaction markers stay in a compacted topic once their segment is that old."),
    def("file.delete.delay.ms", Long, "60000", Some("log.segment.delete.delay.ms"), AtLeast(0), AcceptedOnly,
        "Delay before a deleted segment's files go; Weir removes them at once."),
    def("flush.messages", Long, LONG_MAX, Some("log.flush.interval.messages"), AtLeast(1), AcceptedOnly,
        "Records between forced fsyncs; Weir's fsync policy is the broker's (--fsync)."),
    def("flush.ms", Long, LONG_MAX, Some("log.flush.interval.ms"), AtLeast(0), AcceptedOnly,
        "Time between forced fsyncs; Weir's fsync policy is the broker's (--fsync)."),
    def("follower.replication.throttled.replicas", List, "", None, Replicas, AcceptedOnly,
        "Replicas whose follower replication is throttled; one node has no followers."),
    def("index.interval.bytes", Int, "4096", Some("log.index.interval.bytes"), AtLeast(0), Honoured,
        "Bytes of batches between two entries of the offset and time indexes."),
    def("leader.replication.throttled.replicas", List, "", None, Replicas, AcceptedOnly,
        "Replicas whose leader replication is throttled; one node has no followers."),
    def("local.retention.bytes", Long, "-2", Some("log.local.retention.bytes"), AtLeast(-2), AcceptedOnly,
        "Local bytes kept when tiered storage is on; Weir has no tiered storage."),
    def("local.retention.ms", Long, "-2", Some("log.local.retention.ms"), AtLeast(-2), AcceptedOnly,
        "Local time kept when tiered storage is on; Weir has no tiered storage."),
    def("max.compaction.lag.ms", Long, LONG_MAX, Some("log.cleaner.max.compaction.lag.ms"), AtLeast(1), Honoured,
        "Longest a record of a sealed segment stays uncompacted: the cleaner then runs whatever the dirty ratio (the active segment is never cleaned)."),
    def("max.message.bytes", Int, "1048588", Some("message.max.bytes"), AtLeast(0), Honoured,
        "Largest record batch accepted, after the broker's recompression."),
    def("message.timestamp.after.max.ms", Long, "3600000", Some("log.message.timestamp.after.max.ms"), AtLeast(0), Honoured,
        "How far in the future a CreateTime record's timestamp may be; later ones get INVALID_TIMESTAMP."),
    def("message.timestamp.before.max.ms", Long, LONG_MAX, Some("log.message.timestamp.before.max.ms"), AtLeast(0), Honoured,
        "How far in the past a CreateTime record's timestamp may be; older ones get INVALID_TIMESTAMP."),
    def("message.timestamp.type", Str, "CreateTime", Some("log.message.timestamp.type"), OneOf(&["CreateTime", "LogAppendTime"]), Honoured,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's time on append."),
    def("min.cleanable.dirty.ratio", Double, "0.5", Some("log.cleaner.min.cleanable.ratio"), Fraction(0.0, 1.0), Honoured,
        "Dirty share of a compacted partition's cleanable bytes that triggers a cleaning pass."),
    def("min.compaction.lag.ms", Long, "0", Some("log.cleaner.min.compaction.lag.ms"), AtLeast(0), Honoured,
        "Shortest a record stays uncompacted: a segment with a newer record is not cleaned."),
    def("min.insync.replicas", Int, "1", Some("min.insync.replicas"), AtLeast(1), AcceptedOnly,
        "Replicas that must acknowledge an acks=all write; the one node is always in sync."),
    def("preallocate", Boolean, "false", Some("log.preallocate"), Check::Any, AcceptedOnly,
        "Whether segment files are preallocated; Weir always reserves space ahead of the write position."),
    def("remote.log.copy.disable", Boolean, "false", None, Check::Any, AcceptedOnly,
        "Stops copying segments to tiered storage; Weir has no tiered storage."),
    def("remote.log.delete.on.disable", Boolean, "false", None, Check::Any, AcceptedOnly,
        "Deletes tiered segments when tiered storage is turned off; Weir has no tiered storage."),
    def("remote.storage.enable", Boolean, "false", None, Check::Any, AcceptedOnly,
        "Turns tiered storage on for the topic; Weir has no tiered storage."),
    def("retention.bytes", Long, "-1", Some("log.retention.bytes"), Check::Any, Honoured,
        "Oldest segments of a partition are deleted while it is larger than this; -1 for no limit."),
    def("retention.ms", Long, "604800000", Some("log.retention.ms"), AtLeast(-1), Honoured,
        "Segments whose newest record is older than this are deleted; -1 keeps them forever."),
    def("segment.bytes", Int, "1073741824", Some("log.segment.bytes"), AtLeast(14), Honoured,
        "Size at which a partition's active segment is rolled."),
    def("segment.index.bytes", Int, "10485760", Some("log.index.size.max.bytes"), AtLeast(4), AcceptedOnly,
        "Size of a segment's index files; Weir sizes its indexes itself."),
    def("segment.jitter.ms", Long, "0", Some("log.roll.jitter.ms"), AtLeast(0), AcceptedOnly,
        "Random time subtracted from segment.ms; one node has no roll storms to spread."),
    def("segment.ms", Long, "604800000", Some("log.roll.ms"), AtLeast(1), Honoured,
        "Age of its first batch at which the active segment is rolled."),
    def("unclean.leader.election.enable", Boolean, "false", Some("unclean.leader.election.enable"), Check::Any, AcceptedOnly,
        "Whether an out-of-sync replica may become leader; one node is the only replica."),
];

/// Configs Kafka 4 no longer defines but accepts from older clients and
/// drops: naming them is not an error, and they are not stored.
pub const IGNORED_TOPIC_CONFIGS: &[&str] = &["message.format.version"];

/// The definition of topic config `name`.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_CONFIGS[i])
}

/// The topic config a broker config sets the default of (`log.retention.ms`
/// → `retention.ms`).
pub fn topic_config_for_broker(broker_name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_name == Some(broker_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_lookups_find_every_entry() {
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
        for d in TOPIC_CONFIGS {
            assert_eq!(topic_config_def(d.name).map(|f| f.name), Some(d.name));
            if let Some(b) = d.broker_name {
                assert_eq!(topic_config_for_broker(b).map(|f| f.name), Some(d.name));
            }
        }
        assert!(topic_config_def("no.such.config").is_none());
    }
}
