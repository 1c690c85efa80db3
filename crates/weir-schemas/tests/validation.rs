//! Validation on write through the registry's [`Validator`]: records in
//! the wire format against Avro, JSON Schema and Protobuf schemas under
//! each subject name strategy, and events of validated categories; each
//! refusal says what is wrong.

use std::sync::Arc;

use weir_broker::{RecordPart, SubjectStrategy};
use weir_schemas::{ImportIds, Limits, MemoryLog, Registry, SchemaDef, SchemaType, Validator};
use weir_store::NewEvent;

const KEY: RecordPart = RecordPart::Key;
const VALUE: RecordPart = RecordPart::Value;
const TOPIC: SubjectStrategy = SubjectStrategy::Topic;

fn validator() -> Validator {
    let log = Box::new(MemoryLog::new());
    Validator::new(Arc::new(Registry::open(log, Limits::default()).unwrap()))
}

fn register(v: &Validator, subject: &str, t: SchemaType, text: &str) -> i32 {
    v.registry()
        .register(subject, &SchemaDef::new(t, text), ImportIds::default())
        .unwrap()
        .id
}

fn framed(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const PAYMENT: &str = r#"{"type":"record","name":"Payment","namespace":"bank",
  "fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"}]}"#;

/// Avro of Payment{id: "ab", amount: -3}.
const PAYMENT_AB: [u8; 4] = [4, b'a', b'b', 5];

#[test]
fn avro_values_must_name_a_schema_of_their_subject_and_match_it() {
    let v = validator();
    let id = register(&v, "payments-value", SchemaType::Avro, PAYMENT);
    v.check_record("payments", VALUE, TOPIC, &framed(id, &PAYMENT_AB))
        .unwrap();
    let err = v
        .check_record("payments", VALUE, TOPIC, b"plain text")
        .unwrap_err();
    assert!(err.contains("magic byte 0"), "{err}");
    let err = v
        .check_record("payments", VALUE, TOPIC, &[0, 0, 1])
        .unwrap_err();
    assert!(err.contains("3 bytes"), "{err}");
    let err = v
        .check_record("payments", VALUE, TOPIC, &framed(99, &PAYMENT_AB))
        .unwrap_err();
    assert!(err.contains("schema id 99 is not in the registry"), "{err}");
    let err = v
        .check_record("payments", VALUE, TOPIC, &framed(id, &PAYMENT_AB[..3]))
        .unwrap_err();
    assert!(
        err.contains("does not match schema") && err.contains("field 'amount'"),
        "{err}"
    );
    // Registered, but under another topic's subject.
    let err = v
        .check_record("refunds", VALUE, TOPIC, &framed(id, &PAYMENT_AB))
        .unwrap_err();
    assert!(
        err.contains("not registered under subject 'refunds-value'"),
        "{err}"
    );
    // Keys have subjects of their own.
    let err = v
        .check_record("payments", KEY, TOPIC, &framed(id, &PAYMENT_AB))
        .unwrap_err();
    assert!(err.contains("subject 'payments-key'"), "{err}");
}

#[test]
fn a_soft_deleted_version_no_longer_validates() {
    let v = validator();
    let id = register(&v, "payments-value", SchemaType::Avro, PAYMENT);
    let record = framed(id, &PAYMENT_AB);
    v.check_record("payments", VALUE, TOPIC, &record).unwrap();
    v.registry()
        .delete_version(
            "payments-value",
            weir_schemas::VersionSpec::Number(1),
            false,
        )
        .unwrap();
    let err = v
        .check_record("payments", VALUE, TOPIC, &record)
        .unwrap_err();
    assert!(err.contains("not registered under subject"), "{err}");
}

