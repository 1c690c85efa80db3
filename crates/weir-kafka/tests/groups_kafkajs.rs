//! Consumer groups through kafkajs (whose consumers always belong to a
//! group), so Weir is held to what it expects of Kafka: three groups of
//! three different clients each get every record and a group added later
//! reads the history, kafkajs members share partitions with its round-robin
//! assigner, move them on leave and kill -9, keep their commit guarantee
//! across a kill -9, and its admin client sets, resets and deletes a
//! group's offsets. The scenarios and their checks are in
//! `tests/clients/python_groups.py` (which starts kafkajs members from
//! `kafkajs_groups.js`) and `kafkajs_groups.js admin`.

mod common;

use std::time::Duration;

use common::groups_scenario as scenario;
use common::{TestServer, node_modules};

#[test]
fn three_clients_fan_out_and_a_late_group_reads_history() {
    scenario(&["fanout"], "OK fanout");
}

#[test]
fn kafkajs_roundrobin_members_share_partitions() {
    scenario(&["share", "kafkajs", "default"], "OK share kafkajs default");
}

#[test]
fn kafkajs_partitions_move_on_leave_and_kill_9() {
    scenario(
        &["rebalance", "kafkajs", "default"],
        "OK rebalance kafkajs default",
    );
}

#[test]
fn kafkajs_commit_strategies_across_kill_9() {
    scenario(&["commit-modes", "kafkajs"], "OK commit modes kafkajs");
}

#[test]
fn kafkajs_admin_client_on_groups() {
    let server = TestServer::start();
    let out = common::run_bounded(
        std::process::Command::new("node")
            .env("NODE_PATH", node_modules())
            .arg(common::client_script("kafkajs_groups.js"))
            .args(["admin", &server.bootstrap()]),
        "kafkajs_groups.js admin",
        Duration::from_secs(150),
    );
    assert!(out.contains("OK admin kafkajs"), "{out}");
}
