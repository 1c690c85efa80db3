//! Chaos against a running consumer service (P15): while a producer
//! publishes keyed events through `weir serve`, the test injects
//! duplicates (the same event published twice), reordering across keys,
//! delays in the producer and in the handler, poison records (not
//! CloudEvents, and events the handler refuses for good), and `kill -9` of
//! `weir serve` mid-stream followed by a restart on the same port. The
//! service (weir::Service through librdkafka, effects in its own SQLite
//! through weir::Consumer) must recover by itself, and in the end: no
//! event lost, none applied twice, each key's events applied in order,
//! every poison record in the dead-letter topic with its true origin.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Headers as _;
use serde::{Deserialize, Serialize};
use weir::rusqlite::{OptionalExtension, Transaction};
use weir::{
    Causation, Client, Envelope, Failure, Handler, HandlerError, KafkaSource, Publisher,
    RetryPolicy, Service, ServiceConfig,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: String,
    seq: u32,
    poison: bool,
}
weir::event!(Entry = "LedgerEntry" v 1);

/// Applies each entry once, in its key's order, in SQLite: the effect
/// (a row per entry and a per-key counter) commits with the record of the
/// processed event, so a redelivery changes nothing.
struct Ledger;

impl Handler for Ledger {
    type Output = u32;

    fn name(&self) -> &str {
        "ledger"
    }

    fn setup(&self, tx: &Transaction<'_>) -> weir::rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE applied (key TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (key, seq));
             CREATE TABLE heads (key TEXT PRIMARY KEY, last INTEGER NOT NULL);
             CREATE TABLE disorder (key TEXT NOT NULL, seq INTEGER NOT NULL, after INTEGER NOT NULL);",
        )
    }

    fn handle(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<u32, HandlerError> {
        let entry: Entry = event.decode()?;
        let last: Option<i64> = tx
            .query_row("SELECT last FROM heads WHERE key = ?1", [&entry.key], |r| {
                r.get(0)
            })
            .optional()?;
        if last.map_or(0, |l| l + 1) != i64::from(entry.seq) {
            tx.execute(
                "INSERT INTO disorder (key, seq, after) VALUES (?1, ?2, ?3)",
                (&entry.key, entry.seq, last.unwrap_or(-1)),
            )?;
        }
        // A second application of one (key, seq) fails the primary key
        // (and the whole transaction): "applied twice" cannot hide.
        tx.execute(
            "INSERT INTO applied (key, seq, at) VALUES (?1, ?2, ?3)",
            (&entry.key, entry.seq, 0),
        )?;
        tx.execute(
            "INSERT INTO heads (key, last) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET last = excluded.last",
            (&entry.key, entry.seq),
        )?;
        Ok(entry.seq)
    }
}

