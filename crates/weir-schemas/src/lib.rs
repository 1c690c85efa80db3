//! Weir's schema registry core: subjects with versions 1..n, global schema
//! ids shared across subjects, compatibility levels and modes per subject
//! and global, soft and permanent deletes, schema references, and the
//! compatibility rules of Avro, JSON Schema and Protobuf; every operation
//! a Confluent Schema Registry REST endpoint needs is one method of
//! [`Registry`], and every refusal a [`SchemaError`] with Confluent's error
//! code. State is kept on a [`SchemaLog`] (on a broker, the internal topic
//! `__schemas`) and replayed at open. No sockets, no runtime.
//! See `docs/design/schemas.md`.

mod error;
mod model;
mod queries;
mod registry;
mod state;
mod store;
pub(crate) mod types;
mod validate;

pub use error::SchemaError;
pub use model::{
    CompatibilityLevel, ImportIds, Limits, Mode, Reference, Registration, SchemaDef, SchemaType,
    SubjectVersion, VersionSpec,
};
pub use registry::{CompatibilityReport, Registry};
pub use store::{BrokerSchemaLog, MemoryLog, SCHEMAS_TOPIC, SchemaLog};
pub use types::text_form;
pub use validate::{CATEGORIES_MAX, Validator};
