//! Persistent subscriptions over HTTP (KurrentDB's competing consumers on
//! `weir-store`'s persistent subscriptions and `weir-queue`'s manager):
//! create, change, delete, list and describe groups on a stream,
//! `$ce-<category>` or `$all`; read events for a consumer (long poll), ack
//! and nack them by ack id, and replay the parked stream. Opened on first
//! use over the queue manager, whose 200 ms timer releases locks that ran
//! out.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use utoipa::OpenApi;
use weir_api::{
    SubscriptionAck, SubscriptionConsumer, SubscriptionDone, SubscriptionEvent, SubscriptionEvents,
    SubscriptionGroup, SubscriptionGroups, SubscriptionInfo, SubscriptionNack, SubscriptionRead,
};
use weir_deadletter::queue_io::BrokerQueueIo;
use weir_log::Clock as _;
use weir_store::persistent::{
    NackAction, PersistentSubscriptions, Strategy, SubscriptionSettings, Target,
};

use crate::auth::{Caller, may_describe};
use crate::problem::{ApiError, Body};
use crate::{AppState, ProblemMediaType, blocking};
use weir_auth::acl::ResourceType;

/// The persistent subscriptions the API serves.
pub type Subscriptions = PersistentSubscriptions<BrokerQueueIo>;

const WAIT_MS_MAX: u64 = 30_000;
/// Most ids one ack or nack names.
const ACK_IDS_MAX: usize = 1_000;
/// How often a long-polling read looks again.
const POLL: Duration = Duration::from_millis(250);

/// The routes, merged into the API's router.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/subscriptions", get(list))
        .route(
            "/v1/subscriptions/{target}/{group}",
            put(upsert).get(describe).delete(delete),
        )
        .route("/v1/subscriptions/{target}/{group}/info", get(describe))
        .route("/v1/subscriptions/{target}/{group}/read", post(read))
        .route("/v1/subscriptions/{target}/{group}/ack", post(ack))
        .route("/v1/subscriptions/{target}/{group}/nack", post(nack))
        .route(
            "/v1/subscriptions/{target}/{group}/replay-parked",
            post(replay_parked),
        )
}

/// The subscription routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list, upsert, describe, delete, read, ack, nack, replay_parked),
    components(schemas(weir_api::Problem)),
    modifiers(&ProblemMediaType)
)]
pub(crate) struct SubscriptionsApi;

impl AppState {
    /// The persistent subscriptions, opened on first use (over the queue
    /// manager).
    pub fn subscriptions(&self) -> Result<Arc<Subscriptions>, ApiError> {
        let mut slot = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = &*slot {
            return Ok(s.clone());
        }
        let s = Arc::new(PersistentSubscriptions::open(
            self.store.clone(),
            self.queues()?,
        )?);
        *slot = Some(s.clone());
        Ok(s)
    }
}

fn now_ms() -> i64 {
    weir_log::SystemClock.now_ms()
}

fn target(name: &str) -> Result<Target, ApiError> {
    Ok(Target::parse(name)?)
}

/// The API's settings (all optional) over the defaults.
fn settings_in(s: &weir_api::SubscriptionSettings) -> Result<SubscriptionSettings, ApiError> {
    let d = SubscriptionSettings::default();
    let strategy = match s.strategy.as_deref() {
        None => Strategy::default(),
        Some(name) => Strategy::from_name(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "strategy must be \"round_robin\" or \"pinned\", not {name:?}"
            ))
        })?,
    };
    Ok(SubscriptionSettings {
        start_from: s.start_from,
        max_retry_count: s.max_retry_count.unwrap_or(d.max_retry_count),
        message_timeout_ms: s.message_timeout_ms.unwrap_or(d.message_timeout_ms),
        max_subscriber_count: s.max_subscriber_count.unwrap_or(d.max_subscriber_count),
        read_batch_size: s.read_batch_size.unwrap_or(d.read_batch_size),
        strategy,
    })
}

fn settings_out(s: SubscriptionSettings) -> weir_api::SubscriptionSettings {
    weir_api::SubscriptionSettings {
        start_from: s.start_from,
        max_retry_count: Some(s.max_retry_count),
        message_timeout_ms: Some(s.message_timeout_ms),
        max_subscriber_count: Some(s.max_subscriber_count),
        read_batch_size: Some(s.read_batch_size),
        strategy: Some(s.strategy.name().to_owned()),
    }
}

