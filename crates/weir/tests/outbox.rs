//! The transactional outbox through the SDK's API: rows enqueued in a
//! service's own SQLite or PostgreSQL transaction commit or roll back with
//! its business rows; the relay publishes them to the store in order per
//! aggregate, survives a crash between publishing and marking, and two
//! relays on one outbox do not publish a row twice (SQLite: a lease;
//! PostgreSQL: SKIP LOCKED per aggregate). The relay as a process killed
//! with kill -9, and to Kafka topics, is tested in weir-cli's tests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::outbox::{self, OutboxError, Relay, RelayConfig, Source, Target};
use weir::rusqlite::Connection;
use weir::{Causation, Client, Envelope};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Noted {
    pub aggregate: String,
    pub n: u64,
}
weir::events! {
    #[derive(Debug, Clone)]
    pub enum TestEvent { Noted(Noted) = "Noted" v 1 }
}

fn event(aggregate: &str, n: u64) -> Envelope {
    let e = TestEvent::Noted(Noted {
        aggregate: aggregate.to_owned(),
        n,
    });
    Envelope::new(&e, "/outbox-test", &Causation::new())
        .unwrap()
        .with_subject(aggregate)
}

fn sqlite_outbox(path: &Path) -> Connection {
    let mut db = Connection::open(path).unwrap();
    db.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    let mut tx = db.transaction().unwrap();
    outbox::setup(&mut tx).unwrap();
    tx.execute_batch("CREATE TABLE IF NOT EXISTS notes (aggregate TEXT, n INTEGER)")
        .unwrap();
    tx.commit().unwrap();
    db
}

/// One business row and its event, in one SQLite transaction.
fn note_sqlite(db: &mut Connection, aggregate: &str, n: u64, commit: bool) -> Envelope {
    let e = event(aggregate, n);
    let mut tx = db.transaction().unwrap();
    tx.execute(
        "INSERT INTO notes VALUES (?1, ?2)",
        weir::rusqlite::params![aggregate, n as i64],
    )
    .unwrap();
    outbox::enqueue(&mut tx, aggregate, &e).unwrap();
    if commit {
        tx.commit().unwrap();
    } else {
        tx.rollback().unwrap();
    }
    e
}

