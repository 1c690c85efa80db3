//! The registry's state in memory and how each stored record changes it:
//! the one `apply` used both live (after the record is durable) and at
//! replay, so reopening gives back exactly what was acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use crate::error::SchemaError;
use crate::model::{CompatibilityLevel, Mode, Reference, SchemaDef, SchemaType};
use crate::store::Record;
use crate::types::{self, Parsed};

/// What makes two registrations the same schema (and so the same id).
pub(crate) type SchemaKey = (SchemaType, String, Vec<Reference>);

/// A schema known by id.
#[derive(Debug)]
pub(crate) struct Stored {
    pub def: SchemaDef,
    pub key: SchemaKey,
    /// Parsed on first use (so opening replays without parsing); `None`
    /// when it no longer parses (a reference it needs is gone).
    pub parsed: OnceLock<Option<Parsed>>,
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    pub id: i32,
    pub deleted: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Subject {
    pub versions: BTreeMap<i32, Version>,
    pub level: Option<CompatibilityLevel>,
    pub mode: Option<Mode>,
}

impl Subject {
    pub fn live(&self) -> impl DoubleEndedIterator<Item = (i32, Version)> + '_ {
        self.versions
            .iter()
            .filter(|(_, v)| !v.deleted)
            .map(|(n, v)| (*n, *v))
    }

    pub fn latest_live(&self) -> Option<(i32, Version)> {
        self.live().next_back()
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub schemas: BTreeMap<i32, Stored>,
    pub ids: HashMap<SchemaKey, i32>,
    /// How many versions (soft-deleted or not) use each id.
    pub uses: HashMap<i32, usize>,
    pub subjects: BTreeMap<String, Subject>,
    /// One more than the highest id ever assigned (never goes down).
    pub next_id: i32,
    pub level: Option<CompatibilityLevel>,
    pub mode: Option<Mode>,
    /// Why writes are refused until reopen (a write whose outcome is unknown).
    pub failed: Option<String>,
    /// Records replay could not decode.
    pub skipped: usize,
}

impl State {
    pub fn new() -> Self {
        Self {
            next_id: 1,
            ..Self::default()
        }
    }

    /// Every schema `references` needs, directly or not, as (name, text);
    /// references first, so a schema follows what it uses.
    pub fn resolve_references(
        &self,
        references: &[Reference],
        depth_max: usize,
    ) -> Result<Vec<(String, String)>, SchemaError> {
        let mut out: Vec<(String, String)> = Vec::new();
        self.resolve_into(references, depth_max, &mut out)?;
        Ok(out)
    }

    fn resolve_into(
        &self,
        references: &[Reference],
        depth_left: usize,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), SchemaError> {
        if references.is_empty() {
            return Ok(());
        }
        if depth_left == 0 {
            return Err(SchemaError::InvalidSchema(
                "references nest too deep".to_owned(),
            ));
        }
        for r in references {
            let missing = || {
                SchemaError::InvalidSchema(format!(
                    "reference '{}' to version {} of subject '{}' does not exist",
                    r.name, r.version, r.subject
                ))
            };
            let subject = self.subjects.get(&r.subject).ok_or_else(missing)?;
            let version = if r.version == -1 {
                subject.latest_live().map(|(_, v)| v)
            } else {
                subject.versions.get(&r.version).copied()
            };
            let stored = version
                .and_then(|v| self.schemas.get(&v.id))
                .ok_or_else(missing)?;
            self.resolve_into(&stored.def.references, depth_left - 1, out)?;
            if !out.iter().any(|(n, _)| n == &r.name) {
                out.push((r.name.clone(), stored.def.schema.clone()));
            }
        }
        Ok(())
    }

    /// Schema `id` parsed (on first use), `None` if unknown or it no
    /// longer parses.
    pub fn parsed(&self, id: i32, depth_max: usize) -> Option<&Parsed> {
        let stored = self.schemas.get(&id)?;
        stored
            .parsed
            .get_or_init(|| self.parse(&stored.def, depth_max).ok())
            .as_ref()
    }

    /// Parses `def` with its references resolved.
    pub fn parse(&self, def: &SchemaDef, depth_max: usize) -> Result<Parsed, SchemaError> {
        let refs = self.resolve_references(&def.references, depth_max)?;
        types::parse(def.schema_type, &def.schema, &refs)
    }

    /// Applies one durable record.
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Version {
                subject,
                version,
                id,
                schema_type,
                schema,
                references,
                deleted,
            } => {
                if !self.schemas.contains_key(&id) {
                    let def = SchemaDef {
                        schema_type,
                        schema,
                        references,
                    };
                    let key = (
                        schema_type,
                        types::canonical(schema_type, &def.schema),
                        def.references.clone(),
                    );
                    self.ids.entry(key.clone()).or_insert(id);
                    let parsed = OnceLock::new();
                    self.schemas.insert(id, Stored { def, key, parsed });
                }
                self.next_id = self.next_id.max(id.saturating_add(1));
                let subject = self.subjects.entry(subject).or_default();
                if let Some(old) = subject.versions.insert(version, Version { id, deleted }) {
                    self.unuse(old.id);
                }
                *self.uses.entry(id).or_default() += 1;
            }
            Record::VersionGone { subject, version } => {
                let gone = self
                    .subjects
                    .get_mut(&subject)
                    .and_then(|s| s.versions.remove(&version));
                if let Some(old) = gone {
                    self.unuse(old.id);
                }
                self.drop_if_empty(&subject);
            }
            Record::Config {
                subject: None,
                level,
            } => self.level = level,
            Record::Config {
                subject: Some(s),
                level,
            } => {
                if let Some(subject) = self.subject_for_config(&s, level.is_some()) {
                    subject.level = level;
                }
                self.drop_if_empty(&s);
            }
            // Kept by the registry itself, off this state's lock (see
            // `Registry::apply`); never routed here.
            Record::CategoryValidation { .. } => {}
            Record::Mode {
                subject: None,
                mode,
            } => self.mode = mode,
            Record::Mode {
                subject: Some(s),
                mode,
            } => {
                if let Some(subject) = self.subject_for_config(&s, mode.is_some()) {
                    subject.mode = mode;
                }
                self.drop_if_empty(&s);
            }
        }
    }

    fn subject_for_config(&mut self, name: &str, create: bool) -> Option<&mut Subject> {
        if create {
            Some(self.subjects.entry(name.to_owned()).or_default())
        } else {
            self.subjects.get_mut(name)
        }
    }

    fn drop_if_empty(&mut self, name: &str) {
        if self
            .subjects
            .get(name)
            .is_some_and(|s| s.versions.is_empty() && s.level.is_none() && s.mode.is_none())
        {
            self.subjects.remove(name);
        }
    }

    fn unuse(&mut self, id: i32) {
        if let Some(n) = self.uses.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.uses.remove(&id);
            }
        }
    }

    /// Whether any version (soft-deleted or not) still names schema `id`.
    pub fn id_in_use(&self, id: i32) -> bool {
        self.uses.contains_key(&id)
    }

    /// Live versions whose schemas reference `subject` version `version`,
    /// as "subject version n".
    pub fn referrers(&self, subject: &str, version: i32) -> Vec<(String, i32, i32)> {
        let mut out = Vec::new();
        for (name, s) in &self.subjects {
            for (n, v) in s.live() {
                let refs = self
                    .schemas
                    .get(&v.id)
                    .map(|st| &st.def.references[..])
                    .unwrap_or(&[]);
                if refs
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
                {
                    out.push((name.clone(), n, v.id));
                }
            }
        }
        out
    }
}
