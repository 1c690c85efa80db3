//! D2, the bank account: an event-sourced account (opened, deposited,
//! withdrawn, interest, transfers, closed) whose invariant is that it
//! never overdraws; snapshots; the balance as of a past date; a statement
//! projection and a dashboard projection; transfers as a small process
//! manager; and an idempotent notifier.
//!
//! # Event notification vs event-carried state transfer (P14)
//!
//! Every account event carries the balance after it (`balance_after`):
//! that is *event-carried state transfer*. The dashboard projection keeps
//! a row per account by upserting what the event carries, without asking
//! the account for anything; it stays right even if an event is applied
//! twice (an upsert of the same values is a no-op: natural idempotency),
//! and it keeps working while the source is busy or gone. Use it when
//! consumers need the state and the state is small.
//!
//! The [`Notifier`] instead treats a withdrawal as an *event
//! notification*: it learns only that something happened to an account,
//! and calls back to the source of truth (it loads the account) for the
//! details it needs now, here the owner's name for a large-withdrawal
//! alert. Use it when the state is large, sensitive or changes often, and
//! consumers need only some of it; the price is a call back and a
//! coupling to the source at handling time. Its effects add up (alerts),
//! so it records the events it processed (an idempotent consumer).
//!
//! # Transfers
//!
//! A transfer is a process manager with its own stream (`transfer-<id>`):
//! it records that it started, debits the source, records that, credits
//! the target, and records completion; if the target refuses the credit
//! (a closed account) it reverses the debit. Every command it sends
//! carries the transfer id as the correlation id and the transfer's
//! latest event as the cause. After a crash, [`Bank::resume_transfers`]
//! finds unfinished transfers and carries each on from its last recorded
//! step. A step that reached the account but was not recorded before the
//! crash is not done twice: each account remembers the transfer steps it
//! took (the newest [`TRANSFER_STEPS_REMEMBERED`]), so repeating one
//! decides nothing.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rusqlite::{Connection, OptionalExtension, Transaction, params};
use crate::{
    Aggregate, AsOf, Causation, Client, ClientConfig, CommandError, Envelope, Error, Executed,
    Handler, HandlerError, ManualClock, Op, Projection, Projector, ProjectorConfig, Query,
    Repository, RepositoryConfig, Select,
};

/// How many transfer steps an account remembers, to recognise a step
/// repeated after a crash.
pub const TRANSFER_STEPS_REMEMBERED: usize = 1_024;
/// A withdrawal of at least this many cents is reported by the notifier.
pub const LARGE_WITHDRAWAL_CENTS: u64 = 100_000;
/// How long a read waits for the projections to catch up.
const READ_WAIT: Duration = Duration::from_secs(10);

mod account;
mod script;
mod transfer;
mod views;

pub use account::*;
pub use script::*;
pub use transfer::*;
pub use views::*;

// ----- the bank -----

/// Settings of the bank.
#[derive(Debug, Clone, Copy)]
pub struct BankConfig {
    /// Snapshot an account every this many events.
    pub snapshot_every: u64,
    /// Tries of one command when writers conflict.
    pub attempts_max: u32,
}

impl Default for BankConfig {
    fn default() -> Self {
        Self {
            snapshot_every: 50,
            attempts_max: 64,
        }
    }
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferOutcome {
    pub transfer_id: String,
    pub status: TransferStatus,
    pub reason: Option<String>,
}

/// One line of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub version: u64,
    pub time: String,
    pub kind: String,
    /// Signed cents.
    pub amount: i64,
    pub balance: u64,
    pub correlation: String,
}

/// The bank's accounts, transfers and read models over one client.
#[derive(Debug)]
pub struct Bank {
    client: Client,
    pub accounts: Repository<Account>,
    pub transfers: Repository<Transfer>,
    pub statement: Projector<Statement>,
    pub dashboard: Projector<Dashboard>,
}

type Result<T, E = CommandError<BankError>> = std::result::Result<T, E>;

impl Bank {
    pub fn open(client: &Client, config: BankConfig) -> std::result::Result<Self, Error> {
        let repo = RepositoryConfig {
            snapshot_every: config.snapshot_every,
            attempts_max: config.attempts_max,
            ..RepositoryConfig::default()
        };
        Ok(Self {
            client: client.clone(),
            accounts: client.repository(repo),
            transfers: client.repository(repo),
            statement: client.projector(Statement, ProjectorConfig::default())?,
            dashboard: client.projector(Dashboard, ProjectorConfig::default())?,
        })
    }

