//! Nullable response fields as a Kafka 4.x broker sends them (issue 25,
//! item 6): every API the server lists in ApiVersions, at every version it
//! lists, answers a representative request (and an error where cheap), and
//! each nullable field is checked null or set as Kafka sends it. A field is
//! checked only at the versions that have it: one a version lacks decodes
//! as its default (often `Some("")`), which would prove nothing.

mod common;

use std::collections::BTreeSet;
use std::net::TcpStream;

use common::{TestServer, call, connect};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_log::batch::BatchBuilder;

#[path = "nullable_fields/groups.rs"]
mod groups;
use groups::*;

/// Every nullable field checked here, with the versions that have it (from
/// kafka-protocol's field docs). Each row must be checked at least once.
const FIELDS: &[(&str, i16, i16)] = &[
    ("Produce partition error_message", 8, 13),
    ("Fetch partition aborted_transactions", 4, 18),
    ("Fetch partition records", 4, 18),
    ("Metadata cluster_id", 2, 13),
    ("Metadata broker rack", 1, 13),
    ("Metadata topic name", 0, 13),
    ("Metadata unknown-id topic name", 12, 13),
    ("CreateTopics error_message", 2, 7),
    ("CreateTopics configs", 5, 7),
    ("DeleteTopics name", 1, 6),
    ("DeleteTopics unknown-id name", 6, 6),
    ("DeleteTopics error_message", 5, 6),
    ("DescribeConfigs error_message", 1, 4),
    ("DescribeConfigs value", 1, 4),
    ("DescribeConfigs documentation", 3, 4),
    ("AlterConfigs error_message", 0, 2),
    ("IncrementalAlterConfigs error_message", 0, 1),
    ("CreatePartitions error_message", 0, 3),
    ("FindCoordinator error_message", 1, 3),
    ("FindCoordinator coordinator error_message", 4, 6),
    ("JoinGroup protocol_type", 7, 9),
    ("JoinGroup protocol_name", 0, 9),
    ("JoinGroup member group_instance_id", 5, 9),
    ("SyncGroup protocol_type", 5, 5),
    ("SyncGroup protocol_name", 5, 5),
    ("LeaveGroup member group_instance_id", 3, 5),
    ("OffsetFetch partition metadata", 1, 7),
    ("OffsetFetch group partition metadata", 8, 9),
    ("DescribeGroups error_message", 6, 6),
    ("DescribeGroups member group_instance_id", 4, 6),
    ("ConsumerGroupHeartbeat error_message", 0, 1),
    ("ConsumerGroupHeartbeat member_id", 0, 1),
    ("ConsumerGroupHeartbeat assignment", 0, 1),
    ("ConsumerGroupDescribe error_message", 0, 1),
    ("ConsumerGroupDescribe member instance_id", 0, 1),
    ("ConsumerGroupDescribe member rack_id", 0, 1),
    ("ConsumerGroupDescribe member subscribed_topic_regex", 0, 1),
    ("ShareGroupHeartbeat error_message", 1, 1),
    ("ShareGroupHeartbeat member_id", 1, 1),
    ("ShareGroupHeartbeat assignment", 1, 1),
    ("ShareGroupDescribe error_message", 1, 1),
    ("ShareGroupDescribe member rack_id", 1, 1),
    ("ShareFetch error_message", 1, 1),
    ("ShareFetch partition error_message", 1, 1),
    ("ShareFetch partition acknowledge_error_message", 1, 1),
    ("ShareFetch partition records", 1, 1),
    ("ShareAcknowledge error_message", 1, 1),
    ("ShareAcknowledge partition error_message", 1, 1),
    ("DescribeShareGroupOffsets group error_message", 0, 0),
    ("DescribeShareGroupOffsets partition error_message", 0, 0),
    ("ElectLeaders partition error_message", 0, 2),
    ("AlterPartitionReassignments error_message", 0, 1),
    ("ListPartitionReassignments error_message", 0, 0),
    ("DescribeQuorum error_message", 2, 2),
    ("DescribeQuorum partition error_message", 2, 2),
    ("DescribeCluster error_message", 0, 2),
    ("DescribeCluster broker rack", 0, 2),
    ("DescribeProducers partition error_message", 0, 0),
    ("DescribeTopicPartitions topic name", 0, 0),
    ("DescribeTopicPartitions next_cursor", 0, 0),
    ("DescribeTopicPartitions eligible_leader_replicas", 0, 0),
    ("DescribeTopicPartitions last_known_elr", 0, 0),
    ("CreateAcls error_message", 1, 3),
    ("DescribeAcls error_message", 1, 3),
    ("DeleteAcls error_message", 1, 3),
    ("SaslAuthenticate error_message", 0, 2),
    ("DescribeUserScramCredentials error_message", 0, 0),
    ("AlterUserScramCredentials result error_message", 0, 0),
];

