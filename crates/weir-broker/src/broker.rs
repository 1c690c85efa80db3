//! The broker: a registry of topics whose partitions are logs of one data
//! directory, persisted in the directory's `.topics` metadata file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use weir_log::{AppendInfo, DataDir, FsyncPolicy, Log, LogError, RecordsDeleted};

use weir_log::batch::BatchHeader;

use crate::config::{ConfigOp, TopicConfig, TopicDefaults};
use crate::defaults::DefaultsScope;
use crate::error::{BrokerError, produce_error};
use crate::producers::{BatchMeta, ProducerIds, ProducerState, Verdict};
use crate::topic::{Partition, Produced, Topic, TopicTraffic, lock_txns, read, write};

const REGISTRY_FILE: &str = ".topics";
/// Broker-level topic defaults set live (`log.retention.ms`, …).
const DEFAULTS_FILE: &str = ".broker-configs";
/// Longest topic name, as in Kafka (a partition's log name adds `-N`).
pub const TOPIC_NAME_BYTES_MAX: usize = 238;

/// Broker-wide settings and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Whether a Metadata request that allows it may create topics.
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and of `CreateTopics` with -1.
    pub default_partitions: u32,
    /// Most partitions one topic may have.
    pub partitions_max: u32,
    /// Most topics the broker holds.
    pub topics_max: usize,
    /// Sync policy of every partition log.
    pub fsync: FsyncPolicy,
    /// Most bytes one produced batch may decompress to (a guard against
    /// decompression bombs).
    pub decompressed_bytes_max: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            auto_create_topics: true,
            default_partitions: 1,
            partitions_max: 1024,
            topics_max: 10_000,
            fsync: FsyncPolicy::Always,
            decompressed_bytes_max: 128 * 1024 * 1024,
        }
    }
}

/// The broker's persisted view of a topic.
#[derive(Debug, Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: String,
    partitions: u32,
    configs: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Registry {
    version: u32,
    topics: Vec<TopicRecord>,
}

/// Topics and partitions over one data directory. Owns no sockets and no
/// runtime: calls block on disk I/O (appends wait for their sync).
#[derive(Debug)]
pub struct Broker {
    dir: DataDir,
    config: BrokerConfig,
    producer_ids: ProducerIds,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Broker-level defaults of topic configs, set live; every topic's
    /// config holds the same `Arc`.
    defaults: RwLock<Arc<TopicDefaults>>,
    /// Serializes changes to the registry (create, delete, alter).
    admin: Mutex<()>,
    /// Checks records of topics with schema validation on (the schema
    /// registry's, installed once by the server). Weak: the registry
    /// keeps its log on this broker, and its owner keeps it alive.
    record_validator: std::sync::OnceLock<std::sync::Weak<dyn crate::RecordValidator>>,
}

fn log_name(topic: &str, partition: u32) -> String {
    format!("{topic}-{partition}")
}

/// Checks a topic name as Kafka does: `[A-Za-z0-9._-]`, at most 238 bytes,
/// not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    let bad = |reason| {
        Err(BrokerError::InvalidTopic {
            topic: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return bad("longer than 238 bytes");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not topic names");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    if name.starts_with('.') {
        // A leading dot would name a hidden directory, where Weir keeps its
        // own files.
        return bad("may not start with a dot");
    }
    Ok(())
}

fn new_topic_id(name: &str) -> u128 {
    use std::hash::{BuildHasher, Hasher};
    // Two independently seeded hashes of the name and the clock: unique
    // enough for ids that only need to tell topics of the same name apart
    // across deletions.
    let state = std::collections::hash_map::RandomState::new();
    let mut id = 0u128;
    for _ in 0..2 {
        let mut h = state.build_hasher();
        h.write(name.as_bytes());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u128(id);
        id = (id << 64) | u128::from(h.finish());
    }
    id
}

