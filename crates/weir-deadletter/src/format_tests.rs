//! Unit and round-trip property tests of the dead-letter format, through
//! real RecordBatch bytes so the encoding the log stores is what is parsed.

use proptest::prelude::*;
use weir_log::batch::{BatchBuilder, records};

use super::*;

/// Stores a record with `headers` in a batch and parses it back as a dead
/// letter.
fn through_batch(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Result<DeadLetter, FormatError> {
    let borrowed: Vec<(&str, Option<&[u8]>)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    let mut b = BatchBuilder::new(0);
    b.push_nullable(0, key, value, &borrowed);
    let bytes = b.build();
    let recs = records(&bytes).unwrap();
    parse_dead_letter(&recs[0])
}

fn failure() -> Failure {
    Failure {
        error: "payment service said 503".into(),
        kind: ErrorKind::Transient,
        attempts: 5,
        first_failure_ms: 1_700_000_000_000,
        last_failure_ms: 1_700_000_004_000,
        group: "billing".into(),
    }
}

fn origin() -> Origin {
    Origin {
        topic: "orders".into(),
        partition: 3,
        offset: 42,
        timestamp_ms: 1_699_999_999_000,
    }
}

fn h(name: &str, value: &str) -> Header {
    (name.to_owned(), Some(value.as_bytes().to_vec()))
}

fn borrowed(headers: &[Header]) -> Vec<(&str, Option<&[u8]>)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect()
}

#[test]
fn headers_are_appended_after_the_originals_with_exact_values() {
    let original = [h("trace", "abc"), ("empty".into(), None)];
    let headers = dead_letter_headers(&borrowed(&original), &failure(), &origin());
    let expect: Vec<Header> = vec![
        h("trace", "abc"),
        ("empty".into(), None),
        h("weir.dlq.error", "payment service said 503"),
        h("weir.dlq.error.kind", "transient"),
        h("weir.dlq.attempts", "5"),
        h("weir.dlq.first.failure.ms", "1700000000000"),
        h("weir.dlq.last.failure.ms", "1700000004000"),
        h("weir.dlq.group", "billing"),
        h("weir.dlq.origin.topic", "orders"),
        h("weir.dlq.origin.partition", "3"),
        h("weir.dlq.origin.offset", "42"),
        h("weir.dlq.origin.timestamp.ms", "1699999999000"),
    ];
    assert_eq!(headers, expect);
}

#[test]
fn earlier_failure_headers_are_replaced_and_replay_markers_kept() {
    let first = dead_letter_headers(&[("a", Some(&b"1"[..]))], &failure(), &origin());
    let dead = through_batch(None, Some(b"v"), &first).unwrap();
    let replayed = replay_headers(&dead, "orders.dlq", 3, 7);
    let second_failure = Failure {
        error: "still broken".into(),
        attempts: 1,
        ..failure()
    };
    let second_origin = Origin {
        offset: 99,
        ..origin()
    };
    let again = dead_letter_headers(&borrowed(&replayed), &second_failure, &second_origin);
    let count = |name: &str| again.iter().filter(|(n, _)| n == name).count();
    assert_eq!(count(ERROR), 1);
    assert_eq!(count(REPLAYS), 1);
    let dead = through_batch(None, Some(b"v"), &again).unwrap();
    assert_eq!(dead.failure, second_failure);
    assert_eq!(dead.origin, second_origin);
    assert_eq!(dead.headers, vec![h("a", "1")]);
    assert_eq!(
        dead.replay,
        Some(Replay {
            from_topic: "orders.dlq".into(),
            from_partition: 3,
            from_offset: 7,
            replays: 1,
        })
    );
    // Replaying it again counts the second replay.
    let twice = replay_headers(&dead, "orders.dlq", 3, 8);
    assert_eq!(twice.last(), Some(&h(REPLAYS, "2")));
    assert!(!twice.iter().any(|(n, _)| n == ERROR));
}

#[test]
fn long_errors_are_cut_on_a_char_boundary() {
    // 'é' is two bytes: 4095 bytes of 'a' then 'é' would end at 4097.
    let error = format!("{}é and more", "a".repeat(ERROR_BYTES_MAX - 1));
    assert_eq!(truncate_error(&error).len(), ERROR_BYTES_MAX - 1);
    let f = Failure {
        error: error.clone(),
        ..failure()
    };
    let dead = through_batch(None, None, &dead_letter_headers(&[], &f, &origin())).unwrap();
    assert_eq!(dead.failure.error, "a".repeat(ERROR_BYTES_MAX - 1));
    assert_eq!(truncate_error("short"), "short");
}

#[test]
fn a_plain_record_is_not_a_dead_letter() {
    assert_eq!(
        through_batch(Some(b"k"), Some(b"v"), &[h("trace", "x")]),
        Err(FormatError::NotDeadLetter)
    );
    // Replay markers alone make a replayed record, not a dead letter.
    assert_eq!(
        through_batch(
            None,
            None,
            &[h(REPLAYED_FROM, "t.dlq/0/1"), h(REPLAYS, "1")]
        ),
        Err(FormatError::NotDeadLetter)
    );
}

/// A dead letter's headers with `name`'s value replaced (or removed when
/// `value` is `None`).
fn with(name: &str, value: Option<Option<&str>>) -> Vec<Header> {
    let mut headers = dead_letter_headers(&[], &failure(), &origin());
    headers.retain(|(n, _)| n != name);
    if let Some(v) = value {
        headers.push((name.to_owned(), v.map(|v| v.as_bytes().to_vec())));
    }
    headers
}

