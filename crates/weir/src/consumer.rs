//! Idempotent consumers. Delivery is at least once (a consumer that
//! crashes after acting but before its checkpoint sees the event again;
//! a Kafka consumer group redelivers after a rebalance), so a handler with
//! effects records each event it processed, by event id, in the same
//! SQLite transaction as its effects, together with its result. A
//! duplicate gets the recorded result back and changes nothing.
//!
//! Handlers whose effects are upserts keyed by what they describe are
//! idempotent by nature and need no record (see the bank's dashboard
//! projection); the record is for effects that add up (counters,
//! balances, sent notifications).

use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::projection::{HandlerError, open_db, validate_name};
use crate::{Client, Envelope, Error, Upcasters};

/// A handler of events with effects in its own SQLite database.
pub trait Handler: Send + Sync + 'static {
    /// What handling an event returns (recorded for duplicates).
    type Output: Serialize + DeserializeOwned;

    /// Names the consumer and its database.
    fn name(&self) -> &str;

    /// Creates the handler's tables in a new database.
    fn setup(&self, tx: &Transaction<'_>) -> rusqlite::Result<()>;

    /// Handles one event, its effects in `tx`.
    fn handle(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<Self::Output, HandlerError>;
}

/// The outcome of delivering one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled<T> {
    pub output: T,
    /// The event had been processed before; `output` is the recorded one
    /// and nothing was done.
    pub duplicate: bool,
}

/// A [`Handler`] with a processed-event record.
#[derive(Debug)]
pub struct Consumer<H> {
    handler: H,
    conn: Mutex<Connection>,
    /// The client's upcasters: an event handed in older than its type's
    /// current version is upcast before the handler sees it.
    upcasters: Arc<Upcasters>,
}

impl Client {
    /// Opens the consumer of `handler`, its database under the read models
    /// directory (`<name>.consumer.sqlite`).
    pub fn consumer<H: Handler>(&self, handler: H) -> Result<Consumer<H>, Error> {
        let name = handler.name().to_owned();
        validate_name(&name)?;
        let dir = self.read_models_dir();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(&name, "creating its directory", e))?;
        let mut conn = open_db(&name, &dir.join(format!("{name}.consumer.sqlite")))?;
        let sql = |e| Error::sqlite(&name, e);
        let tx = conn.transaction().map_err(sql)?;
        let exists: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'weir_processed'",
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        if exists == 0 {
            tx.execute_batch(
                "CREATE TABLE weir_processed (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, output TEXT NOT NULL);",
            )
            .map_err(sql)?;
            handler.setup(&tx).map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(Consumer {
            handler,
            conn: Mutex::new(conn),
            upcasters: self.upcasters().clone(),
        })
    }
}

impl<H: Handler> Consumer<H> {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles `event` once: the first delivery runs the handler and
    /// records the event id and output with its effects, atomically; a
    /// later delivery of the same id returns the recorded output. The
    /// handler sees the event upcast to its type's current version (the
    /// client's upcasters; an event read through the client is already).
    pub fn handle(&self, event: &Envelope) -> Result<Handled<H::Output>, Error> {
        let event = &*self.upcasters.upcast_ref(event)?;
        let name = self.handler.name();
        let sql = |e| Error::sqlite(name, e);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let seen: Option<String> = tx
            .query_row(
                "SELECT output FROM weir_processed WHERE event_id = ?1",
                [&event.id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        let bad_output = |e: serde_json::Error| Error::ReadModel {
            name: name.to_owned(),
            reason: format!("the recorded output of {:?}: {e}", event.id),
        };
        if let Some(output) = seen {
            return Ok(Handled {
                output: serde_json::from_str(&output).map_err(bad_output)?,
                duplicate: true,
            });
        }
        let output = self
            .handler
            .handle(&tx, event)
            .map_err(|e| Error::Handler {
                name: name.to_owned(),
                id: event.id.clone(),
                position: event.position().unwrap_or(0),
                reason: e.to_string(),
            })?;
        let text = serde_json::to_string(&output).map_err(bad_output)?;
        tx.execute(
            "INSERT INTO weir_processed (event_id, output) VALUES (?1, ?2)",
            [&event.id, &text],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Handled {
            output,
            duplicate: false,
        })
    }

    /// How many events are recorded as processed.
    pub fn processed(&self) -> Result<u64, Error> {
        self.read(|c| {
            c.query_row("SELECT count(*) FROM weir_processed", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n as u64)
    }

    /// Forgets all but the newest `keep` records (duplicates older than
    /// that are then handled again): the bound on the record's size.
    pub fn retain_newest(&self, keep: u64) -> Result<u64, Error> {
        let name = self.handler.name();
        let removed = self
            .conn()
            .execute(
                "DELETE FROM weir_processed WHERE seq <= (SELECT max(seq) FROM weir_processed) - ?1",
                [keep as i64],
            )
            .map_err(|e| Error::sqlite(name, e))?;
        Ok(removed as u64)
    }

    /// Runs `f` on the consumer's database.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, Error> {
        f(&self.conn()).map_err(|e| Error::sqlite(self.handler.name(), e))
    }
}
