//! The Confluent Schema Registry API served at the HTTP listener's root,
//! through curl: registration, lookup, versions and ids; soft then
//! permanent deletes; compatibility levels and modes per subject and
//! global; the compatibility test endpoint; an incompatible schema
//! refused with 409 naming the breaking change; Confluent's error bodies
//! and codes for bad input; and the ACLs on subjects.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::Server;
use serde_json::{Value, json};
use weir_auth::bearer::{BearerAuth, StaticTokens};
use weir_auth::{Authorizer, AuthorizerConfig, Principal};
use weir_http::HttpLimits;
use weir_http::auth::Security;

const MEDIA: &str = "application/vnd.schemaregistry.v1+json";

fn server() -> Server {
    Server::start_full(HttpLimits::default(), Security::default(), true)
}

/// An Avro record `name` with int fields `fields` (each with a default
/// when `defaults`).
fn avro(name: &str, fields: &[&str], defaults: bool) -> String {
    let fields: Vec<Value> = fields
        .iter()
        .map(|f| {
            if defaults {
                json!({"name": f, "type": "int", "default": 0})
            } else {
                json!({"name": f, "type": "int"})
            }
        })
        .collect();
    json!({"type": "record", "name": name, "fields": fields}).to_string()
}

fn schema_body(schema: &str) -> String {
    json!({ "schema": schema }).to_string()
}

/// Asserts a Confluent error body with `code` and HTTP `status`.
fn refused(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<&str>,
    status: u16,
    code: u64,
) -> String {
    let (st, out, ctype) = s.call(method, path, body);
    assert_eq!(st, status, "{method} {path}: {out}");
    assert_eq!(out["error_code"], code, "{method} {path}: {out}");
    assert_eq!(ctype, MEDIA, "{method} {path}");
    out["message"].as_str().expect("a message").to_owned()
}

