//! `weir-http`: Weir's HTTP/JSON API on axum, versioned under `/v1`:
//! topics (create, list, describe, alter configs, delete, produce, read
//! records), consumer groups (list, describe with lag, reset offsets,
//! delete), event streams (append with an expected version, read a stream,
//! all events, a category or a type; stream metadata, soft delete,
//! tombstone, snapshots), live streams over Server-Sent Events, dead
//! letters (list, read, replay, purge), alerts, sagas (list, show, resume
//! a parked one), queues (claim, ack, nack, extend, pending, autoclaim),
//! persistent subscriptions (groups, read, ack, nack, replay parked),
//! Confluent's Schema Registry API at the root ([`schema_registry`]),
//! `/healthz`,
//! `/readyz`, and `/openapi.json` generated from the handlers and the
//! `weir-api` types. Errors are RFC 9457 problems with a stable code
//! ([`problem`]). Blocking core calls run on tokio's blocking pool. Each
//! request runs in a tracing span with its client, correlation and W3C
//! trace context ([`trace`]).

mod acls;
pub mod auth;
mod counted;
mod dlq;
mod groups;
mod live;
pub mod problem;
mod queues;
mod sagas;
pub mod schema_registry;
pub mod schema_validation;
mod streams;
mod subscriptions;
mod tls;
mod topics;
pub mod trace;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use utoipa::OpenApi;
use weir_broker::Broker;
use weir_groups::Coordinator;
use weir_store::EmbeddedStore;

use problem::ApiError;
pub use tls::Peer;

/// Limits of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
    /// Most records or events one page returns.
    pub page_max: usize,
    /// Most live streams (Server-Sent Events) served at once; more get a
    /// 503 problem.
    pub sse_clients_max: usize,
    /// Most events queued for one live client.
    pub sse_buffer: usize,
    /// Most bytes of events queued for one live client (an event larger
    /// than this is queued alone).
    pub sse_buffer_bytes_max: usize,
    /// How long a live client may leave its queue full before it is
    /// disconnected (it reconnects with `Last-Event-ID` and catches up).
    pub sse_stall_ms: u64,
    /// Idle time after which a live stream sends a keep-alive comment.
    pub sse_keep_alive_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            body_bytes_max: 16 * 1024 * 1024,
            page_max: 1000,
            sse_clients_max: 256,
            sse_buffer: 256,
            sse_buffer_bytes_max: 8 * 1024 * 1024,
            sse_stall_ms: 10_000,
            sse_keep_alive_ms: 15_000,
        }
    }
}

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub broker: Arc<Broker>,
    pub groups: Arc<Coordinator>,
    pub store: Arc<EmbeddedStore>,
    pub limits: HttpLimits,
    /// The alerts `GET /v1/alerts` shows (none watched unless the server
    /// sets thresholds with [`AppState::with_alerts`]).
    pub alerts: Arc<weir_alerts::Alerts>,
    /// The metrics `GET /metrics` serves (`None`: metrics off, and the
    /// route answers 404).
    pub metrics: Option<Arc<weir_metrics::Metrics>>,
    /// One permit per live stream being served (`sse_clients_max`).
    live_clients: Arc<tokio::sync::Semaphore>,
    /// Turns true when the server stops: live streams end, so the
    /// graceful shutdown does not wait for them forever.
    stopping: tokio::sync::watch::Sender<bool>,
    round_robin: AtomicU64,
    next_id: AtomicU64,
    started_ms: i64,
    /// The queue manager, opened on first use ([`AppState::queues`]);
    /// [`AppState::with_queues`] shares one with the Kafka server.
    queues: Arc<weir_deadletter::queue_slot::QueueSlot>,
    /// Persistent subscriptions, opened on first use
    /// ([`AppState::subscriptions`]).
    subscriptions: std::sync::Mutex<Option<Arc<subscriptions::Subscriptions>>>,
    /// The queue manager's [`weir_queue::Queues::released`] count last
    /// seen: moved to wake long-polling claims when records were released.
    queue_released: tokio::sync::watch::Sender<u64>,
    /// Who may call, and what they may do ([`AppState::with_security`]);
    /// by default nothing is required.
    pub security: auth::Security,
    /// The Confluent-compatible schema registry served at the root
    /// ([`schema_registry`]); `None`: its routes answer 404.
    pub schema_registry: Option<Arc<weir_schemas::Registry>>,
}

