//! Consumer groups over HTTP: list, describe (members, assignments,
//! committed and end offsets, lag per partition), reset offsets (a dry run
//! unless asked to execute; refused while the group has members, as
//! Kafka's tools refuse) and delete.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use weir_api::{
    GroupInfo, GroupList, GroupMember, GroupPartition, GroupSummary, ResetOffsets, ResetPartition,
    ResetResult, ResetTo, TopicPartitions,
};
use weir_groups::{
    CommittedOffset, Coordinator, GroupError, GroupState, GroupType, TopicPartition,
};
use weir_kafka::client_protocol::assigned_partitions;

use crate::auth::{Caller, may_describe};
use crate::problem::{ApiError, Body};
use crate::{AppState, blocking};
use weir_auth::acl::ResourceType;

/// Lists the groups with members or committed offsets.
#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    responses((status = 200, body = GroupList)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
) -> Json<GroupList> {
    let caller = caller.as_ref().map(|c| &c.0);
    let groups = app
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| may_describe(caller, ResourceType::Group, &g.group))
        .map(|g| GroupSummary {
            group: g.group,
            group_type: g.group_type.as_str().to_owned(),
            state: g.state.to_owned(),
            protocol_type: g.protocol_type,
        })
        .collect();
    Json(GroupList { groups })
}

/// Describes a group: its members and what they hold, and per partition
/// the committed offset, the end offset and the lag.
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path, example = "billing")),
    responses((status = 200, body = GroupInfo), (status = 404, body = weir_api::Problem)))]
pub async fn describe(
    State(app): State<Arc<AppState>>,
    Path(group): Path<String>,
) -> Result<Json<GroupInfo>, ApiError> {
    let groups = app.groups.clone();
    Ok(Json(
        blocking(move || describe_group(&groups, &group)).await?,
    ))
}

/// Deletes a group and its committed offsets; refused while it has
/// members (Kafka's NON_EMPTY_GROUP).
#[utoipa::path(delete, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path, example = "billing")),
    responses((status = 204), (status = 404, body = weir_api::Problem),
        (status = 409, body = weir_api::Problem)))]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path(group): Path<String>,
) -> Result<StatusCode, ApiError> {
    let groups = app.groups.clone();
    blocking(move || groups.delete_group(&group)?.wait()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Plans new committed offsets for a group and, with `"execute": true`,
/// commits them. Refused with 409 while the group has members.
#[utoipa::path(post, path = "/v1/groups/{group}/offsets/reset", tag = "groups",
    params(("group" = String, Path, example = "billing")), request_body = ResetOffsets,
    responses((status = 200, body = ResetResult), (status = 404, body = weir_api::Problem),
        (status = 409, body = weir_api::Problem), (status = "4XX", body = weir_api::Problem)))]
pub async fn reset_offsets(
    State(app): State<Arc<AppState>>,
    Path(group): Path<String>,
    Body(req): Body<ResetOffsets>,
) -> Result<Json<ResetResult>, ApiError> {
    let target = Target::from_request(&req)?;
    let groups = app.groups.clone();
    Ok(Json(
        blocking(move || reset(&groups, &group, &req, target)).await?,
    ))
}

