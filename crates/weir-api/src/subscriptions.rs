//! The bodies of the persistent-subscription endpoints
//! (`/v1/subscriptions/{target}/{group}...`): a group's settings, reads of
//! events for a consumer (long poll), ack and nack by ack id, replay of the
//! parked stream, and a group's state (KurrentDB's competing consumers).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Event;

/// `PUT /v1/subscriptions/{target}/{group}`: creates the group, or
/// changes its settings (its start stays). Every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSettings {
    /// Where a new group begins: a stream version for a stream, a global
    /// position for `$ce-<category>` and `$all`; absent: the end when the
    /// group is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_from: Option<u64>,
    /// Retries (nacks with `retry`, lock timeouts) before an event is
    /// parked (default 10, at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_count: Option<u16>,
    /// How long a consumer holds an event before it goes to another, and
    /// how long a silent consumer counts as alive (default 30,000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_timeout_ms: Option<i64>,
    /// Consumers at most (default 0: up to 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_subscriber_count: Option<u32>,
    /// Events a read hands out when it does not say (default 20, at most
    /// 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_batch_size: Option<u32>,
    /// `round_robin` (default) or `pinned` (a stream's events go to one
    /// consumer at a time, in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
}

/// A group as `GET /v1/subscriptions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionGroup {
    /// A stream id, `$ce-<category>` or `$all`.
    pub target: String,
    pub group: String,
    pub settings: SubscriptionSettings,
}

/// `GET /v1/subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionGroups {
    pub groups: Vec<SubscriptionGroup>,
}

/// `POST .../read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRead {
    pub consumer: String,
    /// Events at most (default the group's `read_batch_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Waits up to this long for events when none are there (default 0,
    /// at most 30,000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// An event handed to a consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionEvent {
    /// What to ack or nack it by (`m:<n>`, or `p:<n>` for a parked event
    /// being replayed).
    pub ack_id: String,
    /// Deliveries before this one.
    pub retry_count: u16,
    /// Delivered again by a replay of the parked stream.
    #[serde(default)]
    pub replayed: bool,
    pub event: Event,
}

/// The answer to a read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionEvents {
    pub events: Vec<SubscriptionEvent>,
}

/// `POST .../ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionAck {
    pub consumer: String,
    pub ack_ids: Vec<String>,
}

/// `POST .../nack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionNack {
    pub consumer: String,
    pub ack_ids: Vec<String>,
    /// `retry` (deliver again), `park` (to the parked stream) or `skip`.
    pub action: String,
    /// Why, kept with a parked event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to an ack, a nack or a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionDone {
    /// Events acked, nacked, or to be replayed.
    pub count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionConsumer {
    pub name: String,
    pub idle_ms: i64,
    pub in_flight: usize,
}

/// `GET .../info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionInfo {
    pub target: String,
    pub group: String,
    pub settings: SubscriptionSettings,
    pub consumers: Vec<SubscriptionConsumer>,
    pub in_flight: usize,
    /// The first event not settled (a stream version, the n-th event of a
    /// category, or a position in `$all`); all below is durably done.
    pub checkpoint: i64,
    /// What the next event of the target will be numbered.
    pub last_known: i64,
    /// Parked events not asked to be replayed.
    pub parked: u64,
    /// Parked events being replayed, not settled yet.
    pub replaying: i64,
    /// Where parked events are (`GET /v1/streams/{parked_stream}`).
    pub parked_stream: String,
}
