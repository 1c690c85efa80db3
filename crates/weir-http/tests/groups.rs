//! Consumer groups over HTTP with a real group: a `kcat -G` member
//! (librdkafka's group consumer) joins over the Kafka listener and commits;
//! the API lists and describes the group (its member, assignment,
//! committed and end offsets, exact lag), refuses resets and deletes while
//! the member is there, plans resets without writing, executes them (and
//! a new member resumes from the reset offsets), and deletes the group. A
//! confluent-kafka member of KIP-848's consumer protocol gets the same; a
//! share group (KIP-932) is described, and offset resets refuse it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};
use weir_http::HttpLimits;

/// A `kcat -G` member of `group` reading `topic`.
fn member(s: &Server, group: &str, topic: &str, extra: &[&str]) -> Child {
    Command::new("kcat")
        .args(["-b", &s.kafka, "-G", group, "-u", "-q", "-f", "%p %o\n"])
        .args(["-X", "session.timeout.ms=6000"])
        .args(["-X", "heartbeat.interval.ms=500"])
        .args(["-X", "auto.commit.interval.ms=100"])
        .args(["-X", "auto.offset.reset=earliest"])
        .args(extra)
        .arg(topic)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kcat is installed by scripts/install-deps")
}

/// Polls the group's description until `ok` holds (30 s at most).
fn wait_for(s: &Server, group: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, g, _) = s.call("GET", &format!("/v1/groups/{group}"), None);
        if st == 200 && ok(&g) {
            return g;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {st} {g}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `(committed, end, lag)` of each partition, in order.
fn offsets(g: &Value) -> Vec<(Value, Value, Value)> {
    g["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["committed_offset"].clone(),
                p["end_offset"].clone(),
                p["lag"].clone(),
            )
        })
        .collect()
}

fn produce(s: &Server, partition: i32, n: usize) {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"value": {"i": i}, "partition": partition}))
        .collect();
    s.ok(
        "POST",
        "/v1/topics/orders/records",
        Some(&json!({ "records": records }).to_string()),
        200,
    );
}

fn reset(s: &Server, body: Value) -> (u16, Value) {
    let (st, out, _) = s.call(
        "POST",
        "/v1/groups/g1/offsets/reset",
        Some(&body.to_string()),
    );
    (st, out)
}

