//! The BROKER config resource: the broker's settings under Kafka's names
//! (`listeners`, `log.dirs`, `num.partitions`, the group timeouts, and the
//! `log.*` defaults behind topic configs), with their sources, for
//! DescribeConfigs; and which of them can change live (the topic defaults,
//! applied through the broker) for the alter APIs.

use weir_broker::config_defs::{ConfigType, TOPIC_CONFIGS, topic_config_for_broker};
use weir_broker::{ConfigSource, DefaultsScope};

use crate::Shared;

/// Kafka's config source numbers.
pub(crate) const SOURCE_TOPIC: i8 = 1;
pub(crate) const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub(crate) const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub(crate) const SOURCE_STATIC_BROKER: i8 = 4;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

/// Kafka's config type numbers.
pub(crate) const TYPE_BOOLEAN: i8 = 1;
pub(crate) const TYPE_STRING: i8 = 2;
pub(crate) const TYPE_INT: i8 = 3;
pub(crate) const TYPE_SHORT: i8 = 4;
pub(crate) const TYPE_LONG: i8 = 5;
pub(crate) const TYPE_DOUBLE: i8 = 6;
pub(crate) const TYPE_LIST: i8 = 7;

pub(crate) fn type_code(kind: ConfigType) -> i8 {
    match kind {
        ConfigType::Boolean => TYPE_BOOLEAN,
        ConfigType::String => TYPE_STRING,
        ConfigType::Int => TYPE_INT,
        ConfigType::Long => TYPE_LONG,
        ConfigType::Double => TYPE_DOUBLE,
        ConfigType::List => TYPE_LIST,
    }
}

pub(crate) fn source_code(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::Topic => SOURCE_TOPIC,
        ConfigSource::DynamicBroker => SOURCE_DYNAMIC_BROKER,
        ConfigSource::DynamicDefaultBroker => SOURCE_DYNAMIC_DEFAULT_BROKER,
        ConfigSource::Default => SOURCE_DEFAULT,
    }
}

/// One described broker config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerEntry {
    pub name: &'static str,
    pub value: String,
    pub config_type: i8,
    pub source: i8,
    pub read_only: bool,
    pub doc: &'static str,
    /// `(name, value, source)` in precedence order, the effective first.
    pub synonyms: Vec<(&'static str, String, i8)>,
}

/// Which broker resource a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrokerTarget {
    /// The node id: every setting of this broker.
    Node,
    /// The empty name: the cluster-wide dynamic defaults.
    ClusterDefault,
}

/// Checks a BROKER resource name as Kafka does: this node's id or empty.
pub(crate) fn target(shared: &Shared, name: &str) -> Result<BrokerTarget, String> {
    if name.is_empty() {
        Ok(BrokerTarget::ClusterDefault)
    } else if name.parse::<i32>() == Ok(shared.config.node_id) {
        Ok(BrokerTarget::Node)
    } else {
        Err(format!(
            "unexpected broker id, expected {} or empty string, but received {name:?}",
            shared.config.node_id
        ))
    }
}

/// Settings that are the server's identity: always given to it.
const ALWAYS_STATIC: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "log.dirs",
];

