//! A JSON document as `jsonschema` validates it on the produce path,
//! without `serde_json::Value`'s cost: strings and object keys borrow
//! from the record's bytes (unless escaped), objects are vectors of
//! members, so a document is a handful of allocations instead of one per
//! key, string and tree node. `jsonschema` takes any representation that
//! implements its `Json`, `Node`, `Object`, `Array` and `JsonNumber`
//! traits; this is one, and [`parse`] fills it through `serde_json`'s
//! parser.

use std::borrow::Cow;
use std::fmt;

use jsonschema::JsonType;
use jsonschema::json::{Array, Json, JsonNumber, Node, NodeIdentity, Object};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// One value of a parsed document.
#[derive(Debug, Default)]
pub(crate) enum Doc<'s> {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'s, str>),
    Array(Vec<Doc<'s>>),
    Object(Vec<(Cow<'s, str>, Doc<'s>)>),
}

/// Parses `bytes` as one JSON document.
pub(crate) fn parse(bytes: &[u8]) -> Result<Doc<'_>, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// The representation, for `jsonschema::options_for`.
pub(crate) struct Borrowed;

impl Json for Borrowed {
    type Node<'a> = &'a Doc<'a>;
    type PreparedKey = String;
    type StringBuffer = Doc<'static>;
    // Members are a vector: a scan beats nothing, so lookups stay.
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut Doc<'static>,
        string: &str,
        f: impl FnOnce(Self::Node<'_>) -> T,
    ) -> T {
        *buffer = Doc::String(Cow::Owned(string.to_owned()));
        f(buffer)
    }
}

/// A number of a document.
pub(crate) struct Num<'a>(&'a Number);

impl JsonNumber for Num<'_> {
    fn as_u64(&self) -> Option<u64> {
        self.0.as_u64()
    }

    fn as_i64(&self) -> Option<i64> {
        self.0.as_i64()
    }

    fn as_f64(&self) -> Option<f64> {
        self.0.as_f64()
    }

    fn as_str(&self) -> Cow<'_, str> {
        Cow::Owned(self.0.to_string())
    }

    fn to_number(&self) -> Cow<'_, Number> {
        Cow::Borrowed(self.0)
    }
}

impl<'a> Node<'a, Borrowed> for &'a Doc<'a> {
    type Object = &'a [(Cow<'a, str>, Doc<'a>)];
    type Array = &'a [Doc<'a>];
    type Number = Num<'a>;

    fn as_object(&self) -> Option<Self::Object> {
        match self {
            Doc::Object(members) => Some(members),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<Self::Array> {
        match self {
            Doc::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self {
            Doc::String(s) => Some(Cow::Borrowed(s.as_ref())),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<Num<'a>> {
        match self {
            Doc::Number(n) => Some(Num(n)),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self {
            Doc::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Doc::Null)
    }

    fn json_type(&self) -> JsonType {
        match self {
            Doc::Null => JsonType::Null,
            Doc::Bool(_) => JsonType::Boolean,
            Doc::Number(_) => JsonType::Number,
            Doc::String(_) => JsonType::String,
            Doc::Array(_) => JsonType::Array,
            Doc::Object(_) => JsonType::Object,
        }
    }

    // Cold paths only: error messages, `const`/`enum`, `uniqueItems`.
    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Number(n) => Value::Number(n.clone()),
            Doc::String(s) => Value::String(s.to_string()),
            Doc::Array(items) => {
                Value::Array(items.iter().map(|i| i.to_value().into_owned()).collect())
            }
            Doc::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value().into_owned()))
                    .collect(),
            ),
        })
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(
            std::ptr::from_ref::<Doc<'a>>(*self) as usize
        ))
    }
}

impl<'a> Object<'a, Borrowed> for &'a [(Cow<'a, str>, Doc<'a>)] {
    type Node = &'a Doc<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn get(&self, key: &String) -> Option<&'a Doc<'a>> {
        // The last of duplicate keys, as serde_json's map keeps.
        self.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn members(&self) -> Members<'a> {
        Members(self.iter())
    }
}

pub(crate) struct Members<'a>(std::slice::Iter<'a, (Cow<'a, str>, Doc<'a>)>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a Doc<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> Array<'a, Borrowed> for &'a [Doc<'a>] {
    type Node = &'a Doc<'a>;
    type ElementsIter = std::slice::Iter<'a, Doc<'a>>;

    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn elements(&self) -> Self::ElementsIter {
        self.iter()
    }
}

impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_none<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Doc<'de>, E> {
        Ok(Doc::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Doc<'de>, E> {
        Number::from_f64(n)
            .map(Doc::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(8).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            members.push((key.0, map.next_value()?));
        }
        Ok(Doc::Object(members))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'s>(Cow<'s, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same verdicts as `jsonschema` over `serde_json::Value`, on
    /// documents that exercise every accessor: types, integers written
    /// as floats, big numbers, escaped strings and keys, code-point
    /// lengths, `const`/`enum` of structures, `uniqueItems`,
    /// `propertyNames`, pattern and additional properties, `$ref`s.
    #[test]
    fn verdicts_match_serde_json_values() {
        let schemas = [
            serde_json::json!({"type": "object", "required": ["a"],
                "properties": {"a": {"type": "integer", "minimum": 2}, "b": {"type": "string", "minLength": 2, "maxLength": 3}},
                "additionalProperties": false}),
            serde_json::json!({"type": "array", "items": {"type": ["number", "null"]}, "uniqueItems": true, "maxItems": 4}),
            serde_json::json!({"enum": [{"x": [1, 2]}, "é", 3.5, null]}),
            serde_json::json!({"const": {"k\"q": [true, {"n": 1}]}}),
            serde_json::json!({"type": "object", "propertyNames": {"pattern": "^[a-z]+$"},
                "patternProperties": {"^x": {"type": "boolean"}}, "minProperties": 1}),
            serde_json::json!({"$defs": {"pos": {"type": "number", "exclusiveMinimum": 0}},
                "type": "object", "properties": {"p": {"$ref": "#/$defs/pos"}, "q": {"multipleOf": 0.5}}}),
            serde_json::json!({"oneOf": [{"type": "string"}, {"type": "integer"}], "not": {"const": 7}}),
        ];
        let docs = [
            r#"{"a": 2}"#,
            r#"{"a": 1}"#,
            r#"{"a": 2.0}"#,
            r#"{"a": 3, "b": "éé"}"#,
            r#"{"a": 3, "b": "ééé\u00e9"}"#,
            r#"{"a": 3, "c": 1}"#,
            r#"{"a": 3, "a": 1}"#,
            r#"[1, 2, null]"#,
            r#"[1, 1.0]"#,
            r#"[1, "x"]"#,
            r#"[1, 2, 3, 4, 5]"#,
            r#"{"x": [1, 2]}"#,
            r#"{"x": [2, 1]}"#,
            r#""\u00e9""#,
            r#"3.5"#,
            r#"null"#,
            r#"{"k\"q": [true, {"n": 1}]}"#,
            r#"{"k\"q": [true, {"n": 1.0}]}"#,
            r#"{"abc": 1}"#,
            r#"{"Abc": 1}"#,
            r#"{"xy": true}"#,
            r#"{"xy": 1}"#,
            r#"{}"#,
            r#"{"p": 1e-3, "q": 1.5}"#,
            r#"{"p": 0, "q": 1}"#,
            r#"{"q": 0.25}"#,
            r#""s""#,
            r#"7"#,
            r#"8"#,
            r#"18446744073709551615"#,
            r#"-9223372036854775808"#,
            r#"{"esc\u0061pe": "t\nab"}"#,
        ];
        let mut compared = 0;
        for schema in &schemas {
            let ours = jsonschema::options_for::<Borrowed>().build(schema).unwrap();
            let theirs = jsonschema::validator_for(schema).unwrap();
            for text in docs {
                let value: Value = serde_json::from_str(text).unwrap();
                let doc = parse(text.as_bytes()).unwrap();
                let verdict = ours.is_valid(&doc);
                assert_eq!(verdict, theirs.is_valid(&value), "{schema} on {text}");
                assert_eq!(ours.validate(&doc).is_ok(), verdict, "{schema} on {text}");
                compared += 1;
            }
        }
        assert_eq!(compared, schemas.len() * docs.len());
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let doc = parse(br#"{"plain": "text", "esc\"aped": "a\tb"}"#).unwrap();
        let Doc::Object(members) = doc else {
            panic!("an object")
        };
        assert!(matches!(&members[0].0, Cow::Borrowed("plain")));
        assert!(matches!(&members[0].1, Doc::String(Cow::Borrowed("text"))));
        assert!(matches!(&members[1].0, Cow::Owned(k) if k == "esc\"aped"));
        assert!(parse(b"{\"a\": }").is_err());
        assert!(parse(b"[1, 2").is_err());
    }
}
