//! The relay: claims batches of unpublished outbox rows, publishes them in
//! order per aggregate to a Kafka topic or to event-store streams, and
//! marks them published once the target acknowledged them.
//!
//! Per aggregate, a row is published only after every earlier row of that
//! aggregate was acknowledged; the first failure stops the aggregate for
//! the round (its later rows wait for the next one), other aggregates go
//! on. Marking happens after the acknowledgements, so a crash between the
//! two publishes those rows again on the next claim: at least once.
//!
//! - **Streams**: one stream per aggregate, `<prefix><aggregate id>`, owned
//!   by the relay: an event's version there is its row's `aggregate_seq`.
//!   Each append expects the stream at the previous row's version (`Exact`,
//!   or `NoStream` for the first), which the store answers idempotently
//!   for a retried append of the same ids, always (not only within its
//!   recent-ids window). A retry that overlaps what is there only in part
//!   gets a conflict; the relay then reads the stream, marks the rows it
//!   finds there (by event id, in order) and goes on from the first one
//!   missing. The store thus holds each event once and in order, whatever
//!   crashed when.
//! - **Topic**: records keyed by aggregate id (one aggregate, one
//!   partition), sent through an idempotent `acks=all` producer; a batch is
//!   pipelined and each record's acknowledgement awaited. A record re-sent
//!   after a crash lands in the topic twice; consumers skip the copy by
//!   event id (`ce_id`; [`crate::Consumer`] does). Because every relay sends
//!   an aggregate's rows in order from its oldest unpublished one, the
//!   first copy of each event in a partition is in order, so a consumer
//!   that skips ids it has seen sees each aggregate in order.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::ThreadedProducer;
use weir_store::{ExpectedVersion, StoreError};

use super::sqlite::SqliteClaimer;
use super::{BATCH_ROWS_MAX, Claimer, OutboxError, Row};
use crate::service::publisher::{self, DeliveryContext, Outgoing};
use crate::{Client, Envelope, Error, new_id};

/// The most events of one aggregate appended to the store in one call.
const APPEND_EVENTS_MAX: usize = 1_000;
/// How long librdkafka keeps trying a record. Below the publisher's wait
/// for an acknowledgement, so every record the relay waits for is settled
/// (acknowledged or failed) when the wait ends.
const MESSAGE_TIMEOUT_MS: u64 = 25_000;
/// The longest sleep slice: a stop request is seen within this.
const SLEEP_SLICE_MS: u64 = 50;

/// Where the outbox is.
#[derive(Debug, Clone)]
pub enum Source {
    /// An SQLite database file (it must exist and hold the outbox table).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (URL or key-value form).
    #[cfg(feature = "postgres")]
    Postgres(String),
}

/// Where the relay publishes.
pub struct Target {
    kind: TargetKind,
}

enum TargetKind {
    Topic {
        bootstrap: String,
        topic: String,
        settings: Vec<(String, String)>,
        /// Created on first use, and again after a failed batch (so
        /// nothing of the failed batch is still queued in it).
        producer: Option<ThreadedProducer<DeliveryContext>>,
    },
    Streams {
        client: Client,
        prefix: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            TargetKind::Topic {
                bootstrap, topic, ..
            } => write!(f, "Target::Topic({topic} at {bootstrap})"),
            TargetKind::Streams { prefix, .. } => write!(f, "Target::Streams({prefix}*)"),
        }
    }
}

impl Target {
    /// The Kafka topic `topic` of the cluster at `bootstrap`.
    pub fn topic(bootstrap: &str, topic: &str) -> Self {
        Self::topic_with(bootstrap, topic, &[])
    }

    /// Like [`Self::topic`], with more librdkafka `settings` applied last.
    pub fn topic_with(bootstrap: &str, topic: &str, settings: &[(String, String)]) -> Self {
        Self {
            kind: TargetKind::Topic {
                bootstrap: bootstrap.to_owned(),
                topic: topic.to_owned(),
                settings: settings.to_vec(),
                producer: None,
            },
        }
    }

    /// The store of `client`, one stream per aggregate named
    /// `<prefix><aggregate id>`; nothing else may write to those streams.
    pub fn streams(client: Client, prefix: &str) -> Self {
        Self {
            kind: TargetKind::Streams {
                client,
                prefix: prefix.to_owned(),
            },
        }
    }

