//! JSON Schema: parsed with `serde_json` and compiled by `jsonschema`
//! (which checks it against its draft's meta-schema; `$ref`s to other
//! subjects resolve through the schema's references only, never the
//! network or the file system), and checked for compatibility by walking
//! reader and writer side by side, in the manner of Confluent's JSON Schema
//! rules: can every document the writer accepts be accepted by the reader?
//!
//! Rules covered (each reported change names its JSON path):
//! - `type`: the reader must allow every type the writer allows (integer
//!   widens to number); narrowing, changing, or adding a type where the
//!   writer had none is incompatible.
//! - Objects, by content model (`additionalProperties` absent or true is
//!   open, false is closed, a schema is partially open):
//!   a property the writer has and the reader lacks is fine under an open
//!   reader, incompatible under a closed one, and checked against a
//!   partially open reader's `additionalProperties` schema; a property the
//!   reader adds is fine against a closed writer, incompatible against an
//!   open one unless its schema accepts anything (`{}` or `true`), and
//!   checked against a partially open writer's schema; a newly required
//!   property is incompatible; narrowing `additionalProperties` (open →
//!   schema or false, schema → false) is incompatible; properties in both
//!   are compared recursively; `minProperties`/`maxProperties` must not
//!   tighten.
//! - `enum` and `const`: the reader's values must include the writer's;
//!   adding either where the writer had none is incompatible.
//! - Strings: `maxLength`/`minLength` must not tighten; a `pattern` added or
//!   changed is incompatible.
//! - Numbers: `maximum`, `exclusiveMaximum`, `minimum`, `exclusiveMinimum`
//!   must not tighten; `multipleOf` added or not dividing the writer's is
//!   incompatible.
//! - Arrays: `items` (one schema, or tuple form by position) compared
//!   recursively; `maxItems`/`minItems` must not tighten; `uniqueItems`
//!   added is incompatible.
//! - `oneOf`/`anyOf`: every writer alternative must be readable by some
//!   reader alternative (a plain writer by some alternative of a combined
//!   reader).
//! - `$ref`: local (`#/definitions/..`, `#/$defs/..`) and to referenced
//!   subjects' schemas, followed to a fixed depth.
//!
//! Not analysed (a change to them is reported as incompatible, so the
//! registry errs on refusing): `allOf`, `not`, `if`/`then`/`else`,
//! `patternProperties`, `dependencies`/`dependentRequired`/
//! `dependentSchemas`, `propertyNames`, `contains`, `additionalItems`,
//! `format`. Confluent's finer cases not covered: sum/product type
//! reasoning across combinators, `format` widening.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::error::SchemaError;

/// A parsed JSON Schema with the referenced subjects' schemas by name.
#[derive(Debug, Clone)]
pub(crate) struct JsonSchema {
    pub root: Value,
    pub references: BTreeMap<String, Value>,
}

/// How far `$ref`s are followed before the walk gives up (and reports).
const REF_DEPTH_MAX: usize = 32;

/// Keywords this checker does not reason about: any difference in them is
/// reported as a possibly breaking change.
const UNANALYSED: [&str; 13] = [
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "propertyNames",
    "contains",
    "additionalItems",
    "format",
];

struct MapRetriever(BTreeMap<String, Value>);

impl jsonschema::Retrieve for MapRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        lookup(&self.0, uri.as_str()).cloned().ok_or_else(|| {
            format!("'{}' is not among the schema's references", uri.as_str()).into()
        })
    }
}

/// The referenced schema a `$ref` URL (without fragment) names: the
/// reference whose name it is or ends with.
fn lookup<'a>(refs: &'a BTreeMap<String, Value>, url: &str) -> Option<&'a Value> {
    let url = url.split('#').next().unwrap_or(url);
    refs.get(url).or_else(|| {
        refs.iter()
            .find(|(name, _)| {
                url.ends_with(&format!("/{name}")) || name.ends_with(&format!("/{url}"))
            })
            .map(|(_, v)| v)
    })
}

