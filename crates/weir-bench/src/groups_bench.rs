//! `weir-bench groups`: consumer groups through librdkafka against the
//! in-process broker.
//!
//! 1. **Rebalance**: `--members` - 1 consumers of one group (range
//!    assignor, heartbeat `--heartbeat-ms`) share a topic of
//!    `--partitions` partitions; then, `--rounds` times, one more member
//!    joins and the time until every member holds its share again is
//!    measured, and it leaves and the same is measured again. The baseline
//!    is the heartbeat interval: members learn of a rebalance from their
//!    next heartbeat, so no broker can do much better than one interval
//!    plus the join and sync round trips.
//! 2. **Group fetch**: the same records (1 KiB values on 6 partitions,
//!    written in process beforehand, so in the page cache) are read by one
//!    consumer assigned every partition, then by a group of
//!    `--group-members` members; the ratio of their throughputs, from the
//!    first record to the last, is the figure (goal ≥ 0.8).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use weir_groups::GroupsConfig;
use weir_log::batch::BatchBuilder;

use crate::produce_bench::Server;
use crate::report::mib;
use crate::sys;

const REBALANCE_TOPIC: &str = "rebalance";
const FETCH_TOPIC: &str = "fetch";
const FETCH_PARTITIONS: i32 = 6;
const VALUE_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 64;
const SESSION_TIMEOUT_MS: u32 = 6_000;
/// How long any wait may go on before the run fails.
const STALL: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct GroupsArgs {
    /// Partitions of the rebalance topic [default: 60]
    #[arg(long)]
    partitions: Option<usize>,
    /// Members of the group once the joining one is in [default: 6]
    #[arg(long)]
    members: Option<usize>,
    /// Join-and-leave rounds measured [default: 5, with --quick 2]
    #[arg(long)]
    rounds: Option<usize>,
    /// Members' heartbeat interval, in ms [default: 500]
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u32,
    /// Records read in the fetch comparison [default: 200000, with --quick
    /// 5000]
    #[arg(long)]
    records: Option<u64>,
    /// Members of the group in the fetch comparison [default: 3]
    #[arg(long, default_value_t = 3)]
    group_members: usize,
    /// Directory on the disk to use; a scratch directory is created in it
    /// and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
}

fn consumer_config(bootstrap: &str, group: &str, client: &str, heartbeat_ms: u32) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", client)
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", heartbeat_ms.to_string())
        .set("partition.assignment.strategy", "range")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    config
}

/// One group member on its own thread: polls until told to stop and
/// publishes how many partitions it holds.
struct Member {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

#[allow(clippy::too_many_arguments, reason = "one call per phase, all named")]
fn start_member(
    bootstrap: &str,
    topic: &'static str,
    group: &str,
    name: &str,
    heartbeat_ms: u32,
    held: Arc<AtomicUsize>,
    records: Arc<AtomicU64>,
    first_record: Arc<std::sync::OnceLock<Instant>>,
) -> anyhow::Result<Member> {
    let consumer: BaseConsumer = consumer_config(bootstrap, group, name, heartbeat_ms)
        .create()
        .context("create a group member")?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            consumer.subscribe(&[topic]).context("subscribe")?;
            // Asking for the assignment copies it; once per millisecond is
            // plenty and keeps the client's cost per record low.
            let mut checked = Instant::now();
            while !stopping.load(Ordering::Relaxed) {
                let idle = match consumer.poll(Duration::from_millis(20)) {
                    Some(Ok(_)) => {
                        first_record.get_or_init(Instant::now);
                        records.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                    Some(Err(e)) => bail!("member poll: {e}"),
                    None => true,
                };
                if idle || checked.elapsed() >= Duration::from_millis(1) {
                    held.store(consumer.assignment()?.count(), Ordering::Relaxed);
                    checked = Instant::now();
                }
            }
            held.store(0, Ordering::Relaxed);
            // Dropping the consumer closes it, which leaves the group.
            drop(consumer);
            Ok(())
        })
        .context("spawn a member thread")?;
    Ok(Member { stop, thread })
}

impl Member {
    fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("a member thread panicked"))?
    }
}

