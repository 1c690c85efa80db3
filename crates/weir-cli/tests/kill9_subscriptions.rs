//! `weir serve` killed with `kill -9` while competing consumers of a
//! persistent subscription read, ack and retry events over HTTP,
//! restarted, again: no event whose ack was answered is ever delivered
//! again, and in the end every event was acked (none unacked is lost).
//! `WEIR_KILL9_ROUNDS` sets how many kills (default 3).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_api::{
    Append, EventIn, SubscriptionAck, SubscriptionNack, SubscriptionRead, SubscriptionSettings,
};
use weir_client::Client;

const STREAMS: usize = 10;
const EVENTS_PER_STREAM: usize = 150;
const CONSUMERS: usize = 3;
const TARGET: &str = "$ce-job";

#[derive(Default)]
struct Seen {
    /// Events (positions) whose ack was answered 200.
    acked: BTreeSet<u64>,
    /// Events whose ack got no answer (the server died): either way.
    uncertain: BTreeSet<u64>,
    /// Acked events delivered again (must stay empty).
    again: Vec<u64>,
    /// Events nacked with retry (answered), delivered again as they should.
    retried: usize,
}

/// Reads and acks until `stop` or the server goes away (or, when
/// `drain`, until nothing is left). Every 40th event is nacked with retry
/// at its first delivery.
fn consume(http: &str, consumer: &str, seen: &Mutex<Seen>, stop: &AtomicBool, drain: bool) {
    let client = Client::new(http).unwrap();
    let read = SubscriptionRead {
        consumer: consumer.to_owned(),
        max: Some(10),
        wait_ms: None,
    };
    while !stop.load(Ordering::Relaxed) {
        let Ok(got) = client.read_subscription(TARGET, "workers", &read) else {
            return;
        };
        if got.events.is_empty() {
            if drain {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let mut ack = Vec::new();
        let mut retry = Vec::new();
        let mut positions = Vec::new();
        {
            let mut s = seen.lock().unwrap();
            for e in &got.events {
                let p = e.event.position;
                if s.acked.contains(&p) {
                    s.again.push(p);
                }
                if p % 40 == 0 && e.retry_count == 0 {
                    retry.push(e.ack_id.clone());
                } else {
                    ack.push(e.ack_id.clone());
                    positions.push(p);
                }
            }
        }
        if !retry.is_empty() {
            let nack = SubscriptionNack {
                consumer: consumer.to_owned(),
                ack_ids: retry.clone(),
                action: "retry".to_owned(),
                reason: None,
            };
            match client.nack_subscription(TARGET, "workers", &nack) {
                Ok(_) => seen.lock().unwrap().retried += retry.len(),
                Err(_) => return,
            }
        }
        // One ack per event, as a handler acks: a kill lands between them.
        for (id, p) in ack.into_iter().zip(positions) {
            let req = SubscriptionAck {
                consumer: consumer.to_owned(),
                ack_ids: vec![id],
            };
            match client.ack_subscription(TARGET, "workers", &req) {
                Ok(_) => drop(seen.lock().unwrap().acked.insert(p)),
                Err(_) => {
                    seen.lock().unwrap().uncertain.insert(p);
                    return;
                }
            }
        }
    }
}

#[test]
fn acked_subscription_events_survive_kill_dash_9() {
    let rounds: usize = std::env::var("WEIR_KILL9_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, http) = common::start_serve_http(tmp.path(), &[]);
    let client = Client::new(&http).unwrap();
    // Other events interleave with the category's, so positions have gaps.
    for round in 0..EVENTS_PER_STREAM / 50 {
        for s in 0..STREAMS {
            let events = (0..50)
                .map(|i| EventIn {
                    id: None,
                    event_type: "Queued".into(),
                    data: serde_json::json!({ "i": round * 50 + i }),
                    metadata: None,
                    traceparent: None,
                    tracestate: None,
                })
                .collect::<Vec<_>>();
            let append = |stream: String, events: Vec<EventIn>| {
                client
                    .append(
                        &stream,
                        &Append {
                            expected_version: serde_json::json!("any"),
                            events,
                        },
                    )
                    .unwrap();
            };
            append(format!("job-{s}"), events.clone());
            append(format!("noise-{s}"), events[..5].to_vec());
        }
    }
    let settings = SubscriptionSettings {
        start_from: Some(0),
        message_timeout_ms: Some(10_000),
        max_retry_count: Some(50),
        ..SubscriptionSettings::default()
    };
    client
        .put_subscription(TARGET, "workers", &settings)
        .unwrap();
    let total = STREAMS * EVENTS_PER_STREAM;
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
            // events is acked (by progress, not time, so a fast or a slow
            // machine both kill mid-work).
            let target = (round + 1) * total / (rounds + 2);
            common::wait_for_progress(round, target, || seen.lock().unwrap().acked.len());
            child.kill().unwrap();
            child.wait().unwrap();
            let acked = seen.lock().unwrap().acked.len();
            assert!(acked < total, "round {round}: the kill came after the work");
        }
        for t in threads {
            t.join().unwrap();
        }
        if !last {
            let (c, h) = common::start_serve_http(tmp.path(), &[]);
            (child, http) = (c, h);
        }
    }
    let info = Client::new(&http)
        .unwrap()
        .subscription(TARGET, "workers")
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let s = seen.lock().unwrap();
    assert!(
        s.again.is_empty(),
        "acked events delivered again: {:?}",
        s.again
    );
    let settled: BTreeSet<_> = s.acked.union(&s.uncertain).collect();
    assert_eq!(settled.len(), total, "every event was acked in the end");
    assert_eq!((info.checkpoint, info.in_flight), (total as i64, 0));
    assert!(s.retried > 0);
    eprintln!(
        "{rounds} kills, {} acked, {} uncertain, {} retried, {:?}",
        s.acked.len(),
        s.uncertain.len(),
        s.retried,
        started.elapsed()
    );
}
