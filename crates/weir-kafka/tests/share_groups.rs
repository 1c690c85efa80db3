//! Share groups' membership (KIP-932) over the wire: ShareGroupHeartbeat
//! and ShareGroupDescribe built with the `kafka-protocol` crate, each
//! answer checked as Kafka's coordinator gives it (join with a client-chosen
//! id, two members splitting a topic, fencing, unknown members, malformed
//! requests, the boundary with classic and consumer groups), and how
//! ListGroups, DescribeGroups, DeleteGroups and FindCoordinator treat a
//! share group. Then a real share consumer: confluent-kafka's
//! `ShareConsumer` (librdkafka 2.16) joins, shows in ShareGroupDescribe and
//! ListGroups with its assignment, and leaves on close (its data path is
//! `share_fetch.rs`'s).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TestServer, call, connect, python};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, JoinGroupRequest, JoinGroupResponse, ListGroupsRequest, ListGroupsResponse,
    ShareGroupDescribeRequest, ShareGroupDescribeResponse, ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_groups::GroupsConfig;

const NONE: i16 = 0;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_MEMBER_EPOCH: i16 = 110;

/// The real client's session timeout: short, so a member whose leave was
/// lost is gone soon.
const SESSION_MS: i32 = 3_000;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn heartbeat(group: &str, member: &str, epoch: i32) -> ShareGroupHeartbeatRequest {
    ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
}

fn join(group: &str, member: &str, topics: &[&str]) -> ShareGroupHeartbeatRequest {
    heartbeat(group, member, 0)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(s(t))).collect()))
}

fn beat(stream: &mut TcpStream, req: &ShareGroupHeartbeatRequest) -> ShareGroupHeartbeatResponse {
    call(stream, ApiKey::ShareGroupHeartbeat, 1, req)
}

fn describe(stream: &mut TcpStream, groups: &[&str]) -> ShareGroupDescribeResponse {
    let request = ShareGroupDescribeRequest::default()
        .with_group_ids(groups.iter().map(|g| GroupId(s(g))).collect());
    call(stream, ApiKey::ShareGroupDescribe, 1, &request)
}

/// Partitions of an assignment in a heartbeat answer.
fn partitions(r: &ShareGroupHeartbeatResponse) -> BTreeSet<i32> {
    r.assignment
        .as_ref()
        .expect("an assignment")
        .topic_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().copied())
        .collect()
}

fn topic_id(server: &TestServer, name: &str) -> uuid::Uuid {
    uuid::Uuid::from_u128(server.broker.topic(name).unwrap().id)
}

#[test]
fn members_join_split_a_topic_heartbeat_and_leave() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("jobs", 4, -1, &[], false)
        .unwrap();
    let jobs = topic_id(&server, "jobs");
    let mut stream = connect(&server);

    let a = beat(&mut stream, &join("g", "member-a", &["jobs"]));
    assert_eq!(a.error_code, NONE, "{:?}", a.error_message);
    assert_eq!(a.error_message, None);
    assert_eq!(a.member_id.as_deref(), Some("member-a"));
    assert_eq!((a.member_epoch, a.heartbeat_interval_ms), (1, 5_000));
    let assignment = a.assignment.as_ref().unwrap();
    assert_eq!(assignment.topic_partitions[0].topic_id, jobs);
    assert_eq!(partitions(&a), (0..4).collect());

    let b = beat(&mut stream, &join("g", "member-b", &["jobs"]));
    assert_eq!((b.error_code, b.member_epoch), (NONE, 2));
    let b_parts = partitions(&b);
    assert_eq!(b_parts.len(), 2);
    // a takes its new assignment on its next heartbeat, at once.
    let a = beat(&mut stream, &heartbeat("g", "member-a", 1));
    assert_eq!((a.error_code, a.member_epoch), (NONE, 2));
    let a_parts = partitions(&a);
    assert_eq!(a_parts.len(), 2);
    assert!(a_parts.is_disjoint(&b_parts));
    // Nothing changed: no assignment in the answer.
    let a = beat(&mut stream, &heartbeat("g", "member-a", 2));
    assert_eq!((a.error_code, a.assignment), (NONE, None));

    let d = describe(&mut stream, &["g"]);
    let g = &d.groups[0];
    assert_eq!(g.error_code, NONE);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
    assert_eq!(g.assignor_name.as_str(), "simple");
    assert_eq!(g.members.len(), 2);
    let m = g
        .members
        .iter()
        .find(|m| m.member_id.as_str() == "member-a")
        .unwrap();
    assert_eq!(m.member_epoch, 2);
    assert_eq!(m.client_id.as_str(), "bad-input-test");
    assert_eq!(m.client_host.as_str(), "/127.0.0.1");
    assert_eq!(m.subscribed_topic_names, vec![TopicName(s("jobs"))]);
    let described = &m.assignment.topic_partitions[0];
    assert_eq!(described.topic_id, jobs);
    assert_eq!(described.topic_name.as_str(), "jobs");
    assert_eq!(
        described
            .partitions
            .iter()
            .copied()
            .collect::<BTreeSet<_>>(),
        a_parts
    );

    // Leaving: the epoch -1 echoed; b then holds all four.
    let left = beat(&mut stream, &heartbeat("g", "member-a", -1));
    assert_eq!((left.error_code, left.member_epoch), (NONE, -1));
    assert_eq!(left.member_id.as_deref(), Some("member-a"));
    let b = beat(&mut stream, &heartbeat("g", "member-b", 2));
    assert_eq!((b.error_code, b.member_epoch), (NONE, 3));
    assert_eq!(partitions(&b), (0..4).collect());
}

