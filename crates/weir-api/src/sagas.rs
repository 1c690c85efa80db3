//! The bodies of the saga endpoints (`/v1/sagas/...`): sagas listed with
//! their summary, one saga with its steps and events, and an operator's
//! resume of a parked saga.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A saga in a list: where it is and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SagaSummary {
    pub id: String,
    /// The saga's type (its definition's name).
    pub saga_type: String,
    /// `running`, `compensating`, `parked`, `completed` or `compensated`.
    pub status: String,
    /// The step it is at (running: the first not done; compensating or
    /// parked: the next to compensate); absent once it ended.
    pub step: Option<String>,
    /// How many steps it has.
    pub steps: u32,
    /// Why it is parked, or why it compensates.
    pub reason: Option<String>,
    /// When it started and when its last event was recorded (Unix ms).
    pub started_ms: i64,
    pub updated_ms: i64,
    /// The version of its stream's last event (`saga-<id>`).
    pub version: u64,
}

/// `GET /v1/sagas`: sagas in the order they started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SagaList {
    pub sagas: Vec<SagaSummary>,
    /// `SagaStarted` events in saga streams whose events do not make a
    /// saga (written by hand, or by a newer runner), with the reason.
    pub not_sagas: Vec<NotSaga>,
    /// The link to the next page, if there may be more.
    pub next: Option<String>,
}

/// A saga stream that could not be read as a saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotSaga {
    pub stream: String,
    /// The global position of its `SagaStarted` event.
    pub position: u64,
    pub reason: String,
}

/// One step of a saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SagaStep {
    pub name: String,
    /// `not_started`, `started`, `retrying`, `succeeded` or `failed`.
    pub action: String,
    /// The same words, or `not_needed` (the saga compensates and this
    /// step had no effect) or `none` (the saga does not compensate).
    pub compensation: String,
    /// Times the action was started.
    pub attempts: u32,
    /// Times the compensation was started.
    pub compensation_attempts: u32,
    /// The last error of the action or the compensation.
    pub last_error: Option<String>,
}

/// One event of a saga's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SagaEventInfo {
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u64,
    /// When the store recorded it (RFC 3339, UTC).
    pub time: String,
    pub recorded_ms: i64,
    /// Its data (JSON; other bytes as a base64 string).
    pub data: Value,
    /// The W3C trace context it was written in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// `GET /v1/sagas/{id}`: a saga, its steps and its events in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SagaDetail {
    pub saga: SagaSummary,
    pub steps: Vec<SagaStep>,
    pub events: Vec<SagaEventInfo>,
    /// The saga's timeline across services: its correlation's events
    /// (`/v1/correlations/{id}`; the saga id is the correlation id of
    /// everything it causes).
    pub timeline: String,
}

/// `POST /v1/sagas/{id}/resume`: an operator resumes a parked saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeSaga {
    /// Who resumes it (recorded in `SagaResumed`): 1 to 200 characters, no
    /// control characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1f\x7f]+$")]
    pub by: String,
}
