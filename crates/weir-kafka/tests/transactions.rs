//! Transactions with real clients: confluent-kafka's, kafka-python's and
//! kafkajs's transactional producers commit and abort, a second instance with the
//! same transactional.id fences the first, and read_committed consumers
//! see committed values only (read_uncommitted ones see every value); a
//! consume-transform-produce loop with its offsets in the transaction
//! (send_offsets_to_transaction) writes each output once across an aborted
//! round; a consumer of an ended generation (KIP-447's zombie) cannot
//! commit its offsets through its producer. At the request level, FindCoordinator names this broker for a
//! transactional id, and stray transactional batches are refused.

mod common;

use std::time::Duration;

use common::{TestServer, call, connect, python, run_bounded};
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

#[test]
fn find_coordinator_names_this_broker_for_transactions() {
    let server = TestServer::start();
    let mut stream = connect(&server);
    for version in 1..=4 {
        let mut request = FindCoordinatorRequest::default().with_key_type(1);
        if version >= 4 {
            request.coordinator_keys = vec![StrBytes::from_static_str("txn-1")];
        } else {
            request.key = StrBytes::from_static_str("txn-1");
        }
        let response: FindCoordinatorResponse =
            call(&mut stream, ApiKey::FindCoordinator, version, &request);
        let (code, port) = if version >= 4 {
            let c = &response.coordinators[0];
            (c.error_code, c.port)
        } else {
            (response.error_code, response.port)
        };
        assert_eq!(code, 0, "v{version}");
        assert_eq!(port, i32::from(server.addr.port()), "v{version}");
    }
}

#[test]
fn real_transactional_producers_commit_abort_and_are_fenced() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("txn-ck", 3, -1, &[], false)
        .unwrap();
    server
        .broker
        .create_topic("txn-kp", 2, -1, &[], false)
        .unwrap();
    let script = common::client_script("python_transactions.py");
    let out = run_bounded(
        std::process::Command::new(python()).args([
            script.as_str(),
            &server.bootstrap(),
            "txn-ck",
            "txn-kp",
        ]),
        "transactions through confluent-kafka and kafka-python",
        Duration::from_secs(150),
    );
    for line in [
        "confluent t1: committed",
        "confluent t2: aborted",
        "confluent t3: committed",
        "confluent new instance: committed",
        "confluent read_committed: c1,c2,c3,c4,c5\n",
        "confluent read_uncommitted: a1,a2,c1,c2,c3,c4,c5",
        "kafka-python read_committed: k1,k2\n",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    assert!(out.contains("confluent zombie: fenced"), "{out}");
    eprintln!("{out}");
}

#[test]
fn consume_transform_produce_is_exactly_once_with_offsets_in_the_transaction() {
    let server = TestServer::start();
    let broker = &server.broker;
    broker.create_topic("ctp-in", 2, -1, &[], false).unwrap();
    broker.create_topic("ctp-out", 2, -1, &[], false).unwrap();
    for i in 0..10 {
        let mut b = weir_log::batch::BatchBuilder::new(0);
        b.push(
            0,
            Some(format!("k{i}").as_bytes()),
            Some(format!("v{i}").as_bytes()),
            &[],
        );
        broker.produce("ctp-in", i % 2, &mut b.build()).unwrap();
    }
    let script = common::client_script("python_transactions_ctp.py");
    let out = run_bounded(
        std::process::Command::new(python()).args([
            script.as_str(),
            &server.bootstrap(),
            "ctp-in",
            "ctp-out",
        ]),
        "consume-transform-produce through confluent-kafka",
        Duration::from_secs(150),
    );
    eprintln!("{out}");
    for line in [
        "ctp aborted round: 4 read",
        "ctp committed round: 10 read",
        "ctp committed offsets: 10\n",
        "ctp left to read: 0\n",
        "ctp output read_committed: V0,V1,V2,V3,V4,V5,V6,V7,V8,V9\n",
        // The aborted round's four records stay in the log, skipped.
        "ctp output read_uncommitted: 14 records",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}

/// A Produce of one transactional batch for partition 0 of `topic`.
fn produce_txn(
    stream: &mut std::net::TcpStream,
    topic: &str,
    transactional_id: Option<&str>,
) -> kafka_protocol::messages::ProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
    let mut b = weir_log::batch::BatchBuilder::new(0)
        .producer(7, 0, 0)
        .transactional();
    b.push(0, None, Some(b"stray"), &[]);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_owned()))),
        )
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(b.build().into())),
                ]),
        ]);
    call(stream, ApiKey::Produce, 9, &request)
}

#[test]
fn a_transactional_batch_outside_an_open_transaction_is_refused() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("stray", 1, -1, &[], false)
        .unwrap();
    let mut stream = connect(&server);
    // No transactional id in the request, then one no producer has.
    for (id, code) in [(None, 48), (Some("nobody"), 49)] {
        let r = produce_txn(&mut stream, "stray", id);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, code, "{id:?}");
    }
    // Nothing written: the stable offset is not held.
    let log = server.broker.partition("stray", 0).unwrap();
    assert_eq!(log.end_offset(), 0);
    assert_eq!(server.broker.last_stable_offset("stray", 0).unwrap(), 0);
}

#[test]
fn kafkajs_transactions_commit_abort_and_send_offsets() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("txn-js", 1, -1, &[], false)
        .unwrap();
    let script = common::client_script("kafkajs_transactions.js");
    let out = run_bounded(
        std::process::Command::new("node")
            .env("NODE_PATH", common::node_modules())
            .args([script.as_str(), &server.bootstrap(), "txn-js"]),
        "kafkajs transactions",
        Duration::from_secs(120),
    );
    eprintln!("{out}");
    for line in [
        "kafkajs t1: committed",
        "kafkajs t2: aborted",
        "kafkajs t3: committed with offsets",
        "kafkajs group offset: 1\n",
        "kafkajs read_committed: j1,j2,j3\n",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}

/// KIP-447: a consumer whose generation ended (a zombie) cannot commit
/// offsets through its transactional producer. Before the group check,
/// the zombie's commit was taken and its offsets would have landed had it
/// committed.
#[test]
fn a_zombie_of_an_old_generation_cannot_commit_offsets_in_a_transaction() {
    let server = TestServer::start();
    let broker = &server.broker;
    broker.create_topic("z-in", 2, -1, &[], false).unwrap();
    broker.create_topic("z-out", 1, -1, &[], false).unwrap();
    for i in 0..10 {
        let mut b = weir_log::batch::BatchBuilder::new(0);
        b.push(0, None, Some(format!("z{i}").as_bytes()), &[]);
        broker.produce("z-in", i % 2, &mut b.build()).unwrap();
    }
    let script = common::client_script("python_kip447_zombie.py");
    let out = run_bounded(
        std::process::Command::new(python()).args([
            script.as_str(),
            &server.bootstrap(),
            "z-in",
            "z-out",
        ]),
        "KIP-447 zombie through confluent-kafka",
        Duration::from_secs(120),
    );
    eprintln!("{out}");
    for line in [
        "A read 10\n",
        "rebalanced: A has 1 B has 1\n",
        "zombie A: refused ILLEGAL_GENERATION abortable\n",
        "zombie A: aborted\n",
        "group offsets 5,5\n",
        "output read_committed: Z0,Z1,Z2,Z3,Z4,Z5,Z6,Z7,Z8,Z9\n",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}
