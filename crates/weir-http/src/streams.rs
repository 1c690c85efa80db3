//! Event streams over HTTP: append with an expected version (409 with both
//! versions on a conflict), read a stream forward or backward, and read all
//! events, a category or an event type in global order, each paged with a
//! link to the next page.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use weir_api::{Append, Appended, Event, Events, Loaded, Snapshot, SnapshotIn, StreamMetadata};
use weir_store::{Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent};

use crate::problem::{ApiError, Body};
use crate::trace::RequestTrace;
use crate::{AppState, blocking, query_number};
use tracing::Instrument as _;

fn expected_version(v: &Value) -> Result<ExpectedVersion, ApiError> {
    Ok(match v {
        Value::String(s) if s == "any" => ExpectedVersion::Any,
        Value::String(s) if s == "no_stream" => ExpectedVersion::NoStream,
        Value::String(s) if s == "exists" => ExpectedVersion::Exists,
        Value::Number(n) if n.as_u64().is_some() => {
            ExpectedVersion::Exact(n.as_u64().expect("checked"))
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "expected_version is \"any\", \"no_stream\", \"exists\" or a version, not {other}"
            )));
        }
    })
}

pub(crate) fn to_api(e: RecordedEvent) -> Event {
    let json = |bytes: &[u8]| -> Value {
        serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(B64.encode(bytes)))
    };
    let metadata = (!e.metadata.is_empty()).then(|| json(&e.metadata));
    let causation_id = metadata
        .as_ref()
        .and_then(|m| m.get("causationid"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Event {
        correlation_id: weir_store::correlation_of(&e.metadata).map(|c| c.into_owned()),
        causation_id,
        traceparent: e.trace.as_ref().map(|t| t.parent.to_string()),
        tracestate: e.trace.as_ref().and_then(|t| t.state()).map(str::to_owned),
        data: json(&e.data),
        metadata,
        recorded: weir_store::rfc3339(e.recorded_ms),
        stream: e.stream,
        version: e.version,
        position: e.position,
        id: e.id,
        event_type: e.event_type,
        content_type: e.content_type,
        recorded_ms: e.recorded_ms,
    }
}

/// Appends events to a stream; answers once they are durable.
#[utoipa::path(post, path = "/v1/streams/{stream}", tag = "streams",
    params(("stream" = String, Path, example = "account-1")), request_body = Append,
    responses((status = 200, body = Appended), (status = 409, body = weir_api::Problem),
        (status = "4XX", body = weir_api::Problem)))]
