//! The queue endpoints through curl: competing consumers on one partition
//! with no record accepted twice, redelivery after a lock runs out, the
//! delivery limit and rejects to the dead-letter topic with origin
//! headers, autoclaim of idle records, transaction markers and aborted
//! records never shown, and the 4xx problems.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::Server;
use serde_json::{Value, json};
use weir_http::HttpLimits;

fn produce(s: &Server, topic: &str, n: usize) {
    let records: Vec<Value> = (0..n).map(|i| json!({"value": {"n": i}})).collect();
    s.ok(
        "POST",
        &format!("/v1/topics/{topic}/records"),
        Some(&json!({ "records": records }).to_string()),
        200,
    );
}

fn claim(s: &Server, group: &str, body: Value) -> Vec<Value> {
    s.ok(
        "POST",
        &format!("/v1/queues/{group}/topics/jobs/claim"),
        Some(&body.to_string()),
        200,
    )["records"]
        .as_array()
        .unwrap()
        .clone()
}

fn act(s: &Server, group: &str, what: &str, body: Value) -> (u16, Value) {
    let (st, json, _) = s.call(
        "POST",
        &format!("/v1/queues/{group}/topics/jobs/{what}"),
        Some(&body.to_string()),
    );
    (st, json)
}

fn server(partitions: i32) -> Server {
    let s = Server::start(HttpLimits::default());
    s.ok(
        "POST",
        "/v1/topics",
        Some(&json!({"name": "jobs", "partitions": partitions}).to_string()),
        201,
    );
    s
}

