//! `weir-bench transactions`: transactional produce throughput through
//! librdkafka against the in-process broker (as `weir-bench produce`
//! starts it), with transactions of 100 and of 1,000 records, against
//! non-transactional idempotent produce of the same records in the same
//! run (goal: ≥ 0.7 of it at 1,000 records per transaction). Each phase
//! has `--producers` producers (acks=all, `--linger-ms`, 5 by default),
//! each on its own thread, sending to a fresh topic of 6 partitions; a
//! transactional one commits every `n` records (`commit_transaction`
//! waits for its records' delivery, so transactions of one producer do
//! not overlap). Afterwards every partition must be stable (no
//! transaction left open) and hold the records plus at most one marker
//! per partition and transaction.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use weir_groups::GroupsConfig;
use weir_log::SyncStats;

use crate::log_bench::Rng;
use crate::produce_bench::{PARTITIONS, Server};
use crate::report::{self, Row};
use crate::sys;

/// Value bytes of every record.
const VALUE_BYTES: usize = 1024;
/// Distinct random values each producer cycles through.
const VALUES_PER_PRODUCER: usize = 64;
/// How long a send may wait on a full queue, or a commit or flush last,
/// before the run fails.
const STALL: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct TxnArgs {
    /// Records each phase produces [default: 200000, with --quick 4000]
    #[arg(long)]
    records: Option<u64>,
    /// Producers per phase, each on its own thread with its own connection
    /// (and transactional id) [default: 4, with --quick 2]
    #[arg(long)]
    producers: Option<usize>,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Rounds of the three phases, one after the other, so that a busy
    /// machine weighs on all of them alike; the summary is each phase's
    /// median [default: 3, with --quick 1]
    #[arg(long)]
    rounds: Option<usize>,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
    /// librdkafka debug contexts for the producers (its `debug` setting,
    /// e.g. `eos,protocol`), to see where a transaction's time goes
    #[arg(long)]
    client_debug: Option<String>,
    /// librdkafka's `linger.ms` for every phase's producers (how long a
    /// batch waits for more records); the same for all phases
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
}

/// Delivery reports of one producer: how many succeeded, the first error.
#[derive(Debug, Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {
    /// librdkafka's log (what `--client-debug` asks for), timestamped.
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!("{:.6} rdkafka {fac}: {message}", now.as_secs_f64());
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
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

/// A phase: its name, topic, and records per transaction (`None`: plain
/// idempotent produce).
struct Phase {
    name: &'static str,
    per_txn: Option<u64>,
}

const PHASES: [Phase; 3] = [
    Phase {
        name: "idempotent",
        per_txn: None,
    },
    Phase {
        name: "txn-100",
        per_txn: Some(100),
    },
    Phase {
        name: "txn-1000",
        per_txn: Some(1_000),
    },
];

fn producer(
    bootstrap: &str,
    transactional_id: Option<String>,
    (debug, linger_ms): (Option<&str>, u32),
) -> anyhow::Result<BaseProducer<Deliveries>> {
    let mut config = rdkafka::ClientConfig::new();
    if let Some(debug) = debug {
        config
            .set("debug", debug)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        // A few of librdkafka's 1 MB batches, as `weir-bench produce`.
        .set("queue.buffering.max.kbytes", (4 * 1024).to_string())
        .set("message.timeout.ms", "60000");
    if let Some(id) = &transactional_id {
        config
            .set("transactional.id", id)
            .set("transaction.timeout.ms", "60000");
    }
    let producer: BaseProducer<Deliveries> = config
        .create_with_context(Deliveries::default())
        .context("create a producer")?;
    if transactional_id.is_some() {
        producer
            .init_transactions(STALL)
            .context("init_transactions")?;
    }
    Ok(producer)
}

/// Sends `n` records (`key-<i>`, spread over the partitions), committing
/// every `per_txn` of them when transactional, and waits for all.
fn send_all(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    values: &[Vec<u8>],
    n: u64,
    per_txn: Option<u64>,
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(32);
    for j in 0..n {
        if per_txn.is_some_and(|t| j % t == 0) {
            producer.begin_transaction().context("begin_transaction")?;
        }
        key.clear();
        let _ = write!(key, "key-{j}");
        let value = &values[j as usize % values.len()];
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(value.as_slice());
        let stalled = Instant::now();
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                    if stalled.elapsed() > STALL {
                        bail!("queue full for {STALL:?}");
                    }
                }
                Err((e, _)) => return Err(e).context("send"),
            }
        }
        producer.poll(Duration::ZERO);
        if per_txn.is_some_and(|t| (j + 1) % t == 0 || j + 1 == n) {
            producer
                .commit_transaction(STALL)
                .context("commit_transaction")?;
        }
    }
    producer.flush(STALL).context("flush")
}

