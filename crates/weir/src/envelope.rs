//! The event envelope: CloudEvents 1.0 attributes around an event's data,
//! with the extensions `correlationid`, `causationid` and `dataversion`,
//! and CloudEvents' distributed-tracing extension (`traceparent`,
//! `tracestate`, W3C Trace Context), which [`Causation::caused_by`]
//! carries from a handled event to what its handler emits: the same trace,
//! a new span id.
//!
//! In the store, the attributes the store records itself (`id`, `type`,
//! `time`, `datacontenttype`) are its own fields, and the rest travel in
//! the event's metadata as a small JSON object ([`Extensions`]), which the
//! store writes as the `ce_metadata` header. Outside the store an envelope
//! has the two CloudEvents encodings: JSON structured mode
//! ([`Envelope::to_json`]) and Kafka binary mode ([`Envelope::to_kafka`],
//! `ce_*` headers named as `weir_store::headers` names them).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_store::{NewEvent, RecordedEvent, TraceContext, headers};

use crate::{Error, Event};

/// The CloudEvents version every envelope has.
pub const SPEC_VERSION: &str = "1.0";
/// The media type of JSON data.
pub const JSON: &str = "application/json";

/// Where an event sits in the store, once it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub stream: String,
    /// Its version in the stream, from 0.
    pub version: u64,
    /// Its place in the global order.
    pub position: u64,
    /// When the store recorded it, ms since the Unix epoch.
    pub recorded_ms: i64,
}

/// An event with its CloudEvents attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    /// Who produced it (a URI reference, e.g. `/bank`).
    pub source: String,
    /// The CloudEvents `type`.
    pub event_type: String,
    pub specversion: String,
    /// RFC 3339; set when the store records the event.
    pub time: Option<String>,
    /// What the event is about (the aggregate id for aggregate events).
    pub subject: Option<String>,
    pub datacontenttype: String,
    pub dataschema: Option<String>,
    /// The version of the data's schema (extension `dataversion`).
    pub dataversion: u32,
    /// The id shared by everything one request set off (extension
    /// `correlationid`).
    pub correlationid: String,
    /// The id of the event or command that caused this one (extension
    /// `causationid`).
    pub causationid: Option<String>,
    pub data: Vec<u8>,
    /// Set on events read from the store.
    pub recorded: Option<Recorded>,
    /// The W3C trace context it was produced in (extensions `traceparent`
    /// and `tracestate`): the trace id, and the id of the span that
    /// produced it.
    pub trace: Option<TraceContext>,
}

/// The attributes the SDK keeps in an event's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extensions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    #[serde(default = "one")]
    pub dataversion: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
}

fn one() -> u32 {
    1
}

/// Why an event is produced: the correlation id it shares with the rest of
/// its request, and the id of what caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Causation {
    pub correlation_id: String,
    pub causation_id: Option<String>,
    /// The trace context what is produced carries, if any.
    pub trace: Option<TraceContext>,
}

impl Causation {
    /// The start of a new request: a fresh correlation id, no cause.
    pub fn new() -> Self {
        Self {
            correlation_id: new_id(),
            causation_id: None,
            trace: None,
        }
    }

    /// A request with a known correlation id (e.g. a transfer's id) and
    /// no cause yet.
    pub fn correlated(correlation_id: impl Into<String>) -> Self {
        Self {
            correlation_id: correlation_id.into(),
            causation_id: None,
            trace: None,
        }
    }

    /// Events produced while handling `event`: its correlation id, caused
    /// by it, and, if it has a trace context, in the same trace with a new
    /// span id (the handling's span, whose parent is `event`'s span).
    pub fn caused_by(event: &Envelope) -> Self {
        Self {
            correlation_id: event.correlationid.clone(),
            causation_id: Some(event.id.clone()),
            trace: event.trace.as_ref().map(|t| t.child(new_span_id())),
        }
    }

    /// The same, in the trace context `trace` (e.g. an incoming request's).
    pub fn in_trace(mut self, trace: Option<TraceContext>) -> Self {
        self.trace = trace;
        self
    }
}

