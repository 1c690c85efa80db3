//! Kafka clients over TLS listeners (certificates made by the test with
//! rcgen): kcat, confluent-kafka and kafka-python
//! (`tests/clients/python_tls.py`), kafkajs (`tests/clients/kafkajs_tls.js`)
//! and librdkafka through rdkafka produce and consume over `SSL`, each told
//! the address of the listener it came through; client certificates
//! required and requested; plaintext and garbage sent to the TLS port
//! close only that connection; the certificate rotated under a producer's
//! load. One server per test, each test covering several clients.

mod common;

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{node_modules, python};
use weir_broker::{Broker, BrokerConfig};
use weir_groups::{Coordinator, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_kafka::{Listener, SecurityProtocol, ServerConfig};
use weir_log::{DataDir, DirConfig};
use weir_tls::test_certs::{Issued, TestCa};
use weir_tls::{ClientAuth, TlsFiles, TlsServer};

/// A server with a PLAINTEXT and an SSL listener, certificates in `dir`.
struct TlsTestServer {
    plain: SocketAddr,
    ssl: SocketAddr,
    broker: Arc<Broker>,
    tls: Arc<TlsServer>,
    ca: TestCa,
    server_cert: Issued,
    client_cert: Issued,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    runtime_handle: tokio::runtime::Handle,
    _dir: tempfile::TempDir,
}

impl TlsTestServer {
    fn start(auth: ClientAuth) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "test");
        let server_cert = ca.server("server", "weir-server");
        let client_cert = ca.client("client", "client", "weir");
        let tls = Arc::new(
            TlsServer::load(TlsFiles {
                cert: server_cert.cert.clone(),
                key: server_cert.key.clone(),
                client_ca: Some(ca.ca_pem.clone()),
                client_auth: auth,
            })
            .unwrap(),
        );
        let data = DataDir::open(dir.path().join("data"), DirConfig::default()).unwrap();
        let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
        let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap();
        let groups = Arc::new(Coordinator::new(
            common::test_groups_config(),
            Arc::new(MonotonicClock::new()),
            broker.clone(),
            Arc::new(offsets),
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let bind = || {
            runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap()
        };
        let plain = Listener::new(SecurityProtocol::Plaintext, bind(), None, None).unwrap();
        let ssl = Listener::new(SecurityProtocol::Ssl, bind(), None, Some(tls.clone())).unwrap();
        let (plain_addr, ssl_addr) = (plain.endpoint.bound, ssl.endpoint.bound);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (b, g) = (broker.clone(), groups.clone());
        let runtime_handle = runtime.handle().clone();
        let thread = std::thread::spawn(move || {
            runtime.block_on(weir_kafka::run_listeners(
                vec![plain, ssl],
                b,
                g,
                ServerConfig::new(plain_addr),
                weir_kafka::ServerParts::default(),
                async {
                    let _ = stopped.await;
                },
            ));
        });
        Self {
            plain: plain_addr,
            ssl: ssl_addr,
            broker,
            tls,
            ca,
            server_cert,
            client_cert,
            stop: Some(stop),
            thread: Some(thread),
            runtime_handle,
            _dir: dir,
        }
    }

    /// kcat's options for the SSL listener, with the client certificate
    /// if `with_cert`.
    fn kcat_ssl(&self, with_cert: bool) -> Vec<String> {
        let mut args = vec![
            "-b".to_owned(),
            self.ssl.to_string(),
            "-X".to_owned(),
            "security.protocol=ssl".to_owned(),
            "-X".to_owned(),
            format!("ssl.ca.location={}", self.ca.ca_pem.display()),
        ];
        if with_cert {
            args.extend([
                "-X".to_owned(),
                format!(
                    "ssl.certificate.location={}",
                    self.client_cert.cert.display()
                ),
                "-X".to_owned(),
                format!("ssl.key.location={}", self.client_cert.key.display()),
            ]);
        }
        args
    }

    fn client_args(&self, with_cert: bool) -> Vec<String> {
        let mut args = vec![self.ca.ca_pem.display().to_string()];
        if with_cert {
            args.push(self.client_cert.cert.display().to_string());
            args.push(self.client_cert.key.display().to_string());
        }
        args
    }
}

impl Drop for TlsTestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs kcat; its output, or its stderr as the error.
fn kcat(args: &[String], stdin: &str) -> Result<String, String> {
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
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn with(base: Vec<String>, more: &[&str]) -> Vec<String> {
    base.into_iter()
        .chain(more.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// The broker kcat's metadata names (`broker 0 at host:port`).
fn kcat_broker(args: Vec<String>) -> String {
    let out = kcat(&with(args, &["-L", "-m", "10"]), "").unwrap();
    out.lines()
        .find_map(|l| l.trim().strip_prefix("broker 0 at "))
        .unwrap_or_else(|| panic!("no broker in {out}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// ApiVersions v0, correlation id 7, no client id.
const API_VERSIONS: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];

/// Whether the server closes `stream` within 5 s (reading what it sends).
fn closed_by_server(stream: &mut std::net::TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn clients_over_ssl_are_told_their_listener_and_bad_bytes_close_one_connection() {
    let server = TlsTestServer::start(ClientAuth::Requested);
    // Each listener advertises itself.
    let plain = vec!["-b".to_owned(), server.plain.to_string()];
    assert_eq!(kcat_broker(plain.clone()), server.plain.to_string());
    assert_eq!(kcat_broker(server.kcat_ssl(false)), server.ssl.to_string());

    // kcat round trip over SSL, with and without a client certificate
    // (requested, not required).
    server
        .broker
        .create_topic("tls-kcat", 1, -1, &[], false)
        .unwrap();
    kcat(
        &with(server.kcat_ssl(false), &["-P", "-t", "tls-kcat"]),
        "a\nb\n",
    )
    .unwrap();
    kcat(
        &with(server.kcat_ssl(true), &["-P", "-t", "tls-kcat"]),
        "c\n",
    )
    .unwrap();
    let read = kcat(
        &with(
            server.kcat_ssl(true),
            &[
                "-C",
                "-t",
                "tls-kcat",
                "-o",
                "beginning",
                "-c",
                "3",
                "-e",
                "-q",
            ],
        ),
        "",
    )
    .unwrap();
    assert_eq!(read, "a\nb\nc\n");
    // And what came in over SSL is there on PLAINTEXT too.
    let read = kcat(
        &with(
            plain,
            &[
                "-C",
                "-t",
                "tls-kcat",
                "-o",
                "beginning",
                "-c",
                "3",
                "-e",
                "-q",
            ],
        ),
        "",
    )
    .unwrap();
    assert_eq!(read, "a\nb\nc\n");

    // Plaintext Kafka bytes and a TLS record of garbage to the SSL port:
    // each connection is closed, the server keeps serving.
    let mut plaintext = std::net::TcpStream::connect(server.ssl).unwrap();
    plaintext.write_all(&API_VERSIONS).unwrap();
    assert!(closed_by_server(&mut plaintext), "plaintext left open");
    let mut garbage = std::net::TcpStream::connect(server.ssl).unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x10, 0xde, 0xad, 0xbe, 0xef])
        .unwrap();
    garbage.write_all(&[0x42; 12]).unwrap();
    assert!(closed_by_server(&mut garbage), "garbage left open");
    assert_eq!(kcat_broker(server.kcat_ssl(false)), server.ssl.to_string());

    // The Python clients, without and with a client certificate.
    server
        .broker
        .create_topic("tls-python", 1, -1, &[], false)
        .unwrap();
    server
        .broker
        .create_topic("tls-python-mtls", 1, -1, &[], false)
        .unwrap();
    let script = common::client_script("python_tls.py");
    for (topic, cert) in [("tls-python", false), ("tls-python-mtls", true)] {
        let out = common::run_bounded(
            std::process::Command::new(python())
                .args([script.as_str(), &server.ssl.to_string(), topic, "200"])
                .args(server.client_args(cert)),
            "python over TLS",
            Duration::from_secs(150),
        );
        assert!(
            out.contains(&format!(
                "confluent metadata: broker port {}",
                server.ssl.port()
            )),
            "{out}"
        );
        assert!(out.contains("confluent consumer: 400 records"), "{out}");
        assert!(out.contains("kafka-python consumer: 400 records"), "{out}");
    }

    // kafkajs.
    server
        .broker
        .create_topic("tls-kafkajs", 1, -1, &[], false)
        .unwrap();
    let out = common::run_bounded(
        std::process::Command::new("node")
            .env("NODE_PATH", node_modules())
            .args([
                common::client_script("kafkajs_tls.js").as_str(),
                &server.ssl.to_string(),
                "tls-kafkajs",
                "100",
            ])
            .args(server.client_args(false)),
        "kafkajs over TLS",
        Duration::from_secs(150),
    );
    assert!(
        out.contains(&format!(
            "kafkajs cluster: broker port {}",
            server.ssl.port()
        )),
        "{out}"
    );
    assert!(out.contains("kafkajs consumer: 100 records"), "{out}");
    let end: i64 = server
        .broker
        .partition("tls-kafkajs", 0)
        .unwrap()
        .end_offset();
    assert_eq!(end, 100);
}

#[test]
fn required_client_certificates_refuse_clients_without_one() {
    let server = TlsTestServer::start(ClientAuth::Required);
    let refused = kcat(&with(server.kcat_ssl(false), &["-L", "-m", "5"]), "");
    assert!(
        refused.is_err(),
        "a client without a certificate got metadata"
    );
    assert_eq!(kcat_broker(server.kcat_ssl(true)), server.ssl.to_string());
    server
        .broker
        .create_topic("mtls", 1, -1, &[], false)
        .unwrap();
    let script = common::client_script("python_tls.py");
    let out = common::run_bounded(
        std::process::Command::new(python())
            .args([script.as_str(), &server.ssl.to_string(), "mtls", "100"])
            .args(server.client_args(true)),
        "python with a client certificate",
        Duration::from_secs(150),
    );
    assert!(out.contains("kafka-python consumer: 200 records"), "{out}");
    server
        .broker
        .create_topic("mtls-kafkajs", 1, -1, &[], false)
        .unwrap();
    let out = common::run_bounded(
        std::process::Command::new("node")
            .env("NODE_PATH", node_modules())
            .args([
                common::client_script("kafkajs_tls.js").as_str(),
                &server.ssl.to_string(),
                "mtls-kafkajs",
                "50",
            ])
            .args(server.client_args(true)),
        "kafkajs with a client certificate",
        Duration::from_secs(150),
    );
    assert!(out.contains("kafkajs consumer: 50 records"), "{out}");
}

#[allow(deprecated, reason = "ring, as the server")]
fn rustls_client(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca.ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection to `addr` and the certificate the server showed.
async fn tls_connect(addr: SocketAddr, ca: &TestCa) -> (Tls, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(rustls_client(ca))
        .connect(name, tcp)
        .await
        .unwrap();
    let cert = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (stream, cert)
}

/// Sends ApiVersions on `stream` and checks the answer's correlation id.
async fn api_versions(stream: &mut Tls) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(&API_VERSIONS).await.unwrap();
    let len = stream.read_i32().await.unwrap();
    let mut body = vec![0u8; usize::try_from(len).unwrap()];
    stream.read_exact(&mut body).await.unwrap();
    assert_eq!(&body[..4], &7i32.to_be_bytes());
}

#[test]
fn a_certificate_rotated_under_load_reaches_new_connections_only() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
    let server = TlsTestServer::start(ClientAuth::None);
    server
        .broker
        .create_topic("rotate", 1, -1, &[], false)
        .unwrap();
    let rt = server.runtime_handle.clone();
    let (mut old, first) = rt.block_on(tls_connect(server.ssl, &server.ca));
    assert_eq!(first, server.server_cert.der);
    let watcher = {
        let _runtime = rt.enter();
        server.tls.watch(Duration::from_millis(50))
    };

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", server.ssl.to_string())
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", server.ca.ca_pem.display().to_string())
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let sent = std::sync::atomic::AtomicU64::new(0);
    let rotated = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut after = 0;
            // Produce until 2,000 records went out after the rotation.
            while after < 2_000 {
                let i = sent.load(std::sync::atomic::Ordering::Relaxed);
                let value = i.to_string();
                match producer.send(BaseRecord::<(), _>::to("rotate").payload(&value)) {
                    Ok(()) => {
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if rotated.load(std::sync::atomic::Ordering::Relaxed) {
                            after += 1;
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
                producer.poll(Duration::ZERO);
            }
            producer.flush(Duration::from_secs(30)).unwrap();
        });
        // Once the producer is under way, a new certificate and key.
        while sent.load(std::sync::atomic::Ordering::Relaxed) < 2_000 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let second = server.ca.server("server", "weir-server-rotated");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server.tls.reloads() == 0 {
            assert!(std::time::Instant::now() < deadline, "no reload seen");
            std::thread::sleep(Duration::from_millis(10));
        }
        rotated.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut new, cert) = rt.block_on(tls_connect(server.ssl, &server.ca));
        assert_eq!(
            cert, second.der,
            "a new connection sees the new certificate"
        );
        rt.block_on(api_versions(&mut new));
    });
    // The connection opened before the rotation still works.
    rt.block_on(api_versions(&mut old));
    let produced = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(produced >= 4_000, "{produced}");
    assert_eq!(
        server.broker.partition("rotate", 0).unwrap().end_offset(),
        produced as i64,
        "every record sent through the rotation is in the log"
    );
    watcher.abort();
}
