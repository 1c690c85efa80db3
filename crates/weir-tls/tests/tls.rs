//! weir-tls against a rustls client over loopback: loading, refusals with
//! clear errors, client certificates and their principals, reloads that
//! change what new connections see and leave open ones working.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use weir_tls::test_certs::{Issued, TestCa};
use weir_tls::{ClientAuth, TlsError, TlsFiles, TlsServer};

fn files(server: &Issued, ca: Option<&TestCa>, auth: ClientAuth) -> TlsFiles {
    TlsFiles {
        cert: server.cert.clone(),
        key: server.key.clone(),
        client_ca: ca.map(|c| c.ca_pem.clone()),
        client_auth: auth,
    }
}

#[allow(deprecated, reason = "ring, as the server")]
fn client_config(ca: &TestCa, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca.ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match client {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&c.cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(&c.key).unwrap(),
            )
            .unwrap(),
    })
}

type Client = tokio_rustls::client::TlsStream<TcpStream>;

/// A server task echoing each connection's bytes, sending its principal
/// first; returns its address.
async fn echo_server(tls: Arc<TlsServer>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok((mut stream, principal)) = tls.accept(tcp).await else {
                    return;
                };
                let hello = format!("{principal}\n");
                stream.write_all(hello.as_bytes()).await.unwrap();
                let mut buf = [0u8; 64];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => stream.write_all(&buf[..n]).await.unwrap(),
                    }
                }
            });
        }
    });
    addr
}

/// Connects and reads the principal line; the server's certificate too.
async fn connect(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<(Client, String, Vec<u8>)> {
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let mut line = Vec::new();
    loop {
        let b = stream.read_u8().await?;
        if b == b'\n' {
            break;
        }
        line.push(b);
    }
    let cert = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    Ok((stream, String::from_utf8(line).unwrap(), cert))
}

async fn echo(stream: &mut Client, text: &[u8]) {
    stream.write_all(text).await.unwrap();
    let mut back = vec![0u8; text.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, text);
}

#[tokio::test]
async fn serves_with_files_and_clients_are_anonymous_without_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "main");
    let server = ca.server("server", "weir-server");
    let tls = Arc::new(TlsServer::load(files(&server, None, ClientAuth::None)).unwrap());
    let addr = echo_server(tls).await;
    let (mut stream, principal, cert) = connect(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(principal, "User:ANONYMOUS");
    assert_eq!(cert, server.der);
    echo(&mut stream, b"hello").await;
    // A client trusting another CA refuses this server.
    let other = TestCa::new(dir.path(), "other");
    assert!(connect(addr, client_config(&other, None)).await.is_err());
}

#[tokio::test]
async fn required_client_certificates_name_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "main");
    let server = ca.server("server", "weir-server");
    let client = ca.client("client", "client", "weir");
    let tls = Arc::new(TlsServer::load(files(&server, Some(&ca), ClientAuth::Required)).unwrap());
    let addr = echo_server(tls).await;
    let (mut stream, principal, _) = connect(addr, client_config(&ca, Some(&client)))
        .await
        .unwrap();
    assert_eq!(principal, "User:CN=client,O=weir");
    echo(&mut stream, b"mtls").await;
    // Without a certificate the handshake fails (TLS 1.3 reports it on
    // the first read).
    assert!(connect(addr, client_config(&ca, None)).await.is_err());
    // A certificate from a CA the server does not trust is refused.
    let rogue_ca = TestCa::new(dir.path(), "rogue");
    let rogue = rogue_ca.client("rogue", "client", "weir");
    assert!(
        connect(addr, client_config(&ca, Some(&rogue)))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn requested_client_certificates_are_optional() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "main");
    let server = ca.server("server", "weir-server");
    let client = ca.client("client", "alice, admin", "weir");
    let tls = Arc::new(TlsServer::load(files(&server, Some(&ca), ClientAuth::Requested)).unwrap());
    let addr = echo_server(tls).await;
    let (_, anonymous, _) = connect(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(anonymous, "User:ANONYMOUS");
    let (_, named, _) = connect(addr, client_config(&ca, Some(&client)))
        .await
        .unwrap();
    // RFC 2253 escapes the comma in the common name.
    assert_eq!(named, "User:CN=alice\\, admin,O=weir");
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "main");
    let server = ca.server("server", "weir-server");
    let other = ca.server("other", "other-server");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let load = |cert: &std::path::Path, key: &std::path::Path, auth, ca: Option<&TestCa>| {
        let mut f = files(&server, ca, auth);
        f.cert = cert.to_owned();
        f.key = key.to_owned();
        TlsServer::load(f).unwrap_err()
    };
    let missing = dir.path().join("missing.pem");
    let e = load(&missing, &server.key, ClientAuth::None, None);
    assert!(matches!(e, TlsError::Read { .. }), "{e}");
    assert!(e.to_string().contains("missing.pem"), "{e}");
    let e = load(&garbage, &server.key, ClientAuth::None, None);
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    let e = load(&broken, &server.key, ClientAuth::None, None);
    assert!(matches!(e, TlsError::Pem { .. }), "{e}");
    // A certificate where the key should be.
    let e = load(&server.cert, &server.cert, ClientAuth::None, None);
    assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    // Another certificate's key.
    let e = load(&server.cert, &other.key, ClientAuth::None, None);
    assert!(matches!(e, TlsError::KeyRefused { .. }), "{e}");
    let e = load(&server.cert, &server.key, ClientAuth::Required, None);
    assert!(matches!(e, TlsError::NeedsClientCa(_)), "{e}");
    let huge = dir.path().join("huge.pem");
    std::fs::write(&huge, vec![b'a'; weir_tls::FILE_BYTES_MAX as usize + 1]).unwrap();
    let e = load(&huge, &server.key, ClientAuth::None, None);
    assert!(matches!(e, TlsError::TooLarge { .. }), "{e}");
    assert!(matches!(
        "sometimes".parse::<ClientAuth>(),
        Err(TlsError::ClientAuth(_))
    ));
    assert_eq!(
        "required".parse::<ClientAuth>().unwrap(),
        ClientAuth::Required
    );
}

