//! Event types bound to registered schemas. An event type declares the
//! JSON Schema of each of its versions ([`EventSchemas`]); binding it to a
//! stream category ([`Client::bind`]) registers each under the subject
//! `<category>-<type>` and remembers the ids, and from then on every event
//! of that type and version this client appends to a stream of the
//! category carries `dataschema: /schemas/ids/<id>`, which the store's
//! validation on write checks it against (without a `dataschema` it uses
//! the subject's latest version).
//!
//! [`Schemas`] is the registry itself: embedded (a `weir_schemas::Registry`
//! on the data directory's broker, the `__schemas` topic) or the REST API
//! of a `weir serve` (Confluent's paths at the root of its HTTP address).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use weir_schemas::{
    CompatibilityLevel, CompatibilityReport, Reference, Registration, SchemaDef, SchemaError,
    SchemaType, SubjectVersion, VersionSpec,
};

use crate::{Client, Envelope, Error, Event, EventType};

/// Most (category, type, version) bindings one client keeps.
pub const BINDINGS_MAX: usize = 10_000;

/// The prefix of a `dataschema` naming a registered schema by id.
pub const DATASCHEMA_IDS_PREFIX: &str = "/schemas/ids/";

/// The subject the schemas of events of type `event_type` in streams of
/// `category` are registered under: `<category>-<type>`.
pub fn subject_of(category: &str, event_type: &str) -> String {
    format!("{category}-{event_type}")
}

/// The `dataschema` naming the registered schema `id`.
pub fn dataschema_of(id: i32) -> String {
    format!("{DATASCHEMA_IDS_PREFIX}{id}")
}

/// The schema id a `dataschema` names, if it ends in `/schemas/ids/<id>`
/// (a bare path or a full URL of the registry).
pub fn schema_id_of(dataschema: &str) -> Option<i32> {
    let (_, id) = dataschema.rsplit_once(DATASCHEMA_IDS_PREFIX)?;
    id.parse().ok().filter(|id| *id >= 0)
}

/// An event type whose versions have JSON Schemas.
pub trait EventSchemas: Event {
    /// The JSON Schema of the data of `event_type` (one of
    /// [`Event::TYPES`]); `None` leaves that type and version unbound.
    fn json_schema(event_type: EventType) -> Option<serde_json::Value>;
}

/// One event type version bound to a registered schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub category: String,
    pub event_type: EventType,
    pub subject: String,
    /// The schema's global id.
    pub id: i32,
    /// Its version in the subject.
    pub subject_version: i32,
}

/// The bindings a client keeps: (category, type, version) to schema id.
#[derive(Debug, Default)]
pub(crate) struct Bindings(RwLock<HashMap<(String, String, u32), i32>>);

impl Bindings {
    fn get(&self, category: &str, event_type: &str, version: u32) -> Option<i32> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return None;
        }
        map.get(&(category.to_owned(), event_type.to_owned(), version))
            .copied()
    }
}

/// A schema registry: embedded, or a server's REST API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Schemas {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Embedded(Arc<weir_schemas::Registry>),
    Remote(weir_client::Client),
}

fn schema_error(subject: &str, e: SchemaError) -> Error {
    Error::Schema {
        subject: subject.to_owned(),
        code: e.error_code(),
        reason: e.to_string(),
    }
}

fn client_error(subject: &str, e: weir_client::ClientError) -> Error {
    let (code, reason) = match &e {
        weir_client::ClientError::Problem(p) => (p.code.parse().unwrap_or(0), p.detail.clone()),
        other => (0, other.to_string()),
    };
    Error::Schema {
        subject: subject.to_owned(),
        code,
        reason,
    }
}

fn type_name(t: SchemaType) -> &'static str {
    t.as_str()
}

fn parse_type(subject: &str, t: Option<&str>) -> Result<SchemaType, Error> {
    match t.unwrap_or("AVRO") {
        "AVRO" => Ok(SchemaType::Avro),
        "JSON" => Ok(SchemaType::Json),
        "PROTOBUF" => Ok(SchemaType::Protobuf),
        other => Err(Error::Schema {
            subject: subject.to_owned(),
            code: 0,
            reason: format!("unknown schema type {other:?}"),
        }),
    }
}

