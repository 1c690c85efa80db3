//! Real Kafka clients over SASL_SSL (certificates made by the test) and
//! SASL_PLAINTEXT: confluent-kafka (librdkafka 2.16), kafka-python,
//! kafkajs and kcat (Debian's librdkafka 2.0.2), each with PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512: the right password
//! produces and consumes, a wrong one is refused with
//! SASL_AUTHENTICATION_FAILED as the client reports it; users added with
//! AlterUserScramCredentials log in; and clients re-authenticate
//! (KIP-368) across several session lifetimes without dropping their
//! connections. Scripts: `tests/clients/python_sasl.py` and
//! `kafkajs_sasl.js`.

mod common;

use std::time::Duration;

use common::{TestServer, client_script, node_modules, python, run_bounded};
use weir_kafka::{SaslConfig, SaslMechanism};

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";

/// A server with every mechanism and one user, over TLS (SASL_SSL) if
/// `tls`, else SASL_PLAINTEXT.
fn server(reauth_ms: u64, tls: bool) -> TestServer {
    TestServer::start_sasl_over(
        SaslConfig {
            mechanisms: SaslMechanism::ALL.to_vec(),
            reauth_ms,
        },
        &[(USER, PASSWORD)],
        tls,
    )
}

/// `command` told the server's CA (the client scripts then use SASL_SSL).
fn with_ca<'a>(
    command: &'a mut std::process::Command,
    server: &TestServer,
) -> &'a mut std::process::Command {
    match &server.ca {
        Some(ca) => command.env("WEIR_TEST_CA", ca),
        None => command.env_remove("WEIR_TEST_CA"),
    }
}

fn python_sasl(server: &TestServer, mode: &str, extra: &[&str]) -> String {
    let script = client_script("python_sasl.py");
    let bootstrap = server.bootstrap();
    let mut args = vec![script.as_str(), mode, bootstrap.as_str(), USER, PASSWORD];
    args.extend_from_slice(extra);
    run_bounded(
        with_ca(std::process::Command::new(python()).args(&args), server),
        &format!("python_sasl.py {mode}"),
        Duration::from_secs(240),
    )
}

fn kafkajs_sasl(server: &TestServer, mode: &str, extra: &[&str]) -> String {
    let script = client_script("kafkajs_sasl.js");
    let bootstrap = server.bootstrap();
    let mut args = vec![script.as_str(), mode, bootstrap.as_str(), USER, PASSWORD];
    args.extend_from_slice(extra);
    run_bounded(
        with_ca(
            std::process::Command::new("node")
                .args(&args)
                .env("NODE_PATH", node_modules()),
            server,
        ),
        &format!("kafkajs_sasl.js {mode}"),
        Duration::from_secs(240),
    )
}

#[test]
fn python_clients_authenticate_with_every_mechanism_over_tls() {
    let server = server(0, true);
    let out = python_sasl(&server, "matrix", &[]);
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        for client in ["confluent", "kafka-python"] {
            assert!(
                out.contains(&format!("{client} {mechanism}: 20 records")),
                "{client} {mechanism}:\n{out}"
            );
            let refused = out
                .lines()
                .find(|l| l.starts_with(&format!("{client} {mechanism} wrong password:")))
                .unwrap_or_else(|| panic!("{client} {mechanism} refusal:\n{out}"));
            assert!(refused.contains("invalid credentials"), "{refused}");
        }
    }
    // kafka-python names the Kafka error code it got.
    assert!(
        out.contains("[Error 58] SaslAuthenticationFailedError"),
        "{out}"
    );

    // Kafka tooling manages users: confluent's admin client adds carol,
    // who then logs in with SCRAM and PLAIN.
    let out = python_sasl(&server, "admin", &[]);
    assert!(out.contains("admin: carol added and logged in"), "{out}");
    let store = weir_auth::CredentialStore::open(server.broker.data_dir().root()).unwrap();
    assert_eq!(
        store.describe("carol").unwrap(),
        vec![(weir_auth::ScramMechanism::Sha256, 8192)]
    );
}

