//! Dead letters over HTTP: list the dead-letter topics with their depth
//! and oldest record, read a partition's dead letters decoded, and replay
//! one, a range or all of them to their origin (bounded per call; the
//! answer says how to go on), and purge them (all partitions, or one below
//! an offset) by moving log start offsets. The work is `weir-deadletter`'s. Also the
//! alerts on dead-letter depth and group lag that `weir serve` evaluates.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use weir_api::{
    Alert, AlertList, DeadLetterOrigin, DeadLetterRecord, DeadLetterTopic, DeadLetterTopics,
    DeadLetters, NotDeadLetter, PurgeRequest, PurgeResult, PurgedPartition, ReplayRequest,
    ReplayResult,
};
use weir_deadletter::format::{DEFAULT_SUFFIX, DeadLetter};
use weir_deadletter::{Purge, Selection};

use crate::auth::{Caller, may_describe};
use crate::problem::{ApiError, Body};
use crate::{AppState, blocking, partition_page};
use weir_auth::acl::ResourceType;

/// Lists the dead-letter topics (`<topic>.dlq`).
#[utoipa::path(get, path = "/v1/dlq", tag = "dead letters",
    responses((status = 200, body = DeadLetterTopics)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<DeadLetterTopics>, ApiError> {
    let caller = caller.as_ref().map(|c| &c.0);
    let broker = app.broker.clone();
    let topics = blocking(move || weir_deadletter::list(&broker, DEFAULT_SUFFIX)).await?;
    Ok(Json(DeadLetterTopics {
        topics: topics
            .into_iter()
            .filter(|t| may_describe(caller, ResourceType::DeadLetterTopic, &t.origin_topic))
            .map(|t| DeadLetterTopic {
                topic: t.topic,
                origin_topic: t.origin_topic,
                origin_exists: t.origin_exists,
                partitions: t.partitions as u32,
                depth: t.depth,
                oldest_timestamp_ms: t.oldest_timestamp_ms,
            })
            .collect(),
    }))
}

fn to_api(partition: i32, offset: i64, d: DeadLetter) -> DeadLetterRecord {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    DeadLetterRecord {
        partition,
        offset,
        key: d.key.as_deref().map(text),
        value: d
            .value
            .as_deref()
            .and_then(|v| serde_json::from_slice(v).ok()),
        value_base64: d.value.as_deref().map(|v| B64.encode(v)),
        headers: d
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_deref().map(text).unwrap_or_default()))
            .collect(),
        error: d.failure.error,
        error_kind: d.failure.kind.as_str().to_owned(),
        attempts: d.failure.attempts,
        first_failure_ms: d.failure.first_failure_ms,
        last_failure_ms: d.failure.last_failure_ms,
        group: d.failure.group,
        origin: DeadLetterOrigin {
            topic: d.origin.topic,
            partition: d.origin.partition,
            offset: d.origin.offset,
            timestamp_ms: d.origin.timestamp_ms,
        },
        replayed_from: d
            .replay
            .as_ref()
            .map(|r| format!("{}/{}/{}", r.from_topic, r.from_partition, r.from_offset)),
        replays: d.replay.map_or(0, |r| r.replays),
    }
}

/// Reads a partition's dead letters from `?offset=` (default 0), at most
/// `?limit=` (default 100); records that are not dead letters are listed
/// apart, with the reason.
#[utoipa::path(get, path = "/v1/dlq/{topic}/partitions/{partition}/records", tag = "dead letters",
    params(("topic" = String, Path, example = "orders.dlq"), ("partition" = i32, Path, example = 0),
        ("offset" = Option<i64>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = DeadLetters), (status = "4XX", body = weir_api::Problem)))]
