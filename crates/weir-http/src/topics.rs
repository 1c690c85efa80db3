//! Topics over HTTP: create, list, describe, delete; produce records (JSON
//! or base64 values, keys partitioned with murmur2 as the Java client does)
//! and read them back from a partition and offset.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use weir_api::{
    AlterConfigs, CreateTopic, PartitionInfo, Produce, ProduceResult, Produced, Record, Records,
    TopicInfo, TopicList, TopicSummary,
};
use weir_broker::{Topic, partitioner};
use weir_log::Clock as _;
use weir_log::batch::{self, BatchBuilder, BatchHeader};

use crate::auth::{Caller, may_describe};
use crate::problem::{ApiError, Body};
use crate::trace::{RequestTrace, TRACEPARENT, TRACESTATE};
use crate::{AppState, blocking, partition_page};
use weir_auth::acl::{CLUSTER_NAME, Operation, ResourceType};

fn info(topic: &Topic) -> TopicInfo {
    let partitions = (0..topic.partition_count() as i32)
        .filter_map(|p| topic.partition(p).ok().map(|log| (p, log)))
        .map(|(p, log)| PartitionInfo {
            partition: p,
            start_offset: log.start_offset(),
            end_offset: log.end_offset(),
            durable_offset: log.high_watermark(),
        })
        .collect();
    TopicInfo {
        name: topic.name.clone(),
        internal: topic.internal,
        partitions,
        configs: topic
            .config()
            .entries()
            .into_iter()
            .map(|e| (e.name.to_owned(), e.value))
            .collect(),
    }
}

/// Lists the topics.
#[utoipa::path(get, path = "/v1/topics", tag = "topics",
    responses((status = 200, body = TopicList)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
) -> Json<TopicList> {
    let caller = caller.as_ref().map(|c| &c.0);
    let topics = app
        .broker
        .topics()
        .iter()
        .filter(|t| may_describe(caller, ResourceType::Topic, &t.name))
        .map(|t| TopicSummary {
            name: t.name.clone(),
            partitions: t.partition_count() as u32,
            internal: t.internal,
        })
        .collect();
    Json(TopicList { topics })
}

/// Creates a topic.
#[utoipa::path(post, path = "/v1/topics", tag = "topics", request_body = CreateTopic,
    responses((status = 201, body = TopicInfo), (status = "4XX", body = weir_api::Problem)))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Body(req): Body<CreateTopic>,
) -> Result<(StatusCode, Json<TopicInfo>), ApiError> {
    // Kafka's rule: Create on the cluster, or on the topic itself.
    if let Some(Extension(c)) = &caller
        && !c.allows(Operation::Create, ResourceType::Cluster, CLUSTER_NAME)
    {
        c.check(Operation::Create, ResourceType::Topic, &req.name)?;
    }
    let broker = app.broker.clone();
    let partitions = req
        .partitions
        .map_or(i64::from(broker.config().default_partitions), i64::from);
    let topic = blocking(move || {
        let configs: Vec<(&str, &str)> = req
            .configs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        broker.create_topic(&req.name, partitions, -1, &configs, false)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(info(&topic))))
}

/// Describes a topic: partitions with their offsets, and configs.
#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, example = "orders")),
    responses((status = 200, body = TopicInfo), (status = 404, body = weir_api::Problem)))]
pub async fn describe(
    State(app): State<Arc<AppState>>,
    Path(topic): Path<String>,
) -> Result<Json<TopicInfo>, ApiError> {
    let t = app.broker.topic(&topic)?;
    Ok(Json(info(&t)))
}

/// Alters a topic's configs (set some, reset others to their defaults),
/// all or nothing; answers with the topic as it now is.
#[utoipa::path(patch, path = "/v1/topics/{topic}/configs", tag = "topics",
    params(("topic" = String, Path, example = "orders")), request_body = AlterConfigs,
    responses((status = 200, body = TopicInfo), (status = 404, body = weir_api::Problem),
        (status = "4XX", body = weir_api::Problem)))]
