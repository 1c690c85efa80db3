//! `weir-bench store`: the event store (weir-store's `EmbeddedStore`, in
//! this process) against PostgreSQL doing the same work, and against the
//! disk's physical limit, all in one run on the disk holding `--dir`.
//!
//! Both systems get the same events (a JSON payload of about 100 bytes, an
//! id, a type) from the same threads, and every append states the exact
//! version it expects:
//!
//! 1. single-event appends, 1 writer, then `--writers` (16) writers, each
//!    on its own stream: as threads calling the blocking `append` (the row
//!    the goals use, like PostgreSQL's connection per writer), and as async
//!    tasks on a runtime with a worker per core calling `append_async` (as
//!    `weir serve`'s HTTP API appends: no thread blocked per append);
//! 2. 100-event appends, 1 writer;
//! 3. reading one stream of `--stream-events` (10,000) events, whole, again
//!    and again;
//! 4. reading all events from position 0 in pages of [`READ_PAGE`], after
//!    both systems were topped up (untimed) to the same number of events.
//!
//! Every phase runs for `--seconds` or until `--events-max` events,
//! whichever comes first, split into `--reps` slices in which the systems
//! take turns (as `weir-bench log` does), so drift in a shared machine's
//! speed hits all of them alike. Latency is per call (one append, one
//! whole-stream read, one page).
//!
//! **Weir**: a scratch data directory with the broker's defaults
//! (`fsync=always`): an append returns once its events are durable, and
//! concurrent appends share the data directory's `fdatasync` rounds (group
//! commit).
//!
//! **PostgreSQL** ([`crate::pg`]): a throwaway cluster in the same scratch
//! directory, `fsync=on`, `synchronous_commit=on`, defaults otherwise, one
//! connection per thread, statements prepared before the clock starts.
//! Table `events`: `position` (bigint identity, the global position),
//! `stream_id`, `version`, `event_id`, `event_type`, `data` (jsonb),
//! `recorded_at`, with `unique (stream_id, version)`. The event id and
//! recorded time are there because Weir stores both and returns them. An
//! append is one statement, so one transaction: it inserts the events with
//! versions after the expected one only if the stream's current version
//! (`max(version)`, from the unique index) is the expected one, and counts
//! the inserted rows; two writers racing past the check on one stream are
//! stopped by the unique constraint. PostgreSQL's fsyncs are its WAL syncs
//! (`pg_stat_wal.wal_sync`).
//!
//! **The physical limit**: threads doing `pwrite` of one stored event's
//! bytes (as many as Weir stored per single-event append) and
//! `fdatasync`, each in its own file written with zeros and synced before
//! the clock starts, so every sync flushes data only. With N threads this
//! is the issue's "raw fdatasyncs/s × writers": N writers each waiting for
//! its own sync. But Weir's writers share one `fdatasync` per round (group
//! commit), so the bound that matters for it is another figure, also
//! measured: one thread writing N events' bytes and one `fdatasync` per
//! round into one file, N events per sync, which is what a perfect group
//! commit of N waiting writers reaches on this disk. The goal's limit is
//! the larger of the two; the report gives the ratio to each.
//!
//! **The closed-loop ceiling**: the perfect group commit above never waits
//! for its writers, but the concurrent rows' writers each wait for their
//! append before making the next, so between two syncs they must wake and
//! write. A third raw row runs that loop with nothing else in it: N
//! threads each add one event's bytes to a shared buffer and wait until an
//! `fdatasync` covers it; a leader waits until all N have added theirs,
//! writes the buffer with one `pwrite` and syncs. It is the fastest such
//! loop measured on these machines, so no store gets much past it with N
//! blocking writers there, and the report gives Weir's ratio to it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use weir_broker::{Broker, BrokerConfig};
use weir_log::{DataDir, DirConfig, FsyncPolicy, Log};
use weir_store::{
    Direction, EVENTS_TOPIC, EmbeddedStore, EventStore as _, ExpectedVersion, NewEvent, StoreConfig,
};

use crate::log_bench::Rng;
use crate::report::{self, Latency, Row};
use crate::sys;
use weir_testpg::{self as pg, PgServer};

/// Events per append in the batch phase.
const BATCH_EVENTS: usize = 100;
/// Events per call when reading all, on both systems.
pub const READ_PAGE: usize = 10_000;
/// Events per append when building the read stream and topping up before
/// reading all (untimed).
const SETUP_APPEND_EVENTS: usize = 1_000;
/// Bytes of each raw baseline file, written with zeros before the clock
/// starts; writes wrap around to its start.
const RAW_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Seconds each timed phase runs at most [default: 4, with --quick
    /// 0.25]
    #[arg(long)]
    seconds: Option<f64>,
    /// Most events one append phase writes (or raw phase syncs for),
    /// whatever --seconds allows [default: 200000, with --quick 5000]
    #[arg(long)]
    events_max: Option<u64>,
    /// Writers of the concurrent phase, each on its own stream and thread
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Events of the stream the stream-read phase reads [default: 10000,
    /// with --quick 1000]
    #[arg(long)]
    stream_events: Option<u64>,
    /// Fewest events each system holds before reading all (both are topped
    /// up to the same count) [default: 200000, with --quick 5000]
    #[arg(long)]
    read_all_events: Option<u64>,
    /// Each phase runs as this many slices, the systems taking turns, so
    /// drift in the machine's speed hits all alike [default: 4, with
    /// --quick 1]
    #[arg(long)]
    reps: Option<u32>,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards. When this runs as root, PostgreSQL runs
    /// as `nobody`, which must be able to enter the directories above it
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
}

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    phase: Duration,
    events_max: u64,
    writers: usize,
    stream_events: u64,
    read_all_events: u64,
}

