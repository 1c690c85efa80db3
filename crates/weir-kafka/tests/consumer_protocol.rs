//! KIP-848's consumer rebalance protocol with a real client: confluent-kafka
//! (librdkafka) consumers with `group.protocol=consumer` share a topic
//! through ConsumerGroupHeartbeat, commit with OffsetCommit v9, see every
//! record exactly once while members leave and restart, and the admin
//! client describes and lists the group (`tests/clients/python_consumer_protocol.py`
//! runs and judges the scenario). The server's heartbeat interval is short
//! so reconciliation takes a fraction of a second per step.

mod common;

use std::time::Duration;

use common::{TestServer, python};
use weir_broker::BrokerConfig;
use weir_groups::GroupsConfig;

#[test]
fn confluent_consumers_share_partitions_through_the_consumer_protocol() {
    let groups = GroupsConfig {
        consumer_heartbeat_interval_ms: 200,
        consumer_session_timeout_ms: 6_000,
        ..common::test_groups_config()
    };
    let server = TestServer::start_full(BrokerConfig::default(), groups, |_| {});
    let out = common::run_bounded(
        std::process::Command::new(python())
            .arg(common::client_script("python_consumer_protocol.py"))
            .arg(server.bootstrap()),
        "python_consumer_protocol.py",
        Duration::from_secs(60),
    );
    println!("{out}");
    assert!(out.contains("OK consumer protocol"), "{out}");
}

mod wire {
    //! The consumer protocol's requests on raw sockets, where each must get
    //! Kafka's precise answer: joining and heartbeating, fencing
    //! (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID), malformed requests
    //! (INVALID_REQUEST, UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION),
    //! member epochs on OffsetCommit and OffsetFetch v9 (STALE_MEMBER_EPOCH,
    //! UNSUPPORTED_VERSION below v9), Metadata by topic id, the boundary
    //! with classic groups, and how ListGroups, DescribeGroups and
    //! ConsumerGroupDescribe show the group.

