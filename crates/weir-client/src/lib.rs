//! `weir-client`: a blocking client of Weir's HTTP/JSON API (`/v1/...`),
//! speaking the `weir-api` types. The `weir` command's API subcommands use
//! it; every error the server answers with comes back as its RFC 9457
//! [`Problem`], so callers can act on the stable `code` (the schema
//! registry's Confluent-shaped errors too, their numeric `error_code` as
//! the code).
//!
//! ```no_run
//! use weir_client::Client;
//! let client = Client::new("http://127.0.0.1:8080")?;
//! for topic in client.topics()?.topics {
//!     println!("{} ({} partitions)", topic.name, topic.partitions);
//! }
//! # Ok::<(), weir_client::ClientError>(())
//! ```

mod acls;
mod queues;
mod sagas;
mod schemas;
mod sse;
mod subscriptions;

use std::time::Duration;

pub use acls::AclQuery;
pub use sagas::SagaFilter;
pub use schemas::{
    CompatibilityAnswer, REGISTRY_MEDIA, Registered, SchemaBody, SchemaReference, SubjectSchema,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use sse::{SseEvent, SseStream};
use weir_api::{
    AlterConfigs, Append, Appended, CreateTopic, Events, GroupInfo, GroupList, Loaded, Problem,
    Produce, ProduceResult, Records, ResetOffsets, ResetResult, SnapshotIn, StreamMetadata,
    TopicInfo, TopicList,
};

const JSON: &str = "application/json";

/// How long connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response body the client reads, in bytes.
pub const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{} ({}): {}", .0.title, .0.code, .0.detail)]
    Problem(Box<Problem>),
    /// The server could not be reached, or the connection broke.
    #[error("cannot talk to the server at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The server answered something this client does not understand.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// The server address is not an `http://` or `https://` URL, or
    /// the CA given for HTTPS is not a PEM certificate.
    #[error("invalid server address {address:?}: {reason}")]
    Address {
        address: String,
        reason: &'static str,
    },
}

impl ClientError {
    /// The HTTP status of a problem answer, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem(p) => Some(p.status),
            _ => None,
        }
    }

    /// The problem's stable code, if the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Problem(p) => Some(&p.code),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Which way a read pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        }
    }
}

/// A page of a stream or of the global order: where to start and how
/// many at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// A version (stream reads) or a global position; `None` is the start
    /// (forward) or the end (backward).
    pub from: Option<u64>,
    pub direction: Direction,
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            from: None,
            direction: Direction::Forward,
            limit: 100,
        }
    }
}

/// What a live subscription follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribe {
    /// Every event, by global position.
    All,
    /// A category's streams, by global position.
    Category(String),
    /// One stream, by version.
    Stream(String),
}

/// A connection-reusing client of one Weir server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// Sent as `Authorization: Bearer` on every request, if set.
    token: Option<String>,
}

/// Percent-encodes one path segment (everything but RFC 3986's
/// unreserved characters), so stream ids like `$$orders-1` or `a b` stay
/// one segment.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The schema registry's error body (`{"error_code": 40401, "message":
/// ...}`, Confluent's shape, which its clients parse) as a problem: the
/// numeric code becomes the problem's `code`, so callers handle both
/// kinds of refusal alike.
pub(crate) fn registry_problem(status: u16, body: &[u8]) -> Option<Problem> {
    #[derive(serde::Deserialize)]
    struct RegistryError {
        error_code: i64,
        message: String,
    }
    let e: RegistryError = serde_json::from_slice(body).ok()?;
    Some(Problem {
        kind: format!("urn:weir:schema-registry:{}", e.error_code),
        title: "schema registry error".to_owned(),
        status,
        detail: e.message,
        code: e.error_code.to_string(),
        kafka_error_code: None,
        expected_version: None,
        actual_version: None,
        event_index: None,
        event_id: None,
    })
}

impl Client {
    /// A client of the server at `address` (`http://host:port`, or
    /// `host:port`); a read or write that waits 30 s fails.
    pub fn new(address: &str) -> Result<Self> {
        Self::with_timeout(address, Some(Duration::from_secs(30)))
    }

