//! Persistent subscriptions (KurrentDB's competing consumers) on the one
//! acknowledgement engine, `weir-queue`: a named group on a stream, a
//! category or `$all` hands each event to one of its consumers under a
//! lock, takes ack / nack (retry, park, skip) per event, parks an event
//! retried past its limit into a parked stream that can be replayed, and
//! keeps its place across restarts (the engine's journal is the
//! checkpoint). How the pieces map onto the engine is in
//! `docs/design/queues.md`, "Persistent subscriptions".

mod deliver;
mod groups;

pub use deliver::{ConsumerInfo, Delivered, SubscriptionInfo};
pub use groups::PersistentSubscriptions;

use crate::StoreError;

/// Subscription groups at most per store.
pub const SUBSCRIPTION_GROUPS_MAX: usize = 500;
/// Consumers per group at most (whatever `max_subscriber_count` says).
pub const CONSUMERS_MAX: u32 = 1_000;
/// Highest `max_retry_count`.
pub const MAX_RETRY_COUNT_MAX: u16 = 100;
/// Most events one read hands out.
pub const READ_BATCH_MAX: u32 = 1_000;
/// Longest group or consumer name, in bytes.
pub const NAME_BYTES_MAX: usize = 255;
/// The stream holding every group's settings (created, updated, deleted).
pub const SETTINGS_STREAM: &str = "$persistentsubscriptions";

/// What a group follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// One stream's events, by version.
    Stream(String),
    /// A category's events (streams `category-…`) in global order; named
    /// `$ce-<category>` as KurrentDB's category streams are.
    Category(String),
    /// Every event in global order, `$all`.
    All,
}

impl Target {
    /// Reads `$all`, `$ce-<category>` or a stream id.
    pub fn parse(name: &str) -> Result<Self, SubscriptionError> {
        if name == "$all" {
            return Ok(Target::All);
        }
        if let Some(category) = name.strip_prefix("$ce-") {
            if category.is_empty() || category.starts_with('$') || category.contains('-') {
                return Err(SubscriptionError::InvalidTarget {
                    target: name.to_owned(),
                    reason: "a category is not empty and has no '-' and no leading '$'",
                });
            }
            return Ok(Target::Category(category.to_owned()));
        }
        crate::validate_stream(name).map_err(|_| SubscriptionError::InvalidTarget {
            target: name.to_owned(),
            reason: "not $all, $ce-<category> or a valid stream id",
        })?;
        Ok(Target::Stream(name.to_owned()))
    }

    /// The name [`Target::parse`] reads back.
    pub fn name(&self) -> String {
        match self {
            Target::Stream(s) => s.clone(),
            Target::Category(c) => format!("$ce-{c}"),
            Target::All => "$all".to_owned(),
        }
    }

    /// The stream a group's parked events go to, as KurrentDB names it.
    pub fn parked_stream(&self, group: &str) -> String {
        format!("$persistentsubscription-{}::{group}-parked", self.name())
    }
}

/// Which consumer gets which events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Any consumer that reads gets the next events.
    #[default]
    RoundRobin,
    /// The events of one stream go to one consumer while it lives, so a
    /// stream's events are handled in order; its streams go to others
    /// when it leaves or goes silent.
    Pinned,
}

impl Strategy {
    /// Its name in the HTTP API and the CLI (`round_robin`, `pinned`).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::Pinned => "pinned",
        }
    }

    /// The strategy of that name, if one has it.
    pub fn from_name(name: &str) -> Option<Self> {
        [Strategy::RoundRobin, Strategy::Pinned]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// What a consumer does with an event it cannot handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NackAction {
    /// Deliver it again (to any consumer); a retry counts.
    Retry,
    /// Never again: written to the parked stream, for a later replay.
    Park,
    /// Never again, and not parked.
    Skip,
}

/// A group's settings (KurrentDB's names in snake case).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionSettings {
    /// Where a new group begins: a stream version for a stream, a global
    /// position for a category or `$all`; `None` is the end when the
    /// group is created (only later events). Fixed at creation.
    pub start_from: Option<u64>,
    /// Retries of an event (nacks with `retry`, and lock timeouts) before
    /// it is parked.
    pub max_retry_count: u16,
    /// How long a consumer holds an event before it goes to another; also
    /// how long a consumer may be silent before it counts as gone.
    pub message_timeout_ms: i64,
    /// Consumers at most (0: up to [`CONSUMERS_MAX`]).
    pub max_subscriber_count: u32,
    /// Events a read hands out when it does not say.
    pub read_batch_size: u32,
    pub strategy: Strategy,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        Self {
            start_from: None,
            max_retry_count: 10,
            message_timeout_ms: 30_000,
            max_subscriber_count: 0,
            read_batch_size: 20,
            strategy: Strategy::RoundRobin,
        }
    }
}

impl SubscriptionSettings {
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        let bad = |reason: String| Err(SubscriptionError::InvalidSettings { reason });
        if self.max_retry_count > MAX_RETRY_COUNT_MAX {
            return bad(format!(
                "max_retry_count {} is above {MAX_RETRY_COUNT_MAX}",
                self.max_retry_count
            ));
        }
        if !(1..=weir_queue::LOCK_MS_MAX).contains(&self.message_timeout_ms) {
            return bad(format!(
                "message_timeout_ms {} is not 1 to {}",
                self.message_timeout_ms,
                weir_queue::LOCK_MS_MAX
            ));
        }
        if self.max_subscriber_count > CONSUMERS_MAX {
            return bad(format!(
                "max_subscriber_count {} is above {CONSUMERS_MAX}",
                self.max_subscriber_count
            ));
        }
        if !(1..=READ_BATCH_MAX).contains(&self.read_batch_size) {
            return bad(format!(
                "read_batch_size {} is not 1 to {READ_BATCH_MAX}",
                self.read_batch_size
            ));
        }
        Ok(())
    }

    fn consumers_max(&self) -> u32 {
        match self.max_subscriber_count {
            0 => CONSUMERS_MAX,
            n => n,
        }
    }
}

/// Why a persistent-subscription call was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("no subscription group {group:?} on {target}")]
    NotFound { target: String, group: String },
    #[error("subscription group {group:?} on {target} exists already")]
    Exists { target: String, group: String },
    #[error("invalid subscription target {target:?}: {reason}")]
    InvalidTarget {
        target: String,
        reason: &'static str,
    },
    #[error("invalid subscription settings: {reason}")]
    InvalidSettings { reason: String },
    #[error("invalid name {name:?}: 1 to 255 bytes, no control characters")]
    InvalidName { name: String },
    #[error("too many subscription groups (at most {max})")]
    TooManyGroups { max: usize },
    #[error("subscription group {group:?} has {max} consumers already")]
    TooManyConsumers { group: String, max: u32 },
    #[error("invalid ack id {id:?}: \"m:<n>\" or \"p:<n>\"")]
    InvalidAckId { id: String },
    /// The consumer does not hold that event (never given to it, timed
    /// out and given to another, or settled already).
    #[error("event {id} is not held by consumer {consumer:?}")]
    NotHeld { id: String, consumer: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("subscription state: {0}")]
    Queue(weir_queue::QueueError),
}

impl From<weir_queue::QueueError> for SubscriptionError {
    fn from(e: weir_queue::QueueError) -> Self {
        SubscriptionError::Queue(e)
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), SubscriptionError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(SubscriptionError::InvalidName {
            name: name.chars().take(64).collect(),
        });
    }
    Ok(())
}
