//! Queue consumers in the SDK: competing consumers of a topic's records,
//! each record locked for one consumer until it is acknowledged, released
//! (delivered again) or rejected (to the dead letters), as `weir serve`'s
//! HTTP queue API and `weir queue` offer. Remote, every call is that API
//! (through `weir-client`); embedded, it is `weir-queue`'s manager over
//! the client's own broker (`BrokerQueueIo`), with locks that ran out
//! released at each claim, since no server timer runs. [`QueueConsumer::run`]
//! calls a handler per record: acknowledged on `Ok`, released on a
//! retryable error, rejected on a permanent one, its lock extended while
//! a slow handler runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use weir_deadletter::queue_claim::{BrokerQueues, ClaimError, NewGroup, claim_partition};
use weir_deadletter::queue_io::BrokerQueueIo;
use weir_queue::{AckKind, QueueError, QueueKey, Queues, QueuesConfig};

use crate::remote::remote_error;
use crate::{Client, Embedded, Error};

/// A claim waits for records at most this long.
pub const CLAIM_WAIT_MS_MAX: u64 = 30_000;
/// An embedded claim that waits looks again at least this often (a
/// release wakes no one embedded; new records do).
const EMBEDDED_POLL: Duration = Duration::from_millis(50);

/// How a consumer claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// Records per claim at most.
    pub max: usize,
    /// How long a claimed record stays locked to this consumer.
    pub lock_ms: i64,
    /// How long a claim waits for records when there are none (at most
    /// [`CLAIM_WAIT_MS_MAX`]).
    pub wait_ms: u64,
    /// Where a group new to a partition starts: its first record (else
    /// only records produced from now on).
    pub earliest: bool,
    /// Deliveries a record gets at most before it is dead-lettered (for a
    /// new group).
    pub delivery_limit: u16,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max: 10,
            lock_ms: 30_000,
            wait_ms: 1_000,
            earliest: true,
            delivery_limit: 5,
        }
    }
}

/// A claimed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Header values as text (lossy for bytes that are not UTF-8).
    pub headers: BTreeMap<String, String>,
    /// Which delivery this is (1 the first).
    pub deliveries: u16,
    /// When the lock runs out (Unix ms).
    pub lock_deadline_ms: i64,
}

/// Where a client's queue calls go: the embedded manager, or the server.
#[derive(Clone)]
pub struct QueueEngine(Engine);

#[derive(Clone)]
enum Engine {
    Embedded(Arc<BrokerQueues>),
    Remote(weir_client::Client),
}

impl std::fmt::Debug for QueueEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Engine::Embedded(_) => "QueueEngine::Embedded",
            Engine::Remote(_) => "QueueEngine::Remote",
        })
    }
}

impl QueueEngine {
    pub(crate) fn remote(http: weir_client::Client) -> Self {
        Self(Engine::Remote(http))
    }
}

/// The embedded backend's queue manager, opened (its journal replayed) on
/// first use.
pub(crate) fn embedded_engine(e: &Embedded) -> Result<QueueEngine, Error> {
    Ok(QueueEngine(Engine::Embedded(embedded_manager(e)?)))
}

/// The data directory's one queue manager, opened (its journal replayed)
/// on first use; queue consumers and persistent subscriptions share it, as
/// two managers over one journal would overwrite each other's snapshots.
pub(crate) fn embedded_manager(e: &Embedded) -> Result<Arc<BrokerQueues>, Error> {
    let mut slot = e.queues.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(q) = &*slot {
        return Ok(q.clone());
    }
    let io = BrokerQueueIo::new(e.store().broker().clone());
    let (q, _) = Queues::open(io, QueuesConfig::default()).map_err(queue_error)?;
    let q = Arc::new(q);
    *slot = Some(q.clone());
    Ok(q)
}

fn queue_error(e: QueueError) -> Error {
    match e {
        QueueError::NotAcquired { offset, member } => Error::NotHeld {
            offset,
            consumer: member,
        },
        e => Error::Queue {
            reason: e.to_string(),
        },
    }
}

/// A remote settlement's error: the server's `record_not_held` is
/// [`Error::NotHeld`], as the embedded manager's refusal is.
fn settle_error(e: weir_client::ClientError, offset: i64, consumer: &str) -> Error {
    if let weir_client::ClientError::Problem(p) = &e
        && p.code == "record_not_held"
    {
        return Error::NotHeld {
            offset,
            consumer: consumer.to_owned(),
        };
    }
    remote_error(e)
}

fn claim_error(e: ClaimError) -> Error {
    match e {
        ClaimError::Queue(e) => queue_error(e),
        e => Error::Queue {
            reason: e.to_string(),
        },
    }
}