#[test]
fn register_lookup_versions_and_ids() {
    let s = server();
    let v1 = avro("Order", &["id"], false);
    let (st, got, ctype) = s.call(
        "POST",
        "/subjects/orders-value/versions",
        Some(&schema_body(&v1)),
    );
    assert_eq!(st, 200, "{got}");
    assert_eq!(ctype, MEDIA);
    let id = got["id"].as_i64().unwrap();
    assert_eq!(got["version"], 1);
    // The same schema again (reformatted): the same id and version.
    let spaced =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&v1).unwrap()).unwrap();
    let again = s.ok(
        "POST",
        "/subjects/orders-value/versions",
        Some(&schema_body(&spaced)),
        200,
    );
    assert_eq!(
        (again["id"].as_i64(), again["version"].as_i64()),
        (Some(id), Some(1))
    );
    // Under another subject: the same global id, that subject's version 1.
    let other = s.ok(
        "POST",
        "/subjects/archive-value/versions",
        Some(&schema_body(&v1)),
        200,
    );
    assert_eq!(other["id"].as_i64(), Some(id));
    let v2 = avro("Order", &["id", "qty"], true);
    let second = s.ok(
        "POST",
        "/subjects/orders-value/versions",
        Some(&schema_body(&v2)),
        200,
    );
    assert_eq!(second["version"], 2);
    let id2 = second["id"].as_i64().unwrap();
    assert_ne!(id2, id);
    // A JSON Schema: its type is named back.
    let js = json!({"type": "object", "properties": {"n": {"type": "integer"}}}).to_string();
    let body = json!({"schema": js, "schemaType": "JSON"}).to_string();
    let jid = s.ok("POST", "/subjects/metrics-value/versions", Some(&body), 200)["id"].clone();

    assert_eq!(
        s.ok("GET", "/subjects", None, 200),
        json!(["archive-value", "metrics-value", "orders-value"])
    );
    assert_eq!(
        s.ok("GET", "/subjects?subjectPrefix=ord", None, 200),
        json!(["orders-value"])
    );
    assert_eq!(
        s.ok("GET", "/subjects/orders-value/versions", None, 200),
        json!([1, 2])
    );
    let latest = s.ok("GET", "/subjects/orders-value/versions/latest", None, 200);
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["id"].as_i64(), Some(id2));
    assert_eq!(latest["subject"], "orders-value");
    assert!(
        latest.get("schemaType").is_none(),
        "AVRO is left out: {latest}"
    );
    assert!(latest.get("references").is_none(), "{latest}");
    assert_eq!(
        s.ok("GET", "/subjects/orders-value/versions/-1", None, 200),
        latest
    );
    let first = s.ok("GET", "/subjects/orders-value/versions/1", None, 200);
    assert_eq!(first["id"].as_i64(), Some(id));
    let text = s.ok("GET", "/subjects/orders-value/versions/1/schema", None, 200);
    assert_eq!(text["name"], "Order", "the schema text itself: {text}");
    let json_version = s.ok("GET", "/subjects/metrics-value/versions/1", None, 200);
    assert_eq!(json_version["schemaType"], "JSON");

    let by_id = s.ok("GET", &format!("/schemas/ids/{id}"), None, 200);
    assert_eq!(
        serde_json::from_str::<Value>(by_id["schema"].as_str().unwrap()).unwrap(),
        serde_json::from_str::<Value>(&v1).unwrap()
    );
    assert!(by_id.get("schemaType").is_none());
    assert_eq!(
        s.ok("GET", &format!("/schemas/ids/{jid}"), None, 200)["schemaType"],
        "JSON"
    );
    assert_eq!(
        s.ok("GET", &format!("/schemas/ids/{id}/schema"), None, 200)["name"],
        "Order"
    );
    assert_eq!(
        s.ok("GET", &format!("/schemas/ids/{id}/subjects"), None, 200),
        json!(["archive-value", "orders-value"])
    );
    assert_eq!(
        s.ok("GET", &format!("/schemas/ids/{id}/versions"), None, 200),
        json!([{"subject": "archive-value", "version": 1}, {"subject": "orders-value", "version": 1}])
    );
    refused(&s, "GET", "/schemas/ids/9999", None, 404, 40403);
    refused(&s, "GET", "/schemas/ids/abc", None, 404, 40403);

    // Lookup: which version of the subject holds a schema.
    let found = s.ok(
        "POST",
        "/subjects/orders-value",
        Some(&schema_body(&v1)),
        200,
    );
    assert_eq!(
        (found["version"].as_i64(), found["id"].as_i64()),
        (Some(1), Some(id))
    );
    assert_eq!(found["subject"], "orders-value");
    let unknown = avro("Order", &["other"], false);
    refused(
        &s,
        "POST",
        "/subjects/orders-value",
        Some(&schema_body(&unknown)),
        404,
        40403,
    );
    refused(
        &s,
        "POST",
        "/subjects/nobody",
        Some(&schema_body(&v1)),
        404,
        40401,
    );

    assert_eq!(
        s.ok("GET", "/schemas/types", None, 200),
        json!(["AVRO", "JSON", "PROTOBUF"])
    );
    let all = s.ok("GET", "/schemas", None, 200);
    assert_eq!(all.as_array().unwrap().len(), 4, "{all}");
    let latest_only = s.ok(
        "GET",
        "/schemas?latestOnly=true&subjectPrefix=orders",
        None,
        200,
    );
    assert_eq!(latest_only.as_array().unwrap().len(), 1);
    assert_eq!(latest_only[0]["version"], 2);
    let page = s.ok("GET", "/schemas?offset=1&limit=2", None, 200);
    assert_eq!(page.as_array().unwrap()[0], all[1]);
    assert_eq!(page.as_array().unwrap().len(), 2);
}

#[test]
fn incompatible_schema_is_refused_with_409_naming_the_change() {
    let s = server();
    let v1 = avro("Pay", &["amount"], false);
    s.ok(
        "POST",
        "/subjects/pay/versions",
        Some(&schema_body(&v1)),
        200,
    );
    // BACKWARD: a new field without a default cannot read old data.
    let v2 = avro("Pay", &["amount", "currency"], false);
    let message = refused(
        &s,
        "POST",
        "/subjects/pay/versions",
        Some(&schema_body(&v2)),
        409,
        409,
    );
    assert!(message.contains("currency"), "names the field: {message}");
    assert!(message.contains("no default"), "says why: {message}");
    // Nothing was registered.
    assert_eq!(s.ok("GET", "/subjects/pay/versions", None, 200), json!([1]));
    // With a default it reads old data.
    let v2 = avro("Pay", &["amount", "currency"], true);
    s.ok(
        "POST",
        "/subjects/pay/versions",
        Some(&schema_body(&v2)),
        200,
    );
}

