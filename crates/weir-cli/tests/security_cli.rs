//! `weir serve` with bearer tokens and the CLI's `--token`: requests
//! without a token are refused (exit code 6), a token from the flag or
//! `WEIR_TOKEN` is sent, and a bad token file stops the server at start
//! with its name; the token file is taken again when it changes and on
//! SIGHUP, which never stops the server.

mod common;

use std::process::Command;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn weir(
    http: &str,
    token: Option<&str>,
    env_token: Option<&str>,
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args)
        .args(["--server", http])
        .env_remove("WEIR_TOKEN");
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    if let Some(t) = env_token {
        cmd.env("WEIR_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_sends_its_token_and_says_when_it_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::write(&tokens, "# who may call\nUser:ops ops-secret\n").unwrap();
    let data = tmp.path().join("data");
    let (child, http) =
        common::start_serve_http(&data, &["--http-tokens-file", tokens.to_str().unwrap()]);
    let _serve = Killed(child);

    let (code, _, err) = weir(&http, None, None, &["topic", "list"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("bearer token"), "{err}");
    let (code, _, err) = weir(&http, Some("wrong"), None, &["topic", "list"]);
    assert_eq!(code, 6, "{err}");
    let (code, out, err) = weir(
        &http,
        Some("ops-secret"),
        None,
        &["topic", "create", "orders"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = weir(&http, None, Some("ops-secret"), &["topic", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("orders"), "{out}");
    // Without an authorizer, ACL calls say so.
    let (code, _, err) = weir(&http, Some("ops-secret"), None, &["acl", "list"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not enabled"), "{err}");
}

#[test]
fn a_bad_token_file_stops_the_server_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::write(&tokens, "User:ops ok\nnot-a-principal t\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "--kafka-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--http-tokens-file")
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tokens line 2"), "{err}");
}

/// Starts `weir serve` with `extra` on free ports of every interface,
/// stops it once ready, and returns what it logged.
fn serve_logs(dir: &std::path::Path, extra: &[&str]) -> String {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "--kafka-addr",
            "0.0.0.0:0",
            "--http-addr",
            "0.0.0.0:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env("WEIR_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("kafka listening on"), "{line}");
    let _ = child.kill();
    let done = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&done.stderr).into_owned()
}

#[test]
fn listeners_beyond_loopback_without_authentication_are_warned_of() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = serve_logs(&tmp.path().join("open"), &[]);
    assert!(
        logs.contains("Kafka listener beyond loopback authenticates nobody"),
        "{logs}"
    );
    assert!(
        logs.contains("HTTP API listens beyond loopback and authenticates nobody"),
        "{logs}"
    );

    let tokens = tmp.path().join("tokens");
    std::fs::write(&tokens, "User:ops t\n").unwrap();
    let logs = serve_logs(
        &tmp.path().join("tokens-only"),
        &["--http-tokens-file", tokens.to_str().unwrap()],
    );
    assert!(logs.contains("Kafka listener beyond loopback"), "{logs}");
    assert!(!logs.contains("HTTP API listens beyond loopback"), "{logs}");
}

fn hangup(child: &std::process::Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// Retries `check` for up to 10 s (the server polls its files each second).
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn tokens_are_issued_and_revoked_without_a_restart_and_sighup_never_stops_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::write(&tokens, "User:ops first\n").unwrap();
    let (child, http) = common::start_serve_http(
        &tmp.path().join("data"),
        &["--http-tokens-file", tokens.to_str().unwrap()],
    );
    let mut serve = Killed(child);
    let works = |token: &str| weir(&http, Some(token), None, &["topic", "list"]).0 == 0;
    assert!(works("first"));

    // A new file: the new token works and the old one no longer does.
    std::fs::write(&tokens, "User:ops second-token\nUser:ci third\n").unwrap();
    eventually("the changed token file was not taken", || {
        works("second-token") && !works("first")
    });
    // A malformed file keeps the tokens in use, even on SIGHUP.
    std::fs::write(&tokens, "User:ops second-token\nthis is not a line\n").unwrap();
    hangup(&serve.0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(works("second-token") && works("third"));
    // SIGHUP with a good file takes it at once.
    std::fs::write(&tokens, "User:ops fourth\n").unwrap();
    hangup(&serve.0);
    eventually("SIGHUP did not reload the token file", || {
        works("fourth") && !works("third")
    });
    assert!(serve.0.try_wait().unwrap().is_none(), "the server stopped");

    // A server with nothing to reload survives SIGHUP too.
    let (child, http) = common::start_serve_http(&tmp.path().join("plain"), &[]);
    let mut plain = Killed(child);
    hangup(&plain.0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        plain.0.try_wait().is_ok_and(|s| s.is_none()),
        "SIGHUP stopped the server"
    );
    assert_eq!(weir(&http, None, None, &["topic", "list"]).0, 0);
}