/// A queue group's view of one topic.
#[derive(Debug, Clone)]
pub struct Queue {
    engine: Result<QueueEngine, Arc<Error>>,
    group: String,
    topic: String,
}

impl Client {
    /// Queue group `group` on `topic` (errors, such as a backend without
    /// queues, surface at the first call).
    pub fn queue(&self, group: &str, topic: &str) -> Queue {
        Queue {
            engine: self.backend().queue_engine().map_err(Arc::new),
            group: group.to_owned(),
            topic: topic.to_owned(),
        }
    }
}

impl Queue {
    /// Consumer `name` of the group, with default options.
    pub fn consumer(&self, name: &str) -> QueueConsumer {
        self.consumer_with(name, QueueOptions::default())
    }

    pub fn consumer_with(&self, name: &str, options: QueueOptions) -> QueueConsumer {
        QueueConsumer {
            queue: self.clone(),
            name: name.to_owned(),
            options,
        }
    }
}

/// One consumer of a queue group: claims records and settles them.
#[derive(Debug, Clone)]
pub struct QueueConsumer {
    queue: Queue,
    name: String,
    options: QueueOptions,
}

fn engine_err(e: &Arc<Error>) -> Error {
    match &**e {
        Error::Unsupported { what } => Error::Unsupported { what },
        other => Error::Queue {
            reason: other.to_string(),
        },
    }
}

impl QueueConsumer {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn engine(&self) -> Result<&Engine, Error> {
        self.queue.engine.as_ref().map(|e| &e.0).map_err(engine_err)
    }

    fn check(&self) -> Result<(), Error> {
        let o = &self.options;
        if o.max == 0 || o.lock_ms <= 0 || o.wait_ms > CLAIM_WAIT_MS_MAX || o.delivery_limit == 0 {
            return Err(Error::Config {
                reason: format!(
                    "queue options: max and lock_ms must be positive, delivery_limit at least 1 and wait_ms at most {CLAIM_WAIT_MS_MAX}; got {o:?}"
                ),
            });
        }
        Ok(())
    }

    /// Claims up to `max` records, waiting up to `wait_ms` when there are
    /// none; each is locked to this consumer for `lock_ms`.
    pub fn claim(&self) -> Result<Vec<QueueRecord>, Error> {
        self.check()?;
        match self.engine()? {
            Engine::Remote(http) => {
                let o = &self.options;
                let claimed = http
                    .claim(
                        &self.queue.group,
                        &self.queue.topic,
                        &weir_api::ClaimRequest {
                            consumer: self.name.clone(),
                            max: Some(o.max),
                            lock_ms: Some(o.lock_ms),
                            wait_ms: Some(o.wait_ms),
                            start: Some(if o.earliest { "earliest" } else { "latest" }.to_owned()),
                            delivery_limit: Some(o.delivery_limit),
                        },
                    )
                    .map_err(remote_error)?;
                claimed.records.into_iter().map(from_api).collect()
            }
            Engine::Embedded(q) => self.claim_embedded(q),
        }
    }

    fn claim_embedded(&self, q: &BrokerQueues) -> Result<Vec<QueueRecord>, Error> {
        let broker = q.io().broker();
        let changes = broker.data_dir().changes();
        let until = Instant::now() + Duration::from_millis(self.options.wait_ms);
        loop {
            let seen = changes.epoch();
            let got = self.claim_embedded_once(q)?;
            let left = until.saturating_duration_since(Instant::now());
            if !got.is_empty() || left.is_zero() {
                return Ok(got);
            }
            changes.wait(seen, left.min(EMBEDDED_POLL));
        }
    }

