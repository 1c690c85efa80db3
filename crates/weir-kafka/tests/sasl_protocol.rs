//! SASL's state machine on raw sockets (KIP-152, KIP-368, KIP-554): what
//! a connection may do before it authenticates, refusals that close it,
//! sessions that expire and are renewed, and users changed over Kafka
//! taking effect for the next login.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::{TestServer, call, connect, frame, recv};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    ApiVersionsRequest, ApiVersionsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse, MetadataRequest, MetadataResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use weir_kafka::{SaslConfig, SaslMechanism};

/// A user's mechanisms and iterations as KIP-554 describes them.
type Infos = Vec<(i8, i32)>;

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

fn server(reauth_ms: u64) -> TestServer {
    TestServer::start_sasl(
        SaslConfig {
            mechanisms: vec![
                SaslMechanism::Plain,
                SaslMechanism::from_name("SCRAM-SHA-256").unwrap(),
            ],
            reauth_ms,
        },
        &[("alice", "alice-secret"), ("bob", "bob-secret")],
    )
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn handshake(stream: &mut TcpStream, mechanism: &str) -> SaslHandshakeResponse {
    call(
        stream,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(s(mechanism)),
    )
}

fn authenticate(stream: &mut TcpStream, version: i16, token: &[u8]) -> SaslAuthenticateResponse {
    call(
        stream,
        ApiKey::SaslAuthenticate,
        version,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
}

fn plain(stream: &mut TcpStream, user: &str, password: &str) -> SaslAuthenticateResponse {
    assert_eq!(handshake(stream, "PLAIN").error_code, 0);
    authenticate(stream, 2, format!("\0{user}\0{password}").as_bytes())
}

fn metadata(stream: &mut TcpStream) -> MetadataResponse {
    call(stream, ApiKey::Metadata, 12, &MetadataRequest::default())
}

/// Sends a Metadata request and reports whether the server closed the
/// connection instead of answering.
fn closes_on_metadata(stream: &mut TcpStream) -> bool {
    let sent = stream.write_all(&frame(ApiKey::Metadata, 12, 9, &MetadataRequest::default()));
    sent.is_err() || recv(stream).is_none()
}

#[test]
fn only_the_sasl_apis_are_served_before_authentication() {
    let server = server(0);
    let mut c = connect(&server);
    let versions: ApiVersionsResponse = call(
        &mut c,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    let handshake_versions = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::SaslHandshake as i16)
        .expect("SaslHandshake is listed");
    assert_eq!(
        (
            handshake_versions.min_version,
            handshake_versions.max_version
        ),
        (0, 1)
    );
    assert!(closes_on_metadata(&mut c), "Metadata before authentication");

    // Handshake done but not yet authenticated: still closed.
    let mut c = connect(&server);
    assert_eq!(handshake(&mut c, "PLAIN").error_code, 0);
    assert!(closes_on_metadata(&mut c));

    // SaslHandshake v0 (unframed tokens after it) is refused.
    let mut c = connect(&server);
    let r: SaslHandshakeResponse = call(
        &mut c,
        ApiKey::SaslHandshake,
        0,
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
    );
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(recv(&mut c).is_none());

    // SaslAuthenticate with no handshake: ILLEGAL_SASL_STATE, then closed.
    let mut c = connect(&server);
    let r = authenticate(&mut c, 1, b"\0alice\0alice-secret");
    assert_eq!(r.error_code, ILLEGAL_SASL_STATE);
    assert!(recv(&mut c).is_none());
}

#[test]
fn unsupported_mechanisms_get_the_enabled_list_and_close() {
    let server = server(0);
    for asked in ["GSSAPI", "SCRAM-SHA-512", "plain"] {
        let mut c = connect(&server);
        let r = handshake(&mut c, asked);
        assert_eq!(r.error_code, UNSUPPORTED_SASL_MECHANISM, "{asked}");
        let listed: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
        assert_eq!(listed, ["PLAIN", "SCRAM-SHA-256"]);
        assert!(recv(&mut c).is_none(), "{asked}: closed after the answer");
    }
}

#[test]
fn plain_login_serves_requests_and_a_bad_one_closes() {
    let server = server(0);
    let mut c = connect(&server);
    let r = plain(&mut c, "alice", "alice-secret");
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 0), "{r:?}");
    assert_eq!(metadata(&mut c).brokers.len(), 1);

    for (user, password) in [("alice", "wrong"), ("nobody", "alice-secret")] {
        let mut c = connect(&server);
        let r = plain(&mut c, user, password);
        assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED);
        let message = r.error_message.unwrap().to_string();
        assert!(message.contains("invalid credentials"), "{message}");
        assert!(
            !message.contains(user),
            "the message names no user: {message}"
        );
        assert!(recv(&mut c).is_none(), "closed after a failed login");
    }
}

