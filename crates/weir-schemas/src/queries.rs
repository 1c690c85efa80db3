//! The registry's reads (subjects, versions, schemas by id), deletes
//! (soft, then permanent, as Confluent), and the compatibility and mode
//! settings per subject and global.

use crate::error::SchemaError;
use crate::model::{CompatibilityLevel, Mode, SchemaDef, SubjectVersion, VersionSpec};
use crate::registry::Registry;
use crate::state::State;
use crate::store::Record;

impl Registry {
    /// Subjects with a live version (GET /subjects), those with only
    /// soft-deleted ones too when `deleted`; names starting with `prefix`.
    pub fn subjects(&self, prefix: &str, deleted: bool) -> Vec<String> {
        let state = self.lock();
        state
            .subjects
            .iter()
            .filter(|(name, s)| {
                name.starts_with(prefix) && s.versions.values().any(|v| deleted || !v.deleted)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every version of the subjects starting with `prefix` (GET /schemas),
    /// soft-deleted ones too when `deleted`, only each subject's latest
    /// when `latest_only`; by subject, then version.
    pub fn schemas(&self, prefix: &str, deleted: bool, latest_only: bool) -> Vec<SubjectVersion> {
        let state = self.lock();
        let mut out = Vec::new();
        for (name, s) in state.subjects.iter().filter(|(n, _)| n.starts_with(prefix)) {
            let versions: Vec<_> = s
                .versions
                .iter()
                .filter(|(_, v)| deleted || !v.deleted)
                .collect();
            let take = if latest_only {
                versions.len().saturating_sub(1)
            } else {
                0
            };
            for (n, v) in versions.into_iter().skip(take) {
                out.push(SubjectVersion {
                    subject: name.clone(),
                    version: *n,
                    id: v.id,
                    schema: state.schemas[&v.id].def.clone(),
                    deleted: v.deleted,
                });
            }
        }
        out
    }

    /// A subject's version numbers (GET /subjects/{s}/versions).
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, SchemaError> {
        let state = self.lock();
        let versions: Vec<i32> = state
            .subjects
            .get(subject)
            .map(|s| {
                s.versions
                    .iter()
                    .filter(|(_, v)| deleted || !v.deleted)
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(SchemaError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    /// Schema `id` (GET /schemas/ids/{id}), while some version, even a
    /// soft-deleted one, uses it.
    pub fn schema_by_id(&self, id: i32) -> Result<SchemaDef, SchemaError> {
        let state = self.lock();
        match state.schemas.get(&id) {
            Some(s) if state.id_in_use(id) => Ok(s.def.clone()),
            _ => Err(SchemaError::SchemaNotFound(format!("with id {id}"))),
        }
    }

    /// The (subject, version) pairs using schema `id` (GET
    /// /schemas/ids/{id}/versions; its subjects for /subjects).
    pub fn versions_by_id(
        &self,
        id: i32,
        deleted: bool,
    ) -> Result<Vec<(String, i32)>, SchemaError> {
        let state = self.lock();
        let out: Vec<(String, i32)> = state
            .subjects
            .iter()
            .flat_map(|(name, s)| {
                s.versions
                    .iter()
                    .filter(|(_, v)| v.id == id && (deleted || !v.deleted))
                    .map(move |(n, _)| (name.clone(), *n))
            })
            .collect();
        if out.is_empty() {
            return Err(SchemaError::SchemaNotFound(format!("with id {id}")));
        }
        Ok(out)
    }

    /// The subjects using schema `id` (GET /schemas/ids/{id}/subjects).
    pub fn subjects_by_id(&self, id: i32, deleted: bool) -> Result<Vec<String>, SchemaError> {
        let mut subjects: Vec<String> = self
            .versions_by_id(id, deleted)?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        subjects.dedup();
        Ok(subjects)
    }

    /// One version of a subject (GET /subjects/{s}/versions/{v}).
    pub fn subject_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion, SchemaError> {
        let state = self.lock();
        let s = Self::subject_of(&state, subject, deleted)?;
        let n = Self::find_version(s, subject, spec, deleted)?;
        let v = s.versions[&n];
        Ok(SubjectVersion {
            subject: subject.to_owned(),
            version: n,
            id: v.id,
            schema: state.schemas[&v.id].def.clone(),
            deleted: v.deleted,
        })
    }

    /// Ids of the live schemas referencing a version (GET
    /// /subjects/{s}/versions/{v}/referencedby).
    pub fn referenced_by(&self, subject: &str, spec: VersionSpec) -> Result<Vec<i32>, SchemaError> {
        let state = self.lock();
        let s = Self::subject_of(&state, subject, false)?;
        let n = Self::find_version(s, subject, spec, false)?;
        let mut ids: Vec<i32> = state
            .referrers(subject, n)
            .into_iter()
            .map(|(_, _, id)| id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn subject_of<'s>(
        state: &'s State,
        subject: &str,
        deleted: bool,
    ) -> Result<&'s crate::state::Subject, SchemaError> {
        state
            .subjects
            .get(subject)
            .filter(|s| s.versions.values().any(|v| deleted || !v.deleted))
            .ok_or_else(|| SchemaError::SubjectNotFound(subject.to_owned()))
    }

    fn check_writable(state: &State, subject: &str) -> Result<(), SchemaError> {
        if Self::effective_mode(state, subject) == Mode::ReadOnly {
            return Err(SchemaError::OperationNotPermitted(format!(
                "subject '{subject}' is in READONLY mode"
            )));
        }
        Ok(())
    }

    fn check_unreferenced(state: &State, subject: &str, version: i32) -> Result<(), SchemaError> {
        if let Some((by, n, _)) = state.referrers(subject, version).into_iter().next() {
            return Err(SchemaError::ReferenceExists {
                subject: subject.to_owned(),
                version,
                by: format!("version {n} of subject '{by}'"),
            });
        }
        Ok(())
    }

    /// Deletes one version (DELETE /subjects/{s}/versions/{v}): soft first,
    /// then `permanent` (which needs the soft delete before it). `latest`
    /// is the latest live version for a soft delete, the latest for a
    /// permanent one. Returns the version number.
    pub fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, SchemaError> {
        let mut state = self.lock();
        Self::check_writable(&state, subject)?;
        let s = Self::subject_of(&state, subject, permanent)?;
        // A number names a soft-deleted version too (40406 on a second soft
        // delete); `latest` is the latest live one for a soft delete.
        let n = Self::find_version(s, subject, spec, permanent || spec != VersionSpec::Latest)?;
        let v = s.versions[&n];
        let record = match (permanent, v.deleted) {
            (false, true) => {
                return Err(SchemaError::VersionSoftDeleted {
                    subject: subject.to_owned(),
                    version: n,
                });
            }
            (false, false) => {
                Self::check_unreferenced(&state, subject, n)?;
                let def = state.schemas[&v.id].def.clone();
                Record::Version {
                    subject: subject.to_owned(),
                    version: n,
                    id: v.id,
                    schema_type: def.schema_type,
                    schema: def.schema,
                    references: def.references,
                    deleted: true,
                }
            }
            (true, false) => {
                return Err(SchemaError::VersionNotSoftDeleted {
                    subject: subject.to_owned(),
                    version: n,
                });
            }
            (true, true) => Record::VersionGone {
                subject: subject.to_owned(),
                version: n,
            },
        };
        self.write(&mut state, record)?;
        Ok(n)
    }

    /// Deletes a subject (DELETE /subjects/{s}): soft-deletes every live
    /// version, or with `permanent` removes a soft-deleted subject's
    /// versions for good. Returns the versions deleted.
    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>, SchemaError> {
        let mut state = self.lock();
        Self::check_writable(&state, subject)?;
        let s = Self::subject_of(&state, subject, true)?;
        let live: Vec<i32> = s.live().map(|(n, _)| n).collect();
        if permanent && !live.is_empty() {
            return Err(SchemaError::SubjectNotSoftDeleted(subject.to_owned()));
        }
        if !permanent && live.is_empty() {
            return Err(SchemaError::SubjectSoftDeleted(subject.to_owned()));
        }
        let all: Vec<i32> = s.versions.keys().copied().collect();
        for n in if permanent { &all } else { &live } {
            Self::check_unreferenced(&state, subject, *n)?;
        }
        if permanent {
            for n in &all {
                self.write(
                    &mut state,
                    Record::VersionGone {
                        subject: subject.to_owned(),
                        version: *n,
                    },
                )?;
            }
            return Ok(all);
        }
        for n in &live {
            let v = state.subjects[subject].versions[n];
            let def = state.schemas[&v.id].def.clone();
            let record = Record::Version {
                subject: subject.to_owned(),
                version: *n,
                id: v.id,
                schema_type: def.schema_type,
                schema: def.schema,
                references: def.references,
                deleted: true,
            };
            self.write(&mut state, record)?;
        }
        Ok(live)
    }

    /// The level set on `subject` (or globally for `None`), if any (GET
    /// /config[/{s}]; Confluent answers 40408 for an unset subject level
    /// unless asked for the default).
    pub fn compatibility(&self, subject: Option<&str>) -> Option<CompatibilityLevel> {
        let state = self.lock();
        match subject {
            None => state.level,
            Some(s) => state.subjects.get(s).and_then(|s| s.level),
        }
    }

    /// The level set on `subject` itself (GET /config/{s} without
    /// defaultToGlobal): 40408 when it has none.
    pub fn subject_compatibility(&self, subject: &str) -> Result<CompatibilityLevel, SchemaError> {
        self.compatibility(Some(subject))
            .ok_or_else(|| SchemaError::SubjectLevelCompatibilityNotConfigured(subject.to_owned()))
    }

    /// The mode set on `subject` itself (GET /mode/{s} without
    /// defaultToGlobal): 40409 when it has none.
    pub fn subject_mode(&self, subject: &str) -> Result<Mode, SchemaError> {
        self.mode(Some(subject))
            .ok_or_else(|| SchemaError::SubjectLevelModeNotConfigured(subject.to_owned()))
    }

    /// The level in force for `subject` (its own, the global, or BACKWARD).
    pub fn effective_compatibility(&self, subject: &str) -> CompatibilityLevel {
        Self::effective_level(&self.lock(), subject)
    }

    /// Sets the level of `subject` (or the global one) (PUT /config[/{s}]).
    pub fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<(), SchemaError> {
        self.config_record(
            subject,
            Record::Config {
                subject: subject.map(str::to_owned),
                level: Some(level),
            },
        )
    }

    /// Removes the level of `subject` (or the global one, back to BACKWARD)
    /// (DELETE /config[/{s}]); returns what it was.
    pub fn delete_compatibility(
        &self,
        subject: Option<&str>,
    ) -> Result<CompatibilityLevel, SchemaError> {
        let before = self.compatibility(subject).unwrap_or_default();
        self.config_record(
            subject,
            Record::Config {
                subject: subject.map(str::to_owned),
                level: None,
            },
        )?;
        Ok(before)
    }

    /// The mode set on `subject` (or globally), if any (GET /mode[/{s}]).
    pub fn mode(&self, subject: Option<&str>) -> Option<Mode> {
        let state = self.lock();
        match subject {
            None => state.mode,
            Some(s) => state.subjects.get(s).and_then(|s| s.mode),
        }
    }

    /// The mode in force for `subject`.
    pub fn effective_mode_of(&self, subject: &str) -> Mode {
        Self::effective_mode(&self.lock(), subject)
    }

    /// Sets the mode of `subject` (or the global one) (PUT /mode[/{s}]).
    /// IMPORT needs the subject (or, globally, the registry) to hold no
    /// schema unless `force`, as Confluent.
    pub fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<(), SchemaError> {
        if let Some(s) = subject {
            self.check_subject(s)?;
        }
        let mut state = self.lock();
        if mode == Mode::Import && !force {
            let has_schemas = match subject {
                None => state.subjects.values().any(|s| !s.versions.is_empty()),
                Some(s) => state
                    .subjects
                    .get(s)
                    .is_some_and(|s| !s.versions.is_empty()),
            };
            if has_schemas {
                return Err(SchemaError::OperationNotPermitted(
                    "IMPORT mode needs no schema registered (or force)".to_owned(),
                ));
            }
        }
        let record = Record::Mode {
            subject: subject.map(str::to_owned),
            mode: Some(mode),
        };
        self.write(&mut state, record)
    }

    /// Removes the mode of `subject` (DELETE /mode/{s}); returns what it was.
    pub fn delete_mode(&self, subject: Option<&str>) -> Result<Mode, SchemaError> {
        let before = self.mode(subject).unwrap_or_default();
        let mut state = self.lock();
        self.write(
            &mut state,
            Record::Mode {
                subject: subject.map(str::to_owned),
                mode: None,
            },
        )?;
        Ok(before)
    }

    fn config_record(&self, subject: Option<&str>, record: Record) -> Result<(), SchemaError> {
        let mut state = self.lock();
        if let Some(s) = subject {
            self.check_subject(s)?;
            Self::check_writable(&state, s)?;
        } else if state.mode == Some(Mode::ReadOnly) {
            return Err(SchemaError::OperationNotPermitted(
                "the registry is in READONLY mode".to_owned(),
            ));
        }
        self.write(&mut state, record)
    }
}
