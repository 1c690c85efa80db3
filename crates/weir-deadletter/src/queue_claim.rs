//! Claiming records of a queue on the broker, shared by the HTTP queue
//! API and the SDK's embedded queue consumer: acquire offsets of one
//! partition through the queue manager, read them as a `read_committed`
//! consumer sees them, and settle the offsets that hold no such record
//! (transaction markers, aborted records) as gaps, never shown.

use weir_broker::BrokerError;
use weir_broker::queue_log::OwnedRecord;
use weir_queue::{AckKind, Acquired, Create, QueueError, QueueKey, Queues};

use crate::queue_io::BrokerQueueIo;

/// The queue manager over the broker.
pub type BrokerQueues = Queues<BrokerQueueIo>;

/// Why a claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// A claimed record and which delivery of it this is (1 the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedRecord {
    pub record: OwnedRecord,
    pub deliveries: u16,
}

/// The records of `acquired` as the log has them, appended to `out`;
/// offsets without a committed record are settled as gaps.
pub fn deliver(
    q: &BrokerQueues,
    key: &QueueKey,
    consumer: &str,
    acquired: &[Acquired],
    out: &mut Vec<ClaimedRecord>,
) -> Result<(), ClaimError> {
    let broker = q.io().broker();
    for a in acquired {
        let records =
            broker.committed_records(&key.topic, key.partition, a.first, a.last + 1, usize::MAX)?;
        let mut next = a.first;
        let gap = |from: i64, to: i64| -> Result<(), ClaimError> {
            if from <= to {
                q.acknowledge(key, consumer, from, to, AckKind::Gap)?;
            }
            Ok(())
        };
        for record in records {
            gap(next, record.offset - 1)?;
            next = record.offset + 1;
            out.push(ClaimedRecord {
                record,
                deliveries: a.deliveries,
            });
        }
        gap(next, a.last)?;
    }
    Ok(())
}

/// How a queue group that has no state on a partition yet starts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewGroup {
    /// At the log start (else at the last stable offset: new records only).
    pub earliest: bool,
    /// Deliveries a record gets at most before it is dead-lettered.
    pub delivery_limit: u16,
}

/// Claims up to `max` records of one partition for `consumer` under a
/// `lock_ms` lock, appended to `out`; claimable offsets end at the
/// partition's last stable offset.
/// Gaps are settled without being shown, so this acquires again while
/// records came back and fewer than `max` were shown.
#[allow(clippy::too_many_arguments)]
pub fn claim_partition(
    q: &BrokerQueues,
    key: &QueueKey,
    new_group: NewGroup,
    consumer: &str,
    max: usize,
    lock_ms: i64,
    now_ms: i64,
    out: &mut Vec<ClaimedRecord>,
) -> Result<(), ClaimError> {
    let broker = q.io().broker();
    let log = broker.partition(&key.topic, key.partition)?;
    let log_start = log.start_offset();
    let lso = broker.last_stable_offset(&key.topic, key.partition)?;
    let create = Create {
        delivery_limit: new_group.delivery_limit,
        start: if new_group.earliest { log_start } else { lso },
    };
    let goal = out.len() + max;
    while out.len() < goal {
        let want = goal - out.len();
        let acquired = q.acquire(
            key, &create, consumer, want, lock_ms, log_start, lso, now_ms,
        )?;
        if acquired.is_empty() {
            break;
        }
        deliver(q, key, consumer, &acquired, out)?;
    }
    Ok(())
}
