//! `weir-bench sdk`: command handling through the SDK (load the aggregate,
//! decide, append with the expected version, retry on conflicts), embedded
//! in process, on one hot aggregate and spread over many aggregates, with
//! and without snapshots. Each command is durable when it returns
//! (`fsync=always`), so the baseline is the store's own append rate: the
//! same number of threads appending one event each with no load and no
//! decide (what command handling adds on top of the store).
//!
//! The hot aggregate starts with a history (`--history` events) so that
//! loading without snapshots reads all of it, as an aggregate that lived
//! for a while does. "load each" phases turn the repository's turns off,
//! so every command loads the aggregate (the cost snapshots cut); "kept
//! state" phases use the default, where a repository reuses the state it
//! last wrote.
//!
//! Every phase runs twice: embedded (the client opens the data directory)
//! and remote (the same code on `Client::connect` to a `weir serve` in this
//! process, over the HTTP API on loopback), each on a fresh directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use weir::{Aggregate, Causation, Client, Envelope, ExpectedVersion, RepositoryConfig};

use crate::report::{Latency, Row, print_event_table};
use crate::sys;

#[derive(Debug, Args)]
pub struct SdkArgs {
    /// Seconds each phase runs [default: 3, with --quick 0.3]
    #[arg(long)]
    seconds: Option<f64>,
    /// Aggregates of the spread phases
    #[arg(long, default_value_t = 10_000)]
    aggregates: u64,
    /// Threads sending commands in the concurrent phases
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Events the hot aggregate holds before its phases [default: 2000,
    /// with --quick 200]
    #[arg(long)]
    history: Option<u64>,
    /// Snapshot every this many events in the phases with snapshots
    #[arg(long, default_value_t = 100)]
    snapshot_every: u64,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Short phases, for a smoke test
    #[arg(long)]
    quick: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Added {
    pub n: u64,
}

weir::events! {
    #[derive(Debug, Clone)]
    pub enum CounterEvent {
        Added(Added) = "CounterAdded" v 1,
    }
}

/// A counter that refuses to pass a bound: one invariant to check per
/// command, as a real aggregate has.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
    events: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the counter would pass its bound")]
struct Bound;

impl Aggregate for Counter {
    const CATEGORY: &'static str = "counter";
    type Command = u64;
    type Event = CounterEvent;
    type Error = Bound;

    fn decide(&self, n: &u64) -> Result<Vec<CounterEvent>, Bound> {
        if self.total.checked_add(*n).is_none_or(|t| t > u64::MAX / 2) {
            return Err(Bound);
        }
        Ok(vec![CounterEvent::Added(Added { n: *n })])
    }

    fn apply(&mut self, CounterEvent::Added(a): &CounterEvent) {
        self.total += a.n;
        self.events += 1;
    }
}

/// Which aggregates a phase's commands go to.
#[derive(Debug, Clone, Copy)]
enum Target {
    Hot,
    Spread(u64),
}

#[derive(Debug, Clone, Copy)]
enum Work {
    /// `turns`: the repository's default (threads take turns on an
    /// aggregate and reuse the state they wrote); off, every command loads.
    Commands { snapshot_every: u64, turns: bool },
    /// The baseline: one-event appends with `Any`, no load, no decide.
    RawAppends,
}

struct Phase {
    name: String,
    target: Target,
    work: Work,
    threads: usize,
}

pub fn run(args: &SdkArgs) -> anyhow::Result<()> {
    let seconds = args.seconds.unwrap_or(if args.quick { 0.3 } else { 3.0 });
    anyhow::ensure!(
        seconds > 0.0 && seconds <= 600.0,
        "--seconds must be in (0, 600]"
    );
    anyhow::ensure!(
        (1..=256).contains(&args.threads),
        "--threads must be 1 to 256"
    );
    anyhow::ensure!(
        (1..=10_000_000).contains(&args.aggregates),
        "--aggregates must be 1 to 10000000"
    );
    let history = args.history.unwrap_or(if args.quick { 200 } else { 2_000 });
    anyhow::ensure!(history <= 1_000_000, "--history is at most 1000000");
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("weir-bench-sdk.")
        .tempdir_in(&args.dir)?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "weir-bench sdk: embedded and remote, scratch {} on {}; {cpus} logical CPUs; {seconds:.2} s per phase; hot aggregate with {history} events of history; snapshots every {} events where on",
        scratch.path().display(),
        sys::describe_mount(scratch.path()),
        args.snapshot_every,
    );
    let loads = |snapshot_every| Work::Commands {
        snapshot_every,
        turns: false,
    };
    let kept = |snapshot_every| Work::Commands {
        snapshot_every,
        turns: true,
    };
    let t = args.threads;
    let n = args.aggregates;
    let every = args.snapshot_every;
    let phases = [
        (
            "store append, 1 thread (baseline)",
            Target::Hot,
            Work::RawAppends,
            1,
        ),
        (
            "hot aggregate, 1 thread, load each, no snapshots",
            Target::Hot,
            loads(0),
            1,
        ),
        (
            "hot aggregate, 1 thread, load each, snapshots",
            Target::Hot,
            loads(every),
            1,
        ),
        (
            "hot aggregate, 1 thread, kept state",
            Target::Hot,
            kept(every),
            1,
        ),
        (
            &*format!("hot aggregate, {t} threads, kept state"),
            Target::Hot,
            kept(every),
            t,
        ),
        (
            &*format!("store append, {t} threads (baseline)"),
            Target::Spread(n),
            Work::RawAppends,
            t,
        ),
        (
            &*format!("{n} aggregates, {t} threads, no snapshots"),
            Target::Spread(n),
            kept(0),
            t,
        ),
        (
            &*format!("{n} aggregates, {t} threads, snapshots"),
            Target::Spread(n),
            kept(every),
            t,
        ),
    ]
    .map(|(name, target, work, threads)| Phase {
        name: name.to_owned(),
        target,
        work,
        threads,
    });
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for remote in [false, true] {
        for (i, phase) in phases.iter().enumerate() {
            let dir = scratch.path().join(format!("phase-{i}-{remote}"));
            // The server (remote) lives as long as the phase's client.
            let (client, _server) = if remote {
                let server = crate::http_bench::Server::start(&dir)?;
                (Client::connect(&server.http.to_string())?, Some(server))
            } else {
                (Client::open(&dir)?, None)
            };
            if matches!(phase.target, Target::Hot) {
                seed_history(&client, history)?;
            }
            let mode = if remote { "remote" } else { "embedded" };
            let (mut row, note) = run_phase(&client, phase, Duration::from_secs_f64(seconds))?;
            row.phase = format!("{mode}: {}", row.phase);
            rows.push(row);
            notes.extend(note.map(|n| format!("  {mode}: {}", n.trim_start())));
        }
    }
    print_event_table(&rows);
    for note in notes {
        println!("{note}");
    }
    let ratio =
        |a: usize, b: usize| rows[a].records_per_sec() / rows[b].records_per_sec().max(1e-9);
    println!(
        "sdk/store 1-thread ratio (hot aggregate, kept state / raw appends): {:.2}",
        ratio(3, 0)
    );
    println!(
        "sdk/store {t}-thread ratio ({n} aggregates with snapshots / raw appends): {:.2}",
        ratio(7, 5)
    );
    println!(
        "snapshot speed-up when every command loads the hot aggregate: {:.2}x",
        ratio(2, 1)
    );
    let remote = phases.len();
    println!(
        "remote/embedded ratio, hot aggregate, 1 thread, kept state: {:.2}",
        ratio(remote + 3, 3)
    );
    println!(
        "remote/embedded ratio, {n} aggregates, {t} threads, snapshots: {:.2}",
        ratio(remote + 7, 7)
    );
    println!(
        "remote sdk/store {t}-thread ratio ({n} aggregates with snapshots / raw appends over HTTP): {:.2}",
        ratio(remote + 7, remote + 5)
    );
    Ok(())
}

/// Gives the hot aggregate its history, 1,000 events per append.
fn seed_history(client: &Client, history: u64) -> anyhow::Result<()> {
    let mut left = history;
    let causation = Causation::new();
    while left > 0 {
        let batch = left.min(1_000);
        let events = (0..batch)
            .map(|_| {
                Envelope::new(&CounterEvent::Added(Added { n: 1 }), "/bench", &causation)
                    .map(|e| e.with_subject("hot"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        client.append("counter-hot", ExpectedVersion::Any, &events)?;
        left -= batch;
    }
    Ok(())
}

fn run_phase(
    client: &Client,
    phase: &Phase,
    length: Duration,
) -> anyhow::Result<(Row, Option<String>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    // One repository for all threads, as a service has: its threads take
    // turns on an aggregate instead of racing.
    let (snapshot_every, turns) = match phase.work {
        Work::Commands {
            snapshot_every,
            turns,
        } => (snapshot_every, turns),
        Work::RawAppends => (0, true),
    };
    let repo = client.repository::<Counter>(RepositoryConfig {
        snapshot_every,
        serialize_in_process: turns,
        attempts_max: 1_000,
        ..RepositoryConfig::default()
    });
    let handles: Vec<_> = (0..phase.threads)
        .map(|thread| {
            let client = client.clone();
            let repo = repo.clone();
            let stop = stop.clone();
            let attempts = attempts.clone();
            let (target, work) = (phase.target, phase.work);
            std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
                let mut latencies = Vec::new();
                // A cheap per-thread sequence spreads commands over the
                // aggregates without a shared counter.
                let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (thread as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = match target {
                        Target::Hot => "hot".to_owned(),
                        Target::Spread(n) => format!("c{}", x % n),
                    };
                    let began = Instant::now();
                    match work {
                        Work::Commands { .. } => {
                            let done = repo.execute(&id, &1)?;
                            attempts.fetch_add(u64::from(done.attempts), Ordering::Relaxed);
                        }
                        Work::RawAppends => {
                            let e = Envelope::new(
                                &CounterEvent::Added(Added { n: 1 }),
                                "/bench",
                                &Causation::new(),
                            )?;
                            client.append(&repo.stream(&id), ExpectedVersion::Any, &[e])?;
                        }
                    }
                    latencies.push(began.elapsed().as_nanos() as u64);
                }
                Ok(latencies)
            })
        })
        .collect();
    std::thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("a bench thread panicked"))??,
        );
    }
    let elapsed = start.elapsed();
    let commands = all.len() as u64;
    let note = matches!(phase.work, Work::Commands { .. }).then(|| {
        format!(
            "  {}: {:.2} tries per command",
            phase.name,
            attempts.load(Ordering::Relaxed) as f64 / commands.max(1) as f64
        )
    });
    Ok((
        Row {
            phase: phase.name.clone(),
            records: commands,
            bytes: 0,
            fsyncs: 0,
            elapsed,
            latency: Latency::from_ns(all),
        },
        note,
    ))
}