/// Runs round `round` of one phase on a fresh topic: its row.
fn phase(
    server: &Server,
    p: &Phase,
    round: usize,
    (records, producers, client): (u64, usize, (Option<&str>, u32)),
    rng: &mut Rng,
) -> anyhow::Result<Row> {
    let topic = format!("bench-{}-{round}", p.name);
    let created = server
        .broker
        .create_topic(&topic, PARTITIONS as i64, 1, &[], false)
        .with_context(|| format!("create topic {topic}"))?;
    let bootstrap = server.addr.to_string();
    let mut clients = Vec::with_capacity(producers);
    for i in 0..producers {
        let n = records / producers as u64 + u64::from((i as u64) < records % producers as u64);
        let id = p.per_txn.map(|_| format!("{topic}-{i}"));
        let producer = producer(&bootstrap, id, client)?;
        // Connected, with the topic's metadata, before the clock starts.
        producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .context("producer metadata")?;
        let mut values = vec![vec![0u8; VALUE_BYTES]; VALUES_PER_PRODUCER];
        for v in &mut values {
            rng.fill(v);
        }
        clients.push((producer, values, n));
    }
    let barrier = Barrier::new(producers + 1);
    let data = server.broker.data_dir();
    let (elapsed, before, after) = std::thread::scope(|s| -> anyhow::Result<_> {
        let mut handles = Vec::with_capacity(producers);
        for (i, (producer, values, n)) in clients.iter().enumerate() {
            let (barrier, topic) = (&barrier, topic.as_str());
            let handle = std::thread::Builder::new()
                .name(format!("producer-{i}"))
                .spawn_scoped(s, move || {
                    barrier.wait();
                    send_all(producer, topic, values, *n, p.per_txn)
                        .with_context(|| format!("{}: producer {i}", p.name))
                })
                .context("spawn a producer thread")?;
            handles.push(handle);
        }
        let before = data.sync_stats();
        barrier.wait();
        let start = Instant::now();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a producer thread panicked"))??;
        }
        Ok((start.elapsed(), before, data.sync_stats()))
    })?;
    let mut txns = 0;
    for (producer, _, n) in &clients {
        let d = producer.context();
        let failed = d.failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!(
                "{}: {failed} records not delivered; first error: {}",
                p.name,
                d.first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_deref()
                    .unwrap_or("?")
            );
        }
        anyhow::ensure!(
            d.delivered.load(Ordering::Relaxed) == *n,
            "{}: {} of {n} records reported delivered",
            p.name,
            d.delivered.load(Ordering::Relaxed)
        );
        txns += p.per_txn.map_or(0, |t| n.div_ceil(t));
    }
    drop(clients);
    // Every transaction ended (the partitions are stable) and the
    // partitions hold the records and the markers, nothing else.
    let mut stored = 0;
    for partition in 0..PARTITIONS as i32 {
        let log = created.partition(partition)?;
        let high = log.high_watermark();
        let stable = created.last_stable_offset(partition)?;
        anyhow::ensure!(
            stable == high,
            "{topic} [{partition}]: stable up to {stable} of {high}"
        );
        stored += (high - log.start_offset()) as u64;
    }
    let markers = stored.saturating_sub(records);
    anyhow::ensure!(
        stored >= records && markers <= txns * PARTITIONS as u64,
        "{topic} holds {stored} offsets for {records} records in {txns} transactions"
    );
    let syncs = SyncStats {
        rounds: after.rounds - before.rounds,
        data_syncs: after.data_syncs - before.data_syncs,
        dir_syncs: after.dir_syncs - before.dir_syncs,
    };
    Ok(Row {
        phase: match p.per_txn {
            None => format!("{} ({producers} producers)", p.name),
            Some(_) => format!("{} ({producers} producers, {txns} txns)", p.name),
        },
        records,
        bytes: records * VALUE_BYTES as u64,
        fsyncs: syncs.data_syncs + syncs.dir_syncs,
        elapsed,
        latency: None,
    })
}

