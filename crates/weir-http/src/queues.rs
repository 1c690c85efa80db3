//! Queues over HTTP (Redis Streams' model on `weir-queue`'s manager):
//! claim records of a topic for a consumer of a queue group under a lock
//! (long-polling if asked), ack, nack (release, or reject to the dead
//! letters), extend a lock, list the group's pending records, and claim
//! records idle too long. Claimed records are read `read_committed`
//! (below the last stable offset, no aborted record); offsets the log
//! has no such record at are settled as gaps and never shown. The
//! manager (`weir_deadletter::queue_slot`, shared with Kafka share groups
//! under `weir serve`) is opened on first use; a timer started with the
//! server releases locks that ran out and takes snapshots.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use weir_api::{
    Acked, AutoclaimRequest, ClaimRequest, Claimed, PendingList, PendingRecord, QueueGroupDeleted,
    QueueRecord, RecordAck, SettleRequest, Settled,
};
use weir_deadletter::queue_claim::{ClaimError, ClaimedRecord, NewGroup, claim_partition, deliver};
use weir_log::Clock as _;
use weir_queue::{AckKind, QueueError, QueueKey};

use crate::problem::{ApiError, Body};
use crate::{AppState, blocking};

/// The queue manager the API serves.
pub type QueueManager = weir_deadletter::queue_slot::QueueManager;

const LOCK_MS_DEFAULT: i64 = 30_000;
const MAX_DEFAULT: usize = 10;
const WAIT_MS_MAX: u64 = 30_000;
const DELIVERY_LIMIT_DEFAULT: u16 = 5;
/// How long a long-polling claim waits at most before it looks again
/// unwoken. It is woken by the data directory's change signal, which
/// every sync round moves (new records, journaled settlements), and by
/// releases and expired locks (`wake_claims`), so this is only a
/// fallback.
const POLL_FALLBACK: Duration = Duration::from_secs(2);
/// How often locks are expired and snapshots considered.
pub(crate) const UPKEEP: Duration =
    Duration::from_millis(weir_deadletter::queue_slot::UPKEEP_MS as u64);

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let code = match &e {
            QueueError::NotAcquired { .. } => {
                return ApiError::new(StatusCode::CONFLICT, "record_not_held", e.to_string());
            }
            QueueError::InvalidRange { .. } | QueueError::InvalidConfig(_) => "bad_request",
            QueueError::TooManyGroups { .. } | QueueError::TooManyPartitions { .. } => {
                "queue_limit"
            }
            QueueError::Storage(_) => {
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_error",
                    e.to_string(),
                );
            }
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
    }
}

impl AppState {
    /// The queue manager, opened on first use (shared with the Kafka
    /// server's share groups when `weir serve` hands both the same slot).
    pub fn queues(&self) -> Result<Arc<QueueManager>, ApiError> {
        Ok(self.queues.get()?)
    }

    /// The manager if it was opened.
    pub(crate) fn queues_opened(&self) -> Option<Arc<QueueManager>> {
        self.queues.opened()
    }
}

/// What a long poll (a claim, a persistent-subscription read) waits on
/// between looks: the data directory's change signal (new records,
/// journaled settlements) and the queue manager's releases.
pub(crate) struct WorkSignal {
    changes: Arc<weir_log::Changes>,
    seen: u64,
    released: tokio::sync::watch::Receiver<u64>,
}

impl WorkSignal {
    pub(crate) fn new(app: &AppState) -> Self {
        let changes = app.broker.data_dir().changes();
        Self {
            seen: changes.epoch(),
            changes,
            released: app.queue_released.subscribe(),
        }
    }

    /// Called before each look: what changes after it wakes the next wait.
    pub(crate) fn arm(&mut self) {
        self.seen = self.changes.epoch();
        self.released.mark_unchanged();
    }

    /// Waits for a change since [`WorkSignal::arm`], at most `limit`.
    pub(crate) async fn wait(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            tokio::select! {
                _ = self.changes.changed(self.seen) => {}
                _ = self.released.changed() => {}
            }
        })
        .await;
    }
}

/// Wakes long-polling claims if records were released since they last
/// looked (a release or an expired lock journals nothing, so the data
/// directory's change signal does not move for it).
fn wake_claims(app: &AppState, q: &QueueManager) {
    let released = q.released();
    app.queue_released.send_if_modified(|seen| {
        let moved = *seen != released;
        *seen = released;
        moved
    });
}

