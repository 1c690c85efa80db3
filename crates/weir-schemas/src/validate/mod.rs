//! Validation on write: records of topics with `confluent.*.schema.validation`
//! on, and events appended to stream categories with validation turned on,
//! must carry (or name) a schema registered under their subject and match
//! it. [`Validator`] implements the broker's and the store's seams
//! (`weir_broker::RecordValidator`, `weir_store::EventValidator`).
//!
//! Kafka records use the registry's wire format: byte 0, the schema id
//! (4 bytes, big-endian), then for Protobuf the message indexes, then the
//! payload. The id must be live under the subject the topic's strategy
//! names, and the payload must match the schema: Avro data is walked by
//! the schema (every byte consumed), JSON parsed and validated, Protobuf
//! decoded as the indexed message. Null keys and values (tombstones) are
//! not checked.
//!
//! Events of a validated category `C` with type `T` are checked against
//! subject `C-T`. A JSON event is validated against the schema its
//! CloudEvents `dataschema` (in the event's metadata) names when that ends
//! in `/schemas/ids/<id>`, else the subject's latest version; an event in
//! another content type must carry the wire format.

mod avro;
mod categories;
mod json_doc;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use protox::prost_reflect::{DynamicMessage, MessageDescriptor};
use weir_broker::{BatchValidator, RecordPart, RecordValidator, SubjectStrategy};
use weir_store::{EventValidator, NewEvent};

use crate::registry::Registry;
use crate::types::{Parsed, json, protobuf::ProtoSchema};

pub use categories::CATEGORIES_MAX;

/// Most compiled schemas kept (ids are immutable, so the cache is never
/// stale; past this it starts over).
const COMPILED_MAX: usize = 1024;
/// Most Protobuf message indexes read.
const INDEXES_MAX: usize = 32;

/// A schema ready to check payloads.
enum Compiled {
    Avro {
        program: avro::Program,
        /// The full name, for the record name strategies.
        name: Option<String>,
    },
    Json {
        validator: Box<jsonschema::Validator<json_doc::Borrowed>>,
        /// The `title`, which Confluent's JSON serializers use as the
        /// record name.
        title: Option<String>,
    },
    Protobuf(Box<ProtoSchema>),
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Avro { .. } => "Compiled::Avro",
            Self::Json { .. } => "Compiled::Json",
            Self::Protobuf(_) => "Compiled::Protobuf",
        })
    }
}

impl Compiled {
    fn new(parsed: &Parsed) -> Result<Self, String> {
        Ok(match parsed {
            Parsed::Avro(schema) => Self::Avro {
                program: avro::Program::compile(schema)?,
                name: match schema.as_ref() {
                    apache_avro::Schema::Record(r) => Some(r.name.fullname(None)),
                    apache_avro::Schema::Enum(e) => Some(e.name.fullname(None)),
                    apache_avro::Schema::Fixed(f) => Some(f.name.fullname(None)),
                    _ => None,
                },
            },
            Parsed::Json(schema) => Self::Json {
                validator: Box::new(json::compile(schema).map_err(|e| e.to_string())?),
                title: schema
                    .root
                    .get("title")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned),
            },
            Parsed::Protobuf(schema) => Self::Protobuf(schema.clone()),
        })
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Avro { .. } => "AVRO",
            Self::Json { .. } => "JSON",
            Self::Protobuf(_) => "PROTOBUF",
        }
    }

    /// Checks what follows the wire format's header; returns the record
    /// name (for the record name strategies), if the schema has one.
    fn check(&self, payload: &[u8]) -> Result<Option<Cow<'_, str>>, String> {
        match self {
            Self::Avro { program, name } => program
                .check(payload)
                .map(|()| name.as_deref().map(Cow::Borrowed)),
            Self::Json { validator, title } => {
                check_json(validator, payload).map(|()| title.as_deref().map(Cow::Borrowed))
            }
            Self::Protobuf(schema) => {
                let (message, body) = indexed_message(schema, payload)?;
                DynamicMessage::decode(message.clone(), body)
                    .map_err(|e| format!("not a {}: {e}", message.full_name()))?;
                Ok(Some(Cow::Owned(message.full_name().to_owned())))
            }
        }
    }
}

fn check_json(
    validator: &jsonschema::Validator<json_doc::Borrowed>,
    payload: &[u8],
) -> Result<(), String> {
    let doc = json_doc::parse(payload).map_err(|e| format!("not JSON: {e}"))?;
    // The yes/no walk is the fast path; the first error only on a no.
    if validator.is_valid(&doc) {
        return Ok(());
    }
    validator.validate(&doc).map_err(|e| {
        let path = e.instance_path().as_str();
        let at = if path.is_empty() { "/" } else { path };
        format!("at '{at}': {e}")
    })
}

