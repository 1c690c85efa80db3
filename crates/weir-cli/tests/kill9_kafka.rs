//! End-to-end durability through a real Kafka client: an idempotent
//! confluent-kafka producer (acks=all) keeps sending while `weir serve` is
//! `kill -9`ed at random moments and restarted on the same port. Every
//! record whose delivery report said success must be in the log at the
//! reported offset, and no record may be there twice.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use weir_broker::{Broker, BrokerConfig};
use weir_log::{DataDir, DirConfig, batch};

fn start(dir: &std::path::Path, port: u16) -> Child {
    common::start_serve(dir, port, &["--default-partitions", "3"])
}

#[test]
fn delivered_records_survive_kill_dash_9_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let n = 20_000;
    let mut server = start(tmp.path(), port);
    let mut producer = Command::new(common::python())
        .args([
            &common::client_script("python_durable_producer.py"),
            &format!("127.0.0.1:{port}"),
            "durable",
            &n.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the client virtualenv is installed by scripts/install-deps");
    let reports = {
        let stdout = producer.stdout.take().unwrap();
        std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        })
    };
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill delays seed: {seed}");
    for _ in 0..4 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(300 + (seed >> 33) % 700));
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        server = start(tmp.path(), port);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while producer.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the producer did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = reports.join().unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        lines.iter().any(|l| l == "DONE 0"),
        "producer did not flush: {:?}",
        lines.last()
    );

    let mut delivered: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.starts_with("OK ")) {
        let f: Vec<&str> = line.split(' ').collect();
        delivered.insert(
            (f[1].parse().unwrap(), f[2].parse().unwrap()),
            f[3].to_owned(),
        );
    }
    let errors: Vec<_> = lines.iter().filter(|l| l.starts_with("ERR")).collect();
    assert!(
        errors.is_empty(),
        "delivery failures: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert_eq!(delivered.len(), n, "every record was reported delivered");

    let broker = Broker::open(
        DataDir::open(tmp.path(), DirConfig::default()).unwrap(),
        BrokerConfig::default(),
    )
    .unwrap();
    let mut stored: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for p in 0..3 {
        let log = broker.partition("durable", p).unwrap();
        let mut offset = log.start_offset();
        loop {
            let read = log.read(offset, 1 << 20).unwrap();
            if read.bytes.is_empty() {
                break;
            }
            for (_, range) in batch::validate_all(&read.bytes).unwrap() {
                for r in batch::records(&read.bytes[range]).unwrap() {
                    stored.insert(
                        (p, r.offset),
                        String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                    );
                }
            }
            offset = read.next_offset;
        }
    }
    for (at, value) in &delivered {
        assert_eq!(
            stored.get(at),
            Some(value),
            "delivered {value} at {at:?} is missing"
        );
    }
    let unique: HashSet<&String> = stored.values().collect();
    assert_eq!(unique.len(), stored.len(), "a record was written twice");
    assert_eq!(stored.len(), n);
}
