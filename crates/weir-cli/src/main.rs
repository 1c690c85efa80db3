//! The `weir` command: parses arguments and hands off to the library crates.
//!
//! `weir serve` runs the server; `weir outbox relay` relays a service's
//! outbox; `weir log` works on a data directory
//! directly (while no server has it open: the directory is locked); `weir
//! topic|produce|consume|stream|group|dlq|saga|trace|schema` talk to a
//! running server over its HTTP API; `weir user` manages SASL users in a data
//! directory (locked, like `weir log`); `weir demo` runs the SDK's demonstrations.

mod acl_cli;
mod dlq_cli;
mod group_cli;
mod outbox_cli;
mod queue_cli;
mod reload;
mod remote;
mod saga_cli;
mod schema_cli;
mod security_args;
mod serve;
mod subscription_cli;
mod telemetry;
mod trace_cli;
mod user_cli;

/// Keeps hostile element counts in Kafka frames from aborting the server
/// (see `weir_kafka::GuardedAllocator`).
#[global_allocator]
static ALLOCATOR: weir_kafka::GuardedAllocator = weir_kafka::GuardedAllocator;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use weir_log::batch::{self, BatchBuilder};
use weir_log::{DataDir, DirConfig, FsyncPolicy, LogConfig};

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "Weir: a durable event log, event store and the patterns on top"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: the embedded store and the Kafka listener.
    // Boxed: its many options would make every other variant as large.
    Serve(Box<serve::ServeArgs>),
    /// Inspect and write partition logs in a data directory.
    #[command(subcommand)]
    Log(LogCommand),
    /// Create, list, describe and delete topics on a running server.
    Topic(remote::TopicArgs),
    /// Produce each line of standard input as a record.
    Produce(remote::ProduceArgs),
    /// Print a topic's records.
    Consume(remote::ConsumeArgs),
    /// Append to, read, follow and delete event streams.
    Stream(remote::StreamArgs),
    /// List, describe, reset and delete consumer groups.
    Group(group_cli::GroupArgs),
    /// List dead-letter topics, show dead letters, replay them.
    Dlq(dlq_cli::DlqArgs),
    /// Claim, ack, nack and extend queue records; list pending; autoclaim.
    Queue(queue_cli::QueueArgs),
    /// Persistent subscriptions of the event store on a running server.
    Subscription(subscription_cli::SubscriptionArgs),
    /// Add, list and remove the ACLs of a running server (the Kafka
    /// listener's and the HTTP API's).
    Acl(acl_cli::AclArgs),
    /// Print one correlation's timeline (a request, a saga) as a tree by
    /// causation: time, type, stream@version and short id of each event,
    /// indented under the event that caused it.
    Trace(trace_cli::TraceArgs),
    /// List sagas, show one, resume a parked one.
    Saga(saga_cli::SagaArgs),
    /// Register, list, show, test and delete schemas in a running
    /// server's schema registry; its compatibility levels and modes.
    Schema(schema_cli::SchemaArgs),
    /// Run a demonstration built on the SDK.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// A service's transactional outbox: relay its rows to a topic or to
    /// streams.
    #[command(subcommand)]
    Outbox(outbox_cli::OutboxCommand),
    /// Add, list and remove SASL users (SCRAM credentials) in a data
    /// directory, while no server has it open.
    User(user_cli::UserArgs),
}