pub fn run(args: &TxnArgs) -> anyhow::Result<()> {
    let records = args
        .records
        .unwrap_or(if args.quick { 4_000 } else { 200_000 });
    let producers = args.producers.unwrap_or(if args.quick { 2 } else { 4 });
    anyhow::ensure!(records > 0, "--records must be at least 1");
    anyhow::ensure!(producers > 0, "--producers must be at least 1");
    let (scratch, root) = sys::scratch_dir(&args.dir, "weir-bench-transactions.")?;
    let (_, librdkafka_version) = rdkafka::util::get_rdkafka_version();
    println!(
        "weir-bench transactions: scratch {} on {}; {records} records of {VALUE_BYTES} B values per phase, {producers} producers (librdkafka {librdkafka_version}), topics of {PARTITIONS} partitions; {} logical CPUs",
        root.display(),
        sys::describe_mount(&root),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
    let server = Server::start(&root.join("weir"), GroupsConfig::default())?;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // rows[phase][round]
    let mut rows: Vec<Vec<Row>> = PHASES.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (i, p) in PHASES.iter().enumerate() {
            eprintln!(
                "[weir-bench] round {}/{rounds}, {}: {producers} producers sending {records} records ...",
                round + 1,
                p.name
            );
            let row = phase(
                &server,
                p,
                round,
                (
                    records,
                    producers,
                    (args.client_debug.as_deref(), args.linger_ms),
                ),
                &mut rng,
            )?;
            rows[i].push(row);
        }
    }
    server.stop()?;
    drop(scratch);

    println!();
    println!(
        "produce, acks=all, linger.ms={}, fsync=always (MB = 10^6 bytes of record values)",
        args.linger_ms
    );
    let mut all: Vec<Row> = Vec::with_capacity(rounds * PHASES.len());
    for round in 0..rounds {
        for phase_rows in &rows {
            let mut row = phase_rows[round].clone();
            row.phase = format!("{} [round {}]", row.phase, round + 1);
            all.push(row);
        }
    }
    report::print_table(&all);
    // Each phase's median round by throughput.
    let medians: Vec<Row> = rows
        .iter()
        .map(|r| {
            let mut sorted = r.clone();
            sorted.sort_by(|a, b| a.records_per_sec().total_cmp(&b.records_per_sec()));
            sorted.swap_remove(sorted.len() / 2)
        })
        .collect();
    println!();
    println!("median of {rounds} round(s):");
    report::print_table(&medians);
    println!();
    let base = medians[0].records_per_sec();
    for (i, p) in PHASES.iter().enumerate().skip(1) {
        let per_round: Vec<String> = (0..rounds)
            .map(|r| {
                format!(
                    "{:.2}",
                    rows[i][r].records_per_sec() / rows[0][r].records_per_sec()
                )
            })
            .collect();
        println!(
            "{} / idempotent: {:.2} (rounds: {}){}",
            p.name,
            medians[i].records_per_sec() / base,
            per_round.join(", "),
            if p.per_txn == Some(1_000) {
                "; goal >= 0.7"
            } else {
                ""
            }
        );
    }
    Ok(())
}
