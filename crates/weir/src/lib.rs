//! `weir`: the SDK for writing services on Weir as aggregates, commands,
//! events and projections.
//!
//! - [`Envelope`]: CloudEvents 1.0 around every event (id, source, type,
//!   specversion, time, subject, datacontenttype, dataschema, plus
//!   `dataversion`, `correlationid` and `causationid`), in JSON structured
//!   mode or Kafka binary mode. [`Causation::caused_by`] carries the
//!   correlation from an event to what handling it produces.
//! - [`Event`] (with [`events!`] and [`event!`]): typed events, and the
//!   [`Registry`] from type name and version to Rust type.
//! - [`Upcasters`]: old versions of an event type carried, step by step,
//!   to the current one its Rust type declares, on every read
//!   ([`Client::with_upcasters`]; consumers, the [`Registry`] and the
//!   consumer runtime too), so handlers see only the newest shape.
//! - [`schema`]: event types bound to JSON Schemas registered under
//!   `<category>-<type>` ([`EventSchemas`], [`Client::bind`]) in the
//!   embedded registry or a server's ([`Schemas`]); events appended carry
//!   `dataschema: /schemas/ids/<id>`. [`contract::check_contract`]:
//!   a producer's samples against its consumers' registered schemas.
//! - [`Curtain`]: internal events mapped to published contract events at
//!   the boundary, unmapped types dropped explicitly, so internal changes
//!   do not reach consumers.
//! - [`Aggregate`] and [`Repository`]: commands decided against state,
//!   appended with optimistic concurrency, retried on conflicts (a
//!   repository's own threads take turns per aggregate and reuse the state
//!   they wrote), snapshotted every N events; loaded as of a past time.
//! - [`Projection`] and [`Projector`]: read models in SQLite with the
//!   checkpoint in the same transaction; blue-green rebuilds; [`Select`]
//!   and [`Query`] on the query side; read-your-writes with
//!   [`Projector::wait_for`]; [`Projector::run_until`] on a thread.
//! - [`Handler`] and [`Consumer`]: idempotent consumers.
//! - [`Service`]: the consumer runtime over Kafka topics (through
//!   librdkafka, against `weir serve` or any Kafka cluster): typed
//!   handlers, per-key order with bounded concurrency, backpressure,
//!   retries, circuit breakers, dead letters, graceful shutdown.
//! - [`dead_letters`]: list, replay and purge dead-letter topics, embedded
//!   or through a server.
//! - [`Client::read_correlation`] and [`timeline`]: one correlation's
//!   events (a request, a saga) across streams, as a tree by causation.
//! - [`outbox`]: the transactional outbox for services with their own
//!   database (SQLite; PostgreSQL with the `postgres` feature): events
//!   written in the business transaction, and the [`outbox::Relay`] that
//!   publishes them in order per aggregate to a topic or to streams.
//! - [`demo::bank`]: the bank account demonstration (`weir demo bank`);
//!   [`demo::docs`]: the document pipeline (`weir demo docs`).
//!
//! # One client, a backend beneath it
//!
//! A [`Client`] sits on a [`Backend`]. [`Client::open`] opens the
//! embedded store: a data directory in this process, no server.
//! [`Client::connect`] reaches a running `weir serve` over its HTTP API
//! (the [`Remote`] backend); the code built on a client (repositories,
//! projectors, consumers) does not change with the backend, and the
//! server's refusals come back as the same errors (a version conflict is
//! [`StoreError::WrongExpectedVersion`] either way). Read models are
//! SQLite files on the client's machine in both cases
//! ([`ClientConfig::read_models_dir`]). An embedded client owns its data
//! directory (it is locked): a directory `weir serve` has open is reached
//! through the server.
//!
//! ```no_run
//! use weir::demo::bank::{Bank, BankConfig};
//! // The same bank as in a data directory, on a running `weir serve`.
//! let client = weir::Client::connect("127.0.0.1:8080")?;
//! let bank = Bank::open(&client, BankConfig::default())?;
//! bank.open_account("ann", "Ann")?;
//! bank.deposit("ann", 500)?;
//! assert_eq!(bank.balance("ann")?, 500);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Blocking, not async
//!
//! The API blocks. The embedded store blocks on disk I/O (an append
//! returns once its events are fsynced), and SQLite blocks too; an async
//! API over them would only move each call onto a thread pool, and would
//! tie the SDK to one runtime. Plain threads (the concurrency test runs
//! many) or a runtime's blocking pool (`tokio::task::spawn_blocking`, as
//! `weir serve` does with the store) use it as it is. The remote backend
//! blocks as well (one HTTP request or a few per call), so code keeps one
//! shape whichever backend it runs on; waiting for new events is a blocking
//! wait with a timeout ([`Projector::wait_for`]).
//!
//! # Read models in SQLite
//!
//! A projection's read model is an SQLite database: embedded (no server
//! to run beside the store), transactional (the checkpoint commits with
//! the rows, so a crash never splits them), and SQL gives the query side
//! filtering, sorting and paging for free. One file per generation makes
//! a blue-green rebuild a new file and the switch one rename. The SDK
//! links the system's libsqlite3 rather than compiling SQLite in.
//!
//! # Example
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use weir::{Aggregate, Client, RepositoryConfig};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Added { pub n: u64 }
//! weir::events! {
//!     #[derive(Debug, Clone)]
//!     pub enum CounterEvent { Added(Added) = "CounterAdded" v 1 }
//! }
//!
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! struct Counter { total: u64 }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("a counter never goes past 10")]
//! struct TooMuch;
//!
//! impl Aggregate for Counter {
//!     const CATEGORY: &'static str = "counter";
//!     type Command = u64; // add this much
//!     type Event = CounterEvent;
//!     type Error = TooMuch;
//!     fn decide(&self, n: &u64) -> Result<Vec<CounterEvent>, TooMuch> {
//!         if self.total + n > 10 { return Err(TooMuch); }
//!         Ok(vec![CounterEvent::Added(Added { n: *n })])
//!     }
//!     fn apply(&mut self, CounterEvent::Added(a): &CounterEvent) {
//!         self.total += a.n;
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let client = Client::open(dir.path())?;
//! let counters = client.repository::<Counter>(RepositoryConfig::default());
//! counters.execute("a", &4)?;
//! let done = counters.execute("a", &5)?;
//! assert_eq!(done.state.total, 9);
//! assert!(counters.execute("a", &2).is_err()); // refused; nothing appended
//! assert_eq!(counters.load("a")?.version, Some(1));
//!
//! let events = client.read_stream("counter-a", 0, 10)?;
//! assert_eq!(events[1].event_type, "CounterAdded");
//! assert_eq!(events[1].subject.as_deref(), Some("a"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod aggregate;
mod client;
mod consumer;
pub mod contract;
pub mod curtain;
pub mod dead_letters;
pub mod demo;
mod embedded;
mod envelope;
mod error;
mod event;
pub mod outbox;
pub mod persistent;
mod projection;
mod query;
pub mod queue;
mod registry;
mod remote;
pub mod saga;
pub mod schema;
pub mod service;
pub mod timeline;
mod upcast;

