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

// ----- events -----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub amount: u64,
    pub balance_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterestApplied {
    /// Basis points (1/100 of a percent).
    pub rate_bp: u32,
    pub amount: u64,
    pub balance_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferMoved {
    pub transfer_id: String,
    /// The other account.
    pub counterparty: String,
    pub amount: u64,
    pub balance_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {}

crate::events! {
    /// What happens to an account.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum AccountEvent {
        Opened(Opened) = "AccountOpened" v 1,
        Deposited(Moved) = "MoneyDeposited" v 1,
        Withdrawn(Moved) = "MoneyWithdrawn" v 1,
        Interest(InterestApplied) = "InterestApplied" v 1,
        TransferDebited(TransferMoved) = "TransferDebited" v 1,
        TransferCredited(TransferMoved) = "TransferCredited" v 1,
        TransferDebitReversed(TransferMoved) = "TransferDebitReversed" v 1,
        Closed(Closed) = "AccountClosed" v 1,
    }
}

impl AccountEvent {
    /// The balance the event leaves (event-carried state), if it moves
    /// money.
    pub fn balance_after(&self) -> Option<u64> {
        match self {
            Self::Deposited(m) | Self::Withdrawn(m) => Some(m.balance_after),
            Self::Interest(i) => Some(i.balance_after),
            Self::TransferDebited(t)
            | Self::TransferCredited(t)
            | Self::TransferDebitReversed(t) => Some(t.balance_after),
            Self::Opened(_) | Self::Closed(_) => None,
        }
    }

    /// The signed amount it moves, in cents.
    pub fn delta(&self) -> i64 {
        match self {
            Self::Deposited(m) => m.amount as i64,
            Self::Withdrawn(m) => -(m.amount as i64),
            Self::Interest(i) => i.amount as i64,
            Self::TransferCredited(t) | Self::TransferDebitReversed(t) => t.amount as i64,
            Self::TransferDebited(t) => -(t.amount as i64),
            Self::Opened(_) | Self::Closed(_) => 0,
        }
    }
}

// ----- the account aggregate -----

/// What can be asked of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Open {
        owner: String,
    },
    Deposit {
        amount: u64,
    },
    Withdraw {
        amount: u64,
    },
    ApplyInterest {
        rate_bp: u32,
    },
    /// Closing needs a zero balance.
    Close,
    TransferDebit {
        transfer_id: String,
        to: String,
        amount: u64,
    },
    TransferCredit {
        transfer_id: String,
        from: String,
        amount: u64,
    },
    TransferReverse {
        transfer_id: String,
        to: String,
        amount: u64,
    },
}

/// Why an account refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    #[error("no account {0} is open")]
    NotOpen(String),
    #[error("account {0} is already open")]
    AlreadyOpen(String),
    #[error("account {0} is closed")]
    Closed(String),
    #[error("insufficient funds: account {account} holds {balance} cents, {amount} cents asked")]
    InsufficientFunds {
        account: String,
        balance: u64,
        amount: u64,
    },
    #[error("an amount must be more than 0 and at most 10^15 cents, not {0}")]
    InvalidAmount(u64),
    #[error("interest rates are 0 to 10000 basis points, not {0}")]
    InvalidRate(u32),
    #[error("account {account} holds {balance} cents: withdraw it before closing")]
    NotEmpty { account: String, balance: u64 },
}

/// The largest amount one command moves, in cents (so sums stay far
/// from overflow).
pub const AMOUNT_CENTS_MAX: u64 = 1_000_000_000_000_000;

/// An account's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub owner: String,
    pub open: bool,
    pub closed: bool,
    /// Cents; never negative (the invariant).
    pub balance: u64,
    /// The newest transfer steps taken (`debit:<id>`, ...), oldest first.
    pub transfer_steps: VecDeque<String>,
}

impl Account {
    fn usable(&self, id: &str) -> Result<(), BankError> {
        if self.closed {
            return Err(BankError::Closed(id.to_owned()));
        }
        if !self.open {
            return Err(BankError::NotOpen(id.to_owned()));
        }
        Ok(())
    }

