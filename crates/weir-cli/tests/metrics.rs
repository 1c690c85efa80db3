//! `GET /metrics` of a running `weir serve`: the real Prometheus server
//! (Debian's `prometheus`, installed by scripts/install-deps) scrapes it
//! and reads the values back; the values move under load (kcat produces,
//! a consumer group falls behind, events are appended, a dead letter
//! arrives and its alert fires); refusals by a limit and live clients are
//! counted; the series cap holds and counts what it drops; with
//! `--no-metrics` the endpoint is not there.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Stops the server (and anything else) when the test ends, however.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `curl`: the status and the body.
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed by scripts/install-deps");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

fn post(http: &str, path: &str, body: &str) -> String {
    let (st, out) = curl(
        &format!("http://{http}{path}"),
        &[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ],
    );
    assert!((200..300).contains(&st), "POST {path}: {st} {out}");
    out
}

/// Every sample of a scrape, `name{labels}` to value.
fn scrape(http: &str) -> BTreeMap<String, f64> {
    let (st, text) = curl(&format!("http://{http}/metrics"), &[]);
    assert_eq!(st, 200, "{text}");
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in the scrape: {samples:#?}"))
}

/// Scrapes until `ok` holds (20 s at most).
fn scrape_until(
    http: &str,
    what: &str,
    ok: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(http);
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {s:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kcat(args: &[&str], stdin: &str) {
    let out = common::run_with_stdin(Command::new("kcat").args(args), stdin);
    assert!(
        out.status.success(),
        "kcat (installed by scripts/install-deps): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real Prometheus server scraping `target` every 200 ms from a
/// scratch directory, on a free port.
fn prometheus(dir: &std::path::Path, target: &str) -> (Killed, String) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\nscrape_configs:\n  - job_name: weir\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", common::free_port());
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "the prometheus server (Debian package `prometheus`, installed by scripts/install-deps)",
        );
    (Killed(child), addr)
}

/// Asks Prometheus for `query` until it has a value, and returns it.
fn prometheus_value(addr: &str, query: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, body) = curl(
            &format!("http://{addr}/api/v1/query"),
            &["--get", "--data-urlencode", &format!("query={query}")],
        );
        if st == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if let Some(value) = v["data"]["result"][0]["value"][1].as_str() {
                return value.parse().unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus has no value for {query}: {st} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The scrape target's health as Prometheus saw it: ("up", "") when the
/// exposition parsed.
fn target_health(addr: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, body) = curl(&format!("http://{addr}/api/v1/targets"), &[]);
        if st == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let t = &v["data"]["activeTargets"][0];
            let health = t["health"].as_str().unwrap_or_default().to_owned();
            if health == "up" || health == "down" {
                return (health, t["lastError"].as_str().unwrap_or("").to_owned());
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped: {st} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_move_under_load_and_prometheus_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, kafka, http) = common::start_serve_kafka_http(
        &tmp.path().join("data"),
        &[
            "--group-initial-rebalance-delay-ms",
            "0",
            "--alert-dead-letter-depth-max",
            "0",
            "--alert-interval-ms",
            "100",
        ],
    );
    let _server = Killed(child);
    let before = scrape(&http);
    assert_eq!(value(&before, "weir_store_appends_total"), 0.0);
    assert_eq!(
        value(
            &before,
            r#"weir_requests_rejected_total{reason="kafka_request_too_large"}"#
        ),
        0.0
    );
    assert!(value(&before, "process_resident_memory_bytes") > 1e6);

    // Three records through Kafka, two over HTTP.
    kcat(
        &["-b", &kafka, "-P", "-t", "orders", "-p", "0"],
        "a\nbb\nccc\n",
    );
    post(
        &http,
        "/v1/topics/orders/records",
        r#"{"records":[{"value":1,"partition":0},{"value":2,"partition":0}]}"#,
    );
    // A group reads three and commits: two left behind.
    let out = Command::new("timeout")
        .args(["30", "kcat", "-b", &kafka, "-G", "billing", "-q", "-c", "3"])
        .args(["-X", "auto.commit.interval.ms=100"])
        .args(["-X", "auto.offset.reset=earliest", "orders"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Events, a dead letter, an HTTP read.
    post(
        &http,
        "/v1/streams/account-1",
        r#"{"expected_version":"no_stream","events":[{"id":"e1","type":"Opened","data":{}},{"id":"e2","type":"Deposited","data":{"amount":5}}]}"#,
    );
    kcat(&["-b", &kafka, "-P", "-t", "orders.dlq"], "lost\n");
    let (st, _) = curl(
        &format!("http://{http}/v1/topics/orders/partitions/0/records?offset=0"),
        &[],
    );
    assert_eq!(st, 200);
    // A frame over the admin request limit (1 MiB) is refused.
    {
        use std::io::Write as _;
        let mut s = std::net::TcpStream::connect(&kafka).unwrap();
        s.write_all(&(2i32 << 20).to_be_bytes()).unwrap();
        s.write_all(&3i16.to_be_bytes()).unwrap();
        let _ = std::io::Read::read(&mut s, &mut [0u8; 1]);
    }

    let lag = r#"weir_consumer_group_lag_records{group="billing",topic="orders",partition="0"}"#;
    let alert = r#"weir_alert_firing{kind="dead_letter_depth",subject="orders.dlq"}"#;
    let after = scrape_until(&http, "the group's lag and the alert", |s| {
        s.get(lag) == Some(&2.0) && s.contains_key(alert)
    });
    assert_eq!(
        value(&after, r#"weir_topic_records_in_total{topic="orders"}"#),
        5.0
    );
    assert!(value(&after, r#"weir_topic_bytes_in_total{topic="orders"}"#) > 6.0);
    // kcat's group read three; the HTTP read five.
    assert!(value(&after, r#"weir_topic_records_out_total{topic="orders"}"#) >= 8.0);
    assert!(value(&after, r#"weir_topic_bytes_out_total{topic="orders"}"#) > 0.0);
    assert!(
        value(
            &after,
            r#"weir_partition_log_size_bytes{topic="orders",partition="0"}"#
        ) > 0.0
    );
    assert_eq!(
        value(
            &after,
            r#"weir_dead_letter_depth_records{topic="orders.dlq"}"#
        ),
        1.0
    );
    assert_eq!(value(&after, alert), 1.0);
    assert_eq!(value(&after, "weir_store_appends_total"), 1.0);
    assert_eq!(value(&after, "weir_store_events_appended_total"), 2.0);
    assert_eq!(
        value(&after, "weir_store_append_duration_seconds_count"),
        1.0
    );
    assert!(value(&after, "weir_fsync_rounds_total") > value(&before, "weir_fsync_rounds_total"));
    assert!(value(&after, "weir_fsync_round_duration_seconds_count") >= 1.0);
    assert!(value(&after, r#"weir_fsync_round_appends_bucket{le="+Inf"}"#) >= 1.0);
    assert!(
        value(
            &after,
            r#"weir_kafka_request_duration_seconds_count{api="Produce"}"#
        ) >= 2.0
    );
    assert!(
        value(
            &after,
            r#"weir_kafka_request_duration_seconds_count{api="OffsetCommit"}"#
        ) >= 1.0
    );
    assert_eq!(
        value(
            &after,
            r#"weir_requests_rejected_total{reason="kafka_request_too_large"}"#
        ),
        1.0
    );
    // This scrape's own connection is open.
    assert!(value(&after, r#"weir_connections_open{listener="http"}"#) >= 1.0);

    // The real Prometheus parses the exposition and reads the same values.
    let (_prometheus, prom) = prometheus(tmp.path(), &http);
    let (health, error) = target_health(&prom);
    assert_eq!((health.as_str(), error.as_str()), ("up", ""));
    assert_eq!(
        prometheus_value(&prom, r#"weir_topic_records_in_total{topic="orders"}"#),
        5.0
    );
    assert_eq!(prometheus_value(&prom, lag), 2.0);
    assert_eq!(
        prometheus_value(&prom, "weir_store_append_duration_seconds_count"),
        1.0
    );
}

#[test]
fn the_series_cap_holds_and_counts_what_it_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, http) = common::start_serve_http(tmp.path(), &["--metrics-series-max", "5"]);
    let _server = Killed(child);
    for i in 0..8 {
        post(
            &http,
            "/v1/topics",
            &format!(r#"{{"name":"t{i}","partitions":1}}"#),
        );
    }
    let first = scrape(&http);
    assert_eq!(value(&first, "weir_metrics_series"), 5.0);
    let per_topic = |s: &BTreeMap<String, f64>| {
        s.keys()
            .filter(|k| k.starts_with("weir_topic_records_in_total{"))
            .count()
            + s.keys()
                .filter(|k| k.starts_with("weir_partition_log_size_bytes{"))
                .count()
    };
    assert!(per_topic(&first) <= 5, "{first:#?}");
    // Eight topics and their partitions are 16 label sets.
    let dropped = value(&first, "weir_metrics_series_dropped_total");
    assert!(dropped >= 11.0, "{dropped}");
    // Counted once: a second scrape drops nothing new.
    let second = scrape(&http);
    assert_eq!(value(&second, "weir_metrics_series_dropped_total"), dropped);
    assert_eq!(per_topic(&second), per_topic(&first));
}

#[test]
fn refused_bodies_and_live_clients_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, http) = common::start_serve_http(
        tmp.path(),
        &["--http-body-bytes-max", "200", "--sse-clients-max", "1"],
    );
    let _server = Killed(child);
    let big = format!(r#"{{"records":[{{"value":"{}"}}]}}"#, "x".repeat(300));
    let (st, _) = curl(
        &format!("http://{http}/v1/topics/big/records"),
        &[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            &big,
        ],
    );
    assert_eq!(st, 413);
    let live = Killed(
        Command::new("curl")
            .args(["-sS", "-N", &format!("http://{http}/v1/all/live")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let s = scrape_until(&http, "the live client", |s| {
        s.get("weir_http_live_clients") == Some(&1.0)
    });
    assert_eq!(
        value(
            &s,
            r#"weir_requests_rejected_total{reason="http_body_too_large"}"#
        ),
        1.0
    );
    // A second live client is over --sse-clients-max.
    let (st, _) = curl(&format!("http://{http}/v1/all/live"), &["-m", "5"]);
    assert_eq!(st, 503);
    drop(live);
    let s = scrape_until(&http, "the live client gone", |s| {
        s.get("weir_http_live_clients") == Some(&0.0)
    });
    assert_eq!(
        value(
            &s,
            r#"weir_requests_rejected_total{reason="sse_clients_max"}"#
        ),
        1.0
    );
}

#[test]
fn without_metrics_the_endpoint_is_not_there() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, http) = common::start_serve_http(tmp.path(), &["--no-metrics"]);
    let _server = Killed(child);
    let (st, body) = curl(&format!("http://{http}/metrics"), &[]);
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("no_such_route"), "{body}");
    let (st, _) = curl(&format!("http://{http}/healthz"), &[]);
    assert_eq!(st, 200);
}
