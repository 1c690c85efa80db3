//! Idempotent producers: ids that are never handed out twice (a persisted
//! high-water mark), and per partition each producer's epoch and its recent
//! batches' sequence ranges, so a retried batch is acknowledged with its
//! original offsets instead of being written twice, and a gap is refused.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use weir_log::DataDir;
use weir_log::batch::BatchHeader;

use crate::error::BrokerError;

const IDS_FILE: &str = ".producer-ids";
/// Ids are reserved this many at a time, one metadata write per block.
const ID_BLOCK: i64 = 1000;
/// Batches remembered per producer and partition: Kafka clients keep at
/// most five requests in flight, so a retry is always among the last five.
pub(crate) const RECENT_BATCHES: usize = 5;

#[derive(Debug, Serialize, Deserialize)]
struct IdsRecord {
    /// Every id below this may have been handed out.
    next_block: i64,
}

/// Hands out producer ids, never the same twice, across restarts.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    /// (next id to give, end of the reserved block)
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub fn open(dir: &DataDir) -> Result<Self, BrokerError> {
        let start = match dir.read_meta(IDS_FILE)? {
            None => 0,
            Some(bytes) => {
                let record: IdsRecord =
                    serde_json::from_slice(&bytes).map_err(|e| BrokerError::Registry {
                        reason: e.to_string(),
                    })?;
                record.next_block
            }
        };
        // Ids of the block the previous process had reserved are skipped:
        // some may have been given out.
        Ok(Self {
            state: Mutex::new((start, start)),
        })
    }

    pub fn allocate(&self, dir: &DataDir) -> Result<i64, BrokerError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (next, block_end) = *state;
        if next == block_end {
            let record = IdsRecord {
                next_block: block_end + ID_BLOCK,
            };
            let bytes = serde_json::to_vec(&record).map_err(|e| BrokerError::Registry {
                reason: e.to_string(),
            })?;
            dir.write_meta(IDS_FILE, &bytes)?;
            *state = (next, block_end + ID_BLOCK);
        }
        state.0 += 1;
        Ok(next)
    }
}

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp (the broker's time under
    /// `LogAppendTime`), as Kafka keeps a producer's last timestamp.
    pub max_timestamp_ms: i64,
}

impl BatchMeta {
    pub fn of(header: &BatchHeader) -> Self {
        Self {
            first_seq: header.base_sequence,
            last_seq: add_seq(header.base_sequence, header.last_offset_delta),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp_ms: header.max_timestamp,
        }
    }
}

/// What a partition knows of one idempotent producer (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence of the last record written.
    pub last_sequence: i32,
    /// Max timestamp of the last batch written.
    pub last_timestamp_ms: i64,
}

/// Sequences wrap from `i32::MAX` to 0, as in Kafka.
fn add_seq(seq: i32, n: i32) -> i32 {
    ((i64::from(seq) + i64::from(n)) % (i64::from(i32::MAX) + 1)) as i32
}

#[derive(Debug, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first, at most [`RECENT_BATCHES`].
    recent: VecDeque<BatchMeta>,
}

/// What to do with an idempotent producer's batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Append,
    /// Already written: acknowledge with these offsets, write nothing.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
    },
    OutOfOrder {
        expected: i32,
    },
    StaleEpoch {
        current: i16,
    },
    UnknownProducer,
}

/// The producers of one partition.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct PartitionProducers {
    producers: HashMap<i64, ProducerEntry>,
}