/// What a field should hold.
enum Want {
    Null,
    /// Set, to exactly this.
    Is(&'static str),
    /// Set, to anything (a message, a list).
    Set,
}
use Want::{Is, Null, Set};

struct Walk {
    server: TestServer,
    stream: TcpStream,
    checked: BTreeSet<&'static str>,
    /// The member of the classic group `g`, and its generation.
    member: String,
    generation: i32,
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn name(text: &str) -> TopicName {
    TopicName(s(text))
}

fn text(field: &Option<StrBytes>) -> Option<String> {
    field.as_ref().map(ToString::to_string)
}

fn topic_text(field: &Option<TopicName>) -> Option<String> {
    field.as_ref().map(|n| n.0.to_string())
}

fn set<T>(field: &Option<T>) -> Option<String> {
    field.as_ref().map(|_| "(set)".to_owned())
}

impl Walk {
    fn check(&mut self, field: &'static str, version: i16, got: Option<String>, want: Want) {
        let &(_, first, last) = FIELDS
            .iter()
            .find(|(f, ..)| *f == field)
            .unwrap_or_else(|| panic!("{field} is not in FIELDS"));
        if !(first..=last).contains(&version) {
            return;
        }
        self.checked.insert(field);
        let ok = match (&want, &got) {
            (Null, None) | (Set, Some(_)) => true,
            (Is(w), Some(g)) => w == g,
            _ => false,
        };
        let wanted = match want {
            Null => "null".to_owned(),
            Is(w) => format!("{w:?}"),
            Set => "set".to_owned(),
        };
        assert!(ok, "{field} at v{version}: {got:?}, want {wanted}");
    }

    fn call<R: kafka_protocol::protocol::Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &impl kafka_protocol::protocol::Encodable,
    ) -> R {
        call(&mut self.stream, api, version, body)
    }

    fn topic_id(&self, topic: &str) -> uuid::Uuid {
        uuid::Uuid::from_u128(self.server.broker.topic(topic).unwrap().id)
    }
}

fn setup() -> Walk {
    let server = TestServer::start();
    for (topic, partitions) in [("t", 2), ("grow", 1)] {
        server
            .broker
            .create_topic(topic, partitions, -1, &[], false)
            .unwrap();
    }
    let stream = connect(&server);
    let mut w = Walk {
        server,
        stream,
        checked: BTreeSet::new(),
        member: String::new(),
        generation: 0,
    };
    let joined = join(&mut w, "g", 9);
    w.member = joined.member_id.to_string();
    w.generation = joined.generation_id;
    sync_group(&mut w, 5, true);
    // An offset with metadata on t-0 (none on t-1) for OffsetFetch.
    offset_commit(&mut w, 8);
    w
}

fn produce(w: &mut Walk, v: i16) {
    use produce_request::{PartitionProduceData, TopicProduceData};
    let mut batch = BatchBuilder::new(1_000);
    batch.push(1_000, None, Some(b"value"), &[]);
    let topic = if v >= 13 {
        TopicProduceData::default().with_topic_id(w.topic_id("t"))
    } else {
        TopicProduceData::default().with_name(name("t"))
    };
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![topic.with_partition_data(vec![
            PartitionProduceData::default().with_records(Some(batch.build().into())),
        ])]);
    let r: ProduceResponse = w.call(ApiKey::Produce, v, &request);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "Produce v{v}");
    w.check(
        "Produce partition error_message",
        v,
        text(&p.error_message),
        Null,
    );
}