impl Broker {
    /// Opens the broker over `dir`: loads the topic registry, opens (and
    /// recovers) every partition log, and deletes logs no topic owns (left
    /// by a crash in the middle of creating or deleting a topic).
    pub fn open(dir: DataDir, config: BrokerConfig) -> Result<Self, BrokerError> {
        let registry = match dir.read_meta(REGISTRY_FILE)? {
            None => Registry {
                version: 1,
                topics: Vec::new(),
            },
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| BrokerError::Registry {
                reason: e.to_string(),
            })?,
        };
        let defaults = Arc::new(crate::defaults::load(&dir, DEFAULTS_FILE)?);
        let mut topics = BTreeMap::new();
        let mut owned = std::collections::HashSet::new();
        for record in registry.topics {
            let topic_config = TopicConfig::from_pairs(
                record.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )?
            .with_defaults(defaults.clone());
            let log_config = topic_config.log_config(config.fsync);
            let mut partitions = Vec::with_capacity(record.partitions as usize);
            for p in 0..record.partitions {
                let name = log_name(&record.name, p);
                partitions.push(Partition::open(&dir, &name, log_config.clone())?);
                owned.insert(name);
            }
            let id = u128::from_str_radix(&record.id, 16).map_err(|e| BrokerError::Registry {
                reason: e.to_string(),
            })?;
            let topic = Topic {
                internal: record.name.starts_with("__"),
                name: record.name.clone(),
                id,
                partitions: RwLock::new(partitions),
                rules: RwLock::new(topic_config.produce_rules()),
                config: RwLock::new(topic_config),
                traffic: TopicTraffic::default(),
            };
            topics.insert(record.name, Arc::new(topic));
        }
        for name in dir.list_logs()? {
            // Only what looks like a partition's log (`<topic>-<n>`) is
            // the broker's to delete: anything else a user keeps in the
            // data directory stays.
            let partition_log = name
                .rsplit_once('-')
                .is_some_and(|(topic, p)| !topic.is_empty() && p.parse::<u32>().is_ok());
            if partition_log && !owned.contains(&name) {
                tracing::warn!(log = %name, "deleting a log no topic owns");
                dir.delete_log(&name)?;
            }
        }
        Ok(Self {
            producer_ids: ProducerIds::open(&dir)?,
            dir,
            config,
            topics: RwLock::new(topics),
            defaults: RwLock::new(defaults),
            admin: Mutex::new(()),
            record_validator: std::sync::OnceLock::new(),
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// All topics, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        read(&self.topics).values().cloned().collect()
    }

    /// The topic with this id (KIP-516), if any: Fetch and Produce from
    /// v13, Metadata and DeleteTopics name topics by id.
    pub fn topic_by_id(&self, id: u128) -> Option<Arc<Topic>> {
        read(&self.topics).values().find(|t| t.id == id).cloned()
    }

    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        read(&self.topics)
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_owned(),
            })
    }

    /// The log of one partition.
    pub fn partition(&self, topic: &str, partition: i32) -> Result<Log, BrokerError> {
        self.topic(topic)?.partition(partition)
    }

    /// The idempotent producers one partition holds state for, by id.
    pub fn producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerState>, BrokerError> {
        let part = self.topic(topic)?.partition_state(partition)?;
        let producers = part.producers.lock().unwrap_or_else(|e| e.into_inner());
        Ok(producers.states())
    }

    fn persist(&self, topics: &BTreeMap<String, Arc<Topic>>) -> Result<(), BrokerError> {
        let registry = Registry {
            version: 1,
            topics: topics
                .values()
                .map(|t| TopicRecord {
                    name: t.name.clone(),
                    id: format!("{:032x}", t.id),
                    partitions: t.partition_count() as u32,
                    configs: t.config().overrides().clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&registry).map_err(|e| BrokerError::Registry {
            reason: e.to_string(),
        })?;
        self.dir.write_meta(REGISTRY_FILE, &bytes)?;
        Ok(())
    }

    fn check_partitions(&self, topic: &str, count: i64) -> Result<u32, BrokerError> {
        let bad = |reason: String| BrokerError::InvalidPartitions {
            topic: topic.to_owned(),
            count,
            reason,
        };
        let count = if count == -1 {
            i64::from(self.config.default_partitions)
        } else {
            count
        };
        if count < 1 {
            return Err(bad("must be at least 1".into()));
        }
        if count > i64::from(self.config.partitions_max) {
            return Err(bad(format!(
                "over partitions_max {}",
                self.config.partitions_max
            )));
        }
        Ok(count as u32)
    }

    /// Creates a topic. `partitions` -1 means the broker's default;
    /// `replication_factor` must be 1 or -1 (one copy). With `validate_only`
    /// everything is checked and nothing created.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i64,
        replication_factor: i16,
        configs: &[(&str, &str)],
        validate_only: bool,
    ) -> Result<Arc<Topic>, BrokerError> {
        validate_topic_name(name)?;
        if name.starts_with("__") {
            return Err(BrokerError::InvalidTopic {
                topic: name.to_owned(),
                reason: "names starting with '__' are reserved for internal topics",
            });
        }
        self.create(name, partitions, replication_factor, configs, validate_only)
    }

    /// Creates an internal topic (a name starting with `__`), as Weir's own
    /// components do. Returns the existing one if it is there.
    pub fn ensure_internal_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: &[(&str, &str)],
    ) -> Result<Arc<Topic>, BrokerError> {
        validate_topic_name(name)?;
        if !name.starts_with("__") {
            return Err(BrokerError::InvalidTopic {
                topic: name.to_owned(),
                reason: "internal topic names start with '__'",
            });
        }
        match self.topic(name) {
            Ok(topic) => Ok(topic),
            // Another caller may create it meanwhile: theirs is as good.
            Err(_) => match self.create(name, i64::from(partitions), 1, configs, false) {
                Err(BrokerError::TopicAlreadyExists { .. }) => self.topic(name),
                created => created,
            },
        }
    }

    fn create(
        &self,
        name: &str,
        partitions: i64,
        replication_factor: i16,
        configs: &[(&str, &str)],
        validate_only: bool,
    ) -> Result<Arc<Topic>, BrokerError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        if replication_factor != 1 && replication_factor != -1 {
            return Err(BrokerError::InvalidReplicationFactor {
                factor: replication_factor,
            });
        }
        let count = self.check_partitions(name, partitions)?;
        let topic_config =
            TopicConfig::from_pairs(configs.iter().copied())?.with_defaults(self.topic_defaults());
        topic_config.check_consistent()?;
        {
            let topics = read(&self.topics);
            if topics.contains_key(name) {
                return Err(BrokerError::TopicAlreadyExists {
                    topic: name.to_owned(),
                });
            }
            if topics.len() >= self.config.topics_max {
                return Err(BrokerError::PolicyViolation {
                    reason: format!(
                        "the broker holds topics_max {} topics already",
                        self.config.topics_max
                    ),
                });
            }
        }
        let log_config = topic_config.log_config(self.config.fsync);
        log_config.validate()?;
        let topic = Arc::new(Topic {
            name: name.to_owned(),
            id: new_topic_id(name),
            internal: name.starts_with("__"),
            partitions: RwLock::new(Vec::new()),
            rules: RwLock::new(topic_config.produce_rules()),
            config: RwLock::new(topic_config),
            traffic: TopicTraffic::default(),
        });
        if validate_only {
            return Ok(topic);
        }
        // Logs first, then the registry: a crash in between leaves logs no
        // topic owns, which the next open deletes.
        {
            let mut logs = write(&topic.partitions);
            for p in 0..count {
                logs.push(Partition::open(
                    &self.dir,
                    &log_name(name, p),
                    log_config.clone(),
                )?);
            }
        }
        let mut topics = write(&self.topics);
        topics.insert(name.to_owned(), topic.clone());
        if let Err(e) = self.persist(&topics) {
            topics.remove(name);
            return Err(e);
        }
        tracing::info!(topic = name, partitions = count, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and all its data.
    pub fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self.topic(name)?;
        if topic.internal {
            return Err(BrokerError::PolicyViolation {
                reason: format!("internal topic {name:?} cannot be deleted"),
            });
        }
        // Registry first, then the logs: a crash in between leaves logs no
        // topic owns, which the next open deletes.
        {
            let mut topics = write(&self.topics);
            topics.remove(name);
            if let Err(e) = self.persist(&topics) {
                topics.insert(name.to_owned(), topic);
                return Err(e);
            }
        }
        for p in 0..topic.partition_count() {
            self.dir.delete_log(&log_name(name, p as u32))?;
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `count` partitions (never shrinks, as in Kafka).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i64,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self.topic(name)?;
        if topic.internal {
            return Err(BrokerError::PolicyViolation {
                reason: format!("internal topic {name:?} cannot be repartitioned"),
            });
        }
        let current = topic.partition_count() as i64;
        if count <= current {
            return Err(BrokerError::InvalidPartitions {
                topic: name.to_owned(),
                count,
                reason: format!("the topic has {current} partitions; the count can only grow"),
            });
        }
        let count = self.check_partitions(name, count)?;
        if validate_only {
            return Ok(());
        }
        let log_config = topic.config().log_config(self.config.fsync);
        {
            let mut logs = write(&topic.partitions);
            for p in logs.len() as u32..count {
                logs.push(Partition::open(
                    &self.dir,
                    &log_name(name, p),
                    log_config.clone(),
                )?);
            }
        }
        self.persist(&read(&self.topics))
    }

    /// Applies config changes (`None` resets a key to its default) to a
    /// topic, all or nothing.
    pub fn alter_topic_config(
        &self,
        name: &str,
        changes: &[(&str, Option<&str>)],
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let ops: Vec<(&str, ConfigOp<'_>)> = changes
            .iter()
            .map(|(k, v)| (*k, v.map_or(ConfigOp::Delete, ConfigOp::Set)))
            .collect();
        self.alter_topic_config_ops(name, &ops, validate_only)
    }

    /// Applies incremental changes (set, delete, and append or subtract
    /// for list configs) to a topic, in order, all or nothing.
    pub fn alter_topic_config_ops(
        &self,
        name: &str,
        changes: &[(&str, ConfigOp<'_>)],
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self.topic(name)?;
        if topic.internal {
            return Err(BrokerError::PolicyViolation {
                reason: format!("internal topic {name:?} cannot be altered"),
            });
        }
        let mut config = topic.config();
        for (key, op) in changes {
            config.apply(key, *op)?;
        }
        config.check_consistent()?;
        let log_config = config.log_config(self.config.fsync);
        log_config.validate()?;
        if validate_only {
            return Ok(());
        }
        let previous = topic.set_config(config);
        if let Err(e) = self.persist(&read(&self.topics)) {
            topic.set_config(previous);
            return Err(e);
        }
        for partition in read(&topic.partitions).iter() {
            partition.log.set_config(log_config.clone())?;
        }
        Ok(())
    }

    /// The broker-level defaults of topic configs set live.
    pub fn topic_defaults(&self) -> Arc<TopicDefaults> {
        read(&self.defaults).clone()
    }

    /// Sets or removes (`None`) broker-level defaults of topic configs
    /// (by topic config name: `retention.ms` for Kafka's
    /// `log.retention.ms`), all or nothing. Every topic without its own
    /// override follows the new values at once, its partition logs
    /// included.
    pub fn set_topic_defaults(
        &self,
        scope: DefaultsScope,
        changes: &[(&str, Option<&str>)],
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let next = Arc::new(crate::defaults::apply(
            &self.topic_defaults(),
            scope,
            changes,
        )?);
        let topics = self.topics();
        let mut configs = Vec::with_capacity(topics.len());
        for topic in &topics {
            let config = topic.config().with_defaults(next.clone());
            config.check_consistent()?;
            let log_config = config.log_config(self.config.fsync);
            log_config.validate()?;
            configs.push((config, log_config));
        }
        if validate_only {
            return Ok(());
        }
        crate::defaults::save(&self.dir, DEFAULTS_FILE, &next)?;
        *write(&self.defaults) = next;
        for (topic, (config, log_config)) in topics.iter().zip(configs) {
            topic.set_config(config);
            for partition in read(&topic.partitions).iter() {
                partition.log.set_config(log_config.clone())?;
            }
        }
        Ok(())
    }

    /// Deletes the records of one partition below `offset` (Kafka's
    /// DeleteRecords): its log start offset moves there, durably before
    /// this returns, and the whole segments below it are deleted (see
    /// [`Log::delete_records_before`]). An offset at or below the current
    /// start changes nothing. Refused: an unknown topic or partition, an
    /// internal topic (only Weir manages those, as Kafka refuses them too),
    /// and an offset below 0 or above the high watermark
    /// (`DeleteRecordsOutOfRange`); nothing changes then.
    pub fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<RecordsDeleted, BrokerError> {
        let t = self.topic(topic)?;
        let log = t.partition(partition)?;
        if t.internal {
            return Err(BrokerError::InvalidTopic {
                topic: topic.to_owned(),
                reason: "the records of an internal topic cannot be deleted",
            });
        }
        let out_of_range = |high_watermark| BrokerError::DeleteRecordsOutOfRange {
            topic: topic.to_owned(),
            partition,
            offset,
            high_watermark,
        };
        if offset < 0 {
            return Err(out_of_range(log.high_watermark()));
        }
        match log.delete_records_before(offset) {
            Ok(deleted) => {
                tracing::info!(topic, partition, offset, ?deleted, "deleted records");
                Ok(deleted)
            }
            Err(LogError::StartPastHighWatermark { high_watermark, .. }) => {
                Err(out_of_range(high_watermark))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Snapshots the producer and transaction state of every partition
    /// whose tail since its last snapshot passed the snapshot interval or
    /// its active segment (see `partition_state`), or with `always` of
    /// every partition written since its last one (at shutdown, so the
    /// next start replays nothing); returns how many it wrote. The
    /// maintenance pass that runs retention calls it.
    pub fn save_partition_snapshots(&self, always: bool) -> usize {
        let mut written = 0;
        for topic in self.topics() {
            let partitions = read(&topic.partitions).clone();
            for (i, part) in partitions.iter().enumerate() {
                match part.snapshot_if_due(always) {
                    Ok(true) => written += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(topic = topic.name, partition = i, %e, "partition snapshot failed");
                    }
                }
            }
        }
        written
    }

    /// Runs retention on every partition; returns how many segments went.
    pub fn enforce_retention(&self) -> usize {
        self.dir
            .enforce_retention()
            .into_iter()
            .map(|(log, outcome)| match outcome {
                Ok(o) => o.segments_deleted,
                Err(e) => {
                    tracing::warn!(%log, %e, "retention failed");
                    0
                }
            })
            .sum()
    }
}

#[path = "broker_produce.rs"]
mod produce;

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
