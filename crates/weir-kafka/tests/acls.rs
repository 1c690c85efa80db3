//! Authorization over the Kafka protocol: the Python clients manage ACLs
//! and are refused, per resource type and operation family, with the error
//! Kafka gives (`tests/clients/python_acls.py`); ACL changes reach
//! connected clients; the raw protocol's refusals of bad bindings and
//! filters, Weir's resource types on the wire, SECURITY_DISABLED without
//! an authorizer, and super users. Every client here is `User:ANONYMOUS`
//! (no SASL or TLS in these tests); the super user is someone else unless
//! a test says otherwise.

mod common;

use common::{TestServer, call, connect, python};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey, CreateAclsRequest,
    CreateAclsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteAclsRequest,
    DeleteAclsResponse, DescribeAclsRequest, DescribeAclsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, ElectLeadersRequest,
    ElectLeadersResponse, MetadataRequest, MetadataResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use weir_auth::acl::{
    AccessEntry, AclBinding, AclFilter, CLUSTER_NAME, Operation, PatternType, Permission,
    ResourcePattern, ResourceType,
};
use weir_auth::{AuthorizerConfig, Principal};

const ANONYMOUS: &str = "User:ANONYMOUS";
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const SECURITY_DISABLED: i16 = 54;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn binding(
    resource_type: ResourceType,
    name: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type,
            name: name.to_owned(),
            pattern_type: PatternType::Literal,
        },
        entry: AccessEntry {
            principal: ANONYMOUS.to_owned(),
            host: "*".to_owned(),
            operation,
            permission,
        },
    }
}

/// A server whose super user is `User:admin`, where the anonymous caller
/// may alter and describe the cluster (so it manages ACLs) and nothing
/// else.
fn server() -> TestServer {
    let server = TestServer::start_authorized(AuthorizerConfig {
        super_users: vec![Principal::user("admin")],
        ..AuthorizerConfig::default()
    });
    let cluster = |op| binding(ResourceType::Cluster, CLUSTER_NAME, op, Permission::Allow);
    server
        .authorizer
        .create(&[cluster(Operation::Alter), cluster(Operation::Describe)])
        .unwrap();
    server
}

fn run_python(server: &TestServer, scenario: &str) -> String {
    let script = common::client_script("python_acls.py");
    let out = std::process::Command::new(python())
        .args([script.as_str(), &server.bootstrap(), scenario])
        .output()
        .expect("the client virtualenv is installed by scripts/install-deps");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn python_admin_clients_create_describe_and_delete_acls() {
    let server = server();
    let out = run_python(&server, "admin");
    assert_eq!(out.matches("ok:").count(), 7, "{out}");
    // What the clients left is what the authorizer holds: the two
    // cluster grants and bob's prefixed deny.
    let left = server.authorizer.describe(&AclFilter::any()).unwrap();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.iter().any(|b| b.entry.principal == "User:bob"
            && b.pattern.pattern_type == PatternType::Prefixed
            && b.entry.permission == Permission::Deny),
        "{left:?}"
    );
}

#[test]
fn python_clients_are_refused_per_resource_and_operation_then_allowed_without_reconnecting() {
    let server = server();
    let out = run_python(&server, "denials");
    assert_eq!(out.matches("ok:").count(), 12, "{out}");
    // The script took the cluster's ALTER away; DESCRIBE remains.
    let left = server.authorizer.describe(&AclFilter::any()).unwrap();
    assert!(
        left.iter().all(|b| b.entry.operation != Operation::Alter),
        "{left:?}"
    );
}

fn creation(
    resource_type: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s(host))
        .with_operation(operation)
        .with_permission_type(permission)
}

/// A filter of `resource_type` that selects on nothing else (the
/// message's defaults are empty strings, not nulls).
fn describe_filter(resource_type: i8) -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)
}

fn delete_filter(resource_type: i8, operation: i8) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(operation)
        .with_permission_type(1)
}