/// Every subscription group.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions",
    responses((status = 200, body = SubscriptionGroups), (status = "4XX", body = weir_api::Problem)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<SubscriptionGroups>, ApiError> {
    let groups = blocking(move || -> Result<_, ApiError> {
        let caller = caller.as_ref().map(|c| &c.0);
        Ok(app
            .subscriptions()?
            .list()
            .into_iter()
            .filter(|(_, group, _)| may_describe(caller, ResourceType::Group, group))
            .map(|(t, group, s)| SubscriptionGroup {
                target: t.name(),
                group,
                settings: settings_out(s),
            })
            .collect())
    })
    .await?;
    Ok(Json(SubscriptionGroups { groups }))
}

/// Creates a group on a stream, `$ce-<category>` or `$all`, or changes its
/// settings (its start stays). 201 when created, 200 when changed.
#[utoipa::path(put, path = "/v1/subscriptions/{target}/{group}", tag = "subscriptions",
    params(("target" = String, Path), ("group" = String, Path)),
    request_body = weir_api::SubscriptionSettings,
    responses((status = 201, body = SubscriptionInfo), (status = 200, body = SubscriptionInfo),
        (status = "4XX", body = weir_api::Problem)))]
pub async fn upsert(
    State(app): State<Arc<AppState>>,
    Path((target_name, group)): Path<(String, String)>,
    Body(req): Body<weir_api::SubscriptionSettings>,
) -> Result<(axum::http::StatusCode, Json<SubscriptionInfo>), ApiError> {
    let t = target(&target_name)?;
    let settings = settings_in(&req)?;
    blocking(move || -> Result<_, ApiError> {
        let subs = app.subscriptions()?;
        let status = match subs.settings(&t, &group) {
            Ok(_) => {
                subs.update(&t, &group, &settings)?;
                axum::http::StatusCode::OK
            }
            Err(_) => {
                subs.create(&t, &group, &settings)?;
                axum::http::StatusCode::CREATED
            }
        };
        Ok((status, Json(info_out(subs.info(&t, &group, now_ms())?))))
    })
    .await
}

fn info_out(i: weir_store::persistent::SubscriptionInfo) -> SubscriptionInfo {
    SubscriptionInfo {
        target: i.target,
        group: i.group,
        settings: settings_out(i.settings),
        consumers: i
            .consumers
            .into_iter()
            .map(|c| SubscriptionConsumer {
                name: c.name,
                idle_ms: c.idle_ms,
                in_flight: c.in_flight,
            })
            .collect(),
        in_flight: i.in_flight,
        checkpoint: i.checkpoint,
        last_known: i.last_known,
        parked: i.parked,
        replaying: i.replaying,
        parked_stream: i.parked_stream,
    }
}

/// A group's settings, consumers, events in flight, checkpoint and parked
/// events (also at `.../info`).
#[utoipa::path(get, path = "/v1/subscriptions/{target}/{group}", tag = "subscriptions",
    params(("target" = String, Path), ("group" = String, Path)),
    responses((status = 200, body = SubscriptionInfo), (status = "4XX", body = weir_api::Problem)))]
pub async fn describe(
    State(app): State<Arc<AppState>>,
    Path((target_name, group)): Path<(String, String)>,
) -> Result<Json<SubscriptionInfo>, ApiError> {
    let t = target(&target_name)?;
    blocking(move || -> Result<_, ApiError> {
        Ok(Json(info_out(app.subscriptions()?.info(
            &t,
            &group,
            now_ms(),
        )?)))
    })
    .await
}

/// Deletes a group; its consumers are refused from then on.
#[utoipa::path(delete, path = "/v1/subscriptions/{target}/{group}", tag = "subscriptions",
    params(("target" = String, Path), ("group" = String, Path)),
    responses((status = 204), (status = "4XX", body = weir_api::Problem)))]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path((target_name, group)): Path<(String, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    let t = target(&target_name)?;
    blocking(move || -> Result<_, ApiError> {
        app.subscriptions()?.delete(&t, &group)?;
        Ok(axum::http::StatusCode::NO_CONTENT)
    })
    .await
}

/// Up to `max` events for `consumer`, each held by it for the group's
/// message timeout; with `wait_ms`, waits that long for events when there
/// are none.
#[utoipa::path(post, path = "/v1/subscriptions/{target}/{group}/read", tag = "subscriptions",
    params(("target" = String, Path), ("group" = String, Path)),
    request_body = SubscriptionRead,
    responses((status = 200, body = SubscriptionEvents), (status = "4XX", body = weir_api::Problem)))]