    use super::common::{TestServer, call, connect};
    use bytes::Buf;
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
    use kafka_protocol::messages::{
        ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ConsumerProtocolAssignment,
        DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
        GroupId, JoinGroupRequest, JoinGroupResponse, ListGroupsRequest, ListGroupsResponse,
        MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
        OffsetFetchRequest, OffsetFetchResponse, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use std::net::TcpStream;

    const UNSUPPORTED_VERSION: i16 = 35;
    const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const INVALID_REQUEST: i16 = 42;
    const NON_EMPTY_GROUP: i16 = 68;
    const GROUP_ID_NOT_FOUND: i16 = 69;
    const MEMBER_ID_REQUIRED: i16 = 79;
    const UNKNOWN_TOPIC_ID: i16 = 100;
    const FENCED_MEMBER_EPOCH: i16 = 110;
    const UNSUPPORTED_ASSIGNOR: i16 = 112;
    const STALE_MEMBER_EPOCH: i16 = 113;
    const INVALID_REGULAR_EXPRESSION: i16 = 128;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn beat(stream: &mut TcpStream, member: &str, epoch: i32) -> ConsumerGroupHeartbeatResponse {
        beat_with(stream, heartbeat("g", member, epoch))
    }

    fn heartbeat(group: &str, member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(-1)
    }

    fn joining(group: &str, member: &str) -> ConsumerGroupHeartbeatRequest {
        heartbeat(group, member, 0)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("wire"))]))
            .with_topic_partitions(Some(vec![]))
    }

    fn beat_with(
        stream: &mut TcpStream,
        request: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        call(stream, ApiKey::ConsumerGroupHeartbeat, 1, &request)
    }

    fn commit(stream: &mut TcpStream, version: i16, member: &str, epoch: i32) -> i16 {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(member))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("wire")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(42),
                    ]),
            ]);
        let response: OffsetCommitResponse = call(stream, ApiKey::OffsetCommit, version, &request);
        response.topics[0].partitions[0].error_code
    }

    fn fetch(stream: &mut TcpStream, member: Option<&str>, epoch: i32) -> (i16, i64) {
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(member.map(s))
                .with_member_epoch(epoch)
                .with_topics(None),
        ]);
        let response: OffsetFetchResponse = call(stream, ApiKey::OffsetFetch, 9, &request);
        let group = &response.groups[0];
        let offset = group
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == 1)
            .map_or(-1, |p| p.committed_offset);
        (group.error_code, offset)
    }

    fn list(stream: &mut TcpStream, types: &[&str]) -> Vec<(String, String, String)> {
        let request =
            ListGroupsRequest::default().with_types_filter(types.iter().map(|t| s(t)).collect());
        let response: ListGroupsResponse = call(stream, ApiKey::ListGroups, 5, &request);
        response
            .groups
            .into_iter()
            .map(|g| {
                (
                    g.group_id.0.to_string(),
                    g.group_type.to_string(),
                    g.group_state.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn consumer_protocol_requests_get_kafkas_answers() {
        let server = TestServer::start();
        let topic = server
            .broker
            .create_topic("wire", 3, -1, &[], false)
            .unwrap();
        let topic_id = uuid::Uuid::from_u128(topic.id);
        let mut stream = connect(&server);
        let stream = &mut stream;

        // Joining: every partition, by topic id, at epoch 1.
        let r = beat_with(stream, joining("g", "m1"));
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(r.member_id.as_deref(), Some("m1"));
        assert_eq!(r.member_epoch, 1);
        assert_eq!(r.heartbeat_interval_ms, 5_000);
        let assigned = r.assignment.expect("an assignment").topic_partitions;
        assert_eq!(assigned.len(), 1);
        assert_eq!(
            (assigned[0].topic_id, &assigned[0].partitions),
            (topic_id, &vec![0, 1, 2])
        );

        // The client looks the id up in Metadata.
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_topic_id(topic_id)
                .with_name(None),
            MetadataRequestTopic::default()
                .with_topic_id(uuid::Uuid::from_u128(7))
                .with_name(None),
        ]));
        let response: MetadataResponse = call(stream, ApiKey::Metadata, 12, &request);
        let found = &response.topics[0];
        assert_eq!(found.name.as_ref().map(|n| n.0.as_str()), Some("wire"));
        assert_eq!(found.partitions.len(), 3);
        assert_eq!(response.topics[1].error_code, UNKNOWN_TOPIC_ID);

        // Heartbeats that are fenced, unknown or malformed.
        let held = vec![
            TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![0, 1, 2]),
        ];
        assert_eq!(beat(stream, "m1", 5).error_code, FENCED_MEMBER_EPOCH);
        assert_eq!(beat(stream, "nobody", 1).error_code, UNKNOWN_MEMBER_ID);
        let r = beat_with(stream, joining("g", ""));
        assert_eq!(r.error_code, INVALID_REQUEST);
        assert!(
            r.error_message.as_deref().unwrap().contains("member id"),
            "{:?}",
            r.error_message
        );
        let r = beat_with(
            stream,
            joining("g", "m2").with_server_assignor(Some(s("sticky"))),
        );
        assert_eq!(r.error_code, UNSUPPORTED_ASSIGNOR);
        let r = beat_with(
            stream,
            joining("g", "m2").with_subscribed_topic_regex(Some(s("wi(re"))),
        );
        assert_eq!(r.error_code, INVALID_REGULAR_EXPRESSION);
        let r = beat_with(
            stream,
            heartbeat("g", "m1", 1).with_topic_partitions(Some(held)),
        );
        assert_eq!((r.error_code, r.member_epoch), (0, 1));
        assert!(r.assignment.is_none(), "nothing new to tell");

        // Member epochs on commits and fetches.
        assert_eq!(commit(stream, 8, "m1", 1), UNSUPPORTED_VERSION);
        assert_eq!(commit(stream, 9, "m1", 0), STALE_MEMBER_EPOCH);
        assert_eq!(commit(stream, 9, "m2", 1), UNKNOWN_MEMBER_ID);
        assert_eq!(commit(stream, 9, "m1", 1), 0);
        assert_eq!(fetch(stream, Some("m1"), 0).0, STALE_MEMBER_EPOCH);
        assert_eq!(fetch(stream, Some("m2"), 1).0, UNKNOWN_MEMBER_ID);
        assert_eq!(fetch(stream, Some("m1"), 1), (0, 42));
        assert_eq!(fetch(stream, None, -1), (0, 42));

        // A classic group and this one keep to their protocols.
        let classic = |group: &str| {
            JoinGroupRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default().with_name(s("range")),
                ])
        };
        let r: JoinGroupResponse = call(stream, ApiKey::JoinGroup, 7, &classic("g"));
        assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);
        let r: JoinGroupResponse = call(stream, ApiKey::JoinGroup, 7, &classic("c"));
        assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
        let r = beat_with(stream, joining("c", "m3"));
        assert_eq!(r.error_code, GROUP_ID_NOT_FOUND);

        // How the admin APIs show it.
        assert_eq!(
            list(stream, &["consumer"]),
            vec![("g".to_owned(), "consumer".to_owned(), "Stable".to_owned())]
        );
        let request = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(s("g")), GroupId(s("c"))]);
        let response: ConsumerGroupDescribeResponse =
            call(stream, ApiKey::ConsumerGroupDescribe, 0, &request);
        let g = &response.groups[0];
        assert_eq!(g.error_code, 0);
        assert_eq!(
            (
                g.group_state.as_str(),
                g.group_epoch,
                g.assignor_name.as_str()
            ),
            ("Stable", 1, "uniform")
        );
        let m = &g.members[0];
        assert_eq!((m.member_id.as_str(), m.member_epoch), ("m1", 1));
        let a = &m.assignment.topic_partitions[0];
        assert_eq!(
            (a.topic_name.0.as_str(), &a.partitions),
            ("wire", &vec![0, 1, 2])
        );
        assert_eq!(response.groups[1].error_code, GROUP_ID_NOT_FOUND);
        let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]);
        let response: DescribeGroupsResponse = call(stream, ApiKey::DescribeGroups, 5, &request);
        let g = &response.groups[0];
        assert_eq!(
            (
                g.group_state.as_str(),
                g.protocol_type.as_str(),
                g.protocol_data.as_str()
            ),
            ("Stable", "consumer", "uniform")
        );
        let mut bytes = g.members[0].member_assignment.clone();
        assert_eq!(bytes.get_i16(), 0, "assignment version");
        let assignment = ConsumerProtocolAssignment::decode(&mut bytes, 0).unwrap();
        let tp = &assignment.assigned_partitions[0];
        assert_eq!(
            (tp.topic.0.as_str(), &tp.partitions),
            ("wire", &vec![0, 1, 2])
        );

        // A group with members is not deleted; once the member left it is.
        let delete = |stream: &mut TcpStream| {
            let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
            let response: DeleteGroupsResponse = call(stream, ApiKey::DeleteGroups, 2, &request);
            response.results[0].error_code
        };
        assert_eq!(delete(stream), NON_EMPTY_GROUP);
        let r = beat(stream, "m1", -1);
        assert_eq!((r.error_code, r.member_epoch), (0, -1));
        assert_eq!(
            list(stream, &["consumer"]),
            vec![("g".to_owned(), "consumer".to_owned(), "Empty".to_owned())]
        );
        assert_eq!(delete(stream), 0);
        assert_eq!(fetch(stream, None, -1), (0, -1));
    }
}
