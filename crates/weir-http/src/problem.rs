//! Errors as RFC 9457 problems: the one table from domain errors to an
//! HTTP status and a stable code (and, where the Kafka protocol has the same
//! failure, its Kafka error code), and the extractor that turns a bad
//! request body into a 4xx problem instead of axum's plain-text rejection.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use weir_api::Problem;
use weir_broker::BrokerError;
use weir_deadletter::DeadLetterError;
use weir_groups::GroupError;
use weir_log::LogError;
use weir_sagas::SagaError;
use weir_store::StoreError;
use weir_store::persistent::SubscriptionError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub kafka_error_code: Option<i16>,
    pub expected_version: Option<String>,
    pub actual_version: Option<serde_json::Value>,
    /// The event of an append it is about (index, id).
    pub event: Option<Box<(usize, String)>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            kafka_error_code: None,
            expected_version: None,
            actual_version: None,
            event: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// The server holds `sse_clients_max` live streams already.
    pub fn too_many_live_clients(clients_max: usize) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_live_clients",
            format!("the server serves sse_clients_max {clients_max} live streams already"),
        )
    }
}

/// The table: dead-letter errors (a broker error keeps its own row).
impl From<DeadLetterError> for ApiError {
    fn from(e: DeadLetterError) -> Self {
        use DeadLetterError as D;
        let (status, code) = match e {
            D::Broker(b) => return b.into(),
            D::UnknownOrigin { .. } | D::UnknownOriginPartition { .. } => {
                (StatusCode::NOT_FOUND, "unknown_origin")
            }
            D::NoSuchRecord { .. } => (StatusCode::NOT_FOUND, "no_such_record"),
            D::InternalOrigin { .. } | D::InvalidSuffix { .. } | D::NotDeadLetterTopic { .. } => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            D::PartitionMismatch { .. } => (StatusCode::CONFLICT, "partition_mismatch"),
            D::ReplayStopped { .. } => (StatusCode::CONFLICT, "replay_stopped"),
            D::Unreadable { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
        };
        Self::new(status, code, e.to_string())
    }
}

/// The table: broker errors.
impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        use BrokerError as B;
        let (status, code) = match &e {
            B::UnknownTopic { .. } => (StatusCode::NOT_FOUND, "unknown_topic"),
            B::UnknownPartition { .. } => (StatusCode::NOT_FOUND, "unknown_partition"),
            B::TopicAlreadyExists { .. } => (StatusCode::CONFLICT, "topic_already_exists"),
            B::InvalidTopic { .. } => (StatusCode::BAD_REQUEST, "invalid_topic"),
            B::InvalidPartitions { .. } => (StatusCode::BAD_REQUEST, "invalid_partitions"),
            B::InvalidReplicationFactor { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_replication_factor")
            }
            B::InvalidConfig { .. } => (StatusCode::BAD_REQUEST, "invalid_config"),
            B::PolicyViolation { .. } => (StatusCode::FORBIDDEN, "policy_violation"),
            B::MessageTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "message_too_large"),
            B::CorruptMessage { .. }
            | B::InvalidRecords { .. }
            | B::ControlRecordsRefused { .. } => (StatusCode::BAD_REQUEST, "invalid_records"),
            B::KeyRequired { .. } => (StatusCode::BAD_REQUEST, "key_required"),
            B::RecordRefused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "schema_validation"),
            B::InvalidTimestamp { .. } => (StatusCode::BAD_REQUEST, "invalid_timestamp"),
            B::OutOfOrderSequence { .. }
            | B::InvalidProducerEpoch { .. }
            | B::UnknownProducerId { .. } => (StatusCode::BAD_REQUEST, "producer_state"),
            B::DeleteRecordsOutOfRange { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "offset_out_of_range")
            }
            B::Log(l) => log_row(l),
            B::Registry { .. } => (StatusCode::SERVICE_UNAVAILABLE, "storage_error"),
        };
        let mut out = Self::new(status, code, e.to_string());
        out.kafka_error_code = Some(weir_kafka::for_broker_error(&e).code());
        out
    }
}

/// The table: log errors (inside broker errors). Most are the disk's; a
/// few are the request's.
fn log_row(e: &LogError) -> (StatusCode, &'static str) {
    use weir_log::BatchError;
    match e {
        LogError::OffsetOutOfRange { .. } | LogError::StartPastHighWatermark { .. } => {
            (StatusCode::RANGE_NOT_SATISFIABLE, "offset_out_of_range")
        }
        LogError::Batch(BatchError::TooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "message_too_large")
        }
        LogError::Batch(_) => (StatusCode::BAD_REQUEST, "invalid_records"),
        LogError::InvalidConfig { .. } => (StatusCode::BAD_REQUEST, "invalid_config"),
        LogError::InvalidName { .. } => (StatusCode::BAD_REQUEST, "invalid_topic"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "storage_error"),
    }
}

