//! Persistent subscriptions through the store's public API, on a real data
//! directory with the engine's manager over the broker's storage (as the
//! server runs them): competing consumers never get an acked event again,
//! a silent consumer's events go to another after the message timeout,
//! retries past the limit park the event and a replay delivers it once
//! more, `pinned` keeps each stream on one consumer in order, and a
//! restart keeps the checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_deadletter::queue_io::BrokerQueueIo;
use weir_log::{DataDir, DirConfig};
use weir_queue::{Queues, QueuesConfig};
use weir_store::persistent::{
    NackAction, PersistentSubscriptions, Strategy, SubscriptionError, SubscriptionSettings, Target,
};
use weir_store::{Direction, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, StoreConfig};

type Subs = PersistentSubscriptions<BrokerQueueIo>;

fn open(dir: &std::path::Path) -> (Arc<EmbeddedStore>, Subs) {
    let broker = Arc::new(
        Broker::open(
            DataDir::open(dir, DirConfig::default()).unwrap(),
            BrokerConfig::default(),
        )
        .unwrap(),
    );
    let store = Arc::new(EmbeddedStore::open(broker.clone(), StoreConfig::default()).unwrap());
    let (queues, _) = Queues::open(BrokerQueueIo::new(broker), QueuesConfig::default()).unwrap();
    let subs = PersistentSubscriptions::open(store.clone(), Arc::new(queues)).unwrap();
    (store, subs)
}

fn append(store: &EmbeddedStore, stream: &str, n: usize) {
    for i in 0..n {
        let e = NewEvent::json(
            format!("{stream}-{i}"),
            "Happened",
            format!("{{\"i\":{i}}}"),
        );
        store.append(stream, ExpectedVersion::Any, &[e]).unwrap();
    }
}

fn settings(f: impl FnOnce(&mut SubscriptionSettings)) -> SubscriptionSettings {
    let mut s = SubscriptionSettings {
        start_from: Some(0),
        ..SubscriptionSettings::default()
    };
    f(&mut s);
    s
}

#[test]
fn competing_consumers_never_get_an_acked_event_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, subs) = open(tmp.path());
    for s in ["order-1", "order-2", "order-3", "other-1"] {
        append(&store, s, 40);
    }
    let target = Target::parse("$ce-order").unwrap();
    subs.create(&target, "g", &settings(|s| s.read_batch_size = 7))
        .unwrap();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut idle = 0;
    let mut turn = 0;
    while idle < 3 {
        let consumer = format!("c{}", turn % 3);
        turn += 1;
        let got = subs.read(&target, "g", &consumer, None, 0).unwrap();
        if got.is_empty() {
            idle += 1;
            continue;
        }
        idle = 0;
        assert!(got.len() <= 7);
        // Ack all but the last of each batch of two or more, which is
        // nacked with retry.
        let (last, rest) = got.split_last().unwrap();
        if rest.is_empty() {
            subs.ack(
                &target,
                "g",
                &consumer,
                std::slice::from_ref(&last.ack_id),
                0,
            )
            .unwrap();
            assert!(acked.insert(last.event.position), "acked twice: {last:?}");
            continue;
        }
        let ids: Vec<String> = rest.iter().map(|d| d.ack_id.clone()).collect();
        subs.ack(&target, "g", &consumer, &ids, 0).unwrap();
        for d in rest {
            assert!(d.event.stream.starts_with("order-"));
            assert!(acked.insert(d.event.position), "acked twice: {d:?}");
        }
        subs.nack(
            &target,
            "g",
            &consumer,
            std::slice::from_ref(&last.ack_id),
            NackAction::Retry,
            "",
            0,
        )
        .unwrap();
    }
    assert_eq!(acked.len(), 120, "every order event acked once");
    // Acking what another consumer holds (or nothing) is refused.
    let err = subs
        .ack(&target, "g", "c0", &["m:0".to_owned()], 0)
        .unwrap_err();
    assert!(matches!(err, SubscriptionError::NotHeld { .. }), "{err}");
    let info = subs.info(&target, "g", 0).unwrap();
    assert_eq!(
        (info.checkpoint, info.last_known, info.in_flight),
        (120, 120, 0)
    );
}

