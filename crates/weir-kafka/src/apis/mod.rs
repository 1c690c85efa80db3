//! The Kafka APIs Weir serves, one module each, and the versions of each
//! that it accepts.

mod acls;
pub(crate) mod api_versions;
mod broker_configs;
mod cluster;
mod configs;
mod consumer_groups;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_producers;
mod describe_topic_partitions;
mod fetch;
mod group_admin;
mod group_configs;
mod init_producer_id;
mod leader_epoch;
mod list_offsets;
mod log_dirs;
mod membership;
mod metadata;
mod offsets;
mod operations;
pub(crate) mod produce;
mod replica_assignment;
mod replicas;
mod scram_users;
mod share_ack;
mod share_fetch;
mod share_groups;
mod share_offsets;
mod transaction_admin;
mod transactions;

use std::future::Future;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

pub(crate) use group_configs::GroupConfigs;
pub(crate) use share_ack::share_upkeep;

use crate::Shared;
use crate::conn::ConnError;

/// The versions of each API Weir serves; `None` for APIs it does not.
///
/// Lower bounds: record batches (magic 2) need Produce v3 and Fetch v4.
/// Upper bounds are the newest versions Kafka 4.x clients send (and the
/// `kafka-protocol` crate knows), so clients see a current broker.
pub(crate) fn supported_versions(api: ApiKey) -> Option<RangeInclusive<i16>> {
    Some(match api {
        ApiKey::Produce => 3..=13,
        ApiKey::Fetch => 4..=18,
        ApiKey::ListOffsets => 1..=10,
        ApiKey::Metadata => 0..=13,
        ApiKey::ApiVersions => 0..=4,
        ApiKey::CreateTopics => 2..=7,
        ApiKey::DeleteTopics => 1..=6,
        ApiKey::DeleteRecords => 0..=2,
        ApiKey::InitProducerId => 0..=5,
        // Transactions: the client's forms (AddPartitionsToTxn v4+ is
        // between brokers).
        ApiKey::AddPartitionsToTxn => 0..=3,
        ApiKey::AddOffsetsToTxn => 0..=3,
        ApiKey::EndTxn => 0..=3,
        ApiKey::TxnOffsetCommit => 0..=3,
        ApiKey::DescribeTransactions => 0..=0,
        ApiKey::ListTransactions => 0..=2,
        // The consumer's form (v0-1 went with Kafka 4, KIP-896).
        ApiKey::OffsetForLeaderEpoch => 2..=4,
        ApiKey::DescribeConfigs => 1..=4,
        ApiKey::AlterConfigs => 0..=2,
        ApiKey::IncrementalAlterConfigs => 0..=1,
        ApiKey::CreatePartitions => 0..=3,
        // Groups: v9 of OffsetCommit and OffsetFetch carry KIP-848 member
        // epochs; FindCoordinator v6 can name share coordinators (KIP-932),
        // which are refused.
        ApiKey::FindCoordinator => 0..=6,
        ApiKey::JoinGroup => 0..=9,
        ApiKey::SyncGroup => 0..=5,
        ApiKey::Heartbeat => 0..=4,
        ApiKey::LeaveGroup => 0..=5,
        ApiKey::OffsetCommit => 2..=9,
        ApiKey::OffsetFetch => 1..=9,
        ApiKey::ListGroups => 0..=5,
        ApiKey::DescribeGroups => 0..=6,
        ApiKey::DeleteGroups => 0..=2,
        ApiKey::OffsetDelete => 0..=0,
        ApiKey::ConsumerGroupHeartbeat => 0..=1,
        ApiKey::ConsumerGroupDescribe => 0..=1,
        // Share groups' membership (KIP-932): v1 is the only version Kafka
        // 4.1+ and librdkafka 2.16 speak (v0 was 4.0's early access).
        ApiKey::ShareGroupHeartbeat => 1..=1,
        ApiKey::ShareGroupDescribe => 1..=1,
        // The data path: v1 is what kafka-protocol knows and Kafka 4.1+
        // and librdkafka 2.16 send.
        ApiKey::ShareFetch => 1..=1,
        ApiKey::ShareAcknowledge => 1..=1,
        ApiKey::DescribeShareGroupOffsets => 0..=0,
        // The single-node admin APIs, at every version kafka-protocol has.
        ApiKey::DescribeLogDirs => 1..=4,
        ApiKey::AlterReplicaLogDirs => 1..=2,
        ApiKey::ElectLeaders => 0..=2,
        ApiKey::AlterPartitionReassignments => 0..=1,
        ApiKey::ListPartitionReassignments => 0..=0,
        ApiKey::DescribeQuorum => 0..=2,
        ApiKey::DescribeCluster => 0..=2,
        ApiKey::DescribeProducers => 0..=0,
        ApiKey::ListConfigResources => 0..=1,
        ApiKey::DescribeTopicPartitions => 0..=0,
        // ACLs: v0 went with Kafka 4 (KIP-896), and kafka-protocol
        // decodes from v1.
        ApiKey::CreateAcls => 1..=3,
        ApiKey::DescribeAcls => 1..=3,
        ApiKey::DeleteAcls => 1..=3,
        // SASL (sasl.rs): v0 of the handshake (unframed tokens) is listed,
        // as librdkafka before 2.x requires it to enable SASL at all, but
        // refused when used; KIP-554's user management.
        ApiKey::SaslHandshake => 0..=1,
        ApiKey::SaslAuthenticate => 0..=2,
        ApiKey::DescribeUserScramCredentials => 0..=0,
        ApiKey::AlterUserScramCredentials => 0..=0,
        _ => return None,
    })
}

