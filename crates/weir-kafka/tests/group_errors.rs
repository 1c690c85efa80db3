//! Group requests that must fail, sent as bytes on raw sockets: each gets
//! the precise Kafka error (INVALID_SESSION_TIMEOUT, MEMBER_ID_REQUIRED,
//! UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID,
//! REBALANCE_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION, NON_EMPTY_GROUP,
//! GROUP_ID_NOT_FOUND, OFFSET_METADATA_TOO_LARGE), and the group that was
//! there goes on undisturbed.

mod common;

use common::{TestServer, call, connect};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::net::TcpStream;

const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn join(
    stream: &mut TcpStream,
    group: &str,
    member: &str,
    instance: Option<&str>,
    session_ms: i32,
) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(bytes::Bytes::from_static(b"meta")),
        ]);
    call(stream, ApiKey::JoinGroup, 7, &request)
}

fn sync(stream: &mut TcpStream, group: &str, member: &str, generation: i32) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(member))
                .with_assignment(bytes::Bytes::from_static(b"all of it")),
        ]);
    call(stream, ApiKey::SyncGroup, 4, &request)
}

fn heartbeat(
    stream: &mut TcpStream,
    group: &str,
    member: &str,
    instance: Option<&str>,
    generation: i32,
) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_generation_id(generation);
    let response: HeartbeatResponse = call(stream, ApiKey::Heartbeat, 4, &request);
    response.error_code
}

fn commit(
    stream: &mut TcpStream,
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    metadata: &str,
) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_committed_metadata(Some(s(metadata))),
                ]),
        ]);
    let response: OffsetCommitResponse = call(stream, ApiKey::OffsetCommit, 8, &request);
    response.topics[0].partitions[0].error_code
}

fn committed(stream: &mut TcpStream, group: &str, topic: &str) -> (i64, String) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0]),
        ]));
    let response: OffsetFetchResponse = call(stream, ApiKey::OffsetFetch, 7, &request);
    let p = &response.topics[0].partitions[0];
    (
        p.committed_offset,
        p.metadata
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// A member through KIP-394's two joins and a sync: (member id,
/// generation).
fn stable_member(stream: &mut TcpStream, group: &str) -> (String, i32) {
    let first = join(stream, group, "", None, 6_000);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    let joined = join(stream, group, &member, None, 6_000);
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.as_str(), member);
    let synced = sync(stream, group, &member, joined.generation_id);
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"all of it");
    (member, joined.generation_id)
}

#[test]
fn group_requests_that_must_fail_get_precise_errors_and_disturb_nothing() {
    let server = TestServer::start();
    server.broker.create_topic("t", 1, -1, &[], false).unwrap();
    let mut stream = connect(&server);

    let found: FindCoordinatorResponse = call(
        &mut stream,
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default().with_key(s("g")),
    );
    assert_eq!(found.error_code, 0);
    assert_eq!(found.port, i32::from(server.addr.port()));

    let short = join(&mut stream, "g", "", None, 10);
    assert_eq!(short.error_code, INVALID_SESSION_TIMEOUT);
    let (member, generation) = stable_member(&mut stream, "g");

    assert_eq!(heartbeat(&mut stream, "g", &member, None, generation), 0);
    assert_eq!(
        heartbeat(&mut stream, "g", &member, None, generation + 1),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        heartbeat(&mut stream, "g", "who", None, generation),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        join(&mut stream, "g", "never-issued", None, 6_000).error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        sync(&mut stream, "g", &member, generation + 5).error_code,
        ILLEGAL_GENERATION
    );

    // Commits: the member's own works and round-trips its metadata.
    assert_eq!(commit(&mut stream, "g", &member, generation, "t", "m1"), 0);
    assert_eq!(committed(&mut stream, "g", "t"), (42, "m1".to_owned()));
    assert_eq!(
        commit(&mut stream, "g", &member, generation, "missing", ""),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        commit(&mut stream, "g", &member, generation - 1, "t", ""),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut stream, "g", "", -1, "t", ""),
        UNKNOWN_MEMBER_ID,
        "an admin reset is refused while the group has members"
    );
    assert_eq!(
        commit(
            &mut stream,
            "g",
            &member,
            generation,
            "t",
            &"x".repeat(5000)
        ),
        OFFSET_METADATA_TOO_LARGE
    );
    assert_eq!(committed(&mut stream, "g", "t"), (42, "m1".to_owned()));

    let deleted: DeleteGroupsResponse = call(
        &mut stream,
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s("g")), GroupId(s("nope"))]),
    );
    assert_eq!(deleted.results[0].error_code, NON_EMPTY_GROUP);
    assert_eq!(deleted.results[1].error_code, GROUP_ID_NOT_FOUND);

    // A second member makes the first rejoin.
    let mut other = connect(&server);
    let second = join(&mut other, "g", "", None, 6_000);
    assert_eq!(second.error_code, MEMBER_ID_REQUIRED);
    // (Its second join waits for the rebalance, so it goes on its own
    // connection; the first member's heartbeat says to rejoin.)
    let second_id = second.member_id.to_string();
    let waiting = std::thread::spawn(move || {
        let joined = join(&mut other, "g", &second_id, None, 6_000);
        (other, joined)
    });
    let mut code = 0;
    for _ in 0..100 {
        code = heartbeat(&mut stream, "g", &member, None, generation);
        if code != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(code, REBALANCE_IN_PROGRESS);
    let rejoined = join(&mut stream, "g", &member, None, 6_000);
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(rejoined.members.len(), 2, "the leader sees both members");
    let (_other, joined) = waiting.join().unwrap();
    assert_eq!(joined.generation_id, generation + 1);

    let described: DescribeGroupsResponse = call(
        &mut stream,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g")), GroupId(s("nope"))]),
    );
    assert_eq!(
        described.groups[0].group_state.as_str(),
        "CompletingRebalance"
    );
    assert_eq!(described.groups[0].members.len(), 2);
    assert_eq!(described.groups[1].group_state.as_str(), "Dead");
    let listed: ListGroupsResponse = call(
        &mut stream,
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default(),
    );
    let names: Vec<&str> = listed
        .groups
        .iter()
        .map(|g| g.group_id.0.as_str())
        .collect();
    assert_eq!(names, ["g"]);
    assert_eq!(listed.groups[0].protocol_type.as_str(), "consumer");
}