#[test]
fn raw_acl_requests_refuse_bad_input_and_take_weirs_resource_types() {
    let server = server();
    let mut conn = connect(&server);
    // Each creation answered on its own: the good ones stored, each bad
    // one INVALID_REQUEST with its reason.
    let request = CreateAclsRequest::default().with_creations(vec![
        creation(2, "orders", 3, ANONYMOUS, "*", 3, 3),
        creation(0, "orders", 3, ANONYMOUS, "*", 3, 3),
        creation(2, "orders", 2, ANONYMOUS, "*", 3, 3),
        creation(2, "orders", 3, "alice", "*", 3, 3),
        creation(2, "orders", 3, ANONYMOUS, "*", 1, 3),
        creation(4, "my-cluster", 3, ANONYMOUS, "*", 7, 3),
        creation(2, "", 3, ANONYMOUS, "*", 3, 3),
        creation(100, "order-42", 3, ANONYMOUS, "*", 3, 3),
    ]);
    let response: CreateAclsResponse = call(&mut conn, ApiKey::CreateAcls, 3, &request);
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 42, 42, 42, 42, 42, 42, 0], "{response:?}");
    // Null messages on success, as Kafka sends them.
    assert_eq!(response.results[0].error_message, None);
    let messages: Vec<String> = response
        .results
        .iter()
        .map(|r| r.error_message.as_deref().unwrap_or("").to_owned())
        .collect();
    for (i, fragment) in [
        (1, "unknown resource type code 0"),
        (2, "MATCH is for filters only"),
        (3, "alice"),
        (4, "ANY is for filters only"),
        (5, "kafka-cluster"),
        (6, "empty"),
    ] {
        assert!(messages[i].contains(fragment), "{i}: {:?}", messages[i]);
    }
    // Weir's STREAM (100) is found when named, and left out of ANY, which
    // a Kafka client could not parse.
    let any: DescribeAclsResponse = call(&mut conn, ApiKey::DescribeAcls, 3, &describe_filter(1));
    assert_eq!((any.error_code, &any.error_message), (0, &None));
    assert!(
        any.resources.iter().all(|r| r.resource_type < 100),
        "{any:?}"
    );
    assert!(
        any.resources
            .iter()
            .any(|r| r.resource_name.as_str() == "orders")
    );
    let streams: DescribeAclsResponse =
        call(&mut conn, ApiKey::DescribeAcls, 3, &describe_filter(100));
    assert_eq!(streams.resources.len(), 1, "{streams:?}");
    assert_eq!(streams.resources[0].resource_name.as_str(), "order-42");
    // A filter with a code Kafka does not have is refused with the reason.
    let bad: DescribeAclsResponse = call(&mut conn, ApiKey::DescribeAcls, 3, &describe_filter(9));
    assert_eq!(bad.error_code, INVALID_REQUEST);
    assert!(
        bad.error_message.as_deref().unwrap().contains("9"),
        "{bad:?}"
    );
    let delete = DeleteAclsRequest::default().with_filters(vec![
        delete_filter(2, 1),
        delete_filter(2, 77),
        delete_filter(100, 1),
    ]);
    let deleted: DeleteAclsResponse = call(&mut conn, ApiKey::DeleteAcls, 3, &delete);
    let results = &deleted.filter_results;
    assert_eq!(
        (results[0].error_code, results[0].matching_acls.len()),
        (0, 1)
    );
    assert_eq!(results[0].matching_acls[0].resource_name.as_str(), "orders");
    assert_eq!(results[0].error_message, None);
    assert_eq!(results[0].matching_acls[0].error_message, None);
    assert_eq!(results[1].error_code, INVALID_REQUEST);
    assert!(
        results[1]
            .error_message
            .as_deref()
            .unwrap()
            .contains("operation code 77"),
        "{results:?}"
    );
    assert_eq!(results[2].matching_acls[0].resource_type, 100);
    let left = server.authorizer.describe(&AclFilter::any()).unwrap();
    assert_eq!(left.len(), 2, "only the cluster grants: {left:?}");

    // DESCRIBE taken away: describing the ACLs, the log dirs and the
    // quorum is CLUSTER_AUTHORIZATION_FAILED; ALTER too: electing leaders.
    let mut cluster = AclFilter::any();
    cluster.resource_type = ResourceType::Cluster;
    server.authorizer.delete(&[cluster]).unwrap();
    let refused: DescribeAclsResponse =
        call(&mut conn, ApiKey::DescribeAcls, 3, &describe_filter(1));
    assert_eq!(refused.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let created: CreateAclsResponse = call(&mut conn, ApiKey::CreateAcls, 3, &request);
    assert!(
        created
            .results
            .iter()
            .all(|r| r.error_code == CLUSTER_AUTHORIZATION_FAILED)
    );
    let dirs: DescribeLogDirsResponse = call(
        &mut conn,
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    assert_eq!(dirs.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(dirs.results.is_empty());
    let elected: ElectLeadersResponse = call(
        &mut conn,
        ApiKey::ElectLeaders,
        2,
        &ElectLeadersRequest::default().with_topic_partitions(None),
    );
    assert_eq!(elected.error_code, CLUSTER_AUTHORIZATION_FAILED);
}

fn metadata(conn: &mut std::net::TcpStream, topics: Option<&[&str]>) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(s(n)))))
                .collect()
        }));
    call(conn, ApiKey::Metadata, 12, &request)
}

