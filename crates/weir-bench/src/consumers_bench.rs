//! `weir-bench consumers`: the SDK's consumer runtime (`weir::Service`)
//! through librdkafka against the in-process broker, each figure beside a
//! baseline measured in the same run.
//!
//! 1. **Handler throughput**: `--records` small CloudEvents records (Kafka
//!    binary mode, keyed over 1,000 keys, 6 partitions) are read by a bare
//!    `rdkafka` `BaseConsumer` loop that does the runtime's per-record work
//!    (copy the record out, `Envelope::from_kafka`, decode the event, a
//!    trivial handler body), then by a `Service` with the default
//!    `ServiceConfig` and the same trivial handler, and by one whose
//!    in-flight limit is above the backlog (it never pauses for
//!    backpressure, which shows what those pauses cost), each in its own
//!    group; records/s from the first record to the last, best of
//!    `--rounds` (goal: service/bare ≥ 0.8 with the default config).
//! 2. **Drain after a downstream recovers**: `--drain-records` records whose
//!    handler calls a downstream through `ctx.call` that fails transiently;
//!    once its breaker is open and partitions are paused, it stays down
//!    `--outage-ms` more, then recovers. Measured: recovery → breaker
//!    closed (the probe, bounded by the breaker's `open_for`), breaker
//!    closed → every record handled, against the bare loop reading the
//!    same records.
//! 3. **Memory while a downstream is down**: `--memory-records` records of
//!    `--memory-value-bytes` each (a backlog far above the in-flight limit
//!    times the record size) and a downstream down all the time; the Rust
//!    heap (the runtime's records are Rust allocations; librdkafka's C
//!    allocations are only in RSS) is sampled until fetching stops (the
//!    limit reached, or nothing fetched for 2 s) and `--hold-ms` more, with
//!    the default in-flight limit and with ten times it. Goal: flat once
//!    fetching stopped, and bounded by the limit, not by the backlog (the
//!    criteria are printed with the verdict).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers as _, Message as _};
use serde::{Deserialize, Serialize};
use weir::{
    BreakerPolicy, BreakerState, Causation, Envelope, Failure, KafkaRecord, KafkaSource, Service,
    ServiceConfig,
};
use weir_broker::partitioner::partition_for_key;
use weir_groups::GroupsConfig;
use weir_log::batch::BatchBuilder;

use crate::produce_bench::Server;
use crate::report::mib;
use crate::{heap, sys};

const THROUGHPUT_TOPIC: &str = "consumers-throughput";
const DRAIN_TOPIC: &str = "consumers-drain";
const MEMORY_TOPIC: &str = "consumers-memory";
const PARTITIONS: i32 = 6;
const KEYS: u64 = 1_000;
const RECORDS_PER_BATCH: usize = 256;
/// The downstream the drain and memory phases call.
const DOWNSTREAM: &str = "down";
/// How long any wait may go without progress before the run fails.
const STALL: Duration = Duration::from_secs(60);
/// How often the memory phase samples the heap.
const SAMPLE: Duration = Duration::from_millis(5);

#[derive(Debug, Args)]
pub struct ConsumersArgs {
    /// Records of the throughput comparison [default: 200000, with --quick
    /// 20000]
    #[arg(long)]
    records: Option<u64>,
    /// Rounds of the throughput comparison (bare, then service, each
    /// round); the best of each is reported [default: 2, with --quick 1]
    #[arg(long)]
    rounds: Option<usize>,
    /// Backlog of the drain phase [default: 10000, with --quick 2000]
    #[arg(long)]
    drain_records: Option<u64>,
    /// How long the downstream stays down after its breaker opened and
    /// partitions paused, in ms [default: 2000, with --quick 500]
    #[arg(long)]
    outage_ms: Option<u64>,
    /// Backlog of the memory phase [default: 100000, with --quick 20000]
    #[arg(long)]
    memory_records: Option<u64>,
    /// Bytes of padding in each memory-phase event's data
    #[arg(long, default_value_t = 1024)]
    memory_value_bytes: usize,
    /// How long each memory phase holds with the downstream down, in ms
    /// [default: 4000, with --quick 1500]
    #[arg(long)]
    hold_ms: Option<u64>,
    /// Directory on the disk to use; a scratch directory is created in it
    /// and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
}