fn body_of(def: &SchemaDef) -> weir_client::SchemaBody {
    weir_client::SchemaBody {
        schema: def.schema.clone(),
        schema_type: Some(type_name(def.schema_type).to_owned()),
        references: def
            .references
            .iter()
            .map(|r| weir_client::SchemaReference {
                name: r.name.clone(),
                subject: r.subject.clone(),
                version: r.version,
            })
            .collect(),
    }
}

fn def_of(
    subject: &str,
    t: Option<&str>,
    schema: String,
    refs: Vec<weir_client::SchemaReference>,
) -> Result<SchemaDef, Error> {
    Ok(
        SchemaDef::new(parse_type(subject, t)?, schema).with_references(
            refs.into_iter()
                .map(|r| Reference {
                    name: r.name,
                    subject: r.subject,
                    version: r.version,
                })
                .collect(),
        ),
    )
}

fn spec_text(spec: VersionSpec) -> String {
    match spec {
        VersionSpec::Latest => "latest".to_owned(),
        VersionSpec::Number(n) => n.to_string(),
    }
}

impl Schemas {
    /// The registry `registry`, in this process.
    pub fn embedded(registry: Arc<weir_schemas::Registry>) -> Self {
        Self {
            inner: Inner::Embedded(registry),
        }
    }

    /// The registry of the server `http` talks to.
    pub fn remote(http: weir_client::Client) -> Self {
        Self {
            inner: Inner::Remote(http),
        }
    }

    /// Registers `def` under `subject` (checked against the subject's
    /// compatibility level); the same schema again returns its id.
    pub fn register(&self, subject: &str, def: &SchemaDef) -> Result<Registration, Error> {
        match &self.inner {
            Inner::Embedded(r) => r
                .register(subject, def, Default::default())
                .map_err(|e| schema_error(subject, e)),
            Inner::Remote(http) => {
                let done = http
                    .register_schema(subject, &body_of(def))
                    .map_err(|e| client_error(subject, e))?;
                let version = match done.version {
                    Some(v) => v,
                    // A registry answering the id alone: its version is
                    // the one the lookup of the same schema names.
                    None => self.subject_version(subject, VersionSpec::Latest)?.version,
                };
                Ok(Registration {
                    id: done.id,
                    version,
                })
            }
        }
    }

    /// Version `spec` of `subject`.
    pub fn subject_version(
        &self,
        subject: &str,
        spec: VersionSpec,
    ) -> Result<SubjectVersion, Error> {
        match &self.inner {
            Inner::Embedded(r) => r
                .subject_version(subject, spec, false)
                .map_err(|e| schema_error(subject, e)),
            Inner::Remote(http) => {
                let s = http
                    .subject_schema(subject, &spec_text(spec))
                    .map_err(|e| client_error(subject, e))?;
                Ok(SubjectVersion {
                    schema: def_of(subject, s.schema_type.as_deref(), s.schema, s.references)?,
                    subject: s.subject,
                    version: s.version,
                    id: s.id,
                    deleted: false,
                })
            }
        }
    }

    /// The schema with global id `id`.
    pub fn schema_by_id(&self, id: i32) -> Result<SchemaDef, Error> {
        let what = format!("(schema id {id})");
        match &self.inner {
            Inner::Embedded(r) => r.schema_by_id(id).map_err(|e| schema_error(&what, e)),
            Inner::Remote(http) => {
                let s = http.schema_by_id(id).map_err(|e| client_error(&what, e))?;
                def_of(&what, s.schema_type.as_deref(), s.schema, s.references)
            }
        }
    }

    /// Tests `def` against `subject`: against version `version` if given,
    /// else against what the subject's level checks.
    pub fn test_compatibility(
        &self,
        subject: &str,
        def: &SchemaDef,
        version: Option<VersionSpec>,
    ) -> Result<CompatibilityReport, Error> {
        match &self.inner {
            Inner::Embedded(r) => r
                .test_compatibility(subject, def, version)
                .map_err(|e| schema_error(subject, e)),
            Inner::Remote(http) => {
                let v = version.map(spec_text);
                let a = http
                    .test_schema_compatibility(subject, v.as_deref(), &body_of(def))
                    .map_err(|e| client_error(subject, e))?;
                Ok(CompatibilityReport {
                    is_compatible: a.is_compatible,
                    messages: a.messages,
                })
            }
        }
    }

