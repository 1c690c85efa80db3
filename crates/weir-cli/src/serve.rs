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
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_kafka::ServerConfig;
use weir_log::{DataDir, DirConfig};
use weir_store::{EmbeddedStore, StoreConfig};

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

/// The config file: the same settings, all optional; unknown keys are an
/// error that names them.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    data_dir: Option<PathBuf>,
    kafka_addr: Option<SocketAddr>,
    listeners: Option<String>,
    listener_security_protocol_map: Option<String>,
    advertised_listeners: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_client_auth: Option<String>,
    http_tls: Option<bool>,
    http_addr: Option<SocketAddr>,
    advertised_host: Option<String>,
    fsync: Option<String>,
    default_partitions: Option<u32>,
    auto_create_topics: Option<bool>,
    retention_check_ms: Option<u64>,
    log_cleaner_backoff_ms: Option<u64>,
    log_cleaner_io_max_bytes_per_second: Option<u64>,
    connections_max: Option<usize>,
    request_bytes_max: Option<usize>,
    group_min_session_timeout_ms: Option<i32>,
    group_max_session_timeout_ms: Option<i32>,
    group_initial_rebalance_delay_ms: Option<i32>,
    topics_max: Option<usize>,
    partitions_max: Option<u32>,
    http_body_bytes_max: Option<usize>,
    http_page_max: Option<usize>,
    sse_clients_max: Option<usize>,
    sse_buffer: Option<usize>,
    sse_buffer_bytes_max: Option<usize>,
    sse_stall_ms: Option<u64>,
    alert_dead_letter_depth_max: Option<u64>,
    alert_group_lag_max: Option<u64>,
    alert_interval_ms: Option<u64>,
    metrics: Option<bool>,
    metrics_series_max: Option<usize>,
    http_tokens_file: Option<PathBuf>,
    jwt_key_file: Option<PathBuf>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    jwt_principal_claim: Option<String>,
    authorizer: Option<bool>,
    super_users: Option<String>,
    allow_everyone_if_no_acl_found: Option<bool>,
    sasl_mechanisms: Option<Vec<String>>,
    connections_max_reauth_ms: Option<u64>,
}

/// Every setting, resolved.
#[derive(Debug)]
struct Settings {
    data_dir: PathBuf,
    /// The Kafka listeners to bind.
    listeners: Vec<weir_kafka::listeners::ListenerSpec>,
    /// Where each listener's clients are told to connect (by name).
    advertised_listeners: Vec<weir_kafka::listeners::ListenerSpec>,
    /// The TLS files, if any listener or the HTTP API needs them.
    tls: Option<weir_tls::TlsFiles>,
    http_tls: bool,
    http_addr: SocketAddr,
    advertised_host: Option<String>,
    fsync: String,
    default_partitions: u32,
    auto_create_topics: bool,
    retention_check_ms: u64,
    log_cleaner_backoff_ms: u64,
    log_cleaner_io_max_bytes_per_second: Option<u64>,
    connections_max: Option<usize>,
    request_bytes_max: Option<usize>,
    groups: GroupsConfig,
    topics_max: Option<usize>,
    partitions_max: Option<u32>,
    http: weir_http::HttpLimits,
    alerts: weir_alerts::AlertRules,
    alert_interval_ms: u64,
    /// `None`: metrics off.
    metrics: Option<weir_metrics::MetricsConfig>,
    /// Kafka names of the broker settings given explicitly, which
    /// DescribeConfigs reports as STATIC_BROKER_CONFIG.
    static_configs: Vec<String>,
    /// Spans are exported (`--otlp-endpoint`): Kafka request spans are
    /// named by API.
    export_spans: bool,
    /// Bearer tokens the HTTP API accepts (none: it asks for none).
    bearer: weir_auth::bearer::BearerAuth,
    /// `None`: authorization off.
    authorizer: Option<weir_auth::AuthorizerConfig>,
    /// SASL on the Kafka listener (`None`: off).
    sasl: Option<weir_kafka::SaslConfig>,
}

