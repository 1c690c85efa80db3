//! A service fed by an event-store subscription (all events, a category or
//! one stream) instead of Kafka topics, with the same handlers: events are
//! read in pages through the [`Client`] (embedded or remote), dispatched to
//! the workers by stream (each stream's events in order), and the
//! service's checkpoint (the first position not done) is kept in its own
//! SQLite file. Poison events are parked: appended to the stream
//! `weir.parked-<service>` with why they failed, and replayed on request
//! into `weir.replay-<service>`, which the service reads beside its
//! subscription and hands to the handlers as the original event.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use weir_deadletter::format as dlq;
use weir_store::{ExpectedVersion, NewEvent, StoreError};

use super::tracker::{Lane, Tracker};
use super::worker::{DeadLetterSink, Job, Payload, Pool};
use super::{Delivery, Shared, Stop, bump};
use crate::envelope::{Extensions, Recorded};
use crate::{Client, Envelope, Error};

/// The category of every service's parked-events stream.
pub const PARKED_CATEGORY: &str = "weir.parked";
/// The category of every service's replay stream.
pub const REPLAY_CATEGORY: &str = "weir.replay";

/// The stream `service` parks its poison events in.
pub fn parked_stream(service: &str) -> String {
    format!("{PARKED_CATEGORY}-{service}")
}

/// The stream replayed parked events of `service` are appended to.
pub fn replay_stream(service: &str) -> String {
    format!("{REPLAY_CATEGORY}-{service}")
}

/// Which events a store subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every event in global order (the services' own parked and replay
    /// streams left out).
    All,
    /// The events of the streams `<category>-…`, in global order.
    Category(String),
    /// One stream, by version.
    Stream(String),
}

impl Selection {
    /// The name the subscription's events carry as their origin topic.
    fn name(&self) -> String {
        match self {
            Self::All => "$all".to_owned(),
            Self::Category(c) => format!("$ce-{c}"),
            Self::Stream(s) => s.clone(),
        }
    }
}

/// An event-store subscription to consume.
#[derive(Debug, Clone)]
pub struct StoreSource {
    pub client: Client,
    pub selection: Selection,
}

impl StoreSource {
    pub fn new(client: &Client, selection: Selection) -> Self {
        Self {
            client: client.clone(),
            selection,
        }
    }
}

/// Why and where from an event was parked, kept in the parked event's
/// metadata beside the original's extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedInfo {
    /// The original event's id, stream, version, position and time.
    pub id: String,
    pub stream: String,
    pub version: u64,
    pub position: u64,
    pub recorded_ms: i64,
    pub error: String,
    /// `transient` (retries ran out), `permanent` or `decode`.
    pub kind: String,
    pub attempts: u32,
    pub first_failure_ms: i64,
    pub last_failure_ms: i64,
    /// The service that parked it.
    pub group: String,
    /// How many times it was replayed before it was parked this time.
    #[serde(default)]
    pub replays: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ParkedMetadata {
    #[serde(flatten)]
    extensions: Extensions,
    parked: ParkedInfo,
}

/// A parked event read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    /// Its version in the parked stream.
    pub version: u64,
    /// The original event, as the handler saw it.
    pub event: Envelope,
    pub parked: ParkedInfo,
}

fn metadata_of(envelope: &Envelope) -> Extensions {
    Extensions {
        source: Some(envelope.source.clone()),
        subject: envelope.subject.clone(),
        dataschema: envelope.dataschema.clone(),
        dataversion: envelope.dataversion,
        correlationid: Some(envelope.correlationid.clone()),
        causationid: envelope.causationid.clone(),
    }
}

/// Reads a parked or replayed event's metadata back into the original
/// event and the parking record.
fn unpark(
    trace: Option<&weir_store::TraceContext>,
    event_type: &str,
    content_type: &str,
    data: &[u8],
    metadata: &[u8],
) -> Result<(Envelope, ParkedInfo), String> {
    let meta: ParkedMetadata =
        serde_json::from_slice(metadata).map_err(|e| format!("not a parked event: {e}"))?;
    let p = meta.parked;
    let ext = meta.extensions;
    Ok((
        Envelope {
            source: ext
                .source
                .unwrap_or_else(|| format!("/streams/{}", p.stream)),
            event_type: event_type.to_owned(),
            specversion: crate::SPEC_VERSION.to_owned(),
            time: Some(weir_store::rfc3339(p.recorded_ms)),
            subject: ext.subject,
            datacontenttype: content_type.to_owned(),
            dataschema: ext.dataschema,
            dataversion: ext.dataversion,
            correlationid: ext.correlationid.unwrap_or_else(|| p.id.clone()),
            causationid: ext.causationid,
            data: data.to_vec(),
            id: p.id.clone(),
            trace: trace.cloned(),
            recorded: Some(Recorded {
                stream: p.stream.clone(),
                version: p.version,
                position: p.position,
                recorded_ms: p.recorded_ms,
            }),
        },
        p,
    ))
}

