//! The bank scenarios (D2) written once against a [`Store`], so the same
//! code runs on the embedded backend (`tests/bank.rs`) and against a real
//! `weir serve` through the remote backend (`weir-cli`'s
//! `tests/remote.rs`, which includes this file by path): overdrafts
//! refused with nothing appended, concurrent withdrawals that never
//! overdraw, snapshots, balances as of a past time, transfers (with a
//! reversal, and finishing after a crash between their steps), and the
//! statement and dashboard projections.

#![allow(dead_code, reason = "each including test file runs its own subset")]

use std::sync::Arc;
use std::time::Duration;

use weir::demo::bank::{Account, AccountCommand, Bank, BankConfig, BankError, TransferStatus};
use weir::{Causation, Client, CommandError};

/// A fresh event store the scenarios run on.
pub trait Store {
    /// A client on the store. A scenario drops one client before asking
    /// for the next, as a process that stops and starts again does (an
    /// embedded store is locked while a client has it open).
    fn client(&self) -> anyhow::Result<Client>;
}

fn bank(client: &Client) -> anyhow::Result<Bank> {
    Ok(Bank::open(client, BankConfig::default())?)
}

pub fn an_overdraft_is_refused_with_a_clear_error_and_appends_nothing(
    store: &impl Store,
) -> anyhow::Result<()> {
    let client = store.client()?;
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

pub fn concurrent_withdrawals_never_overdraw(store: &impl Store) -> anyhow::Result<()> {
    let client = store.client()?;
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
    assert_eq!(statement.len(), 1 + 14);
    for pair in statement.windows(2) {
        assert_eq!(
            pair[1].balance as i64,
            pair[0].balance as i64 + pair[1].amount
        );
    }
    assert_eq!(bank.dashboard_balance("hot")?, Some(20));
    Ok(())
}

pub fn accounts_are_snapshotted_every_n_events_and_load_from_the_snapshot(
    store: &impl Store,
) -> anyhow::Result<()> {
    let client = store.client()?;
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

/// When the store recorded the newest event of `stream`.
fn last_recorded_ms(client: &Client, stream: &str) -> anyhow::Result<i64> {
    let events = client.read_stream(stream, 0, 1_000)?;
    let last = events.last().and_then(|e| e.recorded.as_ref());
    Ok(last.expect("the stream has events").recorded_ms)
}

/// As of past times on whatever clock the store records by: each step is
/// a few milliseconds after the one before, and the balance as of the
/// time a step was recorded includes it and nothing after it.
pub fn balance_as_of_the_times_events_were_recorded(store: &impl Store) -> anyhow::Result<()> {
    let client = store.client()?;
    let bank = bank(&client)?;
    let stream = bank.accounts.stream("t");
    let pause = || std::thread::sleep(Duration::from_millis(5));
    bank.open_account("t", "Tim")?;
    pause();
    bank.deposit("t", 100)?;
    let deposited = last_recorded_ms(&client, &stream)?;
    pause();
    bank.deposit("t", 50)?;
    let topped_up = last_recorded_ms(&client, &stream)?;
    pause();
    bank.withdraw("t", 30)?;
    let withdrawn = last_recorded_ms(&client, &stream)?;
    assert!(deposited < topped_up && topped_up < withdrawn);
    assert_eq!(bank.balance_as_of("t", deposited - 1)?, 0);
    assert_eq!(bank.balance_as_of("t", deposited)?, 100);
    assert_eq!(bank.balance_as_of("t", topped_up)?, 150);
    assert_eq!(bank.balance_as_of("t", withdrawn - 1)?, 150);
    assert_eq!(bank.balance_as_of("t", withdrawn)?, 120);
    assert_eq!(bank.balance("t")?, 120);
    assert_eq!(bank.balance_as_of("nobody", withdrawn)?, 0);
    Ok(())
}

pub fn a_transfer_moves_money_and_correlates_everything_by_its_id(
    store: &impl Store,
) -> anyhow::Result<()> {
    let client = store.client()?;
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

/// One correlation read by its index (`Client::read_correlation`) is the
/// same as a scan of all events for it, and `Client::timeline` puts each
/// event under the one that caused it. A chain longer than a server's page
/// makes the remote backend page.
pub fn a_transfers_timeline_reads_by_its_correlation_id_as_a_tree(
    store: &impl Store,
) -> anyhow::Result<()> {
    use weir::demo::bank::{AccountEvent, Opened};
    use weir::{Envelope, ExpectedVersion, StoreError};
    let client = store.client()?;
    let bank = bank(&client)?;
    bank.open_account("x", "Xi")?;
    bank.deposit("x", 300)?;
    bank.open_account("y", "Yu")?;
    let t = bank.transfer("x", "y", 120)?;
    bank.transfer("y", "x", 20)?;
    let scan: Vec<_> = client
        .read_all(0, 1_000)?
        .into_iter()
        .filter(|e| e.correlationid == t.transfer_id)
        .collect();
    assert_eq!(scan.len(), 5, "{scan:#?}");
    assert_eq!(client.read_correlation(&t.transfer_id, 0, 100)?, scan);
    let third = scan[2].recorded.as_ref().expect("read events are recorded");
    assert_eq!(
        client.read_correlation(&t.transfer_id, third.position, 2)?,
        scan[2..4]
    );
    let timeline = client.timeline(&t.transfer_id, 1_000)?;
    assert_eq!(timeline.len(), 5);
    for (i, node) in timeline.nodes().iter().enumerate() {
        assert_eq!(node.event, scan[i]);
        let cause = node.event.causationid.as_deref();
        let parent = scan.iter().position(|e| Some(e.id.as_str()) == cause);
        assert_eq!(node.parent, parent, "{}", node.event.event_type);
    }
    assert_eq!(
        timeline.node(timeline.roots()[0]).event.event_type,
        "TransferStarted"
    );
    assert_eq!(
        timeline.node(1).depth,
        1,
        "TransferDebited under TransferStarted"
    );

    // A chain of 12, each caused by the one before, across two streams.
    let mut cause = Causation::correlated("chain-1");
    for i in 0..12 {
        let event = AccountEvent::Opened(Opened {
            owner: format!("o{i}"),
        });
        let envelope = Envelope::new(&event, "/test", &cause)?;
        client.append(
            &format!("chain-{}", i % 2),
            ExpectedVersion::Any,
            &[envelope],
        )?;
        let written = client.read_stream(&format!("chain-{}", i % 2), (i / 2) as u64, 1)?;
        cause = Causation::caused_by(&written[0]);
    }
    let chain = client.timeline("chain-1", 1_000)?;
    let depths: Vec<usize> = chain.depth_first().map(|(d, _)| d).collect();
    assert_eq!(depths, (0..12).collect::<Vec<_>>());
    assert_eq!(chain.roots().len(), 1);
    assert_eq!(
        client.timeline("chain-1", 5)?.len(),
        5,
        "at most max_events"
    );

    assert!(client.read_correlation("nobody", 0, 10)?.is_empty());
    match client.read_correlation("", 0, 10) {
        Err(weir::Error::Store(StoreError::InvalidCorrelationId { .. })) => {}
        other => panic!("{other:?}"),
    }
    Ok(())
}

pub fn a_credit_refused_by_a_closed_account_reverses_the_debit(
    store: &impl Store,
) -> anyhow::Result<()> {
    let client = store.client()?;
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
    let lines = bank.statement("x")?;
    let kinds: Vec<&str> = lines.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["MoneyDeposited", "TransferDebited", "TransferDebitReversed"]
    );
    let amounts: Vec<(i64, u64)> = lines.iter().map(|l| (l.amount, l.balance)).collect();
    assert_eq!(amounts, [(300, 300), (-100, 200), (100, 300)]);
    assert!(lines[1..].iter().all(|l| l.correlation == t.transfer_id));
    Ok(())
}

pub fn a_transfer_stopped_between_steps_completes_after_reopening(
    store: &impl Store,
) -> anyhow::Result<()> {
    let id = {
        let client = store.client()?;
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
    let client = store.client()?;
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

pub fn a_debit_done_but_not_recorded_before_a_crash_is_not_done_twice(
    store: &impl Store,
) -> anyhow::Result<()> {
    {
        let client = store.client()?;
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
    let client = store.client()?;
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

pub fn account_state_survives_reopening_with_snapshots(store: &impl Store) -> anyhow::Result<()> {
    {
        let client = store.client()?;
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
    let client = store.client()?;
    let repo = client.repository::<Account>(weir::RepositoryConfig::default());
    let loaded = repo.load("r")?;
    assert_eq!(loaded.state.balance, 35);
    assert_eq!(loaded.snapshot_version, Some(5));
    Ok(())
}

pub fn a_long_history_without_a_snapshot_gets_one_at_the_next_command(
    store: &impl Store,
) -> anyhow::Result<()> {
    let client = store.client()?;
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

pub fn the_dashboard_answers_a_typed_query_with_versions(store: &impl Store) -> anyhow::Result<()> {
    use weir::demo::bank::RichestAccounts;
    let client = store.client()?;
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

/// Expands to one `#[test]` per scenario, each on a fresh store from
/// `$store` (an expression giving `anyhow::Result<impl Store>`); the
/// including file declares the module with `#[macro_use]`.
macro_rules! bank_scenario_tests {
    ($store:expr) => {
        bank_scenario_tests!(@each $store;
            an_overdraft_is_refused_with_a_clear_error_and_appends_nothing,
            concurrent_withdrawals_never_overdraw,
            accounts_are_snapshotted_every_n_events_and_load_from_the_snapshot,
            balance_as_of_the_times_events_were_recorded,
            a_transfer_moves_money_and_correlates_everything_by_its_id,
            a_transfers_timeline_reads_by_its_correlation_id_as_a_tree,
            a_credit_refused_by_a_closed_account_reverses_the_debit,
            a_transfer_stopped_between_steps_completes_after_reopening,
            a_debit_done_but_not_recorded_before_a_crash_is_not_done_twice,
            account_state_survives_reopening_with_snapshots,
            a_long_history_without_a_snapshot_gets_one_at_the_next_command,
            the_dashboard_answers_a_typed_query_with_versions,
        );
    };
    (@each $store:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() -> anyhow::Result<()> {
                bank_scenarios::$name(&$store?)
            }
        )*
    };
}