impl Plan {
    fn new(args: &StoreArgs) -> anyhow::Result<Self> {
        let seconds = args.seconds.unwrap_or(if args.quick { 0.25 } else { 4.0 });
        anyhow::ensure!(
            seconds.is_finite() && seconds > 0.0 && seconds <= 600.0,
            "--seconds must be in (0, 600], not {seconds}"
        );
        let plan = Self {
            phase: Duration::from_secs_f64(seconds),
            events_max: args
                .events_max
                .unwrap_or(if args.quick { 5_000 } else { 200_000 }),
            writers: args.writers,
            stream_events: args
                .stream_events
                .unwrap_or(if args.quick { 1_000 } else { 10_000 }),
            read_all_events: args.read_all_events.unwrap_or(if args.quick {
                5_000
            } else {
                200_000
            }),
        };
        anyhow::ensure!(
            (1..=256).contains(&plan.writers),
            "--writers must be 1 to 256"
        );
        anyhow::ensure!(
            plan.events_max >= BATCH_EVENTS as u64,
            "--events-max must be at least {BATCH_EVENTS}"
        );
        anyhow::ensure!(
            (1..=weir_store::READ_COUNT_MAX as u64).contains(&plan.stream_events),
            "--stream-events must be 1 to {} (one read returns the whole stream)",
            weir_store::READ_COUNT_MAX
        );
        anyhow::ensure!(
            plan.read_all_events <= 10_000_000,
            "--read-all-events is at most 10000000"
        );
        Ok(plan)
    }
}

/// One event as both systems get it.
#[derive(Debug, Clone)]
struct BenchEvent {
    id: String,
    event_type: &'static str,
    /// A JSON object of about 100 bytes.
    data: String,
}

/// Deterministic events for one writer: unique ids, two types, payloads
/// that differ from event to event.
#[derive(Debug)]
struct EventGen {
    rng: Rng,
    prefix: String,
    seq: u64,
}

impl EventGen {
    fn new(prefix: &str, seed: u64) -> Self {
        Self {
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            prefix: prefix.to_owned(),
            seq: 0,
        }
    }

    fn next(&mut self, n: usize) -> Vec<BenchEvent> {
        (0..n)
            .map(|_| {
                let r = self.rng.next_u64();
                let event = BenchEvent {
                    id: format!("{}-{}", self.prefix, self.seq),
                    event_type: if r & 1 == 0 { "Deposited" } else { "Withdrawn" },
                    data: format!(
                        r#"{{"account":"{}","amount":{},"currency":"EUR","reference":"{:016x}{:016x}"}}"#,
                        self.prefix,
                        r % 100_000,
                        self.rng.next_u64(),
                        r
                    ),
                };
                self.seq += 1;
                event
            })
            .collect()
    }
}

/// A system under test, as the phases drive it.
trait System: Sync {
    /// Its name in the table.
    fn name(&self) -> &'static str;
    /// A handle for one thread (for PostgreSQL, its own connection).
    fn session(&self) -> anyhow::Result<Box<dyn Session + '_>>;
    /// Syncs so far: Weir's `fdatasync`s and directory `fsync`s,
    /// PostgreSQL's WAL syncs.
    fn fsyncs(&self) -> anyhow::Result<u64>;
    /// Events stored.
    fn events(&self) -> anyhow::Result<u64>;
}

/// One thread's handle on a system.
trait Session {
    /// Appends `events` to `stream` if its last version is `expected`
    /// (`None`: the stream must not exist), all or none, durably; returns
    /// the stream's new last version.
    fn append(
        &mut self,
        stream: &str,
        expected: Option<u64>,
        events: &[BenchEvent],
    ) -> anyhow::Result<u64>;
    /// Reads up to `max` events of `stream` from its first; returns how
    /// many.
    fn read_stream(&mut self, stream: &str, max: usize) -> anyhow::Result<usize>;
    /// Reads up to `max` events in global order from position `from`;
    /// returns how many and the position after the last.
    fn read_all(&mut self, from: u64, max: usize) -> anyhow::Result<(usize, u64)>;
    /// Makes [`System::fsyncs`] cover what this session did so far.
    fn flush_stats(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Weir's event store in this process, over its own data directory.
#[derive(Debug)]
struct Weir {
    store: Arc<EmbeddedStore>,
    /// The events log, for the bytes stored per event.
    log: Log,
}

impl Weir {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let data = DataDir::open(dir, DirConfig::default())
            .with_context(|| format!("open data directory {}", dir.display()))?;
        let broker = Arc::new(Broker::open(data, BrokerConfig::default()).context("open broker")?);
        let store = Arc::new(
            EmbeddedStore::open(broker.clone(), StoreConfig::default()).context("open store")?,
        );
        let log = broker
            .partition(EVENTS_TOPIC, 0)
            .context("the events log")?;
        // The comparison is only fair if an append returns once durable.
        anyhow::ensure!(
            log.fsync_policy() == FsyncPolicy::Always,
            "the events log syncs {:?}, not always",
            log.fsync_policy()
        );
        Ok(Self { store, log })
    }
}

#[derive(Debug)]
struct WeirSession<'a> {
    store: &'a EmbeddedStore,
}

impl System for Weir {
    fn name(&self) -> &'static str {
        "weir"
    }

    fn session(&self) -> anyhow::Result<Box<dyn Session + '_>> {
        Ok(Box::new(WeirSession { store: &self.store }))
    }

    fn fsyncs(&self) -> anyhow::Result<u64> {
        let stats = self.store.broker().data_dir().sync_stats();
        Ok(stats.data_syncs + stats.dir_syncs)
    }

    fn events(&self) -> anyhow::Result<u64> {
        Ok(self.store.head_position())
    }
}

impl Session for WeirSession<'_> {
    fn append(
        &mut self,
        stream: &str,
        expected: Option<u64>,
        events: &[BenchEvent],
    ) -> anyhow::Result<u64> {
        let events: Vec<NewEvent> = events
            .iter()
            .map(|e| NewEvent::json(e.id.as_str(), e.event_type, e.data.as_bytes()))
            .collect();
        let expected = expected.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let done = self.store.append(stream, expected, &events)?;
        Ok(done.last_version)
    }

    fn read_stream(&mut self, stream: &str, max: usize) -> anyhow::Result<usize> {
        let events = self.store.read_stream(stream, 0, Direction::Forward, max)?;
        Ok(std::hint::black_box(events).len())
    }

    fn read_all(&mut self, from: u64, max: usize) -> anyhow::Result<(usize, u64)> {
        let events = self.store.read_all(from, Direction::Forward, max)?;
        let next = events.last().map_or(from, |e| e.position + 1);
        Ok((std::hint::black_box(events).len(), next))
    }
}

