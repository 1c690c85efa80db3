//! Live streams over Server-Sent Events: a topic partition from an offset,
//! or a stream, a category or all events from a checkpoint. Each event's
//! SSE id is where it is (the record's offset; the event's version in its
//! stream, or its global position), so a client that reconnects with
//! `Last-Event-ID` resumes right after the last event it saw.
//!
//! Catching up and being live are one loop that reads the log (the store's
//! pull-based [`Subscription`], or the partition's log) and waits on the
//! data directory's change signal when it finds nothing new, so no event
//! is missed or sent twice at the switch. A client's events pass through a
//! queue of `sse_buffer` events and `sse_buffer_bytes_max` bytes; a client
//! that leaves it full for
//! `sse_stall_ms` (it stopped reading, or reads slower than events come)
//! is told `event: lagged` and disconnected: it reconnects with its
//! `Last-Event-ID` and catches up from the log, and the server holds no
//! growing backlog for it. At most `sse_clients_max` streams are served
//! at once; more are refused with a 503 problem.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use weir_log::Log;
use weir_store::{Filter, Subscription, Target};

use crate::problem::ApiError;
use crate::{AppState, query_number};

/// Most events or records one read of the log takes.
const READ_PAGE_MAX: usize = 256;

/// What a live stream reads.
enum Source {
    /// `versions`: ids are stream versions (a stream's subscription), not
    /// global positions.
    Store { sub: Subscription, versions: bool },
    Partition {
        log: Log,
        partition: i32,
        next: i64,
        changes: Arc<weir_log::Changes>,
    },
}

impl Source {
    fn epoch(&self) -> u64 {
        match self {
            Self::Store { sub, .. } => sub.epoch(),
            Self::Partition { changes, .. } => changes.epoch(),
        }
    }

    fn changed(&self, epoch: u64) -> weir_log::Changed {
        match self {
            Self::Store { sub, .. } => sub.changed(epoch),
            Self::Partition { changes, .. } => changes.changed(epoch),
        }
    }

    /// The next events, as SSE events with their ids and sizes; blocks on
    /// disk I/O.
    fn poll(&mut self, max: usize) -> Result<Vec<(SseEvent, usize)>, ApiError> {
        match self {
            Self::Store { sub, versions } => {
                let versions = *versions;
                Ok(sub
                    .poll(max)?
                    .into_iter()
                    .map(|e| {
                        let id = if versions { e.version } else { e.position };
                        sse_json("event", id, &crate::streams::to_api(e))
                    })
                    .collect())
            }
            Self::Partition {
                log,
                partition,
                next,
                ..
            } => {
                // Offsets below the log's start are gone (retention); a
                // client resuming there continues from what is held.
                let from = (*next).max(log.start_offset());
                let (records, after) = crate::topics::read_records(log, *partition, from, max)?;
                *next = after;
                Ok(records
                    .iter()
                    .map(|r| sse_json("record", r.offset as u64, r))
                    .collect())
            }
        }
    }
}

/// An SSE event with a JSON body, and the body's size.
fn sse_json(kind: &str, id: u64, body: &impl serde::Serialize) -> (SseEvent, usize) {
    // JSON text has no raw newlines, so it is one `data:` line.
    let json = serde_json::to_string(body).expect("API bodies serialize");
    let bytes = json.len();
    (
        SseEvent::default()
            .event(kind)
            .id(id.to_string())
            .data(json),
        bytes,
    )
}

/// Where to start: after `Last-Event-ID` if the client sent one, else the
/// query parameter `name`, else 0.
fn start_at(headers: &HeaderMap, q: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    if let Some(v) = headers.get("last-event-id") {
        let text = v.to_str().unwrap_or("");
        let last: u64 = text.trim().parse().map_err(|_| {
            ApiError::bad_request(format!("Last-Event-ID must be a number, not {text:?}"))
        })?;
        return Ok(last.saturating_add(1));
    }
    Ok(query_number(q, name)?.unwrap_or(0))
}

