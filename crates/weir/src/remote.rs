//! The remote backend: the SDK's [`Backend`] over the HTTP API of a
//! running `weir serve` (`/v1/...`, the `weir-api` bodies, through
//! `weir-client`), so code written on a [`crate::Client`] runs unchanged
//! against a server.
//!
//! What the API lacks is built from what it has: a read "as of" a past
//! time or position reads the stream forward and stops there (as the
//! embedded store does), and the change signal is the head position,
//! polled (see [`Remote::wait_changed`]). Server errors come back as the
//! same [`Error`] values the embedded store gives: a `409
//! wrong_expected_version` is [`StoreError::WrongExpectedVersion`] with
//! both versions, so a repository retries a conflict whichever backend it
//! runs on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use weir_api::{Append, Event, EventIn, Events, SnapshotIn};
use weir_client::{ClientError, Page, encode_segment};
use weir_store::{
    AppendResult, AsOf, EVENTS_TOPIC, ExpectedVersion, Loaded, NewEvent, READ_COUNT_MAX,
    RecordedEvent, Snapshot, StoreError,
};

use crate::Error;
use crate::client::Backend;
use crate::envelope::is_json;

/// How often [`Remote::wait_changed`] asks the server for its head
/// position while it waits.
pub const REMOTE_POLL_MS: u64 = 25;
/// Events asked for per page when the SDK reads a stream through to a
/// point (as-of reads); the server may answer with fewer (its page
/// limit), and the backend pages on.
const PAGE_EVENTS: usize = 1_000;

/// A backend that talks to `weir serve` over HTTP. Every call is one or a
/// few blocking requests.
#[derive(Debug)]
pub struct Remote {
    pub(crate) http: weir_client::Client,
    /// The last head position the server answered, the epoch to fall back
    /// on when it cannot be asked (so waiting goes on until it answers).
    last_head: AtomicU64,
}

/// What an error happened to, so a problem maps to the store error that
/// names the same thing.
#[derive(Clone, Copy)]
struct Subject<'a> {
    stream: &'a str,
    append: Option<(ExpectedVersion, &'a [NewEvent])>,
}

impl Remote {
    /// A backend on the server at `address` (`host:port` or
    /// `http://host:port`); checks that the server answers.
    pub fn connect(address: &str) -> Result<Self, Error> {
        Self::connect_with(address, None, None, None)
    }

    /// A backend on the server at `address` sending `token` as its bearer
    /// token, over HTTPS trusting `ca_pem` if given and presenting
    /// `identity` (PEM chain, PEM key) if asked; checks that the server
    /// answers (and accepts the token).
    pub fn connect_with(
        address: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, Error> {
        let timeout = Some(Duration::from_secs(30));
        let http = match ca_pem {
            Some(ca) => weir_client::Client::with_tls(address, ca, identity, timeout),
            None => weir_client::Client::with_timeout(address, timeout),
        }
        .map_err(|e| transport(&e))?;
        let http = match token {
            Some(token) => http.with_token(token),
            None => http,
        };
        let remote = Self {
            http,
            last_head: AtomicU64::new(0),
        };
        remote.head_position()?;
        Ok(remote)
    }

    /// The HTTP client, for what the SDK does not wrap.
    pub fn http(&self) -> &weir_client::Client {
        &self.http
    }

    /// Pages a read forward from `from` until `max_count` events or the
    /// end: the server answers at most its page limit per request and
    /// says with `next` whether there may be more.
    fn paged(
        &self,
        subject: Option<&str>,
        from: u64,
        max_count: usize,
        key: fn(&Event) -> u64,
        mut fetch: impl FnMut(&Page) -> Result<Events, ClientError>,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let max = max_count.min(READ_COUNT_MAX);
        let mut out = Vec::new();
        let mut at = from;
        while out.len() < max {
            let page = Page {
                from: Some(at),
                direction: weir_client::Direction::Forward,
                limit: max - out.len(),
            };
            let events = match fetch(&page) {
                Ok(events) => events,
                // A stream that does not exist (or no longer) has no events.
                Err(e) if e.code() == Some("stream_not_found") => break,
                Err(e) => return Err(problem(e, subject.map(Subject::read))),
            };
            let Some(last) = events.events.last() else {
                break;
            };
            at = key(last) + 1;
            let full = events.next.is_some();
            for e in events.events {
                out.push(recorded(e));
            }
            if !full {
                break;
            }
        }
        out.truncate(max);
        Ok(out)
    }
}

impl<'a> Subject<'a> {
    fn read(stream: &'a str) -> Self {
        Self {
            stream,
            append: None,
        }
    }
}

impl Backend for Remote {
    fn put_subscription(
        &self,
        target: &str,
        group: &str,
        settings: &crate::persistent::SubscriptionSettings,
    ) -> Result<(), Error> {
        crate::persistent::remote_put(self, target, group, settings)
    }