const SCHEMA: &str = "
CREATE TABLE events (
    position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id   text NOT NULL,
    version     bigint NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    data        jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
)";

/// $1 stream, $2 the expected version (-1: no stream), $3..$5 the events'
/// ids, types and JSON as text arrays. Inserts nothing unless the stream's
/// last version is $2; returns one row per event inserted.
const APPEND_SQL: &str = "
INSERT INTO events (stream_id, version, event_id, event_type, data)
SELECT $1, $2 + e.n, e.id, e.type, e.data::jsonb
FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS e(id, type, data, n)
WHERE coalesce((SELECT max(version) FROM events WHERE stream_id = $1), -1) = $2
RETURNING position";

/// What both reads return per event, the same fields Weir's
/// `RecordedEvent` has (less content type and metadata, which the table
/// does not hold).
const EVENT_COLUMNS: &str = "position, stream_id, version, event_id, event_type, data::text, \
     (extract(epoch FROM recorded_at) * 1000)::bigint";

/// An event read from PostgreSQL, decoded as Weir's reads decode theirs.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "read only through black_box, as a client would hold it"
)]
struct PgEvent {
    position: i64,
    stream: String,
    version: i64,
    id: String,
    event_type: String,
    data: String,
    recorded_ms: i64,
}

impl PgEvent {
    fn from_row(row: &postgres::Row) -> anyhow::Result<Self> {
        Ok(Self {
            position: row.try_get(0)?,
            stream: row.try_get(1)?,
            version: row.try_get(2)?,
            id: row.try_get(3)?,
            event_type: row.try_get(4)?,
            data: row.try_get(5)?,
            recorded_ms: row.try_get(6)?,
        })
    }
}

/// The throwaway PostgreSQL and a connection for counters. (No `Debug`:
/// the client has none.)
struct Postgres {
    server: PgServer,
    admin: Mutex<postgres::Client>,
}

struct PgSession {
    client: postgres::Client,
    append: postgres::Statement,
    read_stream: postgres::Statement,
    read_all: postgres::Statement,
}

impl Postgres {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let server = PgServer::start(dir)?;
        let mut admin = server.connect()?;
        admin.batch_execute(SCHEMA).context("create table events")?;
        for (name, want) in [("fsync", "on"), ("synchronous_commit", "on")] {
            let got: String = admin.query_one(&format!("SHOW {name}"), &[])?.get(0);
            anyhow::ensure!(got == want, "PostgreSQL runs with {name}={got}, not {want}");
        }
        Ok(Self {
            server,
            admin: Mutex::new(admin),
        })
    }

    /// "15.18 (fsync=on, ...)" for the header.
    fn describe(&self) -> anyhow::Result<String> {
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let version: String = admin.query_one("SHOW server_version", &[])?.get(0);
        let mut settings = Vec::with_capacity(pg::REPORTED_SETTINGS.len());
        for name in pg::REPORTED_SETTINGS {
            let value: String = admin.query_one(&format!("SHOW {name}"), &[])?.get(0);
            settings.push(format!("{name}={value}"));
        }
        Ok(format!(
            "PostgreSQL {version} as {} on 127.0.0.1:{} ({})",
            self.server.user,
            self.server.port(),
            settings.join(", ")
        ))
    }

    fn stop(self) -> anyhow::Result<()> {
        drop(self.admin);
        self.server.stop()
    }
}

impl System for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn session(&self) -> anyhow::Result<Box<dyn Session + '_>> {
        let mut client = self.server.connect()?;
        let append = client.prepare(APPEND_SQL).context("prepare append")?;
        let read_stream = client
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 \
                 ORDER BY version LIMIT $3"
            ))
            .context("prepare read stream")?;
        let read_all = client
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position >= $1 ORDER BY position LIMIT $2"
            ))
            .context("prepare read all")?;
        Ok(Box::new(PgSession {
            client,
            append,
            read_stream,
            read_all,
        }))
    }

    fn fsyncs(&self) -> anyhow::Result<u64> {
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let syncs: i64 = admin
            .query_one("SELECT wal_sync FROM pg_stat_wal", &[])?
            .get(0);
        Ok(syncs as u64)
    }

    fn events(&self) -> anyhow::Result<u64> {
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let n: i64 = admin.query_one("SELECT count(*) FROM events", &[])?.get(0);
        Ok(n as u64)
    }
}

impl Session for PgSession {
    fn append(
        &mut self,
        stream: &str,
        expected: Option<u64>,
        events: &[BenchEvent],
    ) -> anyhow::Result<u64> {
        let after = expected.map_or(-1, |v| v as i64);
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        let rows = self
            .client
            .query(&self.append, &[&stream, &after, &ids, &types, &data])
            .with_context(|| format!("append to {stream}"))?;
        if rows.len() != events.len() {
            bail!("wrong expected version: {stream} is not at {after}");
        }
        Ok((after + events.len() as i64) as u64)
    }

