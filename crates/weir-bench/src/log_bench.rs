//! `weir-bench log`: weir-log's durable append throughput and latency against
//! raw `pwrite`+`fdatasync` of the same bytes with as many syncs, its
//! sequential read against `pread` of the same segment files, and peak RSS
//! while appending, all in one run on the disk holding `--dir`.
//!
//! Append buffers are built before the clock starts and reused without a
//! copy: `Log::append` writes only the base offset and partition leader
//! epoch into a batch, fields outside the CRC, so a buffer appended once is
//! still a valid batch to append again.

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use weir_log::batch::BatchBuilder;
use weir_log::{DataDir, DirConfig, FsyncPolicy, Log, LogConfig, SyncStats};

use crate::raw::{LAYOUTS, Layout, RawFiles};
use crate::report::{self, GIB, Latency, MIB, Row, mib};
use crate::sys;

/// Value bytes of every record (records have no key and no headers).
const VALUE_BYTES: usize = 1024;
/// Bytes of distinct batch buffers built per phase (appends cycle through them).
const POOL_BYTES: usize = 8 * MIB as usize;
/// Phase (a): label and records per batch.
const SIZES: [(&str, usize); 3] = [("16KiB", 16), ("64KiB", 64), ("1MiB", 1024)];
/// Phase (a) whose ratio is the headline, and whose log the read test reads.
const HEADLINE_SIZE: &str = "64KiB";
/// Phase (b): appender threads, partitions (thread `i` appends to `p-{i % 6}`)
/// and records per batch.
const THREADS: usize = 8;
const PARTITIONS: usize = 6;
const MULTI_RECORDS: usize = 64;
/// Records per batch of the RSS phase.
const RSS_RECORDS: usize = 1024;
/// Bytes asked of each `Log::read` and of each `pread`.
const READ_BYTES: usize = 1024 * 1024;

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Bytes appended in each throughput phase (and written by each raw
    /// baseline); accepts KiB/MiB/GiB suffixes [default: 256MiB, with
    /// --quick 8MiB]
    #[arg(long, value_parser = report::parse_bytes)]
    bytes_per_phase: Option<u64>,
    /// Bytes appended while peak RSS is measured [default: 2GiB, with
    /// --quick 64MiB]
    #[arg(long, value_parser = report::parse_bytes)]
    rss_bytes: Option<u64>,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Each single-appender phase runs as this many slices, Weir and the raw
    /// baselines taking turns, so drift in the disk's speed hits all alike;
    /// the multi-appender phase uses a quarter as many, since each slice
    /// starts its threads afresh and ends with a ragged tail
    #[arg(long, default_value_t = 16)]
    reps: u64,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
}

/// The log configuration of every phase.
fn log_config() -> LogConfig {
    LogConfig {
        fsync: FsyncPolicy::Always,
        segment_bytes_max: GIB,
        batch_bytes_max: 2 * MIB as usize,
        retention_ms: None,
        retention_bytes: None,
        ..LogConfig::default()
    }
}

/// xorshift64*: record values are incompressible without a dependency.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One uncompressed batch of `records` records with 1 KiB random values.
fn build_batch(records: usize, rng: &mut Rng) -> Vec<u8> {
    let ts = now_ms();
    let mut batch = BatchBuilder::new(ts);
    let mut value = vec![0u8; VALUE_BYTES];
    for _ in 0..records {
        rng.fill(&mut value);
        batch.push(ts, None, Some(&value), &[]);
    }
    batch.build()
}

/// About `POOL_BYTES` of distinct batches (at least `min` of them). All have
/// the same length.
fn build_pool(records: usize, min: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let n = (POOL_BYTES / (records * VALUE_BYTES)).max(min).max(1);
    (0..n).map(|_| build_batch(records, rng)).collect()
}

/// Appends of `batch_len` bytes that stay within `bytes` (at least one).
fn appends_for(bytes: u64, batch_len: usize) -> u64 {
    (bytes / batch_len as u64).max(1)
}

fn add_stats(a: SyncStats, b: SyncStats) -> SyncStats {
    SyncStats {
        rounds: a.rounds + b.rounds,
        data_syncs: a.data_syncs + b.data_syncs,
        dir_syncs: a.dir_syncs + b.dir_syncs,
    }
}

fn stats_delta(before: SyncStats, after: SyncStats) -> SyncStats {
    SyncStats {
        rounds: after.rounds - before.rounds,
        data_syncs: after.data_syncs - before.data_syncs,
        dir_syncs: after.dir_syncs - before.dir_syncs,
    }
}

