//! PostgreSQL's side of `weir-bench store`: a throwaway cluster, the
//! `events` table, and the one-statement append with its version check.

use super::*;

pub(super) const SCHEMA: &str = "
CREATE TABLE events (
    position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id   text NOT NULL,
    version     bigint NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    data        jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
)";

/// $1 stream, $2 the expected version (-1: no stream), $3..$5 the events'
/// ids, types and JSON as text arrays. Inserts nothing unless the stream's
/// last version is $2; returns one row per event inserted.
pub(super) const APPEND_SQL: &str = "
INSERT INTO events (stream_id, version, event_id, event_type, data)
SELECT $1, $2 + e.n, e.id, e.type, e.data::jsonb
FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS e(id, type, data, n)
WHERE coalesce((SELECT max(version) FROM events WHERE stream_id = $1), -1) = $2
RETURNING position";

/// What both reads return per event, the same fields Weir's
/// `RecordedEvent` has (less content type and metadata, which the table
/// does not hold).
pub(super) const EVENT_COLUMNS: &str = "position, stream_id, version, event_id, event_type, data::text, \
     (extract(epoch FROM recorded_at) * 1000)::bigint";

/// An event read from PostgreSQL, decoded as Weir's reads decode theirs.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "read only through black_box, as a client would hold it"
)]
pub(super) struct PgEvent {
    pub(super) position: i64,
    pub(super) stream: String,
    pub(super) version: i64,
    pub(super) id: String,
    pub(super) event_type: String,
    pub(super) data: String,
    pub(super) recorded_ms: i64,
}

impl PgEvent {
    pub(super) fn from_row(row: &postgres::Row) -> anyhow::Result<Self> {
        Ok(Self {
            position: row.try_get(0)?,
            stream: row.try_get(1)?,
            version: row.try_get(2)?,
            id: row.try_get(3)?,
            event_type: row.try_get(4)?,
            data: row.try_get(5)?,
            recorded_ms: row.try_get(6)?,
        })
    }
}

/// The throwaway PostgreSQL and a connection for counters. (No `Debug`:
/// the client has none.)
pub(super) struct Postgres {
    pub(super) server: PgServer,
    pub(super) admin: Mutex<postgres::Client>,
}

pub(super) struct PgSession {
    pub(super) client: postgres::Client,
    pub(super) append: postgres::Statement,
    pub(super) read_stream: postgres::Statement,
    pub(super) read_all: postgres::Statement,
}

impl Postgres {
    pub(super) fn start(dir: &Path) -> anyhow::Result<Self> {
        let server = PgServer::start(dir)?;
        let mut admin = server.connect()?;
        admin.batch_execute(SCHEMA).context("create table events")?;
        for (name, want) in [("fsync", "on"), ("synchronous_commit", "on")] {
            let got: String = admin.query_one(&format!("SHOW {name}"), &[])?.get(0);
            anyhow::ensure!(got == want, "PostgreSQL runs with {name}={got}, not {want}");
        }
        Ok(Self {
            server,
            admin: Mutex::new(admin),
        })
    }

    /// "15.18 (fsync=on, ...)" for the header.
    pub(super) fn describe(&self) -> anyhow::Result<String> {
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let version: String = admin.query_one("SHOW server_version", &[])?.get(0);
        let mut settings = Vec::with_capacity(pg::REPORTED_SETTINGS.len());
        for name in pg::REPORTED_SETTINGS {
            let value: String = admin.query_one(&format!("SHOW {name}"), &[])?.get(0);
            settings.push(format!("{name}={value}"));
        }
        Ok(format!(
            "PostgreSQL {version} as {} on 127.0.0.1:{} ({})",
            self.server.user,
            self.server.port(),
            settings.join(", ")
        ))
    }

    pub(super) fn stop(self) -> anyhow::Result<()> {
        drop(self.admin);
        self.server.stop()
    }
}

impl System for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn session(&self) -> anyhow::Result<Box<dyn Session + '_>> {
        let mut client = self.server.connect()?;
        let append = client.prepare(APPEND_SQL).context("prepare append")?;
        let read_stream = client
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 \
                 ORDER BY version LIMIT $3"
            ))
            .context("prepare read stream")?;
        let read_all = client
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position >= $1 ORDER BY position LIMIT $2"
            ))
            .context("prepare read all")?;
        Ok(Box::new(PgSession {
            client,
            append,
            read_stream,
            read_all,
        }))
    }

    fn fsyncs(&self) -> anyhow::Result<u64> {
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let syncs: i64 = admin
            .query_one("SELECT wal_sync FROM pg_stat_wal", &[])?
            .get(0);
        Ok(syncs as u64)
    }

    fn events(&self) -> anyhow::Result<u64> {
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let n: i64 = admin.query_one("SELECT count(*) FROM events", &[])?.get(0);
        Ok(n as u64)
    }
}

impl Session for PgSession {
    fn append(
        &mut self,
        stream: &str,
        expected: Option<u64>,
        events: &[BenchEvent],
    ) -> anyhow::Result<u64> {
        let after = expected.map_or(-1, |v| v as i64);
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        let rows = self
            .client
            .query(&self.append, &[&stream, &after, &ids, &types, &data])
            .with_context(|| format!("append to {stream}"))?;
        if rows.len() != events.len() {
            bail!("wrong expected version: {stream} is not at {after}");
        }
        Ok((after + events.len() as i64) as u64)
    }

    fn read_stream(&mut self, stream: &str, max: usize) -> anyhow::Result<usize> {
        let rows = self
            .client
            .query(&self.read_stream, &[&stream, &0i64, &(max as i64)])?;
        let events = rows
            .iter()
            .map(PgEvent::from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(std::hint::black_box(events).len())
    }

    fn read_all(&mut self, from: u64, max: usize) -> anyhow::Result<(usize, u64)> {
        let rows = self
            .client
            .query(&self.read_all, &[&(from as i64), &(max as i64)])?;
        let events = rows
            .iter()
            .map(PgEvent::from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next = events.last().map_or(from, |e| e.position as u64 + 1);
        Ok((std::hint::black_box(events).len(), next))
    }

    fn flush_stats(&mut self) -> anyhow::Result<()> {
        // A backend publishes its WAL counters when it goes idle, at most
        // once a second unless asked; this asks, and the second statement
        // starts only after the first one's idle point has passed.
        self.client
            .batch_execute("SELECT pg_stat_force_next_flush()")?;
        self.client.batch_execute("SELECT 1")?;
        Ok(())
    }
}
