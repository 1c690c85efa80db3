//! `weir serve` as a user runs it: settings from a config file (flags win
//! over it), ready when it prints its address, serving kcat, and a clean
//! exit on SIGTERM; a config file with an unknown key is refused by name.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn kcat(args: &[&str], stdin: &str) -> String {
    let out = common::run_with_stdin(Command::new("kcat").args(args), stdin);
    assert!(
        out.status.success(),
        "kcat is installed by scripts/install-deps"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn serves_with_a_config_file_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nkafka_addr = \"127.0.0.1:9\"\ndefault_partitions = 3\n",
            data
        ),
    )
    .unwrap();
    // The flag wins over the file's (unusable) address.
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "--kafka-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("kafka listening on ")
        .expect("the ready line")
        .to_owned();
    assert!(!addr.ends_with(":0") && !addr.ends_with(":9"), "{addr}");
    kcat(&["-b", &addr, "-P", "-t", "configured"], "x\n");
    let listing = kcat(&["-b", &addr, "-L", "-t", "configured"], "");
    assert!(listing.contains("with 3 partitions"), "{listing}");
    assert!(data.join(".topics").exists(), "the file's data_dir is used");
    // SIGTERM: a graceful stop, exit status 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn an_unknown_config_key_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("weir.toml");
    std::fs::write(&config, "retention_hours = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown field `retention_hours`"),
        "{stderr}"
    );
}

/// `curl` against the HTTP API: the status and the body.
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

#[test]
fn http_limits_come_from_flags_and_live_streams_end_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--kafka-addr", "127.0.0.1:0", "--http-addr"])
        .args(["127.0.0.1:0", "--http-body-bytes-max", "2048"])
        .args(["--sse-clients-max", "1", "--partitions-max", "4"])
        .args(["--topics-max", "4", "--http-page-max", "2"])
        .arg("--data-dir")
        .arg(tmp.path())
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _kafka = lines.next().unwrap().unwrap();
    let http = lines.next().unwrap().unwrap();
    let base = format!(
        "http://{}",
        http.strip_prefix("http listening on ")
            .expect("the ready line")
    );
    let json = ["-H", "content-type: application/json", "--data-binary"];
    let post = |path: &str, body: &str| {
        let mut args = json.to_vec();
        args.push(body);
        curl(&format!("{base}{path}"), &args)
    };
    let (st, body) = post("/v1/topics", r#"{"name":"t","partitions":5}"#);
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("invalid_partitions"), "{body}");
    // __consumer_offsets, __weir_events and __weir_snapshots are three of
    // the four topics.
    assert_eq!(post("/v1/topics", r#"{"name":"t","partitions":4}"#).0, 201);
    let (st, body) = post("/v1/topics", r#"{"name":"u"}"#);
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("topics_max"), "{body}");
    let big = format!(r#"{{"records":[{{"value":"{}"}}]}}"#, "x".repeat(4096));
    let (st, body) = post("/v1/topics/t/records", &big);
    assert_eq!(st, 413, "{body}");
    let events = r#"{"expected_version":"any","events":[{"type":"T","data":1},{"type":"T","data":2},{"type":"T","data":3}]}"#;
    assert_eq!(post("/v1/streams/s-1", events).0, 200);
    let (_, page) = curl(&format!("{base}/v1/streams/s-1?limit=50"), &[]);
    assert_eq!(page.matches("\"version\"").count(), 2, "{page}");

    // One live client is allowed; it ends when the server stops.
    let mut live = Command::new("curl")
        .args(["-sS", "-N", &format!("{base}/v1/all/live")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut live_lines = BufReader::new(live.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        while live_lines.next().unwrap().unwrap() != "" {}
    }
    let (st, body) = curl(&format!("{base}/v1/all/live"), &["-m", "5"]);
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("too_many_live_clients"), "{body}");
    let started = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "stopped in {:?}",
        started.elapsed()
    );
    // The live stream ended with the server: curl read to its end.
    for line in live_lines {
        let _ = line;
    }
    assert!(live.wait().unwrap().success());
}
