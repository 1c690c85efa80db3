//! The event curtain: the boundary between a service's internal events
//! and the contract events it publishes. A [`Curtain`] follows an
//! internal stream category (upcast by its client, so it sees each event
//! in its current internal shape), maps each event with the function
//! registered for its type to public events, and publishes them: to a
//! public stream per internal stream (`<public category>-<id>`), or to a
//! sink of the caller's (a Kafka topic through
//! [`crate::service::Publisher`], say). Internal types it neither maps
//! nor drops stop it with [`Error::Curtain`], so a new internal event is
//! a decision, never a silent leak or loss. Consumers see only the public
//! shapes: internal events may change (with upcasters) without them
//! noticing.
//!
//! Delivery is at least once with stable ids: a public event's id is
//! derived from the curtain's name, the internal event's id and the
//! mapping's index, so a page republished after a crash carries the same
//! ids (the store recognises them as a retry). The checkpoint (the next
//! internal position) lives in `<read models dir>/<name>.curtain.sqlite`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use crate::projection::{HandlerError, open_db, validate_name};
use crate::{Causation, Client, Envelope, Error, Event, ExpectedVersion};

/// Most internal event types one curtain maps or drops.
pub const CURTAIN_TYPES_MAX: usize = 10_000;
/// Most public events one internal event maps to.
pub const CURTAIN_FANOUT_MAX: usize = 100;

type MapFn = Arc<dyn Fn(&Envelope) -> Result<Vec<Envelope>, HandlerError> + Send + Sync>;
type SinkFn = Arc<dyn Fn(&Envelope, &[Envelope]) -> Result<(), Error> + Send + Sync>;

/// Builds a [`Curtain`].
pub struct CurtainBuilder {
    name: String,
    internal_category: String,
    public_category: String,
    maps: HashMap<String, MapFn>,
    dropped: HashSet<String>,
    sink: Option<SinkFn>,
    page_events: usize,
}

/// What one pass of a curtain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CurtainPass {
    /// Internal events read.
    pub read: u64,
    /// Public events published.
    pub published: u64,
    /// Internal events that published nothing (dropped types, or a
    /// mapping that returned none).
    pub dropped: u64,
}

/// A running boundary from an internal category to public events.
pub struct Curtain {
    name: String,
    client: Client,
    internal_category: String,
    public_category: String,
    maps: HashMap<String, MapFn>,
    dropped: HashSet<String>,
    sink: Option<SinkFn>,
    page_events: usize,
    conn: Mutex<(Connection, u64)>,
}

impl std::fmt::Debug for CurtainBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurtainBuilder")
            .field("name", &self.name)
            .field("mapped", &self.maps.len())
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Curtain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Curtain")
            .field("name", &self.name)
            .field("internal_category", &self.internal_category)
            .field("public_category", &self.public_category)
            .finish_non_exhaustive()
    }
}

impl Curtain {
    /// A curtain named `name` (it names its checkpoint file) from the
    /// streams of `internal_category` to `public_category`.
    pub fn builder(
        name: impl Into<String>,
        internal_category: impl Into<String>,
        public_category: impl Into<String>,
    ) -> CurtainBuilder {
        CurtainBuilder {
            name: name.into(),
            internal_category: internal_category.into(),
            public_category: public_category.into(),
            maps: HashMap::new(),
            dropped: HashSet::new(),
            sink: None,
            page_events: 500,
        }
    }
}

impl CurtainBuilder {
    fn check_new(&self, event_type: &str) -> Result<(), Error> {
        let bad = |reason: String| Error::Config {
            reason: format!("curtain {}: {reason}", self.name),
        };
        if self.maps.contains_key(event_type) || self.dropped.contains(event_type) {
            return Err(bad(format!("{event_type:?} is mapped or dropped already")));
        }
        if self.maps.len() + self.dropped.len() >= CURTAIN_TYPES_MAX {
            return Err(bad(format!("at most {CURTAIN_TYPES_MAX} internal types")));
        }
        Ok(())
    }

    /// Maps every internal type `I` stands for with `f`: the public
    /// events (of type `P`) each internal event becomes, none to drop
    /// this one.
    pub fn map<I: Event, P: Event>(
        mut self,
        f: impl Fn(&I) -> Vec<P> + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let f = Arc::new(f);
        let mut names: Vec<&str> = I::TYPES.iter().map(|t| t.name).collect();
        names.dedup();
        for name in names {
            self.check_new(name)?;
            let f = f.clone();
            let map: MapFn = Arc::new(move |internal: &Envelope| {
                let event: I = internal.decode().map_err(|e| e.to_string())?;
                let causation = Causation::caused_by(internal);
                f(&event)
                    .iter()
                    .map(|p| {
                        let mut e = Envelope::new(p, &internal.source, &causation)
                            .map_err(|e| e.to_string())?;
                        e.subject = internal.subject.clone();
                        Ok(e)
                    })
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(HandlerError::from)
            });
            self.maps.insert(name.to_owned(), map);
        }
        Ok(self)
    }

    /// Drops every event of the internal type `event_type`: it is
    /// internal only.
    pub fn drop_type(mut self, event_type: &str) -> Result<Self, Error> {
        self.check_new(event_type)?;
        self.dropped.insert(event_type.to_owned());
        Ok(self)
    }

