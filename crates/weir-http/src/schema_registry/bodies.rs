//! The schema registry's request and answer bodies, in Confluent's field
//! names: the handlers read and write these types, and the OpenAPI
//! document describes the same types, so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir_schemas::{Reference, SchemaDef, SchemaType, SubjectVersion};

/// A use of another subject's version by a schema.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct ReferenceBody {
    /// How the schema text names it: an Avro full name, a `.proto`
    /// import path, a JSON `$ref` URL.
    #[schema(example = "money.proto")]
    pub name: String,
    #[schema(example = "money")]
    pub subject: String,
    #[schema(example = 1)]
    pub version: i32,
}

impl From<ReferenceBody> for Reference {
    fn from(r: ReferenceBody) -> Self {
        Reference {
            name: r.name,
            subject: r.subject,
            version: r.version,
        }
    }
}

impl From<&Reference> for ReferenceBody {
    fn from(r: &Reference) -> Self {
        ReferenceBody {
            name: r.name.clone(),
            subject: r.subject.clone(),
            version: r.version,
        }
    }
}

/// A schema as clients post it (registration, lookup, compatibility
/// test). Fields newer clients send (`metadata`, `ruleSet`) are taken
/// and ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaRequest {
    /// The text: Avro or JSON Schema as JSON text, Protobuf as `.proto`
    /// text.
    #[schema(
        example = r#"{"type":"record","name":"Payment","fields":[{"name":"id","type":"string"}]}"#
    )]
    pub schema: Option<String>,
    /// AVRO (when left out), JSON or PROTOBUF.
    #[schema(example = "AVRO")]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Option<Vec<ReferenceBody>>,
    /// The id to register under, in IMPORT mode only.
    pub id: Option<i32>,
    /// The version to register as, in IMPORT mode only.
    pub version: Option<i32>,
}

/// A registration's answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Registered {
    pub id: i32,
    pub version: i32,
}

/// A schema's fields as Confluent writes them: `schemaType` left out for
/// AVRO, `references` left out when there are none.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "JSON")]
    pub schema_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ReferenceBody>,
    pub schema: String,
}

impl From<&SchemaDef> for SchemaAnswer {
    fn from(def: &SchemaDef) -> Self {
        SchemaAnswer {
            schema_type: (def.schema_type != SchemaType::Avro)
                .then(|| def.schema_type.as_str().to_owned()),
            references: def.references.iter().map(ReferenceBody::from).collect(),
            schema: def.schema.clone(),
        }
    }
}

/// A subject's version: where it is, its id and its schema.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionAnswer {
    #[schema(example = "payments-value")]
    pub subject: String,
    pub version: i32,
    pub id: i32,
    #[serde(flatten)]
    pub schema: SchemaAnswer,
    /// Present (true) on a soft-deleted version read with `deleted=true`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl From<&SubjectVersion> for VersionAnswer {
    fn from(v: &SubjectVersion) -> Self {
        VersionAnswer {
            subject: v.subject.clone(),
            version: v.version,
            id: v.id,
            schema: SchemaAnswer::from(&v.schema),
            deleted: v.deleted,
        }
    }
}

/// One subject version using a schema id.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubjectAndVersion {
    pub subject: String,
    pub version: i32,
}

/// A compatibility test's answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CompatibilityAnswer {
    pub is_compatible: bool,
    /// With `verbose=true`: one message per breaking change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<String>>,
}

/// A compatibility level read (or removed).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LevelAnswer {
    /// BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL,
    /// FULL_TRANSITIVE or NONE.
    #[schema(example = "BACKWARD")]
    pub compatibility_level: String,
}

/// A compatibility level to set (`compatibilityLevel` is taken too).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LevelRequest {
    #[schema(example = "FULL")]
    pub compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: Option<String>,
}

/// A compatibility level set.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LevelSet {
    #[schema(example = "FULL")]
    pub compatibility: String,
}

/// A mode to set.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ModeRequest {
    /// READWRITE, READONLY or IMPORT.
    #[schema(example = "READONLY")]
    pub mode: Option<String>,
}

/// A mode, read, set or removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ModeAnswer {
    #[schema(example = "READWRITE")]
    pub mode: String,
}

/// A refusal, as Confluent's registry answers it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Confluent's code: 40401 subject not found, 409 incompatible,
    /// 42201 invalid schema, ...
    #[schema(example = 40401)]
    pub error_code: u32,
    pub message: String,
}

// The path parameters of the routes, for their OpenAPI entries only (the
// handlers take the segments as text: a bad version or id is the
// registry's own 42202 or 40403, not a routing error).

/// `{subject}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
pub(crate) struct SubjectPath {
    /// The subject's name (percent-encoded).
    #[param(example = "payments-value")]
    subject: String,
}

/// `{subject}` and `{version}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
pub(crate) struct SubjectVersionPath {
    #[param(example = "payments-value")]
    subject: String,
    /// A version number, `latest` or -1.
    #[param(example = "latest")]
    version: String,
}

/// `{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
pub(crate) struct IdPath {
    /// A schema's global id.
    #[param(example = 1)]
    id: i32,
}