    /// Publishes `rows` (in order per aggregate).
    fn publish(&mut self, rows: &[Row]) -> Published {
        match &mut self.kind {
            TargetKind::Topic {
                bootstrap,
                topic,
                settings,
                producer,
            } => publish_topic(bootstrap, topic, settings, producer, rows),
            TargetKind::Streams { client, prefix } => publish_streams(client, prefix, rows),
        }
    }
}

/// What a batch's publishing achieved.
#[derive(Debug, Default)]
struct Published {
    /// Rows acknowledged (or found already there), to mark.
    seqs: Vec<i64>,
    /// Of those, rows a conflict showed were already in their stream.
    reconciled: usize,
    /// The first failure, if any aggregate stopped on one.
    error: Option<OutboxError>,
}

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The most rows claimed and published per round
    /// (1..=[`BATCH_ROWS_MAX`]).
    pub batch_rows_max: usize,
    /// How long to wait before looking again when the outbox is empty.
    pub idle_ms: u64,
    /// The first wait after a failed round; it doubles with each failure
    /// in a row up to `backoff_ms_max`, and resets after a success.
    pub backoff_ms_min: u64,
    pub backoff_ms_max: u64,
    /// SQLite: how long a relay's lease lasts without renewal (it renews
    /// with every round). Another relay takes over once it expired. Must
    /// exceed a round's time, or a stalled relay and its successor may
    /// both publish a batch (harmless by event id, but wasted).
    pub lease_ms: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_rows_max: 500,
            idle_ms: 50,
            backoff_ms_min: 100,
            backoff_ms_max: 5_000,
            lease_ms: 30_000,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows marked published (acknowledged, or found already published).
    pub published: usize,
    /// Of those, rows a retry found already in their stream.
    pub reconciled: usize,
    /// Another relay holds the outbox (SQLite's lease).
    pub standby: bool,
}

/// Totals since the relay started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub rounds: u64,
    pub published: u64,
    pub reconciled: u64,
    pub failed_rounds: u64,
    pub standby_rounds: u64,
}

/// Publishes an outbox's rows to a target; see the [module](self) docs.
pub struct Relay {
    source: Box<dyn Claimer>,
    target: Target,
    config: RelayConfig,
    stats: RelayStats,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("target", &self.target)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay from `source` to `target`. Fails if the settings are out of
    /// range, or the outbox cannot be opened or has no outbox table.
    pub fn new(source: Source, target: Target, config: RelayConfig) -> Result<Self, OutboxError> {
        if !(1..=BATCH_ROWS_MAX).contains(&config.batch_rows_max) {
            return Err(OutboxError::Config {
                reason: format!(
                    "batch_rows_max {} is not within 1..={BATCH_ROWS_MAX}",
                    config.batch_rows_max
                ),
            });
        }
        if config.backoff_ms_min == 0 || config.backoff_ms_max < config.backoff_ms_min {
            return Err(OutboxError::Config {
                reason: format!(
                    "backoff_ms_min {} must be positive and at most backoff_ms_max {}",
                    config.backoff_ms_min, config.backoff_ms_max
                ),
            });
        }
        if config.lease_ms < 100 {
            return Err(OutboxError::Config {
                reason: format!("lease_ms {} is below 100", config.lease_ms),
            });
        }
        if let TargetKind::Topic { topic, .. } = &target.kind
            && topic.is_empty()
        {
            return Err(OutboxError::Config {
                reason: "the topic name is empty".to_owned(),
            });
        }
        let holder = format!("relay-{}-{}", std::process::id(), &new_id()[..8]);
        let source: Box<dyn Claimer> = match source {
            Source::Sqlite(path) => Box::new(SqliteClaimer::open(&path, holder, config.lease_ms)?),
            #[cfg(feature = "postgres")]
            Source::Postgres(url) => Box::new(super::postgres::PgClaimer::open(&url)?),
        };
        Ok(Self {
            source,
            target,
            config,
            stats: RelayStats::default(),
        })
    }

    /// Totals so far.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// One round: claims a batch, publishes it, marks what was
    /// acknowledged. A failure of some aggregates still marks the rest,
    /// then returns the first failure.
    pub fn run_once(&mut self) -> Result<Round, OutboxError> {
        self.stats.rounds += 1;
        let result = self.round();
        if result.is_err() {
            self.stats.failed_rounds += 1;
        }
        result
    }

