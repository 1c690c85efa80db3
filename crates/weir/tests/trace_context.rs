//! W3C trace context in the SDK: envelopes keep `traceparent` and
//! `tracestate` through the store and both CloudEvents encodings, a plain
//! W3C `traceparent` Kafka header is read as well as `ce_traceparent`, bad
//! values are ignored, and a handler's `Context::emit` stamps what it
//! emits with the handled event's trace id and a new span id (the handled
//! event's span is the parent: it is the emitted event's cause).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir::service::{Selection, StoreSource};
use weir::{
    Causation, Client, Envelope, ExpectedVersion, KafkaRecord, Service, ServiceConfig, TraceContext,
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn context() -> TraceContext {
    TraceContext::parse(&format!("00-{TRACE_ID}-{SPAN_ID}-01"), Some("vendor=abc")).unwrap()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Placed {
    order: String,
}
weir::event!(Placed = "OrderPlaced" v 1);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shipped {
    order: String,
}
weir::event!(Shipped = "OrderShipped" v 1);

fn placed(order: &str, trace: Option<TraceContext>) -> Envelope {
    let e = Placed {
        order: order.to_owned(),
    };
    Envelope::new(&e, "/test", &Causation::new().in_trace(trace))
        .unwrap()
        .with_subject(order)
}

#[test]
fn the_trace_context_survives_the_store_and_both_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let e = placed("o-1", Some(context()));
    client
        .append(
            "order-o-1",
            ExpectedVersion::NoStream,
            std::slice::from_ref(&e),
        )
        .unwrap();
    let read = client.read_stream("order-o-1", 0, 10).unwrap();
    assert_eq!(read[0].trace, Some(context()));

    let json = read[0].to_json().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["traceparent"], format!("00-{TRACE_ID}-{SPAN_ID}-01"));
    assert_eq!(v["tracestate"], "vendor=abc");
    assert_eq!(Envelope::from_json(&json).unwrap().trace, Some(context()));

    let record = read[0].to_kafka();
    let header = |k: &str| record.headers.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    assert_eq!(
        header("ce_traceparent").map(|v| v.as_slice()),
        Some(format!("00-{TRACE_ID}-{SPAN_ID}-01").as_bytes())
    );
    assert_eq!(
        Envelope::from_kafka(&record).unwrap().trace,
        Some(context())
    );
}