impl AppState {
    pub fn new(
        broker: Arc<Broker>,
        groups: Arc<Coordinator>,
        store: Arc<EmbeddedStore>,
        limits: HttpLimits,
    ) -> Self {
        use weir_log::Clock as _;
        Self {
            broker: broker.clone(),
            groups,
            store,
            alerts: Arc::new(weir_alerts::Alerts::new(weir_alerts::AlertRules {
                dead_letter_suffix: weir_deadletter::format::DEFAULT_SUFFIX.to_owned(),
                ..weir_alerts::AlertRules::default()
            })),
            metrics: None,
            live_clients: Arc::new(tokio::sync::Semaphore::new(limits.sse_clients_max)),
            stopping: tokio::sync::watch::Sender::new(false),
            limits,
            round_robin: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            started_ms: weir_log::SystemClock.now_ms(),
            queues: Arc::new(weir_deadletter::queue_slot::QueueSlot::new(broker)),
            subscriptions: std::sync::Mutex::new(None),
            queue_released: tokio::sync::watch::Sender::new(0),
            security: auth::Security::default(),
            schema_registry: None,
        }
    }

    /// Serves queues from `slot` (the server's one queue manager, which
    /// Kafka share groups use too) instead of a manager of its own.
    pub fn with_queues(mut self, slot: Arc<weir_deadletter::queue_slot::QueueSlot>) -> Self {
        self.queues = slot;
        self
    }

    /// Serves `metrics` at `GET /metrics` and counts connections, live
    /// clients and refused requests in its recorder.
    pub fn with_metrics(mut self, metrics: Arc<weir_metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Authenticates callers and checks their ACLs with `security` (whose
    /// authorizer the Kafka listener shares).
    pub fn with_security(mut self, security: auth::Security) -> Self {
        self.security = security;
        self
    }

    /// Serves `registry` as Confluent's Schema Registry REST API.
    pub fn with_schema_registry(mut self, registry: Arc<weir_schemas::Registry>) -> Self {
        self.schema_registry = Some(registry);
        self
    }

    /// Shows `alerts` (which the server evaluates) at `GET /v1/alerts`.
    pub fn with_alerts(mut self, alerts: Arc<weir_alerts::Alerts>) -> Self {
        self.alerts = alerts;
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir",
        description = "Weir's HTTP/JSON API: topics, records, consumer groups, event streams, and live streams over Server-Sent Events."
    ),
    paths(
        healthz,
        readyz,
        topics::list,
        topics::create,
        topics::describe,
        topics::alter_configs,
        topics::delete,
        topics::produce,
        topics::fetch,
        groups::list,
        groups::describe,
        groups::delete,
        groups::reset_offsets,
        streams::append,
        streams::read_stream,
        streams::delete_stream,
        streams::get_metadata,
        streams::put_metadata,
        streams::save_snapshot,
        streams::load,
        streams::read_all,
        streams::read_category,
        streams::read_type,
        streams::read_correlation,
        live::all,
        live::category,
        live::stream,
        live::partition,
        dlq::list,
        dlq::read,
        dlq::replay,
        dlq::purge,
        dlq::alerts,
        queues::claim,
        queues::autoclaim,
        queues::ack,
        queues::nack,
        queues::settle_many,
        queues::delete_group,
        queues::extend,
        queues::pending,
        acls::describe,
        acls::create,
        acls::delete,
    ),
    components(schemas(weir_api::Problem)),
    modifiers(&ProblemMediaType)
)]
struct ApiDoc;

/// Problems are served as `application/problem+json` (RFC 9457); the
/// handlers' annotations name only their body type, so this gives every
/// response whose body is a [`weir_api::Problem`] that media type.
struct ProblemMediaType;

/// Every operation of `api`, for the document's modifiers.
pub(crate) fn operations_mut(
    api: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    api.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

impl utoipa::Modify for ProblemMediaType {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for op in operations_mut(api) {
            for response in op.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let is_problem = response.content.get("application/json").is_some_and(|c| {
                        matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
                    });
                if is_problem
                    && let Some(content) = response.content.shift_remove("application/json")
                {
                    response
                        .content
                        .insert("application/problem+json".to_owned(), content);
                }
            }
        }
    }
}

