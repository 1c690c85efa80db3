//! One tracing span per HTTP request, carrying what every log line about
//! the request shows: the method and route, the client id (`x-client-id`,
//! else `User-Agent`), the correlation id (`x-correlation-id`) and the
//! trace id of a W3C `traceparent` header. A valid `traceparent` (with its
//! `tracestate`) also becomes the span's remote parent through the hook
//! the server installs ([`set_remote_parent_hook`], which `weir serve`
//! points at OpenTelemetry when it exports), and handlers read it from the
//! request's extensions ([`RequestTrace`]) to record it on appended
//! events and on produced records that have no `traceparent` header. A bad `traceparent` is ignored, as the W3C spec asks: the
//! request is served without one.

use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;
use weir_store::TraceContext;

/// The W3C Trace Context headers (a request's, and a produced record's).
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// The header naming the calling client (else `User-Agent` does).
pub const CLIENT_ID_HEADER: &str = "x-client-id";
/// The header with the caller's correlation id, logged with the request.
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
/// Longest client or correlation id logged; longer ones are cut (at a
/// character boundary).
pub const LOGGED_ID_BYTES_MAX: usize = 128;

/// Makes a span the child of a remote trace context.
pub type RemoteParentHook = fn(&tracing::Span, &TraceContext);

static REMOTE_PARENT: OnceLock<RemoteParentHook> = OnceLock::new();

/// Installs how a request's span gets its remote parent (once per
/// process; later calls are ignored), and names each request's span by
/// its method and route (`otel.name`) for the exporter that needs it.
/// Without one, the trace context is only logged and recorded on events.
pub fn set_remote_parent_hook(hook: RemoteParentHook) {
    let _ = REMOTE_PARENT.set(hook);
}

/// The request's valid W3C trace context, if it had one (a request
/// extension for the handlers).
#[derive(Debug, Clone, Default)]
pub struct RequestTrace(pub Option<TraceContext>);

/// The trace context of `traceparent` and `tracestate` headers; `None`
/// when there is no traceparent, more than one, or it is not valid.
pub fn context_of(headers: &HeaderMap) -> Option<TraceContext> {
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let (tp, None) = (parents.next()?, parents.next()) else {
        return None;
    };
    // Several tracestate headers are one list, joined by commas.
    let state: Vec<&str> = headers
        .get_all(TRACESTATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let state = (!state.is_empty()).then(|| state.join(","));
    TraceContext::parse(tp.to_str().ok()?, state.as_deref())
}

/// The middleware: the request runs inside its span.
pub(crate) async fn traced(mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let trace = context_of(headers);
    let client_id =
        header_text(headers, CLIENT_ID_HEADER).or_else(|| header_text(headers, "user-agent"));
    let correlation_id = header_text(headers, CORRELATION_ID_HEADER);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http.request",
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        method = %req.method(),
        route,
        client_id,
        correlation_id,
        trace_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let exporter = REMOTE_PARENT.get();
    if exporter.is_some() {
        // Named by route for the exporter only: a log line needs no
        // second copy of the method and route.
        span.record(
            "otel.name",
            format_args!("{} {route}", req.method()).to_string(),
        );
        span.record("otel.kind", "server");
    }
    if let Some(t) = &trace {
        span.record("trace_id", t.parent.trace_id_hex());
        span.record("parent_span_id", t.parent.span_id_hex());
        if let Some(hook) = exporter {
            hook(&span, t);
        }
    }
    req.extensions_mut().insert(RequestTrace(trace));
    let started = std::time::Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if response.status().is_server_error() {
            tracing::warn!(status, elapsed_ms, "http request failed");
        } else {
            tracing::debug!(status, elapsed_ms, "http request served");
        }
    });
    response
}

/// A header's value as text, cut to [`LOGGED_ID_BYTES_MAX`]; `None` when
/// absent, empty or not visible ASCII.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    if v.is_empty() {
        return None;
    }
    let mut end = v.len().min(LOGGED_ID_BYTES_MAX);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    Some(&v[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read_with_its_tracestate() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(TP));
        h.append("tracestate", HeaderValue::from_static("a=1"));
        h.append("tracestate", HeaderValue::from_static("b=2"));
        let c = context_of(&h).unwrap();
        assert_eq!(c.parent.to_string(), TP);
        assert_eq!(c.state(), Some("a=1,b=2"));
    }

    #[test]
    fn bad_or_repeated_traceparents_are_ignored() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static("00-zz-01"));
        assert_eq!(context_of(&h), None);
        h.insert("traceparent", HeaderValue::from_static(TP));
        h.append("traceparent", HeaderValue::from_static(TP));
        assert_eq!(context_of(&h), None);
        assert_eq!(context_of(&HeaderMap::new()), None);
    }
}
