//! Share groups' data path (KIP-932) over the wire: ShareFetch and
//! ShareAcknowledge built with the `kafka-protocol` crate (share session
//! epochs, unknown members, acknowledgements of records not held,
//! release on session close), then confluent-kafka's `ShareConsumer`
//! (librdkafka 2.16, explicit acknowledgement) as real consumers: four
//! on one partition accept 2,000 records between them, each once; the
//! records of a consumer killed while holding them go to another after
//! the lock timeout; records rejected or released past the delivery
//! limit reach the dead-letter topic with their origin.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TestServer, call, connect, python};
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch2,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
    ShareFetchRequest, ShareFetchResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_kafka::ServerConfig;
use weir_log::batch::BatchBuilder;

const NONE: i16 = 0;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const INVALID_RECORD_STATE: i16 = 121;
const SHARE_SESSION_NOT_FOUND: i16 = 122;
const INVALID_SHARE_SESSION_EPOCH: i16 = 123;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn earliest(lock_ms: i64, delivery_limit: u16) -> impl FnOnce(&mut ServerConfig) {
    move |c: &mut ServerConfig| {
        c.share_start_earliest = true;
        c.share_lock_ms = lock_ms;
        c.share_delivery_limit = delivery_limit;
    }
}

/// Produces `n` records `"<first + i>"` to partition 0 of `topic`.
fn produce(server: &TestServer, topic: &str, first: usize, n: usize) {
    for chunk in (first..first + n).collect::<Vec<_>>().chunks(100) {
        let mut b = BatchBuilder::new(0);
        for i in chunk {
            b.push(0, None, Some(i.to_string().as_bytes()), &[]);
        }
        server.broker.produce(topic, 0, &mut b.build()).unwrap();
    }
}

fn join(stream: &mut TcpStream, group: &str, member: &str, topic: &str) {
    let r: ShareGroupHeartbeatResponse = call(
        stream,
        ApiKey::ShareGroupHeartbeat,
        1,
        &ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_member_epoch(0)
            .with_subscribed_topic_names(Some(vec![TopicName(s(topic))])),
    );
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
}

fn fetch_request(group: &str, member: &str, epoch: i32, topic: uuid::Uuid) -> ShareFetchRequest {
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s(group))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(500)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(topic)
                .with_partitions(vec![FetchPartition::default().with_partition_index(0)]),
        ])
}

fn with_acks(mut r: ShareFetchRequest, first: i64, last: i64, kind: i8) -> ShareFetchRequest {
    r.topics[0].partitions[0].acknowledgement_batches = vec![
        AcknowledgementBatch::default()
            .with_first_offset(first)
            .with_last_offset(last)
            .with_acknowledge_types(vec![kind]),
    ];
    r
}

fn share_fetch(stream: &mut TcpStream, r: &ShareFetchRequest) -> ShareFetchResponse {
    call(stream, ApiKey::ShareFetch, 1, r)
}

fn share_ack(
    stream: &mut TcpStream,
    group: &str,
    member: &str,
    epoch: i32,
    topic: uuid::Uuid,
    (first, last, kind): (i64, i64, i8),
) -> ShareAcknowledgeResponse {
    let r = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s(group))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![
            AcknowledgeTopic::default()
                .with_topic_id(topic)
                .with_partitions(vec![
                    AcknowledgePartition::default()
                        .with_partition_index(0)
                        .with_acknowledgement_batches(vec![
                            AckBatch2::default()
                                .with_first_offset(first)
                                .with_last_offset(last)
                                .with_acknowledge_types(vec![kind]),
                        ]),
                ]),
        ]);
    call(stream, ApiKey::ShareAcknowledge, 1, &r)
}

/// The acquired ranges of a response's only partition, with deliveries.
fn acquired(r: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

fn partition_codes(r: &ShareFetchResponse) -> Vec<(i16, i16)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.error_code, p.acknowledge_error_code))
        .collect()
}

