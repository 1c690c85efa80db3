//! The single-node admin APIs at the request level, at every version Weir
//! serves, for the fields and codes clients' admin APIs do not show:
//! DescribeCluster, DescribeQuorum, ListConfigResources, DescribeLogDirs,
//! DescribeProducers, ElectLeaders, the reassignment APIs, and the
//! authorized operations of Metadata.

mod common;

use std::net::TcpStream;

use common::{TestServer, call, connect};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey,
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, DescribeClusterRequest,
    DescribeClusterResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    DescribeProducersRequest, DescribeProducersResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, ElectLeadersRequest, ElectLeadersResponse, ListConfigResourcesRequest,
    ListConfigResourcesResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_kafka::Code;
use weir_log::batch::BatchBuilder;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn server_with_topic() -> (TestServer, TcpStream) {
    let server = TestServer::start();
    server.broker.create_topic("t", 3, -1, &[], false).unwrap();
    let stream = connect(&server);
    (server, stream)
}

/// Kafka's operation bits for a topic and for the cluster.
const TOPIC_OPERATIONS: i32 = 3576;
const CLUSTER_OPERATIONS: i32 = 8096;

#[test]
fn api_versions_lists_the_admin_apis() {
    let (_server, mut stream) = server_with_topic();
    let response: ApiVersionsResponse = call(
        &mut stream,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    let served = |api: ApiKey| {
        let k = response
            .api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .unwrap_or_else(|| panic!("{api:?} is listed"));
        (k.min_version, k.max_version)
    };
    assert_eq!(served(ApiKey::DescribeLogDirs), (1, 4));
    assert_eq!(served(ApiKey::ElectLeaders), (0, 2));
    assert_eq!(served(ApiKey::AlterPartitionReassignments), (0, 1));
    assert_eq!(served(ApiKey::ListPartitionReassignments), (0, 0));
    assert_eq!(served(ApiKey::DescribeQuorum), (0, 2));
    assert_eq!(served(ApiKey::DescribeCluster), (0, 2));
    assert_eq!(served(ApiKey::DescribeProducers), (0, 0));
    assert_eq!(served(ApiKey::ListConfigResources), (0, 1));
    assert_eq!(served(ApiKey::DescribeTopicPartitions), (0, 0));
}

#[test]
fn describe_cluster_is_this_broker_and_refuses_controller_endpoints() {
    let (server, mut stream) = server_with_topic();
    for version in 0..=2 {
        let request =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let r: DescribeClusterResponse =
            call(&mut stream, ApiKey::DescribeCluster, version, &request);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.error_message, None);
        assert_eq!(r.cluster_id.as_str(), "weir-cluster");
        assert_eq!(r.controller_id, BrokerId(0));
        assert_eq!(r.cluster_authorized_operations, CLUSTER_OPERATIONS);
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.brokers[0].broker_id, BrokerId(0));
        assert_eq!(r.brokers[0].port, i32::from(server.addr.port()));
        assert!(!r.brokers[0].is_fenced);
        let plain: DescribeClusterResponse = call(
            &mut stream,
            ApiKey::DescribeCluster,
            version,
            &DescribeClusterRequest::default(),
        );
        assert_eq!(plain.cluster_authorized_operations, i32::MIN, "not asked");
    }
    for version in 1..=2 {
        let controller = DescribeClusterRequest::default().with_endpoint_type(2);
        let r: DescribeClusterResponse =
            call(&mut stream, ApiKey::DescribeCluster, version, &controller);
        assert_eq!(r.error_code, Code::MismatchedEndpointType.code());
        assert!(r.brokers.is_empty());
        let unknown = DescribeClusterRequest::default().with_endpoint_type(9);
        let r: DescribeClusterResponse =
            call(&mut stream, ApiKey::DescribeCluster, version, &unknown);
        assert_eq!(r.error_code, Code::UnsupportedEndpointType.code());
        assert_eq!(
            r.error_message.as_ref().map(|m| m.as_str()),
            Some("Unsupported endpoint type 9")
        );
    }
}