pub async fn append(
    State(app): State<Arc<AppState>>,
    Path(stream): Path<String>,
    request_trace: Option<Extension<RequestTrace>>,
    Body(req): Body<Append>,
) -> Result<Json<Appended>, ApiError> {
    let expected = expected_version(&req.expected_version)?;
    // An event without a trace context of its own is recorded in the
    // request's (its `traceparent` header), if it had a valid one.
    let request_trace = request_trace.and_then(|Extension(RequestTrace(t))| t);
    let events = req
        .events
        .into_iter()
        .map(|e| {
            let trace = match (&e.traceparent, &e.tracestate) {
                (None, None) => request_trace.clone(),
                (Some(tp), state) => Some(
                    weir_store::TraceContext::parse(tp, state.as_deref()).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "traceparent {tp:?} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"
                        ))
                    })?,
                ),
                (None, Some(_)) => {
                    return Err(ApiError::bad_request(
                        "tracestate is given without a traceparent",
                    ));
                }
            };
            Ok(NewEvent {
                id: e.id.unwrap_or_else(|| app.new_event_id()),
                event_type: e.event_type,
                data: e.data.to_string().into_bytes(),
                content_type: "application/json".to_owned(),
                metadata: e
                    .metadata
                    .map(|m| m.to_string().into_bytes())
                    .unwrap_or_default(),
                trace,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    // Written on this worker (a page-cache write); the wait for the fsync
    // round holds no thread.
    let span = tracing::info_span!("store.append", stream = %stream, events = events.len());
    let done = app
        .store
        .append_async(&stream, expected, &events)
        .instrument(span)
        .await?;
    Ok(Json(Appended {
        first_version: done.first_version,
        last_version: done.last_version,
        first_position: done.first_position,
        last_position: done.last_position,
    }))
}

fn direction(q: &HashMap<String, String>) -> Result<Direction, ApiError> {
    match q.get("direction").map(String::as_str) {
        None | Some("forward") => Ok(Direction::Forward),
        Some("backward") => Ok(Direction::Backward),
        Some(other) => Err(ApiError::bad_request(format!(
            "direction is forward or backward, not {other:?}"
        ))),
    }
}

/// The link to the page after `events`, if it was full.
fn next_link(
    base: &str,
    events: &[Event],
    limit: usize,
    direction: Direction,
    key: impl Fn(&Event) -> u64,
) -> Option<String> {
    let last = events.last().filter(|_| events.len() >= limit)?;
    let from = match direction {
        Direction::Forward => key(last) + 1,
        Direction::Backward => key(last).checked_sub(1)?,
    };
    let dir = match direction {
        Direction::Forward => "forward",
        Direction::Backward => "backward",
    };
    Some(format!("{base}?from={from}&direction={dir}&limit={limit}"))
}

/// Reads a stream (`?from=` version, `?direction=forward|backward`,
/// `?limit=`).
#[utoipa::path(get, path = "/v1/streams/{stream}", tag = "streams",
    params(("stream" = String, Path, example = "account-1"), ("from" = Option<u64>, Query),
        ("direction" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Events), (status = 404, body = weir_api::Problem),
        (status = "4XX", body = weir_api::Problem)))]
pub async fn read_stream(
    State(app): State<Arc<AppState>>,
    Path(stream): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Events>, ApiError> {
    let direction = direction(&q)?;
    let default_from = match direction {
        Direction::Forward => 0,
        Direction::Backward => u64::MAX,
    };
    let from = query_number(&q, "from")?.unwrap_or(default_from);
    let limit = query_number(&q, "limit")?
        .unwrap_or(100)
        .clamp(1, app.limits.page_max);
    let store = app.store.clone();
    let name = stream.clone();
    let events = blocking(move || store.read_stream(&name, from, direction, limit)).await?;
    let events: Vec<Event> = events.into_iter().map(to_api).collect();
    let next = next_link(
        &format!("/v1/streams/{stream}"),
        &events,
        limit,
        direction,
        |e| e.version,
    );
    Ok(Json(Events { events, next }))
}

/// Which global-order read.
enum Scope {
    All,
    Category(String),
    Type(String),
}

async fn read_global(
    app: Arc<AppState>,
    scope: Scope,
    q: HashMap<String, String>,
) -> Result<Json<Events>, ApiError> {
    let direction = direction(&q)?;
    let default_from = match direction {
        Direction::Forward => 0,
        Direction::Backward => u64::MAX,
    };
    let from = query_number(&q, "from")?.unwrap_or(default_from);
    let limit = query_number(&q, "limit")?
        .unwrap_or(100)
        .clamp(1, app.limits.page_max);
    let base = match &scope {
        Scope::All => "/v1/all".to_owned(),
        Scope::Category(c) => format!("/v1/categories/{c}"),
        Scope::Type(t) => format!("/v1/types/{t}"),
    };
    let store = app.store.clone();
    let events = blocking(move || match scope {
        Scope::All => store.read_all(from, direction, limit),
        Scope::Category(c) => store.read_category(&c, from, direction, limit),
        Scope::Type(t) => store.read_type(&t, from, direction, limit),
    })
    .await?;
    let events: Vec<Event> = events.into_iter().map(to_api).collect();
    let next = next_link(&base, &events, limit, direction, |e| e.position);
    Ok(Json(Events { events, next }))
}

/// Reads all events in global order (`?from=` position).
#[utoipa::path(get, path = "/v1/all", tag = "streams",
    params(("from" = Option<u64>, Query), ("direction" = Option<String>, Query),
        ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Events), (status = "4XX", body = weir_api::Problem)))]
