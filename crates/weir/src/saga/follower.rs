//! The saga runner's follower and its ledger: which sagas are still
//! active and where the runner is in the store's `SagaStarted` and
//! `SagaResumed` type indexes, in a SQLite file of the runner's, so a
//! start resumes every active saga without scanning finished ones, and
//! sagas started or resumed by other processes are woken.

use std::collections::HashMap;

use rusqlite::Connection;

use super::runner::Inner;
use crate::{Client, Error};

/// What the runner keeps on disk: the sagas still active and, per event
/// type it follows, its position in the store's index of that type.
pub(super) struct Ledger {
    conn: Connection,
    /// The positions as recorded, read once at open: only the follower
    /// moves them.
    positions: HashMap<String, u64>,
}

/// The event types the follower reads: starts (a saga to drive, from this
/// runner or another process) and resumes (an operator's decision).
pub(super) const FOLLOWED: [&str; 2] = ["SagaStarted", "SagaResumed"];

impl Ledger {
    pub(super) fn open(client: &Client, name: &str) -> Result<Self, Error> {
        let dir = client.read_models_dir();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(name, "creating its directory", e))?;
        let sql = |e| Error::sqlite(name, e);
        let conn = Connection::open(dir.join(format!("{name}.sagas.sqlite"))).map_err(sql)?;
        // A cache of what the store says: a commit lost to a power failure
        // goes back with its position, and is read again from the store.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS active (id TEXT PRIMARY KEY);
             CREATE TABLE IF NOT EXISTS positions (event_type TEXT PRIMARY KEY, next INTEGER NOT NULL);",
        )
        .map_err(sql)?;
        let positions = conn
            .prepare("SELECT event_type, next FROM positions")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                    .collect::<rusqlite::Result<HashMap<String, u64>>>()
            })
            .map_err(sql)?;
        Ok(Self { conn, positions })
    }

    pub(super) fn active(&self) -> rusqlite::Result<Vec<String>> {
        let mut s = self.conn.prepare("SELECT id FROM active")?;
        let rows = s.query_map([], |r| r.get(0))?;
        rows.collect()
    }

    fn position(&self, event_type: &str) -> u64 {
        self.positions.get(event_type).copied().unwrap_or(0)
    }

    /// Records a page of one type: started sagas become active, and the
    /// position moves past the page.
    fn record(&mut self, event_type: &str, started: &[String], next: u64) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO active (id) VALUES (?1)")?;
            for id in started {
                insert.execute([id])?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO positions (event_type, next) VALUES (?1, ?2) ON CONFLICT (event_type) DO UPDATE SET next = excluded.next",
        )?
        .execute((event_type, next as i64))?;
        tx.commit()?;
        self.positions.insert(event_type.to_owned(), next);
        Ok(())
    }

    /// Sagas that ended (completed or compensated): no longer active.
    fn ended_all(&mut self, ids: &[String]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM active WHERE id = ?1")?;
            for id in ids {
                delete.execute([id])?;
            }
        }
        tx.commit()
    }
}

pub(super) enum FollowError {
    Sql(rusqlite::Error),
    Sdk(Error),
}

/// Reads the store's index of each followed type from the ledger's
/// position to its end: started sagas become active, and sagas started or
/// resumed (by this runner or another process) are woken.
pub(super) fn follow_once(inner: &Inner) -> Result<(), FollowError> {
    // Sagas that ended before this pass started: their starts are in the
    // indexes this pass reads (a start is appended before its end), so
    // they are forgotten after the starts are recorded.
    let ended: Vec<String> = std::mem::take(
        &mut *inner
            .ended_pending
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    )
    .into_iter()
    .collect();
    for event_type in FOLLOWED {
        let mut from = inner
            .with_ledger(|l| Ok(l.position(event_type)))
            .map_err(FollowError::Sql)?;
        loop {
            let page = inner
                .client
                .backend()
                .read_type(event_type, from, crate::READ_PAGE_MAX)
                .map_err(FollowError::Sdk)?;
            if page.is_empty() {
                break;
            }
            let mut ids = Vec::new();
            for e in &page {
                if let Some(id) = e.stream.strip_prefix("saga-") {
                    ids.push(id.to_owned());
                }
                from = e.position + 1;
            }
            let started: &[String] = if event_type == "SagaStarted" {
                &ids
            } else {
                &[]
            };
            inner
                .with_ledger(|l| l.record(event_type, started, from))
                .map_err(FollowError::Sql)?;
            // Starts this runner made are with a worker already.
            let wake: Vec<String> = {
                let mut here = inner.started_here.lock().unwrap_or_else(|e| e.into_inner());
                ids.into_iter()
                    .filter(|id| event_type != "SagaStarted" || !here.remove(id))
                    .collect()
            };
            for id in wake {
                inner.wake(&id);
            }
        }
    }
    if !ended.is_empty() {
        inner
            .with_ledger(|l| l.ended_all(&ended))
            .map_err(FollowError::Sql)?;
    }
    Ok(())
}