/// The benchmark's event: a number and some padding.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    n: u64,
    pad: String,
}
weir::event!(Tick = "BenchTick" v 1);

/// The trivial handler body both consumers run.
fn handle(tick: &Tick) {
    black_box(tick.n);
}

/// What a fill wrote.
#[derive(Debug, Clone, Copy)]
struct Backlog {
    records: u64,
    /// Bytes of the record batches written (the backlog on disk).
    bytes: u64,
}

impl Backlog {
    fn record_bytes(&self) -> f64 {
        self.bytes as f64 / self.records.max(1) as f64
    }
}

/// Writes `records` CloudEvents records (binary mode, keyed `key-<i mod
/// 1000>`, partitioned by murmur2 as Kafka producers do) to a new topic,
/// straight into the broker.
fn fill(server: &Server, topic: &str, records: u64, pad_bytes: usize) -> anyhow::Result<Backlog> {
    server
        .broker
        .create_topic(topic, i64::from(PARTITIONS), 1, &[], false)
        .with_context(|| format!("create {topic}"))?;
    let pad = "x".repeat(pad_bytes);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut batches: Vec<(BatchBuilder, usize)> = (0..PARTITIONS)
        .map(|_| (BatchBuilder::new(now_ms), 0))
        .collect();
    let mut bytes = 0u64;
    let mut flush = |partition: usize, batch: &mut (BatchBuilder, usize)| -> anyhow::Result<()> {
        if batch.1 == 0 {
            return Ok(());
        }
        let mut built = batch.0.build();
        bytes += built.len() as u64;
        server
            .broker
            .produce(topic, partition as i32, &mut built)
            .with_context(|| format!("fill {topic}"))?;
        *batch = (BatchBuilder::new(now_ms), 0);
        Ok(())
    };
    for i in 0..records {
        let key = format!("key-{}", i % KEYS);
        let tick = Tick {
            n: i,
            pad: pad.clone(),
        };
        let record = Envelope::new(&tick, "/weir-bench", &Causation::new())?
            .with_subject(&key)
            .to_kafka();
        let headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let p = partition_for_key(key.as_bytes(), PARTITIONS as u32) as usize;
        let batch = &mut batches[p];
        batch
            .0
            .push(now_ms, record.key.as_deref(), Some(&record.value), &headers);
        batch.1 += 1;
        if batch.1 == RECORDS_PER_BATCH {
            flush(p, batch)?;
        }
    }
    for (p, batch) in batches.iter_mut().enumerate() {
        flush(p, batch)?;
    }
    Ok(Backlog { records, bytes })
}