/// A validator of documents in representation `F` for `schema`, its
/// references resolved.
pub(crate) fn compile<F: jsonschema::json::Json>(
    schema: &JsonSchema,
) -> Result<jsonschema::Validator<F>, SchemaError> {
    jsonschema::options_for::<F>()
        .with_retriever(MapRetriever(schema.references.clone()))
        .build(&schema.root)
        .map_err(|e| SchemaError::InvalidSchema(format!("JSON Schema: {e}")))
}

/// Parses and compiles `text`; `references` are (name, text) pairs.
pub(crate) fn parse(
    text: &str,
    references: &[(String, String)],
) -> Result<JsonSchema, SchemaError> {
    let invalid = |e: String| SchemaError::InvalidSchema(format!("JSON Schema: {e}"));
    let root: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if !root.is_object() && !root.is_boolean() {
        return Err(invalid("a schema is an object or a boolean".to_owned()));
    }
    let mut refs = BTreeMap::new();
    for (name, text) in references {
        let v: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("reference '{name}': {e}")))?;
        refs.insert(name.clone(), v);
    }
    jsonschema::options()
        .with_retriever(MapRetriever(refs.clone()))
        .build(&root)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(JsonSchema {
        root,
        references: refs,
    })
}

/// Why `reader` would refuse some document `writer` accepts.
pub(crate) fn incompatibilities(reader: &JsonSchema, writer: &JsonSchema, out: &mut Vec<String>) {
    let cx = Cx { reader, writer };
    cx.check(&reader.root, &writer.root, "#", 0, out);
}

struct Cx<'a> {
    reader: &'a JsonSchema,
    writer: &'a JsonSchema,
}

/// An object's content model.
enum Content<'a> {
    Open,
    Closed,
    Partial(&'a Value),
}

fn content(s: &Value) -> Content<'_> {
    match s.get("additionalProperties") {
        None | Some(Value::Bool(true)) => Content::Open,
        Some(Value::Bool(false)) => Content::Closed,
        Some(v) if v.as_object().is_some_and(|o| o.is_empty()) => Content::Open,
        Some(v) => Content::Partial(v),
    }
}

/// Whether `s` accepts every document (`true`, `{}`).
fn accepts_all(s: &Value) -> bool {
    matches!(s, Value::Bool(true)) || s.as_object().is_some_and(|o| o.is_empty())
}