fn count(db: &Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every stream `<prefix><aggregate>` holds exactly the aggregate's
/// events, each once, in order.
fn assert_streams(client: &Client, prefix: &str, expected: &HashMap<String, Vec<String>>) {
    for (aggregate, ids) in expected {
        let got: Vec<String> = client
            .read_stream(&format!("{prefix}{aggregate}"), 0, 100_000)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(&got, ids, "stream of {aggregate}");
    }
}

/// Runs `relay` until `db`'s outbox has nothing unpublished (standing by
/// while another relay's lease runs out).
fn drain_sqlite(relay: &mut Relay, db: &Connection) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(
        db,
        "SELECT count(*) FROM weir_outbox WHERE published_ms IS NULL",
    ) > 0
    {
        assert!(std::time::Instant::now() < deadline, "{:?}", relay.stats());
        if relay.run_once().unwrap().standby {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn quick() -> RelayConfig {
    RelayConfig {
        batch_rows_max: 7,
        idle_ms: 5,
        lease_ms: 2_000,
        ..RelayConfig::default()
    }
}

#[test]
fn sqlite_rows_commit_and_roll_back_with_the_business_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = sqlite_outbox(&dir.path().join("svc.db"));
    let kept = note_sqlite(&mut db, "a", 0, true);
    note_sqlite(&mut db, "a", 1, false);
    let kept2 = note_sqlite(&mut db, "a", 2, true);
    assert_eq!(count(&db, "SELECT count(*) FROM notes"), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM weir_outbox"), 2);
    // Sequences per aggregate have no gap where a transaction rolled back.
    let seqs: Vec<(String, i64)> = db
        .prepare("SELECT event_id, aggregate_seq FROM weir_outbox ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs, vec![(kept.id, 0), (kept2.id, 1)]);
}

#[test]
fn sqlite_bad_input_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = sqlite_outbox(&dir.path().join("svc.db"));
    let e = note_sqlite(&mut db, "a", 0, true);
    let mut tx = db.transaction().unwrap();
    let err = outbox::enqueue(&mut tx, "b", &e).unwrap_err();
    assert!(
        matches!(&err, OutboxError::DuplicateEventId { id } if *id == e.id),
        "{err}"
    );
    let err = outbox::enqueue(&mut tx, "", &event("x", 0)).unwrap_err();
    assert!(
        matches!(err, OutboxError::InvalidAggregateId { .. }),
        "{err}"
    );
    let long = "x".repeat(outbox::AGGREGATE_ID_BYTES_MAX + 1);
    assert!(outbox::enqueue(&mut tx, &long, &event("x", 0)).is_err());
    let mut no_id = event("x", 0);
    no_id.id.clear();
    assert!(matches!(
        outbox::enqueue(&mut tx, "x", &no_id).unwrap_err(),
        OutboxError::InvalidEvent { .. }
    ));
    tx.commit().unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM weir_outbox"), 1);

    // A relay refuses a database that is missing or has no outbox, rather
    // than relay nothing forever.
    let store = Client::open(dir.path().join("data")).unwrap();
    let missing = Relay::new(
        Source::Sqlite(dir.path().join("nope.db")),
        Target::streams(store.clone(), "n-"),
        RelayConfig::default(),
    );
    assert!(missing.is_err());
    Connection::open(dir.path().join("empty.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = Relay::new(
        Source::Sqlite(dir.path().join("empty.db")),
        Target::streams(store, "n-"),
        RelayConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, OutboxError::NotSetUp { .. }), "{err}");
}

#[test]
fn sqlite_relay_publishes_to_streams_in_order_and_again_after_a_crash_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("svc.db");
    let mut db = sqlite_outbox(&db_path);
    let store = Client::open(dir.path().join("data")).unwrap();
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    // Interleaved aggregates, so a batch holds several, cut anywhere.
    for n in 0..40 {
        let aggregate = format!("agg{}", n % 3);
        let e = note_sqlite(&mut db, &aggregate, n, true);
        expected.entry(aggregate).or_default().push(e.id);
    }
    let mut relay = Relay::new(
        Source::Sqlite(db_path.clone()),
        Target::streams(store.clone(), "note-"),
        quick(),
    )
    .unwrap();
    drain_sqlite(&mut relay, &db);
    assert_eq!(relay.stats().published, 40);
    assert_streams(&store, "note-", &expected);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM weir_outbox WHERE published_ms IS NULL"
        ),
        0
    );

    // A crash between publishing and marking leaves rows published but
    // unmarked; a later relay (once the dead one's lease ran out)
    // publishes them again: the store keeps one copy each (its idempotent
    // appends), and rows after them go on.
    db.execute_batch(
        "UPDATE weir_outbox SET published_ms = NULL WHERE seq IN
         (SELECT seq FROM weir_outbox ORDER BY seq DESC LIMIT 10)",
    )
    .unwrap();
    for n in 40..50 {
        let aggregate = format!("agg{}", n % 3);
        let e = note_sqlite(&mut db, &aggregate, n, true);
        expected.entry(aggregate).or_default().push(e.id);
    }
    drop(relay);
    let mut relay = Relay::new(
        Source::Sqlite(db_path),
        Target::streams(store.clone(), "note-"),
        quick(),
    )
    .unwrap();
    drain_sqlite(&mut relay, &db);
    assert_streams(&store, "note-", &expected);
    let stats = relay.stats();
    assert_eq!(stats.published, 20, "{stats:?}");
    assert_eq!(
        store.head_position().unwrap(),
        50,
        "no event twice in the store"
    );
}

#[test]
fn sqlite_relay_refuses_a_stream_someone_else_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("svc.db");
    let mut db = sqlite_outbox(&db_path);
    let store = Client::open(dir.path().join("data")).unwrap();
    store
        .append("note-a", weir::ExpectedVersion::Any, &[event("a", 99)])
        .unwrap();
    note_sqlite(&mut db, "a", 0, true);
    let mut relay = Relay::new(
        Source::Sqlite(db_path),
        Target::streams(store, "note-"),
        quick(),
    )
    .unwrap();
    let err = relay.run_once().unwrap_err();
    assert!(matches!(err, OutboxError::StreamDiverged { .. }), "{err}");
    // Nothing was marked: the row waits for an operator.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM weir_outbox WHERE published_ms IS NULL"
        ),
        1
    );
}

