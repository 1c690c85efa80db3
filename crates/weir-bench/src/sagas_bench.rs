//! `weir-bench sagas`: completed 4-step sagas per second through the SDK's
//! saga runner, with `--in-flight` sagas at once, embedded and against a
//! `weir serve` in this process, against the store's own single-event
//! append rate in the same run (each step costs at least one durable
//! append, so the ratio is steps per second over appends per second; goal
//! ≥ 0.5). The steps' actions do nothing, so the runner and the store are
//! what is measured.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use weir::saga::{RunnerConfig, SagaDefinition, SagaRunner};
use weir::{Causation, Client, Envelope, ExpectedVersion};

#[derive(Debug, Args)]
pub struct SagasArgs {
    /// Sagas to complete per phase [default: 5000, with --quick 300]
    #[arg(long)]
    sagas: Option<u64>,
    /// Sagas in flight at once
    #[arg(long, default_value_t = 1000)]
    in_flight: u64,
    /// The runner's workers, and the baseline's appending threads
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Directory on the disk to measure (a scratch directory is made in it
    /// and deleted afterwards)
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Small sizes, for a smoke test
    #[arg(long)]
    quick: bool,
    /// Measure only this store (embedded or remote) [default: both]
    #[arg(long, value_parser = ["embedded", "remote"])]
    only: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Input {
    n: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Appended {
    n: u64,
}
weir::event!(Appended = "BenchAppended" v 1);

const STEPS: [&str; 4] = ["reserve", "charge", "ship", "notify"];

/// Single-event appends with `threads` threads, each to its own streams
/// with an exact expected version, for `count` events in all: events/s.
fn appends(client: &Client, threads: usize, count: u64) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let next = next.clone();
                s.spawn(move || -> anyhow::Result<()> {
                    let mut version = None;
                    let stream = format!("bench-{t}");
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        let e = Envelope::new(&Appended { n: 0 }, "/bench", &Causation::new())?;
                        let expected =
                            version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                        let r = client.append(&stream, expected, &[e])?;
                        version = Some(r.last_version);
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("an appender panicked"))??;
        }
        Ok(())
    })?;
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// Completes `count` sagas with at most `in_flight` at once: sagas/s.
fn sagas(client: &Client, workers: usize, count: u64, in_flight: u64) -> anyhow::Result<f64> {
    let mut d = SagaDefinition::<Input>::new("bench");
    for step in STEPS {
        d = d.step(step, |_, i: &Input| Ok(i.n), |_, _: &Input| Ok(()));
    }
    let runner = SagaRunner::new(
        client,
        RunnerConfig {
            name: "bench".into(),
            workers,
            ..RunnerConfig::default()
        },
    )
    .with(d)?
    .start()?;
    // Sagas are started from as many threads as the runner has workers
    // (a start is a durable append too), keeping `in_flight` going.
    let start = Instant::now();
    let next = AtomicU64::new(0);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let starters: Vec<_> = (0..workers)
            .map(|_| {
                let (runner, next) = (&runner, &next);
                s.spawn(move || -> anyhow::Result<()> {
                    loop {
                        // Saga n starts once n + 1 - in_flight have
                        // finished, rounded up to a multiple of the
                        // starters so they wake together.
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= count {
                            return Ok(());
                        }
                        let need = (n + 1)
                            .saturating_sub(in_flight)
                            .next_multiple_of(workers as u64);
                        while runner.wait_finished(need, Duration::from_secs(1)) < need {
                            anyhow::ensure!(
                                start.elapsed() < Duration::from_secs(600),
                                "sagas stalled at {} of {count}",
                                runner.finished()
                            );
                        }
                        runner.start_saga("bench", &format!("s-{n}"), &Input { n })?;
                    }
                })
            })
            .collect();
        for h in starters {
            h.join()
                .map_err(|_| anyhow::anyhow!("a starter panicked"))??;
        }
        Ok(())
    })?;
    while runner.wait_finished(count, Duration::from_secs(1)) < count {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(600),
            "sagas stalled at {} of {count}",
            runner.finished()
        );
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    runner.stop();
    Ok(rate)
}

pub fn run(args: SagasArgs) -> anyhow::Result<()> {
    let count = args.sagas.unwrap_or(if args.quick { 300 } else { 5000 });
    let appends_count = count * 6;
    let scratch = tempfile::Builder::new()
        .prefix("weir-bench-sagas-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("scratch directory in {}", args.dir.display()))?;
    println!(
        "weir-bench sagas: {count} four-step sagas per phase, {} in flight, {} workers; baseline: {appends_count} single-event appends with {} threads, same store, same run",
        args.in_flight, args.workers, args.workers
    );
    println!(
        "\n{:<10} {:>14} {:>12} {:>14} {:>10}",
        "store", "appends/s", "sagas/s", "steps/s", "ratio"
    );
    for remote in [false, true] {
        let name = if remote { "remote" } else { "embedded" };
        if args.only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let dir = scratch.path().join(name);
        let (client, _server) = if remote {
            let server = crate::http_bench::Server::start(&dir)?;
            let client = Client::connect(&server.http.to_string())?;
            (client, Some(server))
        } else {
            (Client::open(&dir)?, None)
        };
        let base = appends(&client, args.workers, appends_count)?;
        let rate = sagas(&client, args.workers, count, args.in_flight)?;
        let steps = rate * STEPS.len() as f64;
        let ratio = steps / base;
        println!(
            "{:<10} {:>14.0} {:>12.0} {:>14.0} {:>10.2}  (goal >= 0.5: {})",
            name,
            base,
            rate,
            steps,
            ratio,
            if ratio >= 0.5 { "met" } else { "NOT met" }
        );
    }
    Ok(())
}