    fn delete_subscription(&self, target: &str, group: &str) -> Result<(), Error> {
        self.http()
            .delete_subscription(target, group)
            .map_err(remote_error)
    }

    fn subscription_info(
        &self,
        target: &str,
        group: &str,
    ) -> Result<crate::persistent::SubscriptionInfo, Error> {
        crate::persistent::remote_info(self, target, group)
    }

    fn read_subscription(
        &self,
        target: &str,
        group: &str,
        consumer: &str,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<crate::persistent::Delivered>, Error> {
        crate::persistent::remote_read(self, target, group, consumer, max, wait)
    }

    fn settle_subscription(
        &self,
        target: &str,
        group: &str,
        consumer: &str,
        ack_ids: &[String],
        action: Option<crate::persistent::NackAction>,
        reason: &str,
    ) -> Result<(), Error> {
        crate::persistent::remote_settle(self, target, group, consumer, ack_ids, action, reason)
    }

    fn replay_parked(&self, target: &str, group: &str) -> Result<u64, Error> {
        Ok(self
            .http()
            .replay_parked(target, group)
            .map_err(remote_error)?
            .count)
    }

    fn dead_letter_topics(&self) -> Result<Vec<crate::dead_letters::DeadLetterTopic>, Error> {
        crate::dead_letters::remote_topics(self)
    }

    fn read_dead_letters(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: usize,
    ) -> Result<crate::dead_letters::DeadLetterPage, Error> {
        crate::dead_letters::remote_read(self, topic, partition, offset, limit)
    }

    fn replay_dead_letters(
        &self,
        topic: &str,
        selection: crate::dead_letters::Selection,
    ) -> Result<crate::dead_letters::ReplayOutcome, Error> {
        crate::dead_letters::remote_replay(self, topic, selection)
    }

    fn purge_dead_letters(
        &self,
        topic: &str,
        what: crate::dead_letters::Purge,
    ) -> Result<Vec<crate::dead_letters::PartitionPurged>, Error> {
        crate::dead_letters::remote_purge(self, topic, what)
    }

    fn queue_engine(&self) -> Result<crate::queue::QueueEngine, Error> {
        Ok(crate::queue::QueueEngine::remote(self.http.clone()))
    }

    fn schemas(&self) -> Result<crate::Schemas, Error> {
        Ok(crate::Schemas::remote(self.http.clone()))
    }

    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, Error> {
        let body = Append {
            expected_version: match expected {
                ExpectedVersion::Any => Value::from("any"),
                ExpectedVersion::NoStream => Value::from("no_stream"),
                ExpectedVersion::Exists => Value::from("exists"),
                ExpectedVersion::Exact(v) => Value::from(v),
            },
            events: events.iter().map(event_in).collect::<Result<_, _>>()?,
        };
        let done = self.http.append(stream, &body).map_err(|e| {
            problem(
                e,
                Some(Subject {
                    stream,
                    append: Some((expected, events)),
                }),
            )
        })?;
        Ok(AppendResult {
            first_version: done.first_version,
            last_version: done.last_version,
            first_position: done.first_position,
            last_position: done.last_position,
        })
    }

    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        self.paged(
            Some(stream),
            from_version,
            max_count,
            |e| e.version,
            |page| self.http.read_stream(stream, page),
        )
    }

    fn read_all(&self, from_position: u64, max_count: usize) -> Result<Vec<RecordedEvent>, Error> {
        self.paged(
            None,
            from_position,
            max_count,
            |e| e.position,
            |page| self.http.read_all(page),
        )
    }