/// Follows every event in global order from `?from=` (a position), or
/// after `Last-Event-ID`. Server-Sent Events, `event: event`, id = position.
#[utoipa::path(get, path = "/v1/all/live", tag = "live",
    params(("from" = Option<u64>, Query), ("Last-Event-ID" = Option<u64>, Header)),
    responses((status = 200, content_type = "text/event-stream", body = weir_api::Event),
        (status = "4XX", body = weir_api::Problem), (status = 503, body = weir_api::Problem)))]
pub async fn all(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let from = start_at(&headers, &q, "from")?;
    let sub = app.store.subscribe(Target::All, Filter::default(), from);
    serve(
        &app,
        Source::Store {
            sub,
            versions: false,
        },
    )
}

/// Follows a category's events (streams `category-…`) in global order.
/// Server-Sent Events, `event: event`, id = position.
#[utoipa::path(get, path = "/v1/categories/{category}/live", tag = "live",
    params(("category" = String, Path, example = "account"), ("from" = Option<u64>, Query),
        ("Last-Event-ID" = Option<u64>, Header)),
    responses((status = 200, content_type = "text/event-stream", body = weir_api::Event),
        (status = "4XX", body = weir_api::Problem), (status = 503, body = weir_api::Problem)))]
pub async fn category(
    State(app): State<Arc<AppState>>,
    Path(category): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let from = start_at(&headers, &q, "from")?;
    let sub = app
        .store
        .subscribe(Target::Category(category), Filter::default(), from);
    serve(
        &app,
        Source::Store {
            sub,
            versions: false,
        },
    )
}

/// Follows one stream from `?from=` (a version). Server-Sent Events,
/// `event: event`, id = the event's version.
#[utoipa::path(get, path = "/v1/streams/{stream}/live", tag = "live",
    params(("stream" = String, Path, example = "account-1"), ("from" = Option<u64>, Query),
        ("Last-Event-ID" = Option<u64>, Header)),
    responses((status = 200, content_type = "text/event-stream", body = weir_api::Event),
        (status = "4XX", body = weir_api::Problem), (status = 503, body = weir_api::Problem)))]
pub async fn stream(
    State(app): State<Arc<AppState>>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    weir_store::validate_stream(&stream)?;
    let from = start_at(&headers, &q, "from")?;
    let sub = app
        .store
        .subscribe(Target::Stream(stream), Filter::default(), from);
    serve(
        &app,
        Source::Store {
            sub,
            versions: true,
        },
    )
}

/// Follows a topic partition from `?offset=`. Server-Sent Events,
/// `event: record`, id = the record's offset.
#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/live", tag = "live",
    params(("topic" = String, Path, example = "orders"), ("partition" = i32, Path, example = 0), ("offset" = Option<u64>, Query),
        ("Last-Event-ID" = Option<u64>, Header)),
    responses((status = 200, content_type = "text/event-stream", body = weir_api::Record),
        (status = "4XX", body = weir_api::Problem), (status = 503, body = weir_api::Problem)))]
