//! `weir demo bank` as a user runs it: it prints the balances now, a
//! balance as of a past date and a statement, and keeps its data where
//! `--data-dir` says (refusing to run twice into the same directory).

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