#[test]
fn malformed_scram_and_nonce_mismatch_fail() {
    let server = server(0);
    let mut c = connect(&server);
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256").error_code, 0);
    let r = authenticate(&mut c, 2, b"garbage without fields");
    assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(r.error_message.unwrap().contains("malformed"));
    assert!(recv(&mut c).is_none());

    let mut c = connect(&server);
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256").error_code, 0);
    let first = authenticate(&mut c, 2, b"n,,n=alice,r=clientnonce");
    assert_eq!(first.error_code, 0);
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    assert!(server_first.starts_with("r=clientnonce"), "{server_first}");
    assert!(server_first.contains(",i=4096"), "{server_first}");
    // A nonce the server never gave.
    let r = authenticate(&mut c, 2, b"c=biws,r=clientnonceXYZ,p=AAAA");
    assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(recv(&mut c).is_none());
}

#[test]
fn sessions_expire_and_renew() {
    let server = server(600);
    // Expired: the next request closes the connection.
    let mut c = connect(&server);
    let r = plain(&mut c, "alice", "alice-secret");
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 600));
    assert_eq!(metadata(&mut c).brokers.len(), 1);
    // v0 of SaslAuthenticate has no lifetime field; the session still ends.
    let mut old = connect(&server);
    assert_eq!(handshake(&mut old, "PLAIN").error_code, 0);
    assert_eq!(
        authenticate(&mut old, 0, b"\0alice\0alice-secret").error_code,
        0
    );
    std::thread::sleep(Duration::from_millis(700));
    assert!(closes_on_metadata(&mut c), "expired session");
    assert!(closes_on_metadata(&mut old), "expired v0 session");

    // Renewed in time: works past the first lifetime, three times over.
    let mut c = connect(&server);
    assert_eq!(plain(&mut c, "alice", "alice-secret").error_code, 0);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        let r = plain(&mut c, "alice", "alice-secret");
        assert_eq!((r.error_code, r.session_lifetime_ms), (0, 600));
        assert_eq!(metadata(&mut c).brokers.len(), 1);
    }

    // A re-authentication may not change the principal or the mechanism.
    let mut c = connect(&server);
    assert_eq!(plain(&mut c, "alice", "alice-secret").error_code, 0);
    let r = plain(&mut c, "bob", "bob-secret");
    assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(
        r.error_message
            .unwrap()
            .contains("Cannot change principals")
    );
    assert!(recv(&mut c).is_none());
    let mut c = connect(&server);
    assert_eq!(plain(&mut c, "alice", "alice-secret").error_code, 0);
    assert_eq!(
        handshake(&mut c, "SCRAM-SHA-256").error_code,
        UNSUPPORTED_SASL_MECHANISM
    );
    assert!(recv(&mut c).is_none());
}

