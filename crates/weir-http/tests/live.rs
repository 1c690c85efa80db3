//! Live streams over Server-Sent Events through a socket client: catching
//! up then going live with no gap and no duplicate while writers append,
//! resuming after `Last-Event-ID`, a topic partition from an offset, a
//! client that stops reading being told `lagged` and disconnected (and
//! catching up after it reconnects), and the limit on live clients.

mod common;

use std::time::{Duration, Instant};

use common::{Server, SseClient};
use serde_json::json;
use weir_http::HttpLimits;
use weir_store::{EventStore, ExpectedVersion, NewEvent};

const WAIT: Duration = Duration::from_secs(10);

fn append(s: &Server, stream: &str, n: usize, data_bytes: usize) {
    let filler = "x".repeat(data_bytes);
    let events: Vec<NewEvent> = (0..n)
        .map(|i| {
            NewEvent::json(
                format!("{stream}-{}-{i}", s.store.head_position()),
                "Added",
                json!({"i": i, "filler": filler}).to_string().into_bytes(),
            )
        })
        .collect();
    s.store
        .append(stream, ExpectedVersion::Any, &events)
        .unwrap();
}

fn ids(events: &[common::Sse]) -> Vec<u64> {
    events.iter().map(common::Sse::id).collect()
}

#[test]
fn all_catches_up_then_goes_live_without_gap_or_duplicate() {
    let s = Server::start(HttpLimits {
        sse_buffer: 8,
        sse_keep_alive_ms: 100,
        ..HttpLimits::default()
    });
    for i in 0..6 {
        append(&s, &format!("acct-{}", i % 2), 10, 10);
    }
    let mut all = SseClient::connect(s.addr(), "/v1/all/live", None, true);
    assert_eq!(all.status, 200);
    let mut cat = SseClient::connect(s.addr(), "/v1/categories/acct/live?from=5", None, true);
    let mut one = SseClient::connect(s.addr(), "/v1/streams/acct-1/live", None, true);
    let first = all.take(60, WAIT);
    assert_eq!(ids(&first), (0..60).collect::<Vec<_>>());
    assert_eq!(first[0].event, "event");
    assert_eq!(first[0].json()["stream"], "acct-0");
    assert_eq!(first[0].json()["position"], 0);
    // Writers go on while the clients read.
    let writer = {
        let store = s.store.clone();
        std::thread::spawn(move || {
            for round in 0..20 {
                let stream = format!("acct-{}", round % 2);
                let events: Vec<NewEvent> = (0..2)
                    .map(|i| NewEvent::json(format!("w{round}-{i}"), "Added", b"{}".to_vec()))
                    .collect();
                store
                    .append(&stream, ExpectedVersion::Any, &events)
                    .unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let live = all.take(40, WAIT);
    writer.join().unwrap();
    assert_eq!(ids(&live), (60..100).collect::<Vec<_>>());
    assert_eq!(
        all.next(Duration::from_millis(500)),
        None,
        "no duplicate after"
    );
    assert!(all.keep_alives > 0, "keep-alives while idle");
    let from_cat = cat.take(95, WAIT);
    assert_eq!(ids(&from_cat), (5..100).collect::<Vec<_>>());
    // A stream's ids are its versions: acct-1 has 30 + 20 events.
    let stream = one.take(50, WAIT);
    assert_eq!(ids(&stream), (0..50).collect::<Vec<_>>());
    assert!(stream.iter().all(|e| e.json()["stream"] == "acct-1"));

    // Resuming after Last-Event-ID (which wins over ?from=).
    let mut again = SseClient::connect(s.addr(), "/v1/all/live?from=3", Some(89), true);
    assert_eq!(ids(&again.take(10, WAIT)), (90..100).collect::<Vec<_>>());
    append(&s, "acct-0", 1, 1);
    assert_eq!(again.next(WAIT).map(|e| e.id()), Some(100));
    let mut again = SseClient::connect(s.addr(), "/v1/streams/acct-1/live", Some(47), true);
    assert_eq!(ids(&again.take(2, WAIT)), [48, 49]);
}

#[test]
fn a_partition_is_followed_from_an_offset() {
    let s = Server::start(HttpLimits::default());
    s.ok(
        "POST",
        "/v1/topics",
        Some(r#"{"name":"t","partitions":2}"#),
        201,
    );
    let produce = |n: usize| {
        let records: Vec<_> = (0..n)
            .map(|i| json!({"value": {"i": i}, "partition": 1}))
            .collect();
        s.ok(
            "POST",
            "/v1/topics/t/records",
            Some(&json!({ "records": records }).to_string()),
            200,
        );
    };
    produce(5);
    let mut c = SseClient::connect(
        s.addr(),
        "/v1/topics/t/partitions/1/live?offset=2",
        None,
        true,
    );
    let got = c.take(3, WAIT);
    assert_eq!(ids(&got), [2, 3, 4]);
    assert_eq!(got[0].event, "record");
    assert_eq!(got[0].json()["value"], json!({"i": 2}));
    produce(3);
    assert_eq!(ids(&c.take(3, WAIT)), [5, 6, 7]);
    let mut again = SseClient::connect(s.addr(), "/v1/topics/t/partitions/1/live", Some(6), true);
    assert_eq!(ids(&again.take(1, WAIT)), [7]);
    for (path, status, code) in [
        ("/v1/topics/none/partitions/0/live", 404, "unknown_topic"),
        ("/v1/topics/t/partitions/7/live", 404, "unknown_partition"),
        ("/v1/topics/t/partitions/x/live", 400, "bad_request"),
        ("/v1/all/live?from=minus", 400, "bad_request"),
        ("/v1/streams/$bad/live", 400, "invalid_stream"),
    ] {
        let (st, problem, _) = s.call("GET", path, None);
        assert_eq!(
            (st, problem["code"].as_str()),
            (status, Some(code)),
            "{path}"
        );
    }
}

#[test]
fn a_client_that_stops_reading_is_disconnected_and_catches_up_after() {
    // Its queue fills by count of events.
    stalled_client_is_cut_off(HttpLimits {
        sse_buffer: 4,
        sse_stall_ms: 300,
        ..HttpLimits::default()
    });
}

#[test]
fn a_client_queue_is_bounded_in_bytes_too() {
    // Room for thousands of events, but only about four of these.
    stalled_client_is_cut_off(HttpLimits {
        sse_buffer: 10_000,
        sse_buffer_bytes_max: 256 * 1024,
        sse_stall_ms: 300,
        ..HttpLimits::default()
    });
}

fn stalled_client_is_cut_off(limits: HttpLimits) {
    let s = Server::start(limits);
    // The client asks and then reads nothing while 12 MB of events come:
    // more than the socket buffers and its queue hold.
    let mut slow = SseClient::connect(s.addr(), "/v1/all/live", None, false);
    let total = 200;
    for _ in 0..total / 20 {
        append(&s, "big-1", 20, 60 * 1024);
    }
    // Long enough for its queue to stay full past sse_stall_ms.
    std::thread::sleep(Duration::from_millis(1500));
    slow.read_head();
    assert_eq!(slow.status, 200);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(e) = slow.next(WAIT) {
        got.push(e);
        assert!(Instant::now() < deadline);
    }
    assert!(slow.ended || slow.closed, "the stream ended");
    let lagged = got.pop().expect("some events, then the notice");
    assert_eq!(lagged.event, "lagged", "{lagged:?}");
    let seen = ids(&got);
    assert!(seen.len() < total, "it was cut off, after {}", seen.len());
    eprintln!("cut off after {} of {total} events", seen.len());
    assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>());
    // Reconnecting with its last id, it catches up with the rest.
    let last = *seen.last().unwrap();
    let mut again = SseClient::connect(s.addr(), "/v1/all/live", Some(last), true);
    let rest = again.take(total - 1 - last as usize, WAIT);
    assert_eq!(ids(&rest), (last + 1..total as u64).collect::<Vec<_>>());
    assert_eq!(again.next(Duration::from_millis(300)), None);
}

#[test]
fn live_clients_are_limited() {
    let s = Server::start(HttpLimits {
        sse_clients_max: 1,
        sse_keep_alive_ms: 50,
        ..HttpLimits::default()
    });
    let first = SseClient::connect(s.addr(), "/v1/all/live", None, true);
    assert_eq!(first.status, 200);
    let (st, problem, ctype) = s.call("GET", "/v1/all/live", None);
    assert_eq!(
        (st, &problem["code"]),
        (503, &json!("too_many_live_clients"))
    );
    assert_eq!(ctype, "application/problem+json");
    // Other requests are served meanwhile.
    assert_eq!(s.call("GET", "/v1/all", None).0, 200);
    // Once the first client goes, its place is free again (the server
    // notices when a keep-alive cannot be written).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = SseClient::connect(s.addr(), "/v1/all/live", None, true);
        if c.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never freed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_stream_deleted_for_good_ends_its_live_stream_with_the_problem() {
    let s = Server::start(HttpLimits::default());
    append(&s, "gone-1", 2, 1);
    let mut c = SseClient::connect(s.addr(), "/v1/streams/gone-1/live", None, true);
    assert_eq!(ids(&c.take(2, WAIT)), [0, 1]);
    assert_eq!(
        s.call("DELETE", "/v1/streams/gone-1?tombstone=true", None)
            .0,
        204
    );
    let last = c.next(WAIT).expect("an error event");
    assert_eq!(last.event, "error", "{last:?}");
    assert_eq!(last.json()["code"], "stream_deleted");
    assert_eq!(c.next(WAIT), None);
    assert!(c.ended || c.closed);
}
