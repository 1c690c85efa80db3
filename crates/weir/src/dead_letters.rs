//! Dead-letter operations from the SDK: list the dead-letter topics with
//! their depth, replay dead letters to their origin, purge them. Embedded,
//! they are `weir-deadletter`'s operations on the store's broker; remote,
//! the same operations through `weir serve`'s HTTP API. Either way the
//! results are `weir-deadletter`'s types.

use weir_deadletter::format::DEFAULT_SUFFIX;
pub use weir_deadletter::{DeadLetterTopic, PartitionPurged, Purge, ReplayOutcome, Selection};

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