pub async fn read_all(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Events>, ApiError> {
    read_global(app, Scope::All, q).await
}

/// Reads a category's events (streams `category-…`) in global order.
#[utoipa::path(get, path = "/v1/categories/{category}", tag = "streams",
    params(("category" = String, Path, example = "account"), ("from" = Option<u64>, Query),
        ("direction" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Events), (status = "4XX", body = weir_api::Problem)))]
pub async fn read_category(
    State(app): State<Arc<AppState>>,
    Path(category): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Events>, ApiError> {
    read_global(app, Scope::Category(category), q).await
}

/// Reads the events of one type in global order.
#[utoipa::path(get, path = "/v1/types/{event_type}", tag = "streams",
    params(("event_type" = String, Path, example = "Deposited"), ("from" = Option<u64>, Query),
        ("direction" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Events), (status = "4XX", body = weir_api::Problem)))]
pub async fn read_type(
    State(app): State<Arc<AppState>>,
    Path(event_type): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Events>, ApiError> {
    read_global(app, Scope::Type(event_type), q).await
}

/// Reads one correlation's events (`?from=` position, `?limit=`) in
/// global order, across streams: the events whose metadata has a string
/// `correlationid` (the SDK writes one on every event; sagas use their
/// id). Each carries its `causation_id`, so a client can build the tree by
/// causation. An id no event names reads as an empty page (as an unknown
/// type or category does), not as 404.
#[utoipa::path(get, path = "/v1/correlations/{correlation_id}", tag = "streams",
    params(("correlation_id" = String, Path, example = "7d0c9a52-4f0e-4b4e-9a43-2a4c1f0e8d11"),
        ("from" = Option<u64>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Events), (status = "4XX", body = weir_api::Problem)))]
pub async fn read_correlation(
    State(app): State<Arc<AppState>>,
    Path(correlation_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Events>, ApiError> {
    weir_store::validate_correlation_id(&correlation_id)?;
    let from = query_number(&q, "from")?.unwrap_or(0);
    let limit = query_number(&q, "limit")?
        .unwrap_or(100)
        .clamp(1, app.limits.page_max);
    let store = app.store.clone();
    let id = correlation_id.clone();
    let events = blocking(move || store.read_correlation(&id, from, limit)).await?;
    let events: Vec<Event> = events.into_iter().map(to_api).collect();
    let next = events.last().filter(|_| events.len() >= limit).map(|last| {
        format!(
            "/v1/correlations/{}?from={}&limit={limit}",
            encode_segment(&correlation_id),
            last.position + 1
        )
    });
    Ok(Json(Events { events, next }))
}

/// A path segment percent-encoded (all but RFC 3986's unreserved
/// characters), for links.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Deletes a stream: soft (`?tombstone=true` for good), with an optional
/// `?expected_version=`.
#[utoipa::path(delete, path = "/v1/streams/{stream}", tag = "streams",
    params(("stream" = String, Path, example = "account-1"), ("tombstone" = Option<bool>, Query),
        ("expected_version" = Option<String>, Query)),
    responses((status = 204), (status = "4XX", body = weir_api::Problem)))]