fn fetch(w: &mut Walk, v: i16) {
    use fetch_request::{FetchPartition, FetchTopic};
    let topic = if v >= 13 {
        FetchTopic::default().with_topic_id(w.topic_id("t"))
    } else {
        FetchTopic::default().with_topic(name("t"))
    };
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![topic.with_partitions(vec![
            FetchPartition::default().with_partition_max_bytes(1 << 20),
        ])]);
    let r: FetchResponse = w.call(ApiKey::Fetch, v, &request);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "Fetch v{v}");
    let aborted = set(&p.aborted_transactions);
    w.check("Fetch partition aborted_transactions", v, aborted, Null);
    w.check("Fetch partition records", v, set(&p.records), Set);
}

fn metadata(w: &mut Walk, v: i16) {
    use metadata_request::MetadataRequestTopic;
    let mut topics = vec![MetadataRequestTopic::default().with_name(Some(name("t")))];
    if v >= 12 {
        topics.push(MetadataRequestTopic::default().with_topic_id(uuid::Uuid::from_u128(7)));
    }
    let r: MetadataResponse = w.call(
        ApiKey::Metadata,
        v,
        &MetadataRequest::default().with_topics(Some(topics)),
    );
    w.check("Metadata cluster_id", v, text(&r.cluster_id), Set);
    w.check("Metadata broker rack", v, text(&r.brokers[0].rack), Null);
    w.check(
        "Metadata topic name",
        v,
        topic_text(&r.topics[0].name),
        Is("t"),
    );
    if v >= 12 {
        let unknown = topic_text(&r.topics[1].name);
        w.check("Metadata unknown-id topic name", v, unknown, Null);
    }
}

fn create_topics(w: &mut Walk, v: i16) {
    use create_topics_request::CreatableTopic;
    let topic = format!("created-{v}");
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(&topic))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    for (attempt, error) in [("created", false), ("again", true)] {
        let r: CreateTopicsResponse = w.call(ApiKey::CreateTopics, v, &request);
        let t = &r.topics[0];
        assert_eq!(t.error_code != 0, error, "CreateTopics v{v} {attempt}");
        let message = if error { Set } else { Null };
        w.check(
            "CreateTopics error_message",
            v,
            text(&t.error_message),
            message,
        );
        // Kafka sends an empty list, not null, with an error.
        w.check("CreateTopics configs", v, set(&t.configs), Set);
    }
}

fn delete_topics(w: &mut Walk, v: i16) {
    use delete_topics_request::DeleteTopicState;
    let topic = format!("deleted-{v}");
    w.server
        .broker
        .create_topic(&topic, 1, -1, &[], false)
        .unwrap();
    let request = if v >= 6 {
        DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_name(Some(name(&topic))),
            DeleteTopicState::default().with_name(Some(name("no-such"))),
            DeleteTopicState::default().with_topic_id(uuid::Uuid::from_u128(7)),
        ])
    } else {
        DeleteTopicsRequest::default().with_topic_names(vec![name(&topic), name("no-such")])
    };
    let r: DeleteTopicsResponse = w.call(ApiKey::DeleteTopics, v, &request.with_timeout_ms(5_000));
    let (ok, missing) = (&r.responses[0], &r.responses[1]);
    assert_eq!((ok.error_code, missing.error_code), (0, 3), "v{v}");
    assert_eq!(topic_text(&ok.name).as_deref(), Some(topic.as_str()));
    w.check("DeleteTopics name", v, topic_text(&ok.name), Set);
    w.check(
        "DeleteTopics error_message",
        v,
        text(&ok.error_message),
        Null,
    );
    w.check(
        "DeleteTopics error_message",
        v,
        text(&missing.error_message),
        Set,
    );
    if v >= 6 {
        let by_id = &r.responses[2];
        assert_eq!(by_id.error_code, 100, "UNKNOWN_TOPIC_ID");
        w.check(
            "DeleteTopics unknown-id name",
            v,
            topic_text(&by_id.name),
            Null,
        );
        w.check(
            "DeleteTopics error_message",
            v,
            text(&by_id.error_message),
            Set,
        );
    }
}

const TOPIC: i8 = 2;