#[test]
fn malformed_headers_are_named() {
    let err = |headers: Vec<Header>| through_batch(None, None, &headers).unwrap_err();
    assert_eq!(
        err(with(ATTEMPTS, None)),
        FormatError::MissingHeader { name: ATTEMPTS }
    );
    for (name, value, reason) in [
        (ATTEMPTS, "five", "not a decimal number"),
        (ATTEMPTS, "-1", "out of range"),
        (ATTEMPTS, "+5", "not a decimal number"),
        (ERROR_KIND, "fatal", "not transient, permanent or decode"),
        (ORIGIN_PARTITION, "-2", "negative"),
        (ORIGIN_OFFSET, "99999999999999999999", "out of range"),
        (ORIGIN_TOPIC, "", "empty"),
    ] {
        assert_eq!(
            err(with(name, Some(Some(value)))),
            FormatError::BadHeader {
                name: all_names().into_iter().find(|n| *n == name).unwrap(),
                value: value.into(),
                reason,
            },
            "{name}={value:?}"
        );
    }
    assert!(matches!(
        err(with(GROUP, Some(None))),
        FormatError::BadHeader {
            name: GROUP,
            reason: "null value",
            ..
        }
    ));
    let mut twice = with(GROUP, Some(Some("other")));
    twice.push(h(GROUP, "third"));
    assert_eq!(
        err(twice),
        FormatError::DuplicateHeader { name: GROUP.into() }
    );
    let mut half_replay = with(GROUP, Some(Some("g")));
    half_replay.push(h(REPLAYS, "1"));
    assert_eq!(
        err(half_replay),
        FormatError::MissingHeader {
            name: REPLAYED_FROM
        }
    );
    for from in ["orders.dlq/1", "/1/2", "orders.dlq/x/2", "orders.dlq/1/-2"] {
        let mut bad_from = with(GROUP, Some(Some("g")));
        bad_from.extend([h(REPLAYED_FROM, from), h(REPLAYS, "1")]);
        assert!(
            matches!(
                err(bad_from),
                FormatError::BadHeader {
                    name: REPLAYED_FROM,
                    ..
                }
            ),
            "{from}"
        );
    }
    let e = err(with(ERROR, Some(Some(&"e".repeat(ERROR_BYTES_MAX + 1)))));
    assert!(
        matches!(&e, FormatError::BadHeader { name: ERROR, value, .. } if value.len() == 64),
        "{e:?}"
    );
}

#[test]
fn topic_names() {
    assert_eq!(dead_letter_topic("orders", DEFAULT_SUFFIX), "orders.dlq");
    assert_eq!(origin_topic("orders.dlq", DEFAULT_SUFFIX), Some("orders"));
    assert_eq!(origin_topic(".dlq", DEFAULT_SUFFIX), None);
    assert_eq!(origin_topic("orders", DEFAULT_SUFFIX), None);
    assert_eq!(origin_topic("orders-dead", "-dead"), Some("orders"));
}

fn arb_kind() -> impl Strategy<Value = ErrorKind> {
    prop_oneof![
        Just(ErrorKind::Transient),
        Just(ErrorKind::Permanent),
        Just(ErrorKind::Decode),
    ]
}

prop_compose! {
    fn arb_failure()(
        error in "\\PC{0,40}|\\PC{4090,4100}",
        kind in arb_kind(),
        attempts in any::<u32>(),
        first_failure_ms in any::<i64>(),
        last_failure_ms in any::<i64>(),
        group in "\\PC{0,20}",
    ) -> Failure {
        Failure { error, kind, attempts, first_failure_ms, last_failure_ms, group }
    }
}

prop_compose! {
    fn arb_origin()(
        topic in "[a-zA-Z0-9._-]{1,30}",
        partition in 0..i32::MAX,
        offset in 0..i64::MAX,
        timestamp_ms in any::<i64>(),
    ) -> Origin {
        Origin { topic, partition, offset, timestamp_ms }
    }
}

/// Original headers, sometimes with stale `weir.dlq.*` failure headers
/// from an earlier dead-lettering (never with replay markers: those are
/// generated by `replay_headers` below).
fn arb_headers() -> impl Strategy<Value = Vec<Header>> {
    let name = prop_oneof![
        4 => "[a-z.]{1,12}",
        1 => proptest::sample::select(REQUIRED_HEADERS.to_vec()).prop_map(str::to_owned),
    ];
    proptest::collection::vec(
        (
            name,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        ),
        0..6,
    )
}

proptest! {
    #[test]
    fn dead_letters_round_trip(
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        original in arb_headers(),
        failure in arb_failure(),
        origin in arb_origin(),
        replays_before in 0u32..3,
    ) {
        // A record replayed `replays_before` times, failing again.
        let mut headers = original.clone();
        let mut expect_replay = None;
        for n in 0..replays_before {
            let dead = through_batch(
                key.as_deref(),
                value.as_deref(),
                &dead_letter_headers(&borrowed(&headers), &failure, &origin),
            ).unwrap();
            headers = replay_headers(&dead, "x.dlq", n as i32, i64::from(n));
            expect_replay = Some(Replay {
                from_topic: "x.dlq".into(),
                from_partition: n as i32,
                from_offset: i64::from(n),
                replays: n + 1,
            });
        }
        let built = dead_letter_headers(&borrowed(&headers), &failure, &origin);
        let dead = through_batch(key.as_deref(), value.as_deref(), &built).unwrap();
        let kept: Vec<Header> = original
            .into_iter()
            .filter(|(n, _)| !n.starts_with(HEADER_PREFIX))
            .collect();
        let expect = DeadLetter {
            key,
            value,
            headers: kept,
            failure: Failure {
                error: truncate_error(&failure.error).to_owned(),
                ..failure
            },
            origin,
            replay: expect_replay,
        };
        prop_assert_eq!(dead, expect);
    }
}
