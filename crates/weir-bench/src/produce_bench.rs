//! `weir-bench produce`: the broker end to end through a real Kafka client.
//!
//! One run on one machine, three systems:
//!
//! 1. **Weir**: the broker runs in this process (as the weir-kafka tests
//!    start it: a scratch data directory, `BrokerConfig::default()`, so
//!    `fsync=always`, and `weir_kafka::run` on 127.0.0.1:0). `--producers`
//!    librdkafka producers (acks=all, idempotent, linger.ms=5), each on its
//!    own thread, send `--records` keyed records of 1 KiB random values to
//!    topic `bench` (6 partitions). Throughput, latency from `send` to the
//!    delivery report, the data directory's fsyncs, the CPU time of the
//!    broker's threads and of the clients', the process's peak RSS and the
//!    Rust heap's peak (see [`crate::heap`]) are measured; then a
//!    librdkafka consumer assigned all partitions reads everything back
//!    (the data is in the page cache).
//! 2. **Redis Streams**: `redis-server` with `appendfsync always` on a free
//!    loopback port, driven by `redis-benchmark` (`XADD` of the same value
//!    size, 50 clients, pipeline 16).
//! 3. **Raw durable writes**: the same bytes written with `pwrite` over 6
//!    files with as many `fdatasync`s as Weir made (best of the layouts in
//!    [`crate::raw`]).
//!
//! Throughput counts value bytes (records × 1 KiB) in every row, so the
//! ratios compare like with like.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use weir_broker::{Broker, BrokerConfig, Topic};
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_kafka::ServerConfig;
use weir_log::{DataDir, DirConfig, SyncStats};

use crate::heap;
use crate::log_bench::Rng;
use crate::raw::{LAYOUTS, RawFiles};
use crate::redis_baseline::{REDIS_CLIENTS, REDIS_PIPELINE, redis_phase};
use crate::report::{self, Latency, MIB, Row, mib};
use crate::sys;

pub(crate) const TOPIC: &str = "bench";
pub(crate) const PARTITIONS: usize = 6;
/// Value bytes of every record.
pub(crate) const VALUE_BYTES: usize = 1024;
/// Distinct random values each producer cycles through.
const VALUES_PER_PRODUCER: usize = 256;
/// Each producer's librdkafka queue, in KiB (`queue.buffering.max.kbytes`).
/// librdkafka's default (1 GiB) lets every producer queue its whole share
/// of the run at once, so "latency" would be mostly time spent in its own
/// queue and the process's RSS mostly queued copies. 4 MiB (a few of
/// librdkafka's 1 MB batches) keeps throughput (measured here: 1 MiB
/// costs about a third of it, 4 MiB to 1 GiB are within run-to-run noise)
/// and bounds both.
const PRODUCER_QUEUE_KIB: usize = 4 * 1024;
/// Bytes of distinct chunks the raw baseline cycles through.
const RAW_POOL_BYTES: usize = 8 * MIB as usize;
/// How long any phase may go without progress before the run fails.
const STALL: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Records produced to Weir (and XADDed to Redis) [default: 200000,
    /// with --quick 5000]
    #[arg(long)]
    records: Option<u64>,
    /// Producer instances, each on its own thread with its own connection
    /// [default: 4, with --quick 2]
    #[arg(long)]
    producers: Option<usize>,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
    /// Only Weir, run with the server's metrics off and on in turns
    /// (`--metrics-rounds` of each), reporting both throughputs and the
    /// difference, instead of the comparison with Redis and raw writes
    #[arg(long)]
    metrics_cost: bool,
    /// Runs of each side with --metrics-cost [default: 3, with --quick 1]
    #[arg(long)]
    metrics_rounds: Option<usize>,
}

