//! Dead-letter operations from the SDK: list the dead-letter topics with
//! their depth, replay dead letters to their origin, purge them. Embedded,
//! they are `weir-deadletter`'s operations on the store's broker; remote,
//! the same operations through `weir serve`'s HTTP API. Either way the
//! results are `weir-deadletter`'s types.

use base64::Engine as _;
pub use weir_deadletter::format::DeadLetter;
use weir_deadletter::format::{self, DEFAULT_SUFFIX, ErrorKind};
pub use weir_deadletter::{DeadLetterTopic, PartitionPurged, Purge, ReplayOutcome, Selection};

/// Dead letters of one partition, read from an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPage {
    /// Dead letters by offset, in order.
    pub dead_letters: Vec<(i64, DeadLetter)>,
    /// Records of the range that are not dead letters, with why.
    pub not_dead_letters: Vec<(i64, String)>,
    /// Where the next read goes on.
    pub next_offset: i64,
}

use crate::remote::remote_error;
use crate::{Client, Embedded, Error, Remote};

fn dead_letter_error(e: weir_deadletter::DeadLetterError) -> Error {
    Error::DeadLetters {
        reason: e.to_string(),
    }
}

pub(crate) fn embedded_topics(e: &Embedded) -> Result<Vec<DeadLetterTopic>, Error> {
    weir_deadletter::list(e.store().broker(), DEFAULT_SUFFIX).map_err(dead_letter_error)
}

pub(crate) fn embedded_read(
    e: &Embedded,
    topic: &str,
    partition: i32,
    offset: i64,
    limit: usize,
) -> Result<DeadLetterPage, Error> {
    let page = weir_deadletter::read(e.store().broker(), topic, partition, offset, limit)
        .map_err(dead_letter_error)?;
    Ok(DeadLetterPage {
        dead_letters: page.dead_letters,
        not_dead_letters: page
            .not_dead_letters
            .into_iter()
            .map(|(o, e)| (o, e.to_string()))
            .collect(),
        next_offset: page.next_offset,
    })
}

pub(crate) fn embedded_replay(
    e: &Embedded,
    topic: &str,
    selection: Selection,
) -> Result<ReplayOutcome, Error> {
    weir_deadletter::replay(e.store().broker(), topic, selection).map_err(dead_letter_error)
}

pub(crate) fn embedded_purge(
    e: &Embedded,
    topic: &str,
    what: Purge,
) -> Result<Vec<PartitionPurged>, Error> {
    weir_deadletter::purge(e.store().broker(), DEFAULT_SUFFIX, topic, what)
        .map_err(dead_letter_error)
}

fn to_request(s: &Selection) -> weir_api::ReplayRequest {
    let (all, partition, offset, to_offset) = match *s {
        Selection::One { partition, offset } => (false, Some(partition), Some(offset), None),
        Selection::Range {
            partition,
            first_offset,
            last_offset,
        } => (
            false,
            Some(partition),
            Some(first_offset),
            Some(last_offset),
        ),
        Selection::All => (true, None, None, None),
        Selection::AllFrom { partition, offset } => (true, Some(partition), Some(offset), None),
    };
    weir_api::ReplayRequest {
        all,
        partition,
        offset,
        to_offset,
    }
}

fn from_request(r: &weir_api::ReplayRequest) -> Option<Selection> {
    Some(match (r.all, r.partition, r.offset, r.to_offset) {
        (true, None, _, _) => Selection::All,
        (true, Some(partition), offset, _) => Selection::AllFrom {
            partition,
            offset: offset.unwrap_or(0),
        },
        (false, Some(partition), Some(offset), None) => Selection::One { partition, offset },
        (false, Some(partition), Some(first_offset), Some(last_offset)) => Selection::Range {
            partition,
            first_offset,
            last_offset,
        },
        _ => return None,
    })
}

pub(crate) fn remote_topics(r: &Remote) -> Result<Vec<DeadLetterTopic>, Error> {
    let list = r.http.dead_letter_topics().map_err(remote_error)?;
    Ok(list
        .topics
        .into_iter()
        .map(|t| DeadLetterTopic {
            topic: t.topic,
            origin_topic: t.origin_topic,
            origin_exists: t.origin_exists,
            partitions: t.partitions as usize,
            depth: t.depth,
            oldest_timestamp_ms: t.oldest_timestamp_ms,
        })
        .collect())
}

