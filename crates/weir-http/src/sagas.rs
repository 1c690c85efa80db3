//! Sagas over HTTP, for operators: list them in the order they started
//! (found through the store's event-type index, `SagaStarted`, never a
//! scan of all events), show one with its steps and events, and resume a
//! parked one. The server runs no saga: it reads saga streams, folds them
//! with `weir-sagas`, and appends `SagaResumed`; the SDK's runner that
//! has the saga's type follows the `saga` category and drives it on.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use utoipa::OpenApi;
use weir_api::{NotSaga, ResumeSaga, SagaDetail, SagaEventInfo, SagaList, SagaStep, SagaSummary};
use weir_sagas::{EventBody, SagaError, SagaEvent, SagaState, Status, Summary};
use weir_store::{
    Direction, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError,
};

use crate::auth::{Caller, may_describe};
use crate::problem::{ApiError, Body};
use crate::{AppState, ProblemMediaType, blocking, query_number};
use weir_auth::acl::ResourceType;

/// The event type whose index lists sagas.
const STARTED: &str = "SagaStarted";
/// Most events a saga's stream may have to be listed, shown or resumed
/// here (a saga of 64 steps retried often stays far below).
pub const SAGA_EVENTS_MAX: usize = 10_000;
/// Longest operator name in `SagaResumed`, in characters.
pub const RESUMED_BY_CHARS_MAX: usize = 200;

/// The saga routes, merged into the API's router.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sagas", get(list))
        .route("/v1/sagas/{id}", get(show))
        .route("/v1/sagas/{id}/resume", post(resume))
}

/// The saga routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list, show, resume),
    components(schemas(weir_api::Problem)),
    modifiers(&ProblemMediaType)
)]
pub(crate) struct SagasApi;

/// A saga's stream as read: every event, and the saga events decoded.
struct Loaded {
    recorded: Vec<RecordedEvent>,
    events: Vec<SagaEvent>,
}

/// Reads saga `id`'s stream; `None` if it has no events (or was deleted).
fn read(store: &EmbeddedStore, id: &str) -> Result<Option<Loaded>, ApiError> {
    let stream = weir_sagas::stream_of(id);
    // One read past the limit says whether the stream is over it.
    let recorded = match store.read_stream(&stream, 0, Direction::Forward, SAGA_EVENTS_MAX + 1) {
        Ok(recorded) => recorded,
        Err(StoreError::StreamNotFound { .. } | StoreError::StreamDeleted { .. }) => {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if recorded.len() > SAGA_EVENTS_MAX {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "saga_too_long",
            format!("saga {id} has more than {SAGA_EVENTS_MAX} events; read its stream {stream}"),
        ));
    }
    if recorded.is_empty() {
        return Ok(None);
    }
    let mut events = Vec::with_capacity(recorded.len());
    for e in &recorded {
        match EventBody::decode(&e.event_type, &e.data) {
            Some(Ok(body)) => events.push(SagaEvent {
                version: e.version,
                recorded_ms: e.recorded_ms,
                body,
            }),
            Some(Err(reason)) => {
                return Err(SagaError::Malformed {
                    id: id.to_owned(),
                    reason: format!("event {} (version {}): {reason}", e.id, e.version),
                }
                .into());
            }
            // Not a saga event: shown, not folded (as the SDK reads it).
            None => {}
        }
    }
    Ok(Some(Loaded { recorded, events }))
}

/// Saga `id`'s events and state, or the problem: 400 for an invalid id,
/// 404 for no such saga, 422 for events that do not make a saga.
fn load(store: &EmbeddedStore, id: &str) -> Result<(Loaded, SagaState), ApiError> {
    weir_sagas::validate_id(id)?;
    let loaded = read(store, id)?
        .ok_or_else(|| ApiError::not_found("saga_not_found", format!("no saga {id}")))?;
    let state = SagaState::fold(id, &loaded.events)?;
    Ok((loaded, state))
}

fn summary_to_api(s: Summary) -> SagaSummary {
    SagaSummary {
        id: s.id,
        saga_type: s.saga_type,
        status: s.status.as_str().to_owned(),
        step: s.step,
        steps: s.steps as u32,
        reason: s.reason,
        started_ms: s.started_ms,
        updated_ms: s.updated_ms,
        version: s.version,
    }
}

fn status_of(word: &str) -> Result<Status, ApiError> {
    [
        Status::Running,
        Status::Compensating,
        Status::Parked,
        Status::Completed,
        Status::Compensated,
    ]
    .into_iter()
    .find(|s| s.as_str() == word)
    .ok_or_else(|| {
        ApiError::bad_request(format!(
            "status is running, compensating, parked, completed or compensated, not {word:?}"
        ))
    })
}

/// What a list call asks for.
struct ListQuery {
    status: Option<Status>,
    saga_type: Option<String>,
    from: u64,
    limit: usize,
}

