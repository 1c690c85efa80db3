//! The bodies of the queue endpoints (`/v1/queues/...`): claim records of
//! a topic for a consumer of a queue group under a lock, acknowledge,
//! release or reject one, extend its lock, list the group's pending
//! records, and claim records idle too long (Redis Streams' model).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /v1/queues/{group}/topics/{topic}/claim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Who holds the records claimed.
    pub consumer: String,
    /// Records at most (default 10, at most the server's page size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<usize>,
    /// How long the locks last (default 30,000 ms); a record not acked by
    /// then goes to another consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_ms: Option<i64>,
    /// Waits up to this long for records when none are there (default 0,
    /// at most 30,000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Where a new group starts: `earliest` or `latest` (default, Kafka's
    /// `share.auto.offset.reset`). Ignored once the group has state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Deliveries a record gets at most before it is dead-lettered (for a
    /// new group; default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_limit: Option<u16>,
}

/// `POST /v1/queues/{group}/topics/{topic}/autoclaim` (XAUTOCLAIM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoclaimRequest {
    pub consumer: String,
    /// Records held by other consumers at least this long are taken.
    pub min_idle_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_ms: Option<i64>,
}

/// A claimed record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<String>,
    /// The value as JSON when it is JSON text, else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub value_base64: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Which delivery this is (1 the first).
    pub deliveries: u16,
    /// When the lock runs out (Unix ms).
    pub lock_deadline_ms: i64,
}

/// The answer of a claim or an autoclaim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Claimed {
    pub records: Vec<QueueRecord>,
}

/// `POST .../ack`, `.../nack`, `.../extend`: one record the consumer holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordAck {
    pub consumer: String,
    pub partition: i32,
    pub offset: i64,
    /// nack only: reject (dead-letter, never again) instead of release.
    #[serde(default)]
    pub reject: bool,
    /// extend only: the new lock, from now (default 30,000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_ms: Option<i64>,
}

/// `POST .../settle`: many held records of one partition settled alike in
/// one durable write (Redis' `XACK` with several ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    pub consumer: String,
    pub partition: i32,
    /// 1 to 1,000 offsets, each at most once.
    pub offsets: Vec<i64>,
    /// `accept` (done), `release` (delivered again) or `reject`
    /// (dead-lettered, never again); default `accept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// The answer of a settle: what was settled (durably) and what the
/// consumer did not hold (unchanged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Settled {
    pub partition: i32,
    /// `accepted`, `released` or `rejected`.
    pub outcome: String,
    pub settled: Vec<i64>,
    pub not_held: Vec<i64>,
}

/// The answer of `DELETE /v1/queues/{group}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueGroupDeleted {
    pub group: String,
    /// Partitions whose state was dropped.
    pub partitions: usize,
}

/// The answer of an ack, nack or extend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Acked {
    pub partition: i32,
    pub offset: i64,
    /// `accepted`, `released`, `rejected` or `extended`.
    pub outcome: String,
    /// extend only: the new deadline (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_deadline_ms: Option<i64>,
}

/// `GET /v1/queues/{group}/pending`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PendingList {
    pub pending: Vec<PendingRecord>,
}

/// A record a consumer holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PendingRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub consumer: String,
    /// Milliseconds since it was delivered.
    pub idle_ms: i64,
    pub deliveries: u16,
    pub lock_deadline_ms: i64,
}
