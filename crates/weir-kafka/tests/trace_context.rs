//! A W3C `traceparent` on a Kafka record, end to end: kcat produces a
//! CloudEvent (binary mode) with a plain `traceparent` header, as an
//! OpenTelemetry-instrumented producer would; the broker keeps the header;
//! the SDK's consumer runtime hands the handler the trace context; and what
//! the handler publishes (`Context::publish`) is in the same trace with a
//! new span id, caused by the handled event.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestServer, kcat};
use serde::{Deserialize, Serialize};
use weir::service::Publisher;
use weir::{KafkaSource, Service, ServiceConfig, TraceContext};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

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

#[test]
fn a_records_traceparent_reaches_what_its_handler_publishes() {
    let server = TestServer::start();
    let bootstrap = server.bootstrap();
    let tp = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    let header = |h: &str| ["-H".to_owned(), h.to_owned()];
    let mut args: Vec<String> = ["-b", &bootstrap, "-P", "-t", "placed", "-k", "o-1"]
        .map(str::to_owned)
        .to_vec();
    for h in [
        "ce_specversion=1.0",
        "ce_id=placed-1",
        "ce_source=/shop",
        "ce_type=OrderPlaced",
        &format!("traceparent={tp}"),
        "tracestate=shop=1",
    ] {
        args.extend(header(h));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kcat(&args, "{\"order\":\"o-1\"}\n");
    // The broker keeps the header as produced.
    let kept = kcat(
        &[
            "-b", &bootstrap, "-C", "-t", "placed", "-c", "1", "-e", "-f", "%h",
        ],
        "",
    );
    assert!(kept.contains(&format!("traceparent={tp}")), "{kept}");

    let publisher = Arc::new(Publisher::connect(&bootstrap, &[]).unwrap());
    let seen: Arc<Mutex<Vec<Option<TraceContext>>>> = Arc::default();
    let (s, p) = (seen.clone(), publisher.clone());
    let service = Service::builder("shipping")
        .config(ServiceConfig {
            workers: 1,
            commit_interval: Duration::from_millis(50),
            ..ServiceConfig::default()
        })
        .on::<Placed>(move |ctx, placed| {
            s.lock().unwrap().push(ctx.envelope().trace.clone());
            ctx.publish(
                &p,
                "shipped",
                &Shipped {
                    order: placed.order,
                },
            )
        })
        .build()
        .unwrap();
    let running = service
        .start(KafkaSource::new(&bootstrap, &["placed"]))
        .unwrap();
    let start = Instant::now();
    while seen.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "not handled");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.stop().unwrap();
    let handled = seen.lock().unwrap()[0]
        .clone()
        .expect("the handler sees the trace");
    assert_eq!(handled.parent.to_string(), tp);
    assert_eq!(handled.state(), Some("shop=1"));

    let out = kcat(
        &[
            "-b", &bootstrap, "-C", "-t", "shipped", "-c", "1", "-e", "-f", "%h",
        ],
        "",
    );
    let headers: Vec<(&str, &str)> = out
        .trim()
        .split(',')
        .filter_map(|h| h.split_once('='))
        .collect();
    let get = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {k} in {out}"))
    };
    let published = TraceContext::parse(get("ce_traceparent"), None).unwrap();
    assert_eq!(published.parent.trace_id_hex(), TRACE_ID, "the same trace");
    assert_ne!(published.parent.span_id_hex(), SPAN_ID, "a new span");
    assert_eq!(
        get("ce_causationid"),
        "placed-1",
        "its parent is the handled event"
    );
}
