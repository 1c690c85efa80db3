//! The document pipeline (`weir demo docs`, D1): uploads of documents go
//! through processing, classification, analytics, an email notification
//! and a search indexer. Run once as a synchronous call chain (the upload
//! waits for every step, the slow email included) and once event-driven
//! on Weir (the upload publishes `doc.uploaded` and returns; each step is a
//! [`Service`] in its own consumer group), then through an email outage
//! (the breaker opens, notifications wait, uploads stay fast, and the
//! backlog drains when the email service recovers) and a poison document
//! (dead-lettered, replayed once the fix is deployed).
//!
//! The email service is simulated in process (a delay, or failing with a
//! transient error); everything else is real: the topics, the consumer
//! groups through librdkafka, the dead-letter topic and the replay through
//! `weir serve`'s HTTP API.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::service::{BreakerPolicy, KafkaSource, Publisher, RetryPolicy, Running};
use crate::{Causation, Envelope, Error, Failure, Service, ServiceConfig};

/// A document was uploaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocUploaded {
    pub doc_id: String,
    pub owner: String,
    pub name: String,
    pub bytes: u64,
    /// A file the text extractor cannot read (until its fix is deployed).
    pub corrupt: bool,
}
crate::event!(DocUploaded = "doc.uploaded" v 1);

/// Its text was extracted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocProcessed {
    pub doc_id: String,
    pub owner: String,
    pub name: String,
    pub words: u64,
}
crate::event!(DocProcessed = "doc.processed" v 1);

/// It was classified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocClassified {
    pub doc_id: String,
    pub owner: String,
    pub name: String,
    pub class: String,
}
crate::event!(DocClassified = "doc.classified" v 1);

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct DocsConfig {
    /// The Kafka listener of the `weir serve` to run on.
    pub kafka: String,
    /// Its HTTP API (topics, dead letters).
    pub http: String,
    /// How long the email service takes per email (the slow step).
    pub email_delay: Duration,
    /// How long the email service fails in the outage phase.
    pub outage: Duration,
    /// Uploads through the synchronous chain (concurrent, as requests
    /// would be).
    pub sync_uploads: usize,
    /// Uploads in the event-driven run, and again during the outage.
    pub uploads: usize,
}

impl DocsConfig {
    pub fn new(kafka: impl Into<String>, http: impl Into<String>) -> Self {
        Self {
            kafka: kafka.into(),
            http: http.into(),
            email_delay: Duration::from_secs(30),
            outage: Duration::from_secs(10),
            sync_uploads: 4,
            uploads: 20,
        }
    }
}

/// Median, 99th percentile and slowest of some latencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Self {
            p50: at(0.5),
            p99: at(0.99),
            max: samples[samples.len() - 1],
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocsReport {
    pub sync_upload: Latency,
    pub event_upload: Latency,
    /// From upload to email sent, event-driven with the slow email.
    pub event_notified: Latency,
    pub outage_upload: Latency,
    /// Whether the email breaker opened during the outage.
    pub breaker_opened: bool,
    /// Documents of the outage phase indexed while email was down.
    pub indexed_during_outage: usize,
    /// From the email service's recovery until every notification of the
    /// outage phase was sent.
    pub caught_up_after: Duration,
    pub dead_lettered: u64,
    pub replayed: u64,
    /// Emails sent in the event-driven phases (each document once).
    pub notifications: usize,
    /// Emails sent twice for one document (at-least-once redeliveries
    /// caught by the notifier's record of what it sent).
    pub duplicate_notifications: u64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error(transparent)]
    Sdk(#[from] Error),
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server's HTTP API: {0}")]
    Server(#[from] weir_client::ClientError),
    #[error("timed out waiting for {0}")]
    Stalled(String),
}

/// How long a phase may take beyond what its slow steps explain.
const PHASE_SLACK: Duration = Duration::from_secs(60);
/// Partitions of each topic.
const PARTITIONS: u32 = 4;

/// The simulated email service.
#[derive(Debug, Default)]
struct Email {
    delay_ms: AtomicU64,
    failing: AtomicBool,
}

impl Email {
    fn send(&self) -> Result<(), Failure> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Failure::transient("smtp: 421 service not available"));
        }
        std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
        Ok(())
    }
}

