//! The transaction tooling APIs and KIP-447's group check, at the request
//! level: DescribeTransactions and ListTransactions (each filter, unknown
//! state names, a bad pattern, an unknown id) follow a transaction from
//! InitProducerId to its commit; TxnOffsetCommit v3 refuses a consumer of
//! another generation (ILLEGAL_GENERATION), a member the group does not
//! have (UNKNOWN_MEMBER_ID) and a replaced static member
//! (FENCED_INSTANCE_ID), before the producer's own check, takes the form
//! without group metadata, and only
//! the accepted commit lands. kafka-python's admin client lists and
//! describes the same transaction, and its hanging-transaction finder
//! finds it.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{TestServer, call, connect, python, run_bounded};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const INVALID_REGULAR_EXPRESSION: i16 = 128;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const FENCED_INSTANCE_ID: i16 = 82;
const PRODUCER_FENCED: i16 = 90;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn txn_id(v: &str) -> TransactionalId {
    TransactionalId(s(v))
}

/// A transactional producer's id and epoch.
fn init(stream: &mut TcpStream, id: &str) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(60_000);
    let r: InitProducerIdResponse = call(stream, ApiKey::InitProducerId, 4, &request);
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

fn add_partitions(stream: &mut TcpStream, id: &str, (pid, epoch): (i64, i16), topic: &str) {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![0, 1]),
        ]);
    let r: AddPartitionsToTxnResponse = call(stream, ApiKey::AddPartitionsToTxn, 3, &request);
    for p in &r.results_by_topic_v3_and_below[0].results_by_partition {
        assert_eq!(p.partition_error_code, 0);
    }
}

fn end(stream: &mut TcpStream, id: &str, (pid, epoch): (i64, i16), commit: bool) {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let r: EndTxnResponse = call(stream, ApiKey::EndTxn, 3, &request);
    assert_eq!(r.error_code, 0);
}

fn describe(stream: &mut TcpStream, ids: &[&str]) -> DescribeTransactionsResponse {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(ids.iter().map(|i| txn_id(i)).collect());
    call(stream, ApiKey::DescribeTransactions, 0, &request)
}

/// ListTransactions at `version`: the error, the unknown state names and
/// the listed `id state` pairs.
fn list(
    stream: &mut TcpStream,
    version: i16,
    request: ListTransactionsRequest,
) -> (i16, Vec<String>, Vec<String>) {
    let r: ListTransactionsResponse = call(stream, ApiKey::ListTransactions, version, &request);
    let unknown = r
        .unknown_state_filters
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut listed: Vec<String> = r
        .transaction_states
        .iter()
        .map(|t| format!("{} {}", t.transactional_id.0, t.transaction_state))
        .collect();
    listed.sort();
    (r.error_code, unknown, listed)
}

fn all() -> ListTransactionsRequest {
    ListTransactionsRequest::default().with_duration_filter(-1)
}