pub async fn alter_configs(
    State(app): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Body(req): Body<AlterConfigs>,
) -> Result<Json<TopicInfo>, ApiError> {
    if req.set.is_empty() && req.reset.is_empty() {
        return Err(ApiError::bad_request("no configs to set or reset"));
    }
    if let Some(both) = req.reset.iter().find(|k| req.set.contains_key(*k)) {
        return Err(ApiError::bad_request(format!(
            "config {both:?} is both set and reset"
        )));
    }
    let broker = app.broker.clone();
    let name = topic.clone();
    blocking(move || {
        let changes: Vec<(&str, Option<&str>)> = req
            .set
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .chain(req.reset.iter().map(|k| (k.as_str(), None)))
            .collect();
        broker.alter_topic_config(&name, &changes, req.validate_only)
    })
    .await?;
    let t = app.broker.topic(&topic)?;
    Ok(Json(info(&t)))
}

/// Deletes a topic with all its data.
#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, example = "orders")),
    responses((status = 204), (status = "4XX", body = weir_api::Problem)))]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path(topic): Path<String>,
) -> Result<StatusCode, ApiError> {
    let broker = app.broker.clone();
    blocking(move || broker.delete_topic(&topic)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Produces records; answers once they are durable.
#[utoipa::path(post, path = "/v1/topics/{topic}/records", tag = "topics",
    params(("topic" = String, Path, example = "orders")), request_body = Produce,
    responses((status = 200, body = ProduceResult), (status = "4XX", body = weir_api::Problem)))]
pub async fn produce(
    State(app): State<Arc<AppState>>,
    Path(topic): Path<String>,
    request_trace: Option<Extension<RequestTrace>>,
    Body(mut req): Body<Produce>,
) -> Result<Json<ProduceResult>, ApiError> {
    // A record without a `traceparent` header of its own gets the
    // request's (valid) one, as an appended event does; no work per record
    // when the request has none.
    if let Some(Extension(RequestTrace(Some(t)))) = request_trace {
        let (tp, state) = (t.parent.to_string(), t.state().map(str::to_owned));
        for r in &mut req.records {
            if !r.headers.contains_key(TRACEPARENT) {
                r.headers.insert(TRACEPARENT.to_owned(), tp.clone());
                if let Some(state) = &state {
                    r.headers.insert(TRACESTATE.to_owned(), state.clone());
                }
            }
        }
    }
    if req.records.is_empty() {
        return Err(ApiError::bad_request("no records to produce"));
    }
    let t = app.broker.topic(&topic)?;
    let n = t.partition_count() as u32;
    // Each record's partition and bytes, grouped into one batch per
    // partition.
    let mut by_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    let mut values = Vec::with_capacity(req.records.len());
    for (i, r) in req.records.iter().enumerate() {
        let value = match (&r.value, &r.value_base64) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(format!(
                    "record {i}: give value or value_base64, not both"
                )));
            }
            (Some(v), None) => Some(v.to_string().into_bytes()),
            (None, Some(b)) => Some(B64.decode(b).map_err(|e| {
                ApiError::bad_request(format!("record {i}: value_base64 is not base64: {e}"))
            })?),
            (None, None) => None,
        };
        let partition = match (r.partition, &r.key) {
            (Some(p), _) => p,
            (None, Some(k)) => partitioner::partition_for_key(k.as_bytes(), n) as i32,
            (None, None) => (app.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(n)) as i32,
        };
        by_partition.entry(partition).or_default().push(i);
        values.push(value);
    }
    let broker = app.broker.clone();
    let records = req.records;
    let n_records = records.len();
    // Written on the blocking pool (encoding and validating a batch per
    // partition); the wait for the fsync round holds no thread.
    let pending = blocking(move || {
        let now = weir_log::SystemClock.now_ms();
        let mut pending = Vec::new();
        for (partition, indexes) in by_partition {
            let mut b = BatchBuilder::new(now);
            for &i in &indexes {
                let headers: Vec<(&str, &[u8])> = records[i]
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_bytes()))
                    .collect();
                b.push(
                    now,
                    records[i].key.as_deref().map(str::as_bytes),
                    values[i].as_deref(),
                    &headers,
                );
            }
            let written = broker.produce_nowait(&topic, partition, &mut b.build())?;
            pending.push((partition, indexes, written));
        }
        Ok::<_, weir_broker::BrokerError>(pending)
    })
    .await?;
    let mut offsets = vec![
        Produced {
            partition: 0,
            offset: 0
        };
        n_records
    ];
    for (partition, indexes, written) in pending {
        let info = written.durable().await?;
        for (k, &i) in indexes.iter().enumerate() {
            offsets[i] = Produced {
                partition,
                offset: info.base_offset + k as i64,
            };
        }
    }
    Ok(Json(ProduceResult { offsets }))
}

