//! The saga events: their types, bodies (JSON data) and the stream a
//! saga's events live in.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The category of every saga stream (`saga-<id>`).
pub const CATEGORY: &str = "saga";

/// The stream of saga `id`.
pub fn stream_of(id: &str) -> String {
    format!("{CATEGORY}-{id}")
}

/// The idempotency key of step `step` of saga `id`, for its action
/// (`compensation` false) or its compensation: the same for every attempt,
/// so a downstream applies a retried call once.
pub fn idempotency_key(id: &str, step: &str, compensation: bool) -> String {
    let what = if compensation { "compensate" } else { "act" };
    format!("saga/{id}/{step}/{what}")
}

/// How a step's action or compensation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// May succeed if tried again.
    Transient,
    /// Will not succeed; the downstream refused it.
    Permanent,
    /// No answer before the step's timeout: it may or may not have been
    /// applied (so it is compensated).
    Timeout,
}

/// A saga event's body, by event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventBody {
    #[serde(rename = "SagaStarted")]
    Started {
        saga_type: String,
        /// The saga's input, as its definition encodes it.
        input: Value,
        steps: Vec<String>,
        /// When the whole saga must be done by, ms since the Unix epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline_ms: Option<i64>,
    },
    #[serde(rename = "SagaStepStarted")]
    StepStarted {
        step: usize,
        attempt: u32,
        idempotency_key: String,
        /// The step's timeout: no answer by then is a timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_ms: Option<i64>,
    },
    #[serde(rename = "SagaStepSucceeded")]
    StepSucceeded { step: usize, output: Value },
    #[serde(rename = "SagaStepFailed")]
    StepFailed {
        step: usize,
        error: String,
        kind: ErrorKind,
        /// When it is tried again; `None`: it is not (the saga compensates).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at_ms: Option<i64>,
    },
    #[serde(rename = "SagaCompensating")]
    Compensating { reason: String },
    #[serde(rename = "SagaCompensationStarted")]
    CompensationStarted {
        step: usize,
        attempt: u32,
        idempotency_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_ms: Option<i64>,
    },
    #[serde(rename = "SagaCompensationSucceeded")]
    CompensationSucceeded { step: usize },
    #[serde(rename = "SagaCompensationFailed")]
    CompensationFailed {
        step: usize,
        error: String,
        kind: ErrorKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at_ms: Option<i64>,
    },
    /// A compensation kept failing: an operator must look.
    #[serde(rename = "SagaParked")]
    Parked { step: usize, reason: String },
    #[serde(rename = "SagaResumed")]
    Resumed { by: String },
    #[serde(rename = "SagaCompleted")]
    Completed {},
    /// Every step that had (or may have had) an effect was compensated.
    #[serde(rename = "SagaCompensated")]
    Compensated {},
}

/// Every saga event type.
pub const SAGA_EVENT_TYPES: [&str; 12] = [
    "SagaStarted",
    "SagaStepStarted",
    "SagaStepSucceeded",
    "SagaStepFailed",
    "SagaCompensating",
    "SagaCompensationStarted",
    "SagaCompensationSucceeded",
    "SagaCompensationFailed",
    "SagaParked",
    "SagaResumed",
    "SagaCompleted",
    "SagaCompensated",
];

impl EventBody {
    /// The event type of this body.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Started { .. } => "SagaStarted",
            Self::StepStarted { .. } => "SagaStepStarted",
            Self::StepSucceeded { .. } => "SagaStepSucceeded",
            Self::StepFailed { .. } => "SagaStepFailed",
            Self::Compensating { .. } => "SagaCompensating",
            Self::CompensationStarted { .. } => "SagaCompensationStarted",
            Self::CompensationSucceeded { .. } => "SagaCompensationSucceeded",
            Self::CompensationFailed { .. } => "SagaCompensationFailed",
            Self::Parked { .. } => "SagaParked",
            Self::Resumed { .. } => "SagaResumed",
            Self::Completed {} => "SagaCompleted",
            Self::Compensated {} => "SagaCompensated",
        }
    }

    /// The event type and its JSON data, serialized once: the tagged
    /// form `{"type":"<type>","data":<data>}` with its frame cut off.
    pub fn encode(&self) -> (&'static str, Vec<u8>) {
        let ty = self.event_type();
        let tagged = serde_json::to_vec(self).unwrap_or_default();
        let head = tagged_head(ty);
        let data = if tagged.starts_with(head.as_bytes()) && tagged.ends_with(b"}") {
            tagged[head.len()..tagged.len() - 1].to_vec()
        } else {
            // Not the frame serde_json writes for this enum: take the data
            // out of the parsed form instead.
            let v: Value = serde_json::from_slice(&tagged).unwrap_or(Value::Null);
            serde_json::to_vec(v.get("data").unwrap_or(&Value::Null)).unwrap_or_default()
        };
        (ty, data)
    }

    /// The body of an event of `event_type` with `data`; `None` for a type
    /// that is not a saga event.
    pub fn decode(event_type: &str, data: &[u8]) -> Option<Result<Self, String>> {
        if !SAGA_EVENT_TYPES.contains(&event_type) {
            return None;
        }
        // The data is checked to be one JSON value before it is framed.
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(data) {
            return Some(Err(format!("{event_type}: {e}")));
        }
        let head = tagged_head(event_type);
        let mut tagged = Vec::with_capacity(head.len() + data.len() + 1);
        tagged.extend_from_slice(head.as_bytes());
        tagged.extend_from_slice(data);
        tagged.push(b'}');
        Some(serde_json::from_slice(&tagged).map_err(|e| format!("{event_type}: {e}")))
    }
}

/// The start of a body's tagged JSON form, up to its data.
fn tagged_head(event_type: &str) -> String {
    format!("{{\"type\":\"{event_type}\",\"data\":")
}

/// A saga event as read from its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaEvent {
    /// Its version in the saga's stream.
    pub version: u64,
    /// When the store recorded it, ms since the Unix epoch.
    pub recorded_ms: i64,
    pub body: EventBody,
}
