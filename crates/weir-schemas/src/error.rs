//! The registry's typed errors, each carrying the Confluent Schema Registry
//! error code its REST endpoint answers with (`error_code`) and the HTTP
//! status it implies (`http_status`), so the HTTP edge maps them without a
//! table of its own.

use thiserror::Error;

/// What a registry operation refused or failed with.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// 40401: no such subject (or only soft-deleted versions and the
    /// caller did not ask for deleted ones).
    #[error("subject '{0}' not found")]
    SubjectNotFound(String),
    /// 40402: the subject has no such version.
    #[error("version {version} of subject '{subject}' not found")]
    VersionNotFound { subject: String, version: i32 },
    /// 40403: no schema with this id, or the schema is not registered
    /// under the subject looked at.
    #[error("schema {0} not found")]
    SchemaNotFound(String),
    /// 40404: the subject was soft-deleted (a permanent delete needs that,
    /// a second soft delete does not).
    #[error("subject '{0}' was soft deleted; set permanent to delete it for good")]
    SubjectSoftDeleted(String),
    /// 40405: a permanent delete of a subject not soft-deleted first.
    #[error("subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406: the version was soft-deleted already.
    #[error("version {version} of subject '{subject}' was soft deleted")]
    VersionSoftDeleted { subject: String, version: i32 },
    /// 40407: a permanent delete of a version not soft-deleted first.
    #[error(
        "version {version} of subject '{subject}' was not deleted first before being permanently deleted"
    )]
    VersionNotSoftDeleted { subject: String, version: i32 },
    /// 40408: the subject has no compatibility level of its own.
    #[error("subject '{0}' has no compatibility level of its own")]
    SubjectLevelCompatibilityNotConfigured(String),
    /// 40409: the subject has no mode of its own.
    #[error("subject '{0}' has no mode of its own")]
    SubjectLevelModeNotConfigured(String),
    /// 409: the schema breaks the subject's compatibility level; each
    /// message names one breaking change.
    #[error("schema being registered is incompatible with an earlier schema for subject '{subject}': {}", .messages.join("; "))]
    Incompatible {
        subject: String,
        messages: Vec<String>,
    },
    /// 42201: the schema does not parse as its type, or a reference does
    /// not resolve.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// 42202: a version that is neither a positive number, -1 nor `latest`.
    #[error("invalid version '{0}': a positive number, -1 or latest")]
    InvalidVersion(String),
    /// 42203: an unknown compatibility level.
    #[error("invalid compatibility level '{0}'")]
    InvalidCompatibilityLevel(String),
    /// 42204: an unknown mode.
    #[error("invalid mode '{0}'")]
    InvalidMode(String),
    /// 42205: the mode (or a limit) does not let this operation through.
    #[error("operation not permitted: {0}")]
    OperationNotPermitted(String),
    /// 42206: the schema is referenced by another and cannot be deleted.
    #[error("version {version} of subject '{subject}' is referenced by {by}")]
    ReferenceExists {
        subject: String,
        version: i32,
        by: String,
    },
    /// 42207: an import names an id already holding another schema.
    #[error("schema id {0} already holds a different schema")]
    IdDoesNotMatch(i32),
    /// 42208: an empty, too long or control-character subject name.
    #[error("invalid subject '{0}'")]
    InvalidSubject(String),
    /// 42209: the schema text is over the registry's size limit.
    #[error("schema of {bytes} bytes is over the limit of {max}")]
    SchemaTooLarge { bytes: usize, max: usize },
    /// 50001: the internal topic could not be written or read. After a
    /// failed write the registry refuses writes until reopened.
    #[error("schema store: {0}")]
    Store(String),
}

impl SchemaError {
    /// Confluent's numeric error code for this error.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound { .. } => 40402,
            Self::SchemaNotFound(_) => 40403,
            Self::SubjectSoftDeleted(_) => 40404,
            Self::SubjectNotSoftDeleted(_) => 40405,
            Self::VersionSoftDeleted { .. } => 40406,
            Self::VersionNotSoftDeleted { .. } => 40407,
            Self::SubjectLevelCompatibilityNotConfigured(_) => 40408,
            Self::SubjectLevelModeNotConfigured(_) => 40409,
            Self::Incompatible { .. } => 409,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::InvalidCompatibilityLevel(_) => 42203,
            Self::InvalidMode(_) => 42204,
            Self::OperationNotPermitted(_) => 42205,
            Self::ReferenceExists { .. } => 42206,
            Self::IdDoesNotMatch(_) => 42207,
            Self::InvalidSubject(_) => 42208,
            Self::SchemaTooLarge { .. } => 42209,
            Self::Store(_) => 50001,
        }
    }

    /// The HTTP status of the error code: its first three digits.
    pub fn http_status(&self) -> u16 {
        let code = self.error_code();
        if code >= 10_000 {
            (code / 100) as u16
        } else {
            code as u16
        }
    }
}