#[test]
fn users_managed_over_kafka_take_effect_at_once() {
    let server = server(0);
    let mut c = connect(&server);
    assert_eq!(plain(&mut c, "alice", "alice-secret").error_code, 0);

    let all: DescribeUserScramCredentialsResponse = call(
        &mut c,
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default(),
    );
    let users: Vec<(String, Infos)> = all
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.credential_infos
                    .iter()
                    .map(|i| (i.mechanism, i.iterations))
                    .collect(),
            )
        })
        .collect();
    let both = vec![(1, 4096), (2, 4096)];
    assert_eq!(
        users,
        [("alice".to_owned(), both.clone()), ("bob".to_owned(), both)]
    );

    // carol as a client adds her: the salted password, never the password.
    let salt = b"carol's salt".to_vec();
    let salted = weir_auth::ScramMechanism::Sha256.salted_password(b"carol-pw", &salt, 8192);
    let upsert = |name: &str, mechanism: i8, iterations: i32| {
        ScramCredentialUpsertion::default()
            .with_name(s(name))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(Bytes::from(salt.clone()))
            .with_salted_password(Bytes::from(salted.clone()))
    };
    let delete = |name: &str, mechanism: i8| {
        ScramCredentialDeletion::default()
            .with_name(s(name))
            .with_mechanism(mechanism)
    };
    let altered: AlterUserScramCredentialsResponse = call(
        &mut c,
        ApiKey::AlterUserScramCredentials,
        0,
        &AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![
                upsert("carol", 1, 8192),
                upsert("dave", 1, 1000),
                upsert("erin", 7, 4096),
                upsert("frank", 1, 4096),
                upsert("bob", 1, 8192),
            ])
            .with_deletions(vec![
                delete("bob", 2),
                delete("nobody", 1),
                delete("frank", 1),
            ]),
    );
    let codes: Vec<(String, i16)> = altered
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        [
            ("bob".to_owned(), 0),
            ("nobody".to_owned(), RESOURCE_NOT_FOUND),
            ("frank".to_owned(), DUPLICATE_RESOURCE),
            ("carol".to_owned(), 0),
            ("dave".to_owned(), UNACCEPTABLE_CREDENTIAL),
            ("erin".to_owned(), UNSUPPORTED_SASL_MECHANISM),
        ]
    );
    let dave = &altered.results[4];
    assert!(
        dave.error_message
            .as_ref()
            .unwrap()
            .contains("Too few iterations")
    );

    // carol logs in on a new connection, with PLAIN and her password.
    let mut carol = connect(&server);
    assert_eq!(plain(&mut carol, "carol", "carol-pw").error_code, 0);
    // bob lost SCRAM-SHA-512 and has a new SCRAM-SHA-256 credential: his
    // old password no longer works, carol's does.
    let mut bob = connect(&server);
    assert_eq!(
        plain(&mut bob, "bob", "bob-secret").error_code,
        SASL_AUTHENTICATION_FAILED
    );
    let mut bob = connect(&server);
    assert_eq!(plain(&mut bob, "bob", "carol-pw").error_code, 0);

    let some: DescribeUserScramCredentialsResponse = call(
        &mut c,
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            UserName::default().with_name(s("carol")),
            UserName::default().with_name(s("nobody")),
            UserName::default().with_name(s("bob")),
            UserName::default().with_name(s("bob")),
        ])),
    );
    let got: Vec<(String, i16, Infos)> = some
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.error_code,
                r.credential_infos
                    .iter()
                    .map(|i| (i.mechanism, i.iterations))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("carol".to_owned(), 0, vec![(1, 8192)]),
            ("nobody".to_owned(), RESOURCE_NOT_FOUND, vec![]),
            ("bob".to_owned(), DUPLICATE_RESOURCE, vec![]),
        ]
    );
    // What the server keeps is durable: the data directory's store has it.
    let store = weir_auth::CredentialStore::open(server.broker.data_dir().root()).unwrap();
    assert_eq!(store.describe("carol").unwrap().len(), 1);
    assert_eq!(store.describe("bob").unwrap().len(), 1);
}

#[test]
fn a_listener_without_sasl_refuses_its_apis() {
    let server = TestServer::start();
    let mut c = connect(&server);
    assert_eq!(handshake(&mut c, "PLAIN").error_code, ILLEGAL_SASL_STATE);
    // The connection stays usable: nothing to authenticate.
    assert_eq!(metadata(&mut c).brokers.len(), 1);
}
