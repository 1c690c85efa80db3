//! The bodies of the dead-letter endpoints (`/v1/dlq/...`): dead-letter
//! topics with their depth, dead letters decoded (the original record
//! and why and where it failed), and replays to the origin; and of
//! `/v1/alerts` (dead-letter depth and group lag over their thresholds).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `GET /v1/dlq`: every dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterTopics {
    pub topics: Vec<DeadLetterTopic>,
}

/// One dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterTopic {
    /// The dead-letter topic, e.g. `orders.dlq`.
    pub topic: String,
    /// The topic its records came from.
    pub origin_topic: String,
    /// Whether the origin topic still exists (replays need it).
    pub origin_exists: bool,
    pub partitions: u32,
    /// Records held, over every partition.
    pub depth: u64,
    /// When the oldest record held was dead-lettered (Unix ms); absent when
    /// the topic is empty.
    pub oldest_timestamp_ms: Option<i64>,
}

/// Where a dead letter came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterOrigin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
}

/// One dead letter: the original record, why it failed and where it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterRecord {
    /// Its place in the dead-letter topic.
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// The value as JSON when it is JSON text, else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The value's bytes in base64.
    pub value_base64: Option<String>,
    /// The original record's headers.
    pub headers: BTreeMap<String, String>,
    /// The last error.
    pub error: String,
    /// `transient` (retries ran out), `permanent` or `decode`.
    pub error_kind: String,
    pub attempts: u32,
    pub first_failure_ms: i64,
    pub last_failure_ms: i64,
    /// The consumer group that gave up on it.
    pub group: String,
    pub origin: DeadLetterOrigin,
    /// Set when the record had been replayed before it failed again:
    /// `<dead-letter topic>/<partition>/<offset>` it was replayed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_from: Option<String>,
    /// How many times it was replayed before.
    pub replays: u32,
}

/// A record of a dead-letter topic that is not a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotDeadLetter {
    pub offset: i64,
    /// What is missing or malformed.
    pub reason: String,
}

/// `GET /v1/dlq/{topic}/partitions/{partition}/records`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetters {
    pub records: Vec<DeadLetterRecord>,
    pub not_dead_letters: Vec<NotDeadLetter>,
    /// The offset to read from next.
    pub next_offset: i64,
}

/// `POST /v1/dlq/{topic}/replay`: which dead letters go back to their
/// origin. `{"partition": 1, "offset": 7}` replays one record;
/// with `"to_offset": 9` too, the range 7..=9 of partition 1; `{"all":
/// true}` every record (from `partition` and `offset` on, when given: what
/// a bounded reply's `next` says).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_offset: Option<i64>,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplayResult {
    /// Dead letters produced to their origin, in order.
    pub replayed: u64,
    /// Records of the selection that were not dead letters.
    pub skipped_not_dead_letters: u64,
    /// The request that goes on where this one stopped (each call is
    /// bounded); absent when the selection is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<ReplayRequest>,
}

/// `POST /v1/dlq/{topic}/purge`: which dead letters to drop for good.
/// `{"all": true}` purges every partition up to its end;
/// `{"partition": 1, "to_offset": 7}` purges partition 1's records below
/// offset 7 (`to_offset` is exclusive: the record at 7 stays). Nothing else
/// is accepted, so an empty body purges nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Exclusive upper bound: the records below it are purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_offset: Option<i64>,
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurgeResult {
    /// Records purged, over the partitions.
    pub purged: u64,
    /// Each partition the purge touched, by partition.
    pub partitions: Vec<PurgedPartition>,
}

/// What a purge did to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurgedPartition {
    pub partition: i32,
    /// Records purged by this call (0 when they were gone already).
    pub purged: u64,
    /// The partition's first offset now (its log start offset).
    pub log_start_offset: i64,
}

/// `GET /v1/alerts`: the thresholds and the alerts firing now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    /// Records a dead-letter topic may hold before its alert fires; absent
    /// when not watched.
    pub dead_letter_depth_max: Option<u64>,
    /// Records of lag a consumer group may reach before its alert fires;
    /// absent when not watched.
    pub group_lag_max: Option<u64>,
    pub alerts: Vec<Alert>,
    /// Alerts that could not be kept (over the server's limit).
    pub dropped: u64,
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// `dead_letter_depth` (the subject is a dead-letter topic) or
    /// `group_lag` (the subject is a consumer group).
    pub kind: String,
    pub subject: String,
    /// The value when last evaluated.
    pub value: u64,
    pub threshold: u64,
    /// When it fired (Unix ms).
    pub since_ms: i64,
}
