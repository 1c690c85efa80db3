//! A static member (group.instance.id) of confluent-kafka or kafka-python
//! that closes without leaving keeps the group non-empty until its session
//! ends, and no longer: DeleteGroups succeeds within the session (6 s)
//! plus 0.4 s of the close (`tests/clients/python_static_expiry.py`).
//! `group_errors.rs` pins the same to 100 ms on raw sockets.

mod common;

use std::time::Duration;

use common::{TestServer, python, run_bounded};

fn expires_on_time(client: &str) {
    let server = TestServer::start();
    let script = common::client_script("python_static_expiry.py");
    let out = run_bounded(
        std::process::Command::new(python()).args([
            script.as_str(),
            &server.bootstrap(),
            client,
            &format!("static-{client}"),
        ]),
        "a static member's expiry",
        Duration::from_secs(90),
    );
    assert!(out.contains(&format!("{client}: deleted")), "{out}");
    eprintln!("{out}");
}

#[test]
fn a_confluent_static_member_expires_on_time() {
    expires_on_time("confluent");
}

#[test]
fn a_kafka_python_static_member_expires_on_time() {
    expires_on_time("kafka-python");
}