#[tokio::test]
async fn reload_changes_new_connections_and_keeps_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "main");
    let first = ca.server("server", "first");
    let tls = Arc::new(TlsServer::load(files(&first, None, ClientAuth::None)).unwrap());
    assert!(tls.reload_if_changed().is_none(), "nothing changed yet");
    let addr = echo_server(tls.clone()).await;
    let (mut old, _, cert) = connect(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(cert, first.der);

    // A new certificate and key in the same files.
    let second = ca.server("server", "second");
    assert_ne!(second.der, first.der);
    tls.reload_if_changed().expect("the files changed").unwrap();
    assert_eq!(tls.reloads(), 1);
    let (mut new, _, cert) = connect(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(cert, second.der);
    echo(&mut old, b"still here").await;
    echo(&mut new, b"new").await;

    // A broken certificate file: the reload fails and the second
    // certificate stays in use.
    weir_tls::test_certs::write_atomically(&second.cert, b"garbage");
    let e = tls
        .reload_if_changed()
        .expect("the file changed")
        .unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    let (_, _, cert) = connect(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(cert, second.der);
    // The failed files are not retried until they change again.
    assert!(tls.reload_if_changed().is_none());
    assert_eq!(tls.reloads(), 1);
}

#[tokio::test]
async fn the_watcher_reloads_when_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "main");
    let first = ca.server("server", "first");
    let tls = Arc::new(TlsServer::load(files(&first, None, ClientAuth::None)).unwrap());
    let watcher = tls.watch(Duration::from_millis(20));
    let second = ca.server("server", "second");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tls.reloads() == 0 {
        assert!(std::time::Instant::now() < deadline, "no reload seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = echo_server(tls.clone()).await;
    let (_, _, cert) = connect(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(cert, second.der);
    watcher.abort();
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_fails_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "main");
    let server = ca.server("server", "weir-server");
    let tls = Arc::new(TlsServer::load(files(&server, None, ClientAuth::None)).unwrap());
    let addr = echo_server(tls).await;
    // A Kafka ApiVersions frame in plaintext to the TLS port.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(&[0, 0, 0, 10, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0])
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    // The server answers with an alert (or nothing) and closes.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match plain.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the plaintext connection was not closed");
    let (mut stream, _, _) = connect(addr, client_config(&ca, None)).await.unwrap();
    echo(&mut stream, b"fine").await;
}

#[tokio::test]
async fn sighup_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "main");
    let first = ca.server("server", "first");
    let tls = Arc::new(TlsServer::load(files(&first, None, ClientAuth::None)).unwrap());
    // Polled once at start, then not for an hour: only SIGHUP reloads.
    let watcher = tls.watch(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = ca.server("server", "second");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(tls.reloads(), 0, "nothing but SIGHUP reloads here");
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tls.reloads() == 0 {
        assert!(std::time::Instant::now() < deadline, "no reload on SIGHUP");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = echo_server(tls.clone()).await;
    let (_, _, cert) = connect(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(cert, second.der);
    watcher.abort();
}
