//! `weir-api`: the request and response bodies of Weir's HTTP/JSON API
//! (`/v1/...`), as serde types with OpenAPI schemas. The server
//! (`weir-http`) and clients (the CLI, later the SDK's remote mode) share
//! them; the server converts to the core crates' types at its edge.
//!
//! Unknown fields in request bodies are refused by name
//! (`deny_unknown_fields`), so a typo is a 400, not a silently ignored
//! setting.

mod acls;
mod dlq;
mod queues;
mod sagas;
mod subscriptions;

use std::collections::BTreeMap;

pub use acls::{Acl, AclList, AclsDeleted, CreateAcls};
pub use dlq::{
    Alert, AlertList, DeadLetterOrigin, DeadLetterRecord, DeadLetterTopic, DeadLetterTopics,
    DeadLetters, NotDeadLetter, PurgeRequest, PurgeResult, PurgedPartition, ReplayRequest,
    ReplayResult,
};
pub use queues::{
    Acked, AutoclaimRequest, ClaimRequest, Claimed, PendingList, PendingRecord, QueueGroupDeleted,
    QueueRecord, RecordAck, SettleRequest, Settled,
};
pub use sagas::{NotSaga, ResumeSaga, SagaDetail, SagaEventInfo, SagaList, SagaStep, SagaSummary};
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use subscriptions::{
    SubscriptionAck, SubscriptionConsumer, SubscriptionDone, SubscriptionEvent, SubscriptionEvents,
    SubscriptionGroup, SubscriptionGroups, SubscriptionInfo, SubscriptionNack, SubscriptionRead,
    SubscriptionSettings,
};
use utoipa::ToSchema;

/// An RFC 9457 problem: every error response, with a stable `code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:weir:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for this request.
    pub detail: String,
    /// A stable machine-readable code, e.g. `wrong_expected_version`.
    pub code: String,
    /// The Kafka error code the same failure has on the Kafka protocol, if
    /// there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_error_code: Option<i16>,
    /// For a version conflict: what the writer expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<String>,
    /// For a version conflict: the stream's version (`null`: no stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_version: Option<Value>,
    /// For an append refused because of one event (schema validation):
    /// its index in the append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_index: Option<usize>,
    /// For an append refused because of one event: its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `POST /v1/topics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// ASCII letters, digits, `.`, `_` and `-`; not starting with a dot;
    /// at most 238 bytes.
    #[schema(
        pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$",
        min_length = 1,
        max_length = 238
    )]
    pub name: String,
    /// Partitions [default: the broker's default].
    #[serde(default)]
    #[schema(minimum = 1)]
    pub partitions: Option<u32>,
    /// Topic configs under Kafka's names (`retention.ms`, ...).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartitionInfo {
    pub partition: i32,
    /// The first offset still held.
    pub start_offset: i64,
    /// The offset the next record gets.
    pub end_offset: i64,
    /// Every record below this is durable, and readable.
    pub durable_offset: i64,
}

/// A topic, as `GET /v1/topics/{topic}` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopicInfo {
    pub name: String,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
    /// Every config with its value (defaults included).
    pub configs: BTreeMap<String, String>,
}

/// `GET /v1/topics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: u32,
    pub internal: bool,
}

/// One record to produce. The value is JSON, or bytes in base64 when
/// `value_base64` is given instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    /// The key; records with one are partitioned by murmur2 of it, as the
    /// Java client does.
    #[serde(default)]
    pub key: Option<String>,
    /// The value as JSON (stored as its JSON text).
    #[serde(default)]
    pub value: Option<Value>,
    /// The value as base64 bytes.
    #[serde(default)]
    pub value_base64: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A partition to write to instead of the key's.
    #[serde(default)]
    pub partition: Option<i32>,
}

/// `POST /v1/topics/{topic}/records`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Produce {
    #[schema(min_items = 1)]
    pub records: Vec<ProduceRecord>,
}

