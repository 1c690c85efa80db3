//! `weir-bench compaction`: the log cleaner's throughput (MB of segments
//! cleaned per second) and what it costs producers: the p99 latency of
//! durable single-record produces to another topic of the same data
//! directory while a pass cleans a compacted topic, against the same
//! producer alone, in one run on the disk holding `--dir` (goal: p99 at
//! most 1.5× with the cleaner running). The broker runs in this process;
//! the cleaner is `Broker::clean_compacted`, as `weir serve` runs it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use weir_broker::compact::CleanerLimits;
use weir_broker::{Broker, BrokerConfig};
use weir_log::batch::BatchBuilder;
use weir_log::{DataDir, DirConfig, Throttle};

use crate::report::{self, Latency, MIB};

/// Records per batch while filling the compacted topic, and their value.
const FILL_RECORDS: usize = 500;
const FILL_VALUE_BYTES: usize = 200;
/// The producer's record: one per produce, durable before the next.
const PRODUCE_VALUE_BYTES: usize = 512;

#[derive(Debug, Args)]
pub struct CompactionArgs {
    /// Bytes written to the compacted topic before it is cleaned (KiB/MiB/
    /// GiB suffixes) [default: 256MiB, with --quick 32MiB]
    #[arg(long, value_parser = report::parse_bytes)]
    bytes: Option<u64>,
    /// Distinct keys the compacted topic's records cycle through
    /// [default: 20000]
    #[arg(long, default_value_t = 20_000)]
    keys: u64,
    /// The cleaner's I/O limit in bytes per second, as
    /// `--log-cleaner-io-max-bytes-per-second` [default: none]
    #[arg(long, value_parser = report::parse_bytes)]
    io_max_bytes_per_second: Option<u64>,
    /// How long the producer runs alone, in seconds [default: 5, with
    /// --quick 2]
    #[arg(long)]
    alone_secs: Option<u64>,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Small sizes, for a smoke run
    #[arg(long)]
    quick: bool,
}

pub fn run(args: &CompactionArgs) -> anyhow::Result<()> {
    let bytes = args
        .bytes
        .unwrap_or(if args.quick { 32 * MIB } else { 256 * MIB });
    let alone = Duration::from_secs(args.alone_secs.unwrap_or(if args.quick { 2 } else { 5 }));
    let (_scratch, root) = crate::sys::scratch_dir(&args.dir, "weir-bench-compaction.")?;
    let broker = Arc::new(Broker::open(
        DataDir::open(&root, DirConfig::default())?,
        BrokerConfig::default(),
    )?);
    broker.create_topic(
        "compacted",
        1,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "16777216"),
            ("max.message.bytes", "1048588"),
        ],
        false,
    )?;
    broker.create_topic("load", 1, 1, &[], false)?;

    eprintln!(
        "filling the compacted topic with {} MiB over {} keys",
        bytes / MIB,
        args.keys
    );
    let mut written = 0u64;
    let mut n = 0u64;
    let value = vec![b'v'; FILL_VALUE_BYTES];
    while written < bytes {
        let mut b = BatchBuilder::new(now_ms());
        for _ in 0..FILL_RECORDS {
            // A fixed stride through the keys: every key is rewritten once
            // per `keys` records, so most of the log is superseded.
            let key = format!("key-{:08}", (n * 7_919) % args.keys.max(1));
            b.push(now_ms(), Some(key.as_bytes()), Some(&value), &[]);
            n += 1;
        }
        let mut batch = b.build();
        written += batch.len() as u64;
        broker.produce("compacted", 0, &mut batch)?;
    }

    let (alone_ns, _) = produce_while(&broker, |started| started.elapsed() >= alone);
    let cleaning = Arc::new(AtomicBool::new(true));
    let cleaner = {
        let (broker, cleaning) = (broker.clone(), cleaning.clone());
        let throttle = Throttle::new(args.io_max_bytes_per_second);
        std::thread::spawn(move || {
            let started = Instant::now();
            let summary = broker.clean_compacted(&CleanerLimits::default(), &throttle);
            let took = started.elapsed();
            cleaning.store(false, Ordering::Release);
            (summary, took)
        })
    };
    let (during_ns, _) = produce_while(&broker, |_| !cleaning.load(Ordering::Acquire));
    let (summary, took) = cleaner.join().expect("the cleaner thread");
    anyhow::ensure!(
        summary.partitions_cleaned == 1,
        "the pass did not run: {summary:?}"
    );

    let alone = Latency::from_ns(alone_ns.clone()).context("no produce measured alone")?;
    let during = Latency::from_ns(during_ns.clone()).context("no produce during cleaning")?;
    let cleaned_mb_s = summary.bytes_before as f64 / took.as_secs_f64() / 1e6;
    println!();
    println!(
        "cleaner: {:.1} MB of segments in {:.2} s = {:.1} MB/s cleaned, {:.1} MB left, {} records removed (io limit: {})",
        summary.bytes_before as f64 / 1e6,
        took.as_secs_f64(),
        cleaned_mb_s,
        summary.bytes_after as f64 / 1e6,
        summary.records_removed,
        args.io_max_bytes_per_second
            .map_or("none".to_owned(), |b| format!("{b} B/s")),
    );
    println!();
    println!("| producer (1 record, durable) | produces | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    for (label, ns, l) in [
        ("alone", &alone_ns, alone),
        ("during cleaning", &during_ns, during),
    ] {
        println!(
            "| {label} | {} | {:.0} | {:.0} |",
            ns.len(),
            l.p50_us,
            l.p99_us
        );
    }
    let ratio = during.p99_us / alone.p99_us;
    println!();
    println!(
        "p99 during cleaning / alone: {ratio:.2}× (goal ≤ 1.5×: {})",
        if ratio <= 1.5 { "met" } else { "missed" }
    );
    drop(broker);
    Ok(())
}

/// Durable single-record produces to `load`, one at a time, until `done`
/// says so; returns each one's latency in ns.
fn produce_while(broker: &Broker, done: impl Fn(Instant) -> bool) -> (Vec<u64>, Duration) {
    let started = Instant::now();
    let value = vec![b'p'; PRODUCE_VALUE_BYTES];
    let mut out = Vec::new();
    while !done(started) {
        let mut b = BatchBuilder::new(now_ms());
        b.push(now_ms(), Some(b"load"), Some(&value), &[]);
        let mut batch = b.build();
        let t = Instant::now();
        if broker.produce("load", 0, &mut batch).is_ok() {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    (out, started.elapsed())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