/// Every served API with its versions, in key order.
pub(crate) fn all_supported() -> Vec<(ApiKey, RangeInclusive<i16>)> {
    let mut out: Vec<_> = ApiKey::iter()
        .filter_map(|api| supported_versions(api).map(|v| (api, v)))
        .collect();
    out.sort_by_key(|(api, _)| *api as i16);
    out
}

/// The rest of a request that waits (for durability, or for a group to
/// rebalance): its response body, or none (acks=0).
pub(crate) type Later = Pin<Box<dyn Future<Output = Result<Option<Bytes>, ConnError>> + Send>>;

/// A request's answer: ready now, or later (a Produce or OffsetCommit once
/// durable, a JoinGroup or SyncGroup once the group has moved on).
pub(crate) enum Reply {
    Now(Option<Bytes>),
    Later(Later),
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub peer: SocketAddr,
    pub client_id: String,
    /// The listener the connection came through (its security protocol,
    /// and the address advertised to it).
    pub listener: Arc<crate::Endpoint>,
    /// Who the connection authenticated as (`User:ANONYMOUS` if nobody).
    pub principal: weir_auth::Principal,
    /// The server's authorizer, which the checks of `crate::authz` ask.
    pub authorizer: Arc<weir_auth::Authorizer>,
}

/// The APIs that change the cluster rather than its data: each one served
/// leaves an audit line (a refused resource also leaves the authorizer's).
fn is_admin(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::DeleteRecords
            | ApiKey::AlterConfigs
            | ApiKey::IncrementalAlterConfigs
            | ApiKey::CreatePartitions
            | ApiKey::DeleteGroups
            | ApiKey::OffsetDelete
            | ApiKey::AlterReplicaLogDirs
            | ApiKey::ElectLeaders
            | ApiKey::AlterPartitionReassignments
            | ApiKey::CreateAcls
            | ApiKey::DeleteAcls
            | ApiKey::AlterUserScramCredentials
    )
}