/// Appends, or raw writes, summed over the slices of a phase.
#[derive(Debug, Default)]
struct Totals {
    ops: u64,
    bytes: u64,
    fsyncs: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
}

impl Totals {
    fn add(
        &mut self,
        ops: u64,
        bytes: u64,
        fsyncs: u64,
        elapsed: Duration,
        latencies_ns: Vec<u64>,
    ) {
        self.ops += ops;
        self.bytes += bytes;
        self.fsyncs += fsyncs;
        self.elapsed += elapsed;
        self.latencies_ns.extend(latencies_ns);
    }

    fn row(self, phase: String, records_per_batch: usize) -> Row {
        Row {
            phase,
            records: self.ops * records_per_batch as u64,
            bytes: self.bytes,
            fsyncs: self.fsyncs,
            elapsed: self.elapsed,
            latency: Latency::from_ns(self.latencies_ns),
        }
    }
}

/// What Weir did in one timed slice.
#[derive(Debug)]
struct WeirRun {
    appends: u64,
    bytes: u64,
    syncs: SyncStats,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
}

/// Appends `n` batches from `pool` (cycling) to `log`, each `append` timed
/// (it returns once durable).
fn append_loop(log: &Log, pool: &mut [Vec<u8>], n: u64) -> anyhow::Result<(Vec<u64>, u64)> {
    let mut latencies_ns = Vec::with_capacity(n as usize);
    let mut bytes = 0u64;
    for i in 0..n {
        let k = i as usize % pool.len();
        let batch = &mut pool[k];
        let t = Instant::now();
        log.append(batch)
            .with_context(|| format!("append to {}", log.name()))?;
        latencies_ns.push(t.elapsed().as_nanos() as u64);
        bytes += batch.len() as u64;
    }
    Ok((latencies_ns, bytes))
}

/// One appender thread per pool (thread `t` appends to `logs[t % len]`),
/// `n` appends in all, started together; the clock runs from the start to
/// the last thread's end.
fn appenders(
    data: &DataDir,
    logs: &[Log],
    pools: &mut [Vec<Vec<u8>>],
    n: u64,
) -> anyhow::Result<WeirRun> {
    let threads = pools.len() as u64;
    let barrier = Barrier::new(pools.len() + 1);
    let before = data.sync_stats();
    let (elapsed, latencies_ns, bytes) = std::thread::scope(|s| -> anyhow::Result<_> {
        let handles: Vec<_> = pools
            .iter_mut()
            .enumerate()
            .map(|(t, pool)| {
                let log = &logs[t % logs.len()];
                let n = n / threads + u64::from((t as u64) < n % threads);
                let barrier = &barrier;
                std::thread::Builder::new()
                    .name(format!("appender-{t}"))
                    .spawn_scoped(s, move || {
                        barrier.wait();
                        append_loop(log, pool, n)
                    })
                    .context("spawn appender thread")
            })
            .collect::<anyhow::Result<_>>()?;
        barrier.wait();
        let start = Instant::now();
        let (mut all, mut bytes) = (Vec::with_capacity(n as usize), 0);
        for handle in handles {
            let (latencies, b) = handle
                .join()
                .map_err(|_| anyhow::anyhow!("an appender thread panicked"))??;
            all.extend(latencies);
            bytes += b;
        }
        Ok((start.elapsed(), all, bytes))
    })?;
    Ok(WeirRun {
        appends: n,
        bytes,
        syncs: stats_delta(before, data.sync_stats()),
        elapsed,
        latencies_ns,
    })
}

/// One durable-append phase: Weir and both raw baselines.
#[derive(Debug)]
struct Phase<'a> {
    /// Row label prefix, e.g. `a 64KiB`.
    label: String,
    weir_suffix: String,
    raw_suffix: String,
    records_per_batch: usize,
    logs: &'a [Log],
    /// One per appender thread.
    pools: Vec<Vec<Vec<u8>>>,
    /// The batches the raw baseline writes (the same bytes).
    raw_pool: &'a [Vec<u8>],
    /// Raw files written round robin.
    raw_files: usize,
    appends: u64,
}

/// What a phase measured.
#[derive(Debug)]
struct PhaseResult {
    weir: Row,
    raw: Vec<Row>,
    syncs: SyncStats,
}

impl PhaseResult {
    fn best_raw(&self) -> &Row {
        self.raw
            .iter()
            .max_by(|a, b| a.mb_per_sec().total_cmp(&b.mb_per_sec()))
            .expect("raw rows")
    }

    fn ratio(&self) -> f64 {
        self.weir.mb_per_sec() / self.best_raw().mb_per_sec()
    }
}