    fn round(&mut self) -> Result<Round, OutboxError> {
        let claimed = self.source.claim(self.config.batch_rows_max)?;
        if claimed.standby {
            self.stats.standby_rounds += 1;
        }
        if claimed.rows.is_empty() {
            self.source.abandon();
            return Ok(Round {
                standby: claimed.standby,
                ..Round::default()
            });
        }
        let published = self.target.publish(&claimed.rows);
        if published.seqs.is_empty() {
            self.source.abandon();
        } else {
            self.source.complete(&published.seqs)?;
        }
        self.stats.published += published.seqs.len() as u64;
        self.stats.reconciled += published.reconciled as u64;
        match published.error {
            Some(e) => Err(e),
            None => Ok(Round {
                claimed: claimed.rows.len(),
                published: published.seqs.len(),
                reconciled: published.reconciled,
                standby: false,
            }),
        }
    }

    /// Runs rounds until `stop` is set (checked between rounds and while
    /// waiting): an empty outbox is looked at again after `idle_ms`, a
    /// failed round (logged) after a backoff.
    pub fn run_until(&mut self, stop: &AtomicBool) -> RelayStats {
        let mut backoff_ms = self.config.backoff_ms_min;
        // A standby relay looks at the lease less often than an idle one
        // at the table: each look is a write.
        let standby_ms = (self.config.lease_ms / 4).clamp(self.config.idle_ms, 1_000);
        while !stop.load(Ordering::Relaxed) {
            match self.run_once() {
                Ok(round) => {
                    backoff_ms = self.config.backoff_ms_min;
                    if round.standby {
                        sleep_unless(stop, standby_ms);
                    } else if round.claimed == 0 {
                        sleep_unless(stop, self.config.idle_ms);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, backoff_ms, "outbox relay round failed");
                    sleep_unless(stop, backoff_ms);
                    backoff_ms = (backoff_ms * 2).min(self.config.backoff_ms_max);
                }
            }
        }
        self.stats
    }

    /// Runs until SIGTERM or SIGINT; the round in progress finishes.
    pub fn run_until_signal(&mut self) -> Result<RelayStats, OutboxError> {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, stop.clone()).map_err(|e| OutboxError::Config {
                reason: format!("installing the signal handler: {e}"),
            })?;
        }
        Ok(self.run_until(&stop))
    }
}

fn sleep_unless(stop: &AtomicBool, ms: u64) {
    let until = Instant::now() + Duration::from_millis(ms);
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(SLEEP_SLICE_MS)));
    }
}

fn publish_topic(
    bootstrap: &str,
    topic: &str,
    settings: &[(String, String)],
    producer: &mut Option<ThreadedProducer<DeliveryContext>>,
    rows: &[Row],
) -> Published {
    if producer.is_none() {
        let mut all = vec![
            // A failure that would leave a gap in a partition (a record
            // lost while a later one lands) stops the producer instead.
            ("enable.gapless.guarantee".to_owned(), "true".to_owned()),
            (
                "message.timeout.ms".to_owned(),
                MESSAGE_TIMEOUT_MS.to_string(),
            ),
        ];
        all.extend_from_slice(settings);
        match publisher::producer(bootstrap, "weir-outbox-relay", &all) {
            Ok(p) => *producer = Some(p),
            Err(e) => {
                return Published {
                    error: Some(OutboxError::Publish(Error::Kafka {
                        service: "outbox relay".to_owned(),
                        reason: format!("creating the producer: {e}"),
                    })),
                    ..Published::default()
                };
            }
        }
    }
    let records: Vec<_> = rows.iter().map(|r| r.envelope.to_kafka()).collect();
    let outs = rows
        .iter()
        .zip(&records)
        .map(|(row, record)| {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            Outgoing {
                topic,
                partition: None,
                key: Some(row.aggregate_id.as_bytes()),
                value: Some(&record.value),
                headers,
            }
        })
        .collect();
    let acks = publisher::send_all_acked(producer.as_ref().expect("created above"), outs);
    let mut out = Published::default();
    let mut stopped: HashMap<&str, ()> = HashMap::new();
    for (row, ack) in rows.iter().zip(acks) {
        if stopped.contains_key(row.aggregate_id.as_str()) {
            continue;
        }
        match ack {
            Ok(_) => out.seqs.push(row.seq),
            Err(reason) => {
                stopped.insert(&row.aggregate_id, ());
                out.error.get_or_insert(OutboxError::Publish(Error::Kafka {
                    service: "outbox relay".to_owned(),
                    reason: format!(
                        "event {} of {}: {reason}",
                        row.envelope.id, row.aggregate_id
                    ),
                }));
            }
        }
    }
    if out.error.is_some() {
        // Nothing of this batch may still be queued when its rows are sent
        // again: a fresh producer next round.
        *producer = None;
    }
    out
}

