//! The SDK's queue consumer scenario, run on the embedded backend
//! (`crates/weir/tests/queue.rs`) and against a real `weir serve`
//! (`crates/weir-cli/tests/queue_sdk.rs`, which includes this file by
//! path): competing consumers claim distinct records; ack, release,
//! reject (to the dead letters) and extend; a record another consumer
//! holds cannot be settled; the runner acks, releases on a retryable
//! error and rejects on a permanent one; and a slow handler's lock is
//! extended so no other consumer gets its record meanwhile.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use weir::queue::{QueueFailure, QueueOptions};
use weir::{Client, Error};

/// Runs the scenario on topic `jobs` (one partition, created by the
/// caller); `produce` appends records with these values to it.
pub fn run(client: &Client, produce: &dyn Fn(&[&str])) {
    produce(&["0", "1", "2", "3", "4", "5"]);
    let queue = client.queue("workers", "jobs");
    let options = |max: usize, lock_ms: i64| QueueOptions {
        max,
        lock_ms,
        wait_ms: 0,
        ..QueueOptions::default()
    };
    let a = queue.consumer_with("a", options(2, 30_000));
    let b = queue.consumer_with("b", options(2, 30_000));
    let got_a = a.claim().unwrap();
    let got_b = b.claim().unwrap();
    let offsets = |v: &[weir::queue::QueueRecord]| v.iter().map(|r| r.offset).collect::<Vec<_>>();
    assert_eq!(offsets(&got_a), [0, 1]);
    assert_eq!(offsets(&got_b), [2, 3]);
    assert_eq!(got_a[0].value.as_deref(), Some(&b"0"[..]));
    assert_eq!(got_a[0].deliveries, 1);

    a.ack(&got_a[0]).unwrap();
    a.release(&got_a[1]).unwrap();
    b.reject(&got_b[0]).unwrap();
    // "a" does not hold 3: refused as NotHeld whichever the backend.
    match a.ack(&got_b[1]) {
        Err(Error::NotHeld {
            offset: 3,
            consumer,
        }) => assert_eq!(consumer, "a"),
        other => panic!("expected NotHeld, got {other:?}"),
    }
    let deadline = b.extend(&got_b[1], 60_000).unwrap();
    assert!(deadline > got_b[1].lock_deadline_ms, "{deadline}");
    assert!(a.pending().unwrap().contains(&(0, 3, "b".to_owned())));
    b.ack(&got_b[1]).unwrap();

    // The runner: 1 (released above, delivery 2) acked, 4 released once
    // then acked, 5 rejected.
    let c = queue.consumer_with("c", options(10, 30_000));
    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    let stats = c
        .run(&stop, Some(4), |r| {
            seen.push((r.offset, r.deliveries));
            match (r.value.as_deref(), r.deliveries) {
                (Some(b"4"), 1) => Err(QueueFailure::Retry("busy".into())),
                (Some(b"5"), _) => Err(QueueFailure::Permanent("malformed".into())),
                _ => Ok(()),
            }
        })
        .unwrap();
    assert_eq!(seen, [(1, 2), (4, 1), (5, 1), (4, 2)]);
    assert_eq!((stats.acked, stats.released, stats.rejected), (2, 1, 1));
    let dead = client.read_dead_letters("jobs.dlq", 0, 0, 10).unwrap();
    let dead_offsets: Vec<i64> = dead
        .dead_letters
        .iter()
        .map(|(_, d)| d.origin.offset)
        .collect();
    assert_eq!(dead_offsets, [2, 5]);

    // A handler slower than the lock keeps its record: another consumer
    // claiming meanwhile (which, embedded, releases run-out locks) gets
    // nothing.
    produce(&["6"]);
    let slow = queue.consumer_with("slow", options(1, 300));
    let other = queue.consumer_with("other", options(1, 300));
    let stats = slow
        .run(&stop, Some(1), |r| {
            assert_eq!(r.offset, 6);
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(100));
                let stolen = other.claim().unwrap();
                assert!(stolen.is_empty(), "lock lost: {stolen:?}");
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(stats.acked, 1);
    assert!(stats.extended >= 2, "{stats:?}");
    assert!(other.claim().unwrap().is_empty(), "every record settled");
}