#[test]
fn metadata_hides_topics_the_caller_may_not_describe_and_a_change_is_seen_at_once() {
    let server = server();
    for t in ["shown", "hidden"] {
        server.broker.create_topic(t, 1, -1, &[], false).unwrap();
    }
    let read = binding(
        ResourceType::Topic,
        "shown",
        Operation::Read,
        Permission::Allow,
    );
    server.authorizer.create(&[read]).unwrap();
    let mut conn = connect(&server);
    let names = |m: &MetadataResponse| -> Vec<(String, i16)> {
        m.topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code))
            .collect()
    };
    // READ implies DESCRIBE; the other topic is not mentioned.
    assert_eq!(names(&metadata(&mut conn, None)), [("shown".to_owned(), 0)]);
    let named = metadata(&mut conn, Some(&["hidden", "absent"]));
    assert_eq!(
        names(&named),
        [
            ("hidden".to_owned(), TOPIC_AUTHORIZATION_FAILED),
            ("absent".to_owned(), TOPIC_AUTHORIZATION_FAILED),
        ]
    );
    // A deny wins over the allow, on the same connection, at once.
    let deny = binding(ResourceType::Topic, "*", Operation::All, Permission::Deny);
    server.authorizer.create(&[deny]).unwrap();
    assert!(metadata(&mut conn, None).topics.is_empty());
    let txn: DescribeTransactionsResponse = call(
        &mut conn,
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s("tx-1"))]),
    );
    assert_eq!(
        txn.transaction_states[0].error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
}

#[test]
fn super_users_may_do_anything_and_no_authorizer_means_security_disabled() {
    // The anonymous caller as the super user: no ACL needed.
    let server = TestServer::start_authorized(AuthorizerConfig {
        super_users: vec![Principal::anonymous()],
        ..AuthorizerConfig::default()
    });
    let mut conn = connect(&server);
    let create = CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("by-super-user")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 7, &create);
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    // Every topic, the internal ones too.
    let listed = metadata(&mut conn, None).topics;
    assert_eq!(listed.len(), server.broker.topics().len());
    assert!(
        listed
            .iter()
            .any(|t| t.name.as_ref().unwrap().0.as_str() == "by-super-user")
    );
    assert!(
        server
            .authorizer
            .describe(&AclFilter::any())
            .unwrap()
            .is_empty()
    );

    // Without an authorizer everything is allowed and the ACL APIs say so.
    let open = TestServer::start();
    let mut conn = connect(&open);
    let created: CreateAclsResponse = call(
        &mut conn,
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default()
            .with_creations(vec![creation(2, "orders", 3, ANONYMOUS, "*", 3, 3)]),
    );
    assert_eq!(created.results[0].error_code, SECURITY_DISABLED);
    let described: DescribeAclsResponse =
        call(&mut conn, ApiKey::DescribeAcls, 3, &describe_filter(1));
    assert_eq!(described.error_code, SECURITY_DISABLED);
    let deleted: DeleteAclsResponse = call(
        &mut conn,
        ApiKey::DeleteAcls,
        3,
        &DeleteAclsRequest::default().with_filters(vec![delete_filter(1, 1)]),
    );
    assert_eq!(deleted.filter_results[0].error_code, SECURITY_DISABLED);
}

