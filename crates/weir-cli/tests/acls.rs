//! ACLs in `weir serve`: the authorizer's flags, and ACLs made over Kafka
//! surviving a restart (kept in the data directory's `.acls.json`), seen
//! by confluent-kafka before and after (`tests/clients/python_acls.py`,
//! scenarios `restart-before` and `restart-after`); a bad super user is
//! refused at start by name.

mod common;

use std::process::Command;

const FLAGS: [&str; 4] = [
    "--authorizer",
    "--allow-everyone-if-no-acl-found",
    "--super-users",
    "User:admin; User:ops",
];

fn run_python(kafka: &str, scenario: &str) {
    let out = Command::new(common::python())
        .args([&common::client_script("python_acls.py"), kafka, scenario])
        .output()
        .expect("the client virtualenv is installed by scripts/install-deps");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{scenario}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok:").count(), 3, "{stdout}");
}

fn stop(mut child: std::process::Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn acls_made_over_kafka_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (child, kafka, _) = common::start_serve_kafka_http(dir.path(), &FLAGS);
    run_python(&kafka, "restart-before");
    stop(child);
    assert!(dir.path().join(".acls.json").exists());
    let (child, kafka, _) = common::start_serve_kafka_http(dir.path(), &FLAGS);
    run_python(&kafka, "restart-after");
    stop(child);
}

#[test]
fn a_malformed_super_user_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--authorizer", "--super-users", "User:admin;alice"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"alice\""), "{stderr}");
}
