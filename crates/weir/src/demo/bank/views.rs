//! The bank's read side: the statement and dashboard projections, their
//! queries, and the notifier (event notification, an idempotent consumer).

use super::*;

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
