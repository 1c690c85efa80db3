//! A topic and its partitions as the broker holds them: each partition's
//! log with the idempotent producers writing to it, the topic's config and
//! the produce rules drawn from it, and what a produce hands back before it
//! is acknowledged.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use weir_log::{AppendInfo, DataDir, FsyncPolicy, Log};

use crate::config::{ProduceRules, TopicConfig};
use crate::error::BrokerError;
use crate::producers::PartitionProducers;
use crate::txn_index::PartitionTxns;

/// One partition: its log, the idempotent producers writing to it and
/// their transactions in it. Lock order: `producers`, then `txns`.
#[derive(Debug, Clone)]
pub(crate) struct Partition {
    pub(crate) log: Log,
    pub(crate) producers: Arc<Mutex<PartitionProducers>>,
    pub(crate) txns: Arc<Mutex<PartitionTxns>>,
    /// The offset of the log's newest snapshot of this state (-1: none).
    pub(crate) snapshot_offset: Arc<AtomicI64>,
}

impl Partition {
    /// Opens the log and rebuilds its producers' and transactions' state
    /// from its newest snapshot and the batches after it.
    pub(crate) fn open(
        dir: &DataDir,
        name: &str,
        config: weir_log::LogConfig,
    ) -> Result<Self, BrokerError> {
        let log = dir.open_log(name, config)?;
        let (producers, txns, snapshot) = crate::partition_state::recover(&log)?;
        Ok(Self {
            log,
            producers: Arc::new(Mutex::new(producers)),
            txns: Arc::new(Mutex::new(txns)),
            snapshot_offset: Arc::new(AtomicI64::new(snapshot.unwrap_or(-1))),
        })
    }
}

/// One topic: its partitions' logs and its config.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    /// A random id, as Kafka gives topics (KIP-516).
    pub id: u128,
    /// Internal topics (names starting with `__`) are written only by Weir.
    pub internal: bool,
    pub(crate) partitions: RwLock<Vec<Partition>>,
    pub(crate) config: RwLock<TopicConfig>,
    /// What the config asks of each produce, kept beside it so a produce
    /// reads a few words instead of cloning the config.
    pub(crate) rules: RwLock<ProduceRules>,
    /// Records and bytes written and read since the broker opened, for
    /// metrics (read at scrape time; a few relaxed atomic adds per request).
    pub traffic: TopicTraffic,
}

/// Records and bytes through one topic, in and out, since the broker
/// opened. Produces through [`crate::Broker::produce_nowait`] count in by
/// themselves; readers count what they hand out with
/// [`TopicTraffic::count_out`].
#[derive(Debug, Default)]
pub struct TopicTraffic {
    records_in: AtomicU64,
    bytes_in: AtomicU64,
    records_out: AtomicU64,
    bytes_out: AtomicU64,
}

/// [`TopicTraffic`] when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    pub records_in: u64,
    pub bytes_in: u64,
    pub records_out: u64,
    pub bytes_out: u64,
}

impl TopicTraffic {
    pub fn count_in(&self, records: u64, bytes: u64) {
        self.records_in.fetch_add(records, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn count_out(&self, records: u64, bytes: u64) {
        self.records_out.fetch_add(records, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn counts(&self) -> TrafficCounts {
        TrafficCounts {
            records_in: self.records_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

impl Topic {
    pub fn partition_count(&self) -> usize {
        read(&self.partitions).len()
    }

    pub(crate) fn partition_state(&self, partition: i32) -> Result<Partition, BrokerError> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| read(&self.partitions).get(p).cloned())
            .ok_or_else(|| BrokerError::UnknownPartition {
                topic: self.name.clone(),
                partition,
            })
    }

    pub fn partition(&self, partition: i32) -> Result<Log, BrokerError> {
        self.partition_state(partition).map(|p| p.log)
    }

    /// A partition's last stable offset: where `read_committed` consumers
    /// stop (the first offset of its oldest open transaction, or the high
    /// watermark).
    pub fn last_stable_offset(&self, partition: i32) -> Result<i64, BrokerError> {
        let part = self.partition_state(partition)?;
        let hw = part.log.high_watermark();
        Ok(lock_txns(&part).last_stable_offset(hw))
    }

    /// The aborted transactions whose records may lie in `[from, upto)` of
    /// a partition, for a `read_committed` fetch.
    pub fn aborted_transactions(
        &self,
        partition: i32,
        from: i64,
        upto: i64,
    ) -> Result<Vec<crate::txn_index::AbortedTxn>, BrokerError> {
        let part = self.partition_state(partition)?;
        Ok(lock_txns(&part).aborted_in(from, upto))
    }

    pub fn config(&self) -> TopicConfig {
        read(&self.config).clone()
    }

    pub(crate) fn set_config(&self, config: TopicConfig) -> TopicConfig {
        *write(&self.rules) = config.produce_rules();
        std::mem::replace(&mut *write(&self.config), config)
    }
}

/// Batches written by [`Broker::produce_nowait`], not yet acknowledged.
#[derive(Debug)]
#[must_use = "a produce is acknowledged only after `wait`"]
pub struct Produced {
    pub(crate) log: Log,
    pub(crate) info: AppendInfo,
}

impl Produced {
    /// Blocks until the batches are durable (under `fsync=always`; at once
    /// otherwise) and returns where they landed.
    pub fn wait(self) -> Result<AppendInfo, BrokerError> {
        if self.log.fsync_policy() == FsyncPolicy::Always {
            self.log.wait_durable(self.info.last_offset + 1)?;
        }
        Ok(self.info)
    }

    /// [`Produced::wait`] without blocking a thread: resolves when the
    /// batches are durable, sharing the same sync rounds.
    pub async fn durable(self) -> Result<AppendInfo, BrokerError> {
        if self.log.fsync_policy() == FsyncPolicy::Always {
            self.log.until_durable(self.info.last_offset + 1).await?;
        }
        Ok(self.info)
    }

    /// The log start offset of the partition, for the response.
    pub fn log_start_offset(&self) -> i64 {
        self.log.start_offset()
    }
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn lock_txns(part: &Partition) -> std::sync::MutexGuard<'_, PartitionTxns> {
    part.txns.lock().unwrap_or_else(|e| e.into_inner())
}