/// Reads Confluent's message indexes (a zig-zag varint count, then the
/// indexes; a count of 0 stands for the first message) and the message
/// they name.
fn indexed_message<'p>(
    schema: &ProtoSchema,
    payload: &'p [u8],
) -> Result<(MessageDescriptor, &'p [u8]), String> {
    let mut rest = payload;
    let mut varint = || -> Result<i64, String> {
        let mut value: u64 = 0;
        for (i, shift) in (0..64).step_by(7).enumerate() {
            let (&b, tail) = rest
                .split_first()
                .ok_or("the message indexes are cut short")?;
            rest = tail;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
            if i == 9 {
                break;
            }
        }
        Err("a message index is not a varint".to_owned())
    };
    let count = varint()?;
    let indexes: Vec<usize> = match count {
        0 => vec![0],
        n if n < 0 || n as usize > INDEXES_MAX => {
            return Err(format!("{n} message indexes (at most {INDEXES_MAX})"));
        }
        n => (0..n)
            .map(|_| {
                varint().and_then(|i| usize::try_from(i).map_err(|_| format!("message index {i}")))
            })
            .collect::<Result<_, _>>()?,
    };
    let message = schema
        .message_at(&indexes)
        .ok_or_else(|| format!("message indexes {indexes:?} name no message of the schema"))?;
    Ok((message, rest))
}

/// Splits the registry's wire format: byte 0, then the schema id.
fn wire_format(bytes: &[u8]) -> Result<(i32, &[u8]), String> {
    match bytes {
        [0, a, b, c, d, payload @ ..] => Ok((i32::from_be_bytes([*a, *b, *c, *d]), payload)),
        [first, ..] if *first != 0 => Err(format!(
            "it does not start with the schema registry's magic byte 0 but {first}, so it names no schema"
        )),
        _ => Err(format!(
            "{} bytes, fewer than the 5 of the schema registry's wire format",
            bytes.len()
        )),
    }
}

/// Checks records and events against the registry's schemas.
#[derive(Debug)]
pub struct Validator {
    registry: Arc<Registry>,
    compiled: RwLock<HashMap<i32, Arc<Compiled>>>,
}

impl Validator {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            compiled: RwLock::new(HashMap::new()),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn compiled(&self, id: i32) -> Result<Arc<Compiled>, String> {
        let cached = self.compiled.read().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached.get(&id) {
            return Ok(c.clone());
        }
        drop(cached);
        let parsed = {
            let state = self.registry.lock();
            if !state.schemas.contains_key(&id) {
                return Err(format!("schema id {id} is not in the registry"));
            }
            state
                .parsed(id, self.registry.limits.references_depth_max)
                .cloned()
                .ok_or_else(|| format!("schema {id} no longer parses (a reference is gone)"))?
        };
        let compiled = Arc::new(Compiled::new(&parsed)?);
        let mut cache = self.compiled.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= COMPILED_MAX {
            cache.clear();
        }
        cache.insert(id, compiled.clone());
        Ok(compiled)
    }

    /// Whether schema `id` is a live version of `subject`.
    fn is_live_in(&self, subject: &str, id: i32) -> bool {
        let state = self.registry.lock();
        state
            .subjects
            .get(subject)
            .is_some_and(|s| s.live().any(|(_, v)| v.id == id))
    }

    /// The id of the latest live version of `subject`.
    fn latest_id(&self, subject: &str) -> Option<i32> {
        let state = self.registry.lock();
        state
            .subjects
            .get(subject)
            .and_then(|s| s.latest_live())
            .map(|(_, v)| v.id)
    }

    /// Checks one record's key or value of `topic` (a one-off; produce
    /// goes through [`RecordValidator::batch`]).
    pub fn check_record(
        &self,
        topic: &str,
        part: RecordPart,
        strategy: SubjectStrategy,
        bytes: &[u8],
    ) -> Result<(), String> {
        self.batch(topic).check(part, strategy, bytes)
    }

