//! The [`Client`]: one handle on an event store, behind the [`Backend`]
//! seam. Two backends sit under it: the embedded store (a data directory
//! opened in this process, [`Client::open`]) and a remote `weir serve`
//! over the HTTP API ([`Client::connect`], the [`crate::Remote`]
//! backend); everything built on the client (repositories, projections,
//! consumers) runs unchanged on either.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use weir_log::Clock;
use weir_store::{AppendResult, AsOf, ExpectedVersion, Loaded, NewEvent, RecordedEvent};

pub use crate::embedded::Embedded;
use crate::timeline::Timeline;
use crate::{Envelope, Error, Remote, Upcasters};

/// Most events one read through the client returns.
pub const READ_PAGE_MAX: usize = 10_000;

/// What the SDK needs of an event store. Every call blocks until done.
pub trait Backend: Send + Sync + std::fmt::Debug {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, Error>;
    /// A stream's events from a version, oldest first; empty if the stream
    /// does not exist.
    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error>;
    /// Events in global order from a position.
    fn read_all(&self, from_position: u64, max_count: usize) -> Result<Vec<RecordedEvent>, Error>;
    /// Events of a category in global order from a position.
    fn read_category(
        &self,
        category: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error>;
    /// One correlation's events in global order from a position: the
    /// events whose metadata names `correlation_id` (every envelope the
    /// SDK writes does). Backends that cannot answer say so.
    fn read_correlation(
        &self,
        correlation_id: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let _ = (correlation_id, from_position, max_count);
        Err(Error::Unsupported {
            what: "reading by correlation id",
        })
    }
    /// Events of one type in global order from a position (the store's
    /// type index). Backends that cannot answer say so.
    fn read_type(
        &self,
        event_type: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let _ = (event_type, from_position, max_count);
        Err(Error::Unsupported {
            what: "reading by event type",
        })
    }
    /// A stream's events as they were at a past time or position; empty if
    /// it did not exist.
    fn read_stream_as_of(
        &self,
        stream: &str,
        as_of: AsOf,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error>;
    /// The newest snapshot and up to `max_events` events after it.
    fn load(&self, stream: &str, max_events: usize) -> Result<Loaded, Error>;
    fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        snapshot_type: &str,
        data: Vec<u8>,
    ) -> Result<(), Error>;
    /// The position the next event gets; everything below is readable.
    fn head_position(&self) -> Result<u64, Error>;
    /// A counter that moves when new events may be readable: read it
    /// before reading, then [`Self::wait_changed`] on it.
    fn change_epoch(&self) -> u64;
    /// Blocks until the epoch moved past `epoch` (true) or `timeout`
    /// passed (false).
    fn wait_changed(&self, epoch: u64, timeout: Duration) -> bool;

    /// Every dead-letter topic with its origin, depth and oldest record.
    fn dead_letter_topics(&self) -> Result<Vec<crate::dead_letters::DeadLetterTopic>, Error> {
        crate::dead_letters::unsupported()
    }

    /// Up to `limit` records of a dead-letter topic's partition, decoded.
    fn read_dead_letters(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: usize,
    ) -> Result<crate::dead_letters::DeadLetterPage, Error> {
        let _ = (topic, partition, offset, limit);
        crate::dead_letters::unsupported()
    }

    /// Replays dead letters to their origin (bounded per call).
    fn replay_dead_letters(
        &self,
        topic: &str,
        selection: crate::dead_letters::Selection,
    ) -> Result<crate::dead_letters::ReplayOutcome, Error> {
        let _ = (topic, selection);
        crate::dead_letters::unsupported()
    }

    /// Purges dead letters by moving log start offsets.
    fn purge_dead_letters(
        &self,
        topic: &str,
        what: crate::dead_letters::Purge,
    ) -> Result<Vec<crate::dead_letters::PartitionPurged>, Error> {
        let _ = (topic, what);
        crate::dead_letters::unsupported()
    }

    /// Creates a persistent-subscription group, or changes its settings.
    fn put_subscription(
        &self,
        target: &str,
        group: &str,
        settings: &crate::persistent::SubscriptionSettings,
    ) -> Result<(), Error> {
        let _ = (target, group, settings);
        Err(Error::Unsupported {
            what: "persistent subscriptions",
        })
    }

    fn delete_subscription(&self, target: &str, group: &str) -> Result<(), Error> {
        let _ = (target, group);
        Err(Error::Unsupported {
            what: "persistent subscriptions",
        })
    }

    fn subscription_info(
        &self,
        target: &str,
        group: &str,
    ) -> Result<crate::persistent::SubscriptionInfo, Error> {
        let _ = (target, group);
        Err(Error::Unsupported {
            what: "persistent subscriptions",
        })
    }

    /// Up to `max` events for `consumer`, waiting up to `wait` for some.
    fn read_subscription(
        &self,
        target: &str,
        group: &str,
        consumer: &str,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<crate::persistent::Delivered>, Error> {
        let _ = (target, group, consumer, max, wait);
        Err(Error::Unsupported {
            what: "persistent subscriptions",
        })
    }

    /// Acks (`action` `None`) or nacks events by ack id.
    fn settle_subscription(
        &self,
        target: &str,
        group: &str,
        consumer: &str,
        ack_ids: &[String],
        action: Option<crate::persistent::NackAction>,
        reason: &str,
    ) -> Result<(), Error> {
        let _ = (target, group, consumer, ack_ids, action, reason);
        Err(Error::Unsupported {
            what: "persistent subscriptions",
        })
    }

    fn replay_parked(&self, target: &str, group: &str) -> Result<u64, Error> {
        let _ = (target, group);
        Err(Error::Unsupported {
            what: "persistent subscriptions",
        })
    }

    /// Where queue calls go ([`crate::queue`]). Backends without queues
    /// say so.
    fn queue_engine(&self) -> Result<crate::queue::QueueEngine, Error> {
        Err(Error::Unsupported { what: "queues" })
    }

    /// The schema registry beside the store ([`crate::schema`]).
    /// Backends without one say so.
    fn schemas(&self) -> Result<crate::Schemas, Error> {
        Err(Error::Unsupported {
            what: "a schema registry",
        })
    }
}

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The CloudEvents `source` of the events this client produces.
    pub source: String,
    /// Where read models (SQLite files) live; they are always local, on
    /// this machine. `None`: for an embedded client, under the data
    /// directory, in `.read-models` (a name no log can have); for a remote
    /// client, a temporary directory removed when the last clone of the
    /// client is dropped (projections then replay from the first event at
    /// each start). A read models directory belongs to one store: point
    /// it at another server, or at one whose data was wiped, and its
    /// checkpoints are wrong.
    pub read_models_dir: Option<PathBuf>,
    /// The clock the embedded store records events by; `None`: the
    /// system clock. (Tests and demos move a manual clock to show "as of
    /// a past date".) A server records events by its own clock, so a
    /// remote client refuses one.
    pub clock: Option<Arc<dyn Clock>>,
    /// A remote client's bearer token (a static token or a JWT the
    /// server accepts), for a server that requires one; an embedded
    /// client refuses one.
    pub token: Option<String>,
    /// A remote client's trust in an HTTPS server (`weir serve
    /// --http-tls`): the PEM certificates of the CA that signed its
    /// certificate. With one, `host:port` means `https://host:port`; an
    /// embedded client refuses one.
    pub ca_pem: Option<Vec<u8>>,
    /// A remote client's certificate for a server that asks for one
    /// (`--tls-client-auth`): its PEM chain and PEM private key; needs
    /// `ca_pem`.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            source: "/weir".to_owned(),
            read_models_dir: None,
            clock: None,
            token: None,
            ca_pem: None,
            identity_pem: None,
        }
    }
}

