//! Any Kafka client sees a dead letter's headers: kcat (librdkafka) reads
//! `orders.dlq` from Weir's Kafka server after `weir_deadletter::send`
//! wrote to it.

mod common;

use common::{TestServer, kcat};
use weir_deadletter::format::{DEFAULT_SUFFIX, ErrorKind, Failure, Origin};
use weir_deadletter::{Original, send};

#[test]
fn kcat_reads_a_dead_letters_headers() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("orders", 1, -1, &[], false)
        .unwrap();
    let failure = Failure {
        error: "payment service said 503".into(),
        kind: ErrorKind::Transient,
        attempts: 5,
        first_failure_ms: 1_700_000_000_000,
        last_failure_ms: 1_700_000_004_000,
        group: "billing".into(),
    };
    let origin = Origin {
        topic: "orders".into(),
        partition: 0,
        offset: 42,
        timestamp_ms: 1_699_999_999_000,
    };
    let headers = [("trace", Some(&b"t-1"[..]))];
    let original = Original {
        key: Some(b"order-42"),
        value: Some(b"placed"),
        headers: &headers,
    };
    send(&server.broker, DEFAULT_SUFFIX, original, &failure, &origin).unwrap();

    let out = kcat(
        &[
            "-C",
            "-b",
            &server.bootstrap(),
            "-t",
            "orders.dlq",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k %s %h\\n",
        ],
        "",
    );
    assert_eq!(
        out,
        "order-42 placed trace=t-1,\
         weir.dlq.error=payment service said 503,\
         weir.dlq.error.kind=transient,\
         weir.dlq.attempts=5,\
         weir.dlq.first.failure.ms=1700000000000,\
         weir.dlq.last.failure.ms=1700000004000,\
         weir.dlq.group=billing,\
         weir.dlq.origin.topic=orders,\
         weir.dlq.origin.partition=0,\
         weir.dlq.origin.offset=42,\
         weir.dlq.origin.timestamp.ms=1699999999000\n"
    );
}
