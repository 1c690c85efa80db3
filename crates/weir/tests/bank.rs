//! The bank demonstration (D2) through the SDK's user-facing API on the
//! embedded backend: the demo itself, a balance as of a simulated past
//! date, and the scenarios of `bank_scenarios` (overdrafts refused with
//! nothing appended, concurrent withdrawals that never overdraw,
//! snapshots, transfers that finish after a crash between their steps,
//! the projections), which `weir-cli`'s `tests/remote.rs` runs against a
//! server too.

#[macro_use]
mod bank_scenarios;

use std::sync::Arc;

use weir::demo::bank::{Bank, BankConfig, TransferStatus, run_demo};
use weir::{Client, ClientConfig, ManualClock};

/// A fresh data directory; each client opens it in turn.
struct Dir(tempfile::TempDir);

impl bank_scenarios::Store for Dir {
    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::open(self.0.path())?)
    }
}

fn dir() -> anyhow::Result<Dir> {
    Ok(Dir(tempfile::tempdir()?))
}

bank_scenario_tests!(dir());

fn bank(client: &Client) -> anyhow::Result<Bank> {
    Ok(Bank::open(client, BankConfig::default())?)
}

#[test]
fn the_demo_runs_and_reports_balances_now_as_of_and_the_statement() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut out = Vec::new();
    let report = run_demo(dir.path(), &mut out)?;
    let text = String::from_utf8(out)?;
    // alice: 1000 - 120 - 200 = 680, +1% = 686.80; bob: 250 + 200 (the
    // 50 to closed carol came back) = 450; carol: 0.
    assert_eq!(
        report.balances,
        vec![
            ("alice".to_owned(), 68_680),
            ("bob".to_owned(), 45_000),
            ("carol".to_owned(), 0)
        ]
    );
    assert_eq!(report.alice_as_of, ("2026-01-04".to_owned(), 88_000));
    assert_eq!(report.account_suffix, "");
    assert!(
        report.refused_withdrawal.contains("insufficient funds"),
        "{}",
        report.refused_withdrawal
    );
    assert_eq!(report.reversed_transfer.status, TransferStatus::Reversed);
    let kinds: Vec<&str> = report
        .alice_statement
        .iter()
        .map(|l| l.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "MoneyDeposited",
            "MoneyWithdrawn",
            "TransferDebited",
            "InterestApplied"
        ]
    );
    assert_eq!(
        report.alice_statement.last().map(|l| l.balance),
        Some(68_680)
    );
    assert!(report.alice_statement[0].time.starts_with("2026-01-01"));
    for needle in [
        "balances now",
        "as of 2026-01-04: 880.00",
        "statement",
        "dashboard",
        "686.80",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    // A second run in the same directory refuses instead of mixing runs.
    assert!(run_demo(dir.path(), &mut Vec::new()).is_err());
    Ok(())
}

#[test]
fn balance_as_of_a_past_date() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_000_000);
    let client = Client::open_with(
        dir.path(),
        ClientConfig {
            clock: Some(Arc::new(clock.clone())),
            ..ClientConfig::default()
        },
    )?;
    let bank = bank(&client)?;
    bank.open_account("t", "Tim")?;
    bank.deposit("t", 100)?;
    clock.set(2_000_000);
    bank.deposit("t", 50)?;
    clock.set(3_000_000);
    bank.withdraw("t", 30)?;
    assert_eq!(bank.balance_as_of("t", 999_999)?, 0);
    assert_eq!(bank.balance_as_of("t", 1_500_000)?, 100);
    assert_eq!(bank.balance_as_of("t", 2_000_000)?, 150);
    assert_eq!(bank.balance_as_of("t", 4_000_000)?, 120);
    assert_eq!(bank.balance("t")?, 120);
    Ok(())
}
