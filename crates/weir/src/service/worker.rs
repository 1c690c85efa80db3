//! The handler threads of a running service: each takes the records of
//! the keys hashed to it, in order, runs the handler with retries, waits
//! out open breakers, dead-letters what cannot be handled, and marks the
//! record done for the commit.

use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weir_deadletter::format::{self as dlq, ErrorKind};

use super::tracker::{Lane, Tracker};
use super::{Context, Failure, Origin, Shared, Stop, bump};
use crate::envelope::Envelope;

/// A fetched record's value and headers, owned (its key and timestamp
/// are the job's).
#[derive(Debug, Clone)]
pub(crate) struct OwnedRecord {
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What a job carries: a Kafka record, or an event read from the store.
#[derive(Debug)]
pub(crate) enum Payload {
    Kafka(OwnedRecord),
    Store(Box<Envelope>),
}

/// A record handed to a worker.
#[derive(Debug)]
pub(crate) struct Job {
    pub lane: Lane,
    pub generation: u64,
    /// Its offset in the partition (a Kafka record), or its position in
    /// what the lane reads (a store event: the global position, or the
    /// version in a stream).
    pub offset: i64,
    /// What orders it: its records are handled one after the other.
    pub key: Option<Vec<u8>>,
    pub timestamp_ms: i64,
    pub payload: Payload,
    /// How many times it was replayed from a dead letter or a parked
    /// event (store events; Kafka records carry it in a header).
    pub replays: u32,
}

/// Where dead letters go.
pub(crate) trait DeadLetterSink: Send + Sync {
    /// Writes the dead letter of `job`, durably (acknowledged by the
    /// cluster), or says why not.
    fn send(&self, job: &Job, failure: &dlq::Failure) -> Result<(), String>;
}

/// The workers of one running service.
pub(crate) struct Pool {
    senders: Vec<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

/// How long a worker sleeps at most before it looks at the stop flags
/// and its partition's generation again.
const SLICE: Duration = Duration::from_millis(50);

impl Pool {
    pub(crate) fn start(
        shared: Arc<Shared>,
        tracker: Arc<Tracker>,
        sink: Arc<dyn DeadLetterSink>,
        stop: Arc<Stop>,
    ) -> std::io::Result<Self> {
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for i in 0..shared.config.workers {
            let (tx, rx) = channel::<Job>();
            let worker = Worker {
                shared: shared.clone(),
                tracker: tracker.clone(),
                sink: sink.clone(),
                stop: stop.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("weir-worker-{i}"))
                    .spawn(move || worker.run(rx))?,
            );
            senders.push(tx);
        }
        Ok(Self { senders, threads })
    }

    /// Hands `job` to the worker of its key (of its partition, if it has
    /// no key), so one key's records are handled in order.
    pub(crate) fn dispatch(&self, job: Job) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match &job.key {
            Some(k) => {
                job.lane.topic.hash(&mut h);
                k.hash(&mut h);
            }
            None => job.lane.hash(&mut h),
        }
        let i = (h.finish() % self.senders.len() as u64) as usize;
        // A worker only ends when its sender is dropped.
        let _ = self.senders[i].send(job);
    }

    /// Lets the workers finish their queues and waits for them.
    pub(crate) fn join(self) {
        drop(self.senders);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
    sink: Arc<dyn DeadLetterSink>,
    stop: Arc<Stop>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Worker {
    fn run(self, rx: Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            self.process(&job);
        }
    }

    /// Whether `job` should be given up: its partition was revoked, or
    /// the shutdown deadline passed (then it is marked abandoned).
    fn give_up(&self, job: &Job) -> bool {
        if !self.tracker.current(&job.lane, job.generation) {
            return true;
        }
        if self.stop.hard() {
            self.tracker.abandon(&job.lane, job.offset, job.generation);
            bump(&self.shared.stats.abandoned, 1);
            return true;
        }
        false
    }

    /// Sleeps until `until`, in slices; false if `job` is to be given up.
    fn sleep_until(&self, job: &Job, until: Instant) -> bool {
        loop {
            if self.give_up(job) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(SLICE));
        }
    }

