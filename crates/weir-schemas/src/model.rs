//! The registry's vocabulary, named as Confluent's REST API names it:
//! schema types, compatibility levels, modes, references, version
//! selectors and the limits every operation is held to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::SchemaError;

/// A schema's language. AVRO when a request names none, as Confluent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    /// Every type (GET /schemas/types).
    pub const ALL: [Self; 3] = [Self::Avro, Self::Json, Self::Protobuf];

    /// The name the REST API uses (`AVRO`, `JSON`, `PROTOBUF`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Json => "JSON",
            Self::Protobuf => "PROTOBUF",
        }
    }
}

impl FromStr for SchemaType {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, SchemaError> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(Self::Avro),
            "JSON" => Ok(Self::Json),
            "PROTOBUF" => Ok(Self::Protobuf),
            _ => Err(SchemaError::InvalidSchema(format!(
                "unknown schema type '{s}'"
            ))),
        }
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subject's (or the registry's) compatibility level. BACKWARD unless
/// configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// The new schema reads data written with the latest one.
    #[default]
    Backward,
    /// The new schema reads data written with every registered one.
    BackwardTransitive,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Every registered schema reads data written with the new one.
    ForwardTransitive,
    /// Backward and forward against the latest.
    Full,
    /// Backward and forward against every registered schema.
    FullTransitive,
    /// No check.
    None,
}

impl CompatibilityLevel {
    /// Every level, in the order the REST API documents them.
    pub const ALL: [Self; 7] = [
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
        Self::None,
    ];

    /// The REST API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
            Self::None => "NONE",
        }
    }

    /// Whether the new schema must read the old schemas' data.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether the old schemas must read the new schema's data.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether every live version is checked, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }
}

impl FromStr for CompatibilityLevel {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, SchemaError> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| SchemaError::InvalidCompatibilityLevel(s.to_owned()))
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What writes a subject (or the registry) takes. READWRITE unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mode {
    /// Registrations checked for compatibility, ids assigned here.
    #[default]
    ReadWrite,
    /// No registration, delete or config change of the subject.
    ReadOnly,
    /// Registrations with the caller's id and version, unchecked (moving
    /// schemas in from another registry).
    Import,
}

impl Mode {
    /// The REST API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWrite => "READWRITE",
            Self::ReadOnly => "READONLY",
            Self::Import => "IMPORT",
        }
    }
}

impl FromStr for Mode {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, SchemaError> {
        [Self::ReadWrite, Self::ReadOnly, Self::Import]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| SchemaError::InvalidMode(s.to_owned()))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schema's use of another subject's version: `name` is how the schema
/// text refers to it (an Avro full name, a `.proto` import path, a JSON
/// `$ref` URL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema as a client posts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDef {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<Reference>,
}

impl SchemaDef {
    /// A schema of `schema_type` with no references.
    pub fn new(schema_type: SchemaType, schema: impl Into<String>) -> Self {
        Self {
            schema_type,
            schema: schema.into(),
            references: Vec::new(),
        }
    }

    /// The same schema with `references`.
    pub fn with_references(mut self, references: Vec<Reference>) -> Self {
        self.references = references;
        self
    }
}

/// A schema registered under a subject (GET /subjects/{s}/versions/{v}).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: SchemaDef,
    pub deleted: bool,
}

/// Which version a request means: a number, or the latest (`latest`, -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl FromStr for VersionSpec {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, SchemaError> {
        if s.eq_ignore_ascii_case("latest") {
            return Ok(Self::Latest);
        }
        match s.parse::<i32>() {
            Ok(-1) => Ok(Self::Latest),
            Ok(n) if n >= 1 => Ok(Self::Number(n)),
            _ => Err(SchemaError::InvalidVersion(s.to_owned())),
        }
    }
}

/// What a registration returns: the global id and the subject's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    pub id: i32,
    pub version: i32,
}

/// Explicit id and version for a registration in IMPORT mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportIds {
    pub id: Option<i32>,
    pub version: Option<i32>,
}

/// Bounds on what the registry keeps and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one schema's text.
    pub schema_bytes_max: usize,
    /// Subjects, deleted or not.
    pub subjects_max: usize,
    /// Versions kept per subject (soft-deleted ones count).
    pub versions_per_subject_max: usize,
    /// Direct references of one schema.
    pub references_max: usize,
    /// How deep references may nest (a schema's references' references...).
    pub references_depth_max: usize,
    /// Bytes of a subject name.
    pub subject_bytes_max: usize,
    /// Compatibility messages reported per check.
    pub messages_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            schema_bytes_max: 1024 * 1024,
            subjects_max: 100_000,
            versions_per_subject_max: 1_000,
            references_max: 100,
            references_depth_max: 16,
            subject_bytes_max: 255,
            messages_max: 50,
        }
    }
}
