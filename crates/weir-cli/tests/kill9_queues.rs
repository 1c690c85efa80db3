//! `weir serve` killed with `kill -9` while competing consumers claim and
//! ack queue records over HTTP, restarted, again: no record whose ack was
//! answered is ever delivered again, and in the end every record was
//! acknowledged (none unsettled is lost). `WEIR_KILL9_ROUNDS` sets how
//! many kills (default 3).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_api::{ClaimRequest, CreateTopic, Produce, ProduceRecord, RecordAck};
use weir_client::Client;

const RECORDS: usize = 1_500;
const CONSUMERS: usize = 3;

#[derive(Default)]
struct Seen {
    /// Records whose ack was answered 200.
    acked: BTreeSet<(i32, i64)>,
    /// Records whose ack got no answer (the server died): either way.
    uncertain: BTreeSet<(i32, i64)>,
    /// Acked records delivered again (must stay empty).
    again: Vec<(i32, i64)>,
}

fn claim_req(consumer: &str) -> ClaimRequest {
    ClaimRequest {
        consumer: consumer.to_owned(),
        max: Some(10),
        lock_ms: Some(10_000),
        wait_ms: None,
        start: Some("earliest".to_owned()),
        delivery_limit: Some(1_000),
    }
}

/// Claims and acks until `stop` or the server goes away (or, when
/// `drain`, until nothing is left).
fn consume(http: &str, consumer: &str, seen: &Mutex<Seen>, stop: &AtomicBool, drain: bool) {
    let client = Client::new(http).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let Ok(claimed) = client.claim("workers", "jobs", &claim_req(consumer)) else {
            return;
        };
        if claimed.records.is_empty() {
            if drain {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        for r in claimed.records {
            let id = (r.partition, r.offset);
            {
                let mut s = seen.lock().unwrap();
                if s.acked.contains(&id) {
                    s.again.push(id);
                }
            }
            let ack = RecordAck {
                consumer: consumer.to_owned(),
                partition: r.partition,
                offset: r.offset,
                reject: false,
                lock_ms: None,
            };
            match client.ack("workers", "jobs", &ack) {
                Ok(_) => drop(seen.lock().unwrap().acked.insert(id)),
                Err(_) => {
                    seen.lock().unwrap().uncertain.insert(id);
                    return;
                }
            }
        }
    }
}

#[test]
fn acknowledged_queue_records_survive_kill_dash_9() {
    let rounds: usize = std::env::var("WEIR_KILL9_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, http) = common::start_serve_http(tmp.path(), &[]);
    let client = Client::new(&http).unwrap();
    client
        .create_topic(&CreateTopic {
            name: "jobs".into(),
            partitions: Some(2),
            configs: Default::default(),
        })
        .unwrap();
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(100) {
        let records = chunk
            .iter()
            .map(|i| ProduceRecord {
                key: None,
                value: Some(serde_json::json!({ "n": i })),
                value_base64: None,
                headers: Default::default(),
                partition: None,
            })
            .collect();
        client.produce("jobs", &Produce { records }).unwrap();
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut http = http;
    for round in 0..=rounds {
        let last = round == rounds;
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CONSUMERS)
            .map(|c| {
                let (http, seen, stop) = (http.clone(), seen.clone(), stop.clone());
                std::thread::spawn(move || consume(&http, &format!("c{c}"), &seen, &stop, last))
            })
            .collect();
        if !last {
            // Kill while acks are flowing: once this round's share of the
            // records is acked (by progress, not time, so a fast or a slow
            // machine both kill mid-work).
            let target = (round + 1) * RECORDS / (rounds + 2);
            common::wait_for_progress(round, target, || seen.lock().unwrap().acked.len());
            child.kill().unwrap();
            child.wait().unwrap();
            let acked = seen.lock().unwrap().acked.len();
            assert!(
                acked < RECORDS,
                "round {round}: the kill came after the work"
            );
        }
        for t in threads {
            t.join().unwrap();
        }
        if !last {
            let (c, h) = common::start_serve_http(tmp.path(), &[]);
            (child, http) = (c, h);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let s = seen.lock().unwrap();
    assert!(
        s.again.is_empty(),
        "acknowledged records delivered again: {:?}",
        s.again
    );
    let settled: BTreeSet<_> = s.acked.union(&s.uncertain).collect();
    assert_eq!(
        settled.len(),
        RECORDS,
        "every record was acknowledged in the end"
    );
    assert!(s.acked.len() + s.uncertain.len() >= RECORDS);
    eprintln!(
        "{rounds} kills, {} acked, {} uncertain, {:?}",
        s.acked.len(),
        s.uncertain.len(),
        started.elapsed()
    );
}