    fn took(&self, step: &str) -> bool {
        self.transfer_steps.iter().any(|s| s == step)
    }

    fn remember(&mut self, step: String) {
        if self.transfer_steps.len() == TRANSFER_STEPS_REMEMBERED {
            self.transfer_steps.pop_front();
        }
        self.transfer_steps.push_back(step);
    }
}

fn check_amount(amount: u64) -> Result<(), BankError> {
    if amount == 0 || amount > AMOUNT_CENTS_MAX {
        return Err(BankError::InvalidAmount(amount));
    }
    Ok(())
}

/// A command comes with the account's id (the state does not hold it),
/// which the account's refusals name.
impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = (String, AccountCommand);
    type Event = AccountEvent;
    type Error = BankError;

    fn decide(&self, (id, command): &Self::Command) -> Result<Vec<AccountEvent>, BankError> {
        use AccountCommand as C;
        use AccountEvent as E;
        let moved = |amount, balance_after| Moved {
            amount,
            balance_after,
        };
        Ok(match command {
            C::Open { owner } => {
                if self.open || self.closed {
                    return Err(BankError::AlreadyOpen(id.clone()));
                }
                vec![E::Opened(Opened {
                    owner: owner.clone(),
                })]
            }
            C::Deposit { amount } => {
                self.usable(id)?;
                check_amount(*amount)?;
                vec![E::Deposited(moved(*amount, self.balance + amount))]
            }
            C::Withdraw { amount } => {
                self.usable(id)?;
                check_amount(*amount)?;
                let Some(after) = self.balance.checked_sub(*amount) else {
                    return Err(BankError::InsufficientFunds {
                        account: id.clone(),
                        balance: self.balance,
                        amount: *amount,
                    });
                };
                vec![E::Withdrawn(moved(*amount, after))]
            }
            C::ApplyInterest { rate_bp } => {
                self.usable(id)?;
                if *rate_bp > 10_000 {
                    return Err(BankError::InvalidRate(*rate_bp));
                }
                let amount = self.balance * u64::from(*rate_bp) / 10_000;
                if amount == 0 {
                    return Ok(Vec::new());
                }
                vec![E::Interest(InterestApplied {
                    rate_bp: *rate_bp,
                    amount,
                    balance_after: self.balance + amount,
                })]
            }
            C::Close => {
                self.usable(id)?;
                if self.balance > 0 {
                    return Err(BankError::NotEmpty {
                        account: id.clone(),
                        balance: self.balance,
                    });
                }
                vec![E::Closed(Closed {})]
            }
            C::TransferDebit {
                transfer_id,
                to,
                amount,
            } => {
                if self.took(&format!("debit:{transfer_id}")) {
                    return Ok(Vec::new());
                }
                self.usable(id)?;
                check_amount(*amount)?;
                let Some(after) = self.balance.checked_sub(*amount) else {
                    return Err(BankError::InsufficientFunds {
                        account: id.clone(),
                        balance: self.balance,
                        amount: *amount,
                    });
                };
                vec![E::TransferDebited(TransferMoved {
                    transfer_id: transfer_id.clone(),
                    counterparty: to.clone(),
                    amount: *amount,
                    balance_after: after,
                })]
            }
            C::TransferCredit {
                transfer_id,
                from,
                amount,
            } => {
                if self.took(&format!("credit:{transfer_id}")) {
                    return Ok(Vec::new());
                }
                self.usable(id)?;
                check_amount(*amount)?;
                vec![E::TransferCredited(TransferMoved {
                    transfer_id: transfer_id.clone(),
                    counterparty: from.clone(),
                    amount: *amount,
                    balance_after: self.balance + amount,
                })]
            }
            C::TransferReverse {
                transfer_id,
                to,
                amount,
            } => {
                // A reversal is owed whatever happened since: it is not
                // refused on a closed account.
                if self.took(&format!("reverse:{transfer_id}")) {
                    return Ok(Vec::new());
                }
                vec![E::TransferDebitReversed(TransferMoved {
                    transfer_id: transfer_id.clone(),
                    counterparty: to.clone(),
                    amount: *amount,
                    balance_after: self.balance + amount,
                })]
            }
        })
    }

    fn apply(&mut self, event: &AccountEvent) {
        use AccountEvent as E;
        if let Some(b) = event.balance_after() {
            self.balance = b;
        }
        match event {
            E::Opened(o) => {
                self.open = true;
                self.owner = o.owner.clone();
            }
            E::Closed(_) => self.closed = true,
            E::TransferDebited(t) => self.remember(format!("debit:{}", t.transfer_id)),
            E::TransferCredited(t) => self.remember(format!("credit:{}", t.transfer_id)),
            E::TransferDebitReversed(t) => self.remember(format!("reverse:{}", t.transfer_id)),
            E::Deposited(_) | E::Withdrawn(_) | E::Interest(_) => {}
        }
    }
}