fn raw_events(
    client: &Client,
    stream: &str,
    from: u64,
    max: usize,
) -> Result<Vec<weir_store::RecordedEvent>, Error> {
    match client
        .backend()
        .read_stream(stream, from, max.min(crate::READ_PAGE_MAX))
    {
        Err(Error::Store(StoreError::StreamNotFound { .. })) => Ok(Vec::new()),
        other => other,
    }
}

/// Up to `max` parked events of `service` from `from_version`.
pub fn parked(
    client: &Client,
    service: &str,
    from_version: u64,
    max: usize,
) -> Result<Vec<ParkedEvent>, Error> {
    raw_events(client, &parked_stream(service), from_version, max)?
        .into_iter()
        .map(|e| {
            let (event, parked) = unpark(
                e.trace.as_ref(),
                &e.event_type,
                &e.content_type,
                &e.data,
                &e.metadata,
            )
            .map_err(|reason| Error::BadMetadata {
                id: e.id.clone(),
                reason,
            })?;
            Ok(ParkedEvent {
                version: e.version,
                event,
                parked,
            })
        })
        .collect()
}

/// Replays the parked events of `service` with versions in
/// `from_version..to_version` (at most [`crate::READ_PAGE_MAX`] per call):
/// each is appended to the service's replay stream, which the running
/// service hands to its handlers as the original event. Returns how many
/// were replayed and the version to go on from (`None` when done).
pub fn replay_parked(
    client: &Client,
    service: &str,
    from_version: u64,
    to_version: u64,
) -> Result<(u64, Option<u64>), Error> {
    let max = (to_version.saturating_sub(from_version) as usize).min(crate::READ_PAGE_MAX);
    let events = raw_events(client, &parked_stream(service), from_version, max)?;
    let full = events.len() == max;
    let Some(last) = events.last().map(|e| e.version) else {
        return Ok((0, None));
    };
    let new: Vec<NewEvent> = events
        .iter()
        .map(|e| {
            let mut meta: ParkedMetadata =
                serde_json::from_slice(&e.metadata).map_err(|err| Error::BadMetadata {
                    id: e.id.clone(),
                    reason: format!("not a parked event: {err}"),
                })?;
            meta.parked.replays = meta.parked.replays.saturating_add(1);
            Ok(NewEvent {
                id: crate::new_id(),
                event_type: e.event_type.clone(),
                data: e.data.clone(),
                content_type: e.content_type.clone(),
                metadata: serde_json::to_vec(&meta).map_err(|err| Error::BadMetadata {
                    id: e.id.clone(),
                    reason: err.to_string(),
                })?,
                trace: e.trace.clone(),
            })
        })
        .collect::<Result<_, Error>>()?;
    client
        .backend()
        .append(&replay_stream(service), ExpectedVersion::Any, &new)?;
    let next = last + 1;
    Ok((
        new.len() as u64,
        (full && next < to_version).then_some(next),
    ))
}

/// Parks poison events in the service's parked stream.
struct Parking {
    client: Client,
    service: String,
}

