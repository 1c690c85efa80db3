//! The consumer runtime: a [`Service`] is one consumer group with typed
//! handlers per event type, fed by Kafka topics through `rdkafka`
//! (librdkafka), so the same service runs against `weir serve` and against
//! any Kafka cluster. It keeps per-key order with bounded concurrency,
//! pauses fetching when its in-flight limit is reached (backpressure),
//! retries transient failures with backoff, breaks the circuit to a failing
//! downstream (pausing the partitions that wait for it), dead-letters what
//! cannot be handled to `<topic>.dlq` in the format of `weir-deadletter`,
//! commits only what is done, and shuts down gracefully.
//!
//! See `docs/design/consumers.md` for the delivery guarantees and the
//! retry / breaker / dead-letter flow.

mod breaker;
mod kafka;
pub(crate) mod publisher;
mod retry;
mod store;
mod tracker;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use breaker::{BreakerPolicy, BreakerState, DOWNSTREAMS_MAX};
pub use kafka::KafkaSource;
pub use publisher::{Published, Publisher};
pub use retry::RetryPolicy;
pub use store::{
    PARKED_CATEGORY, ParkedEvent, ParkedInfo, REPLAY_CATEGORY, Selection, StoreSource, parked,
    parked_stream, replay_parked, replay_stream,
};

use crate::{Causation, Envelope, Error, Event};
use breaker::{Admit, Breakers};

/// Why a handler did not handle an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It may succeed later (a downstream timed out, answered 5xx, refused
    /// the connection): retried with backoff, dead-lettered when the
    /// retries run out.
    Transient(String),
    /// It will never succeed (the event is invalid for this handler):
    /// dead-lettered at once.
    Permanent(String),
    /// A downstream's circuit breaker is open ([`Context::call`] returns
    /// it without calling): the runtime waits for the breaker and pauses
    /// the partition meanwhile; no attempt is counted.
    Unavailable { downstream: String },
}

impl Failure {
    pub fn transient(reason: impl fmt::Display) -> Self {
        Self::Transient(reason.to_string())
    }

    pub fn permanent(reason: impl fmt::Display) -> Self {
        Self::Permanent(reason.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transient(r) => write!(f, "transient failure: {r}"),
            Self::Permanent(r) => write!(f, "permanent failure: {r}"),
            Self::Unavailable { downstream } => {
                write!(
                    f,
                    "downstream {downstream} unavailable: its circuit breaker is open"
                )
            }
        }
    }
}

impl std::error::Error for Failure {}

/// When a record's offset is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// After its handler finished (or it was dead-lettered): a crash may
    /// deliver it again, never lose it. Handlers make effects idempotent
    /// ([`Consumer`](crate::Consumer) records processed events in the same
    /// SQLite transaction as the effects: exactly once for those effects).
    #[default]
    AtLeastOnce,
    /// Before its handler runs: a crash may lose it, never deliver it
    /// twice.
    AtMostOnce,
}

/// Settings of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Handler threads. Records of one key go to one thread, in order;
    /// records without a key keep their partition's order.
    pub workers: usize,
    /// Records fetched and not yet done, at most; fetching pauses at this
    /// many and resumes at half.
    pub in_flight_max: usize,
    pub delivery: Delivery,
    pub retry: RetryPolicy,
    /// The breaker of a downstream not declared with
    /// [`ServiceBuilder::downstream`].
    pub breaker: BreakerPolicy,
    /// How often done offsets are committed while running.
    pub commit_interval: Duration,
    /// On shutdown (and when partitions are revoked), how long in-flight
    /// handlers may take to finish; what is left is not committed and is
    /// delivered again later.
    pub shutdown_deadline: Duration,
    /// The dead-letter topic of `t` is `t` followed by this.
    pub dead_letter_suffix: String,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            workers: 8,
            in_flight_max: 1000,
            delivery: Delivery::AtLeastOnce,
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
            commit_interval: Duration::from_secs(1),
            shutdown_deadline: Duration::from_secs(30),
            dead_letter_suffix: weir_deadletter::format::DEFAULT_SUFFIX.to_owned(),
        }
    }
}

/// Most handler threads a service runs.
pub const WORKERS_MAX: usize = 1024;
/// Most records a service holds in flight.
pub const IN_FLIGHT_MAX: usize = 1_000_000;

/// Where the record being handled was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp, ms since the Unix epoch.
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
}