// ----- the transfer process manager -----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStarted {
    pub from: String,
    pub to: String,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecorded {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRefused {
    pub reason: String,
}

crate::events! {
    /// What happens to a transfer.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum TransferEvent {
        Started(TransferStarted) = "TransferStarted" v 1,
        Debited(StepRecorded) = "TransferSourceDebited" v 1,
        DebitRefused(StepRefused) = "TransferDebitRefused" v 1,
        Completed(StepRecorded) = "TransferCompleted" v 1,
        CreditRefused(StepRefused) = "TransferCreditRefused" v 1,
        Reversed(StepRecorded) = "TransferReversed" v 1,
    }
}

/// Where a transfer is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferStatus {
    #[default]
    New,
    Started,
    Debited,
    /// Done: the money moved.
    Completed,
    /// Done: the source refused the debit; nothing moved.
    DebitRefused,
    /// The target refused the credit; the debit is to be reversed.
    CreditRefused,
    /// Done: the debit was reversed; nothing moved.
    Reversed,
}

impl TransferStatus {
    pub fn is_done(self) -> bool {
        matches!(self, Self::Completed | Self::DebitRefused | Self::Reversed)
    }
}

/// A transfer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub from: String,
    pub to: String,
    pub amount: u64,
    pub status: TransferStatus,
    /// Why it failed, if it did.
    pub reason: Option<String>,
}

/// What the process manager records of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferCommand {
    Start {
        from: String,
        to: String,
        amount: u64,
    },
    Record(TransferEvent),
}

/// A transfer command out of order (a bug in the process manager, or two
/// managers racing on one transfer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transfer is {status:?}: {what} is out of order")]
pub struct TransferOutOfOrder {
    pub status: TransferStatus,
    pub what: &'static str,
}

impl Aggregate for Transfer {
    const CATEGORY: &'static str = "transfer";
    type Command = TransferCommand;
    type Event = TransferEvent;
    type Error = TransferOutOfOrder;

    fn decide(&self, command: &TransferCommand) -> Result<Vec<TransferEvent>, TransferOutOfOrder> {
        use TransferEvent as E;
        use TransferStatus as S;
        let (ok, what) = match command {
            TransferCommand::Start { .. } => (self.status == S::New, "start"),
            TransferCommand::Record(E::Debited(_) | E::DebitRefused(_)) => {
                (self.status == S::Started, "the debit")
            }
            TransferCommand::Record(E::Completed(_) | E::CreditRefused(_)) => {
                (self.status == S::Debited, "the credit")
            }
            TransferCommand::Record(E::Reversed(_)) => {
                (self.status == S::CreditRefused, "the reversal")
            }
            TransferCommand::Record(E::Started(_)) => (false, "a second start"),
        };
        if !ok {
            return Err(TransferOutOfOrder {
                status: self.status,
                what,
            });
        }
        Ok(vec![match command {
            TransferCommand::Start { from, to, amount } => E::Started(TransferStarted {
                from: from.clone(),
                to: to.clone(),
                amount: *amount,
            }),
            TransferCommand::Record(e) => e.clone(),
        }])
    }