impl DeadLetterSink for Parking {
    fn send(&self, job: &Job, failure: &dlq::Failure) -> Result<(), String> {
        let Payload::Store(event) = &job.payload else {
            return Err("not a store event".to_owned());
        };
        let recorded = event.recorded.as_ref();
        let parked = ParkedMetadata {
            extensions: metadata_of(event),
            parked: ParkedInfo {
                id: event.id.clone(),
                stream: recorded.map(|r| r.stream.clone()).unwrap_or_default(),
                version: recorded.map_or(0, |r| r.version),
                position: recorded.map_or(0, |r| r.position),
                recorded_ms: recorded.map_or(0, |r| r.recorded_ms),
                error: dlq::truncate_error(&failure.error).to_owned(),
                kind: failure.kind.as_str().to_owned(),
                attempts: failure.attempts,
                first_failure_ms: failure.first_failure_ms,
                last_failure_ms: failure.last_failure_ms,
                group: failure.group.clone(),
                replays: job.replays,
            },
        };
        let new = NewEvent {
            id: crate::new_id(),
            event_type: event.event_type.clone(),
            data: event.data.clone(),
            content_type: event.datacontenttype.clone(),
            metadata: serde_json::to_vec(&parked).map_err(|e| e.to_string())?,
            trace: event.trace.clone(),
        };
        self.client
            .backend()
            .append(&parked_stream(&self.service), ExpectedVersion::Any, &[new])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The service's checkpoints, one per lane, in its own SQLite file.
struct Checkpoints {
    conn: Connection,
}

impl Checkpoints {
    fn open(path: PathBuf, service: &str) -> Result<Self, Error> {
        let sql = |e| Error::sqlite(service, e);
        let conn = Connection::open(&path).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS weir_checkpoints (lane TEXT PRIMARY KEY, next INTEGER NOT NULL);",
        )
        .map_err(sql)?;
        Ok(Self { conn })
    }

    fn get(&self, lane: &str) -> rusqlite::Result<u64> {
        self.conn
            .query_row(
                "SELECT next FROM weir_checkpoints WHERE lane = ?1",
                [lane],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|n| n.unwrap_or(0) as u64)
    }

    fn set(&mut self, offsets: &[(Lane, i64)]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        for (lane, next) in offsets {
            tx.execute(
                "INSERT INTO weir_checkpoints (lane, next) VALUES (?1, ?2)
                 ON CONFLICT (lane) DO UPDATE SET next = excluded.next",
                (&*lane.topic, next),
            )?;
        }
        tx.commit()
    }
}

/// What one lane reads.
enum Reader {
    Selection(Selection),
    /// The service's replay stream.
    Replay(String),
}

/// A lane with where it reads next.
struct Feed {
    lane: Lane,
    reader: Reader,
    next: u64,
}

/// How long the loop waits at most when nothing new came.
const IDLE: Duration = Duration::from_millis(100);
/// Events read per page, at most.
const PAGE: usize = 500;

/// A service's store subscription with its workers, ready to run.
pub(crate) struct StoreRuntime {
    shared: Arc<Shared>,
    client: Client,
    tracker: Arc<Tracker>,
    pool: Pool,
    stop: Arc<Stop>,
    feeds: Vec<Feed>,
    checkpoints: Checkpoints,
}

fn is_bookkeeping(stream: &str) -> bool {
    matches!(
        weir_store::category_of(stream),
        Some(PARKED_CATEGORY | REPLAY_CATEGORY)
    )
}

impl StoreRuntime {
    pub(crate) fn new(
        shared: Arc<Shared>,
        source: &StoreSource,
        stop: Arc<Stop>,
    ) -> Result<Self, Error> {
        let name = shared.name.clone();
        let dir = source.client.read_models_dir();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(&name, "creating its directory", e))?;
        let checkpoints = Checkpoints::open(dir.join(format!("{name}.service.sqlite")), &name)?;
        let at_most_once = shared.config.delivery == Delivery::AtMostOnce;
        let tracker = Arc::new(Tracker::new(at_most_once));
        let mut feeds = Vec::new();
        for reader in [
            Reader::Selection(source.selection.clone()),
            Reader::Replay(replay_stream(&name)),
        ] {
            let topic = match &reader {
                Reader::Selection(s) => s.name(),
                Reader::Replay(stream) => stream.clone(),
            };
            let next = checkpoints
                .get(&topic)
                .map_err(|e| Error::sqlite(&name, e))?;
            let lane = Lane {
                topic: topic.into(),
                partition: 0,
            };
            tracker.assign(std::slice::from_ref(&lane));
            feeds.push(Feed { lane, reader, next });
        }
        let sink = Arc::new(Parking {
            client: source.client.clone(),
            service: name.clone(),
        });
        let pool =
            Pool::start(shared.clone(), tracker.clone(), sink, stop.clone()).map_err(|e| {
                Error::Config {
                    reason: format!("starting the service's workers: {e}"),
                }
            })?;
        Ok(Self {
            shared,
            client: source.client.clone(),
            tracker,
            pool,
            stop,
            feeds,
            checkpoints,
        })
    }

    /// Reads the next page of `feed`, no more than `room` events, as jobs.
    fn read(&self, feed: &mut Feed, room: usize) -> Result<Vec<Job>, Error> {
        let max = room.min(PAGE);
        let c = &self.client;
        let mut jobs = Vec::new();
        match &feed.reader {
            Reader::Selection(selection) => {
                let events = match selection {
                    Selection::All => c.read_all(feed.next, max)?,
                    Selection::Category(cat) => c.read_category(cat, feed.next, max)?,
                    Selection::Stream(s) => match c.read_stream(s, feed.next, max) {
                        Err(Error::Store(StoreError::StreamNotFound { .. })) => Vec::new(),
                        other => other?,
                    },
                };
                let by_version = matches!(selection, Selection::Stream(_));
                for e in events {
                    let Some(r) = e.recorded.clone() else {
                        continue;
                    };
                    let offset = if by_version { r.version } else { r.position };
                    feed.next = offset + 1;
                    if is_bookkeeping(&r.stream) {
                        continue;
                    }
                    jobs.push(self.job(&feed.lane, offset, r.stream.clone(), e, 0));
                }
            }
            Reader::Replay(stream) => {
                for e in raw_events(c, stream, feed.next, max)? {
                    feed.next = e.version + 1;
                    match unpark(
                        e.trace.as_ref(),
                        &e.event_type,
                        &e.content_type,
                        &e.data,
                        &e.metadata,
                    ) {
                        Ok((original, parked)) => {
                            let key = parked.stream.clone();
                            jobs.push(self.job(
                                &feed.lane,
                                e.version,
                                key,
                                original,
                                parked.replays,
                            ));
                        }
                        Err(reason) => tracing::warn!(
                            service = %self.shared.name,
                            "replay stream {stream} version {}: {reason}; skipped",
                            e.version
                        ),
                    }
                }
            }
        }
        bump(&self.shared.stats.fetched, jobs.len() as u64);
        Ok(jobs)
    }