/// The bare loop: a `BaseConsumer` in group `group` reads `records`
/// records of `topic`, doing per record what the runtime does before and
/// around its handler. Returns the time from the first record to the last.
fn bare_read(server: &Server, topic: &str, group: &str, records: u64) -> anyhow::Result<Duration> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", server.addr.to_string())
        .set("group.id", group)
        .set("client.id", group)
        .set("auto.offset.reset", "earliest")
        .create()
        .context("create the bare consumer")?;
    consumer.subscribe(&[topic]).context("subscribe")?;
    let (mut got, mut first, mut progress) = (0u64, None, Instant::now());
    while got < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                // The copy the runtime makes to hand a record to a worker,
                // then the envelope and the event.
                let record = KafkaRecord {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|h| {
                            (0..h.count())
                                .map(|i| {
                                    let h = h.get(i);
                                    (h.key.to_owned(), h.value.unwrap_or_default().to_vec())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                let envelope = Envelope::from_kafka(&record)?;
                handle(&envelope.decode::<Tick>()?);
                got += 1;
                progress = Instant::now();
            }
            Some(Err(e)) => return Err(e).context("bare consumer poll"),
            None if progress.elapsed() > STALL => {
                bail!("the bare consumer read nothing for {STALL:?} after {got} of {records}")
            }
            None => {}
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
    drop(consumer);
    Ok(elapsed)
}

/// Counts handled records and stamps the first and the `target`th.
#[derive(Debug, Default)]
struct Progress {
    handled: AtomicU64,
    target: AtomicU64,
    first: OnceLock<Instant>,
    done: OnceLock<Instant>,
}

impl Progress {
    fn new(target: u64) -> Arc<Self> {
        Arc::new(Self {
            target: AtomicU64::new(target),
            ..Self::default()
        })
    }

    fn handled(&self) {
        let now = Instant::now();
        self.first.get_or_init(|| now);
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.target.load(Ordering::Relaxed) {
            let _ = self.done.set(now);
        }
    }

    /// Waits until the target is reached; fails after [`STALL`] without a
    /// handled record.
    fn wait(&self, what: &str) -> anyhow::Result<Instant> {
        let mut seen = (0, Instant::now());
        loop {
            if let Some(done) = self.done.get() {
                return Ok(*done);
            }
            let n = self.handled.load(Ordering::Relaxed);
            if n != seen.0 {
                seen = (n, Instant::now());
            } else if seen.1.elapsed() > STALL {
                bail!(
                    "{what}: nothing handled for {STALL:?} after {n} of {}",
                    self.target.load(Ordering::Relaxed)
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn source(server: &Server, topic: &str) -> KafkaSource {
    KafkaSource::new(server.addr.to_string(), &[topic])
}

/// The runtime with `config` and a trivial handler reads `records`
/// records: the time from the first handled to the last, and its counts.
fn service_read(
    server: &Server,
    group: &str,
    config: ServiceConfig,
    records: u64,
) -> anyhow::Result<(Duration, weir::Stats)> {
    let progress = Progress::new(records);
    let p = progress.clone();
    let service = Service::builder(group)
        .config(config)
        .on::<Tick>(move |_ctx, tick| {
            handle(&tick);
            p.handled();
            Ok(())
        })
        .build()?;
    let running = service.start(source(server, THROUGHPUT_TOPIC))?;
    let done = progress.wait("the service")?;
    running.stop()?;
    let stats = service.stats();
    anyhow::ensure!(
        stats.handled == records && stats.dead_lettered == 0,
        "the service handled {} and dead-lettered {} of {records}",
        stats.handled,
        stats.dead_lettered
    );
    Ok((
        done - *progress.first.get().context("no first record")?,
        stats,
    ))
}

/// The drain phase's measurements.
#[derive(Debug)]
struct Drain {
    /// From the start until the breaker was open and a partition paused.
    until_open: Duration,
    /// How long the downstream stayed down after that.
    down_after_open: Duration,
    recovered_to_closed: Duration,
    closed_to_done: Duration,
    recovered_to_done: Duration,
    at_recovery: weir::Stats,
    end: weir::Stats,
}

/// A handler that calls a downstream down until it is told it recovered.
fn drain_phase(server: &Server, records: u64, outage: Duration) -> anyhow::Result<Drain> {
    let down = Arc::new(AtomicBool::new(true));
    let progress = Progress::new(records);
    let (d, p) = (down.clone(), progress.clone());
    let service = Service::builder("bench-drain-service")
        .downstream(DOWNSTREAM, BreakerPolicy::default())
        .on::<Tick>(move |ctx, tick| {
            ctx.call(DOWNSTREAM, || {
                if d.load(Ordering::Relaxed) {
                    Err(Failure::transient("the downstream is down"))
                } else {
                    Ok(())
                }
            })?;
            handle(&tick);
            // The first handled record is the breaker's successful probe.
            p.handled();
            Ok(())
        })
        .build()?;
    let start = Instant::now();
    let running = service.start(source(server, DRAIN_TOPIC))?;
    let open = || {
        service
            .breakers()
            .iter()
            .any(|(n, s)| n == DOWNSTREAM && *s == BreakerState::Open)
    };
    while !(open() && service.stats().paused > 0) {
        if start.elapsed() > STALL {
            bail!(
                "the breaker did not open with partitions paused in {STALL:?}: {:?}, {:?}",
                service.breakers(),
                service.stats()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let until_open = start.elapsed();
    std::thread::sleep(outage);
    let at_recovery = service.stats();
    let recovered = Instant::now();
    let down_after_open = recovered - start - until_open;
    down.store(false, Ordering::Relaxed);
    let done = progress.wait("the drain")?;
    running.stop()?;
    let closed = *progress.first.get().context("no record handled")?;
    Ok(Drain {
        until_open,
        down_after_open,
        recovered_to_closed: closed - recovered,
        closed_to_done: done - closed,
        recovered_to_done: done - recovered,
        at_recovery,
        end: service.stats(),
    })
}

/// The memory phase's measurements, for one in-flight limit.
#[derive(Debug)]
struct Memory {
    in_flight_max: usize,
    /// From the start until fetching stopped (the in-flight limit reached,
    /// or nothing fetched for [`SETTLE`]); `None` if it never did.
    settled_after: Option<Duration>,
    /// The Rust heap's peak over the phase, above what it held before the
    /// service started.
    heap_growth_peak: u64,
    /// The live heap's highest sample after fetching stopped, above the
    /// highest before.
    growth_after_settled: u64,
    rss_growth_peak_kib: u64,
    end: weir::Stats,
}

/// Fetching counts as stopped after this long without a fetched record.
const SETTLE: Duration = Duration::from_secs(2);

fn memory_phase(server: &Server, in_flight_max: usize, hold: Duration) -> anyhow::Result<Memory> {
    // The default config, but with a short shutdown deadline: with the
    // downstream down, the in-flight records never finish, and stopping
    // would wait the default 30 s for them.
    let config = ServiceConfig {
        in_flight_max,
        shutdown_deadline: Duration::from_secs(1),
        ..ServiceConfig::default()
    };
    let service = Service::builder(format!("bench-memory-{in_flight_max}"))
        .config(config)
        .downstream(DOWNSTREAM, BreakerPolicy::default())
        .on::<Tick>(|ctx, tick| {
            ctx.call(DOWNSTREAM, || {
                Err::<(), _>(Failure::transient("the downstream is down"))
            })?;
            handle(&tick);
            Ok(())
        })
        .build()?;
    let base = heap::live_bytes() as u64;
    heap::reset_peak();
    sys::reset_peak_rss()?;
    let rss_base_kib = sys::status_kib("VmRSS")?;
    let start = Instant::now();
    let running = service.start(source(server, MEMORY_TOPIC))?;
    // Until fetching stops, then `hold` more.
    let (mut before, mut after) = (0u64, 0u64);
    let mut settled_at: Option<Instant> = None;
    let mut fetched = (0u64, Instant::now());
    loop {
        let growth = (heap::live_bytes() as u64).saturating_sub(base);
        let now = Instant::now();
        match settled_at {
            Some(at) if now - at >= hold => break,
            Some(_) => after = after.max(growth),
            None => {
                before = before.max(growth);
                let stats = service.stats();
                if stats.fetched != fetched.0 {
                    fetched = (stats.fetched, now);
                }
                if stats.in_flight >= in_flight_max as u64 || now - fetched.1 >= SETTLE {
                    settled_at = Some(now);
                } else if now - start > STALL {
                    break;
                }
            }
        }
        std::thread::sleep(SAMPLE);
    }
    let heap_growth_peak = (heap::peak_bytes() as u64).saturating_sub(base);
    let rss_growth_peak_kib = sys::status_kib("VmHWM")?.saturating_sub(rss_base_kib);
    let end = service.stats();
    running.stop()?;
    Ok(Memory {
        in_flight_max,
        settled_after: settled_at.map(|at| at - start),
        heap_growth_peak,
        growth_after_settled: after.saturating_sub(before),
        rss_growth_peak_kib,
        end,
    })
}

pub fn run(args: &ConsumersArgs) -> anyhow::Result<()> {
    let quick = args.quick;
    let records = args.records.unwrap_or(if quick { 20_000 } else { 200_000 });
    let rounds = args.rounds.unwrap_or(if quick { 1 } else { 2 });
    let drain_records = args
        .drain_records
        .unwrap_or(if quick { 2_000 } else { 10_000 });
    let outage = Duration::from_millis(args.outage_ms.unwrap_or(if quick { 500 } else { 2_000 }));
    let memory_records = args
        .memory_records
        .unwrap_or(if quick { 20_000 } else { 100_000 });
    let hold = Duration::from_millis(args.hold_ms.unwrap_or(if quick { 1_500 } else { 4_000 }));
    anyhow::ensure!(
        records >= 1 && rounds >= 1 && drain_records >= 1 && memory_records >= 1,
        "counts must be positive"
    );
    anyhow::ensure!(
        args.memory_value_bytes <= 64 * 1024,
        "--memory-value-bytes is at most 65536"
    );
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("weir-bench-consumers.")
        .tempdir_in(&args.dir)
        .with_context(|| format!("create a scratch directory in {}", args.dir.display()))?;
    let root = scratch.path().canonicalize()?;
    let (_, librdkafka_version) = rdkafka::util::get_rdkafka_version();
    let defaults = ServiceConfig::default();
    println!(
        "weir-bench consumers: scratch {} on {}; librdkafka {librdkafka_version}; {} logical CPUs; service defaults: {} workers, in_flight_max {}",
        root.display(),
        sys::describe_mount(&root),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        defaults.workers,
        defaults.in_flight_max,
    );
    // Kafka's defaults, but a new group is assigned at once instead of
    // waiting 3 s for more members: every phase starts a one-member group.
    let groups = GroupsConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupsConfig::default()
    };
    let server = Server::start(&root.join("weir"), groups)?;

    eprintln!("[weir-bench] throughput: writing {records} records ...");
    let backlog = fill(&server, THROUGHPUT_TOPIC, records, 0)?;
    // The runtime as configured by default, and with an in-flight limit
    // above the backlog, so that it never pauses for backpressure: the
    // second shows what the pause-and-resume cycles cost the first.
    let unbounded = ServiceConfig {
        in_flight_max: usize::try_from(records)
            .unwrap_or(usize::MAX)
            .clamp(defaults.in_flight_max, weir::service::IN_FLIGHT_MAX),
        ..ServiceConfig::default()
    };
    let mut bare = Duration::MAX;
    let mut service = [(Duration::MAX, 0u64), (Duration::MAX, 0u64)];
    for round in 0..rounds {
        let b = bare_read(
            &server,
            THROUGHPUT_TOPIC,
            &format!("bench-bare-{round}"),
            records,
        )?;
        bare = bare.min(b);
        let mut line = format!(
            "[weir-bench] round {round}: bare {:.0} records/s",
            records as f64 / b.as_secs_f64()
        );
        for (i, config) in [defaults.clone(), unbounded.clone()]
            .into_iter()
            .enumerate()
        {
            let limit = config.in_flight_max;
            let group = format!("bench-service-{limit}-{round}");
            let (d, stats) = service_read(&server, &group, config, records)?;
            line += &format!(
                ", service (in_flight_max {limit}) {:.0} records/s with {} backpressure pauses",
                records as f64 / d.as_secs_f64(),
                stats.backpressure_pauses
            );
            service[i].0 = service[i].0.min(d);
            service[i].1 += stats.backpressure_pauses;
        }
        eprintln!("{line}");
    }

    eprintln!("[weir-bench] drain: writing {drain_records} records ...");
    fill(&server, DRAIN_TOPIC, drain_records, 0)?;
    let drain_bare = bare_read(&server, DRAIN_TOPIC, "bench-drain-bare", drain_records)?;
    eprintln!(
        "[weir-bench] drain: the downstream down, then {} ms more once its breaker opened ...",
        outage.as_millis()
    );
    let drain = drain_phase(&server, drain_records, outage)?;

    eprintln!(
        "[weir-bench] memory: writing {memory_records} records of {} B data ...",
        args.memory_value_bytes
    );
    let memory_backlog = fill(
        &server,
        MEMORY_TOPIC,
        memory_records,
        args.memory_value_bytes,
    )?;
    let limits = [defaults.in_flight_max, defaults.in_flight_max * 10];
    let mut memory = Vec::new();
    for limit in limits {
        eprintln!(
            "[weir-bench] memory: in_flight_max {limit}, downstream down, {} ms ...",
            hold.as_millis()
        );
        memory.push(memory_phase(&server, limit, hold)?);
    }
    server.stop()?;
    drop(scratch);

    print_throughput(&backlog, rounds, bare, &service, unbounded.in_flight_max);
    print_drain(drain_records, drain_bare, &drain);
    print_memory(&memory_backlog, hold, &memory);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `service`: (best time, backpressure pauses over the rounds) with the
/// default config, then with `unbounded` as the in-flight limit.
fn print_throughput(
    backlog: &Backlog,
    rounds: usize,
    bare: Duration,
    service: &[(Duration, u64); 2],
    unbounded: usize,
) {
    let per_sec = |d: Duration| backlog.records as f64 / d.as_secs_f64().max(1e-9);
    let mb_per_sec = |d: Duration| backlog.bytes as f64 / d.as_secs_f64().max(1e-9) / 1e6;
    let ratio = |d: Duration| bare.as_secs_f64() / d.as_secs_f64().max(1e-9);
    println!();
    println!(
        "handler throughput: {} records over {PARTITIONS} partitions, {KEYS} keys, {:.0} B per record in its batch; first record to last, best of {rounds}",
        backlog.records,
        backlog.record_bytes()
    );
    println!(
        "{:<56}  {:>11}  {:>7}  {:>9}  {:>17}",
        "consumer", "records/s", "MB/s", "/baseline", "backpressure stops"
    );
    println!(
        "{:<56}  {:>11.0}  {:>7.1}  {:>9}  {:>17}",
        "bare rdkafka loop + from_kafka + decode (baseline)",
        per_sec(bare),
        mb_per_sec(bare),
        "1.00",
        "-"
    );
    let defaults = ServiceConfig::default();
    for (name, (d, pauses)) in [
        format!(
            "weir::Service, default config (in_flight_max {})",
            defaults.in_flight_max
        ),
        format!("weir::Service, in_flight_max {unbounded} (never reached)"),
    ]
    .iter()
    .zip(service)
    {
        println!(
            "{name:<56}  {:>11.0}  {:>7.1}  {:>9.2}  {pauses:>17}",
            per_sec(*d),
            mb_per_sec(*d),
            ratio(*d)
        );
    }
    let r = ratio(service[0].0);
    println!(
        "service/bare = {r:.2} with the default config (goal >= 0.8: {})",
        if r >= 0.8 { "met" } else { "NOT met" }
    );
}

fn print_drain(records: u64, bare: Duration, drain: &Drain) {
    let policy = BreakerPolicy::default();
    println!();
    println!(
        "drain after a downstream recovers: {records} records; breaker {} failures in {} ms, open {} ms; it opened with partitions paused {:.0} ms after the start, and the downstream recovered {:.0} ms later",
        policy.failures,
        policy.window.as_millis(),
        policy.open_for.as_millis(),
        ms(drain.until_open),
        ms(drain.down_after_open)
    );
    let x = |d: Duration| format!("{:.1}x", d.as_secs_f64() / bare.as_secs_f64().max(1e-9));
    println!("{:<52}  {:>9}  {:>9}", "interval", "ms", "/baseline");
    for (name, d, rel) in [
        (
            format!("bare loop reads the {records} records (baseline)"),
            bare,
            "1.0x".to_owned(),
        ),
        (
            "recovery -> breaker closed (its probe)".to_owned(),
            drain.recovered_to_closed,
            "-".to_owned(),
        ),
        (
            "breaker closed -> all handled".to_owned(),
            drain.closed_to_done,
            x(drain.closed_to_done),
        ),
        (
            "recovery -> all handled".to_owned(),
            drain.recovered_to_done,
            x(drain.recovered_to_done),
        ),
    ] {
        println!("{name:<52}  {:>9.0}  {rel:>9}", ms(d));
    }
    let r = &drain.at_recovery;
    println!(
        "at recovery: {} fetched, {} in flight, {} partitions paused, {} retries; at the end: {} handled, {} dead-lettered ({})",
        r.fetched,
        r.in_flight,
        r.paused,
        r.retries,
        drain.end.handled,
        drain.end.dead_lettered,
        if drain.end.dead_lettered == 0 && drain.end.handled == records {
            "none lost to the outage"
        } else {
            "NOT all handled"
        }
    );
}

fn print_memory(backlog: &Backlog, hold: Duration, rows: &[Memory]) {
    println!();
    println!(
        "memory while a downstream is down: backlog {} records, {:.1} MiB ({:.0} B per record); sampled until fetching stops, then {} ms more; Rust heap (RSS adds librdkafka's C allocations and pages malloc keeps)",
        backlog.records,
        mib(backlog.bytes),
        backlog.record_bytes(),
        hold.as_millis()
    );
    println!(
        "{:>13}  {:>8}  {:>6}  {:>10}  {:>14}  {:>10}  {:>13}  {:>13}  {:>10}",
        "in_flight_max",
        "fetched",
        "paused",
        "stopped at",
        "limit x record",
        "heap peak",
        "per in-flight",
        "growth after",
        "RSS peak"
    );
    let settled = |m: &Memory| {
        m.settled_after
            .map_or_else(|| "never".to_owned(), |d| format!("{:.0} ms", ms(d)))
    };
    for m in rows {
        println!(
            "{:>13}  {:>8}  {:>6}  {:>10}  {:>10.1} MiB  {:>6.1} MiB  {:>11.0} B  {:>9.2} MiB  {:>6.1} MiB",
            m.in_flight_max,
            m.end.fetched,
            m.end.paused,
            settled(m),
            mib((m.in_flight_max as f64 * backlog.record_bytes()) as u64),
            mib(m.heap_growth_peak),
            m.heap_growth_peak as f64 / m.in_flight_max as f64,
            mib(m.growth_after_settled),
            m.rss_growth_peak_kib as f64 / 1024.0
        );
    }
    let [small, large] = rows else {
        return;
    };
    println!(
        "heap peak / backlog: {:.3} at in_flight_max {}, {:.3} at {}; ten times the limit holds {:.1}x the heap",
        small.heap_growth_peak as f64 / backlog.bytes as f64,
        small.in_flight_max,
        large.heap_growth_peak as f64 / backlog.bytes as f64,
        large.in_flight_max,
        large.heap_growth_peak as f64 / small.heap_growth_peak.max(1) as f64
    );
    // Flat: once fetching stopped, the heap grows by at most 1 MiB or 10%
    // of its peak. Bounded by the limit: at most one poll round (500
    // records) fetched past the limit, and the heap's peak within four
    // times the limit's records plus 8 MiB (librdkafka's prefetch is not
    // on this heap; the broker's fetch responses and the consumer's
    // fixed state are), which for this backlog is far below its size.
    let flat = |m: &Memory| {
        m.settled_after.is_some()
            && m.growth_after_settled <= (crate::report::MIB).max(m.heap_growth_peak / 10)
    };
    let bounded = |m: &Memory| {
        let limit_bytes = m.in_flight_max as f64 * backlog.record_bytes();
        m.end.fetched <= m.in_flight_max as u64 + 500
            && (m.heap_growth_peak as f64) <= 4.0 * limit_bytes + 8.0 * crate::report::MIB as f64
    };
    let met = rows.iter().all(|m| flat(m) && bounded(m));
    println!(
        "goal (flat: growth after fetching stopped <= max(1 MiB, 10% of the peak); bounded: fetched <= limit + 500 and heap peak <= 4 x limit x record + 8 MiB): {}",
        if met { "met" } else { "NOT met" }
    );
}
