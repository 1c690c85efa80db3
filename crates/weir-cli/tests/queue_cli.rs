//! `weir queue` against a running `weir serve`: claim prints the records
//! (JSON lines with `--json`), ack/nack/extend act on one, pending lists
//! what is held, autoclaim takes idle records, and the exit codes say
//! 4 for a record not held and 3 for an unknown topic.

mod common;

use std::process::Command;

use weir_api::{CreateTopic, Produce, ProduceRecord};
use weir_client::Client;

fn weir(http: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("queue")
        .args(args)
        .args(["--server", http])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn queue_commands_claim_ack_nack_and_list() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, http) = common::start_serve_http(tmp.path(), &[]);
    let _serve = Killed(child);
    let client = Client::new(&http).unwrap();
    client
        .create_topic(&CreateTopic {
            name: "jobs".into(),
            partitions: Some(1),
            configs: Default::default(),
        })
        .unwrap();
    let records = (0..3)
        .map(|i| ProduceRecord {
            key: Some(format!("k{i}")),
            value: Some(serde_json::json!({ "n": i })),
            value_base64: None,
            headers: Default::default(),
            partition: None,
        })
        .collect();
    client.produce("jobs", &Produce { records }).unwrap();

    let (code, out) = weir(
        &http,
        &[
            "claim", "w", "jobs", "-c", "a", "--max", "3", "--start", "earliest", "--json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let claimed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(claimed.len(), 3);
    assert_eq!(claimed[2]["key"], "k2");
    assert_eq!(claimed[2]["value"]["n"], 2);

    let (code, out) = weir(&http, &["ack", "w", "jobs", "-c", "a", "-o", "0"]);
    assert_eq!((code, out.trim()), (0, "0/0 accepted"));
    let (code, _) = weir(&http, &["ack", "w", "jobs", "-c", "a", "-o", "0"]);
    assert_eq!(code, 4, "no longer held");
    let (code, out) = weir(
        &http,
        &["nack", "w", "jobs", "-c", "a", "-o", "1", "--reject"],
    );
    assert_eq!((code, out.trim()), (0, "0/1 rejected"));
    let (code, out) = weir(
        &http,
        &[
            "extend",
            "w",
            "jobs",
            "-c",
            "a",
            "-o",
            "2",
            "--lock-ms",
            "60000",
        ],
    );
    assert_eq!((code, out.trim()), (0, "0/2 extended"));
    let (code, out) = weir(&http, &["pending", "w"]);
    assert_eq!(code, 0);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    let fields: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(fields[..4], ["jobs", "0", "2", "a"], "{out}");
    std::thread::sleep(std::time::Duration::from_millis(150));
    let (code, out) = weir(
        &http,
        &["autoclaim", "w", "jobs", "-c", "b", "--min-idle-ms", "100"],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("0/2 deliveries=2 key=k2"), "{out}");
    let (code, _) = weir(&http, &["claim", "w", "nope", "-c", "a"]);
    assert_eq!(code, 3);
    let (code, out) = weir(&http, &["delete", "w"]);
    assert_eq!(
        (code, out.trim()),
        (0, "queue group w deleted (1 partitions)")
    );
    let (code, out) = weir(&http, &["pending", "w"]);
    assert_eq!((code, out.lines().count()), (0, 1), "{out}");
    let (code, _) = weir(&http, &["delete", "w"]);
    assert_eq!(code, 3);
}

/// Kills `weir serve` when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