/// Waits until the members in `live` hold every partition between them,
/// each its even share (range over one topic: the floor or the ceiling).
fn wait_balanced(held: &[Arc<AtomicUsize>], live: usize, partitions: usize) -> anyhow::Result<()> {
    let (lo, hi) = (partitions / live, partitions.div_ceil(live));
    let start = Instant::now();
    loop {
        let counts: Vec<usize> = held.iter().map(|h| h.load(Ordering::Relaxed)).collect();
        let active = &counts[..live];
        if counts.iter().sum::<usize>() == partitions && active.iter().all(|&c| c >= lo && c <= hi)
        {
            return Ok(());
        }
        if start.elapsed() > STALL {
            bail!("the group did not settle in {STALL:?}: members hold {counts:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn rebalance_phase(
    server: &Server,
    partitions: usize,
    members: usize,
    rounds: usize,
    heartbeat_ms: u32,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    server
        .broker
        .create_topic(REBALANCE_TOPIC, partitions as i64, 1, &[], false)
        .context("create the rebalance topic")?;
    let bootstrap = server.addr.to_string();
    let held: Vec<Arc<AtomicUsize>> = (0..members).map(|_| Arc::default()).collect();
    let unused = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::OnceLock::new());
    let mut running = Vec::new();
    for (i, h) in held.iter().enumerate().take(members - 1) {
        running.push(start_member(
            &bootstrap,
            REBALANCE_TOPIC,
            "bench-rebalance",
            &format!("member-{i}"),
            heartbeat_ms,
            h.clone(),
            unused.clone(),
            first.clone(),
        )?);
    }
    wait_balanced(&held, members - 1, partitions)?;
    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let start = Instant::now();
        let joining = start_member(
            &bootstrap,
            REBALANCE_TOPIC,
            "bench-rebalance",
            &format!("joiner-{round}"),
            heartbeat_ms,
            held[members - 1].clone(),
            unused.clone(),
            first.clone(),
        )?;
        wait_balanced(&held, members, partitions)?;
        joins.push(start.elapsed());
        let start = Instant::now();
        joining.stop()?;
        wait_balanced(&held, members - 1, partitions)?;
        leaves.push(start.elapsed());
        eprintln!(
            "[weir-bench] round {round}: join {:.0} ms, leave {:.0} ms",
            joins[round].as_secs_f64() * 1e3,
            leaves[round].as_secs_f64() * 1e3
        );
    }
    for m in running {
        m.stop()?;
    }
    joins.sort();
    leaves.sort();
    Ok((joins, leaves))
}

/// Writes `records` records of 1 KiB values over the fetch topic's
/// partitions, straight into the broker.
fn fill(server: &Server, records: u64) -> anyhow::Result<()> {
    server
        .broker
        .create_topic(FETCH_TOPIC, i64::from(FETCH_PARTITIONS), 1, &[], false)
        .context("create the fetch topic")?;
    let value = vec![0x5a_u8; VALUE_BYTES];
    let mut written = 0u64;
    let mut partition = 0;
    while written < records {
        let n = (records - written).min(RECORDS_PER_BATCH as u64);
        let mut batch = BatchBuilder::new(0);
        for i in 0..n {
            let key = (written + i).to_be_bytes();
            batch.push(0, Some(&key), Some(&value), &[]);
        }
        server
            .broker
            .produce(FETCH_TOPIC, partition, &mut batch.build())
            .context("fill the fetch topic")?;
        written += n;
        partition = (partition + 1) % FETCH_PARTITIONS;
    }
    Ok(())
}

/// One consumer assigned every partition from offset 0: (time to the
/// first record, time from the first record to the last).
fn single_fetch(server: &Server, records: u64) -> anyhow::Result<(Duration, Duration)> {
    let consumer: BaseConsumer =
        consumer_config(&server.addr.to_string(), "bench-single", "single", 500)
            .create()
            .context("create the consumer")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..FETCH_PARTITIONS {
        assignment.add_partition_offset(FETCH_TOPIC, p, Offset::Offset(0))?;
    }
    let start = Instant::now();
    consumer.assign(&assignment)?;
    let (mut got, mut first, mut last) = (0u64, None, Instant::now());
    while got < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                first.get_or_insert_with(Instant::now);
                got += 1;
                last = Instant::now();
            }
            Some(Err(e)) => return Err(e).context("consume"),
            None if last.elapsed() > STALL && start.elapsed() > STALL => {
                bail!("single consumer: nothing for {STALL:?} after {got} of {records}")
            }
            None => {}
        }
    }
    let first = first.unwrap_or(start);
    Ok((first - start, last - first))
}

