//! `weir serve` with TLS flags (certificates made by the test with
//! rcgen): a PLAINTEXT and an SSL listener at once, each advertised as
//! told; two PLAINTEXT listeners under names of their own (the
//! listener security protocol map), each advertised as told; client
//! certificates required on one TLS listener and not on another; the CLI
//! over HTTPS with `--ca`, and with `--cert`/`--key` where a client
//! certificate is required; kcat over SSL; the HTTP API over HTTPS through weir-client; a
//! new certificate from another CA taken on SIGHUP without a restart;
//! refusals of settings that cannot work, with the reason.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::free_port;
use weir_tls::test_certs::TestCa;

struct Serve {
    child: Child,
    lines: Vec<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// Spawns `weir serve` and reads its four ready lines.
fn serve(args: &[String]) -> Serve {
    let mut child = weir()
        .arg("serve")
        .args(args)
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn weir serve");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let lines = (0..4)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line.trim().to_owned()
        })
        .collect();
    Serve { child, lines }
}

fn kcat(args: &[String], stdin: &str) -> Result<String, String> {
    let out = common::run_with_stdin(Command::new("kcat").args(args), stdin);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn ssl_args(port: u16, ca: &std::path::Path) -> Vec<String> {
    [
        "-b".to_owned(),
        format!("127.0.0.1:{port}"),
        "-X".to_owned(),
        "security.protocol=ssl".to_owned(),
        "-X".to_owned(),
        format!("ssl.ca.location={}", ca.display()),
    ]
    .into()
}

fn metadata_broker(mut args: Vec<String>) -> Result<String, String> {
    args.extend(["-L", "-m", "5"].map(str::to_owned));
    let out = kcat(&args, "")?;
    Ok(out
        .lines()
        .find_map(|l| l.trim().strip_prefix("broker 0 at "))
        .unwrap_or_else(|| panic!("no broker in {out}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned())
}

#[test]
fn serve_with_ssl_and_plaintext_listeners_https_and_a_sighup_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "first");
    let cert = ca.server("server", "weir-first");
    let (plain, ssl) = (free_port(), free_port());
    let path = |p: &std::path::Path| p.display().to_string();
    let mut server = serve(&[
        "--data-dir".into(),
        path(&dir.path().join("data")),
        "--http-addr".into(),
        "127.0.0.1:0".into(),
        "--listeners".into(),
        format!("PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl}"),
        "--advertised-listeners".into(),
        format!("SSL://localhost:{ssl}"),
        "--tls-cert".into(),
        path(&cert.cert),
        "--tls-key".into(),
        path(&cert.key),
        "--http-tls".into(),
    ]);
    assert_eq!(
        server.lines[0],
        format!("kafka listening on 127.0.0.1:{plain}")
    );
    let https = server.lines[1]
        .strip_prefix("https listening on ")
        .unwrap_or_else(|| panic!("{:?}", server.lines))
        .to_owned();
    assert_eq!(
        server.lines[2],
        format!("kafka listener PLAINTEXT on 127.0.0.1:{plain}")
    );
    assert_eq!(
        server.lines[3],
        format!("kafka listener SSL on 127.0.0.1:{ssl}")
    );

    // Each listener advertises its own address: the bound one, or the
    // one --advertised-listeners gave.
    let plain_args = vec!["-b".to_owned(), format!("127.0.0.1:{plain}")];
    assert_eq!(
        metadata_broker(plain_args.clone()).unwrap(),
        format!("127.0.0.1:{plain}")
    );
    assert_eq!(
        metadata_broker(ssl_args(ssl, &ca.ca_pem)).unwrap(),
        format!("localhost:{ssl}")
    );

    // A round trip over SSL (the bootstrap address is 127.0.0.1; kcat then
    // reaches the advertised localhost, also in the certificate).
    let mut produce = ssl_args(ssl, &ca.ca_pem);
    produce.extend(["-P", "-t", "over-ssl"].map(str::to_owned));
    kcat(&produce, "one\ntwo\n").unwrap();
    let mut consume = plain_args;
    consume.extend(
        [
            "-C",
            "-t",
            "over-ssl",
            "-o",
            "beginning",
            "-c",
            "2",
            "-e",
            "-q",
        ]
        .map(str::to_owned),
    );
    assert_eq!(kcat(&consume, "").unwrap(), "one\ntwo\n");

    // The HTTP API over HTTPS.
    let first_ca = std::fs::read(&ca.ca_pem).unwrap();
    let client = weir_client::Client::with_ca(&https, &first_ca, None).unwrap();
    let topics = client.topics().unwrap();
    assert!(
        topics.topics.iter().any(|t| t.name == "over-ssl"),
        "{topics:?}"
    );

    // A certificate from another CA in the same files. The files are
    // polled every second too, so wait for whichever comes first; SIGHUP
    // must not stop the server.
    let other = TestCa::new(dir.path(), "second");
    other.server("server", "weir-second");
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while metadata_broker(ssl_args(ssl, &other.ca_pem)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate is not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        metadata_broker(ssl_args(ssl, &ca.ca_pem)).is_err(),
        "the old certificate is still served"
    );
    let second_ca = std::fs::read(&other.ca_pem).unwrap();
    let client = weir_client::Client::with_ca(&https, &second_ca, None).unwrap();
    client.topics().unwrap();
    let old = weir_client::Client::with_ca(&https, &first_ca, None).unwrap();
    assert!(
        old.topics().is_err(),
        "HTTPS still shows the old certificate"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "SIGHUP stopped weir serve"
    );
}

#[test]
fn settings_that_cannot_work_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let cert = ca.server("server", "weir");
    let data = dir.path().join("data").display().to_string();
    let refused = |args: &[&str], why: &str| {
        let out = weir()
            .args(["serve", "--data-dir", &data, "--http-addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    };
    let c = cert.cert.display().to_string();
    let k = cert.key.display().to_string();
    refused(
        &["--listeners", "SSL://127.0.0.1:0"],
        "needs --tls-cert and --tls-key",
    );
    refused(
        &[
            "--listeners",
            "PLAINTEXT://127.0.0.1:0",
            "--kafka-addr",
            "127.0.0.1:0",
        ],
        "not both",
    );
    refused(
        &["--listeners", "INTERNAL://127.0.0.1:0"],
        "not a security protocol",
    );
    refused(
        &[
            "--listeners",
            "PLAINTEXT://127.0.0.1:0",
            "--advertised-listeners",
            "SSL://h:1",
        ],
        "has no listener of that name",
    );
    refused(
        &[
            "--listeners",
            "SSL://127.0.0.1:0",
            "--tls-cert",
            &c,
            "--tls-key",
            &k,
            "--tls-client-auth",
            "required",
        ],
        "needs --tls-client-ca",
    );
    refused(
        &[
            "--listeners",
            "SSL://127.0.0.1:0",
            "--tls-cert",
            &c,
            "--tls-key",
            &c,
        ],
        "no PEM private key",
    );
    refused(&["--http-tls"], "--http-tls needs --tls-cert");
    // The same settings from the config file.
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "listeners = \"SSL://127.0.0.1:0\"\n").unwrap();
    let config = config.display().to_string();
    refused(&["--config", &config], "needs --tls-cert and --tls-key");
}

#[test]
fn named_listeners_share_a_protocol_and_advertise_their_own_address() {
    // The usual container setup: one listener for the container network,
    // one for the host, both PLAINTEXT.
    let dir = tempfile::tempdir().unwrap();
    let (inside, host) = (free_port(), free_port());
    let server = serve(&[
        "--data-dir".into(),
        dir.path().join("data").display().to_string(),
        "--http-addr".into(),
        "127.0.0.1:0".into(),
        "--listeners".into(),
        format!("PLAINTEXT://127.0.0.1:{inside},PLAINTEXT_HOST://127.0.0.1:{host}"),
        "--listener-security-protocol-map".into(),
        "PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT".into(),
        "--advertised-listeners".into(),
        format!("PLAINTEXT://127.0.0.1:{inside},PLAINTEXT_HOST://localhost:{host}"),
    ]);
    assert_eq!(
        server.lines[3],
        format!("kafka listener PLAINTEXT_HOST on 127.0.0.1:{host}")
    );
    let plain = |port: u16| vec!["-b".to_owned(), format!("127.0.0.1:{port}")];
    assert_eq!(
        metadata_broker(plain(inside)).unwrap(),
        format!("127.0.0.1:{inside}")
    );
    assert_eq!(
        metadata_broker(plain(host)).unwrap(),
        format!("localhost:{host}")
    );
    drop(server);

    // A name the map does not give, or an advertised name with no
    // listener, is refused by name.
    for (listeners, advertised, expected) in [
        ("INTERNAL://127.0.0.1:0", None, "\"INTERNAL\""),
        (
            "PLAINTEXT://127.0.0.1:0",
            Some("OUTSIDE://example:1"),
            "\"OUTSIDE\"",
        ),
    ] {
        let mut cmd = weir();
        cmd.args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--listeners",
            listeners,
        ]);
        cmd.arg("--data-dir").arg(dir.path().join("refused"));
        if let Some(a) = advertised {
            cmd.args([
                "--listener-security-protocol-map",
                "OUTSIDE:PLAINTEXT",
                "--advertised-listeners",
                a,
            ]);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected.trim_matches('"')), "{err}");
    }
}

