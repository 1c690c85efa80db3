//! `weir outbox relay`: runs the SDK's outbox relay as its own process,
//! from a service's SQLite or PostgreSQL outbox to a Kafka topic or to
//! event-store streams on a running `weir serve`, until SIGTERM or SIGINT.
//! Prints `relaying FROM to TO` once the outbox is open, and the totals
//! when it stops.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use weir::outbox::{Relay, RelayConfig, Source, Target};

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Publish an outbox's rows in order per aggregate, at least once, to a
    /// topic (--to-topic, --kafka) or to one stream per aggregate
    /// (--to-stream-prefix, --server); rows are marked published once
    /// acknowledged.
    Relay(RelayArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true)))]
#[command(group(ArgGroup::new("target").required(true)))]
pub struct RelayArgs {
    /// The service's SQLite database holding the outbox.
    #[arg(long, value_name = "PATH", group = "source")]
    sqlite: Option<PathBuf>,
    /// The service's PostgreSQL database holding the outbox (a URL such as
    /// postgres://user@host:5432/db, or key=value pairs).
    #[arg(
        long,
        value_name = "URL",
        group = "source",
        env = "WEIR_OUTBOX_POSTGRES"
    )]
    postgres: Option<String>,
    /// Publish to this Kafka topic (keyed by aggregate id) on --kafka.
    #[arg(long, value_name = "TOPIC", group = "target", requires = "kafka")]
    to_topic: Option<String>,
    /// The Kafka bootstrap servers for --to-topic.
    #[arg(long, value_name = "ADDR")]
    kafka: Option<String>,
    /// Append to the stream PREFIX<aggregate id> of each aggregate in the
    /// store of --server.
    #[arg(long, value_name = "PREFIX", group = "target", requires = "server")]
    to_stream_prefix: Option<String>,
    /// The HTTP API (host:port) of the weir serve whose store gets the
    /// streams.
    #[arg(long, value_name = "ADDR")]
    server: Option<String>,
    /// Most rows per round.
    #[arg(long, default_value_t = RelayConfig::default().batch_rows_max)]
    batch_rows_max: usize,
    /// SQLite: the lease a relay holds on the outbox, in ms; a standby
    /// relay takes over once it expired.
    #[arg(long, default_value_t = RelayConfig::default().lease_ms)]
    lease_ms: u64,
    /// The longest wait between retries while the target or the database
    /// is down, in ms.
    #[arg(long, default_value_t = RelayConfig::default().backoff_ms_max)]
    backoff_ms_max: u64,
}

pub fn run(cmd: OutboxCommand) -> anyhow::Result<()> {
    let OutboxCommand::Relay(args) = cmd;
    let (source, from) = match (args.sqlite, args.postgres) {
        (Some(path), _) => {
            let from = path.display().to_string();
            (Source::Sqlite(path), from)
        }
        (None, Some(url)) => (Source::Postgres(url), "PostgreSQL".to_owned()),
        (None, None) => unreachable!("clap requires a source"),
    };
    let (target, to) = match (args.to_topic, args.to_stream_prefix) {
        (Some(topic), _) => {
            let kafka = args.kafka.expect("clap requires --kafka");
            let to = format!("topic {topic} at {kafka}");
            (Target::topic(&kafka, &topic), to)
        }
        (None, Some(prefix)) => {
            let server = args.server.expect("clap requires --server");
            let client = weir::Client::connect(&server)
                .with_context(|| format!("connecting to weir serve at {server}"))?;
            let to = format!("streams {prefix}* at {server}");
            (Target::streams(client, &prefix), to)
        }
        (None, None) => unreachable!("clap requires a target"),
    };
    let config = RelayConfig {
        batch_rows_max: args.batch_rows_max,
        lease_ms: args.lease_ms,
        backoff_ms_max: args
            .backoff_ms_max
            .max(RelayConfig::default().backoff_ms_min),
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(source, target, config)
        .with_context(|| format!("opening the outbox of {from}"))?;
    println!("relaying {from} to {to}");
    let stats = relay.run_until_signal()?;
    println!(
        "stopped: {} rows published ({} found already published), {} rounds, {} failed, {} on standby",
        stats.published, stats.reconciled, stats.rounds, stats.failed_rounds, stats.standby_rounds
    );
    Ok(())
}
