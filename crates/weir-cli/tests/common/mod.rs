//! What the tests that run the real `weir serve` binary share: the client
//! interpreter and scripts, a free port, and starting the server on it.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub fn python() -> String {
    std::env::var("WEIR_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").expect("HOME is set");
        format!("{home}/.cache/weir/venv/bin/python")
    })
}

/// A script of `tests/clients/`, found from the crate directory cargo gives
/// the test at run time (a binary reused from another checkout must not
/// point at that checkout's files).
pub fn client_script(name: &str) -> String {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    format!("{crate_dir}/../../tests/clients/{name}")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns `weir serve` on `dir` with the HTTP API on a free port, Kafka on
/// `kafka_port` and `extra` options; returns it with its ready lines
/// (`kafka listening on ...`, `http listening on ...`).
fn spawn_serve(dir: &std::path::Path, kafka_port: u16, extra: &[&str]) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--http-addr", "127.0.0.1:0"])
        .args(extra)
        .arg("--kafka-addr")
        .arg(format!("127.0.0.1:{kafka_port}"))
        .arg("--data-dir")
        .arg(dir)
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn weir serve");
    // Both lines come in one write once the server is ready.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let lines = (0..2)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line.trim().to_owned()
        })
        .collect();
    (child, lines)
}

/// Starts `weir serve` on `dir` with Kafka on `port` (the HTTP API on a
/// free port) and `extra` options; returns once it is ready.
pub fn start_serve(dir: &std::path::Path, port: u16, extra: &[&str]) -> Child {
    let (child, lines) = spawn_serve(dir, port, extra);
    assert!(lines[0].starts_with("kafka listening on"), "{lines:?}");
    child
}

/// Starts `weir serve` on `dir` with Kafka and the HTTP API on free ports;
/// returns once it is ready, with the HTTP API's address.
pub fn start_serve_http(dir: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let (child, _, http) = start_serve_kafka_http(dir, extra);
    (child, http)
}

/// Like [`start_serve_http`], also returning the Kafka listener's address.
pub fn start_serve_kafka_http(dir: &std::path::Path, extra: &[&str]) -> (Child, String, String) {
    start_serve_kafka_http_on(dir, free_port(), extra)
}

/// Like [`start_serve_kafka_http`], with Kafka on `kafka_port`.
pub fn start_serve_kafka_http_on(
    dir: &std::path::Path,
    kafka_port: u16,
    extra: &[&str],
) -> (Child, String, String) {
    let (child, lines) = spawn_serve(dir, kafka_port, extra);
    let http = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("http listening on ")
                .or_else(|| l.strip_prefix("https listening on "))
        })
        .expect("weir serve prints its HTTP address")
        .to_owned();
    (child, format!("127.0.0.1:{kafka_port}"), http)
}

/// Runs `command` with `stdin` written to it and its output captured.
pub fn run_with_stdin(command: &mut Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Waits until `done()` reaches `target` (60 s at most): kill -9 tests
/// kill on progress, not after a time, so a fast or a slow machine both
/// kill mid-work.
pub fn wait_for_progress(round: usize, target: usize, done: impl Fn() -> usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while done() < target {
        assert!(
            std::time::Instant::now() < deadline,
            "round {round}: progress stalled below {target}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