    /// Sets `subject`'s compatibility level (e.g. NONE before binding a
    /// version whose shape breaks with the last, read through upcasters).
    pub fn set_compatibility(&self, subject: &str, level: CompatibilityLevel) -> Result<(), Error> {
        match &self.inner {
            Inner::Embedded(r) => r
                .set_compatibility(Some(subject), level)
                .map(|_| ())
                .map_err(|e| schema_error(subject, e)),
            Inner::Remote(http) => http
                .set_schema_compatibility(subject, level.as_str())
                .map_err(|e| client_error(subject, e)),
        }
    }
}

impl Schemas {
    /// Turns validation on write of stream category `category` on or off:
    /// while on, every event appended to a stream `<category>-…` must
    /// match the schema of subject `<category>-<type>` (the one its
    /// `dataschema` names, else the latest), or the append is refused
    /// with [`weir_store::StoreError::SchemaRefused`].
    pub fn set_category_validation(&self, category: &str, enabled: bool) -> Result<(), Error> {
        match &self.inner {
            Inner::Embedded(r) => r
                .set_category_validation(category, enabled)
                .map_err(|e| schema_error(category, e)),
            Inner::Remote(http) => http
                .set_category_validation(category, enabled)
                .map_err(|e| client_error(category, e)),
        }
    }
}

impl Client {
    /// The schema registry of this client's store: embedded (opened on
    /// the data directory on first use) or the server's.
    pub fn schemas(&self) -> Result<Schemas, Error> {
        self.backend().schemas()
    }

    /// Binds `E`'s event types to `category`: registers the JSON Schema
    /// of each type and version `E` declares under `<category>-<type>`
    /// (oldest version first) and, from then on, sets `dataschema` to the
    /// schema's id on events of that type and version this client (and
    /// its clones) appends to streams `<category>-...`. A registration the
    /// registry refuses (an incompatible change under the subject's level)
    /// is [`Error::Schema`] with Confluent's code and message; versions
    /// registered before it stay bound.
    pub fn bind<E: EventSchemas>(&self, category: &str) -> Result<Vec<Binding>, Error> {
        if category.is_empty() || category.contains('-') {
            return Err(Error::Config {
                reason: format!("a stream category is not empty and has no '-', not {category:?}"),
            });
        }
        let schemas = self.schemas()?;
        let mut types: Vec<EventType> = E::TYPES.to_vec();
        types.sort_by_key(|t| (t.name, t.version));
        let mut out = Vec::new();
        for t in types {
            let Some(schema) = E::json_schema(t) else {
                continue;
            };
            let subject = subject_of(category, t.name);
            let def = SchemaDef::new(SchemaType::Json, schema.to_string());
            let done = schemas.register(&subject, &def)?;
            let mut map = self
                .inner_bindings()
                .0
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let key = (category.to_owned(), t.name.to_owned(), t.version);
            if !map.contains_key(&key) && map.len() >= BINDINGS_MAX {
                return Err(Error::Limit {
                    reason: format!("a client binds at most {BINDINGS_MAX} event type versions"),
                });
            }
            map.insert(key, done.id);
            out.push(Binding {
                category: category.to_owned(),
                event_type: t,
                subject,
                id: done.id,
                subject_version: done.version,
            });
        }
        Ok(out)
    }

    /// The schema id bound to events of `event_type` at `version` in
    /// streams of `category`, if bound.
    pub fn bound_schema(&self, category: &str, event_type: &str, version: u32) -> Option<i32> {
        self.inner_bindings().get(category, event_type, version)
    }

    /// `event` as appended to `stream`: with the bound schema's
    /// `dataschema` if it has none and its type and version are bound
    /// for the stream's category.
    pub(crate) fn bound<'e>(&self, stream: &str, event: &'e Envelope) -> Cow<'e, Envelope> {
        if event.dataschema.is_some() {
            return Cow::Borrowed(event);
        }
        let Some(category) = weir_store::category_of(stream) else {
            return Cow::Borrowed(event);
        };
        match self.bound_schema(category, &event.event_type, event.dataversion) {
            Some(id) => {
                let mut e = event.clone();
                e.dataschema = Some(dataschema_of(id));
                Cow::Owned(e)
            }
            None => Cow::Borrowed(event),
        }
    }
}