    fn account(&self, id: &str, command: AccountCommand) -> Result<Executed<Account>> {
        self.account_with(id, command, &Causation::new())
    }

    fn account_with(
        &self,
        id: &str,
        command: AccountCommand,
        causation: &Causation,
    ) -> Result<Executed<Account>> {
        self.accounts
            .execute_with(id, &(id.to_owned(), command), causation)
    }

    pub fn open_account(&self, id: &str, owner: &str) -> Result<Executed<Account>> {
        self.account(
            id,
            AccountCommand::Open {
                owner: owner.to_owned(),
            },
        )
    }

    pub fn deposit(&self, id: &str, amount: u64) -> Result<Executed<Account>> {
        self.account(id, AccountCommand::Deposit { amount })
    }

    pub fn withdraw(&self, id: &str, amount: u64) -> Result<Executed<Account>> {
        self.account(id, AccountCommand::Withdraw { amount })
    }

    pub fn apply_interest(&self, id: &str, rate_bp: u32) -> Result<Executed<Account>> {
        self.account(id, AccountCommand::ApplyInterest { rate_bp })
    }

    pub fn close(&self, id: &str) -> Result<Executed<Account>> {
        self.account(id, AccountCommand::Close)
    }

    /// The balance now, in cents.
    pub fn balance(&self, id: &str) -> std::result::Result<u64, Error> {
        Ok(self.accounts.load(id)?.state.balance)
    }

    /// The balance as it was at `time_ms` (ms since the Unix epoch).
    pub fn balance_as_of(&self, id: &str, time_ms: i64) -> std::result::Result<u64, Error> {
        Ok(self
            .accounts
            .load_as_of(id, AsOf::Time(time_ms))?
            .state
            .balance)
    }

    /// Starts a transfer and runs it to its end.
    pub fn transfer(&self, from: &str, to: &str, amount: u64) -> Result<TransferOutcome> {
        let id = self.start_transfer(from, to, amount)?;
        self.run_transfer(&id)
    }

    /// Records a new transfer and returns its id (which is also the
    /// correlation id of everything it causes); nothing moves yet.
    pub fn start_transfer(&self, from: &str, to: &str, amount: u64) -> Result<String> {
        check_amount(amount).map_err(CommandError::Rejected)?;
        let id = crate::new_id();
        self.transfers
            .execute_with(
                &id,
                &TransferCommand::Start {
                    from: from.to_owned(),
                    to: to.to_owned(),
                    amount,
                },
                &Causation::correlated(&id),
            )
            .map_err(out_of_order)?;
        Ok(id)
    }

    /// Runs a transfer's remaining steps.
    pub fn run_transfer(&self, id: &str) -> Result<TransferOutcome> {
        loop {
            let t = self.step_transfer(id)?;
            if t.status.is_done() {
                return Ok(TransferOutcome {
                    transfer_id: id.to_owned(),
                    status: t.status,
                    reason: t.reason,
                });
            }
        }
    }

    /// Takes one step of a transfer and records it; returns its state.
    pub fn step_transfer(&self, id: &str) -> Result<Transfer> {
        let loaded = self.transfers.load(id)?;
        let t = loaded.state;
        if t.status.is_done() {
            return Ok(t);
        }
        // Everything this step causes is caused by the transfer's latest
        // event and correlated by the transfer id.
        let stream = self.transfers.stream(id);
        let latest = self
            .client
            .read_stream(&stream, loaded.version.unwrap_or(0), 1)?;
        let causation = latest
            .first()
            .map(Causation::caused_by)
            .unwrap_or_else(|| Causation::correlated(id));
        let refused = |e: BankError| StepRefused {
            reason: e.to_string(),
        };
        let record = match t.status {
            TransferStatus::New => {
                return Err(Error::Store(crate::StoreError::StreamNotFound { stream }).into());
            }
            TransferStatus::Started => {
                let debit = AccountCommand::TransferDebit {
                    transfer_id: id.to_owned(),
                    to: t.to.clone(),
                    amount: t.amount,
                };
                match self.account_with(&t.from, debit, &causation) {
                    Ok(_) => TransferEvent::Debited(StepRecorded {}),
                    Err(CommandError::Rejected(e)) => TransferEvent::DebitRefused(refused(e)),
                    Err(e) => return Err(e),
                }
            }
            TransferStatus::Debited => {
                let credit = AccountCommand::TransferCredit {
                    transfer_id: id.to_owned(),
                    from: t.from.clone(),
                    amount: t.amount,
                };
                match self.account_with(&t.to, credit, &causation) {
                    Ok(_) => TransferEvent::Completed(StepRecorded {}),
                    Err(CommandError::Rejected(e)) => TransferEvent::CreditRefused(refused(e)),
                    Err(e) => return Err(e),
                }
            }
            TransferStatus::CreditRefused => {
                let reverse = AccountCommand::TransferReverse {
                    transfer_id: id.to_owned(),
                    to: t.to.clone(),
                    amount: t.amount,
                };
                self.account_with(&t.from, reverse, &causation)?;
                TransferEvent::Reversed(StepRecorded {})
            }
            TransferStatus::Completed | TransferStatus::DebitRefused | TransferStatus::Reversed => {
                return Ok(t);
            }
        };
        let done = self
            .transfers
            .execute_with(id, &TransferCommand::Record(record), &causation)
            .map_err(out_of_order)?;
        Ok(done.state)
    }

