//! `weir-bench outbox`: the transactional outbox's relay (weir::outbox)
//! draining a backlog of rows to the event store (embedded, durable) and
//! to a topic on the in-process broker (librdkafka, acks=all), against
//! plain inserts of the same rows into the same database in the same run,
//! for SQLite (WAL, synchronous=FULL) and for a throwaway PostgreSQL
//! (fsync and synchronous_commit on).
//!
//! The baseline is what the database alone does with those rows: inserts
//! of the same size into a plain table, in transactions of the relay's
//! batch size. The relay claims a batch, publishes it (each event durable
//! in the target before it is marked) and marks it in the database, so
//! its rate is bounded by both sides; the ratio says what the relay keeps
//! of the database's own rate. `enqueue` is the outbox's write side (the
//! per-aggregate sequence, the envelope's headers) in the same batches.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use weir::outbox::{self, Relay, RelayConfig, Source, Target};
use weir::{Causation, Client, Envelope};
use weir_groups::GroupsConfig;

use crate::produce_bench::Server;
use crate::report::{Row, print_event_table};
use crate::sys;

#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// Rows per phase [default: 20000, with --quick 2000]
    #[arg(long)]
    rows: Option<u64>,
    /// Aggregates the rows are spread over
    #[arg(long, default_value_t = 100)]
    aggregates: u64,
    /// Rows per relay batch, and per transaction of the inserts
    #[arg(long, default_value_t = 500)]
    batch_rows: usize,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards (as root, PostgreSQL runs as `nobody`,
    /// which must be able to enter it)
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
    /// Fewer rows, for a smoke test
    #[arg(long)]
    quick: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Placed {
    pub order: String,
    pub total_cents: u64,
    pub note: String,
}

weir::events! {
    #[derive(Debug, Clone)]
    pub enum OrderEvent { Placed(Placed) = "OrderPlaced" v 1 }
}

const TOPIC: &str = "orders";
const PARTITIONS: i64 = 6;

/// The same rows for every phase: (aggregate, envelope).
fn rows(n: u64, aggregates: u64) -> anyhow::Result<Vec<(String, Envelope)>> {
    (0..n)
        .map(|i| {
            let aggregate = format!("order-{}", i % aggregates);
            let e = OrderEvent::Placed(Placed {
                order: aggregate.clone(),
                total_cents: i * 7,
                note: "x".repeat(64),
            });
            let env = Envelope::new(&e, "/bench/orders", &Causation::new())?
                .with_subject(aggregate.clone());
            Ok((aggregate, env))
        })
        .collect()
}

fn row_bytes(rows: &[(String, Envelope)]) -> u64 {
    rows.iter().map(|(_, e)| e.data.len() as u64).sum()
}

fn phase(name: &str, rows: &[(String, Envelope)], elapsed: Duration) -> Row {
    Row {
        phase: name.to_owned(),
        records: rows.len() as u64,
        bytes: row_bytes(rows),
        fsyncs: 0,
        elapsed,
        latency: None,
    }
}

/// Drains the outbox with one relay; the time until nothing is claimed.
fn drain(source: Source, target: Target, batch_rows: usize, n: u64) -> anyhow::Result<Duration> {
    let config = RelayConfig {
        batch_rows_max: batch_rows,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(source, target, config)?;
    let start = Instant::now();
    while relay.run_once()?.claimed > 0 {}
    let elapsed = start.elapsed();
    anyhow::ensure!(
        relay.stats().published == n,
        "the relay published {} of {n} rows",
        relay.stats().published
    );
    Ok(elapsed)
}

fn sqlite_open(path: &Path) -> anyhow::Result<weir::rusqlite::Connection> {
    let db = weir::rusqlite::Connection::open(path)?;
    db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    Ok(db)
}

fn sqlite_phases(
    scratch: &Path,
    rows: &[(String, Envelope)],
    batch_rows: usize,
    server: &Server,
    out: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let path = scratch.join("plain.db");
    let mut db = sqlite_open(&path)?;
    db.execute_batch(
        "CREATE TABLE plain (id TEXT PRIMARY KEY, aggregate TEXT, type TEXT, headers TEXT, data BLOB)",
    )?;
    let start = Instant::now();
    for chunk in rows.chunks(batch_rows) {
        let tx = db.transaction()?;
        for (aggregate, e) in chunk {
            tx.execute(
                "INSERT INTO plain VALUES (?1, ?2, ?3, ?4, ?5)",
                weir::rusqlite::params![e.id, aggregate, e.event_type, e.correlationid, e.data],
            )?;
        }
        tx.commit()?;
    }
    out.push(phase("sqlite plain insert", rows, start.elapsed()));

    for target in ["store", "topic"] {
        let path = scratch.join(format!("outbox-{target}.db"));
        let mut db = sqlite_open(&path)?;
        let mut tx = db.transaction()?;
        outbox::setup(&mut tx)?;
        tx.commit()?;
        let start = Instant::now();
        for chunk in rows.chunks(batch_rows) {
            let mut tx = db.transaction()?;
            for (aggregate, e) in chunk {
                outbox::enqueue(&mut tx, aggregate, e)?;
            }
            tx.commit()?;
        }
        if target == "store" {
            out.push(phase("sqlite enqueue", rows, start.elapsed()));
            let store = Client::open(scratch.join("store-sqlite"))?;
            let t = drain(
                Source::Sqlite(path),
                Target::streams(store, "order-"),
                batch_rows,
                rows.len() as u64,
            )?;
            out.push(phase("sqlite relay -> store", rows, t));
        } else {
            let topic = format!("{TOPIC}-sqlite");
            server
                .broker
                .create_topic(&topic, PARTITIONS, 1, &[], false)?;
            let t = drain(
                Source::Sqlite(path),
                Target::topic(&server.addr.to_string(), &topic),
                batch_rows,
                rows.len() as u64,
            )?;
            out.push(phase("sqlite relay -> topic", rows, t));
        }
    }
    Ok(())
}

fn pg_phases(
    scratch: &Path,
    rows: &[(String, Envelope)],
    batch_rows: usize,
    server: &Server,
    out: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let pg = weir_testpg::PgServer::start(scratch)?;
    let mut db = pg.connect()?;
    db.batch_execute(
        "CREATE TABLE plain (id TEXT PRIMARY KEY, aggregate TEXT, type TEXT, headers TEXT, data BYTEA)",
    )?;
    let start = Instant::now();
    for chunk in rows.chunks(batch_rows) {
        let mut tx = db.transaction()?;
        let stmt = tx.prepare("INSERT INTO plain VALUES ($1, $2, $3, $4, $5)")?;
        for (aggregate, e) in chunk {
            tx.execute(
                &stmt,
                &[&e.id, aggregate, &e.event_type, &e.correlationid, &e.data],
            )?;
        }
        tx.commit()?;
    }
    out.push(phase("postgres plain insert", rows, start.elapsed()));

    for target in ["store", "topic"] {
        db.batch_execute("DROP TABLE IF EXISTS weir_outbox")?;
        let mut tx = db.transaction()?;
        outbox::setup(&mut tx)?;
        tx.commit()?;
        let start = Instant::now();
        for chunk in rows.chunks(batch_rows) {
            let mut tx = db.transaction()?;
            for (aggregate, e) in chunk {
                outbox::enqueue(&mut tx, aggregate, e)?;
            }
            tx.commit()?;
        }
        if target == "store" {
            out.push(phase("postgres enqueue", rows, start.elapsed()));
            let store = Client::open(scratch.join("store-postgres"))?;
            let t = drain(
                Source::Postgres(pg.url()),
                Target::streams(store, "order-"),
                batch_rows,
                rows.len() as u64,
            )?;
            out.push(phase("postgres relay -> store", rows, t));
        } else {
            let topic = format!("{TOPIC}-postgres");
            server
                .broker
                .create_topic(&topic, PARTITIONS, 1, &[], false)?;
            let t = drain(
                Source::Postgres(pg.url()),
                Target::topic(&server.addr.to_string(), &topic),
                batch_rows,
                rows.len() as u64,
            )?;
            out.push(phase("postgres relay -> topic", rows, t));
        }
    }
    drop(db);
    pg.stop()
}

pub fn run(args: &OutboxArgs) -> anyhow::Result<()> {
    let n = args.rows.unwrap_or(if args.quick { 2_000 } else { 20_000 });
    anyhow::ensure!(
        (1..=10_000_000).contains(&n),
        "--rows must be 1 to 10000000"
    );
    anyhow::ensure!(
        (1..=n).contains(&args.aggregates),
        "--aggregates must be 1 to --rows"
    );
    anyhow::ensure!(
        (1..=outbox::BATCH_ROWS_MAX).contains(&args.batch_rows),
        "--batch-rows must be 1 to {}",
        outbox::BATCH_ROWS_MAX
    );
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("weir-bench-outbox.")
        .tempdir_in(&args.dir)?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "weir-bench outbox: {n} rows over {} aggregates, batches of {}; scratch {} on {}; {cpus} logical CPUs",
        args.aggregates,
        args.batch_rows,
        scratch.path().display(),
        sys::describe_mount(scratch.path()),
    );
    let rows = rows(n, args.aggregates)?;
    let server = Server::start(&scratch.path().join("broker"), GroupsConfig::default())?;
    let mut out = Vec::new();
    eprintln!("[weir-bench] sqlite ...");
    sqlite_phases(scratch.path(), &rows, args.batch_rows, &server, &mut out)?;
    eprintln!("[weir-bench] postgres ...");
    pg_phases(scratch.path(), &rows, args.batch_rows, &server, &mut out)?;
    print_event_table(&out);
    let rate = |phase: &str| {
        out.iter()
            .find(|r| r.phase == phase)
            .map_or(f64::NAN, Row::records_per_sec)
    };
    for db in ["sqlite", "postgres"] {
        for target in ["store", "topic"] {
            println!(
                "outbox {db} relay->{target} / plain insert ratio: {:.2}",
                rate(&format!("{db} relay -> {target}")) / rate(&format!("{db} plain insert"))
            );
        }
    }
    Ok(())
}