/// One upkeep round (expired locks released, a snapshot if due), unless
/// another front end's timer ran one just now; long-polling claims are
/// woken for what any round released.
pub(crate) fn upkeep(app: &AppState) {
    app.queues.upkeep(now_ms());
    if let Some(q) = app.queues_opened() {
        wake_claims(app, &q);
    }
}

fn now_ms() -> i64 {
    weir_log::SystemClock.now_ms()
}

fn check_consumer(consumer: &str) -> Result<(), ApiError> {
    if consumer.is_empty() || consumer.len() > 255 {
        return Err(ApiError::bad_request("consumer must be 1 to 255 bytes"));
    }
    Ok(())
}

fn check_group(group: &str) -> Result<(), ApiError> {
    if group.is_empty() || group.len() > 255 {
        return Err(ApiError::bad_request("group must be 1 to 255 bytes"));
    }
    Ok(())
}

fn lock_ms(v: Option<i64>) -> Result<i64, ApiError> {
    let v = v.unwrap_or(LOCK_MS_DEFAULT);
    if !(1..=weir_queue::LOCK_MS_MAX).contains(&v) {
        return Err(ApiError::bad_request(format!(
            "lock_ms must be 1 to {}",
            weir_queue::LOCK_MS_MAX
        )));
    }
    Ok(v)
}

fn max(v: Option<usize>, page_max: usize) -> Result<usize, ApiError> {
    let v = v.unwrap_or(MAX_DEFAULT);
    if v == 0 || v > page_max {
        return Err(ApiError::bad_request(format!(
            "max must be 1 to {page_max}"
        )));
    }
    Ok(v)
}

/// Weir's own topics (the queue journal among them) are not queued.
fn refuse_internal(t: &weir_broker::Topic) -> Result<(), ApiError> {
    if t.internal {
        return Err(ApiError::bad_request(format!(
            "{} is an internal topic; it cannot be claimed from",
            t.name
        )));
    }
    Ok(())
}

fn key(group: &str, topic: &str, partition: i32) -> QueueKey {
    QueueKey {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    }
}

impl From<ClaimError> for ApiError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Queue(e) => e.into(),
            ClaimError::Broker(e) => e.into(),
        }
    }
}

/// The claimed records as the API shows them.
fn shown(
    claimed: Vec<ClaimedRecord>,
    partition: i32,
    deadline_ms: i64,
    out: &mut Vec<QueueRecord>,
) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    out.extend(claimed.into_iter().map(|c| {
        let r = c.record;
        QueueRecord {
            partition,
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: r.key.as_deref().map(text),
            value: r
                .value
                .as_deref()
                .and_then(|v| serde_json::from_slice(v).ok()),
            value_base64: r.value.as_deref().map(|v| B64.encode(v)),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.as_deref().map(text).unwrap_or_default()))
                .collect(),
            deliveries: c.deliveries,
            lock_deadline_ms: deadline_ms,
        }
    }));
}

/// One pass over the topic's partitions, from a rotating first one.
fn claim_once(
    app: &AppState,
    group: &str,
    topic: &str,
    req: &ClaimRequest,
    max: usize,
    lock_ms: i64,
) -> Result<Vec<QueueRecord>, ApiError> {
    let earliest = match req.start.as_deref() {
        None | Some("latest") => false,
        Some("earliest") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "start must be \"earliest\" or \"latest\", not {other:?}"
            )));
        }
    };
    let delivery_limit = req.delivery_limit.unwrap_or(DELIVERY_LIMIT_DEFAULT);
    let q = app.queues()?;
    let t = app.broker.topic(topic)?;
    refuse_internal(&t)?;
    let n = t.partition_count() as i32;
    let first = app
        .round_robin
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed) as i32;
    let mut out = Vec::new();
    for i in 0..n {
        if out.len() >= max {
            break;
        }
        let partition = (first.rem_euclid(n) + i) % n;
        let now = now_ms();
        let mut claimed = Vec::new();
        claim_partition(
            &q,
            &key(group, topic, partition),
            NewGroup {
                earliest,
                delivery_limit,
            },
            &req.consumer,
            max - out.len(),
            lock_ms,
            now,
            &mut claimed,
        )?;
        shown(claimed, partition, now + lock_ms, &mut out);
    }
    Ok(out)
}

