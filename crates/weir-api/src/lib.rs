//! `weir-api`: the request and response bodies of Weir's HTTP/JSON API
//! (`/v1/...`), as serde types with OpenAPI schemas. The server
//! (`weir-http`) and clients (the CLI, later the SDK's remote mode) share
//! them; the server converts to the core crates' types at its edge.
//!
//! Unknown fields in request bodies are refused by name
//! (`deny_unknown_fields`), so a typo is a 400, not a silently ignored
//! setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
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
}

/// `POST /v1/topics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    pub name: String,
    /// Partitions [default: the broker's default].
    #[serde(default)]
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
}

/// `POST /v1/streams/{stream}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Append {
    /// `"any"`, `"no_stream"`, `"exists"`, or the stream's last version.
    #[schema(value_type = Object)]
    pub expected_version: Value,
    pub events: Vec<EventIn>,
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
