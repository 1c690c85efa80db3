//! What the coordinator knows of one transactional id: its producer id and
//! epoch, the state of its transaction (Kafka's `TransactionState`, with
//! the same numbers in the log) and the partitions it wrote to.

use std::collections::BTreeSet;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

/// The state of a transactional id's transaction, as Kafka numbers it in
/// the transaction log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// No transaction open (just initialised).
    Empty,
    /// A transaction is open: partitions were added to it.
    Ongoing,
    /// Committing: the decision is durable, markers are being written.
    PrepareCommit,
    /// Aborting: the decision is durable, markers are being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// The transactional id expired (a tombstone follows).
    Dead,
    /// A newer producer took the id while a transaction was open: it is
    /// aborted with the bumped epoch.
    PrepareEpochFence,
}

impl TxnState {
    /// Its number in the transaction log.
    pub fn id(self) -> i8 {
        match self {
            Self::Empty => 0,
            Self::Ongoing => 1,
            Self::PrepareCommit => 2,
            Self::PrepareAbort => 3,
            Self::CompleteCommit => 4,
            Self::CompleteAbort => 5,
            Self::Dead => 6,
            Self::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        Some(match id {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            6 => Self::Dead,
            7 => Self::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
            Self::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The decision is durable and its markers are (being) written.
    pub fn is_prepared(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }

    /// No transaction is open: a new one may start.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            Self::Empty | Self::CompleteCommit | Self::CompleteAbort
        )
    }
}

/// One transactional id's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump (KIP-360: a producer retrying its
    /// InitProducerId with it is answered, not fenced); -1 when none.
    /// Not in the log: after a restart only the current epoch is known.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the open (or completing) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open (or last) transaction started: its first partition
    /// added. Kept once it completes, as Kafka keeps it; -1 before the
    /// first transaction and after InitProducerId.
    pub txn_start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMetadata {
    /// The open transaction ran past its timeout at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.txn_start_ms >= 0
            && now_ms > self.txn_start_ms.saturating_add(i64::from(self.timeout_ms))
    }
}
