//! A Weir Kafka server for tests: in-process, on a free loopback port, over
//! a temporary data directory, stopped when dropped.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::net::SocketAddr;
use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_kafka::ServerConfig;
use weir_log::{DataDir, DirConfig};

pub struct TestServer {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(BrokerConfig::default(), |_| {})
    }

    pub fn start_with(config: BrokerConfig, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path(), DirConfig::default()).unwrap();
        let broker = Arc::new(Broker::open(data, config).unwrap());
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
        let b = broker.clone();
        let thread = std::thread::spawn(move || {
            runtime.block_on(weir_kafka::run(listener, b, server_config, async {
                let _ = stopped.await;
            }));
        });
        Self {
            addr,
            broker,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs kcat with `args`, feeding `stdin`; returns stdout. kcat is
/// installed by `scripts/install-deps`; a missing kcat fails the test.
pub fn kcat(args: &[&str], stdin: &str) -> String {
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
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