impl Default for Causation {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh random id (a v4 UUID).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh random span id (8 bytes of a v4 UUID's random bits).
pub fn new_span_id() -> [u8; 8] {
    let b = uuid::Uuid::new_v4().into_bytes();
    // Bytes 8..16 hold 62 random bits; never all zero for a v4 UUID
    // (the variant bits are 10).
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[8..16]);
    id
}

/// A Kafka record in CloudEvents binary mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

const H_SUBJECT: &str = "ce_subject";
const H_DATASCHEMA: &str = "ce_dataschema";
const H_DATAVERSION: &str = "ce_dataversion";
const H_CORRELATION: &str = "ce_correlationid";
const H_CAUSATION: &str = "ce_causationid";
/// The W3C header name, as OpenTelemetry's Kafka instrumentations write
/// it; read when a record has no `ce_traceparent`.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The W3C `tracestate` header, read with [`TRACEPARENT_HEADER`].
pub const TRACESTATE_HEADER: &str = "tracestate";

impl Envelope {
    /// A new event of `source`, its data encoded from `event`.
    pub fn new<E: Event>(event: &E, source: &str, causation: &Causation) -> Result<Self, Error> {
        let ty = event.event_type();
        let id = new_id();
        let data = event.encode().map_err(|e| Error::BadEventData {
            id: id.clone(),
            event_type: ty.name.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            correlationid: causation.correlation_id.clone(),
            causationid: causation.causation_id.clone(),
            id,
            source: source.to_owned(),
            event_type: ty.name.to_owned(),
            specversion: SPEC_VERSION.to_owned(),
            time: None,
            subject: None,
            datacontenttype: JSON.to_owned(),
            dataschema: None,
            dataversion: ty.version,
            data,
            recorded: None,
            trace: causation.trace.clone(),
        })
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The event's data as `E`. An event type `E` does not stand for is
    /// [`Error::UnknownEventType`]; data that does not fit
    /// [`Error::BadEventData`].
    pub fn decode<E: Event>(&self) -> Result<E, Error> {
        match E::decode(&self.event_type, self.dataversion, &self.data) {
            Some(Ok(e)) => Ok(e),
            Some(Err(e)) => Err(Error::BadEventData {
                id: self.id.clone(),
                event_type: self.event_type.clone(),
                reason: e.to_string(),
            }),
            None => Err(Error::UnknownEventType {
                event_type: self.event_type.clone(),
                version: self.dataversion,
            }),
        }
    }

    /// The event's data as `E`, or `None` if `E` does not stand for its
    /// type (for handlers that see every event and want some).
    pub fn try_decode<E: Event>(&self) -> Result<Option<E>, Error> {
        if E::handles(&self.event_type, self.dataversion) {
            self.decode().map(Some)
        } else {
            Ok(None)
        }
    }

    /// The envelope of an event read from the store. Events appended
    /// without the SDK's metadata (through the HTTP API or the store
    /// directly, with no metadata or metadata of their own) get its
    /// defaults: source `/streams/<stream>`, data version 1, correlated by
    /// their own id. A tolerant reader: a projection following all events
    /// must not stop at one another writer described differently.
    pub fn from_recorded(event: RecordedEvent) -> Result<Self, Error> {
        let ext: Extensions = serde_json::from_slice(&event.metadata).unwrap_or(Extensions {
            dataversion: 1,
            ..Extensions::default()
        });
        Ok(Self {
            source: ext
                .source
                .unwrap_or_else(|| format!("/streams/{}", event.stream)),
            correlationid: ext.correlationid.unwrap_or_else(|| event.id.clone()),
            causationid: ext.causationid,
            subject: ext.subject,
            dataschema: ext.dataschema,
            dataversion: ext.dataversion,
            specversion: SPEC_VERSION.to_owned(),
            time: Some(weir_store::rfc3339(event.recorded_ms)),
            trace: event.trace,
            id: event.id,
            event_type: event.event_type,
            datacontenttype: event.content_type,
            data: event.data,
            recorded: Some(Recorded {
                stream: event.stream,
                version: event.version,
                position: event.position,
                recorded_ms: event.recorded_ms,
            }),
        })
    }

    /// The event to append to the store.
    pub fn to_new_event(&self) -> Result<NewEvent, Error> {
        let ext = Extensions {
            source: Some(self.source.clone()),
            subject: self.subject.clone(),
            dataschema: self.dataschema.clone(),
            dataversion: self.dataversion,
            correlationid: Some(self.correlationid.clone()),
            causationid: self.causationid.clone(),
        };
        let metadata = serde_json::to_vec(&ext).map_err(|e| Error::BadMetadata {
            id: self.id.clone(),
            reason: e.to_string(),
        })?;
        Ok(NewEvent {
            id: self.id.clone(),
            event_type: self.event_type.clone(),
            data: self.data.clone(),
            content_type: self.datacontenttype.clone(),
            metadata,
            trace: self.trace.clone(),
        })
    }

    /// The global position, for recorded events.
    pub fn position(&self) -> Option<u64> {
        self.recorded.as_ref().map(|r| r.position)
    }

    /// CloudEvents JSON structured mode: one JSON object with every
    /// attribute and the data (`data` when it is JSON, else
    /// `data_base64`). A recorded event also carries where it is
    /// (`stream`, `streamversion`, `position`).
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        let mut o = Map::new();
        let s = |v: &str| Value::String(v.to_owned());
        o.insert("specversion".into(), s(&self.specversion));
        o.insert("id".into(), s(&self.id));
        o.insert("source".into(), s(&self.source));
        o.insert("type".into(), s(&self.event_type));
        if let Some(t) = &self.time {
            o.insert("time".into(), s(t));
        }
        if let Some(v) = &self.subject {
            o.insert("subject".into(), s(v));
        }
        o.insert("datacontenttype".into(), s(&self.datacontenttype));
        if let Some(v) = &self.dataschema {
            o.insert("dataschema".into(), s(v));
        }
        o.insert("dataversion".into(), Value::from(self.dataversion));
        o.insert("correlationid".into(), s(&self.correlationid));
        if let Some(v) = &self.causationid {
            o.insert("causationid".into(), s(v));
        }
        if let Some(t) = &self.trace {
            o.insert("traceparent".into(), Value::String(t.parent.to_string()));
            if let Some(state) = t.state() {
                o.insert("tracestate".into(), s(state));
            }
        }
        if let Some(r) = &self.recorded {
            o.insert("stream".into(), s(&r.stream));
            o.insert("streamversion".into(), Value::from(r.version));
            o.insert("position".into(), Value::from(r.position));
        }
        let json_data = is_json(&self.datacontenttype)
            .then(|| serde_json::from_slice::<Value>(&self.data).ok())
            .flatten();
        match json_data {
            Some(v) => o.insert("data".into(), v),
            None => o.insert(
                "data_base64".into(),
                s(&base64::engine::general_purpose::STANDARD.encode(&self.data)),
            ),
        };
        serde_json::to_vec(&Value::Object(o)).map_err(|e| Error::InvalidCloudEvent {
            reason: e.to_string(),
        })
    }

