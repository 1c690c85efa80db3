//! `weir serve` killed with `kill -9` while confluent-kafka share
//! consumers (KIP-932, librdkafka 2.16, explicit acknowledgement) work a
//! queue, restarted on the same port, again: the consumers rejoin by
//! themselves, no record a consumer was told accepted is delivered again,
//! and in the end every record was accepted (none unsettled is lost).
//! `WEIR_KILL9_ROUNDS` sets how many kills (default 3).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use weir_api::{CreateTopic, Produce, ProduceRecord};
use weir_client::Client;

const RECORDS: usize = 30_000;
const CONSUMERS: usize = 3;

struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn worker(kafka: &str, stderr: std::fs::File) -> Worker {
    let mut child = Command::new(common::python())
        .arg(common::client_script("python_share_worker.py"))
        .args([kafka, "workers", "jobs", "accept", "earliest"])
        // Small polls, so acknowledgements flow in many small commits.
        .arg("max.poll.records=25")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("python from scripts/install-deps");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Worker { child, lines }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `weir serve`, killed when dropped (a failed assertion leaves none).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every line's offset and time, by kind.
#[derive(Default)]
struct Seen {
    /// Offset to the times it was delivered.
    got: BTreeMap<i64, Vec<f64>>,
    /// Offset to the times a consumer was told it was accepted.
    accepted: BTreeMap<i64, Vec<f64>>,
    /// Offset to the times its acknowledgement got no answer: settled or
    /// not, either way.
    uncertain: BTreeMap<i64, Vec<f64>>,
    /// Client errors by their first words.
    errors: BTreeMap<String, usize>,
}

impl Seen {
    fn take(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let time = |i: usize| words.get(i).and_then(|w| w.parse::<f64>().ok());
        let offset = || words.get(2).and_then(|w| w.parse::<i64>().ok());
        match words.first() {
            Some(&"got") => {
                if let (Some(o), Some(t)) = (offset(), time(5)) {
                    self.got.entry(o).or_default().push(t);
                }
            }
            Some(&"accepted") => {
                if let (Some(o), Some(t)) = (offset(), time(3)) {
                    self.accepted.entry(o).or_default().push(t);
                }
            }
            Some(&"uncertain") => {
                if let (Some(o), Some(t)) = (offset(), time(3)) {
                    self.uncertain.entry(o).or_default().push(t);
                }
            }
            Some(&"error") => {
                let kind = words.iter().take(3).copied().collect::<Vec<_>>().join(" ");
                *self.errors.entry(kind).or_default() += 1;
            }
            _ => {}
        }
    }
}

#[test]
fn accepted_share_records_survive_kill_dash_9() {
    let rounds: usize = std::env::var("WEIR_KILL9_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let kafka = format!("127.0.0.1:{port}");
    let (mut server, http) = {
        let (c, k, h) = common::start_serve_kafka_http_on(tmp.path(), port, &[]);
        assert_eq!(k, kafka);
        (Server(c), h)
    };
    let client = Client::new(&http).unwrap();
    client
        .create_topic(&CreateTopic {
            name: "jobs".into(),
            partitions: Some(1),
            configs: Default::default(),
        })
        .unwrap();
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(500) {
        let records = chunk
            .iter()
            .map(|i| ProduceRecord {
                key: None,
                value: Some(serde_json::json!(i)),
                value_base64: None,
                headers: Default::default(),
                partition: None,
            })
            .collect();
        client.produce("jobs", &Produce { records }).unwrap();
    }
    let logs = tmp.path().join("workers.log");
    let log = std::fs::File::create(&logs).unwrap();
    let mut workers: Vec<Worker> = (0..CONSUMERS)
        .map(|_| worker(&kafka, log.try_clone().unwrap()))
        .collect();
    let mut seen = Seen::default();
    let drain = |workers: &mut Vec<Worker>, seen: &mut Seen| {
        for w in workers.iter_mut() {
            for line in w.lines.try_iter() {
                seen.take(&line);
            }
        }
    };
    for round in 0..rounds {
        // Kill while acknowledgements flow: once this round's share of
        // the records is accepted (by progress, not time, so any number
        // of rounds kills mid-work on a fast or a slow machine).
        let target = (round + 1) * RECORDS / (rounds + 1);
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.accepted.len() < target {
            assert!(Instant::now() < deadline, "round {round}: no progress");
            std::thread::sleep(Duration::from_millis(5));
            drain(&mut workers, &mut seen);
        }
        let at_kill = seen.accepted.len();
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        drain(&mut workers, &mut seen);
        eprintln!(
            "round {round}: killed at {at_kill} accepted ({} told by then), {:?}",
            seen.accepted.len(),
            started.elapsed()
        );
        assert!(
            seen.accepted.len() < RECORDS,
            "round {round}: the kill came after the work"
        );
        std::thread::sleep(Duration::from_millis(300));
        server = Server(common::start_serve(tmp.path(), port, &[]));
    }
    let settled = |seen: &Seen| {
        (0..RECORDS as i64)
            .filter(|o| seen.accepted.contains_key(o) || seen.uncertain.contains_key(o))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while settled(&seen) < RECORDS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        drain(&mut workers, &mut seen);
    }
    // A record whose acknowledgement went unanswered and was not made
    // durable is available again since the restart: it would come back
    // within this wait, as a second delivery.
    std::thread::sleep(Duration::from_secs(3));
    drain(&mut workers, &mut seen);
    for w in &mut workers {
        if let Some(mut stdin) = w.child.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
    }
    let statuses: Vec<_> = workers
        .iter_mut()
        .map(|w| w.child.try_wait().unwrap())
        .collect();
    eprintln!("workers that exited before being asked: {statuses:?}");
    for w in &mut workers {
        let deadline = Instant::now() + Duration::from_secs(60);
        while w.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
    drain(&mut workers, &mut seen);
    drop(server);

    // Delivered after a consumer was told it was accepted: never.
    let mut again = Vec::new();
    for (offset, times) in &seen.accepted {
        let first_accept = times.iter().copied().fold(f64::INFINITY, f64::min);
        let later = seen.got[offset]
            .iter()
            .filter(|&&t| t > first_accept)
            .count();
        if later > 0 || times.len() > 1 {
            again.push(*offset);
        }
    }
    let redelivered = seen.got.values().filter(|t| t.len() > 1).count();
    eprintln!(
        "{rounds} kills, {} accepted, {redelivered} delivered more than once (never accepted \
         before), client errors {:?}, {:?}",
        seen.accepted.len(),
        seen.errors,
        started.elapsed()
    );
    assert!(
        again.is_empty(),
        "accepted records delivered again: {again:?}"
    );
    let missing: Vec<i64> = (0..RECORDS as i64)
        .filter(|o| !seen.accepted.contains_key(o))
        .collect();
    let unanswered: Vec<i64> = missing
        .iter()
        .copied()
        .filter(|o| !seen.uncertain.contains_key(o))
        .collect();
    eprintln!(
        "{} records never told accepted, {} of them with an unanswered acknowledgement",
        missing.len(),
        missing.len() - unanswered.len()
    );
    if !unanswered.is_empty() {
        let log = std::fs::read_to_string(&logs).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let got: Vec<_> = unanswered.iter().take(3).map(|o| seen.got.get(o)).collect();
        panic!(
            "lost: {} records never settled, first {:?}, delivered at {got:?}\nworkers' log (last lines first):\n{}",
            unanswered.len(),
            unanswered.first(),
            tail.join("\n")
        );
    }
}
