//! SASL OAUTHBEARER (KIP-255, RFC 7628) on a Kafka listener, on raw
//! sockets and with real clients: a JWT signed with the server's key makes
//! the connection `User:<sub>` for as long as the token is valid (KIP-368:
//! the session ends at the earlier of the token's `exp` and
//! `connections.max.reauth.ms`); expired, forged and wrongly addressed
//! tokens are refused with SASL_AUTHENTICATION_FAILED and RFC 7628's error
//! JSON; a re-authentication takes a new token of the same principal
//! only; librdkafka and kafkajs re-authenticate on open connections with
//! new tokens. The tokens are minted here (HS256, and ES256 with a key
//! made at run time) and handed to the client scripts
//! (`tests/clients/python_oauthbearer.py`, `kafkajs_oauthbearer.js`).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{call, client_script, frame, node_modules, python, recv, run_bounded};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;
use weir_auth::bearer::{JwtConfig, JwtValidator};
use weir_broker::{Broker, BrokerConfig};
use weir_groups::{Coordinator, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_kafka::{SaslConfig, SaslMechanism, ServerConfig};
use weir_log::{DataDir, DirConfig};

const SECRET: &[u8] = b"oauthbearer kafka test secret, 32 bytes at least";
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const INVALID_TOKEN: &[u8] = br#"{"status":"invalid_token"}"#;

/// A Kafka server with SASL on one listener, OAUTHBEARER checked by a
/// validator of `jwt` (none: not offered), stopped when dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(jwt: Option<JwtConfig>, reauth_ms: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let jwt = jwt.map(|c| Arc::new(JwtValidator::new(&c).unwrap()));
        let data = DataDir::open(dir.path(), DirConfig::default()).unwrap();
        let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
        let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap();
        let groups = Arc::new(Coordinator::new(
            common::test_groups_config(),
            Arc::new(MonotonicClock::new()),
            broker.clone(),
            Arc::new(offsets),
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = ServerConfig::new(addr);
        config.sasl = Some(SaslConfig {
            mechanisms: vec![SaslMechanism::OauthBearer, SaslMechanism::Plain],
            reauth_ms,
        });
        let parts = weir_kafka::ServerParts {
            jwt,
            ..weir_kafka::ServerParts::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(weir_kafka::run_with(
                listener,
                broker,
                groups,
                config,
                parts,
                async {
                    let _ = stopped.await;
                },
            ));
        });
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A server key: the HMAC secret written to `dir/hs.key`.
fn hs256_config(dir: &Path) -> JwtConfig {
    let path = dir.join("hs.key");
    std::fs::write(&path, SECRET).unwrap();
    JwtConfig::new(path)
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn hs256(claims: serde_json::Value) -> String {
    hs256_with(claims, SECRET)
}

fn hs256_with(claims: serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn message(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

fn handshake(stream: &mut TcpStream, mechanism: &str) -> SaslHandshakeResponse {
    call(
        stream,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
    )
}

/// Handshake for OAUTHBEARER and one SaslAuthenticate (v2) with `token`.
fn login(stream: &mut TcpStream, token: &str) -> SaslAuthenticateResponse {
    assert_eq!(handshake(stream, "OAUTHBEARER").error_code, 0);
    call(
        stream,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message(token))),
    )
}

/// Whether a Metadata request is answered (else the server closed the
/// connection).
fn served(stream: &mut TcpStream) -> bool {
    let sent = stream.write_all(&frame(ApiKey::Metadata, 12, 9, &MetadataRequest::default()));
    sent.is_ok() && recv(stream).is_some()
}

/// Asserts `r` refused the token with RFC 7628's JSON and a message
/// containing `why`, and that the connection then closes.
fn refused(stream: &mut TcpStream, r: &SaslAuthenticateResponse, why: &str) {
    assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED, "{r:?}");
    assert_eq!(&r.auth_bytes[..], INVALID_TOKEN, "{r:?}");
    let message = r.error_message.as_deref().unwrap_or_default();
    assert!(message.contains("invalid OAUTHBEARER token"), "{message}");
    assert!(message.contains(why), "{message} should say {why}");
    assert!(
        recv(stream).is_none(),
        "the connection closes after a refusal"
    );
}

#[test]
fn a_valid_token_authenticates_its_subject_until_it_expires() {
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(Some(hs256_config(keys.path())), 0);
    let mut c = server.connect();
    let versions = handshake(&mut c, "PLAIN");
    let offered: Vec<&str> = versions.mechanisms.iter().map(|m| &**m).collect();
    assert_eq!(offered, ["OAUTHBEARER", "PLAIN"]);

    // Session lifetime = time to the token's exp (no reauth ms set).
    let exp = now_s() + 20;
    let mut c = server.connect();
    let before = now_ms();
    let r = login(&mut c, &hs256(json!({"sub": "alice", "exp": exp})));
    assert_eq!(r.error_code, 0, "{r:?}");
    assert!(r.auth_bytes.is_empty());
    let to_expiry = exp * 1000 - before;
    assert!(
        r.session_lifetime_ms <= to_expiry && r.session_lifetime_ms > to_expiry - 2_000,
        "session {} ms, token valid {to_expiry} ms",
        r.session_lifetime_ms
    );
    let m: MetadataResponse = call(&mut c, ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(m.brokers.len(), 1, "served as alice");

    // A token about to expire: the session ends with it, and the next
    // request closes the connection (KIP-368).
    let exp = now_s() + 2;
    let mut c = server.connect();
    let r = login(&mut c, &hs256(json!({"sub": "alice", "exp": exp})));
    assert_eq!(r.error_code, 0, "{r:?}");
    assert!(r.session_lifetime_ms <= 2_000, "{r:?}");
    assert!(served(&mut c));
    std::thread::sleep(Duration::from_millis(
        (exp * 1000 - now_ms()).max(0) as u64 + 100,
    ));
    assert!(!served(&mut c), "a request after the token's exp");
}

#[test]
fn connections_max_reauth_ms_bounds_a_longer_token() {
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(Some(hs256_config(keys.path())), 5_000);
    let mut c = server.connect();
    let r = login(
        &mut c,
        &hs256(json!({"sub": "alice", "exp": now_s() + 600})),
    );
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 5_000), "{r:?}");
    // A token that ends sooner than that bounds the session instead.
    let mut c = server.connect();
    let r = login(&mut c, &hs256(json!({"sub": "alice", "exp": now_s() + 3})));
    assert_eq!(r.error_code, 0);
    assert!(r.session_lifetime_ms <= 3_000, "{r:?}");
}

#[test]
fn expired_forged_and_misaddressed_tokens_are_refused() {
    let keys = tempfile::tempdir().unwrap();
    let mut config = hs256_config(keys.path());
    config.audience = Some("weir".into());
    config.issuer = Some("https://issuer.test".into());
    let server = Server::start(Some(config), 0);
    let good = |extra: serde_json::Value| {
        let mut claims = json!({"sub": "alice", "exp": now_s() + 60, "aud": "weir",
            "iss": "https://issuer.test"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let mut c = server.connect();
    assert_eq!(login(&mut c, &hs256(good(json!({})))).error_code, 0);

    // Expired long ago (beyond the validator's clock-skew leeway) and just
    // now (within it: still no session can start on it).
    for exp in [now_s() - 3_600, now_s() - 2] {
        let mut c = server.connect();
        let r = login(&mut c, &hs256(good(json!({"exp": exp}))));
        refused(&mut c, &r, "xpired");
    }
    // Signed with another key; signed with none.
    let mut c = server.connect();
    let other = hs256_with(
        good(json!({})),
        b"another secret of thirty-two bytes or more",
    );
    let r = login(&mut c, &other);
    refused(&mut c, &r, "InvalidSignature");
    let unsigned = {
        let t = hs256(good(json!({})));
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[0] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        format!("{}.{}.", parts[0], parts[1])
    };
    let mut c = server.connect();
    let r = login(&mut c, &unsigned);
    refused(&mut c, &r, "invalid JWT");
    // Another audience, another issuer, no subject.
    for (claims, why) in [
        (good(json!({"aud": "someone-else"})), "InvalidAudience"),
        (good(json!({"iss": "https://evil.test"})), "InvalidIssuer"),
    ] {
        let mut c = server.connect();
        let r = login(&mut c, &hs256(claims));
        refused(&mut c, &r, why);
    }
    let mut claims = good(json!({}));
    claims.as_object_mut().unwrap().remove("sub");
    let mut c = server.connect();
    let r = login(&mut c, &hs256(claims));
    refused(&mut c, &r, "\"sub\"");

    // A malformed message is refused with its reason and no JSON.
    let mut c = server.connect();
    assert_eq!(handshake(&mut c, "OAUTHBEARER").error_code, 0);
    let r: SaslAuthenticateResponse = call(
        &mut c,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"n,,\x01\x01")),
    );
    assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(r.auth_bytes.is_empty());
    let text = r.error_message.as_deref().unwrap_or_default();
    assert!(text.contains("malformed"), "{text}");
    assert!(recv(&mut c).is_none());
}

#[test]
fn reauthentication_takes_a_new_token_of_the_same_principal_only() {
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(Some(hs256_config(keys.path())), 0);
    let mut c = server.connect();
    let first = login(&mut c, &hs256(json!({"sub": "alice", "exp": now_s() + 10})));
    assert_eq!(first.error_code, 0);
    // A new token for alice renews the session with its own lifetime.
    let second = login(
        &mut c,
        &hs256(json!({"sub": "alice", "exp": now_s() + 100})),
    );
    assert_eq!(second.error_code, 0, "{second:?}");
    assert!(
        second.session_lifetime_ms > 90_000,
        "{} ms",
        second.session_lifetime_ms
    );
    assert!(served(&mut c));
    // bob's token on alice's connection: refused, and the connection closes.
    let r = login(&mut c, &hs256(json!({"sub": "bob", "exp": now_s() + 100})));
    assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED);
    let text = r.error_message.as_deref().unwrap_or_default();
    assert!(
        text.contains("Cannot change principals") && text.contains("User:bob"),
        "{text}"
    );
    assert!(recv(&mut c).is_none());

    // Re-authenticating with another mechanism is refused too.
    let mut c = server.connect();
    assert_eq!(
        login(&mut c, &hs256(json!({"sub": "alice", "exp": now_s() + 60}))).error_code,
        0
    );
    assert_eq!(
        handshake(&mut c, "PLAIN").error_code,
        UNSUPPORTED_SASL_MECHANISM
    );
}

#[test]
fn without_a_jwt_key_oauthbearer_is_not_offered() {
    let server = Server::start(None, 0);
    let mut c = server.connect();
    let r = handshake(&mut c, "OAUTHBEARER");
    assert_eq!(r.error_code, UNSUPPORTED_SASL_MECHANISM);
    let offered: Vec<&str> = r.mechanisms.iter().map(|m| &**m).collect();
    assert_eq!(offered, ["PLAIN"]);
    assert!(recv(&mut c).is_none());
}

#[test]
fn es256_tokens_are_checked_with_a_public_key() {
    let keys = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate().unwrap();
    let public = keys.path().join("es256.pub");
    std::fs::write(&public, pair.public_key_pem()).unwrap();
    let server = Server::start(Some(JwtConfig::new(public)), 0);
    let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &json!({"sub": "svc-orders", "exp": now_s() + 60}),
        &signing,
    )
    .unwrap();
    let mut c = server.connect();
    assert_eq!(login(&mut c, &token).error_code, 0);
    assert!(served(&mut c));
    // An HMAC token made with the public key's bytes as the secret: the
    // key's family is EC, so HS256 is refused.
    let pem = pair.public_key_pem();
    let confused = hs256_with(json!({"sub": "x", "exp": now_s() + 60}), pem.as_bytes());
    let mut c = server.connect();
    let r = login(&mut c, &confused);
    refused(&mut c, &r, "InvalidAlgorithm");
}