/// What a handler is given beside its event.
pub struct Context<'a> {
    envelope: &'a Envelope,
    origin: &'a Origin,
    attempt: u32,
    breakers: &'a Breakers,
    /// A transient failure of a call opened its downstream's breaker (or
    /// was its failed probe): the downstream is down, not the record bad.
    tripped: std::cell::Cell<Option<String>>,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("event", &self.envelope.id)
            .field("origin", &self.origin)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// The event's envelope (id, type, subject, correlation, data).
    pub fn envelope(&self) -> &Envelope {
        self.envelope
    }

    /// Where the record was read from.
    pub fn origin(&self) -> &Origin {
        self.origin
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The event that follows from this one (choreography): same
    /// correlation, caused by this event, same subject, in the same trace
    /// (W3C trace context, a new span id) if it has one, and an id derived
    /// from this event's id and the new type, so that handling this event
    /// again (a redelivery) produces the same event, which the store's
    /// idempotent appends and idempotent consumers recognise.
    pub fn follow_up<E: Event>(&self, event: &E) -> Result<Envelope, Failure> {
        let mut e = Envelope::new(
            event,
            &self.envelope.source,
            &Causation::caused_by(self.envelope),
        )
        .map_err(Failure::permanent)?;
        let seed = format!(
            "{}\u{0}{}\u{0}{}",
            self.envelope.id, e.event_type, e.dataversion
        );
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes());
        e.id = id.to_string();
        // The same trace, and a span id derived like the id: a redelivery
        // stamps the same trace context on the same event.
        let mut span_id = [0u8; 8];
        span_id.copy_from_slice(&id.as_bytes()[8..16]);
        e.trace = self.envelope.trace.as_ref().map(|t| t.child(span_id));
        e.subject = self.envelope.subject.clone();
        Ok(e)
    }

    /// Appends the follow-up of this event (see [`Self::follow_up`]) to
    /// `stream` of the store: "on X, emit Y with the same correlation and
    /// causation X" in one line. A failed append is transient (retried).
    pub fn emit<E: Event>(
        &self,
        client: &crate::Client,
        stream: &str,
        event: &E,
    ) -> Result<(), Failure> {
        let e = self.follow_up(event)?;
        client
            .append(stream, crate::ExpectedVersion::Any, &[e])
            .map(drop)
            .map_err(Failure::transient)
    }

    /// Publishes the follow-up of this event to a Kafka `topic`.
    pub fn publish<E: Event>(
        &self,
        publisher: &Publisher,
        topic: &str,
        event: &E,
    ) -> Result<(), Failure> {
        let e = self.follow_up(event)?;
        publisher
            .publish(topic, &e)
            .map(drop)
            .map_err(Failure::transient)
    }

    /// Calls `downstream` through its circuit breaker: while the breaker
    /// is open, [`Failure::Unavailable`] without calling; a transient
    /// failure of `call` counts against the breaker, anything else shows
    /// the downstream is up. A transient failure that opens the breaker
    /// (or fails its probe) is blamed on the downstream, not the record:
    /// it costs the record no attempt, and the record waits for the
    /// downstream to recover instead of running out of retries.
    pub fn call<T>(
        &self,
        downstream: &str,
        call: impl FnOnce() -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let Some(breaker) = self.breakers.get(downstream) else {
            return Err(Failure::Permanent(format!(
                "downstream {downstream:?}: this service already calls {DOWNSTREAMS_MAX} downstreams"
            )));
        };
        let probe = match breaker.admit(std::time::Instant::now()) {
            Admit::Go => false,
            Admit::Probe => true,
            Admit::Wait(_) => {
                return Err(Failure::Unavailable {
                    downstream: downstream.to_owned(),
                });
            }
        };
        // A probe whose call panics must not leave the breaker half-open.
        struct ProbeGuard<'b>(Option<&'b breaker::Breaker>);
        impl Drop for ProbeGuard<'_> {
            fn drop(&mut self) {
                if let Some(b) = self.0 {
                    b.probe_lost();
                }
            }
        }
        let mut guard = ProbeGuard(probe.then_some(&*breaker));
        let result = call();
        guard.0 = None;
        match &result {
            Err(Failure::Transient(_)) => {
                if breaker.failure(probe, std::time::Instant::now()) {
                    self.tripped.set(Some(downstream.to_owned()));
                }
            }
            Err(Failure::Unavailable { .. }) => {}
            _ => breaker.success(probe),
        }
        result
    }
}