    fn apply(&mut self, event: &TransferEvent) {
        use TransferEvent as E;
        match event {
            E::Started(s) => {
                self.from = s.from.clone();
                self.to = s.to.clone();
                self.amount = s.amount;
                self.status = TransferStatus::Started;
            }
            E::Debited(_) => self.status = TransferStatus::Debited,
            E::DebitRefused(r) => {
                self.status = TransferStatus::DebitRefused;
                self.reason = Some(r.reason.clone());
            }
            E::Completed(_) => self.status = TransferStatus::Completed,
            E::CreditRefused(r) => {
                self.status = TransferStatus::CreditRefused;
                self.reason = Some(r.reason.clone());
            }
            E::Reversed(_) => self.status = TransferStatus::Reversed,
        }
    }
}

// ----- projections -----

/// The statement: one line per money movement, with the balance after it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Statement;

impl Projection for Statement {
    fn name(&self) -> &str {
        "bank-statement"
    }

    fn setup(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE statement (
                account TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL,
                time TEXT NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL,
                balance INTEGER NOT NULL, correlation TEXT NOT NULL,
                PRIMARY KEY (account, version));",
        )
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), HandlerError> {
        let (Some(recorded), Some(e)) = (&event.recorded, event.try_decode::<AccountEvent>()?)
        else {
            return Ok(());
        };
        let Some(balance) = e.balance_after() else {
            return Ok(());
        };
        tx.execute(
            "INSERT INTO statement VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                event.subject.clone().unwrap_or_default(),
                recorded.version as i64,
                recorded.position as i64,
                event.time.clone().unwrap_or_default(),
                event.event_type,
                e.delta(),
                balance as i64,
                event.correlationid,
            ],
        )?;
        Ok(())
    }
}

/// The dashboard: every account's owner, status and balance (upserted
/// from what each event carries), and the bank's totals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dashboard;

impl Projection for Dashboard {
    fn name(&self) -> &str {
        "bank-dashboard"
    }

    fn setup(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE accounts (
                account TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
                balance INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL);
             CREATE TABLE transfers (
                transfer TEXT PRIMARY KEY, status TEXT NOT NULL, version INTEGER NOT NULL);",
        )
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), HandlerError> {
        let Some(recorded) = &event.recorded else {
            return Ok(());
        };
        let version = recorded.version as i64;
        let subject = event.subject.clone().unwrap_or_default();
        if let Some(e) = event.try_decode::<AccountEvent>()? {
            // Upserts of what the event carries: applying one twice
            // changes nothing (the version guard keeps the newest).
            let (status, owner) = match &e {
                AccountEvent::Opened(o) => ("open", Some(o.owner.clone())),
                AccountEvent::Closed(_) => ("closed", None),
                _ => ("open", None),
            };
            tx.execute(
                "INSERT INTO accounts (account, owner, status, balance, version)
                 VALUES (?1, coalesce(?2, ''), ?3, coalesce(?4, 0), ?5)
                 ON CONFLICT (account) DO UPDATE SET
                   owner = coalesce(?2, owner), status = ?3,
                   balance = coalesce(?4, balance), version = ?5
                 WHERE version < ?5",
                params![
                    subject,
                    owner,
                    status,
                    e.balance_after().map(|b| b as i64),
                    version
                ],
            )?;
        } else if let Some(e) = event.try_decode::<TransferEvent>()? {
            let status = match e {
                TransferEvent::Started(_) => "started",
                TransferEvent::Debited(_) => "debited",
                TransferEvent::DebitRefused(_) => "debit refused",
                TransferEvent::Completed(_) => "completed",
                TransferEvent::CreditRefused(_) => "credit refused",
                TransferEvent::Reversed(_) => "reversed",
            };
            tx.execute(
                "INSERT INTO transfers VALUES (?1, ?2, ?3)
                 ON CONFLICT (transfer) DO UPDATE SET status = ?2, version = ?3 WHERE version < ?3",
                params![subject, status, version],
            )?;
        }
        Ok(())
    }
}

/// A question to the dashboard (a query is its own type, apart from
/// commands and events): the accounts with the most money, richest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RichestAccounts {
    pub limit: usize,
}