const KEYS: usize = 8;
const PER_KEY: u32 = 150;

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn start(dir: &std::path::Path, port: u16) -> Child {
    common::start_serve(
        dir,
        port,
        &[
            "--default-partitions",
            "3",
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
    )
}

#[test]
fn a_service_survives_duplicates_reordering_delays_poison_and_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut server = start(data.path(), port);

    // The service: effects through weir::Consumer in its own database.
    let client = Client::open(models.path()).unwrap();
    let ledger = Arc::new(client.consumer(Ledger).unwrap());
    let handler_delay = Arc::new(AtomicBool::new(true));
    let (l, slow) = (ledger.clone(), handler_delay.clone());
    let service = Service::builder("ledger")
        .config(ServiceConfig {
            workers: 4,
            in_flight_max: 64,
            commit_interval: Duration::from_millis(50),
            shutdown_deadline: Duration::from_secs(10),
            retry: RetryPolicy {
                attempts: 1000,
                min_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(500),
                ..RetryPolicy::default()
            },
            ..ServiceConfig::default()
        })
        .on::<Entry>(move |ctx, entry| {
            if entry.poison {
                return Err(Failure::permanent(format!(
                    "entry {}/{} is poison",
                    entry.key, entry.seq
                )));
            }
            if slow.load(Ordering::Relaxed) && ctx.origin().offset % 7 == 0 {
                std::thread::sleep(Duration::from_millis(3));
            }
            l.handle(ctx.envelope())
                .map(|_| ())
                .map_err(Failure::transient)
        })
        .build()
        .unwrap();
    let running = service
        .start(
            KafkaSource::new(bootstrap.clone(), &["ledger"])
                // Reconnect quickly after the broker comes back.
                .set("reconnect.backoff.max.ms", "500"),
        )
        .unwrap();

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("chaos seed: {seed}");
    let mut rng = Rng(seed);

    // The producer: keys interleaved at random (order kept within a key),
    // some events published twice, pauses, and poison records.
    let publisher = Publisher::connect(&bootstrap, &[]).unwrap();
    let mut poison = BTreeSet::new();
    let mut undecodable = BTreeSet::new();
    let mut next = [0u32; KEYS];
    let mut published = 0u32;
    let mut killed = 0;
    let total = KEYS as u32 * PER_KEY;
    let mut duplicates = 0;
    while published < total {
        let k = rng.next(KEYS as u64) as usize;
        if next[k] == PER_KEY {
            continue;
        }
        let entry = Entry {
            key: format!("acct-{k}"),
            seq: next[k],
            poison: false,
        };
        next[k] += 1;
        published += 1;
        let envelope = Envelope::new(&entry, "/chaos", &Causation::new())
            .unwrap()
            .with_subject(&entry.key);
        publisher.publish("ledger", &envelope).unwrap();
        // A duplicate: the same event (same id) again, as a producer retry
        // or an upstream redelivery would send it.
        if rng.next(20) == 0 {
            publisher.publish("ledger", &envelope).unwrap();
            duplicates += 1;
        }
        // Poison: an event the handler refuses for good, and a record that
        // is not a CloudEvent at all.
        if rng.next(100) == 0 {
            let bad = Entry {
                key: entry.key.clone(),
                seq: u32::MAX,
                poison: true,
            };
            let e = Envelope::new(&bad, "/chaos", &Causation::new())
                .unwrap()
                .with_subject(&bad.key);
            let at = publisher.publish("ledger", &e).unwrap();
            poison.insert((at.partition, at.offset));
        }
        if rng.next(150) == 0 {
            let at = publisher
                .publish_record(
                    "ledger",
                    Some(entry.key.as_bytes()),
                    b"{not a cloud event",
                    &[],
                )
                .unwrap();
            undecodable.insert((at.partition, at.offset));
        }
        if rng.next(50) == 0 {
            std::thread::sleep(Duration::from_millis(rng.next(30)));
        }
        // kill -9 of weir serve, twice, mid-stream; restarted on the same
        // port and data directory.
        if killed < 2 && published == total / 3 * (killed + 1) {
            server.kill().unwrap();
            server.wait().unwrap();
            std::thread::sleep(Duration::from_millis(300 + rng.next(700)));
            server = start(data.path(), port);
            killed += 1;
        }
    }
    eprintln!("published {total} entries, {duplicates} duplicates");
    handler_delay.store(false, Ordering::Relaxed);

    // The service recovers by itself and applies everything.
    let expected = u64::from(total);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let applied: u64 = ledger
            .read(|c| c.query_row("SELECT count(*) FROM applied", [], |r| r.get(0)))
            .unwrap();
        if applied == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{applied} of {expected} applied; {:?}",
            service.stats()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the dead letters of the last poison records land.
    let deadline = Instant::now() + Duration::from_secs(60);
    while service.stats().in_flight > 0 {
        assert!(Instant::now() < deadline, "{:?}", service.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    running.stop().unwrap();

    // Nothing lost, nothing twice, each key in order.
    let per_key: BTreeMap<String, (u32, u32)> = ledger
        .read(|c| {
            let mut s = c.prepare("SELECT key, count(*), max(seq) FROM applied GROUP BY key")?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
            rows.collect()
        })
        .unwrap();
    assert_eq!(per_key.len(), KEYS);
    for (key, (count, max)) in &per_key {
        assert_eq!((*count, *max), (PER_KEY, PER_KEY - 1), "key {key}");
    }
    let disorder: u32 = ledger
        .read(|c| c.query_row("SELECT count(*) FROM disorder", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(disorder, 0, "entries applied out of their key's order");
    // Each distinct event is recorded once; duplicates and redeliveries
    // found their record.
    assert_eq!(ledger.processed().unwrap(), expected);

    // Every poison record is in the dead-letter topic, with its origin.
    let dead = read_dead_letters(&bootstrap);
    let stats = service.stats();
    let origins = |kind: &str| -> BTreeSet<(i32, i64)> {
        dead.iter()
            .filter(|d| d.kind == kind)
            .map(|d| (d.partition, d.offset))
            .collect()
    };
    assert_eq!(origins("permanent"), poison, "permanent dead letters");
    assert_eq!(origins("decode"), undecodable, "undecodable dead letters");
    for d in &dead {
        assert_eq!(d.topic, "ledger");
        assert_eq!(d.group, "ledger");
        assert_eq!(d.dead_partition, d.partition, "same partition index");
    }
    // A record whose dead letter was written just before a crash, and
    // whose offset was not committed yet, is dead-lettered again when it
    // is redelivered (at least once, like everything else): the origin
    // headers show it.
    assert!(dead.len() >= poison.len() + undecodable.len());
    assert!(
        dead.iter()
            .all(|d| d.kind == "permanent" || d.kind == "decode")
    );
    eprintln!(
        "{} permanent and {} undecodable dead letters; {stats:?}",
        poison.len(),
        undecodable.len()
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

struct Dead {
    kind: String,
    topic: String,
    group: String,
    partition: i32,
    offset: i64,
    dead_partition: i32,
}

/// Reads `ledger.dlq` to its end with a plain librdkafka consumer.
fn read_dead_letters(bootstrap: &str) -> Vec<Dead> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    consumer.subscribe(&["ledger.dlq"]).unwrap();
    let mut out = Vec::new();
    let mut eof = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while eof.len() < 3 {
        assert!(Instant::now() < deadline, "reading ledger.dlq");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m.headers().unwrap();
                let get = |name: &str| -> String {
                    (0..headers.count())
                        .map(|i| headers.get(i))
                        .find(|h| h.key == name)
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_else(|| panic!("dead letter without {name}"))
                };
                out.push(Dead {
                    kind: get("weir.dlq.error.kind"),
                    topic: get("weir.dlq.origin.topic"),
                    group: get("weir.dlq.group"),
                    partition: get("weir.dlq.origin.partition").parse().unwrap(),
                    offset: get("weir.dlq.origin.offset").parse().unwrap(),
                    dead_partition: m.partition(),
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            _ => {}
        }
    }
    out
}
