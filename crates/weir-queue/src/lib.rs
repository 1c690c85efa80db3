//! Weir's acknowledgement engine: queue semantics on a partition of the
//! log, once for Kafka share groups (KIP-932), the HTTP queue API (Redis
//! Streams' pending lists) and the event store's persistent subscriptions
//! (KurrentDB's competing consumers).
//!
//! A [`SharePartition`] hands the records of one partition to competing
//! consumers. Each record is *acquired* by one consumer at a time under a
//! lock that times out; every acquisition is a *delivery* and counts. The
//! consumer then *accepts* it (done), *releases* it (deliver it again) or
//! *rejects* it (never again: it goes to the dead letters). A record whose
//! lock times out is released; one released after its last allowed
//! delivery is archived and dead-lettered too. Accepted and archived
//! records are *settled*; the *start offset* is the first record not
//! settled, and the records between it and the *end* (the first offset
//! never acquired) are the *window*, whose length is bounded
//! ([`QueueConfig::in_flight_max`]): memory grows with records in flight,
//! never with the backlog.
//!
//! The engine owns no I/O and no clock. Each call returns the [`Change`]s
//! to make durable (deliveries and settlements) before its answer is
//! given; replaying them into a fresh partition ([`SharePartition::apply`])
//! after a restart gives back every settlement and delivery count, with
//! the locks gone (what was acquired is available again).
//!
//! [`Queues`] keeps one partition per (group, topic, partition) and makes
//! each call's changes durable through a [`QueueIo`] (a journal, a
//! snapshot, the dead letters) before answering; the broker implements
//! that I/O.

mod error;
pub mod journal;
mod partition;
mod queues;
mod snapshot;

pub use error::QueueError;
pub use journal::QueueKey;
pub use partition::{
    AckKind, Acquired, Change, DeadLetter, DeadLetterReason, Outcome, Pending, QueueConfig,
    SharePartition,
};
pub use queues::{
    Create, JournalRecord, JournalVisitor, QueueIo, Queues, QueuesConfig, Recovery, Unsynced,
};
pub use snapshot::{Snapshot, SnapshotRun};

/// Highest delivery limit a partition takes (Kafka allows 2 to 10 for share
/// groups; the HTTP queue and subscriptions allow more).
pub const DELIVERY_LIMIT_MAX: u16 = 1_000;
/// Largest window a partition takes, in records.
pub const IN_FLIGHT_MAX: usize = 100_000;
/// Longest lock a consumer may ask for (12 hours).
pub const LOCK_MS_MAX: i64 = 12 * 3_600_000;