    fn claim_embedded_once(&self, q: &BrokerQueues) -> Result<Vec<QueueRecord>, Error> {
        let broker = q.io().broker();
        let now = broker.data_dir().clock().now_ms();
        // No server timer runs embedded: locks that ran out are released,
        // and a snapshot taken when due, here.
        q.expire(now).map_err(queue_error)?;
        q.maintain().map_err(queue_error)?;
        let topic = broker.topic(&self.queue.topic).map_err(|e| Error::Queue {
            reason: e.to_string(),
        })?;
        if topic.internal {
            return Err(Error::Queue {
                reason: format!(
                    "{} is an internal topic; it cannot be claimed from",
                    topic.name
                ),
            });
        }
        let o = &self.options;
        let mut out = Vec::new();
        for partition in 0..topic.partition_count() as i32 {
            if out.len() >= o.max {
                break;
            }
            let mut claimed = Vec::new();
            claim_partition(
                q,
                &self.key(partition),
                NewGroup {
                    earliest: o.earliest,
                    delivery_limit: o.delivery_limit,
                },
                &self.name,
                o.max - out.len(),
                o.lock_ms,
                now,
                &mut claimed,
            )
            .map_err(claim_error)?;
            out.extend(claimed.into_iter().map(|c| {
                let r = c.record;
                QueueRecord {
                    partition,
                    offset: r.offset,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| {
                            let v = v.map(|v| String::from_utf8_lossy(&v).into_owned());
                            (k, v.unwrap_or_default())
                        })
                        .collect(),
                    deliveries: c.deliveries,
                    lock_deadline_ms: now + o.lock_ms,
                }
            }));
        }
        Ok(out)
    }

    fn key(&self, partition: i32) -> QueueKey {
        QueueKey {
            group: self.queue.group.clone(),
            topic: self.queue.topic.clone(),
            partition,
        }
    }

    fn settle(&self, r: &QueueRecord, kind: AckKind) -> Result<(), Error> {
        match self.engine()? {
            Engine::Remote(http) => {
                let body = weir_api::RecordAck {
                    consumer: self.name.clone(),
                    partition: r.partition,
                    offset: r.offset,
                    reject: kind == AckKind::Reject,
                    lock_ms: None,
                };
                let (g, t) = (&self.queue.group, &self.queue.topic);
                match kind {
                    AckKind::Accept => http.ack(g, t, &body),
                    _ => http.nack(g, t, &body),
                }
                .map_err(|e| settle_error(e, r.offset, &self.name))?;
                Ok(())
            }
            Engine::Embedded(q) => q
                .acknowledge(&self.key(r.partition), &self.name, r.offset, r.offset, kind)
                .map_err(queue_error),
        }
    }

    /// Done for good: never delivered again. Returns once durable.
    pub fn ack(&self, r: &QueueRecord) -> Result<(), Error> {
        self.settle(r, AckKind::Accept)
    }

    /// Gives the record back, to be delivered again (to any consumer).
    pub fn release(&self, r: &QueueRecord) -> Result<(), Error> {
        self.settle(r, AckKind::Release)
    }

    /// Never delivered again: written to the topic's dead letters.
    pub fn reject(&self, r: &QueueRecord) -> Result<(), Error> {
        self.settle(r, AckKind::Reject)
    }

    /// Extends the record's lock to `lock_ms` from now; returns the new
    /// deadline (Unix ms).
    pub fn extend(&self, r: &QueueRecord, lock_ms: i64) -> Result<i64, Error> {
        match self.engine()? {
            Engine::Remote(http) => {
                let body = weir_api::RecordAck {
                    consumer: self.name.clone(),
                    partition: r.partition,
                    offset: r.offset,
                    reject: false,
                    lock_ms: Some(lock_ms),
                };
                let acked = http
                    .extend(&self.queue.group, &self.queue.topic, &body)
                    .map_err(|e| settle_error(e, r.offset, &self.name))?;
                Ok(acked.lock_deadline_ms.unwrap_or_default())
            }
            Engine::Embedded(q) => {
                let now = q.io().broker().data_dir().clock().now_ms();
                q.renew(
                    &self.key(r.partition),
                    &self.name,
                    r.offset,
                    r.offset,
                    lock_ms,
                    now,
                )
                .map_err(queue_error)
            }
        }
    }

    /// The offsets this group's consumers hold on this topic, by
    /// partition, with the consumer holding each.
    pub fn pending(&self) -> Result<Vec<(i32, i64, String)>, Error> {
        match self.engine()? {
            Engine::Remote(http) => Ok(http
                .pending(&self.queue.group)
                .map_err(remote_error)?
                .pending
                .into_iter()
                .filter(|p| p.topic == self.queue.topic)
                .map(|p| (p.partition, p.offset, p.consumer))
                .collect()),
            Engine::Embedded(q) => {
                let now = q.io().broker().data_dir().clock().now_ms();
                Ok(q.pending(&self.queue.group, now)
                    .into_iter()
                    .filter(|(k, _)| k.topic == self.queue.topic)
                    .map(|(k, p)| (k.partition, p.offset, p.member))
                    .collect())
            }
        }
    }
}

fn from_api(r: weir_api::QueueRecord) -> Result<QueueRecord, Error> {
    let value = r
        .value_base64
        .map(|v| B64.decode(v))
        .transpose()
        .map_err(|e| Error::Queue {
            reason: format!("record {}: value_base64: {e}", r.offset),
        })?;
    Ok(QueueRecord {
        partition: r.partition,
        offset: r.offset,
        timestamp_ms: r.timestamp_ms,
        key: r.key.map(String::into_bytes),
        value,
        headers: r.headers,
        deliveries: r.deliveries,
        lock_deadline_ms: r.lock_deadline_ms,
    })
}

/// Why a handler did not finish a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueFailure {
    /// Try again later: the record is released, delivered again (until
    /// the group's delivery limit, then dead-lettered).
    Retry(String),
    /// Never: the record is rejected to the dead letters.
    Permanent(String),
}

