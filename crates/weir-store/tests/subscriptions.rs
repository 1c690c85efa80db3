//! Subscriptions catch up from the log and go live with no gap and no
//! duplicate while writers keep appending; filters by type and stream
//! prefix; resuming from a checkpoint; and the wait for new events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use weir_broker::{Broker, BrokerConfig};
use weir_log::{DataDir, DirConfig};
use weir_store::{
    EmbeddedStore, EventStore, ExpectedVersion, Filter, NewEvent, StoreConfig, Target,
};

fn open(dir: &std::path::Path) -> Arc<EmbeddedStore> {
    let data = DataDir::open(dir, DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    Arc::new(EmbeddedStore::open(broker, StoreConfig::default()).unwrap())
}

fn ev(id: &str, ty: &str) -> NewEvent {
    NewEvent::json(id, ty, b"{}".to_vec())
}

#[test]
fn catch_up_then_live_delivers_every_event_once_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    // History before the subscription starts.
    for i in 0..300 {
        let stream = format!("acc-{}", i % 7);
        store
            .append(&stream, ExpectedVersion::Any, &[ev(&format!("h{i}"), "T")])
            .unwrap();
    }
    let writers = 3;
    let per_writer = 200;
    let finished = AtomicUsize::new(0);
    let mut all = store.subscribe(Target::All, Filter::default(), 0);
    let mut category = store.subscribe(Target::Category("acc".into()), Filter::default(), 0);
    let mut one = store.subscribe(Target::Stream("acc-3".into()), Filter::default(), 0);
    let (seen_all, seen_cat, seen_one) = std::thread::scope(|scope| {
        for w in 0..writers {
            let (store, finished) = (store.clone(), &finished);
            scope.spawn(move || {
                for i in 0..per_writer {
                    let stream = format!("acc-{}", (w * 31 + i) % 7);
                    let events: Vec<_> = (0..1 + i % 3)
                        .map(|k| ev(&format!("w{w}-{i}-{k}"), "T"))
                        .collect();
                    store
                        .append(&stream, ExpectedVersion::Any, &events)
                        .unwrap();
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        let mut seen = (Vec::new(), Vec::new(), Vec::new());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            // Read `done` first: once all writers finished, one more round
            // of polls reaches the end.
            let done = finished.load(Ordering::SeqCst) == writers;
            seen.0
                .extend(all.wait(50, Duration::from_millis(20)).unwrap());
            seen.1.extend(category.poll(50).unwrap());
            seen.2.extend(one.poll(50).unwrap());
            if done && all.lag() == 0 {
                seen.0.extend(all.poll(100_000).unwrap());
                seen.1.extend(category.poll(100_000).unwrap());
                seen.2.extend(one.poll(100_000).unwrap());
                break;
            }
        }
        seen
    });
    let head = store.head_position();
    assert!(head > 900, "the writers appended batches of 1 to 3 events");
    let positions: Vec<u64> = seen_all.iter().map(|e| e.position).collect();
    assert_eq!(positions.len() as u64, head, "all: every position once");
    assert!(
        positions.iter().zip(0..).all(|(&p, i)| p == i),
        "all: in order, no gap"
    );
    let cat: Vec<u64> = seen_cat.iter().map(|e| e.position).collect();
    assert!(cat == positions, "every stream here is in category acc");
    let versions: Vec<u64> = seen_one.iter().map(|e| e.version).collect();
    let last = store.stream_version("acc-3").unwrap().unwrap();
    assert_eq!(versions, (0..=last).collect::<Vec<_>>());
    assert!(seen_one.iter().all(|e| e.stream == "acc-3"));
}

#[test]
fn filters_by_type_and_prefix_and_resume_from_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    for i in 0..60 {
        let stream = if i % 2 == 0 {
            format!("order-{i}")
        } else {
            format!("user-{i}")
        };
        let ty = ["Placed", "Paid", "Shipped"][i % 3];
        store
            .append(&stream, ExpectedVersion::Any, &[ev(&format!("e{i}"), ty)])
            .unwrap();
    }
    let by_type = Filter {
        event_types: vec!["Paid".into(), "Shipped".into()],
        stream_prefix: None,
    };
    let mut sub = store.subscribe(Target::All, by_type.clone(), 0);
    let got = sub.poll(7).unwrap();
    assert_eq!(got.len(), 7);
    assert!(got.iter().all(|e| e.event_type != "Placed"));
    // Resume from the checkpoint in a new subscription: the rest, no repeats.
    let mut resumed = store.subscribe(Target::All, by_type, sub.checkpoint());
    let rest = resumed.poll(1000).unwrap();
    assert_eq!(got.len() + rest.len(), 40);
    assert!(rest[0].position > got.last().unwrap().position);
    let by_prefix = Filter {
        event_types: vec![],
        stream_prefix: Some("user-".into()),
    };
    let mut users = store.subscribe(Target::All, by_prefix, 0);
    let mut n = 0;
    loop {
        let page = users.poll(4).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.iter().all(|e| e.stream.starts_with("user-")));
        n += page.len();
    }
    assert_eq!(n, 30);
    assert_eq!(users.lag(), 0);
    // Nothing new: a wait times out empty.
    assert!(
        users
            .wait(10, Duration::from_millis(50))
            .unwrap()
            .is_empty()
    );
}