/// One answer row of [`RichestAccounts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub account: String,
    pub owner: String,
    pub status: String,
    pub balance: u64,
    /// The account's version the row reflects.
    pub version: u64,
}

impl Query for RichestAccounts {
    type Answer = Vec<AccountSummary>;

    fn run(&self, conn: &Connection) -> rusqlite::Result<Vec<AccountSummary>> {
        let mut stmt = conn.prepare(
            "SELECT account, owner, status, balance, version FROM accounts
             ORDER BY balance DESC, account LIMIT ?1",
        )?;
        let rows = stmt.query_map([self.limit.min(crate::PAGE_ROWS_MAX) as i64], |r| {
            Ok(AccountSummary {
                account: r.get(0)?,
                owner: r.get(1)?,
                status: r.get(2)?,
                balance: r.get::<_, i64>(3)? as u64,
                version: r.get::<_, i64>(4)? as u64,
            })
        })?;
        rows.collect()
    }
}

/// A question to the dashboard: these accounts, richest first (a store
/// shared with others holds more accounts than one caller's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountsById<'a> {
    pub ids: &'a [String],
}

impl Query for AccountsById<'_> {
    type Answer = Vec<AccountSummary>;

    fn run(&self, conn: &Connection) -> rusqlite::Result<Vec<AccountSummary>> {
        let mut stmt = conn.prepare(
            "SELECT account, owner, status, balance, version FROM accounts
             WHERE account IN (SELECT value FROM json_each(?1))
             ORDER BY balance DESC, account LIMIT ?2",
        )?;
        let ids = serde_json::to_string(self.ids).unwrap_or_else(|_| "[]".to_owned());
        let rows = stmt.query_map(
            params![ids, self.ids.len().min(crate::PAGE_ROWS_MAX) as i64],
            |r| {
                Ok(AccountSummary {
                    account: r.get(0)?,
                    owner: r.get(1)?,
                    status: r.get(2)?,
                    balance: r.get::<_, i64>(3)? as u64,
                    version: r.get::<_, i64>(4)? as u64,
                })
            },
        )?;
        rows.collect()
    }
}

// ----- the notifier: event notification, an idempotent consumer -----

/// Large-withdrawal alerts: reacts to the notification that money left
/// an account, loads the account for its owner (a call back to the
/// source), and records an alert once per event.
#[derive(Debug, Clone)]
pub struct Notifier {
    accounts: Repository<Account>,
}

impl Notifier {
    pub fn new(client: &Client) -> Self {
        Self {
            accounts: client.repository(RepositoryConfig::default()),
        }
    }
}

impl Handler for Notifier {
    /// The alert text, or `None` for events that need none.
    type Output = Option<String>;

    fn name(&self) -> &str {
        "bank-notifier"
    }

    fn setup(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE alerts (event_id TEXT NOT NULL, text TEXT NOT NULL);")
    }

    fn handle(
        &self,
        tx: &Transaction<'_>,
        event: &Envelope,
    ) -> Result<Option<String>, HandlerError> {
        let amount = match event.try_decode::<AccountEvent>()? {
            Some(AccountEvent::Withdrawn(m)) => m.amount,
            Some(AccountEvent::TransferDebited(t)) => t.amount,
            _ => return Ok(None),
        };
        if amount < LARGE_WITHDRAWAL_CENTS {
            return Ok(None);
        }
        let id = event.subject.clone().unwrap_or_default();
        let owner = self.accounts.load(&id)?.state.owner;
        let text = format!("{owner}: {} left account {id}", cents(amount as i64));
        tx.execute(
            "INSERT INTO alerts VALUES (?1, ?2)",
            params![event.id, text],
        )?;
        Ok(Some(text))
    }
}

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

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Sdk(#[from] Error),
    #[error(transparent)]
    Command(#[from] CommandError<BankError>),
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("the demo needs an empty data directory; {0} holds accounts already")]
    NotFresh(String),
}

