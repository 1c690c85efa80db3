//! Logs and traces of the `weir` process: text or JSON lines on stderr
//! (`--log-format`), and, when `weir serve --otlp-endpoint` is given,
//! spans exported over OTLP/HTTP (protobuf) through OpenTelemetry's batch
//! span processor. The exporter's HTTP client is a blocking ureq agent:
//! the batch processor exports from its own thread, so a blocking call
//! costs no runtime worker, and ureq is already in the tree (no reqwest,
//! hyper client or gRPC stack for one POST every few seconds).

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The OTLP/HTTP path of traces, appended to a base endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// The format of log lines on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colored on a terminal).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message
    /// (`fields`), the current span's fields (`span`) and the spans it
    /// is in (`spans`).
    Json,
}

/// What the process logs and exports.
#[derive(Debug, Default)]
pub struct Settings {
    /// The level when `WEIR_LOG` does not say (an `EnvFilter` directive).
    pub default_level: &'static str,
    pub format: LogFormat,
    /// The OTLP/HTTP collector: a base `http://` URL (`http://host:4318`,
    /// traces go to `/v1/traces`) or the full traces URL.
    pub otlp_endpoint: Option<String>,
}

/// Keeps the exporter until dropped; dropping it flushes the spans not yet
/// sent and stops the exporter.
#[derive(Debug)]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.force_flush() {
                eprintln!("weir: flushing spans to the OTLP endpoint failed: {e}");
            }
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber (and the exporter, if asked for).
pub fn init(settings: Settings) -> anyhow::Result<Guard> {
    let filter =
        || EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| settings.default_level.into());
    let fmt = match settings.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (otel, provider) = match &settings.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let provider = provider(endpoint)?;
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("weir"))
                .with_filter(filter());
            weir_http::trace::set_remote_parent_hook(set_remote_parent);
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        .with(otel)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(Guard { provider })
}

/// The tracer provider exporting to `endpoint` in batches.
fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let url = traces_url(endpoint)?;
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(EXPORT_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(UreqClient(agent))
        .build()
        .context("building the OTLP exporter")?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("weir")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// `endpoint` as the URL traces are posted to: a base URL gets
/// `/v1/traces`; one ending in it is used as given.
fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let e = endpoint.trim_end_matches('/');
    // The exporter's client is built without TLS (as weir-client's is).
    anyhow::ensure!(
        e.starts_with("http://"),
        "--otlp-endpoint {endpoint:?} is not an http:// URL (https is not supported: use a local collector)"
    );
    Ok(if e.ends_with(TRACES_PATH) {
        e.to_owned()
    } else {
        format!("{e}{TRACES_PATH}")
    })
}

/// Makes a request's span the child of the caller's span (W3C context).
fn set_remote_parent(span: &tracing::Span, trace: &weir_store::TraceContext) {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let state = trace
        .state()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let remote = SpanContext::new(
        TraceId::from_bytes(trace.parent.trace_id),
        SpanId::from_bytes(trace.parent.span_id),
        TraceFlags::new(trace.parent.flags),
        true,
        state,
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(remote);
    let _ = span.set_parent(cx);
}

/// OpenTelemetry's HTTP client trait over a blocking ureq agent.
#[derive(Debug)]
struct UreqClient(ureq::Agent);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for UreqClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let (parts, body) = request.into_parts();
        let request = ureq::http::Request::from_parts(parts, body.to_vec());
        let mut response = self.0.run(request)?;
        let status = response.status();
        // Collectors answer with a small protobuf; a bounded read.
        let body = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_vec()?;
        Ok(opentelemetry_http::Response::builder()
            .status(status)
            .body(opentelemetry_http::Bytes::from(body))?)
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn a_base_endpoint_gets_the_traces_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces/").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert!(traces_url("127.0.0.1:4318").is_err());
        assert!(traces_url("https://c:4318").is_err());
    }
}
