//! A service's Kafka side, through `rdkafka` (librdkafka): the poll loop
//! of its consumer (subscription, dispatch to workers, pause and resume
//! for backpressure and open breakers, commits, rebalances, shutdown) and
//! the producer that writes its dead letters.
//!
//! The SDK links the system's librdkafka (Debian's librdkafka-dev,
//! installed by `scripts/install-deps`) dynamically, as `weir-bench` does:
//! no C library is compiled in the workspace, and the client is the one
//! Kafka users already run. Nothing here is specific to Weir's broker, so
//! a service runs unchanged against any Kafka cluster.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use weir_deadletter::format as dlq;

use super::publisher::{self, DeliveryContext, Outgoing};
use super::tracker::{Lane, Tracker};
use super::worker::{DeadLetterSink, Job, OwnedRecord, Payload, Pool};
use super::{Delivery, Shared, Stop, bump};
use crate::Error;

/// Kafka topics to consume, and how to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSource {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub bootstrap: String,
    pub topics: Vec<String>,
    /// More librdkafka settings for the consumer and the dead-letter
    /// producer (security, timeouts, `auto.offset.reset`…), applied last.
    pub settings: Vec<(String, String)>,
}

impl KafkaSource {
    pub fn new(bootstrap: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            settings: Vec::new(),
        }
    }

    /// Adds a librdkafka setting.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }
}

/// Records taken from the consumer per round before the loop looks at
/// commits and pauses again.
const ROUND_RECORDS: usize = 500;
/// How long one poll waits for a record.
const POLL: Duration = Duration::from_millis(100);
/// How long the poll thread waits, without polling, for the workers to
/// drain at the in-flight limit before it pauses the partitions.
const STALL_BEFORE_PAUSE: Duration = Duration::from_secs(1);
/// How long a metadata request, a topic creation or a dead letter's
/// acknowledgement may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn kafka_error(service: &str, what: &str, e: KafkaError) -> Error {
    Error::Kafka {
        service: service.to_owned(),
        reason: format!("{what}: {e}"),
    }
}

/// The consumer's callbacks: partitions assigned and revoked.
struct RuntimeContext {
    tracker: Arc<Tracker>,
    /// The consumer itself, to commit a revoked partition's offsets from
    /// the revoke callback.
    consumer: OnceLock<Weak<BaseConsumer<RuntimeContext>>>,
    revoke_wait: Duration,
    service: String,
    rebalanced: std::sync::atomic::AtomicBool,
}

fn lanes_of(tpl: &TopicPartitionList) -> Vec<Lane> {
    tpl.elements()
        .iter()
        .map(|e| Lane {
            topic: e.topic().into(),
            partition: e.partition(),
        })
        .collect()
}

impl ClientContext for RuntimeContext {}

impl ConsumerContext for RuntimeContext {
    fn pre_rebalance(&self, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let lanes = lanes_of(tpl);
        // Let the revoked partitions' handlers finish, commit what they
        // did, then drop what is left (its new owner gets it again).
        let deadline = Instant::now() + self.revoke_wait;
        if !self.tracker.wait_idle(Some(&lanes), deadline) {
            tracing::warn!(service = %self.service, "partitions revoked with records still in flight; they will be delivered again");
        }
        if let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) {
            let offsets = self.tracker.to_commit(Some(&lanes));
            if let Err(e) = commit(&consumer, &offsets, CommitMode::Sync) {
                tracing::warn!(service = %self.service, "committing revoked partitions: {e}");
            }
        }
        self.tracker.revoke(&lanes);
        self.rebalanced
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn post_rebalance(&self, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.tracker.assign(&lanes_of(tpl));
            self.rebalanced
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn commit(
    consumer: &BaseConsumer<RuntimeContext>,
    offsets: &[(Lane, i64)],
    mode: CommitMode,
) -> Result<(), KafkaError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (lane, offset) in offsets {
        tpl.add_partition_offset(&lane.topic, lane.partition, Offset::Offset(*offset))?;
    }
    consumer.commit(&tpl, mode)
}

fn tpl_of<'a>(lanes: impl IntoIterator<Item = &'a Lane>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for lane in lanes {
        tpl.add_partition(&lane.topic, lane.partition);
    }
    tpl
}

