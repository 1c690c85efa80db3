//! The HTTP API's authentication (static bearer tokens and JWTs) and its
//! authorization by the server's ACLs: 401s with their challenge, one
//! denial per resource type and operation family with the problem's code,
//! lists filtered to what a caller may describe, ACLs managed over
//! `/v1/acls` and applied to the next request without reconnecting.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::Server;
use serde_json::{Value, json};
use weir_auth::bearer::{BearerAuth, JwtConfig, JwtValidator, StaticTokens};
use weir_auth::{Authorizer, AuthorizerConfig, Principal};
use weir_http::HttpLimits;
use weir_http::auth::Security;

const ADMIN: &str = "admin-token";
const ALICE: &str = "alice-token";
const SECRET: &[u8] = b"a shared secret of at least thirty-two bytes";

/// A server with tokens for `User:admin` (a super user) and `User:alice`,
/// JWTs signed with [`SECRET`], and an authorizer with no ACLs.
fn secured() -> (Server, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let key_path = keys.path().join("jwt.key");
    std::fs::write(&key_path, SECRET).unwrap();
    let tokens = StaticTokens::parse(&format!("User:admin {ADMIN}\nUser:alice {ALICE}\n")).unwrap();
    let security = Security {
        authorizer: Arc::new(Authorizer::in_memory(AuthorizerConfig {
            super_users: vec![Principal::user("admin")],
            ..AuthorizerConfig::default()
        })),
        bearer: Arc::new(BearerAuth {
            tokens: Some(Arc::new(weir_auth::bearer::TokenFile::fixed(tokens))),
            jwt: Some(Arc::new(
                JwtValidator::new(&JwtConfig::new(key_path)).unwrap(),
            )),
        }),
    };
    (Server::start_with(HttpLimits::default(), security), keys)
}

fn jwt(sub: &str, exp_offset_s: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "exp": now + exp_offset_s}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// Grants `principal` an ACL through the API, as the super user.
fn grant(s: &Server, principal: &str, resource_type: &str, name: &str, operation: &str) {
    let body = json!({"acls": [{
        "resource_type": resource_type, "name": name, "principal": principal,
        "operation": operation, "permission": "ALLOW"
    }]});
    let (st, out, _) = s.call_as(Some(ADMIN), "POST", "/v1/acls", Some(&body.to_string()));
    assert_eq!(st, 201, "{out}");
}

#[test]
fn tokens_are_required_checked_and_health_stays_open() {
    let (s, _keys) = secured();
    assert_eq!(s.call("GET", "/healthz", None).0, 200);
    assert_eq!(s.call("GET", "/readyz", None).0, 200);

    let (st, problem, ctype) = s.call("GET", "/v1/topics", None);
    assert_eq!(st, 401, "{problem}");
    assert_eq!(problem["code"], "unauthenticated");
    assert!(ctype.starts_with("application/problem+json"), "{ctype}");
    let (st, problem, _) = s.call_as(Some("wrong"), "GET", "/v1/topics", None);
    assert_eq!(st, 401, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("refused"),
        "{problem}"
    );

    // The challenge, as RFC 6750 has it.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            "authorization: Bearer wrong",
        ])
        .arg(format!("{}/v1/topics", s.base))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        head.contains("www-authenticate: bearer realm=\"weir\", error=\"invalid_token\""),
        "{head}"
    );

    assert_eq!(s.call_as(Some(ALICE), "GET", "/v1/topics", None).0, 200);
    assert_eq!(
        s.call_as(Some(&jwt("bob", 300)), "GET", "/v1/topics", None)
            .0,
        200
    );
    let (st, problem, _) = s.call_as(Some(&jwt("bob", -3600)), "GET", "/v1/topics", None);
    assert_eq!(st, 401, "an expired JWT: {problem}");
}

