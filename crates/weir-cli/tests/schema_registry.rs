//! `weir serve`'s schema registry driven by confluent-kafka's
//! `SchemaRegistryClient`, `AvroSerializer` and `AvroDeserializer`
//! (`tests/clients/python_schema_registry.py`): records produced through
//! the Kafka listener with two schema versions registered on the fly,
//! consumed back and deserialized, an incompatible version refused with
//! 409; then, after a restart on the same data directory, the subject's
//! versions and ids are the same over HTTP and a fresh client reads the
//! records again. The same with `JSONSerializer` and `JSONDeserializer`
//! (`tests/clients/python_schema_registry_json.py`): JSON Schema versions
//! with a closed content model, a record breaking the schema refused by
//! the serializer, a property made required refused with 409. And with
//! `ProtobufSerializer` and `ProtobufDeserializer`
//! (`tests/clients/python_schema_registry_protobuf.py`), whose schemas
//! travel as base64-encoded descriptors.

mod common;

use std::process::Command;

use serde_json::Value;

/// Runs client script `script` against the servers with `extra`
/// arguments; its output, once it succeeded.
fn run_client(script: &str, kafka: &str, http: &str, extra: &[&str]) -> String {
    let out = Command::new(common::python())
        .arg(common::client_script(script))
        .args([kafka, &format!("http://{http}")])
        .args(extra)
        .output()
        .expect("the client virtualenv is installed by scripts/install-deps");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {extra:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn run_python(kafka: &str, http: &str, mode: &str) -> String {
    run_client("python_schema_registry.py", kafka, http, &[mode])
}

/// A script's `refused STATUS CODE MESSAGE` line, which it prints for the
/// registry's 409.
fn refusal(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("refused "))
        .unwrap_or_else(|| panic!("no refusal in {out}"))
}

/// A script's `ids V1 V2` line: the schema ids found in the records.
fn record_ids(out: &str) -> Vec<i64> {
    out.lines()
        .find_map(|l| l.strip_prefix("ids "))
        .expect("the records' schema ids")
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect()
}

fn get(http: &str, path: &str) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .arg(format!("http://{http}{path}"))
        .output()
        .expect("curl is installed");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn stop(mut child: std::process::Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn confluent_avro_serializers_work_against_weir_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (child, kafka, http) = common::start_serve_kafka_http(dir.path(), &[]);
    let out = run_python(&kafka, &http, "write");
    assert_eq!(out.matches("ok: ").count(), 3, "{out}");
    let refused = refusal(&out);
    assert!(refused.starts_with("refused 409 409 "), "{refused}");
    assert!(
        refused.contains("'merchant'") && refused.contains("no default"),
        "the message names the breaking change: {refused}"
    );
    let ids = record_ids(&out);
    let (st, v1) = get(&http, "/subjects/payments-value/versions/1");
    assert_eq!(st, 200, "{v1}");
    assert_eq!(v1["id"].as_i64(), Some(ids[0]));
    stop(child);

    let (child, kafka, http) = common::start_serve_kafka_http(dir.path(), &[]);
    let (st, versions) = get(&http, "/subjects/payments-value/versions");
    assert_eq!((st, versions), (200, serde_json::json!([1, 2])));
    for (version, id) in [(1, ids[0]), (2, ids[1])] {
        let (_, v) = get(
            &http,
            &format!("/subjects/payments-value/versions/{version}"),
        );
        assert_eq!(v["id"].as_i64(), Some(id), "{v}");
    }
    let out = run_python(&kafka, &http, "read");
    assert!(out.contains("ok: a fresh client deserialized"), "{out}");
    stop(child);
}

#[test]
fn confluent_json_serializers_work_against_weir_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (child, kafka, http) = common::start_serve_kafka_http(dir.path(), &[]);
    let stdout = run_client("python_schema_registry_json.py", &kafka, &http, &[]);
    assert_eq!(stdout.matches("ok: ").count(), 3, "{stdout}");
    let refused = refusal(&stdout);
    assert!(refused.starts_with("refused 409 409 "), "{refused}");
    assert!(
        refused.contains("'carrier'") && refused.contains("required"),
        "the message names the breaking change: {refused}"
    );
    let ids = record_ids(&stdout);
    for (version, id) in [(1, ids[0]), (2, ids[1])] {
        let (st, v) = get(
            &http,
            &format!("/subjects/shipments-value/versions/{version}"),
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["id"].as_i64(), Some(id), "{v}");
        assert_eq!(v["schemaType"], "JSON", "{v}");
    }
    stop(child);
}

/// Status and Confluent error code of a registration as `token`.
fn register_as(http: &str, token: &str, subject: &str) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
        .args(["-H", &format!("authorization: Bearer {token}")])
        .args(["-H", "content-type: application/vnd.schemaregistry.v1+json"])
        .args(["--data-binary", r#"{"schema": "\"string\""}"#])
        .arg(format!("http://{http}/subjects/{subject}/versions"))
        .output()
        .expect("curl is installed");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    (status.parse().unwrap(), body["error_code"].clone())
}

#[test]
fn weir_acl_grants_schema_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "User:admin admin-token\nUser:alice alice-token\n").unwrap();
    let data = dir.path().join("data");
    let (child, http) = common::start_serve_http(
        &data,
        &[
            "--authorizer",
            "--super-users",
            "User:admin",
            "--http-tokens-file",
            tokens.to_str().unwrap(),
        ],
    );
    assert_eq!(
        register_as(&http, "alice-token", "orders-value"),
        (403, serde_json::json!(40301))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "acl",
            "add",
            "--allow",
            "User:alice",
            "--operation",
            "write",
        ])
        .args(["--schema-subject", "orders-value", "--token", "admin-token"])
        .args(["--server", &http])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        register_as(&http, "alice-token", "orders-value").0,
        200,
        "the ACL applies to the next request"
    );
    assert_eq!(
        register_as(&http, "alice-token", "other-value"),
        (403, serde_json::json!(40301))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["acl", "list", "--resource-type", "SCHEMA_SUBJECT"])
        .args(["--token", "admin-token", "--server", &http])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("orders-value"), "{listed}");
    stop(child);
}

/// confluent-kafka's `ProtobufSerializer` registers its schema as a
/// base64-encoded descriptor and its deserializer asks for it back with
/// `format=serialized`: the registry keeps the `.proto` text (what a
/// plain read shows) and answers the descriptor when asked.
#[test]
fn confluent_protobuf_serializers_work_against_weir_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (child, kafka, http) = common::start_serve_kafka_http(dir.path(), &[]);
    let stdout = run_client("python_schema_registry_protobuf.py", &kafka, &http, &[]);
    assert_eq!(stdout.matches("ok: ").count(), 3, "{stdout}");
    let refused = refusal(&stdout);
    assert!(refused.starts_with("refused 409 409 "), "{refused}");
    assert!(
        refused.contains("grams"),
        "the message names the field: {refused}"
    );
    let (st, v) = get(&http, "/subjects/parcels-value/versions/2");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["schemaType"], "PROTOBUF", "{v}");
    let text = v["schema"].as_str().unwrap();
    assert!(
        text.contains("message Parcel {") && text.contains("string carrier = 3;"),
        "kept as .proto text: {text}"
    );
    stop(child);
}
