//! The SDK's consumer runtime (`weir::Service`) against Weir's Kafka
//! server through librdkafka: per-key order with concurrency, commits of
//! what is done, dead letters (decode, permanent, retries run out) read
//! back by kcat, circuit breakers pausing instead of burning retries,
//! backpressure bounded by the in-flight limit, at-most-once commits before
//! handling, and graceful shutdown (asked for, or on SIGTERM) handing over
//! to a successor with nothing lost and nothing handled twice.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestServer, kcat};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::{Deserialize, Serialize};
use weir::{
    BreakerPolicy, BreakerState, Causation, Delivery, Envelope, Failure, KafkaSource, RetryPolicy,
    Service, ServiceConfig,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    key: String,
    seq: u32,
    /// What the handler is to do: "ok", "permanent", "transient".
    mode: String,
}
weir::event!(Step = "Step" v 1);

fn step(key: &str, seq: u32, mode: &str) -> Envelope {
    let s = Step {
        key: key.into(),
        seq,
        mode: mode.into(),
    };
    Envelope::new(&s, "/test", &Causation::new())
        .unwrap()
        .with_subject(key)
}

fn producer(server: &TestServer) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Produces `envelopes` to `topic` keyed by subject, in order.
fn produce(server: &TestServer, topic: &str, envelopes: &[Envelope]) {
    let p = producer(server);
    for e in envelopes {
        let r = e.to_kafka();
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let key = r.key.clone().unwrap();
        p.send(
            BaseRecord::to(topic)
                .key(&key)
                .payload(&r.value)
                .headers(headers),
        )
        .unwrap();
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// Produces one raw record (not a CloudEvent).
fn produce_raw(server: &TestServer, topic: &str, key: &str, value: &str) {
    let p = producer(server);
    p.send(BaseRecord::to(topic).key(key).payload(value))
        .unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config() -> ServiceConfig {
    ServiceConfig {
        workers: 4,
        commit_interval: Duration::from_millis(100),
        shutdown_deadline: Duration::from_secs(10),
        ..ServiceConfig::default()
    }
}

fn committed(server: &TestServer, group: &str) -> BTreeMap<i32, i64> {
    server
        .groups
        .committed(group)
        .into_iter()
        .map(|(tp, c)| (tp.partition, c.offset))
        .collect()
}

fn end_offsets(server: &TestServer, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    (0..partitions)
        .map(|p| {
            let log = server.broker.partition(topic, p).unwrap();
            (p, log.high_watermark())
        })
        .collect()
}

type Seen = Arc<Mutex<Vec<(String, u32)>>>;

#[test]
fn keys_keep_their_order_and_everything_done_is_committed() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("steps", 3, -1, &[], false)
        .unwrap();
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let events: Vec<Envelope> = (0..50)
        .flat_map(|seq| keys.iter().map(move |k| step(k, seq, "ok")))
        .collect();
    produce(&server, "steps", &events);

    let seen: Seen = Arc::default();
    let s = seen.clone();
    let service = Service::builder("orderly")
        .config(config())
        .on::<Step>(move |ctx, step| {
            assert_eq!(ctx.attempt(), 1);
            assert_eq!(ctx.envelope().subject.as_deref(), Some(step.key.as_str()));
            // Some work, so that keys overlap in time across workers.
            std::thread::sleep(Duration::from_micros(200));
            s.lock().unwrap().push((step.key, step.seq));
            Ok(())
        })
        .build()
        .unwrap();
    let running = service
        .start(KafkaSource::new(server.bootstrap(), &["steps"]))
        .unwrap();
    wait_for("400 handled", Duration::from_secs(60), || {
        seen.lock().unwrap().len() >= 400
    });
    running.stop().unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 400, "each record handled once");
    let mut by_key: HashMap<&str, Vec<u32>> = HashMap::new();
    for (k, seq) in seen.iter() {
        by_key.entry(k).or_default().push(*seq);
    }
    for k in keys {
        assert_eq!(
            by_key[k],
            (0..50).collect::<Vec<_>>(),
            "key {k} out of order"
        );
    }
    let stats = service.stats();
    assert_eq!((stats.handled, stats.dead_lettered), (400, 0));
    assert_eq!(
        committed(&server, "orderly"),
        end_offsets(&server, "steps", 3)
    );
}

#[test]
fn poison_records_are_dead_lettered_with_their_origin_and_the_partition_goes_on() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("docs", 1, -1, &[], false)
        .unwrap();
    produce(&server, "docs", &[step("k", 0, "ok")]);
    produce_raw(&server, "docs", "k", "not a cloud event");
    produce(
        &server,
        "docs",
        &[
            step("k", 2, "permanent"),
            step("k", 3, "transient"),
            step("k", 4, "ok"),
        ],
    );
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let service = Service::builder("indexer")
        .config(ServiceConfig {
            retry: RetryPolicy {
                attempts: 3,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
                factor: 2.0,
                jitter: true,
            },
            ..config()
        })
        .on::<Step>(move |ctx, step| match step.mode.as_str() {
            "permanent" => Err(Failure::permanent("no such document type")),
            "transient" => Err(Failure::transient(format!(
                "search backend timed out (attempt {})",
                ctx.attempt()
            ))),
            _ => {
                s.lock().unwrap().push((step.key, step.seq));
                Ok(())
            }
        })
        .build()
        .unwrap();
    let running = service
        .start(KafkaSource::new(server.bootstrap(), &["docs"]))
        .unwrap();
    wait_for("two handled, three dead", Duration::from_secs(60), || {
        let st = service.stats();
        st.handled == 2 && st.dead_lettered == 3
    });
    running.stop().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [("k".to_owned(), 0), ("k".to_owned(), 4)]
    );
    assert_eq!(service.stats().retries, 2);
    assert_eq!(committed(&server, "indexer"), BTreeMap::from([(0, 5)]));

    // Any Kafka client reads the dead letters: origin, kind, attempts.
    let out = kcat(
        &[
            "-C",
            "-b",
            &server.bootstrap(),
            "-t",
            "docs.dlq",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%p|%k|%h\\n",
        ],
        "",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let header = |line: &str, name: &str| -> String {
        let headers = line.splitn(3, '|').nth(2).unwrap();
        headers
            .split(',')
            .find_map(|h| h.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .to_owned()
    };
    let expect = [
        ("1", "decode", "1"),
        ("2", "permanent", "1"),
        ("3", "transient", "3"),
    ];
    for (line, (offset, kind, attempts)) in lines.iter().zip(expect) {
        assert!(line.starts_with("0|k|"), "{line}");
        assert_eq!(header(line, "weir.dlq.origin.topic"), "docs");
        assert_eq!(header(line, "weir.dlq.origin.partition"), "0");
        assert_eq!(header(line, "weir.dlq.origin.offset"), offset);
        assert_eq!(header(line, "weir.dlq.error.kind"), kind);
        assert_eq!(header(line, "weir.dlq.attempts"), attempts);
        assert_eq!(header(line, "weir.dlq.group"), "indexer");
    }
    assert!(header(lines[2], "weir.dlq.error").contains("attempt 3"));
    // The original CloudEvents headers travel with the dead letter.
    assert!(lines[1].contains("ce_type=Step"), "{}", lines[1]);
    // The dead-letter topic has its origin's partition count.
    assert_eq!(
        server.broker.topic("docs.dlq").unwrap().partition_count(),
        server.broker.topic("docs").unwrap().partition_count()
    );
}

#[test]
fn an_open_breaker_pauses_instead_of_burning_retries() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("mail", 1, -1, &[], false)
        .unwrap();
    let events: Vec<Envelope> = (0..20).map(|i| step(&format!("u{i}"), i, "ok")).collect();
    produce(&server, "mail", &events);
    let down = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicU32::new(0));
    let (d, c) = (down.clone(), calls.clone());
    let service = Service::builder("notifier")
        .config(ServiceConfig {
            retry: RetryPolicy {
                attempts: 3,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(10),
                factor: 1.0,
                jitter: false,
            },
            ..config()
        })
        .downstream(
            "smtp",
            BreakerPolicy {
                failures: 2,
                window: Duration::from_secs(10),
                open_for: Duration::from_millis(300),
            },
        )
        .on::<Step>(move |ctx, _| {
            ctx.call("smtp", || {
                c.fetch_add(1, Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    Err(Failure::transient("smtp: connection refused"))
                } else {
                    Ok(())
                }
            })
        })
        .build()
        .unwrap();
    let down_since = Instant::now();
    let running = service
        .start(KafkaSource::new(server.bootstrap(), &["mail"]))
        .unwrap();
    wait_for("the breaker to open", Duration::from_secs(30), || {
        service.breakers() == [("smtp".to_owned(), BreakerState::Open)]
    });
    // The partition is paused while the breaker is open: what is produced
    // now is not fetched.
    wait_for("the partition to pause", Duration::from_secs(10), || {
        service.stats().paused == 1
    });
    let fetched = service.stats().fetched;
    let more: Vec<Envelope> = (20..40).map(|i| step(&format!("u{i}"), i, "ok")).collect();
    produce(&server, "mail", &more);
    // Down for 2 s: with 3 attempts per record and no breaker, 20 records
    // would all be dead-lettered; with it, only the two failures that open
    // it and one probe per cool-down reach the downstream.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        service.stats().fetched,
        fetched,
        "fetched while the breaker was open"
    );
    // The two failures that open it, then at most one probe per
    // cool-down since it went down (the waits above last longer on a
    // loaded machine, so the bound follows the time that passed).
    let calls_while_down = calls.load(Ordering::SeqCst) as u128;
    let cool_downs = down_since.elapsed().as_millis() / 300;
    assert!(
        calls_while_down <= 2 + cool_downs + 2,
        "{calls_while_down} calls while down for {cool_downs} cool-downs"
    );
    down.store(false, Ordering::SeqCst);
    wait_for("all handled", Duration::from_secs(30), || {
        service.stats().handled == 40
    });
    running.stop().unwrap();
    let stats = service.stats();
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    assert_eq!(
        service.breakers(),
        [("smtp".to_owned(), BreakerState::Closed)]
    );
}