#[test]
fn errors_are_kafkas() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("jobs", 2, -1, &[], false)
        .unwrap();
    let mut stream = connect(&server);
    let refused = |stream: &mut TcpStream, req: &ShareGroupHeartbeatRequest, code: i16| {
        let r = beat(stream, req);
        assert_eq!(r.error_code, code, "{:?}", r.error_message);
        assert_eq!(r.member_id, None);
        assert_eq!(r.assignment, None);
        r.error_message.map(|m| m.to_string()).unwrap_or_default()
    };
    let message = refused(&mut stream, &heartbeat("g", "m", 0), INVALID_REQUEST);
    assert!(message.contains("SubscribedTopicNames must be set in first request."));
    let message = refused(&mut stream, &join("g", "", &["jobs"]), INVALID_REQUEST);
    assert!(message.contains("MemberId can't be empty."));
    let message = refused(&mut stream, &heartbeat("g", "m", -2), INVALID_REQUEST);
    assert!(message.contains("MemberEpoch is invalid."));
    refused(&mut stream, &heartbeat("g", "m", 1), UNKNOWN_MEMBER_ID);

    assert_eq!(
        beat(&mut stream, &join("g", "m", &["jobs"])).member_epoch,
        1
    );
    refused(&mut stream, &heartbeat("g", "m", 7), FENCED_MEMBER_EPOCH);
    refused(&mut stream, &heartbeat("g", "other", 1), UNKNOWN_MEMBER_ID);
    refused(&mut stream, &heartbeat("g", "other", -1), UNKNOWN_MEMBER_ID);

    // A consumer group's id is no share group's, and the other way round.
    let consumer = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("k")))
        .with_member_id(s("c1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("jobs"))]));
    let r: ConsumerGroupHeartbeatResponse =
        call(&mut stream, ApiKey::ConsumerGroupHeartbeat, 1, &consumer);
    assert_eq!(r.error_code, NONE);
    refused(&mut stream, &join("k", "m", &["jobs"]), GROUP_ID_NOT_FOUND);
    let r: ConsumerGroupHeartbeatResponse = call(
        &mut stream,
        ApiKey::ConsumerGroupHeartbeat,
        1,
        &consumer.with_group_id(GroupId(s("g"))),
    );
    assert_eq!(r.error_code, GROUP_ID_NOT_FOUND);
    let classic = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(s("range")),
        ]);
    let r: JoinGroupResponse = call(&mut stream, ApiKey::JoinGroup, 9, &classic);
    assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);

    let consumer_described: ConsumerGroupDescribeResponse = call(
        &mut stream,
        ApiKey::ConsumerGroupDescribe,
        1,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g"))]),
    );
    let g = &consumer_described.groups[0];
    assert_eq!(g.error_code, GROUP_ID_NOT_FOUND);
    assert!(
        g.error_message
            .as_ref()
            .unwrap()
            .contains("not a consumer group")
    );

    let d = describe(&mut stream, &["k", "nope"]);
    assert_eq!(d.groups[0].error_code, GROUP_ID_NOT_FOUND);
    assert!(
        d.groups[0]
            .error_message
            .as_ref()
            .unwrap()
            .contains("not a share group")
    );
    assert_eq!(d.groups[1].error_code, GROUP_ID_NOT_FOUND);
}

