//! Contract tests: does a producer's output still suit its consumers? Each
//! consumer registers the JSON Schema of what it expects of an event type
//! under a subject of its own; [`check_contract`] takes the producer's
//! sample events (typed values, as its code builds them) and its declared
//! schemas ([`EventSchemas`]), and checks, for every consumer subject of
//! a sample's type, that the consumer's latest schema accepts the
//! sample's serialized data (validated with `jsonschema`) and reads
//! everything the producer's schema allows (the registry's FORWARD check:
//! the consumer's schema as reader, the producer's as writer). Run it in
//! the producer's tests, against the registry its consumers register in.

use serde_json::Value;
use weir_schemas::{
    CompatibilityLevel, Limits, MemoryLog, Registry, SchemaDef, SchemaType, VersionSpec,
};

use crate::{Error, EventSchemas, Schemas};

/// Most samples one check takes.
pub const CONTRACT_SAMPLES_MAX: usize = 10_000;
/// Most violations reported per sample and consumer subject.
pub const CONTRACT_VIOLATIONS_MAX: usize = 10;

/// A consumer's expectation: the subject its schema of `event_type` is
/// registered under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSubject {
    pub event_type: String,
    pub subject: String,
}

impl ConsumerSubject {
    pub fn new(event_type: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            event_type: event_type.into(),
            subject: subject.into(),
        }
    }
}

/// One way the producer breaks a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractFailure {
    /// The sample's event type and version.
    pub event_type: String,
    pub version: u32,
    /// Which sample (its index in the samples given); `None` for a schema
    /// incompatibility, which is about the type, not one sample.
    pub sample: Option<usize>,
    /// The consumer's subject.
    pub subject: String,
    /// What is wrong: a validation error with its place in the data, or a
    /// breaking change the compatibility check names.
    pub violation: String,
}

impl std::fmt::Display for ContractFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.event_type, self.version)?;
        if let Some(i) = self.sample {
            write!(f, " (sample {i})")?;
        }
        write!(f, " against {}: {}", self.subject, self.violation)
    }
}

/// What a contract check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContractReport {
    /// (sample, consumer subject) pairs validated.
    pub validated: usize,
    /// (event type version, consumer subject) pairs checked for
    /// compatibility.
    pub compared: usize,
    pub failures: Vec<ContractFailure>,
}

impl ContractReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Checks `samples` of producer type `E` against the consumers' subjects
/// in `schemas` (see the module's documentation). A consumer subject that
/// does not exist, or whose schema is not JSON Schema, is a failure of
/// that subject; an unreachable registry is an error.
pub fn check_contract<E: EventSchemas>(
    schemas: &Schemas,
    samples: &[E],
    consumers: &[ConsumerSubject],
) -> Result<ContractReport, Error> {
    if samples.len() > CONTRACT_SAMPLES_MAX {
        return Err(Error::Limit {
            reason: format!("a contract check takes at most {CONTRACT_SAMPLES_MAX} samples"),
        });
    }
    let mut report = ContractReport::default();
    for consumer in consumers {
        let of_type: Vec<(usize, &E)> = samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.event_type().name == consumer.event_type)
            .collect();
        if of_type.is_empty() {
            continue;
        }
        let fail = |version: u32, sample: Option<usize>, violation: String| ContractFailure {
            event_type: consumer.event_type.clone(),
            version,
            sample,
            subject: consumer.subject.clone(),
            violation,
        };
        let first_version = of_type[0].1.event_type().version;
        let expected = match schemas.subject_version(&consumer.subject, VersionSpec::Latest) {
            Ok(v) => v.schema,
            Err(Error::Schema { code, reason, .. }) if code / 100 == 404 => {
                report.failures.push(fail(
                    first_version,
                    None,
                    format!("the consumer's subject cannot be read: {reason}"),
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        if expected.schema_type != SchemaType::Json || !expected.references.is_empty() {
            report.failures.push(fail(
                first_version,
                None,
                "the consumer's schema is not a JSON Schema without references, which contract checks need"
                    .to_owned(),
            ));
            continue;
        }
        let validator = match serde_json::from_str::<Value>(&expected.schema)
            .map_err(|e| e.to_string())
            .and_then(|v| jsonschema::validator_for(&v).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                report.failures.push(fail(
                    first_version,
                    None,
                    format!("the consumer's schema does not compile: {e}"),
                ));
                continue;
            }
        };
        let mut compared: Vec<u32> = Vec::new();
        for (i, sample) in of_type {
            let t = sample.event_type();
            let data = sample.encode().map_err(|e| Error::BadEventData {
                id: format!("sample {i}"),
                event_type: t.name.to_owned(),
                reason: e.to_string(),
            })?;
            let value: Value = serde_json::from_slice(&data).map_err(|e| Error::BadEventData {
                id: format!("sample {i}"),
                event_type: t.name.to_owned(),
                reason: e.to_string(),
            })?;
            report.validated += 1;
            for err in validator.iter_errors(&value).take(CONTRACT_VIOLATIONS_MAX) {
                let at = err.instance_path().to_string();
                let at = if at.is_empty() { "/".to_owned() } else { at };
                report
                    .failures
                    .push(fail(t.version, Some(i), format!("at {at}: {err}")));
            }
            if compared.contains(&t.version) {
                continue;
            }
            compared.push(t.version);
            let Some(produced) = E::json_schema(t) else {
                continue;
            };
            report.compared += 1;
            for m in forward_breaks(&expected, &produced.to_string())? {
                report.failures.push(fail(t.version, None, m));
            }
        }
    }
    Ok(report)
}

/// The breaking changes between the consumer's schema (reader) and the
/// producer's (writer): the registry's FORWARD check, with the consumer's
/// schema as the version registered and the producer's as the new one,
/// on a registry of its own in memory (so the consumer's subject level
/// does not decide which direction is checked).
fn forward_breaks(consumer: &SchemaDef, producer: &str) -> Result<Vec<String>, Error> {
    let scratch = Registry::open(Box::new(MemoryLog::new()), Limits::default())
        .map_err(|e| scratch_error(e.to_string()))?;
    let subject = "contract";
    scratch
        .set_compatibility(Some(subject), CompatibilityLevel::Forward)
        .map_err(|e| scratch_error(e.to_string()))?;
    scratch
        .register(subject, consumer, Default::default())
        .map_err(|e| scratch_error(e.to_string()))?;
    let def = SchemaDef::new(SchemaType::Json, producer);
    match scratch.test_compatibility(subject, &def, None) {
        Ok(r) => Ok(r.messages),
        Err(e) => Ok(vec![format!("the producer's schema is refused: {e}")]),
    }
}

fn scratch_error(reason: String) -> Error {
    Error::Schema {
        subject: "contract".to_owned(),
        code: 0,
        reason,
    }
}