// Real clients. Each gets tokens minted here on its command line.

fn python_oauth(server: &Server, args: &[&str]) -> String {
    let script = client_script("python_oauthbearer.py");
    let bootstrap = server.addr.to_string();
    run_bounded(
        std::process::Command::new(python())
            .arg(&script)
            .arg(args[0])
            .arg(&bootstrap)
            .args(&args[1..]),
        &format!("python_oauthbearer.py {}", args[0]),
        Duration::from_secs(120),
    )
}

#[test]
fn python_clients_produce_and_consume_with_a_jwt() {
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(Some(hs256_config(keys.path())), 0);
    let token = hs256(json!({"sub": "alice", "exp": now_s() + 300}));
    let expired = hs256(json!({"sub": "alice", "exp": now_s() - 3_600}));
    let forged = hs256_with(
        json!({"sub": "alice", "exp": now_s() + 300}),
        b"not the server's secret, but 32 bytes long",
    );
    let out = python_oauth(&server, &["matrix", &token, &expired, &forged]);
    println!("{out}");
    for client in ["confluent", "kafka-python"] {
        assert!(
            out.contains(&format!("{client} OAUTHBEARER: 20 records")),
            "{client}:\n{out}"
        );
        for what in ["expired", "forged"] {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{client} {what} token refused:")))
                .unwrap_or_else(|| panic!("{client} {what}:\n{out}"));
            assert!(line.contains("invalid OAUTHBEARER token"), "{line}");
        }
    }
}