#[test]
fn a_silent_consumers_events_go_to_another_after_the_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, subs) = open(tmp.path());
    append(&store, "job-1", 5);
    let target = Target::parse("job-1").unwrap();
    subs.create(&target, "g", &settings(|s| s.message_timeout_ms = 1_000))
        .unwrap();
    let held = subs.read(&target, "g", "a", Some(10), 0).unwrap();
    assert_eq!(held.len(), 5);
    assert!(
        subs.read(&target, "g", "b", Some(10), 500)
            .unwrap()
            .is_empty()
    );
    subs.upkeep(1_001).unwrap();
    let again = subs.read(&target, "g", "b", Some(10), 1_001).unwrap();
    let versions: Vec<u64> = again.iter().map(|d| d.event.version).collect();
    assert_eq!(versions, vec![0, 1, 2, 3, 4]);
    assert!(again.iter().all(|d| d.retry_count == 1));
    // a's lock is gone: its late ack is refused, b's goes through.
    assert!(
        subs.ack(&target, "g", "a", &[held[0].ack_id.clone()], 1_002)
            .is_err()
    );
    subs.ack(&target, "g", "b", &[again[0].ack_id.clone()], 1_002)
        .unwrap();
}

#[test]
fn retries_past_the_limit_park_and_a_replay_delivers_once_more() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, subs) = open(tmp.path());
    append(&store, "pay-1", 3);
    let target = Target::parse("$all").unwrap();
    subs.create(&target, "g", &settings(|s| s.max_retry_count = 2))
        .unwrap();
    // Event 0 is retried until parked; 1 is parked by hand; 2 is skipped.
    let mut deliveries_of_0 = 0;
    loop {
        let got = subs.read(&target, "g", "c", None, 0).unwrap();
        let mut saw_0 = false;
        for d in &got {
            let id = [d.ack_id.clone()];
            match d.event.version {
                0 => {
                    saw_0 = true;
                    deliveries_of_0 += 1;
                    assert_eq!(d.retry_count, deliveries_of_0 - 1);
                    subs.nack(&target, "g", "c", &id, NackAction::Retry, "", 0)
                        .unwrap();
                }
                1 => subs
                    .nack(&target, "g", "c", &id, NackAction::Park, "bad data", 0)
                    .unwrap(),
                _ => subs
                    .nack(&target, "g", "c", &id, NackAction::Skip, "", 0)
                    .unwrap(),
            }
        }
        if !saw_0 {
            break;
        }
    }
    assert_eq!(deliveries_of_0, 3, "first delivery and two retries");
    let info = subs.info(&target, "g", 0).unwrap();
    assert_eq!((info.parked, info.in_flight), (2, 0));
    let parked = store
        .read_stream(&info.parked_stream, 0, Direction::Forward, 10)
        .unwrap();
    assert_eq!(parked.len(), 2);
    let meta: serde_json::Value = serde_json::from_slice(&parked[0].metadata).unwrap();
    assert_eq!(meta["parked_from"]["reason"], "bad data");
    assert_eq!(meta["parked_from"]["stream"], "pay-1");
    let meta: serde_json::Value = serde_json::from_slice(&parked[1].metadata).unwrap();
    assert_eq!(meta["parked_from"]["version"], 0);
    assert_eq!(meta["parked_from"]["retry_count"], 3);
    // Parked events are not in $all for the group (the parked stream is a
    // $ stream).
    assert!(subs.read(&target, "g", "c", None, 0).unwrap().is_empty());

    assert_eq!(subs.replay_parked(&target, "g").unwrap(), 2);
    let got = subs.read(&target, "g", "c", None, 0).unwrap();
    let versions: Vec<(u64, bool)> = got.iter().map(|d| (d.event.version, d.replayed)).collect();
    assert_eq!(versions, vec![(1, true), (0, true)]);
    let ids: Vec<String> = got.iter().map(|d| d.ack_id.clone()).collect();
    subs.ack(&target, "g", "c", &ids, 0).unwrap();
    assert!(subs.read(&target, "g", "c", None, 0).unwrap().is_empty());
    assert_eq!(
        subs.replay_parked(&target, "g").unwrap(),
        0,
        "each replayed once"
    );
    let info = subs.info(&target, "g", 0).unwrap();
    assert_eq!((info.parked, info.replaying), (0, 0));
    assert!(
        store
            .read_stream(&info.parked_stream, 0, Direction::Forward, 10)
            .is_err_and(|e| matches!(e, weir_store::StoreError::StreamNotFound { .. }))
    );
}