impl PartitionProducers {
    /// Judges a batch from producer `pid` at `epoch` with sequences
    /// `first_seq..=last_seq`.
    pub fn check(&self, pid: i64, epoch: i16, first_seq: i32, last_seq: i32) -> Verdict {
        let Some(entry) = self.producers.get(&pid) else {
            // KIP-360: without state for the producer only a fresh start is
            // accepted; anything else tells it to reset.
            return if first_seq == 0 {
                Verdict::Append
            } else {
                Verdict::UnknownProducer
            };
        };
        if epoch < entry.epoch {
            return Verdict::StaleEpoch {
                current: entry.epoch,
            };
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                Verdict::Append
            } else {
                Verdict::OutOfOrder { expected: 0 }
            };
        }
        if let Some(dup) = entry
            .recent
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Verdict::Duplicate {
                base_offset: dup.base_offset,
                last_offset: dup.last_offset,
            };
        }
        let expected = entry.recent.back().map_or(0, |b| add_seq(b.last_seq, 1));
        if first_seq == expected {
            Verdict::Append
        } else {
            Verdict::OutOfOrder { expected }
        }
    }

    /// Remembers a batch written for producer `pid` at `epoch`.
    pub fn record(&mut self, pid: i64, epoch: i16, meta: BatchMeta) {
        let entry = self.producers.entry(pid).or_insert(ProducerEntry {
            epoch,
            recent: VecDeque::new(),
        });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.recent.clear();
        }
        if entry.recent.len() == RECENT_BATCHES {
            entry.recent.pop_front();
        }
        entry.recent.push_back(meta);
    }

    /// A transaction marker of producer `pid` at `epoch` was written: a
    /// newer epoch (the coordinator fenced the producer) replaces the one
    /// known, so batches of older epochs are refused from now on.
    pub fn marker(&mut self, pid: i64, epoch: i16) {
        match self.producers.get_mut(&pid) {
            Some(entry) if epoch > entry.epoch => {
                entry.epoch = epoch;
                entry.recent.clear();
            }
            Some(_) => {}
            None => {
                self.producers.insert(
                    pid,
                    ProducerEntry {
                        epoch,
                        recent: VecDeque::new(),
                    },
                );
            }
        }
    }

    /// The epoch known for producer `pid`.
    pub fn epoch(&self, pid: i64) -> Option<i16> {
        self.producers.get(&pid).map(|e| e.epoch)
    }

    /// Every producer with state here, by id.
    pub fn states(&self) -> Vec<ProducerState> {
        let mut out: Vec<ProducerState> = self
            .producers
            .iter()
            .filter_map(|(&producer_id, entry)| {
                entry.recent.back().map(|last| ProducerState {
                    producer_id,
                    producer_epoch: entry.epoch,
                    last_sequence: last.last_seq,
                    last_timestamp_ms: last.max_timestamp_ms,
                })
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, last_seq: i32, base_offset: i64) -> BatchMeta {
        BatchMeta {
            first_seq,
            last_seq,
            base_offset,
            last_offset: base_offset + i64::from(last_seq - first_seq),
            max_timestamp_ms: 1_000 + base_offset,
        }
    }

    #[test]
    fn retries_are_duplicates_gaps_are_refused_epochs_fence() {
        let mut p = PartitionProducers::default();
        assert_eq!(p.check(7, 0, 5, 9), Verdict::UnknownProducer);
        assert_eq!(p.check(7, 0, 0, 4), Verdict::Append);
        p.record(7, 0, meta(0, 4, 100));
        assert_eq!(
            p.check(7, 0, 0, 4),
            Verdict::Duplicate {
                base_offset: 100,
                last_offset: 104
            }
        );
        assert_eq!(p.check(7, 0, 6, 8), Verdict::OutOfOrder { expected: 5 });
        assert_eq!(p.check(7, 0, 5, 8), Verdict::Append);
        p.record(7, 0, meta(5, 8, 105));
        assert_eq!(p.check(7, 1, 9, 9), Verdict::OutOfOrder { expected: 0 });
        assert_eq!(p.check(7, 1, 0, 0), Verdict::Append);
        p.record(7, 1, meta(0, 0, 109));
        assert_eq!(p.check(7, 0, 9, 9), Verdict::StaleEpoch { current: 1 });
        // Only the last five batches are remembered.
        for i in 1..=6 {
            p.record(7, 1, meta(i, i, 109 + i64::from(i)));
        }
        assert_eq!(p.check(7, 1, 1, 1), Verdict::OutOfOrder { expected: 7 });
        assert_eq!(
            p.check(7, 1, 6, 6),
            Verdict::Duplicate {
                base_offset: 115,
                last_offset: 115
            }
        );
    }

    #[test]
    fn states_list_each_producer_at_its_last_batch() {
        let mut p = PartitionProducers::default();
        assert!(p.states().is_empty());
        p.record(9, 2, meta(0, 4, 0));
        p.record(3, 0, meta(0, 0, 5));
        p.record(9, 2, meta(5, 7, 6));
        assert_eq!(
            p.states(),
            vec![
                ProducerState {
                    producer_id: 3,
                    producer_epoch: 0,
                    last_sequence: 0,
                    last_timestamp_ms: 1_005,
                },
                ProducerState {
                    producer_id: 9,
                    producer_epoch: 2,
                    last_sequence: 7,
                    last_timestamp_ms: 1_006,
                },
            ]
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(add_seq(i32::MAX, 1), 0);
        assert_eq!(add_seq(i32::MAX - 1, 3), 1);
        let mut p = PartitionProducers::default();
        p.record(1, 0, meta(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(p.check(1, 0, 0, 3), Verdict::Append);
    }
}
