//! kafkajs (which never uses flexible versions) against Weir: its admin
//! client and producer (`tests/clients/kafkajs_roundtrip.js`), with the
//! records read back by the Python consumers. kafkajs consumers need
//! consumer groups, which come with the consumer-group issue. Modules come
//! from `WEIR_NODE_MODULES`, set by `scripts/test` after
//! `scripts/install-deps` installed `tests/clients/package.json`.

mod common;

use common::{TestServer, node_modules, python};

fn run(cmd: &mut std::process::Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (installed by scripts/install-deps)"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn round_trip(codec: &str, idempotent: bool) {
    let server = TestServer::start();
    let topic = format!("js-{codec}-{idempotent}");
    let roundtrip_js = common::client_script("kafkajs_roundtrip.js");
    let roundtrip_py = common::client_script("python_roundtrip.py");
    let out = run(
        std::process::Command::new("node")
            .env("NODE_PATH", node_modules())
            .args([
                &roundtrip_js,
                &server.bootstrap(),
                &topic,
                codec,
                &idempotent.to_string(),
                "10000",
            ]),
        "kafkajs",
    );
    assert!(out.contains("kafkajs: produced 10000 records"), "{out}");
    let out = run(
        std::process::Command::new(python()).args([
            &roundtrip_py,
            &server.bootstrap(),
            &topic,
            "none",
            codec,
            "10000",
        ]),
        "python consumers",
    );
    assert!(out.contains("confluent consumer: 10000 records"), "{out}");
    assert!(
        out.contains("kafka-python consumer: 10000 records"),
        "{out}"
    );
    let first = server
        .broker
        .partition(&topic, 0)
        .unwrap()
        .read(0, 1)
        .unwrap();
    let header = weir_log::batch::BatchHeader::parse(&first.bytes).unwrap();
    assert_eq!(header.producer_id >= 0, idempotent);
}

#[test]
fn kafkajs_uncompressed() {
    round_trip("none", false);
}

#[test]
fn kafkajs_gzip_idempotent() {
    round_trip("gzip", true);
}

#[test]
fn kafkajs_snappy() {
    round_trip("snappy", false);
}

#[test]
fn kafkajs_lz4() {
    round_trip("lz4", false);
}