    fn read_category(
        &self,
        category: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        self.paged(
            None,
            from_position,
            max_count,
            |e| e.position,
            |page| self.http.read_category(category, page),
        )
    }

    fn read_type(
        &self,
        event_type: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        self.paged(
            None,
            from_position,
            max_count,
            |e| e.position,
            |page| self.http.read_type(event_type, page),
        )
    }

    fn read_correlation(
        &self,
        correlation_id: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        // Checked here too, so a bad id fails as it does embedded.
        weir_store::validate_correlation_id(correlation_id)?;
        self.paged(
            None,
            from_position,
            max_count,
            |e| e.position,
            |page| {
                let from = page.from.unwrap_or(0);
                self.http.read_correlation(correlation_id, from, page.limit)
            },
        )
    }

    /// No endpoint reads as of a past point: read the stream forward and
    /// stop at the first event past it (what the embedded store does).
    fn read_stream_as_of(
        &self,
        stream: &str,
        as_of: AsOf,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        as_of.collect(max_count, PAGE_EVENTS, |from| {
            self.read_stream(stream, from, PAGE_EVENTS)
        })
    }

    /// The newest snapshot and the events after it; when the server's
    /// page limit cut the events short of `max_events`, the rest are read
    /// from the stream.
    fn load(&self, stream: &str, max_events: usize) -> Result<Loaded, Error> {
        let max = max_events.clamp(1, READ_COUNT_MAX);
        let loaded: weir_api::Loaded = self
            .http
            .get(
                &format!("/v1/streams/{}/snapshot", encode_segment(stream)),
                &[("limit", max.to_string())],
            )
            .map_err(|e| problem(e, Some(Subject::read(stream))))?;
        let mut events: Vec<RecordedEvent> = loaded.events.into_iter().map(recorded).collect();
        if let Some(last) = events.last().map(|e| e.version)
            && events.len() < max
        {
            let more = self.read_stream(stream, last + 1, max - events.len())?;
            events.extend(more);
        }
        let snapshot = loaded.snapshot.map(|s| Snapshot {
            data: s.data.to_string().into_bytes(),
            stream: s.stream,
            version: s.version,
            snapshot_type: s.snapshot_type,
            recorded_ms: s.recorded_ms,
        });
        Ok(Loaded { snapshot, events })
    }

    fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        snapshot_type: &str,
        data: Vec<u8>,
    ) -> Result<(), Error> {
        let data = serde_json::from_slice(&data).map_err(|e| Error::NotJson {
            what: format!("the snapshot of {stream} at version {version}"),
            reason: e.to_string(),
        })?;
        let body = SnapshotIn {
            version,
            snapshot_type: snapshot_type.to_owned(),
            data,
        };
        self.http
            .save_snapshot(stream, &body)
            .map_err(|e| problem(e, Some(Subject::read(stream))))
    }

    /// The events log's durable offset: every event below it is
    /// readable.
    fn head_position(&self) -> Result<u64, Error> {
        let topic = self
            .http
            .topic(EVENTS_TOPIC)
            .map_err(|e| problem(e, None))?;
        let head = topic
            .partitions
            .first()
            .map_or(0, |p| p.durable_offset.max(0) as u64);
        self.last_head.store(head, Ordering::Relaxed);
        Ok(head)
    }

    /// The head position: it moves exactly when new events become
    /// readable. If the server cannot be asked, the last one it answered.
    fn change_epoch(&self) -> u64 {
        self.head_position()
            .unwrap_or_else(|_| self.last_head.load(Ordering::Relaxed))
    }

    /// Polls the head position every [`REMOTE_POLL_MS`] until it differs
    /// from `epoch` or `timeout` passed. (A live subscription would push
    /// instead, at the price of a connection held per waiting thread; a
    /// poll is one small request and keeps reconnecting out of the
    /// picture.) A failed poll counts as "not yet".
    fn wait_changed(&self, epoch: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.head_position().is_ok_and(|head| head != epoch) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(REMOTE_POLL_MS)));
        }
    }
}

