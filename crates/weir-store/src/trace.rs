//! W3C Trace Context (`traceparent` and `tracestate`) as events carry it:
//! parsed and validated by the spec's rules, so every edge (HTTP headers,
//! Kafka record headers, the SDK's envelopes) accepts the same values and
//! ignores the same bad ones. An event keeps its trace context as the
//! CloudEvents distributed-tracing extension (`ce_traceparent`,
//! `ce_tracestate` in the Kafka binding the store writes).

use std::fmt;

/// The longest `tracestate` kept: the spec lets a vendor drop a state over
/// 512 characters, which Weir does (the traceparent is kept).
pub const TRACESTATE_BYTES_MAX: usize = 512;

/// A `traceparent` value: version 00, a trace id, the id of the span that
/// sent it (the parent of whatever the receiver does), and the flags.
/// Both ids are non-zero (the spec's invalid values are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// Bit 0 is `sampled`.
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header by the W3C Trace Context rules:
    /// `version-traceid-parentid-flags` in lowercase hex. Version `ff`,
    /// all-zero ids, uppercase hex and a wrong length are refused
    /// (`None`); a version above 00 is read by its first four fields, as
    /// the spec asks of a 00 parser, when what follows them starts with a
    /// dash.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim_matches([' ', '\t']).as_bytes();
        if v.len() < 55 {
            return None;
        }
        let version = hex_byte(&v[0..2])?;
        if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
            return None;
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, b) in span_id.iter_mut().enumerate() {
            *b = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&v[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The same trace with `span_id` as the sending span: what a handler
    /// stamps on what it emits while handling an event of this trace.
    /// An all-zero `span_id` (invalid) is replaced by 1.
    pub fn child(&self, span_id: [u8; 8]) -> Self {
        Self {
            span_id: if span_id == [0; 8] {
                1u64.to_be_bytes()
            } else {
                span_id
            },
            ..*self
        }
    }

    /// The trace id in lowercase hex (32 digits), as logs show it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id in lowercase hex (16 digits).
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

impl fmt::Display for TraceParent {
    /// Always written as version 00.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

/// A trace context: the `traceparent` and, if any, the `tracestate` that
/// travels with it (vendor data, kept as given).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub parent: TraceParent,
    /// Empty when there is none.
    pub state: String,
}

impl TraceContext {
    /// A context from a `traceparent` and an optional `tracestate`; `None`
    /// if the traceparent is not valid. A tracestate that is not valid
    /// (over [`TRACESTATE_BYTES_MAX`], or not printable ASCII list
    /// members) is dropped and the traceparent kept, as the spec allows.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let parent = TraceParent::parse(traceparent)?;
        let state = tracestate
            .map(|s| s.trim_matches([' ', '\t']))
            .filter(|s| valid_tracestate(s))
            .unwrap_or_default()
            .to_owned();
        Some(Self { parent, state })
    }

    /// The context from header-like bytes (Kafka record headers), `None`
    /// when the traceparent is absent, not UTF-8 or not valid.
    pub fn from_bytes(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> Option<Self> {
        let tp = std::str::from_utf8(traceparent?).ok()?;
        Self::parse(tp, tracestate.and_then(|s| std::str::from_utf8(s).ok()))
    }

    /// The same trace and state, sent by span `span_id`.
    pub fn child(&self, span_id: [u8; 8]) -> Self {
        Self {
            parent: self.parent.child(span_id),
            state: self.state.clone(),
        }
    }

    /// The tracestate, `None` when empty.
    pub fn state(&self) -> Option<&str> {
        (!self.state.is_empty()).then_some(self.state.as_str())
    }
}

/// A tracestate is kept when it is at most [`TRACESTATE_BYTES_MAX`] bytes
/// of at most 32 comma-separated `key=value` members, printable ASCII.
fn valid_tracestate(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= TRACESTATE_BYTES_MAX
        && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && s.split(',').count() <= 32
        && s.split(',').all(|m| {
            let m = m.trim_matches([' ', '\t']);
            m.is_empty()
                || m.split_once('=')
                    .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
        })
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(two[0])? << 4 | digit(two[1])?)
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let tp = TraceParent::parse(GOOD).unwrap();
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_string(), GOOD);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever";
        let tp = TraceParent::parse(later).unwrap();
        assert_eq!(tp.to_string(), GOOD);
    }

    #[test]
    fn a_bad_tracestate_is_dropped_and_the_parent_kept() {
        let ok =
            TraceContext::parse(GOOD, Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")).unwrap();
        assert_eq!(ok.state(), Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
        let long = "a=".to_owned() + &"b".repeat(TRACESTATE_BYTES_MAX);
        for bad in ["novalue", "k=\u{7f}", long.as_str()] {
            let c = TraceContext::parse(GOOD, Some(bad)).unwrap();
            assert_eq!(c.state(), None, "{bad:?}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let c = TraceContext::parse(GOOD, None).unwrap();
        let child = c.child([7; 8]);
        assert_eq!(child.parent.trace_id, c.parent.trace_id);
        assert_eq!(child.parent.span_id, [7; 8]);
        assert_eq!(c.child([0; 8]).parent.span_id, 1u64.to_be_bytes());
    }
}