    /// Publishes through `sink` instead of the public streams: it gets
    /// the internal event and the public events it maps to, and returns
    /// once they are published (an error stops the pass; the page is
    /// published again, with the same ids, next time).
    pub fn sink(
        mut self,
        sink: impl Fn(&Envelope, &[Envelope]) -> Result<(), Error> + Send + Sync + 'static,
    ) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Internal events read per pass (at most [`crate::READ_PAGE_MAX`]).
    pub fn page_events(mut self, n: usize) -> Self {
        self.page_events = n.clamp(1, crate::READ_PAGE_MAX);
        self
    }

    /// Opens the curtain on `client` (its upcasters apply to the internal
    /// events; its bindings to the public ones), at its checkpoint.
    pub fn open(self, client: &Client) -> Result<Curtain, Error> {
        validate_name(&self.name)?;
        for c in [&self.internal_category, &self.public_category] {
            if c.is_empty() || c.contains('-') {
                return Err(Error::Config {
                    reason: format!("curtain {}: {c:?} is not a stream category", self.name),
                });
            }
        }
        let name = self.name.clone();
        let dir = client.read_models_dir();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(&name, "creating its directory", e))?;
        let conn = open_db(&name, &dir.join(format!("{name}.curtain.sqlite")))?;
        let sql = |e| Error::sqlite(&name, e);
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS weir_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 0), position INTEGER NOT NULL);
             INSERT OR IGNORE INTO weir_checkpoint VALUES (0, 0);",
        )
        .map_err(sql)?;
        let checkpoint: i64 = conn
            .query_row("SELECT position FROM weir_checkpoint", [], |r| r.get(0))
            .map_err(sql)?;
        Ok(Curtain {
            name: self.name,
            client: client.clone(),
            internal_category: self.internal_category,
            public_category: self.public_category,
            maps: self.maps,
            dropped: self.dropped,
            sink: self.sink,
            page_events: self.page_events,
            conn: Mutex::new((conn, checkpoint as u64)),
        })
    }
}

/// The id of the `index`th public event of `internal` through `curtain`:
/// the same at every pass.
fn public_id(curtain: &str, internal: &str, index: usize) -> String {
    let key = format!("weir-curtain/{curtain}/{internal}/{index}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key.as_bytes()).to_string()
}

impl Curtain {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next internal position the curtain reads.
    pub fn checkpoint(&self) -> u64 {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// The public events of one internal event (empty: dropped).
    fn map_one(&self, internal: &Envelope) -> Result<Vec<Envelope>, Error> {
        let failed = |reason: String| Error::Curtain {
            name: self.name.clone(),
            id: internal.id.clone(),
            event_type: internal.event_type.clone(),
            reason,
        };
        if self.dropped.contains(&internal.event_type) {
            return Ok(Vec::new());
        }
        let Some(map) = self.maps.get(&internal.event_type) else {
            return Err(failed(
                "neither mapped nor dropped: decide what consumers see of it".to_owned(),
            ));
        };
        let mut out = map(internal).map_err(|e| failed(format!("mapping failed: {e}")))?;
        if out.len() > CURTAIN_FANOUT_MAX {
            return Err(failed(format!(
                "mapped to {} public events, more than {CURTAIN_FANOUT_MAX}",
                out.len()
            )));
        }
        for (i, e) in out.iter_mut().enumerate() {
            e.id = public_id(&self.name, &internal.id, i);
            e.source = self.client.source().to_owned();
        }
        Ok(out)
    }

    fn publish(&self, internal: &Envelope, public: &[Envelope]) -> Result<(), Error> {
        if let Some(sink) = &self.sink {
            return sink(internal, public);
        }
        let stream = internal
            .recorded
            .as_ref()
            .map(|r| r.stream.as_str())
            .unwrap_or_default();
        let id = stream.split_once('-').map(|(_, id)| id).unwrap_or(stream);
        let target = format!("{}-{id}", self.public_category);
        self.client.append(&target, ExpectedVersion::Any, public)?;
        Ok(())
    }

    /// Reads one page of internal events after the checkpoint, publishes
    /// what they map to, and moves the checkpoint past them.
    pub fn run_once(&self) -> Result<CurtainPass, Error> {
        let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let events = self
            .client
            .read_category(&self.internal_category, g.1, self.page_events)?;
        let mut pass = CurtainPass::default();
        let Some(last) = events.last().and_then(Envelope::position) else {
            return Ok(pass);
        };
        for internal in &events {
            pass.read += 1;
            let public = self.map_one(internal)?;
            if public.is_empty() {
                pass.dropped += 1;
                continue;
            }
            self.publish(internal, &public)?;
            pass.published += public.len() as u64;
        }
        g.0.execute(
            "UPDATE weir_checkpoint SET position = ?1",
            [(last + 1) as i64],
        )
        .map_err(|e| Error::sqlite(&self.name, e))?;
        g.1 = last + 1;
        Ok(pass)
    }

    /// Passes until nothing is left to read now; the sum of what they did.
    pub fn catch_up(&self) -> Result<CurtainPass, Error> {
        let mut total = CurtainPass::default();
        loop {
            let p = self.run_once()?;
            if p.read == 0 {
                return Ok(total);
            }
            total.read += p.read;
            total.published += p.published;
            total.dropped += p.dropped;
        }
    }

    /// Follows the internal category until `stop` is set, waking on the
    /// store's change signal (and at least every `idle_ms`). Returns the
    /// first error.
    pub fn run_until(&self, stop: &AtomicBool, idle_ms: u64) -> Result<(), Error> {
        while !stop.load(Ordering::Relaxed) {
            let epoch = self.client.backend().change_epoch();
            self.catch_up()?;
            self.client
                .backend()
                .wait_changed(epoch, Duration::from_millis(idle_ms.clamp(1, 60_000)));
        }
        Ok(())
    }
}
