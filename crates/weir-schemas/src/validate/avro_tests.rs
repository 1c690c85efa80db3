//! The walker against `apache-avro`'s own encoder and decoder: what the
//! encoder writes is accepted, cut or extended it is refused, and on
//! random bytes the walker accepts exactly what the decoder decodes
//! with every byte consumed (but for the decoder's leniencies at the end
//! of the input: a missing union index, or a string cut short, reads as
//! null there, where the walker refuses the cut datum).
#![allow(deprecated)] // to_avro_datum/from_avro_datum: the simplest calls.

use apache_avro::types::Value;
use apache_avro::{Schema, from_avro_datum, to_avro_datum};

use super::Program;

const SCHEMA: &str = r#"{
  "type": "record", "name": "Order", "namespace": "shop",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "paid", "type": "boolean"},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["NEW", "PAID", "SHIPPED"]}},
    {"name": "lines", "type": {"type": "array", "items": {
        "type": "record", "name": "Line", "fields": [
          {"name": "sku", "type": "string"},
          {"name": "qty", "type": "int"},
          {"name": "price", "type": "double"}]}}},
    {"name": "tags", "type": {"type": "map", "values": "float"}},
    {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
    {"name": "next", "type": ["null", "Order"], "default": null}
  ]
}"#;

fn order(id: i64, next: Option<Value>) -> Value {
    let line = |sku: &str, qty: i32| {
        Value::Record(vec![
            ("sku".into(), Value::String(sku.into())),
            ("qty".into(), Value::Int(qty)),
            ("price".into(), Value::Double(2.5)),
        ])
    };
    Value::Record(vec![
        ("id".into(), Value::Long(id)),
        ("paid".into(), Value::Boolean(id % 2 == 0)),
        (
            "note".into(),
            Value::Union(1, Box::new(Value::String("é".into()))),
        ),
        ("state".into(), Value::Enum(2, "SHIPPED".into())),
        (
            "lines".into(),
            Value::Array(vec![line("a", 1), line("bb", -70_000)]),
        ),
        (
            "tags".into(),
            Value::Map([("x".to_owned(), Value::Float(1.0))].into_iter().collect()),
        ),
        ("digest".into(), Value::Fixed(4, vec![1, 2, 3, 4])),
        (
            "next".into(),
            match next {
                Some(v) => Value::Union(1, Box::new(v)),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
    ])
}

fn schema() -> Schema {
    Schema::parse_str(SCHEMA).unwrap()
}

#[test]
fn what_the_encoder_writes_is_accepted_and_nothing_else_of_it() {
    let schema = schema();
    let program = Program::compile(&schema).unwrap();
    let value = order(i64::MIN, Some(order(7, None)));
    let bytes = to_avro_datum(&schema, value).unwrap();
    program.check(&bytes).unwrap();
    for cut in 0..bytes.len() {
        assert!(
            program.check(&bytes[..cut]).is_err(),
            "cut at {cut} accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let err = program.check(&longer).unwrap_err();
    assert!(err.contains("1 bytes left"), "{err}");
}

#[test]
fn bad_encodings_are_named() {
    let program = Program::compile(&Schema::parse_str(r#"["null","boolean"]"#).unwrap()).unwrap();
    assert!(program.check(&[2, 1]).is_ok());
    let err = program.check(&[2, 7]).unwrap_err();
    assert!(err.contains("boolean byte 7"), "{err}");
    let err = program.check(&[4]).unwrap_err();
    assert!(err.contains("union branch 2 of 2"), "{err}");
    let strings = Program::compile(&Schema::String).unwrap();
    let err = strings.check(&[4, 0xff, 0xfe]).unwrap_err();
    assert!(err.contains("not UTF-8"), "{err}");
    let record = Program::compile(&schema()).unwrap();
    let err = record.check(&[2, 1, 0, 9]).unwrap_err();
    assert!(
        err.contains("field 'state'") && err.contains("enum index"),
        "{err}"
    );
}

#[test]
fn zero_sized_items_cannot_run_forever() {
    let program =
        Program::compile(&Schema::parse_str(r#"{"type":"array","items":"null"}"#).unwrap())
            .unwrap();
    // One block claiming 2^40 nulls: a zig-zag varint of 2^41.
    let mut bytes = vec![0x80; 5];
    bytes.push(0x40);
    let err = program.check(&bytes).unwrap_err();
    assert!(err.contains("more than"), "{err}");
}

/// A small deterministic generator (xorshift), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn on_random_bytes_it_agrees_with_the_decoder() {
    let schemas = [
        SCHEMA,
        r#"["null","int","string",{"type":"enum","name":"E","symbols":["A","B"]}]"#,
        r#"{"type":"map","values":["null","boolean","long"]}"#,
        r#"{"type":"array","items":{"type":"fixed","name":"F","size":2}}"#,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for text in schemas {
        let schema = Schema::parse_str(text).unwrap();
        let program = Program::compile(&schema).unwrap();
        for _ in 0..20_000 {
            let len = (rng.next() % 24) as usize;
            // Small bytes make short varints and valid indexes likelier.
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.next() % 4 {
                    0 => (rng.next() % 256) as u8,
                    _ => (rng.next() % 8) as u8,
                })
                .collect();
            let mut reader = &bytes[..];
            let decoded = from_avro_datum(&schema, &mut reader, None).is_ok() && reader.is_empty();
            let ours = program.check(&bytes);
            let lenient = decoded
                && ours.as_ref().is_err_and(|e| {
                    e == &format!("a varint cut short at byte {len}") || e.contains("bytes wanted")
                });
            if !lenient {
                assert_eq!(
                    ours.is_ok(),
                    decoded,
                    "schema {text}, bytes {bytes:?}: walker {ours:?}"
                );
            }
            accepted += usize::from(decoded);
        }
    }
    assert!(accepted > 1_000, "only {accepted} random inputs decoded");
}
