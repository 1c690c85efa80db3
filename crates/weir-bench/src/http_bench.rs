//! `weir-bench http`: the HTTP/JSON API against the paths it sits beside,
//! in one run on one server.
//!
//! The server runs in this process as `weir serve` assembles it (broker,
//! groups, event store; the Kafka listener and the HTTP API on loopback
//! ports, `fsync=always`). Then:
//!
//! 1. **Batched produce.** The same records (`--records` of 1 KiB random
//!    values, keyed) go to two topics of 6 partitions: through the Kafka
//!    protocol from librdkafka producers (acks=all, idempotent,
//!    linger.ms=5), and through `POST /v1/topics/{topic}/records` from as
//!    many keep-alive HTTP clients (`weir-client`), each sending batches of
//!    `--batch` records with base64 values and waiting for the answer
//!    (acknowledged once durable). The ratio is HTTP records/s over Kafka
//!    records/s.
//! 2. **Appends.** `--writers` writers append 100-event batches, and then
//!    single events, each to its own stream with an exact expected version:
//!    through `POST /v1/streams/{stream}` and through the store's API in
//!    process (the floor any transport adds to). The ratio is HTTP over in
//!    process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use weir_broker::{Broker, BrokerConfig};
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_log::{DataDir, DirConfig};
use weir_store::{EmbeddedStore, EventStore, ExpectedVersion, NewEvent, StoreConfig};

use crate::log_bench::Rng;
use crate::report::Latency;

const VALUE_BYTES: usize = 1024;
const PARTITIONS: u32 = 6;
const KEYS: u64 = 1000;

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Records each produce path sends [default: 100000, with --quick 2000]
    #[arg(long)]
    records: Option<u64>,
    /// Kafka producers and HTTP clients, each on its own thread and
    /// connection [default: 4]
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Records per HTTP produce request [default: 500]
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Writers of the append phases, each on its own stream [default: 16]
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Appends each writer makes per append phase [default: 200, with
    /// --quick 10]
    #[arg(long)]
    appends: Option<u64>,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
}