#[test]
fn share_fetch_sessions_acks_and_errors_on_the_wire() {
    let server = TestServer::start_with(Default::default(), earliest(30_000, 5));
    server
        .broker
        .create_topic("jobs", 1, -1, &[], false)
        .unwrap();
    let jobs = uuid::Uuid::from_u128(server.broker.topic("jobs").unwrap().id);
    produce(&server, "jobs", 0, 10);
    let mut st = connect(&server);

    let versions: ApiVersionsResponse = call(
        &mut st,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    for api in [ApiKey::ShareFetch, ApiKey::ShareAcknowledge] {
        let k = versions.api_keys.iter().find(|k| k.api_key == api as i16);
        assert_eq!(k.map(|k| (k.min_version, k.max_version)), Some((1, 1)));
    }

    // No such group, then a member the group does not know.
    let r = share_fetch(&mut st, &fetch_request("g", "m1", 0, jobs));
    assert_eq!(r.error_code, GROUP_ID_NOT_FOUND, "{:?}", r.error_message);
    join(&mut st, "g", "m1", "jobs");
    let r = share_fetch(&mut st, &fetch_request("g", "ghost", 0, jobs));
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    // An incremental fetch without a session, and an opening one that
    // acknowledges.
    let r = share_fetch(&mut st, &fetch_request("g", "m1", 3, jobs));
    assert_eq!(r.error_code, SHARE_SESSION_NOT_FOUND);
    let r = share_fetch(
        &mut st,
        &with_acks(fetch_request("g", "m1", 0, jobs), 0, 0, 1),
    );
    assert_eq!(r.error_code, INVALID_REQUEST);

    // Epoch 0 opens the session and acquires all ten records.
    let r = share_fetch(&mut st, &fetch_request("g", "m1", 0, jobs));
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
    assert_eq!(r.acquisition_lock_timeout_ms, 30_000);
    assert_eq!(acquired(&r), vec![(0, 9, 1)]);
    let records = r.responses[0].partitions[0].records.clone().unwrap();
    assert!(!records.is_empty());
    // The wrong next epoch.
    let r = share_fetch(&mut st, &fetch_request("g", "m1", 2, jobs));
    assert_eq!(r.error_code, INVALID_SHARE_SESSION_EPOCH);
    // Epoch 1: accept 0..=4 and acknowledge 50, which it does not hold:
    // the partition's acknowledgement fails and nothing else is acquired.
    let r = share_fetch(
        &mut st,
        &with_acks(fetch_request("g", "m1", 1, jobs), 0, 4, 1),
    );
    assert_eq!(
        (r.error_code, partition_codes(&r)),
        (NONE, vec![(NONE, NONE)])
    );
    let r = share_fetch(
        &mut st,
        &with_acks(fetch_request("g", "m1", 2, jobs), 50, 50, 1),
    );
    assert_eq!(partition_codes(&r), vec![(NONE, INVALID_RECORD_STATE)]);
    assert!(acquired(&r).is_empty());
    // ShareAcknowledge: epoch 0 is refused; 5..=9 accepted once, not twice.
    let r = share_ack(&mut st, "g", "m1", 0, jobs, (5, 9, 1));
    assert_eq!(r.error_code, INVALID_SHARE_SESSION_EPOCH);
    let r = share_ack(&mut st, "g", "m1", 3, jobs, (5, 9, 1));
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.responses[0].partitions[0].error_code, NONE);
    let r = share_ack(&mut st, "g", "m1", 4, jobs, (5, 5, 1));
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        INVALID_RECORD_STATE
    );

    // A second member takes new records and closes its session without
    // acknowledging: they are released at once, one delivery spent.
    produce(&server, "jobs", 10, 3);
    join(&mut st, "g", "m2", "jobs");
    let r = share_fetch(&mut st, &fetch_request("g", "m2", 0, jobs));
    assert_eq!(acquired(&r), vec![(10, 12, 1)]);
    let close = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s("g"))))
        .with_member_id(Some(s("m2")))
        .with_share_session_epoch(-1);
    let r = share_fetch(&mut st, &close);
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
    let r = share_fetch(&mut st, &fetch_request("g", "m2", 1, jobs));
    assert_eq!(r.error_code, SHARE_SESSION_NOT_FOUND);
    let r = share_fetch(&mut st, &fetch_request("g", "m1", 5, jobs));
    assert_eq!((r.error_code, acquired(&r)), (NONE, vec![(10, 12, 2)]));

    // DescribeShareGroupOffsets: 0..=9 settled, so the start is 10; a
    // partition the group never fetched has none (-1); another group is
    // unknown.
    let d = describe_offsets(&mut st, &["g", "nobody"], None);
    let g = &d.groups[0];
    assert_eq!(g.error_code, NONE);
    assert_eq!(g.topics[0].topic_name.0.as_str(), "jobs");
    assert_eq!(g.topics[0].topic_id, jobs);
    let p = &g.topics[0].partitions[0];
    assert_eq!((p.partition_index, p.start_offset), (0, 10));
    assert_eq!(d.groups[1].error_code, GROUP_ID_NOT_FOUND);
    let d = describe_offsets(&mut st, &["g"], Some(("jobs", &[0, 7])));
    let starts: Vec<i64> = d.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.start_offset)
        .collect();
    assert_eq!(starts, vec![10, -1]);
}