fn describe_configs(w: &mut Walk, v: i16) {
    use describe_configs_request::DescribeConfigsResource;
    let resource = |topic: &str| {
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s(topic))
            .with_configuration_keys(None)
    };
    let request =
        DescribeConfigsRequest::default().with_resources(vec![resource("t"), resource("no-such")]);
    let r: DescribeConfigsResponse = w.call(ApiKey::DescribeConfigs, v, &request);
    let (ok, missing) = (&r.results[0], &r.results[1]);
    assert_eq!((ok.error_code, missing.error_code), (0, 3), "v{v}");
    // Kafka leaves a described resource's message at its default: empty.
    w.check(
        "DescribeConfigs error_message",
        v,
        text(&ok.error_message),
        Is(""),
    );
    w.check(
        "DescribeConfigs error_message",
        v,
        text(&missing.error_message),
        Set,
    );
    let entry = &ok.configs[0];
    w.check("DescribeConfigs value", v, text(&entry.value), Set);
    // Not asked for: null.
    w.check(
        "DescribeConfigs documentation",
        v,
        text(&entry.documentation),
        Null,
    );
}

fn alter_configs(w: &mut Walk, v: i16) {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    for (config, error) in [("retention.ms", false), ("no.such.config", true)] {
        let request = AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s("t"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(s(config))
                        .with_value(Some(s("86400000"))),
                ]),
        ]);
        let r: AlterConfigsResponse = w.call(ApiKey::AlterConfigs, v, &request);
        let message = text(&r.responses[0].error_message);
        let want = if error { Set } else { Null };
        w.check("AlterConfigs error_message", v, message, want);
    }
}

fn incremental_alter_configs(w: &mut Walk, v: i16) {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    for (config, error) in [("retention.ms", false), ("no.such.config", true)] {
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s("t"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(s(config))
                        .with_config_operation(0)
                        .with_value(Some(s("86400000"))),
                ]),
        ]);
        let r: IncrementalAlterConfigsResponse =
            w.call(ApiKey::IncrementalAlterConfigs, v, &request);
        let message = text(&r.responses[0].error_message);
        let want = if error { Set } else { Null };
        w.check("IncrementalAlterConfigs error_message", v, message, want);
    }
}

fn create_partitions(w: &mut Walk, v: i16) {
    use create_partitions_request::CreatePartitionsTopic;
    let now = w.server.broker.topic("grow").unwrap().partition_count() as i32;
    for (count, error) in [(now + 1, false), (1, true)] {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(name("grow"))
                    .with_count(count)
                    .with_assignments(None),
            ]);
        let r: CreatePartitionsResponse = w.call(ApiKey::CreatePartitions, v, &request);
        let message = text(&r.results[0].error_message);
        let want = if error { Set } else { Null };
        w.check("CreatePartitions error_message", v, message, want);
    }
}

fn find_coordinator(w: &mut Walk, v: i16) {
    for (key_type, error) in [(0, false), (1, true)] {
        if key_type == 1 && v == 0 {
            continue; // v0 finds group coordinators only
        }
        let mut request = FindCoordinatorRequest::default();
        if v >= 4 {
            request = request.with_coordinator_keys(vec![s("g")]);
        } else {
            request = request.with_key(s("g"));
        }
        if v >= 1 {
            request = request.with_key_type(key_type);
        }
        let r: FindCoordinatorResponse = w.call(ApiKey::FindCoordinator, v, &request);
        // On success Kafka sends the NONE error's name before v4, and the
        // empty default from v4.
        let (field, message, want) = if v >= 4 {
            let m = text(&r.coordinators[0].error_message);
            let want = if error { Set } else { Is("") };
            ("FindCoordinator coordinator error_message", m, want)
        } else {
            let want = if error { Set } else { Is("NONE") };
            (
                "FindCoordinator error_message",
                text(&r.error_message),
                want,
            )
        };
        w.check(field, v, message, want);
    }
}

fn elect_leaders(w: &mut Walk, v: i16) {
    let request = ElectLeadersRequest::default()
        .with_topic_partitions(Some(vec![
            elect_leaders_request::TopicPartitions::default()
                .with_topic(name("t"))
                .with_partitions(vec![0]),
        ]))
        .with_timeout_ms(5_000);
    let r: ElectLeadersResponse = w.call(ApiKey::ElectLeaders, v, &request);
    let p = &r.replica_election_results[0].partition_result[0];
    // ELECTION_NOT_NEEDED, with Kafka's message for it.
    assert_eq!(p.error_code, 84, "v{v}");
    let message = text(&p.error_message);
    w.check("ElectLeaders partition error_message", v, message, Set);
}