/// Reads records of a partition from an offset (`?offset=`, default 0;
/// `?limit=`, default 100).
#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/records", tag = "topics",
    params(("topic" = String, Path, example = "orders"), ("partition" = i32, Path, example = 0),
        ("offset" = Option<i64>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Records), (status = "4XX", body = weir_api::Problem)))]
pub async fn fetch(
    State(app): State<Arc<AppState>>,
    Path((topic, partition)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Records>, ApiError> {
    let (partition, offset, limit) = partition_page(&partition, &q, app.limits.page_max)?;
    let topic_state = app.broker.topic(&topic)?;
    let log = topic_state.partition(partition)?;
    let out = blocking(move || -> Result<Records, ApiError> {
        let hwm = log.high_watermark();
        let (records, next_offset) = read_records(&log, partition, offset, limit)?;
        let bytes: usize = records
            .iter()
            .map(|r| {
                // The value's own bytes, from its base64 length.
                let value = r.value_base64.as_ref().map_or(0, |v| {
                    v.len() / 4 * 3 - v.bytes().rev().take_while(|&b| b == b'=').count()
                });
                r.key.as_ref().map_or(0, String::len) + value
            })
            .sum();
        topic_state
            .traffic
            .count_out(records.len() as u64, bytes as u64);
        Ok(Records {
            records,
            next_offset,
            high_watermark: hwm,
        })
    })
    .await?;
    Ok(Json(out))
}

/// Up to `limit` records of a partition's log from `offset` (below the
/// high watermark), and the offset to read from next. Blocks on disk I/O.
pub(crate) fn read_records(
    log: &weir_log::Log,
    partition: i32,
    offset: i64,
    limit: usize,
) -> Result<(Vec<Record>, i64), ApiError> {
    let mut records = Vec::new();
    let mut at = offset;
    let hwm = log.high_watermark();
    while records.len() < limit && at < hwm {
        let read = log
            .read(at, 1024 * 1024)
            .map_err(weir_broker::BrokerError::from)?;
        if read.bytes.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < read.bytes.len() {
            let Ok(h) = BatchHeader::parse(&read.bytes[pos..]) else {
                break;
            };
            let end = pos + h.total_bytes();
            let whole = &read.bytes[pos..end];
            let storage =
                |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", e);
            let body = weir_broker::compression::record_bytes(whole, DECOMPRESSED_BYTES_MAX)
                .map_err(|e| storage(e.to_string()))?;
            let decoded = batch::parse_records(&body, &h).map_err(|e| storage(e.to_string()))?;
            // Under LogAppendTime every record's time is the broker's, the
            // batch's max timestamp, whatever the producer put in it.
            let append_time = h.is_log_append_time().then_some(h.max_timestamp);
            for r in decoded {
                if r.offset >= at && records.len() < limit {
                    records.push(to_api(partition, &r, append_time));
                }
            }
            pos = end;
        }
        at = read.next_offset;
    }
    let next_offset = records
        .last()
        .map_or(at.min(hwm).max(offset), |r| r.offset + 1);
    Ok((records, next_offset))
}

/// Most bytes one compressed batch may decompress to when read back.
const DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

fn to_api(partition: i32, r: &batch::Record<'_>, append_time: Option<i64>) -> Record {
    let value = r.value.and_then(|v| serde_json::from_slice(v).ok());
    Record {
        partition,
        offset: r.offset,
        timestamp_ms: append_time.unwrap_or(r.timestamp),
        key: r.key.map(|k| String::from_utf8_lossy(k).into_owned()),
        value,
        value_base64: r.value.map(|v| B64.encode(v)),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| {
                let v = v.map(|v| String::from_utf8_lossy(v).into_owned());
                ((*k).to_owned(), v.unwrap_or_default())
            })
            .collect(),
    }
}