/// Runs a phase as `reps` interleaved slices: Weir appends a slice, then
/// each raw baseline writes the same slice with as many syncs as Weir made
/// (their order rotating), so drift in the disk's speed hits all
/// alike. Rows sum the slices.
fn durable_phase(
    data: &DataDir,
    raw_dir: &Path,
    mut phase: Phase<'_>,
    reps: u64,
) -> anyhow::Result<PhaseResult> {
    let batch_len = phase.raw_pool[0].len() as u64;
    let mut raws = LAYOUTS
        .iter()
        .map(|layout| RawFiles::create(raw_dir, *layout, phase.raw_files, phase.appends, batch_len))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut raw_totals: Vec<Totals> = LAYOUTS.iter().map(|_| Totals::default()).collect();
    let mut weir = Totals::default();
    let mut syncs = SyncStats::default();
    for r in 0..reps {
        let first = phase.appends * r / reps;
        let n = phase.appends * (r + 1) / reps - first;
        if n == 0 {
            continue;
        }
        let run = appenders(data, phase.logs, &mut phase.pools, n)?;
        let fsyncs = run.syncs.data_syncs + run.syncs.dir_syncs;
        syncs = add_stats(syncs, run.syncs);
        weir.add(
            run.appends,
            run.bytes,
            fsyncs,
            run.elapsed,
            run.latencies_ns,
        );
        // Rotate which baseline goes first, so none always follows Weir.
        for k in 0..raws.len() {
            let i = (k + r as usize) % raws.len();
            let out = raws[i].write(phase.raw_pool, first, n, fsyncs)?;
            raw_totals[i].add(n, out.bytes, out.fsyncs, out.elapsed, out.latencies_ns);
        }
    }
    for raw in raws {
        raw.remove()?;
    }
    let records = phase.records_per_batch;
    let raw_row = |totals: Totals, layout: Layout| {
        totals.row(
            format!("{} {}{}", phase.label, layout.name(), phase.raw_suffix),
            records,
        )
    };
    Ok(PhaseResult {
        weir: weir.row(
            format!("{} weir{}", phase.label, phase.weir_suffix),
            records,
        ),
        raw: raw_totals
            .into_iter()
            .zip(LAYOUTS)
            .map(|(totals, layout)| raw_row(totals, layout))
            .collect(),
        syncs,
    })
}

/// One timed sequential pass.
#[derive(Debug, Clone, Copy)]
struct ReadRun {
    bytes: u64,
    calls: u64,
    elapsed: Duration,
}

