//! The bank demonstration (D2) through the SDK's user-facing API: the
//! demo itself, overdrafts refused with nothing appended, concurrent
//! withdrawals that never overdraw, snapshots, balances as of a past
//! date, and transfers that finish after a crash between their steps.

use std::sync::Arc;

use weir::demo::bank::{
    Account, AccountCommand, Bank, BankConfig, BankError, TransferStatus, run_demo,
};
use weir::{Causation, Client, ClientConfig, CommandError, ManualClock};

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
fn an_overdraft_is_refused_with_a_clear_error_and_appends_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let bank = bank(&client)?;
    bank.open_account("a", "Ann")?;
    bank.deposit("a", 500)?;
    let before = client.head_position()?;
    match bank.withdraw("a", 501) {
        Err(CommandError::Rejected(BankError::InsufficientFunds {
            account,
            balance,
            amount,
        })) => {
            assert_eq!((account.as_str(), balance, amount), ("a", 500, 501));
        }
        other => panic!("expected insufficient funds, got {other:?}"),
    }
    assert_eq!(
        client.head_position()?,
        before,
        "a refused command appended"
    );
    assert_eq!(bank.accounts.load("a")?.version, Some(1));
    let err = bank.withdraw("a", 501).unwrap_err().to_string();
    assert!(
        err.contains("insufficient funds") && err.contains("500"),
        "{err}"
    );
    assert!(matches!(
        bank.deposit("nobody", 5),
        Err(CommandError::Rejected(BankError::NotOpen(_)))
    ));
    Ok(())
}

#[test]
fn concurrent_withdrawals_never_overdraw() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let bank = Arc::new(bank(&client)?);
    // Two banks, so two repositories: the threads of one take turns on
    // the account, and race the other's on its expected version.
    let rival = Arc::new(self::bank(&client)?);
    bank.open_account("hot", "Hot")?;
    bank.deposit("hot", 1_000)?;
    let threads = 16;
    let tries = 3;
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let bank = if i % 2 == 0 {
                bank.clone()
            } else {
                rival.clone()
            };
            std::thread::spawn(move || {
                let mut ok = 0u64;
                let mut refused = 0u64;
                for _ in 0..tries {
                    match bank.withdraw("hot", 70) {
                        Ok(done) => {
                            ok += 1;
                            assert!(done.state.balance <= 1_000);
                        }
                        Err(CommandError::Rejected(BankError::InsufficientFunds { .. })) => {
                            refused += 1
                        }
                        Err(e) => panic!("withdrawal failed: {e}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for h in handles {
        let (o, r) = h.join().expect("a withdrawing thread panicked");
        ok += o;
        refused += r;
    }
    // 1000 / 70: exactly 14 withdrawals fit; the other 34 are refused.
    assert_eq!((ok, refused), (14, threads * tries - 14));
    assert_eq!(bank.balance("hot")?, 1_000 - 14 * 70);
    // Every balance the account ever had is >= 0 and each step is the one
    // before minus 70: no withdrawal was based on a stale balance.
    let statement = bank.statement("hot")?;
    for pair in statement.windows(2) {
        assert_eq!(
            pair[1].balance as i64,
            pair[0].balance as i64 + pair[1].amount
        );
    }
    assert_eq!(bank.dashboard_balance("hot")?, Some(20));
    Ok(())
}

#[test]
fn accounts_are_snapshotted_every_n_events_and_load_from_the_snapshot() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let bank = Bank::open(
        &client,
        BankConfig {
            snapshot_every: 10,
            ..BankConfig::default()
        },
    )?;
    bank.open_account("s", "Sam")?;
    for _ in 0..24 {
        bank.deposit("s", 10)?;
    }
    // 25 events (versions 0..=24): snapshots at 10 and 20 events.
    let loaded = bank.accounts.load("s")?;
    assert_eq!(loaded.version, Some(24));
    assert_eq!(loaded.snapshot_version, Some(19));
    assert_eq!(loaded.events_applied, 5);
    assert_eq!(loaded.state.balance, 240);
    // The same state from events alone.
    let full = bank
        .accounts
        .load_as_of("s", weir::AsOf::Position(u64::MAX))?;
    assert_eq!(full.state, loaded.state);
    assert_eq!(full.events_applied, 25);
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

#[test]
fn a_transfer_moves_money_and_correlates_everything_by_its_id() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let bank = bank(&client)?;
    bank.open_account("x", "Xi")?;
    bank.deposit("x", 300)?;
    bank.open_account("y", "Yu")?;
    let t = bank.transfer("x", "y", 120)?;
    assert_eq!(t.status, TransferStatus::Completed);
    assert_eq!((bank.balance("x")?, bank.balance("y")?), (180, 120));
    let correlated: Vec<_> = client
        .read_all(0, 1_000)?
        .into_iter()
        .filter(|e| e.correlationid == t.transfer_id)
        .collect();
    let types: Vec<&str> = correlated.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "TransferStarted",
            "TransferDebited",
            "TransferSourceDebited",
            "TransferCredited",
            "TransferCompleted"
        ]
    );
    // Each step is caused by the transfer event before it.
    assert_eq!(
        correlated[1].causationid.as_deref(),
        Some(correlated[0].id.as_str())
    );
    assert_eq!(
        correlated[3].causationid.as_deref(),
        Some(correlated[2].id.as_str())
    );
    // Refused at the source: nothing moves.
    let t = bank.transfer("x", "y", 1_000)?;
    assert_eq!(t.status, TransferStatus::DebitRefused);
    assert_eq!((bank.balance("x")?, bank.balance("y")?), (180, 120));
    Ok(())
}

