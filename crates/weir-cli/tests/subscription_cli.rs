//! `weir subscription` against a running `weir serve`: create a group,
//! read events with their ack ids (JSON lines with `--json`), ack and nack
//! them, park and replay, list and describe, delete; exit 4 for an event
//! not held and 3 for an unknown group.

mod common;

use std::process::{Child, Command};

use weir_api::{Append, EventIn};
use weir_client::Client;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn weir(http: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("subscription")
        .args(args)
        .args(["--server", http])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn subscription_commands_read_ack_park_and_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, http) = common::start_serve_http(tmp.path(), &[]);
    let _serve = Killed(child);
    let client = Client::new(&http).unwrap();
    let events = (0..3)
        .map(|i| EventIn {
            id: None,
            event_type: "Shipped".into(),
            data: serde_json::json!({ "n": i }),
            metadata: None,
            traceparent: None,
            tracestate: None,
        })
        .collect();
    client
        .append(
            "ship-1",
            &Append {
                expected_version: serde_json::json!("any"),
                events,
            },
        )
        .unwrap();

    let (code, out) = weir(
        &http,
        &["create", "$ce-ship", "g", "--start-from", "0", "--json"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["last_known"],
        3
    );
    let (code, out) = weir(
        &http,
        &["read", "$ce-ship", "g", "-c", "a", "--max", "3", "--json"],
    );
    assert_eq!(code, 0, "{out}");
    let got = json_lines(&out);
    assert_eq!(got.len(), 3);
    let id = |i: usize| got[i]["ack_id"].as_str().unwrap().to_owned();
    let (code, out) = weir(&http, &["ack", "$ce-ship", "g", "-c", "a", &id(0), &id(1)]);
    assert_eq!((code, out.trim()), (0, "2 acked"));
    let (code, _) = weir(&http, &["ack", "$ce-ship", "g", "-c", "b", &id(2)]);
    assert_eq!(code, 4, "b does not hold it");
    let (code, out) = weir(
        &http,
        &[
            "nack",
            "$ce-ship",
            "g",
            "-c",
            "a",
            "--action",
            "park",
            "--reason",
            "no address",
            &id(2),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = weir(&http, &["info", "$ce-ship", "g", "--json"]);
    assert_eq!(code, 0);
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (info["checkpoint"].as_i64(), info["parked"].as_u64()),
        (Some(3), Some(1))
    );
    let (code, out) = weir(&http, &["replay-parked", "$ce-ship", "g"]);
    assert_eq!((code, out.trim()), (0, "1 to be replayed"));
    let (code, out) = weir(&http, &["read", "$ce-ship", "g", "-c", "a"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("p:0 retries=0 ship-1@2 Shipped"), "{out}");
    let (code, out) = weir(&http, &["list"]);
    assert!(code == 0 && out.contains("$ce-ship"), "{out}");
    let (code, _) = weir(&http, &["delete", "$ce-ship", "g"]);
    assert_eq!(code, 0);
    let (code, _) = weir(&http, &["info", "$ce-ship", "g"]);
    assert_eq!(code, 3, "an unknown group");
}