#[test]
fn kafkajs_authenticates_with_every_mechanism_over_tls() {
    let server = server(0, true);
    let out = kafkajs_sasl(&server, "matrix", &[]);
    for mechanism in ["plain", "scram-sha-256", "scram-sha-512"] {
        assert!(
            out.contains(&format!("kafkajs {mechanism}: 20 records")),
            "{mechanism}:\n{out}"
        );
        let refused = out
            .lines()
            .find(|l| l.starts_with(&format!("kafkajs {mechanism} wrong password:")))
            .unwrap_or_else(|| panic!("{mechanism} refusal:\n{out}"));
        assert!(refused.contains("invalid credentials"), "{refused}");
    }
}

fn kcat(
    server: &TestServer,
    mechanism: &str,
    password: &str,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    let bootstrap = server.bootstrap();
    let ca = server
        .ca
        .as_ref()
        .map(|ca| format!("ssl.ca.location={}", ca.display()));
    let mut all = vec!["-b", bootstrap.as_str(), "-X"];
    match &ca {
        Some(ca) => all.extend(["security.protocol=SASL_SSL", "-X", ca.as_str()]),
        None => all.push("security.protocol=SASL_PLAINTEXT"),
    }
    let (m, u, p) = (
        format!("sasl.mechanisms={mechanism}"),
        format!("sasl.username={USER}"),
        format!("sasl.password={password}"),
    );
    all.extend(["-X", &m, "-X", &u, "-X", &p]);
    all.extend_from_slice(args);
    let mut child = std::process::Command::new("kcat")
        .args(&all)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/install-deps");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn kcat_authenticates_with_every_mechanism_with_and_without_tls() {
    for (server, mechanism) in [(server(0, true), "PLAIN"), (server(0, false), "PLAIN")]
        .into_iter()
        .chain(
            [(true, "SCRAM-SHA-256"), (false, "SCRAM-SHA-512")].map(|(tls, m)| (server(0, tls), m)),
        )
    {
        let topic = format!("kcat-{}", mechanism.to_lowercase());
        let out = kcat(
            &server,
            mechanism,
            PASSWORD,
            &["-t", &topic, "-P"],
            "a\nb\nc\n",
        );
        assert!(
            out.status.success(),
            "{mechanism}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = kcat(
            &server,
            mechanism,
            PASSWORD,
            &["-t", &topic, "-C", "-e", "-o", "beginning"],
            "",
        );
        assert!(
            out.status.success(),
            "{mechanism}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a\nb\nc\n",
            "{mechanism}"
        );
        let out = kcat(
            &server,
            mechanism,
            "not-the-password",
            &["-L", "-m", "5"],
            "",
        );
        assert!(
            !out.status.success(),
            "{mechanism}: a wrong password listed metadata"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid credentials"), "{mechanism}: {err}");
    }
}

#[test]
fn clients_reauthenticate_across_session_lifetimes() {
    // Sessions of 2 s; the clients run for 8 s, so every connection they
    // keep open must renew its session about four times: librdkafka over
    // SASL_PLAINTEXT, kafkajs over SASL_SSL.
    let server = server(2000, false);
    let out = python_sasl(&server, "reauth", &["8"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("reauth:"))
        .unwrap_or_else(|| panic!("{out}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let [sent, consumed, renewed, dropped, errors] = numbers[..] else {
        panic!("{line}");
    };
    assert!(sent > 0 && consumed == sent, "{out}");
    // Producer and consumer connections each renewed several times, none
    // was closed for an expired session.
    assert!(renewed >= 6, "{out}");
    assert_eq!((dropped, errors), (0, 0), "{out}");

    drop(server);
    let server = self::server(2000, true);
    let out = kafkajs_sasl(&server, "reauth", &["7"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("kafkajs reauth:"))
        .unwrap_or_else(|| panic!("{out}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let [sent, consumed, authentications, connections] = numbers[..] else {
        panic!("{line}");
    };
    assert!(sent > 0 && consumed == sent, "{out}");
    // More logins than connections: sessions renewed in place.
    assert!(authentications > connections + 1, "{out}");
}
