//! Protobuf schemas: `.proto` text compiled by `protox` (no `protoc`), the
//! schema's imports resolved from its references (by import path) and
//! from the well-known `google/protobuf/*.proto` files; compatibility by
//! comparing the writer's (old, under BACKWARD) and the reader's
//! descriptors in the manner of Confluent's Protobuf rules.
//!
//! Rules covered (message names relative to the package), on the
//! schema's own messages and those of the files it imports through its
//! references (a referenced version changing is checked too):
//! - the package changed: incompatible;
//! - a message of the writer missing in the reader: incompatible;
//! - a field number kept with another type: incompatible, except between
//!   wire-compatible scalars (int32/uint32/int64/uint64/bool; sint32/sint64;
//!   fixed32/sfixed32; fixed64/sfixed64; string/bytes); a message or enum
//!   field now naming another type: incompatible;
//! - a field becoming repeated, or no longer repeated: incompatible;
//! - a required (proto2) field added or removed: incompatible;
//! - several existing fields moved into one new oneof: incompatible (one
//!   field moved into a new oneof is fine);
//! - fields added or removed (not required), renamed fields (same number),
//!   enum values added or removed, messages added: compatible.
//!
//! Not covered yet: map key/value type changes beyond the entry message's
//! fields, `optional` ↔ implicit presence changes in proto3, enum value
//! number reuse, services, extensions, options, and which message is the
//! first one (the one Confluent's serializers use by default).

use std::collections::{BTreeMap, BTreeSet};

use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use protox::prost_reflect::{
    Cardinality, DescriptorPool, FieldDescriptor, Kind, MessageDescriptor,
};

use crate::error::SchemaError;

/// The file name the registered schema is compiled as.
const MAIN_FILE: &str = "weir-registered-schema.proto";

/// A compiled `.proto` with its imports.
#[derive(Debug, Clone)]
pub(crate) struct ProtoSchema {
    pool: DescriptorPool,
}

#[derive(Debug)]
struct MapResolver(BTreeMap<String, String>);

impl FileResolver for MapResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(source) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Compiles `text`; `references` are (import path, text) pairs.
pub(crate) fn parse(
    text: &str,
    references: &[(String, String)],
) -> Result<ProtoSchema, SchemaError> {
    let mut files: BTreeMap<String, String> = references.iter().cloned().collect();
    files.insert(MAIN_FILE.to_owned(), text.to_owned());
    let mut chain = ChainFileResolver::new();
    chain.add(MapResolver(files));
    chain.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(chain);
    compiler
        .open_file(MAIN_FILE)
        .map_err(|e| SchemaError::InvalidSchema(format!("Protobuf: {e}")))?;
    Ok(ProtoSchema {
        pool: compiler.descriptor_pool(),
    })
}

impl ProtoSchema {
    /// The descriptor of the registered file itself (its imports are
    /// named by their paths, the references' names).
    pub(crate) fn file_proto(
        &self,
    ) -> Option<protox::prost_reflect::prost_types::FileDescriptorProto> {
        self.pool
            .get_file_by_name(MAIN_FILE)
            .map(|f| f.file_descriptor_proto().clone())
    }

    /// The message Confluent's message indexes name: the first index picks
    /// a top-level message of the schema's file, each next one a message
    /// nested in the previous (declaration order, as the descriptors list
    /// them).
    pub(crate) fn message_at(&self, indexes: &[usize]) -> Option<MessageDescriptor> {
        let file = self.pool.get_file_by_name(MAIN_FILE)?;
        let (first, rest) = indexes.split_first()?;
        let mut message = file.messages().nth(*first)?;
        for i in rest {
            let child = message.child_messages().nth(*i)?;
            message = child;
        }
        Some(message)
    }

    fn package(&self) -> String {
        self.pool
            .get_file_by_name(MAIN_FILE)
            .map(|f| f.package_name().to_owned())
            .unwrap_or_default()
    }

    /// The messages of the main file and of the referenced files (nested
    /// ones too, map entries and the well-known `google/protobuf` files
    /// left out) by name relative to the main file's package, each with
    /// whether it is the main file's own.
    fn messages(&self) -> BTreeMap<String, (MessageDescriptor, bool)> {
        let mut out = BTreeMap::new();
        let package = self.package();
        for file in self
            .pool
            .files()
            .filter(|f| !f.name().starts_with("google/protobuf/"))
        {
            let own = file.name() == MAIN_FILE;
            let mut todo: Vec<MessageDescriptor> = file.messages().collect();
            while let Some(m) = todo.pop() {
                todo.extend(m.child_messages().filter(|c| !c.is_map_entry()));
                out.insert(relative(m.full_name(), &package), (m, own));
            }
        }
        out
    }
}

