//! The schema registry's routes in `/openapi.json`: every route and
//! method the registry serves is there under the tag `schemas`, with
//! Confluent's media type on its requests and answers, and its bodies'
//! components; and what the registry answers has the documented shape
//! (a registration, a version read, a refusal).

mod common;

use common::Server;
use serde_json::{Value, json};
use weir_http::HttpLimits;
use weir_http::auth::Security;

const MEDIA: &str = "application/vnd.schemaregistry.v1+json";

/// Every route of `schema_registry::routes` with its methods.
const ROUTES: [(&str, &[&str]); 19] = [
    ("/subjects", &["get"]),
    ("/subjects/{subject}", &["post", "delete"]),
    ("/subjects/{subject}/versions", &["get", "post"]),
    ("/subjects/{subject}/versions/{version}", &["get", "delete"]),
    ("/subjects/{subject}/versions/{version}/schema", &["get"]),
    (
        "/subjects/{subject}/versions/{version}/referencedby",
        &["get"],
    ),
    ("/schemas", &["get"]),
    ("/schemas/types", &["get"]),
    ("/schemas/ids/{id}", &["get"]),
    ("/schemas/ids/{id}/schema", &["get"]),
    ("/schemas/ids/{id}/subjects", &["get"]),
    ("/schemas/ids/{id}/versions", &["get"]),
    ("/config", &["get", "put", "delete"]),
    ("/config/{subject}", &["get", "put", "delete"]),
    ("/mode", &["get", "put", "delete"]),
    ("/mode/{subject}", &["get", "put", "delete"]),
    ("/compatibility/subjects/{subject}/versions", &["post"]),
    (
        "/compatibility/subjects/{subject}/versions/{version}",
        &["post"],
    ),
    // Beside them, the API's own routes are still documented.
    ("/v1/topics", &["get", "post"]),
];

#[test]
fn every_registry_route_is_documented_with_the_registry_media_type() {
    let s = Server::start(HttpLimits::default());
    let doc = s.ok("GET", "/openapi.json", None, 200);
    for (path, methods) in ROUTES {
        for method in methods {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} missing");
            if path.starts_with("/v1") {
                continue;
            }
            assert_eq!(op["tags"], json!(["schemas"]), "{method} {path}");
            let ok = &op["responses"]["200"]["content"];
            assert!(ok.get(MEDIA).is_some(), "{method} {path}: {ok}");
            let refused = &op["responses"]["4XX"]["content"][MEDIA]["schema"]["$ref"];
            assert_eq!(refused, "#/components/schemas/ErrorBody", "{method} {path}");
            if let Some(body) = op.get("requestBody") {
                assert!(
                    body["content"].get(MEDIA).is_some(),
                    "{method} {path}: {body}"
                );
            }
        }
    }
    for schema in [
        "SchemaRequest",
        "Registered",
        "VersionAnswer",
        "SchemaAnswer",
        "CompatibilityAnswer",
        "LevelAnswer",
        "ModeAnswer",
        "ErrorBody",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing"
        );
    }
}

/// The properties `component` documents as required, and those it
/// documents at all.
fn properties(doc: &Value, component: &str) -> (Vec<String>, Vec<String>) {
    let c = &doc["components"]["schemas"][component];
    let mut all: Vec<String> = Vec::new();
    let mut required: Vec<String> = Vec::new();
    // A flattened struct is documented as allOf its parts.
    let parts: Vec<&Value> = match c["allOf"].as_array() {
        Some(parts) => parts
            .iter()
            .map(|p| match p["$ref"].as_str() {
                Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
                None => p,
            })
            .collect(),
        None => vec![c],
    };
    for part in parts {
        all.extend(part["properties"].as_object().unwrap().keys().cloned());
        required.extend(
            part["required"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r.as_str().unwrap().to_owned()),
        );
    }
    (required, all)
}

/// `answer`'s keys are documented and include every required one.
fn conforms(doc: &Value, component: &str, answer: &Value) {
    let (required, all) = properties(doc, component);
    let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
    for k in &keys {
        assert!(
            all.contains(k),
            "{component} does not document {k}: {answer}"
        );
    }
    for r in &required {
        assert!(
            answer.get(r).is_some(),
            "{component} requires {r}: {answer}"
        );
    }
}

#[test]
fn answers_have_the_documented_shape() {
    let s = Server::start_full(HttpLimits::default(), Security::default(), true);
    let doc = s.ok("GET", "/openapi.json", None, 200);
    let body = json!({"schema": "{\"type\":\"object\"}", "schemaType": "JSON"}).to_string();
    let registered = s.ok("POST", "/subjects/a-value/versions", Some(&body), 200);
    conforms(&doc, "Registered", &registered);
    let version = s.ok("GET", "/subjects/a-value/versions/latest", None, 200);
    conforms(&doc, "VersionAnswer", &version);
    assert_eq!(version["schemaType"], "JSON");
    let by_id = s.ok(
        "GET",
        &format!("/schemas/ids/{}", registered["id"]),
        None,
        200,
    );
    conforms(&doc, "SchemaAnswer", &by_id);
    let (status, refusal, _) = s.call("GET", "/subjects/nobody/versions", None);
    assert_eq!(status, 404);
    conforms(&doc, "ErrorBody", &refusal);
    let test = s.ok(
        "POST",
        "/compatibility/subjects/a-value/versions/1?verbose=true",
        Some(&body),
        200,
    );
    conforms(&doc, "CompatibilityAnswer", &test);
    let level = s.ok("GET", "/config", None, 200);
    conforms(&doc, "LevelAnswer", &level);
}
