//! Aggregates and command handling. An [`Aggregate`] decides which events
//! a command causes, given its state (its invariants live there), and
//! applies events to its state. A [`Repository`] runs commands: it loads
//! the newest snapshot and the events after it, decides, appends with the
//! version it loaded as the expected version, retries with fresh state
//! when another writer got there first (bounded, with backoff), and saves
//! a snapshot every N events.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use weir_store::{AsOf, ExpectedVersion, StoreError};

use crate::{Causation, Client, CommandError, Envelope, Error, Event};

/// Most events an aggregate may have to load (after its snapshot): a
/// longer stream is an error, and a sign it wants snapshots.
pub const AGGREGATE_EVENTS_MAX: usize = 1_000_000;
/// Events read per page while loading.
const LOAD_PAGE: usize = 1_000;

/// An event-sourced aggregate. Its state is `Self`, built from
/// `Default` by applying its events in order; it is serde so it can be
/// snapshotted.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Streams of this aggregate are `<CATEGORY>-<id>`.
    const CATEGORY: &'static str;
    /// The version of the state's layout: snapshots of another version
    /// are ignored (the state is rebuilt from events and snapshotted
    /// anew).
    const SNAPSHOT_VERSION: u32 = 1;
    /// What can be asked of it.
    type Command: Send + Sync;
    /// What happened to it.
    type Event: Event;
    /// Why it refuses a command.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The events `command` causes in this state, or why it is refused.
    /// Deciding nothing (`Ok(vec![])`) appends nothing.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Moves the state past `event`; never fails (events are facts).
    fn apply(&mut self, event: &Self::Event);
}

/// Settings of a repository.
#[derive(Debug, Clone, Copy)]
pub struct RepositoryConfig {
    /// Save a snapshot each time the stream passes a multiple of this
    /// many events; 0 never.
    pub snapshot_every: u64,
    /// Most tries of one command when writers conflict.
    pub attempts_max: u32,
    /// Backoff before the second try; doubles up to `backoff_ms_max`, with
    /// jitter.
    pub backoff_ms_initial: u64,
    pub backoff_ms_max: u64,
    /// Commands of this repository (and its clones) on one aggregate take
    /// turns instead of racing: in-process writers queue for the aggregate
    /// rather than lose version conflicts and retry. Writers elsewhere
    /// (other repositories, processes) are still caught by the expected
    /// version. Under its turn the repository also keeps the state it
    /// last wrote, so the next command on a hot aggregate does not load
    /// it (a conflict drops it and loads).
    pub serialize_in_process: bool,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        Self {
            snapshot_every: 100,
            attempts_max: 20,
            backoff_ms_initial: 1,
            backoff_ms_max: 50,
            serialize_in_process: true,
        }
    }
}

/// An aggregate as loaded.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// The stream's last version, `None` if it has no events.
    pub version: Option<u64>,
    /// The version of the snapshot loading started from, if one.
    pub snapshot_version: Option<u64>,
    /// Events applied on top of the snapshot.
    pub events_applied: usize,
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    /// The state after the command.
    pub state: A,
    /// The events appended (empty if the command decided none).
    pub events: Vec<Envelope>,
    /// The stream's last version after the command.
    pub version: Option<u64>,
    /// The global position of the last event appended.
    pub position: Option<u64>,
    /// How many tries it took.
    pub attempts: u32,
}

/// Loads aggregates of type `A` and runs their commands. Clones share
/// the aggregates' turns.
pub struct Repository<A> {
    client: Client,
    config: RepositoryConfig,
    /// Turns per aggregate (see `serialize_in_process`), by hash of the
    /// stream: a fixed number of locks, however many aggregates.
    turns: Arc<[Mutex<Option<Cached>>]>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            config: self.config,
            turns: self.turns.clone(),
            _aggregate: PhantomData,
        }
    }
}

