//! The consumer runtime over an event-store subscription (embedded): the
//! same typed handlers as over Kafka, each stream's events in order, the
//! checkpoint kept across restarts, poison events parked with their origin
//! and replayed as the original event once the handler is fixed, and the
//! parked and replay streams kept out of an `$all` subscription.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir::service::{Selection, StoreSource, parked, parked_stream, replay_parked};
use weir::{
    Causation, Client, Envelope, ExpectedVersion, Failure, RetryPolicy, Service, ServiceConfig,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shipped {
    order: String,
    n: u32,
    fragile: bool,
}
weir::event!(Shipped = "OrderShipped" v 1);

fn append(client: &Client, order: &str, from: u32, to: u32, fragile_at: Option<u32>) {
    let events: Vec<Envelope> = (from..to)
        .map(|n| {
            let e = Shipped {
                order: order.to_owned(),
                n,
                fragile: fragile_at == Some(n),
            };
            Envelope::new(&e, "/test", &Causation::new())
                .unwrap()
                .with_subject(order)
        })
        .collect();
    client
        .append(&format!("order-{order}"), ExpectedVersion::Any, &events)
        .unwrap();
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

type Seen = Arc<Mutex<Vec<(String, u32, String)>>>;

fn service(name: &str, seen: &Seen, fixed: &Arc<AtomicBool>) -> Service {
    let (s, f) = (seen.clone(), fixed.clone());
    Service::builder(name)
        .config(ServiceConfig {
            workers: 4,
            commit_interval: Duration::from_millis(20),
            retry: RetryPolicy {
                attempts: 2,
                min_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(5),
                ..RetryPolicy::default()
            },
            ..ServiceConfig::default()
        })
        .on::<Shipped>(move |ctx, e| {
            if e.fragile && !f.load(Ordering::SeqCst) {
                return Err(Failure::permanent("no courier takes fragile parcels"));
            }
            let stream = ctx.envelope().recorded.as_ref().unwrap().stream.clone();
            assert_eq!(ctx.origin().key.as_deref(), Some(stream.as_bytes()));
            s.lock()
                .unwrap()
                .push((e.order, e.n, ctx.envelope().id.clone()));
            Ok(())
        })
        .build()
        .unwrap()
}

#[test]
fn a_category_subscription_keeps_stream_order_and_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    for o in ["a", "b", "c"] {
        append(&client, o, 0, 30, None);
    }
    append(&client, "x", 0, 5, None); // another category: not delivered
    let seen: Seen = Arc::default();
    let fixed = Arc::new(AtomicBool::new(true));
    let svc = service("shipping", &seen, &fixed);
    let source = StoreSource::new(&client, Selection::Category("order".into()));
    let running = svc.start_store(source.clone()).unwrap();
    wait_for("95 handled", || seen.lock().unwrap().len() == 95);
    running.stop().unwrap();
    let mut by_order: HashMap<String, Vec<u32>> = HashMap::new();
    for (o, n, _) in seen.lock().unwrap().iter() {
        by_order.entry(o.clone()).or_default().push(*n);
    }
    for o in ["a", "b", "c"] {
        assert_eq!(by_order[o], (0..30).collect::<Vec<_>>(), "order-{o}");
    }
    assert_eq!(by_order["x"].len(), 5);

    // A new instance of the service starts at its checkpoint.
    append(&client, "a", 30, 35, None);
    let again: Seen = Arc::default();
    let svc = service("shipping", &again, &fixed);
    let running = svc.start_store(source).unwrap();
    wait_for("the 5 new ones", || again.lock().unwrap().len() == 5);
    std::thread::sleep(Duration::from_millis(200));
    running.stop().unwrap();
    let again = again.lock().unwrap();
    assert_eq!(
        again
            .iter()
            .map(|(o, n, _)| (o.as_str(), *n))
            .collect::<Vec<_>>(),
        (30..35).map(|n| ("a", n)).collect::<Vec<_>>()
    );
}

#[test]
fn poison_events_are_parked_and_replayed_as_the_original_event() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    append(&client, "a", 0, 10, Some(4));
    let seen: Seen = Arc::default();
    let fixed = Arc::new(AtomicBool::new(false));
    let svc = service("packing", &seen, &fixed);
    // $all: the parked and replay streams are not delivered through it.
    let running = svc
        .start_store(StoreSource::new(&client, Selection::All))
        .unwrap();
    wait_for("9 handled and 1 parked", || {
        let st = svc.stats();
        st.handled == 9 && st.dead_lettered == 1
    });
    let parked_events = parked(&client, "packing", 0, 10).unwrap();
    assert_eq!(parked_events.len(), 1);
    let p = &parked_events[0];
    let original = client.read_stream("order-a", 4, 1).unwrap().remove(0);
    assert_eq!(p.event.id, original.id);
    assert_eq!(p.parked.stream, "order-a");
    assert_eq!(p.parked.version, 4);
    assert_eq!(p.parked.position, original.position().unwrap());
    assert_eq!(p.parked.kind, "permanent");
    assert_eq!(p.parked.attempts, 1);
    assert_eq!(p.parked.group, "packing");
    assert_eq!(p.parked.error, "no courier takes fragile parcels");
    assert_eq!(p.parked.replays, 0);
    assert_eq!(p.event.decode::<Shipped>().unwrap().n, 4);
    // The stream went on past the poison event.
    assert!(seen.lock().unwrap().iter().any(|(_, n, _)| *n == 9));

    // Replayed before the fix: parked again, with the replay counted.
    assert_eq!(replay_parked(&client, "packing", 0, 10).unwrap(), (1, None));
    wait_for("parked again", || svc.stats().dead_lettered == 2);
    let again = parked(&client, "packing", 1, 10).unwrap();
    assert_eq!(again[0].parked.replays, 1);
    assert_eq!(again[0].event.id, original.id);

    // Fixed, replayed: handled as the original event.
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(replay_parked(&client, "packing", 1, 2).unwrap(), (1, None));
    wait_for("the replay handled", || svc.stats().handled == 10);
    running.stop().unwrap();
    let seen = seen.lock().unwrap();
    let replayed = seen.iter().find(|(_, n, _)| *n == 4).unwrap();
    assert_eq!(replayed.2, original.id);
    // Nothing of the bookkeeping streams came through $all.
    assert_eq!(seen.len(), 10);
    assert_eq!(
        client
            .read_stream(&parked_stream("packing"), 0, 10)
            .unwrap()
            .len(),
        2
    );
}
