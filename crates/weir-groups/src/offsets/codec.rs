//! The bytes of `__consumer_offsets` (Kafka's record layout: key version
//! 1, value version 3) and of the store's snapshot file.

use super::*;

pub(super) fn key_bytes(group_bytes: usize, topic_bytes: usize) -> usize {
    2 + 2 + group_bytes + 2 + topic_bytes + 4
}

pub(super) fn value_bytes(metadata_bytes: usize) -> usize {
    2 + 8 + 4 + 2 + metadata_bytes + 8
}

/// Key version 1: version, group, topic, partition.
pub(super) fn encode_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut out = Vec::with_capacity(key_bytes(group.len(), tp.topic.len()));
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_str16(&mut out, group);
    put_str16(&mut out, &tp.topic);
    out.extend_from_slice(&tp.partition.to_be_bytes());
    out
}

/// Value version 3: version, offset, leader epoch, metadata, commit time.
pub(super) fn encode_value(committed: &CommittedOffset) -> Vec<u8> {
    let mut out = Vec::with_capacity(value_bytes(committed.metadata.len()));
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&committed.offset.to_be_bytes());
    out.extend_from_slice(&committed.leader_epoch.to_be_bytes());
    put_str16(&mut out, &committed.metadata);
    out.extend_from_slice(&committed.commit_timestamp_ms.to_be_bytes());
    out
}

/// Decodes one record; the error says why it is skipped.
pub(super) fn decode_record(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Change, String> {
    let mut k = Reader::new(key.ok_or("a record without a key")?);
    let version = k.i16()?;
    if !KEY_VERSIONS.contains(&version) {
        return Err(format!("unknown key version {version}"));
    }
    let group = k.str16()?;
    let topic = k.str16()?;
    let partition = k.i32()?;
    k.finish()?;
    let value = match value {
        None => None,
        Some(value) => {
            let mut v = Reader::new(value);
            let version = v.i16()?;
            if version != VALUE_VERSION {
                return Err(format!("unknown value version {version}"));
            }
            let committed = CommittedOffset {
                offset: v.i64()?,
                leader_epoch: v.i32()?,
                metadata: v.str16()?,
                commit_timestamp_ms: v.i64()?,
            };
            v.finish()?;
            Some(committed)
        }
    };
    Ok(Change {
        group,
        partition: TopicPartition { topic, partition },
        value,
    })
}

/// Strings are at most `i16::MAX` bytes: group ids, topic names and
/// metadata are checked against smaller limits before they get here.
pub(super) fn put_str16(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).expect("strings are checked against their limits");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Big-endian reads from a byte slice, each failing with a reason when the
/// bytes run out.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "truncated: {n} bytes wanted at byte {} of {}",
                self.pos,
                self.bytes.len()
            ));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    pub(super) fn i16(&mut self) -> Result<i16, String> {
        self.array().map(i16::from_be_bytes)
    }

    pub(super) fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_be_bytes)
    }

    pub(super) fn i32(&mut self) -> Result<i32, String> {
        self.array().map(i32::from_be_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_be_bytes)
    }

    pub(super) fn i64(&mut self) -> Result<i64, String> {
        self.array().map(i64::from_be_bytes)
    }

    /// A string with an i16 length (Kafka's STRING; null is refused).
    pub(super) fn str16(&mut self) -> Result<String, String> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| format!("string length {len}"))?;
        self.utf8(len)
    }

    /// A string with a u16 length (the snapshot's).
    pub(super) fn str_u16(&mut self) -> Result<String, String> {
        let len = self.u16()?;
        self.utf8(usize::from(len))
    }

    pub(super) fn utf8(&mut self, len: usize) -> Result<String, String> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a string that is not UTF-8".to_owned())
    }

    pub(super) fn finish(&self) -> Result<(), String> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(format!("{} bytes left over", self.bytes.len() - self.pos))
        }
    }
}

// ---- Snapshot format ----

/// Encodes the map as a snapshot covering the log below `covered`.
pub(super) fn encode_snapshot(offsets: &Offsets, covered: i64) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // CRC, filled in below
    out.extend_from_slice(&covered.to_be_bytes());
    put_count(&mut out, offsets.groups.len());
    for (group, partitions) in &offsets.groups {
        put_str_u16(&mut out, group);
        let mut topics: Vec<(&str, Vec<(i32, &CommittedOffset)>)> = Vec::new();
        for (tp, committed) in partitions {
            match topics.last_mut() {
                Some((topic, list)) if *topic == tp.topic => list.push((tp.partition, committed)),
                _ => topics.push((&tp.topic, vec![(tp.partition, committed)])),
            }
        }
        put_count(&mut out, topics.len());
        for (topic, list) in topics {
            put_str_u16(&mut out, topic);
            put_count(&mut out, list.len());
            for (partition, committed) in list {
                out.extend_from_slice(&partition.to_be_bytes());
                out.extend_from_slice(&committed.offset.to_be_bytes());
                out.extend_from_slice(&committed.leader_epoch.to_be_bytes());
                put_str_u16(&mut out, &committed.metadata);
                out.extend_from_slice(&committed.commit_timestamp_ms.to_be_bytes());
            }
        }
    }
    let crc = crc32c::crc32c(&out[SNAPSHOT_PREFIX_BYTES..]);
    out[6..10].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a snapshot: the offset it covers and the map.
pub(super) fn decode_snapshot(bytes: &[u8]) -> Result<(i64, Offsets), String> {
    let mut r = Reader::new(bytes);
    let magic = r.take(4)?;
    if magic != SNAPSHOT_MAGIC {
        return Err(format!("bad magic {magic:02x?}"));
    }
    let version = r.u16()?;
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown version {version}"));
    }
    let stored = r.u32()?;
    let computed = crc32c::crc32c(&bytes[SNAPSHOT_PREFIX_BYTES..]);
    if stored != computed {
        return Err(format!(
            "crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let covered = r.i64()?;
    if covered < 0 {
        return Err(format!("covered offset {covered}"));
    }
    let mut offsets = Offsets {
        applied_end: covered,
        ..Offsets::default()
    };
    for _ in 0..r.u32()? {
        let group = r.str_u16()?;
        for _ in 0..r.u32()? {
            let topic = r.str_u16()?;
            for _ in 0..r.u32()? {
                let partition = r.i32()?;
                let committed = CommittedOffset {
                    offset: r.i64()?,
                    leader_epoch: r.i32()?,
                    metadata: r.str_u16()?,
                    commit_timestamp_ms: r.i64()?,
                };
                offsets.apply(Change {
                    group: group.clone(),
                    partition: TopicPartition {
                        topic: topic.clone(),
                        partition,
                    },
                    value: Some(committed),
                });
            }
        }
    }
    r.finish()?;
    Ok((covered, offsets))
}

pub(super) fn put_count(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("counts are bounded by offsets_max");
    out.extend_from_slice(&n.to_be_bytes());
}

pub(super) fn put_str_u16(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("strings are checked against their limits");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}
