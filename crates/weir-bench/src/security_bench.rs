//! `weir-bench security`: what SASL_SSL costs against PLAINTEXT, in one
//! run through the same real client.
//!
//! One broker runs in this process with two listeners (as `weir serve
//! --listeners PLAINTEXT://…,SASL_SSL://…` has them): PLAINTEXT, and
//! SASL_SSL with a certificate made at run time by a throwaway CA
//! (`weir_tls::test_certs`) and one SCRAM-SHA-512 user stored in the data
//! directory's credential store. librdkafka (the same client, the same
//! settings but `security.protocol` and its SASL and TLS settings)
//! produces `--records` 1 KiB records (acks=all, idempotent, linger.ms=5,
//! as `weir-bench produce`) to a fresh 6-partition topic through one
//! listener, then one consumer reads them all back through the same
//! listener. Runs alternate between the listeners (PLAINTEXT, SASL_SSL,
//! PLAINTEXT, …) so that drift and noise hit both; each run's topic is
//! deleted after it. The medians of each side give the ratio
//! SASL_SSL / PLAINTEXT per direction, against the goal of issue 20
//! ([`GOAL`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use weir_auth::{CredentialChange, CredentialStore, ScramCredential, ScramMechanism};
use weir_broker::{Broker, BrokerConfig};
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_kafka::{Listener, SaslConfig, SaslMechanism, SecurityProtocol, ServerConfig};
use weir_log::{DataDir, DirConfig};
use weir_tls::test_certs::TestCa;
use weir_tls::{ClientAuth, TlsFiles, TlsServer};

use crate::log_bench::Rng;
use crate::produce_bench::{
    CpuSplit, PARTITIONS, Target, VALUE_BYTES, check_stored, consume_phase, produce_phase,
};
use crate::report::{self, Row};
use crate::sys;

/// SASL_SSL's throughput over PLAINTEXT's that issue 20 asks for.
const GOAL: f64 = 0.8;
/// The benchmark's SCRAM user.
const USER: &str = "bench";
/// Kafka's minimum SCRAM iteration count (and its tools' default).
const SCRAM_ITERATIONS: u32 = 4096;

#[derive(Debug, Args)]
pub struct SecurityArgs {
    /// Records produced (and consumed) per run [default: 500000, with
    /// --quick 5000]
    #[arg(long)]
    records: Option<u64>,
    /// Producer instances, each on its own thread with its own connection
    /// [default: 4, with --quick 2]
    #[arg(long)]
    producers: Option<usize>,
    /// Runs through each listener, alternating [default: 5, with --quick 1]
    #[arg(long)]
    rounds: Option<usize>,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
}