    fn read_stream(&mut self, stream: &str, max: usize) -> anyhow::Result<usize> {
        let rows = self
            .client
            .query(&self.read_stream, &[&stream, &0i64, &(max as i64)])?;
        let events = rows
            .iter()
            .map(PgEvent::from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(std::hint::black_box(events).len())
    }

    fn read_all(&mut self, from: u64, max: usize) -> anyhow::Result<(usize, u64)> {
        let rows = self
            .client
            .query(&self.read_all, &[&(from as i64), &(max as i64)])?;
        let events = rows
            .iter()
            .map(PgEvent::from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next = events.last().map_or(from, |e| e.position as u64 + 1);
        Ok((std::hint::black_box(events).len(), next))
    }

    fn flush_stats(&mut self) -> anyhow::Result<()> {
        // A backend publishes its WAL counters when it goes idle, at most
        // once a second unless asked; this asks, and the second statement
        // starts only after the first one's idle point has passed.
        self.client
            .batch_execute("SELECT pg_stat_force_next_flush()")?;
        self.client.batch_execute("SELECT 1")?;
        Ok(())
    }
}

/// What the threads of one phase measured.
#[derive(Debug, Default)]
struct Tally {
    events: u64,
    latencies_ns: Vec<u64>,
}

/// One phase's measurements, summed over its slices.
#[derive(Debug, Default)]
struct Measured {
    tally: Tally,
    elapsed: Duration,
    fsyncs: u64,
}

impl Measured {
    fn add(&mut self, (tally, elapsed, fsyncs): (Tally, Duration, u64)) {
        self.tally.events += tally.events;
        self.tally.latencies_ns.extend(tally.latencies_ns);
        self.elapsed += elapsed;
        self.fsyncs += fsyncs;
    }

    fn row(self, phase: String) -> Row {
        Row {
            phase,
            records: self.tally.events,
            bytes: 0,
            fsyncs: self.fsyncs,
            elapsed: self.elapsed,
            latency: Latency::from_ns(self.tally.latencies_ns),
        }
    }
}

/// Runs `work` on `threads` threads, started together after each ran
/// `setup`; the clock (and `fsyncs`, read before and after) covers the
/// work only. A failing setup still passes the barriers, so the others are
/// not left waiting, and fails the phase.
fn timed<S>(
    threads: usize,
    fsyncs: &(dyn Fn() -> anyhow::Result<u64> + Sync),
    setup: impl Fn(usize) -> anyhow::Result<S> + Sync,
    work: impl Fn(usize, S) -> anyhow::Result<Tally> + Sync,
) -> anyhow::Result<(Tally, Duration, u64)> {
    let ready = Barrier::new(threads + 1);
    let go = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let (ready, go, setup, work) = (&ready, &go, &setup, &work);
            let handle = std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn_scoped(s, move || {
                    let state = setup(t);
                    ready.wait();
                    go.wait();
                    work(t, state?)
                })
                .context("spawn a benchmark thread")?;
            handles.push(handle);
        }
        ready.wait();
        let before = fsyncs();
        let start = Instant::now();
        go.wait();
        let mut total = Tally::default();
        let mut failed = None;
        for handle in handles {
            match handle.join() {
                Ok(Ok(tally)) => {
                    total.events += tally.events;
                    total.latencies_ns.extend(tally.latencies_ns);
                }
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(_) => failed = failed.or(Some(anyhow::anyhow!("a thread panicked"))),
            }
        }
        let elapsed = start.elapsed();
        if let Some(e) = failed {
            return Err(e);
        }
        let synced = fsyncs()?.saturating_sub(before?);
        Ok((total, elapsed, synced))
    })
}

/// A slice's results: what its threads did, its time, its syncs.
type Slice = (Tally, Duration, u64);

/// `writers` threads each append `per_append` events at a time to a
/// stream of its own (named after `label`), with the exact expected
/// version, for the slice's time or `events_max` events in all. Each
/// stream's first append (expecting no stream) is made before the clock
/// starts.
fn append_slice(
    system: &dyn System,
    slice: &Plan,
    label: &str,
    writers: usize,
    per_append: usize,
) -> anyhow::Result<Slice> {
    let appends_max = (slice.events_max / (writers * per_append) as u64).max(1);
    timed(
        writers,
        &|| system.fsyncs(),
        |w| {
            let mut session = system.session()?;
            let stream = format!("{label}-{w}");
            let mut events = EventGen::new(&stream, w as u64 + 1);
            let version = session.append(&stream, None, &events.next(per_append))?;
            session.flush_stats()?;
            Ok((session, stream, events, version))
        },
        |_, (mut session, stream, mut events, mut version)| {
            let mut latencies_ns = Vec::with_capacity(appends_max.min(1 << 20) as usize);
            let deadline = Instant::now() + slice.phase;
            while (latencies_ns.len() as u64) < appends_max && Instant::now() < deadline {
                let batch = events.next(per_append);
                let t = Instant::now();
                let last = session.append(&stream, Some(version), &batch)?;
                latencies_ns.push(t.elapsed().as_nanos() as u64);
                anyhow::ensure!(
                    last == version + per_append as u64,
                    "{stream}: version {last} after appending {per_append} at {version}"
                );
                version = last;
            }
            session.flush_stats()?;
            Ok(Tally {
                events: latencies_ns.len() as u64 * per_append as u64,
                latencies_ns,
            })
        },
    )
}

/// Like [`append_slice`] for Weir with single-event appends, but the
/// writers are async tasks on a runtime with a worker per core, appending
/// through `append_async`: the way an async server (`weir serve`'s HTTP
/// API) appends, with no thread blocked per append in flight.
fn async_append_slice(
    weir: &Weir,
    slice: &Plan,
    label: &str,
    writers: usize,
) -> anyhow::Result<Slice> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .context("start the async writers' runtime")?;
    let appends_max = (slice.events_max / writers as u64).max(1);
    let mut firsts = Vec::with_capacity(writers);
    for w in 0..writers {
        let stream = format!("{label}-{w}");
        let mut events = EventGen::new(&stream, w as u64 + 1);
        let mut session = WeirSession { store: &weir.store };
        let first = session.append(&stream, None, &events.next(1))?;
        firsts.push((stream, events, first));
    }
    let before = weir.fsyncs()?;
    let start = Instant::now();
    let deadline = start + slice.phase;
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = firsts
            .into_iter()
            .map(|(stream, mut events, mut version)| {
                let store = weir.store.clone();
                tokio::spawn(async move {
                    let mut latencies_ns = Vec::with_capacity(appends_max.min(1 << 20) as usize);
                    while (latencies_ns.len() as u64) < appends_max && Instant::now() < deadline {
                        let e = events.next(1).pop().context("one event")?;
                        let new = [NewEvent::json(
                            e.id.as_str(),
                            e.event_type,
                            e.data.as_bytes(),
                        )];
                        let t = Instant::now();
                        let done = store
                            .append_async(&stream, ExpectedVersion::Exact(version), &new)
                            .await?;
                        latencies_ns.push(t.elapsed().as_nanos() as u64);
                        anyhow::ensure!(
                            done.last_version == version + 1,
                            "{stream}: version {} after appending 1 at {version}",
                            done.last_version
                        );
                        version = done.last_version;
                    }
                    Ok(Tally {
                        events: latencies_ns.len() as u64,
                        latencies_ns,
                    })
                })
            })
            .collect();
        let mut tallies = Vec::with_capacity(tasks.len());
        for task in tasks {
            tallies.push(task.await.context("an async writer panicked")?);
        }
        anyhow::Ok(tallies)
    })?;
    let elapsed = start.elapsed();
    let mut total = Tally::default();
    for tally in tallies {
        let tally = tally?;
        total.events += tally.events;
        total.latencies_ns.extend(tally.latencies_ns);
    }
    let synced = weir.fsyncs()?.saturating_sub(before);
    Ok((total, elapsed, synced))
}