/// Kafka's rule for user management (KIP-554): describing SCRAM
/// credentials needs DESCRIBE on the cluster, changing them ALTER; a
/// refused change stores nothing.
#[test]
fn scram_user_management_needs_the_cluster_operations() {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    let server = TestServer::start_authorized(AuthorizerConfig::default());
    let mut conn = connect(&server);
    let describe = DescribeUserScramCredentialsRequest::default().with_users(None);
    let r: DescribeUserScramCredentialsResponse = call(
        &mut conn,
        ApiKey::DescribeUserScramCredentials,
        0,
        &describe,
    );
    assert_eq!(r.error_code, 31, "CLUSTER_AUTHORIZATION_FAILED: {r:?}");
    let upsert = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_static_str("mallory"))
            .with_mechanism(1)
            .with_iterations(4096)
            .with_salt(bytes::Bytes::from_static(b"salt"))
            .with_salted_password(bytes::Bytes::from_static(&[7; 32])),
    ]);
    let r: AlterUserScramCredentialsResponse =
        call(&mut conn, ApiKey::AlterUserScramCredentials, 0, &upsert);
    assert_eq!(r.results[0].error_code, 31, "{r:?}");

    let cluster = |op| binding(ResourceType::Cluster, CLUSTER_NAME, op, Permission::Allow);
    server
        .authorizer
        .create(&[cluster(Operation::Alter)])
        .unwrap();
    let r: AlterUserScramCredentialsResponse =
        call(&mut conn, ApiKey::AlterUserScramCredentials, 0, &upsert);
    assert_eq!(r.results[0].error_code, 0, "{r:?}");
    // ALTER implies DESCRIBE, as Kafka has it.
    let r: DescribeUserScramCredentialsResponse = call(
        &mut conn,
        ApiKey::DescribeUserScramCredentials,
        0,
        &describe,
    );
    assert_eq!(r.error_code, 0, "{r:?}");
    let users: Vec<&str> = r.results.iter().map(|u| &*u.user).collect();
    assert_eq!(users, ["mallory"]);
}

#[test]
fn described_groups_and_share_acknowledgements_check_their_topics() {
    use kafka_protocol::messages::share_acknowledge_request::AcknowledgePartition;
    use kafka_protocol::messages::share_acknowledge_request::{
        AcknowledgeTopic, AcknowledgementBatch,
    };
    use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{
        ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
        ConsumerGroupHeartbeatResponse, GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
        ShareFetchRequest, ShareFetchResponse, ShareGroupDescribeRequest,
        ShareGroupDescribeResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
    };
    let server = server();
    server
        .broker
        .create_topic("jobs", 1, -1, &[], false)
        .unwrap();
    let topic_id = uuid::Uuid::from_u128(server.broker.topic("jobs").unwrap().id);
    let allow = |t, name: &str, op| binding(t, name, op, Permission::Allow);
    server
        .authorizer
        .create(&[
            allow(ResourceType::Group, "*", Operation::Read),
            allow(ResourceType::Topic, "jobs", Operation::Describe),
        ])
        .unwrap();
    let mut conn = connect(&server);

    // A consumer group member subscribed to `jobs`: described while the
    // caller may describe the topic, refused as a whole once it may not.
    let joined: ConsumerGroupHeartbeatResponse = call(
        &mut conn,
        ApiKey::ConsumerGroupHeartbeat,
        0,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("readers")))
            .with_member_id(s("m-1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("jobs"))]))
            .with_topic_partitions(Some(vec![])),
    );
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let describe_consumers = |conn: &mut std::net::TcpStream| -> (i16, usize) {
        let r: ConsumerGroupDescribeResponse = call(
            conn,
            ApiKey::ConsumerGroupDescribe,
            0,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("readers"))]),
        );
        (r.groups[0].error_code, r.groups[0].members.len())
    };
    assert_eq!(describe_consumers(&mut conn), (0, 1));

    // A share group member: joins, opens a share session (the partition
    // is refused, READ on `jobs` is missing), then acknowledges: refused
    // per partition for the topic, not for the record.
    let share: ShareGroupHeartbeatResponse = call(
        &mut conn,
        ApiKey::ShareGroupHeartbeat,
        1,
        &ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("workers")))
            .with_member_id(s("w-1"))
            .with_member_epoch(0)
            .with_subscribed_topic_names(Some(vec![TopicName(s("jobs"))])),
    );
    assert_eq!(share.error_code, 0, "{share:?}");
    let opened: ShareFetchResponse = call(
        &mut conn,
        ApiKey::ShareFetch,
        1,
        &ShareFetchRequest::default()
            .with_group_id(Some(GroupId(s("workers"))))
            .with_member_id(Some(s("w-1")))
            .with_share_session_epoch(0)
            .with_max_records(10)
            .with_batch_size(10)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![FetchPartition::default().with_partition_index(0)]),
            ]),
    );
    assert_eq!(opened.error_code, 0, "{opened:?}");
    let acked: ShareAcknowledgeResponse = call(
        &mut conn,
        ApiKey::ShareAcknowledge,
        1,
        &ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(s("workers"))))
            .with_member_id(Some(s("w-1")))
            .with_share_session_epoch(1)
            .with_topics(vec![
                AcknowledgeTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![
                        AcknowledgePartition::default()
                            .with_partition_index(0)
                            .with_acknowledgement_batches(vec![
                                AcknowledgementBatch::default()
                                    .with_first_offset(0)
                                    .with_last_offset(0)
                                    .with_acknowledge_types(vec![1]),
                            ]),
                    ]),
            ]),
    );
    assert_eq!(acked.error_code, 0, "{acked:?}");
    assert_eq!(
        acked.responses[0].partitions[0].error_code, TOPIC_AUTHORIZATION_FAILED,
        "{acked:?}"
    );
    let describe_share = |conn: &mut std::net::TcpStream| -> i16 {
        let r: ShareGroupDescribeResponse = call(
            conn,
            ApiKey::ShareGroupDescribe,
            1,
            &ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("workers"))]),
        );
        r.groups[0].error_code
    };
    assert_eq!(describe_share(&mut conn), 0);

    // Describing `jobs` denied: both groups name it, both are refused.
    let deny = binding(
        ResourceType::Topic,
        "jobs",
        Operation::Describe,
        Permission::Deny,
    );
    server.authorizer.create(&[deny]).unwrap();
    assert_eq!(
        describe_consumers(&mut conn),
        (TOPIC_AUTHORIZATION_FAILED, 0)
    );
    assert_eq!(describe_share(&mut conn), TOPIC_AUTHORIZATION_FAILED);
}

