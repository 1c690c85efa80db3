//! `weir-bench`: benchmarks that report ratios against baselines measured in the same run.

mod log_bench;
mod raw;
mod report;
mod sys;

use clap::{Parser, Subcommand};

/// Weir's benchmarks; each reports a ratio against a baseline measured in
/// the same run on the same machine.
#[derive(Debug, Parser)]
#[command(name = "weir-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The durable partition log (weir-log): durable append throughput and
    /// latency against raw write+fdatasync, sequential read against pread,
    /// and peak memory while appending.
    Log(log_bench::LogArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Log(args) => log_bench::run(&args),
    }
}
