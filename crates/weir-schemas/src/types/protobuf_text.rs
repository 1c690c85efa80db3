//! Protobuf schemas as Confluent's clients send and ask for them: a
//! base64-encoded `FileDescriptorProto` (the Python and Go serializers
//! register that way, and their deserializers ask for
//! `format=serialized`). A registration in that form is printed back to
//! `.proto` text, which is what the registry keeps and compares (so the
//! same schema sent as text or as a descriptor is one schema); a read
//! with `format=serialized` compiles the text and encodes its descriptor.
//! Printed: syntax, package, imports, messages (nested, with fields,
//! labels, `optional` in proto3, `oneof`s, `map<K, V>` fields, proto2
//! defaults, reserved ranges and names), enums and services; options are
//! left out (they change no wire format the registry judges).

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use protox::prost_reflect::prost::Message as _;
use protox::prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
use protox::prost_reflect::prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto,
};

use crate::error::SchemaError;

/// The `.proto` text of `text` when it is a base64-encoded
/// `FileDescriptorProto`; `None` when it is not one (it is then taken
/// as text).
pub(crate) fn text_of_serialized(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.contains([' ', '\n', ';', '{']) {
        return None;
    }
    let bytes = B64.decode(trimmed).ok()?;
    let file = FileDescriptorProto::decode(bytes.as_slice()).ok()?;
    // A descriptor names at least one message, enum or service.
    if file.message_type.is_empty() && file.enum_type.is_empty() && file.service.is_empty() {
        return None;
    }
    Some(print_file(&file))
}

/// `file` encoded and base64-encoded, Confluent's `serialized` format.
pub(crate) fn serialized(file: &FileDescriptorProto) -> String {
    B64.encode(file.encode_to_vec())
}

/// Checks that `text_of_serialized`'s output compiles, for a clear error
/// naming the form it came in.
pub(crate) fn invalid(e: impl std::fmt::Display) -> SchemaError {
    SchemaError::InvalidSchema(format!("Protobuf (from a serialized descriptor): {e}"))
}

fn print_file(file: &FileDescriptorProto) -> String {
    let mut out = String::new();
    let syntax = match file.syntax() {
        "" => "proto2",
        s => s,
    };
    let _ = writeln!(out, "syntax = \"{syntax}\";");
    if !file.package().is_empty() {
        let _ = writeln!(out, "package {};", file.package());
    }
    for (i, dep) in file.dependency.iter().enumerate() {
        let public = if file.public_dependency.contains(&(i as i32)) {
            "public "
        } else {
            ""
        };
        let _ = writeln!(out, "import {public}\"{dep}\";");
    }
    let proto3 = syntax == "proto3";
    for m in &file.message_type {
        print_message(&mut out, m, 0, proto3);
    }
    for e in &file.enum_type {
        print_enum(&mut out, e, 0);
    }
    for s in &file.service {
        print_service(&mut out, s);
    }
    out
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn scalar(t: Type) -> &'static str {
    match t {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => "",
    }
}

fn type_name(f: &FieldDescriptorProto) -> String {
    match f.r#type() {
        Type::Message | Type::Enum | Type::Group => f.type_name().to_owned(),
        t => scalar(t).to_owned(),
    }
}

/// The map entry message a field's type names, if it is one of `m`'s.
fn map_entry<'m>(m: &'m DescriptorProto, f: &FieldDescriptorProto) -> Option<&'m DescriptorProto> {
    if f.label() != Label::Repeated || f.r#type() != Type::Message {
        return None;
    }
    let short = f.type_name().rsplit('.').next()?;
    m.nested_type
        .iter()
        .find(|n| n.name() == short && n.options.as_ref().is_some_and(|o| o.map_entry()))
}

fn print_field(
    out: &mut String,
    m: &DescriptorProto,
    f: &FieldDescriptorProto,
    depth: usize,
    proto3: bool,
    in_oneof: bool,
) {
    indent(out, depth);
    if let Some(entry) = map_entry(m, f) {
        let kv: Vec<String> = entry.field.iter().map(type_name).collect();
        if let [k, v] = kv.as_slice() {
            let _ = writeln!(out, "map<{k}, {v}> {} = {};", f.name(), f.number());
            return;
        }
    }
    let label = match f.label() {
        _ if in_oneof => "",
        Label::Repeated => "repeated ",
        Label::Required => "required ",
        Label::Optional if !proto3 || f.proto3_optional() => "optional ",
        Label::Optional => "",
    };
    let _ = write!(out, "{label}{} {} = {}", type_name(f), f.name(), f.number());
    if f.default_value.is_some() && !proto3 {
        let value = f.default_value();
        let value = match f.r#type() {
            Type::String => format!("\"{}\"", value.escape_default()),
            Type::Bytes => format!("\"{value}\""),
            _ => value.to_owned(),
        };
        let _ = write!(out, " [default = {value}]");
    }
    out.push_str(";\n");
}

fn print_message(out: &mut String, m: &DescriptorProto, depth: usize, proto3: bool) {
    indent(out, depth);
    let _ = writeln!(out, "message {} {{", m.name());
    // Fields in declaration order; a real oneof's fields together, where
    // its first field stood.
    let mut printed_oneofs = Vec::new();
    for f in &m.field {
        match f.oneof_index {
            Some(i) if !f.proto3_optional() => {
                if printed_oneofs.contains(&i) {
                    continue;
                }
                printed_oneofs.push(i);
                let name = m.oneof_decl.get(i as usize).map_or("", |o| o.name());
                indent(out, depth + 1);
                let _ = writeln!(out, "oneof {name} {{");
                for g in m.field.iter().filter(|g| g.oneof_index == Some(i)) {
                    print_field(out, m, g, depth + 2, proto3, true);
                }
                indent(out, depth + 1);
                out.push_str("}\n");
            }
            _ => print_field(out, m, f, depth + 1, proto3, false),
        }
    }
    for n in &m.nested_type {
        if n.options.as_ref().is_some_and(|o| o.map_entry()) {
            continue;
        }
        print_message(out, n, depth + 1, proto3);
    }
    for e in &m.enum_type {
        print_enum(out, e, depth + 1);
    }
    for r in &m.reserved_range {
        indent(out, depth + 1);
        // Descriptor ranges are end-exclusive.
        let _ = writeln!(out, "reserved {} to {};", r.start(), r.end() - 1);
    }
    for name in &m.reserved_name {
        indent(out, depth + 1);
        let _ = writeln!(out, "reserved \"{name}\";");
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn print_enum(out: &mut String, e: &EnumDescriptorProto, depth: usize) {
    indent(out, depth);
    let _ = writeln!(out, "enum {} {{", e.name());
    for v in &e.value {
        indent(out, depth + 1);
        let _ = writeln!(out, "{} = {};", v.name(), v.number());
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn print_service(out: &mut String, s: &ServiceDescriptorProto) {
    let _ = writeln!(out, "service {} {{", s.name());
    for m in &s.method {
        let stream = |b: bool| if b { "stream " } else { "" };
        let _ = writeln!(
            out,
            "  rpc {}({}{}) returns ({}{});",
            m.name(),
            stream(m.client_streaming()),
            m.input_type(),
            stream(m.server_streaming()),
            m.output_type()
        );
    }
    out.push_str("}\n");
}