/// The group as `GET /v1/groups/{group}` shows it.
fn describe_group(c: &Coordinator, group: &str) -> Result<GroupInfo, GroupError> {
    let not_found = || GroupError::GroupNotFound {
        group: group.to_owned(),
    };
    let mut info = match c.group_type(group) {
        GroupType::Consumer => {
            let d = c.consumer_describe(group)?;
            GroupInfo {
                group: d.group,
                group_type: GroupType::Consumer.as_str().to_owned(),
                state: d.state.as_str().to_owned(),
                protocol_type: "consumer".to_owned(),
                protocol: d.assignor,
                generation: d.group_epoch,
                members: d
                    .members
                    .into_iter()
                    .map(|m| GroupMember {
                        member_id: m.member_id,
                        instance_id: m.instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        assignment: m
                            .assignment
                            .into_iter()
                            .map(|a| TopicPartitions {
                                topic: a.topic,
                                partitions: a.partitions,
                            })
                            .collect(),
                    })
                    .collect(),
                partitions: Vec::new(),
                lag_total: 0,
            }
        }
        GroupType::Share => {
            // Membership only: a share group commits no offsets, so it has
            // no lag rows.
            let d = c.share_describe(group)?;
            GroupInfo {
                group: d.group,
                group_type: GroupType::Share.as_str().to_owned(),
                state: d.state.as_str().to_owned(),
                protocol_type: "share".to_owned(),
                protocol: d.assignor.to_owned(),
                generation: d.group_epoch,
                members: d
                    .members
                    .into_iter()
                    .map(|m| GroupMember {
                        member_id: m.member_id,
                        instance_id: None,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        assignment: m
                            .assignment
                            .into_iter()
                            .map(|a| TopicPartitions {
                                topic: a.topic,
                                partitions: a.partitions,
                            })
                            .collect(),
                    })
                    .collect(),
                partitions: Vec::new(),
                lag_total: 0,
            }
        }
        GroupType::Classic => {
            let d = c.describe(group);
            if d.state == GroupState::Dead {
                return Err(not_found());
            }
            // Only Kafka consumers' assignments are in the consumer
            // protocol's encoding; other protocol types' bytes are opaque.
            let consumers = d.protocol_type == "consumer";
            GroupInfo {
                group: d.group,
                group_type: GroupType::Classic.as_str().to_owned(),
                state: d.state.as_str().to_owned(),
                protocol_type: d.protocol_type,
                protocol: d.protocol_name,
                generation: d.generation,
                members: d
                    .members
                    .into_iter()
                    .map(|m| GroupMember {
                        assignment: if consumers {
                            assigned_partitions(&m.assignment)
                        } else {
                            Vec::new()
                        }
                        .into_iter()
                        .map(|(topic, partitions)| TopicPartitions { topic, partitions })
                        .collect(),
                        member_id: m.member_id,
                        instance_id: m.instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                    })
                    .collect(),
                partitions: Vec::new(),
                lag_total: 0,
            }
        }
    };
    let mut rows: BTreeMap<(String, i32), GroupPartition> = BTreeMap::new();
    fn row<'a>(
        rows: &'a mut BTreeMap<(String, i32), GroupPartition>,
        topic: &str,
        partition: i32,
    ) -> &'a mut GroupPartition {
        rows.entry((topic.to_owned(), partition))
            .or_insert_with(|| GroupPartition {
                topic: topic.to_owned(),
                partition,
                committed_offset: None,
                start_offset: None,
                end_offset: None,
                lag: None,
                member_id: None,
            })
    }
    for (tp, committed) in c.committed(group) {
        row(&mut rows, &tp.topic, tp.partition).committed_offset = Some(committed.offset);
    }
    for m in &info.members {
        for a in &m.assignment {
            for &p in &a.partitions {
                row(&mut rows, &a.topic, p).member_id = Some(m.member_id.clone());
            }
        }
    }
    let mut lag_total = 0i64;
    for r in rows.values_mut() {
        if let Ok(log) = c.broker().partition(&r.topic, r.partition) {
            r.start_offset = Some(log.start_offset());
            r.end_offset = Some(log.high_watermark());
        }
        r.lag = r
            .end_offset
            .zip(r.committed_offset)
            .map(|(end, committed)| (end - committed).max(0));
        lag_total = lag_total.saturating_add(r.lag.unwrap_or(0));
    }
    info.partitions = rows.into_values().collect();
    info.lag_total = lag_total;
    Ok(info)
}

/// A reset's target, checked against the parameters given.
#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Time(i64),
    Offset(i64),
    ShiftBy(i64),
}

impl Target {
    fn from_request(req: &ResetOffsets) -> Result<Self, ApiError> {
        let given: Vec<&str> = [
            ("offset", req.offset.is_some()),
            ("datetime", req.datetime.is_some()),
            ("timestamp_ms", req.timestamp_ms.is_some()),
            ("shift_by", req.shift_by.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        let wants: &[&str] = match req.to {
            ResetTo::Earliest | ResetTo::Latest => &[],
            ResetTo::Offset => &["offset"],
            ResetTo::ShiftBy => &["shift_by"],
            ResetTo::Datetime => &["datetime", "timestamp_ms"],
        };
        let to = serde_json::to_value(req.to).expect("serializes");
        if let Some(extra) = given.iter().find(|g| !wants.contains(g)) {
            return Err(ApiError::bad_request(format!(
                "{extra} does not go with \"to\": {to}"
            )));
        }
        if !wants.is_empty() && given.len() != 1 {
            return Err(ApiError::bad_request(format!(
                "\"to\": {to} needs exactly one of {}",
                wants.join(", ")
            )));
        }
        Ok(match req.to {
            ResetTo::Earliest => Self::Earliest,
            ResetTo::Latest => Self::Latest,
            ResetTo::Offset => Self::Offset(req.offset.expect("checked")),
            ResetTo::ShiftBy => Self::ShiftBy(req.shift_by.expect("checked")),
            ResetTo::Datetime => Self::Time(match (&req.datetime, req.timestamp_ms) {
                (Some(text), None) => parse_rfc3339(text).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "datetime {text:?} is not RFC 3339 (e.g. 2026-01-31T12:00:00Z)"
                    ))
                })?,
                (None, Some(ms)) => ms,
                _ => unreachable!("exactly one is given, checked above"),
            }),
        })
    }
}