/// Claims up to `max` records of the topic for `consumer`, each locked
/// for `lock_ms`; with `wait_ms`, waits that long for records when there
/// are none.
#[utoipa::path(post, path = "/v1/queues/{group}/topics/{topic}/claim", tag = "queues",
    params(("group" = String, Path), ("topic" = String, Path)),
    request_body = ClaimRequest,
    responses((status = 200, body = Claimed), (status = "4XX", body = weir_api::Problem)))]
pub async fn claim(
    State(app): State<Arc<AppState>>,
    Path((group, topic)): Path<(String, String)>,
    Body(req): Body<ClaimRequest>,
) -> Result<Json<Claimed>, ApiError> {
    check_group(&group)?;
    check_consumer(&req.consumer)?;
    let lock_ms = lock_ms(req.lock_ms)?;
    let max = max(req.max, app.limits.page_max)?;
    let wait_ms = req.wait_ms.unwrap_or(0);
    if wait_ms > WAIT_MS_MAX {
        return Err(ApiError::bad_request(format!(
            "wait_ms must be at most {WAIT_MS_MAX}"
        )));
    }
    let until = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let req = Arc::new(req);
    let mut work = WorkSignal::new(&app);
    loop {
        work.arm();
        let (app2, group2, topic2, req2) = (app.clone(), group.clone(), topic.clone(), req.clone());
        let records =
            blocking(move || claim_once(&app2, &group2, &topic2, &req2, max, lock_ms)).await?;
        let now = tokio::time::Instant::now();
        if !records.is_empty() || now >= until {
            return Ok(Json(Claimed { records }));
        }
        work.wait((until - now).min(POLL_FALLBACK)).await;
    }
}

/// Hands `consumer` records other consumers of the group have held for
/// `min_idle_ms` or longer, each as a new delivery (Redis' XAUTOCLAIM).
#[utoipa::path(post, path = "/v1/queues/{group}/topics/{topic}/autoclaim", tag = "queues",
    params(("group" = String, Path), ("topic" = String, Path)),
    request_body = AutoclaimRequest,
    responses((status = 200, body = Claimed), (status = "4XX", body = weir_api::Problem)))]
pub async fn autoclaim(
    State(app): State<Arc<AppState>>,
    Path((group, topic)): Path<(String, String)>,
    Body(req): Body<AutoclaimRequest>,
) -> Result<Json<Claimed>, ApiError> {
    check_group(&group)?;
    check_consumer(&req.consumer)?;
    let lock_ms = lock_ms(req.lock_ms)?;
    let max = max(req.max, app.limits.page_max)?;
    if req.min_idle_ms < 0 {
        return Err(ApiError::bad_request("min_idle_ms must not be negative"));
    }
    let app2 = app.clone();
    let records = blocking(move || -> Result<_, ApiError> {
        let q = app2.queues()?;
        let t = app2.broker.topic(&topic)?;
        refuse_internal(&t)?;
        let n = t.partition_count() as i32;
        let mut out = Vec::new();
        for partition in 0..n {
            let want = max - out.len();
            if want == 0 {
                break;
            }
            let key = key(&group, &topic, partition);
            let now = now_ms();
            let acquired =
                q.claim_idle(&key, &req.consumer, req.min_idle_ms, want, lock_ms, now)?;
            let mut claimed = Vec::new();
            deliver(&q, &key, &req.consumer, &acquired, &mut claimed)?;
            shown(claimed, partition, now + lock_ms, &mut out);
        }
        Ok(out)
    })
    .await?;
    Ok(Json(Claimed { records }))
}

async fn settle(
    app: Arc<AppState>,
    group: String,
    topic: String,
    req: RecordAck,
    kind: AckKind,
) -> Result<Json<Acked>, ApiError> {
    check_group(&group)?;
    check_consumer(&req.consumer)?;
    let (partition, offset) = (req.partition, req.offset);
    // An accept of an opened manager writes no dead letter and appends
    // without waiting (memory, at most a page-cache write): it runs here,
    // sparing the hop to the blocking pool. A release or reject may write
    // dead letters (durable), and opening replays the journal: those go
    // to the blocking pool.
    let inline = kind == AckKind::Accept && app.queues_opened().is_some();
    let app2 = app.clone();
    let work = move || -> Result<_, ApiError> {
        app2.broker.topic(&topic)?.partition(partition)?;
        let q = app2.queues()?;
        let unsynced = q.acknowledge_nowait(
            &key(&group, &topic, partition),
            &req.consumer,
            offset,
            offset,
            kind,
        )?;
        Ok((q, unsynced))
    };
    let (q, unsynced) = if inline {
        work()?
    } else {
        blocking(work).await?
    };
    // Answered once durable; the wait holds no thread, and concurrent
    // settlements share its sync.
    if let Some(end) = unsynced.journal_end() {
        let synced = app.broker.share_state_durable(end).await;
        q.synced(synced.map_err(|e| e.to_string()))?;
    }
    wake_claims(&app, &q);
    let outcome = match kind {
        AckKind::Accept => "accepted",
        AckKind::Release => "released",
        _ => "rejected",
    };
    Ok(Json(Acked {
        partition,
        offset,
        outcome: outcome.to_owned(),
        lock_deadline_ms: None,
    }))
}