fn types(s: &Value) -> Option<BTreeSet<String>> {
    match s.get("type")? {
        Value::String(t) => Some(BTreeSet::from([t.clone()])),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

fn num(s: &Value, key: &str) -> Option<f64> {
    s.get(key).and_then(Value::as_f64)
}

fn list(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

impl Cx<'_> {
    /// Follows `$ref` at `s` (on the reader's side or the writer's).
    fn resolve<'v>(
        &'v self,
        mut s: &'v Value,
        reader: bool,
        depth: &mut usize,
    ) -> Option<&'v Value> {
        let side = if reader { self.reader } else { self.writer };
        let mut doc = &side.root;
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            *depth += 1;
            if *depth > REF_DEPTH_MAX {
                return None;
            }
            let (url, fragment) = r.split_once('#').unwrap_or((r, ""));
            if !url.is_empty() {
                doc = lookup(&side.references, url)?;
            }
            s = if fragment.is_empty() {
                doc
            } else {
                doc.pointer(fragment)?
            };
        }
        Some(s)
    }

    fn check(&self, r: &Value, w: &Value, path: &str, mut depth: usize, out: &mut Vec<String>) {
        let (Some(r), Some(w)) = (
            self.resolve(r, true, &mut depth),
            self.resolve(w, false, &mut depth),
        ) else {
            out.push(format!(
                "a $ref at {path} does not resolve within {REF_DEPTH_MAX} steps"
            ));
            return;
        };
        if accepts_all(r) || matches!(w, Value::Bool(false)) || r == w && self.same_refs() {
            return;
        }
        if matches!(r, Value::Bool(false)) {
            out.push(format!("the reader accepts nothing at {path}"));
            return;
        }
        if matches!(w, Value::Bool(true)) {
            out.push(format!(
                "the writer accepts anything at {path} but the reader constrains it"
            ));
            return;
        }
        for key in UNANALYSED {
            if r.get(key).is_some() && r.get(key) != w.get(key) {
                out.push(format!(
                    "'{key}' changed at {path} (not analysed, so taken as breaking)"
                ));
            }
        }
        if self.combined(r, w, path, depth, out) {
            return;
        }
        self.check_type(r, w, path, out);
        self.check_values(r, w, path, out);
        self.check_bounds(r, w, path, out);
        self.check_object(r, w, path, depth, out);
        self.check_array(r, w, path, depth, out);
    }

    /// Whether the two sides' external references are the same documents
    /// (so equal text means equal meaning).
    fn same_refs(&self) -> bool {
        self.reader.references == self.writer.references
    }

    /// `oneOf`/`anyOf`; true when it decided the node.
    fn combined(
        &self,
        r: &Value,
        w: &Value,
        path: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) -> bool {
        let alts = |s: &Value| -> Option<(&'static str, Vec<Value>)> {
            for key in ["oneOf", "anyOf"] {
                if let Some(Value::Array(a)) = s.get(key) {
                    return Some((key, a.clone()));
                }
            }
            None
        };
        let readable_by_some = |rs: &[Value], wa: &Value, p: &str| {
            rs.iter().any(|ra| {
                let mut o = Vec::new();
                self.check(ra, wa, p, depth + 1, &mut o);
                o.is_empty()
            })
        };
        match (alts(r), alts(w)) {
            (Some((rk, ra)), Some((wk, wa))) => {
                for (i, a) in wa.iter().enumerate() {
                    if !readable_by_some(&ra, a, &format!("{path}/{wk}/{i}")) {
                        out.push(format!("the writer's alternative {path}/{wk}/{i} is not readable by any of the reader's {rk} alternatives"));
                    }
                }
                true
            }
            (Some((rk, ra)), None) => {
                if !readable_by_some(&ra, w, path) {
                    out.push(format!("the writer's schema at {path} is not readable by any of the reader's {rk} alternatives"));
                }
                true
            }
            (None, Some((wk, wa))) => {
                for (i, a) in wa.iter().enumerate() {
                    self.check(r, a, &format!("{path}/{wk}/{i}"), depth + 1, out);
                }
                true
            }
            (None, None) => false,
        }
    }

    fn check_type(&self, r: &Value, w: &Value, path: &str, out: &mut Vec<String>) {
        let Some(rt) = types(r) else { return };
        let Some(wt) = types(w) else {
            out.push(format!(
                "type narrowed at {path}: the writer allows any type, the reader only {}",
                list(&rt)
            ));
            return;
        };
        let lost: BTreeSet<String> = wt
            .iter()
            .filter(|t| !(rt.contains(*t) || *t == "integer" && rt.contains("number")))
            .cloned()
            .collect();
        if !lost.is_empty() {
            out.push(format!(
                "type changed from {} to {} at {path}",
                list(&wt),
                list(&rt)
            ));
        }
    }

    fn check_values(&self, r: &Value, w: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(Value::Array(re)) = r.get("enum") {
            match (w.get("enum"), w.get("const")) {
                (Some(Value::Array(we)), _) => {
                    for v in we.iter().filter(|v| !re.contains(v)) {
                        out.push(format!("enum value {v} removed at {path}/enum"));
                    }
                }
                (_, Some(c)) if re.contains(c) => {}
                _ => out.push(format!("enum added at {path}/enum")),
            }
        }
        if let Some(rc) = r.get("const")
            && w.get("const") != Some(rc)
            && !w
                .get("enum")
                .and_then(Value::as_array)
                .is_some_and(|e| e == std::slice::from_ref(rc))
        {
            out.push(format!("const {rc} added or changed at {path}/const"));
        }
    }

    fn check_bounds(&self, r: &Value, w: &Value, path: &str, out: &mut Vec<String>) {
        // (keyword, whether a larger reader bound is the looser one)
        const BOUNDS: [(&str, bool); 10] = [
            ("maxLength", true),
            ("minLength", false),
            ("maximum", true),
            ("exclusiveMaximum", true),
            ("minimum", false),
            ("exclusiveMinimum", false),
            ("maxItems", true),
            ("minItems", false),
            ("maxProperties", true),
            ("minProperties", false),
        ];
        for (key, upper) in BOUNDS {
            let Some(rb) = num(r, key) else { continue };
            match num(w, key) {
                None => out.push(format!("{key} {rb} added at {path}/{key}")),
                Some(wb) if (upper && rb < wb) || (!upper && rb > wb) => {
                    out.push(format!("{key} tightened from {wb} to {rb} at {path}/{key}"))
                }
                Some(_) => {}
            }
        }
        if let Some(rp) = r.get("pattern")
            && w.get("pattern") != Some(rp)
        {
            out.push(format!("pattern {rp} added or changed at {path}/pattern"));
        }
        if let Some(rm) = num(r, "multipleOf") {
            let divides = num(w, "multipleOf").is_some_and(|wm| (wm / rm).fract() == 0.0);
            if !divides {
                out.push(format!(
                    "multipleOf {rm} added or changed at {path}/multipleOf"
                ));
            }
        }
        if r.get("uniqueItems") == Some(&Value::Bool(true))
            && w.get("uniqueItems") != Some(&Value::Bool(true))
        {
            out.push(format!("uniqueItems added at {path}/uniqueItems"));
        }
    }

    fn check_object(&self, r: &Value, w: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
        let empty = serde_json::Map::new();
        let rp = r
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let wp = w
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let (rc, wc) = (content(r), content(w));
        for (name, ws) in wp {
            let p = format!("{path}/properties/{name}");
            match (rp.get(name), &rc) {
                (Some(rs), _) => self.check(rs, ws, &p, depth + 1, out),
                (None, Content::Open) => {}
                (None, Content::Closed) => out.push(format!(
                    "property '{name}' removed from a closed content model at {p}"
                )),
                (None, Content::Partial(ra)) => self.check(ra, ws, &p, depth + 1, out),
            }
        }
        for (name, rs) in rp.iter().filter(|(n, _)| !wp.contains_key(*n)) {
            let p = format!("{path}/properties/{name}");
            match &wc {
                Content::Closed => {}
                Content::Open if accepts_all(rs) => {}
                Content::Open => out.push(format!(
                    "property '{name}' added to an open content model at {p}"
                )),
                Content::Partial(wa) => self.check(rs, wa, &p, depth + 1, out),
            }
        }
        let required = |s: &Value| -> BTreeSet<String> {
            s.get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let wr = required(w);
        for name in required(r).difference(&wr) {
            out.push(format!(
                "required property '{name}' added at {path}/required"
            ));
        }
        match (&rc, &wc) {
            (Content::Closed, Content::Open | Content::Partial(_)) => out.push(format!(
                "additionalProperties narrowed to false at {path}/additionalProperties"
            )),
            (Content::Partial(_), Content::Open) => out.push(format!(
                "additionalProperties narrowed at {path}/additionalProperties"
            )),
            (Content::Partial(ra), Content::Partial(wa)) => self.check(
                ra,
                wa,
                &format!("{path}/additionalProperties"),
                depth + 1,
                out,
            ),
            _ => {}
        }
    }

    fn check_array(&self, r: &Value, w: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
        match (r.get("items"), w.get("items")) {
            (Some(Value::Array(ri)), Some(Value::Array(wi))) => {
                for (i, (ra, wa)) in ri.iter().zip(wi).enumerate() {
                    self.check(ra, wa, &format!("{path}/items/{i}"), depth + 1, out);
                }
            }
            (Some(ri), Some(wi)) if !ri.is_array() && !wi.is_array() => {
                self.check(ri, wi, &format!("{path}/items"), depth + 1, out)
            }
            (Some(ri), None) if !accepts_all(ri) => {
                out.push(format!("items constrained at {path}/items"))
            }
            (Some(ri), Some(wi)) if ri != wi => out.push(format!(
                "items changed between tuple and list form at {path}/items"
            )),
            _ => {}
        }
    }
}