#[test]
fn a_plain_w3c_header_is_read_and_a_bad_one_ignored() {
    let mut record = placed("o-2", None).to_kafka();
    assert!(Envelope::from_kafka(&record).unwrap().trace.is_none());
    record.headers.push((
        weir::TRACEPARENT_HEADER.to_owned(),
        format!("00-{TRACE_ID}-{SPAN_ID}-01").into_bytes(),
    ));
    let read = Envelope::from_kafka(&record).unwrap();
    assert_eq!(read.trace.unwrap().parent.trace_id_hex(), TRACE_ID);

    let bad = KafkaRecord {
        headers: placed("o-3", None)
            .to_kafka()
            .headers
            .into_iter()
            .chain([("ce_traceparent".to_owned(), b"00-not-a-trace-01".to_vec())])
            .collect(),
        ..record
    };
    let read = Envelope::from_kafka(&bad).expect("a bad traceparent is no error");
    assert!(read.trace.is_none());
    let mut json: serde_json::Value =
        serde_json::from_slice(&placed("o-4", None).to_json().unwrap()).unwrap();
    json["traceparent"] = "ff-garbage".into();
    let read = Envelope::from_json(&serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(read.trace.is_none());
}

#[test]
fn caused_by_keeps_the_trace_with_a_new_span() {
    let handled = placed("o-5", Some(context()));
    let a = Causation::caused_by(&handled).trace.unwrap();
    let b = Causation::caused_by(&handled).trace.unwrap();
    assert_eq!(a.parent.trace_id_hex(), TRACE_ID);
    assert_eq!(a.state(), Some("vendor=abc"));
    assert_ne!(a.parent.span_id_hex(), SPAN_ID);
    assert_ne!(a.parent.span_id, b.parent.span_id, "a new span each time");
    assert!(Causation::caused_by(&placed("o-6", None)).trace.is_none());
}

#[test]
fn a_handler_emits_in_the_handled_events_trace() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    client
        .append(
            "order-traced",
            ExpectedVersion::NoStream,
            &[placed("traced", Some(context()))],
        )
        .unwrap();
    client
        .append(
            "order-plain",
            ExpectedVersion::NoStream,
            &[placed("plain", None)],
        )
        .unwrap();
    let handled: Arc<Mutex<Vec<Envelope>>> = Arc::default();
    let (h, out) = (handled.clone(), client.clone());
    let service = Service::builder("shipping")
        .config(ServiceConfig {
            workers: 2,
            commit_interval: Duration::from_millis(20),
            ..ServiceConfig::default()
        })
        .on::<Placed>(move |ctx, p| {
            h.lock().unwrap().push(ctx.envelope().clone());
            ctx.emit(
                &out,
                &format!("shipment-{}", p.order),
                &Shipped { order: p.order },
            )
        })
        .build()
        .unwrap();
    let running = service
        .start_store(StoreSource::new(
            &client,
            Selection::Category("order".into()),
        ))
        .unwrap();
    let start = Instant::now();
    while client
        .read_stream("shipment-plain", 0, 1)
        .unwrap()
        .is_empty()
        || client
            .read_stream("shipment-traced", 0, 1)
            .unwrap()
            .is_empty()
    {
        assert!(start.elapsed() < Duration::from_secs(30), "nothing emitted");
        std::thread::sleep(Duration::from_millis(10));
    }
    running.stop().unwrap();

    let handled = handled.lock().unwrap();
    let cause = handled
        .iter()
        .find(|e| e.subject.as_deref() == Some("traced"))
        .unwrap();
    assert_eq!(cause.trace, Some(context()), "the handler sees the trace");
    let shipped = &client.read_stream("shipment-traced", 0, 1).unwrap()[0];
    let trace = shipped.trace.as_ref().expect("the emitted event is traced");
    assert_eq!(trace.parent.trace_id_hex(), TRACE_ID, "the same trace");
    assert_ne!(trace.parent.span_id_hex(), SPAN_ID, "a new span");
    assert_eq!(trace.state(), Some("vendor=abc"));
    // The parent span is the handled event's: its cause.
    assert_eq!(shipped.causationid.as_deref(), Some(cause.id.as_str()));
    assert_eq!(cause.trace.as_ref().unwrap().parent.span_id_hex(), SPAN_ID);
    let untraced = &client.read_stream("shipment-plain", 0, 1).unwrap()[0];
    assert!(untraced.trace.is_none(), "no trace made up");
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: String,
}

#[test]
fn a_saga_started_in_a_trace_appends_every_event_in_it() {
    use weir::saga::{RunnerConfig, SagaDefinition, SagaRunner, Status};
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let d = SagaDefinition::<Order>::new("order")
        .step(
            "reserve",
            |_, _: &Order| Ok("reserved"),
            |_, _: &Order| Ok(()),
        )
        .step(
            "charge",
            |_, _: &Order| Ok("charged"),
            |_, _: &Order| Ok(()),
        );
    let runner = SagaRunner::new(&client, RunnerConfig::default())
        .with(d)
        .unwrap()
        .start()
        .unwrap();
    // As a handler would: the handled event's trace, a new span.
    let handled = placed("o-7", Some(context()));
    let trace = Causation::caused_by(&handled).trace;
    let order = Order { id: "o-7".into() };
    runner.start_saga_in("order", "o-7", &order, trace).unwrap();
    runner.start_saga("order", "o-8", &order).unwrap();
    for id in ["o-7", "o-8"] {
        let s = runner.wait(id, Duration::from_secs(30)).unwrap();
        assert_eq!(s.status, Status::Completed);
    }
    let events = client.read_stream("saga-o-7", 0, 100).unwrap();
    assert!(events.len() >= 4, "start, steps, end: {}", events.len());
    let mut spans = std::collections::HashSet::new();
    for e in &events {
        let t = e
            .trace
            .as_ref()
            .unwrap_or_else(|| panic!("{} untraced", e.event_type));
        assert_eq!(t.parent.trace_id_hex(), TRACE_ID, "{}", e.event_type);
        assert_ne!(t.parent.span_id_hex(), SPAN_ID);
        spans.insert(t.parent.span_id);
    }
    assert_eq!(spans.len(), events.len(), "each event its own span");
    let untraced = client.read_stream("saga-o-8", 0, 100).unwrap();
    assert!(untraced.iter().all(|e| e.trace.is_none()));
}