#[test]
fn a_full_in_flight_queue_stops_fetching_until_it_drains() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("backlog", 2, -1, &[], false)
        .unwrap();
    let events: Vec<Envelope> = (0..300)
        .map(|i| step(&format!("k{}", i % 50), i, "ok"))
        .collect();
    produce(&server, "backlog", &events);
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let service = Service::builder("slow")
        .config(ServiceConfig {
            in_flight_max: 20,
            ..config()
        })
        .on::<Step>(move |_, _| {
            while !g.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })
        .build()
        .unwrap();
    let running = service
        .start(KafkaSource::new(server.bootstrap(), &["backlog"]))
        .unwrap();
    wait_for("the limit to be reached", Duration::from_secs(30), || {
        service.stats().in_flight >= 20
    });
    std::thread::sleep(Duration::from_secs(2));
    let stats = service.stats();
    // Memory follows the in-flight limit, not the backlog: one record may
    // be taken per poll round before the partitions are paused.
    assert!(stats.fetched <= 22, "{stats:?}");
    assert!(stats.backpressure_pauses >= 1, "{stats:?}");
    gate.store(true, Ordering::SeqCst);
    wait_for("the backlog drained", Duration::from_secs(60), || {
        service.stats().handled == 300
    });
    running.stop().unwrap();
    assert_eq!(service.stats().fetched, 300);
    assert_eq!(
        committed(&server, "slow"),
        end_offsets(&server, "backlog", 2)
    );
}

