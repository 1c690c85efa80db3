//! A real `kill -9` test: `weir log append` appends lines and reports each
//! acknowledged offset; it is killed at random moments, and after each kill
//! the log must hold every acknowledged record, intact, at its offset.
//! `WEIR_KILL9_ROUNDS` sets the number of kills (default 8).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use weir_log::{DataDir, DirConfig, LogConfig, batch};

/// How long the child may take to acknowledge its first record.
const CHILD_START_MAX: Duration = Duration::from_secs(30);

fn check(dir: &std::path::Path, acked: &BTreeMap<i64, String>) -> i64 {
    let data = DataDir::open(dir, DirConfig::default()).expect("reopen after kill");
    let log = data
        .open_log(
            "kill9",
            LogConfig {
                retention_ms: None,
                ..LogConfig::default()
            },
        )
        .expect("open log");
    let mut found = BTreeMap::new();
    let mut offset = log.start_offset();
    loop {
        let read = log.read(offset, 1 << 20).expect("read");
        if read.bytes.is_empty() {
            break;
        }
        for (_, range) in batch::validate_all(&read.bytes).expect("stored batches are valid") {
            for r in batch::records(&read.bytes[range]).unwrap() {
                found.insert(
                    r.offset,
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                );
            }
        }
        offset = read.next_offset;
    }
    let end = log.end_offset();
    assert_eq!(found.len() as i64, end, "offsets must be contiguous from 0");
    for (offset, value) in acked {
        assert_eq!(
            found.get(offset),
            Some(value),
            "acknowledged offset {offset} lost or changed"
        );
    }
    end
}

#[test]
fn acknowledged_appends_survive_kill_dash_9() {
    let tmp = tempfile::tempdir().unwrap();
    let rounds: u64 = std::env::var("WEIR_KILL9_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill -9 test seed (kill delays): {seed}");
    for round in 0..rounds {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["log", "append", "kill9", "--data-dir"])
            .arg(tmp.path())
            .env("WEIR_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn weir");
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        // Lines sent, in order; the child prints one offset per line.
        let sent: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (sent, stop) = (sent.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) && i < 200_000 {
                    let line = format!("round{round}-record{i}-{}", "x".repeat((i % 200) as usize));
                    sent.lock().unwrap().push(line.clone());
                    if writeln!(stdin, "{line}").is_err() {
                        break;
                    }
                    i += 1;
                }
            })
        };
        let n_acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let reader = {
            let (sent, n_acked) = (sent.clone(), n_acked.clone());
            std::thread::spawn(move || {
                let mut acks = Vec::new();
                for (i, line) in BufReader::new(stdout).lines().enumerate() {
                    let Ok(line) = line else { break };
                    let offset: i64 = line.trim().parse().expect("child prints offsets");
                    acks.push((offset, sent.lock().unwrap()[i].clone()));
                    n_acked.fetch_add(1, Ordering::Relaxed);
                }
                acks
            })
        };
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // The random moment counts from the child's first acknowledgement:
        // on a loaded machine its start alone can take longer than the
        // delay, and a kill before it opened the log would test nothing.
        let spawned = Instant::now();
        while n_acked.load(Ordering::Relaxed) == 0 && spawned.elapsed() < CHILD_START_MAX {
            std::thread::sleep(Duration::from_millis(5));
        }
        let delay_ms = (seed >> 33) % 400;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(delay_ms) {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("kill -9"); // SIGKILL
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let acks = reader.join().unwrap();
        assert!(
            !acks.is_empty(),
            "the child acknowledged nothing in {:?}",
            spawned.elapsed()
        );
        for (offset, value) in acks {
            assert!(
                acked.insert(offset, value).is_none(),
                "offset {offset} acknowledged twice"
            );
        }
        let end = check(tmp.path(), &acked);
        eprintln!(
            "round {round}: killed after {delay_ms} ms; {} acknowledged, log end {end}",
            acked.len()
        );
    }
    assert!(
        acked.len() > 10,
        "too few acknowledged appends to prove anything"
    );
}
