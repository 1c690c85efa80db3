//! `weir serve`: one process with the embedded store and the Kafka
//! listeners, until SIGINT or SIGTERM (SIGHUP reloads the TLS files and
//! the token file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use weir_broker::{Broker, BrokerConfig};
use weir_groups::{Coordinator, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_kafka::ServerConfig;
use weir_log::{DataDir, DirConfig};
use weir_store::{EmbeddedStore, StoreConfig};

mod settings;

use settings::Settings;

/// How long a stopping server waits for HTTP connections to finish.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// How often the event store considers saving its index.
const STORE_UPKEEP: Duration = Duration::from_secs(10);

/// Options of `weir serve`. Each comes from its flag, else its environment
/// variable, else the config file (`--config`), else its default.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below, by their flag names
    /// with `_` for `-` (e.g. `data_dir = "/var/lib/weir"`).
    #[arg(long, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory [default: ./weir-data].
    #[arg(long, env = "WEIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the Kafka listener; port 0 picks a free port
    /// [default: 127.0.0.1:9092]. One PLAINTEXT listener: `--listeners`
    /// names several.
    #[arg(long, env = "WEIR_KAFKA_ADDR")]
    kafka_addr: Option<SocketAddr>,
    /// Kafka listeners as Kafka writes them, comma-separated:
    /// `PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093` (also
    /// `SASL_PLAINTEXT`, `SASL_SSL`, or a name from
    /// `--listener-security-protocol-map`); instead of `--kafka-addr`.
    #[arg(long, env = "WEIR_LISTENERS")]
    listeners: Option<String>,
    /// More listener names, each with its security protocol, as Kafka's
    /// `listener.security.protocol.map`: `INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL`
    /// (so two listeners may share a protocol).
    #[arg(long, env = "WEIR_LISTENER_SECURITY_PROTOCOL_MAP")]
    listener_security_protocol_map: Option<String>,
    /// Where clients of each listener are told to connect, same form
    /// (`SSL://broker.example:9093`) [default: `--advertised-host` and the
    /// bound port, else the bound address].
    #[arg(long, env = "WEIR_ADVERTISED_LISTENERS")]
    advertised_listeners: Option<String>,
    /// The server's certificate chain, PEM, for SSL and SASL_SSL
    /// listeners and `--http-tls`; reloaded on SIGHUP or when it changes.
    #[arg(long, env = "WEIR_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert`, PEM.
    #[arg(long, env = "WEIR_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// CAs that sign client certificates, PEM (mutual TLS).
    #[arg(long, env = "WEIR_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Kafka's `ssl.client.auth`: `required`, `requested` or `none`
    /// [default: none].
    #[arg(long, env = "WEIR_TLS_CLIENT_AUTH")]
    tls_client_auth: Option<String>,
    /// Client certificates per listener, overriding `--tls-client-auth`
    /// for the TLS listeners named (Kafka's
    /// `listener.name.<name>.ssl.client.auth`):
    /// `INTERNAL:required,EXTERNAL:none`.
    #[arg(long, env = "WEIR_LISTENER_TLS_CLIENT_AUTH")]
    listener_tls_client_auth: Option<String>,
    /// Serve the HTTP API over HTTPS with `--tls-cert` and `--tls-key`
    /// (and the same client-certificate settings).
    #[arg(long, env = "WEIR_HTTP_TLS")]
    http_tls: bool,
    /// Address of the HTTP API; port 0 picks a free port
    /// [default: 127.0.0.1:8080].
    #[arg(long, env = "WEIR_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Host clients are told to connect to [default: the listener's].
    #[arg(long, env = "WEIR_ADVERTISED_HOST")]
    advertised_host: Option<String>,
    /// `always`, `never`, or `interval:MS` [default: always].
    #[arg(long, env = "WEIR_FSYNC")]
    fsync: Option<String>,
    /// Partitions of topics created without a count [default: 1].
    #[arg(long)]
    default_partitions: Option<u32>,
    /// Refuse to create topics a client merely asks metadata for.
    #[arg(long)]
    no_auto_create_topics: bool,
    /// How often retention runs and partition state is snapshotted, in ms
    /// [default: 60000].
    #[arg(long)]
    retention_check_ms: Option<u64>,
    /// How long the log cleaner waits between passes over the compacted
    /// topics, in ms (Kafka's `log.cleaner.backoff.ms`) [default: 15000].
    #[arg(long)]
    log_cleaner_backoff_ms: Option<u64>,
    /// Most bytes per second the log cleaner reads plus writes, so
    /// producers keep their latency (Kafka's
    /// `log.cleaner.io.max.bytes.per.second`; 0: no limit)
    /// [default: 52428800, 50 MiB/s].
    #[arg(long)]
    log_cleaner_io_max_bytes_per_second: Option<u64>,
    /// Most client connections at once; more wait to be accepted
    /// [default: 1024].
    #[arg(long)]
    connections_max: Option<usize>,
    /// Largest Produce request accepted, in bytes [default: 100 MiB].
    #[arg(long)]
    request_bytes_max: Option<usize>,
    /// Shortest session timeout a group member may ask for
    /// [default: 6000].
    #[arg(long)]
    group_min_session_timeout_ms: Option<i32>,
    /// Longest session timeout a group member may ask for
    /// [default: 1800000].
    #[arg(long)]
    group_max_session_timeout_ms: Option<i32>,
    /// How long a new group's first rebalance waits for more members
    /// [default: 3000].
    #[arg(long)]
    group_initial_rebalance_delay_ms: Option<i32>,
    /// Most topics the broker holds [default: 10000].
    #[arg(long)]
    topics_max: Option<usize>,
    /// Most partitions one topic may have [default: 1024].
    #[arg(long)]
    partitions_max: Option<u32>,
    /// Largest HTTP request body, in bytes [default: 16 MiB].
    #[arg(long)]
    http_body_bytes_max: Option<usize>,
    /// Most records or events one HTTP page returns [default: 1000].
    #[arg(long)]
    http_page_max: Option<usize>,
    /// Most live streams (Server-Sent Events) at once; more get a 503
    /// [default: 256].
    #[arg(long)]
    sse_clients_max: Option<usize>,
    /// Most events queued for one live client [default: 256].
    #[arg(long)]
    sse_buffer: Option<usize>,
    /// Most bytes of events queued for one live client [default: 8 MiB].
    #[arg(long)]
    sse_buffer_bytes_max: Option<usize>,
    /// How long a live client may leave its queue full before it is
    /// disconnected, in ms [default: 10000].
    #[arg(long)]
    sse_stall_ms: Option<u64>,
    /// Alert when a dead-letter topic (`<topic>.dlq`) holds more records
    /// than this [default: no alert].
    #[arg(long)]
    alert_dead_letter_depth_max: Option<u64>,
    /// Alert when a consumer group's lag (summed over its partitions) is
    /// above this many records [default: no alert].
    #[arg(long)]
    alert_group_lag_max: Option<u64>,
    /// How often alerts are evaluated, in ms [default: 10000].
    #[arg(long)]
    alert_interval_ms: Option<u64>,
    /// Log lines on stderr as `text` or `json` (one object per line, with
    /// each request's client id, correlation id and trace id).
    #[arg(long, env = "WEIR_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: crate::telemetry::LogFormat,
    /// Export spans over OTLP/HTTP (protobuf) to this collector, e.g.
    /// `http://127.0.0.1:4318` (traces go to `/v1/traces`) [default: no
    /// export].
    #[arg(long, env = "WEIR_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Serve no metrics: `GET /metrics` answers 404 and nothing is
    /// recorded per request.
    #[arg(long)]
    no_metrics: bool,
    /// Require SASL on the Kafka listener with these mechanisms, comma
    /// separated: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (users from `weir
    /// user add` or AlterUserScramCredentials), OAUTHBEARER (JWTs checked
    /// as the HTTP API's, with --jwt-key-file) [default: no SASL].
    #[arg(long, value_delimiter = ',')]
    sasl_mechanisms: Option<Vec<String>>,
    /// How long a SASL authentication lasts before the client must
    /// re-authenticate, in ms (Kafka's `connections.max.reauth.ms`; 0:
    /// for ever) [default: 0].
    #[arg(long)]
    connections_max_reauth_ms: Option<u64>,
    /// Most per-topic, per-partition and per-group-partition label sets
    /// with metric series; more are counted in
    /// `weir_metrics_series_dropped_total` [default: 10000].
    #[arg(long)]
    metrics_series_max: Option<usize>,
    #[command(flatten)]
    bearer: crate::security_args::BearerArgs,
    /// Check every request against the ACLs kept in the data directory
    /// (`.acls.json`; managed with Kafka's CreateAcls, DescribeAcls and
    /// DeleteAcls) [default: off, everything is allowed].
    #[arg(long, env = "WEIR_AUTHORIZER")]
    authorizer: bool,
    /// Principals allowed everything when the authorizer is on, separated
    /// by `;` as Kafka's `super.users` (e.g. `User:admin;User:ops`).
    #[arg(long, env = "WEIR_SUPER_USERS")]
    super_users: Option<String>,
    /// Allow an operation on a resource no ACL names (Kafka's
    /// `allow.everyone.if.no.acl.found`) [default: refused].
    #[arg(long)]
    allow_everyone_if_no_acl_found: bool,
}