#[test]
fn admin_apis_see_share_groups() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("jobs", 2, -1, &[], false)
        .unwrap();
    let mut stream = connect(&server);
    assert_eq!(
        beat(&mut stream, &join("g", "m", &["jobs"])).error_code,
        NONE
    );

    let list = |stream: &mut TcpStream, types: &[&str], states: &[&str]| {
        let request = ListGroupsRequest::default()
            .with_types_filter(types.iter().map(|t| s(t)).collect())
            .with_states_filter(states.iter().map(|t| s(t)).collect());
        let r: ListGroupsResponse = call(stream, ApiKey::ListGroups, 5, &request);
        r.groups
            .into_iter()
            .map(|g| {
                format!(
                    "{} {} {} {}",
                    g.group_id.0, g.group_type, g.protocol_type, g.group_state
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&mut stream, &[], &[]), vec!["g share share Stable"]);
    assert_eq!(
        list(&mut stream, &["share"], &["Stable"]),
        vec!["g share share Stable"]
    );
    assert!(list(&mut stream, &["consumer"], &[]).is_empty());
    assert!(list(&mut stream, &[], &["Empty"]).is_empty());

    // DescribeGroups: Dead before v6, GROUP_ID_NOT_FOUND from v6.
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]);
    let r: DescribeGroupsResponse = call(&mut stream, ApiKey::DescribeGroups, 5, &request);
    assert_eq!(
        (r.groups[0].error_code, r.groups[0].group_state.as_str()),
        (NONE, "Dead")
    );
    let r: DescribeGroupsResponse = call(&mut stream, ApiKey::DescribeGroups, 6, &request);
    assert_eq!(r.groups[0].error_code, GROUP_ID_NOT_FOUND);
    assert!(
        r.groups[0]
            .error_message
            .as_ref()
            .unwrap()
            .contains("not a classic group")
    );

    // FindCoordinator names this broker for a share group's id (key type
    // 0); key type 2 (share-state coordinators) stays refused.
    let find = |stream: &mut TcpStream, key_type: i8| {
        let request = FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![s("g")]);
        let r: FindCoordinatorResponse = call(stream, ApiKey::FindCoordinator, 6, &request);
        (r.coordinators[0].error_code, r.coordinators[0].port)
    };
    assert_eq!(find(&mut stream, 0), (NONE, i32::from(server.addr.port())));
    assert_eq!(find(&mut stream, 2).0, INVALID_REQUEST);

    // DeleteGroups: not while a member is in; then yes, and it is gone.
    let delete = |stream: &mut TcpStream| {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
        let r: DeleteGroupsResponse = call(stream, ApiKey::DeleteGroups, 2, &request);
        r.results[0].error_code
    };
    assert_eq!(delete(&mut stream), NON_EMPTY_GROUP);
    assert_eq!(beat(&mut stream, &heartbeat("g", "m", -1)).error_code, NONE);
    assert_eq!(
        list(&mut stream, &["share"], &[]),
        vec!["g share share Empty"]
    );
    assert_eq!(
        describe(&mut stream, &["g"]).groups[0].group_state.as_str(),
        "Empty"
    );
    assert_eq!(delete(&mut stream), NONE);
    assert!(list(&mut stream, &[], &[]).is_empty());
    assert_eq!(
        describe(&mut stream, &["g"]).groups[0].error_code,
        GROUP_ID_NOT_FOUND
    );

    // The broker's share group settings, as Kafka names them.
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("0"))
            .with_configuration_keys(Some(vec![
                s("group.share.session.timeout.ms"),
                s("group.share.heartbeat.interval.ms"),
                s("group.share.max.size"),
            ])),
    ]);
    let r: DescribeConfigsResponse = call(&mut stream, ApiKey::DescribeConfigs, 4, &request);
    let configs: Vec<(String, String)> = r.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_deref().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let defaults = GroupsConfig::default();
    let want = |name: &str, value: String| (name.to_owned(), value);
    assert_eq!(
        configs,
        vec![
            want(
                "group.share.heartbeat.interval.ms",
                defaults.share_heartbeat_interval_ms.to_string()
            ),
            want(
                "group.share.max.size",
                defaults.share_members_max.to_string()
            ),
            want(
                "group.share.session.timeout.ms",
                defaults.share_session_timeout_ms.to_string()
            ),
        ]
    );
}