#[test]
fn a_regex_subscription_matches_only_topics_the_member_may_describe() {
    use kafka_protocol::messages::{
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
    };
    let server = server();
    for t in ["orders-a", "orders-b"] {
        server.broker.create_topic(t, 1, -1, &[], false).unwrap();
    }
    let id_of = |t: &str| uuid::Uuid::from_u128(server.broker.topic(t).unwrap().id);
    let allow = |t, name: &str, op| binding(t, name, op, Permission::Allow);
    server
        .authorizer
        .create(&[
            allow(ResourceType::Group, "*", Operation::Read),
            allow(ResourceType::Topic, "orders-a", Operation::Read),
        ])
        .unwrap();
    let mut conn = connect(&server);
    let beat = |conn: &mut std::net::TcpStream, epoch: i32, regex: Option<&str>| {
        let r: ConsumerGroupHeartbeatResponse = call(
            conn,
            ApiKey::ConsumerGroupHeartbeat,
            1,
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s("regex-readers")))
                .with_member_id(s("m-1"))
                .with_member_epoch(epoch)
                .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
                .with_subscribed_topic_regex(regex.map(s))
                .with_topic_partitions((epoch == 0).then(Vec::new)),
        );
        assert_eq!(r.error_code, 0, "{r:?}");
        let topics: std::collections::BTreeSet<uuid::Uuid> = r
            .assignment
            .iter()
            .flat_map(|a| a.topic_partitions.iter().map(|t| t.topic_id))
            .collect();
        (r.member_epoch, topics)
    };
    let (epoch, topics) = beat(&mut conn, 0, Some("orders-.*"));
    assert_eq!(topics, [id_of("orders-a")].into());

    // Allowed to describe the other topic too: the next heartbeat's
    // resolution takes it in, without a new subscription.
    server
        .authorizer
        .create(&[allow(ResourceType::Topic, "orders-b", Operation::Describe)])
        .unwrap();
    let mut assigned = topics;
    let mut epoch = epoch;
    for _ in 0..5 {
        let (e, t) = beat(&mut conn, epoch, None);
        epoch = e;
        if !t.is_empty() {
            assigned = t;
        }
        if assigned.len() == 2 {
            break;
        }
    }
    assert_eq!(assigned, [id_of("orders-a"), id_of("orders-b")].into());
}