fn relative(full: &str, package: &str) -> String {
    if package.is_empty() {
        return full.to_owned();
    }
    full.strip_prefix(package)
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or(full)
        .to_owned()
}

/// The wire-compatible group of a scalar kind, or its own name.
fn kind_group(kind: &Kind, package: &str) -> String {
    match kind {
        Kind::Int32 | Kind::Uint32 | Kind::Int64 | Kind::Uint64 | Kind::Bool => "varint".to_owned(),
        Kind::Sint32 | Kind::Sint64 => "zigzag".to_owned(),
        Kind::Fixed32 | Kind::Sfixed32 => "fixed32".to_owned(),
        Kind::Fixed64 | Kind::Sfixed64 => "fixed64".to_owned(),
        Kind::String | Kind::Bytes => "length-delimited".to_owned(),
        Kind::Double => "double".to_owned(),
        Kind::Float => "float".to_owned(),
        Kind::Message(m) => format!("message {}", relative(m.full_name(), package)),
        Kind::Enum(e) => format!("enum {}", relative(e.full_name(), package)),
    }
}

fn kind_name(kind: &Kind, package: &str) -> String {
    match kind {
        Kind::Message(m) => relative(m.full_name(), package),
        Kind::Enum(e) => relative(e.full_name(), package),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// The oneof a field really belongs to (not proto3 `optional`'s synthetic one).
fn oneof(f: &FieldDescriptor) -> Option<String> {
    f.containing_oneof()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_owned())
}

/// Why data written with `writer` would not read with `reader`.
pub(crate) fn incompatibilities(reader: &ProtoSchema, writer: &ProtoSchema, out: &mut Vec<String>) {
    let (rp, wp) = (reader.package(), writer.package());
    if rp != wp {
        out.push(format!("package changed from '{wp}' to '{rp}'"));
    }
    let rm = reader.messages();
    for (name, (w, own)) in writer.messages() {
        match rm.get(&name) {
            // A referenced file's message may go with the reference.
            None if own => out.push(format!("message '{name}' removed")),
            None => {}
            Some((r, _)) => fields(r, &w, &name, (&rp, &wp), out),
        }
    }
}

fn fields(
    r: &MessageDescriptor,
    w: &MessageDescriptor,
    msg: &str,
    pkg: (&str, &str),
    out: &mut Vec<String>,
) {
    let rf: BTreeMap<u32, FieldDescriptor> = r.fields().map(|f| (f.number(), f)).collect();
    let wf: BTreeMap<u32, FieldDescriptor> = w.fields().map(|f| (f.number(), f)).collect();
    // Fields of the writer that were outside any oneof, per reader oneof they now sit in.
    let mut moved: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (n, wfd) in &wf {
        let at = format!("message '{msg}' field {n}");
        let Some(rfd) = rf.get(n) else {
            if wfd.cardinality() == Cardinality::Required {
                out.push(format!("required field '{}' removed from {at}", wfd.name()));
            }
            continue;
        };
        let (rk, wk) = (rfd.kind(), wfd.kind());
        if kind_group(&rk, pkg.0) != kind_group(&wk, pkg.1) {
            out.push(format!(
                "field '{}' type changed from {} to {} at {at}",
                rfd.name(),
                kind_name(&wk, pkg.1),
                kind_name(&rk, pkg.0)
            ));
        }
        if rfd.is_list() != wfd.is_list() || rfd.is_map() != wfd.is_map() {
            out.push(format!(
                "field '{}' changed between repeated and single at {at}",
                rfd.name()
            ));
        }
        if (rfd.cardinality() == Cardinality::Required)
            != (wfd.cardinality() == Cardinality::Required)
        {
            out.push(format!(
                "field '{}' changed between required and optional at {at}",
                rfd.name()
            ));
        }
        if let (Some(o), None) = (oneof(rfd), oneof(wfd)) {
            moved.entry(o).or_default().insert(rfd.name().to_owned());
        }
    }
    for (n, rfd) in rf.iter().filter(|(n, _)| !wf.contains_key(n)) {
        if rfd.cardinality() == Cardinality::Required {
            out.push(format!(
                "required field '{}' added at message '{msg}' field {n}",
                rfd.name()
            ));
        }
    }
    for (o, names) in moved.iter().filter(|(_, names)| names.len() > 1) {
        let names: Vec<_> = names.iter().cloned().collect();
        out.push(format!(
            "fields {} moved into oneof '{o}' in message '{msg}'",
            names.join(", ")
        ));
    }
}
