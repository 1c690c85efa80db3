//! Committed offsets: OffsetCommit (acknowledged once durable, sharing the
//! data directory's sync rounds with produce), OffsetFetch (one group, or
//! several from v8) and OffsetDelete.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};
use weir_groups::{CommittedOffset, GroupError, TopicPartition};

use super::{Caller, Reply, blocking, non_empty, str_bytes, topic_name};
use crate::Shared;
use crate::authz::{Delete, Describe, Read};
use crate::codes::{Code, for_broker_error, for_group_error};
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::ResourceType;

pub(crate) async fn commit(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Reply, ConnError> {
    let request: OffsetCommitRequest = decode(ApiKey::OffsetCommit, version, body)?;
    // Kafka: READ on the group, then READ on each topic committed to.
    let group_denied = !caller.may_group(Read, &request.group_id.0);
    let groups = shared.groups.clone();
    let now = groups.now_ms();
    let metadata_bytes_max = groups.offsets().metadata_bytes_max();
    // Per partition: an error now, or a place in the commit.
    let mut results: Vec<(String, Vec<(i32, Code)>)> = Vec::new();
    let mut offsets = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let denied = if group_denied {
            Some(Code::GroupAuthorizationFailed)
        } else {
            (!caller.may_topic(Read, &name)).then_some(Code::TopicAuthorizationFailed)
        };
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let metadata = p
                .committed_metadata
                .map(|m| m.to_string())
                .unwrap_or_default();
            let found = match denied {
                Some(code) => Err(code),
                None => shared
                    .broker
                    .partition(&name, p.partition_index)
                    .map_err(|e| for_broker_error(&e)),
            };
            let code = match found {
                Err(code) => code,
                Ok(_) if metadata.len() > metadata_bytes_max => Code::OffsetMetadataTooLarge,
                Ok(_) => {
                    offsets.push((
                        TopicPartition {
                            topic: name.clone(),
                            partition: p.partition_index,
                        },
                        CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata,
                            commit_timestamp_ms: now,
                        },
                    ));
                    Code::None
                }
            };
            partitions.push((p.partition_index, code));
        }
        results.push((name, partitions));
    }
    let group = request.group_id.0.to_string();
    let member = request.member_id.to_string();
    let instance = non_empty(request.group_instance_id);
    let generation = request.generation_id_or_member_epoch;
    // The code every partition that was fine fails with, if any.
    let respond = move |failed: Option<Code>| {
        let topics = results
            .into_iter()
            .map(|(name, partitions)| {
                OffsetCommitResponseTopic::default()
                    .with_name(topic_name(&name))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, code)| {
                                let code = match (code, failed) {
                                    (Code::None, Some(failed)) => failed,
                                    (code, _) => code,
                                };
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect();
        encode(
            ApiKey::OffsetCommit,
            version,
            &OffsetCommitResponse::default().with_topics(topics),
        )
        .map(Some)
    };
    let refused = |e: GroupError| {
        tracing::debug!(%e, "OffsetCommit refused");
        Some(for_group_error(&e))
    };
    if offsets.is_empty() {
        return Ok(Reply::Now(respond(None)?));
    }
    // KIP-848 members commit with member epochs, from v9 on.
    if version < 9 && shared.groups.is_consumer_member(&group, &member) {
        return Ok(Reply::Now(respond(Some(Code::UnsupportedVersion))?));
    }
    let written =
        blocking(move || groups.commit(&group, &member, instance.as_deref(), generation, &offsets))
            .await;
    Ok(match written {
        Err(e) => Reply::Now(respond(refused(e))?),
        Ok(pending) => Reply::Later(Box::pin(async move {
            let outcome = blocking(move || pending.wait()).await;
            respond(outcome.err().and_then(refused))
        })),
    })
}

/// What OffsetFetch asks of one group: some topics' partitions, or all
/// (`None`).
type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// One group's answer: per topic, whether the caller may not describe it,
/// and each partition's commit if it has one (none if refused).
type Found = Vec<(String, bool, Vec<(i32, Option<CommittedOffset>)>)>;

/// One group's committed offsets in the shape of the request: a topic
/// asked for that the caller may not describe is refused, one it did not
/// name is left out, as Kafka does.
fn fetch_group(shared: &Shared, caller: &Caller, group: &str, wanted: Wanted) -> Found {
    let committed = shared.groups.committed(group);
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                if !caller.may_topic(Describe, &topic) {
                    let none = partitions.into_iter().map(|p| (p, None)).collect();
                    return (topic, true, none);
                }
                let found = partitions
                    .into_iter()
                    .map(|partition| {
                        let tp = TopicPartition {
                            topic: topic.clone(),
                            partition,
                        };
                        (partition, committed.get(&tp).cloned())
                    })
                    .collect();
                (topic, false, found)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                BTreeMap::new();
            for (tp, c) in committed {
                by_topic
                    .entry(tp.topic)
                    .or_default()
                    .push((tp.partition, Some(c)));
            }
            by_topic
                .into_iter()
                .filter(|(topic, _)| caller.sees(Describe, ResourceType::Topic, topic))
                .map(|(topic, found)| (topic, false, found))
                .collect()
        }
    }
}