fn publish_streams(client: &Client, prefix: &str, rows: &[Row]) -> Published {
    let mut out = Published::default();
    for run in by_aggregate(rows) {
        let stream = format!("{prefix}{}", run[0].aggregate_id);
        for chunk in consecutive_chunks(&run) {
            match append_chunk(client, &stream, &chunk) {
                Ok(Appended::All) => out.seqs.extend(chunk.iter().map(|r| r.seq)),
                Ok(Appended::Found(n)) => {
                    out.seqs.extend(chunk[..n].iter().map(|r| r.seq));
                    out.reconciled += n;
                    // The rest of this aggregate goes next round, appended
                    // after what is now known to be there.
                    break;
                }
                Err(e) => {
                    out.error.get_or_insert(e);
                    break;
                }
            }
        }
    }
    out
}

/// The rows of each aggregate, in their order, aggregates in order of
/// first appearance.
fn by_aggregate(rows: &[Row]) -> Vec<Vec<&Row>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut runs: Vec<Vec<&Row>> = Vec::new();
    for row in rows {
        let i = *index.entry(&row.aggregate_id).or_insert_with(|| {
            runs.push(Vec::new());
            runs.len() - 1
        });
        runs[i].push(row);
    }
    runs
}

/// Splits one aggregate's rows where `aggregate_seq` is not consecutive
/// (rows deleted by hand) or a chunk is full.
fn consecutive_chunks<'r>(run: &[&'r Row]) -> Vec<Vec<&'r Row>> {
    let mut chunks: Vec<Vec<&Row>> = Vec::new();
    for row in run {
        match chunks.last_mut() {
            Some(c)
                if c.len() < APPEND_EVENTS_MAX
                    && c.last()
                        .is_some_and(|l| l.aggregate_seq + 1 == row.aggregate_seq) =>
            {
                c.push(row);
            }
            _ => chunks.push(vec![row]),
        }
    }
    chunks
}

enum Appended {
    All,
    /// A conflict: the first n rows were already in the stream.
    Found(usize),
}

fn append_chunk(client: &Client, stream: &str, chunk: &[&Row]) -> Result<Appended, OutboxError> {
    let first = chunk[0].aggregate_seq;
    let expected = match first {
        0 => ExpectedVersion::NoStream,
        n => ExpectedVersion::Exact(n - 1),
    };
    let envelopes: Vec<Envelope> = chunk.iter().map(|r| r.envelope.clone()).collect();
    match client.append(stream, expected, &envelopes) {
        Ok(result) => {
            debug_assert_eq!(result.first_version, first, "stream {stream}");
            Ok(Appended::All)
        }
        Err(Error::Store(
            StoreError::WrongExpectedVersion { .. } | StoreError::IdempotencyConflict { .. },
        )) => reconcile(client, stream, chunk),
        Err(e) => Err(OutboxError::Publish(e)),
    }
}

/// After a conflict: how many of `chunk`'s rows are already in `stream` at
/// their versions (an earlier attempt appended them and crashed before
/// marking). None there is divergence: something else wrote the stream.
fn reconcile(client: &Client, stream: &str, chunk: &[&Row]) -> Result<Appended, OutboxError> {
    let first = chunk[0].aggregate_seq;
    let there = match client.read_stream(stream, first, chunk.len()) {
        Ok(events) => events,
        Err(Error::Store(StoreError::StreamNotFound { .. })) => Vec::new(),
        Err(e) => return Err(OutboxError::Publish(e)),
    };
    let found = chunk
        .iter()
        .zip(&there)
        .take_while(|(row, event)| row.envelope.id == event.id)
        .count();
    if found == 0 {
        return Err(OutboxError::StreamDiverged {
            stream: stream.to_owned(),
            version: first,
            expected_id: chunk[0].envelope.id.clone(),
            found_id: there
                .first()
                .map_or_else(|| "(no event)".to_owned(), |e| e.id.clone()),
        });
    }
    tracing::info!(
        stream,
        found,
        "outbox rows were already in their stream (published before a crash); marking them"
    );
    Ok(Appended::Found(found))
}
