//! The HTTP API over HTTPS (`run_with_tls`, certificates made by the test
//! with rcgen): weir-client talks to it with the test CA, a handler sees a
//! client certificate's principal (`ConnectInfo<Peer>`), plain HTTP and
//! garbage to the HTTPS port close only their connections.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use weir_broker::{Broker, BrokerConfig};
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_http::{AppState, HttpLimits, Peer};
use weir_log::{DataDir, DirConfig};
use weir_store::{EmbeddedStore, StoreConfig};
use weir_tls::test_certs::TestCa;
use weir_tls::{ClientAuth, TlsFiles, TlsServer};

#[test]
fn https_serves_the_api_and_names_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "test");
    let server_cert = ca.server("server", "weir-server");
    let client_cert = ca.client("client", "client", "weir");
    let tls = Arc::new(
        TlsServer::load(TlsFiles {
            cert: server_cert.cert.clone(),
            key: server_cert.key.clone(),
            client_ca: Some(ca.ca_pem.clone()),
            client_auth: ClientAuth::Requested,
        })
        .unwrap(),
    );
    let data = DataDir::open(dir.path().join("data"), DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap();
    let groups = Arc::new(Coordinator::new(
        GroupsConfig::default(),
        Arc::new(MonotonicClock::new()),
        broker.clone(),
        Arc::new(offsets),
    ));
    let store = Arc::new(EmbeddedStore::open(broker.clone(), StoreConfig::default()).unwrap());
    let state = Arc::new(AppState::new(broker, groups, store, HttpLimits::default()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // A route beside the API that answers with the caller's principal.
    // Extra routes pass the API's guard, whose table knows the console's
    // paths (open here: no authorizer), hence the route's place.
    let whoami = axum::Router::new().route(
        "/console/whoami",
        axum::routing::get(|ConnectInfo(peer): ConnectInfo<Peer>| async move {
            peer.principal.to_string()
        }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(weir_http::run_with_tls(
        listener,
        Some(tls),
        state,
        whoami,
        async {
            let _ = stopped.await;
        },
    ));

    // The SDK's client, trusting the test CA.
    let ca_pem = std::fs::read(&ca.ca_pem).unwrap();
    let client = weir_client::Client::with_ca(&addr.to_string(), &ca_pem, None).unwrap();
    client
        .create_topic(&weir_api::CreateTopic {
            name: "over-https".into(),
            partitions: Some(2),
            configs: Default::default(),
        })
        .unwrap();
    let topics = client.topics().unwrap();
    assert!(
        topics.topics.iter().any(|t| t.name == "over-https"),
        "{topics:?}"
    );
    // https:// without the CA is refused before any request.
    assert!(weir_client::Client::new(&format!("https://{addr}")).is_err());
    assert!(weir_client::Client::with_ca(&addr.to_string(), b"no PEM here", None).is_err());

    // A client certificate names the principal; without one, anonymous.
    let whoami = |cert: bool| {
        use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
        let mut tls =
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&[
                    Certificate::from_pem(&ca_pem).unwrap()
                ]));
        if cert {
            let chain = Certificate::from_pem(&std::fs::read(&client_cert.cert).unwrap()).unwrap();
            let key = PrivateKey::from_pem(&std::fs::read(&client_cert.key).unwrap()).unwrap();
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&[chain], key)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .build()
            .into();
        agent
            .get(format!("https://{addr}/console/whoami"))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap()
    };
    assert_eq!(whoami(true), "User:CN=client,O=weir");
    assert_eq!(whoami(false), "User:ANONYMOUS");

    // Plain HTTP to the HTTPS port: closed, and the server goes on.
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("200 OK"),
        "plain HTTP was answered"
    );
    assert_eq!(whoami(false), "User:ANONYMOUS");
    let _ = stop.send(());
    runtime.block_on(server).unwrap().unwrap();
}
