//! Event types bound to schemas through a server: the SDK's remote client
//! registers through the registry's REST API served in process beside the
//! HTTP API (port 0, a temporary data directory), and the events it
//! appends carry the id the server's registry gave; the registry's
//! refusals come back with Confluent's codes.

#[path = "common/customers.rs"]
mod customers;

use std::sync::Arc;

use customers::{Command, Customer, CustomerEvent};
use weir::schema::dataschema_of;
use weir::schema_registry::{SchemaDef, SchemaType, VersionSpec};
use weir::{Client, Error, RepositoryConfig};
use weir_broker::{Broker, BrokerConfig};
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_http::{AppState, HttpLimits};
use weir_log::{DataDir, DirConfig};
use weir_store::{EmbeddedStore, StoreConfig};

/// The HTTP API with its schema registry, stopped on drop.
struct Server {
    address: String,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
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

fn server() -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let data = DataDir::open(dir.path(), DirConfig::default())?;
    let broker = Arc::new(Broker::open(data, BrokerConfig::default())?);
    let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default())?;
    let groups = Arc::new(Coordinator::new(
        GroupsConfig::default(),
        Arc::new(MonotonicClock::new()),
        broker.clone(),
        Arc::new(offsets),
    ));
    let store = Arc::new(EmbeddedStore::open(broker.clone(), StoreConfig::default())?);
    let registry =
        weir_schemas::Registry::open_on_broker(broker.clone(), weir_schemas::Limits::default())?;
    let state = Arc::new(
        AppState::new(broker, groups, store, HttpLimits::default())
            .with_schema_registry(Arc::new(registry)),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let address = listener.local_addr()?.to_string();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            weir_http::run(listener, state, shutdown).await.unwrap();
        });
    });
    Ok(Server {
        address,
        stop: Some(stop),
        thread: Some(thread),
        _dir: dir,
    })
}

#[test]
fn a_remote_client_binds_through_the_servers_registry() -> anyhow::Result<()> {
    let server = server()?;
    let client = Client::connect(&server.address)?;
    let bindings = client.bind::<CustomerEvent>("customer")?;
    let registered = bindings
        .iter()
        .find(|b| b.subject == "customer-CustomerRegistered")
        .expect("bound");

    // The server's registry holds it, read back by another client.
    let other = Client::connect(&server.address)?.schemas()?;
    let latest = other.subject_version("customer-CustomerRegistered", VersionSpec::Latest)?;
    assert_eq!((latest.id, latest.version), (registered.id, 1));
    assert_eq!(latest.schema.schema_type, SchemaType::Json);
    assert_eq!(
        other.schema_by_id(registered.id)?.schema,
        latest.schema.schema
    );

    let repo = client.repository::<Customer>(RepositoryConfig::default());
    repo.execute(
        "eve",
        &Command::Register {
            first: "Eve".into(),
            last: "Ma".into(),
        },
    )?;
    let stored = client.read_stream("customer-eve", 0, 1)?;
    assert_eq!(
        stored[0].dataschema.as_deref(),
        Some(dataschema_of(registered.id).as_str())
    );

    // Refusals carry the registry's codes: an incompatible schema (409),
    // an unknown subject (40401), and compatibility reports with messages.
    let breaking = SchemaDef::new(
        SchemaType::Json,
        r#"{"type":"object","properties":{"email":{"type":"string"}},"required":["email"]}"#,
    );
    let report = other.test_compatibility("customer-CustomerRegistered", &breaking, None)?;
    assert!(!report.is_compatible);
    assert!(!report.messages.is_empty());
    match other.register("customer-CustomerRegistered", &breaking) {
        Err(Error::Schema { code, .. }) => assert_eq!(code, 409),
        done => panic!("{done:?}"),
    }
    match other.subject_version("nobody-Nothing", VersionSpec::Latest) {
        Err(Error::Schema { subject, code, .. }) => {
            assert_eq!((subject.as_str(), code), ("nobody-Nothing", 40401));
        }
        done => panic!("{done:?}"),
    }
    other.set_compatibility(
        "customer-CustomerRegistered",
        weir::schema_registry::CompatibilityLevel::None,
    )?;
    let second = other.register("customer-CustomerRegistered", &breaking)?;
    assert_eq!(second.version, 2);
    Ok(())
}