#[test]
fn client_certificates_are_set_per_listener() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "per-listener");
    let cert = ca.server("server", "weir-server");
    let client = ca.client("client", "service", "weir");
    let (inside, outside) = (free_port(), free_port());
    let path = |p: &std::path::Path| p.display().to_string();
    let common_args = |auth: &str| -> Vec<String> {
        vec![
            "--data-dir".into(),
            path(&dir.path().join("data")),
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--listeners".into(),
            format!("INTERNAL://127.0.0.1:{inside},EXTERNAL://127.0.0.1:{outside}"),
            "--listener-security-protocol-map".into(),
            "INTERNAL:SSL,EXTERNAL:SSL".into(),
            "--tls-cert".into(),
            path(&cert.cert),
            "--tls-key".into(),
            path(&cert.key),
            "--tls-client-ca".into(),
            path(&ca.ca_pem),
            "--listener-tls-client-auth".into(),
            auth.into(),
        ]
    };
    let server = serve(&common_args("INTERNAL:required"));
    let with_cert = |port: u16| {
        let mut args = ssl_args(port, &ca.ca_pem);
        args.extend([
            "-X".to_owned(),
            format!("ssl.certificate.location={}", path(&client.cert)),
            "-X".to_owned(),
            format!("ssl.key.location={}", path(&client.key)),
        ]);
        args
    };
    // The external listener asks for no certificate; the internal one
    // refuses a client without one and takes one with it.
    assert_eq!(
        metadata_broker(ssl_args(outside, &ca.ca_pem)).unwrap(),
        format!("127.0.0.1:{outside}")
    );
    let mut no_cert = ssl_args(inside, &ca.ca_pem);
    no_cert.extend(["-L", "-m", "5"].map(str::to_owned));
    assert!(kcat(&no_cert, "").is_err(), "no certificate was let in");
    assert_eq!(
        metadata_broker(with_cert(inside)).unwrap(),
        format!("127.0.0.1:{inside}")
    );
    drop(server);

    // Settings that cannot work are refused by name.
    for (auth, expected) in [
        ("NOWHERE:required", "not a listener"),
        ("INTERNAL:sometimes", "INTERNAL:sometimes"),
    ] {
        let out = weir()
            .arg("serve")
            .args(common_args(auth))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{auth}: {err}");
    }
}

