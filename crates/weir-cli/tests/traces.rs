//! Logs and traces of `weir serve`, run as a child process: JSON log lines
//! that each parse and carry a request's client id, correlation id and
//! trace id; W3C `traceparent` headers recorded on events appended over
//! HTTP and kept on Kafka records; bad values ignored; and spans exported
//! over OTLP/HTTP to a receiver this test runs, with the caller's span as
//! their parent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-01")
}

/// A `weir serve` child on free loopback ports, its stderr collected.
struct Serve {
    child: Child,
    kafka: String,
    http: String,
    stderr: Option<std::thread::JoinHandle<String>>,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(args: &[&str], log: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "serve",
                "--kafka-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("WEIR_LOG", log)
            .env_remove("WEIR_LOG_FORMAT")
            .env_remove("WEIR_OTLP_ENDPOINT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addr = |prefix: &str| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("not a ready line: {line:?}"))
                .to_owned()
        };
        let kafka = addr("kafka listening on ");
        let http = addr("http listening on ");
        Self {
            child,
            kafka,
            http,
            stderr: Some(stderr),
            _dir: dir,
        }
    }

    /// Stops it with SIGTERM (a graceful stop) and returns its stderr.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        self.stderr.take().unwrap().join().unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// POSTs `body` with `headers`; the status and the JSON answer.
fn post(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send_json(body).unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap())
}

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap_or(Value::Null))
}

fn kcat(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (scripts/install-deps)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn append_one(s: &Serve, stream: &str, headers: &[(&str, &str)], event: Value) -> (u16, Value) {
    post(
        &s.url(&format!("/v1/streams/{stream}")),
        headers,
        &json!({"expected_version": "any", "events": [event]}),
    )
}

#[test]
fn json_log_lines_carry_the_requests_client_correlation_and_trace() {
    let s = Serve::start(
        &["--log-format", "json"],
        "info,weir_http=debug,weir_kafka=debug",
    );
    let tp = traceparent();
    let (status, _) = append_one(
        &s,
        "logged-1",
        &[
            ("traceparent", &tp),
            ("x-client-id", "billing-service"),
            ("x-correlation-id", "corr-17"),
        ],
        json!({"type": "Noted", "data": {}}),
    );
    assert_eq!(status, 200);
    // Without x-client-id the User-Agent names the client.
    let (status, _) = get(&s.url("/v1/topics"), &[("user-agent", "ops-console/2")]);
    assert_eq!(status, 200);
    kcat(
        &["-b", &s.kafka, "-L", "-X", "client.id=kafka-client-17"],
        "",
    );
    let stderr = s.stop();

    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{stderr}");
    for l in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(l[key].is_string(), "no {key}: {l}");
        }
        assert!(l["fields"]["message"].is_string(), "no message: {l}");
    }
    let served = |route: &str| {
        lines
            .iter()
            .find(|l| {
                l["fields"]["message"] == "http request served" && l["span"]["route"] == route
            })
            .unwrap_or_else(|| panic!("no line for {route}: {stderr}"))
    };
    let append = &served("/v1/streams/{stream}")["span"];
    assert_eq!(append["name"], "http.request");
    assert_eq!(append["client_id"], "billing-service");
    assert_eq!(append["correlation_id"], "corr-17");
    assert_eq!(append["trace_id"], TRACE_ID);
    assert_eq!(append["parent_span_id"], PARENT_ID);
    assert_eq!(append["method"], "POST");
    let topics = &served("/v1/topics")["span"];
    assert_eq!(topics["client_id"], "ops-console/2");
    assert!(
        topics.get("trace_id").is_none(),
        "no trace made up: {topics}"
    );

    let kafka = lines
        .iter()
        .find(|l| l["fields"]["message"] == "kafka request" && l["span"]["api"] == "Metadata")
        .unwrap_or_else(|| panic!("no Metadata request line: {stderr}"));
    assert_eq!(kafka["span"]["client_id"], "kafka-client-17");
    assert!(kafka["span"]["correlation_id"].is_number(), "{kafka}");
    assert_eq!(kafka["span"]["api_key"], 3);
}

