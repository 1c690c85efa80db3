//! The HTTP API through a real HTTP client (curl): topics, produce and
//! fetch, stream appends with expected versions and reads with paging, and
//! the problems bad requests get — never a 5xx, never a lost write.

mod common;

use common::Server;
use serde_json::json;
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
    for path in ["/v1/topics", "/v1/streams/{stream}", "/v1/all", "/healthz"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(doc["components"]["schemas"].get("Append").is_some());
}
