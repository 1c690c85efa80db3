//! The SDK's queue consumer on the embedded backend: the scenario of
//! `queue_scenarios` over the client's own broker.

mod queue_scenarios;

use weir::{Client, Embedded};
use weir_log::batch::BatchBuilder;

#[test]
fn queue_consumer_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Embedded::open(dir.path(), None).unwrap();
    let broker = embedded.store().broker().clone();
    let client = Client::with_backend(
        Box::new(embedded),
        dir.path().join("read-models"),
        "/test".to_owned(),
    );
    broker.create_topic("jobs", 1, -1, &[], false).unwrap();
    let produce = |values: &[&str]| {
        let mut b = BatchBuilder::new(0);
        for v in values {
            b.push(0, None, Some(v.as_bytes()), &[]);
        }
        broker.produce("jobs", 0, &mut b.build()).unwrap();
    };
    queue_scenarios::run(&client, &produce);
}
