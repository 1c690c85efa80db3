//! `weir-kafka`: the Kafka wire-protocol server. Frames come off a socket,
//! are decoded with the `kafka-protocol` crate, handled by one module per
//! API over `weir-broker`, and the responses encoded back. Only this crate
//! knows Kafka's request and response types.
//!
//! [`run`] serves a bound listener until `shutdown` resolves, so tests bind
//! port 0 and stop the server when they are done; [`run_listeners`] serves
//! several (`PLAINTEXT`, `SSL`, ... as Kafka names them, [`listeners`]).

mod alloc;
mod apis;
mod authz;
pub mod client_protocol;
mod codes;
mod conn;
pub mod listeners;
mod sasl;
mod share_sessions;
mod txn;
mod txn_offsets;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use weir_broker::Broker;
use weir_deadletter::queue_slot::QueueSlot;
use weir_groups::Coordinator;

pub use alloc::GuardedAllocator;
pub use codes::{Code, for_broker_error, for_group_error};
pub use conn::decode_request;
pub use listeners::{Endpoint, Listener, ListenerError, ProtocolMap, SecurityProtocol};
pub use sasl::SaslConfig;
pub use weir_auth::SaslMechanism;

/// Settings and limits of the Kafka listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Host and port clients are told to connect to (Metadata), for the
    /// one listener of [`run`] ([`run_listeners`] takes them per
    /// listener).
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Most client connections at once; more wait to be accepted.
    pub connections_max: usize,
    /// Largest Produce request frame accepted.
    pub request_bytes_max: usize,
    /// Largest frame of any other request: they carry no records, and a
    /// small cap bounds what the decoder may allocate from counts on the
    /// wire.
    pub admin_request_bytes_max: usize,
    /// Longest a Fetch may wait for data, whatever it asks.
    pub fetch_wait_ms_max: u64,
    /// Most bytes one Fetch response carries, whatever it asks (the first
    /// batch excepted, as in KIP-74).
    pub fetch_bytes_max: usize,
    /// Broker node id reported to clients.
    pub node_id: i32,
    pub cluster_id: String,
    /// Kafka names of the broker settings the operator set (flags, the
    /// environment or the config file), described with the source
    /// STATIC_BROKER_CONFIG; the rest are DEFAULT_CONFIG.
    pub static_configs: Vec<String>,
    /// Name each request's span by its API (`otel.name`, for a span
    /// exporter); off, the spans are all `kafka.request` and the name
    /// costs nothing per request.
    pub name_request_spans: bool,
    /// Share groups (KIP-932): how long a ShareFetch's records stay
    /// acquired (`group.share.record.lock.duration.ms`).
    pub share_lock_ms: i64,
    /// How often a share group's record is delivered at most
    /// (`group.share.delivery.count.limit`).
    pub share_delivery_limit: u16,
    /// Where a share group starts on a partition it has no state for:
    /// the log start (`earliest`) or its end (`latest`, Kafka's default
    /// for `share.auto.offset.reset`).
    pub share_start_earliest: bool,
    /// Most share sessions open at once (`group.share.max.share.sessions`).
    pub share_sessions_max: usize,
    /// SASL on this listener (`None`: no authentication, every client is
    /// `User:ANONYMOUS`). With several listeners this is the
    /// SASL_PLAINTEXT / SASL_SSL listener's.
    pub sasl: Option<SaslConfig>,
}

impl ServerConfig {
    /// Defaults for a listener at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            advertised_host: addr.ip().to_string(),
            advertised_port: addr.port(),
            connections_max: 1024,
            request_bytes_max: 100 * 1024 * 1024,
            admin_request_bytes_max: 1024 * 1024,
            fetch_wait_ms_max: 30_000,
            fetch_bytes_max: 64 * 1024 * 1024,
            node_id: 0,
            cluster_id: "weir-cluster".to_owned(),
            static_configs: Vec::new(),
            name_request_spans: false,
            share_lock_ms: 30_000,
            share_delivery_limit: 5,
            share_start_earliest: false,
            share_sessions_max: 2_000,
            sasl: None,
        }
    }
}

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub broker: Arc<Broker>,
    pub groups: Arc<Coordinator>,
    pub config: ServerConfig,
    /// The listeners served (`listeners` and `advertised.listeners`).
    pub listeners: Vec<Arc<Endpoint>>,
    /// Where request latencies, connections and refusals are counted
    /// (`None`: metrics off).
    pub recorder: Option<Arc<weir_metrics::Recorder>>,
    /// The transaction coordinator (`None` if its log could not be read
    /// at start: transactional calls are then answered
    /// COORDINATOR_NOT_AVAILABLE).
    pub txns: Option<Arc<txn::Transactions>>,
    /// The queue manager share groups acquire and acknowledge through
    /// (one per server, shared with the HTTP queue API).
    pub queues: Arc<QueueSlot>,
    /// Open share sessions (ShareFetch, ShareAcknowledge).
    pub share_sessions: share_sessions::ShareSessions,
    /// Group configs set over Kafka (`share.auto.offset.reset`).
    pub group_configs: apis::GroupConfigs,
    /// Whether a caller may do what it asks (disabled: everything is
    /// allowed); shared with the HTTP API by `weir serve`.
    pub authorizer: Arc<weir_auth::Authorizer>,
    /// SCRAM credentials of the data directory (SASL, and
    /// Describe/AlterUserScramCredentials); `None` if the store could not
    /// be read at start (authentication then fails, changes are refused).
    pub credentials: Option<Arc<weir_auth::CredentialStore>>,
    /// The OAUTHBEARER token validator (`None`: OAUTHBEARER not offered).
    pub jwt: Option<Arc<weir_auth::bearer::JwtValidator>>,
}

