//! What the HTTP API tests share: a server (the HTTP API and the Kafka
//! listener over one broker, on port 0 in a temp dir), `curl` for requests,
//! and a small Server-Sent Events client on a raw socket, so a test can
//! decide when (and whether) it reads.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_broker::{Broker, BrokerConfig};
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_http::{AppState, HttpLimits};
use weir_log::{DataDir, DirConfig};
use weir_store::{EmbeddedStore, StoreConfig};

pub struct Server {
    pub base: String,
    /// `host:port` of the Kafka listener.
    pub kafka: String,
    pub store: Arc<EmbeddedStore>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(limits: HttpLimits) -> Self {
        Self::start_with(limits, weir_http::auth::Security::default())
    }

    /// A server whose HTTP API authenticates and authorizes with
    /// `security`.
    pub fn start_with(limits: HttpLimits, security: weir_http::auth::Security) -> Self {
        Self::start_full(limits, security, false)
    }

    /// [`Server::start_with`], serving a schema registry on the broker's
    /// `__schemas` topic when `registry`.
    pub fn start_full(
        limits: HttpLimits,
        security: weir_http::auth::Security,
        registry: bool,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path(), DirConfig::default()).unwrap();
        let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
        let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap();
        let groups = Arc::new(Coordinator::new(
            GroupsConfig {
                // A lone kcat member gets its partitions without waiting.
                initial_rebalance_delay_ms: 0,
                ..GroupsConfig::default()
            },
            Arc::new(MonotonicClock::new()),
            broker.clone(),
            Arc::new(offsets),
        ));
        let store = Arc::new(EmbeddedStore::open(broker.clone(), StoreConfig::default()).unwrap());
        let mut state = AppState::new(broker.clone(), groups.clone(), store.clone(), limits)
            .with_security(security);
        if registry {
            let r = weir_schemas::Registry::open_on_broker(
                broker.clone(),
                weir_schemas::Limits::default(),
            )
            .unwrap();
            let r = Arc::new(r);
            // Validation on write, as `weir serve` installs it.
            let validator = Arc::new(weir_schemas::Validator::new(r.clone()));
            let records: Arc<dyn weir_broker::RecordValidator> = validator.clone();
            broker.set_record_validator(&records);
            store.set_event_validator(validator);
            state = state.with_schema_registry(r);
        }
        let state = Arc::new(state);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (listener, kafka_listener) = runtime.block_on(async {
            (
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            )
        });
        let base = format!("http://{}", listener.local_addr().unwrap());
        let kafka_addr = kafka_listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                let kafka = tokio::spawn(weir_kafka::run(
                    kafka_listener,
                    broker,
                    groups,
                    weir_kafka::ServerConfig::new(kafka_addr),
                    wait(stopped.clone()),
                ));
                weir_http::run(listener, state, wait(stopped))
                    .await
                    .unwrap();
                let _ = kafka.await;
            });
        });
        Self {
            base,
            kafka: kafka_addr.to_string(),
            store,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// `host:port` of the HTTP API.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// `curl` a request; returns the status and the JSON body (or the text
    /// as a JSON string), and the content type.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value, String) {
        self.call_as(None, method, path, body)
    }

    /// [`Server::call`] with `Authorization: Bearer <token>` if given.
    pub fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value, String) {
        let mut cmd = Command::new("curl");
        if let Some(token) = token {
            cmd.args(["-H", &format!("authorization: Bearer {token}")]);
        }
        cmd.args([
            "-sS",
            "-X",
            method,
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{content_type}",
        ])
        .arg(format!("{}{path}", self.base));
        if let Some(body) = body {
            cmd.args([
                "-H",
                "content-type: application/json",
                "--data-binary",
                body,
            ]);
        }
        let out = cmd.output().expect("curl is installed");
        assert!(out.status.success(), "curl failed: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, tail) = text.rsplit_once('\n').unwrap();
        let (status, ctype) = tail.split_once(' ').unwrap_or((tail, ""));
        let json = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        (status.parse().unwrap(), json, ctype.to_owned())
    }

    /// [`Server::call_as`] with `token`, asserting the status; an empty
    /// `body` sends none. Returns the body.
    pub fn ok_as(&self, token: &str, method: &str, path: &str, body: &str, status: u16) -> Value {
        let (st, json, _) = self.call_as(
            Some(token),
            method,
            path,
            (!body.is_empty()).then_some(body),
        );
        assert_eq!(st, status, "{method} {path}: {json}");
        json
    }

    /// `call`, asserting the status; returns the body.
    pub fn ok(&self, method: &str, path: &str, body: Option<&str>, status: u16) -> Value {
        let (st, json, _) = self.call(method, path, body);
        assert_eq!(st, status, "{method} {path}: {json}");
        json
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sse {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Sse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }

    pub fn id(&self) -> u64 {
        self.id.as_deref().unwrap().parse().unwrap()
    }
}

/// A client of one live stream over a raw socket (HTTP/1.1, chunked).
pub struct SseClient {
    socket: TcpStream,
    /// Bytes read and not yet decoded from chunks.
    raw: Vec<u8>,
    /// Decoded body bytes not yet parsed into events.
    body: Vec<u8>,
    /// The last chunk arrived.
    pub ended: bool,
    /// The socket closed.
    pub closed: bool,
    pub status: u16,
    pub keep_alives: usize,
}

impl SseClient {
    /// Sends the request and, unless `read_head` is false (a client that
    /// does not read yet), reads the response head.
    pub fn connect(addr: &str, path: &str, last_event_id: Option<u64>, read_head: bool) -> Self {
        let mut socket = TcpStream::connect(addr).unwrap();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\nconnection: close\r\n"
        );
        if let Some(id) = last_event_id {
            request.push_str(&format!("last-event-id: {id}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes()).unwrap();
        let mut client = Self {
            socket,
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
            closed: false,
            status: 0,
            keep_alives: 0,
        };
        if read_head {
            client.read_head();
        }
        client
    }

    pub fn read_head(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = find(&self.raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.raw[..end]).into_owned();
                self.raw.drain(..end + 4);
                self.status = head[9..12].parse().unwrap();
                assert!(
                    self.status != 200 || head.to_ascii_lowercase().contains("text/event-stream"),
                    "{head}"
                );
                return;
            }
            assert!(Instant::now() < deadline, "no response head");
            self.fill(Duration::from_secs(10));
        }
    }

    /// Reads what the socket has, waiting up to `wait`; false on EOF or
    /// timeout.
    fn fill(&mut self, wait: Duration) -> bool {
        self.socket
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 64 * 1024];
        match self.socket.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// Moves whole chunks from `raw` to `body`.
    fn dechunk(&mut self) {
        while !self.ended {
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            let total = line_end + 2 + size + 2;
            if self.raw.len() < total {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..total);
        }
    }

    /// The next event (keep-alive comments are counted and skipped), or
    /// `None` if none came within `wait` or the stream ended.
    pub fn next(&mut self, wait: Duration) -> Option<Sse> {
        let deadline = Instant::now() + wait;
        loop {
            self.dechunk();
            while let Some(end) = find(&self.body, b"\n\n") {
                let block = String::from_utf8(self.body[..end].to_vec()).unwrap();
                self.body.drain(..end + 2);
                let mut event = Sse {
                    event: "message".to_owned(),
                    id: None,
                    data: String::new(),
                };
                let mut fields = 0;
                for line in block.lines() {
                    if line.starts_with(':') {
                        continue;
                    }
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    fields += 1;
                    match name {
                        "event" => event.event = value.to_owned(),
                        "id" => event.id = Some(value.to_owned()),
                        "data" => {
                            if !event.data.is_empty() {
                                event.data.push('\n');
                            }
                            event.data.push_str(value);
                        }
                        _ => {}
                    }
                }
                if fields == 0 {
                    self.keep_alives += 1;
                    continue;
                }
                return Some(event);
            }
            if self.ended || self.closed {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.fill(left);
        }
    }

    /// Events until `n` came, or none came for `wait`.
    pub fn take(&mut self, n: usize, wait: Duration) -> Vec<Sse> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next(wait) {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
