//! The dead-letter endpoints through curl: list with depth and origin,
//! read decoded dead letters, replay one and all to the origin (where the
//! replay markers show), and the 4xx problems for bad selections.

mod common;

use common::Server;
use serde_json::json;
use weir_deadletter::format::{DEFAULT_SUFFIX, ErrorKind, Failure, Origin};
use weir_deadletter::{Original, send};
use weir_http::HttpLimits;

fn dead_letter(s: &Server, partition: i32, offset: i64, value: &[u8]) -> i64 {
    let failure = Failure {
        error: "mail server down".into(),
        kind: ErrorKind::Transient,
        attempts: 5,
        first_failure_ms: 1_000,
        last_failure_ms: 9_000,
        group: "notifier".into(),
    };
    let origin = Origin {
        topic: "docs".into(),
        partition,
        offset,
        timestamp_ms: 500,
    };
    let headers: &[(&str, Option<&[u8]>)] = &[("trace", Some(b"t-1"))];
    let original = Original {
        key: Some(b"doc-7"),
        value: Some(value),
        headers,
    };
    send(
        s.store.broker(),
        DEFAULT_SUFFIX,
        original,
        &failure,
        &origin,
    )
    .unwrap()
}

#[test]
fn dead_letters_are_listed_read_and_replayed() {
    let s = Server::start(HttpLimits::default());
    s.store
        .broker()
        .create_topic("docs", 2, -1, &[], false)
        .unwrap();
    assert_eq!(s.ok("GET", "/v1/dlq", None, 200)["topics"], json!([]));
    // No thresholds set: nothing is watched, nothing fires.
    assert_eq!(
        s.ok("GET", "/v1/alerts", None, 200),
        json!({"dead_letter_depth_max": null, "group_lag_max": null, "alerts": [], "dropped": 0})
    );
    let first = dead_letter(&s, 1, 41, br#"{"id":7}"#);
    dead_letter(&s, 1, 42, b"\x00binary");

    let listed = s.ok("GET", "/v1/dlq", None, 200);
    let t = &listed["topics"][0];
    assert_eq!(
        (
            &t["topic"],
            &t["origin_topic"],
            &t["origin_exists"],
            &t["partitions"],
            &t["depth"]
        ),
        (
            &json!("docs.dlq"),
            &json!("docs"),
            &json!(true),
            &json!(2),
            &json!(2)
        )
    );
    assert!(t["oldest_timestamp_ms"].as_i64().is_some());

    let page = s.ok(
        "GET",
        "/v1/dlq/docs.dlq/partitions/1/records?offset=0",
        None,
        200,
    );
    let r = &page["records"][0];
    assert_eq!(r["offset"], first);
    assert_eq!(r["key"], "doc-7");
    assert_eq!(r["value"], json!({"id": 7}));
    assert_eq!(r["headers"], json!({"trace": "t-1"}));
    assert_eq!(
        (&r["error"], &r["error_kind"], &r["attempts"], &r["group"]),
        (
            &json!("mail server down"),
            &json!("transient"),
            &json!(5),
            &json!("notifier")
        )
    );
    assert_eq!(
        r["origin"],
        json!({"topic": "docs", "partition": 1, "offset": 41, "timestamp_ms": 500})
    );
    assert_eq!(r["replays"], 0);
    assert!(page["records"][1]["value"].is_null());
    assert_eq!(page["records"][1]["value_base64"], "AGJpbmFyeQ==");
    assert_eq!(page["not_dead_letters"], json!([]));
    assert_eq!(page["next_offset"], 2);

    // One record back to docs-1, with the replay markers.
    let one = s.ok(
        "POST",
        "/v1/dlq/docs.dlq/replay",
        Some(&json!({"partition": 1, "offset": first}).to_string()),
        200,
    );
    assert_eq!(one, json!({"replayed": 1, "skipped_not_dead_letters": 0}));
    let back = s.ok(
        "GET",
        "/v1/topics/docs/partitions/1/records?offset=0",
        None,
        200,
    );
    let h = &back["records"][0]["headers"];
    assert_eq!(h["trace"], "t-1");
    assert_eq!(h["weir.dlq.replayed.from"], format!("docs.dlq/1/{first}"));
    assert_eq!(h["weir.dlq.replays"], "1");
    assert!(h.get("weir.dlq.error").is_none(), "{h}");

    // Everything.
    let all = s.ok(
        "POST",
        "/v1/dlq/docs.dlq/replay",
        Some(r#"{"all": true}"#),
        200,
    );
    assert_eq!(all["replayed"], 2);
    let back = s.ok(
        "GET",
        "/v1/topics/docs/partitions/1/records?offset=0",
        None,
        200,
    );
    assert_eq!(back["records"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_replays_are_refused_with_problems() {
    let s = Server::start(HttpLimits::default());
    s.store
        .broker()
        .create_topic("docs", 2, -1, &[], false)
        .unwrap();
    dead_letter(&s, 0, 1, b"x");
    for (body, status) in [
        (r#"{"offset": 3}"#, 400),
        (r#"{"all": true, "to_offset": 3}"#, 400),
        (r#"{"partition": 0, "offset": 5, "to_offset": 2}"#, 400),
        (r#"{"partition": 0, "offset": 0, "bogus": 1}"#, 422),
        (r#"{"partition": 0, "offset": 99}"#, 404),
    ] {
        let (st, problem, _) = s.call("POST", "/v1/dlq/docs.dlq/replay", Some(body));
        assert_eq!(st, status, "{body}: {problem}");
        assert!(problem["code"].is_string(), "{body}: {problem}");
    }
    let (st, problem, _) = s.call(
        "POST",
        "/v1/dlq/nothing.dlq/replay",
        Some(r#"{"all": true}"#),
    );
    assert_eq!(st, 404, "{problem}");
    let (st, _, _) = s.call("GET", "/v1/dlq/docs.dlq/partitions/x/records", None);
    assert_eq!(st, 400);
}

#[test]
fn dead_letters_are_purged_below_an_offset_then_all() {
    let s = Server::start(HttpLimits::default());
    s.store
        .broker()
        .create_topic("docs", 2, -1, &[], false)
        .unwrap();
    for offset in 0..3 {
        dead_letter(&s, 1, offset, b"x");
    }
    dead_letter(&s, 0, 9, b"y");

    // to_offset is exclusive: the record at 2 stays.
    let below = s.ok(
        "POST",
        "/v1/dlq/docs.dlq/purge",
        Some(r#"{"partition": 1, "to_offset": 2}"#),
        200,
    );
    assert_eq!(
        below,
        json!({"purged": 2, "partitions": [{"partition": 1, "purged": 2, "log_start_offset": 2}]})
    );
    let page = s.ok(
        "GET",
        "/v1/dlq/docs.dlq/partitions/1/records?offset=0",
        None,
        200,
    );
    let offsets: Vec<_> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["offset"].clone(), r["origin"]["offset"].clone()))
        .collect();
    assert_eq!(offsets, vec![(json!(2), json!(2))]);
    assert_eq!(s.ok("GET", "/v1/dlq", None, 200)["topics"][0]["depth"], 2);
    // Below the start, the topic's own records endpoint is out of range.
    let (st, problem, _) = s.call(
        "GET",
        "/v1/topics/docs.dlq/partitions/1/records?offset=0",
        None,
    );
    assert_eq!((st, &problem["code"]), (416, &json!("offset_out_of_range")));

    let all = s.ok(
        "POST",
        "/v1/dlq/docs.dlq/purge",
        Some(r#"{"all": true}"#),
        200,
    );
    assert_eq!(
        all,
        json!({"purged": 2, "partitions": [
            {"partition": 0, "purged": 1, "log_start_offset": 1},
            {"partition": 1, "purged": 1, "log_start_offset": 3}
        ]})
    );
    let t = &s.ok("GET", "/v1/dlq", None, 200)["topics"][0];
    assert_eq!(
        (&t["depth"], &t["oldest_timestamp_ms"]),
        (&json!(0), &json!(null))
    );
}

#[test]
fn bad_purges_are_refused_with_problems_and_purge_nothing() {
    let s = Server::start(HttpLimits::default());
    s.store
        .broker()
        .create_topic("docs", 2, -1, &[], false)
        .unwrap();
    dead_letter(&s, 0, 1, b"x");
    dead_letter(&s, 0, 2, b"x");
    for (body, status, code) in [
        ("{}", 400, "bad_request"),
        (r#"{"all": false}"#, 400, "bad_request"),
        (r#"{"partition": 0}"#, 400, "bad_request"),
        (r#"{"to_offset": 1}"#, 400, "bad_request"),
        (r#"{"all": true, "partition": 0}"#, 400, "bad_request"),
        (r#"{"all": true, "bogus": 1}"#, 422, "invalid_body"),
        (
            r#"{"partition": 0, "to_offset": 3}"#,
            416,
            "offset_out_of_range",
        ),
        (
            r#"{"partition": 0, "to_offset": -1}"#,
            416,
            "offset_out_of_range",
        ),
        (
            r#"{"partition": 7, "to_offset": 0}"#,
            404,
            "unknown_partition",
        ),
    ] {
        let (st, problem, _) = s.call("POST", "/v1/dlq/docs.dlq/purge", Some(body));
        assert_eq!(
            (st, &problem["code"]),
            (status, &json!(code)),
            "{body}: {problem}"
        );
    }
    // Not a dead-letter topic: an ordinary topic is never purged.
    let (st, problem, _) = s.call("POST", "/v1/dlq/docs/purge", Some(r#"{"all": true}"#));
    assert_eq!(st, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not a dead-letter topic"),
        "{problem}"
    );
    let (st, problem, _) = s.call(
        "POST",
        "/v1/dlq/nothing.dlq/purge",
        Some(r#"{"all": true}"#),
    );
    assert_eq!((st, &problem["code"]), (404, &json!("unknown_topic")));
    assert_eq!(s.ok("GET", "/v1/dlq", None, 200)["topics"][0]["depth"], 2);
}