impl ServeArgs {
    fn resolve(self) -> anyhow::Result<Settings> {
        let file: ServeFile = match &self.config {
            None => ServeFile::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("in config file {}", path.display()))?
            }
        };
        let given = |set: bool, name: &str| set.then(|| name.to_owned());
        let static_configs = [
            given(
                self.default_partitions.is_some() || file.default_partitions.is_some(),
                "num.partitions",
            ),
            given(
                self.no_auto_create_topics || file.auto_create_topics.is_some(),
                "auto.create.topics.enable",
            ),
            given(
                self.connections_max.is_some() || file.connections_max.is_some(),
                "max.connections",
            ),
            given(
                self.request_bytes_max.is_some() || file.request_bytes_max.is_some(),
                "socket.request.max.bytes",
            ),
            given(
                self.group_min_session_timeout_ms.is_some()
                    || file.group_min_session_timeout_ms.is_some(),
                "group.min.session.timeout.ms",
            ),
            given(
                self.group_max_session_timeout_ms.is_some()
                    || file.group_max_session_timeout_ms.is_some(),
                "group.max.session.timeout.ms",
            ),
            given(
                self.group_initial_rebalance_delay_ms.is_some()
                    || file.group_initial_rebalance_delay_ms.is_some(),
                "group.initial.rebalance.delay.ms",
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let metrics_config = weir_metrics::MetricsConfig {
            series_max: self
                .metrics_series_max
                .or(file.metrics_series_max)
                .unwrap_or(weir_metrics::MetricsConfig::default().series_max),
            ..weir_metrics::MetricsConfig::default()
        };
        let map = weir_kafka::ProtocolMap::parse(
            self.listener_security_protocol_map
                .as_deref()
                .or(file.listener_security_protocol_map.as_deref())
                .unwrap_or_default(),
        )
        .context("in --listener-security-protocol-map")?;
        let listeners = listeners(&self, &file, &map)?;
        let advertised_listeners = match self
            .advertised_listeners
            .as_deref()
            .or(file.advertised_listeners.as_deref())
        {
            None => Vec::new(),
            Some(text) => {
                let specs = weir_kafka::listeners::parse_listeners(text, &map)
                    .context("in --advertised-listeners")?;
                if let Some(s) = specs
                    .iter()
                    .find(|s| !listeners.iter().any(|l| l.name == s.name))
                {
                    anyhow::bail!(weir_kafka::ListenerError::NotListening(s.name.clone()));
                }
                specs
            }
        };
        let http_tls = self.http_tls || file.http_tls.unwrap_or(false);
        let tls = tls_files(&self, &file)?;
        if tls.is_none() {
            if let Some(l) = listeners.iter().find(|l| l.protocol.needs_tls()) {
                anyhow::bail!(
                    "the {} listener ({}) needs --tls-cert and --tls-key",
                    l.name,
                    l.protocol
                );
            }
            anyhow::ensure!(!http_tls, "--http-tls needs --tls-cert and --tls-key");
        }
        let bearer = self.bearer.load(crate::security_args::BearerFile {
            http_tokens_file: file.http_tokens_file,
            jwt_key_file: file.jwt_key_file,
            jwt_issuer: file.jwt_issuer,
            jwt_audience: file.jwt_audience,
            jwt_principal_claim: file.jwt_principal_claim,
        })?;
        let super_users = self.super_users.or(file.super_users);
        let authorizer = if self.authorizer || file.authorizer.unwrap_or(false) {
            Some(weir_auth::AuthorizerConfig {
                super_users: parse_super_users(super_users.as_deref().unwrap_or(""))?,
                allow_if_no_acl: self.allow_everyone_if_no_acl_found
                    || file.allow_everyone_if_no_acl_found.unwrap_or(false),
                ..weir_auth::AuthorizerConfig::default()
            })
        } else {
            anyhow::ensure!(
                super_users.is_none(),
                "super_users is set but the authorizer is off: pass --authorizer"
            );
            None
        };
        let sasl = match self.sasl_mechanisms.or(file.sasl_mechanisms) {
            None => None,
            Some(names) => {
                let mechanisms = names
                    .iter()
                    .map(|n| {
                        weir_kafka::SaslMechanism::from_name(n.trim()).with_context(|| {
                            format!(
                                "unknown SASL mechanism {n:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"
                            )
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                if mechanisms.is_empty() {
                    anyhow::bail!("--sasl-mechanisms names no mechanism");
                }
                // OAUTHBEARER checks JWTs with the HTTP API's validator.
                anyhow::ensure!(
                    !mechanisms.contains(&weir_kafka::SaslMechanism::OauthBearer)
                        || bearer.jwt.is_some(),
                    "--sasl-mechanisms OAUTHBEARER needs a JWT key: pass --jwt-key-file"
                );
                Some(weir_kafka::SaslConfig {
                    mechanisms,
                    reauth_ms: self
                        .connections_max_reauth_ms
                        .or(file.connections_max_reauth_ms)
                        .unwrap_or(0),
                })
            }
        };
        // SASL belongs to the SASL listeners: mechanisms without one are a
        // mistake, and a SASL listener without mechanisms offers them all.
        // With one listener from --kafka-addr (no --listeners), mechanisms
        // make it SASL_PLAINTEXT, as the library's `run` does.
        let mut listeners = listeners;
        let single = self.listeners.is_none() && file.listeners.is_none();
        if sasl.is_some() && single && listeners.len() == 1 {
            listeners[0].protocol = weir_kafka::SecurityProtocol::SaslPlaintext;
            listeners[0].name = listeners[0].protocol.name().to_owned();
        }
        let sasl_listener = listeners.iter().any(|l| l.protocol.needs_sasl());
        let sasl = match sasl {
            Some(_) if !sasl_listener => anyhow::bail!(
                "--sasl-mechanisms needs a SASL_PLAINTEXT or SASL_SSL listener in --listeners"
            ),
            None if sasl_listener => Some(weir_kafka::SaslConfig {
                reauth_ms: self
                    .connections_max_reauth_ms
                    .or(file.connections_max_reauth_ms)
                    .unwrap_or(0),
                ..weir_kafka::SaslConfig::all()
            }),
            sasl => sasl,
        };
        Ok(Settings {
            sasl,
            bearer,
            listeners,
            advertised_listeners,
            tls,
            http_tls,
            authorizer,
            metrics: (!self.no_metrics && file.metrics.unwrap_or(true)).then_some(metrics_config),
            static_configs,
            export_spans: self.otlp_endpoint.is_some(),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| "./weir-data".into()),
            http_addr: self
                .http_addr
                .or(file.http_addr)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            advertised_host: self.advertised_host.or(file.advertised_host),
            fsync: self.fsync.or(file.fsync).unwrap_or_else(|| "always".into()),
            default_partitions: self
                .default_partitions
                .or(file.default_partitions)
                .unwrap_or(1),
            auto_create_topics: !self.no_auto_create_topics
                && file.auto_create_topics.unwrap_or(true),
            alerts: weir_alerts::AlertRules {
                dead_letter_depth_max: self
                    .alert_dead_letter_depth_max
                    .or(file.alert_dead_letter_depth_max),
                group_lag_max: self.alert_group_lag_max.or(file.alert_group_lag_max),
                dead_letter_suffix: weir_deadletter::format::DEFAULT_SUFFIX.to_owned(),
            },
            alert_interval_ms: self
                .alert_interval_ms
                .or(file.alert_interval_ms)
                .unwrap_or(10_000)
                .max(1),
            retention_check_ms: self
                .retention_check_ms
                .or(file.retention_check_ms)
                .unwrap_or(60_000),
            log_cleaner_backoff_ms: self
                .log_cleaner_backoff_ms
                .or(file.log_cleaner_backoff_ms)
                .unwrap_or(15_000),
            // Kafka has no limit by default; an unthrottled pass over data
            // in the page cache costs durable producers their p99 latency
            // (see `weir-bench compaction`), so Weir limits it.
            log_cleaner_io_max_bytes_per_second: Some(
                self.log_cleaner_io_max_bytes_per_second
                    .or(file.log_cleaner_io_max_bytes_per_second)
                    .unwrap_or(50 * 1024 * 1024),
            ),
            connections_max: self.connections_max.or(file.connections_max),
            request_bytes_max: self.request_bytes_max.or(file.request_bytes_max),
            topics_max: self.topics_max.or(file.topics_max),
            partitions_max: self.partitions_max.or(file.partitions_max),
            http: {
                let d = weir_http::HttpLimits::default();
                let http = weir_http::HttpLimits {
                    body_bytes_max: self
                        .http_body_bytes_max
                        .or(file.http_body_bytes_max)
                        .unwrap_or(d.body_bytes_max),
                    page_max: self
                        .http_page_max
                        .or(file.http_page_max)
                        .unwrap_or(d.page_max),
                    sse_clients_max: self
                        .sse_clients_max
                        .or(file.sse_clients_max)
                        .unwrap_or(d.sse_clients_max),
                    sse_buffer: self.sse_buffer.or(file.sse_buffer).unwrap_or(d.sse_buffer),
                    sse_buffer_bytes_max: self
                        .sse_buffer_bytes_max
                        .or(file.sse_buffer_bytes_max)
                        .unwrap_or(d.sse_buffer_bytes_max),
                    sse_stall_ms: self
                        .sse_stall_ms
                        .or(file.sse_stall_ms)
                        .unwrap_or(d.sse_stall_ms),
                    ..d
                };
                anyhow::ensure!(
                    http.body_bytes_max > 0
                        && http.page_max > 0
                        && http.sse_buffer > 0
                        && http.sse_buffer_bytes_max > 0,
                    "http_body_bytes_max, http_page_max, sse_buffer and sse_buffer_bytes_max must be at least 1"
                );
                anyhow::ensure!(http.sse_stall_ms > 0, "sse_stall_ms must be at least 1");
                http
            },
            groups: {
                let d = GroupsConfig::default();
                let groups = GroupsConfig {
                    session_timeout_ms_min: self
                        .group_min_session_timeout_ms
                        .or(file.group_min_session_timeout_ms)
                        .unwrap_or(d.session_timeout_ms_min),
                    session_timeout_ms_max: self
                        .group_max_session_timeout_ms
                        .or(file.group_max_session_timeout_ms)
                        .unwrap_or(d.session_timeout_ms_max),
                    initial_rebalance_delay_ms: self
                        .group_initial_rebalance_delay_ms
                        .or(file.group_initial_rebalance_delay_ms)
                        .unwrap_or(d.initial_rebalance_delay_ms),
                    ..d
                };
                anyhow::ensure!(
                    0 < groups.session_timeout_ms_min
                        && groups.session_timeout_ms_min <= groups.session_timeout_ms_max,
                    "group session timeouts: the minimum must be positive and at most the maximum"
                );
                anyhow::ensure!(
                    groups.initial_rebalance_delay_ms >= 0,
                    "the initial rebalance delay must not be negative"
                );
                groups
            },
        })
    }
}

/// The Kafka listeners: `--listeners`, else `--kafka-addr` as one
/// PLAINTEXT listener (flag over file, as everywhere), else
/// PLAINTEXT://127.0.0.1:9092.
fn listeners(
    args: &ServeArgs,
    file: &ServeFile,
    map: &weir_kafka::ProtocolMap,
) -> anyhow::Result<Vec<weir_kafka::listeners::ListenerSpec>> {
    use weir_kafka::listeners::{ListenerSpec, parse_listeners};
    let plaintext = |addr: SocketAddr| ListenerSpec {
        name: "PLAINTEXT".to_owned(),
        protocol: weir_kafka::SecurityProtocol::Plaintext,
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    anyhow::ensure!(
        !(args.listeners.is_some() && args.kafka_addr.is_some()),
        "give --listeners or --kafka-addr, not both"
    );
    if let Some(text) = &args.listeners {
        return parse_listeners(text, map).context("in --listeners");
    }
    if let Some(addr) = args.kafka_addr {
        return Ok(vec![plaintext(addr)]);
    }
    anyhow::ensure!(
        !(file.listeners.is_some() && file.kafka_addr.is_some()),
        "give listeners or kafka_addr in the config file, not both"
    );
    if let Some(text) = &file.listeners {
        return parse_listeners(text, map).context("in listeners");
    }
    Ok(vec![plaintext(file.kafka_addr.unwrap_or_else(|| {
        SocketAddr::from(([127, 0, 0, 1], 9092))
    }))])
}

/// The TLS files, if a certificate is given: the key must be too, and a
/// client CA when client certificates are asked for.
fn tls_files(args: &ServeArgs, file: &ServeFile) -> anyhow::Result<Option<weir_tls::TlsFiles>> {
    let cert = args.tls_cert.clone().or(file.tls_cert.clone());
    let key = args.tls_key.clone().or(file.tls_key.clone());
    let client_ca = args.tls_client_ca.clone().or(file.tls_client_ca.clone());
    let client_auth: weir_tls::ClientAuth = args
        .tls_client_auth
        .as_deref()
        .or(file.tls_client_auth.as_deref())
        .map(str::parse)
        .transpose()?
        .unwrap_or_default();
    match (cert, key) {
        (None, None) => {
            anyhow::ensure!(
                client_ca.is_none() && client_auth == weir_tls::ClientAuth::None,
                "--tls-client-ca and --tls-client-auth need --tls-cert and --tls-key"
            );
            Ok(None)
        }
        (Some(cert), Some(key)) => {
            anyhow::ensure!(
                client_auth == weir_tls::ClientAuth::None || client_ca.is_some(),
                "--tls-client-auth {} needs --tls-client-ca",
                args.tls_client_auth
                    .as_deref()
                    .or(file.tls_client_auth.as_deref())
                    .unwrap_or_default()
            );
            Ok(Some(weir_tls::TlsFiles {
                cert,
                key,
                client_ca,
                client_auth,
            }))
        }
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    }
}

/// Warns, once at start, of each listener that accepts connections from
/// beyond this machine and asks nobody who they are: secure by default
/// where it costs nothing (both bind to loopback unless told otherwise).
fn warn_unauthenticated(
    listeners: &[weir_kafka::Listener],
    certificates_required: bool,
    http: SocketAddr,
    http_authenticated: bool,
) {
    for l in listeners {
        let e = &l.endpoint;
        let authenticated =
            e.protocol.needs_sasl() || (e.protocol.needs_tls() && certificates_required);
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

/// Kafka's `super.users`: principals separated by `;`, blanks ignored.
fn parse_super_users(list: &str) -> anyhow::Result<Vec<weir_auth::Principal>> {
    list.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| weir_auth::Principal::parse(p).with_context(|| format!("in super_users: {p:?}")))
        .collect()
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
    // One TLS server for every TLS listener and HTTPS, reloaded on
    // SIGHUP and when its files change.
    let tls = match &args.tls {
        None => None,
        Some(files) => Some(Arc::new(
            weir_tls::TlsServer::load(files.clone()).context("loading the TLS files")?,
        )),
    };
    // SIGHUP (and a changed file) reloads the TLS files and the token
    // file; with neither, SIGHUP is logged rather than fatal.
    let reloading = crate::reload::watch(
        tls.clone(),
        args.bearer.tokens.clone(),
        weir_tls::RELOAD_POLL,
    );
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
            tls.clone(),
        )?);
    }
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
        certificates_required,
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
    let mut http_state =
        weir_http::AppState::new(broker.clone(), groups.clone(), store.clone(), args.http)
            .with_alerts(alerts)
            .with_queues(queues.clone())
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