/// Where a produced record landed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Produced {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProduceResult {
    /// One per record, in the request's order; durable when returned.
    pub offsets: Vec<Produced>,
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<String>,
    /// The value as JSON when it is JSON text, else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The value's bytes in base64 (always given, so binary values survive).
    pub value_base64: Option<String>,
    pub headers: BTreeMap<String, String>,
}

/// `GET /v1/topics/{topic}/partitions/{partition}/records`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Records {
    pub records: Vec<Record>,
    /// The offset to read from next.
    pub next_offset: i64,
    pub high_watermark: i64,
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// The event id; one is made up when absent (then a retry is not
    /// recognised as one).
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: Value,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// The W3C `traceparent` the event was written in (CloudEvents'
    /// distributed-tracing extension); when absent, the request's
    /// `traceparent` header, if valid, is recorded instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The W3C `tracestate` that goes with `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// `POST /v1/streams/{stream}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Append {
    /// `"any"`, `"no_stream"`, `"exists"`, or the stream's last version.
    /// (Kept as JSON here so a wrong value gets the server's own message.)
    #[schema(schema_with = expected_version_schema)]
    pub expected_version: Value,
    #[schema(min_items = 1)]
    pub events: Vec<EventIn>,
}

/// The schema of an expected version: one of three words, or a version.
fn expected_version_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["any", "no_stream", "exists"])),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .build()
        .into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Appended {
    pub first_version: u64,
    pub last_version: u64,
    pub first_position: u64,
    pub last_position: u64,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub stream: String,
    pub version: u64,
    pub position: u64,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The data as JSON when it is JSON, else a string of base64.
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    pub content_type: String,
    /// When it was recorded, RFC 3339.
    pub recorded: String,
    pub recorded_ms: i64,
    /// The correlation the event belongs to: the metadata's top-level
    /// string `correlationid` (the store's convention, which the SDK
    /// writes), if it has one. `GET /v1/correlations/{id}` lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The id of the event or command that caused this one: the metadata's
    /// top-level string `causationid`, if it has one. Within a correlation
    /// it makes the events a tree (`weir trace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The W3C trace context the event was written in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// A page of events with the query for the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Events {
    pub events: Vec<Event>,
    /// The URL of the next page in the same direction, if there may be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// `PATCH /v1/topics/{topic}/configs`: config changes, all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlterConfigs {
    /// Configs to set, under Kafka's names (`retention.ms`, ...).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Configs to reset to their defaults.
    #[serde(default)]
    pub reset: Vec<String>,
    /// Check the changes without applying them.
    #[serde(default)]
    pub validate_only: bool,
}

/// `GET /v1/groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
}

/// A consumer group as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupSummary {
    pub group: String,
    /// `classic` (JoinGroup/SyncGroup) or `consumer` (KIP-848).
    #[serde(rename = "type")]
    pub group_type: String,
    /// As Kafka's tools name it: `Empty`, `Stable`, `PreparingRebalance`, ...
    pub state: String,
    /// `consumer` for Kafka consumers; empty when unknown.
    pub protocol_type: String,
}

/// Partitions of one topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupMember {
    pub member_id: String,
    /// A static member's `group.instance.id`.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The partitions the member holds.
    pub assignment: Vec<TopicPartitions>,
}

/// Where a group is on one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupPartition {
    pub topic: String,
    pub partition: i32,
    /// The committed offset (the next record the group reads); `null` if
    /// it committed none.
    pub committed_offset: Option<i64>,
    /// The partition's first offset still held (`null`: no such partition
    /// any more).
    pub start_offset: Option<i64>,
    /// The partition's high watermark: what consumers may read up to.
    pub end_offset: Option<i64>,
    /// `end_offset - committed_offset` (at least 0), `null` if either is
    /// unknown.
    pub lag: Option<i64>,
    /// The member holding the partition, if one does.
    pub member_id: Option<String>,
}

/// `GET /v1/groups/{group}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupInfo {
    pub group: String,
    /// `classic` or `consumer`.
    #[serde(rename = "type")]
    pub group_type: String,
    pub state: String,
    pub protocol_type: String,
    /// The chosen assignment protocol (`range`, ...) of a classic group,
    /// the server assignor (`uniform`, `range`) of a consumer group.
    pub protocol: String,
    /// The generation (classic) or group epoch (consumer).
    pub generation: i32,
    pub members: Vec<GroupMember>,
    /// Every partition the group committed an offset for or a member
    /// holds, by topic and partition.
    pub partitions: Vec<GroupPartition>,
    /// The sum of the known lags.
    pub lag_total: i64,
}

