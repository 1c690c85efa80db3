//! `weir demo bank` as a user runs it: it prints the balances now, a
//! balance as of a past date and a statement, and keeps its data where
//! `--data-dir` says (refusing to run twice into the same directory).

mod common;

use std::process::Command;

#[test]
fn demo_bank_prints_balances_as_of_and_the_statement() -> anyhow::Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["demo", "bank"])
        .env("WEIR_LOG", "warn")
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "balances now:",
        "alice      686.80",
        "alice's balance as of 2026-01-04: 880.00",
        "alice's statement:",
        "TransferDebited           -200.00     680.00",
        "refused: insufficient funds",
        "transfer Reversed (account carol is closed)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    Ok(())
}

#[test]
fn demo_bank_keeps_its_data_dir_and_refuses_to_mix_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["demo", "bank", "--data-dir"])
            .arg(dir.path())
            .env("WEIR_LOG", "warn")
            .output()
    };
    assert!(run()?.status.success());
    assert!(dir.path().join("__weir_events-0").is_dir());
    let again = run()?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty data directory"));
    Ok(())
}

/// The table line of `row` in `weir demo docs`'s output: its upload p50
/// and p99 in ms.
fn upload_latencies(text: &str, row: &str) -> (f64, f64) {
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no {row:?} row in:\n{text}"));
    let ms: Vec<f64> = line[row.len()..]
        .split(" ms")
        .filter_map(|part| part.split_whitespace().last()?.parse().ok())
        .collect();
    (ms[0], ms[1])
}

#[test]
fn demo_docs_uploads_stay_fast_while_the_email_step_is_slow() -> anyhow::Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "demo",
            "docs",
            "--email-delay-ms",
            "2000",
            "--outage-ms",
            "1500",
            "--uploads",
            "40",
        ])
        .env("WEIR_LOG", "warn")
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The synchronous chain waits for the 2 s email in every request.
    let (sync_p50, _) = upload_latencies(&text, "synchronous chain");
    assert!(sync_p50 >= 2000.0, "{text}");
    // Event-driven, the upload only publishes: milliseconds.
    let (_, event_p99) = upload_latencies(&text, "event-driven on Weir");
    assert!(event_p99 < 50.0, "upload p99 {event_p99} ms:\n{text}");
    for needle in [
        "the email breaker opened and the notifier paused its partitions",
        "39 of 39 documents indexed and counted meanwhile",
        "the 39 waiting notifications were sent",
        "none dead-lettered",
        ".uploaded.dlq (1 dead letter): text extraction: scan-legacy.pdf",
        "(permanent, 1 attempt)",
        "replayed 1 dead letter through the HTTP API",
        "80 emails sent (0 redelivered and not sent again)",
        "84 uploads counted by analytics",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    Ok(())
}

#[test]
fn demo_docs_runs_against_a_running_server() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut server, kafka, http) =
        common::start_serve_kafka_http(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]);
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["demo", "docs", "--server", &http, "--kafka", &kafka])
        .args([
            "--email-delay-ms",
            "300",
            "--outage-ms",
            "500",
            "--uploads",
            "8",
        ])
        .env("WEIR_LOG", "warn")
        .output()?;
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("the document pipeline on {kafka}")),
        "{text}"
    );
    for needle in [
        "replayed 1 dead letter through the HTTP API",
        "16 emails sent (0 redelivered and not sent again)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    Ok(())
}