impl<A> std::fmt::Debug for Repository<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The state a repository last wrote for an aggregate, kept under the
/// aggregate's turn lock so the next command on it need not load it: the
/// expected version still guards the append, and a conflict drops it.
/// One per lock, so the memory is bounded by [`TURN_LOCKS`] states.
#[derive(Debug)]
struct Cached {
    stream: String,
    version: u64,
    /// Events after the newest snapshot.
    since_snapshot: u64,
    /// The state as JSON (as a snapshot holds it).
    state: Vec<u8>,
}

/// Locks that aggregates share by hash; two aggregates on one lock only
/// wait for each other now and then.
const TURN_LOCKS: usize = 1_024;

impl Client {
    /// A repository of aggregates `A`.
    pub fn repository<A: Aggregate>(&self, config: RepositoryConfig) -> Repository<A> {
        Repository {
            client: self.clone(),
            config,
            turns: (0..TURN_LOCKS).map(|_| Mutex::new(None)).collect(),
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> Repository<A> {
    /// The stream of the aggregate `id`.
    pub fn stream(&self, id: &str) -> String {
        format!("{}-{id}", A::CATEGORY)
    }

    fn snapshot_type() -> String {
        format!("{}@{}", A::CATEGORY, A::SNAPSHOT_VERSION)
    }

    /// The aggregate's current state: its newest snapshot and the events
    /// after it.
    pub fn load(&self, id: &str) -> Result<Loaded<A>, Error> {
        let stream = self.stream(id);
        let backend = self.client.backend();
        let loaded = backend.load(&stream, LOAD_PAGE)?;
        let mut out = Loaded {
            state: A::default(),
            version: None,
            snapshot_version: None,
            events_applied: 0,
        };
        let mut events = loaded.events;
        match loaded.snapshot {
            Some(s) if s.snapshot_type == Self::snapshot_type() => {
                out.state = serde_json::from_slice(&s.data).map_err(|e| Error::BadSnapshot {
                    stream: stream.clone(),
                    version: s.version,
                    reason: e.to_string(),
                })?;
                out.version = Some(s.version);
                out.snapshot_version = Some(s.version);
            }
            // A snapshot of another layout: rebuild from the first event.
            Some(_) => events = backend.read_stream(&stream, 0, LOAD_PAGE)?,
            None => {}
        }
        loop {
            let full = events.len() == LOAD_PAGE;
            for e in events {
                let version = e.version;
                let event: A::Event = self.client.envelope(e)?.decode()?;
                out.state.apply(&event);
                out.version = Some(version);
                out.events_applied += 1;
                if out.events_applied > AGGREGATE_EVENTS_MAX {
                    return Err(Error::AggregateTooLong {
                        stream,
                        max: AGGREGATE_EVENTS_MAX,
                    });
                }
            }
            if !full {
                return Ok(out);
            }
            let next = out.version.map_or(0, |v| v + 1);
            events = backend.read_stream(&stream, next, LOAD_PAGE)?;
        }
    }

    /// The aggregate as it was at a past time or global position (from its
    /// events alone).
    pub fn load_as_of(&self, id: &str, as_of: AsOf) -> Result<Loaded<A>, Error> {
        let stream = self.stream(id);
        let events =
            self.client
                .backend()
                .read_stream_as_of(&stream, as_of, AGGREGATE_EVENTS_MAX)?;
        let mut out = Loaded {
            state: A::default(),
            version: None,
            snapshot_version: None,
            events_applied: 0,
        };
        for e in events {
            let version = e.version;
            out.state
                .apply(&self.client.envelope(e)?.decode::<A::Event>()?);
            out.version = Some(version);
            out.events_applied += 1;
        }
        Ok(out)
    }

    /// Runs `command` on aggregate `id`, starting a new correlation.
    pub fn execute(
        &self,
        id: &str,
        command: &A::Command,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        self.execute_with(id, command, &Causation::new())
    }

    /// Runs `command` on aggregate `id`; the events it causes carry
    /// `causation` (use [`Causation::caused_by`] while handling an event,
    /// so they are correlated with it).
    pub fn execute_with(
        &self,
        id: &str,
        command: &A::Command,
        causation: &Causation,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let stream = self.stream(id);
        // The aggregate's turn; under it, the state this repository last
        // wrote for the aggregate (if the lock's cache holds that one).
        let mut turn = self.config.serialize_in_process.then(|| {
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&stream, &mut h);
            let i = std::hash::Hasher::finish(&h) as usize % TURN_LOCKS;
            self.turns[i].lock().unwrap_or_else(|e| e.into_inner())
        });
        let attempts_max = self.config.attempts_max.max(1);
        let mut backoff_ms = self.config.backoff_ms_initial.max(1);
        for attempt in 1..=attempts_max {
            let cached = turn
                .as_deref()
                .and_then(Option::as_ref)
                .filter(|c| c.stream == stream)
                .and_then(|c| {
                    let state = serde_json::from_slice::<A>(&c.state).ok()?;
                    Some((state, Some(c.version), c.since_snapshot))
                });
            let (state, version, since_snapshot) = match cached {
                Some(c) => c,
                None => {
                    let l = self.load(id)?;
                    (l.state, l.version, l.events_applied as u64)
                }
            };
            let decided = state.decide(command).map_err(CommandError::Rejected)?;
            if decided.is_empty() {
                return Ok(Executed {
                    state,
                    events: Vec::new(),
                    version,
                    position: None,
                    attempts: attempt,
                });
            }
            let envelopes = decided
                .iter()
                .map(|e| {
                    Envelope::new(e, self.client.source(), causation).map(|env| {
                        self.client
                            .bound(&stream, &env.with_subject(id))
                            .into_owned()
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self.client.append(&stream, expected, &envelopes) {
                Ok(done) => {
                    let mut state = state;
                    for e in &decided {
                        state.apply(e);
                    }
                    let mut since = since_snapshot + decided.len() as u64;
                    if self.maybe_snapshot(&stream, since, done.last_version, &state) {
                        since = 0;
                    }
                    if let Some(slot) = turn.as_deref_mut() {
                        *slot = serde_json::to_vec(&state).ok().map(|bytes| Cached {
                            stream: stream.clone(),
                            version: done.last_version,
                            since_snapshot: since,
                            state: bytes,
                        });
                    }
                    return Ok(Executed {
                        state,
                        events: envelopes,
                        version: Some(done.last_version),
                        position: Some(done.last_position),
                        attempts: attempt,
                    });
                }
                Err(Error::Store(StoreError::WrongExpectedVersion { .. })) => {
                    // Someone else wrote: the cached state is stale.
                    if let Some(slot) = turn.as_deref_mut() {
                        *slot = None;
                    }
                    if attempt < attempts_max {
                        std::thread::sleep(Duration::from_micros(jitter_us(backoff_ms)));
                        backoff_ms = (backoff_ms * 2).min(self.config.backoff_ms_max.max(1));
                    }
                }
                Err(e) => {
                    if let Some(slot) = turn.as_deref_mut() {
                        *slot = None;
                    }
                    return Err(e.into());
                }
            }
        }
        Err(Error::Contention {
            stream,
            attempts: attempts_max,
        }
        .into())
    }

    /// Saves a snapshot once `snapshot_every` events or more lie after the
    /// newest one (or the start), so a load never applies more than about
    /// that many. The events are durable already, so a failed snapshot
    /// only costs later loads time: it is logged, not returned.
    /// Returns whether it saved one.
    fn maybe_snapshot(&self, stream: &str, since_snapshot: u64, last: u64, state: &A) -> bool {
        let every = self.config.snapshot_every;
        if every == 0 || since_snapshot < every {
            return false;
        }
        let saved = serde_json::to_vec(state)
            .map_err(|e| Error::BadSnapshot {
                stream: stream.to_owned(),
                version: last,
                reason: e.to_string(),
            })
            .and_then(|data| {
                self.client
                    .backend()
                    .save_snapshot(stream, last, &Self::snapshot_type(), data)
            });
        match saved {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(stream, version = last, %e, "saving a snapshot failed");
                false
            }
        }
    }
}

/// Between half and all of `ms` milliseconds, in microseconds: writers
/// that conflicted once do not retry in lockstep.
fn jitter_us(ms: u64) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(std::time::Instant::now());
    let us = ms * 1000;
    us / 2 + random % (us / 2 + 1)
}