#[test]
fn librdkafka_reauthenticates_with_refreshed_tokens() {
    let keys = tempfile::tempdir().unwrap();
    // Sessions of 2 s (connections.max.reauth.ms) over tokens of 8-10 s:
    // librdkafka re-authenticates every ~2 s, and the re-authentications
    // after the first token's exp can only pass with the refreshed one.
    let server = Server::start(Some(hs256_config(keys.path())), 2_000);
    // A token every 2 s of "issue time"; the script hands out the one
    // with the longest life of at most 10 s (librdkafka refreshes at 80%
    // of a token's life, on a 1 s timer: shorter tokens expire first).
    let start = now_s();
    let tokens: Vec<String> = (0..8)
        .map(|i| hs256(json!({"sub": "alice", "exp": start + 9 + 2 * i})))
        .collect();
    let out = python_oauth(&server, &["reauth", "10.5", &tokens.join(",")]);
    println!("{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("reauth:"))
        .unwrap_or_else(|| panic!("{out}"));
    let figure = |name: &str| -> usize {
        line.trim_start_matches("reauth: ")
            .split(", ")
            .find_map(|p| p.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    assert_eq!(figure("sent "), figure("consumed "), "{line}");
    assert!(figure("tokens used ") >= 2, "{line}");
    assert!(figure("re-authentications ") >= 4, "{line}");
    assert_eq!(figure("auth errors "), 0, "{line}");
}

#[test]
fn kafkajs_produces_and_consumes_with_a_jwt() {
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(Some(hs256_config(keys.path())), 0);
    let token = hs256(json!({"sub": "alice", "exp": now_s() + 300}));
    let expired = hs256(json!({"sub": "alice", "exp": now_s() - 3_600}));
    let script = client_script("kafkajs_oauthbearer.js");
    let out = run_bounded(
        std::process::Command::new("node")
            .arg(&script)
            .args(["matrix", &server.addr.to_string(), &token, &expired])
            .env("NODE_PATH", node_modules()),
        "kafkajs_oauthbearer.js",
        Duration::from_secs(120),
    );
    println!("{out}");
    assert!(out.contains("kafkajs OAUTHBEARER: 20 records"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("kafkajs expired token refused:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("invalid OAUTHBEARER token"), "{line}");
}

#[test]
fn kafkajs_reauthenticates_with_a_new_token() {
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(Some(hs256_config(keys.path())), 2_000);
    // Distinct tokens of one subject: each re-authentication presents the
    // next.
    let tokens: Vec<String> = (0..50)
        .map(|i| hs256(json!({"sub": "alice", "exp": now_s() + 300, "jti": i.to_string()})))
        .collect();
    let script = client_script("kafkajs_oauthbearer.js");
    let out = run_bounded(
        std::process::Command::new("node")
            .arg(&script)
            .args(["reauth", &server.addr.to_string(), &tokens.join(","), "5"])
            .env("NODE_PATH", node_modules()),
        "kafkajs_oauthbearer.js reauth",
        Duration::from_secs(60),
    );
    println!("{out}");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("kafkajs reauth: "))
        .unwrap_or_else(|| panic!("{out}"));
    let figure = |name: &str| -> usize {
        line.split(", ")
            .find_map(|p| p.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let (tokens, authentications, connections) = (
        figure("tokens handed out "),
        figure("authentications "),
        figure("connections "),
    );
    assert!(figure("sent ") > 0, "{line}");
    // Every token handed out was accepted, most of them on a connection
    // already open: sessions renewed in place with a new token.
    assert_eq!(authentications, tokens, "{line}");
    assert!(authentications >= connections + 2, "{line}");
}