    /// Reads a CloudEvent in JSON structured mode.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |reason: String| Error::InvalidCloudEvent { reason };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let Value::Object(o) = v else {
            return Err(bad("a structured CloudEvent is a JSON object".into()));
        };
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
        let required = |k: &str| text(k).ok_or_else(|| bad(format!("no string attribute {k:?}")));
        let specversion = required("specversion")?;
        if specversion != SPEC_VERSION {
            return Err(bad(format!(
                "specversion {specversion:?}, not {SPEC_VERSION}"
            )));
        }
        let data = match (o.get("data"), text("data_base64")) {
            (Some(d), _) => serde_json::to_vec(d).map_err(|e| bad(e.to_string()))?,
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| bad(format!("data_base64: {e}")))?,
            (None, None) => Vec::new(),
        };
        let id = required("id")?;
        let recorded = match (text("stream"), o.get("streamversion"), o.get("position")) {
            (Some(stream), Some(v), Some(p)) => Some(Recorded {
                stream,
                version: v.as_u64().ok_or_else(|| bad("streamversion".into()))?,
                position: p.as_u64().ok_or_else(|| bad("position".into()))?,
                recorded_ms: 0,
            }),
            _ => None,
        };
        Ok(Self {
            source: required("source")?,
            event_type: required("type")?,
            time: text("time"),
            subject: text("subject"),
            datacontenttype: text("datacontenttype").unwrap_or_else(|| JSON.to_owned()),
            dataschema: text("dataschema"),
            dataversion: match o.get("dataversion") {
                None => 1,
                Some(v) => v
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| bad("dataversion is not a number".into()))?,
            },
            correlationid: text("correlationid").unwrap_or_else(|| id.clone()),
            causationid: text("causationid"),
            // A bad traceparent is ignored, as W3C Trace Context asks.
            trace: text("traceparent")
                .and_then(|tp| TraceContext::parse(&tp, text("tracestate").as_deref())),
            specversion,
            id,
            data,
            recorded,
        })
    }

    /// CloudEvents Kafka binary mode: the data as the value, the
    /// attributes as `ce_*` headers (the layout of the store's
    /// `__weir_events` records), the stream (as the store keys its
    /// records; else the subject) as the key.
    pub fn to_kafka(&self) -> KafkaRecord {
        let mut h: Vec<(String, Vec<u8>)> = Vec::with_capacity(12);
        let mut put = |k: &str, v: &str| h.push((k.to_owned(), v.as_bytes().to_vec()));
        put(headers::SPECVERSION, &self.specversion);
        put(headers::ID, &self.id);
        put(headers::SOURCE, &self.source);
        put(headers::TYPE, &self.event_type);
        if let Some(t) = &self.time {
            put(headers::TIME, t);
        }
        put(headers::CONTENT_TYPE, &self.datacontenttype);
        if let Some(v) = &self.subject {
            put(H_SUBJECT, v);
        }
        if let Some(v) = &self.dataschema {
            put(H_DATASCHEMA, v);
        }
        put(H_DATAVERSION, &self.dataversion.to_string());
        put(H_CORRELATION, &self.correlationid);
        if let Some(v) = &self.causationid {
            put(H_CAUSATION, v);
        }
        if let Some(r) = &self.recorded {
            put(headers::STREAM_VERSION, &r.version.to_string());
        }
        if let Some(t) = &self.trace {
            put(headers::TRACEPARENT, &t.parent.to_string());
            if let Some(state) = t.state() {
                put(headers::TRACESTATE, state);
            }
        }
        let key = self
            .recorded
            .as_ref()
            .map(|r| r.stream.clone())
            .or_else(|| self.subject.clone());
        KafkaRecord {
            key: key.map(String::into_bytes),
            value: self.data.clone(),
            headers: h,
        }
    }

    /// Reads a Kafka record in CloudEvents binary mode: one written by
    /// [`Self::to_kafka`], or a record of the store's `__weir_events`
    /// (whose extensions are in its `ce_metadata` header).
    pub fn from_kafka(record: &KafkaRecord) -> Result<Self, Error> {
        Self::from_kafka_parts(&record.value, &|k| {
            record
                .headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_slice())
        })
    }

    /// [`Self::from_kafka`] over a record's value and a header lookup, for
    /// records held in another shape (the consumer runtime's).
    pub(crate) fn from_kafka_parts<'r>(
        value: &[u8],
        header: &dyn Fn(&str) -> Option<&'r [u8]>,
    ) -> Result<Self, Error> {
        let bad = |reason: String| Error::InvalidCloudEvent { reason };
        let get = |k: &str| {
            header(k)
                .map(|v| String::from_utf8(v.to_vec()))
                .transpose()
                .map_err(|_| bad(format!("header {k} is not UTF-8")))
        };
        let required = |k: &str| get(k)?.ok_or_else(|| bad(format!("no header {k}")));
        let specversion = required(headers::SPECVERSION)?;
        if specversion != SPEC_VERSION {
            return Err(bad(format!(
                "specversion {specversion:?}, not {SPEC_VERSION}"
            )));
        }
        let id = required(headers::ID)?;
        let meta: Extensions = match header(headers::METADATA) {
            Some(m) => serde_json::from_slice(m).map_err(|e| Error::BadMetadata {
                id: id.clone(),
                reason: e.to_string(),
            })?,
            None => Extensions {
                dataversion: 1,
                ..Extensions::default()
            },
        };
        let dataversion = match get(H_DATAVERSION)? {
            Some(v) => v
                .parse()
                .map_err(|_| bad(format!("{H_DATAVERSION} {v:?} is not a number")))?,
            None => meta.dataversion,
        };
        Ok(Self {
            source: match meta.source {
                Some(s) => s,
                None => required(headers::SOURCE)?,
            },
            event_type: required(headers::TYPE)?,
            time: get(headers::TIME)?,
            subject: get(H_SUBJECT)?.or(meta.subject),
            datacontenttype: get(headers::CONTENT_TYPE)?.unwrap_or_else(|| JSON.to_owned()),
            dataschema: get(H_DATASCHEMA)?.or(meta.dataschema),
            dataversion,
            correlationid: get(H_CORRELATION)?
                .or(meta.correlationid)
                .unwrap_or_else(|| id.clone()),
            causationid: get(H_CAUSATION)?.or(meta.causationid),
            trace: trace_of(header),
            specversion,
            id,
            data: value.to_vec(),
            recorded: None,
        })
    }
}

/// A record's trace context: its `ce_traceparent` (CloudEvents binary
/// mode), else its W3C `traceparent` header; a bad one is ignored.
pub(crate) fn trace_of<'r>(header: &dyn Fn(&str) -> Option<&'r [u8]>) -> Option<TraceContext> {
    TraceContext::from_bytes(header(headers::TRACEPARENT), header(headers::TRACESTATE))
        .or_else(|| TraceContext::from_bytes(header(TRACEPARENT_HEADER), header(TRACESTATE_HEADER)))
}

pub(crate) fn is_json(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    ct == JSON || ct.ends_with("+json")
}