pub use aggregate::{
    AGGREGATE_EVENTS_MAX, Aggregate, Executed, Loaded, Repository, RepositoryConfig,
};
pub use client::{Backend, Client, ClientConfig, Embedded, READ_PAGE_MAX};
pub use consumer::{Consumer, Handled, Handler};
pub use curtain::{Curtain, CurtainBuilder, CurtainPass};
pub use envelope::{
    Causation, Envelope, Extensions, JSON, KafkaRecord, Recorded, SPEC_VERSION, TRACEPARENT_HEADER,
    TRACESTATE_HEADER, new_id, new_span_id,
};
pub use error::{CommandError, Error};
pub use event::{Event, EventType};
pub use projection::{
    HandlerError, PROJECTION_NAME_BYTES_MAX, Projection, Projector, ProjectorConfig, Rebuilt,
};
pub use query::{Op, PAGE_ROWS_MAX, Page, Query, SELECT_TERMS_MAX, Select};
pub use registry::{REGISTRY_TYPES_MAX, Registry};
pub use remote::{REMOTE_POLL_MS, Remote};
pub use schema::{Binding, EventSchemas, Schemas};
pub use service::{
    BreakerPolicy, BreakerState, Context, Delivery, Failure, KafkaSource, Published, Publisher,
    RetryPolicy, Running, Service, ServiceBuilder, ServiceConfig, Stats,
};
pub use upcast::{UPCAST_CHAIN_MAX, UPCAST_TYPES_MAX, UPCASTERS_MAX, Upcasters};

/// The PostgreSQL client an outbox on PostgreSQL is written with (the
/// same version the SDK links).
#[cfg(feature = "postgres")]
pub use postgres;
/// The SQLite binding read models and outboxes are written with (the
/// same version the SDK links).
pub use rusqlite;
/// Re-exported for [`events!`] and [`event!`].
pub use serde_json;
/// Clocks (a manual one moves time in tests and demos).
pub use weir_log::{Clock, ManualClock, SystemClock};
/// The schema registry's core, whose types [`Schemas`] speaks
/// (`SchemaDef`, `SchemaType`, `CompatibilityLevel`, ...).
pub use weir_schemas as schema_registry;
/// The event store crate, for [`Backend`] implementations (its
/// `NewEvent`, `RecordedEvent` and `Loaded`).
pub use weir_store as store;
/// The store's vocabulary the SDK's API uses.
pub use weir_store::{
    AppendResult, AsOf, ExpectedVersion, StoreError, TraceContext, TraceParent, rfc3339,
};
