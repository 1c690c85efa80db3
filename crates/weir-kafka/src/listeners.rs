//! Listeners as Kafka names them, written `NAME://host:port` in `listeners`
//! and `advertised.listeners`: a name is a security protocol (`PLAINTEXT`,
//! `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`) or one that
//! `listener.security.protocol.map` maps to one (`INTERNAL:PLAINTEXT`),
//! so two listeners may share a protocol. Each connection knows the
//! listener it came through: its name, its security protocol (whether TLS
//! and SASL apply) and the address Metadata, DescribeCluster and
//! FindCoordinator advertise to it.

use std::net::SocketAddr;
use std::sync::Arc;

/// Most listeners one server opens.
pub const LISTENERS_MAX: usize = 16;

/// A listener's security protocol (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name for it, which is also the listener's name here.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Plaintext,
            Self::Ssl,
            Self::SaslPlaintext,
            Self::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Connections are TLS from their first byte.
    pub fn needs_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Clients authenticate with SASL before any other request.
    pub fn needs_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a listener list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    #[error("listener {0:?} is not of the form NAME://host:port (PLAINTEXT://127.0.0.1:9092)")]
    Form(String),
    #[error(
        "listener name {0:?} is not a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, \
         SASL_SSL) and the listener security protocol map does not name it"
    )]
    UnknownName(String),
    #[error("listener {0} is named twice")]
    Duplicate(String),
    #[error("{0} listeners given, at most {LISTENERS_MAX}")]
    TooMany(usize),
    #[error("no listener given")]
    Empty,
    #[error("advertised listener {0} has no listener of that name")]
    NotListening(String),
    #[error(
        "listener security protocol map entry {0:?} is not NAME:PROTOCOL (INTERNAL:PLAINTEXT), \
         PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
    )]
    MapEntry(String),
    #[error("{0} listener needs a TLS certificate and key")]
    NeedsTls(SecurityProtocol),
}

/// `listener.security.protocol.map`: listener names beyond the protocols'
/// own, each mapped to a security protocol. A protocol's name always
/// names itself unless the map says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolMap(Vec<(String, SecurityProtocol)>);

impl ProtocolMap {
    /// Parses `NAME:PROTOCOL[,NAME:PROTOCOL…]`; names are upper-cased and
    /// unique.
    pub fn parse(text: &str) -> Result<Self, ListenerError> {
        let mut map = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || ListenerError::MapEntry(entry.to_owned());
            let (name, protocol) = entry.split_once(':').ok_or_else(bad)?;
            let name = name.trim().to_ascii_uppercase();
            if !valid_name(&name) {
                return Err(bad());
            }
            let protocol = SecurityProtocol::from_name(protocol.trim()).ok_or_else(bad)?;
            if map.iter().any(|(n, _)| *n == name) {
                return Err(ListenerError::Duplicate(name));
            }
            map.push((name, protocol));
        }
        if map.len() > LISTENERS_MAX {
            return Err(ListenerError::TooMany(map.len()));
        }
        Ok(Self(map))
    }

    /// The protocol of the listener named `name`.
    pub fn protocol(&self, name: &str) -> Option<SecurityProtocol> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, p)| *p)
            .or_else(|| SecurityProtocol::from_name(name))
    }
}

/// Kafka's listener names: letters, digits and `_`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One `NAME://host:port` of a listener list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The listener's name, upper-cased (`PLAINTEXT`, `INTERNAL`).
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Empty: every interface (for binding).
    pub host: String,
    pub port: u16,
}

impl ListenerSpec {
    /// What to bind: `host:port` (`[v6]:port`), all interfaces for an
    /// empty host.
    pub fn bind_addr(&self) -> String {
        match self.host.as_str() {
            "" => format!("0.0.0.0:{}", self.port),
            h if h.contains(':') => format!("[{h}]:{}", self.port),
            h => format!("{h}:{}", self.port),
        }
    }
}

/// Parses a comma-separated listener list, names resolved through `map`;
/// names are unique.
pub fn parse_listeners(text: &str, map: &ProtocolMap) -> Result<Vec<ListenerSpec>, ListenerError> {
    let specs = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|one| parse_one(one, map))
        .collect::<Result<Vec<_>, _>>()?;
    if specs.is_empty() {
        return Err(ListenerError::Empty);
    }
    if specs.len() > LISTENERS_MAX {
        return Err(ListenerError::TooMany(specs.len()));
    }
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(ListenerError::Duplicate(s.name.clone()));
        }
    }
    Ok(specs)
}

fn parse_one(text: &str, map: &ProtocolMap) -> Result<ListenerSpec, ListenerError> {
    let form = || ListenerError::Form(text.to_owned());
    let (name, rest) = text.split_once("://").ok_or_else(form)?;
    let protocol = map
        .protocol(name)
        .ok_or_else(|| ListenerError::UnknownName(name.into()))?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(form)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.contains(['/', ' ', '[', ']']) {
        return Err(form());
    }
    let port = port.parse().map_err(|_| form())?;
    Ok(ListenerSpec {
        name: name.to_ascii_uppercase(),
        protocol,
        host: host.to_owned(),
        port,
    })
}

