//! The SDK's queue consumer against a real `weir serve`: the scenario the
//! embedded backend runs (`crates/weir/tests/queue_scenarios`, included
//! by path so there is one copy), every call through the HTTP queue API.

mod common;

#[path = "../../weir/tests/queue_scenarios/mod.rs"]
mod queue_scenarios;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use weir_api::{CreateTopic, Produce, ProduceRecord};

/// Kills the server when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // The server may be gone already; nothing to do then.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn queue_consumer_remote() {
    let data = tempfile::tempdir().unwrap();
    let (child, address) = common::start_serve_http(data.path(), &[]);
    let _server = Killed(child);
    let http = weir_client::Client::new(&address).unwrap();
    http.create_topic(&CreateTopic {
        name: "jobs".into(),
        partitions: Some(1),
        configs: Default::default(),
    })
    .unwrap();
    let produce = |values: &[&str]| {
        let records = values
            .iter()
            .map(|v| ProduceRecord {
                key: None,
                value: None,
                value_base64: Some(B64.encode(v)),
                headers: Default::default(),
                partition: Some(0),
            })
            .collect();
        http.produce("jobs", &Produce { records }).unwrap();
    };
    let client = weir::Client::connect(&address).unwrap();
    queue_scenarios::run(&client, &produce);
}
