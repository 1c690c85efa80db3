//! `weir-bench queues`: records acknowledged one by one per second with
//! competing consumers on one partition, against Redis Streams and a
//! classic Kafka consumer group in the same run.
//!
//! 1. **Weir queue over HTTP.** `weir serve`'s parts in this process
//!    (`fsync=always`); a topic of one partition holds `--records` small
//!    records. `--consumers` threads, each with its own keep-alive
//!    `weir-client`, claim `--claim-max` records at a time through
//!    `POST /v1/queues/{group}/topics/{topic}/claim` and acknowledge each
//!    with its own `POST .../ack` (answered once durable), until every
//!    record is settled; with `--ack-batch N`, up to N of a claim's
//!    records by id per `POST .../settle`.
//! 2. **Redis Streams.** `redis-server` with `appendonly yes`,
//!    `appendfsync always`; the same records XADDed to one stream; as many
//!    consumers of one group doing `XREADGROUP COUNT <claim-max>` and one
//!    `XACK` per entry (with `--ack-batch N`, of up to N ids).
//! 3. **Classic consumer group.** As many librdkafka consumers in one
//!    classic group on Weir's same topic, each record's offset committed
//!    synchronously on its own (`commit_message`, `CommitMode::Sync`). One
//!    partition: one member gets every record, the others idle; that is
//!    what a queue removes. Timed from the first record delivered, so the
//!    group's join is not counted.
//!
//! Latency is per acknowledgement call (ack, XACK, commit) in each.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use weir_api::{ClaimRequest, CreateTopic, Produce, ProduceRecord, RecordAck, SettleRequest};

use crate::report::Latency;
use crate::resp::Resp;

const TOPIC: &str = "jobs";
const GROUP: &str = "workers";
/// Records per prefill request (HTTP produce, Redis pipeline).
const PREFILL_BATCH: usize = 1_000;
/// How long any phase may go without finishing before the run fails.
const PHASE_MAX: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct QueuesArgs {
    /// Records in the partition (and the stream) [default: 50000, with
    /// --quick 2000]
    #[arg(long)]
    records: Option<u64>,
    /// Competing consumers, each on its own thread and connection
    #[arg(long, default_value_t = 16)]
    consumers: usize,
    /// Records per claim (XREADGROUP COUNT)
    #[arg(long, default_value_t = 10)]
    claim_max: usize,
    /// Records settled per acknowledgement call: 1 (the default) acks each
    /// record with its own call; more settles up to that many records of a
    /// claim per call, each still by its own id (Weir `POST .../settle`,
    /// Redis `XACK` with several ids; the classic group commits every that
    /// many records)
    #[arg(long, default_value_t = 1)]
    ack_batch: usize,
    /// Bytes of each record's value
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Only these phases, comma-separated: weir, redis, classic
    #[arg(long)]
    only: Option<String>,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
}

/// One phase's result.
struct Phase {
    name: String,
    records: u64,
    elapsed: Duration,
    latency: Option<Latency>,
    note: String,
}

impl Phase {
    fn per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Latencies gathered by every thread of a phase.
#[derive(Default)]
struct Samples(Mutex<Vec<u64>>);

impl Samples {
    fn add(&self, mut ns: Vec<u64>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&mut ns);
    }

    fn latency(self) -> Option<Latency> {
        Latency::from_ns(self.0.into_inner().unwrap_or_else(|e| e.into_inner()))
    }
}

fn value(bytes: usize, i: u64) -> String {
    let mut v = format!("job-{i}-");
    while v.len() < bytes {
        v.push('x');
    }
    v.truncate(bytes.max(1));
    v
}