impl Shared {
    /// The transaction coordinator, or the retriable refusal of a server
    /// whose transaction log could not be read at start.
    pub fn transactions(&self) -> Result<&txn::Transactions, weir_txn::TxnError> {
        self.txns.as_deref().ok_or_else(|| {
            weir_txn::TxnError::Storage("the transaction coordinator did not start".into())
        })
    }
}

/// Longest the group coordinator goes unchecked. It is called again when
/// its next deadline comes, so sessions and rebalances end on time; a
/// deadline set meanwhile (a new member's) ends at most this late.
const GROUP_TICK_MS: u64 = 100;

/// How often committed offsets are considered for a snapshot (which lets
/// old segments of `__consumer_offsets` go).
const OFFSETS_MAINTAIN_MS: u64 = 10_000;

/// Serves Kafka clients on `listener` until `shutdown` resolves; then stops
/// accepting, lets each connection finish the request it is handling, and
/// returns. `groups` coordinates the consumer groups over `broker`.
pub async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    groups: Arc<Coordinator>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    run_recorded(listener, broker, groups, config, None, shutdown).await;
}

/// [`run`], counting connections, request latencies per API and frames
/// refused by a size limit in `recorder` (if given).
pub async fn run_recorded(
    listener: TcpListener,
    broker: Arc<Broker>,
    groups: Arc<Coordinator>,
    config: ServerConfig,
    recorder: Option<Arc<weir_metrics::Recorder>>,
    shutdown: impl Future<Output = ()>,
) {
    let parts = ServerParts {
        recorder,
        ..ServerParts::default()
    };
    run_with(listener, broker, groups, config, parts, shutdown).await;
}

/// What a server may share with the rest of the process, each optional:
/// `weir serve` hands the HTTP API the same queue manager and authorizer.
#[derive(Debug, Default)]
pub struct ServerParts {
    /// Where connections, request latencies per API and frames refused by
    /// a size limit are counted (`None`: metrics off).
    pub recorder: Option<Arc<weir_metrics::Recorder>>,
    /// The queue manager share groups' records are kept by (`None`: one
    /// of the server's own, opened on first use).
    pub queues: Option<Arc<QueueSlot>>,
    /// The ACLs every request is checked against (`None`: authorization
    /// off, everything allowed, as Kafka without an authorizer).
    pub authorizer: Option<Arc<weir_auth::Authorizer>>,
    /// What SASL OAUTHBEARER tokens are checked with (`weir serve` hands
    /// over the HTTP API's JWT validator); `None`: OAUTHBEARER is not
    /// offered, even if [`SaslConfig::mechanisms`] lists it.
    pub jwt: Option<Arc<weir_auth::bearer::JwtValidator>>,
}

/// [`run`] with the parts given in `parts`.
pub async fn run_with(
    listener: TcpListener,
    broker: Arc<Broker>,
    groups: Arc<Coordinator>,
    config: ServerConfig,
    parts: ServerParts,
    shutdown: impl Future<Output = ()>,
) {
    let advertised = (config.advertised_host.clone(), config.advertised_port);
    // One listener: SASL_PLAINTEXT when the config enables SASL.
    let protocol = if config.sasl.is_some() {
        SecurityProtocol::SaslPlaintext
    } else {
        SecurityProtocol::Plaintext
    };
    let listener = Listener::new(protocol, listener, Some(advertised), None)
        .expect("a listener without TLS needs no TLS config");
    run_listeners(vec![listener], broker, groups, config, parts, shutdown).await;
}

