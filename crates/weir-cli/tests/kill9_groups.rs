//! Consumer groups across server crashes: two confluent-kafka members
//! (committing after processing) and an idempotent producer keep going
//! while `weir serve` is `kill -9`ed twice and stopped with SIGTERM once,
//! each time restarted on the same port. `tests/clients/python_groups.py
//! restart` runs the clients and checks the group resumed from its
//! committed offsets: every delivered record processed, none below a
//! commit acknowledged before (an acknowledged commit survives the crash),
//! and at the end the committed offsets are the logs' ends.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

fn start(dir: &std::path::Path, port: u16) -> Child {
    common::start_serve(dir, port, &["--group-initial-rebalance-delay-ms", "300"])
}

fn sigterm(server: &mut Child) {
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "weir serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn groups_resume_from_committed_offsets_across_kill_dash_9() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut server = start(tmp.path(), port);
    let started = Instant::now();
    let mut driver = Command::new(common::python())
        .args([
            &common::client_script("python_groups.py"),
            "restart",
            &format!("127.0.0.1:{port}"),
            "3000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the client virtualenv is installed by scripts/install-deps");
    let (lines_tx, lines) = mpsc::channel();
    let stdout = driver.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut out = Vec::new();
    let ready_by = Instant::now() + Duration::from_secs(60);
    while out.last().is_none_or(|l| l != "READY") {
        let line = lines
            .recv_timeout(ready_by.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("the driver never got ready ({e}): {out:?}"));
        out.push(line);
    }

    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill delays seed: {seed}");
    for round in 0..3 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(1000 + (seed >> 33) % 1500));
        if round == 1 {
            sigterm(&mut server); // a clean restart between the crashes
        } else {
            server.kill().unwrap(); // SIGKILL
            server.wait().unwrap();
        }
        server = start(tmp.path(), port);
    }

    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(status) = driver.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = driver.kill();
            let _ = driver.wait();
            panic!("the driver did not finish: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The rest of its output, up to its end (the channel closes then).
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        out.push(line);
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let out = out.join("\n");
    eprintln!("{out}\n{:.1} s", started.elapsed().as_secs_f64());
    assert!(status.success(), "the driver failed ({status}):\n{out}");
    assert!(out.contains("OK restart"), "{out}");
}
