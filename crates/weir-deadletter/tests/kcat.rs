//! Any Kafka client sees a dead letter's headers: kcat (librdkafka) reads
//! `orders.dlq` from Weir's Kafka server after `send` wrote to it.

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_deadletter::format::{DEFAULT_SUFFIX, ErrorKind, Failure, Origin};
use weir_deadletter::{Original, send};
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_log::{DataDir, DirConfig};

/// Weir's Kafka server on a free loopback port over `broker`, stopped when
/// dropped.
struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(broker: Arc<Broker>) -> Self {
        let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap();
        let groups = Arc::new(Coordinator::new(
            GroupsConfig::default(),
            Arc::new(MonotonicClock::new()),
            broker.clone(),
            Arc::new(offsets),
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let config = weir_kafka::ServerConfig::new(addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(weir_kafka::run(listener, broker, groups, config, async {
                let _ = stopped.await;
            }));
        });
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn kcat_reads_a_dead_letters_headers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Arc::new(Broker::open(
        DataDir::open(dir.path(), DirConfig::default())?,
        BrokerConfig::default(),
    )?);
    broker.create_topic("orders", 1, -1, &[], false)?;
    let failure = Failure {
        error: "payment service said 503".into(),
        kind: ErrorKind::Transient,
        attempts: 5,
        first_failure_ms: 1_700_000_000_000,
        last_failure_ms: 1_700_000_004_000,
        group: "billing".into(),
    };
    let origin = Origin {
        topic: "orders".into(),
        partition: 0,
        offset: 42,
        timestamp_ms: 1_699_999_999_000,
    };
    let headers = [("trace", Some(&b"t-1"[..]))];
    let original = Original {
        key: Some(b"order-42"),
        value: Some(b"placed"),
        headers: &headers,
    };
    send(&broker, DEFAULT_SUFFIX, original, &failure, &origin)?;

    let server = Server::start(broker);
    let out = std::process::Command::new("kcat")
        .args(["-C", "-b", &server.addr.to_string(), "-t", "orders.dlq"])
        .args(["-o", "beginning", "-e", "-q", "-f", "%k %s %h\\n"])
        .output()
        .expect("kcat is installed by scripts/install-deps");
    assert!(
        out.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout)?,
        "order-42 placed trace=t-1,\
         weir.dlq.error=payment service said 503,\
         weir.dlq.error.kind=transient,\
         weir.dlq.attempts=5,\
         weir.dlq.first.failure.ms=1700000000000,\
         weir.dlq.last.failure.ms=1700000004000,\
         weir.dlq.group=billing,\
         weir.dlq.origin.topic=orders,\
         weir.dlq.origin.partition=0,\
         weir.dlq.origin.offset=42,\
         weir.dlq.origin.timestamp.ms=1699999999000\n"
    );
    Ok(())
}
