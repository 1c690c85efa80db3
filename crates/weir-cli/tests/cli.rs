//! The `weir` API subcommands end to end against a real `weir serve`:
//! topics, produce from standard input and consume, stream appends, reads
//! and deletes, with their tables, `--json` output and exit codes.

mod common;

use std::process::{Command, Output, Stdio};

struct Server {
    child: std::process::Child,
    http: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (child, http) = common::start_serve_http(dir.path(), &[]);
    Server {
        child,
        http,
        _dir: dir,
    }
}

/// Runs `weir ARGS` (split at spaces) against `server` with `stdin`.
fn weir(server: &str, args: &str, stdin: &str) -> Output {
    common::run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args.split_whitespace())
            .env("WEIR_SERVER", server)
            .env_remove("WEIR_CONFIG"),
        stdin,
    )
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn topics_produce_and_consume() {
    let s = server();
    let out = ok(weir(
        &s.http,
        "topic create orders --partitions 3 -c retention.ms=3600000",
        "",
    ));
    assert!(
        out.contains("created topic orders with 3 partitions"),
        "{out}"
    );
    let again = weir(&s.http, "topic create orders", "");
    assert_eq!(code(&again), 4, "an existing topic is a conflict");
    assert!(String::from_utf8_lossy(&again.stderr).contains("topic_already_exists"));

    let list = ok(weir(&s.http, "topic list", ""));
    assert!(list.lines().any(|l| l.starts_with("orders ")), "{list}");
    assert!(
        !list.contains("__weir_events"),
        "internal topics only with --internal"
    );
    assert!(ok(weir(&s.http, "topic list --internal", "")).contains("__weir_events"));

    // 300 keyed lines, in requests of 64.
    let input: String = (0..300)
        .map(|i| format!("key-{}:value {i}\n", i % 10))
        .collect();
    let produced = ok(weir(
        &s.http,
        "produce orders -K : --batch 64 --json",
        &input,
    ));
    let offsets = json_lines(&produced);
    assert_eq!(offsets.len(), 300);

    let consumed = json_lines(&ok(weir(&s.http, "consume orders --json", "")));
    assert_eq!(consumed.len(), 300);
    // Every record once; a key always in one partition; each key's values
    // in the order produced.
    let mut by_key: std::collections::HashMap<String, (i64, Vec<String>)> = Default::default();
    for r in &consumed {
        let key = r["key"].as_str().unwrap().to_owned();
        let value = String::from_utf8(
            base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                r["value_base64"].as_str().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let entry = by_key
            .entry(key)
            .or_insert((r["partition"].as_i64().unwrap(), vec![]));
        assert_eq!(entry.0, r["partition"].as_i64().unwrap());
        entry.1.push(value);
    }
    assert_eq!(by_key.len(), 10);
    for (key, (_, values)) in &by_key {
        let n: usize = key.strip_prefix("key-").unwrap().parse().unwrap();
        let expected: Vec<String> = (0..300)
            .filter(|i| i % 10 == n)
            .map(|i| format!("value {i}"))
            .collect();
        assert_eq!(values, &expected, "{key}");
    }

    let describe = ok(weir(&s.http, "topic describe orders --json", ""));
    let info: serde_json::Value = serde_json::from_str(&describe).unwrap();
    let ends: i64 = info["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["end_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(ends, 300);
    assert_eq!(info["configs"]["retention.ms"], "3600000");

    // --max, a partition, an offset, latest, and a time in the future.
    let text = ok(weir(&s.http, "consume orders --max 5", ""));
    assert_eq!(text.lines().count(), 5);
    assert!(text.lines().all(|l| l.split('\t').count() == 3), "{text}");
    let p0: Vec<_> = json_lines(&ok(weir(
        &s.http,
        "consume orders -p 0 --from 2 --json",
        "",
    )));
    assert!(
        p0.iter()
            .all(|r| r["partition"] == 0 && r["offset"].as_i64().unwrap() >= 2)
    );
    assert_eq!(ok(weir(&s.http, "consume orders --from latest", "")), "");
    assert_eq!(
        ok(weir(
            &s.http,
            "consume orders --from 2999-01-01T00:00:00Z",
            ""
        )),
        ""
    );

    // Errors: a missing topic, a bad --from, an unreachable server.
    assert_eq!(code(&weir(&s.http, "topic describe nope", "")), 3);
    assert_eq!(code(&weir(&s.http, "consume nope", "")), 3);
    assert_eq!(code(&weir(&s.http, "consume orders --from soon", "")), 1);
    let closed = format!("127.0.0.1:{}", common::free_port());
    assert_eq!(code(&weir(&closed, "topic list", "")), 5);

    // More than one fetch page (500) of one partition, read to the end.
    ok(weir(&s.http, "topic create long --partitions 1", ""));
    let lines: String = (0..1200).map(|i| format!("{i}\n")).collect();
    ok(weir(&s.http, "produce long", &lines));
    let all = ok(weir(&s.http, "consume long", ""));
    assert_eq!(all.lines().count(), 1200);

    ok(weir(&s.http, "topic delete orders", ""));
    assert_eq!(code(&weir(&s.http, "topic describe orders", "")), 3);
}

#[test]
fn streams_append_read_and_delete() {
    let s = server();
    let out = ok(weir(
        &s.http,
        r#"stream append account-1 -e no_stream -t Opened -d {"owner":"ada"} --id e-1"#,
        "",
    ));
    assert!(
        out.contains("appended versions 0..=0 of account-1"),
        "{out}"
    );
    // A retry with the same id is answered with the first result.
    let retry = ok(weir(
        &s.http,
        r#"stream append account-1 -e no_stream -t Opened -d {"owner":"ada"} --id e-1 --json"#,
        "",
    ));
    let retry: serde_json::Value = serde_json::from_str(&retry).unwrap();
    assert_eq!(retry["first_version"], 0);

    // Several events from standard input, as one append.
    let events = "{\"type\":\"Deposited\",\"data\":{\"amount\":10}}\n\n{\"type\":\"Deposited\",\"data\":{\"amount\":5},\"id\":\"e-3\"}\n";
    let out = ok(weir(&s.http, "stream append account-1 -e 0", events));
    assert!(out.contains("appended versions 1..=2"), "{out}");

    // A stale expected version is a conflict (exit 4), naming both versions.
    let stale = weir(
        &s.http,
        "stream append account-1 -e 0 -t Deposited -d {}",
        "",
    );
    assert_eq!(code(&stale), 4);
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(err.contains("wrong_expected_version"), "{err}");
    // A bad event line is refused before anything is sent.
    let bad = weir(&s.http, "stream append account-1", "{\"type\":1}\n");
    assert_eq!(code(&bad), 1);

    ok(weir(&s.http, "stream append order-9 -t Placed -d {}", ""));

    let read = json_lines(&ok(weir(&s.http, "stream read account-1 --json", "")));
    assert_eq!(
        read.iter()
            .map(|e| e["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(read[1]["data"]["amount"], 10);
    let back = json_lines(&ok(weir(
        &s.http,
        "stream read account-1 --backward --max 2 --json",
        "",
    )));
    assert_eq!(
        back.iter()
            .map(|e| e["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    let table = ok(weir(&s.http, "stream read account-1", ""));
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .starts_with("account-1@0\t#0\t"),
        "{table}"
    );

    let all = json_lines(&ok(weir(&s.http, "stream read-all --json", "")));
    assert_eq!(all.len(), 4);
    let category = json_lines(&ok(weir(
        &s.http,
        "stream read-all --category account --json",
        "",
    )));
    assert_eq!(category.len(), 3);
    let deposits = json_lines(&ok(weir(
        &s.http,
        "stream read-all --type Deposited --from 2 --json",
        "",
    )));
    assert_eq!(deposits.len(), 1);
    assert_eq!(deposits[0]["position"], 2);

    // Soft delete, then the stream reads as absent (exit 3) and can be
    // written again; a tombstone is for good.
    ok(weir(&s.http, "stream delete account-1 -e 2", ""));
    assert_eq!(code(&weir(&s.http, "stream read account-1", "")), 3);
    ok(weir(
        &s.http,
        "stream append account-1 -e no_stream -t Opened -d {}",
        "",
    ));
    let again = json_lines(&ok(weir(&s.http, "stream read account-1 --json", "")));
    assert_eq!(
        again
            .iter()
            .map(|e| e["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [3]
    );
    ok(weir(&s.http, "stream tombstone order-9", ""));
    assert_eq!(code(&weir(&s.http, "stream read order-9", "")), 3);
    assert_eq!(
        code(&weir(&s.http, "stream append order-9 -t Placed -d {}", "")),
        3
    );
}

#[test]
fn groups_configs_metadata_and_live_streams() {
    let s = server();
    ok(weir(&s.http, "topic create t --partitions 2", ""));
    let input: String = (0..20).map(|i| format!("k{}:v{i}\n", i % 4)).collect();
    ok(weir(&s.http, "produce t -K :", &input));

    // A consumer that keeps its place in group g: 5 records, then the rest.
    let first = json_lines(&ok(weir(&s.http, "consume t --group g --max 5 --json", "")));
    assert_eq!(first.len(), 5);
    let info: serde_json::Value =
        serde_json::from_str(&ok(weir(&s.http, "group describe g --json", ""))).unwrap();
    // Committed: where it stopped in each partition it read from.
    let committed: i64 = info["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, 5, "{info}");
    let rest = json_lines(&ok(weir(&s.http, "consume t --group g --json", "")));
    assert_eq!(rest.len(), 15);
    let mut seen: Vec<(i64, i64)> = first
        .iter()
        .chain(&rest)
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "every record once across the two runs");
    assert!(
        ok(weir(&s.http, "group list", ""))
            .lines()
            .any(|l| l.starts_with("g "))
    );
    let table = ok(weir(&s.http, "group describe g", ""));
    assert!(table.contains("LAG"), "{table}");

    // Resets: a dry run changes nothing; --execute does.
    let dry = ok(weir(&s.http, "group reset-offsets g --to-earliest", ""));
    assert!(dry.contains("dry run"), "{dry}");
    let lag = |s: &Server| -> i64 {
        let info: serde_json::Value =
            serde_json::from_str(&ok(weir(&s.http, "group describe g --json", ""))).unwrap();
        info["lag_total"].as_i64().unwrap()
    };
    assert_eq!(lag(&s), 0);
    ok(weir(
        &s.http,
        "group reset-offsets g --to-earliest --execute",
        "",
    ));
    assert_eq!(lag(&s), 20);
    ok(weir(
        &s.http,
        "group reset-offsets g --to-latest --topic t:1 --execute",
        "",
    ));
    let info: serde_json::Value =
        serde_json::from_str(&ok(weir(&s.http, "group describe g --json", ""))).unwrap();
    let p0_end = info["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == 0)
        .unwrap()["end_offset"]
        .as_i64()
        .unwrap();
    assert_eq!(
        info["lag_total"].as_i64().unwrap(),
        p0_end,
        "partition 1 skipped to its end"
    );
    ok(weir(
        &s.http,
        "group reset-offsets g --shift-by -1 --topic t:1 --execute",
        "",
    ));
    assert_eq!(lag(&s), p0_end + 1);
    assert_eq!(
        code(&weir(&s.http, "group reset-offsets g", "")),
        2,
        "a reset needs a target"
    );
    ok(weir(&s.http, "group delete g", ""));
    assert_eq!(code(&weir(&s.http, "group describe g", "")), 3);

    // Topic configs: set, reset, and a bad one refused whole.
    ok(weir(&s.http, "topic alter t --set retention.ms=1000", ""));
    let info: serde_json::Value =
        serde_json::from_str(&ok(weir(&s.http, "topic describe t --json", ""))).unwrap();
    assert_eq!(info["configs"]["retention.ms"], "1000");
    ok(weir(&s.http, "topic alter t --reset retention.ms", ""));
    let bad = weir(
        &s.http,
        "topic alter t --set retention.ms=5 --set no.such.config=1",
        "",
    );
    assert_eq!(code(&bad), 1);
    let info: serde_json::Value =
        serde_json::from_str(&ok(weir(&s.http, "topic describe t --json", ""))).unwrap();
    assert_ne!(info["configs"]["retention.ms"], "5");

    // Stream settings: changed ones, kept ones, cleared.
    for i in 0..3 {
        ok(weir(
            &s.http,
            &format!("stream append acct-1 -t T -d {{\"n\":{i}}}"),
            "",
        ));
    }
    ok(weir(&s.http, "stream meta acct-1 --max-count 2", ""));
    let shown = ok(weir(&s.http, "stream meta acct-1 --truncate-before 0", ""));
    assert!(shown.contains("max_count 2"), "{shown}");
    assert_eq!(
        json_lines(&ok(weir(&s.http, "stream read acct-1 --json", ""))).len(),
        2
    );
    ok(weir(&s.http, "stream meta acct-1 --clear", ""));
    assert_eq!(
        json_lines(&ok(weir(&s.http, "stream read acct-1 --json", ""))).len(),
        3
    );

    // Live: a subscriber catches up on three events, then gets two more
    // appended while it waits.
    let sub = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "stream",
            "subscribe",
            "--category",
            "acct",
            "--max",
            "5",
            "--json",
        ])
        .env("WEIR_SERVER", &s.http)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    ok(weir(&s.http, "stream append acct-2 -t T -d {}", ""));
    ok(weir(&s.http, "stream append other-1 -t T -d {}", ""));
    ok(weir(&s.http, "stream append acct-1 -t T -d {}", ""));
    let live = json_lines(&ok(sub.wait_with_output().unwrap()));
    let got: Vec<(String, u64)> = live
        .iter()
        .map(|e| {
            (
                e["stream"].as_str().unwrap().to_owned(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("acct-1".into(), 0),
            ("acct-1".into(), 1),
            ("acct-1".into(), 2),
            ("acct-2".into(), 0),
            ("acct-1".into(), 3)
        ]
    );
}

/// `weir dlq`: a dead letter written by kcat (any Kafka client can write
/// the format) fires the depth alert, and is listed, shown decoded and
/// replayed to its origin.
#[test]
fn dead_letters_listed_shown_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (child, kafka, http) = common::start_serve_kafka_http(
        dir.path(),
        &[
            "--alert-dead-letter-depth-max",
            "0",
            "--alert-interval-ms",
            "50",
        ],
    );
    let s = Server {
        child,
        http,
        _dir: dir,
    };
    ok(weir(&s.http, "topic create docs --partitions 1", ""));
    ok(weir(&s.http, "topic create docs.dlq --partitions 1", ""));
    let mut produce = vec![
        "-b", &kafka, "-P", "-t", "docs.dlq", "-p", "0", "-k", "doc-7",
    ];
    let headers = [
        "weir.dlq.error=mail server down",
        "weir.dlq.error.kind=transient",
        "weir.dlq.attempts=5",
        "weir.dlq.first.failure.ms=1000",
        "weir.dlq.last.failure.ms=9000",
        "weir.dlq.group=notifier",
        "weir.dlq.origin.topic=docs",
        "weir.dlq.origin.partition=0",
        "weir.dlq.origin.offset=41",
        "weir.dlq.origin.timestamp.ms=500",
    ];
    for h in &headers {
        produce.extend(["-H", h]);
    }
    let out = Command::new("kcat")
        .args(&produce)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"{\"id\":7}")?;
            c.wait_with_output()
        })
        .expect("kcat is installed by scripts/install-deps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The depth alert fires (threshold 0, evaluated every 50 ms).
    let client = weir_client::Client::new(&s.http).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let alerts = loop {
        let alerts: weir_api::AlertList = client.get("/v1/alerts", &[]).unwrap();
        if !alerts.alerts.is_empty() || std::time::Instant::now() > deadline {
            break alerts;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(alerts.dead_letter_depth_max, Some(0));
    assert_eq!(alerts.group_lag_max, None);
    let a = &alerts.alerts[..];
    assert_eq!(
        a.iter()
            .map(|a| (a.kind.as_str(), a.subject.as_str(), a.value, a.threshold))
            .collect::<Vec<_>>(),
        [("dead_letter_depth", "docs.dlq", 1, 0)]
    );
    let list = ok(weir(&s.http, "dlq list", ""));
    let row = list
        .lines()
        .find(|l| l.starts_with("docs.dlq"))
        .expect(&list);
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[..4], ["docs.dlq", "docs", "1", "1"], "{list}");
    let shown = ok(weir(&s.http, "dlq show docs.dlq", ""));
    assert!(
        shown.contains("0:0 from docs:0@41, group notifier, transient after 5 attempts (1970-01-01T00:00:01.000Z to 1970-01-01T00:00:09.000Z): mail server down"),
        "{shown}"
    );
    assert!(shown.contains("key \"doc-7\" value {\"id\":7}"), "{shown}");
    let replayed = ok(weir(&s.http, "dlq replay docs.dlq --all", ""));
    assert!(
        replayed.contains("replayed 1 dead letters from docs.dlq"),
        "{replayed}"
    );
    let back = json_lines(&ok(weir(
        &s.http,
        "consume docs --from earliest --max 1 --json",
        "",
    )));
    assert_eq!(back[0]["headers"]["weir.dlq.replayed.from"], "docs.dlq/0/0");
    assert_eq!(back[0]["value"], serde_json::json!({"id": 7}));
    // A dead-letter topic that does not exist: exit code 3.
    assert_eq!(code(&weir(&s.http, "dlq replay nothing.dlq --all", "")), 3);
    // --offset needs --partition (clap's usage error).
    assert_eq!(
        code(&weir(&s.http, "dlq replay docs.dlq --offset 0", "")),
        2
    );

    // Purge: never without --all or a partition range (usage errors, and
    // nothing purged).
    for args in [
        "dlq purge docs.dlq",
        "dlq purge docs.dlq --partition 0",
        "dlq purge docs.dlq --to-offset 1",
        "dlq purge docs.dlq --all --partition 0 --to-offset 1",
    ] {
        assert_eq!(code(&weir(&s.http, args, "")), 2, "{args}");
    }
    // Not a dead-letter topic (400: exit code 1), an offset past the end.
    assert_eq!(code(&weir(&s.http, "dlq purge docs --all", "")), 1);
    let past = weir(
        &s.http,
        "dlq purge docs.dlq --partition 0 --to-offset 2",
        "",
    );
    assert_eq!(code(&past), 1);
    assert!(
        String::from_utf8_lossy(&past.stderr).contains("high watermark"),
        "{past:?}"
    );
    let columns = |list: String| -> Vec<String> {
        let row = list.lines().find(|l| l.starts_with("docs.dlq")).unwrap();
        row.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(columns(ok(weir(&s.http, "dlq list", "")))[3], "1");
    // One more dead letter, then the first one purged (exclusive bound)...
    let status = Command::new("kcat")
        .args(["-b", &kafka, "-P", "-t", "docs.dlq", "-p", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"second")?;
            c.wait()
        })
        .unwrap();
    assert!(status.success());
    let purged = ok(weir(
        &s.http,
        "dlq purge docs.dlq --partition 0 --to-offset 1",
        "",
    ));
    assert!(
        purged.contains("purged 1 dead letters from docs.dlq")
            && purged.contains("partition 0: 1 purged, now starts at offset 1"),
        "{purged}"
    );
    assert_eq!(columns(ok(weir(&s.http, "dlq list", "")))[3], "1");
    // ...then all, answered as JSON.
    let all: serde_json::Value =
        serde_json::from_str(&ok(weir(&s.http, "dlq purge docs.dlq --all --json", ""))).unwrap();
    assert_eq!(
        all,
        serde_json::json!({"purged": 1, "partitions": [
            {"partition": 0, "purged": 1, "log_start_offset": 2}
        ]})
    );
    assert_eq!(columns(ok(weir(&s.http, "dlq list", "")))[3], "0");
    // A Kafka consumer from the beginning finds nothing left.
    let left = Command::new("kcat")
        .args([
            "-b",
            &kafka,
            "-C",
            "-t",
            "docs.dlq",
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(left.status.success() && left.stdout.is_empty(), "{left:?}");
}

#[test]
fn trace_prints_a_correlation_as_a_tree_by_causation() {
    // A page of 2 events, so `weir trace` must follow `next`.
    let dir = tempfile::tempdir().unwrap();
    let (child, http) = common::start_serve_http(dir.path(), &["--http-page-max", "2"]);
    let s = Server {
        child,
        http,
        _dir: dir,
    };
    let event = |stream: &str, id: &str, ty: &str, correlation: &str, cause: Option<&str>| {
        let mut metadata = serde_json::json!({"correlationid": correlation});
        if let Some(c) = cause {
            metadata["causationid"] = c.into();
        }
        let line = serde_json::json!({"id": id, "type": ty, "data": {}, "metadata": metadata});
        ok(weir(
            &s.http,
            &format!("stream append {stream}"),
            &line.to_string(),
        ));
    };
    event("order-1", "placed", "OrderPlaced", "saga-7", Some("cmd-1"));
    event(
        "stock-1",
        "reserved",
        "StockReserved",
        "saga-7",
        Some("placed"),
    );
    event(
        "pay-1",
        "charged",
        "PaymentCharged",
        "saga-7",
        Some("reserved"),
    );
    event("audit-1", "noted", "Noted", "saga-7", None);
    event(
        "stock-1",
        "released",
        "StockReleased",
        "saga-7",
        Some("placed"),
    );
    event("order-2", "other", "OrderPlaced", "saga-8", None);

    let out = ok(weir(&s.http, "trace saga-7", ""));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("correlation saga-7: 5 events, 2 roots"));
    // Each line is the recorded time, then the tree; the time is checked
    // for its shape, the rest exactly.
    let tree: Vec<&str> = lines
        .map(|l| {
            let (time, rest) = l.split_once("  ").expect("time first");
            assert!(time.ends_with('Z') && time.len() == 24, "{time}");
            rest
        })
        .collect();
    assert_eq!(
        tree,
        [
            "OrderPlaced  order-1@0  placed  <- cmd-1",
            "  StockReserved  stock-1@0  reserved",
            "    PaymentCharged  pay-1@0  charged",
            "  StockReleased  stock-1@1  released",
            "Noted  audit-1@0  noted",
        ],
        "{out}"
    );

    let doc: serde_json::Value =
        serde_json::from_str(&ok(weir(&s.http, "trace saga-7 --json", "")))
            .expect("one JSON document");
    assert_eq!(doc["correlation_id"], "saga-7");
    let walk: Vec<(u64, &str)> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["depth"].as_u64().unwrap(), e["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        walk,
        [
            (0, "placed"),
            (1, "reserved"),
            (2, "charged"),
            (1, "released"),
            (0, "noted")
        ]
    );
    assert_eq!(doc["events"][2]["causation_id"], "reserved");
    assert_eq!(doc["events"][2]["stream"], "pay-1");

    let some = ok(weir(&s.http, "trace saga-7 --max 3", ""));
    assert!(some.starts_with("correlation saga-7: 3 events"), "{some}");

    let none = weir(&s.http, "trace nobody", "");
    assert_eq!(code(&none), 3, "an unknown id is not found");
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no events with correlation id \"nobody\"")
    );
    let bad = weir(&s.http, &format!("trace {}", "x".repeat(257)), "");
    assert_eq!(code(&bad), 1);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid_correlation_id"));
}