#[derive(Debug, Subcommand)]
enum DemoCommand {
    /// The event-sourced bank account: accounts, transfers, interest, an
    /// overdraft refused; prints the balances now, a balance as of a past
    /// date and a statement. Embedded (in this process) by default; with
    /// --server, against a running `weir serve`.
    Bank {
        /// Keep the demo's data in this (new or empty) directory instead of
        /// a temporary one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run against the `weir serve` whose HTTP API is at this address
        /// (host:port): the same code over the remote backend. The server
        /// may hold other events: this run's accounts get a fresh suffix.
        #[arg(long, value_name = "ADDR", conflicts_with = "data_dir")]
        server: Option<String>,
    },
    /// The order saga: place order, reserve stock, charge payment, create
    /// shipment, a failure compensating what came before; run by
    /// orchestration and by choreography over the same four services,
    /// printing each order's timeline and the effects in each service's
    /// database. Embedded by default; with --server, against a running
    /// `weir serve`.
    Orders {
        /// Keep the store and the services' databases in this directory
        /// (an interrupted run resumes when run again on it).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run against the `weir serve` whose HTTP API is at this address.
        #[arg(long, value_name = "ADDR", conflicts_with = "data_dir")]
        server: Option<String>,
        /// Run one order by one style only (with --style).
        #[arg(long, requires = "style")]
        order_id: Option<String>,
        /// `orchestration` or `choreography` (with --order-id).
        #[arg(long, value_parser = ["orchestration", "choreography"], requires = "order_id")]
        style: Option<String>,
        /// The step that fails for that order: reserve, charge or ship.
        #[arg(long, value_parser = ["reserve", "charge", "ship"], requires = "order_id")]
        fail_at: Option<String>,
        /// For crash tests: abort the process right after this effect is
        /// first committed (place, reserve, charge, ship, refund, release,
        /// cancel, cancel-shipment, confirm).
        #[arg(long, hide = true, requires = "order_id")]
        crash_at: Option<String>,
    },
    /// The document pipeline: uploads through processing, classification,
    /// analytics, an email notification and a search index, first as a
    /// synchronous call chain, then event-driven on Weir (each step a
    /// consumer service); then an email outage (the backlog drains when it
    /// recovers) and a poison document (dead-lettered, then replayed).
    /// Prints the side-by-side latency table. Runs on a `weir serve` in this
    /// process by default; with --server, against a running one.
    Docs {
        /// Run against the `weir serve` whose HTTP API is at this address
        /// (host:port); its Kafka listener is --kafka. Topics and groups of
        /// this run get a fresh suffix.
        #[arg(long, value_name = "ADDR")]
        server: Option<String>,
        /// The Kafka listener of --server.
        #[arg(
            long,
            value_name = "ADDR",
            default_value = "127.0.0.1:9092",
            requires = "server"
        )]
        kafka: String,
        /// How long the email service takes per email, in ms.
        #[arg(long, default_value_t = 30_000)]
        email_delay_ms: u64,
        /// How long the email service is down in the outage phase, in ms.
        #[arg(long, default_value_t = 10_000)]
        outage_ms: u64,
        /// Uploads in the event-driven run (and again during the outage).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(2..=1000))]
        uploads: u16,
        /// Uploads through the synchronous chain, all at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
        sync_uploads: u16,
    },
}

