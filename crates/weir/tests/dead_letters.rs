//! The SDK's dead-letter operations on the embedded backend: a dead letter
//! written to `orders.dlq` is listed with its depth, read back, replayed to its origin
//! partition with the replay markers, and purged. (The remote backend runs
//! the same operations through the HTTP API in `weir demo docs`'s tests.)

use weir::dead_letters::{Purge, Selection};
use weir::{Client, Embedded};
use weir_deadletter::format::{DEFAULT_SUFFIX, ErrorKind, Failure, Origin, REPLAYS};
use weir_deadletter::{Original, send};

#[test]
fn dead_letters_are_listed_replayed_and_purged_from_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Embedded::open(dir.path(), None).unwrap();
    let broker = embedded.store().broker().clone();
    let client = Client::with_backend(
        Box::new(embedded),
        dir.path().join("read-models"),
        "/test".to_owned(),
    );
    broker.create_topic("orders", 2, -1, &[], false).unwrap();
    let failure = Failure {
        error: "payment service said 503".into(),
        kind: ErrorKind::Transient,
        attempts: 5,
        first_failure_ms: 1_700_000_000_000,
        last_failure_ms: 1_700_000_004_000,
        group: "billing".into(),
    };
    let origin = Origin {
        topic: "orders".into(),
        partition: 1,
        offset: 7,
        timestamp_ms: 1_699_999_999_000,
    };
    let original = Original {
        key: Some(b"order-7"),
        value: Some(b"placed"),
        headers: &[],
    };
    send(&broker, DEFAULT_SUFFIX, original, &failure, &origin).unwrap();

    let topics = client.dead_letter_topics().unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(
        (
            topics[0].topic.as_str(),
            topics[0].origin_topic.as_str(),
            topics[0].depth
        ),
        ("orders.dlq", "orders", 1)
    );

    let page = client.read_dead_letters("orders.dlq", 1, 0, 10).unwrap();
    assert_eq!(page.next_offset, 1);
    let (offset, dead) = &page.dead_letters[0];
    assert_eq!(*offset, 0);
    assert_eq!(dead.key.as_deref(), Some(&b"order-7"[..]));
    assert_eq!(dead.failure, failure);
    assert_eq!(dead.origin, origin);

    let outcome = client
        .replay_dead_letters("orders.dlq", Selection::All)
        .unwrap();
    assert_eq!((outcome.replayed, outcome.next), (1, None));
    let log = broker.partition("orders", 1).unwrap();
    assert_eq!(log.high_watermark(), 1, "replayed to the origin partition");
    let read = log.read(0, 1 << 20).unwrap();
    let records = weir_log::batch::records(&read.bytes).unwrap();
    let record = &records[0];
    assert_eq!(record.key, Some(&b"order-7"[..]));
    assert!(
        record
            .headers
            .iter()
            .any(|(k, v)| *k == REPLAYS && *v == Some(&b"1"[..]))
    );

    let purged = client.purge_dead_letters("orders.dlq", Purge::All).unwrap();
    assert_eq!(purged.iter().map(|p| p.purged).sum::<u64>(), 1);
    assert_eq!(client.dead_letter_topics().unwrap()[0].depth, 0);
    // Only dead-letter topics can be purged.
    let refused = client.purge_dead_letters("orders", Purge::All).unwrap_err();
    assert!(
        refused.to_string().contains("not a dead-letter topic"),
        "{refused}"
    );
}