#[test]
fn describe_and_list_follow_a_transaction_from_init_to_commit() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("tools", 2, -1, &[], false)
        .unwrap();
    let mut stream = connect(&server);
    let a = init(&mut stream, "tx-a");
    let b = init(&mut stream, "tx-b");
    let strs = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();

    let r = describe(&mut stream, &["tx-a", "nobody"]);
    let (da, none) = (&r.transaction_states[0], &r.transaction_states[1]);
    assert_eq!(
        (
            da.error_code,
            da.transaction_state.as_str(),
            da.producer_id.0
        ),
        (0, "Empty", a.0)
    );
    assert_eq!(
        (
            da.producer_epoch,
            da.transaction_timeout_ms,
            da.transaction_start_time_ms
        ),
        (a.1, 60_000, -1)
    );
    assert!(da.topics.is_empty());
    assert_eq!(none.error_code, TRANSACTIONAL_ID_NOT_FOUND);
    assert_eq!(none.transactional_id.0.as_str(), "nobody");

    add_partitions(&mut stream, "tx-a", a, "tools");
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = describe(&mut stream, &["tx-a"]);
    let open = &r.transaction_states[0];
    assert_eq!(open.transaction_state.as_str(), "Ongoing");
    assert!(
        open.transaction_start_time_ms > 0 && open.transaction_start_time_ms <= before_ms,
        "{}",
        open.transaction_start_time_ms
    );
    assert_eq!(open.topics.len(), 1);
    assert_eq!(
        (
            open.topics[0].topic.0.as_str(),
            &open.topics[0].partitions[..]
        ),
        ("tools", &[0, 1][..])
    );

    for version in 0..=2 {
        assert_eq!(
            list(&mut stream, version, all()),
            (0, vec![], strs(&["tx-a Ongoing", "tx-b Empty"])),
            "v{version}"
        );
        // Only Ongoing; the unknown name is answered back.
        let by_state = all().with_state_filters(vec![s("Ongoing"), s("Nonsense")]);
        assert_eq!(
            list(&mut stream, version, by_state),
            (0, strs(&["Nonsense"]), strs(&["tx-a Ongoing"])),
            "v{version}"
        );
        let by_producer = all().with_producer_id_filters(vec![ProducerId(b.0)]);
        assert_eq!(
            list(&mut stream, version, by_producer).2,
            strs(&["tx-b Empty"]),
            "v{version}"
        );
    }
    // v1: only transactions running longer than the filter; an id with no
    // transaction yet (start -1) counts as running since the epoch, as in
    // Kafka.
    let long = all().with_duration_filter(3_600_000);
    assert_eq!(list(&mut stream, 1, long).2, strs(&["tx-b Empty"]));
    let short = all().with_duration_filter(0);
    assert_eq!(list(&mut stream, 1, short).2.len(), 2);
    // v2: a pattern on the whole id.
    let pattern = |p: &str| all().with_transactional_id_pattern(Some(s(p)));
    assert_eq!(list(&mut stream, 2, pattern("tx-.")).2.len(), 2);
    assert_eq!(
        list(&mut stream, 2, pattern("t[x]-a")).2,
        strs(&["tx-a Ongoing"])
    );
    assert!(list(&mut stream, 2, pattern("a")).2.is_empty(), "whole id");
    assert_eq!(list(&mut stream, 2, pattern("")).2.len(), 2, "empty: all");
    let bad = list(&mut stream, 2, pattern("tx-("));
    assert_eq!((bad.0, bad.2.len()), (INVALID_REGULAR_EXPRESSION, 0));

    end(&mut stream, "tx-a", a, true);
    let r = describe(&mut stream, &["tx-a"]);
    let done = &r.transaction_states[0];
    assert_eq!(done.transaction_state.as_str(), "CompleteCommit");
    assert!(done.topics.is_empty());
    assert_eq!(
        done.transaction_start_time_ms, open.transaction_start_time_ms,
        "the last transaction's start stays"
    );
    let by_state = all().with_state_filters(vec![s("CompleteCommit")]);
    assert_eq!(
        list(&mut stream, 0, by_state).2,
        strs(&["tx-a CompleteCommit"])
    );
}

fn join(stream: &mut TcpStream, member: &str, instance: &str) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_group_instance_id(Some(s(instance)))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(bytes::Bytes::from_static(b"meta")),
        ]);
    let r: JoinGroupResponse = call(stream, ApiKey::JoinGroup, 7, &request);
    assert_eq!(r.error_code, 0);
    r
}

fn sync(stream: &mut TcpStream, member: &str, instance: &str, generation: i32) {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_member_id(s(member))
        .with_group_instance_id(Some(s(instance)))
        .with_generation_id(generation)
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(member))
                .with_assignment(bytes::Bytes::from_static(b"all")),
        ]);
    let r: SyncGroupResponse = call(stream, ApiKey::SyncGroup, 4, &request);
    assert_eq!(r.error_code, 0);
}

/// TxnOffsetCommit of offset `offset` for partition 0 of `in` in group
/// `g`, as `member` of `generation` (with `instance`).
fn txn_commit(
    stream: &mut TcpStream,
    version: i16,
    producer: (i64, i16),
    (member, generation, instance): (&str, i32, Option<&str>),
    offset: i64,
) -> i16 {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id("ctp"))
        .with_group_id(GroupId(s("g")))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s("in")))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let r: TxnOffsetCommitResponse = call(stream, ApiKey::TxnOffsetCommit, version, &request);
    r.topics[0].partitions[0].error_code
}

