//! The outbox in SQLite: the table, [`OutboxTx`] for a
//! [`rusqlite::Transaction`], and the relay's claims under a lease.
//!
//! SQLite has one writer at a time, so rows are inserted in commit order
//! and `seq` order is also each aggregate's order. Relays take turns with
//! a lease row (`weir_outbox_lease`, at most one row): the holder renews it
//! with every claim and checks it when it marks rows published; another
//! relay takes it over only once it has expired. A relay that stalls
//! longer than the lease may therefore publish a batch another relay
//! publishes too (the event ids make that harmless downstream); it then
//! fails to mark it ([`OutboxError::LeaseLost`]) and stands by.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior, params};

use super::{Claimed, Claimer, Enqueued, NewRow, OutboxError, OutboxTx, Row, now_ms};
use crate::Envelope;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS weir_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    aggregate_id TEXT NOT NULL,
    aggregate_seq INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    data BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    published_ms INTEGER,
    UNIQUE (aggregate_id, aggregate_seq)
);
CREATE INDEX IF NOT EXISTS weir_outbox_pending ON weir_outbox (seq) WHERE published_ms IS NULL;
CREATE TABLE IF NOT EXISTS weir_outbox_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
";

/// The next sequence number of the aggregate is computed in the same
/// statement: SQLite's single writer makes it free of races.
const INSERT: &str = "
INSERT INTO weir_outbox
    (event_id, aggregate_id, aggregate_seq, event_type, headers, data, created_ms)
VALUES (?1, ?2,
    (SELECT COALESCE(MAX(aggregate_seq) + 1, 0) FROM weir_outbox WHERE aggregate_id = ?2),
    ?3, ?4, ?5, ?6)
RETURNING seq, aggregate_seq";

impl OutboxTx for rusqlite::Transaction<'_> {
    fn setup_outbox(&mut self) -> Result<(), OutboxError> {
        self.execute_batch(SCHEMA).map_err(|e| db_error(self, &e))
    }

    fn enqueue_event(
        &mut self,
        aggregate_id: &str,
        envelope: &Envelope,
    ) -> Result<Enqueued, OutboxError> {
        let row = NewRow::encode(aggregate_id, envelope)?;
        self.query_row(
            INSERT,
            params![
                row.event_id,
                aggregate_id,
                row.event_type,
                row.headers,
                row.data,
                row.created_ms
            ],
            |r| {
                Ok(Enqueued {
                    seq: r.get(0)?,
                    aggregate_seq: r.get::<_, i64>(1)? as u64,
                })
            },
        )
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(_, Some(msg))
                if msg.contains("weir_outbox.event_id") =>
            {
                OutboxError::DuplicateEventId {
                    id: envelope.id.clone(),
                }
            }
            _ => db_error(self, &e),
        })
    }
}

fn db_error(conn: &Connection, e: &rusqlite::Error) -> OutboxError {
    OutboxError::Database {
        database: conn.path().unwrap_or("(in memory)").to_owned(),
        reason: e.to_string(),
    }
}

/// The relay's side of a SQLite outbox.
pub(crate) struct SqliteClaimer {
    conn: Connection,
    path: PathBuf,
    /// Who this relay is in the lease row.
    holder: String,
    lease_ms: u64,
}

impl SqliteClaimer {
    /// Opens the outbox database at `path` (it must exist and hold the
    /// outbox table).
    pub fn open(path: &Path, holder: String, lease_ms: u64) -> Result<Self, OutboxError> {
        let database = path.display().to_string();
        let err = |e: rusqlite::Error| OutboxError::Database {
            database: database.clone(),
            reason: e.to_string(),
        };
        // Never create a database that is not there: a mistyped path
        // would otherwise relay an empty outbox forever.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        // Writers of the service's own transactions may hold the database
        // for a moment; wait for them rather than fail.
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        let has_table: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'weir_outbox'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        if has_table.is_none() {
            return Err(OutboxError::NotSetUp { database });
        }
        // Older outboxes may lack the lease table; it is harmless to add.
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            holder,
            lease_ms,
        })
    }

    fn err(&self, e: rusqlite::Error) -> OutboxError {
        OutboxError::Database {
            database: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// Takes or renews the lease; `Ok(false)` when another relay holds it.
    fn lease(&mut self) -> Result<bool, OutboxError> {
        let now = now_ms();
        let holder = self.holder.clone();
        let expires_ms = now + self.lease_ms as i64;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self_err(&self.path, e))?;
        let current: Option<(String, i64)> = tx
            .query_row(
                "SELECT holder, expires_ms FROM weir_outbox_lease WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self_err(&self.path, e))?;
        if let Some((other, other_expires_ms)) = &current
            && *other != holder
            && *other_expires_ms > now
        {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO weir_outbox_lease (id, holder, expires_ms) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms",
            params![holder, expires_ms],
        )
        .map_err(|e| self_err(&self.path, e))?;
        tx.commit().map_err(|e| self_err(&self.path, e))?;
        if current.is_some_and(|(other, _)| other != holder) {
            tracing::info!(database = %self.path.display(), holder, "took over the outbox relay's lease");
        }
        Ok(true)
    }
}

fn self_err(path: &Path, e: rusqlite::Error) -> OutboxError {
    OutboxError::Database {
        database: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl Claimer for SqliteClaimer {
    fn claim(&mut self, rows_max: usize) -> Result<Claimed, OutboxError> {
        if !self.lease()? {
            return Ok(Claimed {
                rows: Vec::new(),
                standby: true,
            });
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, event_id, aggregate_id, aggregate_seq, headers, data
                 FROM weir_outbox WHERE published_ms IS NULL ORDER BY seq LIMIT ?1",
            )
            .map_err(|e| self_err(&self.path, e))?;
        let raw = stmt
            .query_map([rows_max as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self_err(&self.path, e))?;
        let rows = raw
            .into_iter()
            .map(|(seq, id, agg, agg_seq, headers, data)| {
                Row::decode(seq, id, agg, agg_seq, &headers, data)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Claimed {
            rows,
            standby: false,
        })
    }

    fn complete(&mut self, seqs: &[i64]) -> Result<(), OutboxError> {
        let now = now_ms();
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self_err(&path, e))?;
        let holder: Option<String> = tx
            .query_row(
                "SELECT holder FROM weir_outbox_lease WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self_err(&path, e))?;
        if holder.as_deref() != Some(self.holder.as_str()) {
            return Err(OutboxError::LeaseLost {
                database: path.display().to_string(),
                holder: holder.unwrap_or_else(|| "nobody".to_owned()),
            });
        }
        {
            let mut mark = tx
                .prepare_cached("UPDATE weir_outbox SET published_ms = ?1 WHERE seq = ?2")
                .map_err(|e| self_err(&path, e))?;
            for seq in seqs {
                mark.execute(params![now, seq])
                    .map_err(|e| self_err(&path, e))?;
            }
        }
        tx.execute(
            "UPDATE weir_outbox_lease SET expires_ms = ?1 WHERE id = 1",
            params![now + self.lease_ms as i64],
        )
        .map_err(|e| self_err(&path, e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn abandon(&mut self) {}
}