    /// Finds every transfer that has not ended (after a crash) and runs
    /// it to its end.
    pub fn resume_transfers(&self) -> Result<Vec<TransferOutcome>> {
        let mut open: BTreeMap<String, ()> = BTreeMap::new();
        let mut from = 0;
        loop {
            let page = self.client.read_category(Transfer::CATEGORY, from, 1_000)?;
            let Some(last) = page.last().and_then(Envelope::position) else {
                break;
            };
            for e in &page {
                let id = e.subject.clone().unwrap_or_default();
                match e.decode::<TransferEvent>().map_err(CommandError::Failed)? {
                    TransferEvent::Started(_) => {
                        open.insert(id, ());
                    }
                    TransferEvent::Completed(_)
                    | TransferEvent::DebitRefused(_)
                    | TransferEvent::Reversed(_) => {
                        open.remove(&id);
                    }
                    _ => {}
                }
            }
            from = last + 1;
        }
        open.keys().map(|id| self.run_transfer(id)).collect()
    }

    /// An account's statement, oldest line first, once the statement
    /// has caught up with everything written so far (read-your-writes).
    pub fn statement(&self, id: &str) -> std::result::Result<Vec<StatementLine>, Error> {
        self.catch_up()?;
        let page = self.statement.select(
            &Select::from("statement")
                .filter("account", Op::Eq, id.to_owned())
                .order_by("version")
                .limit(crate::PAGE_ROWS_MAX),
        )?;
        Ok(page
            .rows
            .iter()
            .map(|r| StatementLine {
                version: r["version"].as_u64().unwrap_or(0),
                time: r["time"].as_str().unwrap_or("").to_owned(),
                kind: r["kind"].as_str().unwrap_or("").to_owned(),
                amount: r["amount"].as_i64().unwrap_or(0),
                balance: r["balance"].as_u64().unwrap_or(0),
                correlation: r["correlation"].as_str().unwrap_or("").to_owned(),
            })
            .collect())
    }

    /// Waits until both projections applied every event written so far.
    pub fn catch_up(&self) -> std::result::Result<(), Error> {
        let head = self.client.head_position()?;
        if head > 0 {
            self.statement.wait_for(head - 1, READ_WAIT)?;
            self.dashboard.wait_for(head - 1, READ_WAIT)?;
        }
        Ok(())
    }

    /// The dashboard's balance of an account, if it has one.
    pub fn dashboard_balance(&self, id: &str) -> std::result::Result<Option<u64>, Error> {
        self.catch_up()?;
        self.dashboard.read(|c| {
            c.query_row(
                "SELECT balance FROM accounts WHERE account = ?1",
                [id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|b| b.map(|b| b as u64))
        })
    }
}

fn out_of_order(e: CommandError<TransferOutOfOrder>) -> CommandError<BankError> {
    match e {
        CommandError::Failed(e) => CommandError::Failed(e),
        CommandError::Rejected(e) => CommandError::Failed(Error::Handler {
            name: "transfer".to_owned(),
            id: String::new(),
            position: 0,
            reason: e.to_string(),
        }),
    }
}

/// Cents as `1234.56`.
pub fn cents(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        c.unsigned_abs() / 100,
        c.unsigned_abs() % 100
    )
}