/// What the demo found, for the tests. Accounts are named as in the
/// script (`alice`, `bob`, `carol`), whatever suffix a run against a
/// server gave their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    pub balances: Vec<(String, u64)>,
    pub alice_as_of: (String, u64),
    pub alice_statement: Vec<StatementLine>,
    pub refused_withdrawal: String,
    pub reversed_transfer: TransferOutcome,
    /// What this run appended to its account ids (`-` and six hex digits
    /// against a server, empty in a data directory of its own).
    pub account_suffix: String,
}

/// 2026-01-01T09:00:00Z, the demo's first day.
pub const DEMO_START_MS: i64 = 1_767_258_000_000;
const DAY_MS: i64 = 86_400_000;
/// Against a server, how long the demo waits between its "days", so
/// that each step has its own recorded times on the server's clock.
const REMOTE_STEP_MS: u64 = 20;

/// Runs the bank demo in the data directory `dir` (which must hold no
/// accounts yet) and prints what it does to `out`: accounts opened over
/// a few (simulated) days, deposits, withdrawals, interest, transfers
/// (one refused by a closed account and reversed), an overdraft refused;
/// then the balances now, alice's balance as of a past date, her
/// statement and the dashboard.
pub fn run_demo(dir: &Path, out: &mut dyn Write) -> std::result::Result<DemoReport, DemoError> {
    let clock = ManualClock::new(DEMO_START_MS);
    let client = Client::open_with(
        dir,
        ClientConfig {
            source: "/demo/bank".to_owned(),
            clock: Some(Arc::new(clock.clone())),
            ..ClientConfig::default()
        },
    )?;
    if client.head_position()? > 0 {
        return Err(DemoError::NotFresh(dir.display().to_string()));
    }
    writeln!(
        out,
        "weir demo bank: an event-sourced bank in {}",
        dir.display()
    )?;
    run_script(&client, &Timeline::Simulated(clock), "", out)
}

/// Runs the same demo against the running `weir serve` at `address`.
/// A server may hold events already (earlier runs, other applications),
/// so the run names its accounts with a fresh suffix (`alice-1f2e3d`) and
/// shows only its own; the read models replay the server's events into a
/// temporary directory. The server records events by its own clock, so
/// the "days" are real moments a few milliseconds apart, and the balance
/// "as of a past date" is as of the time the server recorded alice's
/// withdrawal.
pub fn run_demo_remote(
    address: &str,
    out: &mut dyn Write,
) -> std::result::Result<DemoReport, DemoError> {
    let client = Client::connect_with(
        address,
        ClientConfig {
            source: "/demo/bank".to_owned(),
            ..ClientConfig::default()
        },
    )?;
    let suffix = format!("-{}", &crate::new_id().replace('-', "")[..6]);
    writeln!(
        out,
        "weir demo bank: an event-sourced bank on the server {address} (this run's accounts end in {suffix})"
    )?;
    run_script(&client, &Timeline::Server, &suffix, out)
}

/// How the demo's days pass.
enum Timeline {
    /// A manual clock the embedded store records by: days are days.
    Simulated(ManualClock),
    /// The server's clock: a day is a short real pause.
    Server,
}

impl Timeline {
    /// Moves to day `n` of the demo; returns its label.
    fn day(&self, n: i64) -> String {
        match self {
            Self::Simulated(clock) => {
                clock.set(DEMO_START_MS + n * DAY_MS);
                self.label(DEMO_START_MS + n * DAY_MS)
            }
            Self::Server => {
                std::thread::sleep(Duration::from_millis(REMOTE_STEP_MS));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                self.label(now)
            }
        }
    }

    /// A time as the demo prints it: the date of a simulated day, the
    /// time of day (to the millisecond) on the server's clock.
    fn label(&self, ms: i64) -> String {
        let t = crate::rfc3339(ms);
        match self {
            Self::Simulated(_) => t[..10].to_owned(),
            Self::Server => t.get(11..23).unwrap_or(&t).to_owned(),
        }
    }
}

