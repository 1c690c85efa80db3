//! A share partition's durable state in one value: its start offset and
//! its window as runs of records with the same delivery count, settled or
//! not (locks are not part of it). The owner writes one now and then so a
//! restart replays only the changes after it.

use std::collections::VecDeque;

use crate::error::QueueError;
use crate::partition::{QueueConfig, SharePartition, Slot};

/// A run of consecutive records in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRun {
    pub first: i64,
    pub last: i64,
    /// Deliveries so far (0: never delivered, e.g. a record a replayed
    /// settlement skipped over).
    pub deliveries: u16,
    pub settled: bool,
}

/// A share partition's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub start: i64,
    pub runs: Vec<SnapshotRun>,
}

impl SharePartition {
    /// The partition's durable state now.
    pub fn snapshot(&self) -> Snapshot {
        let mut runs: Vec<SnapshotRun> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let offset = self.start + i as i64;
            let (deliveries, settled) = match slot {
                Slot::Available { deliveries } | Slot::Acquired { deliveries, .. } => {
                    (*deliveries, false)
                }
                Slot::Settled => (0, true),
            };
            match runs.last_mut() {
                Some(r) if r.deliveries == deliveries && r.settled == settled => r.last = offset,
                _ => runs.push(SnapshotRun {
                    first: offset,
                    last: offset,
                    deliveries,
                    settled,
                }),
            }
        }
        Snapshot {
            start: self.start,
            runs,
        }
    }

    /// A partition in the state `snapshot` recorded, nothing acquired.
    pub fn from_snapshot(config: QueueConfig, snapshot: &Snapshot) -> Result<Self, QueueError> {
        let mut p = SharePartition::new(config, snapshot.start)?;
        let mut slots = VecDeque::new();
        let mut next = snapshot.start;
        for run in &snapshot.runs {
            let too_long = run.last.saturating_sub(snapshot.start) >= crate::IN_FLIGHT_MAX as i64;
            if run.first != next || run.last < run.first || too_long {
                return Err(QueueError::InvalidRange {
                    first: run.first,
                    last: run.last,
                });
            }
            for _ in run.first..=run.last {
                slots.push_back(if run.settled {
                    Slot::Settled
                } else {
                    Slot::Available {
                        deliveries: run.deliveries,
                    }
                });
            }
            next = run.last + 1;
        }
        p.slots = slots;
        p.advance_start();
        Ok(p)
    }
}
