//! Upcasters: functions that carry an event's data from one version of
//! its type's schema to the next, registered per event type name and
//! chained, so an event written many versions ago is read in the newest
//! shape. The SDK applies them wherever it reads stored events (a
//! client's reads, so aggregates' loads and projections; consumers; the
//! event registry; the consumer runtime), and handlers only ever see the
//! current version.
//!
//! A type's **current version** is the `version` its Rust type declares
//! in [`Event::TYPES`] (`= "AccountOpened" v 3` in [`crate::events!`]):
//! [`Upcasters::declare`] takes it from there. A type no Rust type
//! declared has the top of its chain as its current version (the version
//! its last upcaster produces). Each upcaster goes from version `N` to
//! `N + 1`, one per `N`, so a chain cannot loop; a missing step is a gap,
//! found when an event needs it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::is_json;
use crate::projection::HandlerError;
use crate::{Envelope, Error, Event};

/// Most upcasters one event type may have (its chain's length).
pub const UPCAST_CHAIN_MAX: usize = 1_000;
/// Most upcasters one [`Upcasters`] holds, over every type.
pub const UPCASTERS_MAX: usize = 100_000;
/// Most event type names one [`Upcasters`] knows.
pub const UPCAST_TYPES_MAX: usize = 10_000;

type StepFn = dyn Fn(Value) -> Result<Value, HandlerError> + Send + Sync;

#[derive(Clone, Default)]
struct Chain {
    /// The version declared current by a Rust type, if one was.
    declared: Option<u32>,
    /// Upcasters by the version they read; each writes the next one.
    steps: BTreeMap<u32, Arc<StepFn>>,
}

impl Chain {
    /// The version events of this type are carried to.
    fn current(&self) -> Option<u32> {
        self.declared
            .or_else(|| self.steps.keys().next_back().map(|from| from + 1))
    }
}

/// Upcasters by event type name. Cheap to clone (the functions are
/// shared).
#[derive(Clone, Default)]
pub struct Upcasters {
    chains: HashMap<String, Chain>,
    steps_total: usize,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (name, chain) in &self.chains {
            let froms: Vec<u32> = chain.steps.keys().copied().collect();
            m.entry(name, &(chain.current(), froms));
        }
        m.finish()
    }
}

