//! Consumer groups through the Python clients, so Weir's coordinator and
//! committed offsets are held to what confluent-kafka (librdkafka) and
//! kafka-python expect of Kafka: three members share six partitions under
//! each assignor the clients offer, partitions move within the session
//! timeout when a member leaves or is killed, commit strategies keep their
//! guarantee across a kill -9, and the admin APIs list, describe, alter and
//! delete groups. `tests/clients/python_groups.py` runs each scenario and
//! checks it (see its header for what members print and what is judged);
//! every test starts its own in-process server (nextest runs each test in
//! its own process, so a server cannot be shared between them).

mod common;

use common::groups_scenario as scenario;

#[test]
fn confluent_range_members_share_partitions() {
    scenario(&["share", "confluent", "range"], "OK share confluent range");
}

#[test]
fn confluent_roundrobin_members_share_partitions() {
    scenario(
        &["share", "confluent", "roundrobin"],
        "OK share confluent roundrobin",
    );
}

#[test]
fn confluent_cooperative_sticky_members_share_partitions() {
    scenario(
        &["share", "confluent", "cooperative-sticky"],
        "OK share confluent cooperative-sticky",
    );
}

#[test]
fn kafka_python_range_members_share_partitions() {
    scenario(
        &["share", "kafka-python", "range"],
        "OK share kafka-python range",
    );
}

#[test]
fn kafka_python_roundrobin_members_share_partitions() {
    scenario(
        &["share", "kafka-python", "roundrobin"],
        "OK share kafka-python roundrobin",
    );
}

#[test]
fn kafka_python_sticky_members_share_partitions() {
    scenario(
        &["share", "kafka-python", "sticky"],
        "OK share kafka-python sticky",
    );
}

#[test]
fn kafka_python_cooperative_sticky_members_share_partitions() {
    scenario(
        &["share", "kafka-python", "cooperative-sticky"],
        "OK share kafka-python cooperative-sticky",
    );
}

#[test]
fn confluent_partitions_move_on_leave_and_kill_9() {
    scenario(
        &["rebalance", "confluent", "range"],
        "OK rebalance confluent range",
    );
}

#[test]
fn confluent_cooperative_partitions_move_on_leave_and_kill_9() {
    scenario(
        &["rebalance", "confluent", "cooperative-sticky"],
        "OK rebalance confluent cooperative-sticky",
    );
}

#[test]
fn kafka_python_partitions_move_on_leave_and_kill_9() {
    scenario(
        &["rebalance", "kafka-python", "roundrobin"],
        "OK rebalance kafka-python roundrobin",
    );
}

#[test]
fn confluent_commit_strategies_across_kill_9() {
    scenario(&["commit-modes", "confluent"], "OK commit modes confluent");
}

#[test]
fn kafka_python_commit_strategies_across_kill_9() {
    scenario(
        &["commit-modes", "kafka-python"],
        "OK commit modes kafka-python",
    );
}

#[test]
fn confluent_admin_client_on_groups() {
    scenario(&["admin-confluent"], "OK admin confluent");
}

#[test]
fn kafka_python_admin_client_on_groups() {
    scenario(&["admin-kafka-python"], "OK admin kafka-python");
}