#[test]
fn describe_quorum_has_this_node_as_the_only_voter_and_leader() {
    let (server, mut stream) = server_with_topic();
    let metadata = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(name("__cluster_metadata"))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    for version in 0..=2 {
        let r: DescribeQuorumResponse =
            call(&mut stream, ApiKey::DescribeQuorum, version, &metadata);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].topic_name.0.as_str(), "__cluster_metadata");
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.partition_index, p.error_code), (0, 0));
        assert_eq!(p.leader_id, BrokerId(0));
        assert!(p.leader_epoch >= 1);
        assert_eq!(p.high_watermark, 0);
        assert_eq!(p.current_voters.len(), 1);
        let voter = &p.current_voters[0];
        assert_eq!((voter.replica_id, voter.log_end_offset), (BrokerId(0), 0));
        if version >= 1 {
            assert!(voter.last_fetch_timestamp > 0);
            assert!(voter.last_caught_up_timestamp > 0);
        }
        assert!(p.observers.is_empty());
        if version >= 2 {
            assert_eq!(r.nodes.len(), 1);
            assert_eq!(r.nodes[0].node_id, BrokerId(0));
            let listener = &r.nodes[0].listeners[0];
            assert_eq!(listener.host.as_str(), "127.0.0.1");
            assert_eq!(listener.port, server.addr.port());
        }
    }
    // Any other partition is not one this quorum has.
    let other = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(name("t"))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let r: DescribeQuorumResponse = call(&mut stream, ApiKey::DescribeQuorum, 2, &other);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.topics[0].topic_name.0.as_str(), "t");
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        Code::UnknownTopicOrPartition.code()
    );
    assert!(r.nodes.is_empty());
}

#[test]
fn list_config_resources_lists_topics_the_broker_and_groups_by_type() {
    let (_server, mut stream) = server_with_topic();
    let listed = |stream: &mut TcpStream, version: i16, types: Vec<i8>| {
        let request = ListConfigResourcesRequest::default().with_resource_types(types);
        let r: ListConfigResourcesResponse =
            call(stream, ApiKey::ListConfigResources, version, &request);
        let mut out: Vec<(i8, String)> = r
            .config_resources
            .iter()
            .map(|c| (c.resource_type, c.resource_name.to_string()))
            .collect();
        out.sort();
        (r.error_code, out)
    };
    // v0 is ListClientMetricsResources: no subscriptions here.
    assert_eq!(listed(&mut stream, 0, vec![]), (0, vec![]));
    let (code, all) = listed(&mut stream, 1, vec![]);
    assert_eq!(code, 0);
    assert!(all.contains(&(2, "t".to_owned())), "{all:?}");
    assert!(
        all.contains(&(2, "__consumer_offsets".to_owned())),
        "{all:?}"
    );
    assert!(all.contains(&(4, "0".to_owned())), "{all:?}");
    assert!(all.contains(&(8, "0".to_owned())), "{all:?}");
    let (_, topics) = listed(&mut stream, 1, vec![2]);
    assert!(
        topics.iter().all(|(t, _)| *t == 2) && topics.len() >= 2,
        "{topics:?}"
    );
    assert_eq!(
        listed(&mut stream, 1, vec![4]),
        (0, vec![(4, "0".to_owned())])
    );
    assert_eq!(listed(&mut stream, 1, vec![16]), (0, vec![]));
    // A type outside the set v1 defines fails the request.
    assert_eq!(
        listed(&mut stream, 1, vec![2, 64]),
        (Code::UnsupportedVersion.code(), vec![])
    );
}

#[test]
fn describe_log_dirs_reports_the_data_directory_and_partition_sizes() {
    let (server, mut stream) = server_with_topic();
    let mut batch = BatchBuilder::new(1_000);
    batch.push(1_000, Some(b"k"), Some(b"some value"), &[]);
    server.broker.produce("t", 1, &mut batch.build()).unwrap();
    let size_1 = server.broker.partition("t", 1).unwrap().size_bytes() as i64;
    assert!(size_1 > 0);
    for version in 1..=4 {
        let all: DescribeLogDirsResponse = call(
            &mut stream,
            ApiKey::DescribeLogDirs,
            version,
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        assert_eq!(all.error_code, 0);
        assert_eq!(all.results.len(), 1);
        let dir = &all.results[0];
        assert_eq!(dir.error_code, 0);
        assert!(std::path::Path::new(dir.log_dir.as_str()).is_absolute());
        assert_eq!(
            std::path::Path::new(dir.log_dir.as_str()),
            server.broker.data_dir().root()
        );
        let t = dir
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "t")
            .unwrap();
        let sizes: Vec<(i32, i64, i64, bool)> = t
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.partition_size,
                    p.offset_lag,
                    p.is_future_key,
                )
            })
            .collect();
        assert_eq!(
            sizes,
            vec![(0, 0, 0, false), (1, size_1, 0, false), (2, 0, 0, false)]
        );
        if version >= 4 {
            assert!(dir.total_bytes > 0 && dir.usable_bytes > 0);
            assert!(dir.usable_bytes <= dir.total_bytes);
        }
        // Only what is asked: nothing, or one partition and nothing of
        // unknown topics.
        let none: DescribeLogDirsResponse = call(
            &mut stream,
            ApiKey::DescribeLogDirs,
            version,
            &DescribeLogDirsRequest::default().with_topics(Some(vec![])),
        );
        assert!(none.results[0].topics.is_empty());
        let some = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(name("t"))
                .with_partitions(vec![1, 7]),
            DescribableLogDirTopic::default()
                .with_topic(name("nope"))
                .with_partitions(vec![0]),
        ]));
        let r: DescribeLogDirsResponse = call(&mut stream, ApiKey::DescribeLogDirs, version, &some);
        let topics = &r.results[0].topics;
        assert_eq!(topics.len(), 1);
        assert_eq!(topics[0].name.0.as_str(), "t");
        assert_eq!(topics[0].partitions.len(), 1);
        assert_eq!(topics[0].partitions[0].partition_size, size_1);
    }
}