#[test]
fn pinned_keeps_each_stream_on_one_consumer_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, subs) = open(tmp.path());
    // Interleaved appends: the category's order mixes the streams.
    for i in 0..30 {
        for s in ["acct-a", "acct-b", "acct-c", "acct-d"] {
            let e = NewEvent::json(format!("{s}-{i}"), "Moved", "{}");
            store.append(s, ExpectedVersion::Any, &[e]).unwrap();
        }
    }
    let target = Target::parse("$ce-acct").unwrap();
    subs.create(
        &target,
        "g",
        &settings(|s| {
            s.strategy = Strategy::Pinned;
            s.message_timeout_ms = 1_000;
            s.read_batch_size = 5;
        }),
    )
    .unwrap();
    // stream → (round, consumer, version) of every delivery.
    let mut seen: BTreeMap<String, Vec<(usize, String, u64)>> = BTreeMap::new();
    let mut now = 0;
    for round in 0..40 {
        for c in ["x", "y"] {
            // y goes silent after round 10; x takes its streams over.
            if c == "y" && round >= 10 {
                continue;
            }
            if round == 10 && c == "x" {
                now += 1_001;
                subs.upkeep(now).unwrap();
            }
            let got = subs.read(&target, "g", c, None, now).unwrap();
            let ids: Vec<String> = got.iter().map(|d| d.ack_id.clone()).collect();
            for d in got {
                seen.entry(d.event.stream.clone()).or_default().push((
                    round,
                    c.to_owned(),
                    d.event.version,
                ));
            }
            subs.ack(&target, "g", c, &ids, now).unwrap();
        }
    }
    assert_eq!(seen.len(), 4);
    let mut owners_while_both = BTreeSet::new();
    for (stream, got) in &seen {
        let versions: Vec<u64> = got.iter().map(|(_, _, v)| *v).collect();
        assert_eq!(
            versions,
            (0..30).collect::<Vec<_>>(),
            "{stream} in order, once"
        );
        // While both consumers live (x alone saw the first read), each
        // stream has one consumer; once y is gone, x has them all.
        let both: BTreeSet<&str> = got
            .iter()
            .filter(|(r, _, _)| (1..10).contains(r))
            .map(|(_, c, _)| c.as_str())
            .collect();
        assert_eq!(both.len(), 1, "{stream}: {got:?}");
        owners_while_both.extend(both);
        assert!(
            got.iter()
                .filter(|(r, _, _)| *r >= 10)
                .all(|(_, c, _)| c == "x")
        );
    }
    assert_eq!(owners_while_both.len(), 2, "both consumers had streams");
}

#[test]
fn a_restart_keeps_the_checkpoint_and_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let target = Target::parse("$ce-inv").unwrap();
    let unacked: Vec<u64>;
    {
        let (store, subs) = open(tmp.path());
        append(&store, "inv-1", 10);
        subs.create(&target, "g", &settings(|s| s.max_retry_count = 4))
            .unwrap();
        let got = subs.read(&target, "g", "c", Some(6), 0).unwrap();
        let ids: Vec<String> = got[..4].iter().map(|d| d.ack_id.clone()).collect();
        subs.ack(&target, "g", "c", &ids, 0).unwrap();
        unacked = got[4..].iter().map(|d| d.event.version).collect();
    }
    let (_store, subs) = open(tmp.path());
    assert_eq!(subs.settings(&target, "g").unwrap().max_retry_count, 4);
    let info = subs.info(&target, "g", 0).unwrap();
    assert_eq!(info.checkpoint, 4);
    let got = subs.read(&target, "g", "d", Some(100), 0).unwrap();
    let versions: Vec<u64> = got.iter().map(|d| d.event.version).collect();
    assert_eq!(versions, (4..10).collect::<Vec<_>>());
    let retried: Vec<u64> = got
        .iter()
        .filter(|d| d.retry_count == 1)
        .map(|d| d.event.version)
        .collect();
    assert_eq!(retried, unacked);
    // Create, delete, create again: the new group starts afresh.
    subs.delete(&target, "g").unwrap();
    assert!(matches!(
        subs.read(&target, "g", "d", None, 0),
        Err(SubscriptionError::NotFound { .. })
    ));
    subs.create(&target, "g", &settings(|_| {})).unwrap();
    assert_eq!(
        subs.read(&target, "g", "d", Some(100), 0).unwrap().len(),
        10
    );
    assert!(matches!(
        subs.create(&target, "g", &settings(|_| {})),
        Err(SubscriptionError::Exists { .. })
    ));
    assert!(Target::parse("$ce-").is_err() && Target::parse("$x").is_err());
}