impl ListQuery {
    /// The link to the page from `from`.
    fn link(&self, from: u64) -> String {
        let mut link = format!("/v1/sagas?from={from}&limit={}", self.limit);
        if let Some(s) = self.status {
            link.push_str(&format!("&status={s}"));
        }
        if let Some(t) = &self.saga_type {
            link.push_str("&type=");
            link.push_str(&percent_encode(t));
        }
        link
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One page of the list: at most `limit` sagas, looking at most at
/// `scan_max` `SagaStarted` events (a filter that matches few sagas
/// still answers in bounded time; `next` goes on from where it stopped).
fn list_page(store: &EmbeddedStore, q: &ListQuery, scan_max: usize) -> Result<SagaList, ApiError> {
    let mut out = SagaList {
        sagas: Vec::new(),
        not_sagas: Vec::new(),
        next: None,
    };
    let (mut from, mut scanned) = (q.from, 0);
    loop {
        let want = (q.limit - out.sagas.len()).min(scan_max - scanned);
        if want == 0 {
            out.next = Some(q.link(from));
            return Ok(out);
        }
        let page = store.read_type(STARTED, from, Direction::Forward, want)?;
        let exhausted = page.len() < want;
        for e in page {
            scanned += 1;
            from = e.position + 1;
            list_one(store, q, e, &mut out)?;
        }
        if exhausted {
            return Ok(out);
        }
    }
}

/// Lists the saga `started` begins, if it is one and matches the filters.
fn list_one(
    store: &EmbeddedStore,
    q: &ListQuery,
    started: RecordedEvent,
    out: &mut SagaList,
) -> Result<(), ApiError> {
    let Some(id) = started
        .stream
        .strip_prefix(weir_sagas::CATEGORY)
        .and_then(|s| s.strip_prefix('-'))
    else {
        // Some other stream's event of the same name: not ours.
        return Ok(());
    };
    let not_saga = |reason: String| NotSaga {
        stream: started.stream.clone(),
        position: started.position,
        reason,
    };
    let saga_type = match EventBody::decode(STARTED, &started.data) {
        Some(Ok(EventBody::Started { saga_type, .. })) => saga_type,
        Some(Err(reason)) => {
            out.not_sagas.push(not_saga(reason));
            return Ok(());
        }
        _ => unreachable!("SagaStarted decodes as Started"),
    };
    if q.saga_type.as_ref().is_some_and(|t| *t != saga_type) {
        return Ok(());
    }
    let state = match load(store, id) {
        Ok((_, state)) => state,
        Err(e) if e.status.as_u16() == 404 => return Ok(()),
        Err(e) if e.status.is_client_error() => {
            out.not_sagas.push(not_saga(e.detail));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if q.status.is_some_and(|s| s != state.status) {
        return Ok(());
    }
    out.sagas.push(summary_to_api(state.summary()));
    Ok(())
}

/// Lists sagas in the order they started (`?from=` a global position, as
/// `next` gives it), each with its summary; `?status=` and `?type=` filter.
/// A page holds at most `?limit=` sagas (default 100, at most the
/// server's page limit) and looks at as many `SagaStarted` events at most
/// as the page limit: `next` goes on.
#[utoipa::path(get, path = "/v1/sagas", tag = "sagas",
    params(("status" = Option<String>, Query, description = "running, compensating, parked, completed or compensated"),
        ("type" = Option<String>, Query, description = "the saga type"),
        ("from" = Option<u64>, Query, description = "the global position to go on from"),
        ("limit" = Option<usize>, Query)),
    responses((status = 200, body = SagaList), (status = "4XX", body = weir_api::Problem)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<SagaList>, ApiError> {
    let query = ListQuery {
        status: q.get("status").map(|s| status_of(s)).transpose()?,
        saga_type: q.get("type").cloned(),
        from: query_number(&q, "from")?.unwrap_or(0),
        limit: query_number(&q, "limit")?
            .unwrap_or(100)
            .clamp(1, app.limits.page_max),
    };
    let scan_max = app.limits.page_max.max(query.limit);
    let store = app.store.clone();
    let mut page = blocking(move || list_page(&store, &query, scan_max)).await?;
    // A page keeps the sagas the caller may describe (it may come out
    // short; `next` still leads on).
    let caller = caller.as_ref().map(|c| &c.0);
    page.sagas
        .retain(|s| may_describe(caller, ResourceType::Saga, &s.id));
    Ok(Json(page))
}

fn event_to_api(e: &RecordedEvent) -> SagaEventInfo {
    SagaEventInfo {
        event_type: e.event_type.clone(),
        version: e.version,
        time: weir_store::rfc3339(e.recorded_ms),
        recorded_ms: e.recorded_ms,
        data: serde_json::from_slice(&e.data)
            .unwrap_or_else(|_| Value::String(B64.encode(&e.data))),
        traceparent: e.trace.as_ref().map(|t| t.parent.to_string()),
    }
}

/// Shows a saga: its summary, its steps (the action's and the
/// compensation's state, attempts, the last error) and its events in
/// order.
#[utoipa::path(get, path = "/v1/sagas/{id}", tag = "sagas",
    params(("id" = String, Path, example = "order-42")),
    responses((status = 200, body = SagaDetail), (status = 404, body = weir_api::Problem),
        (status = "4XX", body = weir_api::Problem)))]
pub async fn show(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<SagaDetail>, ApiError> {
    let store = app.store.clone();
    let timeline = format!("/v1/correlations/{}", percent_encode(&id));
    let (loaded, state) = blocking(move || load(&store, &id)).await?;
    Ok(Json(SagaDetail {
        timeline,
        steps: state
            .step_reports(&loaded.events)
            .into_iter()
            .map(|r| SagaStep {
                name: r.name,
                action: r.action.to_owned(),
                compensation: r.compensation.to_owned(),
                attempts: r.attempts,
                compensation_attempts: r.compensation_attempts,
                last_error: r.last_error,
            })
            .collect(),
        events: loaded.recorded.iter().map(event_to_api).collect(),
        saga: summary_to_api(state.summary()),
    }))
}

fn check_by(by: &str) -> Result<(), ApiError> {
    let n = by.chars().count();
    if n == 0 || n > RESUMED_BY_CHARS_MAX {
        return Err(ApiError::bad_request(format!(
            "by names the operator in 1 to {RESUMED_BY_CHARS_MAX} characters, not {n}"
        )));
    }
    if by.chars().any(|c| c.is_ascii_control()) {
        return Err(ApiError::bad_request(format!(
            "by {by:?} has a control character"
        )));
    }
    Ok(())
}

/// The `SagaResumed` event, with the metadata the SDK writes (its source,
/// the saga as subject and correlation id), caused by the saga's last
/// event (its `SagaParked`), so the saga's timeline shows who resumed it
/// after what.
fn resumed_event(app: &AppState, loaded: &Loaded, state: &SagaState, by: &str) -> NewEvent {
    let (event_type, data) = EventBody::Resumed { by: by.to_owned() }.encode();
    let metadata = serde_json::json!({
        "source": format!("/sagas/{}", state.saga_type),
        "subject": state.id,
        "dataversion": 1,
        "correlationid": state.id,
        "causationid": loaded.recorded.last().map(|e| e.id.clone()),
    });
    NewEvent {
        id: app.new_event_id(),
        event_type: event_type.to_owned(),
        data,
        content_type: "application/json".to_owned(),
        metadata: metadata.to_string().into_bytes(),
        trace: None,
    }
}

fn not_parked(state: &SagaState) -> ApiError {
    SagaError::NotParked {
        id: state.id.clone(),
        status: state.status,
    }
    .into()
}

/// Resumes a parked saga: appends `SagaResumed` (by the operator named in
/// the body) at the saga's version, so of two operators resuming at once
/// one wins and the other gets a 409. The runner that has the saga's type
/// tries its failed compensation again. Answers the saga's summary after.
#[utoipa::path(post, path = "/v1/sagas/{id}/resume", tag = "sagas",
    params(("id" = String, Path, example = "order-42")), request_body = ResumeSaga,
    responses((status = 200, body = SagaSummary), (status = 404, body = weir_api::Problem),
        (status = 409, body = weir_api::Problem), (status = "4XX", body = weir_api::Problem)))]
pub async fn resume(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Body(req): Body<ResumeSaga>,
) -> Result<Json<SagaSummary>, ApiError> {
    check_by(&req.by)?;
    let store = app.store.clone();
    let saga = id.clone();
    let (loaded, state) = blocking(move || load(&store, &saga)).await?;
    if state.status != Status::Parked {
        return Err(not_parked(&state));
    }
    let event = resumed_event(&app, &loaded, &state, &req.by);
    let stream = weir_sagas::stream_of(&id);
    let appended = app
        .store
        .append_async(&stream, ExpectedVersion::Exact(state.version), &[event])
        .await;
    match appended {
        Ok(done) => {
            let after = load_at(&app, &id, done.last_version).await?;
            Ok(Json(summary_to_api(after.summary())))
        }
        // Another operator (or writer) came first: say what the saga is
        // now, as a refused resume of a saga that is not parked.
        Err(StoreError::WrongExpectedVersion {
            actual: Some(actual),
            ..
        }) if actual > state.version => {
            let after = load_at(&app, &id, actual).await?;
            if after.status == Status::Parked {
                // Parked again already: the operator looks again.
                return Err(ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "wrong_expected_version",
                    format!("saga {id} changed while it was resumed; look at it again"),
                ));
            }
            Err(not_parked(&after))
        }
        Err(e) => Err(e.into()),
    }
}

/// How long [`load_at`] waits for a version another writer appended.
const CATCH_UP_MS_MAX: u64 = 5_000;

/// Saga `id` once reads show at least `version`. Readers see only durable
/// events: a writer that won a race may still wait for its fsync round
/// while its version already counts for appends.
async fn load_at(app: &AppState, id: &str, version: u64) -> Result<SagaState, ApiError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(CATCH_UP_MS_MAX);
    loop {
        let (store, saga) = (app.store.clone(), id.to_owned());
        let (_, state) = blocking(move || load(&store, &saga)).await?;
        if state.version >= version || tokio::time::Instant::now() >= deadline {
            return Ok(state);
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}