#[test]
fn competing_consumers_accept_every_record_once() {
    let s = Arc::new(server(1));
    produce(&s, "jobs", 120);
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|c| {
            let (s, accepted) = (s.clone(), accepted.clone());
            std::thread::spawn(move || {
                let me = format!("c{c}");
                loop {
                    let got = claim(
                        &s,
                        "workers",
                        json!({"consumer": me, "max": 7, "start": "earliest"}),
                    );
                    if got.is_empty() {
                        return;
                    }
                    for r in got {
                        let offset = r["offset"].as_i64().unwrap();
                        assert_eq!(r["value"]["n"].as_i64().unwrap(), offset);
                        assert_eq!(r["deliveries"], 1);
                        let (st, body) = act(
                            &s,
                            "workers",
                            "ack",
                            json!({"consumer": me, "partition": 0, "offset": offset}),
                        );
                        assert_eq!(st, 200, "{body}");
                        accepted.lock().unwrap().push(offset);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut all = accepted.lock().unwrap().clone();
    all.sort();
    assert_eq!(all, (0..120).collect::<Vec<i64>>(), "each accepted once");
    // A new group with the default start (latest) sees none of them.
    assert!(claim(&s, "late", json!({"consumer": "x"})).is_empty());
    produce(&s, "jobs", 1);
    let got = claim(&s, "late", json!({"consumer": "x"}));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["offset"], 120);
}

#[test]
fn an_unacked_record_goes_to_another_consumer_after_its_lock() {
    let s = server(2);
    produce(&s, "jobs", 6);
    let a = claim(
        &s,
        "g",
        json!({"consumer": "a", "max": 10, "lock_ms": 300, "start": "earliest"}),
    );
    assert_eq!(a.len(), 6);
    assert!(claim(&s, "g", json!({"consumer": "b"})).is_empty());
    let pending = s.ok("GET", "/v1/queues/g/pending", None, 200);
    assert_eq!(pending["pending"].as_array().unwrap().len(), 6);
    assert_eq!(pending["pending"][0]["consumer"], "a");
    // Long-poll: the locks run out within the wait.
    let b = claim(
        &s,
        "g",
        json!({"consumer": "b", "max": 10, "wait_ms": 5000}),
    );
    let key = |r: &Value| {
        (
            r["partition"].as_i64().unwrap(),
            r["offset"].as_i64().unwrap(),
        )
    };
    let a_set: BTreeSet<_> = a.iter().map(key).collect();
    let b_set: BTreeSet<_> = b.iter().map(key).collect();
    assert!(!b.is_empty() && b_set.is_subset(&a_set));
    assert!(b.iter().all(|r| r["deliveries"] == 2));
    // "a" no longer holds them: its ack is refused with the offset.
    let (p, o) = key(&b[0]);
    let (st, body) = act(
        &s,
        "g",
        "ack",
        json!({"consumer": "a", "partition": p, "offset": o}),
    );
    assert_eq!(st, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains(&o.to_string()));
    let (st, body) = act(
        &s,
        "g",
        "extend",
        json!({"consumer": "b", "partition": p, "offset": o, "lock_ms": 60000}),
    );
    assert_eq!(st, 200, "{body}");
    assert!(
        body["lock_deadline_ms"].as_i64().unwrap() > b[0]["lock_deadline_ms"].as_i64().unwrap()
    );
}

#[test]
fn delivery_limit_and_rejects_go_to_the_dead_letters_with_their_origin() {
    let s = server(1);
    produce(&s, "jobs", 2);
    let first = json!({"consumer": "a", "max": 1, "start": "earliest", "delivery_limit": 2});
    for delivery in 1..=2 {
        let got = claim(&s, "g", first.clone());
        assert_eq!(
            (got[0]["offset"].as_i64(), got[0]["deliveries"].as_i64()),
            (Some(0), Some(delivery))
        );
        let (st, _) = act(
            &s,
            "g",
            "nack",
            json!({"consumer": "a", "partition": 0, "offset": 0}),
        );
        assert_eq!(st, 200);
    }
    let got = claim(&s, "g", first.clone());
    assert_eq!(got[0]["offset"], 1, "offset 0 is past its limit");
    let (st, body) = act(
        &s,
        "g",
        "nack",
        json!({"consumer": "a", "partition": 0, "offset": 1, "reject": true}),
    );
    assert_eq!((st, body["outcome"].as_str()), (200, Some("rejected")));
    assert!(claim(&s, "g", first).is_empty());
    let dlq = s.ok(
        "GET",
        "/v1/dlq/jobs.dlq/partitions/0/records?offset=0",
        None,
        200,
    );
    let letters = dlq["records"].as_array().unwrap();
    assert_eq!(letters.len(), 2, "{dlq}");
    for (letter, (offset, attempts, kind)) in letters
        .iter()
        .zip([(0, 2, "transient"), (1, 1, "permanent")])
    {
        assert_eq!(letter["group"], "g");
        assert_eq!(letter["origin"]["topic"], "jobs");
        assert_eq!(letter["origin"]["partition"], 0);
        assert_eq!(letter["origin"]["offset"], offset);
        assert_eq!(letter["attempts"], attempts);
        assert_eq!(letter["error_kind"], kind);
        assert_eq!(letter["value"]["n"], offset);
    }
}

#[test]
fn autoclaim_takes_idle_records_and_errors_are_clear() {
    let s = server(1);
    produce(&s, "jobs", 3);
    let a = claim(
        &s,
        "g",
        json!({"consumer": "a", "max": 3, "start": "earliest"}),
    );
    assert_eq!(a.len(), 3);
    let (st, body) = act(
        &s,
        "g",
        "autoclaim",
        json!({"consumer": "b", "min_idle_ms": 60000}),
    );
    assert_eq!(st, 200);
    assert!(
        body["records"].as_array().unwrap().is_empty(),
        "not idle long enough"
    );
    std::thread::sleep(std::time::Duration::from_millis(250));
    let (st, body) = act(
        &s,
        "g",
        "autoclaim",
        json!({"consumer": "b", "min_idle_ms": 200, "max": 2}),
    );
    assert_eq!(st, 200);
    let got = body["records"].as_array().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["deliveries"], 2);
    let pending = s.ok("GET", "/v1/queues/g/pending", None, 200);
    let owners: Vec<&str> = pending["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["consumer"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["b", "b", "a"]);
    // Errors.
    let (st, _, _) = s.call(
        "POST",
        "/v1/queues/g/topics/nope/claim",
        Some(r#"{"consumer":"a"}"#),
    );
    assert_eq!(st, 404);
    for bad in [
        json!({"consumer": "a", "lock_ms": 0}),
        json!({"consumer": "a", "max": 0}),
        json!({"consumer": "", "max": 1}),
        json!({"consumer": "a", "start": "middle"}),
        json!({"consumer": "a", "wait_ms": 999999}),
    ] {
        let (st, body) = act(&s, "g", "claim", bad.clone());
        assert_eq!(st, 400, "{bad}: {body}");
    }
    for offset in [99, i64::MIN, i64::MAX, -1] {
        let (st, _) = act(
            &s,
            "g",
            "ack",
            json!({"consumer": "a", "partition": 0, "offset": offset}),
        );
        assert_eq!(st, 409, "offset {offset}");
    }
    let (st, _, _) = s.call(
        "POST",
        "/v1/queues/g/topics/__consumer_offsets/claim",
        Some(r#"{"consumer":"a"}"#),
    );
    assert_eq!(st, 400, "internal topics are not queued");
    let (st, _) = act(
        &s,
        "g",
        "ack",
        json!({"consumer": "a", "partition": 5, "offset": 0}),
    );
    assert_eq!(st, 404);
}

#[test]
fn aborted_and_open_transactions_are_never_claimed() {
    use weir_log::batch::BatchBuilder;
    let s = server(1);
    let broker = s.store.broker();
    produce(&s, "jobs", 1);
    let (pid, epoch) = broker.init_producer_id(-1, -1).unwrap();
    let txn = |value: &[u8], seq: i32| {
        let mut b = BatchBuilder::new(0)
            .producer(pid, epoch, seq)
            .transactional();
        b.push(0, None, Some(value), &[]);
        broker.produce("jobs", 0, &mut b.build()).unwrap();
    };
    txn(b"\"aborted\"", 0);
    broker
        .write_marker("jobs", 0, pid, epoch, false, 0)
        .unwrap()
        .wait()
        .unwrap();
    produce(&s, "jobs", 1);
    txn(b"\"open\"", 1);
    let got = claim(
        &s,
        "g",
        json!({"consumer": "a", "max": 10, "start": "earliest"}),
    );
    let offsets: Vec<i64> = got.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
    // 0 plain, 1 aborted, 2 its marker, 3 plain, 4 open (past the LSO).
    assert_eq!(offsets, [0, 3]);
    assert_eq!(
        s.ok("GET", "/v1/queues/g/pending", None, 200)["pending"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "gaps are settled, not pending"
    );
}

/// A long-polling claim is woken by new records and by a release, well
/// before its fallback look (2 s): it waits on the data directory's
/// change signal, not a timer.
#[test]
fn a_long_poll_wakes_on_new_records_and_on_a_release() {
    let s = Arc::new(server(1));
    assert!(claim(&s, "w", json!({"consumer": "a", "start": "earliest"})).is_empty());
    let poll = |consumer: &'static str| {
        let s = s.clone();
        std::thread::spawn(move || {
            let got = claim(&s, "w", json!({"consumer": consumer, "wait_ms": 20000}));
            (got, std::time::Instant::now())
        })
    };
    let waiting = poll("a");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let produced = std::time::Instant::now();
    produce(&s, "jobs", 1);
    let (got, at) = waiting.join().unwrap();
    assert_eq!(got.len(), 1);
    let woke = at - produced;
    assert!(woke < std::time::Duration::from_millis(1500), "{woke:?}");
    // "b" waits while "a" holds the only record; a release wakes it.
    let waiting = poll("b");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let released = std::time::Instant::now();
    let (st, body) = act(
        &s,
        "w",
        "nack",
        json!({"consumer": "a", "partition": 0, "offset": got[0]["offset"]}),
    );
    assert_eq!(st, 200, "{body}");
    let (got, at) = waiting.join().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["deliveries"], 2);
    let woke = at - released;
    assert!(woke < std::time::Duration::from_millis(1500), "{woke:?}");
}

#[test]
fn settle_takes_many_offsets_in_one_call_and_lists_those_not_held() {
    let s = server(1);
    produce(&s, "jobs", 20);
    let mine: Vec<i64> = claim(
        &s,
        "batch",
        json!({"consumer": "a", "max": 10, "start": "earliest"}),
    )
    .iter()
    .map(|r| r["offset"].as_i64().unwrap())
    .collect();
    assert_eq!(mine, (0..10).collect::<Vec<_>>());
    let theirs = claim(&s, "batch", json!({"consumer": "b", "max": 5}));
    assert_eq!(theirs.len(), 5);

    // 0..=3 and 6 accepted (two runs), 12 is b's: listed, left alone.
    let (st, body) = act(
        &s,
        "batch",
        "settle",
        json!({"consumer": "a", "partition": 0, "offsets": [3, 0, 2, 1, 6, 12]}),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["settled"], json!([0, 1, 2, 3, 6]));
    assert_eq!(body["not_held"], json!([12]));
    assert_eq!(body["outcome"], "accepted");
    // Released ones come back to the next claim; accepted ones never.
    let (st, body) = act(
        &s,
        "batch",
        "settle",
        json!({"consumer": "a", "partition": 0, "offsets": [4, 5], "action": "release"}),
    );
    assert_eq!((st, body["settled"].clone()), (200, json!([4, 5])));
    let again: Vec<i64> = claim(&s, "batch", json!({"consumer": "c", "max": 10}))
        .iter()
        .map(|r| r["offset"].as_i64().unwrap())
        .collect();
    assert!(again.contains(&4) && again.contains(&5), "{again:?}");
    assert!(
        again.iter().all(|o| ![0, 1, 2, 3, 6].contains(o)),
        "{again:?}"
    );
    // b still holds 12: the settle did not touch it.
    let (st, _) = act(
        &s,
        "batch",
        "ack",
        json!({"consumer": "b", "partition": 0, "offset": 12}),
    );
    assert_eq!(st, 200);

    for bad in [
        json!({"consumer": "a", "partition": 0, "offsets": []}),
        json!({"consumer": "a", "partition": 0, "offsets": [7, 7]}),
        json!({"consumer": "a", "partition": 0, "offsets": [7], "action": "drop"}),
    ] {
        let (st, body) = act(&s, "batch", "settle", bad);
        assert_eq!(st, 400, "{body}");
    }
}

#[test]
fn a_deleted_group_starts_afresh_and_unknown_ones_are_404() {
    let s = server(1);
    produce(&s, "jobs", 6);
    let got = claim(
        &s,
        "gone",
        json!({"consumer": "a", "max": 3, "start": "earliest"}),
    );
    assert_eq!(got.len(), 3);
    let (st, _) = act(
        &s,
        "gone",
        "ack",
        json!({"consumer": "a", "partition": 0, "offset": 0}),
    );
    assert_eq!(st, 200);
    let body = s.ok("DELETE", "/v1/queues/gone", None, 200);
    assert_eq!(
        (body["group"].clone(), body["partitions"].clone()),
        (json!("gone"), json!(1))
    );
    // What a held is gone with the group; its ack is refused.
    let (st, _) = act(
        &s,
        "gone",
        "ack",
        json!({"consumer": "a", "partition": 0, "offset": 1}),
    );
    assert_eq!(st, 409);
    // Created again, from the earliest record: offset 0, accepted before
    // the delete, is delivered again, as a first delivery.
    let got = claim(
        &s,
        "gone",
        json!({"consumer": "b", "max": 10, "start": "earliest"}),
    );
    let offsets: Vec<i64> = got.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, (0..6).collect::<Vec<_>>());
    assert!(got.iter().all(|r| r["deliveries"] == 1));
    let (st, body, _) = s.call("DELETE", "/v1/queues/never", None);
    assert_eq!(st, 404, "{body}");
}