/// A handle on an event store; cheap to clone, shareable across threads.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Applied to every event this client reads (see
    /// [`Client::with_upcasters`]).
    upcasters: Arc<Upcasters>,
}

#[derive(Debug)]
struct Inner {
    backend: Box<dyn Backend>,
    source: String,
    read_models_dir: PathBuf,
    /// The temporary read models directory of a remote client given
    /// none; removed with the client.
    _read_models_tmp: Option<tempfile::TempDir>,
    /// Schemas bound to event types (`crate::schema`), shared by clones.
    pub(crate) bindings: crate::schema::Bindings,
}

impl Client {
    /// Opens the embedded store in the data directory `path` (created if
    /// needed) with default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, ClientConfig::default())
    }

    /// Opens the embedded store in `path` with `config`.
    pub fn open_with(path: impl AsRef<Path>, config: ClientConfig) -> Result<Self, Error> {
        if config.token.is_some() || config.ca_pem.is_some() || config.identity_pem.is_some() {
            return Err(Error::Config {
                reason: "an embedded client takes no token or CA: they are for a server".to_owned(),
            });
        }
        let path = path.as_ref();
        let backend = Embedded::open(path, config.clock.clone())?;
        let dir = config
            .read_models_dir
            .clone()
            .unwrap_or_else(|| path.join(".read-models"));
        Ok(Self::with_backend(Box::new(backend), dir, config.source))
    }

    /// Connects to a running `weir serve` at `address` (its HTTP API,
    /// `host:port` or `http://host:port`) with default settings: read
    /// models in a temporary directory.
    pub fn connect(address: &str) -> Result<Self, Error> {
        Self::connect_with(address, ClientConfig::default())
    }

    /// Connects to the server at `address` with `config` (see
    /// [`ClientConfig::read_models_dir`] for where read models go).
    pub fn connect_with(address: &str, config: ClientConfig) -> Result<Self, Error> {
        if config.clock.is_some() {
            return Err(Error::Config {
                reason: "a remote client takes no clock: the server records events by its own"
                    .to_owned(),
            });
        }
        if config.identity_pem.is_some() && config.ca_pem.is_none() {
            return Err(Error::Config {
                reason: "a client certificate (identity_pem) needs the server's CA (ca_pem)"
                    .to_owned(),
            });
        }
        let identity = config
            .identity_pem
            .as_ref()
            .map(|(c, k)| (c.as_slice(), k.as_slice()));
        let backend =
            Remote::connect_with(address, config.token, config.ca_pem.as_deref(), identity)?;
        let (dir, tmp) = match config.read_models_dir {
            Some(dir) => (dir, None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("weir-read-models-")
                    .tempdir()
                    .map_err(|e| Error::io("read models", "creating a temporary directory", e))?;
                (tmp.path().to_owned(), Some(tmp))
            }
        };
        let mut client = Self::with_backend(Box::new(backend), dir, config.source);
        Arc::get_mut(&mut client.inner)
            .expect("a new client has no clones")
            ._read_models_tmp = tmp;
        Ok(client)
    }

    /// A client over any backend.
    pub fn with_backend(
        backend: Box<dyn Backend>,
        read_models_dir: PathBuf,
        source: String,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                source,
                read_models_dir,
                _read_models_tmp: None,
                bindings: Default::default(),
            }),
            upcasters: Arc::default(),
        }
    }

    /// This client (sharing its backend, read models and bindings) with
    /// `upcasters` applied to every event it reads: its reads, the
    /// aggregates its repositories load, its projectors and consumers see
    /// each event in its type's current version.
    pub fn with_upcasters(&self, upcasters: Upcasters) -> Self {
        Self {
            inner: self.inner.clone(),
            upcasters: Arc::new(upcasters),
        }
    }

    /// The upcasters this client applies.
    pub fn upcasters(&self) -> &Arc<Upcasters> {
        &self.upcasters
    }

    /// `event` as this client's readers see it: upcast to its type's
    /// current version (for events read elsewhere, e.g. from a topic).
    pub fn upcast(&self, event: Envelope) -> Result<Envelope, Error> {
        self.upcasters.upcast(event)
    }

    /// A recorded event's envelope, upcast.
    pub(crate) fn envelope(&self, event: RecordedEvent) -> Result<Envelope, Error> {
        self.upcasters.upcast(Envelope::from_recorded(event)?)
    }

    fn envelopes(&self, events: Vec<RecordedEvent>) -> Result<Vec<Envelope>, Error> {
        events.into_iter().map(|e| self.envelope(e)).collect()
    }

    pub fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    /// The CloudEvents `source` of events this client produces.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    pub(crate) fn read_models_dir(&self) -> &Path {
        &self.inner.read_models_dir
    }

    pub(crate) fn inner_bindings(&self) -> &crate::schema::Bindings {
        &self.inner.bindings
    }

    /// Appends envelopes to a stream if it is at `expected`; all or none.
    pub fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[Envelope],
    ) -> Result<AppendResult, Error> {
        let new = events
            .iter()
            .map(|e| self.bound(stream, e).to_new_event())
            .collect::<Result<Vec<_>, _>>()?;
        self.backend().append(stream, expected, &new)
    }

    /// Up to `max_count` (at most [`READ_PAGE_MAX`]) events of a stream
    /// from a version.
    pub fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Envelope>, Error> {
        self.envelopes(self.backend().read_stream(
            stream,
            from_version,
            max_count.min(READ_PAGE_MAX),
        )?)
    }

    /// Up to `max_count` (at most [`READ_PAGE_MAX`]) events in global
    /// order from a position.
    pub fn read_all(&self, from_position: u64, max_count: usize) -> Result<Vec<Envelope>, Error> {
        self.envelopes(
            self.backend()
                .read_all(from_position, max_count.min(READ_PAGE_MAX))?,
        )
    }

    /// Up to `max_count` (at most [`READ_PAGE_MAX`]) events of one
    /// correlation (a request, a saga) in global order from
    /// `from_position`, across streams: the events whose envelope has this
    /// `correlationid`. An id no event has reads as empty; an empty id or
    /// one over 256 bytes is [`StoreError::InvalidCorrelationId`].
    pub fn read_correlation(
        &self,
        correlation_id: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<Envelope>, Error> {
        self.envelopes(self.backend().read_correlation(
            correlation_id,
            from_position,
            max_count.min(READ_PAGE_MAX),
        )?)
    }

    /// A correlation's whole timeline (pages of [`READ_PAGE_MAX`], at most
    /// `max_events`) as a tree by causation.
    pub fn timeline(
        &self,
        correlation_id: &str,
        max_events: usize,
    ) -> Result<Timeline<Envelope>, Error> {
        let mut events: Vec<Envelope> = Vec::new();
        let mut from = 0;
        while events.len() < max_events {
            let page = self.read_correlation(correlation_id, from, max_events - events.len())?;
            let Some(last) = page.last().and_then(|e| e.recorded.as_ref()) else {
                break;
            };
            from = last.position + 1;
            events.extend(page);
        }
        Ok(Timeline::new(events))
    }

    /// Up to `max_count` events of a category in global order.
    pub fn read_category(
        &self,
        category: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<Envelope>, Error> {
        self.envelopes(self.backend().read_category(
            category,
            from_position,
            max_count.min(READ_PAGE_MAX),
        )?)
    }

    /// Up to `max_count` (at most [`READ_PAGE_MAX`]) events of one type in
    /// global order from a position.
    pub fn read_type(
        &self,
        event_type: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<Envelope>, Error> {
        self.envelopes(self.backend().read_type(
            event_type,
            from_position,
            max_count.min(READ_PAGE_MAX),
        )?)
    }

    /// The position the next event gets.
    pub fn head_position(&self) -> Result<u64, Error> {
        self.backend().head_position()
    }
}
