//! DescribeTopicPartitions (KIP-966) at the request level: paging through
//! many partitions with `response_partition_limit` and the cursor, pages
//! that end inside a topic or at its end, the broker's cap on a page,
//! cursors Kafka refuses, and the fields of each partition.

mod common;

use std::net::TcpStream;

use common::{TestServer, call, connect};
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_broker::BrokerConfig;
use weir_kafka::Code;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn ask(
    stream: &mut TcpStream,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(name(t))
                .with_partition_index(p)
        }));
    call(stream, ApiKey::DescribeTopicPartitions, 0, &request)
}

fn cursor_of(r: &DescribeTopicPartitionsResponse) -> Option<(String, i32)> {
    r.next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index))
}

/// Every (topic, partition, error) of a response, in order.
fn entries(r: &DescribeTopicPartitionsResponse) -> Vec<(String, i32, i16)> {
    r.topics
        .iter()
        .flat_map(|t| {
            let topic = t.name.as_ref().unwrap().0.to_string();
            let rows: Vec<_> = if t.partitions.is_empty() {
                vec![(topic, -1, t.error_code)]
            } else {
                t.partitions
                    .iter()
                    .map(|p| (topic.clone(), p.partition_index, t.error_code))
                    .collect()
            };
            rows
        })
        .collect()
}

/// Follows the cursor from the first page to the last, returning every
/// entry and checking each page's size.
fn walk(stream: &mut TcpStream, topics: &[&str], limit: i32) -> Vec<(String, i32, i16)> {
    let mut out = Vec::new();
    let mut cursor: Option<(String, i32)> = None;
    for _ in 0..10_000 {
        let r = ask(
            stream,
            topics,
            limit,
            cursor.as_ref().map(|(t, p)| (t.as_str(), *p)),
        );
        let partitions: usize = r.topics.iter().map(|t| t.partitions.len()).sum();
        assert!(partitions <= limit as usize, "{partitions} > {limit}");
        out.extend(entries(&r));
        cursor = cursor_of(&r);
        if cursor.is_none() {
            return out;
        }
    }
    panic!("the cursor never ended");
}

fn expected(topics: &[(&str, i32)]) -> Vec<(String, i32, i16)> {
    topics
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (t.to_string(), p, 0)))
        .collect()
}

fn server() -> (TestServer, TcpStream) {
    let server = TestServer::start();
    for (topic, partitions) in [("alpha", 1), ("beta", 300), ("gamma", 3)] {
        server
            .broker
            .create_topic(topic, partitions, -1, &[], false)
            .unwrap();
    }
    let stream = connect(&server);
    (server, stream)
}

#[test]
fn pages_cover_every_partition_once_in_name_order() {
    let (server, mut stream) = server();
    let offsets = server.broker.topic("__consumer_offsets").unwrap();
    let all = expected(&[
        ("__consumer_offsets", offsets.partition_count() as i32),
        ("alpha", 1),
        ("beta", 300),
        ("gamma", 3),
    ]);
    // Every topic (an empty list), at several page sizes.
    for limit in [1, 7, 100, 299, 300, 301, 2000] {
        assert_eq!(walk(&mut stream, &[], limit), all, "limit {limit}");
    }
    // Named topics, in any order and repeated, with an unknown one in
    // its place by name.
    let mut named = expected(&[("alpha", 1), ("beta", 300)]);
    named.push(("delta".into(), -1, Code::UnknownTopicOrPartition.code()));
    named.extend(expected(&[("gamma", 3)]));
    for limit in [1, 50, 304] {
        assert_eq!(
            walk(
                &mut stream,
                &["gamma", "delta", "beta", "alpha", "beta"],
                limit
            ),
            named,
            "limit {limit}"
        );
    }
}