pub fn run(args: &QueuesArgs) -> anyhow::Result<()> {
    let records = args
        .records
        .unwrap_or(if args.quick { 2_000 } else { 50_000 });
    if records == 0 || args.consumers == 0 || args.claim_max == 0 || args.ack_batch == 0 {
        bail!("--records, --consumers, --claim-max and --ack-batch must be positive");
    }
    let wants = |phase: &str| {
        args.only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|p| p.trim() == phase))
    };
    let (_scratch, root) = crate::sys::scratch_dir(&args.dir, ".weir-bench-queues-")?;
    println!(
        "weir-bench queues: {records} records of {} bytes on one partition, {} consumers, {} per claim, {}; {}",
        args.value_bytes,
        args.consumers,
        args.claim_max,
        if args.ack_batch == 1 {
            "each acknowledged with its own call".to_owned()
        } else {
            format!("acknowledged by id, up to {} per call", args.ack_batch)
        },
        crate::sys::describe_mount(&root)
    );
    let mut phases = Vec::new();
    if wants("weir") || wants("classic") {
        let server = crate::http_bench::Server::start(&root.join("weir"))?;
        prefill_weir(&server, records, args.value_bytes)?;
        if wants("weir") {
            eprintln!("[weir-bench] weir queue over HTTP ...");
            phases.push(weir_phase(&server, records, args)?);
        }
        if wants("classic") {
            eprintln!("[weir-bench] classic consumer group ...");
            phases.push(classic_phase(&server, records, args)?);
        }
    }
    if wants("redis") {
        eprintln!("[weir-bench] redis streams ...");
        let dir = root.join("redis");
        std::fs::create_dir(&dir)?;
        phases.push(redis_phase(&dir, records, args)?);
    }
    print(&phases);
    Ok(())
}

fn print(phases: &[Phase]) {
    let width = phases.iter().map(|p| p.name.len()).max().unwrap_or(5);
    println!(
        "\n{:<width$}  {:>11}  {:>9}  {:>9}  note",
        "phase", "records/s", "p50 µs", "p99 µs"
    );
    for p in phases {
        let (p50, p99) = p.latency.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |l| (format!("{:.0}", l.p50_us), format!("{:.0}", l.p99_us)),
        );
        println!(
            "{:<width$}  {:>11.0}  {:>9}  {:>9}  {}",
            p.name,
            p.per_sec(),
            p50,
            p99,
            p.note
        );
    }
    let rate = |prefix: &str| {
        phases
            .iter()
            .find(|p| p.name.starts_with(prefix))
            .map(Phase::per_sec)
    };
    if let Some(weir) = rate("weir") {
        if let Some(redis) = rate("redis") {
            let r = weir / redis;
            let met = if r >= 2.0 { "met" } else { "NOT met" };
            println!("queues weir/redis-streams ratio: {r:.2} (goal >= 2: {met})");
        }
        if let Some(classic) = rate("classic") {
            println!("queues weir/classic-group ratio: {:.2}", weir / classic);
        }
    }
}

fn prefill_weir(
    server: &crate::http_bench::Server,
    records: u64,
    value_bytes: usize,
) -> anyhow::Result<()> {
    let client = weir_client::Client::new(&server.http.to_string())?;
    client.create_topic(&CreateTopic {
        name: TOPIC.to_owned(),
        partitions: Some(1),
        configs: Default::default(),
    })?;
    let mut i = 0;
    while i < records {
        let n = (records - i).min(PREFILL_BATCH as u64);
        let batch = (i..i + n)
            .map(|j| ProduceRecord {
                key: None,
                value: Some(serde_json::Value::String(value(value_bytes, j))),
                value_base64: None,
                headers: Default::default(),
                partition: Some(0),
            })
            .collect();
        client.produce(TOPIC, &Produce { records: batch })?;
        i += n;
    }
    Ok(())
}

/// The data directory's sync rounds so far.
fn rounds(server: &crate::http_bench::Server) -> u64 {
    server.broker.data_dir().sync_stats().rounds
}

