//! Topic configuration under Kafka's names (`retention.ms`,
//! `compression.type`, …): values validated by type and range as Kafka's
//! `ConfigDef` does (the table is in `config_defs.rs`), resolved through
//! the topic's overrides, then the broker's defaults, then Kafka's, and
//! mapped onto the log's configuration and the produce path's rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use weir_log::{FsyncPolicy, LogConfig};

use crate::config_defs::{
    Check, ConfigType, IGNORED_TOPIC_CONFIGS, TOPIC_CONFIGS, TopicConfigDef, topic_config_def,
};
use crate::error::BrokerError;

pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const SEGMENT_MS: &str = "segment.ms";
pub const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
pub const COMPRESSION_TYPE: &str = "compression.type";
pub const COMPRESSION_GZIP_LEVEL: &str = "compression.gzip.level";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const MESSAGE_TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
pub const MESSAGE_TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
pub const KEY_SCHEMA_VALIDATION: &str = "confluent.key.schema.validation";
pub const KEY_SUBJECT_NAME_STRATEGY: &str = "confluent.key.subject.name.strategy";
pub const VALUE_SCHEMA_VALIDATION: &str = "confluent.value.schema.validation";
pub const VALUE_SUBJECT_NAME_STRATEGY: &str = "confluent.value.subject.name.strategy";

/// Where a described value comes from, as Kafka's config sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// The topic's own override.
    Topic,
    /// A broker default set live for this node.
    DynamicBroker,
    /// A broker default set live for the whole cluster (the empty name).
    DynamicDefaultBroker,
    /// Kafka's default.
    Default,
}

/// Broker-level defaults of topic configs, set live (keyed by the topic
/// config's name; values validated). Topics without an override follow
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicDefaults {
    /// Set for this node (`log.retention.ms` on broker "0").
    pub node: BTreeMap<String, String>,
    /// Set as the cluster-wide default (broker name "").
    pub cluster: BTreeMap<String, String>,
}

impl TopicDefaults {
    /// The broker's value for topic config `key` and where it comes from.
    fn get(&self, def: &TopicConfigDef) -> (&str, ConfigSource) {
        if let Some(v) = self.node.get(def.name) {
            (v, ConfigSource::DynamicBroker)
        } else if let Some(v) = self.cluster.get(def.name) {
            (v, ConfigSource::DynamicDefaultBroker)
        } else {
            (def.default, ConfigSource::Default)
        }
    }
}

/// A topic's settings. Only values set explicitly are stored; the rest
/// follow the broker's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
    defaults: Arc<TopicDefaults>,
}

/// One value behind a described config: its name (the topic config's, or
/// the broker config's that backs it), value and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
}

/// One described config entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub is_default: bool,
    pub source: ConfigSource,
    pub def: &'static TopicConfigDef,
    /// Every value in order of precedence, the effective one first.
    pub synonyms: Vec<Synonym>,
}