/// The OpenAPI 3.1 document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(sagas::SagasApi::openapi());
    doc.merge(subscriptions::SubscriptionsApi::openapi());
    doc.merge(schema_validation::SchemaValidationApi::openapi());
    doc.merge(schema_registry::SchemaRegistryApi::openapi());
    doc
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = weir_api::Health)))]
async fn healthz() -> Json<weir_api::Health> {
    Json(weir_api::Health {
        status: "ok".to_owned(),
    })
}

/// Readiness: the store and the broker are open.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = weir_api::Health)))]
async fn readyz() -> Json<weir_api::Health> {
    Json(weir_api::Health {
        status: "ready".to_owned(),
    })
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// The metrics in the OpenMetrics text format (only routed when the
/// server has metrics).
async fn metrics(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let Some(m) = app.metrics.clone() else {
        return Err(no_route().await);
    };
    let text = blocking(move || Ok::<_, ApiError>(m.render())).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, weir_metrics::CONTENT_TYPE)],
        text,
    )
        .into_response())
}

async fn no_route() -> ApiError {
    ApiError::not_found("no_such_route", "no such resource")
}

/// The API's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let body_max = state.limits.body_bytes_max;
    let recorder = state.metrics.as_ref().map(|m| m.recorder().clone());
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/topics", get(topics::list).post(topics::create))
        .route(
            "/v1/topics/{topic}",
            get(topics::describe).delete(topics::delete),
        )
        .route("/v1/topics/{topic}/configs", patch(topics::alter_configs))
        .route("/v1/topics/{topic}/records", post(topics::produce))
        .route(
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(topics::fetch),
        )
        .route(
            "/v1/topics/{topic}/partitions/{partition}/live",
            get(live::partition),
        )
        .route("/v1/dlq", get(dlq::list))
        .route(
            "/v1/dlq/{topic}/partitions/{partition}/records",
            get(dlq::read),
        )
        .route("/v1/dlq/{topic}/replay", post(dlq::replay))
        .route("/v1/dlq/{topic}/purge", post(dlq::purge))
        .route("/v1/alerts", get(dlq::alerts))
        .route("/v1/groups", get(groups::list))
        .route(
            "/v1/groups/{group}",
            get(groups::describe).delete(groups::delete),
        )
        .route(
            "/v1/groups/{group}/offsets/reset",
            post(groups::reset_offsets),
        )
        .route(
            "/v1/streams/{stream}",
            get(streams::read_stream)
                .post(streams::append)
                .delete(streams::delete_stream),
        )
        .route(
            "/v1/streams/{stream}/metadata",
            get(streams::get_metadata).put(streams::put_metadata),
        )
        .route(
            "/v1/streams/{stream}/snapshot",
            get(streams::load).put(streams::save_snapshot),
        )
        .route("/v1/streams/{stream}/live", get(live::stream))
        .route("/v1/all", get(streams::read_all))
        .route("/v1/all/live", get(live::all))
        .route("/v1/categories/{category}", get(streams::read_category))
        .route("/v1/categories/{category}/live", get(live::category))
        .route("/v1/types/{event_type}", get(streams::read_type))
        .route(
            "/v1/correlations/{correlation_id}",
            get(streams::read_correlation),
        )
        .route("/v1/queues/{group}", delete(queues::delete_group))
        .route("/v1/queues/{group}/pending", get(queues::pending))
        .route(
            "/v1/queues/{group}/topics/{topic}/claim",
            post(queues::claim),
        )
        .route(
            "/v1/queues/{group}/topics/{topic}/autoclaim",
            post(queues::autoclaim),
        )
        .route("/v1/queues/{group}/topics/{topic}/ack", post(queues::ack))
        .route("/v1/queues/{group}/topics/{topic}/nack", post(queues::nack))
        .route(
            "/v1/queues/{group}/topics/{topic}/settle",
            post(queues::settle_many),
        )
        .route(
            "/v1/queues/{group}/topics/{topic}/extend",
            post(queues::extend),
        )
        .route(
            "/v1/acls",
            get(acls::describe).post(acls::create).delete(acls::delete),
        )
        .merge(sagas::routes())
        .merge(subscriptions::routes())
        .merge(schema_registry::routes())
        .merge(schema_validation::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .fallback(no_route)
        .layer(axum::middleware::from_fn(schema_registry::confluent_errors))
        .layer(axum::middleware::from_fn(trace::traced))
        .layer(DefaultBodyLimit::max(body_max))
        .with_state(state);
    match recorder {
        None => app,
        // Bodies refused by `body_bytes_max`, whichever handler refused them.
        Some(recorder) => app.layer(axum::middleware::map_response(
            move |r: axum::response::Response| {
                if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    recorder.reject(weir_metrics::Rejection::HttpBodyTooLarge);
                }
                std::future::ready(r)
            },
        )),
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with(listener, state, Router::new(), shutdown).await
}

