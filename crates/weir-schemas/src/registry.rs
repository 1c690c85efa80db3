//! The registry: every operation a Confluent Schema Registry REST endpoint
//! needs, over the state of `state.rs` kept on a [`SchemaLog`]. Writes are
//! serialized under one lock, made durable, then applied; a write whose
//! durability is unknown fails the registry's writes until it is reopened
//! (so an id is never handed out twice).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use weir_broker::Broker;

use crate::error::SchemaError;
use crate::model::{
    CompatibilityLevel, ImportIds, Limits, Mode, Registration, SchemaDef, SubjectVersion,
    VersionSpec,
};
use crate::state::{State, Subject};
use crate::store::{BrokerSchemaLog, Record, SchemaLog};
use crate::types::{self, Parsed};

/// A schema registry over one log.
#[derive(Debug)]
pub struct Registry {
    pub(crate) log: Box<dyn SchemaLog>,
    pub(crate) state: Mutex<State>,
    pub(crate) limits: Limits,
    /// Stream categories whose appends are validated: read on every
    /// store append, so kept apart from `state`, whose lock a write holds
    /// across its log append.
    pub(crate) categories: RwLock<BTreeSet<String>>,
}

/// The outcome of a compatibility test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityReport {
    pub is_compatible: bool,
    /// One line per breaking change, naming the version it breaks with.
    pub messages: Vec<String>,
}

impl Registry {
    /// Opens the registry over `log`, replaying every record.
    pub fn open(log: Box<dyn SchemaLog>, limits: Limits) -> Result<Self, SchemaError> {
        let mut state = State::new();
        let categories = RwLock::new(BTreeSet::new());
        log.replay(&mut |bytes| match Record::decode(bytes) {
            Some(r) => Self::apply(&mut state, &categories, r),
            None => state.skipped += 1,
        })?;
        Ok(Self {
            log,
            state: Mutex::new(state),
            limits,
            categories,
        })
    }

    /// Applies one durable record: a category switch to `categories`,
    /// everything else to `state`.
    fn apply(state: &mut State, categories: &RwLock<BTreeSet<String>>, record: Record) {
        match record {
            Record::CategoryValidation { category, enabled } => {
                let mut set = categories.write().unwrap_or_else(|e| e.into_inner());
                if enabled {
                    set.insert(category);
                } else {
                    set.remove(&category);
                }
            }
            r => state.apply(r),
        }
    }

    /// Opens the registry kept in `broker`'s `__schemas` topic.
    pub fn open_on_broker(broker: Arc<Broker>, limits: Limits) -> Result<Self, SchemaError> {
        Self::open(Box::new(BrokerSchemaLog::new(broker)), limits)
    }

    /// A Protobuf schema as Confluent's `format=serialized` asks for it:
    /// its descriptor, compiled with its references, base64-encoded.
    pub fn serialized(&self, def: &SchemaDef) -> Result<String, SchemaError> {
        let parsed = self.lock().parse(def, self.limits.references_depth_max)?;
        types::serialized_form(&parsed)
    }