#[test]
fn the_cli_speaks_https_and_presents_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "cli");
    let cert = ca.server("server", "weir-server");
    let client = ca.client("client", "operator", "weir");
    let path = |p: &std::path::Path| p.display().to_string();
    let (plain, ssl) = (free_port(), free_port());
    let server = serve(&[
        "--data-dir".into(),
        path(&dir.path().join("data")),
        "--http-addr".into(),
        "127.0.0.1:0".into(),
        "--listeners".into(),
        format!("PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl}"),
        "--tls-cert".into(),
        path(&cert.cert),
        "--tls-key".into(),
        path(&cert.key),
        "--tls-client-ca".into(),
        path(&ca.ca_pem),
        "--tls-client-auth".into(),
        "required".into(),
        "--http-tls".into(),
    ]);
    let https = server.lines[1]
        .strip_prefix("https listening on ")
        .unwrap_or_else(|| panic!("{:?}", server.lines))
        .to_owned();
    let cli = |extra: &[&str]| {
        let out = weir()
            .args(["topic", "list", "--server", &https])
            .args(extra)
            .env_remove("WEIR_CA")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ca_file = path(&ca.ca_pem);
    let (cert_file, key_file) = (path(&client.cert), path(&client.key));
    // With the CA and a certificate: answered.
    let (code, err) = cli(&["--ca", &ca_file, "--cert", &cert_file, "--key", &key_file]);
    assert_eq!(code, 0, "{err}");
    // Without a certificate the handshake fails; without the CA the
    // server is not trusted; a certificate alone is refused at once.
    let (code, _) = cli(&["--ca", &ca_file]);
    assert_eq!(code, 5);
    let (code, _) = cli(&[]);
    assert_ne!(code, 0);
    let (code, err) = cli(&["--cert", &cert_file, "--key", &key_file]);
    assert_ne!(code, 0);
    assert!(err.contains("--ca"), "{err}");
}
