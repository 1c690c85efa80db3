//! The HTTP API through a real HTTP client (curl): topics, produce and
//! fetch, stream appends with expected versions and reads with paging, and
//! the problems bad requests get — never a 5xx, never a lost write.

mod common;

use common::Server;
use serde_json::{Value, json};
use weir_http::HttpLimits;

#[test]
fn topics_produce_and_fetch() {
    let s = Server::start(HttpLimits::default());
    assert_eq!(s.call("GET", "/healthz", None).0, 200);
    let (st, topic, _) = s.call(
        "POST",
        "/v1/topics",
        Some(r#"{"name":"orders","partitions":3,"configs":{"retention.ms":"3600000"}}"#),
    );
    assert_eq!(st, 201, "{topic}");
    assert_eq!(topic["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(topic["configs"]["retention.ms"], "3600000");
    let (st, _, _) = s.call("POST", "/v1/topics", Some(r#"{"name":"orders"}"#));
    assert_eq!(st, 409);
    let keyed = weir_broker::partitioner::partition_for_key(b"k1", 3) as i64;
    let other = (keyed + 1) % 3;
    let (st, produced, _) = s.call(
        "POST",
        "/v1/topics/orders/records",
        Some(
            &json!({"records": [
                {"key": "k1", "value": {"n": 1}, "headers": {"h": "v"}},
                {"key": "k1", "value_base64": "AAEC"},
                {"value": "no key", "partition": other}
            ]})
            .to_string(),
        ),
    );
    assert_eq!(st, 200, "{produced}");
    let offsets = produced["offsets"].as_array().unwrap();
    let p = offsets[0]["partition"].as_i64().unwrap();
    assert_eq!(
        p,
        weir_broker::partitioner::partition_for_key(b"k1", 3) as i64
    );
    assert_eq!(offsets[1]["partition"].as_i64().unwrap(), p);
    assert_eq!(
        offsets[1]["offset"].as_i64().unwrap(),
        offsets[0]["offset"].as_i64().unwrap() + 1
    );
    assert_eq!(offsets[2]["partition"], other);
    let (st, read, _) = s.call(
        "GET",
        &format!("/v1/topics/orders/partitions/{p}/records?offset=0&limit=10"),
        None,
    );
    assert_eq!(st, 200);
    let records = read["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["value"], json!({"n": 1}));
    assert_eq!(records[0]["headers"]["h"], "v");
    assert_eq!(records[1]["value_base64"], "AAEC");
    assert_eq!(read["next_offset"], 2);
    let (st, list, _) = s.call("GET", "/v1/topics", None);
    assert_eq!(st, 200);
    assert!(
        list["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "orders")
    );
    assert_eq!(s.call("DELETE", "/v1/topics/orders", None).0, 204);
    let (st, problem, ctype) = s.call("GET", "/v1/topics/orders", None);
    assert_eq!((st, problem["code"].as_str()), (404, Some("unknown_topic")));
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(problem["kafka_error_code"], 3);
}

#[test]
fn streams_append_read_and_conflict() {
    let s = Server::start(HttpLimits::default());
    let append = |expected: &str, id: &str| {
        s.call(
            "POST",
            "/v1/streams/account-1",
            Some(&format!(
                r#"{{"expected_version":{expected},"events":[{{"id":"{id}","type":"Deposited","data":{{"amount":5}},"metadata":{{"by":"ada"}}}}]}}"#
            )),
        )
    };
    let (st, done, _) = append(r#""no_stream""#, "e0");
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["last_version"], 0);
    for v in 0..4 {
        let (st, _, _) = append(&v.to_string(), &format!("e{}", v + 1));
        assert_eq!(st, 200);
    }
    // A retry is idempotent.
    assert_eq!(append("3", "e4").1["last_version"], 4);
    let (st, problem, ctype) = append("1", "late");
    assert_eq!(st, 409);
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(problem["code"], "wrong_expected_version");
    assert_eq!(problem["expected_version"], "1");
    assert_eq!(problem["actual_version"], 4);
    let (st, page, _) = s.call("GET", "/v1/streams/account-1?limit=2", None);
    assert_eq!(st, 200);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["data"], json!({"amount": 5}));
    assert_eq!(events[0]["metadata"], json!({"by": "ada"}));
    assert_eq!(events[0]["type"], "Deposited");
    assert!(events[0]["recorded"].as_str().unwrap().ends_with('Z'));
    let next = page["next"].as_str().unwrap();
    let (_, page2, _) = s.call("GET", next, None);
    assert_eq!(page2["events"][0]["version"], 2);
    let (_, back, _) = s.call(
        "GET",
        "/v1/streams/account-1?direction=backward&limit=1",
        None,
    );
    assert_eq!(back["events"][0]["version"], 4);
    let (_, all, _) = s.call("GET", "/v1/all", None);
    assert_eq!(all["events"].as_array().unwrap().len(), 5);
    let (_, cat, _) = s.call("GET", "/v1/categories/account", None);
    assert_eq!(cat["events"].as_array().unwrap().len(), 5);
    let (_, ty, _) = s.call("GET", "/v1/types/Deposited?from=3", None);
    assert_eq!(ty["events"].as_array().unwrap().len(), 2);
    assert_eq!(s.call("DELETE", "/v1/streams/account-1", None).0, 204);
    let (st, problem, _) = s.call("GET", "/v1/streams/account-1", None);
    assert_eq!(
        (st, problem["code"].as_str()),
        (404, Some("stream_not_found"))
    );
}

#[test]
fn bad_requests_get_4xx_problems_and_write_nothing() {
    let s = Server::start(HttpLimits {
        body_bytes_max: 4096,
        ..HttpLimits::default()
    });
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        (
            "POST",
            "/v1/streams/s-1",
            Some("{not json"),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/streams/s-1",
            Some(r#"{"expected_version":"any","events":[],"extra":1}"#),
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/streams/s-1",
            Some(r#"{"expected_version":"sometimes","events":[{"type":"T","data":1}]}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/streams/s-1",
            Some(r#"{"expected_version":"any","events":[]}"#),
            400,
            "invalid_event",
        ),
        (
            "POST",
            "/v1/streams/$sys",
            Some(r#"{"expected_version":"any","events":[{"type":"T","data":1}]}"#),
            400,
            "invalid_stream",
        ),
        ("GET", "/v1/streams/nope", None, 404, "stream_not_found"),
        (
            "GET",
            "/v1/streams/s-1?limit=lots",
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/streams/s-1?direction=sideways",
            None,
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/topics",
            Some(r#"{"name":"bad name!"}"#),
            400,
            "invalid_topic",
        ),
        (
            "POST",
            "/v1/topics",
            Some(r#"{"name":"t","partitions":100000000}"#),
            400,
            "invalid_partitions",
        ),
        (
            "POST",
            "/v1/topics/none/records",
            Some(r#"{"records":[{"value":1}]}"#),
            404,
            "unknown_topic",
        ),
        (
            "POST",
            "/v1/topics/__weir_events/records",
            Some(r#"{"records":[{"value":1}]}"#),
            400,
            "invalid_topic",
        ),
        (
            "GET",
            "/v1/topics/none/partitions/x/records",
            None,
            400,
            "bad_request",
        ),
        ("GET", "/v1/nothing-here", None, 404, "no_such_route"),
        // Found by schemathesis: an offset outside the log was a 503.
        (
            "GET",
            "/v1/topics/__weir_events/partitions/0/records?offset=-9223372036854775808",
            None,
            416,
            "offset_out_of_range",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (st, problem, _) = s.call(method, path, *body);
        assert_eq!(
            (st, problem["code"].as_str()),
            (*status, Some(*code)),
            "{method} {path}: {problem}"
        );
    }
    let big = format!(
        r#"{{"expected_version":"any","events":[{{"type":"T","data":"{}"}}]}}"#,
        "x".repeat(8192)
    );
    let (st, problem, _) = s.call("POST", "/v1/streams/s-1", Some(&big));
    assert_eq!(
        (st, problem["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let (_, all, _) = s.call("GET", "/v1/all", None);
    assert!(
        all["events"].as_array().unwrap().is_empty(),
        "nothing was written"
    );
}

#[test]
fn the_openapi_document_describes_every_route() {
    let s = Server::start(HttpLimits::default());
    let (st, doc, _) = s.call("GET", "/openapi.json", None);
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/topics",
        "/v1/topics/{topic}/configs",
        "/v1/streams/{stream}",
        "/v1/streams/{stream}/metadata",
        "/v1/streams/{stream}/snapshot",
        "/v1/all",
        "/v1/groups",
        "/v1/groups/{group}",
        "/v1/groups/{group}/offsets/reset",
        "/v1/all/live",
        "/v1/categories/{category}/live",
        "/v1/streams/{stream}/live",
        "/v1/topics/{topic}/partitions/{partition}/live",
        "/healthz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(doc["components"]["schemas"].get("Append").is_some());
    assert!(doc["components"]["schemas"].get("ResetOffsets").is_some());
    // Problems are documented as what the server sends.
    let conflict = &doc["paths"]["/v1/groups/{group}"]["delete"]["responses"]["409"];
    assert!(
        conflict["content"]
            .get("application/problem+json")
            .is_some(),
        "{conflict}"
    );
    let live = &doc["paths"]["/v1/all/live"]["get"]["responses"]["200"];
    assert!(live["content"].get("text/event-stream").is_some(), "{live}");
}

#[test]
fn topic_configs_are_altered_all_or_nothing() {
    let s = Server::start(HttpLimits::default());
    s.ok(
        "POST",
        "/v1/topics",
        Some(r#"{"name":"t","partitions":2}"#),
        201,
    );
    let t = s.ok(
        "PATCH",
        "/v1/topics/t/configs",
        Some(r#"{"set":{"retention.ms":"60000","cleanup.policy":"delete"}}"#),
        200,
    );
    assert_eq!(t["configs"]["retention.ms"], "60000");
    let p = &t["partitions"][1];
    assert_eq!(
        (p["start_offset"].as_i64(), p["end_offset"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(p["durable_offset"], 0);
    // A bad value anywhere changes nothing.
    let (st, problem, _) = s.call(
        "PATCH",
        "/v1/topics/t/configs",
        Some(r#"{"set":{"retention.ms":"120000","segment.bytes":"lots"}}"#),
    );
    assert_eq!((st, &problem["code"]), (400, &json!("invalid_config")));
    // A dry run checks and changes nothing either.
    s.ok(
        "PATCH",
        "/v1/topics/t/configs",
        Some(r#"{"set":{"retention.ms":"1000"},"validate_only":true}"#),
        200,
    );
    let t = s.ok("GET", "/v1/topics/t", None, 200);
    assert_eq!(t["configs"]["retention.ms"], "60000");
    let t = s.ok(
        "PATCH",
        "/v1/topics/t/configs",
        Some(r#"{"reset":["retention.ms"]}"#),
        200,
    );
    assert_eq!(t["configs"]["retention.ms"], "604800000");
    for (body, status, code) in [
        (r#"{}"#, 400, "bad_request"),
        (
            r#"{"set":{"retention.ms":"1"},"reset":["retention.ms"]}"#,
            400,
            "bad_request",
        ),
        (r#"{"set":{"no.such.config":"1"}}"#, 400, "invalid_config"),
        (r#"{"sett":{}}"#, 422, "invalid_body"),
    ] {
        let (st, problem, _) = s.call("PATCH", "/v1/topics/t/configs", Some(body));
        assert_eq!(
            (st, problem["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let (st, problem, _) = s.call(
        "PATCH",
        "/v1/topics/none/configs",
        Some(r#"{"set":{"retention.ms":"1"}}"#),
    );
    assert_eq!((st, &problem["code"]), (404, &json!("unknown_topic")));
    let (st, problem, _) = s.call(
        "PATCH",
        "/v1/topics/__weir_events/configs",
        Some(r#"{"set":{"retention.ms":"1"}}"#),
    );
    assert_eq!((st, &problem["code"]), (403, &json!("policy_violation")));
}

#[test]
fn stream_metadata_and_snapshots_round_trip() {
    let s = Server::start(HttpLimits::default());
    let events: Vec<_> = (0..6)
        .map(|i| json!({"id": format!("e{i}"), "type": "Added", "data": {"n": i}}))
        .collect();
    s.ok(
        "POST",
        "/v1/streams/cart-1",
        Some(&json!({"expected_version": "no_stream", "events": events}).to_string()),
        200,
    );
    assert_eq!(
        s.ok("GET", "/v1/streams/cart-1/metadata", None, 200),
        json!({"max_age_ms": null, "max_count": null, "truncate_before": null})
    );
    // Snapshots: none yet, so loading reads every event.
    let loaded = s.ok("GET", "/v1/streams/cart-1/snapshot", None, 200);
    assert_eq!(loaded["snapshot"], Value::Null);
    assert_eq!(loaded["events"].as_array().unwrap().len(), 6);
    s.ok(
        "PUT",
        "/v1/streams/cart-1/snapshot",
        Some(r#"{"version":3,"type":"Cart.v1","data":{"total":6}}"#),
        204,
    );
    let loaded = s.ok("GET", "/v1/streams/cart-1/snapshot", None, 200);
    assert_eq!(loaded["snapshot"]["version"], 3);
    assert_eq!(loaded["snapshot"]["type"], "Cart.v1");
    assert_eq!(loaded["snapshot"]["data"], json!({"total": 6}));
    let versions: Vec<i64> = loaded["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [4, 5]);
    let (st, problem, _) = s.call(
        "PUT",
        "/v1/streams/cart-1/snapshot",
        Some(r#"{"version":9,"type":"Cart.v1","data":{}}"#),
    );
    assert_eq!(
        (st, &problem["code"]),
        (409, &json!("wrong_expected_version"))
    );
    assert_eq!(problem["actual_version"], 5);

    // Metadata: truncate_before hides older versions, max_count all but
    // the newest.
    let set = s.ok(
        "PUT",
        "/v1/streams/cart-1/metadata",
        Some(r#"{"truncate_before":2,"max_count":10}"#),
        200,
    );
    assert_eq!(set["truncate_before"], 2);
    assert_eq!(
        s.ok("GET", "/v1/streams/cart-1/metadata", None, 200),
        json!({"max_age_ms": null, "max_count": 10, "truncate_before": 2})
    );
    let page = s.ok("GET", "/v1/streams/cart-1", None, 200);
    assert_eq!(page["events"][0]["version"], 2);
    assert_eq!(page["events"].as_array().unwrap().len(), 4);
    // Found by schemathesis: a max_age_ms past i64::MAX was taken as a
    // negative age and hid every event; it means "forever".
    s.ok(
        "PUT",
        "/v1/streams/cart-1/metadata",
        Some(r#"{"max_age_ms":18446744073709551615}"#),
        200,
    );
    let page = s.ok("GET", "/v1/streams/cart-1", None, 200);
    assert_eq!(page["events"].as_array().unwrap().len(), 6);
    s.ok(
        "PUT",
        "/v1/streams/cart-1/metadata",
        Some(r#"{"max_count":1}"#),
        200,
    );
    let page = s.ok("GET", "/v1/streams/cart-1", None, 200);
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    for (method, path, body, status, code) in [
        (
            "PUT",
            "/v1/streams/cart-1/metadata",
            r#"{"max_count":0}"#,
            400,
            "invalid_metadata",
        ),
        (
            "PUT",
            "/v1/streams/cart-1/metadata",
            r#"{"max_cnt":3}"#,
            422,
            "invalid_body",
        ),
        (
            "PUT",
            "/v1/streams/$x/metadata",
            r#"{}"#,
            400,
            "invalid_stream",
        ),
        (
            "PUT",
            "/v1/streams/cart-1/snapshot",
            r#"{"version":1}"#,
            422,
            "invalid_body",
        ),
        (
            "PUT",
            "/v1/streams/nope-1/snapshot",
            r#"{"version":0,"type":"T","data":1}"#,
            409,
            "wrong_expected_version",
        ),
    ] {
        let (st, problem, _) = s.call(method, path, Some(body));
        assert_eq!(
            (st, problem["code"].as_str()),
            (status, Some(code)),
            "{path} {body}"
        );
    }

    // Soft delete and tombstone are both exposed: a soft-deleted stream
    // can be written again, a tombstoned one never.
    assert_eq!(s.call("DELETE", "/v1/streams/cart-1", None).0, 204);
    let again = json!({"expected_version": "any", "events": [{"type": "Added", "data": {}}]});
    s.ok("POST", "/v1/streams/cart-1", Some(&again.to_string()), 200);
    assert_eq!(
        s.call("DELETE", "/v1/streams/cart-1?tombstone=true", None)
            .0,
        204
    );
    let (st, problem, _) = s.call("POST", "/v1/streams/cart-1", Some(&again.to_string()));
    assert_eq!((st, &problem["code"]), (410, &json!("stream_deleted")));
    let (st, problem, _) = s.call("GET", "/v1/streams/cart-1/metadata", None);
    assert_eq!((st, &problem["code"]), (410, &json!("stream_deleted")));
}

/// Records of a `message.timestamp.type=LogAppendTime` topic are read back
/// with the broker's append time, whatever time the producer gave them.
#[test]
fn log_append_time_topics_report_the_brokers_time() {
    let s = Server::start(HttpLimits::default());
    let broker = s.store.broker();
    broker
        .create_topic(
            "stamped",
            1,
            -1,
            &[("message.timestamp.type", "LogAppendTime")],
            false,
        )
        .unwrap();
    broker.create_topic("as-sent", 1, -1, &[], false).unwrap();
    let before_ms = weir_log::Clock::now_ms(&weir_log::SystemClock);
    for topic in ["stamped", "as-sent"] {
        let mut batch = weir_log::batch::BatchBuilder::new(1_000);
        batch.push(1_000, Some(b"k"), Some(b"1"), &[]);
        broker.produce(topic, 0, &mut batch.build()).unwrap();
    }
    let read = |topic: &str| {
        s.ok(
            "GET",
            &format!("/v1/topics/{topic}/partitions/0/records?offset=0"),
            None,
            200,
        )["records"][0]["timestamp_ms"]
            .as_i64()
            .unwrap()
    };
    assert!(read("stamped") >= before_ms, "the broker's time");
    assert_eq!(read("as-sent"), 1_000, "the producer's time");
}

#[test]
fn a_compacted_topic_is_created_and_refuses_records_without_a_key() {
    let s = Server::start(HttpLimits::default());
    let (st, topic, _) = s.call(
        "POST",
        "/v1/topics",
        Some(r#"{"name":"profiles","configs":{"cleanup.policy":"compact"}}"#),
    );
    assert_eq!(st, 201, "{topic}");
    assert_eq!(topic["configs"]["cleanup.policy"], "compact");
    let (st, problem, _) = s.call(
        "POST",
        "/v1/topics/profiles/records",
        Some(r#"{"records":[{"value":"no key"}]}"#),
    );
    assert_eq!(
        (st, problem["code"].as_str()),
        (400, Some("key_required")),
        "{problem}"
    );
    assert_eq!(problem["kafka_error_code"], 87, "{problem}");
    let (st, produced, _) = s.call(
        "POST",
        "/v1/topics/profiles/records",
        Some(r#"{"records":[{"key":"k","value":"v"}]}"#),
    );
    assert_eq!(st, 200, "{produced}");
    assert_eq!(produced["offsets"][0]["offset"], 0);
}