fn describe_offsets(
    stream: &mut TcpStream,
    groups: &[&str],
    topic: Option<(&str, &[i32])>,
) -> DescribeShareGroupOffsetsResponse {
    use kafka_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    let groups = groups
        .iter()
        .map(|g| {
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(s(g)))
                .with_topics(topic.map(|(t, ps)| {
                    vec![
                        DescribeShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(TopicName(s(t)))
                            .with_partitions(ps.to_vec()),
                    ]
                }))
        })
        .collect();
    call(
        stream,
        ApiKey::DescribeShareGroupOffsets,
        0,
        &DescribeShareGroupOffsetsRequest::default().with_groups(groups),
    )
}

/// A running `python_share_worker.py` and the lines it printed.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Worker {
    fn start(server: &TestServer, group: &str, topic: &str, mode: &str) -> Self {
        let mut child = Command::new(python())
            .arg(common::client_script("python_share_worker.py"))
            .args([&server.bootstrap(), group, topic, mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python from scripts/install-deps");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Collects what was printed until now.
    fn drain(&mut self) -> &[String] {
        self.seen.extend(self.lines.try_iter());
        &self.seen
    }

    /// Asks it to close, and waits (bounded) for it to exit.
    fn stop(mut self) -> Vec<String> {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.drain();
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(partition, offset)` of every line starting with `word`.
fn offsets(lines: &[String], word: &str) -> Vec<i64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(word))
        .filter_map(|rest| rest.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn four_share_consumers_accept_two_thousand_records_once_each() {
    let server = TestServer::start_with(Default::default(), earliest(30_000, 5));
    server
        .broker
        .create_topic("jobs", 1, -1, &[], false)
        .unwrap();
    let mut workers: Vec<Worker> = (0..4)
        .map(|_| Worker::start(&server, "workers", "jobs", "accept"))
        .collect();
    wait_until("four members", Duration::from_secs(60), || {
        server
            .groups
            .share_describe("workers")
            .is_ok_and(|d| d.members.len() == 4)
    });
    // In steps, so consumers waiting in their long polls compete.
    for step in 0..20 {
        produce(&server, "jobs", step * 100, 100);
        std::thread::sleep(Duration::from_millis(50));
    }
    let accepted = |workers: &mut Vec<Worker>| -> usize {
        workers
            .iter_mut()
            .map(|w| offsets(w.drain(), "accepted ").len())
            .sum()
    };
    wait_until("2,000 accepts", Duration::from_secs(120), || {
        accepted(&mut workers) >= 2_000
    });
    let outs: Vec<Vec<String>> = workers.into_iter().map(Worker::stop).collect();
    let mut seen = BTreeMap::<i64, usize>::new();
    for out in &outs {
        for o in offsets(out, "accepted ") {
            *seen.entry(o).or_default() += 1;
        }
        assert!(!out.iter().any(|l| l.starts_with("error")), "{out:?}");
    }
    let per_worker: Vec<usize> = outs.iter().map(|o| offsets(o, "accepted ").len()).collect();
    println!("accepted per consumer: {per_worker:?}");
    assert!(
        per_worker.iter().filter(|&&n| n > 0).count() >= 2,
        "the partition was shared: {per_worker:?}"
    );
    assert_eq!(seen.len(), 2_000);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..2_000).collect::<Vec<_>>()
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "accepted more than once: {twice:?}");
}

#[test]
fn a_killed_consumers_records_go_to_another_after_the_lock() {
    let server = TestServer::start_with(Default::default(), earliest(2_000, 5));
    server
        .broker
        .create_topic("jobs", 1, -1, &[], false)
        .unwrap();
    produce(&server, "jobs", 0, 20);
    let mut holder = Worker::start(&server, "workers", "jobs", "hold");
    wait_until("the holder's records", Duration::from_secs(60), || {
        holder.drain().iter().any(|l| l.starts_with("holding"))
    });
    let held: BTreeSet<i64> = offsets(holder.drain(), "got ").into_iter().collect();
    assert!(!held.is_empty());
    // SIGKILL: no acknowledgement, no leave, no session close.
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let killed_at = Instant::now();
    let mut taker = Worker::start(&server, "workers", "jobs", "accept");
    wait_until("all 20 accepted", Duration::from_secs(60), || {
        offsets(taker.drain(), "accepted ").len() >= 20
    });
    let out = taker.stop();
    let redelivered: Vec<&String> = out
        .iter()
        .filter(|l| l.starts_with("got ") && l.split_whitespace().nth(3) == Some("2"))
        .collect();
    println!(
        "{} held records redelivered {:.1} s after the kill",
        redelivered.len(),
        killed_at.elapsed().as_secs_f64()
    );
    let again: BTreeSet<i64> = offsets(&out, "got ")
        .into_iter()
        .filter(|o| held.contains(o))
        .collect();
    assert_eq!(again, held, "every held record came to the other consumer");
    assert_eq!(redelivered.len(), held.len(), "each at its second delivery");
}

#[test]
fn rejected_and_exhausted_records_reach_the_dead_letters() {
    let server = TestServer::start_with(Default::default(), earliest(30_000, 2));
    server
        .broker
        .create_topic("jobs", 1, -1, &[], false)
        .unwrap();
    produce(&server, "jobs", 0, 5);
    // Released every time: delivered twice (the limit), then archived.
    let releaser = Worker::start(&server, "releasers", "jobs", "release");
    let broker = server.broker.clone();
    let dlq = |n: usize| {
        let broker = broker.clone();
        move || {
            broker
                .committed_records("jobs.dlq", 0, 0, 1_000, 1_000)
                .is_ok_and(|r| r.len() >= n)
        }
    };
    wait_until("5 dead letters", Duration::from_secs(60), dlq(5));
    let out = releaser.stop();
    assert_eq!(
        offsets(&out, "got ").len(),
        10,
        "each delivered twice: {out:?}"
    );
    // Rejected by another group: at once.
    let rejecter = Worker::start(&server, "rejecters", "jobs", "reject");
    wait_until("10 dead letters", Duration::from_secs(60), dlq(10));
    let out = rejecter.stop();
    assert_eq!(offsets(&out, "got ").len(), 5, "{out:?}");

    let letters = server
        .broker
        .committed_records("jobs.dlq", 0, 0, 1_000, 1_000)
        .unwrap();
    assert_eq!(letters.len(), 10);
    let header = |r: &weir_broker::queue_log::OwnedRecord, name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v).unwrap())
    };
    for (i, r) in letters.iter().enumerate() {
        let group = if i < 5 { "releasers" } else { "rejecters" };
        assert_eq!(header(r, "weir.dlq.group").as_deref(), Some(group));
        assert_eq!(header(r, "weir.dlq.origin.topic").as_deref(), Some("jobs"));
        assert_eq!(header(r, "weir.dlq.origin.partition").as_deref(), Some("0"));
        let origin: i64 = header(r, "weir.dlq.origin.offset")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(r.value.as_deref(), Some(origin.to_string().as_bytes()));
        let (attempts, kind) = if i < 5 {
            ("2", "transient")
        } else {
            ("1", "permanent")
        };
        assert_eq!(header(r, "weir.dlq.attempts").as_deref(), Some(attempts));
        assert_eq!(header(r, "weir.dlq.error.kind").as_deref(), Some(kind));
    }
}