#[test]
fn static_members_are_fenced_when_a_newer_instance_takes_over() {
    let server = TestServer::start();
    let mut stream = connect(&server);
    let first = join(&mut stream, "s", "", Some("host-1"), 6_000);
    assert_eq!(first.error_code, 0, "static members need no second join");
    let old = first.member_id.to_string();
    assert_eq!(
        sync(&mut stream, "s", &old, first.generation_id).error_code,
        0
    );
    let again = join(&mut stream, "s", "", Some("host-1"), 6_000);
    assert_eq!(again.error_code, 0);
    assert_eq!(again.generation_id, first.generation_id);
    let new = again.member_id.to_string();
    assert_ne!(new, old);
    assert_eq!(
        heartbeat(&mut stream, "s", &old, Some("host-1"), first.generation_id),
        FENCED_INSTANCE_ID
    );
    assert_eq!(
        heartbeat(&mut stream, "s", &new, Some("host-1"), first.generation_id),
        0
    );
    let left: LeaveGroupResponse = call(
        &mut stream,
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("s")))
            .with_members(vec![
                MemberIdentity::default()
                    .with_member_id(s(&old))
                    .with_group_instance_id(Some(s("host-1"))),
                MemberIdentity::default()
                    .with_member_id(s(&new))
                    .with_group_instance_id(Some(s("host-1"))),
            ]),
    );
    assert_eq!(left.members[0].error_code, FENCED_INSTANCE_ID);
    assert_eq!(left.members[1].error_code, 0);
}

#[test]
fn a_deleted_topic_takes_its_committed_offsets_along() {
    use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
    let server = TestServer::start();
    server
        .broker
        .create_topic("gone", 1, -1, &[], false)
        .unwrap();
    let mut stream = connect(&server);
    assert_eq!(commit(&mut stream, "g", "", -1, "gone", "kept?"), 0);
    assert_eq!(
        committed(&mut stream, "g", "gone"),
        (42, "kept?".to_owned())
    );
    let deleted: DeleteTopicsResponse = call(
        &mut stream,
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("gone"))]),
    );
    assert_eq!(deleted.responses[0].error_code, 0);
    server
        .broker
        .create_topic("gone", 1, -1, &[], false)
        .unwrap();
    assert_eq!(committed(&mut stream, "g", "gone"), (-1, String::new()));
}

/// A static member that stops heartbeating leaves the group when its
/// session ends, not later: from its last heartbeat, DeleteGroups is
/// refused until the session timeout and succeeds within 100 ms after it
/// (the coordinator's timer granularity), as on Kafka.
#[test]
fn a_silent_static_member_expires_on_time() {
    const SESSION_MS: u64 = 6_000;
    let server = TestServer::start();
    let (mut member, mut admin) = (connect(&server), connect(&server));
    let joined = join(&mut member, "quiet", "", Some("i-1"), SESSION_MS as i32);
    assert_eq!(joined.error_code, 0);
    let id = joined.member_id.to_string();
    assert_eq!(
        sync(&mut member, "quiet", &id, joined.generation_id).error_code,
        0
    );
    assert_eq!(
        heartbeat(&mut member, "quiet", &id, Some("i-1"), joined.generation_id),
        0
    );
    let last_heard = std::time::Instant::now();
    let delete = |admin: &mut TcpStream| -> i16 {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("quiet"))]);
        let response: DeleteGroupsResponse = call(admin, ApiKey::DeleteGroups, 2, &request);
        response.results[0].error_code
    };
    std::thread::sleep(std::time::Duration::from_millis(SESSION_MS - 300));
    assert_eq!(delete(&mut admin), NON_EMPTY_GROUP, "expired early");
    let deleted = loop {
        let code = delete(&mut admin);
        if code == 0 {
            break last_heard.elapsed();
        }
        assert_eq!(code, NON_EMPTY_GROUP);
        assert!(
            last_heard.elapsed().as_millis() < u128::from(SESSION_MS) + 2_000,
            "the member never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    eprintln!(
        "deletable {} ms after the last heartbeat",
        deleted.as_millis()
    );
    assert!(
        deleted.as_millis() >= u128::from(SESSION_MS),
        "expired early: {deleted:?}"
    );
    assert!(
        deleted.as_millis() <= u128::from(SESSION_MS) + 100,
        "expired late: {deleted:?}"
    );
}