/// The table: consumer group errors.
impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> Self {
        use GroupError as G;
        let e = match e {
            G::Broker(b) => return Self::from(b),
            e => e,
        };
        let (status, code) = match &e {
            G::InvalidGroupId | G::GroupIdTooLong { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_group_id")
            }
            G::GroupNotFound { .. } | G::NotConsumerGroup { .. } | G::WrongGroupType { .. } => {
                (StatusCode::NOT_FOUND, "group_not_found")
            }
            G::NonEmptyGroup { .. } => (StatusCode::CONFLICT, "group_not_empty"),
            G::SubscribedToTopic { .. } => (StatusCode::CONFLICT, "group_subscribed_to_topic"),
            G::UnknownMember { .. }
            | G::MemberIdRequired { .. }
            | G::IllegalGeneration { .. }
            | G::RebalanceInProgress { .. }
            | G::FencedInstance { .. }
            | G::FencedMemberEpoch { .. }
            | G::StaleMemberEpoch { .. }
            | G::UnreleasedInstanceId { .. } => (StatusCode::CONFLICT, "member_state"),
            G::MetadataTooLarge { .. } | G::TooManyPartitions { .. } | G::CommitTooLarge { .. } => {
                (StatusCode::BAD_REQUEST, "commit_too_large")
            }
            G::InvalidSessionTimeout { .. }
            | G::InconsistentProtocol { .. }
            | G::UnsupportedAssignor { .. }
            | G::InvalidRegex { .. }
            | G::InvalidRequest { .. }
            | G::InvalidConfig { .. } => (StatusCode::BAD_REQUEST, "invalid_group_request"),
            G::GroupFull { .. } | G::TooManyGroups { .. } | G::TooManyOffsets { .. } => {
                (StatusCode::FORBIDDEN, "group_limit")
            }
            // (Broker errors took their own row above.)
            G::Broker(_) | G::Corrupt { .. } | G::Log(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_error")
            }
        };
        let mut out = Self::new(status, code, e.to_string());
        out.kafka_error_code = Some(weir_kafka::for_group_error(&e).code());
        out
    }
}

/// The table: event store errors.
/// The table: persistent-subscription errors (store and engine errors
/// keep their own rows).
impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        use SubscriptionError as S;
        let (status, code) = match e {
            S::Store(e) => return e.into(),
            S::Queue(e) => return e.into(),
            S::NotFound { .. } => (StatusCode::NOT_FOUND, "subscription_not_found"),
            S::Exists { .. } => (StatusCode::CONFLICT, "subscription_exists"),
            S::NotHeld { .. } => (StatusCode::CONFLICT, "event_not_held"),
            S::InvalidTarget { .. }
            | S::InvalidSettings { .. }
            | S::InvalidName { .. }
            | S::InvalidAckId { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            S::TooManyGroups { .. } | S::TooManyConsumers { .. } => {
                (StatusCode::BAD_REQUEST, "subscription_limit")
            }
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use StoreError as S;
        let e = match e {
            S::Broker(b) => return Self::from(b),
            e => e,
        };
        let (status, code) = match &e {
            S::WrongExpectedVersion { .. } => (StatusCode::CONFLICT, "wrong_expected_version"),
            S::IdempotencyConflict { .. } => (StatusCode::CONFLICT, "idempotency_conflict"),
            S::StreamNotFound { .. } => (StatusCode::NOT_FOUND, "stream_not_found"),
            S::StreamDeleted { .. } => (StatusCode::GONE, "stream_deleted"),
            S::InvalidStream { .. } => (StatusCode::BAD_REQUEST, "invalid_stream"),
            S::InvalidEvent { .. } => (StatusCode::BAD_REQUEST, "invalid_event"),
            S::SchemaRefused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "schema_validation"),
            S::AppendTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "append_too_large"),
            S::InvalidMetadata { .. } => (StatusCode::BAD_REQUEST, "invalid_metadata"),
            S::InvalidCorrelationId { .. } => (StatusCode::BAD_REQUEST, "invalid_correlation_id"),
            // (Broker errors took their own row above.)
            S::Broker(_) | S::Corrupt { .. } | S::Log(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_error")
            }
        };
        let mut out = Self::new(status, code, e.to_string());
        if let S::WrongExpectedVersion {
            expected, actual, ..
        } = &e
        {
            out.expected_version = Some(expected.to_string());
            out.actual_version = Some(actual.map_or(serde_json::Value::Null, |v| v.into()));
        }
        if let S::SchemaRefused { index, id, .. } = &e {
            out.event = Some(Box::new((*index, id.clone())));
        }
        out
    }
}

/// The table: saga errors.
impl From<SagaError> for ApiError {
    fn from(e: SagaError) -> Self {
        let (status, code) = match &e {
            SagaError::InvalidId { .. } => (StatusCode::BAD_REQUEST, "invalid_saga_id"),
            SagaError::NotParked { .. } => (StatusCode::CONFLICT, "saga_not_parked"),
            // Its events were written, durably, by someone: the request
            // is fine, the saga cannot be read as one.
            SagaError::Malformed { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "saga_malformed"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let problem = Problem {
            kind: format!("urn:weir:problem:{}", self.code),
            title,
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            kafka_error_code: self.kafka_error_code,
            expected_version: self.expected_version,
            actual_version: self.actual_version,
            event_index: self.event.as_ref().map(|e| e.0),
            event_id: self.event.map(|e| e.1),
        };
        let mut response = (self.status, Json(problem)).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// A JSON body whose rejections are problems: malformed JSON, a wrong
/// shape or an unknown field is a 400 naming it, a body over the limit a
/// 413, a missing or wrong content type a 415.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

fn rejected(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid_body",
    };
    ApiError::new(status, code, rejection.body_text())
}
