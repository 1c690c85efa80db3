//! The event registry: which Rust type stands for each event type name
//! and data version, so a reader that sees events of many kinds (a
//! consumer of all events, a tool) decodes each into its Rust type, and an
//! event no type was registered for is a clear error.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::{Envelope, Error, Event, Upcasters};

/// Most event types one registry holds.
pub const REGISTRY_TYPES_MAX: usize = 10_000;

type DecodeFn = fn(&str, u32, &[u8]) -> Option<Result<Box<dyn Any + Send>, serde_json::Error>>;

#[derive(Debug, Clone, Copy)]
struct Entry {
    rust_type: &'static str,
    type_id: TypeId,
    decode: DecodeFn,
}

/// Event type name and version to Rust type, with the upcasters applied
/// before decoding.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    entries: HashMap<(String, u32), Entry>,
    upcasters: Arc<Upcasters>,
}

fn decode_boxed<E: Event>(
    name: &str,
    version: u32,
    data: &[u8],
) -> Option<Result<Box<dyn Any + Send>, serde_json::Error>> {
    E::decode(name, version, data).map(|r| r.map(|e| Box::new(e) as Box<dyn Any + Send>))
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every event type of `E`. A type name and version already
    /// registered to another Rust type is an error.
    pub fn register<E: Event>(&mut self) -> Result<&mut Self, Error> {
        let entry = Entry {
            rust_type: std::any::type_name::<E>(),
            type_id: TypeId::of::<E>(),
            decode: decode_boxed::<E>,
        };
        for t in E::TYPES {
            if let Some(old) = self.entries.get(&(t.name.to_owned(), t.version))
                && old.type_id != entry.type_id
            {
                return Err(Error::DuplicateEventType {
                    event_type: t.name.to_owned(),
                    version: t.version,
                    first: old.rust_type,
                    second: entry.rust_type,
                });
            }
        }
        if self.entries.len() + E::TYPES.len() > REGISTRY_TYPES_MAX {
            return Err(Error::Limit {
                reason: format!("a registry holds at most {REGISTRY_TYPES_MAX} event types"),
            });
        }
        for t in E::TYPES {
            self.entries.insert((t.name.to_owned(), t.version), entry);
        }
        Ok(self)
    }

    /// Applies `upcasters` before every decode: an event older than its
    /// type's current version is decoded as the current version.
    pub fn with_upcasters(&mut self, upcasters: Upcasters) -> &mut Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// The Rust type registered for an event type and version.
    pub fn rust_type(&self, event_type: &str, version: u32) -> Option<&'static str> {
        self.entries
            .get(&(event_type.to_owned(), version))
            .map(|e| e.rust_type)
    }

    /// The event's data as the Rust type registered for it (downcast with
    /// `Box::<dyn Any>::downcast`).
    pub fn decode(&self, event: &Envelope) -> Result<Box<dyn Any + Send>, Error> {
        let event = &*self.upcasters.upcast_ref(event)?;
        let entry = self.entry(event)?;
        match (entry.decode)(&event.event_type, event.dataversion, &event.data) {
            Some(Ok(b)) => Ok(b),
            Some(Err(e)) => Err(Error::BadEventData {
                id: event.id.clone(),
                event_type: event.event_type.clone(),
                reason: e.to_string(),
            }),
            None => Err(unknown(event)),
        }
    }

    /// The event's data as `E`, which must be the Rust type registered for
    /// its type and version.
    pub fn decode_as<E: Event>(&self, event: &Envelope) -> Result<E, Error> {
        let event = &*self.upcasters.upcast_ref(event)?;
        let entry = self.entry(event)?;
        if entry.type_id != TypeId::of::<E>() {
            return Err(Error::BadEventData {
                id: event.id.clone(),
                event_type: event.event_type.clone(),
                reason: format!(
                    "registered as {}, asked for as {}",
                    entry.rust_type,
                    std::any::type_name::<E>()
                ),
            });
        }
        event.decode()
    }

    fn entry(&self, event: &Envelope) -> Result<&Entry, Error> {
        self.entries
            .get(&(event.event_type.clone(), event.dataversion))
            .ok_or_else(|| unknown(event))
    }
}

fn unknown(event: &Envelope) -> Error {
    Error::UnknownEventType {
        event_type: event.event_type.clone(),
        version: event.dataversion,
    }
}