type HandlerFn = Arc<dyn Fn(&Context<'_>, &Envelope) -> Result<(), Failure> + Send + Sync>;

/// Builds a [`Service`].
pub struct ServiceBuilder {
    name: String,
    config: ServiceConfig,
    handlers: Vec<(&'static str, u32, &'static str, HandlerFn)>,
    fallback: Option<HandlerFn>,
    downstreams: Vec<(String, BreakerPolicy)>,
    upcasters: Arc<crate::Upcasters>,
}

impl fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("handlers", &self.handlers.len())
            .finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    pub fn config(mut self, config: ServiceConfig) -> Self {
        self.config = config;
        self
    }

    /// Upcasts every record's event to its type's current version before
    /// it is dispatched, so handlers registered for the current version
    /// ([`Self::on`]) get events written with older ones. An upcaster's
    /// failure, or a gap in a chain, dead-letters the record (as a decode
    /// error). A service fed by an event store ([`Service::start_store`]
    /// also sees its client's upcasters).
    pub fn upcasters(mut self, upcasters: crate::Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// Declares a downstream with its own breaker policy.
    pub fn downstream(mut self, name: impl Into<String>, policy: BreakerPolicy) -> Self {
        self.downstreams.push((name.into(), policy));
        self
    }

    /// Handles every event type `E` stands for. An event whose data does
    /// not decode as `E` is dead-lettered (a decode error is permanent).
    pub fn on<E: Event>(
        mut self,
        handler: impl Fn(&Context<'_>, E) -> Result<(), Failure> + Send + Sync + 'static,
    ) -> Self {
        let f: HandlerFn = Arc::new(move |ctx, envelope| {
            let event = envelope
                .decode::<E>()
                .map_err(|e| Failure::Permanent(format!("decode: {e}")))?;
            handler(ctx, event)
        });
        for t in E::TYPES {
            self.handlers
                .push((t.name, t.version, std::any::type_name::<E>(), f.clone()));
        }
        self
    }

    /// Handles every event no [`Self::on`] handler takes (without it,
    /// such events are skipped).
    pub fn on_any(
        mut self,
        handler: impl Fn(&Context<'_>, &Envelope) -> Result<(), Failure> + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Some(Arc::new(handler));
        self
    }

    pub fn build(self) -> Result<Service, Error> {
        let bad = |reason: String| Error::Config { reason };
        if self.name.is_empty() || self.name.len() > 249 {
            return Err(bad(format!(
                "a service name (its consumer group) has 1 to 249 bytes, not {}",
                self.name.len()
            )));
        }
        let c = &self.config;
        if c.workers == 0 || c.workers > WORKERS_MAX {
            return Err(bad(format!(
                "workers is 1 to {WORKERS_MAX}, not {}",
                c.workers
            )));
        }
        if c.in_flight_max == 0 || c.in_flight_max > IN_FLIGHT_MAX {
            return Err(bad(format!(
                "in_flight_max is 1 to {IN_FLIGHT_MAX}, not {}",
                c.in_flight_max
            )));
        }
        if c.retry.attempts == 0 {
            return Err(bad("retry.attempts is at least 1".to_owned()));
        }
        if c.dead_letter_suffix.is_empty() {
            return Err(bad("the dead-letter suffix is empty".to_owned()));
        }
        if self.downstreams.len() > DOWNSTREAMS_MAX {
            return Err(bad(format!("more than {DOWNSTREAMS_MAX} downstreams")));
        }
        let mut handlers: HashMap<(String, u32), (&'static str, HandlerFn)> = HashMap::new();
        for (name, version, rust, f) in self.handlers {
            if let Some((first, _)) = handlers.get(&(name.to_owned(), version)) {
                return Err(Error::DuplicateEventType {
                    event_type: name.to_owned(),
                    version,
                    first,
                    second: rust,
                });
            }
            handlers.insert((name.to_owned(), version), (rust, f));
        }
        Ok(Service {
            shared: Arc::new(Shared {
                breakers: Breakers::new(self.config.breaker, &self.downstreams),
                name: self.name,
                config: self.config,
                handlers: handlers.into_iter().map(|(k, (_, f))| (k, f)).collect(),
                fallback: self.fallback,
                upcasters: self.upcasters,
                stats: Counters::default(),
            }),
        })
    }
}

/// Counts since the service was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records taken from the source.
    pub fetched: u64,
    /// Records whose handler succeeded.
    pub handled: u64,
    /// Records no handler takes.
    pub skipped: u64,
    /// Attempts that failed transiently and were retried.
    pub retries: u64,
    pub dead_lettered: u64,
    /// Records given up at the shutdown deadline (delivered again later).
    pub abandoned: u64,
    /// Records fetched and not yet done.
    pub in_flight: u64,
    /// Times fetching paused because the in-flight limit was reached.
    pub backpressure_pauses: u64,
    /// Partitions assigned to the service now.
    pub assigned: u64,
    /// Partitions paused now (backpressure, or waiting on an open breaker).
    pub paused: u64,
    /// Offsets committed (partitions, summed over commits).
    pub commits: u64,
}

#[derive(Debug, Default)]
struct Counters {
    fetched: AtomicU64,
    handled: AtomicU64,
    skipped: AtomicU64,
    retries: AtomicU64,
    dead_lettered: AtomicU64,
    abandoned: AtomicU64,
    in_flight: AtomicU64,
    backpressure_pauses: AtomicU64,
    assigned: AtomicU64,
    paused: AtomicU64,
    commits: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct Shared {
    name: String,
    config: ServiceConfig,
    handlers: HashMap<(String, u32), HandlerFn>,
    fallback: Option<HandlerFn>,
    upcasters: Arc<crate::Upcasters>,
    breakers: Breakers,
    stats: Counters,
}

impl Shared {
    fn handler(&self, envelope: &Envelope) -> Option<&HandlerFn> {
        self.handlers
            .get(&(envelope.event_type.clone(), envelope.dataversion))
            .or(self.fallback.as_ref())
    }
}

/// A consumer service: a name (its consumer group), handlers, settings.
/// Cheap to clone; [`Service::start`] runs it.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.shared.name)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service named `name`, which is also its consumer group.
    pub fn builder(name: impl Into<String>) -> ServiceBuilder {
        ServiceBuilder {
            name: name.into(),
            config: ServiceConfig::default(),
            handlers: Vec::new(),
            fallback: None,
            downstreams: Vec::new(),
            upcasters: Arc::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            fetched: get(&c.fetched),
            handled: get(&c.handled),
            skipped: get(&c.skipped),
            retries: get(&c.retries),
            dead_lettered: get(&c.dead_lettered),
            abandoned: get(&c.abandoned),
            in_flight: get(&c.in_flight),
            backpressure_pauses: get(&c.backpressure_pauses),
            assigned: get(&c.assigned),
            paused: get(&c.paused),
            commits: get(&c.commits),
        }
    }

    /// Each downstream's breaker state, by name.
    pub fn breakers(&self) -> Vec<(String, BreakerState)> {
        self.shared.breakers.report()
    }

    /// Starts consuming `source` on threads of its own (a poll thread and
    /// the workers); returns once the consumer is created and subscribed.
    pub fn start(&self, source: KafkaSource) -> Result<Running, Error> {
        let stop = Arc::new(Stop::default());
        let consumer = kafka::Runtime::new(self.shared.clone(), &source, stop.clone())?;
        self.spawn(stop, move || consumer.run())
    }

    /// Starts consuming an event-store subscription with the same
    /// handlers: events are read through the client (embedded or remote)
    /// from the service's checkpoint, kept in
    /// `<read models dir>/<name>.service.sqlite`; poison events are parked
    /// in [`parked_stream`] and replayed with [`replay_parked`].
    pub fn start_store(&self, source: StoreSource) -> Result<Running, Error> {
        let stop = Arc::new(Stop::default());
        let runtime = store::StoreRuntime::new(self.shared.clone(), &source, stop.clone())?;
        self.spawn(stop, move || runtime.run())
    }

    fn spawn(
        &self,
        stop: Arc<Stop>,
        run: impl FnOnce() -> Result<(), Error> + Send + 'static,
    ) -> Result<Running, Error> {
        let thread = std::thread::Builder::new()
            .name(format!("weir-service-{}", self.shared.name))
            .spawn(run)
            .map_err(|e| Error::Config {
                reason: format!("starting the service's thread: {e}"),
            })?;
        Ok(Running {
            stop,
            thread: Some(thread),
        })
    }

    /// Runs on `source` until SIGTERM or SIGINT, then shuts down
    /// gracefully (see [`Running::stop`]).
    pub fn run_until_signal(&self, source: KafkaSource) -> Result<Stats, Error> {
        let signalled = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, signalled.clone()).map_err(|e| Error::Config {
                reason: format!("installing the signal handler: {e}"),
            })?;
        }
        let running = self.start(source)?;
        while !signalled.load(Ordering::Relaxed) && !running.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
        }
        running.stop()?;
        Ok(self.stats())
    }
}

/// How far a running service is told to stop.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    /// Stop fetching, finish what is in flight, commit, leave.
    graceful: AtomicBool,
    /// The shutdown deadline passed: give up what is in flight.
    hard: AtomicBool,
}

impl Stop {
    pub(crate) fn graceful(&self) -> bool {
        self.graceful.load(Ordering::Relaxed)
    }

    pub(crate) fn hard(&self) -> bool {
        self.hard.load(Ordering::Relaxed)
    }
}

/// A started service.
#[derive(Debug)]
pub struct Running {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

impl Running {
    /// Whether the service stopped by itself (a fatal error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops gracefully: no more fetching, in-flight handlers finish
    /// (until the shutdown deadline; what is left is not committed and is
    /// delivered again later), done offsets are committed, the consumer
    /// leaves its group. Returns the error that stopped the service, if one
    /// did.
    pub fn stop(mut self) -> Result<(), Error> {
        self.stop.graceful.store(true, Ordering::Relaxed);
        self.join()
    }

    fn join(&mut self) -> Result<(), Error> {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(Error::Config {
                    reason: "the service's poll thread panicked".to_owned(),
                })
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.graceful.store(true, Ordering::Relaxed);
        let _ = self.join();
    }
}
