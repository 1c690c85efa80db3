//! Validation on write over HTTP: a stream category with validation on
//! takes only appends whose events match the schema of subject
//! `<category>-<type>` (422 `schema_validation` naming the event
//! otherwise, nothing written); the setting is listed, shown and turned
//! off; records produced over HTTP to a topic with
//! `confluent.value.schema.validation` on are checked likewise.

mod common;

use base64::Engine as _;
use common::Server;
use serde_json::{Value, json};
use std::sync::Arc;

use weir_auth::bearer::{BearerAuth, StaticTokens};
use weir_auth::{Authorizer, AuthorizerConfig, Principal};
use weir_http::HttpLimits;
use weir_http::auth::Security;

fn server() -> Server {
    Server::start_full(HttpLimits::default(), Security::default(), true)
}

const PLACED: &str = r#"{"type":"object","properties":{"id":{"type":"string"},
  "qty":{"type":"integer","minimum":1}},"required":["id","qty"]}"#;

fn register(s: &Server, subject: &str, schema_type: &str, schema: &str) -> i64 {
    let body = json!({"schemaType": schema_type, "schema": schema}).to_string();
    let (st, out, _) = s.call(
        "POST",
        &format!("/subjects/{subject}/versions"),
        Some(&body),
    );
    assert_eq!(st, 200, "{out}");
    out["id"].as_i64().unwrap()
}

fn append(s: &Server, stream: &str, events: Value) -> (u16, Value) {
    let body = json!({"expected_version": "any", "events": events}).to_string();
    let (st, out, _) = s.call("POST", &format!("/v1/streams/{stream}"), Some(&body));
    (st, out)
}

#[test]
fn appends_to_a_validated_category_must_match_their_schema() {
    let s = server();
    let bad = json!([
        {"type": "Placed", "data": {"id": "o1", "qty": 1}},
        {"id": "second", "type": "Placed", "data": {"id": "o1", "qty": 0}}
    ]);
    // Not validated yet: anything goes.
    assert_eq!(append(&s, "order-1", bad.clone()).0, 200);
    let (st, out, _) = s.call("PUT", "/v1/schema-validation/categories/order", None);
    assert_eq!(
        (st, &out),
        (200, &json!({"category": "order", "enabled": true}))
    );
    let (st, out) = append(
        &s,
        "order-2",
        json!([{"type": "Placed", "data": {"id": "a", "qty": 1}}]),
    );
    assert_eq!(st, 422, "{out}");
    assert_eq!(out["code"], "schema_validation");
    assert!(
        out["detail"]
            .as_str()
            .unwrap()
            .contains("subject 'order-Placed' has no schema"),
        "{out}"
    );
    register(&s, "order-Placed", "JSON", PLACED);
    let (st, out) = append(&s, "order-2", bad);
    assert_eq!(st, 422, "{out}");
    assert_eq!(out["event_index"], 1, "{out}");
    assert_eq!(out["event_id"], "second", "{out}");
    assert!(out["detail"].as_str().unwrap().contains("/qty"), "{out}");
    let (st, out, _) = s.call("GET", "/v1/streams/order-2", None);
    assert!(
        st == 404 || out["events"].as_array().is_some_and(Vec::is_empty),
        "{st} {out}"
    );
    let good = json!([{"type": "Placed", "data": {"id": "o2", "qty": 3}}]);
    assert_eq!(append(&s, "order-2", good).0, 200);
    // Other categories are not checked; the list and the switch.
    assert_eq!(
        append(&s, "invoice-1", json!([{"type": "Placed", "data": {}}])).0,
        200
    );
    let (_, list, _) = s.call("GET", "/v1/schema-validation/categories", None);
    assert_eq!(list, json!({"categories": ["order"]}));
    let (st, _, _) = s.call("DELETE", "/v1/schema-validation/categories/order", None);
    assert_eq!(st, 200);
    let (_, one, _) = s.call("GET", "/v1/schema-validation/categories/order", None);
    assert_eq!(one["enabled"], false);
    assert_eq!(
        append(&s, "order-3", json!([{"type": "Placed", "data": {}}])).0,
        200
    );
    let (st, out, _) = s.call("PUT", "/v1/schema-validation/categories/a-b", None);
    assert_eq!(
        (st, out["code"].as_str()),
        (400, Some("invalid_category")),
        "{out}"
    );
}

#[test]
fn records_produced_over_http_to_a_validated_topic_are_checked() {
    let s = server();
    let create = json!({"name": "payments", "partitions": 1,
        "configs": {"confluent.value.schema.validation": "true"}});
    let (st, out, _) = s.call("POST", "/v1/topics", Some(&create.to_string()));
    assert!(st == 200 || st == 201, "{out}");
    let id = register(
        &s,
        "payments-value",
        "AVRO",
        r#"{"type":"record","name":"P","fields":[{"name":"n","type":"int"}]}"#,
    );
    let mut framed = vec![0];
    framed.extend_from_slice(&(id as i32).to_be_bytes());
    framed.push(4);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&framed);
    let body = json!({"records": [{"value_base64": b64}]}).to_string();
    let (st, out, _) = s.call("POST", "/v1/topics/payments/records", Some(&body));
    assert_eq!(st, 200, "{out}");
    let body = json!({"records": [{"value": {"n": 2}}]}).to_string();
    let (st, out, _) = s.call("POST", "/v1/topics/payments/records", Some(&body));
    assert_eq!(st, 422, "{out}");
    assert_eq!(out["code"], "schema_validation");
    assert_eq!(out["kafka_error_code"], 87, "INVALID_RECORD");
}

#[test]
fn switching_a_category_needs_alter_on_it() {
    let tokens = StaticTokens::parse("User:admin admin-token\nUser:alice alice-token\n").unwrap();
    let security = Security {
        authorizer: Arc::new(Authorizer::in_memory(AuthorizerConfig {
            super_users: vec![Principal::user("admin")],
            ..AuthorizerConfig::default()
        })),
        bearer: Arc::new(BearerAuth {
            tokens: Some(Arc::new(weir_auth::bearer::TokenFile::fixed(tokens))),
            jwt: None,
        }),
    };
    let s = Server::start_full(HttpLimits::default(), security, true);
    let path = "/v1/schema-validation/categories/order";
    let (st, out, _) = s.call_as(Some("alice-token"), "PUT", path, None);
    assert_eq!(st, 403, "{out}");
    let grant = json!({"acls": [{
        "resource_type": "CATEGORY", "name": "order", "principal": "User:alice",
        "operation": "ALTER", "permission": "ALLOW"
    }]});
    s.ok_as("admin-token", "POST", "/v1/acls", &grant.to_string(), 201);
    let (st, out, _) = s.call_as(Some("alice-token"), "PUT", path, None);
    assert_eq!(st, 200, "{out}");
    // The list shows only what alice may describe (ALTER implies it).
    let (st, out, _) = s.call_as(
        Some("alice-token"),
        "GET",
        "/v1/schema-validation/categories",
        None,
    );
    assert_eq!((st, out), (200, json!({"categories": ["order"]})));
}

/// A method a route does not serve is the client's mistake: 405, not a
/// missing authorization rule.
#[test]
fn a_method_a_route_does_not_serve_is_405() {
    let s = server();
    let (st, out, _) = s.call("PATCH", "/v1/schema-validation/categories/order", None);
    assert_eq!(
        (st, out["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{out}"
    );
}
