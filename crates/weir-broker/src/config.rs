//! Topic configuration under Kafka's names (`retention.ms`, `segment.bytes`,
//! …), validated, with defaults, and mapped onto the log's configuration.

use std::collections::BTreeMap;

use weir_log::{FsyncPolicy, LogConfig};

use crate::error::BrokerError;

pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const CLEANUP_POLICY: &str = "cleanup.policy";

/// Every topic config the broker knows, in the order they are described.
pub const TOPIC_CONFIG_KEYS: [&str; 5] = [
    CLEANUP_POLICY,
    MAX_MESSAGE_BYTES,
    RETENTION_BYTES,
    RETENTION_MS,
    SEGMENT_BYTES,
];

/// A topic's settings. Only values set explicitly are stored; the rest
/// follow the broker's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
}

/// One described config entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub is_default: bool,
}

fn default_value(key: &str) -> &'static str {
    match key {
        RETENTION_MS => "604800000",
        RETENTION_BYTES => "-1",
        SEGMENT_BYTES => "1073741824",
        MAX_MESSAGE_BYTES => "1048588",
        CLEANUP_POLICY => "delete",
        _ => unreachable!("only known keys have defaults"),
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::InvalidConfig {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn parse_i64(key: &str, value: &str) -> Result<i64, BrokerError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not an integer"))
}

/// Checks one value for `key`, returning it in canonical form.
fn validate(key: &str, value: &str) -> Result<String, BrokerError> {
    let canonical = match key {
        RETENTION_MS | RETENTION_BYTES => {
            let v = parse_i64(key, value)?;
            if v < -1 || v == 0 {
                return Err(invalid(key, value, "must be positive, or -1 for no limit"));
            }
            v.to_string()
        }
        SEGMENT_BYTES => {
            let v = parse_i64(key, value)?;
            let range = weir_log::SEGMENT_BYTES_MIN as i64..=weir_log::SEGMENT_BYTES_LIMIT as i64;
            if !range.contains(&v) {
                return Err(invalid(
                    key,
                    value,
                    format!("must be in [{}, {}]", range.start(), range.end()),
                ));
            }
            v.to_string()
        }
        MAX_MESSAGE_BYTES => {
            let v = parse_i64(key, value)?;
            let max = weir_log::BATCH_BYTES_LIMIT as i64;
            if !(1..=max).contains(&v) {
                return Err(invalid(key, value, format!("must be in [1, {max}]")));
            }
            v.to_string()
        }
        CLEANUP_POLICY => match value.trim() {
            "delete" => "delete".to_owned(),
            "compact" | "compact,delete" | "delete,compact" => {
                return Err(invalid(
                    key,
                    value,
                    "compaction is not supported yet; use delete",
                ));
            }
            _ => return Err(invalid(key, value, "must be delete")),
        },
        _ => {
            return Err(BrokerError::InvalidConfig {
                key: key.to_owned(),
                value: value.to_owned(),
                reason: "unknown topic config".into(),
            });
        }
    };
    Ok(canonical)
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

    /// Sets `key` to `value`, or back to its default with `None`.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), BrokerError> {
        match value {
            Some(value) => {
                let canonical = validate(key, value)?;
                self.overrides.insert(key.to_owned(), canonical);
            }
            None => {
                validate(key, default_value_checked(key)?)?;
                self.overrides.remove(key);
            }
        }
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

    fn get(&self, key: &str) -> &str {
        self.overrides
            .get(key)
            .map_or_else(|| default_value(key), String::as_str)
    }

    fn get_i64(&self, key: &str) -> i64 {
        self.get(key).parse().expect("stored values are validated")
    }

    /// The largest batch (producer request per partition) accepted.
    pub fn max_message_bytes(&self) -> usize {
        self.get_i64(MAX_MESSAGE_BYTES) as usize
    }

    /// Every known key with its value and whether it is the default.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        TOPIC_CONFIG_KEYS
            .iter()
            .map(|key| ConfigEntry {
                name: key,
                value: self.get(key).to_owned(),
                is_default: !self.overrides.contains_key(*key),
            })
            .collect()
    }

    /// Only the explicitly set values (what is persisted).
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    /// The configuration of each of the topic's partition logs.
    pub fn log_config(&self, fsync: FsyncPolicy) -> LogConfig {
        let limit = |v: i64| (v > 0).then_some(v);
        LogConfig {
            fsync,
            segment_bytes_max: self.get_i64(SEGMENT_BYTES) as u64,
            batch_bytes_max: self.max_message_bytes(),
            retention_ms: limit(self.get_i64(RETENTION_MS)),
            retention_bytes: limit(self.get_i64(RETENTION_BYTES)).map(|v| v as u64),
            ..LogConfig::default()
        }
    }
}

fn default_value_checked(key: &str) -> Result<&'static str, BrokerError> {
    if TOPIC_CONFIG_KEYS.contains(&key) {
        Ok(default_value(key))
    } else {
        Err(invalid(key, "", "unknown topic config"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_and_defaults_described() {
        let config =
            TopicConfig::from_pairs([("retention.ms", "1000"), ("segment.bytes", "2097152")])
                .unwrap();
        let entries = config.entries();
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
        for (key, value) in [
            ("retention.ms", "soon"),
            ("retention.ms", "0"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "compact"),
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
    }
}