/// A listener as its connections see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener's name (`SSL`, `INTERNAL`).
    pub name: String,
    pub protocol: SecurityProtocol,
    /// The address it is bound to.
    pub bound: SocketAddr,
    /// Where its clients are told to connect.
    pub advertised_host: String,
    pub advertised_port: u16,
}

/// A bound listener to serve: what [`crate::run_listeners`] takes.
#[derive(Debug)]
pub struct Listener {
    pub endpoint: Arc<Endpoint>,
    pub socket: tokio::net::TcpListener,
    /// The TLS material of an `SSL` or `SASL_SSL` listener.
    pub tls: Option<Arc<weir_tls::TlsServer>>,
}

impl Listener {
    /// A listener on `socket`, advertised as `advertised` (host, port) or
    /// else its bound address; `tls` is needed by `SSL` and `SASL_SSL`
    /// and ignored by the others.
    pub fn new(
        protocol: SecurityProtocol,
        socket: tokio::net::TcpListener,
        advertised: Option<(String, u16)>,
        tls: Option<Arc<weir_tls::TlsServer>>,
    ) -> Result<Self, ListenerError> {
        Self::named(protocol.name(), protocol, socket, advertised, tls)
    }

    /// As [`Listener::new`], for a listener named `name` (its
    /// [`ListenerSpec::name`]).
    pub fn named(
        name: &str,
        protocol: SecurityProtocol,
        socket: tokio::net::TcpListener,
        advertised: Option<(String, u16)>,
        tls: Option<Arc<weir_tls::TlsServer>>,
    ) -> Result<Self, ListenerError> {
        if protocol.needs_tls() && tls.is_none() {
            return Err(ListenerError::NeedsTls(protocol));
        }
        let bound = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (advertised_host, advertised_port) =
            advertised.unwrap_or_else(|| (bound.ip().to_string(), bound.port()));
        Ok(Self {
            endpoint: Arc::new(Endpoint {
                name: name.to_owned(),
                protocol,
                bound,
                advertised_host,
                advertised_port,
            }),
            socket,
            tls: tls.filter(|_| protocol.needs_tls()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_listener_lists() {
        let none = ProtocolMap::default();
        let specs = parse_listeners(
            "PLAINTEXT://127.0.0.1:9092, SSL://localhost:9093,sasl_ssl://[::1]:0",
            &none,
        )
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(specs[0].bind_addr(), "127.0.0.1:9092");
        assert_eq!(specs[1].host, "localhost");
        assert_eq!(specs[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(specs[2].name, "SASL_SSL");
        assert_eq!(specs[2].bind_addr(), "[::1]:0");
        let any = parse_listeners("PLAINTEXT://:9092", &none).unwrap();
        assert_eq!(any[0].bind_addr(), "0.0.0.0:9092");
        assert!(SecurityProtocol::SaslSsl.needs_tls() && SecurityProtocol::SaslSsl.needs_sasl());
        assert!(!SecurityProtocol::Ssl.needs_sasl() && !SecurityProtocol::Plaintext.needs_tls());
    }

    #[test]
    fn named_listeners_share_a_protocol_through_the_map() {
        let map = ProtocolMap::parse("internal:PLAINTEXT, EXTERNAL:sasl_ssl,SSL:SASL_SSL").unwrap();
        let specs = parse_listeners(
            "PLAINTEXT://:9092,INTERNAL://127.0.0.1:9093,External://0.0.0.0:9094,SSL://:9095",
            &map,
        )
        .unwrap();
        let got: Vec<_> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.protocol))
            .collect();
        assert_eq!(
            got,
            [
                ("PLAINTEXT", SecurityProtocol::Plaintext),
                ("INTERNAL", SecurityProtocol::Plaintext),
                ("EXTERNAL", SecurityProtocol::SaslSsl),
                // The map may rename a protocol's own name.
                ("SSL", SecurityProtocol::SaslSsl),
            ]
        );
        let bad = |t: &str| ProtocolMap::parse(t).unwrap_err();
        assert!(matches!(bad("INTERNAL"), ListenerError::MapEntry(_)));
        assert!(matches!(bad("INTERNAL:TLS"), ListenerError::MapEntry(_)));
        assert!(matches!(bad("IN-TERNAL:SSL"), ListenerError::MapEntry(_)));
        assert_eq!(
            bad("A:SSL,a:PLAINTEXT"),
            ListenerError::Duplicate("A".into())
        );
        assert_eq!(
            parse_listeners("INTERNAL://:1,internal://:2", &map).unwrap_err(),
            ListenerError::Duplicate("INTERNAL".into())
        );
    }

    #[test]
    fn refuses_bad_lists() {
        let err = |t: &str| parse_listeners(t, &ProtocolMap::default()).unwrap_err();
        assert!(matches!(err("127.0.0.1:9092"), ListenerError::Form(_)));
        assert!(matches!(err("PLAINTEXT://host"), ListenerError::Form(_)));
        assert!(matches!(err("PLAINTEXT://h:99999"), ListenerError::Form(_)));
        assert!(matches!(
            err("INTERNAL://h:1"),
            ListenerError::UnknownName(_)
        ));
        assert_eq!(
            err("SSL://a:1,SSL://b:2"),
            ListenerError::Duplicate("SSL".into())
        );
        assert_eq!(err(" , "), ListenerError::Empty);
    }
}