#[test]
fn traceparents_are_recorded_on_events_and_kept_on_records() {
    let s = Serve::start(&[], "warn");
    let tp = traceparent();
    // An event without its own context is recorded in the request's.
    let (status, _) = append_one(
        &s,
        "traced-1",
        &[("traceparent", &tp), ("tracestate", "vendor=abc")],
        json!({"type": "Noted", "data": {"n": 1}}),
    );
    assert_eq!(status, 200);
    // An event's own context wins over the request's.
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let (status, _) = append_one(
        &s,
        "traced-1",
        &[("traceparent", &tp)],
        json!({"type": "Noted", "data": {"n": 2}, "traceparent": own}),
    );
    assert_eq!(status, 200);
    // A bad header is ignored: the append succeeds, untraced.
    let (status, _) = append_one(
        &s,
        "traced-1",
        &[("traceparent", "00-4BF92F35-nonsense-01")],
        json!({"type": "Noted", "data": {"n": 3}}),
    );
    assert_eq!(status, 200);
    // A bad traceparent in the body is the caller's error, named.
    let (status, problem) = append_one(
        &s,
        "traced-1",
        &[],
        json!({"type": "Noted", "data": {}, "traceparent": "00-zz"}),
    );
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("\"00-zz\""),
        "{problem}"
    );

    let (status, page) = get(&s.url("/v1/streams/traced-1"), &[]);
    assert_eq!(status, 200);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{page}");
    assert_eq!(events[0]["traceparent"], tp.as_str());
    assert_eq!(events[0]["tracestate"], "vendor=abc");
    assert_eq!(events[1]["traceparent"], own);
    assert!(events[1].get("tracestate").is_none());
    assert!(events[2].get("traceparent").is_none(), "{}", events[2]);
    // The store's record holds it as the CloudEvents extension.
    let record = kcat(
        &[
            "-b",
            &s.kafka,
            "-C",
            "-t",
            "__weir_events",
            "-o",
            "0",
            "-c",
            "1",
            "-e",
            "-f",
            "%h",
        ],
        "",
    );
    assert!(record.contains(&format!("ce_traceparent={tp}")), "{record}");

    // A Kafka record produced with a traceparent header keeps it.
    kcat(
        &[
            "-b",
            &s.kafka,
            "-P",
            "-t",
            "traced",
            "-H",
            &format!("traceparent={tp}"),
        ],
        "hello\n",
    );
    let (status, records) = get(&s.url("/v1/topics/traced/partitions/0/records"), &[]);
    assert_eq!(status, 200, "{records}");
    assert_eq!(records["records"][0]["headers"]["traceparent"], tp.as_str());

    // Produced over HTTP: a record without a traceparent header gets the
    // request's; one with its own keeps it.
    let (status, _) = post(
        &s.url("/v1/topics/traced/records"),
        &[("traceparent", &tp)],
        &json!({"records": [
            {"value": 1},
            {"value": 2, "headers": {"traceparent": own}},
        ]}),
    );
    assert_eq!(status, 200);
    let (_, records) = get(
        &s.url("/v1/topics/traced/partitions/0/records?offset=1"),
        &[],
    );
    assert_eq!(records["records"][0]["headers"]["traceparent"], tp.as_str());
    assert_eq!(records["records"][1]["headers"]["traceparent"], own);
    s.stop();
}

#[test]
fn the_sdk_over_http_writes_and_reads_the_trace_context() {
    let s = Serve::start(&[], "warn");
    let client = weir::Client::connect(&s.http).unwrap();
    let context = weir::TraceContext::parse(&traceparent(), Some("vendor=1")).unwrap();
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Noted {
        n: u32,
    }
    weir::event!(Noted = "Noted" v 1);
    let causation = weir::Causation::new().in_trace(Some(context.clone()));
    let traced = weir::Envelope::new(&Noted { n: 1 }, "/test", &causation).unwrap();
    let plain = weir::Envelope::new(&Noted { n: 2 }, "/test", &weir::Causation::new()).unwrap();
    client
        .append(
            "remote-1",
            weir::ExpectedVersion::NoStream,
            &[traced, plain],
        )
        .unwrap();
    let read = client.read_stream("remote-1", 0, 10).unwrap();
    assert_eq!(read[0].trace, Some(context));
    assert_eq!(read[1].trace, None);
    let (_, page) = get(&s.url("/v1/streams/remote-1"), &[]);
    assert_eq!(page["events"][0]["traceparent"], traceparent().as_str());
    s.stop();
}

/// The spans an OTLP/HTTP receiver on loopback has been sent.
struct Receiver {
    addr: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let got = spans.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let got = got.clone();
                std::thread::spawn(move || serve_otlp(conn, &got));
            }
        });
        Self { addr, spans }
    }
}

/// Answers POST /v1/traces requests on one connection (keep-alive).
fn serve_otlp(conn: TcpStream, spans: &Mutex<Vec<Span>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
        let len: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line}"
        );
        assert_eq!(headers["content-type"], "application/x-protobuf");
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        for rs in request.resource_spans {
            for ss in rs.scope_spans {
                spans.lock().unwrap().extend(ss.spans);
            }
        }
        conn.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

#[test]
fn spans_reach_an_otlp_receiver_under_the_callers_span() {
    let receiver = Receiver::start();
    let endpoint = format!("http://{}", receiver.addr);
    let s = Serve::start(&["--otlp-endpoint", &endpoint], "info");
    let tp = traceparent();
    let (status, _) = append_one(
        &s,
        "exported-1",
        &[("traceparent", &tp)],
        json!({"type": "Noted", "data": {}}),
    );
    assert_eq!(status, 200);
    let (status, _) = get(&s.url("/healthz"), &[("traceparent", "00-not-valid-01")]);
    assert_eq!(status, 200, "a bad traceparent is no error");
    kcat(&["-b", &s.kafka, "-L", "-X", "client.id=kafka-otlp"], "");
    // Stopping flushes what the batch processor still holds.
    s.stop();

    let spans = receiver.spans.lock().unwrap();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let append = named("POST /v1/streams/{stream}");
    assert_eq!(append.len(), 1, "{names:?}");
    let append = append[0];
    assert_eq!(hex(&append.trace_id), TRACE_ID);
    assert_eq!(
        hex(&append.parent_span_id),
        PARENT_ID,
        "the caller's span is the parent"
    );
    assert_eq!(attribute(append, "status").as_deref(), Some("200"));
    let store = named("store.append");
    assert_eq!(store.len(), 1, "{names:?}");
    assert_eq!(hex(&store[0].trace_id), TRACE_ID);
    assert_eq!(
        store[0].parent_span_id, append.span_id,
        "inside the request's span"
    );

    let health = named("GET /healthz");
    assert_eq!(health.len(), 1, "{names:?}");
    assert_ne!(hex(&health[0].trace_id), TRACE_ID);
    assert!(
        health[0].parent_span_id.is_empty(),
        "a bad traceparent gives no parent"
    );

    // Kafka request spans are named by their API when exported.
    let metadata = named("Metadata");
    assert!(!metadata.is_empty(), "{names:?}");
    assert!(
        metadata
            .iter()
            .any(|m| attribute(m, "client_id").as_deref() == Some("kafka-otlp")),
        "{metadata:?}"
    );
}