fn append_phase_name(system: &dyn System, writers: usize, per_append: usize) -> String {
    let what = if per_append == 1 {
        "1 event".to_owned()
    } else {
        format!("{per_append} events")
    };
    let who = if writers == 1 {
        "1 writer".to_owned()
    } else {
        format!("{writers} writers")
    };
    format!("{} append {what}, {who}", system.name())
}

/// Untimed: `stream` gets `n` events, then the system is topped up with
/// other streams to `total` events.
fn prepare_reads(system: &dyn System, stream: &str, n: u64, total: u64) -> anyhow::Result<()> {
    let mut session = system.session()?;
    let mut events = EventGen::new(stream, 7);
    let mut version = None;
    let mut left = n;
    while left > 0 {
        let k = left.min(SETUP_APPEND_EVENTS as u64) as usize;
        version = Some(session.append(stream, version, &events.next(k))?);
        left -= k as u64;
    }
    let mut have = system.events()?;
    let mut filler = 0;
    while have < total {
        let k = (total - have).min(SETUP_APPEND_EVENTS as u64) as usize;
        let stream = format!("fill-{filler}");
        let mut events = EventGen::new(&stream, 11);
        session.append(&stream, None, &events.next(k))?;
        have += k as u64;
        filler += 1;
    }
    let have = system.events()?;
    anyhow::ensure!(
        have == total,
        "{} holds {have} events, not {total}",
        system.name()
    );
    Ok(())
}

/// Reads the whole of `stream` (`n` events) again and again for the
/// slice's time (at least once).
fn read_stream_slice(
    system: &dyn System,
    slice: &Plan,
    stream: &str,
    n: u64,
) -> anyhow::Result<Slice> {
    timed(
        1,
        &|| Ok(0),
        |_| system.session(),
        |_, mut session| {
            let mut tally = Tally::default();
            let deadline = Instant::now() + slice.phase;
            while tally.latencies_ns.is_empty() || Instant::now() < deadline {
                let t = Instant::now();
                let got = session.read_stream(stream, n as usize)?;
                tally.latencies_ns.push(t.elapsed().as_nanos() as u64);
                anyhow::ensure!(got as u64 == n, "read {got} events of {stream}, not {n}");
                tally.events += got as u64;
            }
            Ok(tally)
        },
    )
}

/// Reads all `total` events from position 0 in pages of [`READ_PAGE`],
/// pass after pass for the slice's time (at least one whole pass; the last
/// may stop part-way).
fn read_all_slice(system: &dyn System, slice: &Plan, total: u64) -> anyhow::Result<Slice> {
    timed(
        1,
        &|| Ok(0),
        |_| system.session(),
        |_, mut session| {
            let mut tally = Tally::default();
            let deadline = Instant::now() + slice.phase;
            let mut passes = 0u64;
            while passes == 0 || Instant::now() < deadline {
                let (mut from, mut pass_events) = (0, 0u64);
                loop {
                    if passes > 0 && Instant::now() >= deadline {
                        break;
                    }
                    let t = Instant::now();
                    let (got, next) = session.read_all(from, READ_PAGE)?;
                    if got == 0 {
                        anyhow::ensure!(
                            pass_events == total,
                            "read {pass_events} events from position 0, not {total}"
                        );
                        passes += 1;
                        break;
                    }
                    tally.latencies_ns.push(t.elapsed().as_nanos() as u64);
                    tally.events += got as u64;
                    pass_events += got as u64;
                    from = next;
                }
            }
            Ok(tally)
        },
    )
}

/// The physical limit: `threads` threads, each with its own file, write
/// `records_per_sync` records of `record_bytes` and `fdatasync`, for the
/// slice's time or until `events_max` records in all.
fn raw_slice(
    dir: &Path,
    slice: &Plan,
    threads: usize,
    records_per_sync: usize,
    record_bytes: usize,
) -> anyhow::Result<Slice> {
    use std::os::unix::fs::FileExt as _;
    let write_bytes = records_per_sync * record_bytes;
    anyhow::ensure!(
        (write_bytes as u64) < RAW_FILE_BYTES,
        "raw writes of {write_bytes} bytes do not fit a {RAW_FILE_BYTES}-byte file"
    );
    let syncs_max = (slice.events_max / (threads * records_per_sync) as u64).max(1);
    let (tally, elapsed, _) = timed(
        threads,
        &|| Ok(0),
        |t| {
            let path = dir.join(format!("raw-{threads}x{records_per_sync}-{t}"));
            let file = zeroed_raw_file(&path)?;
            let mut rng = Rng(0x5eed + t as u64);
            let mut buf = vec![0u8; write_bytes];
            rng.fill(&mut buf);
            Ok((file, buf, path))
        },
        |_, (file, buf, path)| {
            let mut latencies_ns = Vec::with_capacity(syncs_max.min(1 << 20) as usize);
            let deadline = Instant::now() + slice.phase;
            let mut at = 0u64;
            while (latencies_ns.len() as u64) < syncs_max && Instant::now() < deadline {
                if at + buf.len() as u64 > RAW_FILE_BYTES {
                    at = 0;
                }
                let t = Instant::now();
                file.write_all_at(&buf, at)
                    .with_context(|| format!("write {}", path.display()))?;
                file.sync_data()
                    .with_context(|| format!("fdatasync {}", path.display()))?;
                latencies_ns.push(t.elapsed().as_nanos() as u64);
                at += buf.len() as u64;
            }
            drop(file);
            std::fs::remove_file(&path)?;
            Ok(Tally {
                events: latencies_ns.len() as u64 * records_per_sync as u64,
                latencies_ns,
            })
        },
    )?;
    let fsyncs = tally.latencies_ns.len() as u64;
    Ok((tally, elapsed, fsyncs))
}

