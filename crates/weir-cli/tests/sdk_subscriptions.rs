//! Persistent subscriptions through the SDK, the same scenario embedded
//! (the data directory in this process, its own engine manager) and
//! remote (a `weir serve` over HTTP): competing consumers through
//! `run_once`, an event retried past the limit parked and replayed once,
//! and a stopped consumer's events handed to a waiting one after the
//! message timeout.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use weir::Client;
use weir::persistent::{NackAction, Outcome, SubscriptionSettings};
use weir::store::{ExpectedVersion, NewEvent};

fn scenario(client: &Client) {
    for s in ["order-1", "order-2", "order-3"] {
        let events: Vec<NewEvent> = (0..5)
            .map(|i| NewEvent::json(format!("{s}-{i}"), "Ordered", format!("{{\"i\":{i}}}")))
            .collect();
        client
            .backend()
            .append(s, ExpectedVersion::Any, &events)
            .unwrap();
    }
    let group = client.persistent_subscription("$ce-order", "billing");
    group
        .ensure(&SubscriptionSettings {
            start_from: Some(0),
            max_retry_count: 1,
            message_timeout_ms: 400,
            read_batch_size: 4,
            ..SubscriptionSettings::default()
        })
        .unwrap();
    // Two competing workers; order-1's first event always fails.
    let mut acked = BTreeSet::new();
    let mut failures = 0;
    for turn in 0.. {
        let worker = group.consumer(if turn % 2 == 0 { "w0" } else { "w1" });
        let n = worker
            .run_once(4, Duration::ZERO, |d| {
                if d.event.id == "order-1-0" {
                    failures += 1;
                    return Outcome::Nack(NackAction::Retry, "boom".into());
                }
                assert!(acked.insert(d.event.id.clone()), "acked twice: {d:?}");
                Outcome::Ack
            })
            .unwrap();
        if n == 0 && turn > 1 {
            break;
        }
    }
    assert_eq!(acked.len(), 14);
    assert_eq!(failures, 2, "first delivery and one retry, then parked");
    let info = group.info().unwrap();
    assert_eq!((info.parked, info.checkpoint, info.in_flight), (1, 15, 0));
    assert_eq!(
        info.parked_stream,
        "$persistentsubscription-$ce-order::billing-parked"
    );

    assert_eq!(group.replay_parked().unwrap(), 1);
    let worker = group.consumer("w0");
    let got = worker.read(10, Duration::ZERO).unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].replayed && got[0].event.id == "order-1-0");
    worker.ack(&got).unwrap();
    assert_eq!(group.replay_parked().unwrap(), 0);

    // A consumer that stops while holding events: another, waiting, gets
    // them after the message timeout.
    client
        .backend()
        .append(
            "order-4",
            ExpectedVersion::Any,
            &[NewEvent::json("o4", "Ordered", "{}")],
        )
        .unwrap();
    let held = group.consumer("stopper").read(10, Duration::ZERO).unwrap();
    assert_eq!(held.len(), 1);
    let again = group
        .consumer("w1")
        .read(10, Duration::from_secs(10))
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].event.id.as_str(), again[0].retry_count),
        ("o4", 1)
    );
    assert!(group.consumer("stopper").ack(&held).is_err());
    group.consumer("w1").ack(&again).unwrap();
    group.delete().unwrap();
    assert!(group.info().is_err());
}

#[test]
fn embedded_persistent_subscription() {
    let tmp = tempfile::tempdir().unwrap();
    let client = Client::open(tmp.path()).unwrap();
    scenario(&client);
}

#[test]
fn remote_persistent_subscription() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, http) = common::start_serve_http(tmp.path(), &[]);
    let client = Client::connect(&http).unwrap();
    scenario(&client);
    child.kill().unwrap();
    child.wait().unwrap();
}