#[test]
fn record_name_strategies_name_the_subject_after_the_schema() {
    let v = validator();
    let id = register(&v, "bank.Payment", SchemaType::Avro, PAYMENT);
    let record = framed(id, &PAYMENT_AB);
    v.check_record("any", VALUE, SubjectStrategy::Record, &record)
        .unwrap();
    let err = v
        .check_record("any", VALUE, SubjectStrategy::TopicRecord, &record)
        .unwrap_err();
    assert!(err.contains("'any-bank.Payment'"), "{err}");
    register(&v, "any-bank.Payment", SchemaType::Avro, PAYMENT);
    v.check_record("any", VALUE, SubjectStrategy::TopicRecord, &record)
        .unwrap();
    let err = v.check_record("any", VALUE, TOPIC, &record).unwrap_err();
    assert!(err.contains("'any-value'"), "{err}");
}

const ORDER_JSON: &str = r#"{"title":"Order","type":"object",
  "properties":{"id":{"type":"string"},"qty":{"type":"integer","minimum":1}},
  "required":["id"]}"#;

#[test]
fn json_values_are_validated_by_json_schema() {
    let v = validator();
    let id = register(&v, "orders-value", SchemaType::Json, ORDER_JSON);
    v.check_record(
        "orders",
        VALUE,
        TOPIC,
        &framed(id, br#"{"id":"o1","qty":2}"#),
    )
    .unwrap();
    let err = v
        .check_record(
            "orders",
            VALUE,
            TOPIC,
            &framed(id, br#"{"id":"o1","qty":0}"#),
        )
        .unwrap_err();
    assert!(err.contains("/qty"), "{err}");
    let err = v
        .check_record("orders", VALUE, TOPIC, &framed(id, br#"{"qty":1}"#))
        .unwrap_err();
    assert!(err.contains("id"), "{err}");
    let err = v
        .check_record("orders", VALUE, TOPIC, &framed(id, b"{not json"))
        .unwrap_err();
    assert!(err.contains("not JSON"), "{err}");
    // The title is the record name.
    register(&v, "Order", SchemaType::Json, ORDER_JSON);
    v.check_record(
        "x",
        VALUE,
        SubjectStrategy::Record,
        &framed(id, br#"{"id":"a"}"#),
    )
    .unwrap();
}

const SHOP_PROTO: &str = r#"syntax = "proto3";
package shop;
message Order { string id = 1; int64 qty = 2; message Line { string sku = 1; } }
message Refund { string order_id = 1; }
"#;

#[test]
fn protobuf_values_are_decoded_as_the_indexed_message() {
    let v = validator();
    let id = register(&v, "shop-value", SchemaType::Protobuf, SHOP_PROTO);
    // Order{id: "o1", qty: 3}, message indexes [0] written as the single 0.
    let order = [0x0a, 2, b'o', b'1', 0x10, 3];
    let mut first = vec![0];
    first.extend_from_slice(&order);
    v.check_record("shop", VALUE, TOPIC, &framed(id, &first))
        .unwrap();
    // Indexes [1] (Refund): count 1, index 1, zig-zag encoded.
    let mut refund = vec![2, 2];
    refund.extend_from_slice(&[0x0a, 1, b'x']);
    v.check_record("shop", VALUE, TOPIC, &framed(id, &refund))
        .unwrap();
    // Indexes [0, 0]: Order.Line, by the record name strategy.
    let mut line = vec![4, 0, 0];
    line.extend_from_slice(&[0x0a, 1, b's']);
    let err = v
        .check_record("shop", VALUE, SubjectStrategy::Record, &framed(id, &line))
        .unwrap_err();
    assert!(err.contains("'shop.Order.Line'"), "{err}");
    let err = v
        .check_record("shop", VALUE, TOPIC, &framed(id, &[2, 8]))
        .unwrap_err();
    assert!(err.contains("[4]"), "{err}");
    // A string field with a varint wire type.
    let err = v
        .check_record("shop", VALUE, TOPIC, &framed(id, &[0, 0x08, 1]))
        .unwrap_err();
    assert!(err.contains("shop.Order"), "{err}");
}

fn event(event_type: &str, data: &[u8], metadata: &[u8]) -> NewEvent {
    NewEvent {
        metadata: metadata.to_vec(),
        ..NewEvent::json("e1", event_type, data.to_vec())
    }
}

#[test]
fn events_are_checked_only_in_validated_categories() {
    let v = validator();
    let good = event("Placed", br#"{"id":"o1","qty":1}"#, b"");
    let bad = event("Placed", br#"{"qty":0}"#, b"");
    v.check_event("order-1", &bad).unwrap();
    v.registry().set_category_validation("order", true).unwrap();
    assert_eq!(v.registry().validated_categories(), vec!["order"]);
    let err = v.check_event("order-1", &good).unwrap_err();
    assert!(
        err.contains("subject 'order-Placed' has no schema"),
        "{err}"
    );
    let first = register(&v, "order-Placed", SchemaType::Json, ORDER_JSON);
    v.check_event("order-1", &good).unwrap();
    let err = v.check_event("order-1", &bad).unwrap_err();
    assert!(err.contains("does not match schema"), "{err}");
    // Other categories and streams without one are not checked.
    v.check_event("invoice-1", &bad).unwrap();
    v.check_event("loose", &bad).unwrap();
    // A newer version makes qty optional-free; the old one stays usable
    // by naming it in dataschema.
    let newer = ORDER_JSON.replace(r#""required":["id"]"#, r#""required":["id","qty"]"#);
    v.registry()
        .set_compatibility(Some("order-Placed"), weir_schemas::CompatibilityLevel::None)
        .unwrap();
    register(&v, "order-Placed", SchemaType::Json, &newer);
    let old_shape = event("Placed", br#"{"id":"o1"}"#, b"");
    assert!(v.check_event("order-1", &old_shape).is_err());
    let meta = format!(r#"{{"dataschema":"/schemas/ids/{first}"}}"#);
    let named = event("Placed", br#"{"id":"o1"}"#, meta.as_bytes());
    v.check_event("order-1", &named).unwrap();
    let meta = r#"{"dataschema":"http://registry/schemas/ids/999"}"#;
    let err = v
        .check_event(
            "order-1",
            &event("Placed", br#"{"id":"o1"}"#, meta.as_bytes()),
        )
        .unwrap_err();
    assert!(err.contains("999"), "{err}");
    v.registry()
        .set_category_validation("order", false)
        .unwrap();
    v.check_event("order-1", &bad).unwrap();
    assert!(v.registry().set_category_validation("a-b", true).is_err());
}

#[test]
fn binary_events_carry_the_wire_format() {
    let v = validator();
    v.registry().set_category_validation("pay", true).unwrap();
    let id = register(&v, "pay-Made", SchemaType::Avro, PAYMENT);
    let binary = |data: Vec<u8>| NewEvent {
        content_type: "application/octet-stream".to_owned(),
        ..NewEvent::json("e1", "Made", data)
    };
    v.check_event("pay-1", &binary(framed(id, &PAYMENT_AB)))
        .unwrap();
    let err = v
        .check_event("pay-1", &binary(b"raw".to_vec()))
        .unwrap_err();
    assert!(err.contains("magic byte"), "{err}");
    // A JSON event against an Avro subject says what it needs.
    let err = v
        .check_event("pay-1", &event("Made", br#"{"id":"a","amount":1}"#, b""))
        .unwrap_err();
    assert!(err.contains("holds a AVRO schema"), "{err}");
}

#[test]
fn category_settings_survive_a_reopen() {
    let log = MemoryLog::new();
    let r = Registry::open(Box::new(log.clone()), Limits::default()).unwrap();
    r.set_category_validation("order", true).unwrap();
    r.set_category_validation("pay", true).unwrap();
    r.set_category_validation("pay", false).unwrap();
    let before = log.len();
    r.set_category_validation("order", true).unwrap();
    assert_eq!(log.len(), before, "setting what is set writes nothing");
    let again = Registry::open(Box::new(log), Limits::default()).unwrap();
    assert_eq!(again.validated_categories(), vec!["order"]);
}
