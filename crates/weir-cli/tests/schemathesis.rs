//! A bounded schemathesis run against `weir serve`'s own `/openapi.json`:
//! generated and mutated requests to every operation but the live streams
//! (which never end), and sequences following the links schemathesis
//! infers between operations, must get no 5xx, no response that breaks
//! the documented schema and no undocumented content type.
//!
//! `WEIR_SCHEMATHESIS_EXAMPLES` (default 30 per operation) and
//! `WEIR_SCHEMATHESIS_SEED` (default 1) make the run longer or different;
//! a failure prints schemathesis's report with `curl` lines that replay it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest the run may take before the test fails.
const RUN_SECONDS_MAX: u64 = 600;

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--kafka-addr", "127.0.0.1:0"])
        .args(["--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn weir serve");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let _kafka = lines.next().unwrap().unwrap();
    let http = lines.next().unwrap().unwrap();
    let addr = http
        .strip_prefix("http listening on ")
        .expect("the ready line")
        .to_owned();

    // What the document's examples name exists, so the examples reach
    // past "not found".
    for (path, body) in [
        ("/v1/topics", r#"{"name":"orders","partitions":2}"#),
        (
            "/v1/topics/orders/records",
            r#"{"records":[{"key":"k","value":1}]}"#,
        ),
        (
            "/v1/streams/account-1",
            r#"{"expected_version":"any","events":[{"type":"Deposited","data":{"n":1}}]}"#,
        ),
        (
            "/subjects/payments-value/versions",
            r#"{"schema":"{\"type\":\"record\",\"name\":\"Payment\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}"}"#,
        ),
    ] {
        let out = Command::new("curl")
            .args(["-sS", "-f", "-H", "content-type: application/json"])
            .args(["--data-binary", body])
            .arg(format!("http://{addr}{path}"))
            .output()
            .expect("curl is installed");
        assert!(out.status.success(), "{path}: {out:?}");
    }

    let python = common::python();
    let schemathesis = Path::new(&python).with_file_name("schemathesis");
    let examples = std::env::var("WEIR_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "30".into());
    let seed = std::env::var("WEIR_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let mut run = Command::new(&schemathesis)
        .arg("run")
        .arg(format!("http://{addr}/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
        ])
        // Live streams (Server-Sent Events) never end.
        .args(["--exclude-path-regex", "/live$"])
        .args(["--request-timeout", "10", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .current_dir(tmp.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} (installed by scripts/install-deps): {e}",
                schemathesis.display()
            )
        });
    let mut stdout = run.stdout.take().unwrap();
    let output = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(RUN_SECONDS_MAX);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = output.join().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let status = status.unwrap_or_else(|| {
        panic!("schemathesis ran over {RUN_SECONDS_MAX} s:\n{report}");
    });
    assert!(
        status.success(),
        "schemathesis found problems (seed {seed}):\n{report}"
    );
    // A run that tested nothing would pass too: every operation but the
    // four live streams is tested (the schema registry's among them).
    let tested: usize = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no operation count in the report:\n{report}"));
    assert!(tested >= 80, "only {tested} operations tested:\n{report}");
    let summary_from = report.find("SUMMARY").unwrap_or(0);
    eprintln!("{}", &report[summary_from..]);
}