#[derive(Debug, Args)]
struct DirArgs {
    /// The data directory.
    #[arg(long, env = "WEIR_DATA_DIR", default_value = "./weir-data")]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// List the logs with their offsets and sizes.
    List(DirArgs),
    /// Print records of a log: offset, timestamp, key and value.
    Dump {
        #[command(flatten)]
        dir: DirArgs,
        /// Log name.
        log: String,
        /// First offset to print (default: the log's start).
        #[arg(long)]
        from: Option<i64>,
        /// Most records to print.
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Append each line of standard input as one record; print each line's
    /// offset once it is acknowledged.
    Append {
        #[command(flatten)]
        dir: DirArgs,
        /// Log name (created if missing).
        log: String,
        /// `always`, `never`, or `interval:MS`.
        #[arg(long, default_value = "always")]
        fsync: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A demo's output is its report; the store's opening notes would only
    // interleave with it.
    let default_level = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info",
    };
    let (format, otlp_endpoint) = match &cli.command {
        Command::Serve(args) => (args.log_format, args.otlp_endpoint.clone()),
        _ => (telemetry::LogFormat::Text, None),
    };
    // Dropped when main returns: flushes the spans not yet exported.
    let _telemetry = match telemetry::init(telemetry::Settings {
        default_level,
        format,
        otlp_endpoint,
    }) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("weir: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let (result, api) = match cli.command {
        Command::Serve(args) => (serve::run(*args), false),
        Command::Log(cmd) => (run_log(cmd), false),
        Command::Demo(DemoCommand::Bank { data_dir, server }) => {
            (run_demo_bank(data_dir, server), false)
        }
        Command::Demo(DemoCommand::Orders {
            data_dir,
            server,
            order_id,
            style,
            fail_at,
            crash_at,
        }) => (
            run_demo_orders(data_dir, server, order_id, style, fail_at, crash_at),
            false,
        ),
        Command::Demo(DemoCommand::Docs {
            server,
            kafka,
            email_delay_ms,
            outage_ms,
            uploads,
            sync_uploads,
        }) => {
            let run = |kafka: String, http: String| {
                let config = weir::demo::docs::DocsConfig {
                    email_delay: Duration::from_millis(email_delay_ms),
                    outage: Duration::from_millis(outage_ms),
                    uploads: usize::from(uploads),
                    sync_uploads: usize::from(sync_uploads),
                    ..weir::demo::docs::DocsConfig::new(kafka, http)
                };
                weir::demo::docs::run(&config, &mut std::io::stdout().lock())
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            };
            let result = match server {
                Some(http) => run(kafka, http),
                None => (|| {
                    let dir = tempfile::tempdir()?;
                    let server = serve::InProcess::start(dir.path())?;
                    run(server.kafka.to_string(), server.http.to_string())
                })(),
            };
            (result, false)
        }
        Command::Topic(args) => (remote::run_topic(args), true),
        Command::Produce(args) => (remote::run_produce(args), true),
        Command::Consume(args) => (remote::run_consume(args), true),
        Command::Stream(args) => (remote::run_stream(args), true),
        Command::Group(args) => (group_cli::run_group(args), true),
        Command::Dlq(args) => (dlq_cli::run_dlq(args), true),
        Command::Queue(args) => (queue_cli::run_queue(args), true),
        Command::Subscription(args) => (subscription_cli::run_subscription(args), true),
        Command::Acl(args) => (acl_cli::run_acl(args), true),
        Command::Trace(args) => (trace_cli::run_trace(args), true),
        Command::Saga(args) => (saga_cli::run_saga(args), true),
        Command::Schema(args) => (schema_cli::run_schema(args), true),
        Command::Outbox(cmd) => (outbox_cli::run(cmd), false),
        Command::User(args) => (user_cli::run(args), false),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A closed pipe (`weir consume ... | head`) is not a failure.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = if api { remote::exit_code(&e) } else { 1 };
            std::process::ExitCode::from(code)
        }
    }
}

fn run_demo_orders(
    data_dir: Option<PathBuf>,
    server: Option<String>,
    order_id: Option<String>,
    style: Option<String>,
    fail_at: Option<String>,
    crash_at: Option<String>,
) -> anyhow::Result<()> {
    use weir::demo::orders::{self, Order, Style};
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let (client, services) = match (&server, &data_dir) {
        (Some(address), _) => (weir::Client::connect(address)?, tmp.path().join("services")),
        (None, dir) => {
            let dir = dir.clone().unwrap_or_else(|| tmp.path().to_owned());
            let client = weir::Client::open_with(
                &dir,
                weir::ClientConfig {
                    read_models_dir: Some(orders::services_dir(&dir).join("read-models")),
                    ..weir::ClientConfig::default()
                },
            )?;
            (client, orders::services_dir(&dir))
        }
    };
    let mut out = std::io::stdout().lock();
    match order_id {
        None => {
            orders::run_demo(&client, &services, &mut out)?;
        }
        Some(id) => {
            let style = match style.as_deref() {
                Some("choreography") => Style::Choreography,
                _ => Style::Orchestration,
            };
            let order = Order {
                id,
                sku: "lamp".to_owned(),
                quantity: 1,
                amount_cents: 4900,
                fail_at,
            };
            orders::run(&client, &services, style, &[order], crash_at, &mut out)?;
        }
    }
    Ok(())
}