/// A group of `members` reads the topic: (time to the first record, time
/// from the first record to the last, records received in all).
fn group_fetch(
    server: &Server,
    records: u64,
    members: usize,
) -> anyhow::Result<(Duration, Duration, u64)> {
    let bootstrap = server.addr.to_string();
    let got = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::OnceLock::new());
    let start = Instant::now();
    let mut running = Vec::new();
    for i in 0..members {
        running.push(start_member(
            &bootstrap,
            FETCH_TOPIC,
            "bench-fetch",
            &format!("fetcher-{i}"),
            500,
            Arc::default(),
            got.clone(),
            first.clone(),
        )?);
    }
    let mut seen = (0, Instant::now());
    while got.load(Ordering::Relaxed) < records {
        let n = got.load(Ordering::Relaxed);
        if n != seen.0 {
            seen = (n, Instant::now());
        } else if seen.1.elapsed() > STALL {
            bail!("the group read nothing for {STALL:?} after {n} of {records}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let last = Instant::now();
    // Counted now: members that stay read again what a leaving one had
    // (nothing is committed), which is not redelivery while reading.
    let received = got.load(Ordering::Relaxed);
    for m in running {
        m.stop()?;
    }
    let first = *first.get().unwrap_or(&start);
    Ok((first - start, last - first, received))
}

pub fn run(args: &GroupsArgs) -> anyhow::Result<()> {
    let partitions = args.partitions.unwrap_or(60);
    let members = args.members.unwrap_or(6);
    let rounds = args.rounds.unwrap_or(if args.quick { 2 } else { 5 });
    let records = args
        .records
        .unwrap_or(if args.quick { 5_000 } else { 200_000 });
    anyhow::ensure!(members >= 2, "--members must be at least 2");
    anyhow::ensure!(
        partitions >= members,
        "--partitions must be at least --members"
    );
    anyhow::ensure!(
        rounds >= 1 && records >= 1 && args.group_members >= 1,
        "counts must be positive"
    );
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("weir-bench-groups.")
        .tempdir_in(&args.dir)
        .with_context(|| format!("create a scratch directory in {}", args.dir.display()))?;
    let root = scratch.path().canonicalize()?;
    let (_, librdkafka_version) = rdkafka::util::get_rdkafka_version();
    println!(
        "weir-bench groups: scratch {} on {}; librdkafka {librdkafka_version}; {} logical CPUs",
        root.display(),
        sys::describe_mount(&root),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    // Kafka's defaults, but a new group waits 500 ms (not 3 s) for more
    // members before its first generation.
    let groups = GroupsConfig {
        initial_rebalance_delay_ms: 500,
        ..GroupsConfig::default()
    };
    let server = Server::start(&root.join("weir"), groups)?;

    eprintln!(
        "[weir-bench] rebalance: {} members over {partitions} partitions, {rounds} rounds ...",
        members
    );
    let (joins, leaves) = rebalance_phase(&server, partitions, members, rounds, args.heartbeat_ms)?;
    eprintln!("[weir-bench] fetch: writing {records} records ...");
    fill(&server, records)?;
    eprintln!("[weir-bench] fetch: one consumer ...");
    let (single_wait, single) = single_fetch(&server, records)?;
    eprintln!("[weir-bench] fetch: a group of {} ...", args.group_members);
    let (group_wait, group, group_records) = group_fetch(&server, records, args.group_members)?;
    server.stop()?;
    drop(scratch);

    let heartbeat = Duration::from_millis(u64::from(args.heartbeat_ms));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!(
        "rebalance of a {members}-member group over {partitions} partitions (range assignor, heartbeat {} ms, session {SESSION_TIMEOUT_MS} ms); baseline: one heartbeat interval",
        args.heartbeat_ms
    );
    println!(
        "{:<26}  {:>8}  {:>8}  {:>12}",
        "event", "p50 ms", "max ms", "p50/heartbeat"
    );
    for (name, times) in [
        ("member joins → balanced", &joins),
        ("member leaves → balanced", &leaves),
    ] {
        let p50 = percentile(times, 50.0);
        println!(
            "{:<26}  {:>8.0}  {:>8.0}  {:>12.2}",
            name,
            ms(p50),
            ms(*times.last().expect("rounds >= 1")),
            p50.as_secs_f64() / heartbeat.as_secs_f64()
        );
    }
    let bytes = records * VALUE_BYTES as u64;
    let mbps = |d: Duration| bytes as f64 / d.as_secs_f64().max(1e-9) / 1e6;
    println!();
    println!(
        "fetch of {records} records ({:.0} MiB of values, 6 partitions, warm page cache), first record to last",
        mib(bytes)
    );
    println!("{:<26}  {:>9}  {:>16}", "reader", "MB/s", "to first rec ms");
    println!(
        "{:<26}  {:>9.1}  {:>16.0}",
        "one consumer (assign)",
        mbps(single),
        ms(single_wait)
    );
    println!(
        "{:<26}  {:>9.1}  {:>16.0}",
        format!("group of {}", args.group_members),
        mbps(group),
        ms(group_wait)
    );
    println!(
        "group/single = {:.2} (goal >= 0.8); the group received {group_records} records ({} more than written: redelivered across a rebalance)",
        single.as_secs_f64() / group.as_secs_f64().max(1e-9),
        group_records.saturating_sub(records)
    );
    Ok(())
}
