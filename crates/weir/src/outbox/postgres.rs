//! The outbox in PostgreSQL (feature `postgres`): the table, [`OutboxTx`]
//! for a `postgres::Transaction`, and the relay's claims with `SELECT …
//! FOR UPDATE SKIP LOCKED`.
//!
//! `seq` (a sequence) is taken at insert, not at commit, so it is not
//! each aggregate's order; `aggregate_seq` is. Two transactions that
//! enqueue for one aggregate at once compute the same next number, and
//! the unique index on `(aggregate_id, aggregate_seq)` lets only the first
//! commit: numbers have no gaps and follow commit order.
//!
//! A relay claims whole aggregates: in one transaction it locks the
//! oldest unpublished row of up to `rows_max` aggregates (`FOR UPDATE
//! SKIP LOCKED`: aggregates another relay holds are skipped, not waited
//! for), reads those aggregates' unpublished rows, publishes them, marks
//! them and commits. While it holds an aggregate's oldest row no other
//! relay can claim that aggregate (its oldest unpublished row is the same
//! row for everyone until the commit), so rows of one aggregate are never
//! published by two relays at once nor out of order. A relay that dies
//! loses its connection, PostgreSQL rolls its transaction back and the
//! rows are claimable again.

use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, NoTls};

use super::{Claimed, Claimer, Enqueued, NewRow, OutboxError, OutboxTx, Row, now_ms};
use crate::Envelope;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS weir_outbox (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    aggregate_id TEXT NOT NULL,
    aggregate_seq BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    data BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    published_ms BIGINT,
    UNIQUE (aggregate_id, aggregate_seq)
);
CREATE INDEX IF NOT EXISTS weir_outbox_pending ON weir_outbox (seq) WHERE published_ms IS NULL;
CREATE INDEX IF NOT EXISTS weir_outbox_pending_aggregate
    ON weir_outbox (aggregate_id, aggregate_seq) WHERE published_ms IS NULL;
";

const INSERT: &str = "
INSERT INTO weir_outbox
    (event_id, aggregate_id, aggregate_seq, event_type, headers, data, created_ms)
VALUES ($1, $2,
    (SELECT COALESCE(MAX(aggregate_seq) + 1, 0) FROM weir_outbox WHERE aggregate_id = $2),
    $3, $4, $5, $6)
RETURNING seq, aggregate_seq";

/// The oldest unpublished row of each aggregate no other relay holds.
const CLAIM_HEADS: &str = "
SELECT o.aggregate_id FROM weir_outbox o
WHERE o.published_ms IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM weir_outbox p
    WHERE p.aggregate_id = o.aggregate_id
      AND p.published_ms IS NULL
      AND p.aggregate_seq < o.aggregate_seq)
ORDER BY o.seq
LIMIT $1
FOR UPDATE OF o SKIP LOCKED";

const CLAIMED_ROWS: &str = "
SELECT seq, event_id, aggregate_id, aggregate_seq, headers, data FROM weir_outbox
WHERE aggregate_id = ANY($1) AND published_ms IS NULL
ORDER BY aggregate_id, aggregate_seq
LIMIT $2";

/// The database a transaction belongs to is not known from it; errors
/// name the table.
const IN_TRANSACTION: &str = "weir_outbox (PostgreSQL)";

impl OutboxTx for postgres::Transaction<'_> {
    fn setup_outbox(&mut self) -> Result<(), OutboxError> {
        self.batch_execute(SCHEMA)
            .map_err(|e| db_error(IN_TRANSACTION, &e))
    }

    fn enqueue_event(
        &mut self,
        aggregate_id: &str,
        envelope: &Envelope,
    ) -> Result<Enqueued, OutboxError> {
        let row = NewRow::encode(aggregate_id, envelope)?;
        // Typed parameters: the statement is parsed, bound and run in one
        // round trip (an untyped one is prepared in a round trip first).
        let result = self.query_typed_one(
            INSERT,
            &[
                (&row.event_id, Type::TEXT),
                (&aggregate_id, Type::TEXT),
                (&row.event_type, Type::TEXT),
                (&row.headers, Type::TEXT),
                (&row.data, Type::BYTEA),
                (&row.created_ms, Type::INT8),
            ],
        );
        match result {
            Ok(r) => Ok(Enqueued {
                seq: r.get(0),
                aggregate_seq: r.get::<_, i64>(1) as u64,
            }),
            Err(e) => Err(match e.as_db_error() {
                Some(db) if db.code() == &SqlState::UNIQUE_VIOLATION => {
                    if db.constraint() == Some("weir_outbox_event_id_key") {
                        OutboxError::DuplicateEventId {
                            id: envelope.id.clone(),
                        }
                    } else {
                        OutboxError::ConcurrentEnqueue {
                            aggregate_id: aggregate_id.to_owned(),
                        }
                    }
                }
                _ => db_error(IN_TRANSACTION, &e),
            }),
        }
    }
}