#[test]
fn describe_producers_lists_each_idempotent_producer_of_a_partition() {
    let (server, mut stream) = server_with_topic();
    // Producer 41 writes two batches (sequences 0-2, 3-4); producer 7 one.
    for (pid, epoch, seq, records, ts) in [
        (41, 3, 0, 3, 5_000),
        (41, 3, 3, 2, 6_000),
        (7, 0, 0, 1, 5_500),
    ] {
        let mut batch = BatchBuilder::new(ts).producer(pid, epoch, seq);
        for i in 0..records {
            batch.push(ts + i64::from(i), None, Some(b"v"), &[]);
        }
        server.broker.produce("t", 0, &mut batch.build()).unwrap();
    }
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(name("t"))
            .with_partition_indexes(vec![0, 1, 9]),
        TopicRequest::default()
            .with_name(name("nope"))
            .with_partition_indexes(vec![0]),
        TopicRequest::default()
            .with_name(name("bad/name"))
            .with_partition_indexes(vec![0]),
    ]);
    let r: DescribeProducersResponse = call(&mut stream, ApiKey::DescribeProducers, 0, &request);
    let t = &r.topics[0];
    let p0 = &t.partitions[0];
    assert_eq!((p0.partition_index, p0.error_code), (0, 0));
    let states: Vec<(i64, i32, i32, i64, i32, i64)> = p0
        .active_producers
        .iter()
        .map(|s| {
            (
                s.producer_id.0,
                s.producer_epoch,
                s.last_sequence,
                s.last_timestamp,
                s.coordinator_epoch,
                s.current_txn_start_offset,
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![(7, 0, 0, 5_500, -1, -1), (41, 3, 4, 6_001, -1, -1)]
    );
    assert_eq!(
        (
            t.partitions[1].error_code,
            t.partitions[1].active_producers.len()
        ),
        (0, 0)
    );
    assert_eq!(
        t.partitions[2].error_code,
        Code::UnknownTopicOrPartition.code()
    );
    assert_eq!(t.partitions[2].error_message, None);
    let unknown = &r.topics[1].partitions[0];
    assert_eq!(unknown.error_code, Code::UnknownTopicOrPartition.code());
    assert!(unknown.error_message.is_some());
    assert_eq!(
        r.topics[2].partitions[0].error_code,
        Code::InvalidTopicException.code()
    );
}

#[test]
fn elect_leaders_is_never_needed() {
    let (_server, mut stream) = server_with_topic();
    let named = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
        TopicPartitions::default()
            .with_topic(name("t"))
            .with_partitions(vec![0, 2, 5]),
        TopicPartitions::default()
            .with_topic(name("nope"))
            .with_partitions(vec![0]),
    ]));
    for version in 0..=2 {
        let r: ElectLeadersResponse = call(&mut stream, ApiKey::ElectLeaders, version, &named);
        assert_eq!(r.error_code, 0);
        let codes: Vec<(String, i32, i16)> = r
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
            })
            .collect();
        let (not_needed, unknown) = (
            Code::ElectionNotNeeded.code(),
            Code::UnknownTopicOrPartition.code(),
        );
        assert_eq!(
            codes,
            vec![
                ("t".into(), 0, not_needed),
                ("t".into(), 2, not_needed),
                ("t".into(), 5, unknown),
                ("nope".into(), 0, unknown)
            ]
        );
        // All partitions: each topic, none needing an election.
        let all: ElectLeadersResponse = call(
            &mut stream,
            ApiKey::ElectLeaders,
            version,
            &ElectLeadersRequest::default().with_topic_partitions(None),
        );
        assert!(
            all.replica_election_results
                .iter()
                .any(|t| t.topic.0.as_str() == "t")
        );
        assert!(
            all.replica_election_results
                .iter()
                .all(|t| t.partition_result.is_empty())
        );
    }
    // An election type Kafka does not define fails the whole request.
    let bad = named.clone().with_election_type(5);
    let r: ElectLeadersResponse = call(&mut stream, ApiKey::ElectLeaders, 2, &bad);
    assert_eq!(r.error_code, Code::InvalidRequest.code());
    assert!(r.replica_election_results.iter().all(|t| {
        t.partition_result
            .iter()
            .all(|p| p.error_code == Code::InvalidRequest.code())
    }));
}

