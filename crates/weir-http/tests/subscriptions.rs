//! The persistent-subscription endpoints through curl: competing consumers
//! with no event acked twice, a stopped consumer's events redelivered to
//! a long-polling one after the message timeout, retries past the limit
//! parked (the parked stream readable) and replayed once, pinned streams
//! on one consumer each, and the problems.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use common::Server;
use serde_json::{Value, json};
use weir_http::HttpLimits;

fn append(s: &Server, stream: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": "Happened", "data": {"i": i}}))
        .collect();
    s.ok(
        "POST",
        &format!("/v1/streams/{stream}"),
        Some(&json!({"expected_version": "any", "events": events}).to_string()),
        200,
    );
}

fn path(target: &str, group: &str, what: &str) -> String {
    format!("/v1/subscriptions/{target}/{group}{what}")
}

fn read(s: &Server, target: &str, body: Value) -> Vec<Value> {
    s.ok(
        "POST",
        &path(target, "g", "/read"),
        Some(&body.to_string()),
        200,
    )["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn settle(s: &Server, target: &str, what: &str, body: Value) -> (u16, Value) {
    let (st, json, _) = s.call("POST", &path(target, "g", what), Some(&body.to_string()));
    (st, json)
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["ack_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn competing_consumers_ack_every_event_once() {
    let s = Arc::new(Server::start(HttpLimits::default()));
    for stream in ["task-1", "task-2", "other-1"] {
        append(&s, stream, 40);
    }
    let created = s.ok(
        "PUT",
        &path("$ce-task", "g", ""),
        Some(&json!({"start_from": 0, "read_batch_size": 6}).to_string()),
        201,
    );
    assert_eq!(created["last_known"], 80);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..3)
        .map(|c| {
            let (s, acked) = (s.clone(), acked.clone());
            std::thread::spawn(move || {
                let me = format!("c{c}");
                loop {
                    let got = read(&s, "$ce-task", json!({"consumer": me}));
                    if got.is_empty() {
                        return;
                    }
                    let (st, body) = settle(
                        &s,
                        "$ce-task",
                        "/ack",
                        json!({"consumer": me, "ack_ids": ids(&got)}),
                    );
                    assert_eq!(st, 200, "{body}");
                    let mut acked = acked.lock().unwrap();
                    for e in &got {
                        assert!(e["event"]["stream"].as_str().unwrap().starts_with("task-"));
                        acked.push(e["event"]["position"].as_u64().unwrap());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap();
    let unique: BTreeSet<u64> = acked.iter().copied().collect();
    assert_eq!(
        (acked.len(), unique.len()),
        (80, 80),
        "each acked exactly once"
    );
    let info = s.ok("GET", &path("$ce-task", "g", "/info"), None, 200);
    assert_eq!(
        (info["checkpoint"].as_i64(), info["in_flight"].as_u64()),
        (Some(80), Some(0))
    );
    assert_eq!(info["consumers"].as_array().unwrap().len(), 3);
    let list = s.ok("GET", "/v1/subscriptions", None, 200);
    assert_eq!(list["groups"][0]["target"], "$ce-task");
}

#[test]
fn a_stopped_consumers_events_go_to_another_after_the_timeout() {
    let s = Server::start(HttpLimits::default());
    append(&s, "job-1", 4);
    s.ok(
        "PUT",
        &path("job-1", "g", ""),
        Some(&json!({"start_from": 0, "message_timeout_ms": 400}).to_string()),
        201,
    );
    let held = read(&s, "job-1", json!({"consumer": "a"}));
    assert_eq!(held.len(), 4);
    // b long-polls; the server's timer releases a's locks and b gets them.
    let started = std::time::Instant::now();
    let again = read(&s, "job-1", json!({"consumer": "b", "wait_ms": 10_000}));
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let versions: Vec<u64> = again
        .iter()
        .map(|e| e["event"]["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![0, 1, 2, 3]);
    assert!(again.iter().all(|e| e["retry_count"] == 1));
    let (st, body) = settle(
        &s,
        "job-1",
        "/ack",
        json!({"consumer": "a", "ack_ids": ids(&held)}),
    );
    assert_eq!((st, body["code"].as_str()), (409, Some("event_not_held")));
    let (st, _) = settle(
        &s,
        "job-1",
        "/ack",
        json!({"consumer": "b", "ack_ids": ids(&again)}),
    );
    assert_eq!(st, 200);
}

#[test]
fn retries_past_the_limit_park_and_a_replay_delivers_once() {
    let s = Server::start(HttpLimits::default());
    append(&s, "pay-1", 2);
    s.ok(
        "PUT",
        &path("pay-1", "g", ""),
        Some(&json!({"start_from": 0, "max_retry_count": 1}).to_string()),
        201,
    );
    // Event 0 is retried past the limit; event 1 acked.
    for _ in 0..3 {
        let got = read(&s, "pay-1", json!({"consumer": "c"}));
        for e in got {
            let id = vec![e["ack_id"].as_str().unwrap().to_owned()];
            let what = if e["event"]["version"] == 0 {
                "/nack"
            } else {
                "/ack"
            };
            let body = json!({"consumer": "c", "ack_ids": id, "action": "retry"});
            let body = if what == "/ack" {
                json!({"consumer": "c", "ack_ids": id})
            } else {
                body
            };
            assert_eq!(settle(&s, "pay-1", what, body).0, 200);
        }
    }
    let info = s.ok("GET", &path("pay-1", "g", ""), None, 200);
    assert_eq!(
        (info["parked"].as_u64(), info["checkpoint"].as_i64()),
        (Some(1), Some(2))
    );
    let parked_stream = info["parked_stream"].as_str().unwrap().to_owned();
    assert_eq!(parked_stream, "$persistentsubscription-pay-1::g-parked");
    let parked = s.ok("GET", &format!("/v1/streams/{parked_stream}"), None, 200);
    assert_eq!(parked["events"][0]["data"]["i"], 0);
    assert_eq!(
        parked["events"][0]["metadata"]["parked_from"]["stream"],
        "pay-1"
    );
    assert_eq!(
        parked["events"][0]["metadata"]["parked_from"]["retry_count"],
        2
    );

    let replay = s.ok("POST", &path("pay-1", "g", "/replay-parked"), None, 200);
    assert_eq!(replay["count"], 1);
    let got = read(&s, "pay-1", json!({"consumer": "c"}));
    assert_eq!(got.len(), 1);
    assert_eq!(
        (
            got[0]["replayed"].as_bool(),
            got[0]["event"]["version"].as_u64()
        ),
        (Some(true), Some(0))
    );
    let (st, _) = settle(
        &s,
        "pay-1",
        "/nack",
        json!({"consumer": "c", "ack_ids": ids(&got), "action": "skip"}),
    );
    assert_eq!(st, 200);
    assert!(read(&s, "pay-1", json!({"consumer": "c"})).is_empty());
    assert_eq!(
        s.ok("POST", &path("pay-1", "g", "/replay-parked"), None, 200)["count"],
        0
    );
}

#[test]
fn pinned_gives_each_stream_to_one_consumer_in_order() {
    let s = Server::start(HttpLimits::default());
    for i in 0..10 {
        for stream in ["acct-a", "acct-b", "acct-c", "acct-d", "acct-e"] {
            let body =
                json!({"expected_version": "any", "events": [{"type": "Moved", "data": {"i": i}}]});
            s.ok(
                "POST",
                &format!("/v1/streams/{stream}"),
                Some(&body.to_string()),
                200,
            );
        }
    }
    s.ok(
        "PUT",
        &path("$ce-acct", "g", ""),
        Some(&json!({"start_from": 0, "strategy": "pinned", "read_batch_size": 4}).to_string()),
        201,
    );
    // Both consumers known before the streams are handed out.
    let mut seen: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut first = true;
    loop {
        let mut any = false;
        for c in ["x", "y"] {
            let got = read(
                &s,
                "$ce-acct",
                json!({"consumer": c, "max": if first { 1 } else { 4 }}),
            );
            any |= !got.is_empty();
            for e in &got {
                seen.entry(e["event"]["stream"].as_str().unwrap().to_owned())
                    .or_default()
                    .push((c.to_owned(), e["event"]["version"].as_u64().unwrap()));
            }
            if !got.is_empty() {
                let (st, _) = settle(
                    &s,
                    "$ce-acct",
                    "/ack",
                    json!({"consumer": c, "ack_ids": ids(&got)}),
                );
                assert_eq!(st, 200);
            }
        }
        first = false;
        if !any {
            break;
        }
    }
    let mut owners = BTreeSet::new();
    for (stream, got) in &seen {
        let versions: Vec<u64> = got.iter().map(|(_, v)| *v).collect();
        assert_eq!(versions, (0..10).collect::<Vec<_>>(), "{stream}");
        // The very first read came before y was known.
        let after_first: BTreeSet<&str> = got.iter().skip(1).map(|(c, _)| c.as_str()).collect();
        assert!(after_first.len() <= 1, "{stream}: {got:?}");
        owners.extend(after_first);
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(owners.len(), 2, "both consumers had streams: {seen:?}");
}

#[test]
fn bad_requests_are_problems() {
    let s = Server::start(HttpLimits::default());
    append(&s, "x-1", 1);
    let (st, body, _) = s.call(
        "POST",
        &path("x-1", "nope", "/read"),
        Some(r#"{"consumer":"c"}"#),
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (404, Some("subscription_not_found"))
    );
    let (st, body, _) = s.call("PUT", &path("$ce-", "g", ""), Some("{}"));
    assert_eq!((st, body["code"].as_str()), (400, Some("bad_request")));
    let (st, body, _) = s.call(
        "PUT",
        &path("x-1", "g", ""),
        Some(r#"{"strategy":"random"}"#),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body, _) = s.call(
        "PUT",
        &path("x-1", "g", ""),
        Some(r#"{"max_retry_count":1000}"#),
    );
    assert_eq!(st, 400, "{body}");
    s.ok(
        "PUT",
        &path("x-1", "g", ""),
        Some(r#"{"start_from":0}"#),
        201,
    );
    s.ok(
        "PUT",
        &path("x-1", "g", ""),
        Some(r#"{"read_batch_size":2}"#),
        200,
    );
    let (st, body) = settle(
        &s,
        "x-1",
        "/nack",
        json!({"consumer": "c", "ack_ids": ["m:0"], "action": "explode"}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = settle(
        &s,
        "x-1",
        "/ack",
        json!({"consumer": "c", "ack_ids": ["zz"]}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = settle(
        &s,
        "x-1",
        "/ack",
        json!({"consumer": "c", "ack_ids": ["m:0"]}),
    );
    assert_eq!((st, body["code"].as_str()), (409, Some("event_not_held")));
    let (st, _, _) = s.call("DELETE", &path("x-1", "g", ""), None);
    assert_eq!(st, 204);
    let (st, _, _) = s.call("GET", &path("x-1", "g", ""), None);
    assert_eq!(st, 404);
}