/// Acknowledges a record the consumer holds: done, never delivered again.
/// Answered once that is durable.
#[utoipa::path(post, path = "/v1/queues/{group}/topics/{topic}/ack", tag = "queues",
    params(("group" = String, Path), ("topic" = String, Path)),
    request_body = RecordAck,
    responses((status = 200, body = Acked), (status = "4XX", body = weir_api::Problem)))]
pub async fn ack(
    State(app): State<Arc<AppState>>,
    Path((group, topic)): Path<(String, String)>,
    Body(req): Body<RecordAck>,
) -> Result<Json<Acked>, ApiError> {
    settle(app, group, topic, req, AckKind::Accept).await
}

/// Gives a held record back: delivered again (released), or with
/// `"reject": true` never again, written to the topic's dead letters.
#[utoipa::path(post, path = "/v1/queues/{group}/topics/{topic}/nack", tag = "queues",
    params(("group" = String, Path), ("topic" = String, Path)),
    request_body = RecordAck,
    responses((status = 200, body = Acked), (status = "4XX", body = weir_api::Problem)))]
pub async fn nack(
    State(app): State<Arc<AppState>>,
    Path((group, topic)): Path<(String, String)>,
    Body(req): Body<RecordAck>,
) -> Result<Json<Acked>, ApiError> {
    let kind = if req.reject {
        AckKind::Reject
    } else {
        AckKind::Release
    };
    settle(app, group, topic, req, kind).await
}

/// Most offsets one settle names.
const SETTLE_OFFSETS_MAX: usize = 1_000;

/// Settles many held records of one partition alike (accept, release or
/// reject), in one durable write: Redis' `XACK` with several ids. Offsets
/// the consumer does not hold are listed and left as they are.
#[utoipa::path(post, path = "/v1/queues/{group}/topics/{topic}/settle", tag = "queues",
    params(("group" = String, Path), ("topic" = String, Path)),
    request_body = SettleRequest,
    responses((status = 200, body = Settled), (status = "4XX", body = weir_api::Problem)))]
