//! `weir outbox relay` as its own process, killed with `kill -9` while a
//! service keeps writing its outbox, restarted, and in the end every row
//! published, none lost, order per aggregate kept:
//!
//! - SQLite outbox → a topic on a real `weir serve`, read back with a
//!   librdkafka consumer: the rows re-sent after each kill land twice (a
//!   new producer, so the broker cannot drop them); they are counted, and
//!   skipping ids already seen (as `weir::Consumer` does) leaves each
//!   aggregate's events exactly once and in order.
//! - PostgreSQL outbox → streams in the same server's store: the store's
//!   idempotent appends keep exactly one copy of each event, in order.
//!
//! `WEIR_KILL9_ROUNDS` sets how many kills (default 3).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers as _, Message as _};
use serde::{Deserialize, Serialize};
use weir::outbox;
use weir::{Causation, Envelope};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Noted {
    pub n: u64,
}
weir::events! {
    #[derive(Debug, Clone)]
    pub enum TestEvent { Noted(Noted) = "Noted" v 1 }
}

const AGGREGATES: u64 = 12;
const ROWS: u64 = 1_500;

fn rounds() -> usize {
    std::env::var("WEIR_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn event(aggregate: &str, n: u64) -> Envelope {
    Envelope::new(
        &TestEvent::Noted(Noted { n }),
        "/outbox-kill9",
        &Causation::new(),
    )
    .unwrap()
    .with_subject(aggregate)
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing
/// test leaves no relay or server behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_relay(args: &[&str]) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "outbox",
                "relay",
                "--batch-rows-max",
                "40",
                "--lease-ms",
                "300",
            ])
            .args(args)
            .env("WEIR_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn weir outbox relay"),
    )
}

/// Writes `ROWS` rows (business row + event in one transaction, spread
/// over `AGGREGATES` aggregates) through `enqueue`, a little at a time,
/// returning each aggregate's event ids in order; meanwhile the relay is
/// killed with `kill -9` and restarted `rounds()` times, then left to
/// drain (`pending` says how many rows wait), then stopped.
fn write_while_killing(
    mut enqueue: impl FnMut(&str, &Envelope) + Send,
    mut pending: impl FnMut() -> i64,
    relay_args: &[&str],
) -> HashMap<String, Vec<String>> {
    let written = AtomicBool::new(false);
    let expected = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut expected: HashMap<String, Vec<String>> = HashMap::new();
            for n in 0..ROWS {
                let aggregate = format!("agg{}", n % AGGREGATES);
                let e = event(&aggregate, n);
                enqueue(&aggregate, &e);
                expected.entry(aggregate).or_default().push(e.id);
                if n % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            written.store(true, Ordering::Relaxed);
            expected
        });
        let mut relay = spawn_relay(relay_args);
        for round in 0..rounds() {
            // Somewhere mid-stream: 150 to 450 ms into this relay's life.
            std::thread::sleep(Duration::from_millis(150 + (round as u64 * 137) % 300));
            drop(relay); // SIGKILL
            relay = spawn_relay(relay_args);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while !written.load(Ordering::Relaxed) || pending() > 0 {
            assert!(
                Instant::now() < deadline,
                "the relay did not drain the outbox"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(relay);
        writer.join().unwrap()
    });
    assert_eq!(
        expected.values().map(Vec::len).sum::<usize>(),
        ROWS as usize
    );
    expected
}

/// Reads `topic` (3 partitions) to its end: (key, event id) in offset
/// order per partition.
fn read_topic(bootstrap: &str, topic: &str, at_least: usize) -> Vec<(String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "outbox-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let mut eof = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while eof.len() < 3 || out.len() < at_least {
        assert!(
            Instant::now() < deadline,
            "reading {topic}: {} records",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                let headers = m.headers().expect("CloudEvents headers");
                let id = headers
                    .iter()
                    .find(|h| h.key == "ce_id")
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8(v.to_vec()).unwrap())
                    .expect("a ce_id header");
                let key = String::from_utf8(m.key().expect("keyed").to_vec()).unwrap();
                out.push((key, id));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            _ => {}
        }
    }
    out
}

