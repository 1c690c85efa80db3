//! The order saga killed at every effect, by orchestration and by
//! choreography: `weir demo orders` aborts right after an effect is
//! committed in a service's database (before the saga or the next service
//! hears of it), then runs again on the same data directory and resumes.
//! Every order ends confirmed or cancelled as its scenario says, and every
//! effect is applied exactly once (the crashed one was called twice and
//! recognised by its idempotency key). Also: the showcase runs against a
//! `weir serve`, and a saga whose compensation keeps failing is parked.

mod common;

use std::process::{Command, Output};

fn demo(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["demo", "orders", "--data-dir"])
        .arg(dir)
        .args(args)
        .env("WEIR_LOG", "error")
        .output()
        .unwrap()
}

/// The effects line of an order's report: `what xN [(M calls)]` items.
fn effects(text: &str) -> Vec<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("effects: "))
        .unwrap_or_else(|| panic!("no effects in:\n{text}"))
        .split(", ")
        .map(str::to_owned)
        .collect()
}

#[test]
fn killed_at_every_effect_then_resumed_every_effect_applies_once() {
    // (scenario's failing step, the effects it ends with, its outcome)
    let scenarios: [(Option<&str>, &[&str], &str); 2] = [
        (None, &["place", "reserve", "charge", "ship"], "confirmed"),
        (
            Some("ship"),
            &["place", "reserve", "charge", "refund", "release", "cancel"],
            "cancelled",
        ),
    ];
    for style in ["orchestration", "choreography"] {
        for (fail_at, points, outcome) in scenarios {
            let mut points: Vec<&str> = points.to_vec();
            if style == "choreography" && outcome == "confirmed" {
                points.push("confirm");
            }
            for point in points {
                let dir = tempfile::tempdir().unwrap();
                let id = format!("o-{point}");
                let mut args = vec!["--order-id", &id, "--style", style];
                if let Some(f) = fail_at {
                    args.extend(["--fail-at", f]);
                }
                let what = format!("{style}, failing at {fail_at:?}, killed after {point}");
                let crashed = demo(dir.path(), &[&args[..], &["--crash-at", point]].concat());
                assert!(
                    !crashed.status.success(),
                    "{what}: it did not crash: {}",
                    String::from_utf8_lossy(&crashed.stdout)
                );
                let resumed = demo(dir.path(), &args);
                let text = String::from_utf8_lossy(&resumed.stdout).into_owned();
                assert!(
                    resumed.status.success(),
                    "{what}: {text}\n{}",
                    String::from_utf8_lossy(&resumed.stderr)
                );
                assert!(
                    text.contains(&format!("by {style}: {outcome}")),
                    "{what}: {text}"
                );
                let effects = effects(&text);
                for e in &effects {
                    assert!(e.contains(" x1"), "{what}: applied more than once: {e}");
                }
                let crashed_effect = effects
                    .iter()
                    .find(|e| e.starts_with(&format!("{point} ")))
                    .unwrap_or_else(|| panic!("{what}: no {point} in {effects:?}"));
                assert!(
                    crashed_effect.ends_with("(2 calls)"),
                    "{what}: the crashed effect was not called again: {crashed_effect}"
                );
            }
        }
    }
}

#[test]
fn the_showcase_runs_against_a_running_server() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, http) = common::start_serve_http(data.path(), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["demo", "orders", "--server", &http])
        .env("WEIR_LOG", "error")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "by orchestration: confirmed",
        "by orchestration: cancelled",
        "by choreography: confirmed",
        "by choreography: cancelled",
        "SagaCompensationSucceeded charge",
        "PaymentRefunded",
        "effects: place x1, cancel x1, reserve x1, release x1, charge x1, refund x1",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

/// A failure at each step, by both styles: exactly the steps that had an
/// effect are compensated, last first, and nothing else happens.
#[test]
fn a_failure_at_each_step_compensates_exactly_what_came_before_in_reverse() {
    // (failing step, effects in the end, the order the timeline shows by
    // orchestration, and by choreography)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let cases: [Case<'_>; 3] = [
        (
            "reserve",
            &["place x1", "cancel x1"],
            &["SagaCompensationSucceeded place"],
            &["StockRejected", "OrderCancelled"],
        ),
        (
            "charge",
            &["place x1", "cancel x1", "reserve x1", "release x1"],
            &[
                "SagaCompensationSucceeded reserve",
                "SagaCompensationSucceeded place",
            ],
            &["PaymentDeclined", "StockReleased", "OrderCancelled"],
        ),
        (
            "ship",
            &[
                "place x1",
                "cancel x1",
                "reserve x1",
                "release x1",
                "charge x1",
                "refund x1",
            ],
            &[
                "SagaCompensationSucceeded charge",
                "SagaCompensationSucceeded reserve",
                "SagaCompensationSucceeded place",
            ],
            &[
                "ShipmentFailed",
                "PaymentRefunded",
                "StockReleased",
                "OrderCancelled",
            ],
        ),
    ];
    for (fail_at, effects_expected, orchestrated, choreographed) in cases {
        for (style, order) in [
            ("orchestration", orchestrated),
            ("choreography", choreographed),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let out = demo(
                dir.path(),
                &["--order-id", "f-1", "--style", style, "--fail-at", fail_at],
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "{style} {fail_at}: {text}");
            assert!(
                text.contains("f-1 by") && text.contains(": cancelled"),
                "{text}"
            );
            let mut got = effects(&text);
            got.sort();
            let mut want: Vec<String> = effects_expected.iter().map(|s| (*s).to_owned()).collect();
            want.sort();
            assert_eq!(got, want, "{style} failing at {fail_at}: {text}");
            // The compensations in the timeline, in this order.
            let positions: Vec<usize> = order
                .iter()
                .map(|needle| {
                    text.find(needle)
                        .unwrap_or_else(|| panic!("{style} {fail_at}: no {needle} in {text}"))
                })
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "{style} failing at {fail_at}: out of order: {text}"
            );
        }
    }
}
