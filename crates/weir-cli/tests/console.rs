//! The web console in a real browser: the `weir serve` binary on free
//! ports in a temp dir, records produced by kcat, a consumer group with
//! lag made by kcat members, events appended over the HTTP API; headless
//! Chromium (driven through chromedriver over WebDriver with fantoccini)
//! opens the console and must show the topic, the records (a `<script>`
//! value as inert text), the group's lag and its chart, the event, a
//! new event arriving through the live tail, and a dead letter replayed
//! with its button. Screenshots of each page go
//! to `<target dir>/console-screenshots/` for CI to keep.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Longest wait for one thing to appear in the browser.
const WAIT: Duration = Duration::from_secs(15);

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where screenshots go: `$CARGO_TARGET_DIR`, else the target directory
/// the `weir` binary was built in.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let bin = PathBuf::from(env!("CARGO_BIN_EXE_weir"));
            bin.parent().and_then(|d| d.parent()).unwrap().to_owned()
        });
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn kcat_produce(kafka: &str, topic: &str, lines: &str) {
    let out = common::run_with_stdin(
        Command::new("kcat").args(["-b", kafka, "-P", "-t", topic, "-K", "|"]),
        lines,
    );
    assert!(out.status.success(), "kcat -P: {out:?}");
}

/// A `kcat -G` member of `group` on `topic` with `extra` options.
fn kcat_member(kafka: &str, group: &str, topic: &str, extra: &[&str]) -> Command {
    let mut c = Command::new("kcat");
    c.args(["-b", kafka, "-G", group, "-q", "-f", "%o\n"])
        .args(["-X", "auto.offset.reset=earliest"])
        .args(["-X", "session.timeout.ms=6000"])
        .args(["-X", "heartbeat.interval.ms=500"])
        .args(extra)
        .arg(topic)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn api(http: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-f", "-X", method, &format!("http://{http}{path}")]);
    if let Some(body) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary"])
            .arg(body.to_string());
    }
    let out = cmd
        .output()
        .expect("curl is installed by scripts/install-deps");
    assert!(out.status.success(), "{method} {path}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Polls `what` until it gives a value (at most [`WAIT`]).
async fn until<T, F: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element `css` finds whose text satisfies `ok`.
async fn text_of(b: &Client, css: &str, ok: impl Fn(&str) -> bool) -> Option<String> {
    for e in b.find_all(Locator::Css(css)).await.ok()? {
        if let Ok(t) = e.text().await
            && ok(&t)
        {
            return Some(t);
        }
    }
    None
}

async fn shot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
    std::fs::write(screenshot_dir().join(name), png).unwrap();
}

/// Starts chromedriver on a free port and opens a headless session.
async fn browser() -> (Killed, Client) {
    let port = common::free_port();
    let driver = Killed(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed by scripts/install-deps"),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--window-size=1280,860", "--hide-scrollbars"]}),
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = until("chromedriver to accept a session", || {
        let (caps, url) = (caps.clone(), url.clone());
        async move {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&url)
                .await
                .ok()
        }
    })
    .await;
    (driver, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_topics_lag_and_events_in_a_browser() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (serve, kafka, http) =
        common::start_serve_kafka_http(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]);
    let _serve = Killed(serve);
    // Five records through a real client, one whose value is markup.
    kcat_produce(
        &kafka,
        "orders",
        "k1|{\"order\":1}\nk2|<script>document.title='owned'</script>\nk3|c\nk4|d\nk5|e\n",
    );
    // A member that reads two records and commits them on leaving, then a
    // member that stays and commits nothing: the group has a member and
    // lags by the three records it has not committed.
    let first = kcat_member(
        &kafka,
        "console-group",
        "orders",
        &["-c", "2", "-X", "enable.auto.commit=true"],
    )
    .output()
    .unwrap();
    assert!(first.status.success(), "{first:?}");
    let _member = Killed(
        kcat_member(
            &kafka,
            "console-group",
            "orders",
            &["-X", "enable.auto.commit=false"],
        )
        .spawn()
        .unwrap(),
    );
    let group = until("the group to have a member and lag", || async {
        let g = api(&http, "GET", "/v1/groups/console-group", None);
        let has_member = g["members"].as_array().is_some_and(|m| !m.is_empty());
        (has_member && g["lag_total"].as_i64() > Some(0)).then_some(g)
    })
    .await;
    let lag = group["lag_total"].as_i64().unwrap();
    assert_eq!(
        lag,
        5 - group["partitions"][0]["committed_offset"].as_i64().unwrap()
    );
    api(
        &http,
        "POST",
        "/v1/streams/order-1",
        Some(json!({"expected_version": "any", "events": [
            {"type": "OrderPlaced", "data": {"total": 42}, "metadata": {"correlationid": "c-1"}}
        ]})),
    );

    let (_driver, b) = browser().await;
    let console = format!("http://{http}/console");

    // The topic is listed, linked to its page.
    b.goto(&format!("{console}/topics")).await.unwrap();
    until("the topic in the list", || {
        text_of(&b, "a.topic-link", |t| t == "orders")
    })
    .await;
    shot(&b, "topics.png").await;

    // Its records: the markup value is shown as text and never runs.
    b.goto(&format!("{console}/topics/orders/partitions/0"))
        .await
        .unwrap();
    until("the records", || {
        text_of(&b, "#records td.value", |t| {
            t.contains("<script>document.title")
        })
    })
    .await;
    assert!(
        b.find_all(Locator::Css("#records script"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_ne!(b.title().await.unwrap(), "owned");
    let rows = b.find_all(Locator::Css("#records tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 5);
    shot(&b, "records.png").await;

    // The group: its lag as the API computes it, its member, and the lag
    // chart once two samples are taken (each view samples, a second apart).
    b.goto(&format!("{console}/groups/console-group"))
        .await
        .unwrap();
    let expected = lag.to_string();
    until("the group's lag", || {
        text_of(&b, "#lag-total", |t| t == expected)
    })
    .await;
    until("the member's assignment", || {
        text_of(&b, "#members td", |t| t.contains("orders: 0"))
    })
    .await;
    // Three more records: the page (reloaded) shows the lag grown by three
    // and the chart, drawn from the samples views take a second apart,
    // shows the rise.
    kcat_produce(&kafka, "orders", "k6|f\nk7|g\nk8|h\n");
    let grown = (lag + 3).to_string();
    until("the grown lag and its chart", || async {
        let shown = text_of(&b, "#lag-total", |t| t == grown).await.is_some();
        let chart = !b
            .find_all(Locator::Css("svg.chart polyline"))
            .await
            .ok()?
            .is_empty();
        if shown && chart {
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.refresh().await.ok()?;
        None
    })
    .await;
    shot(&b, "group.png").await;

    // The event, then one more arriving through the live tail (SSE).
    b.goto(&format!("{console}/events")).await.unwrap();
    until("the event", || {
        text_of(&b, "#events td", |t| t == "OrderPlaced")
    })
    .await;
    until("the live tail to connect", || {
        text_of(&b, "#live-state", |t| t == "live")
    })
    .await;
    api(
        &http,
        "POST",
        "/v1/streams/order-1",
        Some(json!({"expected_version": 0, "events": [
            {"type": "OrderShipped", "data": {"carrier": "<b>post</b>"}}
        ]})),
    );
    until("the live event", || {
        text_of(&b, "#tail li.tail-item", |t| t.contains("OrderShipped"))
    })
    .await;
    shot(&b, "events.png").await;

    // A dead letter written by kcat (any client can write one: the
    // weir.dlq.* headers make it one), replayed with the page's button:
    // the browser's form post passes the same-origin check and the record
    // is back on its origin.
    let headers = [
        "weir.dlq.error=payment service timed out",
        "weir.dlq.error.kind=transient",
        "weir.dlq.attempts=5",
        "weir.dlq.first.failure.ms=1000",
        "weir.dlq.last.failure.ms=9000",
        "weir.dlq.group=billing",
        "weir.dlq.origin.topic=orders",
        "weir.dlq.origin.partition=0",
        "weir.dlq.origin.offset=1",
        "weir.dlq.origin.timestamp.ms=500",
    ];
    let mut dead = Command::new("kcat");
    dead.args(["-b", &kafka, "-P", "-t", "orders.dlq", "-p", "0", "-K", "|"]);
    for h in headers {
        dead.args(["-H", h]);
    }
    let out = common::run_with_stdin(&mut dead, "k2|retry me\n");
    assert!(out.status.success(), "{out:?}");
    let end_before = api(&http, "GET", "/v1/topics/orders", None)["partitions"][0]["end_offset"]
        .as_i64()
        .unwrap();
    b.goto(&format!("{console}/dlq/orders.dlq/partitions/0"))
        .await
        .unwrap();
    until("the dead letter", || {
        text_of(&b, "#dead-letters td", |t| {
            t.contains("payment service timed out")
        })
    })
    .await;
    shot(&b, "dead-letters.png").await;
    b.find(Locator::Css("#dead-letters form.inline button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until("the replay's report", || {
        text_of(&b, "#replayed", |t| t == "Replayed 1 dead letter(s).")
    })
    .await;
    let end_after = api(&http, "GET", "/v1/topics/orders", None)["partitions"][0]["end_offset"]
        .as_i64()
        .unwrap();
    assert_eq!(end_after, end_before + 1);

    // The overview counts what is there.
    b.goto(&console).await.unwrap();
    until("the overview", || {
        text_of(&b, "#overview-topics a", |t| t == "orders")
    })
    .await;
    shot(&b, "overview.png").await;
    b.close().await.unwrap();
    eprintln!("browser test took {:?}", started.elapsed());
}