    /// Records replay could not decode (written by a newer version, say).
    pub fn skipped_records(&self) -> usize {
        self.lock().skipped
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `record` durable, then applies it.
    pub(crate) fn write(&self, state: &mut State, record: Record) -> Result<(), SchemaError> {
        if let Some(why) = &state.failed {
            return Err(SchemaError::Store(format!(
                "a write failed ({why}); reopen the registry"
            )));
        }
        if let Err(e) = self.log.append(record.key().as_bytes(), &record.encode()) {
            // The record may be on disk or not: keep its id burnt and take
            // no more writes until a replay says which.
            if let Record::Version { id, .. } = &record {
                state.next_id = state.next_id.max(id.saturating_add(1));
            }
            state.failed = Some(e.to_string());
            return Err(e);
        }
        Self::apply(state, &self.categories, record);
        Ok(())
    }

    pub(crate) fn check_subject(&self, subject: &str) -> Result<(), SchemaError> {
        if subject.is_empty()
            || subject.len() > self.limits.subject_bytes_max
            || subject.chars().any(char::is_control)
        {
            return Err(SchemaError::InvalidSubject(subject.to_owned()));
        }
        Ok(())
    }

    fn check_def(&self, state: &State, def: &SchemaDef) -> Result<Parsed, SchemaError> {
        if def.schema.len() > self.limits.schema_bytes_max {
            return Err(SchemaError::SchemaTooLarge {
                bytes: def.schema.len(),
                max: self.limits.schema_bytes_max,
            });
        }
        if def.references.len() > self.limits.references_max {
            return Err(SchemaError::InvalidSchema(format!(
                "{} references, over the limit of {}",
                def.references.len(),
                self.limits.references_max
            )));
        }
        state.parse(def, self.limits.references_depth_max)
    }

    /// The mode in force for `subject`: its own, else the global one.
    pub(crate) fn effective_mode(state: &State, subject: &str) -> Mode {
        state
            .subjects
            .get(subject)
            .and_then(|s| s.mode)
            .or(state.mode)
            .unwrap_or_default()
    }

    /// The level in force for `subject`: its own, else the global one.
    pub(crate) fn effective_level(state: &State, subject: &str) -> CompatibilityLevel {
        state
            .subjects
            .get(subject)
            .and_then(|s| s.level)
            .or(state.level)
            .unwrap_or_default()
    }

    /// Registers `def` under `subject` (POST /subjects/{s}/versions). The
    /// same schema already live in the subject returns its id and version;
    /// the same schema in another subject reuses its id. Checked against
    /// the subject's compatibility level unless the mode is IMPORT; `import`
    /// ids only in IMPORT mode.
    pub fn register(
        &self,
        subject: &str,
        def: &SchemaDef,
        import: ImportIds,
    ) -> Result<Registration, SchemaError> {
        self.check_subject(subject)?;
        let mut state = self.lock();
        let mode = Self::effective_mode(&state, subject);
        if mode == Mode::ReadOnly {
            return Err(SchemaError::OperationNotPermitted(format!(
                "subject '{subject}' is in READONLY mode"
            )));
        }
        if (import.id.is_some() || import.version.is_some()) && mode != Mode::Import {
            return Err(SchemaError::OperationNotPermitted(
                "an explicit id or version needs IMPORT mode".to_owned(),
            ));
        }
        let parsed = self.check_def(&state, def)?;
        let key = (
            def.schema_type,
            types::canonical(def.schema_type, &def.schema),
            def.references.clone(),
        );
        let empty = Subject::default();
        let current = state.subjects.get(subject).unwrap_or(&empty);
        if let Some(id) = import.id {
            if state
                .schemas
                .get(&id)
                .is_some_and(|stored| stored.key != key)
            {
                return Err(SchemaError::IdDoesNotMatch(id));
            }
            if id < 1 {
                return Err(SchemaError::OperationNotPermitted(format!(
                    "schema id {id} is not positive"
                )));
            }
        }
        let existing = state.ids.get(&key).copied();
        // Already registered here: the same answer again.
        let here = existing.and_then(|id| current.live().find(|(_, v)| v.id == id));
        if let Some((version, v)) = here
            && import.version.is_none_or(|n| n == version)
            && import.id.is_none_or(|i| i == v.id)
        {
            return Ok(Registration { id: v.id, version });
        }
        if let Some(n) = import.version {
            if n < 1 {
                return Err(SchemaError::InvalidVersion(n.to_string()));
            }
            if current.versions.contains_key(&n) {
                return Err(SchemaError::InvalidVersion(format!(
                    "{n} (already exists in subject '{subject}')"
                )));
            }
        }
        if mode != Mode::Import {
            let level = Self::effective_level(&state, subject);
            let messages = self.messages_against(&state, current, &parsed, level, None);
            if !messages.is_empty() {
                return Err(SchemaError::Incompatible {
                    subject: subject.to_owned(),
                    messages,
                });
            }
        }
        if !state.subjects.contains_key(subject) && state.subjects.len() >= self.limits.subjects_max
        {
            return Err(SchemaError::OperationNotPermitted(format!(
                "the registry holds {} subjects, its limit",
                self.limits.subjects_max
            )));
        }
        if current.versions.len() >= self.limits.versions_per_subject_max {
            return Err(SchemaError::OperationNotPermitted(format!(
                "subject '{subject}' holds {} versions, its limit",
                self.limits.versions_per_subject_max
            )));
        }
        let id = import.id.or(existing).unwrap_or(state.next_id);
        let version = import.version.unwrap_or_else(|| {
            current
                .versions
                .keys()
                .next_back()
                .map_or(1, |n| n.saturating_add(1))
        });
        // Imported numbers can sit at the top of the range: never let the
        // next one saturate onto a number or id already taken.
        if current.versions.contains_key(&version) {
            return Err(SchemaError::OperationNotPermitted(format!(
                "subject '{subject}' has no version number left after {version}"
            )));
        }
        if import.id.is_none() && existing.is_none() && state.schemas.contains_key(&id) {
            return Err(SchemaError::OperationNotPermitted(
                "no schema id left".to_owned(),
            ));
        }
        let record = Record::Version {
            subject: subject.to_owned(),
            version,
            id,
            schema_type: def.schema_type,
            schema: def.schema.clone(),
            references: def.references.clone(),
            deleted: false,
        };
        self.write(&mut state, record)?;
        if let Some(stored) = state.schemas.get(&id) {
            // Parsed already: spare the next check parsing it again.
            let _ = stored.parsed.set(Some(parsed));
        }
        Ok(Registration { id, version })
    }

    /// Breaking changes of `new` against `subject`'s live versions, for
    /// `level`: the latest only, or every one if transitive; or only
    /// version `only`. Each change is named going from the writer's schema
    /// to the reader's (as Confluent's diffs): from the old schema to the
    /// new for BACKWARD, from the new to the old for FORWARD.
    pub(crate) fn messages_against(
        &self,
        state: &State,
        subject: &Subject,
        new: &Parsed,
        level: CompatibilityLevel,
        only: Option<i32>,
    ) -> Vec<String> {
        if level == CompatibilityLevel::None {
            return Vec::new();
        }
        let olds: Vec<(i32, i32)> = match only {
            Some(n) => vec![(n, subject.versions[&n].id)],
            None if level.transitive() => subject.live().map(|(n, v)| (n, v.id)).collect(),
            None => subject
                .latest_live()
                .map(|(n, v)| (n, v.id))
                .into_iter()
                .collect(),
        };
        let mut out = Vec::new();
        for (n, id) in olds {
            let Some(old) = state.parsed(id, self.limits.references_depth_max) else {
                out.push(format!("version {n}: its schema no longer parses"));
                continue;
            };
            if level.backward() {
                for m in types::incompatibilities(new, old) {
                    out.push(format!(
                        "{level}: the new schema cannot read data written with version {n}: {m}"
                    ));
                }
            }
            if level.forward() {
                for m in types::incompatibilities(old, new) {
                    out.push(format!(
                        "{level}: version {n} cannot read data written with the new schema: {m}"
                    ));
                }
            }
        }
        out.truncate(self.limits.messages_max);
        out
    }

    /// Tests `def` against `subject` (POST /compatibility/subjects/{s}/versions[/{v}]):
    /// against one version when `version` is given, else against what the
    /// subject's level checks. A subject with no versions is compatible.
    pub fn test_compatibility(
        &self,
        subject: &str,
        def: &SchemaDef,
        version: Option<VersionSpec>,
    ) -> Result<CompatibilityReport, SchemaError> {
        self.check_subject(subject)?;
        let state = self.lock();
        let parsed = self.check_def(&state, def)?;
        let level = Self::effective_level(&state, subject);
        let empty = Subject::default();
        let current = state.subjects.get(subject).unwrap_or(&empty);
        let only = match version {
            None => None,
            Some(spec) => {
                if current.live().next().is_none() {
                    return Err(SchemaError::SubjectNotFound(subject.to_owned()));
                }
                Some(Self::find_version(current, subject, spec, false)?)
            }
        };
        let messages = self.messages_against(&state, current, &parsed, level, only);
        Ok(CompatibilityReport {
            is_compatible: messages.is_empty(),
            messages,
        })
    }

    /// The number of version `spec` of `subject`; soft-deleted ones only
    /// when `deleted`.
    pub(crate) fn find_version(
        subject: &Subject,
        name: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<i32, SchemaError> {
        let not_found = |version| SchemaError::VersionNotFound {
            subject: name.to_owned(),
            version,
        };
        match spec {
            VersionSpec::Latest => {
                let latest = if deleted {
                    subject.versions.keys().next_back().copied()
                } else {
                    subject.latest_live().map(|(n, _)| n)
                };
                latest.ok_or_else(|| not_found(-1))
            }
            VersionSpec::Number(n) => match subject.versions.get(&n) {
                Some(v) if !v.deleted || deleted => Ok(n),
                _ => Err(not_found(n)),
            },
        }
    }

    /// Whether `def` is registered under `subject` (POST /subjects/{s}):
    /// its version there, soft-deleted ones too when `deleted`.
    pub fn lookup(
        &self,
        subject: &str,
        def: &SchemaDef,
        deleted: bool,
    ) -> Result<SubjectVersion, SchemaError> {
        let state = self.lock();
        let current = state
            .subjects
            .get(subject)
            .filter(|s| s.versions.values().any(|v| deleted || !v.deleted))
            .ok_or_else(|| SchemaError::SubjectNotFound(subject.to_owned()))?;
        let key = (
            def.schema_type,
            types::canonical(def.schema_type, &def.schema),
            def.references.clone(),
        );
        let not_found = || SchemaError::SchemaNotFound(format!("under subject '{subject}'"));
        let id = state.ids.get(&key).copied().ok_or_else(not_found)?;
        let (version, v) = current
            .versions
            .iter()
            .rev()
            .find(|(_, v)| v.id == id && (deleted || !v.deleted))
            .ok_or_else(not_found)?;
        Ok(SubjectVersion {
            subject: subject.to_owned(),
            version: *version,
            id,
            schema: state.schemas[&id].def.clone(),
            deleted: v.deleted,
        })
    }
}