fn sqlite_outbox(path: &Path) -> weir::rusqlite::Connection {
    let mut db = weir::rusqlite::Connection::open(path).unwrap();
    db.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut tx = db.transaction().unwrap();
    outbox::setup(&mut tx).unwrap();
    tx.execute_batch("CREATE TABLE notes (aggregate TEXT, n INTEGER)")
        .unwrap();
    tx.commit().unwrap();
    db
}

#[test]
fn sqlite_outbox_to_a_topic_across_kill_9_of_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (server, kafka, http) = common::start_serve_kafka_http(&dir.path().join("data"), &[]);
    let _server = Killed(server);
    let status = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "topic",
            "create",
            "notes",
            "--partitions",
            "3",
            "--server",
            &http,
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let db_path = dir.path().join("svc.db");
    let mut db = sqlite_outbox(&db_path);
    let watcher = sqlite_outbox_reader(&db_path);
    let path = db_path.to_str().unwrap().to_owned();
    let expected = write_while_killing(
        |aggregate, e| {
            let mut tx = db.transaction().unwrap();
            tx.execute(
                "INSERT INTO notes VALUES (?1, 0)",
                weir::rusqlite::params![aggregate],
            )
            .unwrap();
            outbox::enqueue(&mut tx, aggregate, e).unwrap();
            tx.commit().unwrap();
        },
        || {
            watcher
                .query_row(
                    "SELECT count(*) FROM weir_outbox WHERE published_ms IS NULL",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        },
        &["--sqlite", &path, "--to-topic", "notes", "--kafka", &kafka],
    );

    let records = read_topic(&kafka, "notes", ROWS as usize);
    // Skip ids already seen, as weir::Consumer does: what is left is each
    // aggregate's events once, in order.
    let mut seen = BTreeSet::new();
    let mut deduped: HashMap<String, Vec<String>> = HashMap::new();
    for (key, id) in &records {
        if seen.insert(id.clone()) {
            deduped.entry(key.clone()).or_default().push(id.clone());
        }
    }
    let duplicates = records.len() - seen.len();
    eprintln!(
        "{} records read for {ROWS} rows: {duplicates} duplicates (re-sent after {} kills)",
        records.len(),
        rounds()
    );
    assert_eq!(seen.len(), ROWS as usize, "every row published");
    assert_eq!(deduped, expected, "each aggregate in order");
}

fn sqlite_outbox_reader(path: &Path) -> weir::rusqlite::Connection {
    let db = weir::rusqlite::Connection::open(path).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db
}

#[test]
fn postgres_outbox_to_streams_across_kill_9_of_the_relay() {
    let dir = tempfile::Builder::new()
        .prefix("weir-outbox-kill9")
        .tempdir_in("/tmp")
        .unwrap();
    let pg = weir_testpg::PgServer::start(dir.path()).unwrap();
    let (server, _kafka, http) = common::start_serve_kafka_http(&dir.path().join("data"), &[]);
    let _server = Killed(server);
    let mut db = pg.connect().unwrap();
    let mut tx = db.transaction().unwrap();
    outbox::setup(&mut tx).unwrap();
    tx.batch_execute("CREATE TABLE notes (aggregate TEXT, n BIGINT)")
        .unwrap();
    tx.commit().unwrap();
    let mut watcher = pg.connect().unwrap();
    let url = pg.url();
    let expected = write_while_killing(
        |aggregate, e| {
            let mut tx = db.transaction().unwrap();
            tx.execute("INSERT INTO notes VALUES ($1, 0)", &[&aggregate])
                .unwrap();
            outbox::enqueue(&mut tx, aggregate, e).unwrap();
            tx.commit().unwrap();
        },
        || {
            watcher
                .query_one(
                    "SELECT count(*) FROM weir_outbox WHERE published_ms IS NULL",
                    &[],
                )
                .unwrap()
                .get(0)
        },
        &[
            "--postgres",
            &url,
            "--to-stream-prefix",
            "note-",
            "--server",
            &http,
        ],
    );
    let client = weir::Client::connect(&http).unwrap();
    for (aggregate, ids) in &expected {
        let got: Vec<String> = client
            .read_stream(&format!("note-{aggregate}"), 0, 10_000)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            &got, ids,
            "stream of {aggregate}: each event once, in order"
        );
    }
    assert_eq!(
        client.head_position().unwrap(),
        ROWS,
        "nothing twice in the store"
    );
}
