//! The log cleaner of a real `weir serve` killed mid-pass: a compacted
//! topic with many small segments of keyed records and tombstones is
//! cleaned by `weir serve` with a slow I/O limit; each time a cleaned copy
//! is on disk (a pass is under way) the server is `kill -9`ed and started
//! again. Afterwards kcat reads the topic back from a restarted server
//! until that server has finished a pass, and the log is read in process:
//! every record is what was written at its
//! offset, offsets strictly increase, every key's latest record is there,
//! and a record is missing only where a later one of its key is there.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use weir_broker::compact::CleanerLimits;
use weir_broker::{Broker, BrokerConfig};
use weir_log::batch::BatchBuilder;
use weir_log::{DataDir, DirConfig, Throttle, batch};

type Model = BTreeMap<i64, (String, Option<String>)>;

fn open(dir: &Path) -> Broker {
    Broker::open(
        DataDir::open(dir, DirConfig::default()).unwrap(),
        BrokerConfig::default(),
    )
    .unwrap()
}

/// (offset, key, value) of every record of `c-0`.
fn read_all(broker: &Broker) -> Vec<(i64, String, Option<String>)> {
    let log = broker.partition("c", 0).unwrap();
    let mut out = Vec::new();
    let mut offset = log.start_offset();
    loop {
        let read = log.read(offset, 1 << 20).unwrap();
        if read.bytes.is_empty() {
            return out;
        }
        for (_, range) in batch::validate_all(&read.bytes).unwrap() {
            for r in batch::records(&read.bytes[range]).unwrap() {
                let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                out.push((r.offset, text(r.key).unwrap(), text(r.value)));
            }
        }
        offset = read.next_offset;
    }
}

fn check(stored: &[(i64, String, Option<String>)], model: &Model, what: &str) {
    assert!(
        stored.windows(2).all(|w| w[0].0 < w[1].0),
        "{what}: offsets go backwards"
    );
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for (offset, (key, _)) in model {
        latest.insert(key, *offset);
    }
    let present: HashMap<i64, _> = stored.iter().map(|r| (r.0, r)).collect();
    for (offset, key, value) in stored {
        assert_eq!(
            model.get(offset),
            Some(&(key.clone(), value.clone())),
            "{what}: record at {offset} changed"
        );
    }
    for (offset, (key, _)) in model {
        let last = latest[key.as_str()];
        assert!(
            present.contains_key(offset) || (last > *offset && present.contains_key(&last)),
            "{what}: {key} at {offset} was lost"
        );
    }
}

/// Whether a cleaned copy lies in the data directory (a pass is writing).
fn cleaning(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("c-0"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".cleaned"))
        })
        .unwrap_or(false)
}

/// Every record of `c` read by kcat from the server on `port`.
fn kcat_read(port: u16) -> Vec<(i64, String, Option<String>)> {
    let out = Command::new("kcat")
        .args([
            "-b",
            &format!("127.0.0.1:{port}"),
            "-C",
            "-t",
            "c",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-Z",
        ])
        .args(["-f", "%o|%k|%S|%s\n"])
        .output()
        .expect("kcat is installed by scripts/install-deps");
    assert!(
        out.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.splitn(4, '|').collect();
            (
                f[0].parse().unwrap(),
                f[1].to_owned(),
                (f[2] != "-1").then(|| f[3].to_owned()),
            )
        })
        .collect()
}

#[test]
fn a_cleaning_pass_killed_at_random_moments_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // The topic and its records, written in process before the server runs.
    let mut model = Model::new();
    {
        let broker = open(tmp.path());
        broker
            .create_topic(
                "c",
                1,
                1,
                &[
                    ("cleanup.policy", "compact"),
                    ("segment.bytes", "4096"),
                    ("max.message.bytes", "4096"),
                    ("min.cleanable.dirty.ratio", "0.01"),
                    ("delete.retention.ms", "86400000"),
                ],
                false,
            )
            .unwrap();
        // Timestamps of now: tombstones stay (delete.retention.ms is a day).
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        for i in 0..4_000 {
            let key = format!("key-{}", (i * 7 + i / 50) % 60);
            let value = (i % 23 != 5).then(|| format!("value-{i}-{}", "v".repeat(i % 50)));
            let mut b = BatchBuilder::new(now);
            b.push_nullable(
                now,
                Some(key.as_bytes()),
                value.as_deref().map(str::as_bytes),
                &[],
            );
            let info = broker.produce("c", 0, &mut b.build()).unwrap();
            model.insert(info.base_offset, (key, value));
        }
    }
    let port = common::free_port();
    let slow = [
        "--log-cleaner-backoff-ms",
        "20",
        "--log-cleaner-io-max-bytes-per-second",
        "300000",
    ];
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill delays seed: {seed}");
    let mut server = common::start_serve(tmp.path(), port, &slow);
    for _ in 0..4 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cleaning(tmp.path()) {
            assert!(Instant::now() < deadline, "no cleaning pass started");
            std::thread::sleep(Duration::from_millis(2));
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 40));
        server.kill().unwrap(); // SIGKILL, mid-pass
        server.wait().unwrap();
        server = common::start_serve(tmp.path(), port, &slow);
    }

    // kcat reads back through the restarted server, until that server's
    // own pass has removed records (on a slow machine every pass may have
    // been killed before its first swap): each read on the way is checked.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let read = kcat_read(port);
        check(&read, &model, "kcat after the kills");
        if read.len() < model.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cleaning pass finished after the kills"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kill().unwrap();
    server.wait().unwrap();

    // In process: the same, and a full pass then leaves the latest per key.
    let broker = open(tmp.path());
    let stored = read_all(&broker);
    assert!(stored.len() < model.len(), "the passes removed records");
    check(&stored, &model, "after the kills");
    broker.clean_compacted(&CleanerLimits::default(), &Throttle::new(None));
    let cleaned = read_all(&broker);
    check(&cleaned, &model, "after a full pass");
    let active_base = broker.partition("c", 0).unwrap().active_base_offset();
    let mut seen = HashMap::new();
    for (offset, key, _) in cleaned.iter().filter(|r| r.0 < active_base) {
        assert!(
            seen.insert(key.clone(), *offset).is_none(),
            "{key} twice below the active segment"
        );
    }
}