pub async fn partition(
    State(app): State<Arc<AppState>>,
    Path((topic, partition)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let partition: i32 = partition
        .parse()
        .map_err(|_| ApiError::bad_request(format!("partition {partition:?} is not a number")))?;
    let log = app.broker.partition(&topic, partition)?;
    let from = start_at(&headers, &q, "offset")?;
    let source = Source::Partition {
        log,
        partition,
        next: i64::try_from(from).unwrap_or(i64::MAX),
        changes: app.broker.data_dir().changes(),
    };
    serve(&app, source)
}

/// Starts the pump for one client and answers with its event stream.
fn serve(app: &Arc<AppState>, source: Source) -> Result<Response, ApiError> {
    let permit = app.live_clients.clone().try_acquire_owned().map_err(|_| {
        if let Some(m) = &app.metrics {
            m.recorder().reject(weir_metrics::Rejection::SseClientsMax);
        }
        ApiError::too_many_live_clients(app.limits.sse_clients_max)
    })?;
    let (tx, rx) = mpsc::channel(app.limits.sse_buffer.max(1));
    let lagged = Arc::new(AtomicBool::new(false));
    let bytes_max = app.limits.sse_buffer_bytes_max.clamp(1, u32::MAX as usize);
    let pump = Pump {
        source,
        tx,
        queued_bytes: Arc::new(Semaphore::new(bytes_max)),
        bytes_max,
        lagged: lagged.clone(),
        page: app.limits.sse_buffer.clamp(1, READ_PAGE_MAX),
        stopping: app.stopping.subscribe(),
        stall: Duration::from_millis(app.limits.sse_stall_ms.max(1)),
    };
    tokio::spawn(pump.run());
    let live = Live {
        rx,
        lagged,
        ended: false,
        _permit: permit,
        _counted: app.metrics.as_ref().map(|m| m.recorder().live_client()),
    };
    let keep_alive =
        KeepAlive::new().interval(Duration::from_millis(app.limits.sse_keep_alive_ms.max(1)));
    Ok(Sse::new(live).keep_alive(keep_alive).into_response())
}

/// An event in a client's queue, holding its bytes of the queue's budget.
type Queued = (SseEvent, Option<OwnedSemaphorePermit>);

/// Reads a client's events from the log into its queue.
struct Pump {
    source: Source,
    tx: mpsc::Sender<Queued>,
    /// One permit per byte queued for the client (`sse_buffer_bytes_max`).
    queued_bytes: Arc<Semaphore>,
    bytes_max: usize,
    lagged: Arc<AtomicBool>,
    page: usize,
    stall: Duration,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Pump {
    async fn run(self) {
        let Self {
            mut source,
            tx,
            queued_bytes,
            bytes_max,
            lagged,
            page,
            stall,
            mut stopping,
        } = self;
        loop {
            if *stopping.borrow() {
                return;
            }
            // The epoch is read before the log, so an event made durable
            // after the read moves it and the wait below returns.
            let epoch = source.epoch();
            let polled = tokio::task::spawn_blocking(move || {
                let events = source.poll(page);
                (source, events)
            })
            .await;
            let Ok((back, events)) = polled else {
                return;
            };
            source = back;
            let events = match events {
                Ok(events) => events,
                Err(e) => {
                    // The stream or topic went away, or the disk failed:
                    // the client hears why, and the stream ends.
                    let problem = SseEvent::default()
                        .event("error")
                        .json_data(serde_json::json!({"code": e.code, "detail": e.detail}))
                        .expect("serializes");
                    let _ = tokio::time::timeout(stall, tx.send((problem, None))).await;
                    return;
                }
            };
            if events.is_empty() {
                tokio::select! {
                    _ = source.changed(epoch) => {}
                    () = tx.closed() => return,
                    _ = stopping.wait_for(|stop| *stop) => return,
                }
                continue;
            }
            for (event, bytes) in events {
                // An event larger than the whole budget takes all of it.
                let permits = bytes.clamp(1, bytes_max) as u32;
                let queued = async {
                    let permit = queued_bytes
                        .clone()
                        .acquire_many_owned(permits)
                        .await
                        .expect("the semaphore is never closed");
                    tx.send((event, Some(permit))).await
                };
                match tokio::time::timeout(stall, queued).await {
                    Ok(Ok(())) => {}
                    // The client went away.
                    Ok(Err(_)) => return,
                    // The client left its queue full (in events or bytes)
                    // for `stall`.
                    Err(_) => {
                        lagged.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        }
    }
}

/// One client's event stream: its queue, then `event: lagged` if the pump
/// gave up on it.
struct Live {
    rx: mpsc::Receiver<Queued>,
    lagged: Arc<AtomicBool>,
    ended: bool,
    /// Counts the client against `sse_clients_max` while it is served.
    _permit: OwnedSemaphorePermit,
    /// Counts it in the metrics' live clients.
    _counted: Option<weir_metrics::OpenGuard>,
}

impl futures_core::Stream for Live {
    type Item = Result<SseEvent, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            // Handing the event on frees its bytes in the queue.
            Poll::Ready(Some((event, _bytes))) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(None) if !self.ended && self.lagged.load(Ordering::Acquire) => {
                self.ended = true;
                let notice = SseEvent::default().event("lagged").data(
                    "the client fell behind by a full queue of events; \
                     reconnect with Last-Event-ID to catch up",
                );
                Poll::Ready(Some(Ok(notice)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