fn alter_partition_reassignments(w: &mut Walk, v: i16) {
    let request = AlterPartitionReassignmentsRequest::default().with_timeout_ms(5_000);
    let r: AlterPartitionReassignmentsResponse =
        w.call(ApiKey::AlterPartitionReassignments, v, &request);
    let message = text(&r.error_message);
    w.check(
        "AlterPartitionReassignments error_message",
        v,
        message,
        Null,
    );
}

fn list_partition_reassignments(w: &mut Walk, v: i16) {
    let request = ListPartitionReassignmentsRequest::default().with_timeout_ms(5_000);
    let r: ListPartitionReassignmentsResponse =
        w.call(ApiKey::ListPartitionReassignments, v, &request);
    let message = text(&r.error_message);
    w.check("ListPartitionReassignments error_message", v, message, Null);
}

fn describe_quorum(w: &mut Walk, v: i16) {
    use describe_quorum_request::{PartitionData, TopicData};
    let request = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(name("__cluster_metadata"))
            .with_partitions(vec![PartitionData::default()]),
    ]);
    let r: DescribeQuorumResponse = w.call(ApiKey::DescribeQuorum, v, &request);
    w.check(
        "DescribeQuorum error_message",
        v,
        text(&r.error_message),
        Null,
    );
    let p = text(&r.topics[0].partitions[0].error_message);
    w.check("DescribeQuorum partition error_message", v, p, Null);
}

fn describe_cluster(w: &mut Walk, v: i16) {
    let request = DescribeClusterRequest::default();
    let request = if v >= 1 {
        request.with_endpoint_type(1)
    } else {
        request
    };
    let r: DescribeClusterResponse = w.call(ApiKey::DescribeCluster, v, &request);
    w.check(
        "DescribeCluster error_message",
        v,
        text(&r.error_message),
        Null,
    );
    w.check(
        "DescribeCluster broker rack",
        v,
        text(&r.brokers[0].rack),
        Null,
    );
}

/// The ACL APIs on a server without an authorizer: SECURITY_DISABLED,
/// with Kafka's message. (Their answers with an authorizer, whose messages
/// are null on success, are checked in `tests/acls.rs`.)
fn acls(w: &mut Walk, api: ApiKey, v: i16) {
    const SECURITY_DISABLED: i16 = 54;
    match api {
        ApiKey::CreateAcls => {
            let request = CreateAclsRequest::default()
                .with_creations(vec![create_acls_request::AclCreation::default()]);
            let r: CreateAclsResponse = w.call(api, v, &request);
            assert_eq!(r.results[0].error_code, SECURITY_DISABLED);
            let message = text(&r.results[0].error_message);
            w.check("CreateAcls error_message", v, message, Set);
        }
        ApiKey::DescribeAcls => {
            let r: DescribeAclsResponse = w.call(api, v, &DescribeAclsRequest::default());
            assert_eq!(r.error_code, SECURITY_DISABLED);
            w.check("DescribeAcls error_message", v, text(&r.error_message), Set);
        }
        _ => {
            let request = DeleteAclsRequest::default()
                .with_filters(vec![delete_acls_request::DeleteAclsFilter::default()]);
            let r: DeleteAclsResponse = w.call(api, v, &request);
            let result = &r.filter_results[0];
            assert_eq!(result.error_code, SECURITY_DISABLED);
            let message = text(&result.error_message);
            w.check("DeleteAcls error_message", v, message, Set);
        }
    }
}