#[test]
fn compatibility_test_endpoint_answers_with_and_without_messages() {
    let s = server();
    s.ok(
        "POST",
        "/subjects/c/versions",
        Some(&schema_body(&avro("C", &["a"], false))),
        200,
    );
    let breaking = schema_body(&avro("C", &["a", "b"], false));
    let fine = schema_body(&avro("C", &["a", "b"], true));
    let terse = s.ok(
        "POST",
        "/compatibility/subjects/c/versions/latest",
        Some(&breaking),
        200,
    );
    assert_eq!(terse, json!({"is_compatible": false}));
    let verbose = s.ok(
        "POST",
        "/compatibility/subjects/c/versions/1?verbose=true",
        Some(&breaking),
        200,
    );
    assert_eq!(verbose["is_compatible"], false);
    let messages = verbose["messages"].as_array().unwrap();
    assert!(
        messages.iter().any(|m| m.as_str().unwrap().contains("'b'")),
        "{verbose}"
    );
    assert_eq!(
        s.ok(
            "POST",
            "/compatibility/subjects/c/versions?verbose=True",
            Some(&fine),
            200
        ),
        json!({"is_compatible": true, "messages": []})
    );
    refused(
        &s,
        "POST",
        "/compatibility/subjects/c/versions/7",
        Some(&fine),
        404,
        40402,
    );
    refused(
        &s,
        "POST",
        "/compatibility/subjects/c/versions/zero",
        Some(&fine),
        422,
        42202,
    );
    refused(
        &s,
        "POST",
        "/compatibility/subjects/none/versions/1",
        Some(&fine),
        404,
        40401,
    );
    // Against what the level checks, a subject with no versions is fine.
    assert_eq!(
        s.ok(
            "POST",
            "/compatibility/subjects/none/versions",
            Some(&fine),
            200
        )["is_compatible"],
        true
    );
    // NONE checks nothing.
    s.ok("PUT", "/config/c", Some(r#"{"compatibility":"NONE"}"#), 200);
    assert_eq!(
        s.ok(
            "POST",
            "/compatibility/subjects/c/versions",
            Some(&breaking),
            200
        )["is_compatible"],
        true
    );
}

#[test]
fn deletes_are_soft_then_permanent() {
    let s = server();
    let v1 = avro("D", &["a"], false);
    let v2 = avro("D", &["a", "b"], true);
    let id1 = s.ok("POST", "/subjects/d/versions", Some(&schema_body(&v1)), 200)["id"].clone();
    s.ok("POST", "/subjects/d/versions", Some(&schema_body(&v2)), 200);
    // A permanent delete needs the soft one first.
    refused(
        &s,
        "DELETE",
        "/subjects/d/versions/1?permanent=true",
        None,
        404,
        40407,
    );
    assert_eq!(
        s.ok("DELETE", "/subjects/d/versions/1", None, 200),
        json!(1)
    );
    refused(&s, "DELETE", "/subjects/d/versions/1", None, 404, 40406);
    assert_eq!(s.ok("GET", "/subjects/d/versions", None, 200), json!([2]));
    assert_eq!(
        s.ok("GET", "/subjects/d/versions?deleted=true", None, 200),
        json!([1, 2])
    );
    refused(&s, "GET", "/subjects/d/versions/1", None, 404, 40402);
    assert_eq!(
        s.ok("GET", "/subjects/d/versions/1?deleted=true", None, 200)["deleted"],
        true
    );
    // A soft-deleted version's schema stays readable by id (old data).
    s.ok("GET", &format!("/schemas/ids/{id1}"), None, 200);
    assert_eq!(
        s.ok("DELETE", "/subjects/d/versions/1?permanent=true", None, 200),
        json!(1)
    );
    refused(&s, "GET", &format!("/schemas/ids/{id1}"), None, 404, 40403);

    refused(&s, "DELETE", "/subjects/d?permanent=true", None, 404, 40405);
    assert_eq!(s.ok("DELETE", "/subjects/d", None, 200), json!([2]));
    refused(&s, "DELETE", "/subjects/d", None, 404, 40404);
    assert_eq!(s.ok("GET", "/subjects", None, 200), json!([]));
    assert_eq!(
        s.ok("GET", "/subjects?deleted=true", None, 200),
        json!(["d"])
    );
    refused(&s, "GET", "/subjects/d/versions", None, 404, 40401);
    assert_eq!(
        s.ok("DELETE", "/subjects/d?permanent=true", None, 200),
        json!([2])
    );
    assert_eq!(s.ok("GET", "/subjects?deleted=true", None, 200), json!([]));
    refused(&s, "DELETE", "/subjects/never", None, 404, 40401);
    // Registered again: a new version 1... with the old id for the same
    // schema, never another's.
    let again = s.ok("POST", "/subjects/d/versions", Some(&schema_body(&v1)), 200);
    assert_eq!(again["id"], id1);
}

#[test]
fn config_and_mode_per_subject_and_global() {
    let s = server();
    assert_eq!(
        s.ok("GET", "/config", None, 200),
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        s.ok("PUT", "/config", Some(r#"{"compatibility":"FULL"}"#), 200),
        json!({"compatibility": "FULL"})
    );
    assert_eq!(
        s.ok("GET", "/config", None, 200)["compatibilityLevel"],
        "FULL"
    );
    refused(&s, "GET", "/config/x", None, 404, 40408);
    assert_eq!(
        s.ok("GET", "/config/x?defaultToGlobal=true", None, 200)["compatibilityLevel"],
        "FULL"
    );
    s.ok(
        "PUT",
        "/config/x",
        Some(r#"{"compatibility":"forward_transitive"}"#),
        200,
    );
    assert_eq!(
        s.ok("GET", "/config/x", None, 200)["compatibilityLevel"],
        "FORWARD_TRANSITIVE"
    );
    refused(
        &s,
        "PUT",
        "/config/x",
        Some(r#"{"compatibility":"SIDEWAYS"}"#),
        422,
        42203,
    );
    refused(&s, "PUT", "/config/x", Some(r#"{}"#), 422, 42203);
    assert_eq!(
        s.ok("DELETE", "/config/x", None, 200),
        json!({"compatibilityLevel": "FORWARD_TRANSITIVE"})
    );
    refused(&s, "DELETE", "/config/x", None, 404, 40408);
    assert_eq!(
        s.ok("DELETE", "/config", None, 200)["compatibilityLevel"],
        "FULL"
    );
    assert_eq!(
        s.ok("GET", "/config", None, 200)["compatibilityLevel"],
        "BACKWARD"
    );

    assert_eq!(
        s.ok("GET", "/mode", None, 200),
        json!({"mode": "READWRITE"})
    );
    refused(&s, "GET", "/mode/m", None, 404, 40409);
    assert_eq!(
        s.ok("PUT", "/mode/m", Some(r#"{"mode":"READONLY"}"#), 200),
        json!({"mode": "READONLY"})
    );
    assert_eq!(s.ok("GET", "/mode/m", None, 200)["mode"], "READONLY");
    let body = schema_body(&avro("M", &["a"], false));
    refused(&s, "POST", "/subjects/m/versions", Some(&body), 422, 42205);
    refused(
        &s,
        "PUT",
        "/mode/m",
        Some(r#"{"mode":"SOMETIMES"}"#),
        422,
        42204,
    );
    assert_eq!(s.ok("DELETE", "/mode/m", None, 200)["mode"], "READONLY");
    s.ok("POST", "/subjects/m/versions", Some(&body), 200);
    // IMPORT needs an empty subject unless forced; then takes given ids.
    refused(
        &s,
        "PUT",
        "/mode/m",
        Some(r#"{"mode":"IMPORT"}"#),
        422,
        42205,
    );
    s.ok(
        "PUT",
        "/mode/m?force=true",
        Some(r#"{"mode":"IMPORT"}"#),
        200,
    );
    let imported =
        json!({"schema": avro("M", &["a", "z"], false), "id": 500, "version": 7}).to_string();
    assert_eq!(
        s.ok("POST", "/subjects/m/versions", Some(&imported), 200),
        json!({"id": 500, "version": 7})
    );
    // An explicit id outside IMPORT is refused.
    s.ok("DELETE", "/mode/m", None, 200);
    let explicit = json!({"schema": avro("M", &["a", "y"], true), "id": 900}).to_string();
    refused(
        &s,
        "POST",
        "/subjects/m/versions",
        Some(&explicit),
        422,
        42205,
    );
}

#[test]
fn bad_input_gets_confluent_error_bodies() {
    let s = server();
    let msg = refused(
        &s,
        "POST",
        "/subjects/b/versions",
        Some(&schema_body("{\"type\": \"recrd\"}")),
        422,
        42201,
    );
    assert!(msg.contains("Avro"), "{msg}");
    refused(
        &s,
        "POST",
        "/subjects/b/versions",
        Some("{not json"),
        422,
        422,
    );
    refused(&s, "POST", "/subjects/b/versions", Some("{}"), 422, 42201);
    let body = json!({"schema": "{}", "schemaType": "XML"}).to_string();
    refused(&s, "POST", "/subjects/b/versions", Some(&body), 422, 42201);
    refused(&s, "GET", "/subjects/b/versions/0", None, 422, 42202);
    refused(&s, "GET", "/subjects/b/versions/latest", None, 404, 40401);
    s.ok(
        "POST",
        "/subjects/b/versions",
        Some(&schema_body("\"string\"")),
        200,
    );
    refused(&s, "GET", "/subjects/b/versions/5", None, 404, 40402);
    refused(&s, "GET", "/subjects?deleted=maybe", None, 400, 400);
    // An unknown path under the registry's prefixes: Confluent's body.
    refused(&s, "GET", "/subjects/b/nothing-here", None, 404, 404);

    // Media types: Confluent's two and JSON are taken, others refused.
    let curl = |ctype: &str| -> (String, String) {
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
            .args(["-H", &format!("content-type: {ctype}")])
            .args(["--data-binary", &schema_body("\"int\"")])
            .arg(format!("{}/subjects/media/versions", s.base))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };
    for ok in [
        MEDIA,
        "application/vnd.schemaregistry+json",
        "application/json; charset=utf-8",
    ] {
        assert_eq!(curl(ok).0, "200", "{ok}");
    }
    let (status, body) = curl("text/plain");
    assert_eq!(status, "415");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error_code"],
        415
    );
}

const ADMIN: &str = "admin-token";
const ALICE: &str = "alice-token";

fn secured() -> Server {
    let tokens = StaticTokens::parse(&format!("User:admin {ADMIN}\nUser:alice {ALICE}\n")).unwrap();
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
    Server::start_full(HttpLimits::default(), security, true)
}

fn grant(s: &Server, resource_type: &str, name: &str, operation: &str) {
    let body = json!({"acls": [{
        "resource_type": resource_type, "name": name, "principal": "User:alice",
        "operation": operation, "permission": "ALLOW"
    }]});
    s.ok_as(ADMIN, "POST", "/v1/acls", &body.to_string(), 201);
}

/// Status and Confluent error code of a call as alice.
fn as_alice(s: &Server, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (st, out, _) = s.call_as(
        Some(ALICE),
        method,
        path,
        (!body.is_empty()).then_some(body),
    );
    (st, out["error_code"].clone())
}

#[test]
fn subjects_are_guarded_by_schema_subject_acls() {
    let s = secured();
    let v1 = schema_body(&avro("S", &["a"], false));
    for subject in ["orders-value", "secret-value"] {
        s.ok_as(
            ADMIN,
            "POST",
            &format!("/subjects/{subject}/versions"),
            &v1,
            200,
        );
    }
    // No token: Confluent's 40101.
    let (st, out, _) = s.call("GET", "/subjects", None);
    assert_eq!(
        (st, out["error_code"].clone()),
        (401, json!(40101)),
        "{out}"
    );
    // Lists filter; reads, writes, deletes and configs are refused with 40301.
    assert_eq!(s.ok_as(ALICE, "GET", "/subjects", "", 200), json!([]));
    let denied = json!(40301);
    assert_eq!(
        as_alice(&s, "POST", "/subjects/orders-value/versions", &v1),
        (403, denied.clone())
    );
    assert_eq!(
        as_alice(&s, "GET", "/subjects/orders-value/versions/1", ""),
        (403, denied.clone())
    );
    assert_eq!(
        as_alice(&s, "GET", "/schemas/ids/1", ""),
        (403, denied.clone())
    );
    assert_eq!(
        as_alice(&s, "DELETE", "/subjects/orders-value", ""),
        (403, denied.clone())
    );
    assert_eq!(as_alice(&s, "GET", "/config", ""), (403, denied.clone()));
    assert_eq!(
        as_alice(
            &s,
            "PUT",
            "/config/orders-value",
            r#"{"compatibility":"NONE"}"#
        ),
        (403, denied.clone())
    );
    grant(&s, "SCHEMA_SUBJECT", "orders-value", "WRITE");
    let v2 = schema_body(&avro("S", &["a", "b"], true));
    assert_eq!(
        as_alice(&s, "POST", "/subjects/orders-value/versions", &v2).0,
        200
    );
    // Write implies describe (as Kafka's ACLs): listed, but not readable.
    assert_eq!(
        s.ok_as(ALICE, "GET", "/subjects", "", 200),
        json!(["orders-value"])
    );
    assert_eq!(
        as_alice(&s, "GET", "/schemas/ids/1", ""),
        (403, denied.clone())
    );
    grant(&s, "SCHEMA_SUBJECT", "orders-value", "READ");
    assert_eq!(as_alice(&s, "GET", "/schemas/ids/1", "").0, 200);
    assert_eq!(
        s.ok_as(ALICE, "GET", "/schemas/ids/1/subjects", "", 200),
        json!(["orders-value"])
    );
    assert_eq!(
        s.ok_as(ALICE, "GET", "/schemas", "", 200)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        as_alice(&s, "GET", "/subjects/secret-value/versions", ""),
        (403, denied.clone())
    );
    grant(&s, "SCHEMA_SUBJECT", "orders-value", "ALTER_CONFIGS");
    assert_eq!(
        as_alice(
            &s,
            "PUT",
            "/config/orders-value",
            r#"{"compatibility":"NONE"}"#
        )
        .0,
        200
    );
    assert_eq!(
        as_alice(&s, "PUT", "/config", r#"{"compatibility":"NONE"}"#),
        (403, denied)
    );
}

#[test]
fn references_resolve_and_keep_the_referenced_version() {
    let s = server();
    let money = json!({"type": "record", "name": "Money", "namespace": "weir",
        "fields": [{"name": "cents", "type": "long"}]})
    .to_string();
    // A subject name with a slash, percent-encoded in the path.
    let mid = s.ok(
        "POST",
        "/subjects/shared%2Fmoney/versions",
        Some(&schema_body(&money)),
        200,
    )["id"]
        .clone();
    let order = json!({"type": "record", "name": "Order", "namespace": "weir",
        "fields": [{"name": "total", "type": "weir.Money"}]})
    .to_string();
    let refs = json!([{"name": "weir.Money", "subject": "shared/money", "version": 1}]);
    let body = json!({"schema": order, "references": refs}).to_string();
    let oid = s.ok("POST", "/subjects/order/versions", Some(&body), 200)["id"].clone();
    assert_eq!(
        s.ok("GET", "/subjects/order/versions/1", None, 200)["references"],
        refs
    );
    assert_eq!(
        s.ok("GET", &format!("/schemas/ids/{oid}"), None, 200)["references"],
        refs
    );
    assert_eq!(
        s.ok(
            "GET",
            "/subjects/shared%2Fmoney/versions/1/referencedby",
            None,
            200
        ),
        json!([oid])
    );
    assert_eq!(
        s.ok("GET", &format!("/schemas/ids/{mid}/subjects"), None, 200),
        json!(["shared/money"])
    );
    // Without its reference the type does not resolve.
    refused(
        &s,
        "POST",
        "/subjects/other/versions",
        Some(&schema_body(&order)),
        422,
        42201,
    );
    // A referenced version cannot be deleted.
    refused(
        &s,
        "DELETE",
        "/subjects/shared%2Fmoney/versions/1",
        None,
        422,
        42206,
    );
    // The global mode: READONLY refuses every registration.
    s.ok("PUT", "/mode", Some(r#"{"mode":"READONLY"}"#), 200);
    refused(
        &s,
        "POST",
        "/subjects/other/versions",
        Some(&schema_body("\"int\"")),
        422,
        42205,
    );
    assert_eq!(s.ok("DELETE", "/mode", None, 200)["mode"], "READONLY");
    s.ok(
        "POST",
        "/subjects/other/versions",
        Some(&schema_body("\"int\"")),
        200,
    );
}
