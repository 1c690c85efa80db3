//! The queue manager's durable forms: a journal record's key (group,
//! topic, partition) and value (a partition's creation, one [`Change`], or
//! its deletion), and the snapshot of every partition that lets the
//! journal's older records go. Each starts with a version byte; anything
//! that does not decode is an error the replay reports and skips.

use crate::partition::Change;
use crate::snapshot::{Snapshot, SnapshotRun};

/// Version byte of keys, values and snapshots.
const VERSION: u8 = 1;
const SNAPSHOT_MAGIC: &[u8; 4] = b"WQSS";

const TAG_CREATED: u8 = 0;
const TAG_DELIVERED: u8 = 1;
const TAG_SETTLED: u8 = 2;
const TAG_START_MOVED: u8 = 3;
const TAG_DELETED: u8 = 4;

/// Longest group or topic name a key holds.
pub const NAME_BYTES_MAX: usize = 255;

/// One queue partition: a group's share of one partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// What a journal record says about its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The partition's state begins: records from `start` on, each
    /// delivered at most `delivery_limit` times.
    Created {
        start: i64,
        delivery_limit: u16,
    },
    Change(Change),
    /// The partition's state ends (its group was deleted); a later
    /// `Created` begins it afresh.
    Deleted,
}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable queue {what}: {reason}")]
pub struct DecodeError {
    pub what: &'static str,
    pub reason: &'static str,
}

fn bad(what: &'static str, reason: &'static str) -> DecodeError {
    DecodeError { what, reason }
}

impl QueueKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.group.len() + self.topic.len());
        out.push(VERSION);
        put_str(&mut out, &self.group);
        put_str(&mut out, &self.topic);
        out.extend_from_slice(&self.partition.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "key");
        r.version()?;
        let key = QueueKey {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        };
        r.end()?;
        Ok(key)
    }
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        match *self {
            Entry::Created {
                start,
                delivery_limit,
            } => {
                out.push(TAG_CREATED);
                out.extend_from_slice(&start.to_be_bytes());
                out.extend_from_slice(&delivery_limit.to_be_bytes());
            }
            Entry::Change(Change::Delivered {
                first,
                last,
                deliveries,
            }) => {
                out.push(TAG_DELIVERED);
                out.extend_from_slice(&first.to_be_bytes());
                out.extend_from_slice(&last.to_be_bytes());
                out.extend_from_slice(&deliveries.to_be_bytes());
            }
            Entry::Change(Change::Settled { first, last }) => {
                out.push(TAG_SETTLED);
                out.extend_from_slice(&first.to_be_bytes());
                out.extend_from_slice(&last.to_be_bytes());
            }
            Entry::Change(Change::StartMoved { offset }) => {
                out.push(TAG_START_MOVED);
                out.extend_from_slice(&offset.to_be_bytes());
            }
            Entry::Deleted => out.push(TAG_DELETED),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "journal value");
        r.version()?;
        let entry = match r.u8()? {
            TAG_CREATED => Entry::Created {
                start: r.i64()?,
                delivery_limit: r.u16()?,
            },
            TAG_DELIVERED => Entry::Change(Change::Delivered {
                first: r.i64()?,
                last: r.i64()?,
                deliveries: r.u16()?,
            }),
            TAG_SETTLED => Entry::Change(Change::Settled {
                first: r.i64()?,
                last: r.i64()?,
            }),
            TAG_START_MOVED => Entry::Change(Change::StartMoved { offset: r.i64()? }),
            TAG_DELETED => Entry::Deleted,
            _ => return Err(bad("journal value", "unknown tag")),
        };
        if let Entry::Change(
            Change::Delivered { first, last, .. } | Change::Settled { first, last },
        ) = entry
            && (first > last || last - first >= crate::IN_FLIGHT_MAX as i64)
        {
            return Err(bad("journal value", "range out of bounds"));
        }
        r.end()?;
        Ok(entry)
    }
}

/// One partition as a snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub key: QueueKey,
    /// The journal offset from which this partition's records are newer
    /// than the snapshot.
    pub covered: i64,
    pub delivery_limit: u16,
    pub state: Snapshot,
}