#[test]
fn at_most_once_commits_before_handling() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("once", 1, -1, &[], false)
        .unwrap();
    produce(&server, "once", &[step("k", 0, "ok"), step("k", 1, "ok")]);
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let service = Service::builder("fire-and-forget")
        .config(ServiceConfig {
            delivery: Delivery::AtMostOnce,
            ..config()
        })
        .on::<Step>(move |_, _| {
            while !g.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })
        .build()
        .unwrap();
    let running = service
        .start(KafkaSource::new(server.bootstrap(), &["once"]))
        .unwrap();
    // Both are committed while the first is still in its handler.
    wait_for("the commit", Duration::from_secs(30), || {
        committed(&server, "fire-and-forget").get(&0) == Some(&2)
    });
    assert_eq!(service.stats().handled, 0);
    gate.store(true, Ordering::SeqCst);
    running.stop().unwrap();
    assert_eq!(service.stats().handled, 2);
}

#[test]
fn a_graceful_stop_finishes_in_flight_work_and_a_successor_takes_over() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("jobs", 2, -1, &[], false)
        .unwrap();
    let events: Vec<Envelope> = (0..200)
        .map(|i| step(&format!("k{}", i % 10), i, "ok"))
        .collect();
    produce(&server, "jobs", &events);
    let seen: Seen = Arc::default();
    let build = |seen: &Seen| {
        let s = seen.clone();
        Service::builder("workers")
            .config(ServiceConfig {
                in_flight_max: 20,
                ..config()
            })
            .on::<Step>(move |_, step| {
                std::thread::sleep(Duration::from_millis(10));
                s.lock().unwrap().push((step.key, step.seq));
                Ok(())
            })
            .build()
            .unwrap()
    };
    let first = build(&seen);
    let running = first
        .start(KafkaSource::new(server.bootstrap(), &["jobs"]))
        .unwrap();
    wait_for("some handled", Duration::from_secs(30), || {
        seen.lock().unwrap().len() >= 40
    });
    running.stop().unwrap();
    let stats = first.stats();
    assert!(stats.handled < 200, "{stats:?}");
    assert_eq!(stats.abandoned, 0);
    assert_eq!(stats.handled as usize, seen.lock().unwrap().len());
    // What the first one handled is committed, so the successor starts
    // right after it.
    let done_first: i64 = committed(&server, "workers").values().sum();
    assert_eq!(done_first as u64, stats.handled);
    assert!(server.groups.describe("workers").members.is_empty());

    let second = build(&seen);
    let running = second
        .start(KafkaSource::new(server.bootstrap(), &["jobs"]))
        .unwrap();
    wait_for("all handled", Duration::from_secs(60), || {
        seen.lock().unwrap().len() >= 200
    });
    running.stop().unwrap();
    let mut all: Vec<u32> = seen.lock().unwrap().iter().map(|(_, s)| *s).collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<_>>(), "lost or handled twice");
}