pub async fn settle_many(
    State(app): State<Arc<AppState>>,
    Path((group, topic)): Path<(String, String)>,
    Body(req): Body<SettleRequest>,
) -> Result<Json<Settled>, ApiError> {
    check_group(&group)?;
    check_consumer(&req.consumer)?;
    let (kind, outcome) = match req.action.as_deref().unwrap_or("accept") {
        "accept" => (AckKind::Accept, "accepted"),
        "release" => (AckKind::Release, "released"),
        "reject" => (AckKind::Reject, "rejected"),
        other => {
            return Err(ApiError::bad_request(format!(
                "action must be accept, release or reject, not {other:?}"
            )));
        }
    };
    let mut offsets = req.offsets.clone();
    offsets.sort_unstable();
    offsets.dedup();
    if offsets.is_empty()
        || req.offsets.len() > SETTLE_OFFSETS_MAX
        || offsets.len() != req.offsets.len()
    {
        return Err(ApiError::bad_request(format!(
            "offsets must name 1 to {SETTLE_OFFSETS_MAX} offsets, each once"
        )));
    }
    let partition = req.partition;
    let app2 = app.clone();
    let (q, settled, not_held, end) = blocking(move || -> Result<_, ApiError> {
        app2.broker.topic(&topic)?.partition(partition)?;
        let q = app2.queues()?;
        let key = key(&group, &topic, partition);
        let (mut settled, mut not_held, mut end) = (Vec::new(), Vec::new(), None);
        // Each run of consecutive offsets is one range; a run with an
        // offset not held is settled offset by offset.
        let mut settle = |first: i64, last: i64| {
            q.acknowledge_nowait(&key, &req.consumer, first, last, kind)
                .map(|u| end = end.max(u.journal_end()))
        };
        for run in offsets.chunk_by(|a, b| b - a == 1) {
            let (first, last) = (run[0], run[run.len() - 1]);
            match settle(first, last) {
                Ok(()) => settled.extend_from_slice(run),
                Err(QueueError::NotAcquired { .. }) => {
                    for &o in run {
                        match settle(o, o) {
                            Ok(()) => settled.push(o),
                            Err(QueueError::NotAcquired { .. }) => not_held.push(o),
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((q, settled, not_held, end))
    })
    .await?;
    // Answered once durable, as a single ack is.
    if let Some(end) = end {
        let synced = app.broker.share_state_durable(end).await;
        q.synced(synced.map_err(|e| e.to_string()))?;
    }
    wake_claims(&app, &q);
    Ok(Json(Settled {
        partition,
        outcome: outcome.to_owned(),
        settled,
        not_held,
    }))
}

/// Extends the lock on a held record to `lock_ms` from now.
#[utoipa::path(post, path = "/v1/queues/{group}/topics/{topic}/extend", tag = "queues",
    params(("group" = String, Path), ("topic" = String, Path)),
    request_body = RecordAck,
    responses((status = 200, body = Acked), (status = "4XX", body = weir_api::Problem)))]
pub async fn extend(
    State(app): State<Arc<AppState>>,
    Path((group, topic)): Path<(String, String)>,
    Body(req): Body<RecordAck>,
) -> Result<Json<Acked>, ApiError> {
    check_group(&group)?;
    check_consumer(&req.consumer)?;
    let lock_ms = lock_ms(req.lock_ms)?;
    let (partition, offset) = (req.partition, req.offset);
    let deadline = blocking(move || -> Result<i64, ApiError> {
        app.broker.topic(&topic)?.partition(partition)?;
        let q = app.queues()?;
        let key = key(&group, &topic, partition);
        Ok(q.renew(&key, &req.consumer, offset, offset, lock_ms, now_ms())?)
    })
    .await?;
    Ok(Json(Acked {
        partition,
        offset,
        outcome: "extended".to_owned(),
        lock_deadline_ms: Some(deadline),
    }))
}

/// Deletes a queue group's state in every partition (Redis' `XGROUP
/// DESTROY`): what its consumers hold is dropped with it, and a later
/// claim starts the group afresh. A Kafka share group of the same id
/// (one namespace) with members is refused (409, as Kafka's
/// NON_EMPTY_GROUP); an unknown group is 404.
#[utoipa::path(delete, path = "/v1/queues/{group}", tag = "queues",
    params(("group" = String, Path)),
    responses((status = 200, body = QueueGroupDeleted), (status = "4XX", body = weir_api::Problem)))]
pub async fn delete_group(
    State(app): State<Arc<AppState>>,
    Path(group): Path<String>,
) -> Result<Json<QueueGroupDeleted>, ApiError> {
    check_group(&group)?;
    let members = app
        .groups
        .share_describe(&group)
        .map_or(0, |d| d.members.len());
    if members > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "group_not_empty",
            format!("share group {group:?} has {members} members; they must leave first"),
        ));
    }
    let (group2, app2) = (group.clone(), app.clone());
    let partitions =
        blocking(move || -> Result<_, ApiError> { Ok(app2.queues()?.delete_group(&group2)?) })
            .await?;
    if partitions == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "queue_group_not_found",
            format!("queue group {group:?} has no state"),
        ));
    }
    Ok(Json(QueueGroupDeleted { group, partitions }))
}

/// The records the group's consumers hold, with owner, idle time and
/// deliveries.
#[utoipa::path(get, path = "/v1/queues/{group}/pending", tag = "queues",
    params(("group" = String, Path)),
    responses((status = 200, body = PendingList), (status = "4XX", body = weir_api::Problem)))]
pub async fn pending(
    State(app): State<Arc<AppState>>,
    Path(group): Path<String>,
) -> Result<Json<PendingList>, ApiError> {
    check_group(&group)?;
    let page_max = app.limits.page_max;
    let pending = blocking(move || -> Result<_, ApiError> {
        let q = app.queues()?;
        Ok(q.pending(&group, now_ms())
            .into_iter()
            .take(page_max)
            .map(|(k, p)| PendingRecord {
                topic: k.topic,
                partition: k.partition,
                offset: p.offset,
                consumer: p.member,
                idle_ms: p.idle_ms,
                deliveries: p.deliveries,
                lock_deadline_ms: p.deadline_ms,
            })
            .collect())
    })
    .await?;
    Ok(Json(PendingList { pending }))
}