/// Serves Kafka clients on every listener until `shutdown` resolves; then
/// stops accepting, lets each connection finish the request it is
/// handling, and returns. `config.connections_max` bounds the connections
/// of all listeners together; each connection is told its own listener's
/// advertised address.
pub async fn run_listeners(
    listeners: Vec<Listener>,
    broker: Arc<Broker>,
    groups: Arc<Coordinator>,
    config: ServerConfig,
    parts: ServerParts,
    shutdown: impl Future<Output = ()>,
) {
    let ServerParts {
        recorder,
        queues,
        authorizer,
        jwt,
    } = parts;
    let queues = queues.unwrap_or_else(|| Arc::new(QueueSlot::new(broker.clone())));
    let authorizer = authorizer.unwrap_or_else(|| Arc::new(weir_auth::Authorizer::disabled()));
    let limit = Arc::new(Semaphore::new(config.connections_max));
    let (b, g) = (broker.clone(), groups.clone());
    let txns = match tokio::task::spawn_blocking(move || txn::Transactions::open(b, g)).await {
        Ok(Ok(t)) => Some(Arc::new(t)),
        Ok(Err(e)) => {
            tracing::error!(%e, "the transaction log is unreadable: transactions are refused");
            None
        }
        Err(e) => {
            tracing::error!(%e, "opening the transaction coordinator panicked");
            None
        }
    };
    let txn_timers = txns.clone().map(|t| tokio::spawn(txn::timers(t)));
    let root = broker.data_dir().root().to_owned();
    let credentials = match apis::blocking(move || weir_auth::CredentialStore::open(&root)).await {
        Ok(store) => Some(Arc::new(store)),
        Err(e) => {
            tracing::error!(%e, "the SCRAM credential store is unreadable: SASL authentication fails");
            None
        }
    };
    let shared = Arc::new(Shared {
        broker,
        groups: groups.clone(),
        listeners: listeners.iter().map(|l| l.endpoint.clone()).collect(),
        recorder,
        txns,
        queues,
        share_sessions: share_sessions::ShareSessions::new(config.share_sessions_max),
        group_configs: apis::GroupConfigs::default(),
        authorizer,
        credentials,
        jwt,
        config,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let timers = tokio::spawn(group_timers(groups));
    let share_upkeep = tokio::spawn(apis::share_upkeep(shared.clone()));
    let mut accepting = tokio::task::JoinSet::new();
    for listener in listeners {
        accepting.spawn(accept_loop(
            listener,
            shared.clone(),
            limit.clone(),
            stop_rx.clone(),
        ));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    timers.abort();
    share_upkeep.abort();
    if let Some(t) = txn_timers {
        t.abort();
    }
    while accepting.join_next().await.is_some() {}
}

/// Accepts one listener's connections until `stop`, then waits for them
/// to end. A TLS listener's handshake runs in the connection's task, so a
/// slow or broken client holds up nobody else.
async fn accept_loop(
    listener: Listener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = stopping(&mut stop) => break,
            permit = limit.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (socket, peer) = tokio::select! {
            () = stopping(&mut stop) => break,
            accepted = listener.socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(%e, listener = %listener.endpoint.name, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let (shared, stop, endpoint) = (shared.clone(), stop.clone(), listener.endpoint.clone());
        let counted = shared
            .recorder
            .as_ref()
            .map(|r| r.connection(weir_metrics::Listener::Kafka));
        match &listener.tls {
            None => {
                let anonymous = authz::anonymous();
                tasks.spawn(async move {
                    conn::serve(socket, peer, endpoint, anonymous, shared, stop).await;
                    drop((permit, counted));
                });
            }
            Some(tls) => {
                let tls = tls.clone();
                let mut stop_handshake = stop.clone();
                tasks.spawn(async move {
                    let accepted = tokio::select! {
                        () = stopping(&mut stop_handshake) => return,
                        accepted = tls.accept(socket) => accepted,
                    };
                    match accepted {
                        Ok((stream, principal)) => {
                            conn::serve(stream, peer, endpoint, principal, shared, stop).await;
                        }
                        Err(e) => {
                            tracing::info!(%peer, %e, listener = %endpoint.name, "TLS handshake failed");
                        }
                    }
                    drop((permit, counted));
                });
            }
        }
        // Reap finished connections so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true.
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Ends what time ends in the group coordinator (sessions, rebalances) at
/// its deadlines, and snapshots committed offsets now and then.
async fn group_timers(groups: Arc<Coordinator>) {
    use std::time::Duration;
    let tick_max = Duration::from_millis(GROUP_TICK_MS);
    let maintain_every = Duration::from_millis(OFFSETS_MAINTAIN_MS);
    let mut maintained_at = tokio::time::Instant::now();
    loop {
        let next = groups.tick().map_or(tick_max, |d| d.min(tick_max));
        // A deadline that is due now has just been handled; wait at least
        // a millisecond (the timer's resolution) for the next one.
        tokio::time::sleep(next.max(Duration::from_millis(1))).await;
        if maintained_at.elapsed() >= maintain_every {
            maintained_at = tokio::time::Instant::now();
            let g = groups.clone();
            let maintained = tokio::task::spawn_blocking(move || g.offsets().maintain()).await;
            if let Ok(Err(e)) = maintained {
                tracing::warn!(%e, "snapshotting committed offsets failed");
            }
        }
    }
}
