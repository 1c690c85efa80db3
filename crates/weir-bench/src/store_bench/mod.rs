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

mod pg_side;
mod phases;
mod raw;
mod weir_side;

use pg_side::*;
use phases::*;
use raw::*;
use weir_side::*;

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