pub async fn read(
    State(app): State<Arc<AppState>>,
    Path((target_name, group)): Path<(String, String)>,
    Body(req): Body<SubscriptionRead>,
) -> Result<Json<SubscriptionEvents>, ApiError> {
    let t = Arc::new(target(&target_name)?);
    let wait_ms = req.wait_ms.unwrap_or(0);
    if wait_ms > WAIT_MS_MAX {
        return Err(ApiError::bad_request(format!(
            "wait_ms must be at most {WAIT_MS_MAX}"
        )));
    }
    let until = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let (group, req) = (Arc::new(group), Arc::new(req));
    let mut work = crate::queues::WorkSignal::new(&app);
    loop {
        work.arm();
        let (app2, t2, group2, req2) = (app.clone(), t.clone(), group.clone(), req.clone());
        let got = blocking(move || -> Result<_, ApiError> {
            let subs = app2.subscriptions()?;
            Ok(subs.read(&t2, &group2, &req2.consumer, req2.max, now_ms())?)
        })
        .await?;
        let now = tokio::time::Instant::now();
        if !got.is_empty() || now >= until {
            let events = got
                .into_iter()
                .map(|d| SubscriptionEvent {
                    ack_id: d.ack_id,
                    retry_count: d.retry_count,
                    replayed: d.replayed,
                    event: crate::streams::to_api(d.event),
                })
                .collect();
            return Ok(Json(SubscriptionEvents { events }));
        }
        // New events and released locks wake the read; the fallback
        // covers what signals nothing (a pinned consumer's silence
        // running out).
        work.wait((until - now).min(POLL)).await;
    }
}

fn check_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > ACK_IDS_MAX {
        return Err(ApiError::bad_request(format!(
            "ack_ids must name 1 to {ACK_IDS_MAX} events"
        )));
    }
    Ok(())
}

/// Acks events the consumer holds: handled, never delivered again.
/// Answered once durable.
#[utoipa::path(post, path = "/v1/subscriptions/{target}/{group}/ack", tag = "subscriptions",
    params(("target" = String, Path), ("group" = String, Path)),
    request_body = SubscriptionAck,
    responses((status = 200, body = SubscriptionDone), (status = "4XX", body = weir_api::Problem)))]
pub async fn ack(
    State(app): State<Arc<AppState>>,
    Path((target_name, group)): Path<(String, String)>,
    Body(req): Body<SubscriptionAck>,
) -> Result<Json<SubscriptionDone>, ApiError> {
    let t = target(&target_name)?;
    check_ids(&req.ack_ids)?;
    let count = req.ack_ids.len() as u64;
    blocking(move || -> Result<_, ApiError> {
        let subs = app.subscriptions()?;
        Ok(subs.ack(&t, &group, &req.consumer, &req.ack_ids, now_ms())?)
    })
    .await?;
    Ok(Json(SubscriptionDone { count }))
}

/// Nacks events the consumer holds: `retry` (delivered again), `park` (to
/// the parked stream, with the reason) or `skip`.
#[utoipa::path(post, path = "/v1/subscriptions/{target}/{group}/nack", tag = "subscriptions",
    params(("target" = String, Path), ("group" = String, Path)),
    request_body = SubscriptionNack,
    responses((status = 200, body = SubscriptionDone), (status = "4XX", body = weir_api::Problem)))]
pub async fn nack(
    State(app): State<Arc<AppState>>,
    Path((target_name, group)): Path<(String, String)>,
    Body(req): Body<SubscriptionNack>,
) -> Result<Json<SubscriptionDone>, ApiError> {
    let t = target(&target_name)?;
    check_ids(&req.ack_ids)?;
    let action = match req.action.as_str() {
        "retry" => NackAction::Retry,
        "park" => NackAction::Park,
        "skip" => NackAction::Skip,
        other => {
            return Err(ApiError::bad_request(format!(
                "action must be \"retry\", \"park\" or \"skip\", not {other:?}"
            )));
        }
    };
    let count = req.ack_ids.len() as u64;
    blocking(move || -> Result<_, ApiError> {
        let subs = app.subscriptions()?;
        let reason = req.reason.as_deref().unwrap_or("");
        Ok(subs.nack(
            &t,
            &group,
            &req.consumer,
            &req.ack_ids,
            action,
            reason,
            now_ms(),
        )?)
    })
    .await?;
    Ok(Json(SubscriptionDone { count }))
}

/// Delivers every event parked so far to the group once more (before new
/// events); the parked stream then reads from the first event parked
/// after this call.
#[utoipa::path(post, path = "/v1/subscriptions/{target}/{group}/replay-parked", tag = "subscriptions",
    params(("target" = String, Path), ("group" = String, Path)),
    responses((status = 200, body = SubscriptionDone), (status = "4XX", body = weir_api::Problem)))]
pub async fn replay_parked(
    State(app): State<Arc<AppState>>,
    Path((target_name, group)): Path<(String, String)>,
    // Read and ignored: a body left unread makes the server close the
    // connection after answering, and a client that keeps connections
    // alive then fails its next call on it.
    _body: axum::body::Bytes,
) -> Result<Json<SubscriptionDone>, ApiError> {
    let t = target(&target_name)?;
    let count = blocking(move || -> Result<_, ApiError> {
        Ok(app.subscriptions()?.replay_parked(&t, &group)?)
    })
    .await?;
    Ok(Json(SubscriptionDone { count }))
}