    /// Checks one event to be appended to `stream`: nothing unless the
    /// stream's category has validation on.
    pub fn check_event(&self, stream: &str, event: &NewEvent) -> Result<(), String> {
        let Some(category) = weir_store::category_of(stream) else {
            return Ok(());
        };
        if !self.registry.is_category_validated(category) {
            return Ok(());
        }
        let subject = format!("{category}-{}", event.event_type);
        let json = event.content_type.split(';').next().is_some_and(|t| {
            let t = t.trim();
            t == "application/json" || t.ends_with("+json")
        });
        let (id, payload) = if json {
            let id = match dataschema_id(&event.metadata) {
                Some(id) => id,
                None => self.latest_id(&subject).ok_or_else(|| {
                    format!(
                        "category '{category}' is validated and subject '{subject}' has no schema"
                    )
                })?,
            };
            (id, event.data.as_slice())
        } else {
            wire_format(&event.data)
                .map_err(|e| format!("the data ({}): {e}", event.content_type))?
        };
        if !self.is_live_in(&subject, id) {
            return Err(format!(
                "schema id {id} (named by the event) is not registered under subject '{subject}'"
            ));
        }
        let compiled = self.compiled(id)?;
        let checked = match (json, compiled.as_ref()) {
            (true, Compiled::Json { validator, .. }) => check_json(validator, payload),
            (true, other) => {
                return Err(format!(
                    "subject '{subject}' holds a {} schema (id {id}); a JSON event needs a JSON Schema, or the data in the registry's wire format with a binary content type",
                    other.type_name()
                ));
            }
            (false, c) => c.check(payload).map(drop),
        };
        checked
            .map_err(|e| format!("the data does not match schema {id} of subject '{subject}': {e}"))
    }
}

/// The schema id a CloudEvents `dataschema` in JSON metadata names, when
/// it ends in `/schemas/ids/<id>`.
fn dataschema_id(metadata: &[u8]) -> Option<i32> {
    if metadata.is_empty() {
        return None;
    }
    let meta: serde_json::Value = serde_json::from_slice(metadata).ok()?;
    let uri = meta.get("dataschema")?.as_str()?;
    let (head, id) = uri.rsplit_once('/')?;
    head.ends_with("/schemas/ids")
        .then(|| id.parse().ok())
        .flatten()
}

impl EventValidator for Validator {
    fn check(&self, stream: &str, event: &NewEvent) -> Result<(), String> {
        self.check_event(stream, event)
    }
}

impl RecordValidator for Validator {
    fn batch<'a>(&'a self, topic: &'a str) -> Box<dyn BatchValidator + 'a> {
        Box::new(Batch {
            validator: self,
            topic,
            passed: Vec::new(),
        })
    }
}

/// The records of one produce: an (id, subject) pair found live is not
/// looked up again for the records after it.
struct Batch<'a> {
    validator: &'a Validator,
    topic: &'a str,
    passed: Vec<Passed>,
}

/// A schema id found live under the subject a part and strategy name
/// for it (with the record name the subject came from).
struct Passed {
    id: i32,
    part: RecordPart,
    strategy: SubjectStrategy,
    name: Option<String>,
    compiled: Arc<Compiled>,
}

impl Batch<'_> {
    fn subject(
        &self,
        part: RecordPart,
        strategy: SubjectStrategy,
        name: Option<&str>,
    ) -> Result<String, String> {
        let named = || {
            name.ok_or_else(|| {
                format!(
                    "the {} strategy needs a record name, and the schema has none",
                    match strategy {
                        SubjectStrategy::Record => "RecordNameStrategy",
                        _ => "TopicRecordNameStrategy",
                    }
                )
            })
        };
        Ok(match strategy {
            SubjectStrategy::Topic => format!("{}-{}", self.topic, part.name()),
            SubjectStrategy::Record => named()?.to_owned(),
            SubjectStrategy::TopicRecord => format!("{}-{}", self.topic, named()?),
        })
    }
}

impl BatchValidator for Batch<'_> {
    fn check(
        &mut self,
        part: RecordPart,
        strategy: SubjectStrategy,
        bytes: &[u8],
    ) -> Result<(), String> {
        let what = part.name();
        let (id, payload) = wire_format(bytes).map_err(|e| format!("the {what}: {e}"))?;
        let compiled = match self.passed.iter().find(|p| p.id == id) {
            Some(p) => p.compiled.clone(),
            None => self
                .validator
                .compiled(id)
                .map_err(|e| format!("the {what}: {e}"))?,
        };
        let name = compiled.check(payload).map_err(|e| {
            format!(
                "the {what} does not match schema {id} ({}): {e}",
                compiled.type_name()
            )
        })?;
        // The records after the first of a batch find their subject
        // checked already, without naming it again.
        let seen = self.passed.iter().any(|p| {
            p.id == id
                && p.part == part
                && p.strategy == strategy
                && p.name.as_deref() == name.as_deref()
        });
        if seen {
            return Ok(());
        }
        let subject = self.subject(part, strategy, name.as_deref())?;
        if !self.validator.is_live_in(&subject, id) {
            return Err(format!(
                "the {what}'s schema id {id} is not registered under subject '{subject}'"
            ));
        }
        let name = name.map(Cow::into_owned);
        self.passed.push(Passed {
            id,
            part,
            strategy,
            name,
            compiled,
        });
        Ok(())
    }
}
