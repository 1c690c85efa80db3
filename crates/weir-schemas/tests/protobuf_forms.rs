//! Protobuf schemas in the form Confluent's serializers send them, a
//! base64-encoded `FileDescriptorProto`: kept as `.proto` text that
//! compiles to the same messages (printing is a fixpoint, and the text is
//! compatible with the original both ways), and given back in that form
//! for `format=serialized`.

use weir_schemas::{
    CompatibilityLevel, ImportIds, Limits, MemoryLog, Registry, SchemaDef, SchemaType, text_form,
};

const SHOP: &str = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
message Order {
  string id = 1;
  optional int64 qty = 2;
  map<string, int32> tags = 3;
  oneof pay { string card = 4; string iban = 5; }
  repeated Line lines = 6;
  google.protobuf.Timestamp at = 7;
  enum State { NEW = 0; PAID = 1; }
  State state = 8;
  message Line { string sku = 1; bytes blob = 2; }
  reserved 10 to 12;
  reserved "old";
}
message Refund { string order_id = 1; }
"#;

const LEGACY: &str = r#"syntax = "proto2";
package legacy;
message Item { required string id = 1; optional int32 n = 2 [default = 7]; optional string s = 3 [default = "x"]; }
"#;

#[test]
fn descriptors_are_kept_as_text_that_compiles_to_the_same_messages() {
    let r = Registry::open(Box::new(MemoryLog::new()), Limits::default()).unwrap();
    for (subject, text) in [("shop-value", SHOP), ("legacy-value", LEGACY)] {
        let def = SchemaDef::new(SchemaType::Protobuf, text);
        r.register(subject, &def, ImportIds::default()).unwrap();
        let serialized = r.serialized(&def).unwrap();
        assert!(!serialized.contains(' '), "base64: {serialized}");
        let printed = text_form(SchemaDef::new(SchemaType::Protobuf, serialized.clone()));
        assert_ne!(printed.schema, serialized, "printed as text");
        assert!(printed.schema.contains("message "), "{}", printed.schema);
        // Printing what the printed text compiles to gives it back.
        let again = r.serialized(&printed).unwrap();
        let reprinted = text_form(SchemaDef::new(SchemaType::Protobuf, again));
        assert_eq!(reprinted.schema, printed.schema);
        // The same messages: compatible with the original both ways.
        r.set_compatibility(Some(subject), CompatibilityLevel::Full)
            .unwrap();
        let report = r.test_compatibility(subject, &printed, None).unwrap();
        assert!(
            report.is_compatible,
            "{subject}: {:?}\n{}",
            report.messages, printed.schema
        );
    }
    let printed = text_form(SchemaDef::new(
        SchemaType::Protobuf,
        r.serialized(&SchemaDef::new(SchemaType::Protobuf, SHOP))
            .unwrap(),
    ));
    for part in [
        "map<string, int32> tags = 3;",
        "oneof pay {",
        "optional int64 qty = 2;",
        "reserved 10 to 12;",
        "import \"google/protobuf/timestamp.proto\";",
    ] {
        assert!(
            printed.schema.contains(part),
            "{part} in\n{}",
            printed.schema
        );
    }
    let legacy = text_form(SchemaDef::new(
        SchemaType::Protobuf,
        r.serialized(&SchemaDef::new(SchemaType::Protobuf, LEGACY))
            .unwrap(),
    ));
    assert!(
        legacy.schema.contains("required string id = 1;"),
        "{}",
        legacy.schema
    );
    assert!(legacy.schema.contains("[default = 7]"), "{}", legacy.schema);
}

#[test]
fn text_and_other_types_are_left_alone() {
    let text = SchemaDef::new(SchemaType::Protobuf, SHOP);
    assert_eq!(text_form(text.clone()), text);
    // Base64 that is no descriptor stays what it is (and fails to parse
    // as text later, with the usual error).
    let junk = SchemaDef::new(SchemaType::Protobuf, "aGVsbG8=");
    assert_eq!(text_form(junk.clone()), junk);
    let avro = SchemaDef::new(SchemaType::Avro, "\"string\"");
    assert_eq!(text_form(avro.clone()), avro);
    let r = Registry::open(Box::new(MemoryLog::new()), Limits::default()).unwrap();
    assert!(r.serialized(&avro).is_err());
}
