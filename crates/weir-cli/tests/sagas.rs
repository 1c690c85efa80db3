//! `weir saga list|show|resume` against a real `weir serve`, on sagas the
//! SDK's runner drives through the remote client as a user's service
//! would: one completes; others park because undoing a charge keeps
//! failing. The operator lists and filters them, reads one's steps and
//! events, is refused resuming a saga that is not parked (exit 4) or does
//! not exist (exit 3), and resumes the parked one: the runner then
//! compensates it to the end.

mod common;

use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::saga::{RunnerConfig, SagaDefinition, SagaRunner, Status};
use weir::{Client, ClientConfig, Failure, RetryPolicy};

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

/// Runs `weir ARGS` (split at spaces) against `server`, with `user` as
/// `$USER` (`None`: unset).
fn weir_as(server: &str, args: &str, user: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args.split_whitespace())
        .env("WEIR_SERVER", server)
        .env_remove("WEIR_CONFIG");
    match user {
        Some(u) => cmd.env("USER", u),
        None => cmd.env_remove("USER"),
    };
    common::run_with_stdin(&mut cmd, "")
}

fn weir(server: &str, args: &str) -> Output {
    weir_as(server, args, Some("tester"))
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

fn failed(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    /// The shipment is refused, so the saga compensates.
    ship_fails: bool,
}

/// reserve → charge → ship; undoing the charge fails while `payments_down`.
fn definition(payments_down: &Arc<AtomicBool>) -> SagaDefinition<Order> {
    let quick = |attempts| RetryPolicy {
        attempts,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    let down = payments_down.clone();
    SagaDefinition::<Order>::new("order")
        .retry(quick(2))
        .compensation_retry(quick(2))
        .step("reserve", |_, _: &Order| Ok("reserved"), |_, _| Ok(()))
        .step(
            "charge",
            |_, _: &Order| Ok("charged"),
            move |_, _| {
                if down.load(Ordering::SeqCst) {
                    Err(Failure::transient("payments down"))
                } else {
                    Ok(())
                }
            },
        )
        .step(
            "ship",
            |_, o: &Order| {
                if o.ship_fails {
                    Err(Failure::permanent("no courier"))
                } else {
                    Ok("shipped")
                }
            },
            |_, _| Ok(()),
        )
}

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn operators_list_show_and_resume_sagas() {
    let dir = tempfile::tempdir().unwrap();
    let (child, http) = common::start_serve_http(dir.path(), &[]);
    let s = Server {
        child,
        http,
        _dir: dir,
    };
    let read_models = tempfile::tempdir().unwrap();
    let client = Client::connect_with(
        &s.http,
        ClientConfig {
            read_models_dir: Some(read_models.path().to_owned()),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let payments_down = Arc::new(AtomicBool::new(true));
    let runner = SagaRunner::new(&client, RunnerConfig::default())
        .with(definition(&payments_down))
        .unwrap()
        .start()
        .unwrap();
    for (id, ship_fails) in [("o-1", true), ("o-2", false), ("o-3", true), ("o-4", true)] {
        runner
            .start_saga("order", id, &Order { ship_fails })
            .unwrap();
    }
    let status = |id| runner.wait(id, WAIT).unwrap().status;
    assert_eq!(status("o-1"), Status::Parked);
    assert_eq!(status("o-2"), Status::Completed);
    assert_eq!(status("o-3"), Status::Parked);
    assert_eq!(status("o-4"), Status::Parked);

    // The table, in the order the sagas started.
    let list = ok(weir(&s.http, "saga list"));
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(4).collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["o-1", "order", "parked", "charge"],
            ["o-2", "order", "completed", "-"],
            ["o-3", "order", "parked", "charge"],
            ["o-4", "order", "parked", "charge"],
        ],
        "{list}"
    );
    assert!(
        list.lines()
            .nth(1)
            .unwrap()
            .ends_with("compensation of charge failed: payments down"),
        "{list}"
    );
    let parked = ok(weir(&s.http, "saga list --status parked"));
    assert_eq!(parked.lines().count(), 4, "{parked}");
    assert!(!parked.contains("o-2"), "{parked}");
    let none = ok(weir(&s.http, "saga list --type payment"));
    assert_eq!(none.lines().count(), 1, "{none}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(weir(&s.http, "saga list --status completed --json"))).unwrap();
    assert_eq!(json["sagas"][0]["id"], "o-2");
    assert_eq!(json["sagas"].as_array().unwrap().len(), 1);
    // --max stops early, and says so.
    let out = weir(&s.http, "saga list --max 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max 2"));
    assert_eq!(ok(out).lines().count(), 3);
    failed(&weir(&s.http, "saga list --status stuck"), 2, "stuck");

    // One saga: summary, steps, events.
    let shown = ok(weir(&s.http, "saga show o-1"));
    assert!(
        shown.starts_with("saga o-1 (order): parked at step charge\n"),
        "{shown}"
    );
    assert!(
        shown.contains("reason: compensation of charge failed: payments down"),
        "{shown}"
    );
    let step = |name: &str| -> Vec<String> {
        let line = shown
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no step {name} in {shown}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(
        step("reserve")[..5],
        ["reserve", "succeeded", "1", "not_started", "0"]
    );
    assert_eq!(
        step("charge"),
        [
            "charge",
            "succeeded",
            "1",
            "failed",
            "2",
            "payments",
            "down"
        ]
    );
    assert_eq!(
        step("ship"),
        ["ship", "failed", "1", "not_needed", "0", "no", "courier"]
    );
    let events: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|t| t.starts_with("Saga"))
        .collect();
    assert_eq!(events.first(), Some(&"SagaStarted"), "{shown}");
    assert_eq!(events.last(), Some(&"SagaParked"), "{shown}");
    // Then its timeline: every saga event, by causation, from the
    // correlation index (the saga id is the correlation id).
    let (_, tree) = shown
        .split_once("\ncorrelation o-1: ")
        .unwrap_or_else(|| panic!("no timeline in {shown}"));
    let tree_events: Vec<&str> = tree
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(tree_events.len(), events.len(), "{shown}");
    assert_eq!(tree_events.first(), Some(&"SagaStarted"), "{shown}");
    assert!(tree.contains("saga-o-1@0"), "{shown}");
    let bare = ok(weir(&s.http, "saga show o-1 --no-timeline"));
    assert!(!bare.contains("correlation o-1"), "{bare}");
    assert!(shown.starts_with(&bare), "{bare}");

    // Refusals: not parked (4), no such saga (3), a bad id (1).
    failed(&weir(&s.http, "saga resume o-2"), 4, "saga_not_parked");
    failed(&weir(&s.http, "saga resume nope"), 3, "saga_not_found");
    failed(&weir(&s.http, "saga show nope"), 3, "saga_not_found");
    failed(&weir(&s.http, "saga show bad!id"), 1, "invalid_saga_id");

    // The operator fixed payments and resumes o-1: the runner undoes the
    // charge, then the reservation.
    payments_down.store(false, Ordering::SeqCst);
    let resumed = ok(weir(&s.http, "saga resume o-1 --by alice"));
    assert!(
        resumed.starts_with("resumed saga o-1 (order) as alice: now compensating"),
        "{resumed}"
    );
    assert_eq!(status("o-1"), Status::Compensated);
    let detail: serde_json::Value =
        serde_json::from_str(&ok(weir(&s.http, "saga show o-1 --json"))).unwrap();
    assert_eq!(detail["saga"]["status"], "compensated");
    let resumes: Vec<_> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "SagaResumed")
        .map(|e| e["data"]["by"].clone())
        .collect();
    assert_eq!(resumes, [serde_json::json!("alice")]);
    // Resumed already.
    failed(&weir(&s.http, "saga resume o-1"), 4, "saga_not_parked");

    // Without --by: $USER, else "operator".
    let by = |id: &str| {
        let detail = client_detail(&s.http, id);
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e["type"] == "SagaResumed")
            .map(|e| e["data"]["by"].clone())
    };
    let json: serde_json::Value = serde_json::from_str(&ok(weir_as(
        &s.http,
        "saga resume o-3 --json",
        Some("carol"),
    )))
    .unwrap();
    // (The runner may have finished it already.)
    assert!(
        ["compensating", "compensated"].contains(&json["status"].as_str().unwrap()),
        "{json}"
    );
    assert_eq!(by("o-3"), Some(serde_json::json!("carol")));
    ok(weir_as(&s.http, "saga resume o-4", None));
    assert_eq!(by("o-4"), Some(serde_json::json!("operator")));
    assert_eq!(status("o-3"), Status::Compensated);
    assert_eq!(status("o-4"), Status::Compensated);
    runner.stop();
}

fn client_detail(http: &str, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(weir(http, &format!("saga show {id} --json")))).unwrap()
}