fn invalid(event_type: &str, reason: String) -> Error {
    Error::InvalidUpcaster {
        event_type: event_type.to_owned(),
        reason,
    }
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no upcaster and no current version is registered.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    fn chain(&mut self, event_type: &str) -> Result<&mut Chain, Error> {
        if !self.chains.contains_key(event_type) && self.chains.len() >= UPCAST_TYPES_MAX {
            return Err(invalid(
                event_type,
                format!("upcasters know at most {UPCAST_TYPES_MAX} event types"),
            ));
        }
        Ok(self.chains.entry(event_type.to_owned()).or_default())
    }

    /// Declares the current version of each of `E`'s type names: the
    /// highest version `E` lists for it. Events of older versions are
    /// carried there; a type declared current by two Rust types at
    /// different versions, or an upcaster reading the current version or
    /// a later one, is an error.
    pub fn declare<E: Event>(&mut self) -> Result<&mut Self, Error> {
        let mut newest: BTreeMap<&str, u32> = BTreeMap::new();
        for t in E::TYPES {
            let v = newest.entry(t.name).or_insert(t.version);
            *v = (*v).max(t.version);
        }
        for (name, version) in newest {
            self.set_current(name, version)?;
        }
        Ok(self)
    }

    /// Declares `version` the current version of `event_type` (for a type
    /// no Rust type stands for, e.g. one only projections read).
    pub fn set_current(&mut self, event_type: &str, version: u32) -> Result<&mut Self, Error> {
        if version == 0 {
            return Err(invalid(event_type, "versions start at 1".to_owned()));
        }
        let chain = self.chain(event_type)?;
        match chain.declared {
            Some(v) if v != version => {
                return Err(invalid(
                    event_type,
                    format!("declared current at v{v} already, now at v{version}"),
                ));
            }
            _ => {}
        }
        if let Some(from) = chain.steps.keys().next_back()
            && *from >= version
        {
            return Err(invalid(
                event_type,
                format!(
                    "an upcaster reads v{from}, which is not older than the current v{version}"
                ),
            ));
        }
        chain.declared = Some(version);
        Ok(self)
    }

    /// Registers the upcaster of `event_type` from `from_version` to
    /// `from_version + 1`, on the data as JSON. A second one for the same
    /// step, one at or past the declared current version, or more than
    /// the limits allow, is an error.
    pub fn add(
        &mut self,
        event_type: &str,
        from_version: u32,
        upcast: impl Fn(Value) -> Result<Value, HandlerError> + Send + Sync + 'static,
    ) -> Result<&mut Self, Error> {
        if from_version == 0 {
            return Err(invalid(event_type, "versions start at 1".to_owned()));
        }
        if from_version == u32::MAX {
            return Err(invalid(
                event_type,
                "no version follows u32::MAX".to_owned(),
            ));
        }
        if self.steps_total >= UPCASTERS_MAX {
            return Err(invalid(
                event_type,
                format!("at most {UPCASTERS_MAX} upcasters in all"),
            ));
        }
        let chain = self.chain(event_type)?;
        if chain.steps.contains_key(&from_version) {
            return Err(invalid(
                event_type,
                format!("an upcaster from v{from_version} is registered already"),
            ));
        }
        if chain.steps.len() >= UPCAST_CHAIN_MAX {
            return Err(invalid(
                event_type,
                format!("at most {UPCAST_CHAIN_MAX} upcasters per event type"),
            ));
        }
        if let Some(current) = chain.declared
            && from_version >= current
        {
            return Err(invalid(
                event_type,
                format!(
                    "an upcaster from v{from_version} reads a version not older than the current v{current}"
                ),
            ));
        }
        chain.steps.insert(from_version, Arc::new(upcast));
        self.steps_total += 1;
        Ok(self)
    }

    /// [`Self::add`] over typed shapes: the old version's data decoded as
    /// `Old`, the new one encoded from `New` (for shapes still kept as
    /// Rust types).
    pub fn add_typed<Old, New>(
        &mut self,
        event_type: &str,
        from_version: u32,
        upcast: impl Fn(Old) -> New + Send + Sync + 'static,
    ) -> Result<&mut Self, Error>
    where
        Old: DeserializeOwned,
        New: Serialize,
    {
        self.add(event_type, from_version, move |v| {
            let old: Old = serde_json::from_value(v)?;
            Ok(serde_json::to_value(upcast(old))?)
        })
    }

    /// The version events of `event_type` are read as, if any upcaster or
    /// declaration concerns it.
    pub fn current(&self, event_type: &str) -> Option<u32> {
        self.chains.get(event_type).and_then(Chain::current)
    }

    /// Whether `event` is older than its type's current version.
    pub fn needs(&self, event: &Envelope) -> bool {
        self.current(&event.event_type)
            .is_some_and(|c| event.dataversion < c)
    }

    /// `event` in its type's current version: its data carried through
    /// each upcaster from its version up, `dataversion` set to the current
    /// one, and `dataschema` cleared (it named the old version's schema).
    /// An event already current (or of a type no upcaster concerns) is
    /// returned unchanged. A missing step is [`Error::UpcastGap`], an
    /// upcaster's failure (or data that is not JSON)
    /// [`Error::UpcastFailed`], both naming the event.
    pub fn upcast(&self, mut event: Envelope) -> Result<Envelope, Error> {
        let Some(chain) = self.chains.get(&event.event_type) else {
            return Ok(event);
        };
        let Some(current) = chain.current() else {
            return Ok(event);
        };
        let from = event.dataversion;
        if from >= current {
            return Ok(event);
        }
        // Every step from the event's version to the current one must be
        // there before any runs.
        let mut expected = from;
        for step in chain.steps.range(from..current).map(|(v, _)| *v) {
            if step != expected {
                break;
            }
            expected += 1;
        }
        if expected < current {
            return Err(Error::UpcastGap {
                id: event.id.clone(),
                event_type: event.event_type.clone(),
                version: from,
                missing: expected,
                current,
            });
        }
        let failed = |event: &Envelope, version: u32, reason: String| Error::UpcastFailed {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            version,
            reason,
        };
        if !is_json(&event.datacontenttype) {
            let reason = format!("its data is {}, not JSON", event.datacontenttype);
            return Err(failed(&event, from, reason));
        }
        let mut value: Value = serde_json::from_slice(&event.data)
            .map_err(|e| failed(&event, from, format!("its data is not JSON: {e}")))?;
        for (version, step) in chain.steps.range(from..current) {
            value = step(value).map_err(|e| {
                failed(
                    &event,
                    *version,
                    format!("upcaster to v{}: {e}", version + 1),
                )
            })?;
        }
        event.data =
            serde_json::to_vec(&value).map_err(|e| failed(&event, current - 1, e.to_string()))?;
        event.dataversion = current;
        event.dataschema = None;
        Ok(event)
    }

    /// [`Self::upcast`] on a borrowed event, cloning it only when it needs
    /// upcasting.
    pub(crate) fn upcast_ref<'e>(
        &self,
        event: &'e Envelope,
    ) -> Result<std::borrow::Cow<'e, Envelope>, Error> {
        if self.needs(event) {
            self.upcast(event.clone()).map(std::borrow::Cow::Owned)
        } else {
            Ok(std::borrow::Cow::Borrowed(event))
        }
    }
}