/// A dead letter as the HTTP API shows it, back in `weir-deadletter`'s
/// type: the value from its base64, the headers as the API lists them (by
/// name, values as text).
fn from_api(r: weir_api::DeadLetterRecord) -> Result<DeadLetter, String> {
    let value = r
        .value_base64
        .map(|v| base64::engine::general_purpose::STANDARD.decode(v))
        .transpose()
        .map_err(|e| format!("value_base64: {e}"))?;
    let replay = match r.replayed_from.as_deref() {
        None => None,
        Some(from) => {
            let mut parts = from.rsplitn(3, '/');
            let (Some(o), Some(p), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("replayed_from {from:?}"));
            };
            Some(format::Replay {
                from_topic: t.to_owned(),
                from_partition: p.parse().map_err(|_| format!("replayed_from {from:?}"))?,
                from_offset: o.parse().map_err(|_| format!("replayed_from {from:?}"))?,
                replays: r.replays,
            })
        }
    };
    Ok(DeadLetter {
        key: r.key.map(String::into_bytes),
        value,
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| (k, Some(v.into_bytes())))
            .collect(),
        failure: format::Failure {
            kind: ErrorKind::parse(&r.error_kind)
                .ok_or_else(|| format!("error_kind {:?}", r.error_kind))?,
            error: r.error,
            attempts: r.attempts,
            first_failure_ms: r.first_failure_ms,
            last_failure_ms: r.last_failure_ms,
            group: r.group,
        },
        origin: format::Origin {
            topic: r.origin.topic,
            partition: r.origin.partition,
            offset: r.origin.offset,
            timestamp_ms: r.origin.timestamp_ms,
        },
        replay,
    })
}

pub(crate) fn remote_read(
    remote: &Remote,
    topic: &str,
    partition: i32,
    offset: i64,
    limit: usize,
) -> Result<DeadLetterPage, Error> {
    let page = remote
        .http
        .dead_letters(topic, partition, offset, limit)
        .map_err(remote_error)?;
    let mut dead_letters = Vec::with_capacity(page.records.len());
    for r in page.records {
        let offset = r.offset;
        let d = from_api(r).map_err(|reason| Error::Remote {
            server: remote.http.base().to_owned(),
            reason: format!("a dead letter the SDK does not understand: {reason}"),
        })?;
        dead_letters.push((offset, d));
    }
    Ok(DeadLetterPage {
        dead_letters,
        not_dead_letters: page
            .not_dead_letters
            .into_iter()
            .map(|n| (n.offset, n.reason))
            .collect(),
        next_offset: page.next_offset,
    })
}

pub(crate) fn remote_replay(
    remote: &Remote,
    topic: &str,
    selection: Selection,
) -> Result<ReplayOutcome, Error> {
    let r = remote
        .http
        .replay_dead_letters(topic, &to_request(&selection))
        .map_err(remote_error)?;
    Ok(ReplayOutcome {
        replayed: r.replayed,
        skipped_not_dead_letters: r.skipped_not_dead_letters,
        next: r.next.as_ref().and_then(from_request),
    })
}

pub(crate) fn remote_purge(
    remote: &Remote,
    topic: &str,
    what: Purge,
) -> Result<Vec<PartitionPurged>, Error> {
    let (all, partition, to_offset) = match what {
        Purge::All => (true, None, None),
        Purge::Below {
            partition,
            to_offset,
        } => (false, Some(partition), Some(to_offset)),
    };
    let r = remote
        .http
        .purge_dead_letters(
            topic,
            &weir_api::PurgeRequest {
                all,
                partition,
                to_offset,
            },
        )
        .map_err(remote_error)?;
    Ok(r.partitions
        .into_iter()
        .map(|p| PartitionPurged {
            partition: p.partition,
            purged: p.purged,
            log_start_offset: p.log_start_offset,
        })
        .collect())
}

impl Client {
    /// Every dead-letter topic (`<topic>.dlq`) with its origin, depth and
    /// oldest record.
    pub fn dead_letter_topics(&self) -> Result<Vec<DeadLetterTopic>, Error> {
        self.backend().dead_letter_topics()
    }

    /// Up to `limit` records of a dead-letter topic's partition from
    /// `offset`, decoded (the original key, value and headers, the
    /// failure, the origin, the replay markers). Remote, the headers are
    /// as the HTTP API lists them: by name, values as text.
    pub fn read_dead_letters(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: usize,
    ) -> Result<DeadLetterPage, Error> {
        self.backend()
            .read_dead_letters(topic, partition, offset, limit)
    }

    /// Replays dead letters of `topic` to their origin topic and partition
    /// (bounded per call: the outcome's `next` goes on).
    pub fn replay_dead_letters(
        &self,
        topic: &str,
        selection: Selection,
    ) -> Result<ReplayOutcome, Error> {
        self.backend().replay_dead_letters(topic, selection)
    }

    /// Purges dead letters of `topic` for good (every partition, or one
    /// below an offset) by moving the partitions' log start offsets.
    pub fn purge_dead_letters(
        &self,
        topic: &str,
        what: Purge,
    ) -> Result<Vec<PartitionPurged>, Error> {
        self.backend().purge_dead_letters(topic, what)
    }
}

/// What a backend without dead-letter topics answers.
pub(crate) fn unsupported<T>() -> Result<T, Error> {
    Err(Error::DeadLetters {
        reason: "this client's backend has no dead-letter topics".to_owned(),
    })
}