/// The SASL APIs on a listener without SASL (refused, the connection kept),
/// and user management over the data directory's credential store.
fn sasl(w: &mut Walk, api: ApiKey, v: i16) {
    const ILLEGAL_SASL_STATE: i16 = 34;
    match api {
        ApiKey::SaslHandshake => {
            let request = SaslHandshakeRequest::default().with_mechanism(name("PLAIN").0);
            let r: SaslHandshakeResponse = w.call(api, v, &request);
            // v0 is listed for old librdkafka but refused when used.
            let want = if v == 0 { 35 } else { ILLEGAL_SASL_STATE };
            assert_eq!(r.error_code, want, "v{v}");
        }
        ApiKey::SaslAuthenticate => {
            let request = SaslAuthenticateRequest::default();
            let r: SaslAuthenticateResponse = w.call(api, v, &request);
            assert_eq!(r.error_code, ILLEGAL_SASL_STATE);
            w.check(
                "SaslAuthenticate error_message",
                v,
                text(&r.error_message),
                Set,
            );
        }
        ApiKey::DescribeUserScramCredentials => {
            let request = DescribeUserScramCredentialsRequest::default().with_users(None);
            let r: DescribeUserScramCredentialsResponse = w.call(api, v, &request);
            assert_eq!(r.error_code, 0);
            let message = text(&r.error_message);
            w.check(
                "DescribeUserScramCredentials error_message",
                v,
                message,
                Null,
            );
        }
        _ => {
            use alter_user_scram_credentials_request::ScramCredentialDeletion;
            let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![
                ScramCredentialDeletion::default()
                    .with_name(name("nobody").0)
                    .with_mechanism(1),
            ]);
            let r: AlterUserScramCredentialsResponse = w.call(api, v, &request);
            // RESOURCE_NOT_FOUND, with the reason.
            assert_eq!(r.results[0].error_code, 91);
            let message = text(&r.results[0].error_message);
            w.check(
                "AlterUserScramCredentials result error_message",
                v,
                message,
                Set,
            );
        }
    }
}

fn describe_producers(w: &mut Walk, v: i16) {
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(name("t"))
            .with_partition_indexes(vec![0]),
    ]);
    let r: DescribeProducersResponse = w.call(ApiKey::DescribeProducers, v, &request);
    let message = text(&r.topics[0].partitions[0].error_message);
    w.check(
        "DescribeProducers partition error_message",
        v,
        message,
        Null,
    );
}

fn describe_topic_partitions(w: &mut Walk, v: i16) {
    use describe_topic_partitions_request::TopicRequest;
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![
            TopicRequest::default().with_name(name("t")),
            TopicRequest::default().with_name(name("no-such")),
        ])
        .with_response_partition_limit(2000);
    let r: DescribeTopicPartitionsResponse = w.call(ApiKey::DescribeTopicPartitions, v, &request);
    let field = "DescribeTopicPartitions topic name";
    let names: Vec<_> = r.topics.iter().map(|t| topic_text(&t.name)).collect();
    w.check(field, v, names[0].clone(), Is("no-such"));
    w.check(field, v, names[1].clone(), Is("t"));
    w.check(
        "DescribeTopicPartitions next_cursor",
        v,
        set(&r.next_cursor),
        Null,
    );
    let p = &r.topics[1].partitions[0];
    let (elr, last) = (set(&p.eligible_leader_replicas), set(&p.last_known_elr));
    w.check(
        "DescribeTopicPartitions eligible_leader_replicas",
        v,
        elr,
        Set,
    );
    w.check("DescribeTopicPartitions last_known_elr", v, last, Set);
}

