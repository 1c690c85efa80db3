//! One module per schema type: parsing (with references resolved) and the
//! reader/writer compatibility rules each type really has, behind one
//! [`Parsed`] the registry handles alike.

mod avro;
pub(crate) mod json;
pub(crate) mod protobuf;
mod protobuf_text;

use crate::error::SchemaError;
use crate::model::SchemaType;

/// A schema parsed as its type.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    Avro(Box<apache_avro::Schema>),
    Json(Box<json::JsonSchema>),
    Protobuf(Box<protobuf::ProtoSchema>),
}

/// Parses `text` as `schema_type`, `references` being every schema it
/// uses, directly or not, as (name, text).
pub(crate) fn parse(
    schema_type: SchemaType,
    text: &str,
    references: &[(String, String)],
) -> Result<Parsed, SchemaError> {
    Ok(match schema_type {
        SchemaType::Avro => Parsed::Avro(Box::new(avro::parse(text, references)?)),
        SchemaType::Json => Parsed::Json(Box::new(json::parse(text, references)?)),
        SchemaType::Protobuf => Parsed::Protobuf(Box::new(protobuf::parse(text, references)?)),
    })
}

/// The form two registrations of the same schema share, for id reuse:
/// Avro and JSON re-serialized compactly with keys sorted (so
/// whitespace and key order do not matter, while defaults and docs,
/// which change meaning or are shown back, do); Protobuf text with
/// trailing whitespace trimmed per line.
pub(crate) fn canonical(schema_type: SchemaType, text: &str) -> String {
    match schema_type {
        SchemaType::Avro | SchemaType::Json => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => sorted(&v).to_string(),
                Err(_) => text.to_owned(),
            }
        }
        SchemaType::Protobuf => text
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_owned(),
    }
}

fn sorted(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Why `reader` cannot read all data written with `writer` (empty when it
/// can). Schemas of different types never read each other.
pub(crate) fn incompatibilities(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    let mut out = Vec::new();
    match (reader, writer) {
        (Parsed::Avro(r), Parsed::Avro(w)) => avro::incompatibilities(r, w, &mut out),
        (Parsed::Json(r), Parsed::Json(w)) => json::incompatibilities(r, w, &mut out),
        (Parsed::Protobuf(r), Parsed::Protobuf(w)) => protobuf::incompatibilities(r, w, &mut out),
        _ => out.push("schema type changed".to_owned()),
    }
    out
}

/// `def` in the form the registry keeps: a Protobuf schema sent as a
/// base64-encoded `FileDescriptorProto` (Confluent's serializers send
/// that) becomes its `.proto` text; anything else is unchanged.
pub fn text_form(mut def: crate::SchemaDef) -> crate::SchemaDef {
    if def.schema_type == SchemaType::Protobuf
        && let Some(text) = protobuf_text::text_of_serialized(&def.schema)
    {
        def.schema = text;
    }
    def
}

/// A Protobuf schema in Confluent's `serialized` form (its compiled
/// `FileDescriptorProto`, base64-encoded); other types have none.
pub(crate) fn serialized_form(parsed: &Parsed) -> Result<String, SchemaError> {
    match parsed {
        Parsed::Protobuf(p) => p
            .file_proto()
            .map(|f| protobuf_text::serialized(&f))
            .ok_or_else(|| protobuf_text::invalid("the compiled schema has no file")),
        _ => Err(SchemaError::InvalidSchema(
            "only Protobuf schemas have a serialized form".to_owned(),
        )),
    }
}