/// Runs one decoded-header request. Everything but the wait for durability
/// happens here, in the order the connection's requests arrive.
pub(crate) async fn dispatch(
    api: ApiKey,
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Reply, ConnError> {
    let reply = serve(api, version, body, caller, shared).await;
    if is_admin(api) {
        // Which resources each answer refused is in the authorizer's own
        // lines; this one says who asked for what, through which listener.
        tracing::info!(
            target: weir_auth::AUDIT_TARGET,
            principal = %caller.principal,
            host = %caller.peer.ip(),
            listener = %caller.listener.name,
            client_id = %caller.client_id,
            api = ?api,
            version,
            outcome = if reply.is_ok() { "answered" } else { "malformed" },
            "admin request"
        );
    }
    reply
}

async fn serve(
    api: ApiKey,
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Reply, ConnError> {
    let now = |body: Bytes| Reply::Now(Some(body));
    Ok(match api {
        ApiKey::ApiVersions => now(api_versions::handle(version, body)?),
        ApiKey::Metadata => now(metadata::handle(version, body, caller, shared).await?),
        ApiKey::Produce => Reply::Later(produce::handle(version, body, caller, shared).await?),
        ApiKey::Fetch => now(fetch::handle(version, body, caller, shared).await?),
        ApiKey::ListOffsets => now(list_offsets::handle(version, body, caller, shared).await?),
        ApiKey::CreateTopics => now(create_topics::handle(version, body, caller, shared).await?),
        ApiKey::DeleteTopics => now(delete_topics::handle(version, body, caller, shared).await?),
        ApiKey::DeleteRecords => now(delete_records::handle(version, body, caller, shared).await?),
        ApiKey::InitProducerId => {
            now(init_producer_id::handle(version, body, caller, shared).await?)
        }
        ApiKey::AddPartitionsToTxn => {
            now(transactions::add_partitions(version, body, caller, shared).await?)
        }
        ApiKey::EndTxn => now(transactions::end(version, body, caller, shared).await?),
        ApiKey::AddOffsetsToTxn => {
            now(transactions::add_offsets(version, body, caller, shared).await?)
        }
        ApiKey::TxnOffsetCommit => {
            now(transactions::commit_offsets(version, body, caller, shared).await?)
        }
        ApiKey::DescribeTransactions => {
            now(transaction_admin::describe(version, body, caller, shared)?)
        }
        ApiKey::ListTransactions => now(transaction_admin::list(version, body, caller, shared)?),
        ApiKey::OffsetForLeaderEpoch => {
            now(leader_epoch::offset_for_leader_epoch(version, body, caller, shared).await?)
        }
        ApiKey::DescribeConfigs => now(configs::describe(version, body, caller, shared).await?),
        ApiKey::AlterConfigs => now(configs::alter(version, body, caller, shared).await?),
        ApiKey::IncrementalAlterConfigs => {
            now(configs::incremental_alter(version, body, caller, shared).await?)
        }
        ApiKey::CreatePartitions => {
            now(create_partitions::handle(version, body, caller, shared).await?)
        }
        ApiKey::FindCoordinator => {
            now(membership::find_coordinator(version, body, caller, shared)?)
        }
        ApiKey::JoinGroup => membership::join(version, body, caller, shared)?,
        ApiKey::SyncGroup => membership::sync(version, body, caller, shared)?,
        ApiKey::Heartbeat => now(membership::heartbeat(version, body, caller, shared)?),
        ApiKey::LeaveGroup => now(membership::leave(version, body, caller, shared)?),
        ApiKey::OffsetCommit => offsets::commit(version, body, caller, shared).await?,
        ApiKey::OffsetFetch => now(offsets::fetch(version, body, caller, shared)?),
        ApiKey::OffsetDelete => now(offsets::delete(version, body, caller, shared).await?),
        ApiKey::ListGroups => now(group_admin::list(version, body, caller, shared)?),
        ApiKey::DescribeGroups => now(group_admin::describe(version, body, caller, shared)?),
        ApiKey::DeleteGroups => now(group_admin::delete(version, body, caller, shared).await?),
        ApiKey::ConsumerGroupHeartbeat => {
            now(consumer_groups::heartbeat(version, body, caller, shared)?)
        }
        ApiKey::ConsumerGroupDescribe => {
            now(consumer_groups::describe(version, body, caller, shared)?)
        }
        ApiKey::ShareGroupHeartbeat => now(share_groups::heartbeat(version, body, caller, shared)?),
        ApiKey::ShareGroupDescribe => now(share_groups::describe(version, body, caller, shared)?),
        ApiKey::ShareFetch => now(share_fetch::fetch(version, body, caller, shared).await?),
        ApiKey::ShareAcknowledge => {
            now(share_ack::acknowledge(version, body, caller, shared).await?)
        }
        ApiKey::DescribeShareGroupOffsets => {
            now(share_offsets::describe(version, body, caller, shared).await?)
        }
        ApiKey::DescribeLogDirs => now(log_dirs::handle(version, body, caller, shared).await?),
        ApiKey::AlterReplicaLogDirs => now(log_dirs::alter(version, body, caller, shared).await?),
        ApiKey::ElectLeaders => now(replicas::elect_leaders(version, body, caller, shared)?),
        ApiKey::AlterPartitionReassignments => now(replicas::alter_reassignments(
            version, body, caller, shared,
        )?),
        ApiKey::ListPartitionReassignments => {
            now(replicas::list_reassignments(version, body, caller)?)
        }
        ApiKey::DescribeQuorum => now(cluster::describe_quorum(version, body, caller, shared)?),
        ApiKey::DescribeCluster => now(cluster::describe_cluster(version, body, caller, shared)?),
        ApiKey::DescribeProducers => {
            now(describe_producers::handle(version, body, caller, shared)?)
        }
        ApiKey::ListConfigResources => now(cluster::list_config_resources(
            version, body, caller, shared,
        )?),
        ApiKey::DescribeTopicPartitions => now(describe_topic_partitions::handle(
            version, body, caller, shared,
        )?),
        ApiKey::CreateAcls => now(acls::create(version, body, caller).await?),
        ApiKey::DescribeAcls => now(acls::describe(version, body, caller)?),
        ApiKey::DeleteAcls => now(acls::delete(version, body, caller).await?),
        ApiKey::DescribeUserScramCredentials => {
            now(scram_users::describe(version, body, caller, shared)?)
        }
        ApiKey::AlterUserScramCredentials => {
            now(scram_users::alter(version, body, caller, shared).await?)
        }
        _ => {
            return Err(ConnError::UnknownApiKey {
                api_key: api as i16,
            });
        }
    })
}

/// Decodes a request body of a served API without serving it (what
/// [`crate::decode_request`] checks).
pub(crate) fn decode_only(api: ApiKey, version: i16, body: Bytes) -> Result<(), ConnError> {
    use crate::conn::decode;
    use kafka_protocol::messages as m;
    match api {
        ApiKey::ApiVersions => decode::<m::ApiVersionsRequest>(api, version, body).map(drop),
        ApiKey::Metadata => decode::<m::MetadataRequest>(api, version, body).map(drop),
        ApiKey::Produce => decode::<m::ProduceRequest>(api, version, body).map(drop),
        ApiKey::Fetch => decode::<m::FetchRequest>(api, version, body).map(drop),
        ApiKey::ListOffsets => decode::<m::ListOffsetsRequest>(api, version, body).map(drop),
        ApiKey::CreateTopics => decode::<m::CreateTopicsRequest>(api, version, body).map(drop),
        ApiKey::DeleteTopics => decode::<m::DeleteTopicsRequest>(api, version, body).map(drop),
        ApiKey::DeleteRecords => decode::<m::DeleteRecordsRequest>(api, version, body).map(drop),
        ApiKey::InitProducerId => decode::<m::InitProducerIdRequest>(api, version, body).map(drop),
        ApiKey::AddPartitionsToTxn => {
            decode::<m::AddPartitionsToTxnRequest>(api, version, body).map(drop)
        }
        ApiKey::EndTxn => decode::<m::EndTxnRequest>(api, version, body).map(drop),
        ApiKey::AddOffsetsToTxn => {
            decode::<m::AddOffsetsToTxnRequest>(api, version, body).map(drop)
        }
        ApiKey::TxnOffsetCommit => {
            decode::<m::TxnOffsetCommitRequest>(api, version, body).map(drop)
        }
        ApiKey::DescribeTransactions => {
            decode::<m::DescribeTransactionsRequest>(api, version, body).map(drop)
        }
        ApiKey::ListTransactions => {
            decode::<m::ListTransactionsRequest>(api, version, body).map(drop)
        }
        ApiKey::OffsetForLeaderEpoch => {
            decode::<m::OffsetForLeaderEpochRequest>(api, version, body).map(drop)
        }
        ApiKey::DescribeConfigs => {
            decode::<m::DescribeConfigsRequest>(api, version, body).map(drop)
        }
        ApiKey::AlterConfigs => decode::<m::AlterConfigsRequest>(api, version, body).map(drop),
        ApiKey::IncrementalAlterConfigs => {
            decode::<m::IncrementalAlterConfigsRequest>(api, version, body).map(drop)
        }
        ApiKey::CreatePartitions => {
            decode::<m::CreatePartitionsRequest>(api, version, body).map(drop)
        }
        ApiKey::FindCoordinator => {
            decode::<m::FindCoordinatorRequest>(api, version, body).map(drop)
        }
        ApiKey::JoinGroup => decode::<m::JoinGroupRequest>(api, version, body).map(drop),
        ApiKey::SyncGroup => decode::<m::SyncGroupRequest>(api, version, body).map(drop),
        ApiKey::Heartbeat => decode::<m::HeartbeatRequest>(api, version, body).map(drop),
        ApiKey::LeaveGroup => decode::<m::LeaveGroupRequest>(api, version, body).map(drop),
        ApiKey::OffsetCommit => decode::<m::OffsetCommitRequest>(api, version, body).map(drop),
        ApiKey::OffsetFetch => decode::<m::OffsetFetchRequest>(api, version, body).map(drop),
        ApiKey::OffsetDelete => decode::<m::OffsetDeleteRequest>(api, version, body).map(drop),
        ApiKey::ListGroups => decode::<m::ListGroupsRequest>(api, version, body).map(drop),
        ApiKey::DescribeGroups => decode::<m::DescribeGroupsRequest>(api, version, body).map(drop),
        ApiKey::DeleteGroups => decode::<m::DeleteGroupsRequest>(api, version, body).map(drop),
        ApiKey::ConsumerGroupHeartbeat => {
            decode::<m::ConsumerGroupHeartbeatRequest>(api, version, body).map(drop)
        }
        ApiKey::ConsumerGroupDescribe => {
            decode::<m::ConsumerGroupDescribeRequest>(api, version, body).map(drop)
        }
        ApiKey::ShareGroupHeartbeat => {
            decode::<m::ShareGroupHeartbeatRequest>(api, version, body).map(drop)
        }
        ApiKey::ShareGroupDescribe => {
            decode::<m::ShareGroupDescribeRequest>(api, version, body).map(drop)
        }
        ApiKey::ShareFetch => decode::<m::ShareFetchRequest>(api, version, body).map(drop),
        ApiKey::DescribeShareGroupOffsets => {
            decode::<m::DescribeShareGroupOffsetsRequest>(api, version, body).map(drop)
        }
        ApiKey::ShareAcknowledge => {
            decode::<m::ShareAcknowledgeRequest>(api, version, body).map(drop)
        }
        ApiKey::AlterReplicaLogDirs => {
            decode::<m::AlterReplicaLogDirsRequest>(api, version, body).map(drop)
        }
        ApiKey::DescribeLogDirs => {
            decode::<m::DescribeLogDirsRequest>(api, version, body).map(drop)
        }
        ApiKey::ElectLeaders => decode::<m::ElectLeadersRequest>(api, version, body).map(drop),
        ApiKey::AlterPartitionReassignments => {
            decode::<m::AlterPartitionReassignmentsRequest>(api, version, body).map(drop)
        }
        ApiKey::ListPartitionReassignments => {
            decode::<m::ListPartitionReassignmentsRequest>(api, version, body).map(drop)
        }
        ApiKey::DescribeQuorum => decode::<m::DescribeQuorumRequest>(api, version, body).map(drop),
        ApiKey::DescribeCluster => {
            decode::<m::DescribeClusterRequest>(api, version, body).map(drop)
        }
        ApiKey::DescribeProducers => {
            decode::<m::DescribeProducersRequest>(api, version, body).map(drop)
        }
        ApiKey::ListConfigResources => {
            decode::<m::ListConfigResourcesRequest>(api, version, body).map(drop)
        }
        ApiKey::DescribeTopicPartitions => {
            decode::<m::DescribeTopicPartitionsRequest>(api, version, body).map(drop)
        }
        ApiKey::CreateAcls => decode::<m::CreateAclsRequest>(api, version, body).map(drop),
        ApiKey::DescribeAcls => decode::<m::DescribeAclsRequest>(api, version, body).map(drop),
        ApiKey::DeleteAcls => decode::<m::DeleteAclsRequest>(api, version, body).map(drop),
        ApiKey::SaslHandshake => decode::<m::SaslHandshakeRequest>(api, version, body).map(drop),
        ApiKey::SaslAuthenticate => {
            decode::<m::SaslAuthenticateRequest>(api, version, body).map(drop)
        }
        ApiKey::DescribeUserScramCredentials => {
            decode::<m::DescribeUserScramCredentialsRequest>(api, version, body).map(drop)
        }
        ApiKey::AlterUserScramCredentials => {
            decode::<m::AlterUserScramCredentialsRequest>(api, version, body).map(drop)
        }
        _ => Err(ConnError::UnknownApiKey {
            api_key: api as i16,
        }),
    }
}

/// Runs blocking broker work (disk I/O, waiting for a sync) off the async
/// workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("broker calls do not panic")
}

/// An optional string field, with empty read as absent (as Kafka treats
/// an empty group instance id or protocol name).
pub(crate) fn non_empty(s: Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.map(|s| s.to_string()).filter(|s| !s.is_empty())
}

pub(crate) fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_owned())
}

pub(crate) fn topic_name(s: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(str_bytes(s))
}
