//! A Weir Kafka server for tests: in-process, on a free loopback port, over
//! a temporary data directory, stopped when dropped.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use weir_broker::{Broker, BrokerConfig};
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_kafka::ServerConfig;
use weir_log::{DataDir, DirConfig};

pub struct TestServer {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    pub groups: Arc<Coordinator>,
    /// The server's authorizer (disabled unless started with one).
    pub authorizer: Arc<weir_auth::Authorizer>,
    /// The CA that signed the server's certificate, when it speaks TLS.
    pub ca: Option<std::path::PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(BrokerConfig::default(), |_| {})
    }

    pub fn start_with(config: BrokerConfig, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_full(config, test_groups_config(), tweak)
    }

    pub fn start_full(
        config: BrokerConfig,
        groups_config: GroupsConfig,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        Self::start_in(
            tempfile::tempdir().unwrap(),
            config,
            groups_config,
            None,
            None,
            tweak,
        )
    }

    /// A server with SASL on (`sasl`) whose data directory holds `users`
    /// (name, password) with both SCRAM mechanisms before it starts, as
    /// `weir user add` leaves them.
    pub fn start_sasl(sasl: weir_kafka::SaslConfig, users: &[(&str, &str)]) -> Self {
        Self::start_sasl_over(sasl, users, false)
    }

    /// As [`TestServer::start_sasl`], over TLS (`SASL_SSL`) when `tls`:
    /// a certificate for 127.0.0.1 signed by a CA made here, whose PEM
    /// file is [`TestServer::ca`].
    pub fn start_sasl_over(
        sasl: weir_kafka::SaslConfig,
        users: &[(&str, &str)],
        tls: bool,
    ) -> Self {
        use weir_auth::{CredentialChange, CredentialStore, ScramCredential, ScramMechanism};
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        let changes: Vec<_> = users
            .iter()
            .flat_map(|(user, password)| {
                ScramMechanism::ALL.map(|m| CredentialChange::Upsert {
                    user: (*user).to_owned(),
                    mechanism: m,
                    credential: ScramCredential::new(m, password, 4096).unwrap(),
                })
            })
            .collect();
        store.apply(&changes).unwrap();
        let tls = tls.then(|| {
            let certs = dir.path().join("certs");
            std::fs::create_dir_all(&certs).unwrap();
            let ca = weir_tls::test_certs::TestCa::new(&certs, "test");
            let cert = ca.server("server", "weir-server");
            let server = weir_tls::TlsServer::load(weir_tls::TlsFiles {
                cert: cert.cert,
                key: cert.key,
                client_ca: None,
                client_auth: weir_tls::ClientAuth::None,
            })
            .unwrap();
            (Arc::new(server), ca.ca_pem.clone())
        });
        Self::start_in(
            dir,
            BrokerConfig::default(),
            test_groups_config(),
            None,
            tls,
            |c| {
                c.sasl = Some(sasl);
            },
        )
    }

    /// A server checking every request against ACLs kept in its data
    /// directory.
    pub fn start_authorized(authorizer: weir_auth::AuthorizerConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(
            dir,
            BrokerConfig::default(),
            test_groups_config(),
            Some(authorizer),
            None,
            |_| {},
        )
    }

    fn start_in(
        dir: tempfile::TempDir,
        config: BrokerConfig,
        groups_config: GroupsConfig,
        authorizer: Option<weir_auth::AuthorizerConfig>,
        tls: Option<(Arc<weir_tls::TlsServer>, std::path::PathBuf)>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let authorizer = Arc::new(match authorizer {
            Some(config) => weir_auth::Authorizer::open(dir.path(), config).unwrap(),
            None => weir_auth::Authorizer::disabled(),
        });
        let data = DataDir::open(dir.path(), DirConfig::default()).unwrap();
        let broker = Arc::new(Broker::open(data, config).unwrap());
        let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap();
        let groups = Arc::new(Coordinator::new(
            groups_config,
            Arc::new(MonotonicClock::new()),
            broker.clone(),
            Arc::new(offsets),
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server_config = ServerConfig::new(addr);
        tweak(&mut server_config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (b, g) = (broker.clone(), groups.clone());
        let parts = weir_kafka::ServerParts {
            authorizer: Some(authorizer.clone()),
            ..weir_kafka::ServerParts::default()
        };
        let ca = tls.as_ref().map(|(_, ca)| ca.clone());
        let thread = std::thread::spawn(move || {
            let stopped = async {
                let _ = stopped.await;
            };
            match tls {
                // One SASL_SSL listener.
                Some((tls, _)) => {
                    let listener = weir_kafka::Listener::new(
                        weir_kafka::SecurityProtocol::SaslSsl,
                        listener,
                        None,
                        Some(tls),
                    )
                    .unwrap();
                    runtime.block_on(weir_kafka::run_listeners(
                        vec![listener],
                        b,
                        g,
                        server_config,
                        parts,
                        stopped,
                    ));
                }
                None => runtime.block_on(weir_kafka::run_with(
                    listener,
                    b,
                    g,
                    server_config,
                    parts,
                    stopped,
                )),
            }
        });
        Self {
            addr,
            broker,
            groups,
            authorizer,
            ca,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl TestServer {
    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Runs kcat with `args`, feeding `stdin`; returns stdout. kcat is
/// installed by `scripts/install-deps`; a missing kcat fails the test.
pub fn kcat(args: &[&str], stdin: &str) -> String {
    let out = kcat_output(args, stdin);
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs kcat with `stdin`, whatever its outcome (for refusals, which it
/// reports on stderr).
pub fn kcat_output(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("kcat")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/install-deps");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A raw connection to the server.
pub fn connect(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// One request frame, as a client would send it.
pub fn frame(api: ApiKey, version: i16, correlation_id: i32, body: &impl Encodable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

/// The next response frame, or `None` if the server closed the connection.
pub fn recv(stream: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    if stream.read_exact(&mut len).is_err() {
        return None;
    }
    let mut body = vec![0; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// Sends a request and decodes its response.
pub fn call<R: Decodable>(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    body: &impl Encodable,
) -> R {
    stream.write_all(&frame(api, version, 7, body)).unwrap();
    let mut response = recv(stream).expect("a response");
    assert_eq!(response.get_i32(), 7, "correlation id");
    if api.response_header_version(version) >= 1 {
        // Flexible header: empty tagged fields.
        assert_eq!(response.get_u8(), 0);
    }
    R::decode(&mut response, version).unwrap()
}

/// A script of `tests/clients/`, found from the crate directory cargo gives
/// the test at run time (a binary reused from another checkout must not
/// point at that checkout's files).
pub fn client_script(name: &str) -> String {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    format!("{crate_dir}/../../tests/clients/{name}")
}

/// Where a client lives: the variable `scripts/test` sets, else the place
/// `scripts/install-deps` puts it.
fn installed(var: &str, default_under_home: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        let home = std::env::var("HOME").expect("HOME is set");
        format!("{home}/{default_under_home}")
    })
}

/// The Python of the clients' virtualenv.
pub fn python() -> String {
    installed("WEIR_PYTHON", ".cache/weir/venv/bin/python")
}

/// The Node clients' `node_modules`.
pub fn node_modules() -> String {
    installed("WEIR_NODE_MODULES", ".cache/weir/node/node_modules")
}

/// Runs a client process to its end within `limit` (killing it after),
/// so a hung client fails its test instead of stalling the suite; returns
/// its stdout, and fails the test with both outputs if it did not succeed.
pub fn run_bounded(cmd: &mut std::process::Command, what: &str, limit: Duration) -> String {
    use std::process::Stdio;
    let started = std::time::Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e} (clients come from scripts/install-deps)"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
    match status {
        None => panic!("{what} did not finish within {limit:?}:\n{out}\n{err}"),
        Some(status) if !status.success() => panic!("{what} failed ({status}):\n{out}\n{err}"),
        Some(_) => {
            eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
            out
        }
    }
}

/// Group settings for tests: Kafka's, but a new group's first rebalance
/// waits only 300 ms for more members.
pub fn test_groups_config() -> GroupsConfig {
    GroupsConfig {
        initial_rebalance_delay_ms: 300,
        ..GroupsConfig::default()
    }
}

/// Runs one scenario of `tests/clients/python_groups.py` (which starts
/// kafkajs members too) against a fresh server, and checks that it printed
/// `expect`.
pub fn groups_scenario(args: &[&str], expect: &str) {
    let server = TestServer::start();
    let script = client_script("python_groups.py");
    let out = run_bounded(
        std::process::Command::new(python())
            .env("NODE_PATH", node_modules())
            .arg(&script)
            .arg(args[0])
            .arg(server.bootstrap())
            .args(&args[1..]),
        &format!("python_groups.py {}", args.join(" ")),
        Duration::from_secs(170),
    );
    println!("{out}");
    assert!(out.contains(expect), "{out}");
}