/// Warns, once at start, of each listener that accepts connections from
/// beyond this machine and asks nobody who they are: secure by default
/// where it costs nothing (both bind to loopback unless told otherwise).
fn warn_unauthenticated(
    listeners: &[weir_kafka::Listener],
    http: SocketAddr,
    http_authenticated: bool,
) {
    for l in listeners {
        let e = &l.endpoint;
        let certificates_required = l
            .tls
            .as_ref()
            .is_some_and(|t| t.files().client_auth == weir_tls::ClientAuth::Required);
        let authenticated = e.protocol.needs_sasl() || certificates_required;
        if !e.bound.ip().is_loopback() && !authenticated {
            tracing::warn!(
                listener = %e.name,
                addr = %e.bound,
                "a Kafka listener beyond loopback authenticates nobody: use SASL_SSL or SSL with --tls-client-auth required"
            );
        }
    }
    if !http.ip().is_loopback() && !http_authenticated {
        tracing::warn!(
            %http,
            "the HTTP API listens beyond loopback and authenticates nobody: use --http-tokens-file or --jwt-key-file"
        );
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        .build()
        .context("starting the runtime")?;
    // The ready lines in one write, and a stdout nobody reads any more
    // (a parent that read what it needed) is no reason to stop serving.
    // The first two lines are the first Kafka listener's and the HTTP
    // API's addresses; one line per Kafka listener follows.
    let ready = |bound: &Bound| {
        use std::io::Write as _;
        let scheme = if bound.https { "https" } else { "http" };
        let mut lines = format!(
            "kafka listening on {}\n{scheme} listening on {}\n",
            bound.kafka[0].bound, bound.http
        );
        for l in &bound.kafka {
            lines.push_str(&format!("kafka listener {} on {}\n", l.name, l.bound));
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
    };
    runtime.block_on(serve(settings, ready, shutdown_signal()))
}

/// A `weir serve` running in this process (for `weir demo docs`): on
/// loopback with free ports, over `data_dir`, until dropped.
pub struct InProcess {
    pub kafka: SocketAddr,
    pub http: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    pub fn start(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: ServeArgs,
        }
        use clap::Parser as _;
        let wrap = Wrap::try_parse_from([
            "serve".as_ref(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
            "--kafka-addr".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--http-addr".as_ref(),
            "127.0.0.1:0".as_ref(),
            // One member per group: nobody to wait for.
            "--group-initial-rebalance-delay-ms".as_ref(),
            "0".as_ref(),
        ] as [&std::ffi::OsStr; 9])?;
        let settings = wrap.args.resolve()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("weir-serve".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .thread_name("weir")
                    .build()
                    .context("starting the runtime")?;
                let ready = move |bound: &Bound| {
                    let _ = ready_tx.send((bound.kafka[0].bound, bound.http));
                };
                runtime.block_on(serve(settings, ready, async {
                    let _ = stopped.await;
                }))
            })?;
        match ready_rx.recv() {
            Ok((kafka, http)) => Ok(Self {
                kafka,
                http,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Err(_) => Err(thread
                .join()
                .map_err(|_| anyhow::anyhow!("the server thread panicked"))?
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("the server stopped before it was ready"))),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where a started server listens.
struct Bound {
    kafka: Vec<Arc<weir_kafka::Endpoint>>,
    http: SocketAddr,
    https: bool,
}

async fn serve(
    args: Settings,
    ready: impl FnOnce(&Bound),
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let dir = DataDir::open(&args.data_dir, DirConfig::default())
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
    let config = BrokerConfig {
        auto_create_topics: args.auto_create_topics,
        default_partitions: args.default_partitions,
        fsync: crate::parse_fsync(&args.fsync)?,
        ..BrokerConfig::default()
    };
    let config = BrokerConfig {
        topics_max: args.topics_max.unwrap_or(config.topics_max),
        partitions_max: args.partitions_max.unwrap_or(config.partitions_max),
        ..config
    };
    let broker = Arc::new(Broker::open(dir, config).context("opening the broker")?);
    // One authorizer for every listener, its ACLs in the data directory.
    let authorizer = Arc::new(match args.authorizer {
        Some(config) => {
            weir_auth::Authorizer::open(&args.data_dir, config).context("reading the ACLs")?
        }
        None => weir_auth::Authorizer::disabled(),
    });
    let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default())
        .context("opening the committed offsets")?;
    let groups = Arc::new(Coordinator::new(
        args.groups,
        Arc::new(MonotonicClock::new()),
        broker.clone(),
        Arc::new(offsets),
    ));
    // The event store's log is a topic of this broker: appended events
    // reach Kafka consumers of __weir_events.
    let store = Arc::new(
        EmbeddedStore::open(broker.clone(), StoreConfig::default())
            .context("opening the event store")?,
    );
    // One TLS server for HTTPS and every TLS listener without a client
    // authentication of its own, one more per other setting; each
    // reloaded on SIGHUP and when its files change.
    let tls = match &args.tls {
        None => None,
        Some(files) => Some(Arc::new(
            weir_tls::TlsServer::load(files.clone()).context("loading the TLS files")?,
        )),
    };
    let mut tls_servers: Vec<Arc<weir_tls::TlsServer>> = tls.iter().cloned().collect();
    let mut tls_for = |name: &str| -> anyhow::Result<Option<Arc<weir_tls::TlsServer>>> {
        let (Some(default), Some(&(_, auth))) = (
            &tls,
            args.listener_client_auth.iter().find(|(n, _)| n == name),
        ) else {
            return Ok(tls.clone());
        };
        if let Some(t) = tls_servers.iter().find(|t| t.files().client_auth == auth) {
            return Ok(Some(t.clone()));
        }
        let files = weir_tls::TlsFiles {
            client_auth: auth,
            ..default.files().clone()
        };
        let server = Arc::new(weir_tls::TlsServer::load(files).context("loading the TLS files")?);
        tls_servers.push(server.clone());
        Ok(Some(server))
    };
    let mut listeners = Vec::with_capacity(args.listeners.len());
    for spec in &args.listeners {
        let socket = tokio::net::TcpListener::bind(spec.bind_addr())
            .await
            .with_context(|| {
                format!("binding the {} listener to {}", spec.name, spec.bind_addr())
            })?;
        let port = socket.local_addr()?.port();
        let advertised = args
            .advertised_listeners
            .iter()
            .find(|a| a.name == spec.name)
            .map(|a| (a.host.clone(), a.port))
            .or_else(|| args.advertised_host.clone().map(|h| (h, port)));
        listeners.push(weir_kafka::Listener::named(
            &spec.name,
            spec.protocol,
            socket,
            advertised,
            tls_for(&spec.name)?,
        )?);
    }
    // SIGHUP (and a changed file) reloads the TLS files and the token
    // file; with neither, SIGHUP is logged rather than fatal.
    let reloading = crate::reload::watch(
        tls_servers,
        args.bearer.tokens.clone(),
        weir_tls::RELOAD_POLL,
    );
    let first = listeners[0].endpoint.clone();
    let mut server_config = ServerConfig::new(first.bound);
    server_config.advertised_host = first.advertised_host.clone();
    server_config.advertised_port = first.advertised_port;
    server_config.static_configs = args.static_configs;
    server_config.name_request_spans = args.export_spans;
    if let Some(sasl) = args.sasl {
        // Read the credentials now: a corrupt store stops the start here
        // rather than failing every client.
        let users = weir_auth::CredentialStore::open(broker.data_dir().root())
            .context("opening the SCRAM credential store")?
            .list()
            .len();
        let names: Vec<_> = sasl.mechanisms.iter().map(|m| m.name()).collect();
        tracing::info!(mechanisms = ?names, users, reauth_ms = sasl.reauth_ms, "SASL required on the SASL listeners");
        if users == 0 {
            tracing::warn!("SASL is on but no user exists: add one with `weir user add`");
        }
        server_config.sasl = Some(sasl);
    }
    if let Some(n) = args.connections_max {
        server_config.connections_max = n.max(1);
    }
    if let Some(n) = args.request_bytes_max {
        server_config.request_bytes_max = n;
    }

    let store_upkeep = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STORE_UPKEEP);
            loop {
                tick.tick().await;
                let store = store.clone();
                let saved = tokio::task::spawn_blocking(move || store.maintain(false)).await;
                if let Ok(Err(e)) = saved {
                    tracing::warn!(%e, "saving the event store's index failed");
                }
            }
        })
    };
    let retention = {
        let broker = broker.clone();
        let every = Duration::from_millis(args.retention_check_ms.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    broker.enforce_retention();
                    broker.save_partition_snapshots(false);
                })
                .await;
            }
        })
    };
    // The log cleaner: one pass over the compacted topics at a time, on
    // the blocking pool, then a pause (as retention, but passes can be long
    // and are throttled, so they never overlap).
    let cleaner = {
        let broker = broker.clone();
        let every = Duration::from_millis(args.log_cleaner_backoff_ms.max(1));
        let throttle = Arc::new(weir_log::Throttle::new(
            args.log_cleaner_io_max_bytes_per_second,
        ));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let (broker, throttle) = (broker.clone(), throttle.clone());
                let limits = weir_broker::compact::CleanerLimits::default();
                let _ =
                    tokio::task::spawn_blocking(move || broker.clean_compacted(&limits, &throttle))
                        .await;
            }
        })
    };
    let alerts = Arc::new(weir_alerts::Alerts::new(args.alerts.clone()));
    let alerting = {
        let (alerts, broker, groups) = (alerts.clone(), broker.clone(), groups.clone());
        let every = Duration::from_millis(args.alert_interval_ms);
        let watched =
            args.alerts.dead_letter_depth_max.is_some() || args.alerts.group_lag_max.is_some();
        tokio::spawn(async move {
            if !watched {
                return;
            }
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let (alerts, broker, groups) = (alerts.clone(), broker.clone(), groups.clone());
                let now_ms = weir_log::Clock::now_ms(&weir_log::SystemClock);
                let evaluated =
                    tokio::task::spawn_blocking(move || alerts.evaluate(&broker, &groups, now_ms))
                        .await;
                for t in evaluated.unwrap_or_default() {
                    log_transition(&t);
                }
            }
        })
    };
    let http_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding the http listener to {}", args.http_addr))?;
    let certificates_required = args
        .tls
        .as_ref()
        .is_some_and(|t| t.client_auth == weir_tls::ClientAuth::Required);
    warn_unauthenticated(
        &listeners,
        http_listener.local_addr()?,
        args.bearer.is_configured() || (args.http_tls && certificates_required),
    );
    ready(&Bound {
        kafka: listeners.iter().map(|l| l.endpoint.clone()).collect(),
        http: http_listener.local_addr()?,
        https: args.http_tls,
    });
    // One signal stops both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let metrics = args.metrics.map(|config| {
        let sources = weir_metrics::Sources {
            broker: broker.clone(),
            groups: groups.clone(),
            store: store.clone(),
            alerts: alerts.clone(),
        };
        Arc::new(weir_metrics::Metrics::new(config, sources, Arc::default()))
    });
    // One queue manager (and journal) for the HTTP queue API and Kafka
    // share groups, opened on first use by either.
    let queues = Arc::new(weir_deadletter::queue_slot::QueueSlot::new(broker.clone()));
    // OAUTHBEARER checks tokens with the HTTP API's JWT validator.
    let jwt = args.bearer.jwt.clone();
    // Confluent's Schema Registry API on the HTTP listener, kept in the
    // internal topic `__schemas` (replayed here).
    let schemas = {
        let broker = broker.clone();
        tokio::task::spawn_blocking(move || {
            weir_schemas::Registry::open_on_broker(broker, weir_schemas::Limits::default())
        })
        .await?
        .context("opening the schema registry (topic __schemas)")?
    };
    let schemas = Arc::new(schemas);
    // Validation on write checks against it: topics with
    // confluent.*.schema.validation on, and the validated categories.
    // (The store holds it; the broker only refers to it.)
    let validator: Arc<weir_schemas::Validator> =
        Arc::new(weir_schemas::Validator::new(schemas.clone()));
    broker.set_record_validator(&(validator.clone() as Arc<dyn weir_broker::RecordValidator>));
    store.set_event_validator(validator);
    let mut http_state =
        weir_http::AppState::new(broker.clone(), groups.clone(), store.clone(), args.http)
            .with_alerts(alerts)
            .with_queues(queues.clone())
            .with_schema_registry(schemas)
            .with_security(weir_http::auth::Security {
                authorizer: authorizer.clone(),
                bearer: Arc::new(args.bearer),
            });
    if let Some(m) = &metrics {
        http_state = http_state.with_metrics(m.clone());
    }
    let http_state = Arc::new(http_state);
    // The web console at /console, over the same state as the API.
    let console = weir_console::router(http_state.clone(), weir_console::ConsoleConfig::default());
    let http = tokio::spawn(weir_http::run_with_tls(
        http_listener,
        tls.clone().filter(|_| args.http_tls),
        http_state,
        console,
        stopped(stop_rx.clone()),
    ));
    let parts = weir_kafka::ServerParts {
        recorder: metrics.as_ref().map(|m| m.recorder().clone()),
        queues: Some(queues),
        authorizer: Some(authorizer.clone()),
        jwt,
    };
    weir_kafka::run_listeners(
        listeners,
        broker.clone(),
        groups.clone(),
        server_config,
        parts,
        stopped(stop_rx),
    )
    .await;
    // The metrics hold the broker, the store and the groups.
    drop(metrics);
    // HTTP requests in flight get a moment to finish; a live-stream client
    // that stopped reading cannot hold the shutdown up.
    let abort = http.abort_handle();
    match tokio::time::timeout(HTTP_DRAIN, http).await {
        Ok(Ok(Err(e))) => tracing::warn!(%e, "the http listener failed"),
        Ok(Err(e)) => tracing::warn!(%e, "the http listener task failed"),
        Ok(Ok(Ok(()))) => {}
        Err(_) => {
            tracing::warn!("http connections still open after the drain time; closing them");
            abort.abort();
        }
    }
    retention.abort();
    reloading.abort();
    cleaner.abort();
    alerting.abort();
    tracing::info!("shutting down: syncing the data directory");
    // Producer and transaction state, so the next start replays no tail.
    let snapshots = broker.clone();
    let _ = tokio::task::spawn_blocking(move || snapshots.save_partition_snapshots(true)).await;
    // The last handle closes the data directory, which syncs every log.
    store_upkeep.abort();
    drop(groups);
    // Closing the store saves its index, so the next start reads no history.
    drop(store);
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

/// Logs an alert firing (a warning) or clearing.
fn log_transition(t: &weir_alerts::Transition) {
    match t {
        weir_alerts::Transition::Fired(a) => tracing::warn!(
            kind = a.kind.as_str(),
            subject = %a.subject,
            value = a.value,
            threshold = a.threshold,
            "alert fired"
        ),
        weir_alerts::Transition::Cleared { alert, value } => tracing::info!(
            kind = alert.kind.as_str(),
            subject = %alert.subject,
            value,
            threshold = alert.threshold,
            "alert cleared"
        ),
    }
}