    /// A client whose reads and writes fail after waiting `timeout`
    /// (`None`: never, for live streams).
    pub fn with_timeout(address: &str, timeout: Option<Duration>) -> Result<Self> {
        Self::build(address, timeout, None)
    }

    /// A client of a server serving HTTPS (`weir serve --http-tls`) with
    /// a certificate that `ca_pem` (PEM, one or more certificates) signed;
    /// `address` is `https://host:port` or `host:port`.
    pub fn with_ca(address: &str, ca_pem: &[u8], timeout: Option<Duration>) -> Result<Self> {
        Self::with_tls(address, ca_pem, None, timeout)
    }

    /// As [`Client::with_ca`], presenting `identity` (a PEM certificate
    /// chain and its PEM private key) to a server that asks for client
    /// certificates (`--tls-client-auth`).
    pub fn with_tls(
        address: &str,
        ca_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
        timeout: Option<Duration>,
    ) -> Result<Self> {
        let address = if address.contains("://") {
            address.to_owned()
        } else {
            format!("https://{address}")
        };
        let bad = |reason| ClientError::Address {
            address: address.clone(),
            reason,
        };
        let roots = ureq::tls::parse_pem(ca_pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(_) => Some(Err(bad("the CA is not valid PEM"))),
            })
            .collect::<Result<Vec<_>>>()?;
        if roots.is_empty() {
            return Err(bad("the CA holds no PEM certificate"));
        }
        let client_cert = match identity {
            None => None,
            Some((cert_pem, key_pem)) => {
                let chain = ureq::tls::parse_pem(cert_pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                        Ok(_) => None,
                        Err(_) => Some(Err(bad("the client certificate is not valid PEM"))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                if chain.is_empty() {
                    return Err(bad("the client certificate file holds no PEM certificate"));
                }
                let key = ureq::tls::parse_pem(key_pem)
                    .find_map(|item| match item {
                        Ok(ureq::tls::PemItem::PrivateKey(k)) => Some(k),
                        _ => None,
                    })
                    .ok_or_else(|| bad("the client key file holds no PEM private key"))?;
                Some(ureq::tls::ClientCert::new_with_certs(&chain, key))
            }
        };
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .client_cert(client_cert)
            .build();
        Self::build(&address, timeout, Some(tls))
    }

    fn build(
        address: &str,
        timeout: Option<Duration>,
        tls: Option<ureq::tls::TlsConfig>,
    ) -> Result<Self> {
        let bad = |reason| ClientError::Address {
            address: address.to_owned(),
            reason,
        };
        let base = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let rest = match (base.strip_prefix("http://"), base.strip_prefix("https://")) {
            (Some(rest), _) => rest,
            (None, Some(rest)) if tls.is_some() => rest,
            (None, Some(_)) => return Err(bad("https:// needs the server's CA (Client::with_ca)")),
            (None, None) => return Err(bad("only http:// and https:// are served")),
        };
        if rest.trim_end_matches('/').is_empty() || rest.trim_end_matches('/').contains('/') {
            return Err(bad("give the host and port only, e.g. 127.0.0.1:8080"));
        }
        // Per-read, per-write and connect timeouts rather than one for the
        // whole call: with any call-wide timeout ureq resolves the address on
        // a thread of its own, spawned for every request (about 0.1 ms each).
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.unwrap_or_default())
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(timeout)
            .timeout_per_write(timeout)
            .build()
            .into();
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
            token: None,
        })
    }

    /// This client, sending `token` as its bearer token (a static token
    /// or a JWT the server accepts).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// `request` with the bearer token, if the client has one.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => request.header("authorization", format!("Bearer {t}")),
            None => request,
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn transport(&self, path: &str, e: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            url: self.url(path),
            reason: e.to_string(),
        }
    }

    /// Reads an answer: the body as `T` on success, the problem otherwise.
    fn answer<T: DeserializeOwned>(
        &self,
        path: &str,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let mut response = response.map_err(|e| self.transport(path, e))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_vec()
            .map_err(|e| self.transport(path, e))?;
        let protocol = |reason: String| ClientError::Protocol {
            url: self.url(path),
            reason,
        };
        if status.is_success() {
            // A 204 has no body: `()` reads from `null`.
            let body: &[u8] = if body.is_empty() { b"null" } else { &body };
            return serde_json::from_slice(body).map_err(|e| protocol(e.to_string()));
        }
        let problem = serde_json::from_slice::<Problem>(&body)
            .ok()
            .or_else(|| registry_problem(status.as_u16(), &body));
        match problem {
            Some(problem) => Err(ClientError::Problem(Box::new(problem))),
            None => Err(protocol(format!(
                "status {status} with a body that is not a problem: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))),
        }
    }

    /// `GET path?query`.
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T> {
        let mut request = self.authorized(self.agent.get(self.url(path)));
        for (k, v) in query {
            request = request.query(*k, v);
        }
        self.answer(path, request.call())
    }

    /// A request body as compact JSON (ureq's own `send_json` pretty-prints,
    /// which costs bytes and time on large produce batches).
    fn json_body(&self, path: &str, body: &impl Serialize) -> Result<Vec<u8>> {
        serde_json::to_vec(body).map_err(|e| ClientError::Protocol {
            url: self.url(path),
            reason: format!("the request body does not serialize: {e}"),
        })
    }

    /// `POST path` with a JSON body.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let body = self.json_body(path, body)?;
        let request = self
            .authorized(self.agent.post(self.url(path)))
            .content_type(JSON);
        self.answer(path, request.send(&body[..]))
    }

    /// `PUT path` with a JSON body.
    pub fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let body = self.json_body(path, body)?;
        let request = self
            .authorized(self.agent.put(self.url(path)))
            .content_type(JSON);
        self.answer(path, request.send(&body[..]))
    }

    /// `DELETE path?query`.
    pub fn delete<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T> {
        let mut request = self.authorized(self.agent.delete(self.url(path)));
        for (k, v) in query {
            request = request.query(*k, v);
        }
        self.answer(path, request.call())
    }

    /// `GET path?query` as a Server-Sent Events stream (no call timeout
    /// applies to its reading; use a client made with `with_timeout(None)`
    /// for streams that should wait forever).
    pub fn sse(
        &self,
        path: &str,
        query: &[(&str, String)],
        last_event_id: Option<&str>,
    ) -> Result<SseStream> {
        let mut request = self
            .authorized(self.agent.get(self.url(path)))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        for (k, v) in query {
            request = request.query(*k, v);
        }
        let response = request.call().map_err(|e| self.transport(path, e))?;
        if !response.status().is_success() {
            return self
                .answer::<()>(path, Ok(response))
                .map(|()| unreachable!("an unsuccessful status is always an error"));
        }
        Ok(SseStream::new(response.into_body().into_reader()))
    }

    // Topics and records.

    pub fn topics(&self) -> Result<TopicList> {
        self.get("/v1/topics", &[])
    }

    pub fn create_topic(&self, topic: &CreateTopic) -> Result<TopicInfo> {
        self.post("/v1/topics", topic)
    }

    pub fn topic(&self, name: &str) -> Result<TopicInfo> {
        self.get(&format!("/v1/topics/{}", encode_segment(name)), &[])
    }

    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.delete(&format!("/v1/topics/{}", encode_segment(name)), &[])
    }

    /// Produces records; answers once they are durable.
    pub fn produce(&self, topic: &str, records: &Produce) -> Result<ProduceResult> {
        self.post(
            &format!("/v1/topics/{}/records", encode_segment(topic)),
            records,
        )
    }

    /// Up to `limit` records of a partition from `offset`.
    pub fn fetch(&self, topic: &str, partition: i32, offset: i64, limit: usize) -> Result<Records> {
        self.get(
            &format!(
                "/v1/topics/{}/partitions/{partition}/records",
                encode_segment(topic)
            ),
            &[("offset", offset.to_string()), ("limit", limit.to_string())],
        )
    }

    /// Sets and resets a topic's configs, all or nothing.
    pub fn alter_topic(&self, name: &str, alter: &AlterConfigs) -> Result<TopicInfo> {
        let path = format!("/v1/topics/{}/configs", encode_segment(name));
        let body = self.json_body(&path, alter)?;
        let request = self
            .authorized(self.agent.patch(self.url(&path)))
            .content_type(JSON);
        self.answer(&path, request.send(&body[..]))
    }

    /// A partition's records from `offset` as they come (Server-Sent
    /// Events `record`, id = offset), resuming after `last_event_id`.
    pub fn follow_partition(
        &self,
        topic: &str,
        partition: i32,
        offset: u64,
        last_event_id: Option<&str>,
    ) -> Result<SseStream> {
        self.sse(
            &format!(
                "/v1/topics/{}/partitions/{partition}/live",
                encode_segment(topic)
            ),
            &[("offset", offset.to_string())],
            last_event_id,
        )
    }

    // Consumer groups.

    pub fn groups(&self) -> Result<GroupList> {
        self.get("/v1/groups", &[])
    }

    /// A group's members, assignments, committed offsets and lag.
    pub fn group(&self, group: &str) -> Result<GroupInfo> {
        self.get(&format!("/v1/groups/{}", encode_segment(group)), &[])
    }

    /// Plans (or, with `execute`, commits) new offsets for a group.
    pub fn reset_offsets(&self, group: &str, reset: &ResetOffsets) -> Result<ResetResult> {
        self.post(
            &format!("/v1/groups/{}/offsets/reset", encode_segment(group)),
            reset,
        )
    }

    pub fn delete_group(&self, group: &str) -> Result<()> {
        self.delete(&format!("/v1/groups/{}", encode_segment(group)), &[])
    }

    // Dead letters.

    /// Every dead-letter topic with its origin, depth and oldest record.
    pub fn dead_letter_topics(&self) -> Result<weir_api::DeadLetterTopics> {
        self.get("/v1/dlq", &[])
    }

    /// Up to `limit` dead letters of a partition from `offset`, decoded.
    pub fn dead_letters(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: usize,
    ) -> Result<weir_api::DeadLetters> {
        self.get(
            &format!(
                "/v1/dlq/{}/partitions/{partition}/records",
                encode_segment(topic)
            ),
            &[("offset", offset.to_string()), ("limit", limit.to_string())],
        )
    }

    /// Replays dead letters to their origin (one bounded call; the answer's
    /// `next` goes on).
    pub fn replay_dead_letters(
        &self,
        topic: &str,
        replay: &weir_api::ReplayRequest,
    ) -> Result<weir_api::ReplayResult> {
        self.post(&format!("/v1/dlq/{}/replay", encode_segment(topic)), replay)
    }

    /// Purges dead letters for good: all partitions, or one partition's
    /// records below `to_offset` (exclusive); answers what each lost.
    pub fn purge_dead_letters(
        &self,
        topic: &str,
        purge: &weir_api::PurgeRequest,
    ) -> Result<weir_api::PurgeResult> {
        self.post(&format!("/v1/dlq/{}/purge", encode_segment(topic)), purge)
    }

    // Event streams.

    pub fn stream_metadata(&self, stream: &str) -> Result<StreamMetadata> {
        self.get(
            &format!("/v1/streams/{}/metadata", encode_segment(stream)),
            &[],
        )
    }

    /// Replaces a stream's settings (all three).
    pub fn set_stream_metadata(
        &self,
        stream: &str,
        settings: &StreamMetadata,
    ) -> Result<StreamMetadata> {
        self.put(
            &format!("/v1/streams/{}/metadata", encode_segment(stream)),
            settings,
        )
    }

    pub fn save_snapshot(&self, stream: &str, snapshot: &SnapshotIn) -> Result<()> {
        self.put(
            &format!("/v1/streams/{}/snapshot", encode_segment(stream)),
            snapshot,
        )
    }

    /// The newest snapshot of a stream and the events after it.
    pub fn load(&self, stream: &str) -> Result<Loaded> {
        self.get(
            &format!("/v1/streams/{}/snapshot", encode_segment(stream)),
            &[],
        )
    }

    /// Events as they come (Server-Sent Events `event`): of `stream` from
    /// a version, of a category or of all from a global position; resuming
    /// after `last_event_id`.
    pub fn subscribe(
        &self,
        target: &Subscribe,
        from: u64,
        last_event_id: Option<&str>,
    ) -> Result<SseStream> {
        let path = match target {
            Subscribe::All => "/v1/all/live".to_owned(),
            Subscribe::Category(c) => format!("/v1/categories/{}/live", encode_segment(c)),
            Subscribe::Stream(s) => format!("/v1/streams/{}/live", encode_segment(s)),
        };
        self.sse(&path, &[("from", from.to_string())], last_event_id)
    }

    /// Appends events to a stream; answers once they are durable.
    pub fn append(&self, stream: &str, append: &Append) -> Result<Appended> {
        self.post(&format!("/v1/streams/{}", encode_segment(stream)), append)
    }

    fn page_query(page: &Page) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("direction", page.direction.as_str().to_owned()),
            ("limit", page.limit.to_string()),
        ];
        if let Some(from) = page.from {
            q.push(("from", from.to_string()));
        }
        q
    }

    pub fn read_stream(&self, stream: &str, page: &Page) -> Result<Events> {
        self.get(
            &format!("/v1/streams/{}", encode_segment(stream)),
            &Self::page_query(page),
        )
    }

    pub fn read_all(&self, page: &Page) -> Result<Events> {
        self.get("/v1/all", &Self::page_query(page))
    }

    pub fn read_category(&self, category: &str, page: &Page) -> Result<Events> {
        self.get(
            &format!("/v1/categories/{}", encode_segment(category)),
            &Self::page_query(page),
        )
    }

    pub fn read_type(&self, event_type: &str, page: &Page) -> Result<Events> {
        self.get(
            &format!("/v1/types/{}", encode_segment(event_type)),
            &Self::page_query(page),
        )
    }

    /// One correlation's events in global order from `from` (a position;
    /// the page's direction is always forward), up to `limit`.
    pub fn read_correlation(
        &self,
        correlation_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Events> {
        self.get(
            &format!("/v1/correlations/{}", encode_segment(correlation_id)),
            &[("from", from.to_string()), ("limit", limit.to_string())],
        )
    }

    /// Deletes a stream: soft, or for good with `tombstone`; `expected` is
    /// `any`, `no_stream`, `exists` or a version.
    pub fn delete_stream(
        &self,
        stream: &str,
        tombstone: bool,
        expected: Option<&str>,
    ) -> Result<()> {
        let mut q = vec![("tombstone", tombstone.to_string())];
        if let Some(e) = expected {
            q.push(("expected_version", e.to_owned()));
        }
        self.delete(&format!("/v1/streams/{}", encode_segment(stream)), &q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("orders-42"), "orders-42");
        assert_eq!(encode_segment("$$a b/c"), "%24%24a%20b%2Fc");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn addresses_are_checked() {
        assert_eq!(
            Client::new("127.0.0.1:8080").unwrap().base(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(Client::new("http://h:1/").unwrap().base(), "http://h:1");
        assert!(Client::new("https://h:1").is_err());
        assert!(Client::new("http://h:1/v1").is_err());
        assert!(Client::new("").is_err());
    }

    #[test]
    fn registry_errors_read_as_problems() {
        let p = registry_problem(
            404,
            br#"{"error_code":40401,"message":"subject 'x' not found"}"#,
        )
        .unwrap();
        assert_eq!((p.status, p.code.as_str()), (404, "40401"));
        assert_eq!(p.detail, "subject 'x' not found");
        assert!(registry_problem(500, b"oops").is_none());
        assert!(registry_problem(404, br#"{"message":"no code"}"#).is_none());
    }
}