/// The broker's fixed settings: (name, value, type, doc).
fn fixed(shared: &Shared) -> Vec<(&'static str, String, i8, &'static str)> {
    let (c, b, g) = (
        &shared.config,
        shared.broker.config(),
        shared.groups.config(),
    );
    let list = |addr: &dyn Fn(&crate::Endpoint) -> String| {
        shared
            .listeners
            .iter()
            .map(|l| format!("{}://{}", l.name, addr(l)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let advertised = list(&|l| format!("{}:{}", l.advertised_host, l.advertised_port));
    let offsets = shared.broker.topic("__consumer_offsets").ok();
    let mut out = vec![
        (
            "advertised.listeners",
            advertised,
            TYPE_STRING,
            "Where clients are told to connect, per listener (--advertised-listeners).",
        ),
        (
            "auto.create.topics.enable",
            b.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
            "Whether Metadata requests may create topics.",
        ),
        (
            "broker.id",
            c.node_id.to_string(),
            TYPE_INT,
            "This broker's id (the node id).",
        ),
        (
            "default.replication.factor",
            "1".into(),
            TYPE_INT,
            "Copies of each partition: one node keeps one.",
        ),
        (
            "fetch.max.bytes",
            c.fetch_bytes_max.to_string(),
            TYPE_INT,
            "Most bytes one Fetch response carries, whatever it asks.",
        ),
        (
            "group.consumer.heartbeat.interval.ms",
            g.consumer_heartbeat_interval_ms.to_string(),
            TYPE_INT,
            "Heartbeat interval of consumer-protocol (KIP-848) members.",
        ),
        (
            "group.consumer.session.timeout.ms",
            g.consumer_session_timeout_ms.to_string(),
            TYPE_INT,
            "Session timeout of consumer-protocol (KIP-848) members.",
        ),
        (
            "group.initial.rebalance.delay.ms",
            g.initial_rebalance_delay_ms.to_string(),
            TYPE_INT,
            "How long a new group's first rebalance waits for more members.",
        ),
        (
            "group.max.session.timeout.ms",
            g.session_timeout_ms_max.to_string(),
            TYPE_INT,
            "Longest session timeout a classic group member may ask for.",
        ),
        (
            "group.max.size",
            g.members_max.to_string(),
            TYPE_INT,
            "Most members of one group.",
        ),
        (
            "group.min.session.timeout.ms",
            g.session_timeout_ms_min.to_string(),
            TYPE_INT,
            "Shortest session timeout a classic group member may ask for.",
        ),
        (
            "group.share.heartbeat.interval.ms",
            g.share_heartbeat_interval_ms.to_string(),
            TYPE_INT,
            "Heartbeat interval of share group (KIP-932) members.",
        ),
        (
            "group.share.max.size",
            g.share_members_max.to_string(),
            TYPE_INT,
            "Most members of one share group.",
        ),
        (
            "group.share.session.timeout.ms",
            g.share_session_timeout_ms.to_string(),
            TYPE_INT,
            "Session timeout of share group (KIP-932) members.",
        ),
        (
            "listener.security.protocol.map",
            shared
                .listeners
                .iter()
                .map(|l| format!("{}:{}", l.name, l.protocol))
                .collect::<Vec<_>>()
                .join(","),
            TYPE_STRING,
            "Each listener's security protocol (--listener-security-protocol-map).",
        ),
        (
            "listeners",
            list(&|l| l.bound.to_string()),
            TYPE_STRING,
            "The addresses the Kafka listeners are bound to (--listeners).",
        ),
        (
            "log.dirs",
            shared.broker.data_dir().root().display().to_string(),
            TYPE_STRING,
            "The data directory (--data-dir).",
        ),
        (
            "max.connections",
            c.connections_max.to_string(),
            TYPE_INT,
            "Most client connections at once (--connections-max).",
        ),
        (
            "node.id",
            c.node_id.to_string(),
            TYPE_INT,
            "This node's id.",
        ),
        (
            "num.partitions",
            b.default_partitions.to_string(),
            TYPE_INT,
            "Partitions of topics created without a count (--default-partitions).",
        ),
        (
            "offsets.topic.replication.factor",
            "1".into(),
            TYPE_SHORT,
            "Copies of the committed-offsets topic: one node keeps one.",
        ),
        (
            "process.roles",
            "broker,controller".into(),
            TYPE_LIST,
            "The roles of this node: a combined broker and controller.",
        ),
        (
            "socket.request.max.bytes",
            c.request_bytes_max.to_string(),
            TYPE_INT,
            "Largest request accepted (--request-bytes-max).",
        ),
    ];
    if let Some(t) = offsets {
        out.push((
            "offsets.topic.num.partitions",
            t.partition_count().to_string(),
            TYPE_INT,
            "Partitions of the committed-offsets topic.",
        ));
        out.push((
            "offsets.topic.segment.bytes",
            t.config().get("segment.bytes").to_owned(),
            TYPE_INT,
            "Segment size of the committed-offsets topic.",
        ));
    }
    out
}

/// Every setting of this broker (`Node`), or the cluster-wide dynamic
/// defaults alone (`ClusterDefault`), sorted by name.
pub(crate) fn entries(shared: &Shared, target: BrokerTarget) -> Vec<BrokerEntry> {
    let defaults = shared.broker.topic_defaults();
    let mut out = Vec::new();
    for def in TOPIC_CONFIGS {
        let Some(name) = def.broker_name else {
            continue;
        };
        let mut synonyms = Vec::new();
        if target == BrokerTarget::Node
            && let Some(v) = defaults.node.get(def.name)
        {
            synonyms.push((name, v.clone(), SOURCE_DYNAMIC_BROKER));
        }
        if let Some(v) = defaults.cluster.get(def.name) {
            synonyms.push((name, v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER));
        }
        if target == BrokerTarget::ClusterDefault && synonyms.is_empty() {
            continue;
        }
        if target == BrokerTarget::Node {
            synonyms.push((name, def.default.to_owned(), SOURCE_DEFAULT));
        }
        out.push(BrokerEntry {
            name,
            value: synonyms[0].1.clone(),
            config_type: type_code(def.kind),
            source: synonyms[0].2,
            read_only: false,
            doc: def.doc,
            synonyms,
        });
    }
    if target == BrokerTarget::Node {
        for (name, value, config_type, doc) in fixed(shared) {
            let set = ALWAYS_STATIC.contains(&name)
                || shared.config.static_configs.iter().any(|s| s == name);
            let source = if set {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            out.push(BrokerEntry {
                name,
                synonyms: vec![(name, value.clone(), source)],
                value,
                config_type,
                source,
                read_only: true,
                doc,
            });
        }
    }
    out.sort_by_key(|e| e.name);
    out
}

/// Applies changes to broker configs: the `log.*` defaults of topic
/// configs change live; any other setting is fixed at start and refused
/// as Kafka refuses a static config. Returns the error code and message.
pub(crate) fn alter(
    shared: &Shared,
    target: BrokerTarget,
    changes: &[(String, Option<String>)],
    validate_only: bool,
) -> Result<(), (crate::codes::Code, String)> {
    use crate::codes::Code;
    let fixed_names: Vec<&str> = fixed(shared).iter().map(|f| f.0).collect();
    let mut topic_changes: Vec<(&str, Option<&str>)> = Vec::new();
    let mut read_only = Vec::new();
    for (name, value) in changes {
        match topic_config_for_broker(name) {
            Some(def) => topic_changes.push((def.name, value.as_deref())),
            None if fixed_names.contains(&name.as_str()) => read_only.push(name.as_str()),
            None => {
                return Err((
                    Code::InvalidConfig,
                    format!("unknown broker config {name:?}"),
                ));
            }
        }
    }
    if !read_only.is_empty() {
        return Err((
            Code::InvalidRequest,
            format!(
                "cannot update these configs dynamically: {}",
                read_only.join(", ")
            ),
        ));
    }
    let scope = match target {
        BrokerTarget::Node => DefaultsScope::Node,
        BrokerTarget::ClusterDefault => DefaultsScope::Cluster,
    };
    shared
        .broker
        .set_topic_defaults(scope, &topic_changes, validate_only)
        .map_err(|e| (crate::codes::for_broker_error(&e), e.to_string()))
}