pub(crate) fn fetch(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: OffsetFetchRequest = decode(ApiKey::OffsetFetch, version, body)?;
    let refused = |denied: bool| {
        if denied {
            Code::TopicAuthorizationFailed.code()
        } else {
            Code::None.code()
        }
    };
    // A partition without a commit answers offset -1, as Kafka does.
    let offset_of = |c: &Option<CommittedOffset>| c.as_ref().map_or(-1, |c| c.offset);
    let epoch_of = |c: &Option<CommittedOffset>| c.as_ref().map_or(-1, |c| c.leader_epoch);
    let metadata_of =
        |c: &Option<CommittedOffset>| Some(str_bytes(c.as_ref().map_or("", |c| &c.metadata)));
    let response = if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                // v9: a consumer-protocol group's member must be current.
                let member = g.member_id.as_ref().map(|m| m.to_string());
                if !caller.may_group(Describe, &g.group_id.0) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(Code::GroupAuthorizationFailed.code());
                }
                if let Err(e) =
                    shared
                        .groups
                        .check_fetch(&g.group_id.0, member.as_deref(), g.member_epoch)
                {
                    tracing::debug!(%e, "OffsetFetch refused");
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(for_group_error(&e).code());
                }
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = fetch_group(shared, caller, &g.group_id.0, wanted)
                    .into_iter()
                    .map(|(topic, denied, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(&topic))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|(index, c)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_error_code(refused(denied))
                                            .with_partition_index(*index)
                                            .with_committed_offset(offset_of(c))
                                            .with_committed_leader_epoch(epoch_of(c))
                                            .with_metadata(metadata_of(c))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        OffsetFetchResponse::default().with_groups(groups)
    } else if !caller.may_group(Describe, &request.group_id.0) {
        // Before v2 there is no request-wide error: each asked partition
        // carries it.
        let topics = request.topics.unwrap_or_default().into_iter().map(|t| {
            let partitions = t.partition_indexes.iter().map(|p| {
                OffsetFetchResponsePartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(-1)
                    .with_error_code(Code::GroupAuthorizationFailed.code())
            });
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions.collect())
        });
        OffsetFetchResponse::default()
            .with_error_code(Code::GroupAuthorizationFailed.code())
            .with_topics(topics.collect())
    } else {
        let wanted = request.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let topics = fetch_group(shared, caller, &request.group_id.0, wanted)
            .into_iter()
            .map(|(topic, denied, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(index, c)| {
                                OffsetFetchResponsePartition::default()
                                    .with_error_code(refused(denied))
                                    .with_partition_index(*index)
                                    .with_committed_offset(offset_of(c))
                                    .with_committed_leader_epoch(epoch_of(c))
                                    .with_metadata(metadata_of(c))
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    };
    encode(ApiKey::OffsetFetch, version, &response)
}

pub(crate) async fn delete(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: OffsetDeleteRequest = decode(ApiKey::OffsetDelete, version, body)?;
    if !caller.may_group(Delete, &request.group_id.0) {
        let response =
            OffsetDeleteResponse::default().with_error_code(Code::GroupAuthorizationFailed.code());
        return encode(ApiKey::OffsetDelete, version, &response);
    }
    // Kafka: READ on each topic whose offsets go.
    let readable: Vec<bool> = request
        .topics
        .iter()
        .map(|t| caller.may_topic(Read, &t.name.0))
        .collect();
    let group = request.group_id.0.to_string();
    let partitions: Vec<TopicPartition> = request
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, readable)| **readable)
        .flat_map(|(t, _)| {
            t.partitions.iter().map(|p| TopicPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
            })
        })
        .collect();
    let groups = shared.groups.clone();
    let outcome = blocking(move || {
        let (pending, refused) = groups.delete_offsets(
            &group,
            &partitions,
            crate::client_protocol::subscribed_topics,
        )?;
        pending.wait()?;
        Ok::<_, GroupError>(refused)
    })
    .await;
    let response = match outcome {
        Err(e) => OffsetDeleteResponse::default().with_error_code(for_group_error(&e).code()),
        Ok(refused) => OffsetDeleteResponse::default().with_topics(
            request
                .topics
                .into_iter()
                .zip(readable)
                .map(|(t, readable)| {
                    let name = t.name.0.to_string();
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .into_iter()
                                .map(|p| {
                                    let subscribed = refused.iter().any(|tp| {
                                        tp.topic == name && tp.partition == p.partition_index
                                    });
                                    let code = if !readable {
                                        Code::TopicAuthorizationFailed
                                    } else if subscribed {
                                        Code::GroupSubscribedToTopic
                                    } else {
                                        Code::None
                                    };
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    };
    encode(ApiKey::OffsetDelete, version, &response)
}