/// An event to append, as the API takes it: data and metadata must be
/// JSON (the server keeps them as JSON text, recorded as
/// `application/json`).
fn event_in(e: &NewEvent) -> Result<EventIn, Error> {
    let not_json = |what: &str, reason: String| Error::NotJson {
        what: format!("the {what} of event {:?} ({})", e.id, e.event_type),
        reason,
    };
    if !is_json(&e.content_type) {
        return Err(not_json(
            "data",
            format!(
                "its content type is {:?}; the HTTP API records every event as application/json",
                e.content_type
            ),
        ));
    }
    let data = serde_json::from_slice(&e.data).map_err(|x| not_json("data", x.to_string()))?;
    let metadata = if e.metadata.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(&e.metadata).map_err(|x| not_json("metadata", x.to_string()))?)
    };
    Ok(EventIn {
        id: Some(e.id.clone()),
        event_type: e.event_type.clone(),
        data,
        metadata,
        traceparent: e.trace.as_ref().map(|t| t.parent.to_string()),
        tracestate: e.trace.as_ref().and_then(|t| t.state()).map(str::to_owned),
    })
}

/// An event as the API gives it, back as the store's bytes: JSON data is
/// its JSON text; data stored as other bytes comes as a base64 string.
pub(crate) fn recorded(e: Event) -> RecordedEvent {
    let data = match &e.data {
        Value::String(s) if !is_json(&e.content_type) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .unwrap_or_else(|_| e.data.to_string().into_bytes()),
        v => v.to_string().into_bytes(),
    };
    // SDK metadata is a JSON object; a string is other bytes in base64.
    let metadata = match e.metadata {
        None => Vec::new(),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(&s)
            .unwrap_or_else(|_| Value::String(s).to_string().into_bytes()),
        Some(v) => v.to_string().into_bytes(),
    };
    RecordedEvent {
        stream: e.stream,
        version: e.version,
        position: e.position,
        id: e.id,
        event_type: e.event_type,
        data,
        content_type: e.content_type,
        metadata,
        recorded_ms: e.recorded_ms,
        trace: e
            .traceparent
            .as_deref()
            .and_then(|tp| weir_store::TraceContext::parse(tp, e.tracestate.as_deref())),
    }
}

/// A failure of the HTTP API about nothing the store names.
pub(crate) fn remote_error(e: ClientError) -> Error {
    problem(e, None)
}

fn transport(e: &ClientError) -> Error {
    let (server, reason) = match e {
        ClientError::Transport { url, reason } => (url.clone(), reason.clone()),
        ClientError::Protocol { url, reason } => (
            url.clone(),
            format!("an answer the SDK does not understand: {reason}"),
        ),
        ClientError::Address { address, reason } => (address.clone(), (*reason).to_owned()),
        ClientError::Problem(p) => (String::new(), p.detail.clone()),
    };
    Error::Remote { server, reason }
}

/// The error the embedded store would give for what the server answered:
/// the store's own variant where the problem names one, else the problem
/// as it came (status, stable code, detail).
fn problem(e: ClientError, subject: Option<Subject<'_>>) -> Error {
    let ClientError::Problem(p) = e else {
        return transport(&e);
    };
    let stream = subject.map(|s| s.stream.to_owned());
    let store = match (p.code.as_str(), subject, stream) {
        ("wrong_expected_version", Some(s), Some(stream)) => {
            let sent = s
                .append
                .map_or(ExpectedVersion::Any, |(expected, _)| expected);
            Some(StoreError::WrongExpectedVersion {
                stream,
                expected: p
                    .expected_version
                    .as_deref()
                    .and_then(parse_expected)
                    .unwrap_or(sent),
                actual: p.actual_version.as_ref().and_then(Value::as_u64),
            })
        }
        ("idempotency_conflict", Some(s), Some(stream)) => Some(StoreError::IdempotencyConflict {
            stream,
            ids: s
                .append
                .map(|(_, events)| events.iter().map(|e| e.id.clone()).collect())
                .unwrap_or_default(),
            reason: p.detail.clone(),
        }),
        ("stream_not_found", _, Some(stream)) => Some(StoreError::StreamNotFound { stream }),
        ("stream_deleted", _, Some(stream)) => Some(StoreError::StreamDeleted { stream }),
        ("schema_validation", _, Some(stream)) => Some(StoreError::SchemaRefused {
            stream,
            index: p.event_index.unwrap_or_default(),
            id: p.event_id.clone().unwrap_or_default(),
            reason: p.detail.clone(),
        }),
        ("append_too_large", _, _) => Some(StoreError::AppendTooLarge {
            reason: p.detail.clone(),
        }),
        _ => None,
    };
    match store {
        Some(s) => Error::Store(s),
        None => Error::Server {
            status: p.status,
            code: p.code,
            detail: p.detail,
        },
    }
}