/// What [`QueueConsumer::run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub acked: u64,
    pub released: u64,
    pub rejected: u64,
    /// Lock extensions made while handlers ran.
    pub extended: u64,
}

/// Records whose handlers have not finished, and when their locks were
/// last extended: the extender's work list.
struct Held {
    records: Mutex<(Vec<QueueRecord>, Instant, bool)>,
    changed: Condvar,
}

impl QueueConsumer {
    /// Claims and handles records until `stop` is set (checked between
    /// records and claims) or `max_records` were handled: each record's
    /// handler result settles it (`Ok`: ack; [`QueueFailure::Retry`]:
    /// release; [`QueueFailure::Permanent`]: reject). While records of a
    /// claim are held, a helper thread extends their locks every third of
    /// `lock_ms`, so a slow handler keeps them. A settlement refused
    /// because the lock was lost (taken by another consumer) is skipped;
    /// other errors end the run.
    pub fn run(
        &self,
        stop: &AtomicBool,
        max_records: Option<u64>,
        mut handler: impl FnMut(&QueueRecord) -> Result<(), QueueFailure>,
    ) -> Result<RunStats, Error> {
        self.check()?;
        let held = Held {
            records: Mutex::new((Vec::new(), Instant::now(), false)),
            changed: Condvar::new(),
        };
        let extended = AtomicU64::new(0);
        let every = Duration::from_millis((self.options.lock_ms / 3).max(1) as u64);
        std::thread::scope(|s| {
            s.spawn(|| self.extend_held(&held, every, &extended));
            let result = self.run_loop(stop, max_records, &held, &mut handler);
            let mut h = held.records.lock().unwrap_or_else(|p| p.into_inner());
            h.2 = true;
            drop(h);
            held.changed.notify_all();
            result.map(|mut stats| {
                stats.extended = extended.load(Ordering::Relaxed);
                stats
            })
        })
    }

    fn run_loop(
        &self,
        stop: &AtomicBool,
        max_records: Option<u64>,
        held: &Held,
        handler: &mut impl FnMut(&QueueRecord) -> Result<(), QueueFailure>,
    ) -> Result<RunStats, Error> {
        let mut stats = RunStats::default();
        let done =
            |s: &RunStats| max_records.is_some_and(|m| s.acked + s.released + s.rejected >= m);
        while !stop.load(Ordering::Relaxed) && !done(&stats) {
            let claimed = self.claim()?;
            {
                let mut h = held.records.lock().unwrap_or_else(|p| p.into_inner());
                h.0 = claimed.clone();
                h.1 = Instant::now();
            }
            for (i, r) in claimed.iter().enumerate() {
                if stop.load(Ordering::Relaxed) || done(&stats) {
                    // Not handled: given back at once rather than left
                    // locked until its lock runs out.
                    for r in &claimed[i..] {
                        self.release_quietly(r);
                    }
                    break;
                }
                let settled = match handler(r) {
                    Ok(()) => self.ack(r).map(|()| stats.acked += 1),
                    Err(QueueFailure::Retry(_)) => self.release(r).map(|()| stats.released += 1),
                    Err(QueueFailure::Permanent(_)) => self.reject(r).map(|()| stats.rejected += 1),
                };
                held.records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .0
                    .retain(|h| (h.partition, h.offset) != (r.partition, r.offset));
                if let Err(e) = settled
                    && !lost_lock(&e)
                {
                    return Err(e);
                }
            }
        }
        Ok(stats)
    }

    fn release_quietly(&self, r: &QueueRecord) {
        if let Err(e) = self.release(r) {
            tracing::debug!(offset = r.offset, %e, "releasing an unhandled record failed");
        }
    }

    /// The helper thread of [`QueueConsumer::run`].
    fn extend_held(&self, held: &Held, every: Duration, extended: &AtomicU64) {
        let mut h = held.records.lock().unwrap_or_else(|p| p.into_inner());
        while !h.2 {
            let due = h.1 + every;
            let now = Instant::now();
            if now < due || h.0.is_empty() {
                let wait = due
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1));
                h = held
                    .changed
                    .wait_timeout(h, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            }
            let records = h.0.clone();
            h.1 = now;
            drop(h);
            for r in &records {
                match self.extend(r, self.options.lock_ms) {
                    Ok(_) => {
                        extended.fetch_add(1, Ordering::Relaxed);
                    }
                    // Settled meanwhile, or lost: nothing to keep.
                    Err(e) => tracing::debug!(offset = r.offset, %e, "extending a lock failed"),
                }
            }
            h = held.records.lock().unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Whether a settlement failed because this consumer no longer holds the
/// record (its lock ran out and another consumer took it).
fn lost_lock(e: &Error) -> bool {
    matches!(e, Error::NotHeld { .. })
}