impl ReadRun {
    fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// Reads the whole log with `Log::read(offset, 1 MiB)`.
fn read_log(log: &Log) -> anyhow::Result<ReadRun> {
    let (mut offset, end) = (log.start_offset(), log.high_watermark());
    let (mut bytes, mut calls) = (0u64, 0u64);
    let start = Instant::now();
    while offset < end {
        let read = log
            .read(offset, READ_BYTES)
            .with_context(|| format!("read {} at {offset}", log.name()))?;
        anyhow::ensure!(
            read.next_offset > offset,
            "Log::read made no progress at offset {offset}"
        );
        bytes += read.bytes.len() as u64;
        calls += 1;
        offset = read.next_offset;
        black_box(&read.bytes);
    }
    Ok(ReadRun {
        bytes,
        calls,
        elapsed: start.elapsed(),
    })
}

/// Reads the log's segment data files (their batch bytes, not the
/// preallocated tail) with `pread` of 1 MiB into one reused buffer.
fn read_segment_files(log: &Log) -> anyhow::Result<ReadRun> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(log.dir())
        .with_context(|| format!("list {}", log.dir().display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    paths.sort();
    // Sealed segments are cut to their data; the active one (last) holds the
    // rest of the log's bytes, followed by preallocated zeros.
    let mut remaining = log.size_bytes();
    let mut files = Vec::with_capacity(paths.len());
    for path in &paths {
        let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
        let len = file.metadata()?.len().min(remaining);
        remaining -= len;
        files.push((file, len));
    }
    anyhow::ensure!(
        remaining == 0,
        "segment files hold less than the log's size"
    );
    let mut buf = vec![0u8; READ_BYTES];
    let (mut bytes, mut calls) = (0u64, 0u64);
    let start = Instant::now();
    for (file, len) in &files {
        let mut pos = 0;
        while pos < *len {
            let want = ((len - pos) as usize).min(READ_BYTES);
            let n = file.read_at(&mut buf[..want], pos)?;
            anyhow::ensure!(n > 0, "segment file shorter than expected");
            pos += n as u64;
            bytes += n as u64;
            calls += 1;
            black_box(&buf);
        }
    }
    Ok(ReadRun {
        bytes,
        calls,
        elapsed: start.elapsed(),
    })
}

/// Warm-cache sequential reads: each way twice, the second run counts.
fn read_phase(log: &Log) -> anyhow::Result<(ReadRun, ReadRun)> {
    let mut last = None;
    for _ in 0..2 {
        last = Some((read_log(log)?, read_segment_files(log)?));
    }
    Ok(last.expect("two runs"))
}

/// Peak RSS of the process while one appender appends `bytes` to one log,
/// reusing a single 1 MiB batch buffer.
#[derive(Debug)]
struct RssRun {
    row: Row,
    rss_before_kib: u64,
    peak_kib: u64,
}

fn rss_phase(data: &DataDir, bytes: u64, rng: &mut Rng) -> anyhow::Result<RssRun> {
    let mut pools = vec![vec![build_batch(RSS_RECORDS, rng)]];
    let n = appends_for(bytes, pools[0][0].len());
    let log = data.open_log("rss", log_config())?;
    let rss_before_kib = sys::status_kib("VmRSS")?;
    sys::reset_peak_rss()?;
    let run = appenders(data, std::slice::from_ref(&log), &mut pools, n)?;
    let peak_kib = sys::status_kib("VmHWM")?;
    drop(log);
    data.delete_log("rss")?;
    let mut totals = Totals::default();
    let fsyncs = run.syncs.data_syncs + run.syncs.dir_syncs;
    totals.add(
        run.appends,
        run.bytes,
        fsyncs,
        run.elapsed,
        run.latencies_ns,
    );
    Ok(RssRun {
        row: totals.row("rss 1MiB weir (1 log)".into(), RSS_RECORDS),
        rss_before_kib,
        peak_kib,
    })
}

fn sync_note(label: &str, appends: u64, syncs: SyncStats) -> String {
    format!(
        "{label}: {appends} appends, {} sync rounds, {} fdatasyncs + {} dir fsyncs ({:.2} appends per fdatasync, {:.2} fdatasyncs per round)",
        syncs.rounds,
        syncs.data_syncs,
        syncs.dir_syncs,
        appends as f64 / syncs.data_syncs.max(1) as f64,
        syncs.data_syncs as f64 / syncs.rounds.max(1) as f64,
    )
}

pub fn run(args: &LogArgs) -> anyhow::Result<()> {
    let phase_bytes = args
        .bytes_per_phase
        .unwrap_or(if args.quick { 8 * MIB } else { 256 * MIB });
    let rss_bytes = args
        .rss_bytes
        .unwrap_or(if args.quick { 64 * MIB } else { 2 * GIB });
    let reps = args.reps;
    anyhow::ensure!(reps > 0, "--reps must be at least 1");
    let multi_reps = (reps / 4).max(1);
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("weir-bench-data.")
        .tempdir_in(&args.dir)
        .with_context(|| format!("create a scratch directory in {}", args.dir.display()))?;
    let root = scratch.path().canonicalize()?;
    println!(
        "weir-bench log: scratch {} on {}; {:.0} MiB per phase (a: {reps} interleaved slices, b: {multi_reps}), {:.0} MiB rss phase; {} logical CPUs",
        root.display(),
        sys::describe_mount(&root),
        mib(phase_bytes),
        mib(rss_bytes),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    if sys::mount_of(&root).is_some_and(|m| m.fs_type == "tmpfs") {
        eprintln!(
            "[weir-bench] warning: {} is on tmpfs; fsync costs nothing there",
            root.display()
        );
    }
    let raw_dir = root.join("raw");
    std::fs::create_dir(&raw_dir)?;
    let data = DataDir::open(root.join("weir"), DirConfig::default())?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    let mut notes = Vec::new();

    // Peak RSS first, so nothing earlier raises the high-water mark.
    eprintln!("[weir-bench] rss: appending {:.0} MiB ...", mib(rss_bytes));
    let rss = rss_phase(&data, rss_bytes, &mut rng)?;
    rows.push(rss.row.clone());

    // (a) One appender, one log, three batch sizes.
    let mut headline = None;
    let mut reads = None;
    for (label, records) in SIZES {
        let pool = build_pool(records, 1, &mut rng);
        let batch_len = pool[0].len();
        let appends = appends_for(phase_bytes, batch_len);
        let name = format!("a-{label}");
        let log = data.open_log(&name, log_config())?;
        eprintln!(
            "[weir-bench] a {label}: {appends} appends of {batch_len} bytes, weir and raw ..."
        );
        let result = durable_phase(
            &data,
            &raw_dir,
            Phase {
                label: format!("a {label}"),
                weir_suffix: String::new(),
                raw_suffix: String::new(),
                records_per_batch: records,
                logs: std::slice::from_ref(&log),
                pools: vec![pool.clone()],
                raw_pool: &pool,
                raw_files: 1,
                appends,
            },
            reps,
        )?;
        notes.push(format!(
            "{} ({records} records of {VALUE_BYTES} B values = {batch_len} B per batch)",
            sync_note(&format!("a {label}"), appends, result.syncs)
        ));
        if label == HEADLINE_SIZE {
            headline = Some(result.ratio());
            eprintln!("[weir-bench] read: {label} log, Log::read vs pread ...");
            reads = Some(read_phase(&log)?);
        }
        ratios.push((
            format!("a {label}"),
            result.ratio(),
            result.best_raw().clone(),
        ));
        rows.push(result.weir);
        rows.extend(result.raw);
        drop(log);
        data.delete_log(&name)?;
    }

    // (b) THREADS appenders over PARTITIONS logs.
    let pool = build_pool(MULTI_RECORDS, THREADS, &mut rng);
    let batch_len = pool[0].len();
    let appends = appends_for(phase_bytes, batch_len);
    let names: Vec<String> = (0..PARTITIONS).map(|p| format!("p-{p}")).collect();
    let logs = names
        .iter()
        .map(|name| data.open_log(name, log_config()))
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "[weir-bench] b: {appends} appends of {batch_len} bytes by {THREADS} threads over {PARTITIONS} logs, weir and raw ..."
    );
    let result = durable_phase(
        &data,
        &raw_dir,
        Phase {
            label: "b 64KiB".into(),
            weir_suffix: format!(" {THREADS}thr/{PARTITIONS}logs"),
            raw_suffix: format!(" {PARTITIONS} files"),
            records_per_batch: MULTI_RECORDS,
            logs: &logs,
            pools: (0..THREADS)
                .map(|t| pool.iter().skip(t).step_by(THREADS).cloned().collect())
                .collect(),
            raw_pool: &pool,
            raw_files: PARTITIONS,
            appends,
        },
        multi_reps,
    )?;
    notes.push(format!(
        "{}; raw writes go round robin over {PARTITIONS} files from one thread",
        sync_note("b 64KiB", appends, result.syncs)
    ));
    ratios.push((
        format!("b 64KiB {THREADS}thr/{PARTITIONS}logs"),
        result.ratio(),
        result.best_raw().clone(),
    ));
    rows.push(result.weir);
    rows.extend(result.raw);
    drop(logs);
    for name in &names {
        data.delete_log(name)?;
    }
    data.close()?;
    drop(scratch);

    println!();
    println!(
        "durable appends (FsyncPolicy::Always; MB = 10^6 bytes; latency per append(), raw: per write + fdatasync when due)"
    );
    report::print_table(&rows);
    println!();
    for note in &notes {
        println!("{note}");
    }
    println!();
    println!("ratios (weir MB/s / best raw MB/s):");
    for (phase, ratio, best) in &ratios {
        println!(
            "  {phase}: {ratio:.2} (best raw: {} at {:.1} MB/s)",
            best.phase,
            best.mb_per_sec()
        );
    }
    println!();
    let (log_read, pread) = reads.context("the read phase did not run")?;
    println!(
        "sequential read of the a {HEADLINE_SIZE} log, warm cache, second run: Log::read(1 MiB) {:.1} MB/s ({} calls, {:.1} MiB), pread(1 MiB) {:.1} MB/s ({} calls, {:.1} MiB)",
        log_read.mb_per_sec(),
        log_read.calls,
        mib(log_read.bytes),
        pread.mb_per_sec(),
        pread.calls,
        mib(pread.bytes),
    );
    println!(
        "log/pread read throughput ratio: {:.2}",
        log_read.mb_per_sec() / pread.mb_per_sec()
    );
    println!(
        "RSS before the rss phase (binary, batch buffer, data directory): {:.1} MiB",
        rss.rss_before_kib as f64 / 1024.0
    );
    println!(
        "peak RSS while appending {:.0} MiB: {:.1} MiB",
        mib(rss.row.bytes),
        rss.peak_kib as f64 / 1024.0
    );
    println!(
        "log/raw durable throughput ratio: {:.2}",
        headline.context("the headline phase did not run")?
    );
    Ok(())
}
