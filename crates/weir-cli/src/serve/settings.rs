//! `weir serve`'s settings: the config file's keys, and every flag and
//! key resolved (flag over file over default) and checked into one
//! [`Settings`] before anything is opened, so a bad setting stops the
//! server at start with its name.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use weir_groups::GroupsConfig;

use super::ServeArgs;

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
    listener_tls_client_auth: Option<String>,
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
pub(super) struct Settings {
    pub(super) data_dir: PathBuf,
    /// The Kafka listeners to bind.
    pub(super) listeners: Vec<weir_kafka::listeners::ListenerSpec>,
    /// Where each listener's clients are told to connect (by name).
    pub(super) advertised_listeners: Vec<weir_kafka::listeners::ListenerSpec>,
    /// The TLS files, if any listener or the HTTP API needs them.
    pub(super) tls: Option<weir_tls::TlsFiles>,
    /// Listeners whose client authentication is not `tls`'s (by name).
    pub(super) listener_client_auth: Vec<(String, weir_tls::ClientAuth)>,
    pub(super) http_tls: bool,
    pub(super) http_addr: SocketAddr,
    pub(super) advertised_host: Option<String>,
    pub(super) fsync: String,
    pub(super) default_partitions: u32,
    pub(super) auto_create_topics: bool,
    pub(super) retention_check_ms: u64,
    pub(super) log_cleaner_backoff_ms: u64,
    pub(super) log_cleaner_io_max_bytes_per_second: Option<u64>,
    pub(super) connections_max: Option<usize>,
    pub(super) request_bytes_max: Option<usize>,
    pub(super) groups: GroupsConfig,
    pub(super) topics_max: Option<usize>,
    pub(super) partitions_max: Option<u32>,
    pub(super) http: weir_http::HttpLimits,
    pub(super) alerts: weir_alerts::AlertRules,
    pub(super) alert_interval_ms: u64,
    /// `None`: metrics off.
    pub(super) metrics: Option<weir_metrics::MetricsConfig>,
    /// Kafka names of the broker settings given explicitly, which
    /// DescribeConfigs reports as STATIC_BROKER_CONFIG.
    pub(super) static_configs: Vec<String>,
    /// Spans are exported (`--otlp-endpoint`): Kafka request spans are
    /// named by API.
    pub(super) export_spans: bool,
    /// Bearer tokens the HTTP API accepts (none: it asks for none).
    pub(super) bearer: weir_auth::bearer::BearerAuth,
    /// `None`: authorization off.
    pub(super) authorizer: Option<weir_auth::AuthorizerConfig>,
    /// SASL on the Kafka listener (`None`: off).
    pub(super) sasl: Option<weir_kafka::SaslConfig>,
}

impl ServeArgs {
    pub(super) fn resolve(self) -> anyhow::Result<Settings> {
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
        let listener_client_auth = listener_client_auth(
            self.listener_tls_client_auth
                .as_deref()
                .or(file.listener_tls_client_auth.as_deref()),
            &listeners,
            tls.as_ref(),
        )?;
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
            listener_client_auth,
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

/// `--listener-tls-client-auth NAME:MODE,…`: each name a TLS listener,
/// each mode `none`, `requested` or `required` (the last two need the
/// client CA).
fn listener_client_auth(
    text: Option<&str>,
    listeners: &[weir_kafka::listeners::ListenerSpec],
    tls: Option<&weir_tls::TlsFiles>,
) -> anyhow::Result<Vec<(String, weir_tls::ClientAuth)>> {
    let mut out: Vec<(String, weir_tls::ClientAuth)> = Vec::new();
    for entry in text.unwrap_or_default().split(',').map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let (name, mode) = entry.split_once(':').with_context(|| {
            format!(
                "--listener-tls-client-auth entry {entry:?} is not NAME:none|requested|required"
            )
        })?;
        let name = name.trim().to_ascii_uppercase();
        let auth: weir_tls::ClientAuth = mode
            .trim()
            .parse()
            .with_context(|| format!("in --listener-tls-client-auth {entry:?}"))?;
        let listener = listeners.iter().find(|l| l.name == name).with_context(|| {
            format!("--listener-tls-client-auth names {name:?}, which is not a listener")
        })?;
        anyhow::ensure!(
            listener.protocol.needs_tls(),
            "--listener-tls-client-auth names {name:?}, a {} listener: only SSL and SASL_SSL \
             listeners have client certificates",
            listener.protocol
        );
        anyhow::ensure!(
            auth == weir_tls::ClientAuth::None || tls.is_some_and(|t| t.client_ca.is_some()),
            "--listener-tls-client-auth {name}:{} needs --tls-client-ca",
            mode.trim()
        );
        anyhow::ensure!(
            !out.iter().any(|(n, _)| *n == name),
            "--listener-tls-client-auth names {name:?} twice"
        );
        out.push((name, auth));
    }
    Ok(out)
}

/// Kafka's `super.users`: principals separated by `;`, blanks ignored.
fn parse_super_users(list: &str) -> anyhow::Result<Vec<weir_auth::Principal>> {
    list.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| weir_auth::Principal::parse(p).with_context(|| format!("in super_users: {p:?}")))
        .collect()
}
