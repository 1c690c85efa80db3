//! The single-node admin APIs through Python clients' admin APIs: the
//! script `tests/clients/python_cluster_admin.py` describes the cluster,
//! topics, log directories, the quorum and producers, elects leaders and
//! lists and alters reassignments with confluent-kafka's AdminClient and
//! kafka-python's KafkaAdminClient, checking each answer as a one-node
//! Kafka would give it.

mod common;

use std::time::Duration;

use common::{TestServer, python, run_bounded};

fn cluster_admin(client: &str) {
    let server = TestServer::start();
    // Sorts before the unknown topic the script also asks about.
    let topic = format!("admin-{client}");
    server
        .broker
        .create_topic(&topic, 3, -1, &[], false)
        .unwrap();
    let script = common::client_script("python_cluster_admin.py");
    let out = run_bounded(
        std::process::Command::new(python()).args([
            script.as_str(),
            &server.bootstrap(),
            client,
            &topic,
        ]),
        &format!("python_cluster_admin.py {client}"),
        Duration::from_secs(120),
    );
    assert!(
        out.contains(&format!("{client}: cluster admin ok")),
        "{out}"
    );
}

#[test]
fn confluent_kafka_cluster_admin() {
    cluster_admin("confluent");
}

#[test]
fn kafka_python_cluster_admin() {
    cluster_admin("kafka-python");
}
