//! The seam through which a topic's records are checked against
//! registered schemas before they are appended (Confluent Server's
//! broker-side schema validation, `confluent.value.schema.validation` and
//! `confluent.key.schema.validation`). The broker knows only which parts
//! of a topic's records must be checked and how their subjects are named
//! (topic configs); what a registered schema is and whether bytes match it
//! is the registry's business, behind [`RecordValidator`], which
//! `weir serve` installs with [`crate::Broker::set_record_validator`].

/// How the subject of a record's key or value is named: Confluent's
/// subject name strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectStrategy {
    /// `<topic>-key` or `<topic>-value` (`TopicNameStrategy`, the default).
    #[default]
    Topic,
    /// The schema's record name (`RecordNameStrategy`).
    Record,
    /// `<topic>-<record name>` (`TopicRecordNameStrategy`).
    TopicRecord,
}

impl SubjectStrategy {
    /// The strategy a config value names: a Confluent class name
    /// (`io.confluent.kafka.serializers.subject.RecordNameStrategy`) or its
    /// last part.
    pub fn from_config(value: &str) -> Self {
        match value.rsplit('.').next().unwrap_or(value) {
            "RecordNameStrategy" => Self::Record,
            "TopicRecordNameStrategy" => Self::TopicRecord,
            _ => Self::Topic,
        }
    }
}

/// Which part of a record a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPart {
    Key,
    Value,
}

impl RecordPart {
    /// `key` or `value`, as subjects and messages name them.
    pub fn name(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Value => "value",
        }
    }
}

/// Which parts of a topic's records must carry a registered schema, each
/// with its subject name strategy; `None` leaves that part unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemaRules {
    pub key: Option<SubjectStrategy>,
    pub value: Option<SubjectStrategy>,
}

impl SchemaRules {
    /// Whether any part is checked.
    pub fn any(&self) -> bool {
        self.key.is_some() || self.value.is_some()
    }
}

/// Checks records against registered schemas. Implemented by the schema
/// registry; the broker calls it for every record of a produce to a topic
/// whose [`SchemaRules`] ask for it, before anything is written.
pub trait RecordValidator: Send + Sync + std::fmt::Debug {
    /// A checker for the records of one produce to `topic` (it may keep
    /// what it looked up for the records that follow).
    fn batch<'a>(&'a self, topic: &'a str) -> Box<dyn BatchValidator + 'a>;
}

/// Checks the records of one produce, in order.
pub trait BatchValidator {
    /// Checks one record's key or value (not null: a null key or value,
    /// a tombstone, carries no schema and is not checked). `Err` says why
    /// it is refused, for the producer.
    fn check(
        &mut self,
        part: RecordPart,
        strategy: SubjectStrategy,
        bytes: &[u8],
    ) -> Result<(), String>;
}