#[test]
fn acl_changes_apply_to_the_next_request() {
    let (s, _keys) = secured();
    s.ok("POST", "/v1/topics", Some(r#"{"name":"orders"}"#), 401);
    let (st, _, _) = s.call_as(
        Some(ADMIN),
        "POST",
        "/v1/topics",
        Some(r#"{"name":"orders"}"#),
    );
    assert_eq!(st, 201);
    let produce = json!({"records": [{"value": "v"}]}).to_string();
    let (st, problem, _) = s.call_as(
        Some(ALICE),
        "POST",
        "/v1/topics/orders/records",
        Some(&produce),
    );
    assert_eq!(st, 403, "{problem}");
    assert_eq!(problem["code"], "topic_authorization_failed");
    assert_eq!(problem["kafka_error_code"], 29);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("User:alice may not WRITE TOPIC \"orders\""),
        "{problem}"
    );

    grant(&s, "User:alice", "TOPIC", "orders", "WRITE");
    let (st, out, _) = s.call_as(
        Some(ALICE),
        "POST",
        "/v1/topics/orders/records",
        Some(&produce),
    );
    assert_eq!(st, 200, "{out}");
    // Write implies describe, not read.
    assert_eq!(
        s.call_as(Some(ALICE), "GET", "/v1/topics/orders", None).0,
        200
    );
    let read = s.call_as(
        Some(ALICE),
        "GET",
        "/v1/topics/orders/partitions/0/records",
        None,
    );
    assert_eq!(read.0, 403, "{}", read.1);

    // A deny wins over the allow.
    let deny = json!({"acls": [{"resource_type": "TOPIC", "name": "ord", "pattern_type": "PREFIXED",
        "principal": "User:alice", "operation": "WRITE", "permission": "DENY"}]});
    s.ok_as(ADMIN, "POST", "/v1/acls", &deny.to_string(), 201);
    let (st, _, _) = s.call_as(
        Some(ALICE),
        "POST",
        "/v1/topics/orders/records",
        Some(&produce),
    );
    assert_eq!(st, 403);
    let removed = s.ok_as(ADMIN, "DELETE", "/v1/acls?permission=DENY", "", 200);
    assert_eq!(removed["deleted"].as_array().unwrap().len(), 1, "{removed}");
    let (st, _, _) = s.call_as(
        Some(ALICE),
        "POST",
        "/v1/topics/orders/records",
        Some(&produce),
    );
    assert_eq!(st, 200);
}

#[test]
fn lists_show_only_what_the_caller_may_describe() {
    let (s, _keys) = secured();
    for name in ["orders", "payments", "audit"] {
        let body = json!({"name": name}).to_string();
        assert_eq!(
            s.call_as(Some(ADMIN), "POST", "/v1/topics", Some(&body)).0,
            201
        );
    }
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .filter(|n| !n.starts_with("__"))
            .collect();
        n.sort();
        n
    };
    let (_, all, _) = s.call_as(Some(ADMIN), "GET", "/v1/topics", None);
    assert_eq!(names(&all), ["audit", "orders", "payments"]);
    let (_, none, _) = s.call_as(Some(ALICE), "GET", "/v1/topics", None);
    assert!(names(&none).is_empty(), "{none}");
    grant(&s, "User:alice", "TOPIC", "orders", "READ");
    grant(&s, "User:*", "TOPIC", "pay", "DESCRIBE");
    let (_, some, _) = s.call_as(Some(ALICE), "GET", "/v1/topics", None);
    assert_eq!(
        names(&some),
        ["orders"],
        "the prefix pay is literal: {some}"
    );
    s.ok_as(ADMIN, "DELETE", "/v1/acls?principal=User:*", "", 200);
    let body = json!({"acls": [{"resource_type": "TOPIC", "name": "pay", "pattern_type": "PREFIXED",
        "principal": "User:*", "operation": "DESCRIBE", "permission": "ALLOW"}]});
    s.ok_as(ADMIN, "POST", "/v1/acls", &body.to_string(), 201);
    let (_, some, _) = s.call_as(Some(ALICE), "GET", "/v1/topics", None);
    assert_eq!(names(&some), ["orders", "payments"]);
    // Creating a topic needs Create on the cluster or on the topic.
    let (st, problem, _) = s.call_as(Some(ALICE), "POST", "/v1/topics", Some(r#"{"name":"new"}"#));
    assert_eq!(st, 403, "{problem}");
    grant(&s, "User:alice", "TOPIC", "new", "CREATE");
    assert_eq!(
        s.call_as(Some(ALICE), "POST", "/v1/topics", Some(r#"{"name":"new"}"#))
            .0,
        201
    );
}

/// One request per resource type and operation family, refused for a
/// principal with no ACLs, with the problem code naming the resource
/// type; then allowed (not 401 or 403) once the one ACL named is granted.
#[test]
fn each_resource_type_and_operation_family_is_guarded() {
    let (s, _keys) = secured();
    let empty = "{}";
    let cases: &[(&str, &str, &str, &str, &str, &str)] = &[
        // method, path, code, then the ACL that lets it through: type, name, operation
        (
            "GET",
            "/v1/topics/t1",
            "topic_authorization_failed",
            "TOPIC",
            "t1",
            "DESCRIBE",
        ),
        (
            "GET",
            "/v1/topics/t1/partitions/0/records",
            "topic_authorization_failed",
            "TOPIC",
            "t1",
            "READ",
        ),
        (
            "POST",
            "/v1/topics/t1/records",
            "topic_authorization_failed",
            "TOPIC",
            "t1",
            "WRITE",
        ),
        (
            "PATCH",
            "/v1/topics/t1/configs",
            "topic_authorization_failed",
            "TOPIC",
            "t1",
            "ALTER_CONFIGS",
        ),
        (
            "DELETE",
            "/v1/topics/t1",
            "topic_authorization_failed",
            "TOPIC",
            "t1",
            "DELETE",
        ),
        (
            "GET",
            "/v1/groups/g1",
            "group_authorization_failed",
            "GROUP",
            "g1",
            "DESCRIBE",
        ),
        (
            "POST",
            "/v1/groups/g1/offsets/reset",
            "group_authorization_failed",
            "GROUP",
            "g1",
            "READ",
        ),
        (
            "DELETE",
            "/v1/groups/g1",
            "group_authorization_failed",
            "GROUP",
            "g1",
            "DELETE",
        ),
        (
            "GET",
            "/v1/streams/s-1",
            "stream_authorization_failed",
            "STREAM",
            "s-1",
            "READ",
        ),
        (
            "POST",
            "/v1/streams/s-1",
            "stream_authorization_failed",
            "STREAM",
            "s-1",
            "WRITE",
        ),
        (
            "GET",
            "/v1/streams/s-1/metadata",
            "stream_authorization_failed",
            "STREAM",
            "s-1",
            "DESCRIBE",
        ),
        (
            "PUT",
            "/v1/streams/s-1/metadata",
            "stream_authorization_failed",
            "STREAM",
            "s-1",
            "ALTER",
        ),
        (
            "DELETE",
            "/v1/streams/s-1",
            "stream_authorization_failed",
            "STREAM",
            "s-1",
            "DELETE",
        ),
        (
            "GET",
            "/v1/all",
            "stream_authorization_failed",
            "STREAM",
            "$all",
            "READ",
        ),
        (
            "GET",
            "/v1/categories/s",
            "category_authorization_failed",
            "CATEGORY",
            "s",
            "READ",
        ),
        (
            "GET",
            "/v1/dlq/t1/partitions/0/records",
            "dead_letter_topic_authorization_failed",
            "DEAD_LETTER_TOPIC",
            "t1",
            "READ",
        ),
        (
            "POST",
            "/v1/dlq/t1/purge",
            "dead_letter_topic_authorization_failed",
            "DEAD_LETTER_TOPIC",
            "t1",
            "DELETE",
        ),
        (
            "GET",
            "/v1/sagas/o-1",
            "saga_authorization_failed",
            "SAGA",
            "o-1",
            "DESCRIBE",
        ),
        (
            "POST",
            "/v1/sagas/o-1/resume",
            "saga_authorization_failed",
            "SAGA",
            "o-1",
            "ALTER",
        ),
        (
            "GET",
            "/v1/queues/g1/pending",
            "group_authorization_failed",
            "GROUP",
            "g1",
            "DESCRIBE",
        ),
        (
            "GET",
            "/v1/alerts",
            "cluster_authorization_failed",
            "CLUSTER",
            "kafka-cluster",
            "DESCRIBE",
        ),
        (
            "GET",
            "/v1/acls",
            "cluster_authorization_failed",
            "CLUSTER",
            "kafka-cluster",
            "DESCRIBE",
        ),
        (
            "POST",
            "/v1/acls",
            "cluster_authorization_failed",
            "CLUSTER",
            "kafka-cluster",
            "ALTER",
        ),
    ];
    for &(method, path, code, ..) in cases {
        let (st, problem, _) = s.call_as(Some(ALICE), method, path, Some(empty));
        assert_eq!(st, 403, "{method} {path}: {problem}");
        assert_eq!(problem["code"], code, "{method} {path}: {problem}");
    }
    for &(method, path, _, rtype, name, op) in cases {
        grant(&s, "User:alice", rtype, name, op);
        let (st, out, _) = s.call_as(Some(ALICE), method, path, Some(empty));
        assert!(
            st != 401 && st != 403,
            "{method} {path} after {op} on {rtype} {name}: {st} {out}"
        );
    }
}

#[test]
fn acl_requests_with_bad_input_are_refused_and_store_nothing() {
    let (s, _keys) = secured();
    let bad = [
        json!({"acls": [{"resource_type": "TABLE", "name": "t", "principal": "User:a", "operation": "READ", "permission": "ALLOW"}]}),
        json!({"acls": [{"resource_type": "TOPIC", "name": "t", "pattern_type": "MATCH", "principal": "User:a", "operation": "READ", "permission": "ALLOW"}]}),
        json!({"acls": [{"resource_type": "TOPIC", "name": "t", "principal": "alice", "operation": "READ", "permission": "ALLOW"}]}),
        json!({"acls": [{"resource_type": "CLUSTER", "name": "c1", "principal": "User:a", "operation": "ALTER", "permission": "ALLOW"}]}),
    ];
    for body in bad {
        let (st, problem, _) = s.call_as(Some(ADMIN), "POST", "/v1/acls", Some(&body.to_string()));
        assert_eq!(st, 400, "{body}: {problem}");
    }
    let listed = s.ok_as(ADMIN, "GET", "/v1/acls", "", 200);
    assert_eq!(listed["acls"], json!([]));
    let (st, problem, _) = s.call_as(Some(ADMIN), "GET", "/v1/acls?colour=red", None);
    assert_eq!(st, 400, "{problem}");
    let (st, problem, _) = s.call_as(Some(ADMIN), "DELETE", "/v1/acls", None);
    assert_eq!(st, 400, "a bare delete selects everything: {problem}");
    grant(&s, "User:alice", "TOPIC", "t", "READ");
    let gone = s.ok_as(ADMIN, "DELETE", "/v1/acls?all=true", "", 200);
    assert_eq!(gone["deleted"].as_array().unwrap().len(), 1);
}

#[test]
fn without_an_authorizer_acl_calls_say_security_is_disabled() {
    let s = Server::start(HttpLimits::default());
    let (st, problem, _) = s.call("GET", "/v1/acls", None);
    assert_eq!(st, 400, "{problem}");
    assert_eq!(problem["code"], "security_disabled");
    assert_eq!(problem["kafka_error_code"], 54);
    // And everything else is open, as before.
    assert_eq!(s.call("POST", "/v1/topics", Some(r#"{"name":"t"}"#)).0, 201);
}