/// Plans a reset of `group` and, if asked, commits it.
fn reset(
    c: &Coordinator,
    group: &str,
    req: &ResetOffsets,
    target: Target,
) -> Result<ResetResult, ApiError> {
    let active = || {
        ApiError::from(GroupError::NonEmptyGroup {
            group: group.to_owned(),
        })
    };
    let known = match c.group_type(group) {
        GroupType::Consumer => {
            if !c.consumer_describe(group)?.members.is_empty() {
                return Err(active());
            }
            true
        }
        // A share group's place in its partitions is its share-partition
        // state, not committed offsets.
        GroupType::Share => {
            return Err(GroupError::WrongGroupType {
                group: group.to_owned(),
                expected: "classic",
            }
            .into());
        }
        GroupType::Classic => match c.describe(group).state {
            GroupState::Dead => false,
            GroupState::Empty => true,
            _ => return Err(active()),
        },
    };
    let committed = c.committed(group);
    let mut chosen: BTreeSet<TopicPartition> = BTreeSet::new();
    if req.topics.is_empty() {
        if !known {
            return Err(GroupError::GroupNotFound {
                group: group.to_owned(),
            }
            .into());
        }
        chosen.extend(committed.keys().cloned());
    }
    let too_many = |n: usize| -> ApiError {
        GroupError::TooManyPartitions {
            group: group.to_owned(),
            partitions: n,
            partitions_max: weir_groups::COMMIT_PARTITIONS_MAX,
        }
        .into()
    };
    for t in &req.topics {
        let topic = c.broker().topic(&t.topic)?;
        let count = topic.partition_count() as i32;
        let named: Vec<i32> = match &t.partitions {
            None => (0..count).collect(),
            Some(ps) => ps.clone(),
        };
        for partition in named {
            c.broker().partition(&t.topic, partition)?;
            chosen.insert(TopicPartition {
                topic: t.topic.clone(),
                partition,
            });
            // Checked as it grows: a body can name millions.
            if chosen.len() > weir_groups::COMMIT_PARTITIONS_MAX {
                return Err(too_many(chosen.len()));
            }
        }
    }
    if chosen.len() > weir_groups::COMMIT_PARTITIONS_MAX {
        return Err(too_many(chosen.len()));
    }
    let mut partitions = Vec::with_capacity(chosen.len());
    for tp in chosen {
        let log = c.broker().partition(&tp.topic, tp.partition)?;
        let start = log.start_offset();
        let end = log.high_watermark();
        let current = committed.get(&tp).map(|o| o.offset);
        let new_offset = match target {
            Target::Earliest => start,
            Target::Latest => end,
            Target::Offset(o) => o,
            Target::ShiftBy(n) => {
                let Some(from) = current else {
                    return Err(ApiError::bad_request(format!(
                        "group {group} has no committed offset on {}-{} to shift",
                        tp.topic, tp.partition
                    )));
                };
                from.saturating_add(n)
            }
            Target::Time(ms) => log
                .offset_for_time(ms)
                .map_err(weir_broker::BrokerError::from)?
                .unwrap_or(end),
        }
        .clamp(start, end);
        partitions.push(ResetPartition {
            topic: tp.topic,
            partition: tp.partition,
            current_offset: current,
            new_offset,
            start_offset: start,
            end_offset: end,
        });
    }
    if req.execute && !partitions.is_empty() {
        let now = c.now_ms();
        let offsets: Vec<(TopicPartition, CommittedOffset)> = partitions
            .iter()
            .map(|p| {
                (
                    TopicPartition {
                        topic: p.topic.clone(),
                        partition: p.partition,
                    },
                    CommittedOffset {
                        offset: p.new_offset,
                        leader_epoch: -1,
                        metadata: String::new(),
                        commit_timestamp_ms: now,
                    },
                )
            })
            .collect();
        // Checked again under the coordinator's lock with the write.
        c.admin_commit(group, &offsets)?.wait()?;
    }
    Ok(ResetResult {
        group: group.to_owned(),
        executed: req.execute,
        partitions,
    })
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time
/// (`2026-01-31T12:00:00Z`, `…T12:00:00.250+01:00`), `None` if it is not
/// one.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        let frac = &text[at + 1..at + 1 + digits];
        millis = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
        at += 1 + digits;
    }
    let offset_min = match b.get(at)? {
        b'Z' | b'z' if b.len() == at + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == at + 6 && b[at + 3] == b':' => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 60 + m;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(seconds * 1000 + millis)
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn rfc3339_dates_parse_to_epoch_milliseconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-01-31T12:00:00.25Z"),
            Some(1_769_860_800_250)
        );
        assert_eq!(
            parse_rfc3339("2026-01-31T13:00:00+01:00"),
            Some(1_769_860_800_000)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        for bad in [
            "",
            "2026-01-31",
            "2026-13-01T00:00:00Z",
            "2026-01-31T12:00:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
