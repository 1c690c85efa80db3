//! Until Weir coordinates transactions, a transactional producer fails at
//! once: FindCoordinator for a transactional id answers an error that
//! librdkafka, kafka-python and the Java client all treat as fatal
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, with a message saying why),
//! while group lookups keep working.

mod common;

use std::time::Duration;

use common::{TestServer, call, connect, python, run_bounded};
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

#[test]
fn find_coordinator_for_a_transaction_answers_a_fatal_error() {
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
        let (code, message) = if version >= 4 {
            let c = &response.coordinators[0];
            (c.error_code, c.error_message.clone())
        } else {
            (response.error_code, response.error_message.clone())
        };
        assert_eq!(code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "v{version}");
        assert!(
            message.is_some_and(|m| m.contains("transactions")),
            "v{version}"
        );
        // Groups still find this broker.
        let mut request = FindCoordinatorRequest::default().with_key_type(0);
        if version >= 4 {
            request.coordinator_keys = vec![StrBytes::from_static_str("g")];
        } else {
            request.key = StrBytes::from_static_str("g");
        }
        let response: FindCoordinatorResponse =
            call(&mut stream, ApiKey::FindCoordinator, version, &request);
        let code = if version >= 4 {
            response.coordinators[0].error_code
        } else {
            response.error_code
        };
        assert_eq!(code, 0, "v{version}");
    }
}

#[test]
fn real_clients_fail_init_transactions_at_once() {
    let server = TestServer::start();
    let script = common::client_script("python_transactions_refused.py");
    let out = run_bounded(
        std::process::Command::new(python()).args([script.as_str(), &server.bootstrap()]),
        "init_transactions() through confluent-kafka and kafka-python",
        Duration::from_secs(90),
    );
    assert!(out.contains("confluent-kafka: refused in"), "{out}");
    assert!(out.contains("kafka-python: refused in"), "{out}");
    eprintln!("{out}");
}