    fn process(&self, job: &Job) {
        if self.give_up(job) {
            return;
        }
        let origin = Origin {
            topic: job.lane.topic.to_string(),
            partition: job.lane.partition,
            offset: job.offset,
            timestamp_ms: job.timestamp_ms,
            key: job.key.clone(),
        };
        let decoded;
        let envelope = match &job.payload {
            Payload::Store(envelope) => &**envelope,
            Payload::Kafka(record) => {
                // A null header value reads as an empty one.
                let header = |name: &str| {
                    record
                        .headers
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_deref().unwrap_or_default())
                };
                let value = record.value.as_deref().unwrap_or_default();
                match Envelope::from_kafka_parts(value, &header) {
                    Ok(e) => {
                        decoded = e;
                        &decoded
                    }
                    Err(e) => {
                        let t = now_ms();
                        return self.dead_letter(job, ErrorKind::Decode, e.to_string(), 1, t, t);
                    }
                }
            }
        };
        let upcast = match self.shared.upcasters.upcast_ref(envelope) {
            Ok(e) => e,
            Err(e) => {
                let t = now_ms();
                return self.dead_letter(job, ErrorKind::Decode, e.to_string(), 1, t, t);
            }
        };
        let envelope = &*upcast;
        let Some(handler) = self.shared.handler(envelope) else {
            bump(&self.shared.stats.skipped, 1);
            self.tracker.done(&job.lane, job.offset, job.generation);
            return;
        };
        let mut waits = self.shared.config.retry.waits();
        let mut attempt = 0u32;
        let mut first_failure = None;
        let mut blocked = false;
        let unblock = |blocked: &mut bool| {
            if std::mem::take(blocked) {
                self.tracker.set_blocked(&job.lane, false);
            }
        };
        loop {
            if self.give_up(job) {
                return unblock(&mut blocked);
            }
            attempt += 1;
            let ctx = Context {
                envelope,
                origin: &origin,
                attempt,
                breakers: &self.shared.breakers,
                tripped: std::cell::Cell::new(None),
            };
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| handler(&ctx, envelope)))
                .unwrap_or_else(|panic| {
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    Err(Failure::Permanent(format!("the handler panicked: {text}")))
                });
            let failed_at = now_ms();
            let result = match (result, ctx.tripped.take()) {
                (Err(Failure::Transient(_)), Some(downstream)) => {
                    Err(Failure::Unavailable { downstream })
                }
                (result, _) => result,
            };
            match result {
                Ok(()) => {
                    unblock(&mut blocked);
                    bump(&self.shared.stats.handled, 1);
                    self.tracker.done(&job.lane, job.offset, job.generation);
                    return;
                }
                Err(Failure::Unavailable { downstream }) => {
                    // Not an attempt: wait for the breaker, with the
                    // partition paused meanwhile.
                    attempt -= 1;
                    if !blocked {
                        blocked = true;
                        self.tracker.set_blocked(&job.lane, true);
                    }
                    let now = Instant::now();
                    let until = self
                        .shared
                        .breakers
                        .get(&downstream)
                        .map_or(now + SLICE, |b| b.ready_at(now));
                    if !self.sleep_until(job, until.max(now + Duration::from_millis(1))) {
                        return unblock(&mut blocked);
                    }
                }
                Err(Failure::Permanent(reason)) => {
                    unblock(&mut blocked);
                    let first = *first_failure.get_or_insert(failed_at);
                    return self.dead_letter(
                        job,
                        ErrorKind::Permanent,
                        reason,
                        attempt,
                        first,
                        failed_at,
                    );
                }
                Err(Failure::Transient(reason)) => {
                    unblock(&mut blocked);
                    let first = *first_failure.get_or_insert(failed_at);
                    match waits.next() {
                        Some(wait) => {
                            bump(&self.shared.stats.retries, 1);
                            if !self.sleep_until(job, Instant::now() + wait) {
                                return;
                            }
                        }
                        None => {
                            return self.dead_letter(
                                job,
                                ErrorKind::Transient,
                                reason,
                                attempt,
                                first,
                                failed_at,
                            );
                        }
                    }
                }
            }
        }
    }

    /// Writes `job`'s dead letter, retrying until it is acknowledged (a
    /// record is never committed before its dead letter is durable), then
    /// marks the record done.
    fn dead_letter(
        &self,
        job: &Job,
        kind: ErrorKind,
        error: String,
        attempts: u32,
        first_failure_ms: i64,
        last_failure_ms: i64,
    ) {
        let failure = dlq::Failure {
            error,
            kind,
            attempts,
            first_failure_ms,
            last_failure_ms,
            group: self.shared.name.clone(),
        };
        let mut waits = super::RetryPolicy {
            attempts: u32::MAX,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            factor: 2.0,
            jitter: true,
        }
        .waits();
        loop {
            if self.give_up(job) {
                return;
            }
            match self.sink.send(job, &failure) {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(
                        service = %self.shared.name,
                        topic = %job.lane.topic,
                        partition = job.lane.partition,
                        offset = job.offset,
                        "writing a dead letter failed, retrying: {e}"
                    );
                    let wait = waits.next().unwrap_or(Duration::from_secs(5));
                    if !self.sleep_until(job, Instant::now() + wait) {
                        return;
                    }
                }
            }
        }
        tracing::info!(
            service = %self.shared.name,
            topic = %job.lane.topic,
            partition = job.lane.partition,
            offset = job.offset,
            kind = %failure.kind,
            attempts = failure.attempts,
            "dead-lettered: {}",
            failure.error
        );
        bump(&self.shared.stats.dead_lettered, 1);
        self.tracker.done(&job.lane, job.offset, job.generation);
    }
}