pub async fn delete_stream(
    State(app): State<Arc<AppState>>,
    Path(stream): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let expected = match q.get("expected_version") {
        None => ExpectedVersion::Any,
        Some(v) => expected_version(
            &v.parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(v.clone())),
        )?,
    };
    let tombstone = match q.get("tombstone").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "tombstone is true or false, not {other:?}"
            )));
        }
    };
    let store = app.store.clone();
    blocking(move || {
        if tombstone {
            store.tombstone_stream(&stream, expected)
        } else {
            store.delete_stream(&stream, expected)
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A stream's settings (`max_age_ms`, `max_count`, `truncate_before`);
/// all unset for a stream that never had any.
#[utoipa::path(get, path = "/v1/streams/{stream}/metadata", tag = "streams",
    params(("stream" = String, Path, example = "account-1")),
    responses((status = 200, body = StreamMetadata), (status = "4XX", body = weir_api::Problem)))]
pub async fn get_metadata(
    State(app): State<Arc<AppState>>,
    Path(stream): Path<String>,
) -> Result<Json<StreamMetadata>, ApiError> {
    let store = app.store.clone();
    let m = blocking(move || {
        weir_store::validate_stream(&stream)?;
        store.stream_metadata(&stream)
    })
    .await?;
    Ok(Json(StreamMetadata {
        max_age_ms: m.max_age_ms,
        max_count: m.max_count,
        truncate_before: m.truncate_before,
    }))
}

/// Replaces a stream's settings, enforced on every read from now on
/// (absent fields are unset); answers once they are durable.
#[utoipa::path(put, path = "/v1/streams/{stream}/metadata", tag = "streams",
    params(("stream" = String, Path, example = "account-1")), request_body = StreamMetadata,
    responses((status = 200, body = StreamMetadata), (status = "4XX", body = weir_api::Problem)))]
pub async fn put_metadata(
    State(app): State<Arc<AppState>>,
    Path(stream): Path<String>,
    Body(req): Body<StreamMetadata>,
) -> Result<Json<StreamMetadata>, ApiError> {
    let store = app.store.clone();
    let settings = weir_store::StreamMetadata {
        max_age_ms: req.max_age_ms,
        max_count: req.max_count,
        truncate_before: req.truncate_before,
    };
    blocking(move || store.set_stream_metadata(&stream, &settings)).await?;
    Ok(Json(req))
}

/// Saves an aggregate's state as of a version of the stream (at most its
/// last version); answers once it is durable.
#[utoipa::path(put, path = "/v1/streams/{stream}/snapshot", tag = "streams",
    params(("stream" = String, Path, example = "account-1")), request_body = SnapshotIn,
    responses((status = 204), (status = 409, body = weir_api::Problem),
        (status = "4XX", body = weir_api::Problem)))]
pub async fn save_snapshot(
    State(app): State<Arc<AppState>>,
    Path(stream): Path<String>,
    Body(req): Body<SnapshotIn>,
) -> Result<StatusCode, ApiError> {
    let store = app.store.clone();
    let data = req.data.to_string().into_bytes();
    blocking(move || store.save_snapshot(&stream, req.version, &req.snapshot_type, data)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Loads an aggregate: the stream's newest snapshot (if readers may still
/// see what it stands for) and the events after it (`?limit=`, default
/// and most: the page limit).
#[utoipa::path(get, path = "/v1/streams/{stream}/snapshot", tag = "streams",
    params(("stream" = String, Path, example = "account-1"), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Loaded), (status = "4XX", body = weir_api::Problem)))]
pub async fn load(
    State(app): State<Arc<AppState>>,
    Path(stream): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Loaded>, ApiError> {
    let limit = query_number(&q, "limit")?
        .unwrap_or(app.limits.page_max)
        .clamp(1, app.limits.page_max);
    let store = app.store.clone();
    let loaded = blocking(move || {
        weir_store::validate_stream(&stream)?;
        store.load(&stream, limit)
    })
    .await?;
    Ok(Json(Loaded {
        snapshot: loaded.snapshot.map(|s| Snapshot {
            data: serde_json::from_slice(&s.data)
                .unwrap_or_else(|_| Value::String(B64.encode(&s.data))),
            recorded: weir_store::rfc3339(s.recorded_ms),
            stream: s.stream,
            version: s.version,
            snapshot_type: s.snapshot_type,
            recorded_ms: s.recorded_ms,
        }),
        events: loaded.events.into_iter().map(to_api).collect(),
    }))
}

impl AppState {
    /// An id for an event that came without one: unique within this
    /// server's life and across restarts (it starts from the clock).
    pub(crate) fn new_event_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("weir-{:x}-{n}", self.started_ms)
    }
}
