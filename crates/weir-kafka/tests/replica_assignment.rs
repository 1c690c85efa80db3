//! Manual replica assignments: CreateTopics and CreatePartitions accept
//! an assignment that names only this broker and refuse any other node id
//! with INVALID_REPLICA_ASSIGNMENT, through confluent-kafka's and
//! kafka-python's admin clients (`tests/clients/python_replica_assignment.py`).

mod common;

use std::time::Duration;

use common::{TestServer, python, run_bounded};

#[test]
fn assignments_naming_only_this_broker_are_accepted() {
    let server = TestServer::start();
    let script = common::client_script("python_replica_assignment.py");
    let out = run_bounded(
        std::process::Command::new(python()).args([
            script.as_str(),
            &server.bootstrap(),
            "assigned",
        ]),
        "replica assignments through both admin clients",
        Duration::from_secs(90),
    );
    assert!(out.contains("OK confluent replica assignments"), "{out}");
    assert!(out.contains("OK kafka-python replica assignments"), "{out}");
    let partitions = |name: &str| server.broker.topic(name).unwrap().partition_count();
    assert_eq!(partitions("assigned-confluent"), 5);
    assert_eq!(partitions("assigned-kafka-python"), 3);
    assert!(server.broker.topic("assigned-confluent-bad").is_err());
    assert!(server.broker.topic("assigned-kafka-python-bad").is_err());
}