fn db_error(database: &str, e: &postgres::Error) -> OutboxError {
    // The server's own message (with its detail) says more than the
    // client's summary.
    let reason = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    };
    OutboxError::Database {
        database: database.to_owned(),
        reason,
    }
}

/// The relay's side of a PostgreSQL outbox: one connection, reopened
/// after a failure.
pub(crate) struct PgClaimer {
    url: String,
    /// Where errors say the outbox is: the URL without its password.
    database: String,
    client: Option<Client>,
    /// A claim's transaction is open.
    in_claim: bool,
}

impl PgClaimer {
    /// Connects to the database at `url` (it must hold the outbox table).
    pub fn open(url: &str) -> Result<Self, OutboxError> {
        let database = redact(url);
        let mut claimer = Self {
            url: url.to_owned(),
            database,
            client: None,
            in_claim: false,
        };
        let has_table = claimer
            .client()?
            .query_one("SELECT to_regclass('weir_outbox') IS NOT NULL", &[])
            .map_err(|e| db_error(&claimer.database, &e))?
            .get::<_, bool>(0);
        if !has_table {
            return Err(OutboxError::NotSetUp {
                database: claimer.database,
            });
        }
        Ok(claimer)
    }

    fn client(&mut self) -> Result<&mut Client, OutboxError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let client = Client::connect(&self.url, NoTls).map_err(|e| OutboxError::Database {
                database: self.database.clone(),
                reason: format!("connecting: {e}"),
            })?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    fn fail(&mut self, e: &postgres::Error) -> OutboxError {
        // Whatever state the session is in, a fresh one is simpler than a
        // repair: the server rolls the old one's transaction back.
        self.client = None;
        self.in_claim = false;
        db_error(&self.database, e)
    }

    fn claim_rows(&mut self, rows_max: usize) -> Result<Vec<RawRow>, postgres::Error> {
        let client = self.client.as_mut().expect("connected by claim");
        client.batch_execute("BEGIN")?;
        self.in_claim = true;
        let heads: Vec<String> = client
            .query(CLAIM_HEADS, &[&(rows_max as i64)])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        let rows = client.query(CLAIMED_ROWS, &[&heads, &(rows_max as i64)])?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect())
    }
}

/// A claimed row as read: seq, event id, aggregate id, aggregate seq,
/// headers, data.
type RawRow = (i64, String, String, i64, String, Vec<u8>);

/// `url` without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        // Key-value form: hide the value of `password=`.
        _ => url
            .split(' ')
            .map(|kv| match kv.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

impl Claimer for PgClaimer {
    fn claim(&mut self, rows_max: usize) -> Result<Claimed, OutboxError> {
        self.client()?;
        let raw = self.claim_rows(rows_max).map_err(|e| self.fail(&e))?;
        let rows = raw
            .into_iter()
            .map(|(seq, id, agg, agg_seq, headers, data)| {
                Row::decode(seq, id, agg, agg_seq, &headers, data)
            })
            .collect::<Result<Vec<_>, _>>()
            .inspect_err(|_| self.abandon())?;
        Ok(Claimed {
            rows,
            standby: false,
        })
    }

    fn complete(&mut self, seqs: &[i64]) -> Result<(), OutboxError> {
        let client = self.client()?;
        let result = client
            .execute(
                "UPDATE weir_outbox SET published_ms = $1 WHERE seq = ANY($2)",
                &[&now_ms(), &seqs],
            )
            .and_then(|_| client.batch_execute("COMMIT"));
        self.in_claim = false;
        result.map_err(|e| self.fail(&e))
    }

    fn abandon(&mut self) {
        if self.in_claim {
            self.in_claim = false;
            if let Some(client) = self.client.as_mut()
                && client.batch_execute("ROLLBACK").is_err()
            {
                self.client = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            super::redact("postgres://app:s3cret@db:5432/orders"),
            "postgres://app:***@db:5432/orders"
        );
        assert_eq!(
            super::redact("postgres://app@db/orders"),
            "postgres://app@db/orders"
        );
        assert_eq!(
            super::redact("host=db user=app password=x"),
            "host=db user=app password=***"
        );
    }
}