#[test]
fn reassignments_none_in_progress_and_only_this_node_can_hold_replicas() {
    let (_server, mut stream) = server_with_topic();
    let list: ListPartitionReassignmentsResponse = call(
        &mut stream,
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default(),
    );
    assert_eq!((list.error_code, list.error_message.clone()), (0, None));
    assert!(list.topics.is_empty());
    let to = |replicas: Option<Vec<i32>>, partition: i32| {
        ReassignablePartition::default()
            .with_partition_index(partition)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![
                to(Some(vec![0]), 0),
                to(Some(vec![0, 3]), 1),
                to(Some(vec![0, 0]), 2),
                to(Some(vec![]), 0),
                to(None, 1),
                to(Some(vec![0]), 8),
            ]),
        ReassignableTopic::default()
            .with_name(name("nope"))
            .with_partitions(vec![to(Some(vec![0]), 0)]),
    ]);
    for version in 0..=1 {
        let r: AlterPartitionReassignmentsResponse = call(
            &mut stream,
            ApiKey::AlterPartitionReassignments,
            version,
            &request,
        );
        assert_eq!((r.error_code, r.error_message.clone()), (0, None));
        let got: Vec<(i32, i16, Option<String>)> = r
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| {
                (
                    p.partition_index,
                    p.error_code,
                    p.error_message.as_ref().map(ToString::to_string),
                )
            })
            .collect();
        let invalid = Code::InvalidReplicaAssignment.code();
        let unknown = Code::UnknownTopicOrPartition.code();
        let message = |s: &str| Some(s.to_owned());
        assert_eq!(
            got,
            vec![
                (0, 0, None),
                (
                    1,
                    invalid,
                    message(
                        "The manual partition assignment includes broker 3, but no such broker is registered."
                    )
                ),
                (
                    2,
                    invalid,
                    message(
                        "The manual partition assignment includes the broker 0 more than once."
                    )
                ),
                (
                    0,
                    invalid,
                    message("The manual partition assignment includes an empty replica list.")
                ),
                (1, Code::NoReassignmentInProgress.code(), None),
                (8, unknown, message("Unable to find partition t:8.")),
                (0, unknown, message("Unable to find a topic named nope.")),
            ]
        );
    }
}

#[test]
fn metadata_fills_authorized_operations_when_asked() {
    let (_server, mut stream) = server_with_topic();
    let topics = Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(name("t"))),
    ]);
    for version in 8..=12 {
        let asked = MetadataRequest::default()
            .with_topics(topics.clone())
            .with_include_topic_authorized_operations(true)
            .with_include_cluster_authorized_operations(version <= 10);
        let r: MetadataResponse = call(&mut stream, ApiKey::Metadata, version, &asked);
        assert_eq!(r.topics[0].topic_authorized_operations, TOPIC_OPERATIONS);
        if version <= 10 {
            assert_eq!(r.cluster_authorized_operations, CLUSTER_OPERATIONS);
        }
        let plain = MetadataRequest::default().with_topics(topics.clone());
        let r: MetadataResponse = call(&mut stream, ApiKey::Metadata, version, &plain);
        assert_eq!(r.topics[0].topic_authorized_operations, i32::MIN);
    }
}

#[test]
fn group_describes_fill_authorized_operations_when_asked() {
    use kafka_protocol::messages::{
        ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribeGroupsRequest,
        DescribeGroupsResponse, GroupId,
    };
    // READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS and ALTER_CONFIGS.
    const GROUP_OPERATIONS: i32 = 3400;
    let (_server, mut stream) = server_with_topic();
    let group = || vec![GroupId(StrBytes::from_static_str("g"))];
    for version in 3..=5 {
        for (asked, expected) in [(true, GROUP_OPERATIONS), (false, i32::MIN)] {
            let request = DescribeGroupsRequest::default()
                .with_groups(group())
                .with_include_authorized_operations(asked);
            let r: DescribeGroupsResponse =
                call(&mut stream, ApiKey::DescribeGroups, version, &request);
            assert_eq!(r.groups[0].authorized_operations, expected);
        }
    }
    for version in 0..=1 {
        let request = ConsumerGroupDescribeRequest::default()
            .with_group_ids(group())
            .with_include_authorized_operations(true);
        let r: ConsumerGroupDescribeResponse = call(
            &mut stream,
            ApiKey::ConsumerGroupDescribe,
            version,
            &request,
        );
        assert_eq!(r.groups[0].authorized_operations, GROUP_OPERATIONS);
    }
}