/// The broker, in process, on a loopback port.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) broker: Arc<Broker>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(data: &Path, groups: GroupsConfig) -> anyhow::Result<Self> {
        Self::start_metered(data, groups, false)
    }

    /// [`Server::start`], with the server's metrics on or off. On, the
    /// Kafka listener records into a [`weir_metrics::Recorder`] and a
    /// thread renders the whole scrape every [`SCRAPE_EVERY`], as a
    /// Prometheus server would (more often than its default 15 s, so the
    /// scrape's own cost shows).
    pub(crate) fn start_metered(
        data: &Path,
        groups: GroupsConfig,
        metrics: bool,
    ) -> anyhow::Result<Self> {
        let dir = DataDir::open(data, DirConfig::default())
            .with_context(|| format!("open data directory {}", data.display()))?;
        let broker = Arc::new(Broker::open(dir, BrokerConfig::default()).context("open broker")?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("weir")
            .build()
            .context("start the tokio runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let config = ServerConfig::new(addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let b = broker.clone();
        let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default())
            .context("open committed offsets")?;
        // Moved into the server: it is dropped with it, so the broker is
        // not shared once the server stopped.
        let groups = Arc::new(Coordinator::new(
            groups,
            Arc::new(MonotonicClock::new()),
            broker.clone(),
            Arc::new(offsets),
        ));
        let scraper = if metrics {
            Some(crate::metrics_bench::Scraper::start(&broker, &groups)?)
        } else {
            None
        };
        let recorder = scraper.as_ref().map(|s| s.recorder());
        let thread = std::thread::Builder::new()
            .name("weir-server".into())
            .spawn(move || {
                runtime.block_on(weir_kafka::run_recorded(
                    listener,
                    b,
                    groups,
                    config,
                    recorder,
                    async {
                        let _ = stopped.await;
                    },
                ));
                drop(scraper);
            })
            .context("spawn the server thread")?;
        Ok(Self {
            addr,
            broker,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the listener, waits for its connections, and closes the data
    /// directory (which syncs every log).
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown();
        anyhow::ensure!(
            Arc::strong_count(&self.broker) == 1,
            "the broker is still shared after the server stopped"
        );
        // The last handle: dropping it closes the data directory.
        drop(self);
        Ok(())
    }

    pub(crate) fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One producer's delivery reports: latency from `send` (carried as the
/// message's opaque, nanoseconds since `epoch`) to the report.
#[derive(Debug)]
struct Deliveries {
    epoch: Instant,
    latencies_ns: Mutex<Vec<u64>>,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        match result {
            Ok(_) => {
                let now = self.epoch.elapsed().as_nanos() as u64;
                self.latencies_ns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(now.saturating_sub(sent_ns as u64));
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Where the load clients connect and what they send to: a listener, the
/// topic, and settings added to every client's config (`security.protocol`
/// and the SASL and TLS settings of a secured listener).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) settings: Vec<(&'static str, String)>,
}

impl Target {
    /// Topic [`TOPIC`] through the server's one PLAINTEXT listener.
    pub(crate) fn plain(server: &Server) -> Self {
        let (bootstrap, topic) = (server.addr.to_string(), TOPIC.to_owned());
        Self {
            bootstrap,
            topic,
            settings: Vec::new(),
        }
    }

    pub(crate) fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (key, value) in &self.settings {
            config.set(*key, value);
        }
        config
    }
}

fn producer_config(target: &Target) -> ClientConfig {
    let mut config = target.config();
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.kbytes", PRODUCER_QUEUE_KIB.to_string())
        .set("message.timeout.ms", "120000");
    config
}

/// What the produce phase measured.
#[derive(Debug)]
pub(crate) struct ProduceRun {
    pub(crate) row: Row,
    syncs: SyncStats,
    rss_before_kib: u64,
    peak_kib: u64,
    heap_before: usize,
    heap_peak: usize,
    pub(crate) cpu: CpuSplit,
}

/// CPU time the process's threads spent in a phase, by who they work for.
#[derive(Debug, Default)]
pub(crate) struct CpuSplit {
    /// The server: tokio workers and blocking pool (`weir`), the server
    /// thread, weir-log's sync thread.
    pub(crate) broker: Duration,
    /// The producer threads and librdkafka's own (`rdk:*`).
    pub(crate) clients: Duration,
    pub(crate) other: Duration,
}

impl CpuSplit {
    pub(crate) fn between(
        before: &std::collections::HashMap<u32, (String, u64)>,
        after: &std::collections::HashMap<u32, (String, u64)>,
    ) -> Self {
        let mut split = Self::default();
        for (tid, (name, ns)) in after {
            let spent = Duration::from_nanos(ns - before.get(tid).map_or(0, |(_, b)| *b).min(*ns));
            if name.starts_with("weir") && name != "weir-bench" {
                split.broker += spent;
            } else if name.starts_with("rdk:") || name.starts_with("producer-") {
                split.clients += spent;
            } else {
                split.other += spent;
            }
        }
        split
    }
}

/// `producers` threads send `records` records in all, started together;
/// the clock runs from the start to the last delivery report.
pub(crate) fn produce_phase(
    broker: &Broker,
    target: &Target,
    records: u64,
    producers: usize,
    rng: &mut Rng,
) -> anyhow::Result<ProduceRun> {
    let mut random = || {
        let mut v = vec![0u8; VALUE_BYTES];
        rng.fill(&mut v);
        v
    };
    produce_phase_with(broker, target, records, producers, &mut random)
}

/// [`produce_phase`] with values from `make_value` (each producer cycles
/// through [`VALUES_PER_PRODUCER`] of them), each [`VALUE_BYTES`] long.
pub(crate) fn produce_phase_with(
    broker: &Broker,
    target: &Target,
    records: u64,
    producers: usize,
    make_value: &mut dyn FnMut() -> Vec<u8>,
) -> anyhow::Result<ProduceRun> {
    let epoch = Instant::now();
    let mut clients = Vec::with_capacity(producers);
    for p in 0..producers {
        let n = records / producers as u64 + u64::from((p as u64) < records % producers as u64);
        let context = Deliveries {
            epoch,
            latencies_ns: Mutex::new(Vec::with_capacity(n as usize)),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
        };
        let producer: BaseProducer<Deliveries> = producer_config(target)
            .create_with_context(context)
            .context("create a producer")?;
        // Connected, with the topic's metadata, before the clock starts.
        producer
            .client()
            .fetch_metadata(Some(&target.topic), Duration::from_secs(10))
            .context("producer metadata")?;
        let values: Vec<Vec<u8>> = (0..VALUES_PER_PRODUCER).map(|_| make_value()).collect();
        anyhow::ensure!(
            values.iter().all(|v| v.len() == VALUE_BYTES),
            "values are {VALUE_BYTES} bytes"
        );
        clients.push((producer, values, n));
    }
    let barrier = Barrier::new(producers + 1);
    let data = broker.data_dir();
    let rss_before_kib = sys::status_kib("VmRSS")?;
    let heap_before = heap::live_bytes();
    let (elapsed, cpu, before, after) = std::thread::scope(|s| -> anyhow::Result<_> {
        let mut handles = Vec::with_capacity(producers);
        for (p, (producer, values, n)) in clients.iter().enumerate() {
            let barrier = &barrier;
            let handle = std::thread::Builder::new()
                .name(format!("producer-{p}"))
                .spawn_scoped(s, move || {
                    barrier.wait();
                    send_all(producer, &target.topic, values, (p, producers), *n, epoch)
                })
                .context("spawn a producer thread")?;
            handles.push(handle);
        }
        sys::reset_peak_rss()?;
        heap::reset_peak();
        let before = data.sync_stats();
        let cpu_before = sys::thread_cpu_ns()?;
        barrier.wait();
        let start = Instant::now();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a producer thread panicked"))??;
        }
        let elapsed = start.elapsed();
        let cpu = CpuSplit::between(&cpu_before, &sys::thread_cpu_ns()?);
        Ok((elapsed, cpu, before, data.sync_stats()))
    })?;
    let peak_kib = sys::status_kib("VmHWM")?;
    let heap_peak = heap::peak_bytes();
    let mut latencies = Vec::with_capacity(records as usize);
    for (producer, _, _) in &clients {
        let context = producer.context();
        if context.failed.load(Ordering::Relaxed) > 0 {
            bail!(
                "{} records were not delivered; first error: {}",
                context.failed.load(Ordering::Relaxed),
                context
                    .first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_deref()
                    .unwrap_or("?")
            );
        }
        latencies.append(
            &mut context
                .latencies_ns
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
    }
    anyhow::ensure!(
        latencies.len() as u64 == records,
        "{} of {records} records were reported delivered",
        latencies.len()
    );
    drop(clients);
    let syncs = SyncStats {
        rounds: after.rounds - before.rounds,
        data_syncs: after.data_syncs - before.data_syncs,
        dir_syncs: after.dir_syncs - before.dir_syncs,
    };
    Ok(ProduceRun {
        row: Row {
            phase: format!("weir produce ({producers} producers)"),
            records,
            bytes: records * VALUE_BYTES as u64,
            fsyncs: syncs.data_syncs + syncs.dir_syncs,
            elapsed,
            latency: Latency::from_ns(latencies),
        },
        syncs,
        rss_before_kib,
        peak_kib,
        heap_before,
        heap_peak,
        cpu,
    })
}

/// One producer's loop: records `p, p + producers, ...` (keys spread over
/// all partitions by librdkafka's default partitioner), polling for
/// delivery reports after every send and waiting on a full queue.
fn send_all(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    values: &[Vec<u8>],
    (p, producers): (usize, usize),
    n: u64,
    epoch: Instant,
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(32);
    for j in 0..n {
        let i = j * producers as u64 + p as u64;
        key.clear();
        let _ = write!(key, "key-{i}");
        let value = &values[j as usize % values.len()];
        let mut record = BaseRecord::with_opaque_to(topic, epoch.elapsed().as_nanos() as usize)
            .key(key.as_str())
            .payload(value.as_slice());
        let mut stalled = Instant::now();
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    if producer.poll(Duration::from_millis(5)) > 0 {
                        stalled = Instant::now();
                    } else if stalled.elapsed() > STALL {
                        bail!("producer {p}: queue full for {STALL:?}");
                    }
                }
                Err((e, _)) => return Err(e).context("send"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(STALL * 2)
        .with_context(|| format!("producer {p}: flush"))
}

/// Checks the partitions hold exactly `records` records.
pub(crate) fn check_stored(topic: &Topic, records: u64) -> anyhow::Result<u64> {
    let (mut stored, mut bytes) = (0u64, 0u64);
    for p in 0..PARTITIONS {
        let log = topic.partition(p as i32)?;
        stored += (log.high_watermark() - log.start_offset()) as u64;
        bytes += log.size_bytes();
    }
    anyhow::ensure!(
        stored == records,
        "the topic holds {stored} records, {records} were produced"
    );
    Ok(bytes)
}

/// Reads every partition from offset 0 with one consumer; returns value
/// bytes read and the time taken.
pub(crate) fn consume_phase(target: &Target, records: u64) -> anyhow::Result<(u64, Duration)> {
    let consumer: BaseConsumer = target
        .config()
        .set("group.id", "weir-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .context("create the consumer")?;
    consumer
        .fetch_metadata(Some(&target.topic), Duration::from_secs(10))
        .context("consumer metadata")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition_offset(&target.topic, p as i32, Offset::Offset(0))?;
    }
    let start = Instant::now();
    consumer.assign(&assignment)?;
    let (mut got, mut bytes) = (0u64, 0u64);
    let mut last = Instant::now();

    while got < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                bytes += message.payload_len() as u64;
                got += 1;
                last = Instant::now();
            }
            Some(Err(e)) => return Err(e).context("consume"),
            None if last.elapsed() > STALL => {
                bail!("consumer: nothing for {STALL:?} after {got} of {records} records")
            }
            None => {}
        }
    }
    Ok((bytes, start.elapsed()))
}

/// `records` records' bytes in chunks of whole records, as many
/// `fdatasync`s as Weir made, over one file per partition; every layout of
/// [`crate::raw`] is measured and the rows are returned best first.
fn raw_phase(dir: &Path, records: u64, fsyncs: u64, rng: &mut Rng) -> anyhow::Result<Vec<Row>> {
    let fsyncs = fsyncs.max(1);
    let chunk_records = ((records as f64 / fsyncs as f64).round() as u64).max(1);
    let chunk_bytes = chunk_records as usize * VALUE_BYTES;
    let n_chunks = (records / chunk_records).max(1);
    let pool: Vec<Vec<u8>> = (0..(RAW_POOL_BYTES / chunk_bytes).max(1))
        .map(|_| {
            let mut chunk = vec![0u8; chunk_bytes];
            rng.fill(&mut chunk);
            chunk
        })
        .collect();
    let mut rows = Vec::with_capacity(LAYOUTS.len());
    for layout in LAYOUTS {
        let mut raw = RawFiles::create(dir, layout, PARTITIONS, n_chunks, chunk_bytes as u64)?;
        let out = raw.write(&pool, 0, n_chunks, fsyncs)?;
        raw.remove()?;
        rows.push(Row {
            phase: format!("raw-durable ({}, {PARTITIONS} files)", layout.name()),
            records: n_chunks * chunk_records,
            bytes: out.bytes,
            fsyncs: out.fsyncs,
            elapsed: out.elapsed,
            latency: None,
        });
    }
    rows.sort_by(|a, b| b.mb_per_sec().total_cmp(&a.mb_per_sec()));
    Ok(rows)
}

pub fn run(args: &ProduceArgs) -> anyhow::Result<()> {
    let records = args
        .records
        .unwrap_or(if args.quick { 5_000 } else { 200_000 });
    let producers = args.producers.unwrap_or(if args.quick { 2 } else { 4 });
    anyhow::ensure!(records > 0, "--records must be at least 1");
    anyhow::ensure!(producers > 0, "--producers must be at least 1");
    let (scratch, root) = sys::scratch_dir(&args.dir, "weir-bench-produce.")?;
    let (_, librdkafka_version) = rdkafka::util::get_rdkafka_version();
    println!(
        "weir-bench produce: scratch {} on {}; {records} records of {VALUE_BYTES} B values, {producers} producers (librdkafka {librdkafka_version}), topic of {PARTITIONS} partitions; {} logical CPUs",
        root.display(),
        sys::describe_mount(&root),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    if sys::mount_of(&root).is_some_and(|m| m.fs_type == "tmpfs") {
        eprintln!(
            "[weir-bench] warning: {} is on tmpfs; fsync costs nothing there",
            root.display()
        );
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    if args.metrics_cost {
        let rounds = args
            .metrics_rounds
            .unwrap_or(if args.quick { 1 } else { 3 });
        return crate::metrics_bench::compare(&root, records, producers, rounds.max(1), &mut rng);
    }

    // 1. Weir.
    let server = Server::start(&root.join("weir"), GroupsConfig::default())?;
    let topic = server
        .broker
        .create_topic(TOPIC, PARTITIONS as i64, 1, &[], false)
        .context("create topic bench")?;
    eprintln!("[weir-bench] weir: {producers} producers sending {records} records ...");
    let target = Target::plain(&server);
    let produce = produce_phase(&server.broker, &target, records, producers, &mut rng)?;
    let stored_bytes = check_stored(&topic, records)?;
    eprintln!("[weir-bench] weir: consuming {records} records ...");
    let (consumed_bytes, consume_elapsed) = consume_phase(&target, records)?;
    drop(topic);
    server.stop()?;

    // 2. Redis Streams.
    let redis_dir = root.join("redis");
    std::fs::create_dir(&redis_dir)?;
    eprintln!(
        "[weir-bench] redis: redis-benchmark XADD x {records}, {REDIS_CLIENTS} clients, pipeline {REDIS_PIPELINE} ..."
    );
    let redis = redis_phase(&redis_dir, records, &mut rng)?;
    std::fs::remove_dir_all(&redis_dir)
        .with_context(|| format!("remove {}", redis_dir.display()))?;

    // 3. Raw durable writes, as many fdatasyncs as Weir made.
    let raw_dir = root.join("raw");
    std::fs::create_dir(&raw_dir)?;
    eprintln!(
        "[weir-bench] raw: {:.0} MiB with {} fdatasyncs over {PARTITIONS} files ...",
        mib(records * VALUE_BYTES as u64),
        produce.row.fsyncs
    );
    let raw_rows = raw_phase(&raw_dir, records, produce.row.fsyncs, &mut rng)?;
    drop(scratch);

    let weir = &produce.row;
    let best_raw = &raw_rows[0];
    println!();
    println!(
        "produce, acks=all, fsync=always (MB = 10^6 bytes of record values; latency: send to delivery report)"
    );
    report::print_table(&[weir.clone(), redis.row.clone(), best_raw.clone()]);
    println!();
    println!(
        "weir: {} sync rounds, {} fdatasyncs + {} dir fsyncs; {:.1} MiB stored ({:.0} B per record with key and batch framing)",
        produce.syncs.rounds,
        produce.syncs.data_syncs,
        produce.syncs.dir_syncs,
        mib(stored_bytes),
        stored_bytes as f64 / records as f64,
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "weir: CPU while producing ({cpus} logical CPUs x {:.2} s = {:.2} CPU-s): broker {:.2} s, Kafka clients (producer threads, librdkafka's) {:.2} s, other {:.2} s",
        weir.elapsed.as_secs_f64(),
        weir.elapsed.as_secs_f64() * cpus as f64,
        produce.cpu.broker.as_secs_f64(),
        produce.cpu.clients.as_secs_f64(),
        produce.cpu.other.as_secs_f64(),
    );
    println!(
        "redis {}: {REDIS_CLIENTS} clients x pipeline {REDIS_PIPELINE}, appendfsync always; redis-benchmark latency p50 {} ms, p99 {} ms",
        redis.version,
        redis
            .p50_ms
            .map_or_else(|| "-".into(), |v| format!("{v:.3}")),
        redis
            .p99_ms
            .map_or_else(|| "-".into(), |v| format!("{v:.3}")),
    );
    println!(
        "raw layouts: {}",
        raw_rows
            .iter()
            .map(|r| format!("{} {:.1} MB/s", r.phase, r.mb_per_sec()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "consume (one librdkafka consumer, {PARTITIONS} partitions from offset 0, warm page cache): {:.1} MB/s ({:.1} MiB in {:.2} s)",
        consumed_bytes as f64 / consume_elapsed.as_secs_f64().max(1e-9) / 1e6,
        mib(consumed_bytes),
        consume_elapsed.as_secs_f64()
    );
    println!(
        "process peak RSS (broker + clients) while producing with {producers} producer connections: {:.1} MiB (RSS before: {:.1} MiB)",
        produce.peak_kib as f64 / 1024.0,
        produce.rss_before_kib as f64 / 1024.0,
    );
    println!(
        "Rust heap peak while producing (the broker's allocations; librdkafka's C heap is not counted): {:.1} MiB (held before: {:.1} MiB)",
        mib(produce.heap_peak as u64),
        mib(produce.heap_before as u64),
    );
    println!(
        "produce weir/redis-streams ratio: {:.2}",
        weir.mb_per_sec() / redis.row.mb_per_sec()
    );
    println!(
        "produce weir/raw-durable ratio: {:.2}",
        weir.mb_per_sec() / best_raw.mb_per_sec()
    );
    Ok(())
}
