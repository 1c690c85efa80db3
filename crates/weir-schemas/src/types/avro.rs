//! Avro schemas: parsed with `apache-avro` (named types of referenced
//! schemas resolved and inlined), checked with its reader/writer schema
//! resolution (`schema_compatibility`): a reader field missing in the
//! writer needs a default, types must promote (int → long → float →
//! double, string ↔ bytes), names must match, enum symbols and union
//! branches of the writer must be readable.

use apache_avro::Schema;
use apache_avro::error::CompatibilityError;
use apache_avro::schema::{ArraySchema, EnumSchema, MapSchema, RecordSchema};
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use crate::error::SchemaError;

/// Parses `text`, with `references` (name, text) supplying the named types
/// it uses, and inlines them so the schema stands alone.
pub(crate) fn parse(text: &str, references: &[(String, String)]) -> Result<Schema, SchemaError> {
    let invalid = |e: apache_avro::Error| SchemaError::InvalidSchema(format!("Avro: {e}"));
    if references.is_empty() {
        return Schema::parse_str(text).map_err(invalid);
    }
    let (mut schema, schemata) =
        Schema::parse_str_with_list(text, references.iter().map(|(_, t)| t.as_str()))
            .map_err(invalid)?;
    schema.denormalize(&schemata).map_err(invalid)?;
    Ok(schema)
}

/// Why `reader` cannot read every datum written with `writer`, if it
/// cannot.
pub(crate) fn incompatibilities(reader: &Schema, writer: &Schema, out: &mut Vec<String>) {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => {}
        Ok(Compatibility::Partial) => {
            let before = out.len();
            partial(reader, writer, "", out);
            if out.len() == before {
                out.push(
                    "the reader lacks some of the writer's enum symbols or union branches"
                        .to_owned(),
                );
            }
        }
        Err(e) => out.push(describe(&e, String::new())),
    }
}

/// One message for `e`, with the path of field names down to the change.
fn describe(e: &CompatibilityError, path: String) -> String {
    match e {
        CompatibilityError::FieldTypeMismatch(field, inner) => {
            describe(inner, format!("{path}/{field}"))
        }
        CompatibilityError::MissingDefaultValue(field) => {
            format!("field '{field}' at {path}/{field} is new in the reader and has no default")
        }
        CompatibilityError::WrongType {
            writer_schema_type,
            reader_schema_type,
        } => format!(
            "type changed from {} to {} at {}",
            kind(writer_schema_type),
            kind(reader_schema_type),
            if path.is_empty() { "/" } else { &path }
        ),
        other => format!("{other} at {}", if path.is_empty() { "/" } else { &path }),
    }
}

/// The kind of a schema from its debug text (`Int`, `Record(...)`):
/// `int`, `record`.
fn kind(debug: &str) -> String {
    let end = debug
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(debug.len());
    debug[..end].to_ascii_lowercase()
}

/// Names what makes a partial match partial: writer enum symbols the
/// reader lacks (without a default), writer union branches no reader
/// branch reads fully.
fn partial(reader: &Schema, writer: &Schema, path: &str, out: &mut Vec<String>) {
    let at = if path.is_empty() { "/" } else { path };
    let full = |w: &Schema, r: &Schema| {
        matches!(SchemaCompatibility::can_read(w, r), Ok(Compatibility::Full))
    };
    match (reader, writer) {
        (
            Schema::Enum(EnumSchema {
                symbols: rs,
                default: None,
                ..
            }),
            Schema::Enum(EnumSchema { symbols: ws, .. }),
        ) => {
            for s in ws.iter().filter(|s| !rs.contains(s)) {
                out.push(format!("enum symbol '{s}' removed at {at}"));
            }
        }
        (
            Schema::Record(RecordSchema { fields: rf, .. }),
            Schema::Record(RecordSchema { fields: wf, .. }),
        ) => {
            for w in wf {
                if let Some(r) = rf.iter().find(|r| r.name == w.name) {
                    partial(&r.schema, &w.schema, &format!("{path}/{}", w.name), out);
                }
            }
        }
        (
            Schema::Array(ArraySchema { items: r, .. }),
            Schema::Array(ArraySchema { items: w, .. }),
        ) => partial(r, w, &format!("{path}/items"), out),
        (Schema::Map(MapSchema { types: r, .. }), Schema::Map(MapSchema { types: w, .. })) => {
            partial(r, w, &format!("{path}/values"), out)
        }
        (_, Schema::Union(wu)) => {
            let readers: &[Schema] = match reader {
                Schema::Union(ru) => ru.variants(),
                other => std::slice::from_ref(other),
            };
            for (i, w) in wu.variants().iter().enumerate() {
                if readers.iter().any(|r| full(w, r)) {
                    continue;
                }
                let before = out.len();
                // A branch of the same kind may be partial for a nested reason.
                for r in readers {
                    partial(r, w, &format!("{path}/{i}"), out);
                }
                if out.len() == before {
                    out.push(format!(
                        "union branch {i} of the writer is not readable at {at}"
                    ));
                }
            }
        }
        (Schema::Union(ru), _) => {
            for r in ru.variants() {
                partial(r, writer, path, out);
            }
        }
        _ => {}
    }
}
