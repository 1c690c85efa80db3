//! Validation on write over the Kafka protocol: a topic with
//! `confluent.value.schema.validation=true` takes only records whose value
//! carries the id of a schema registered under `<topic>-value` and
//! matches it; a produce with one bad record is refused whole with
//! INVALID_RECORD naming the record (KIP-467's `record_errors`), and
//! CORRUPT_MESSAGE below Produce v8. Turned off by AlterConfigs, anything
//! goes again. kcat sees the refusal as librdkafka reports it.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{TestServer, call, connect, kcat, kcat_output};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use weir_broker::RecordValidator;
use weir_kafka::Code;
use weir_log::batch::BatchBuilder;
use weir_schemas::{ImportIds, Limits, Registry, SchemaDef, SchemaType, Validator};

const PAYMENT: &str = r#"{"type":"record","name":"Payment",
  "fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"}]}"#;

fn framed(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A server with the registry's validator installed (kept alive by the
/// returned handle), topic `payments` validated, and the Payment schema
/// registered under `payments-value`.
fn server() -> (TestServer, i32, Arc<dyn RecordValidator>) {
    let server = TestServer::start();
    let registry =
        Arc::new(Registry::open_on_broker(server.broker.clone(), Limits::default()).unwrap());
    let id = registry
        .register(
            "payments-value",
            &SchemaDef::new(SchemaType::Avro, PAYMENT),
            ImportIds::default(),
        )
        .unwrap()
        .id;
    let validator: Arc<dyn RecordValidator> = Arc::new(Validator::new(registry));
    assert!(server.broker.set_record_validator(&validator));
    create_validated(&server);
    (server, id, validator)
}

/// Topic `payments`, one partition, with value validation on.
fn create_validated(server: &TestServer) {
    let configs = [("confluent.value.schema.validation", "true")];
    server
        .broker
        .create_topic("payments", 1, -1, &configs, false)
        .unwrap();
}

fn produce(values: &[Option<&[u8]>]) -> ProduceRequest {
    let mut b = BatchBuilder::new(0);
    for (i, v) in values.iter().enumerate() {
        b.push(i as i64, Some(b"k"), *v, &[]);
    }
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("payments")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(b.build()))),
                ]),
        ])
}

fn end_offset(server: &TestServer) -> i64 {
    let topic = server.broker.topic("payments").unwrap();
    topic.partition(0).unwrap().end_offset()
}

#[test]
fn a_bad_record_fails_its_whole_batch_with_invalid_record_naming_it() {
    let (server, id, _validator) = server();
    let mut stream = connect(&server);
    let good = framed(id, &[4, b'a', b'b', 6]);
    let request = produce(&[Some(&good), Some(&good), Some(b"plain text"), Some(&good)]);
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &request);
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, Code::InvalidRecord.code());
    assert_eq!(p.record_errors.len(), 1, "{p:?}");
    assert_eq!(p.record_errors[0].batch_index, 2);
    let message = p.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .unwrap()
        .to_string();
    assert!(message.contains("magic byte 0"), "{message}");
    let whole = p.error_message.as_ref().unwrap().to_string();
    assert!(
        whole.contains("record 2 of the batch to payments-0"),
        "{whole}"
    );
    assert_eq!(end_offset(&server), 0, "nothing was appended");

    // Below v8, Kafka's older code, without record errors.
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 7, &request);
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, Code::CorruptMessage.code());
    assert!(p.record_errors.is_empty());

    // A payload cut short, and an id registered nowhere near the subject.
    let cut = framed(id, &[4, b'a']);
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce(&[Some(&cut)]));
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, Code::InvalidRecord.code());
    let message = p.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .unwrap();
    assert!(message.contains("field 'id'"), "{message}");

    // Good records and a tombstone go in.
    let response: ProduceResponse = call(
        &mut stream,
        ApiKey::Produce,
        9,
        &produce(&[Some(&good), None, Some(&good)]),
    );
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    assert_eq!(end_offset(&server), 3);

    // Validation off: anything goes again.
    server
        .broker
        .alter_topic_config(
            "payments",
            &[("confluent.value.schema.validation", None)],
            false,
        )
        .unwrap();
    let response: ProduceResponse = call(
        &mut stream,
        ApiKey::Produce,
        9,
        &produce(&[Some(b"plain text")]),
    );
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(end_offset(&server), 4);
}

#[test]
fn kcat_is_told_the_record_is_invalid() {
    let (server, _, _validator) = server();
    let b = server.bootstrap();
    let refused = kcat_output(&["-b", &b, "-P", "-t", "payments", "-p", "0"], "not avro\n");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    // librdkafka's words for CORRUPT_MESSAGE (Produce below v8, as
    // Debian's kcat speaks) or INVALID_RECORD.
    assert!(
        stderr.contains("Invalid message") || stderr.contains("failed to validate record"),
        "kcat said: {stderr}"
    );
    assert_eq!(end_offset(&server), 0);
    // A topic without validation takes the same line.
    server
        .broker
        .create_topic("loose", 1, -1, &[], false)
        .unwrap();
    kcat(&["-b", &b, "-P", "-t", "loose", "-p", "0"], "not avro\n");
    let log = server.broker.topic("loose").unwrap().partition(0).unwrap();
    assert_eq!(log.end_offset(), 1);
}

#[test]
fn without_a_registry_a_validated_topic_refuses_every_record() {
    let server = TestServer::start();
    create_validated(&server);
    let mut stream = connect(&server);
    let response: ProduceResponse = call(
        &mut stream,
        ApiKey::Produce,
        9,
        &produce(&[Some(&framed(1, &[0]))]),
    );
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, Code::InvalidRecord.code());
    let message = p.error_message.as_ref().unwrap().to_string();
    assert!(message.contains("no schema registry"), "{message}");
}