/// Every partition's state at some point: the journal below `base` is no
/// longer needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSnapshot {
    pub base: i64,
    pub entries: Vec<SnapshotEntry>,
}

impl JournalSnapshot {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.base.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            let key = e.key.encode();
            out.extend_from_slice(&(key.len() as u32).to_be_bytes());
            out.extend_from_slice(&key);
            out.extend_from_slice(&e.covered.to_be_bytes());
            out.extend_from_slice(&e.delivery_limit.to_be_bytes());
            out.extend_from_slice(&e.state.start.to_be_bytes());
            out.extend_from_slice(&(e.state.runs.len() as u32).to_be_bytes());
            for run in &e.state.runs {
                out.extend_from_slice(&run.first.to_be_bytes());
                out.extend_from_slice(&run.last.to_be_bytes());
                out.extend_from_slice(&run.deliveries.to_be_bytes());
                out.push(u8::from(run.settled));
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "snapshot";
        let Some(split) = bytes.len().checked_sub(4) else {
            return Err(bad(WHAT, "too short"));
        };
        let (body, crc) = bytes.split_at(split);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return Err(bad(WHAT, "checksum mismatch"));
        }
        let mut r = Reader::new(body, WHAT);
        if r.take(4)? != SNAPSHOT_MAGIC {
            return Err(bad(WHAT, "bad magic"));
        }
        r.version()?;
        let base = r.i64()?;
        let n = r.u32()? as usize;
        let mut entries = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let key_len = r.u32()? as usize;
            let key = QueueKey::decode(r.take(key_len)?)?;
            let covered = r.i64()?;
            let delivery_limit = r.u16()?;
            let start = r.i64()?;
            let runs_n = r.u32()? as usize;
            let mut runs = Vec::with_capacity(runs_n.min(4096));
            for _ in 0..runs_n {
                runs.push(SnapshotRun {
                    first: r.i64()?,
                    last: r.i64()?,
                    deliveries: r.u16()?,
                    settled: r.u8()? != 0,
                });
            }
            entries.push(SnapshotEntry {
                key,
                covered,
                delivery_limit,
                state: Snapshot { start, runs },
            });
        }
        r.end()?;
        Ok(Self { base, entries })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(NAME_BYTES_MAX)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(bad(self.what, "truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn version(&mut self) -> Result<(), DecodeError> {
        if self.u8()? != VERSION {
            return Err(bad(self.what, "unknown version"));
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn str(&mut self) -> Result<String, DecodeError> {
        let n = usize::from(self.u8()?);
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| bad(self.what, "name is not UTF-8"))
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(bad(self.what, "trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_snapshots_round_trip_and_damage_is_refused() {
        let key = QueueKey {
            group: "g".into(),
            topic: "orders".into(),
            partition: 7,
        };
        assert_eq!(QueueKey::decode(&key.encode()).unwrap(), key);
        for entry in [
            Entry::Created {
                start: 5,
                delivery_limit: 3,
            },
            Entry::Change(Change::Delivered {
                first: 1,
                last: 4,
                deliveries: 2,
            }),
            Entry::Change(Change::Settled { first: 9, last: 9 }),
            Entry::Change(Change::StartMoved { offset: 11 }),
            Entry::Deleted,
        ] {
            let bytes = entry.encode();
            assert_eq!(Entry::decode(&bytes).unwrap(), entry);
            assert!(Entry::decode(&bytes[..bytes.len() - 1]).is_err());
        }
        let snap = JournalSnapshot {
            base: 40,
            entries: vec![SnapshotEntry {
                key,
                covered: 42,
                delivery_limit: 5,
                state: Snapshot {
                    start: 3,
                    runs: vec![SnapshotRun {
                        first: 3,
                        last: 6,
                        deliveries: 1,
                        settled: false,
                    }],
                },
            }],
        };
        let mut bytes = snap.encode();
        assert_eq!(JournalSnapshot::decode(&bytes).unwrap(), snap);
        bytes[10] ^= 1;
        assert!(JournalSnapshot::decode(&bytes).is_err());
    }
}