/// Runs `relays` relays on threads while `write` enqueues, then until the
/// outbox is drained; returns each relay's totals.
fn race_relays(
    relays: Vec<Relay>,
    write: impl FnOnce(),
    mut pending: impl FnMut() -> i64,
) -> Vec<outbox::RelayStats> {
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|s| {
        let handles: Vec<_> = relays
            .into_iter()
            .map(|mut r| s.spawn(move || r.run_until(stop)))
            .collect();
        write();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while pending() > 0 {
            assert!(std::time::Instant::now() < deadline, "relays did not drain");
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn two_sqlite_relays_take_turns_by_lease_and_publish_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("svc.db");
    let mut db = sqlite_outbox(&db_path);
    let store = Client::open(dir.path().join("data")).unwrap();
    let relays: Vec<Relay> = (0..2)
        .map(|_| {
            Relay::new(
                Source::Sqlite(db_path.clone()),
                Target::streams(store.clone(), "note-"),
                quick(),
            )
            .unwrap()
        })
        .collect();
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    let watcher = Connection::open(&db_path).unwrap();
    let stats = race_relays(
        relays,
        || {
            for n in 0..300 {
                let aggregate = format!("agg{}", n % 5);
                let e = note_sqlite(&mut db, &aggregate, n, true);
                expected.entry(aggregate).or_default().push(e.id);
            }
        },
        || {
            count(
                &watcher,
                "SELECT count(*) FROM weir_outbox WHERE published_ms IS NULL",
            )
        },
    );
    // A row published twice would be counted twice (the store answers a
    // repeated append as it did the first time) or show as reconciled.
    let published: u64 = stats.iter().map(|s| s.published).sum();
    assert_eq!(published, 300, "{stats:?}");
    assert!(stats.iter().all(|s| s.reconciled == 0), "{stats:?}");
    assert!(
        stats.iter().any(|s| s.standby_rounds > 0),
        "one relay stood by: {stats:?}"
    );
    assert_streams(&store, "note-", &expected);
}

#[test]
fn a_standby_sqlite_relay_takes_over_once_the_lease_expires() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("svc.db");
    let mut db = sqlite_outbox(&db_path);
    let store = Client::open(dir.path().join("data")).unwrap();
    let config = RelayConfig {
        lease_ms: 300,
        ..quick()
    };
    let mut first = Relay::new(
        Source::Sqlite(db_path.clone()),
        Target::streams(store.clone(), "note-"),
        config.clone(),
    )
    .unwrap();
    let mut second = Relay::new(
        Source::Sqlite(db_path),
        Target::streams(store.clone(), "note-"),
        config,
    )
    .unwrap();
    note_sqlite(&mut db, "a", 0, true);
    assert_eq!(first.run_once().unwrap().published, 1);
    note_sqlite(&mut db, "a", 1, true);
    assert!(
        second.run_once().unwrap().standby,
        "the first holds the lease"
    );
    // The first stops renewing (it died); its lease runs out.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(second.run_once().unwrap().published, 1);
    // The first comes back and finds itself on standby.
    note_sqlite(&mut db, "a", 2, true);
    assert!(first.run_once().unwrap().standby);
    assert_eq!(second.run_once().unwrap().published, 1);
    assert_eq!(store.read_stream("note-a", 0, 10).unwrap().len(), 3);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use weir::postgres as pg;

    /// A scratch directory `nobody` can enter (PostgreSQL runs as it when
    /// the tests are root) and a server in it.
    fn server() -> (tempfile::TempDir, weir_testpg::PgServer) {
        let dir = tempfile::Builder::new()
            .prefix("weir-outbox-pg")
            .tempdir_in("/tmp")
            .unwrap();
        let server = weir_testpg::PgServer::start(dir.path()).unwrap();
        (dir, server)
    }

    fn setup(db: &mut pg::Client) {
        let mut tx = db.transaction().unwrap();
        outbox::setup(&mut tx).unwrap();
        tx.batch_execute("CREATE TABLE notes (aggregate TEXT, n BIGINT)")
            .unwrap();
        tx.commit().unwrap();
    }

    fn note(db: &mut pg::Client, aggregate: &str, n: u64, commit: bool) -> Envelope {
        let e = event(aggregate, n);
        let mut tx = db.transaction().unwrap();
        tx.execute(
            "INSERT INTO notes VALUES ($1, $2)",
            &[&aggregate, &(n as i64)],
        )
        .unwrap();
        outbox::enqueue(&mut tx, aggregate, &e).unwrap();
        if commit {
            tx.commit().unwrap();
        } else {
            tx.rollback().unwrap();
        }
        e
    }

    fn pending(db: &mut pg::Client) -> i64 {
        db.query_one(
            "SELECT count(*) FROM weir_outbox WHERE published_ms IS NULL",
            &[],
        )
        .unwrap()
        .get(0)
    }

    #[test]
    fn postgres_rows_commit_and_roll_back_with_the_business_rows() {
        let (_dir, server) = server();
        let mut db = server.connect().unwrap();
        setup(&mut db);
        let a = note(&mut db, "a", 0, true);
        note(&mut db, "a", 1, false);
        let b = note(&mut db, "a", 2, true);
        let notes: i64 = db
            .query_one("SELECT count(*) FROM notes", &[])
            .unwrap()
            .get(0);
        assert_eq!(notes, 2);
        let rows: Vec<(String, i64)> = db
            .query(
                "SELECT event_id, aggregate_seq FROM weir_outbox ORDER BY seq",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(rows, vec![(a.id.clone(), 0), (b.id, 1)]);

        let mut tx = db.transaction().unwrap();
        let err = outbox::enqueue(&mut tx, "z", &a).unwrap_err();
        assert!(matches!(err, OutboxError::DuplicateEventId { .. }), "{err}");
        drop(tx);
        let mut tx = db.transaction().unwrap();
        let err = outbox::enqueue(&mut tx, "a\0b", &event("a", 9)).unwrap_err();
        assert!(
            matches!(err, OutboxError::InvalidAggregateId { .. }),
            "{err}"
        );
    }

    #[test]
    fn concurrent_enqueues_for_one_aggregate_get_a_clear_conflict() {
        let (_dir, server) = server();
        let mut first = server.connect().unwrap();
        let mut second = server.connect().unwrap();
        setup(&mut first);
        let mut tx1 = first.transaction().unwrap();
        outbox::enqueue(&mut tx1, "a", &event("a", 0)).unwrap();
        std::thread::scope(|s| {
            let waiter = s.spawn(move || {
                let mut tx2 = second.transaction().unwrap();
                outbox::enqueue(&mut tx2, "a", &event("a", 1))
            });
            std::thread::sleep(Duration::from_millis(300));
            tx1.commit().unwrap();
            let err = waiter.join().unwrap().unwrap_err();
            assert!(
                matches!(err, OutboxError::ConcurrentEnqueue { .. }),
                "{err}"
            );
        });
    }

    #[test]
    fn two_postgres_relays_share_the_work_by_aggregate_and_publish_each_row_once() {
        let (dir, server) = server();
        let mut db = server.connect().unwrap();
        setup(&mut db);
        let store = Client::open(dir.path().join("data")).unwrap();
        let relays: Vec<Relay> = (0..2)
            .map(|_| {
                Relay::new(
                    Source::Postgres(server.url()),
                    Target::streams(store.clone(), "note-"),
                    RelayConfig {
                        batch_rows_max: 3,
                        ..quick()
                    },
                )
                .unwrap()
            })
            .collect();
        let mut watcher = server.connect().unwrap();
        let mut expected: HashMap<String, Vec<String>> = HashMap::new();
        let stats = race_relays(
            relays,
            || {
                for n in 0..300 {
                    let aggregate = format!("agg{}", n % 8);
                    let e = note(&mut db, &aggregate, n, true);
                    expected.entry(aggregate).or_default().push(e.id);
                }
            },
            || pending(&mut watcher),
        );
        let published: u64 = stats.iter().map(|s| s.published).sum();
        assert_eq!(published, 300, "{stats:?}");
        assert!(stats.iter().all(|s| s.reconciled == 0), "{stats:?}");
        assert!(
            stats.iter().all(|s| s.published > 0),
            "both relays worked (SKIP LOCKED, not a lease): {stats:?}"
        );
        assert_streams(&store, "note-", &expected);
    }

    #[test]
    fn a_postgres_relay_that_dies_mid_batch_leaves_its_rows_to_the_next() {
        let (dir, server) = server();
        let mut db = server.connect().unwrap();
        setup(&mut db);
        let store = Client::open(dir.path().join("data")).unwrap();
        let mut expected: HashMap<String, Vec<String>> = HashMap::new();
        for n in 0..20 {
            let aggregate = format!("agg{}", n % 2);
            let e = note(&mut db, &aggregate, n, true);
            expected.entry(aggregate).or_default().push(e.id);
        }
        // A relay's claim holds the aggregates' oldest rows: another relay
        // skips them and finds nothing to do.
        let mut holder = server.connect().unwrap();
        holder.batch_execute("BEGIN").unwrap();
        holder
            .query(
                "SELECT seq FROM weir_outbox WHERE aggregate_seq = 0 FOR UPDATE",
                &[],
            )
            .unwrap();
        let mut relay = Relay::new(
            Source::Postgres(server.url()),
            Target::streams(store.clone(), "note-"),
            quick(),
        )
        .unwrap();
        assert_eq!(relay.run_once().unwrap().claimed, 0);
        // The holder dies: its locks go with its connection.
        drop(holder);
        while relay.run_once().unwrap().claimed > 0 {}
        assert_streams(&store, "note-", &expected);
        assert_eq!(pending(&mut db), 0);
    }
}