    fn job(&self, lane: &Lane, offset: u64, key: String, event: Envelope, replays: u32) -> Job {
        let generation = self.tracker.dispatch(lane, offset as i64);
        Job {
            lane: lane.clone(),
            generation,
            offset: offset as i64,
            key: Some(key.into_bytes()),
            timestamp_ms: event.recorded.as_ref().map_or(0, |r| r.recorded_ms),
            payload: Payload::Store(Box::new(event)),
            replays,
        }
    }

    fn commit_done(&mut self) {
        let offsets = self.tracker.to_commit(None);
        if offsets.is_empty() {
            return;
        }
        match self.checkpoints.set(&offsets) {
            Ok(()) => {
                self.tracker.committed(&offsets);
                bump(&self.shared.stats.commits, offsets.len() as u64);
            }
            Err(e) => tracing::warn!(service = %self.shared.name, "saving the checkpoint: {e}"),
        }
    }

    pub(crate) fn run(mut self) -> Result<(), Error> {
        let at_most_once = self.shared.config.delivery == Delivery::AtMostOnce;
        let mut last_commit = Instant::now();
        while !self.stop.graceful() {
            let epoch = self.client.backend().change_epoch();
            let limit = self.shared.config.in_flight_max;
            // At the limit, read nothing until the workers drained half
            // of it (the store keeps what is not read yet: nothing to
            // pause).
            let backpressure = self.tracker.in_flight() >= limit;
            if backpressure {
                bump(&self.shared.stats.backpressure_pauses, 1);
                self.tracker.wait_below(limit / 2, Instant::now() + IDLE);
            }
            let in_flight = self.tracker.in_flight();
            let blocked: Vec<Lane> = self
                .tracker
                .lanes()
                .into_iter()
                .filter(|(_, b)| *b)
                .map(|(l, _)| l)
                .collect();
            self.shared
                .stats
                .in_flight
                .store(in_flight as u64, Ordering::Relaxed);
            self.shared
                .stats
                .assigned
                .store(self.feeds.len() as u64, Ordering::Relaxed);
            let paused = if backpressure {
                self.feeds.len()
            } else {
                blocked.len()
            };
            self.shared
                .stats
                .paused
                .store(paused as u64, Ordering::Relaxed);
            let mut read_any = false;
            if in_flight < limit {
                let mut feeds = std::mem::take(&mut self.feeds);
                for feed in &mut feeds {
                    if blocked.contains(&feed.lane) {
                        continue;
                    }
                    let room = limit.saturating_sub(self.tracker.in_flight()).max(1);
                    match self.read(feed, room) {
                        Ok(jobs) => {
                            read_any |= !jobs.is_empty();
                            if at_most_once && !jobs.is_empty() {
                                self.commit_done();
                            }
                            for job in jobs {
                                self.pool.dispatch(job);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(service = %self.shared.name, "reading the store: {e}")
                        }
                    }
                }
                self.feeds = feeds;
            }
            if last_commit.elapsed() >= self.shared.config.commit_interval {
                self.commit_done();
                last_commit = Instant::now();
            }
            if !read_any {
                // Woken by a new event (embedded), or polled (remote).
                self.client.backend().wait_changed(epoch, IDLE);
            }
        }
        let deadline = Instant::now() + self.shared.config.shutdown_deadline;
        if !self.tracker.wait_idle(None, deadline) {
            tracing::warn!(
                service = %self.shared.name,
                in_flight = self.tracker.in_flight(),
                "shutdown deadline passed; the events still in flight will be delivered again"
            );
            self.stop.hard.store(true, Ordering::Relaxed);
        }
        let Self {
            pool,
            mut checkpoints,
            tracker,
            shared,
            ..
        } = self;
        pool.join();
        let offsets = tracker.to_commit(None);
        if let Err(e) = checkpoints.set(&offsets) {
            tracing::warn!(service = %shared.name, "saving the final checkpoint: {e}");
        }
        Ok(())
    }
}