#[test]
fn txn_offset_commit_checks_the_consumer_generation() {
    let server = TestServer::start();
    server.broker.create_topic("in", 1, -1, &[], false).unwrap();
    let mut stream = connect(&server);
    // A static member forms generation 1 of group g.
    let joined = join(&mut stream, "", "host-a");
    let (m1, generation) = (joined.member_id.to_string(), joined.generation_id);
    sync(&mut stream, &m1, "host-a", generation);

    let producer = init(&mut stream, "ctp");
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id("ctp"))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_group_id(GroupId(s("g")));
    let r: AddOffsetsToTxnResponse = call(&mut stream, ApiKey::AddOffsetsToTxn, 3, &request);
    assert_eq!(r.error_code, 0);

    let member = (m1.as_str(), generation, Some("host-a"));
    assert_eq!(txn_commit(&mut stream, 3, producer, member, 5), 0);
    let older = (m1.as_str(), generation - 1, Some("host-a"));
    assert_eq!(
        txn_commit(&mut stream, 3, producer, older, 6),
        ILLEGAL_GENERATION
    );
    let stranger = ("someone", generation, None);
    assert_eq!(
        txn_commit(&mut stream, 3, producer, stranger, 6),
        UNKNOWN_MEMBER_ID
    );
    // A fenced producer: PRODUCER_FENCED, unless its consumer is a zombie
    // too, which is checked first (as Kafka's group coordinator does).
    let stale_producer = (producer.0, producer.1 - 1);
    assert_eq!(
        txn_commit(&mut stream, 3, stale_producer, member, 6),
        PRODUCER_FENCED
    );
    assert_eq!(
        txn_commit(&mut stream, 3, stale_producer, older, 6),
        ILLEGAL_GENERATION
    );
    // The instance restarts: a new member id takes host-a's place, and the
    // old one is a zombie.
    let m2 = join(&mut stream, "", "host-a").member_id.to_string();
    assert_ne!(m2, m1);
    assert_eq!(
        txn_commit(&mut stream, 3, producer, member, 6),
        FENCED_INSTANCE_ID
    );
    // No group metadata: generation -1, no member (and every v2 request).
    assert_eq!(txn_commit(&mut stream, 3, producer, ("", -1, None), 7), 0);
    assert_eq!(txn_commit(&mut stream, 2, producer, ("", -1, None), 8), 0);
    end(&mut stream, "ctp", producer, true);

    // The last accepted commit is the group's offset once committed.
    let offsets = server.groups.committed("g");
    let committed = offsets
        .get(&weir_groups::TopicPartition {
            topic: "in".to_owned(),
            partition: 0,
        })
        .map(|c| c.offset);
    assert_eq!(committed, Some(8));
}

#[test]
fn kafka_python_admin_lists_and_describes_transactions() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("tools", 2, -1, &[], false)
        .unwrap();
    let mut stream = connect(&server);
    let a = init(&mut stream, "py-a");
    init(&mut stream, "py-b");
    add_partitions(&mut stream, "py-a", a, "tools");
    let script = r#"
import sys
from kafka import KafkaAdminClient
from kafka.errors import TransactionalIdNotFoundError
a = KafkaAdminClient(bootstrap_servers=sys.argv[1])
for broker, listed in a.list_transactions().items():
    for t in sorted(listed):
        print(f"listed {t.transactional_id} {t.state.value} {t.producer_id >= 0}")
ongoing = a.list_transactions(state_filters=["Ongoing"], duration_filter_ms=0,
                              transactional_id_pattern="py-.*")
print("ongoing", [t.transactional_id for ts in ongoing.values() for t in ts])
d = a.describe_transactions(["py-a"])["py-a"]
print("described", d.state.value, d.transaction_timeout_ms, sorted(str(tp.partition) for tp in d.topic_partitions))
# The hanging-transaction finder (list, then describe, then the start
# times), with its threshold at 0 so the open transaction counts.
hanging = a.find_hanging_transactions(max_transaction_timeout_ms=-5 * 60 * 1000)
print("hanging", [h["transactional_id"] for h in hanging], [h["state"] for h in hanging])
try:
    a.describe_transactions(["nobody"])
    print("nobody found")
except TransactionalIdNotFoundError:
    print("nobody: not found")
a.close()
"#;
    let out = run_bounded(
        std::process::Command::new(python()).args(["-c", script, &server.bootstrap()]),
        "kafka-python transaction admin",
        Duration::from_secs(60),
    );
    for line in [
        "listed py-a Ongoing True\n",
        "listed py-b Empty True\n",
        "ongoing ['py-a']\n",
        "described Ongoing 60000 ['0', '1']\n",
        "nobody: not found\n",
        "hanging ['py-a'] ['Ongoing']\n",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}
