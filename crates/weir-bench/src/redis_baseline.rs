//! Redis Streams as `weir-bench produce`'s baseline: `redis-server` with
//! `appendfsync always` on a free loopback port, in a scratch directory,
//! driven by `redis-benchmark` (`XADD` of the produce benchmark's value
//! size, 50 clients, pipeline 16); also started alone by the queue
//! benchmark.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::log_bench::Rng;
use crate::produce_bench::VALUE_BYTES;
use crate::report::Row;

pub(crate) const REDIS_PIPELINE: u32 = 16;
/// `redis-benchmark` load.
pub(crate) const REDIS_CLIENTS: u32 = 50;
/// What `redis-benchmark` measured.
#[derive(Debug)]
pub(crate) struct RedisRun {
    pub(crate) row: Row,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) version: String,
}

/// A free loopback port (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One inline command to Redis and its first reply line.
fn redis_call(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// `redis-server` on a loopback port, killed if still running when dropped.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Child,
    pub(crate) port: u16,
}

impl RedisServer {
    pub(crate) fn start(dir: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start redis-server (scripts/install-deps installs it)")?;
        let mut server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(reply) = redis_call(port, "PING")
                && reply == "+PONG"
            {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = server.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                bail!("redis-server exited ({status}): {err}");
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `SHUTDOWN NOSAVE`, then waits for the process (killing it after 10 s).
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let _ = redis_call(self.port, "SHUTDOWN NOSAVE");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A CSV line of quoted fields.
fn csv_fields(line: &str) -> Vec<String> {
    line.split("\",\"")
        .map(|f| f.trim().trim_matches('"').to_owned())
        .collect()
}

/// XADDs of `records` 1 KiB values by `redis-benchmark` against a fresh
/// `redis-server` with every write fsynced before it is acknowledged.
pub(crate) fn redis_phase(dir: &Path, records: u64, rng: &mut Rng) -> anyhow::Result<RedisRun> {
    let version = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            v.split_whitespace()
                .find_map(|w| w.strip_prefix("v="))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into());
    // A literal argument: printable and free of redis-benchmark's
    // `__rand_int__`-style placeholders.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let value: String = (0..VALUE_BYTES)
        .map(|_| ALPHABET[(rng.next_u64() % ALPHABET.len() as u64) as usize] as char)
        .collect();
    // Each client sends whole pipelines, so a count that is not a multiple
    // of the pipeline depth is overshot; round it up instead.
    let records = records.div_ceil(u64::from(REDIS_PIPELINE)) * u64::from(REDIS_PIPELINE);
    let server = RedisServer::start(dir)?;
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-c", &REDIS_CLIENTS.to_string()])
        .args(["-P", &REDIS_PIPELINE.to_string()])
        .args(["-n", &records.to_string(), "--csv"])
        .args(["XADD", "bench", "*", "f", &value])
        .stdin(Stdio::null())
        .output()
        .context("run redis-benchmark (it ships with redis-server)")?;
    let stored = redis_call(server.port, "XLEN bench");
    server.stop()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "redis-benchmark failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = stored.context("XLEN after the benchmark")?;
    anyhow::ensure!(
        stored == format!(":{records}"),
        "the stream holds {stored:?} entries after {records} XADDs"
    );
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
    let mut lines = stdout.lines().filter(|l| !l.trim().is_empty());
    let header = csv_fields(lines.next().context("redis-benchmark printed nothing")?);
    let fields = csv_fields(
        lines
            .next_back()
            .context("redis-benchmark printed no result")?,
    );
    let column = |name: &str| -> Option<f64> {
        let i = header.iter().position(|h| h == name)?;
        fields.get(i)?.parse().ok()
    };
    let rps =
        column("rps").with_context(|| format!("no rps in redis-benchmark output: {stdout}"))?;
    anyhow::ensure!(rps > 0.0, "redis-benchmark reported {rps} requests/s");
    Ok(RedisRun {
        row: Row {
            phase: format!(
                "redis-streams XADD ({REDIS_CLIENTS} clients, pipeline {REDIS_PIPELINE})"
            ),
            records,
            bytes: records * VALUE_BYTES as u64,
            fsyncs: 0,
            elapsed: Duration::from_secs_f64(records as f64 / rps),
            latency: None,
        },
        p50_ms: column("p50_latency_ms"),
        p99_ms: column("p99_latency_ms"),
        version,
    })
}