fn weir_phase(
    server: &crate::http_bench::Server,
    records: u64,
    args: &QueuesArgs,
) -> anyhow::Result<Phase> {
    let address = server.http.to_string();
    let acked = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Samples::default());
    let rounds_before = rounds(server);
    let start = Instant::now();
    let threads: Vec<_> = (0..args.consumers)
        .map(|c| {
            let (address, acked, samples) = (address.clone(), acked.clone(), samples.clone());
            let (claim_max, ack_batch) = (args.claim_max, args.ack_batch);
            std::thread::spawn(move || -> anyhow::Result<()> {
                let client = weir_client::Client::new(&address)?;
                let consumer = format!("c{c}");
                let mut lat = Vec::new();
                while acked.load(Ordering::Relaxed) < records {
                    if start.elapsed() > PHASE_MAX {
                        bail!("weir: not every record settled within {PHASE_MAX:?}");
                    }
                    let claimed = client.claim(
                        GROUP,
                        TOPIC,
                        &ClaimRequest {
                            consumer: consumer.clone(),
                            max: Some(claim_max),
                            lock_ms: Some(60_000),
                            wait_ms: Some(100),
                            start: Some("earliest".to_owned()),
                            delivery_limit: None,
                        },
                    )?;
                    for some in claimed.records.chunks(ack_batch) {
                        let t = Instant::now();
                        if let [r] = some {
                            client.ack(
                                GROUP,
                                TOPIC,
                                &RecordAck {
                                    consumer: consumer.clone(),
                                    partition: r.partition,
                                    offset: r.offset,
                                    reject: false,
                                    lock_ms: None,
                                },
                            )?;
                        } else {
                            let settled = client.settle(
                                GROUP,
                                TOPIC,
                                &SettleRequest {
                                    consumer: consumer.clone(),
                                    partition: 0,
                                    offsets: some.iter().map(|r| r.offset).collect(),
                                    action: None,
                                },
                            )?;
                            anyhow::ensure!(
                                settled.not_held.is_empty(),
                                "weir: not held {:?}",
                                settled.not_held
                            );
                        }
                        lat.push(t.elapsed().as_nanos() as u64);
                        acked.fetch_add(some.len() as u64, Ordering::Relaxed);
                    }
                }
                samples.add(lat);
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("consumer threads do not panic")?;
    }
    let elapsed = start.elapsed();
    let rounds = rounds(server) - rounds_before;
    let acked = acked.load(Ordering::Relaxed);
    anyhow::ensure!(acked == records, "weir: {acked} acks for {records} records");
    Ok(Phase {
        name: format!("weir queue ({} consumers, HTTP)", args.consumers),
        records,
        elapsed,
        latency: Arc::into_inner(samples).and_then(Samples::latency),
        note: format!(
            "{rounds} sync rounds, {:.1} acks per round",
            records as f64 / rounds.max(1) as f64
        ),
    })
}

fn redis_phase(dir: &std::path::Path, records: u64, args: &QueuesArgs) -> anyhow::Result<Phase> {
    let server = crate::redis_baseline::RedisServer::start(dir)?;
    let port = server.port;
    let mut admin = Resp::connect(port)?;
    let mut i = 0;
    while i < records {
        let n = (records - i).min(PREFILL_BATCH as u64);
        for j in i..i + n {
            let v = value(args.value_bytes, j);
            admin.send(&[b"XADD", b"jobs", b"*", b"v", v.as_bytes()])?;
        }
        admin.flush()?;
        for _ in 0..n {
            admin.read()?.ok()?;
        }
        i += n;
    }
    admin.call(&[b"XGROUP", b"CREATE", b"jobs", GROUP.as_bytes(), b"0"])?;
    let acked = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Samples::default());
    let start = Instant::now();
    let threads: Vec<_> = (0..args.consumers)
        .map(|c| {
            let (acked, samples) = (acked.clone(), samples.clone());
            let count = args.claim_max.to_string();
            let ack_batch = args.ack_batch;
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = Resp::connect(port)?;
                let consumer = format!("c{c}");
                let mut lat = Vec::new();
                loop {
                    let reply = conn.call(&[
                        b"XREADGROUP",
                        b"GROUP",
                        GROUP.as_bytes(),
                        consumer.as_bytes(),
                        b"COUNT",
                        count.as_bytes(),
                        b"STREAMS",
                        b"jobs",
                        b">",
                    ])?;
                    // [[stream, [[id, [field, value]], ...]]], or nil once
                    // every entry was delivered.
                    let Some(stream) = reply.items()?.first() else {
                        break;
                    };
                    let entries = stream.items()?.get(1).context("no entries")?.items()?;
                    if entries.is_empty() {
                        break;
                    }
                    for some in entries.chunks(ack_batch) {
                        let mut command: Vec<&[u8]> = vec![b"XACK", b"jobs", GROUP.as_bytes()];
                        for e in some {
                            command
                                .push(e.items()?.first().context("an entry without id")?.bytes()?);
                        }
                        let t = Instant::now();
                        let n = conn.call(&command)?;
                        lat.push(t.elapsed().as_nanos() as u64);
                        anyhow::ensure!(
                            n == crate::resp::Reply::Int(some.len() as i64),
                            "XACK answered {n:?}"
                        );
                        acked.fetch_add(some.len() as u64, Ordering::Relaxed);
                    }
                }
                samples.add(lat);
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("consumer threads do not panic")?;
    }
    let elapsed = start.elapsed();
    let acked = acked.load(Ordering::Relaxed);
    anyhow::ensure!(
        acked == records,
        "redis: {acked} acks for {records} records"
    );
    let version = admin
        .call(&[b"INFO", b"server"])
        .ok()
        .and_then(|r| {
            r.bytes()
                .ok()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("redis_version:").map(str::to_owned))
        })
        .unwrap_or_else(|| "?".to_owned());
    drop(admin);
    server.stop()?;
    Ok(Phase {
        name: format!("redis-streams ({} consumers)", args.consumers),
        records,
        elapsed,
        latency: Arc::into_inner(samples).and_then(Samples::latency),
        note: format!(
            "redis {version}, appendfsync always, XREADGROUP + XACK of {}",
            if args.ack_batch == 1 {
                "each entry".to_owned()
            } else {
                format!("up to {} ids", args.ack_batch)
            }
        ),
    })
}

fn classic_phase(
    server: &crate::http_bench::Server,
    records: u64,
    args: &QueuesArgs,
) -> anyhow::Result<Phase> {
    let bootstrap = server.kafka.to_string();
    // The next offset to consume once every record is committed.
    let committed = Arc::new(AtomicI64::new(0));
    let first_delivery = Arc::new(Mutex::new(None::<Instant>));
    let finished = Arc::new(Mutex::new(None::<Instant>));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Samples::default());
    let begun = Instant::now();
    let threads: Vec<_> = (0..args.consumers)
        .map(|c| {
            let (committed, first, finished, stop, samples) = (
                committed.clone(),
                first_delivery.clone(),
                finished.clone(),
                stop.clone(),
                samples.clone(),
            );
            let bootstrap = bootstrap.clone();
            let ack_batch = args.ack_batch as i64;
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("group.id", "classic")
                    .set("client.id", format!("c{c}"))
                    .set("auto.offset.reset", "earliest")
                    .set("enable.auto.commit", "false")
                    .create()
                    .context("create consumer")?;
                consumer.subscribe(&[TOPIC])?;
                let mut lat = Vec::new();
                let mut failed = 0;
                while !stop.load(Ordering::Relaxed) {
                    if begun.elapsed() > PHASE_MAX {
                        bail!("classic: not every record committed within {PHASE_MAX:?}");
                    }
                    let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
                        continue;
                    };
                    let msg = msg?;
                    first
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert_with(Instant::now);
                    // With --ack-batch, every that many records (and the
                    // last) are committed.
                    let next = msg.offset() + 1;
                    if next % ack_batch != 0 && next < records as i64 {
                        continue;
                    }
                    let t = Instant::now();
                    // A commit refused during a rebalance is redone by the
                    // partition's next owner, which starts at the last one
                    // that succeeded.
                    if consumer.commit_message(&msg, CommitMode::Sync).is_err() {
                        failed += 1;
                        continue;
                    }
                    lat.push(t.elapsed().as_nanos() as u64);
                    committed.fetch_max(msg.offset() + 1, Ordering::Relaxed);
                    if committed.load(Ordering::Relaxed) >= records as i64 {
                        finished
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert_with(Instant::now);
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                samples.add(lat);
                Ok(failed)
            })
        })
        .collect();
    let mut failed = 0;
    for t in threads {
        failed += t.join().expect("consumer threads do not panic")?;
    }
    let end = finished
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .context("classic: not every record committed")?;
    let first = first_delivery
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .context("classic: nothing delivered")?;
    Ok(Phase {
        name: format!("classic group ({} consumers)", args.consumers),
        records,
        elapsed: end - first,
        latency: Arc::into_inner(samples).and_then(Samples::latency),
        note: format!(
            "sync commit every {} record(s), one member busy; join {:.1} s not counted; {failed} commits refused",
            args.ack_batch,
            (first - begun).as_secs_f64()
        ),
    })
}