/// `weir serve`'s parts, in process: the Kafka listener and the HTTP API.
pub(crate) struct Server {
    pub(crate) kafka: SocketAddr,
    pub(crate) broker: Arc<Broker>,
    pub(crate) http: SocketAddr,
    store: Arc<EmbeddedStore>,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(data: &std::path::Path) -> anyhow::Result<Self> {
        let dir = DataDir::open(data, DirConfig::default()).context("open data directory")?;
        let broker = Arc::new(Broker::open(dir, BrokerConfig::default()).context("open broker")?);
        let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default())?;
        let groups = Arc::new(Coordinator::new(
            GroupsConfig::default(),
            Arc::new(MonotonicClock::new()),
            broker.clone(),
            Arc::new(offsets),
        ));
        let store = Arc::new(EmbeddedStore::open(broker.clone(), StoreConfig::default())?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("weir")
            .build()?;
        let kafka_listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let http_listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let (kafka, http) = (kafka_listener.local_addr()?, http_listener.local_addr()?);
        let (stop_kafka, kafka_stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::new(weir_http::AppState::new(
            broker.clone(),
            groups.clone(),
            store.clone(),
            weir_http::HttpLimits::default(),
        ));
        let config = weir_kafka::ServerConfig::new(kafka);
        let b = broker.clone();
        let thread = std::thread::Builder::new()
            .name("weir-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let http = tokio::spawn(weir_http::run(http_listener, state, async {
                        let _ = http_stopped.await;
                    }));
                    weir_kafka::run(kafka_listener, broker, groups, config, async {
                        let _ = kafka_stopped.await;
                    })
                    .await;
                    let _ = http.await;
                });
            })?;
        Ok(Self {
            kafka,
            broker: b,
            http,
            store,
            stop: vec![stop_kafka, stop_http],
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One phase's result.
struct Phase {
    name: String,
    items: u64,
    elapsed: Duration,
    latency: Option<Latency>,
}

impl Phase {
    fn per_sec(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn values(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let mut v = vec![0u8; VALUE_BYTES];
            rng.fill(&mut v);
            v
        })
        .collect()
}

struct Deliveries {
    epoch: Instant,
    latencies_ns: Mutex<Vec<u64>>,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        if result.is_ok() {
            let now = self.epoch.elapsed().as_nanos() as u64;
            self.latencies_ns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(now.saturating_sub(sent_ns as u64));
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// librdkafka producers send `records` records to `topic`.
fn kafka_produce(
    server: &Server,
    topic: &str,
    records: u64,
    clients: usize,
    rng: &mut Rng,
) -> anyhow::Result<Phase> {
    let epoch = Instant::now();
    let mut producers = Vec::new();
    for _ in 0..clients {
        let producer: BaseProducer<Deliveries> = ClientConfig::new()
            .set("bootstrap.servers", server.kafka.to_string())
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("queue.buffering.max.kbytes", "4096")
            .set("message.timeout.ms", "120000")
            .create_with_context(Deliveries {
                epoch,
                latencies_ns: Mutex::new(Vec::new()),
                failed: AtomicU64::new(0),
            })?;
        producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))?;
        producers.push((producer, values(rng, 64)));
    }
    let barrier = Barrier::new(clients + 1);
    let started = std::thread::scope(|s| -> anyhow::Result<Instant> {
        for (i, (producer, values)) in producers.iter().enumerate() {
            let barrier = &barrier;
            let n = records / clients as u64 + u64::from((i as u64) < records % clients as u64);
            s.spawn(move || {
                barrier.wait();
                for j in 0..n {
                    let key = format!("key-{}", (j * clients as u64 + i as u64) % KEYS);
                    let value = &values[j as usize % values.len()];
                    loop {
                        let sent = epoch.elapsed().as_nanos() as usize;
                        let record = BaseRecord::with_opaque_to(topic, sent)
                            .key(&key)
                            .payload(value);
                        match producer.send(record) {
                            Ok(()) => break,
                            Err(_) => {
                                producer.poll(Duration::from_millis(1));
                            }
                        }
                    }
                    producer.poll(Duration::ZERO);
                }
                let _ = producer.flush(Duration::from_secs(120));
            });
        }
        barrier.wait();
        Ok(Instant::now())
    })?;
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    for (p, _) in &producers {
        anyhow::ensure!(
            p.context().failed.load(Ordering::Relaxed) == 0,
            "a Kafka delivery failed"
        );
        latencies.extend(
            p.context()
                .latencies_ns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..),
        );
    }
    anyhow::ensure!(
        latencies.len() as u64 == records,
        "{} of {records} delivered",
        latencies.len()
    );
    Ok(Phase {
        name: format!("kafka produce, {clients} librdkafka producers"),
        items: records,
        elapsed,
        latency: Latency::from_ns(latencies),
    })
}

/// HTTP clients send `records` records to `topic` in batches of `batch`.
fn http_produce(
    server: &Server,
    topic: &str,
    records: u64,
    clients: usize,
    batch: usize,
    rng: &mut Rng,
) -> anyhow::Result<Phase> {
    let address = server.http.to_string();
    let encoded: Vec<String> = values(rng, 64).iter().map(|v| B64.encode(v)).collect();
    let barrier = Barrier::new(clients + 1);
    let latencies = Mutex::new(Vec::new());
    let (started, sent) = std::thread::scope(|s| -> anyhow::Result<(Instant, u64)> {
        let mut handles = Vec::new();
        for i in 0..clients {
            let (barrier, encoded, latencies, address) = (&barrier, &encoded, &latencies, &address);
            let n = records / clients as u64 + u64::from((i as u64) < records % clients as u64);
            handles.push(s.spawn(move || -> anyhow::Result<u64> {
                let client = weir_client::Client::new(address)?;
                client.topic(topic)?; // connected before the clock starts
                barrier.wait();
                let (mut j, mut done, mut mine) = (0u64, 0u64, Vec::new());
                while j < n {
                    let take = (n - j).min(batch as u64);
                    let records = (j..j + take)
                        .map(|k| weir_api::ProduceRecord {
                            key: Some(format!("key-{}", (k * clients as u64 + i as u64) % KEYS)),
                            value: None,
                            value_base64: Some(encoded[k as usize % encoded.len()].clone()),
                            headers: BTreeMap::new(),
                            partition: None,
                        })
                        .collect();
                    let t = Instant::now();
                    let result = client.produce(topic, &weir_api::Produce { records })?;
                    let ns = t.elapsed().as_nanos() as u64;
                    mine.extend(std::iter::repeat_n(ns, result.offsets.len()));
                    done += result.offsets.len() as u64;
                    j += take;
                }
                latencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(mine);
                Ok(done)
            }));
        }
        barrier.wait();
        let started = Instant::now();
        let mut sent = 0;
        for h in handles {
            sent += h.join().expect("client thread")?;
        }
        Ok((started, sent))
    })?;
    let elapsed = started.elapsed();
    anyhow::ensure!(sent == records, "{sent} of {records} produced");
    Ok(Phase {
        name: format!("http produce, {clients} clients, {batch} per request"),
        items: records,
        elapsed,
        latency: Latency::from_ns(latencies.into_inner().unwrap_or_else(|e| e.into_inner())),
    })
}

/// `writers` writers make `appends` appends of `per_append` events each
/// to their own streams, over HTTP or in process.
fn appends(
    server: &Server,
    over_http: bool,
    writers: usize,
    appends: u64,
    per_append: usize,
    tag: &str,
) -> anyhow::Result<Phase> {
    let barrier = Barrier::new(writers + 1);
    let latencies = Mutex::new(Vec::new());
    let address = server.http.to_string();
    let data = serde_json::json!({"amount": 42, "currency": "EUR", "note": "benchmark event"});
    let started = std::thread::scope(|s| -> anyhow::Result<Instant> {
        let mut handles = Vec::new();
        for w in 0..writers {
            let (barrier, latencies, address, data) = (&barrier, &latencies, &address, &data);
            let store = server.store.clone();
            handles.push(s.spawn(move || -> anyhow::Result<()> {
                let stream = format!("bench{tag}-{w}");
                let client = weir_client::Client::new(address)?;
                client.topics()?; // connected before the clock starts
                let mut mine = Vec::new();
                barrier.wait();
                for a in 0..appends {
                    let first = a * per_append as u64;
                    let t = Instant::now();
                    if over_http {
                        let events = (0..per_append)
                            .map(|i| weir_api::EventIn {
                                id: Some(format!("{stream}-{}", first + i as u64)),
                                event_type: "Deposited".to_owned(),
                                data: data.clone(),
                                metadata: None,
                                traceparent: None,
                                tracestate: None,
                            })
                            .collect();
                        let expected = match first.checked_sub(1) {
                            Some(v) => serde_json::Value::from(v),
                            None => serde_json::Value::from("no_stream"),
                        };
                        client.append(
                            &stream,
                            &weir_api::Append {
                                expected_version: expected,
                                events,
                            },
                        )?;
                    } else {
                        let bytes = serde_json::to_vec(data)?;
                        let events: Vec<NewEvent> = (0..per_append)
                            .map(|i| {
                                NewEvent::json(
                                    format!("{stream}-{}", first + i as u64),
                                    "Deposited",
                                    bytes.clone(),
                                )
                            })
                            .collect();
                        let expected = match first.checked_sub(1) {
                            Some(v) => ExpectedVersion::Exact(v),
                            None => ExpectedVersion::NoStream,
                        };
                        store.append(&stream, expected, &events)?;
                    }
                    mine.push(t.elapsed().as_nanos() as u64);
                }
                latencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(mine);
                Ok(())
            }));
        }
        barrier.wait();
        let started = Instant::now();
        for h in handles {
            h.join().expect("writer thread")?;
        }
        Ok(started)
    })?;
    let elapsed = started.elapsed();
    let path = if over_http { "http" } else { "in-process" };
    Ok(Phase {
        name: format!(
            "{path} append {per_append} event{}, {writers} writers",
            if per_append == 1 { "" } else { "s" }
        ),
        items: writers as u64 * appends * per_append as u64,
        elapsed,
        latency: Latency::from_ns(latencies.into_inner().unwrap_or_else(|e| e.into_inner())),
    })
}

pub fn run(args: &HttpArgs) -> anyhow::Result<()> {
    let records = args
        .records
        .unwrap_or(if args.quick { 2000 } else { 100_000 });
    let appends_each = args.appends.unwrap_or(if args.quick { 10 } else { 200 });
    let clients = args.clients.max(1);
    let scratch = tempfile::Builder::new()
        .prefix("weir-bench-http.")
        .tempdir_in(&args.dir)
        .with_context(|| format!("scratch directory in {}", args.dir.display()))?;
    let server = Server::start(scratch.path())?;
    let admin = weir_client::Client::new(&server.http.to_string())?;
    for topic in ["bench-kafka", "bench-http"] {
        admin.create_topic(&weir_api::CreateTopic {
            name: topic.to_owned(),
            partitions: Some(PARTITIONS),
            configs: BTreeMap::new(),
        })?;
    }
    println!(
        "weir-bench http: scratch {}; {records} records of {VALUE_BYTES} B per produce path, {clients} clients each; {} writers x {appends_each} appends per append phase",
        scratch.path().display(),
        args.writers
    );
    let mut rng = Rng(0x5eed_f477_1234);
    eprintln!("[weir-bench] produce through Kafka ...");
    let kafka = kafka_produce(&server, "bench-kafka", records, clients, &mut rng)?;
    eprintln!("[weir-bench] produce through HTTP ...");
    let http = http_produce(
        &server,
        "bench-http",
        records,
        clients,
        args.batch.clamp(1, 1000),
        &mut rng,
    )?;
    eprintln!("[weir-bench] appends ...");
    let batched_local = appends(&server, false, args.writers, appends_each, 100, "a")?;
    let batched_http = appends(&server, true, args.writers, appends_each, 100, "b")?;
    let single_local = appends(&server, false, args.writers, appends_each, 1, "c")?;
    let single_http = appends(&server, true, args.writers, appends_each, 1, "d")?;

    println!();
    println!(
        "{:<52} {:>12} {:>10} {:>10}",
        "phase", "items/s", "p50 µs", "p99 µs"
    );
    for p in [
        &kafka,
        &http,
        &batched_local,
        &batched_http,
        &single_local,
        &single_http,
    ] {
        let (p50, p99) = p.latency.map_or((0.0, 0.0), |l| (l.p50_us, l.p99_us));
        println!(
            "{:<52} {:>12.0} {:>10.0} {:>10.0}",
            p.name,
            p.per_sec(),
            p50,
            p99
        );
    }
    println!();
    println!(
        "(produce latency: from send to acknowledgement, per record; append latency: per append)"
    );
    let ratio = |a: &Phase, b: &Phase| a.per_sec() / b.per_sec();
    println!(
        "http/in-process 100-event append ratio: {:.2}",
        ratio(&batched_http, &batched_local)
    );
    println!(
        "http/in-process single-event append ratio: {:.2}",
        ratio(&single_http, &single_local)
    );
    let produce = ratio(&http, &kafka);
    println!(
        "goal: HTTP batched produce >= 0.5 of the Kafka path: {produce:.2}, {}",
        if produce >= 0.5 { "met" } else { "NOT met" }
    );
    println!("http/kafka batched produce ratio: {produce:.2}");
    drop(server);
    Ok(())
}