pub async fn read(
    State(app): State<Arc<AppState>>,
    Path((topic, partition)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<DeadLetters>, ApiError> {
    let (partition, offset, limit) = partition_page(&partition, &q, app.limits.page_max)?;
    let broker = app.broker.clone();
    let page =
        blocking(move || weir_deadletter::read(&broker, &topic, partition, offset, limit)).await?;
    Ok(Json(DeadLetters {
        records: page
            .dead_letters
            .into_iter()
            .map(|(offset, d)| to_api(partition, offset, d))
            .collect(),
        not_dead_letters: page
            .not_dead_letters
            .into_iter()
            .map(|(offset, e)| NotDeadLetter {
                offset,
                reason: e.to_string(),
            })
            .collect(),
        next_offset: page.next_offset,
    }))
}

/// The selection a request names, or why it names none.
fn selection(req: &ReplayRequest) -> Result<Selection, ApiError> {
    let bad = |detail: &str| Err(ApiError::bad_request(detail));
    match (req.all, req.partition, req.offset, req.to_offset) {
        (true, None, None, None) => Ok(Selection::All),
        (true, Some(partition), offset, None) => Ok(Selection::AllFrom {
            partition,
            offset: offset.unwrap_or(0),
        }),
        (true, ..) => bad("\"all\" takes at most a partition and an offset to go on from"),
        (false, Some(partition), Some(offset), None) => Ok(Selection::One { partition, offset }),
        (false, Some(partition), Some(first_offset), Some(last_offset)) => {
            if last_offset < first_offset {
                return bad("to_offset is below offset");
            }
            Ok(Selection::Range {
                partition,
                first_offset,
                last_offset,
            })
        }
        _ => {
            bad("name one record (partition and offset), a range (and to_offset), or \"all\": true")
        }
    }
}

fn to_request(s: Selection) -> ReplayRequest {
    match s {
        Selection::One { partition, offset } => ReplayRequest {
            partition: Some(partition),
            offset: Some(offset),
            ..ReplayRequest::default()
        },
        Selection::Range {
            partition,
            first_offset,
            last_offset,
        } => ReplayRequest {
            partition: Some(partition),
            offset: Some(first_offset),
            to_offset: Some(last_offset),
            ..ReplayRequest::default()
        },
        Selection::All => ReplayRequest {
            all: true,
            ..ReplayRequest::default()
        },
        Selection::AllFrom { partition, offset } => ReplayRequest {
            all: true,
            partition: Some(partition),
            offset: Some(offset),
            to_offset: None,
        },
    }
}

/// Replays dead letters to their origin topic and partition, in order:
/// the original key, value and headers, with `weir.dlq.replayed.from` and
/// `weir.dlq.replays`. Each call is bounded; `next` goes on.
#[utoipa::path(post, path = "/v1/dlq/{topic}/replay", tag = "dead letters",
    params(("topic" = String, Path, example = "orders.dlq")), request_body = ReplayRequest,
    responses((status = 200, body = ReplayResult), (status = "4XX", body = weir_api::Problem)))]
pub async fn replay(
    State(app): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Body(req): Body<ReplayRequest>,
) -> Result<Json<ReplayResult>, ApiError> {
    let selection = selection(&req)?;
    let broker = app.broker.clone();
    let outcome = blocking(move || weir_deadletter::replay(&broker, &topic, selection)).await?;
    Ok(Json(ReplayResult {
        replayed: outcome.replayed,
        skipped_not_dead_letters: outcome.skipped_not_dead_letters,
        next: outcome.next.map(to_request),
    }))
}

/// What a purge request names, or why it names nothing: `all` alone, or a
/// partition with `to_offset`, never a guess (no accidental purge of
/// everything).
fn purge_of(req: &PurgeRequest) -> Result<Purge, ApiError> {
    match (req.all, req.partition, req.to_offset) {
        (true, None, None) => Ok(Purge::All),
        (false, Some(partition), Some(to_offset)) => Ok(Purge::Below {
            partition,
            to_offset,
        }),
        (true, ..) => Err(ApiError::bad_request(
            "\"all\": true purges every partition; it takes no partition or to_offset",
        )),
        _ => Err(ApiError::bad_request(
            "name a partition and to_offset (records below it are purged), or \"all\": true",
        )),
    }
}

/// Purges dead letters for good: every partition (`{"all": true}`), or one
/// partition's records below `to_offset` (exclusive). The partitions' log
/// start offsets move, durably before the answer, so Kafka clients see
/// them gone too; the answer counts the records purged per partition.
/// Only dead-letter topics (`<topic>.dlq`) can be purged.
#[utoipa::path(post, path = "/v1/dlq/{topic}/purge", tag = "dead letters",
    params(("topic" = String, Path, example = "orders.dlq")), request_body = PurgeRequest,
    responses((status = 200, body = PurgeResult), (status = "4XX", body = weir_api::Problem)))]
pub async fn purge(
    State(app): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Body(req): Body<PurgeRequest>,
) -> Result<Json<PurgeResult>, ApiError> {
    let what = purge_of(&req)?;
    let broker = app.broker.clone();
    let purged =
        blocking(move || weir_deadletter::purge(&broker, DEFAULT_SUFFIX, &topic, what)).await?;
    Ok(Json(PurgeResult {
        purged: purged.iter().map(|p| p.purged).sum(),
        partitions: purged
            .into_iter()
            .map(|p| PurgedPartition {
                partition: p.partition,
                purged: p.purged,
                log_start_offset: p.log_start_offset,
            })
            .collect(),
    }))
}

/// The alert thresholds and the alerts firing now (dead-letter depth and
/// consumer-group lag; `weir serve` evaluates them at an interval).
#[utoipa::path(get, path = "/v1/alerts", tag = "dead letters",
    responses((status = 200, body = AlertList)))]
pub async fn alerts(State(app): State<Arc<AppState>>) -> Json<AlertList> {
    let rules = app.alerts.rules();
    Json(AlertList {
        dead_letter_depth_max: rules.dead_letter_depth_max,
        group_lag_max: rules.group_lag_max,
        alerts: app
            .alerts
            .firing()
            .into_iter()
            .map(|a| Alert {
                kind: a.kind.as_str().to_owned(),
                subject: a.subject,
                value: a.value,
                threshold: a.threshold,
                since_ms: a.since_ms,
            })
            .collect(),
        dropped: app.alerts.dropped(),
    })
}