/// Where a reset moves the offsets to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetTo {
    /// The first offset still held.
    Earliest,
    /// The high watermark (skip everything there is).
    Latest,
    /// The first record at or after `datetime` (or `timestamp_ms`), else
    /// the high watermark.
    Datetime,
    /// `offset`, clamped to the partition's offsets.
    Offset,
    /// The committed offset (the high watermark if none) plus `shift_by`,
    /// clamped to the partition's offsets.
    ShiftBy,
}

/// Partitions of a topic to reset: all of them when `partitions` is
/// absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetTopic {
    pub topic: String,
    #[serde(default)]
    pub partitions: Option<Vec<i32>>,
}

/// `POST /v1/groups/{group}/offsets/reset`: a dry run unless `execute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetOffsets {
    pub to: ResetTo,
    /// For `to: offset`.
    #[serde(default)]
    pub offset: Option<i64>,
    /// For `to: datetime`: RFC 3339, e.g. `2026-01-31T12:00:00Z`.
    #[serde(default)]
    pub datetime: Option<String>,
    /// For `to: datetime`, instead of `datetime`: ms since the Unix epoch.
    #[serde(default)]
    pub timestamp_ms: Option<i64>,
    /// For `to: shift_by`: how far to move (negative: back).
    #[serde(default)]
    pub shift_by: Option<i64>,
    /// Which partitions; empty: every partition the group committed.
    #[serde(default)]
    pub topics: Vec<ResetTopic>,
    /// Commit the new offsets; without it nothing is written.
    #[serde(default)]
    pub execute: bool,
}

/// One partition of a reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResetPartition {
    pub topic: String,
    pub partition: i32,
    /// The committed offset before the reset (`null`: none).
    pub current_offset: Option<i64>,
    pub new_offset: i64,
    pub start_offset: i64,
    pub end_offset: i64,
}

/// The plan of a reset, or what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResetResult {
    pub group: String,
    /// Whether the new offsets were committed (durably).
    pub executed: bool,
    pub partitions: Vec<ResetPartition>,
}

/// A stream's settings, enforced on reads (`GET`/`PUT
/// /v1/streams/{stream}/metadata`); absent fields are unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamMetadata {
    /// Events older than this many milliseconds read as gone.
    #[serde(default)]
    pub max_age_ms: Option<u64>,
    /// Only the newest this many events can be read (at least 1).
    #[serde(default)]
    pub max_count: Option<u64>,
    /// Events with a lower version read as gone.
    #[serde(default)]
    pub truncate_before: Option<u64>,
}

/// `PUT /v1/streams/{stream}/snapshot`: an aggregate's state as of a
/// version of its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotIn {
    /// The version of the last event the state includes.
    pub version: u64,
    /// The snapshot's type, for the reader to pick a decoder.
    #[serde(rename = "type")]
    pub snapshot_type: String,
    /// The state (stored as its JSON text).
    pub data: Value,
}

/// A saved snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub stream: String,
    pub version: u64,
    #[serde(rename = "type")]
    pub snapshot_type: String,
    /// The state as JSON when it is JSON, else a string of base64.
    pub data: Value,
    pub recorded: String,
    pub recorded_ms: i64,
}

/// `GET /v1/streams/{stream}/snapshot`: the newest snapshot and the events
/// after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Loaded {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<Event>,
}

/// `GET /v1/schema-validation/categories`: the stream categories whose
/// appends are validated against the schema registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidatedCategories {
    pub categories: Vec<String>,
}

/// One category's validation on write: whether each event appended to a
/// stream `<category>-…` must match the schema of subject
/// `<category>-<event type>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CategoryValidation {
    #[schema(example = "order")]
    pub category: String,
    pub enabled: bool,
}