/// [`run`], with `extra` routes (the web console) served beside the API.
pub async fn run_with(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with_tls(listener, None, state, extra, shutdown).await
}

/// [`run_with`], over HTTPS when `tls` is given. Every request carries
/// its client's address and principal as `ConnectInfo<`[`Peer`]`>`.
pub async fn run_with_tls(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<weir_tls::TlsServer>>,
    state: Arc<AppState>,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let recorder = state.metrics.as_ref().map(|m| m.recorder().clone());
    // The extra routes (the console) pass the same guard as the API's.
    let extra = if extra.has_routes() {
        extra.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
    } else {
        extra
    };
    let app = router(state.clone()).merge(extra);
    // Queue locks that ran out are released, and snapshots taken, on a
    // timer while the server runs.
    let queue_upkeep = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(queues::UPKEEP);
            loop {
                tick.tick().await;
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || queues::upkeep(&state)).await;
            }
        })
    };
    let shutdown = async move {
        shutdown.await;
        state.stopping.send_replace(true);
    };
    let app = app.into_make_service_with_connect_info::<Peer>();
    let served = match tls {
        None => {
            let listener = counted::Counted {
                inner: tls::NoDelay(listener),
                recorder,
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            let listener = counted::Counted {
                inner: tls::TlsListener::new(listener, tls)?,
                recorder,
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    queue_upkeep.abort();
    served
}

/// Runs blocking core work off the async workers.
pub(crate) async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("core calls do not panic")
        .map_err(Into::into)
}

/// A number from the query string, if given.
pub(crate) fn query_number<T: FromStr>(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("{name} must be a number, not {v:?}")))
        })
        .transpose()
}

/// A partition from the path with `?offset=` (default 0) and `?limit=`
/// (default 100, at most `page_max`) from the query: where a partition
/// read starts and how much it takes.
pub(crate) fn partition_page(
    partition: &str,
    q: &HashMap<String, String>,
    page_max: usize,
) -> Result<(i32, i64, usize), ApiError> {
    let partition: i32 = partition
        .parse()
        .map_err(|_| ApiError::bad_request(format!("partition {partition:?} is not a number")))?;
    let offset: i64 = query_number(q, "offset")?.unwrap_or(0);
    let limit: usize = query_number(q, "limit")?.unwrap_or(100).min(page_max);
    Ok((partition, offset, limit))
}

/// The API's read handlers and the dead-letter replay as functions, for
/// in-process callers that show what the API serves (the web console,
/// `weir-console`): they get the same data, limits and problems without
/// an HTTP round trip.
pub mod handlers {
    pub use crate::dlq::{alerts, list as dead_letter_topics, read as dead_letters, replay};
    pub use crate::groups::{describe as describe_group, list as groups};
    pub use crate::sagas::{list as sagas, show as saga};
    pub use crate::streams::{read_all, read_category, read_correlation, read_stream, read_type};
    pub use crate::topics::{describe as describe_topic, fetch as records, list as topics};
}