#[test]
fn a_page_ends_inside_a_topic_or_at_the_next_topics_start() {
    let (_server, mut stream) = server();
    let topics = ["alpha", "beta", "gamma"];
    // Inside beta: the cursor names its next partition.
    let r = ask(&mut stream, &topics, 11, None);
    assert_eq!(cursor_of(&r), Some(("beta".into(), 10)));
    assert_eq!(r.topics.len(), 2);
    let r = ask(&mut stream, &topics, 11, Some(("beta", 10)));
    assert_eq!(entries(&r).first(), Some(&("beta".into(), 10, 0)));
    assert_eq!(cursor_of(&r), Some(("beta".into(), 21)));
    // Exactly alpha and beta: gamma starts the next page.
    let r = ask(&mut stream, &topics, 301, None);
    assert_eq!(r.topics.len(), 2);
    assert_eq!(cursor_of(&r), Some(("gamma".into(), 0)));
    // The last page has no cursor.
    let r = ask(&mut stream, &topics, 3, Some(("gamma", 0)));
    assert_eq!(entries(&r), expected(&[("gamma", 3)]));
    assert_eq!(cursor_of(&r), None);
    // A cursor past a topic's partitions leaves that topic empty.
    let r = ask(&mut stream, &["gamma"], 10, Some(("gamma", 50)));
    assert_eq!(r.topics.len(), 1);
    assert!(r.topics[0].partitions.is_empty());
    assert_eq!(cursor_of(&r), None);
}

#[test]
fn a_page_holds_at_most_2000_partitions_and_at_least_one() {
    let server = TestServer::start_with(
        BrokerConfig {
            partitions_max: 2100,
            ..BrokerConfig::default()
        },
        |_| {},
    );
    server
        .broker
        .create_topic("huge", 2100, -1, &[], false)
        .unwrap();
    let mut stream = connect(&server);
    let r = ask(&mut stream, &["huge"], i32::MAX, None);
    assert_eq!(r.topics[0].partitions.len(), 2000);
    assert_eq!(cursor_of(&r), Some(("huge".into(), 2000)));
    let r = ask(&mut stream, &["huge"], i32::MAX, Some(("huge", 2000)));
    assert_eq!(r.topics[0].partitions.len(), 100);
    assert_eq!(cursor_of(&r), None);
    for limit in [0, -5] {
        let r = ask(&mut stream, &["huge"], limit, None);
        assert_eq!(r.topics[0].partitions.len(), 1, "limit {limit}");
        assert_eq!(cursor_of(&r), Some(("huge".into(), 1)));
    }
}

#[test]
fn cursors_kafka_refuses_fail_the_named_topics() {
    let (_server, mut stream) = server();
    // The cursor's topic must be one of those named.
    let r = ask(&mut stream, &["alpha", "gamma"], 10, Some(("beta", 0)));
    let codes: Vec<(String, i16)> = r
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code))
        .collect();
    let invalid = Code::InvalidRequest.code();
    assert_eq!(
        codes,
        vec![("alpha".into(), invalid), ("gamma".into(), invalid)]
    );
    assert!(r.topics.iter().all(|t| t.partitions.is_empty()));
    // And its partition a partition index.
    let r = ask(&mut stream, &["gamma"], 10, Some(("gamma", -1)));
    assert_eq!(r.topics[0].error_code, invalid);
    // Every topic: no names to fail, so nothing.
    let r = ask(&mut stream, &[], 10, Some(("beta", -1)));
    assert!(r.topics.is_empty() && r.next_cursor.is_none());
}

#[test]
fn partitions_are_led_by_this_node_with_empty_eligible_leaders() {
    let (server, mut stream) = server();
    let r = ask(
        &mut stream,
        &["gamma", "bad/name", "__consumer_offsets"],
        2000,
        None,
    );
    let by_name = |n: &str| {
        r.topics
            .iter()
            .find(|t| t.name.as_ref().unwrap().0.as_str() == n)
            .unwrap()
    };
    let gamma = by_name("gamma");
    assert_eq!(gamma.error_code, 0);
    assert!(!gamma.is_internal);
    assert_eq!(
        gamma.topic_id,
        uuid::Uuid::from_u128(server.broker.topic("gamma").unwrap().id)
    );
    assert_eq!(gamma.topic_authorized_operations, 3576);
    for (i, p) in gamma.partitions.iter().enumerate() {
        assert_eq!(p.error_code, 0);
        assert_eq!(p.partition_index, i as i32);
        assert_eq!(p.leader_id, BrokerId(0));
        assert_eq!(p.leader_epoch, 0);
        assert_eq!(p.replica_nodes, vec![BrokerId(0)]);
        assert_eq!(p.isr_nodes, vec![BrokerId(0)]);
        assert_eq!(p.eligible_leader_replicas, Some(vec![]));
        assert_eq!(p.last_known_elr, Some(vec![]));
        assert!(p.offline_replicas.is_empty());
    }
    assert!(by_name("__consumer_offsets").is_internal);
    let bad = by_name("bad/name");
    assert_eq!(bad.error_code, Code::InvalidTopicException.code());
    assert!(bad.topic_id.is_nil());
}