/// `(current, new)` per partition of a reset's answer.
fn plan(out: &Value) -> Vec<(Value, i64)> {
    out["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["current_offset"].clone(),
                p["new_offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn group_lag_resets_and_delete_with_a_real_member() {
    let s = Server::start(HttpLimits::default());
    s.ok(
        "POST",
        "/v1/topics",
        Some(r#"{"name":"orders","partitions":2}"#),
        201,
    );
    produce(&s, 0, 10);
    produce(&s, 1, 6);
    let (st, problem, _) = s.call("GET", "/v1/groups/g1", None);
    assert_eq!((st, &problem["code"]), (404, &json!("group_not_found")));
    assert_eq!(problem["kafka_error_code"], 69);

    // A live member reads everything and commits.
    let kcat = member(&s, "g1", "orders", &[]);
    let g = wait_for(&s, "g1", "the member to commit all", |g| {
        g["state"] == "Stable"
            && offsets(g)
                == vec![
                    (json!(10), json!(10), json!(0)),
                    (json!(6), json!(6), json!(0)),
                ]
    });
    assert_eq!(g["type"], "classic");
    assert_eq!(g["protocol_type"], "consumer");
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{g}");
    assert_eq!(
        members[0]["assignment"],
        json!([{"topic": "orders", "partitions": [0, 1]}]),
        "{g}"
    );
    for p in g["partitions"].as_array().unwrap() {
        assert_eq!(p["member_id"], members[0]["member_id"]);
    }
    assert_eq!(g["lag_total"], 0);
    let list = s.ok("GET", "/v1/groups", None, 200);
    assert!(
        list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["group"] == "g1" && l["state"] == "Stable"),
        "{list}"
    );

    // Resets and deletes are refused while the member is there, dry run
    // or not, as NON_EMPTY_GROUP (68).
    for execute in [false, true] {
        let (st, problem) = reset(&s, json!({"to": "earliest", "execute": execute}));
        assert_eq!((st, &problem["code"]), (409, &json!("group_not_empty")));
        assert_eq!(problem["kafka_error_code"], 68);
    }
    let (st, problem, _) = s.call("DELETE", "/v1/groups/g1", None);
    assert_eq!((st, &problem["code"]), (409, &json!("group_not_empty")));

    stop(kcat);
    wait_for(&s, "g1", "the member to leave", |g| g["state"] == "Empty");

    // Lag is exact: 5 new records on partition 0.
    produce(&s, 0, 5);
    let g = s.ok("GET", "/v1/groups/g1", None, 200);
    assert_eq!(
        offsets(&g),
        vec![
            (json!(10), json!(15), json!(5)),
            (json!(6), json!(6), json!(0)),
        ]
    );
    assert_eq!(g["lag_total"], 5);
    assert_eq!(g["members"], json!([]));

    // A dry run plans and writes nothing.
    let (st, out) = reset(&s, json!({"to": "earliest"}));
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["executed"], false);
    assert_eq!(plan(&out), vec![(json!(10), 0), (json!(6), 0)]);
    let g = s.ok("GET", "/v1/groups/g1", None, 200);
    assert_eq!(g["partitions"][0]["committed_offset"], 10);
    assert_eq!(g["partitions"][1]["committed_offset"], 6);

    // By time: before everything is the start, after everything the end.
    let (_, out) = reset(&s, json!({"to": "datetime", "timestamp_ms": 0}));
    assert_eq!(plan(&out), vec![(json!(10), 0), (json!(6), 0)]);
    let (_, out) = reset(
        &s,
        json!({"to": "datetime", "datetime": "2100-01-01T00:00:00Z"}),
    );
    assert_eq!(plan(&out), vec![(json!(10), 15), (json!(6), 6)]);

    // Executed: an offset past the end is clamped to it.
    let (st, out) = reset(&s, json!({"to": "offset", "offset": 100, "execute": true}));
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["executed"], true);
    assert_eq!(plan(&out), vec![(json!(10), 15), (json!(6), 6)]);
    // One partition of a named topic, then a shift on the other.
    let one = |p: i32| json!([{"topic": "orders", "partitions": [p]}]);
    let (_, out) = reset(
        &s,
        json!({"to": "offset", "offset": 13, "topics": one(0), "execute": true}),
    );
    assert_eq!(plan(&out), vec![(json!(15), 13)]);
    let (_, out) = reset(
        &s,
        json!({"to": "shift_by", "shift_by": -2, "topics": one(1), "execute": true}),
    );
    assert_eq!(plan(&out), vec![(json!(6), 4)]);
    let g = s.ok("GET", "/v1/groups/g1", None, 200);
    assert_eq!(
        offsets(&g),
        vec![
            (json!(13), json!(15), json!(2)),
            (json!(4), json!(6), json!(2)),
        ]
    );

    // Bad resets are 4xx problems and change nothing.
    let bad = [
        (json!({"to": "offset"}), 400, "bad_request"),
        (json!({"to": "earliest", "offset": 3}), 400, "bad_request"),
        (json!({"to": "sideways"}), 422, "invalid_body"),
        (json!({"to": "latest", "surprise": 1}), 422, "invalid_body"),
        (
            json!({"to": "datetime", "datetime": "yesterday"}),
            400,
            "bad_request",
        ),
        (
            json!({"to": "latest", "topics": [{"topic": "nope"}]}),
            404,
            "unknown_topic",
        ),
        (
            json!({"to": "latest", "topics": one(9)}),
            404,
            "unknown_partition",
        ),
    ];
    for (body, status, code) in bad {
        let (st, problem) = reset(&s, body.clone());
        assert_eq!(
            (st, problem["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let (st, problem, _) = s.call(
        "POST",
        "/v1/groups/nobody/offsets/reset",
        Some(r#"{"to":"latest"}"#),
    );
    assert_eq!((st, &problem["code"]), (404, &json!("group_not_found")));
    assert_eq!(
        offsets(&s.ok("GET", "/v1/groups/g1", None, 200)),
        offsets(&g)
    );

    // A new member resumes from the reset offsets: 13, 14 and 4, 5.
    let mut again = member(&s, "g1", "orders", &["-c", "4"]);
    let out = again.stdout.take().unwrap();
    let mut seen: Vec<String> = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .take(4)
        .collect();
    seen.sort();
    assert_eq!(seen, ["0 13", "0 14", "1 4", "1 5"]);
    stop(again);
    wait_for(&s, "g1", "the second member to leave", |g| {
        g["state"] == "Empty"
    });

    assert_eq!(s.call("DELETE", "/v1/groups/g1", None).0, 204);
    let (st, problem, _) = s.call("GET", "/v1/groups/g1", None);
    assert_eq!((st, &problem["code"]), (404, &json!("group_not_found")));
    let (st, _, _) = s.call("DELETE", "/v1/groups/g1", None);
    assert_eq!(st, 404);
}

/// A confluent-kafka consumer of KIP-848's protocol (`group.protocol=
/// consumer`) that commits each record; it leaves when its stdin closes.
const CONSUMER_PROTOCOL_MEMBER: &str = r#"
import sys, threading
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "group.protocol": "consumer", "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe([sys.argv[3]])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
while not stop.is_set():
    m = c.poll(0.1)
    if m is not None and m.error() is None:
        c.commit(message=m, asynchronous=False)
c.close()
print("closed", flush=True)
"#;

#[test]
fn a_consumer_protocol_group_is_described_and_protected_the_same_way() {
    let s = Server::start(HttpLimits::default());
    s.ok(
        "POST",
        "/v1/topics",
        Some(r#"{"name":"orders","partitions":2}"#),
        201,
    );
    produce(&s, 0, 3);
    produce(&s, 1, 2);
    let python = std::env::var("WEIR_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir/venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    });
    let mut child = Command::new(python)
        .args(["-c", CONSUMER_PROTOCOL_MEMBER, &s.kafka, "g1", "orders"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test venv of scripts/install-deps");
    let g = wait_for(&s, "g1", "the member to commit all", |g| {
        offsets(g)
            == vec![
                (json!(3), json!(3), json!(0)),
                (json!(2), json!(2), json!(0)),
            ]
    });
    assert_eq!(g["type"], "consumer", "{g}");
    assert_eq!(g["protocol"], "uniform");
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{g}");
    assert_eq!(
        members[0]["assignment"],
        json!([{"topic": "orders", "partitions": [0, 1]}]),
        "{g}"
    );
    let list = s.ok("GET", "/v1/groups", None, 200);
    assert!(
        list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["group"] == "g1" && l["type"] == "consumer"),
        "{list}"
    );
    let (st, problem) = reset(&s, json!({"to": "earliest", "execute": true}));
    assert_eq!((st, &problem["code"]), (409, &json!("group_not_empty")));
    let (st, problem, _) = s.call("DELETE", "/v1/groups/g1", None);
    assert_eq!((st, &problem["code"]), (409, &json!("group_not_empty")));

    drop(child.stdin.take());
    let mut out = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut out)
        .unwrap();
    assert_eq!(out.trim(), "closed");
    assert!(child.wait().unwrap().success());
    wait_for(&s, "g1", "the member to leave", |g| {
        g["members"] == json!([])
    });
    let (st, out) = reset(&s, json!({"to": "earliest", "execute": true}));
    assert_eq!(st, 200, "{out}");
    let g = s.ok("GET", "/v1/groups/g1", None, 200);
    assert_eq!(
        offsets(&g),
        vec![
            (json!(0), json!(3), json!(3)),
            (json!(0), json!(2), json!(2)),
        ]
    );
    assert_eq!(g["lag_total"], 5);
    assert_eq!(s.call("DELETE", "/v1/groups/g1", None).0, 204);
    assert_eq!(s.call("GET", "/v1/groups/g1", None).0, 404);
}

/// A confluent-kafka share consumer (KIP-932): it joins (librdkafka
/// heartbeats from its own threads) and leaves when its stdin closes. It
/// never polls: poll would send ShareFetch, not served yet.
const SHARE_MEMBER: &str = r#"
import sys
from confluent_kafka import ShareConsumer
c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2]})
c.subscribe([sys.argv[3]])
sys.stdin.read()
c.close()
print("closed", flush=True)
"#;

#[test]
fn a_share_group_is_described_and_refuses_offset_resets() {
    let s = Server::start(HttpLimits::default());
    s.ok(
        "POST",
        "/v1/topics",
        Some(r#"{"name":"jobs","partitions":2}"#),
        201,
    );
    let python = std::env::var("WEIR_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir/venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    });
    let mut child = Command::new(python)
        .args(["-c", SHARE_MEMBER, &s.kafka, "g1", "jobs"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test venv of scripts/install-deps");
    let g = wait_for(&s, "g1", "the share member to join", |g| {
        g["members"].as_array().is_some_and(|m| m.len() == 1)
    });
    assert_eq!(
        (&g["type"], &g["protocol_type"], &g["protocol"], &g["state"]),
        (
            &json!("share"),
            &json!("share"),
            &json!("simple"),
            &json!("Stable")
        ),
        "{g}"
    );
    assert_eq!(
        g["members"][0]["assignment"],
        json!([{"topic": "jobs", "partitions": [0, 1]}]),
        "{g}"
    );
    let list = s.ok("GET", "/v1/groups", None, 200);
    assert!(
        list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["group"] == "g1" && l["type"] == "share"),
        "{list}"
    );
    // Its position is its share-partition state, not committed offsets.
    let (st, problem) = reset(&s, json!({"to": "earliest", "execute": true}));
    assert_eq!((st, &problem["code"]), (404, &json!("group_not_found")));
    let (st, problem, _) = s.call("DELETE", "/v1/groups/g1", None);
    assert_eq!((st, &problem["code"]), (409, &json!("group_not_empty")));

    drop(child.stdin.take());
    let mut out = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut out)
        .unwrap();
    assert_eq!(out.trim(), "closed");
    assert!(child.wait().unwrap().success());
    let g = s.ok("GET", "/v1/groups/g1", None, 200);
    assert_eq!((&g["state"], &g["members"]), (&json!("Empty"), &json!([])));
    assert_eq!(s.call("DELETE", "/v1/groups/g1", None).0, 204);
    assert_eq!(s.call("GET", "/v1/groups/g1", None).0, 404);
}