/// A service's consumer with its workers, ready to run.
pub(crate) struct Runtime {
    shared: Arc<Shared>,
    consumer: Arc<BaseConsumer<RuntimeContext>>,
    tracker: Arc<Tracker>,
    pool: Pool,
    stop: Arc<Stop>,
    topics: HashMap<String, Arc<str>>,
}

fn client_config(shared: &Shared, source: &KafkaSource) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &source.bootstrap)
        .set("client.id", &shared.name);
    config
}

impl Runtime {
    pub(crate) fn new(
        shared: Arc<Shared>,
        source: &KafkaSource,
        stop: Arc<Stop>,
    ) -> Result<Self, Error> {
        let name = shared.name.clone();
        if source.topics.is_empty() {
            return Err(Error::Config {
                reason: "a Kafka source needs at least one topic".to_owned(),
            });
        }
        let at_most_once = shared.config.delivery == Delivery::AtMostOnce;
        let tracker = Arc::new(Tracker::new(at_most_once));
        let mut config = client_config(&shared, source);
        config
            .set("group.id", &name)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // What librdkafka prefetches beyond the in-flight limit, per
            // partition: kept small so that memory follows the limit.
            .set("queued.max.messages.kbytes", "2048");
        for (k, v) in &source.settings {
            config.set(k, v);
        }
        let context = RuntimeContext {
            tracker: tracker.clone(),
            consumer: OnceLock::new(),
            revoke_wait: shared.config.shutdown_deadline,
            service: name.clone(),
            rebalanced: std::sync::atomic::AtomicBool::new(false),
        };
        let consumer: Arc<BaseConsumer<RuntimeContext>> = Arc::new(
            config
                .create_with_context(context)
                .map_err(|e| kafka_error(&name, "creating the consumer", e))?,
        );
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        let topics: Vec<&str> = source.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| kafka_error(&name, "subscribing", e))?;
        let sink = Arc::new(KafkaDeadLetters::new(&shared, source)?);
        let pool =
            Pool::start(shared.clone(), tracker.clone(), sink, stop.clone()).map_err(|e| {
                Error::Config {
                    reason: format!("starting the service's workers: {e}"),
                }
            })?;
        Ok(Self {
            topics: source
                .topics
                .iter()
                .map(|t| (t.clone(), Arc::from(t.as_str())))
                .collect(),
            shared,
            consumer,
            tracker,
            pool,
            stop,
        })
    }

    fn job(&mut self, m: &BorrowedMessage<'_>) -> Job {
        let topic = self
            .topics
            .entry(m.topic().to_owned())
            .or_insert_with(|| Arc::from(m.topic()))
            .clone();
        let lane = Lane {
            topic,
            partition: m.partition(),
        };
        let headers = m
            .headers()
            .map(|h| {
                (0..h.count())
                    .map(|i| {
                        let h = h.get(i);
                        (h.key.to_owned(), h.value.map(<[u8]>::to_vec))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let generation = self.tracker.dispatch(&lane, m.offset());
        let timestamp_ms = m.timestamp().to_millis().unwrap_or(-1);
        Job {
            generation,
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            timestamp_ms,
            payload: Payload::Kafka(OwnedRecord {
                value: m.payload().map(<[u8]>::to_vec),
                headers,
            }),
            replays: 0,
            lane,
        }
    }

    /// Takes up to a round of records from the consumer, no more than the
    /// in-flight limit leaves room for (one, when it is reached: polling
    /// goes on to serve the consumer's callbacks, and whatever poll returns
    /// is taken; the partitions are paused right after).
    fn take_round(&mut self) -> Vec<Job> {
        let room = self
            .shared
            .config
            .in_flight_max
            .saturating_sub(self.tracker.in_flight())
            .clamp(1, ROUND_RECORDS);
        let mut jobs = Vec::new();
        let consumer = self.consumer.clone();
        let mut wait = POLL;
        while jobs.len() < room {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => jobs.push(self.job(&m)),
                Some(Err(e)) => {
                    tracing::debug!(service = %self.shared.name, "consumer: {e}");
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        bump(&self.shared.stats.fetched, jobs.len() as u64);
        jobs
    }

    fn commit_done(&self, mode: CommitMode) {
        let offsets = self.tracker.to_commit(None);
        if offsets.is_empty() {
            return;
        }
        match commit(&self.consumer, &offsets, mode) {
            Ok(()) => {
                self.tracker.committed(&offsets);
                bump(&self.shared.stats.commits, offsets.len() as u64);
            }
            Err(e) => tracing::warn!(service = %self.shared.name, "commit: {e}"),
        }
    }

    /// Pauses and resumes partitions: all of them during a long stall at
    /// the in-flight limit (`backpressure`, until half of it drained), and
    /// each one a worker waits on an open breaker for.
    fn update_pauses(&self, paused: &mut HashSet<Lane>, backpressure: &mut bool) {
        if self
            .consumer
            .context()
            .rebalanced
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            // A new assignment starts unpaused.
            paused.clear();
        }
        let in_flight = self.tracker.in_flight();
        self.shared
            .stats
            .in_flight
            .store(in_flight as u64, std::sync::atomic::Ordering::Relaxed);
        if *backpressure && in_flight <= self.shared.config.in_flight_max / 2 {
            *backpressure = false;
        }
        let lanes = self.tracker.lanes();
        self.shared
            .stats
            .assigned
            .store(lanes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let want: HashSet<Lane> = lanes
            .into_iter()
            .filter(|(_, blocked)| *backpressure || *blocked)
            .map(|(l, _)| l)
            .collect();
        let pause: Vec<&Lane> = want.difference(paused).collect();
        let resume: Vec<&Lane> = paused.difference(&want).collect();
        if !pause.is_empty()
            && let Err(e) = self.consumer.pause(&tpl_of(pause.iter().copied()))
        {
            tracing::warn!(service = %self.shared.name, "pausing: {e}");
        }
        if !resume.is_empty()
            && let Err(e) = self.consumer.resume(&tpl_of(resume.iter().copied()))
        {
            tracing::warn!(service = %self.shared.name, "resuming: {e}");
        }
        self.shared
            .stats
            .paused
            .store(want.len() as u64, std::sync::atomic::Ordering::Relaxed);
        *paused = want;
    }

    pub(crate) fn run(mut self) -> Result<(), Error> {
        let at_most_once = self.shared.config.delivery == Delivery::AtMostOnce;
        let mut last_commit = Instant::now();
        let mut paused = HashSet::new();
        let mut backpressure = false;
        let limit = self.shared.config.in_flight_max;
        while !self.stop.graceful() {
            // At the limit, take nothing until the workers drained half of
            // it. A short stall just does not poll: librdkafka's prefetch
            // is capped, and pausing would drop it and fetch again late (it
            // waits for its next fetch decision, about half a second). A
            // stall longer than STALL_BEFORE_PAUSE pauses the partitions,
            // so that polling goes on (rebalances, max.poll.interval.ms).
            if !backpressure && self.tracker.in_flight() >= limit {
                bump(&self.shared.stats.backpressure_pauses, 1);
                let drained = self
                    .tracker
                    .wait_below(limit / 2, Instant::now() + STALL_BEFORE_PAUSE);
                backpressure = !drained;
                if backpressure {
                    self.update_pauses(&mut paused, &mut backpressure);
                }
            }
            let jobs = self.take_round();
            if at_most_once && !jobs.is_empty() {
                // Committed before handled: a crash now loses them rather
                // than handling them twice.
                let offsets = self.tracker.to_commit(None);
                if let Err(e) = commit(&self.consumer, &offsets, CommitMode::Sync) {
                    tracing::warn!(service = %self.shared.name, "commit before handling failed; the records are delivered again: {e}");
                    for job in &jobs {
                        self.tracker.abandon(&job.lane, job.offset, job.generation);
                    }
                    continue;
                }
                self.tracker.committed(&offsets);
            }
            for job in jobs {
                self.pool.dispatch(job);
            }
            if last_commit.elapsed() >= self.shared.config.commit_interval {
                self.commit_done(CommitMode::Async);
                last_commit = Instant::now();
            }
            self.update_pauses(&mut paused, &mut backpressure);
        }
        self.shutdown()
    }

    /// Stops fetching, lets the workers finish (until the deadline),
    /// commits, and leaves the group (when the consumer is dropped).
    fn shutdown(self) -> Result<(), Error> {
        let deadline = Instant::now() + self.shared.config.shutdown_deadline;
        if !self.tracker.wait_idle(None, deadline) {
            tracing::warn!(
                service = %self.shared.name,
                in_flight = self.tracker.in_flight(),
                "shutdown deadline passed; the records still in flight will be delivered again"
            );
            self.stop
                .hard
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let Self {
            shared,
            consumer,
            tracker,
            pool,
            ..
        } = self;
        pool.join();
        let offsets = tracker.to_commit(None);
        match commit(&consumer, &offsets, CommitMode::Sync) {
            Ok(()) => bump(&shared.stats.commits, offsets.len() as u64),
            Err(e) => tracing::warn!(service = %shared.name, "final commit: {e}"),
        }
        // Dropping the last handle closes the consumer: it leaves the group.
        drop(consumer);
        Ok(())
    }
}

/// Writes dead letters to `<topic><suffix>` through librdkafka, creating
/// the dead-letter topic with its origin's partition count the first time.
struct KafkaDeadLetters {
    producer: ThreadedProducer<DeliveryContext>,
    admin: AdminClient<DefaultClientContext>,
    suffix: String,
    /// Dead-letter topics known to exist, with their partition counts.
    known: Mutex<HashMap<String, i32>>,
}

impl KafkaDeadLetters {
    fn new(shared: &Shared, source: &KafkaSource) -> Result<Self, Error> {
        let name = &shared.name;
        let mut config = client_config(shared, source);
        for (k, v) in &source.settings {
            config.set(k, v);
        }
        Ok(Self {
            // A dead letter is acknowledged by every in-sync replica
            // before its record is committed.
            producer: publisher::producer(&source.bootstrap, name, &source.settings)
                .map_err(|e| kafka_error(name, "creating the dead-letter producer", e))?,
            admin: config
                .create()
                .map_err(|e| kafka_error(name, "creating the admin client", e))?,
            suffix: shared.config.dead_letter_suffix.clone(),
            known: Mutex::new(HashMap::new()),
        })
    }

    fn partitions(&self, topic: &str) -> Result<Option<i32>, String> {
        let md = self
            .producer
            .client()
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| format!("metadata of {topic}: {e}"))?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0))
    }

    /// The partition count of `dead`, the dead-letter topic of `origin`,
    /// created first if need be.
    fn ensure(&self, origin: &str, dead: &str) -> Result<i32, String> {
        if let Some(n) = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(dead)
        {
            return Ok(*n);
        }
        // Created before its metadata is asked for: a metadata request
        // from a producer may auto-create a topic with the cluster's
        // default partition count.
        let partitions = self
            .partitions(origin)?
            .ok_or_else(|| format!("the origin topic {origin} has no partitions"))?;
        let new = NewTopic::new(dead, partitions, TopicReplication::Fixed(-1));
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let created = futures_executor::block_on(self.admin.create_topics([&new], &options))
            .map_err(|e| format!("creating {dead}: {e}"))?;
        for result in created {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(format!("creating {dead}: {code}")),
            }
        }
        let n = self
            .partitions(dead)?
            .ok_or_else(|| format!("{dead} has no partitions after it was created"))?;
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dead.to_owned(), n);
        Ok(n)
    }
}

impl DeadLetterSink for KafkaDeadLetters {
    fn send(&self, job: &Job, failure: &dlq::Failure) -> Result<(), String> {
        let Payload::Kafka(record) = &job.payload else {
            return Err("not a Kafka record".to_owned());
        };
        let origin_topic = &*job.lane.topic;
        let dead = dlq::dead_letter_topic(origin_topic, &self.suffix);
        let partitions = self.ensure(origin_topic, &dead)?;
        let original: Vec<(&str, Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let origin = dlq::Origin {
            topic: origin_topic.to_owned(),
            partition: job.lane.partition,
            offset: job.offset,
            timestamp_ms: job.timestamp_ms,
        };
        let mut headers = OwnedHeaders::new();
        for (key, value) in dlq::dead_letter_headers(&original, failure, &origin) {
            headers = headers.insert(Header {
                key: &key,
                value: value.as_ref(),
            });
        }
        publisher::send_acked(
            &self.producer,
            Outgoing {
                topic: &dead,
                partition: Some(job.lane.partition.rem_euclid(partitions)),
                key: job.key.as_deref(),
                value: record.value.as_deref(),
                headers,
            },
        )
        .map(|_| ())
    }
}