/// The broker in process with a PLAINTEXT and a SASL_SSL listener.
struct SecureServer {
    plain: SocketAddr,
    sasl_ssl: SocketAddr,
    /// The CA that signed the SASL_SSL listener's certificate, PEM.
    ca_pem: PathBuf,
    broker: Arc<Broker>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SecureServer {
    /// A broker on `data`, the SCRAM user `USER` with `password` stored
    /// there first, TLS material made in `certs`.
    fn start(data: &Path, certs: &Path, password: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data)?;
        let credential = ScramCredential::new(ScramMechanism::Sha512, password, SCRAM_ITERATIONS)
            .context("make the SCRAM credential")?;
        CredentialStore::open(data)
            .and_then(|store| {
                store.apply(&[CredentialChange::Upsert {
                    user: USER.to_owned(),
                    mechanism: ScramMechanism::Sha512,
                    credential,
                }])
            })
            .context("store the SCRAM user")?;
        let ca = TestCa::new(certs, "bench");
        let cert = ca.server("server", "weir-bench");
        let tls = Arc::new(
            TlsServer::load(TlsFiles {
                cert: cert.cert,
                key: cert.key,
                client_ca: None,
                client_auth: ClientAuth::None,
            })
            .context("load the TLS certificate")?,
        );
        let dir = DataDir::open(data, DirConfig::default())
            .with_context(|| format!("open data directory {}", data.display()))?;
        let broker = Arc::new(Broker::open(dir, BrokerConfig::default()).context("open broker")?);
        let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default())
            .context("open committed offsets")?;
        let groups = Arc::new(Coordinator::new(
            GroupsConfig::default(),
            Arc::new(MonotonicClock::new()),
            broker.clone(),
            Arc::new(offsets),
        ));
        // Named `weir…` like `weir-bench produce`'s, so the CPU split
        // counts these threads as the broker's.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("weir")
            .build()
            .context("start the tokio runtime")?;
        let bind = || {
            runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .context("bind 127.0.0.1:0")
        };
        let plain = Listener::new(SecurityProtocol::Plaintext, bind()?, None, None)?;
        let sasl_ssl = Listener::new(SecurityProtocol::SaslSsl, bind()?, None, Some(tls))?;
        let (plain_addr, sasl_ssl_addr) = (plain.endpoint.bound, sasl_ssl.endpoint.bound);
        let mut config = ServerConfig::new(plain_addr);
        config.sasl = Some(SaslConfig {
            mechanisms: vec![SaslMechanism::Scram(ScramMechanism::Sha512)],
            reauth_ms: 0,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let b = broker.clone();
        let thread = std::thread::Builder::new()
            .name("weir-server".into())
            .spawn(move || {
                runtime.block_on(weir_kafka::run_listeners(
                    vec![plain, sasl_ssl],
                    b,
                    groups,
                    config,
                    weir_kafka::ServerParts::default(),
                    async {
                        let _ = stopped.await;
                    },
                ));
            })
            .context("spawn the server thread")?;
        Ok(Self {
            plain: plain_addr,
            sasl_ssl: sasl_ssl_addr,
            ca_pem: ca.ca_pem.clone(),
            broker,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SecureServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One listener as the clients see it.
struct Side {
    protocol: SecurityProtocol,
    bootstrap: String,
    settings: Vec<(&'static str, String)>,
    /// Records per second of each run, produce and consume.
    produce: Vec<f64>,
    consume: Vec<f64>,
}

impl Side {
    fn target(&self, topic: String) -> Target {
        Target {
            bootstrap: self.bootstrap.clone(),
            topic,
            settings: self.settings.clone(),
        }
    }
}

pub fn run(args: &SecurityArgs) -> anyhow::Result<()> {
    let records = args
        .records
        .unwrap_or(if args.quick { 5_000 } else { 500_000 });
    let producers = args.producers.unwrap_or(if args.quick { 2 } else { 4 });
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 5 });
    anyhow::ensure!(records > 0, "--records must be at least 1");
    anyhow::ensure!(producers > 0, "--producers must be at least 1");
    anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
    let (scratch, root) = sys::scratch_dir(&args.dir, "weir-bench-security.")?;
    let (_, librdkafka_version) = rdkafka::util::get_rdkafka_version();
    println!(
        "weir-bench security: scratch {} on {}; {rounds} round(s) of {records} records of {VALUE_BYTES} B values, {producers} producers, then one consumer, per listener (librdkafka {librdkafka_version}), topics of {PARTITIONS} partitions; {} logical CPUs",
        root.display(),
        sys::describe_mount(&root),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // A fresh password each run: nothing secret is written anywhere but
    // the scratch directory.
    let password = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    let certs = root.join("certs");
    std::fs::create_dir(&certs)?;
    let mut server = SecureServer::start(&root.join("weir"), &certs, &password)?;
    let mut sides = [
        Side {
            protocol: SecurityProtocol::Plaintext,
            bootstrap: server.plain.to_string(),
            settings: Vec::new(),
            produce: Vec::new(),
            consume: Vec::new(),
        },
        Side {
            protocol: SecurityProtocol::SaslSsl,
            bootstrap: server.sasl_ssl.to_string(),
            settings: vec![
                ("security.protocol", "SASL_SSL".to_owned()),
                ("sasl.mechanisms", "SCRAM-SHA-512".to_owned()),
                ("sasl.username", USER.to_owned()),
                ("sasl.password", password.clone()),
                ("ssl.ca.location", server.ca_pem.display().to_string()),
            ],
            produce: Vec::new(),
            consume: Vec::new(),
        },
    ];
    let mut rows = Vec::new();
    for round in 1..=rounds {
        for side in &mut sides {
            let name = side.protocol.name();
            let topic = format!("bench-{round}-{}", name.to_ascii_lowercase());
            let created = server
                .broker
                .create_topic(&topic, PARTITIONS as i64, 1, &[], false)
                .with_context(|| format!("create topic {topic}"))?;
            let target = side.target(topic.clone());
            eprintln!(
                "[weir-bench] {name} (round {round}): {producers} producers sending {records} records ..."
            );
            let mut produced = produce_phase(&server.broker, &target, records, producers, &mut rng)
                .with_context(|| format!("produce over {name}"))?;
            check_stored(&created, records)?;
            eprintln!("[weir-bench] {name} (round {round}): consuming {records} records ...");
            // The consumer's threads end before the second reading: its
            // CPU is the process's less the broker's.
            let (threads_before, process_before) = (sys::thread_cpu_ns()?, sys::process_cpu()?);
            let (bytes, elapsed) =
                consume_phase(&target, records).with_context(|| format!("consume over {name}"))?;
            let broker = CpuSplit::between(&threads_before, &sys::thread_cpu_ns()?).broker;
            let client = sys::process_cpu()?.saturating_sub(process_before + broker);
            let consume_cpu = (broker, client);
            anyhow::ensure!(
                bytes == records * VALUE_BYTES as u64,
                "{name}: consumed {bytes} value bytes of {records} records"
            );
            drop(created);
            server
                .broker
                .delete_topic(&topic)
                .with_context(|| format!("delete topic {topic}"))?;
            let consumed = Row {
                phase: format!("{name} consume #{round}"),
                records,
                bytes,
                fsyncs: 0,
                elapsed,
                latency: None,
            };
            produced.row.phase = format!("{name} produce #{round}");
            side.produce.push(produced.row.records_per_sec());
            side.consume.push(consumed.records_per_sec());
            let label = format!("{name} #{round}");
            rows.push((label, produced.row, produced.cpu, consumed, consume_cpu));
        }
    }
    server.shutdown();
    drop(server);
    drop(scratch);

    println!();
    println!(
        "produce (acks=all, fsync=always; latency: send to delivery report), then consume (one consumer, {PARTITIONS} partitions from offset 0, warm page cache); MB = 10^6 bytes of record values"
    );
    let table: Vec<Row> = rows
        .iter()
        .flat_map(|(_, p, _, c, _)| [p.clone(), c.clone()])
        .collect();
    report::print_table(&table);
    println!();
    // CPU per GB of values: what the listener's TLS and SASL add on
    // each side of the connection.
    for (label, produce, produce_cpu, consume, consume_cpu) in &rows {
        let (produced_gb, consumed_gb) = (produce.bytes as f64 / 1e9, consume.bytes as f64 / 1e9);
        println!(
            "{label}: CPU-s per GB produced: broker {:.2}, clients {:.2}; per GB consumed: broker {:.2}, client and the rest {:.2}",
            produce_cpu.broker.as_secs_f64() / produced_gb,
            produce_cpu.clients.as_secs_f64() / produced_gb,
            consume_cpu.0.as_secs_f64() / consumed_gb,
            consume_cpu.1.as_secs_f64() / consumed_gb,
        );
    }
    println!();
    let [plain, secure] = &mut sides;
    for (direction, plain_rates, secure_rates) in [
        ("produce", &mut plain.produce, &mut secure.produce),
        ("consume", &mut plain.consume, &mut secure.consume),
    ] {
        let (p, s) = (report::median(plain_rates), report::median(secure_rates));
        let ratio = s / p;
        println!(
            "{direction}: median of {rounds}: PLAINTEXT {p:.0} records/s ({:.1} MB/s), SASL_SSL {s:.0} records/s ({:.1} MB/s); SASL_SSL/PLAINTEXT ratio {ratio:.2} (goal >= {GOAL}: {})",
            p * VALUE_BYTES as f64 / 1e6,
            s * VALUE_BYTES as f64 / 1e6,
            if ratio >= GOAL { "met" } else { "NOT met" },
        );
    }
    Ok(())
}