/// The demo's story on `client`, its accounts named `alice{suffix}`, ...
fn run_script(
    client: &Client,
    timeline: &Timeline,
    suffix: &str,
    out: &mut dyn Write,
) -> std::result::Result<DemoReport, DemoError> {
    let bank = Bank::open(client, BankConfig::default())?;
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| format!("{n}{suffix}"));
    // The id column is as wide as the longest id (and at least 6).
    let w = alice.len().max(6);

    let when = timeline.day(0);
    bank.open_account(&alice, "Alice")?;
    bank.deposit(&alice, 100_000)?;
    bank.open_account(&bob, "Bob")?;
    bank.deposit(&bob, 25_000)?;
    writeln!(out, "{when}  opened {alice} (1000.00) and {bob} (250.00)")?;
    let when = timeline.day(2);
    bank.withdraw(&alice, 12_000)?;
    writeln!(out, "{when}  {alice} withdrew 120.00")?;
    // The past the demo looks back at: after the withdrawal, before the
    // transfer (a simulated day later, or as the server recorded the
    // withdrawal).
    let past = match timeline {
        Timeline::Simulated(_) => DEMO_START_MS + 3 * DAY_MS,
        Timeline::Server => client
            .read_stream(&bank.accounts.stream(&alice), 2, 1)?
            .first()
            .and_then(|e| e.recorded.as_ref())
            .map_or(0, |r| r.recorded_ms),
    };
    let when = timeline.day(4);
    let t = bank.transfer(&alice, &bob, 20_000)?;
    writeln!(
        out,
        "{when}  {alice} sent {bob} 200.00: transfer {:?}",
        t.status
    )?;
    let when = timeline.day(9);
    bank.apply_interest(&alice, 100)?;
    writeln!(out, "{when}  1% interest on {alice}")?;
    let when = timeline.day(11);
    let refused = match bank.withdraw(&alice, 500_000) {
        Err(CommandError::Rejected(e)) => e.to_string(),
        Ok(_) => "accepted (a bug)".to_owned(),
        Err(e) => return Err(e.into()),
    };
    writeln!(
        out,
        "{when}  {alice} tried to withdraw 5000.00: refused: {refused}"
    )?;
    let when = timeline.day(13);
    bank.open_account(&carol, "Carol")?;
    bank.close(&carol)?;
    let reversed = bank.transfer(&bob, &carol, 5_000)?;
    writeln!(
        out,
        "{when}  {bob} sent closed {carol} 50.00: transfer {:?} ({})",
        reversed.status,
        reversed.reason.clone().unwrap_or_default()
    )?;

    writeln!(out, "\nbalances now:")?;
    let mut balances = Vec::new();
    for (name, id) in ["alice", "bob", "carol"].iter().zip([&alice, &bob, &carol]) {
        let b = bank.balance(id)?;
        writeln!(out, "  {id:<w$} {:>10}", cents(b as i64))?;
        balances.push(((*name).to_owned(), b));
    }
    let as_of = bank.balance_as_of(&alice, past)?;
    writeln!(
        out,
        "\n{alice}'s balance as of {}: {}",
        timeline.label(past),
        cents(as_of as i64)
    )?;

    let statement = bank.statement(&alice)?;
    writeln!(out, "\n{alice}'s statement:")?;
    for l in &statement {
        let time = match timeline {
            Timeline::Simulated(_) => l.time.get(..10),
            Timeline::Server => l.time.get(11..23),
        };
        writeln!(
            out,
            "  {}  {:<22} {:>10} {:>10}",
            time.unwrap_or(&l.time),
            l.kind,
            cents(l.amount),
            cents(l.balance as i64)
        )?;
    }
    bank.catch_up()?;
    writeln!(out, "\ndashboard (accounts by balance):")?;
    let ids = [alice.clone(), bob.clone(), carol.clone()];
    for a in bank.dashboard.ask(&AccountsById { ids: &ids })? {
        writeln!(
            out,
            "  {:<w$} {:<7} {:>10}  (version {})",
            a.account,
            a.status,
            cents(a.balance as i64),
            a.version
        )?;
    }
    Ok(DemoReport {
        balances,
        alice_as_of: (timeline.label(past), as_of),
        alice_statement: statement,
        refused_withdrawal: refused,
        reversed_transfer: reversed,
        account_suffix: suffix.to_owned(),
    })
}
