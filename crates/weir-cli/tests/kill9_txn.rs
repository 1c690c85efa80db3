//! Exactly-once across `kill -9`: a consume-transform-produce pipeline with
//! confluent-kafka's transactions (tests/clients/python_txn_pipeline.py)
//! runs while the real `weir serve` is killed at random moments and
//! restarted on the same data dir and port. In the end a `read_committed`
//! reader of the output sees every input record exactly once, and the
//! group's committed offsets are the input's end.
//!
//! `WEIR_TXN_KILL_ROUNDS` sets how many kills (default 8);
//! `WEIR_TXN_KILL_SEED` replays the kill moments a failure printed.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;
const PER_ROUND: usize = 400;
const GROUP: &str = "txn-kill9";

/// `weir serve` killed (SIGKILL) and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, port: u16) -> Killed {
    Killed(common::start_serve(
        dir,
        port,
        &[
            "--default-partitions",
            &PARTITIONS.to_string(),
            // The pipeline's one consumer rejoins after every restart.
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
    ))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// Starts the pipeline, its output lines sent to `lines`.
fn spawn_pipeline(bootstrap: &str, total: usize, lines: mpsc::Sender<String>) -> Killed {
    let mut pipeline = Killed(
        Command::new(common::python())
            .args([
                &common::client_script("python_txn_pipeline.py"),
                bootstrap,
                "txn-in",
                "txn-out",
                GROUP,
                "txn-kill9-pipeline",
                &total.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the client virtualenv is installed by scripts/install-deps"),
    );
    let stdout = pipeline.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("pipeline: {line}");
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    pipeline
}

/// Writes input records `from..to` (`key` and value `in-<n>`), idempotent,
/// and waits until all are acknowledged.
fn feed(bootstrap: &str, from: usize, to: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for n in from..to {
        let key = n.to_string();
        let value = format!("in-{n}");
        producer
            .send(BaseRecord::to("txn-in").key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Every record of `topic` in `isolation`, per partition in offset order.
fn read_all(bootstrap: &str, topic: &str, isolation: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{isolation}"))
        .set("isolation.level", isolation)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut eof = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while eof.len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "reading {topic} ({isolation})");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// The group's committed offsets and the input's end, per partition.
fn committed_and_end(bootstrap: &str) -> (Vec<i64>, Vec<i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("txn-in", p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    let offsets = (0..PARTITIONS)
        .map(
            |p| match committed.find_partition("txn-in", p).unwrap().offset() {
                Offset::Offset(o) => o,
                other => panic!("partition {p} has no committed offset: {other:?}"),
            },
        )
        .collect();
    let ends = (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks("txn-in", p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect();
    (offsets, ends)
}

#[test]
fn a_transactional_pipeline_is_exactly_once_across_kill_dash_9() {
    let rounds: usize = env_or("WEIR_TXN_KILL_ROUNDS", 8);
    let mut seed: u64 = env_or(
        "WEIR_TXN_KILL_SEED",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!("kill moments: WEIR_TXN_KILL_SEED={seed} WEIR_TXN_KILL_ROUNDS={rounds}");
    let total = PER_ROUND * (rounds + 1);
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut server = start(tmp.path(), port);
    feed(&bootstrap, 0, PER_ROUND);

    let (lines_tx, lines) = mpsc::channel::<String>();
    let spawn_pipeline = || spawn_pipeline(&bootstrap, total, lines_tx.clone());
    let mut pipeline = spawn_pipeline();
    let mut log = Vec::new();
    for round in 0..rounds {
        // Once the pipeline commits again (it has rejoined its group and
        // got its producer back), somewhere in the next 0.6 s.
        let waited = Instant::now();
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60).saturating_sub(waited.elapsed()))
                .unwrap_or_else(|e| {
                    panic!(
                        "round {round}: no commit ({e}): {:?}",
                        &log[log.len().saturating_sub(10)..]
                    )
                });
            let commit = line.starts_with("COMMIT");
            log.push(line);
            if commit {
                break;
            }
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis((seed >> 33) % 600);
        std::thread::sleep(delay);
        log.extend(lines.try_iter());
        let commits = log.iter().filter(|l| l.starts_with("COMMIT")).count();
        let with_pipeline = (seed >> 20).is_multiple_of(3);
        eprintln!(
            "round {round}: kill -9 {delay:?} after the first commit{}, \
             {commits} commits so far",
            if with_pipeline {
                " (and of the pipeline)"
            } else {
                ""
            }
        );
        if with_pipeline {
            pipeline.0.kill().unwrap(); // SIGKILL
            pipeline.0.wait().unwrap();
        }
        drop(server);
        server = start(tmp.path(), port);
        if with_pipeline {
            pipeline = spawn_pipeline();
        }
        feed(&bootstrap, PER_ROUND * (round + 1), PER_ROUND * (round + 2));
    }
    // The pipeline prints until it exits (its stdout closes).
    drop(lines_tx);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(remaining) {
            Ok(line) => log.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "the pipeline did not finish: {:?}",
                &log[log.len().saturating_sub(10)..]
            ),
        }
    }
    let status = pipeline.0.wait().unwrap();
    assert!(
        status.success() && log.last().is_some_and(|l| l.starts_with("DONE")),
        "pipeline exited with {status}: {:?}",
        &log[log.len().saturating_sub(10)..]
    );

    let committed = read_all(&bootstrap, "txn-out", "read_committed");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &committed {
        *seen.entry(v.as_str()).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(duplicates.is_empty(), "written twice: {duplicates:?}");
    let missing: Vec<_> = (0..total)
        .map(|n| format!("out-in-{n}"))
        .filter(|v| !seen.contains_key(v.as_str()))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "never written: {missing:?}");
    assert_eq!(committed.len(), total, "{seen:?}");

    let (offsets, ends) = committed_and_end(&bootstrap);
    assert_eq!(offsets, ends, "the group's committed offsets");
    assert_eq!(ends.iter().sum::<i64>(), total as i64);

    // The transactions aborted on purpose wrote their records first: a
    // read_uncommitted reader sees them, so read_committed did skip some.
    let uncommitted = read_all(&bootstrap, "txn-out", "read_uncommitted");
    let chosen = log.iter().filter(|l| l.starts_with("ABORT chosen")).count();
    assert!(chosen > 0, "no transaction was aborted on purpose");
    assert!(
        uncommitted.len() > committed.len(),
        "{chosen} aborted transactions left no record behind"
    );
    let count = |prefix: &str| log.iter().filter(|l| l.starts_with(prefix)).count();
    eprintln!(
        "{rounds} kills: {} committed outputs, {} more in aborted transactions; \
         the pipeline aborted {chosen} transactions on purpose, {} after an error \
         or a rebalance, and started {} new producers after a fatal error",
        committed.len(),
        uncommitted.len() - committed.len(),
        count("ABORT") - chosen,
        count("REINIT"),
    );
}
