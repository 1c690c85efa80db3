//! The console's pages without a browser: the console and the API routed
//! together in process (as `weir serve` mounts them) over a broker and a
//! store in a temp dir; each page answers HTML with what the API holds,
//! user data (topic names, keys, values, headers, event data) escaped,
//! pages bounded, dead letters replayed through the form and forms from
//! elsewhere refused.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use weir_broker::{Broker, BrokerConfig};
use weir_console::ConsoleConfig;
use weir_deadletter::format::{DEFAULT_SUFFIX, ErrorKind, Failure, Origin};
use weir_groups::{Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig};
use weir_http::{AppState, HttpLimits};
use weir_log::{DataDir, DirConfig};
use weir_store::{EmbeddedStore, StoreConfig};

struct Console {
    app: Router,
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

const PAGE_MAX: usize = 50;

impl Console {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path(), DirConfig::default()).unwrap();
        let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
        let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap();
        let groups = Arc::new(Coordinator::new(
            GroupsConfig::default(),
            Arc::new(MonotonicClock::new()),
            broker.clone(),
            Arc::new(offsets),
        ));
        let store = Arc::new(EmbeddedStore::open(broker.clone(), StoreConfig::default()).unwrap());
        let state = Arc::new(AppState::new(
            broker.clone(),
            groups,
            store,
            HttpLimits::default(),
        ));
        let config = ConsoleConfig {
            records_page_max: PAGE_MAX,
            ..ConsoleConfig::default()
        };
        let app = weir_http::router(state.clone()).merge(weir_console::router(state, config));
        Self {
            app,
            broker,
            _dir: dir,
        }
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, String, String) {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let ctype = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let location = res
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(res.into_body(), 16 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        (status, location.unwrap_or(text), ctype)
    }

    /// GETs a page, asserting the status and that it is HTML.
    async fn page(&self, path: &str, status: StatusCode) -> String {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let (st, body, ctype) = self.call(req).await;
        assert_eq!(st, status, "GET {path}: {body}");
        assert!(ctype.starts_with("text/html"), "GET {path}: {ctype}");
        body
    }

    async fn post_json(&self, path: &str, body: Value) -> Value {
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (st, body, _) = self.call(req).await;
        assert!(st.is_success(), "POST {path}: {st} {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// A markup string that would run if it reached the page unescaped.
const EVIL: &str = "<script>alert('x')</script>";

#[tokio::test]
async fn every_page_answers_html_with_what_the_api_holds() {
    let c = Console::start();
    c.post_json("/v1/topics", json!({"name": "orders", "partitions": 2}))
        .await;
    c.post_json(
        "/v1/topics/orders/records",
        json!({"records": [{"key": "k-1", "value": {"n": 1}, "partition": 1}]}),
    )
    .await;
    c.post_json(
        "/v1/streams/order-7",
        json!({"expected_version": "any", "events": [
            {"id": "e1", "type": "OrderPlaced", "data": {"n": 1}, "metadata": {"correlationid": "corr-9"}},
            {"id": "e2", "type": "OrderPaid", "data": {"n": 2}, "metadata": {"correlationid": "corr-9", "causationid": "e1"}}
        ]}),
    )
    .await;
    let overview = c.page("/console", StatusCode::OK).await;
    assert!(
        overview.contains("href=\"/console/topics/orders\""),
        "{overview}"
    );
    let topics = c.page("/console/topics", StatusCode::OK).await;
    // Internal topics are listed too, marked.
    assert!(topics.contains(">orders</a>") && topics.contains(">__weir_events</a>"));
    assert!(topics.contains("internal"), "{topics}");
    let topic = c.page("/console/topics/orders", StatusCode::OK).await;
    // Two partitions, the second holding the record: start 0, end 1.
    assert!(
        topic.contains("/console/topics/orders/partitions/1"),
        "{topic}"
    );
    assert!(
        topic.contains("<td>1</td><td class=\"num\">0</td><td class=\"num\">1</td>"),
        "{topic}"
    );
    let records = c
        .page("/console/topics/orders/partitions/1", StatusCode::OK)
        .await;
    // maud escapes the quotes of the JSON text.
    assert!(
        records.contains("k-1") && records.contains("{&quot;n&quot;:1}"),
        "{records}"
    );
    let events = c.page("/console/events", StatusCode::OK).await;
    assert!(events.contains("OrderPlaced") && events.contains("OrderPaid"));
    // The tail starts after the newest event.
    assert!(
        events.contains("data-live=\"/v1/all/live?from=2\""),
        "{events}"
    );
    let stream = c.page("/console/streams/order-7", StatusCode::OK).await;
    assert!(
        stream.contains("data-live=\"/v1/streams/order-7/live?from=2\""),
        "{stream}"
    );
    let category = c.page("/console/categories/order", StatusCode::OK).await;
    assert!(category.contains("OrderPaid"));
    let by_type = c.page("/console/types/OrderPaid", StatusCode::OK).await;
    assert!(by_type.contains("OrderPaid") && !by_type.contains("OrderPlaced</a>"));
    // The correlation nests the payment under the order.
    let trace = c.page("/console/correlations/corr-9", StatusCode::OK).await;
    let placed = trace.find("<b>OrderPlaced</b>").unwrap();
    let paid = trace.find("<b>OrderPaid</b>").unwrap();
    assert!(placed < paid, "{trace}");
    assert_eq!(trace[placed..paid].matches("<ul").count(), 1, "{trace}");
    for path in [
        "/console/groups",
        "/console/dlq",
        "/console/sagas",
        "/console/alerts",
    ] {
        c.page(path, StatusCode::OK).await;
    }
    // The search form goes to the page it names.
    let req = Request::get("/console/events?stream=order%2F7")
        .body(Body::empty())
        .unwrap();
    let (st, location, _) = c.call(req).await;
    assert_eq!(
        (st, location.as_str()),
        (StatusCode::SEE_OTHER, "/console/streams/order%2F7")
    );
    // What is not there is a 404 page, not a panic or a blank.
    let missing = c.page("/console/topics/nope", StatusCode::NOT_FOUND).await;
    assert!(missing.contains("nope"), "{missing}");
    c.page("/console/groups/nope", StatusCode::NOT_FOUND).await;
    c.page("/console/sagas/nope", StatusCode::NOT_FOUND).await;
    c.page("/console/no/such/page", StatusCode::NOT_FOUND).await;
    c.page("/console/topics/orders/partitions/9", StatusCode::NOT_FOUND)
        .await;
    c.page(
        "/console/topics/orders/partitions/0?offset=x",
        StatusCode::BAD_REQUEST,
    )
    .await;
    // The assets are embedded.
    let req = Request::get("/console/assets/console.js")
        .body(Body::empty())
        .unwrap();
    let (st, js, ctype) = c.call(req).await;
    assert_eq!(st, StatusCode::OK);
    assert!(ctype.starts_with("text/javascript") && js.contains("EventSource"));
}

#[tokio::test]
async fn user_data_is_rendered_inert() {
    let c = Console::start();
    // Topic names cannot hold markup; keys, values, headers and event
    // data can.
    c.post_json("/v1/topics", json!({"name": "evil", "partitions": 1}))
        .await;
    c.post_json(
        "/v1/topics/evil/records",
        json!({"records": [
            {"key": EVIL, "value_base64": base64_of(EVIL), "headers": {EVIL: EVIL}},
            {"key": "bin", "value_base64": "/wAQ"}
        ]}),
    )
    .await;
    let page = c
        .page("/console/topics/evil/partitions/0", StatusCode::OK)
        .await;
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{page}"
    );
    // Key, value, header name and header value: four escaped copies.
    assert_eq!(page.matches("&lt;script&gt;alert").count(), 4, "{page}");
    // The value that is not UTF-8 is shown as hex.
    assert!(page.contains("ff 00 10"), "{page}");

    c.post_json(
        &format!("/v1/streams/{}", "s-1"),
        json!({"expected_version": "any", "events": [{"type": "T", "data": {"html": EVIL}}]}),
    )
    .await;
    let events = c.page("/console/streams/s-1", StatusCode::OK).await;
    assert!(!events.contains("<script>alert"), "{events}");
    assert!(events.contains("&lt;script&gt;"), "{events}");
    // A name in a path with markup comes back escaped in the error page.
    let missing = c
        .page("/console/topics/%3Cscript%3E", StatusCode::NOT_FOUND)
        .await
        + &c.page("/console/groups/%3Cb%3Ex", StatusCode::NOT_FOUND)
            .await;
    assert!(
        !missing.contains("<script>") && !missing.contains("<b>x"),
        "{missing}"
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn records_pages_are_bounded_and_go_on() {
    let c = Console::start();
    c.post_json("/v1/topics", json!({"name": "many", "partitions": 1}))
        .await;
    let records: Vec<Value> = (0..PAGE_MAX + 10).map(|i| json!({"value": i})).collect();
    c.post_json("/v1/topics/many/records", json!({ "records": records }))
        .await;
    let page = c
        .page(
            "/console/topics/many/partitions/0?limit=100000",
            StatusCode::OK,
        )
        .await;
    let rows = page.matches("<tr><td class=\"num\">").count();
    assert_eq!(rows, PAGE_MAX, "{page}");
    let next = format!("offset={PAGE_MAX}&amp;limit={PAGE_MAX}");
    assert!(page.contains(&next), "{page}");
    let rest = c
        .page(
            &format!("/console/topics/many/partitions/0?offset={PAGE_MAX}"),
            StatusCode::OK,
        )
        .await;
    assert_eq!(rest.matches("<tr><td class=\"num\">").count(), 10);
    assert!(!rest.contains("Next page"), "{rest}");
}

#[tokio::test]
async fn a_dead_letter_is_replayed_through_the_form() {
    let c = Console::start();
    c.broker.create_topic("docs", 1, -1, &[], false).unwrap();
    let failure = Failure {
        error: format!("failed on {EVIL}"),
        kind: ErrorKind::Permanent,
        attempts: 3,
        first_failure_ms: 1_000,
        last_failure_ms: 2_000,
        group: "mailer".into(),
    };
    let origin = Origin {
        topic: "docs".into(),
        partition: 0,
        offset: 7,
        timestamp_ms: 500,
    };
    let original = weir_deadletter::Original {
        key: Some(b"doc-1"),
        value: Some(b"hello"),
        headers: &[],
    };
    let broker = c.broker.clone();
    let offset = tokio::task::spawn_blocking(move || {
        weir_deadletter::send(&broker, DEFAULT_SUFFIX, original, &failure, &origin)
    })
    .await
    .unwrap()
    .unwrap();
    let list = c.page("/console/dlq", StatusCode::OK).await;
    assert!(list.contains("docs.dlq") && list.contains("/console/dlq/docs.dlq/partitions/0"));
    let dead = c
        .page("/console/dlq/docs.dlq/partitions/0", StatusCode::OK)
        .await;
    assert!(
        dead.contains("hello") && dead.contains("docs-0@7"),
        "{dead}"
    );
    assert!(!dead.contains("<script>alert"), "{dead}");

    // A form posted from another site is refused and replays nothing.
    let form = format!("partition=0&offset={offset}");
    let forged = Request::post("/console/dlq/docs.dlq/replay")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://elsewhere.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.clone()))
        .unwrap();
    assert_eq!(c.call(forged).await.0, StatusCode::FORBIDDEN);
    assert_eq!(c.broker.partition("docs", 0).unwrap().end_offset(), 0);

    let ours = Request::post("/console/dlq/docs.dlq/replay")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let (st, location, _) = c.call(ours).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location, "/console/dlq/docs.dlq/partitions/0?replayed=1");
    // The record is back on its origin.
    assert_eq!(c.broker.partition("docs", 0).unwrap().end_offset(), 1);
    let after = c.page(&location, StatusCode::OK).await;
    assert!(after.contains("Replayed 1 dead letter(s)."), "{after}");
    // A form that is not the console's is a 400 page.
    let bad = Request::post("/console/dlq/docs.dlq/replay")
        .body(Body::from("partition=%3Cx%3E"))
        .unwrap();
    assert_eq!(c.call(bad).await.0, StatusCode::BAD_REQUEST);
}