#[test]
fn a_credit_refused_by_a_closed_account_reverses_the_debit() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let bank = bank(&client)?;
    bank.open_account("x", "Xi")?;
    bank.deposit("x", 300)?;
    bank.open_account("gone", "Gone")?;
    bank.close("gone")?;
    let t = bank.transfer("x", "gone", 100)?;
    assert_eq!(t.status, TransferStatus::Reversed);
    assert!(
        t.reason.as_deref().unwrap_or("").contains("closed"),
        "{t:?}"
    );
    assert_eq!((bank.balance("x")?, bank.balance("gone")?), (300, 0));
    let kinds: Vec<String> = bank.statement("x")?.into_iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        ["MoneyDeposited", "TransferDebited", "TransferDebitReversed"]
    );
    Ok(())
}

#[test]
fn a_transfer_stopped_between_steps_completes_after_reopening() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let id = {
        let client = Client::open(dir.path())?;
        let bank = bank(&client)?;
        bank.open_account("x", "Xi")?;
        bank.deposit("x", 300)?;
        bank.open_account("y", "Yu")?;
        let id = bank.start_transfer("x", "y", 100)?;
        let t = bank.step_transfer(&id)?;
        assert_eq!(t.status, TransferStatus::Debited);
        assert_eq!((bank.balance("x")?, bank.balance("y")?), (200, 0));
        id
        // The process stops here: the credit was never sent.
    };
    let client = Client::open(dir.path())?;
    let bank = bank(&client)?;
    let resumed = bank.resume_transfers()?;
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].transfer_id, id);
    assert_eq!(resumed[0].status, TransferStatus::Completed);
    assert_eq!((bank.balance("x")?, bank.balance("y")?), (200, 100));
    assert!(
        bank.resume_transfers()?.is_empty(),
        "a finished transfer resumed again"
    );
    Ok(())
}

#[test]
fn a_debit_done_but_not_recorded_before_a_crash_is_not_done_twice() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let client = Client::open(dir.path())?;
        let bank = bank(&client)?;
        bank.open_account("x", "Xi")?;
        bank.deposit("x", 300)?;
        bank.open_account("y", "Yu")?;
        let id = bank.start_transfer("x", "y", 100)?;
        // What the process manager's first step sends, then the crash:
        // the debit is in the account, the transfer never recorded it.
        bank.accounts.execute_with(
            "x",
            &(
                "x".to_owned(),
                AccountCommand::TransferDebit {
                    transfer_id: id.clone(),
                    to: "y".to_owned(),
                    amount: 100,
                },
            ),
            &Causation::correlated(&id),
        )?;
        assert_eq!(bank.balance("x")?, 200);
    }
    let client = Client::open(dir.path())?;
    let bank = bank(&client)?;
    let resumed = bank.resume_transfers()?;
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, TransferStatus::Completed);
    assert_eq!((bank.balance("x")?, bank.balance("y")?), (200, 100));
    let debits = client
        .read_stream("account-x", 0, 100)?
        .into_iter()
        .filter(|e| e.event_type == "TransferDebited")
        .count();
    assert_eq!(debits, 1);
    Ok(())
}

#[test]
fn account_state_survives_reopening_with_snapshots() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let client = Client::open(dir.path())?;
        let bank = Bank::open(
            &client,
            BankConfig {
                snapshot_every: 3,
                ..BankConfig::default()
            },
        )?;
        bank.open_account("r", "Ria")?;
        for _ in 0..7 {
            bank.deposit("r", 5)?;
        }
    }
    let client = Client::open(dir.path())?;
    let repo = client.repository::<Account>(weir::RepositoryConfig::default());
    let loaded = repo.load("r")?;
    assert_eq!(loaded.state.balance, 35);
    assert_eq!(loaded.snapshot_version, Some(5));
    Ok(())
}

#[test]
fn a_long_history_without_a_snapshot_gets_one_at_the_next_command() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let never = Bank::open(
        &client,
        BankConfig {
            snapshot_every: 0,
            ..BankConfig::default()
        },
    )?;
    never.open_account("h", "Hal")?;
    for _ in 0..30 {
        never.deposit("h", 1)?;
    }
    assert_eq!(never.accounts.load("h")?.snapshot_version, None);
    let every_10 = Bank::open(
        &client,
        BankConfig {
            snapshot_every: 10,
            ..BankConfig::default()
        },
    )?;
    every_10.deposit("h", 1)?;
    let loaded = every_10.accounts.load("h")?;
    assert_eq!(
        (loaded.snapshot_version, loaded.events_applied),
        (Some(31), 0)
    );
    assert_eq!(loaded.state.balance, 31);
    Ok(())
}

#[test]
fn the_dashboard_answers_a_typed_query_with_versions() -> anyhow::Result<()> {
    use weir::demo::bank::RichestAccounts;
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let bank = bank(&client)?;
    for (id, amount) in [("p", 300), ("q", 100), ("r", 200)] {
        bank.open_account(id, &id.to_uppercase())?;
        bank.deposit(id, amount)?;
    }
    bank.withdraw("q", 50)?;
    bank.catch_up()?;
    let top = bank.dashboard.ask(&RichestAccounts { limit: 2 })?;
    let rows: Vec<(&str, &str, u64, u64)> = top
        .iter()
        .map(|a| (a.account.as_str(), a.owner.as_str(), a.balance, a.version))
        .collect();
    assert_eq!(rows, [("p", "P", 300, 1), ("r", "R", 200, 1)]);
    let all = bank.dashboard.ask(&RichestAccounts { limit: 10 })?;
    assert_eq!(
        (all[2].account.as_str(), all[2].balance, all[2].version),
        ("q", 50, 2)
    );
    Ok(())
}