/// APIs whose responses have no nullable field: answered and decoded at
/// every version all the same.
fn no_nullable_fields(w: &mut Walk, api: ApiKey, v: i16) {
    let t = || name("t");
    match api {
        ApiKey::ApiVersions => {
            let r: ApiVersionsResponse = w.call(api, v, &ApiVersionsRequest::default());
            assert_eq!(r.error_code, 0);
        }
        ApiKey::ListOffsets => {
            use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
            let request = ListOffsetsRequest::default().with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(t())
                    .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
            ]);
            let r: ListOffsetsResponse = w.call(api, v, &request);
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
        }
        ApiKey::InitProducerId => {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000);
            let r: InitProducerIdResponse = w.call(api, v, &request);
            assert_eq!(r.error_code, 0);
        }
        // A transactional id no producer initialised: refused with
        // INVALID_PRODUCER_ID_MAPPING, per partition and whole.
        ApiKey::AddPartitionsToTxn => {
            let request = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("none")))
                .with_v3_and_below_producer_id(ProducerId(1))
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(t())
                        .with_partitions(vec![0]),
                ]);
            let r: AddPartitionsToTxnResponse = w.call(api, v, &request);
            let p = &r.results_by_topic_v3_and_below[0].results_by_partition[0];
            assert_eq!((p.partition_index, p.partition_error_code), (0, 49), "v{v}");
        }
        ApiKey::AddOffsetsToTxn => {
            let request = AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("none")))
                .with_producer_id(ProducerId(1))
                .with_group_id(GroupId(s("g")));
            let r: AddOffsetsToTxnResponse = w.call(api, v, &request);
            assert_eq!(r.error_code, 49, "v{v}");
        }
        ApiKey::TxnOffsetCommit => {
            use txn_offset_commit_request::{
                TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
            };
            let request = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("none")))
                .with_group_id(GroupId(s("g")))
                .with_producer_id(ProducerId(1))
                .with_topics(vec![
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(t())
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default().with_committed_offset(1),
                        ]),
                ]);
            let r: TxnOffsetCommitResponse = w.call(api, v, &request);
            assert_eq!(r.topics[0].partitions[0].error_code, 49, "v{v}");
        }
        ApiKey::EndTxn => {
            let request = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("none")))
                .with_producer_id(ProducerId(1))
                .with_committed(true);
            let r: EndTxnResponse = w.call(api, v, &request);
            assert_eq!(r.error_code, 49, "v{v}");
        }
        ApiKey::DeleteRecords => {
            use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
            // Offset 0 moves no start (the other cases read from 0), and
            // partition 9 is unknown.
            let partitions = [1, 9]
                .map(|p| DeleteRecordsPartition::default().with_partition_index(p))
                .to_vec();
            let request = DeleteRecordsRequest::default().with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(t())
                    .with_partitions(partitions),
            ]);
            let r: DeleteRecordsResponse = w.call(api, v, &request.with_timeout_ms(5_000));
            let answers: Vec<_> = r.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.low_watermark, p.error_code))
                .collect();
            assert_eq!(answers, [(1, 0, 0), (9, -1, 3)], "v{v}");
        }
        ApiKey::ListGroups => {
            let r: ListGroupsResponse = w.call(api, v, &ListGroupsRequest::default());
            assert_eq!(r.error_code, 0);
        }
        ApiKey::DeleteGroups => {
            let request =
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("none"))]);
            let _: DeleteGroupsResponse = w.call(api, v, &request);
        }
        ApiKey::OffsetDelete => {
            use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
            let request = OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("commits")))
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(t())
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(1),
                        ]),
                ]);
            let r: OffsetDeleteResponse = w.call(api, v, &request);
            assert_eq!(r.error_code, 0);
        }
        ApiKey::DescribeLogDirs => {
            let r: DescribeLogDirsResponse = w.call(api, v, &DescribeLogDirsRequest::default());
            assert_eq!(r.results[0].error_code, 0);
        }
        ApiKey::AlterReplicaLogDirs => {
            use alter_replica_log_dirs_request::{AlterReplicaLogDir, AlterReplicaLogDirTopic};
            let described: DescribeLogDirsResponse = w.call(
                ApiKey::DescribeLogDirs,
                1,
                &DescribeLogDirsRequest::default(),
            );
            let here = described.results[0].log_dir.clone();
            let elsewhere = s("/no/such/dir");
            let dirs = [here, elsewhere]
                .into_iter()
                .map(|path| {
                    AlterReplicaLogDir::default()
                        .with_path(path)
                        .with_topics(vec![
                            AlterReplicaLogDirTopic::default()
                                .with_name(t())
                                .with_partitions(vec![0]),
                        ])
                })
                .collect();
            let request = AlterReplicaLogDirsRequest::default().with_dirs(dirs);
            let r: AlterReplicaLogDirsResponse = w.call(api, v, &request);
            // A move to the directory the replica is in is a no-op; there
            // is no other directory (LOG_DIR_NOT_FOUND).
            let codes: Vec<i16> = r
                .results
                .iter()
                .map(|t| t.partitions[0].error_code)
                .collect();
            assert_eq!(codes, [0, 57], "v{v}");
        }
        ApiKey::ListConfigResources => {
            let request = ListConfigResourcesRequest::default();
            let r: ListConfigResourcesResponse = w.call(api, v, &request);
            assert_eq!(r.error_code, 0);
        }
        ApiKey::DescribeTransactions => {
            let request = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("none"))]);
            let r: DescribeTransactionsResponse = w.call(api, v, &request);
            // TRANSACTIONAL_ID_NOT_FOUND.
            assert_eq!(r.transaction_states[0].error_code, 105);
        }
        ApiKey::ListTransactions => {
            let request = ListTransactionsRequest::default().with_duration_filter(-1);
            let r: ListTransactionsResponse = w.call(api, v, &request);
            assert_eq!(r.error_code, 0);
        }
        ApiKey::OffsetForLeaderEpoch => {
            use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
            let request = OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    OffsetForLeaderTopic::default()
                        .with_topic(t())
                        .with_partitions(vec![
                            OffsetForLeaderPartition::default()
                                .with_current_leader_epoch(-1)
                                .with_leader_epoch(0),
                        ]),
                ]);
            let r: OffsetForLeaderEpochResponse = w.call(api, v, &request);
            let p = &r.topics[0].partitions[0];
            assert_eq!((p.error_code, p.leader_epoch), (0, 0), "v{v}");
        }
        other => panic!("{other:?} has nullable fields and no case: add one"),
    }
}