/// What the services did, for the report.
#[derive(Debug, Default)]
struct World {
    email: Email,
    /// The text extractor reads corrupt files once this is set.
    fixed: AtomicBool,
    uploaded_at: Mutex<HashMap<String, Instant>>,
    /// Document → when its email was sent.
    notified: Mutex<HashMap<String, Instant>>,
    duplicate_notifications: AtomicU64,
    indexed: Mutex<HashSet<String>>,
    /// Events counted by analytics (by event id: a redelivery counts
    /// once), and uploads per owner.
    analytics: Mutex<(HashSet<String>, HashMap<String, u64>)>,
}

impl World {
    fn process(&self, doc: &DocUploaded) -> Result<DocProcessed, Failure> {
        if doc.corrupt && !self.fixed.load(Ordering::SeqCst) {
            return Err(Failure::permanent(format!(
                "text extraction: {} is not a PDF this extractor reads",
                doc.name
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
        Ok(DocProcessed {
            doc_id: doc.doc_id.clone(),
            owner: doc.owner.clone(),
            name: doc.name.clone(),
            words: doc.bytes / 6,
        })
    }

    fn classify(&self, doc: &DocProcessed) -> DocClassified {
        std::thread::sleep(Duration::from_millis(2));
        let class = if doc.name.contains("invoice") {
            "invoice"
        } else if doc.words > 1000 {
            "report"
        } else {
            "letter"
        };
        DocClassified {
            doc_id: doc.doc_id.clone(),
            owner: doc.owner.clone(),
            name: doc.name.clone(),
            class: class.to_owned(),
        }
    }

    fn count(&self, event_id: &str, owner: &str) {
        let mut a = self.analytics.lock().unwrap_or_else(|e| e.into_inner());
        if a.0.insert(event_id.to_owned()) {
            *a.1.entry(owner.to_owned()).or_default() += 1;
        }
    }

    fn notify(&self, doc: &DocClassified) -> Result<(), Failure> {
        if self.notified().contains_key(&doc.doc_id) {
            self.duplicate_notifications.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        self.email.send()?;
        self.notified().insert(doc.doc_id.clone(), Instant::now());
        Ok(())
    }

    fn index(&self, doc: &DocClassified) {
        self.indexed().insert(doc.doc_id.clone());
    }

    fn notified(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.notified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn indexed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.indexed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// This run's topic names.
#[derive(Debug, Clone)]
struct Topics {
    uploaded: String,
    processed: String,
    classified: String,
}

fn publish<E: crate::Event>(
    publisher: &Publisher,
    topic: &str,
    event: &E,
    subject: &str,
    causation: &Causation,
) -> Result<(), Failure> {
    let envelope = Envelope::new(event, "/demo/docs", causation)
        .map_err(Failure::permanent)?
        .with_subject(subject);
    publisher
        .publish(topic, &envelope)
        .map(|_| ())
        .map_err(Failure::transient)
}

fn service_config(workers: usize) -> ServiceConfig {
    ServiceConfig {
        workers,
        commit_interval: Duration::from_millis(200),
        shutdown_deadline: Duration::from_secs(5),
        retry: RetryPolicy {
            attempts: 5,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        },
        ..ServiceConfig::default()
    }
}

/// The five services of the event-driven pipeline.
fn services(
    world: &Arc<World>,
    publisher: &Arc<Publisher>,
    topics: &Topics,
    group_prefix: &str,
) -> Result<Vec<Service>, Error> {
    let mut out = Vec::new();
    let (w, p, t) = (world.clone(), publisher.clone(), topics.clone());
    out.push(
        Service::builder(format!("{group_prefix}-processing"))
            .config(service_config(4))
            .on::<DocUploaded>(move |ctx, doc| {
                let processed = w.process(&doc)?;
                let causation = Causation::caused_by(ctx.envelope());
                publish(&p, &t.processed, &processed, &doc.doc_id, &causation)
            })
            .build()?,
    );
    let (w, p, t) = (world.clone(), publisher.clone(), topics.clone());
    out.push(
        Service::builder(format!("{group_prefix}-classification"))
            .config(service_config(4))
            .on::<DocProcessed>(move |ctx, doc| {
                let classified = w.classify(&doc);
                let causation = Causation::caused_by(ctx.envelope());
                publish(&p, &t.classified, &classified, &doc.doc_id, &causation)
            })
            .build()?,
    );
    let w = world.clone();
    out.push(
        Service::builder(format!("{group_prefix}-analytics"))
            .config(service_config(1))
            .on::<DocUploaded>(move |ctx, doc| {
                w.count(&ctx.envelope().id, &doc.owner);
                Ok(())
            })
            .build()?,
    );
    let w = world.clone();
    out.push(
        Service::builder(format!("{group_prefix}-notification"))
            // Email is slow and IO-bound: many workers, so that one slow
            // email delays only the documents hashed to its worker.
            .config(service_config(64))
            .downstream(
                "email",
                BreakerPolicy {
                    failures: 3,
                    window: Duration::from_secs(10),
                    open_for: Duration::from_millis(500),
                },
            )
            .on::<DocClassified>(move |ctx, doc| ctx.call("email", || w.notify(&doc)))
            .build()?,
    );
    let w = world.clone();
    out.push(
        Service::builder(format!("{group_prefix}-search"))
            .config(service_config(2))
            .on::<DocClassified>(move |_, doc| {
                w.index(&doc);
                Ok(())
            })
            .build()?,
    );
    Ok(out)
}

fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), DocsError> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return Err(DocsError::Stalled(what.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn doc(run: &str, n: usize, corrupt: bool) -> DocUploaded {
    let names = ["invoice-2026-11.pdf", "q3-report.pdf", "letter.pdf"];
    DocUploaded {
        doc_id: format!("doc-{run}-{n:03}"),
        owner: format!("user-{}", n % 3),
        name: if corrupt {
            "scan-legacy.pdf".to_owned()
        } else {
            names[n % names.len()].to_owned()
        },
        bytes: 2000 + (n as u64 * 997) % 12_000,
        corrupt,
    }
}

/// The synchronous chain: one request does every step in turn.
fn sync_upload(world: &World, doc: &DocUploaded) -> Result<(), Failure> {
    let processed = world.process(doc)?;
    let classified = world.classify(&processed);
    world.count(&crate::new_id(), &doc.owner);
    world.email.send()?;
    world.index(&classified);
    Ok(())
}

/// Uploads `docs` from four clients at once; returns each upload's
/// latency.
fn upload_all(
    publisher: &Publisher,
    world: &World,
    topic: &str,
    docs: Vec<DocUploaded>,
) -> Result<Vec<Duration>, DocsError> {
    let chunks: Vec<Vec<DocUploaded>> = {
        let mut c: Vec<Vec<DocUploaded>> = vec![Vec::new(); 4];
        for (i, d) in docs.into_iter().enumerate() {
            c[i % 4].push(d);
        }
        c
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || -> Result<Vec<Duration>, DocsError> {
                    let mut lat = Vec::new();
                    for d in chunk {
                        let start = Instant::now();
                        world
                            .uploaded_at
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(d.doc_id.clone(), start);
                        publish(publisher, topic, &d, &d.doc_id, &Causation::new())
                            .map_err(|f| DocsError::Stalled(format!("the upload: {f}")))?;
                        lat.push(start.elapsed());
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().unwrap_or_else(|_| Ok(Vec::new()))?);
        }
        Ok(all)
    })
}

/// Runs the demo on the server at `config.kafka` / `config.http`,
/// printing as it goes and the side-by-side table at the end.
pub fn run(config: &DocsConfig, out: &mut dyn Write) -> Result<DocsReport, DocsError> {
    let run_id = crate::new_id().replace('-', "")[..6].to_owned();
    let prefix = format!("docs-{run_id}");
    let topics = Topics {
        uploaded: format!("{prefix}.uploaded"),
        processed: format!("{prefix}.processed"),
        classified: format!("{prefix}.classified"),
    };
    let http = weir_client::Client::new(&config.http)?;
    for t in [&topics.uploaded, &topics.processed, &topics.classified] {
        http.create_topic(&weir_api::CreateTopic {
            name: t.clone(),
            partitions: Some(PARTITIONS),
            configs: Default::default(),
        })?;
    }
    let delay = config.email_delay;
    writeln!(
        out,
        "weir demo docs: the document pipeline on {} (topics {prefix}.*)",
        config.kafka
    )?;
    writeln!(
        out,
        "  upload -> processing -> classification -> analytics, email notification, search index; email takes {:.1} s",
        delay.as_secs_f64()
    )?;
    let world = Arc::new(World::default());
    world
        .email
        .delay_ms
        .store(delay.as_millis() as u64, Ordering::SeqCst);
    let mut report = DocsReport::default();

    // 1. The synchronous chain.
    writeln!(
        out,
        "\n1. synchronous chain: {} uploads at once, each request waits for every step",
        config.sync_uploads
    )?;
    let sync_docs: Vec<DocUploaded> = (0..config.sync_uploads)
        .map(|n| doc(&format!("{run_id}s"), n, false))
        .collect();
    let sync_lat: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = sync_docs
            .iter()
            .map(|d| {
                let world = &world;
                s.spawn(move || {
                    let start = Instant::now();
                    let _ = sync_upload(world, d);
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    report.sync_upload = Latency::of(sync_lat);
    writeln!(
        out,
        "   upload p50 {}, p99 {}",
        ms(report.sync_upload.p50),
        ms(report.sync_upload.p99)
    )?;

    // 2. Event-driven.
    let publisher = Arc::new(Publisher::connect(&config.kafka, &[])?);
    // The upload endpoint is a server that has been up for a while: its
    // producer knows where the topic is before the first upload is timed.
    publisher.prepare(&[&topics.uploaded])?;
    let services = services(&world, &publisher, &topics, &prefix)?;
    let source = |topic: &str| KafkaSource::new(config.kafka.clone(), &[topic]);
    let sources = [
        &topics.uploaded,
        &topics.processed,
        &topics.uploaded,
        &topics.classified,
        &topics.classified,
    ];
    let mut running: Vec<Running> = Vec::new();
    for (service, topic) in services.iter().zip(sources) {
        running.push(service.start(source(topic))?);
    }
    wait_until("the services to join their groups", PHASE_SLACK, || {
        services
            .iter()
            .all(|s| s.stats().assigned == u64::from(PARTITIONS))
    })?;
    writeln!(
        out,
        "\n2. event-driven on Weir: {} uploads; the upload publishes doc.uploaded and returns, five services in their own consumer groups do the rest",
        config.uploads
    )?;
    let docs: Vec<DocUploaded> = (0..config.uploads)
        .map(|n| doc(&run_id, n, false))
        .collect();
    let ids: Vec<String> = docs.iter().map(|d| d.doc_id.clone()).collect();
    report.event_upload = Latency::of(upload_all(&publisher, &world, &topics.uploaded, docs)?);
    writeln!(
        out,
        "   upload p50 {}, p99 {} (the email service is still {:.1} s per email)",
        ms(report.event_upload.p50),
        ms(report.event_upload.p99),
        delay.as_secs_f64()
    )?;
    let all_notified = |ids: &[String]| {
        let n = world.notified();
        ids.iter().all(|id| n.contains_key(id))
    };
    wait_until("the notifications", delay * 4 + PHASE_SLACK, || {
        all_notified(&ids)
    })?;
    report.event_notified = {
        let up = world.uploaded_at.lock().unwrap_or_else(|e| e.into_inner());
        let n = world.notified();
        Latency::of(
            ids.iter()
                .map(|id| n[id].saturating_duration_since(up[id]))
                .collect(),
        )
    };
    writeln!(
        out,
        "   every email sent: p50 {}, p99 {} after its upload",
        ms(report.event_notified.p50),
        ms(report.event_notified.p99)
    )?;

    // 3. The email outage.
    writeln!(
        out,
        "\n3. email outage: the email service fails for {:.1} s while {} more documents are uploaded (one of them a file the extractor cannot read)",
        config.outage.as_secs_f64(),
        config.uploads
    )?;
    world.email.delay_ms.store(0, Ordering::SeqCst);
    world.email.failing.store(true, Ordering::SeqCst);
    let outage_start = Instant::now();
    let outage_docs: Vec<DocUploaded> = (0..config.uploads)
        .map(|n| doc(&format!("{run_id}o"), n, n == 0))
        .collect();
    let poison = outage_docs[0].doc_id.clone();
    let outage_ids: Vec<String> = outage_docs[1..].iter().map(|d| d.doc_id.clone()).collect();
    report.outage_upload = Latency::of(upload_all(
        &publisher,
        &world,
        &topics.uploaded,
        outage_docs,
    )?);
    let notifier = &services[3];
    wait_until("the email breaker to open", PHASE_SLACK, || {
        notifier
            .breakers()
            .iter()
            .any(|(_, s)| *s == crate::BreakerState::Open)
    })?;
    report.breaker_opened = true;
    if let Some(left) = config.outage.checked_sub(outage_start.elapsed()) {
        std::thread::sleep(left);
    }
    report.indexed_during_outage = {
        let indexed = world.indexed();
        outage_ids.iter().filter(|id| indexed.contains(*id)).count()
    };
    writeln!(
        out,
        "   uploads p50 {}, p99 {}; the email breaker opened and the notifier paused its partitions; {} of {} documents indexed and counted meanwhile",
        ms(report.outage_upload.p50),
        ms(report.outage_upload.p99),
        report.indexed_during_outage,
        outage_ids.len()
    )?;
    world.email.failing.store(false, Ordering::SeqCst);
    let recovered = Instant::now();
    wait_until("the notifications to catch up", PHASE_SLACK, || {
        all_notified(&outage_ids)
    })?;
    report.caught_up_after = recovered.elapsed();
    writeln!(
        out,
        "   email recovered: the {} waiting notifications were sent {} later, none dead-lettered",
        outage_ids.len(),
        ms(report.caught_up_after)
    )?;

    // 4. The poison document.
    let dlq_topic = format!("{}.dlq", topics.uploaded);
    wait_until("the dead letter", PHASE_SLACK, || {
        services[0].stats().dead_lettered >= 1
    })?;
    // The SDK's dead-letter operations, through the server's HTTP API.
    let operator = crate::Client::connect(&config.http)?;
    let listed = operator
        .dead_letter_topics()?
        .into_iter()
        .find(|t| t.topic == dlq_topic);
    report.dead_lettered = listed.as_ref().map_or(0, |t| t.depth);
    let reason = (0..PARTITIONS as i32)
        .filter_map(|p| operator.read_dead_letters(&dlq_topic, p, 0, 10).ok())
        .flat_map(|page| page.dead_letters)
        .next()
        .map(|(_, d)| {
            format!(
                "{} ({}, {} attempt)",
                d.failure.error, d.failure.kind, d.failure.attempts
            )
        })
        .unwrap_or_default();
    writeln!(
        out,
        "\n4. poison: {poison} went to {dlq_topic} ({} dead letter): {reason}",
        report.dead_lettered
    )?;
    world.fixed.store(true, Ordering::SeqCst);
    let mut selection = crate::dead_letters::Selection::All;
    loop {
        let outcome = operator.replay_dead_letters(&dlq_topic, selection)?;
        report.replayed += outcome.replayed;
        match outcome.next {
            Some(next) => selection = next,
            None => break,
        }
    }
    wait_until("the replayed document's email", PHASE_SLACK, || {
        world.notified().contains_key(&poison)
    })?;
    writeln!(
        out,
        "   the extractor's fix is deployed; replayed {} dead letter through the HTTP API; {poison} processed, classified and notified",
        report.replayed
    )?;

    for r in running {
        r.stop()?;
    }
    report.notifications = world.notified().len();
    report.duplicate_notifications = world.duplicate_notifications.load(Ordering::SeqCst);
    let analytics: u64 = world
        .analytics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .1
        .values()
        .sum();

    writeln!(
        out,
        "\n                                  upload p50   upload p99   email sent after upload"
    )?;
    writeln!(
        out,
        "synchronous chain                 {:>10}   {:>10}   in the request",
        ms(report.sync_upload.p50),
        ms(report.sync_upload.p99)
    )?;
    writeln!(
        out,
        "event-driven on Weir              {:>10}   {:>10}   p50 {}, p99 {}",
        ms(report.event_upload.p50),
        ms(report.event_upload.p99),
        ms(report.event_notified.p50),
        ms(report.event_notified.p99)
    )?;
    writeln!(
        out,
        "event-driven, email down {:>4.1} s  {:>10}   {:>10}   caught up {} after recovery",
        config.outage.as_secs_f64(),
        ms(report.outage_upload.p50),
        ms(report.outage_upload.p99),
        ms(report.caught_up_after)
    )?;
    writeln!(
        out,
        "\n{} emails sent ({} redelivered and not sent again), {} uploads counted by analytics, {} dead letter replayed",
        report.notifications, report.duplicate_notifications, analytics, report.replayed
    )?;
    Ok(report)
}