#[test]
fn sigterm_stops_gracefully_commits_and_leaves_the_group() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("signals", 1, -1, &[], false)
        .unwrap();
    let events: Vec<Envelope> = (0..100).map(|i| step("k", i, "ok")).collect();
    produce(&server, "signals", &events);
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let service = Service::builder("signalled")
        .config(ServiceConfig {
            in_flight_max: 10,
            ..config()
        })
        .on::<Step>(move |_, step| {
            std::thread::sleep(Duration::from_millis(20));
            s.lock().unwrap().push((step.key, step.seq));
            Ok(())
        })
        .build()
        .unwrap();
    let svc = service.clone();
    let source = KafkaSource::new(server.bootstrap(), &["signals"]);
    let runner = std::thread::spawn(move || svc.run_until_signal(source));
    wait_for("some handled", Duration::from_secs(30), || {
        seen.lock().unwrap().len() >= 10
    });
    // SIGTERM to this process (nextest runs each test in its own): the
    // service's handler only sets its flag.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let stats = runner.join().unwrap().unwrap();
    assert!(stats.handled < 100, "{stats:?}");
    assert_eq!(stats.handled as usize, seen.lock().unwrap().len());
    assert_eq!(
        committed(&server, "signalled"),
        BTreeMap::from([(0, stats.handled as i64)])
    );
    // It left the group rather than waiting for its session to expire.
    assert!(server.groups.describe("signalled").members.is_empty());
}

#[test]
fn a_second_instance_takes_partitions_over_without_loss_or_duplicates() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("shared", 4, -1, &[], false)
        .unwrap();
    let events: Vec<Envelope> = (0..400)
        .map(|i| step(&format!("k{}", i % 20), i, "ok"))
        .collect();
    produce(&server, "shared", &events);
    let seen: Seen = Arc::default();
    // Members learn of a rebalance on their next heartbeat.
    let source =
        || KafkaSource::new(server.bootstrap(), &["shared"]).set("heartbeat.interval.ms", "100");
    let build = |seen: &Seen| {
        let s = seen.clone();
        Service::builder("pair")
            .config(ServiceConfig {
                in_flight_max: 16,
                ..config()
            })
            .on::<Step>(move |_, step| {
                std::thread::sleep(Duration::from_millis(20));
                s.lock().unwrap().push((step.key, step.seq));
                Ok(())
            })
            .build()
            .unwrap()
    };
    let first = build(&seen);
    let a = first.start(source()).unwrap();
    wait_for("the first to start", Duration::from_secs(30), || {
        seen.lock().unwrap().len() >= 20
    });
    // A second instance joins: the group rebalances, the first finishes
    // and commits what it had of the revoked partitions before they move.
    let second = build(&seen);
    let b = second.start(source()).unwrap();
    wait_for("all handled", Duration::from_secs(60), || {
        seen.lock().unwrap().len() >= 400
    });
    std::thread::sleep(Duration::from_millis(300));
    a.stop().unwrap();
    b.stop().unwrap();
    assert!(second.stats().handled > 0, "the second got no partition");
    let seen = seen.lock().unwrap();
    let mut all: Vec<u32> = seen.iter().map(|(_, s)| *s).collect();
    all.sort_unstable();
    assert_eq!(all, (0..400).collect::<Vec<_>>(), "lost or handled twice");
    // Each key's records in order, across the hand-over.
    let mut by_key: HashMap<&str, Vec<u32>> = HashMap::new();
    for (k, s) in seen.iter() {
        by_key.entry(k).or_default().push(*s);
    }
    for (k, seqs) in by_key {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "key {k}: {seqs:?}");
    }
    assert_eq!(
        committed(&server, "pair"),
        end_offsets(&server, "shared", 4)
    );
}