/// Creates a raw baseline file of [`RAW_FILE_BYTES`], written with zeros
/// and synced (with its directory) before any clock starts: timed writes
/// then overwrite allocated, written blocks, so each `fdatasync` flushes
/// data only (the cheapest durable write this disk has).
fn zeroed_raw_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    let zeros = vec![0u8; 1024 * 1024];
    for at in (0..RAW_FILE_BYTES).step_by(zeros.len()) {
        file.write_all_at(&zeros, at)?;
    }
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(file)
}

/// The shared state of [`raw_closed_loop_slice`]'s writers.
#[derive(Debug, Default)]
struct LoopState {
    /// Events written to `pending` and not yet taken by a sync.
    pending: Vec<u8>,
    pending_events: usize,
    /// Where the next round writes in the file (wrapping at
    /// [`RAW_FILE_BYTES`]).
    at: u64,
    /// Events written in all, and how many of them the last sync covered.
    written: u64,
    durable: u64,
    /// A writer leads a round (gathering, writing, syncing) for the others.
    leading: bool,
    fsyncs: u64,
    failed: bool,
}

/// The closed-loop ceiling: `threads` threads each add one event's
/// `record_bytes` to a shared buffer and wait until an `fdatasync` covers
/// it, then add the next. The first waiter to find no round running leads
/// one: it waits (at most [`weir_log::GATHER_WAIT_MAX`]) until every
/// thread has added its event, writes the buffer at the end of one file
/// with one `pwrite` and syncs it. It knows how many writers there are and
/// does nothing else (no index, no encoding, no checks): the fastest such
/// loop we have measured on these machines (a leader that syncs without
/// gathering, or a `pwrite` per writer, reached less). The concurrent
/// rows' writers run this same loop, so no store reaches much more with
/// `threads` blocking writers on this machine; unlike the raw group-commit
/// row, its writers must wake and write between syncs.
fn raw_closed_loop_slice(
    dir: &Path,
    slice: &Plan,
    threads: usize,
    record_bytes: usize,
) -> anyhow::Result<Slice> {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join(format!("raw-loop-{threads}"));
    let file = zeroed_raw_file(&path)?;
    let state = Mutex::new(LoopState::default());
    let (synced, gathered) = (std::sync::Condvar::new(), std::sync::Condvar::new());
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let writes_max = (slice.events_max / threads as u64).max(1);
    let result = timed(
        threads,
        &|| Ok(lock().fsyncs),
        |t| {
            let mut buf = vec![0u8; record_bytes];
            Rng(0x100b + t as u64).fill(&mut buf);
            Ok(buf)
        },
        |_, buf| {
            let mut latencies_ns = Vec::with_capacity(writes_max.min(1 << 20) as usize);
            let deadline = Instant::now() + slice.phase;
            while (latencies_ns.len() as u64) < writes_max && Instant::now() < deadline {
                let t = Instant::now();
                let mut st = lock();
                st.pending.extend_from_slice(&buf);
                st.pending_events += 1;
                st.written += 1;
                let mine = st.written;
                if st.pending_events >= threads {
                    gathered.notify_one();
                }
                while st.durable < mine {
                    anyhow::ensure!(!st.failed, "another writer's write or fdatasync failed");
                    if st.leading {
                        st = synced.wait(st).unwrap_or_else(|e| e.into_inner());
                        continue;
                    }
                    st.leading = true;
                    let gather_until = Instant::now() + weir_log::GATHER_WAIT_MAX;
                    while st.pending_events < threads {
                        let Some(left) = gather_until.checked_duration_since(Instant::now()) else {
                            break;
                        };
                        st = gathered
                            .wait_timeout(st, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    let bytes = std::mem::take(&mut st.pending);
                    st.pending_events = 0;
                    let upto = st.written;
                    if st.at + bytes.len() as u64 > RAW_FILE_BYTES {
                        st.at = 0;
                    }
                    let offset = st.at;
                    st.at += bytes.len() as u64;
                    drop(st);
                    let outcome = file
                        .write_all_at(&bytes, offset)
                        .and_then(|()| file.sync_data());
                    st = lock();
                    st.leading = false;
                    st.fsyncs += 1;
                    match outcome {
                        Ok(()) => st.durable = upto,
                        Err(_) => st.failed = true,
                    }
                    synced.notify_all();
                    outcome.with_context(|| format!("write and fdatasync {}", path.display()))?;
                }
                drop(st);
                latencies_ns.push(t.elapsed().as_nanos() as u64);
            }
            Ok(Tally {
                events: latencies_ns.len() as u64,
                latencies_ns,
            })
        },
    );
    drop(file);
    std::fs::remove_file(&path)?;
    result
}

fn raw_phase_name(threads: usize, records_per_sync: usize) -> String {
    match (threads, records_per_sync) {
        (1, 1) => "raw write+fdatasync, 1 thread".to_owned(),
        (t, 1) => format!("raw write+fdatasync, {t} threads, a file each"),
        (_, r) => format!("raw group commit: {r} events per fdatasync, 1 file"),
    }
}

fn raw_loop_phase_name(threads: usize) -> String {
    format!("raw closed loop: {threads} threads, 1 file, a pwrite per round")
}

/// `a / b` as a ratio of events per second.
fn ratio(a: &Row, b: &Row) -> f64 {
    a.records_per_sec() / b.records_per_sec().max(1e-9)
}

fn goal(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// The table's rows, by workload; each phase ran as `reps` interleaved
/// slices, so drift in the machine's speed hits every system alike.
#[derive(Debug)]
struct Results {
    single: [Row; 3],
    /// Weir's threads, PostgreSQL, the two raw rows, the raw closed loop,
    /// Weir's async tasks.
    multi: [Row; 6],
    batch: [Row; 2],
    stream: [Row; 2],
    all: [Row; 2],
    /// Bytes Weir stored per single-event append (what the raw rows write).
    record_bytes: usize,
    /// Events each system held when reading all.
    total: u64,
}

fn measure(
    weir: &Weir,
    postgres: &Postgres,
    raw_dir: &Path,
    plan: &Plan,
    reps: u32,
) -> anyhow::Result<Results> {
    let slice = Plan {
        phase: plan.phase / reps,
        events_max: (plan.events_max / u64::from(reps)).max(BATCH_EVENTS as u64),
        ..*plan
    };
    let n = plan.writers;
    let log = &weir.log;
    let weir_store = weir;
    let weir: &dyn System = weir;
    let pg: &dyn System = postgres;

    eprintln!("[weir-bench] single-event appends, 1 writer ...");
    let mut single: [Measured; 3] = Default::default();
    let mut record_bytes = 0;
    for r in 0..reps {
        let label = format!("one{r}");
        let before = log.size_bytes();
        let (tally, elapsed, fsyncs) = append_slice(weir, &slice, &label, 1, 1)?;
        if r == 0 {
            // The slice wrote its events and its stream's first one.
            record_bytes =
                ((log.size_bytes() - before) / (tally.events + 1)).clamp(64, 64 * 1024) as usize;
        }
        single[0].add((tally, elapsed, fsyncs));
        single[1].add(append_slice(pg, &slice, &label, 1, 1)?);
        single[2].add(raw_slice(raw_dir, &slice, 1, 1, record_bytes)?);
    }

    eprintln!("[weir-bench] single-event appends, {n} writers ...");
    let mut multi: [Measured; 6] = Default::default();
    for r in 0..reps {
        let label = format!("many{r}");
        multi[0].add(append_slice(weir, &slice, &label, n, 1)?);
        multi[5].add(async_append_slice(
            weir_store,
            &slice,
            &format!("tasks{r}"),
            n,
        )?);
        multi[1].add(append_slice(pg, &slice, &label, n, 1)?);
        multi[2].add(raw_slice(raw_dir, &slice, n, 1, record_bytes)?);
        multi[3].add(raw_slice(raw_dir, &slice, 1, n, record_bytes)?);
        multi[4].add(raw_closed_loop_slice(raw_dir, &slice, n, record_bytes)?);
    }

    eprintln!("[weir-bench] {BATCH_EVENTS}-event appends, 1 writer ...");
    let mut batch: [Measured; 2] = Default::default();
    for r in 0..reps {
        let label = format!("batch{r}");
        batch[0].add(append_slice(weir, &slice, &label, 1, BATCH_EVENTS)?);
        batch[1].add(append_slice(pg, &slice, &label, 1, BATCH_EVENTS)?);
    }

    let total = [plan.read_all_events, weir.events()?, pg.events()?]
        .into_iter()
        .max()
        .unwrap_or(0)
        + plan.stream_events;
    eprintln!(
        "[weir-bench] filling both to {total} events (a {}-event stream, then others; untimed) ...",
        plan.stream_events
    );
    for system in [weir, pg] {
        prepare_reads(system, "reader-0", plan.stream_events, total)?;
    }
    eprintln!("[weir-bench] reads ...");
    let mut stream: [Measured; 2] = Default::default();
    let mut all: [Measured; 2] = Default::default();
    for _ in 0..reps {
        for (i, system) in [weir, pg].into_iter().enumerate() {
            stream[i].add(read_stream_slice(
                system,
                &slice,
                "reader-0",
                plan.stream_events,
            )?);
        }
    }
    for _ in 0..reps {
        for (i, system) in [weir, pg].into_iter().enumerate() {
            all[i].add(read_all_slice(system, &slice, total)?);
        }
    }

    let [s0, s1, s2] = single;
    let [m0, m1, m2, m3, m4, m5] = multi;
    let [b0, b1] = batch;
    let [r0, r1] = stream;
    let [a0, a1] = all;
    let k = plan.stream_events;
    Ok(Results {
        single: [
            s0.row(append_phase_name(weir, 1, 1)),
            s1.row(append_phase_name(pg, 1, 1)),
            s2.row(raw_phase_name(1, 1)),
        ],
        multi: [
            m0.row(append_phase_name(weir, n, 1)),
            m1.row(append_phase_name(pg, n, 1)),
            m2.row(raw_phase_name(n, 1)),
            m3.row(raw_phase_name(1, n)),
            m4.row(raw_loop_phase_name(n)),
            m5.row(format!("weir append 1 event, {n} async tasks")),
        ],
        batch: [
            b0.row(append_phase_name(weir, 1, BATCH_EVENTS)),
            b1.row(append_phase_name(pg, 1, BATCH_EVENTS)),
        ],
        stream: [
            r0.row(format!("weir read a {k}-event stream")),
            r1.row(format!("postgres read a {k}-event stream")),
        ],
        all: [
            a0.row(format!("weir read all from 0, pages of {READ_PAGE}")),
            a1.row(format!("postgres read all from 0, pages of {READ_PAGE}")),
        ],
        record_bytes,
        total,
    })
}

pub fn run(args: &StoreArgs) -> anyhow::Result<()> {
    let plan = Plan::new(args)?;
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 4 });
    anyhow::ensure!((1..=100).contains(&reps), "--reps must be 1 to 100");
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("weir-bench-store.")
        .tempdir_in(&args.dir)
        .with_context(|| format!("create a scratch directory in {}", args.dir.display()))?;
    let root = scratch.path().canonicalize()?;
    if sys::euid() == 0 {
        // PostgreSQL runs as an unprivileged user and must pass through
        // (not list) the scratch directory to reach its own.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))?;
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "weir-bench store: scratch {} on {}; {cpus} logical CPUs; each phase {:.2} s or {} events at most, {}",
        root.display(),
        sys::describe_mount(&root),
        plan.phase.as_secs_f64(),
        plan.events_max,
        if reps == 1 {
            "in one slice".to_owned()
        } else {
            format!("in {reps} interleaved slices")
        },
    );
    if sys::mount_of(&root).is_some_and(|m| m.fs_type == "tmpfs") {
        eprintln!(
            "[weir-bench] warning: {} is on tmpfs; fsync costs nothing there",
            root.display()
        );
    }

    eprintln!("[weir-bench] starting PostgreSQL (initdb in the scratch directory) ...");
    // Declared after `scratch`, so dropped (the server stopped) before the
    // scratch directory is removed, on every way out of this function.
    let postgres = Postgres::start(&root)?;
    println!("{}", postgres.describe()?);
    let weir = Weir::open(&root.join("weir"))?;
    let raw_dir = root.join("raw");
    std::fs::create_dir(&raw_dir)?;
    let results = measure(&weir, &postgres, &raw_dir, &plan, reps)?;
    let weir_bytes = weir.log.size_bytes();
    drop(weir);
    postgres.stop()?;
    drop(scratch);
    print_results(&results, &plan, weir_bytes);
    Ok(())
}

fn print_results(results: &Results, plan: &Plan, weir_bytes: u64) {
    let n = plan.writers;
    let Results {
        single: [weir_single, pg_single, raw_single],
        multi:
            [
                weir_multi,
                pg_multi,
                raw_multi,
                raw_group,
                raw_loop,
                weir_tasks,
            ],
        batch: [weir_batch, pg_batch],
        stream: [weir_stream, pg_stream],
        all: [weir_all, pg_all],
        record_bytes,
        total,
    } = results;
    println!();
    println!(
        "durable appends with an exact expected version, then reads; latency per call (an append, a whole-stream read, a page)"
    );
    let rows: Vec<Row> = results
        .single
        .iter()
        .chain(&results.multi)
        .chain(&results.batch)
        .chain(&results.stream)
        .chain(&results.all)
        .cloned()
        .collect();
    report::print_event_table(&rows);
    println!();
    println!(
        "weir: fsyncs are its data directory's fdatasyncs and directory fsyncs; {:.1} MiB in the events log, {record_bytes} B per single-event append; reads all {total} events",
        report::mib(weir_bytes)
    );
    println!(
        "postgres: fsyncs are WAL syncs (pg_stat_wal.wal_sync); an append is one INSERT ... SELECT (one transaction) that inserts only if the stream's max(version) is the expected one; reads all {total} events"
    );
    let literal = raw_single.fsyncs_per_sec() * n as f64;
    println!(
        "physical limit, raw rows writing {record_bytes} B per event: {n} threads each waiting for its own fdatasync reach {:.0} events/s (the issue's raw fdatasyncs/s x writers; 1 thread's rate x {n} would be {literal:.0}). Weir's writers share one fdatasync per round (group commit), so its bound is {n} events per fdatasync: {:.0} events/s measured. The limit below is the larger of the two measured.",
        raw_multi.records_per_sec(),
        raw_group.records_per_sec(),
    );
    println!(
        "closed-loop ceiling: {n} threads that each add {record_bytes} B to a buffer and wait for the round that writes it (one pwrite) and syncs it before adding the next, nothing else (the loop of the concurrent rows, where writers must wake and write between syncs): {:.0} events/s, {:.2} of the raw group commit and {:.2}x PostgreSQL on this machine",
        raw_loop.records_per_sec(),
        ratio(raw_loop, raw_group),
        ratio(raw_loop, pg_multi),
    );
    let limit = if raw_group.records_per_sec() >= raw_multi.records_per_sec() {
        raw_group
    } else {
        raw_multi
    };
    println!();
    let concurrent_ratio = ratio(weir_multi, pg_multi);
    let limit_ratio = ratio(weir_multi, limit);
    let p99_ms = weir_multi.latency.map_or(f64::NAN, |l| l.p99_us / 1000.0);
    println!(
        "store/postgres single-writer append ratio: {:.2}",
        ratio(weir_single, pg_single)
    );
    println!(
        "store/postgres {BATCH_EVENTS}-event append ratio: {:.2}",
        ratio(weir_batch, pg_batch)
    );
    println!(
        "store/postgres read-stream ratio: {:.2}",
        ratio(weir_stream, pg_stream)
    );
    println!(
        "store/postgres read-all ratio: {:.2}",
        ratio(weir_all, pg_all)
    );
    println!(
        "store/raw single-writer append ratio (1 fdatasync per event): {:.2}",
        ratio(weir_single, raw_single)
    );
    println!(
        "store/raw concurrent append ratio ({n} threads, an fdatasync per event each): {:.2}",
        ratio(weir_multi, raw_multi)
    );
    println!(
        "store/raw concurrent append ratio (group commit, {n} events per fdatasync): {:.2}",
        ratio(weir_multi, raw_group)
    );
    println!(
        "store/closed-loop ceiling concurrent append ratio ({n} threads): {:.2}; async tasks: {:.2}",
        ratio(weir_multi, raw_loop),
        ratio(weir_tasks, raw_loop)
    );
    println!(
        "store (async tasks)/postgres concurrent append ratio: {:.2}; /physical limit: {:.2}; p99 {:.2} ms",
        ratio(weir_tasks, pg_multi),
        ratio(weir_tasks, limit),
        weir_tasks.latency.map_or(f64::NAN, |l| l.p99_us / 1000.0)
    );
    println!(
        "goal: concurrent single-event appends >= 6x PostgreSQL: {concurrent_ratio:.2}x, {}",
        goal(concurrent_ratio >= 6.0)
    );
    println!(
        "goal: concurrent single-event appends >= 0.7 of the physical limit ({}): {limit_ratio:.2}, {}",
        limit.phase,
        goal(limit_ratio >= 0.7)
    );
    println!(
        "goal: reading all >= 1 M events/s: {:.2} M events/s, {}",
        weir_all.records_per_sec() / 1e6,
        goal(weir_all.records_per_sec() >= 1e6)
    );
    println!(
        "goal: p99 append latency at {n} writers < 5 ms: {p99_ms:.2} ms, {}",
        goal(p99_ms < 5.0)
    );
    println!("store/postgres concurrent append ratio: {concurrent_ratio:.2}");
}
