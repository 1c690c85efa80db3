//! Events as Kafka records, following the CloudEvents Kafka protocol
//! binding in binary mode: the key is the stream id, the value the event's
//! data, and the attributes are `ce_*` headers (`ce_specversion`, `ce_id`,
//! `ce_source`, `ce_type`, `ce_time`, `content-type`), plus
//! `ce_streamversion` and, when there is any, `ce_metadata` and the
//! distributed-tracing extension (`ce_traceparent`, `ce_tracestate`). A Kafka
//! consumer of `__weir_events` therefore reads CloudEvents, and the store
//! reads its own events back from the same bytes.
//!
//! The header names are public (as [`crate::headers`]) so that producers
//! of CloudEvents on other topics (the SDK's binary mode) write the same
//! layout.

use weir_log::batch::{BatchBuilder, Record};

use crate::{NewEvent, RecordedEvent, StoreError, TraceContext};

pub const H_SPECVERSION: &str = "ce_specversion";
pub const H_ID: &str = "ce_id";
pub const H_SOURCE: &str = "ce_source";
pub const H_TYPE: &str = "ce_type";
pub const H_TIME: &str = "ce_time";
pub const H_CONTENT_TYPE: &str = "content-type";
pub const H_STREAM_VERSION: &str = "ce_streamversion";
pub const H_METADATA: &str = "ce_metadata";
pub const H_TRACEPARENT: &str = "ce_traceparent";
pub const H_TRACESTATE: &str = "ce_tracestate";

/// One append as one record batch: all of its events or none, consecutive
/// in the log.
pub(crate) fn encode(
    stream: &str,
    first_version: u64,
    events: &[NewEvent],
    now_ms: i64,
) -> Vec<u8> {
    let mut batch = BatchBuilder::new(now_ms);
    let time = rfc3339(now_ms);
    let source = format!("/streams/{stream}");
    for (i, e) in events.iter().enumerate() {
        let version = (first_version + i as u64).to_string();
        let traceparent = e.trace.as_ref().map(|t| t.parent.to_string());
        let mut headers: Vec<(&str, &[u8])> = vec![
            (H_SPECVERSION, b"1.0"),
            (H_ID, e.id.as_bytes()),
            (H_SOURCE, source.as_bytes()),
            (H_TYPE, e.event_type.as_bytes()),
            (H_TIME, time.as_bytes()),
            (H_STREAM_VERSION, version.as_bytes()),
        ];
        if !e.content_type.is_empty() {
            headers.push((H_CONTENT_TYPE, e.content_type.as_bytes()));
        }
        if !e.metadata.is_empty() {
            headers.push((H_METADATA, &e.metadata));
        }
        if let (Some(tp), Some(t)) = (&traceparent, &e.trace) {
            headers.push((H_TRACEPARENT, tp.as_bytes()));
            if !t.state.is_empty() {
                headers.push((H_TRACESTATE, t.state.as_bytes()));
            }
        }
        batch.push(now_ms, Some(stream.as_bytes()), Some(&e.data), &headers);
    }
    batch.build()
}

fn header<'a>(record: &Record<'a>, name: &str) -> Option<&'a [u8]> {
    record
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| *v)
}

/// The event a record holds.
pub(crate) fn decode(record: &Record<'_>) -> Result<RecordedEvent, StoreError> {
    let (stream, version, id, event_type) = index_fields(record)?;
    Ok(RecordedEvent {
        stream: stream.to_owned(),
        version,
        position: record.offset as u64,
        id: id.to_owned(),
        event_type: event_type.to_owned(),
        data: record.value.unwrap_or_default().to_vec(),
        content_type: match header(record, H_CONTENT_TYPE) {
            // The common case, without a UTF-8 check.
            Some(b"application/json") => "application/json".to_owned(),
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => String::new(),
        },
        metadata: header(record, H_METADATA).unwrap_or_default().to_vec(),
        recorded_ms: record.timestamp,
        trace: TraceContext::from_bytes(
            header(record, H_TRACEPARENT),
            header(record, H_TRACESTATE),
        ),
    })
}

/// The record's metadata (`ce_metadata`), empty if it has none.
pub(crate) fn metadata<'a>(record: &Record<'a>) -> &'a [u8] {
    header(record, H_METADATA).unwrap_or_default()
}

/// What the index needs of a record, without copying its data: (stream,
/// version, id, type).
pub(crate) fn index_fields<'a>(
    record: &Record<'a>,
) -> Result<(&'a str, u64, &'a str, &'a str), StoreError> {
    let bad = |what: &str| StoreError::Corrupt {
        reason: format!("the record at {} has a bad {what}", record.offset),
    };
    let utf8 = |b: Option<&'a [u8]>, what: &str| {
        b.and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| bad(what))
    };
    let stream = utf8(record.key, "stream id")?;
    let version = utf8(header(record, H_STREAM_VERSION), H_STREAM_VERSION)?
        .parse()
        .map_err(|_| bad(H_STREAM_VERSION))?;
    let id = utf8(header(record, H_ID), H_ID)?;
    let event_type = utf8(header(record, H_TYPE), H_TYPE)?;
    Ok((stream, version, id, event_type))
}

/// Milliseconds since the epoch as an RFC 3339 UTC time with millisecond
/// precision (CloudEvents `time`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }
}
