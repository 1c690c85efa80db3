//! `weir serve --sasl-mechanisms OAUTHBEARER`: one JWT, checked by the key
//! of `--jwt-key-file`, authenticates a Kafka client (confluent-kafka,
//! `tests/clients/python_oauthbearer.py`) and the HTTP API alike; without
//! a JWT key the server refuses to start.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &str = "weir serve oauthbearer secret, over 32 bytes";

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn token(sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": sub, "exp": now + 300, "aud": "weir"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[test]
fn oauthbearer_without_a_jwt_key_stops_the_server_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--sasl-mechanisms", "SCRAM-SHA-256,OAUTHBEARER"])
        .args(["--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env_remove("WEIR_JWT_KEY_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OAUTHBEARER needs a JWT key") && err.contains("--jwt-key-file"),
        "{err}"
    );
}

#[test]
fn one_jwt_serves_kafka_and_http() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("jwt.key");
    std::fs::write(&key, SECRET).unwrap();
    let (child, kafka, http) = common::start_serve_kafka_http(
        &tmp.path().join("data"),
        &[
            "--sasl-mechanisms",
            "OAUTHBEARER",
            "--jwt-key-file",
            key.to_str().unwrap(),
            "--jwt-audience",
            "weir",
        ],
    );
    let _serve = Killed(child);
    let alice = token("alice");

    // Kafka: confluent-kafka produces and consumes with the token.
    let started = std::time::Instant::now();
    let out = Command::new(common::python())
        .arg(common::client_script("python_oauthbearer.py"))
        .args(["roundtrip", &kafka, &alice])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let topic = stdout
        .lines()
        .find_map(|l| l.strip_prefix("confluent OAUTHBEARER: 20 records on "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .trim()
        .to_owned();

    // HTTP: the same token lists the topic the Kafka client made; none is
    // refused.
    let weir = |token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(["topic", "list", "--server", &http])
            .env_remove("WEIR_TOKEN");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        cmd.output().unwrap()
    };
    let listed = weir(Some(&alice));
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&topic),
        "{topic} in {}",
        String::from_utf8_lossy(&listed.stdout)
    );
    assert_eq!(weir(None).status.code(), Some(6));
}
