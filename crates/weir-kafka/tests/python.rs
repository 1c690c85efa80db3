//! The Python Kafka clients against Weir: confluent-kafka (a current,
//! bundled librdkafka) and kafka-python each produce keyed records with
//! headers and timestamps, with each codec they support, and both read
//! them back. The script is `tests/clients/python_roundtrip.py`; the
//! interpreter (a virtualenv with both clients) comes from `WEIR_PYTHON`,
//! which `scripts/test` sets after `scripts/install-deps` made it.

mod common;

use common::{TestServer, python};

fn round_trip(producer: &str, codec: &str) {
    let server = TestServer::start();
    let topic = format!("py-{producer}-{codec}").replace('+', "-");
    server
        .broker
        .create_topic(&topic, 6, -1, &[], false)
        .unwrap();
    let script = common::client_script("python_roundtrip.py");
    let out = std::process::Command::new(python())
        .args([
            script.as_str(),
            &server.bootstrap(),
            &topic,
            producer,
            codec,
            "10000",
        ])
        .output()
        .expect("the client virtualenv is installed by scripts/install-deps");
    assert!(
        out.status.success(),
        "{producer}/{codec} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("confluent consumer: 10000 records"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kafka-python consumer: 10000 records"),
        "{stdout}"
    );
    // What the clients were told is what the log holds.
    let total: i64 = (0..6)
        .map(|p| server.broker.partition(&topic, p).unwrap().end_offset())
        .sum();
    assert_eq!(total, 10_000);
    // Idempotent producers stamp their batches with an id from
    // InitProducerId; the others do not.
    let first = server
        .broker
        .partition(&topic, 0)
        .unwrap()
        .read(0, 1)
        .unwrap();
    let header = weir_log::batch::BatchHeader::parse(&first.bytes).unwrap();
    assert_eq!(
        header.producer_id >= 0,
        producer.ends_with("+idempotent"),
        "{header:?}"
    );
}

#[test]
fn confluent_kafka_uncompressed() {
    round_trip("confluent", "none");
}

#[test]
fn confluent_kafka_gzip() {
    round_trip("confluent", "gzip");
}

#[test]
fn confluent_kafka_snappy() {
    round_trip("confluent", "snappy");
}

#[test]
fn confluent_kafka_lz4() {
    round_trip("confluent", "lz4");
}

#[test]
fn confluent_kafka_zstd() {
    round_trip("confluent", "zstd");
}

#[test]
fn kafka_python_uncompressed() {
    round_trip("kafka-python", "none");
}

#[test]
fn kafka_python_gzip() {
    round_trip("kafka-python", "gzip");
}

#[test]
fn kafka_python_snappy() {
    round_trip("kafka-python", "snappy");
}

#[test]
fn kafka_python_lz4() {
    round_trip("kafka-python", "lz4");
}

#[test]
fn kafka_python_zstd() {
    round_trip("kafka-python", "zstd");
}

#[test]
fn confluent_kafka_idempotent() {
    round_trip("confluent+idempotent", "lz4");
}

#[test]
fn kafka_python_idempotent() {
    round_trip("kafka-python+idempotent", "none");
}

fn admin(client: &str) {
    let server = TestServer::start();
    let script = common::client_script("python_admin.py");
    let out = std::process::Command::new(python())
        .args([script.as_str(), &server.bootstrap(), client, "admin-topic"])
        .output()
        .expect("the client virtualenv is installed by scripts/install-deps");
    assert!(
        out.status.success(),
        "{client} admin failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        server.broker.topic("admin-topic").is_err(),
        "deleted at the end"
    );
    // (The broker's own internal logs, such as `__consumer_offsets-0`, stay.)
    let left: Vec<String> = server
        .broker
        .data_dir()
        .list_logs()
        .unwrap()
        .into_iter()
        .filter(|log| log.starts_with("admin-topic"))
        .collect();
    assert!(left.is_empty(), "with all its data: {left:?} remain");
}

#[test]
fn confluent_kafka_admin() {
    admin("confluent");
}

#[test]
fn kafka_python_admin() {
    admin("kafka-python");
}