#[test]
fn every_served_api_sends_null_where_kafka_does() {
    let mut w = setup();
    let served: ApiVersionsResponse =
        w.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(!served.api_keys.is_empty());
    for k in &served.api_keys {
        let api = ApiKey::try_from(k.api_key).expect("a known API key");
        for v in k.min_version..=k.max_version {
            match api {
                ApiKey::Produce => produce(&mut w, v),
                ApiKey::Fetch => fetch(&mut w, v),
                ApiKey::Metadata => metadata(&mut w, v),
                ApiKey::CreateTopics => create_topics(&mut w, v),
                ApiKey::DeleteTopics => delete_topics(&mut w, v),
                ApiKey::DescribeConfigs => describe_configs(&mut w, v),
                ApiKey::AlterConfigs => alter_configs(&mut w, v),
                ApiKey::IncrementalAlterConfigs => incremental_alter_configs(&mut w, v),
                ApiKey::CreatePartitions => create_partitions(&mut w, v),
                ApiKey::FindCoordinator => find_coordinator(&mut w, v),
                ApiKey::JoinGroup => join_group(&mut w, v),
                ApiKey::SyncGroup => {
                    sync_group(&mut w, v, true);
                    sync_group(&mut w, v, false);
                }
                ApiKey::Heartbeat => heartbeat(&mut w, v),
                ApiKey::LeaveGroup => leave_group(&mut w, v),
                ApiKey::OffsetCommit => offset_commit(&mut w, v),
                ApiKey::OffsetFetch => offset_fetch(&mut w, v),
                ApiKey::DescribeGroups => describe_groups(&mut w, v),
                ApiKey::ConsumerGroupHeartbeat => consumer_group_heartbeat(&mut w, v),
                ApiKey::ConsumerGroupDescribe => consumer_group_describe(&mut w, v),
                ApiKey::ShareGroupHeartbeat => share_group_heartbeat(&mut w, v),
                ApiKey::ShareGroupDescribe => share_group_describe(&mut w, v),
                ApiKey::ShareFetch => share_fetch(&mut w, v),
                ApiKey::ShareAcknowledge => share_acknowledge(&mut w, v),
                ApiKey::DescribeShareGroupOffsets => describe_share_group_offsets(&mut w, v),
                ApiKey::ElectLeaders => elect_leaders(&mut w, v),
                ApiKey::AlterPartitionReassignments => alter_partition_reassignments(&mut w, v),
                ApiKey::ListPartitionReassignments => list_partition_reassignments(&mut w, v),
                ApiKey::DescribeQuorum => describe_quorum(&mut w, v),
                ApiKey::DescribeCluster => describe_cluster(&mut w, v),
                ApiKey::DescribeProducers => describe_producers(&mut w, v),
                ApiKey::DescribeTopicPartitions => describe_topic_partitions(&mut w, v),
                ApiKey::CreateAcls | ApiKey::DescribeAcls | ApiKey::DeleteAcls => {
                    acls(&mut w, api, v)
                }
                ApiKey::SaslHandshake
                | ApiKey::SaslAuthenticate
                | ApiKey::DescribeUserScramCredentials
                | ApiKey::AlterUserScramCredentials => sasl(&mut w, api, v),
                other => no_nullable_fields(&mut w, other, v),
            }
        }
    }
    let unchecked: Vec<_> = FIELDS
        .iter()
        .map(|(f, ..)| *f)
        .filter(|f| !w.checked.contains(f))
        .collect();
    assert!(unchecked.is_empty(), "never checked: {unchecked:?}");
}
