//! `weir serve` as a user runs it: settings from a config file (flags win
//! over it), ready when it prints its address, serving kcat, and a clean
//! exit on SIGTERM; a config file with an unknown key is refused by name.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn kcat(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/install-deps");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn serves_with_a_config_file_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nkafka_addr = \"127.0.0.1:9\"\ndefault_partitions = 3\n",
            data
        ),
    )
    .unwrap();
    // The flag wins over the file's (unusable) address.
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "--kafka-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("kafka listening on ")
        .expect("the ready line")
        .to_owned();
    assert!(!addr.ends_with(":0") && !addr.ends_with(":9"), "{addr}");
    kcat(&["-b", &addr, "-P", "-t", "configured"], "x\n");
    let listing = kcat(&["-b", &addr, "-L", "-t", "configured"], "");
    assert!(listing.contains("with 3 partitions"), "{listing}");
    assert!(data.join(".topics").exists(), "the file's data_dir is used");
    // SIGTERM: a graceful stop, exit status 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn an_unknown_config_key_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("weir.toml");
    std::fs::write(&config, "retention_hours = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown field `retention_hours`"),
        "{stderr}"
    );
}
