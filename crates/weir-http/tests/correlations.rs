//! `GET /v1/correlations/{id}` through curl: one correlation's events
//! across streams in global order, each with its causation id, paged with
//! `next` under the server's page limit; an unknown id is an empty page;
//! bad ids and bad numbers get 400 problems; the route is in the OpenAPI
//! document.

mod common;

use common::Server;
use serde_json::{Value, json};
use weir_http::HttpLimits;

/// Appends one event with the SDK's metadata shape to `stream`.
fn append(s: &Server, stream: &str, id: &str, ty: &str, correlation: &str, cause: Option<&str>) {
    let mut metadata = json!({"source": "/test", "dataversion": 1, "correlationid": correlation});
    if let Some(c) = cause {
        metadata["causationid"] = json!(c);
    }
    let body = json!({"expected_version": "any", "events": [
        {"id": id, "type": ty, "data": {"n": 1}, "metadata": metadata}
    ]});
    let (st, done, _) = s.call(
        "POST",
        &format!("/v1/streams/{stream}"),
        Some(&body.to_string()),
    );
    assert_eq!(st, 200, "{done}");
}

fn ids(page: &Value) -> Vec<&str> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect()
}

#[test]
fn a_correlation_reads_across_streams_with_causation_ids_and_pages() {
    let limits = HttpLimits {
        page_max: 2,
        ..HttpLimits::default()
    };
    let s = Server::start(limits);
    append(&s, "order-1", "o1", "OrderPlaced", "saga-1", Some("cmd-1"));
    append(&s, "order-2", "o2", "OrderPlaced", "saga-2", None);
    append(&s, "stock-1", "k1", "StockReserved", "saga-1", Some("o1"));
    append(&s, "pay-1", "p1", "PaymentCharged", "saga-1", Some("k1"));
    // No metadata: in no correlation.
    let (st, _, _) = s.call(
        "POST",
        "/v1/streams/plain-1",
        Some(r#"{"expected_version":"any","events":[{"type":"T","data":{}}]}"#),
    );
    assert_eq!(st, 200);

    let (st, first, ctype) = s.call("GET", "/v1/correlations/saga-1", None);
    assert_eq!((st, ctype.as_str()), (200, "application/json"), "{first}");
    assert_eq!(ids(&first), ["o1", "k1"], "the page limit is 2");
    let e = &first["events"][1];
    assert_eq!(e["stream"], "stock-1");
    assert_eq!(e["type"], "StockReserved");
    assert_eq!(e["correlation_id"], "saga-1");
    assert_eq!(e["causation_id"], "o1");
    assert_eq!(e["metadata"]["causationid"], "o1");
    assert_eq!(first["events"][0]["causation_id"], "cmd-1");
    let next = first["next"].as_str().expect("a full page links the next");
    assert_eq!(next, "/v1/correlations/saga-1?from=3&limit=2");
    let (st, rest, _) = s.call("GET", next, None);
    assert_eq!(st, 200);
    assert_eq!(ids(&rest), ["p1"]);
    assert!(rest.get("next").is_none(), "{rest}");

    let (_, page, _) = s.call("GET", "/v1/correlations/saga-1?from=2&limit=1", None);
    assert_eq!(ids(&page), ["k1"]);
    let (_, other, _) = s.call("GET", "/v1/correlations/saga-2", None);
    assert_eq!(ids(&other), ["o2"]);
    assert!(other["events"][0].get("causation_id").is_none());

    // Unknown: an empty page, like an unknown type or category.
    let (st, none, _) = s.call("GET", "/v1/correlations/nobody", None);
    assert_eq!((st, ids(&none).len()), (200, 0), "{none}");
    // An id that needs escaping round-trips through the path.
    append(&s, "order-3", "o3", "OrderPlaced", "a b/c", None);
    let (st, odd, _) = s.call("GET", "/v1/correlations/a%20b%2Fc", None);
    assert_eq!((st, ids(&odd)), (200, vec!["o3"]), "{odd}");
    // Other reads carry the ids too.
    let (_, stream, _) = s.call("GET", "/v1/streams/pay-1", None);
    assert_eq!(stream["events"][0]["causation_id"], "k1");
    assert_eq!(stream["events"][0]["correlation_id"], "saga-1");
}

#[test]
fn bad_ids_and_numbers_get_400_problems() {
    let s = Server::start(HttpLimits::default());
    let long = "x".repeat(257);
    for (path, code) in [
        (format!("/v1/correlations/{long}"), "invalid_correlation_id"),
        ("/v1/correlations/c?from=-1".to_owned(), "bad_request"),
        ("/v1/correlations/c?limit=many".to_owned(), "bad_request"),
    ] {
        let (st, problem, ctype) = s.call("GET", &path, None);
        assert_eq!(st, 400, "{path}: {problem}");
        assert_eq!(ctype, "application/problem+json");
        assert_eq!(problem["code"], code, "{path}");
    }
    let (st, problem, _) = s.call("GET", &format!("/v1/correlations/{long}"), None);
    assert_eq!(st, 400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("1 to 256 bytes"),
        "{problem}"
    );
}

#[test]
fn the_route_is_in_the_openapi_document() {
    let s = Server::start(HttpLimits::default());
    let (_, doc, _) = s.call("GET", "/openapi.json", None);
    let get = &doc["paths"]["/v1/correlations/{correlation_id}"]["get"];
    assert!(get.is_object(), "missing: {}", doc["paths"]);
    let params: Vec<&str> = get["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["correlation_id", "from", "limit"]);
    let event = &doc["components"]["schemas"]["Event"]["properties"];
    assert!(event.get("causation_id").is_some(), "{event}");
    assert!(event.get("correlation_id").is_some(), "{event}");
}