/// confluent-kafka's ShareConsumer joins through ShareGroupHeartbeat; the
/// group then shows in ShareGroupDescribe and ListGroups with the client's
/// assignment, and closing the consumer leaves the group.
#[test]
fn a_confluent_share_consumer_joins_and_leaves() {
    let groups = GroupsConfig {
        share_session_timeout_ms: SESSION_MS,
        share_heartbeat_interval_ms: 500,
        ..common::test_groups_config()
    };
    let server = TestServer::start_full(weir_broker::BrokerConfig::default(), groups, |_| {});
    server
        .broker
        .create_topic("jobs", 3, -1, &[], false)
        .unwrap();
    let jobs = topic_id(&server, "jobs");
    let mut child = Command::new(python())
        .arg(common::client_script("python_share_consumer.py"))
        .arg(server.bootstrap())
        .args(["workers", "jobs"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python from scripts/install-deps");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });

    // Wait (bounded) for the member to appear with all three partitions.
    let mut stream = connect(&server);
    let deadline = Instant::now() + Duration::from_secs(30);
    let member = loop {
        let d = describe(&mut stream, &["workers"]);
        let g = &d.groups[0];
        if g.error_code == NONE && !g.members.is_empty() {
            break g.clone();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no share member joined: {:?}", log.join());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(member.group_state.as_str(), "Stable");
    let m = &member.members[0];
    // The client chose its member id itself (v1): the coordinator kept it.
    assert!(!m.member_id.is_empty());
    println!("member id chosen by librdkafka: {}", m.member_id.as_str());
    assert_eq!(m.client_id.as_str(), "weir-share-test");
    assert_eq!(m.subscribed_topic_names, vec![TopicName(s("jobs"))]);
    let held = &m.assignment.topic_partitions;
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].topic_id, held[0].topic_name.0.as_str()),
        (jobs, "jobs")
    );
    assert_eq!(held[0].partitions, vec![0, 1, 2]);
    let listed: ListGroupsResponse = call(
        &mut stream,
        ApiKey::ListGroups,
        5,
        &ListGroupsRequest::default().with_types_filter(vec![s("share")]),
    );
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_id.0.as_str(), "workers");

    // Let it poll (and try ShareFetch) a little, then close it.
    std::thread::sleep(Duration::from_secs(2));
    child.stdin.take().unwrap().write_all(b"stop\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the share consumer did not close");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    reader.join().unwrap();
    let out: Vec<String> = lines.try_iter().collect();
    let log = log.join().unwrap();
    println!("client output:\n{}", out.join("\n"));
    let interesting: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ShareFetch") || l.contains("nsupported"))
        .take(20)
        .collect();
    println!("client log about ShareFetch:\n{}", interesting.join("\n"));
    assert!(status.success(), "{out:?}\n{log}");
    assert_eq!(out.first().map(String::as_str), Some("subscribed"));
    assert_eq!(out.last().map(String::as_str), Some("closed"));
    // Closing leaves the group (ShareGroupHeartbeat with epoch -1): with
    // ShareFetch served, the client's connection is never lost, so its
    // leave is always sent.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let g = &describe(&mut stream, &["workers"]).groups[0];
        if g.group_state.as_str() == "Empty" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the member did not leave:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !out.iter()
            .any(|l| l.starts_with("error") || l.starts_with("poll-error")),
        "{out:?}"
    );
    // And the server serves on.
    let r: ApiVersionsResponse = call(
        &mut stream,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(r.error_code, NONE);
}