/// One change of an incremental alter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOp<'a> {
    Set(&'a str),
    /// Back to the default.
    Delete,
    /// Adds list items not already there (to the current value, or the
    /// default).
    Append(&'a str),
    /// Removes list items.
    Subtract(&'a str),
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::InvalidConfig {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn unknown(key: &str, value: &str) -> BrokerError {
    invalid(key, value, "unknown topic config")
}

/// The items of a list value (comma separated, trimmed, empty ones
/// dropped, as Kafka parses them).
pub fn list_items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_int(def: &TopicConfigDef, value: &str) -> Result<i64, BrokerError> {
    let v: i64 = value
        .parse()
        .map_err(|_| invalid(def.name, value, "not an integer"))?;
    if def.kind == ConfigType::Int && i32::try_from(v).is_err() {
        return Err(invalid(def.name, value, "does not fit a 32-bit integer"));
    }
    Ok(v)
}

/// Checks `value` against `def` as Kafka's `ConfigDef` would, returning
/// it in canonical form; then Weir's own limits.
pub fn validate(def: &TopicConfigDef, value: &str) -> Result<String, BrokerError> {
    let trimmed = value.trim();
    let canonical = match def.kind {
        ConfigType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => b.to_owned(),
            _ => return Err(invalid(def.name, value, "must be true or false")),
        },
        ConfigType::Int | ConfigType::Long => {
            let v = parse_int(def, trimmed)?;
            let ok = match def.check {
                Check::AtLeast(min) => v >= min,
                Check::Between(min, max) => (min..=max).contains(&v),
                Check::LevelOrDefault(min, max) => v == -1 || (min..=max).contains(&v),
                _ => true,
            };
            if !ok {
                let range = match def.check {
                    Check::AtLeast(min) => format!("at least {min}"),
                    Check::Between(min, max) => format!("in [{min}, {max}]"),
                    Check::LevelOrDefault(min, max) => format!("-1 or in [{min}, {max}]"),
                    _ => unreachable!("only ranges refuse integers"),
                };
                return Err(invalid(def.name, value, format!("must be {range}")));
            }
            v.to_string()
        }
        ConfigType::Double => {
            let v: f64 = trimmed
                .parse()
                .map_err(|_| invalid(def.name, value, "not a number"))?;
            if let Check::Fraction(min, max) = def.check
                && !(min..=max).contains(&v)
            {
                return Err(invalid(
                    def.name,
                    value,
                    format!("must be in [{min}, {max}]"),
                ));
            }
            trimmed.to_owned()
        }
        ConfigType::String => {
            if let Check::OneOf(allowed) = def.check
                && !allowed.contains(&trimmed)
            {
                return Err(invalid(
                    def.name,
                    value,
                    format!("must be one of {}", allowed.join(", ")),
                ));
            }
            trimmed.to_owned()
        }
        ConfigType::List => {
            let items = list_items(trimmed);
            for item in &items {
                let ok = match def.check {
                    Check::ListOf(allowed) => allowed.contains(item),
                    Check::Replicas => *item == "*" || is_replica_pair(item),
                    _ => true,
                };
                if !ok {
                    return Err(invalid(def.name, value, format!("{item:?} is not allowed")));
                }
            }
            if matches!(def.check, Check::Replicas) && items.len() > 1 && items.contains(&"*") {
                return Err(invalid(def.name, value, "* stands alone"));
            }
            items.join(",")
        }
    };
    weir_limits(def.name, value, &canonical)?;
    Ok(canonical)
}

fn is_replica_pair(item: &str) -> bool {
    let mut parts = item.split(':');
    let (Some(p), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
}

/// Limits of Weir's log beyond Kafka's, and what it does not do yet.
fn weir_limits(key: &str, value: &str, canonical: &str) -> Result<(), BrokerError> {
    let int = || canonical.parse::<i64>().unwrap_or(0);
    match key {
        RETENTION_MS | RETENTION_BYTES if int() < -1 || int() == 0 => {
            Err(invalid(key, value, "must be positive, or -1 for no limit"))
        }
        SEGMENT_BYTES => {
            let range = weir_log::SEGMENT_BYTES_MIN as i64..=i64::from(i32::MAX);
            if range.contains(&int()) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    value,
                    format!("must be in [{}, {}]", range.start(), range.end()),
                ))
            }
        }
        MAX_MESSAGE_BYTES => {
            let max = weir_log::BATCH_BYTES_LIMIT as i64;
            if (1..=max).contains(&int()) {
                Ok(())
            } else {
                Err(invalid(key, value, format!("must be in [1, {max}]")))
            }
        }
        CLEANUP_POLICY => {
            if list_items(canonical).is_empty() {
                Err(invalid(key, value, "must name delete, compact or both"))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// The codec a topic makes the broker write, by Kafka's attribute ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetCodec {
    /// Keep what the producer sent.
    Producer,
    /// Recompress to this codec id (0 none, 1 gzip, 2 snappy, 3 lz4,
    /// 4 zstd).
    Codec(i16),
}

/// What a topic's configs ask of each produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceRules {
    pub codec: TargetCodec,
    /// gzip level; `None` for the codec's default.
    pub gzip_level: Option<u32>,
    pub log_append_time: bool,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// A compacted topic refuses records without a key, as Kafka does.
    pub keys_required: bool,
    /// Which parts of each record must match a registered schema.
    pub schemas: crate::SchemaRules,
}

impl TopicConfig {
    /// Builds a config from explicit settings, checking each.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, BrokerError> {
        let mut config = Self::default();
        for (key, value) in pairs {
            config.set(key, Some(value))?;
        }
        config.check_consistent()?;
        Ok(config)
    }

    /// The same overrides over other broker defaults.
    pub fn with_defaults(mut self, defaults: Arc<TopicDefaults>) -> Self {
        self.defaults = defaults;
        self
    }

    /// Sets `key` to `value`, or back to its default with `None`.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), BrokerError> {
        match value {
            Some(v) => self.apply(key, ConfigOp::Set(v)),
            None => self.apply(key, ConfigOp::Delete),
        }
    }

    /// Applies one change to `key`. Configs Kafka 4 dropped
    /// (`message.format.version`) are accepted and ignored.
    pub fn apply(&mut self, key: &str, op: ConfigOp<'_>) -> Result<(), BrokerError> {
        let given = match op {
            ConfigOp::Set(v) | ConfigOp::Append(v) | ConfigOp::Subtract(v) => v,
            ConfigOp::Delete => "",
        };
        if IGNORED_TOPIC_CONFIGS.contains(&key) {
            return Ok(());
        }
        let def = topic_config_def(key).ok_or_else(|| unknown(key, given))?;
        let value = match op {
            ConfigOp::Delete => {
                self.overrides.remove(key);
                return Ok(());
            }
            ConfigOp::Set(v) => v.to_owned(),
            ConfigOp::Append(_) | ConfigOp::Subtract(_) if def.kind != ConfigType::List => {
                return Err(invalid(
                    key,
                    given,
                    "APPEND and SUBTRACT apply only to list configs",
                ));
            }
            ConfigOp::Append(v) => {
                let mut items: Vec<&str> = list_items(self.get(key));
                for item in list_items(v) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                items.join(",")
            }
            ConfigOp::Subtract(v) => {
                let remove = list_items(v);
                list_items(self.get(key))
                    .into_iter()
                    .filter(|i| !remove.contains(i))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        let canonical = validate(def, &value)?;
        self.overrides.insert(key.to_owned(), canonical);
        Ok(())
    }

    /// Settings that only make sense together.
    pub fn check_consistent(&self) -> Result<(), BrokerError> {
        let (segment, message) = (self.get_i64(SEGMENT_BYTES), self.get_i64(MAX_MESSAGE_BYTES));
        if message > segment {
            return Err(invalid(
                MAX_MESSAGE_BYTES,
                &message.to_string(),
                format!("may not exceed segment.bytes {segment}"),
            ));
        }
        Ok(())
    }

    /// The effective value of `key` (a known config).
    pub fn get(&self, key: &str) -> &str {
        if let Some(v) = self.overrides.get(key) {
            return v;
        }
        let def = topic_config_def(key).expect("only known keys are read");
        self.defaults.get(def).0
    }

    fn get_i64(&self, key: &str) -> i64 {
        self.get(key).parse().expect("stored values are validated")
    }

    /// The largest batch (producer request per partition) accepted.
    pub fn max_message_bytes(&self) -> usize {
        self.get_i64(MAX_MESSAGE_BYTES) as usize
    }

    /// Every known config with its value, source and synonyms.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        TOPIC_CONFIGS.iter().map(|def| self.entry(def)).collect()
    }

    fn entry(&self, def: &'static TopicConfigDef) -> ConfigEntry {
        let mut synonyms = Vec::new();
        if let Some(v) = self.overrides.get(def.name) {
            synonyms.push(Synonym {
                name: def.name,
                value: v.clone(),
                source: ConfigSource::Topic,
            });
        }
        // The broker's values, under the broker config's name (the topic
        // config's own for those with no broker default, as Kafka).
        let broker_name = def.broker_name.unwrap_or(def.name);
        for (map, source) in [
            (&self.defaults.node, ConfigSource::DynamicBroker),
            (&self.defaults.cluster, ConfigSource::DynamicDefaultBroker),
        ] {
            if let Some(v) = map.get(def.name) {
                synonyms.push(Synonym {
                    name: broker_name,
                    value: v.clone(),
                    source,
                });
            }
        }
        synonyms.push(Synonym {
            name: broker_name,
            value: def.default.to_owned(),
            source: ConfigSource::Default,
        });
        let first = &synonyms[0];
        ConfigEntry {
            name: def.name,
            value: first.value.clone(),
            is_default: first.source == ConfigSource::Default,
            source: first.source,
            def,
            synonyms,
        }
    }

    /// Only the explicitly set values (what is persisted).
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    /// Whether the topic is compacted (`cleanup.policy` names compact):
    /// the cleaner keeps the latest record per key, and every record needs
    /// a key.
    pub fn compacted(&self) -> bool {
        list_items(self.get(CLEANUP_POLICY)).contains(&"compact")
    }

    /// Whether old segments are deleted by retention (`cleanup.policy`
    /// names delete; a compact-only topic keeps them, cleaned).
    pub fn deletes(&self) -> bool {
        list_items(self.get(CLEANUP_POLICY)).contains(&"delete")
    }

    /// The compaction settings: when a partition is cleaned, and how long
    /// tombstones and transaction markers stay (`delete.retention.ms`).
    pub fn compaction(&self) -> Compaction {
        Compaction {
            options: weir_log::CleanOptions {
                end_offset_max: i64::MAX,
                min_cleanable_dirty_ratio: self
                    .get(MIN_CLEANABLE_DIRTY_RATIO)
                    .parse()
                    .unwrap_or(0.5),
                min_compaction_lag_ms: self.get_i64(MIN_COMPACTION_LAG_MS),
                max_compaction_lag_ms: self.get_i64(MAX_COMPACTION_LAG_MS),
            },
            delete_retention_ms: self.get_i64(DELETE_RETENTION_MS),
        }
    }

    /// The configuration of each of the topic's partition logs.
    pub fn log_config(&self, fsync: FsyncPolicy) -> LogConfig {
        // A compact-only topic keeps its segments whatever their age or
        // size: the cleaner shrinks them instead.
        let deletes = self.deletes();
        let limit = |v: i64| (deletes && v > 0).then_some(v);
        LogConfig {
            fsync,
            segment_bytes_max: self.get_i64(SEGMENT_BYTES) as u64,
            segment_ms: self.get_i64(SEGMENT_MS),
            batch_bytes_max: self.max_message_bytes(),
            retention_ms: limit(self.get_i64(RETENTION_MS)),
            retention_bytes: limit(self.get_i64(RETENTION_BYTES)).map(|v| v as u64),
            // Kafka allows 0 (an entry per batch); the log wants a positive
            // interval, and 1 means the same.
            index_interval_bytes: self.get_i64(INDEX_INTERVAL_BYTES).max(1) as u32,
            ..LogConfig::default()
        }
    }

    /// What each produce to the topic must do.
    pub fn produce_rules(&self) -> ProduceRules {
        let codec = match self.get(COMPRESSION_TYPE) {
            "uncompressed" => TargetCodec::Codec(0),
            "gzip" => TargetCodec::Codec(1),
            "snappy" => TargetCodec::Codec(2),
            "lz4" => TargetCodec::Codec(3),
            "zstd" => TargetCodec::Codec(4),
            _ => TargetCodec::Producer,
        };
        let gzip_level = u32::try_from(self.get_i64(COMPRESSION_GZIP_LEVEL)).ok();
        ProduceRules {
            codec,
            gzip_level,
            log_append_time: self.get(MESSAGE_TIMESTAMP_TYPE) == "LogAppendTime",
            timestamp_before_max_ms: self.get_i64(MESSAGE_TIMESTAMP_BEFORE_MAX_MS),
            timestamp_after_max_ms: self.get_i64(MESSAGE_TIMESTAMP_AFTER_MAX_MS),
            keys_required: self.compacted(),
            schemas: self.schema_rules(),
        }
    }

    /// Which parts of the topic's records must carry a registered schema
    /// (`confluent.*.schema.validation`), with their subject strategies.
    pub fn schema_rules(&self) -> crate::SchemaRules {
        let part = |on: &str, strategy: &str| {
            (self.get(on) == "true")
                .then(|| crate::SubjectStrategy::from_config(self.get(strategy)))
        };
        crate::SchemaRules {
            key: part(KEY_SCHEMA_VALIDATION, KEY_SUBJECT_NAME_STRATEGY),
            value: part(VALUE_SCHEMA_VALIDATION, VALUE_SUBJECT_NAME_STRATEGY),
        }
    }
}

/// A compacted topic's cleaning settings (see [`TopicConfig::compaction`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compaction {
    pub options: weir_log::CleanOptions,
    pub delete_retention_ms: i64,
}

/// Checks one broker-level default of topic config `key`, returning it in
/// canonical form.
pub fn validate_default(key: &str, value: &str) -> Result<String, BrokerError> {
    let def = topic_config_def(key).ok_or_else(|| unknown(key, value))?;
    validate(def, value)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