fn run_demo_bank(data_dir: Option<PathBuf>, server: Option<String>) -> anyhow::Result<()> {
    if let Some(address) = server {
        weir::demo::bank::run_demo_remote(&address, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = data_dir.unwrap_or_else(|| tmp.path().to_owned());
    weir::demo::bank::run_demo(&dir, &mut std::io::stdout().lock())?;
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub(crate) fn parse_fsync(s: &str) -> anyhow::Result<FsyncPolicy> {
    Ok(match s {
        "always" => FsyncPolicy::Always,
        "never" => FsyncPolicy::Never,
        _ => match s.strip_prefix("interval:").map(str::parse) {
            Some(Ok(ms)) => FsyncPolicy::IntervalMs(ms),
            _ => bail!("invalid --fsync {s:?}: use always, never or interval:MS"),
        },
    })
}

fn open_dir(args: &DirArgs) -> anyhow::Result<DataDir> {
    DataDir::open(&args.data_dir, DirConfig::default())
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))
}

/// Logs opened by the CLI keep everything: retention runs in the server.
fn cli_config() -> LogConfig {
    LogConfig {
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn run_log(cmd: LogCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        LogCommand::List(args) => {
            let dir = open_dir(&args)?;
            writeln!(
                out,
                "{:<40} {:>12} {:>12} {:>14} {:>8}",
                "LOG", "START", "END", "BYTES", "SEGMENTS"
            )?;
            for name in dir.list_logs()? {
                let log = dir.open_log(&name, cli_config())?;
                writeln!(
                    out,
                    "{:<40} {:>12} {:>12} {:>14} {:>8}",
                    name,
                    log.start_offset(),
                    log.end_offset(),
                    log.size_bytes(),
                    log.segment_count()
                )?;
            }
        }
        LogCommand::Dump {
            dir,
            log,
            from,
            max,
        } => {
            let data = open_dir(&dir)?;
            if !data.list_logs()?.contains(&log) {
                bail!("no log named {log:?} in {}", dir.data_dir.display());
            }
            let log = data.open_log(&log, cli_config())?;
            let mut offset = from.unwrap_or_else(|| log.start_offset());
            let mut printed = 0;
            while printed < max {
                let read = log.read(offset, 1024 * 1024)?;
                if read.bytes.is_empty() {
                    break;
                }
                for (header, range) in batch::validate_all(&read.bytes)? {
                    if header.compression() != 0 {
                        writeln!(
                            out,
                            "{}..={} compressed batch (codec {})",
                            header.base_offset,
                            header.last_offset(),
                            header.compression()
                        )?;
                        continue;
                    }
                    for r in batch::records(&read.bytes[range])?
                        .iter()
                        .filter(|r| r.offset >= offset)
                    {
                        if printed == max {
                            break;
                        }
                        let show = |b: Option<&[u8]>| {
                            b.map_or("null".into(), |b| String::from_utf8_lossy(b).into_owned())
                        };
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{}",
                            r.offset,
                            r.timestamp,
                            show(r.key),
                            show(r.value)
                        )?;
                        printed += 1;
                    }
                }
                offset = read.next_offset;
            }
        }
        LogCommand::Append { dir, log, fsync } => {
            let config = LogConfig {
                fsync: parse_fsync(&fsync)?,
                ..cli_config()
            };
            let data = open_dir(&dir)?;
            let log = data.open_log(&log, config)?;
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let now = weir_log::Clock::now_ms(&weir_log::SystemClock);
                let mut b = BatchBuilder::new(now);
                b.push(now, None, Some(line.as_bytes()), &[]);
                let info = log.append(&mut b.build())?;
                writeln!(out, "{}", info.base_offset)?;
                out.flush()?;
            }
            data.close()?;
        }
    }
    Ok(())
}
