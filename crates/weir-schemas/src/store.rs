//! Where the registry keeps its state: a log of records, appended durably
//! before a change is applied and replayed in order at open. On a broker
//! that is the internal topic `__schemas` (one partition, never deleted by
//! retention, not compacted: every record is kept, so the id counter,
//! the highest id ever assigned, comes back from the log even after hard
//! deletes). [`MemoryLog`] is the same seam in memory, for tests and
//! embedders that want no disk.
//!
//! Records are JSON objects, one per log record value, keyed by subject
//! (the key is informational; replay reads values in offset order).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use weir_broker::Broker;

use crate::error::SchemaError;
use crate::model::{CompatibilityLevel, Mode, Reference, SchemaType};

/// The internal topic of the registry on a broker (Confluent's is
/// `_schemas`; Weir's internal topics start with `__`).
pub const SCHEMAS_TOPIC: &str = "__schemas";

/// One change to the registry, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Record {
    /// A version registered, or (written again with `deleted`) soft-deleted.
    Version {
        subject: String,
        version: i32,
        id: i32,
        schema_type: SchemaType,
        schema: String,
        references: Vec<Reference>,
        deleted: bool,
    },
    /// A soft-deleted version permanently deleted.
    VersionGone { subject: String, version: i32 },
    /// A compatibility level set (`Some`) or removed (`None`); no subject
    /// is the global level.
    Config {
        subject: Option<String>,
        level: Option<CompatibilityLevel>,
    },
    /// A mode set or removed; no subject is the global mode.
    Mode {
        subject: Option<String>,
        mode: Option<Mode>,
    },
    /// Validation on write of a stream category turned on or off (Weir's
    /// own; Confluent's registry has no stream categories).
    CategoryValidation { category: String, enabled: bool },
}

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // A record of strings, numbers and enums always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub(crate) fn key(&self) -> &str {
        match self {
            Self::Version { subject, .. } | Self::VersionGone { subject, .. } => subject,
            Self::Config { subject, .. } | Self::Mode { subject, .. } => {
                subject.as_deref().unwrap_or("")
            }
            Self::CategoryValidation { category, .. } => category,
        }
    }
}

/// A durable, ordered log of the registry's records.
pub trait SchemaLog: Send + Sync + std::fmt::Debug {
    /// Appends one record; `Ok` only once it is durable.
    fn append(&self, key: &[u8], value: &[u8]) -> Result<(), SchemaError>;
    /// Calls `f` with every record's value, oldest first.
    fn replay(&self, f: &mut dyn FnMut(&[u8])) -> Result<(), SchemaError>;
}

/// The registry's log on a broker: topic [`SCHEMAS_TOPIC`], created by
/// the first append.
#[derive(Debug, Clone)]
pub struct BrokerSchemaLog {
    broker: Arc<Broker>,
}

impl BrokerSchemaLog {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }
}

impl SchemaLog for BrokerSchemaLog {
    fn append(&self, key: &[u8], value: &[u8]) -> Result<(), SchemaError> {
        self.broker
            .append_internal_record(SCHEMAS_TOPIC, key, Some(value))
            .map_err(|e| SchemaError::Store(e.to_string()))
    }

    fn replay(&self, f: &mut dyn FnMut(&[u8])) -> Result<(), SchemaError> {
        self.broker
            .read_internal_records(SCHEMAS_TOPIC, |_, _, value| {
                if let Some(v) = value {
                    f(v)
                }
            })
            .map_err(|e| SchemaError::Store(e.to_string()))
    }
}

/// A log in memory: durable for as long as the value lives. Clones share
/// the records, so a test can "reopen" a registry over the same log.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    records: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl MemoryLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records were appended.
    pub fn len(&self) -> usize {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy holding the same records, sharing nothing from now on.
    pub fn fork(&self) -> Self {
        let records = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Self {
            records: Arc::new(Mutex::new(records)),
        }
    }

    /// Keeps only the first `n` records (a log cut short by a crash).
    pub fn truncate(&self, n: usize) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .truncate(n);
    }
}

impl SchemaLog for MemoryLog {
    fn append(&self, _key: &[u8], value: &[u8]) -> Result<(), SchemaError> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(value.to_vec());
        Ok(())
    }

    fn replay(&self, f: &mut dyn FnMut(&[u8])) -> Result<(), SchemaError> {
        let records = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        records.iter().for_each(|r| f(r));
        Ok(())
    }
}
