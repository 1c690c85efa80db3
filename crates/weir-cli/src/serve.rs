//! `weir serve`: one process with the embedded store and the Kafka
//! listener, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use weir_broker::{Broker, BrokerConfig};
use weir_kafka::ServerConfig;
use weir_log::{DataDir, DirConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The data directory.
    #[arg(long, env = "WEIR_DATA_DIR", default_value = "./weir-data")]
    data_dir: PathBuf,
    /// Address of the Kafka listener (port 0 picks a free port).
    #[arg(long, env = "WEIR_KAFKA_ADDR", default_value = "127.0.0.1:9092")]
    kafka_addr: SocketAddr,
    /// Host clients are told to connect to (default: the listener's).
    #[arg(long, env = "WEIR_ADVERTISED_HOST")]
    advertised_host: Option<String>,
    /// `always` (default), `never`, or `interval:MS`.
    #[arg(long, default_value = "always")]
    fsync: String,
    /// Partitions of topics created without a count.
    #[arg(long, default_value_t = 1)]
    default_partitions: u32,
    /// Refuse to create topics a client merely asks metadata for.
    #[arg(long)]
    no_auto_create_topics: bool,
    /// How often retention runs.
    #[arg(long, default_value_t = 60_000)]
    retention_check_ms: u64,
    /// Most client connections at once (more wait to be accepted).
    #[arg(long)]
    connections_max: Option<usize>,
    /// Largest Produce request accepted, in bytes.
    #[arg(long)]
    request_bytes_max: Option<usize>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let dir = DataDir::open(&args.data_dir, DirConfig::default())
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
    let config = BrokerConfig {
        auto_create_topics: !args.no_auto_create_topics,
        default_partitions: args.default_partitions,
        fsync: crate::parse_fsync(&args.fsync)?,
        ..BrokerConfig::default()
    };
    let broker = Arc::new(Broker::open(dir, config).context("opening the broker")?);
    let listener = tokio::net::TcpListener::bind(args.kafka_addr)
        .await
        .with_context(|| format!("binding the kafka listener to {}", args.kafka_addr))?;
    let bound = listener.local_addr()?;
    let mut server_config = ServerConfig::new(bound);
    if let Some(host) = args.advertised_host {
        server_config.advertised_host = host;
    }
    if let Some(n) = args.connections_max {
        server_config.connections_max = n.max(1);
    }
    if let Some(n) = args.request_bytes_max {
        server_config.request_bytes_max = n;
    }
    println!("kafka listening on {bound}");

    let retention = {
        let broker = broker.clone();
        let every = Duration::from_millis(args.retention_check_ms.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || broker.enforce_retention()).await;
            }
        })
    };
    weir_kafka::run(listener, broker.clone(), server_config, shutdown_signal()).await;
    retention.abort();
    tracing::info!("shutting down: syncing the data directory");
    // The last handle closes the data directory, which syncs every log.
    drop(broker);
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