fn parse_expected(s: &str) -> Option<ExpectedVersion> {
    Some(match s {
        "any" => ExpectedVersion::Any,
        "no_stream" => ExpectedVersion::NoStream,
        "exists" => ExpectedVersion::Exists,
        v => ExpectedVersion::Exact(v.parse().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(expected: Option<&str>, actual: Option<Value>) -> ClientError {
        ClientError::Problem(Box::new(weir_api::Problem {
            kind: "urn:weir:problem:wrong_expected_version".to_owned(),
            title: "Conflict".to_owned(),
            status: 409,
            detail: "stream account-a: expected version 3, but the stream is at 5".to_owned(),
            code: "wrong_expected_version".to_owned(),
            kafka_error_code: None,
            expected_version: expected.map(str::to_owned),
            actual_version: actual,
            event_index: None,
            event_id: None,
        }))
    }

    #[test]
    fn a_version_conflict_keeps_both_versions() {
        let subject = Subject {
            stream: "account-a",
            append: Some((ExpectedVersion::Exact(3), &[])),
        };
        match problem(conflict(Some("3"), Some(5.into())), Some(subject)) {
            Error::Store(StoreError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            }) => assert_eq!(
                (stream.as_str(), expected, actual),
                ("account-a", ExpectedVersion::Exact(3), Some(5))
            ),
            other => panic!("{other:?}"),
        }
        match problem(
            conflict(Some("no_stream"), Some(Value::Null)),
            Some(subject),
        ) {
            Error::Store(StoreError::WrongExpectedVersion {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (ExpectedVersion::NoStream, None)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_problems_keep_their_status_and_code() {
        let e = ClientError::Problem(Box::new(weir_api::Problem {
            kind: "urn:weir:problem:invalid_stream".to_owned(),
            title: "Bad Request".to_owned(),
            status: 400,
            detail: "invalid stream id \"$x\"".to_owned(),
            code: "invalid_stream".to_owned(),
            kafka_error_code: None,
            expected_version: None,
            actual_version: None,
            event_index: None,
            event_id: None,
        }));
        match problem(e, Some(Subject::read("$x"))) {
            Error::Server { status, code, .. } => {
                assert_eq!((status, code.as_str()), (400, "invalid_stream"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_json_data_is_an_error_naming_the_event() {
        let e = NewEvent {
            id: "e-1".to_owned(),
            event_type: "Raw".to_owned(),
            data: vec![0xff, 0x00],
            content_type: "application/json".to_owned(),
            metadata: Vec::new(),
            trace: None,
        };
        let err = event_in(&e).unwrap_err().to_string();
        assert!(err.contains("\"e-1\"") && err.contains("not JSON"), "{err}");
        let octets = NewEvent {
            content_type: "application/octet-stream".to_owned(),
            data: b"{}".to_vec(),
            ..e
        };
        let err = event_in(&octets).unwrap_err().to_string();
        assert!(err.contains("application/octet-stream"), "{err}");
    }

    #[test]
    fn recorded_data_round_trips_json_and_base64() {
        let event = |data: Value, content_type: &str| Event {
            stream: "s-1".to_owned(),
            version: 0,
            position: 0,
            id: "e".to_owned(),
            event_type: "T".to_owned(),
            data,
            metadata: Some(serde_json::json!({"source": "/x"})),
            content_type: content_type.to_owned(),
            recorded: String::new(),
            recorded_ms: 0,
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            tracestate: None,
        };
        let json = recorded(event(serde_json::json!({"n": 1}), "application/json"));
        assert_eq!(json.data, br#"{"n":1}"#);
        assert_eq!(json.metadata, br#"{"source":"/x"}"#);
        let raw = recorded(event(Value::from("AP8="), "application/octet-stream"));
        assert_eq!(raw.data, [0x00, 0xff]);
    }
}
