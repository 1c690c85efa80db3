//! The transaction log's records in Kafka's `__transaction_state` layout
//! (key and value version 0), so Kafka's tools read them: the key is the
//! transactional id, the value its metadata, a null value a tombstone.

use std::collections::BTreeSet;

use crate::state::{TopicPartition, TxnMetadata, TxnState};

/// One record of the transaction log: a transactional id's metadata after
/// a transition, or `None` (a tombstone: the id expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub transactional_id: String,
    pub metadata: Option<TxnMetadata>,
}

impl LogRecord {
    pub fn key(&self) -> Vec<u8> {
        encode_key(&self.transactional_id)
    }

    pub fn value(&self) -> Option<Vec<u8>> {
        self.metadata.as_ref().map(encode_value)
    }

    /// The record a log's key and value hold.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, RecordError> {
        let transactional_id = decode_key(key)?;
        let metadata = match value {
            None => None,
            Some(v) => Some(decode_value(&transactional_id, v)?),
        };
        Ok(Self {
            transactional_id,
            metadata,
        })
    }
}

/// A record that is not a version-0 transaction log record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction log record: {0}")]
pub struct RecordError(pub String);

pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    put_string(&mut out, transactional_id);
    out
}

pub fn encode_value(m: &TxnMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&m.producer_id.to_be_bytes());
    out.extend_from_slice(&m.producer_epoch.to_be_bytes());
    out.extend_from_slice(&m.timeout_ms.to_be_bytes());
    out.push(m.state.id() as u8);
    // Partitions grouped by topic, in order.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &m.partitions {
        match topics.last_mut() {
            Some((t, ps)) if *t == tp.topic => ps.push(tp.partition),
            _ => topics.push((&tp.topic, vec![tp.partition])),
        }
    }
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (topic, partitions) in topics {
        put_string(&mut out, topic);
        out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for p in partitions {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&m.last_update_ms.to_be_bytes());
    out.extend_from_slice(&m.txn_start_ms.to_be_bytes());
    out
}

pub fn decode_key(bytes: &[u8]) -> Result<String, RecordError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.i16()?;
    if version != 0 {
        return Err(RecordError(format!("key version {version} is not 0")));
    }
    let id = r.string()?;
    r.end()?;
    Ok(id)
}

pub fn decode_value(transactional_id: &str, bytes: &[u8]) -> Result<TxnMetadata, RecordError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.i16()?;
    if version != 0 {
        return Err(RecordError(format!("value version {version} is not 0")));
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = r.i8()?;
    let state =
        TxnState::from_id(status).ok_or_else(|| RecordError(format!("unknown state {status}")))?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    // -1: a null array (Kafka writes it for no partitions).
    for _ in 0..topics.max(0) {
        let topic = r.string()?;
        let n = r.i32()?;
        if n < 0 || n as usize > r.left() / 4 {
            return Err(RecordError(format!("{n} partitions of {topic}")));
        }
        for _ in 0..n {
            partitions.insert(TopicPartition::new(topic.clone(), r.i32()?));
        }
    }
    let last_update_ms = r.i64()?;
    let txn_start_ms = r.i64()?;
    r.end()?;
    Ok(TxnMetadata {
        transactional_id: transactional_id.to_owned(),
        producer_id,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        txn_start_ms,
        last_update_ms,
    })
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let end = self.at + N;
        let bytes = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| RecordError(format!("ends at byte {} of {end}", self.bytes.len())))?;
        self.at = end;
        Ok(bytes.try_into().unwrap_or([0; N]))
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.take()?))
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.take()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.take()?))
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let n = self.i16()?;
        if n < 0 || n as usize > self.left() {
            return Err(RecordError(format!("string of {n} bytes")));
        }
        let bytes = &self.bytes[self.at..self.at + n as usize];
        self.at += n as usize;
        String::from_utf8(bytes.to_vec()).map_err(|e| RecordError(e.to_string()))
    }

    fn end(&self) -> Result<(), RecordError> {
        match self.left() {
            0 => Ok(()),
            n => Err(RecordError(format!("{n} bytes after the record"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> TxnMetadata {
        TxnMetadata {
            transactional_id: "tx-1".into(),
            producer_id: 7,
            producer_epoch: 3,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [("a", 0), ("a", 2), ("b", 1)]
                .into_iter()
                .map(|(t, p)| TopicPartition::new(t, p))
                .collect(),
            txn_start_ms: 1_000,
            last_update_ms: 2_000,
        }
    }

    #[test]
    fn records_round_trip() {
        let r = LogRecord {
            transactional_id: "tx-1".into(),
            metadata: Some(metadata()),
        };
        let (k, v) = (r.key(), r.value());
        assert_eq!(LogRecord::decode(&k, v.as_deref()).unwrap(), r);
        let tomb = LogRecord {
            transactional_id: "tx-1".into(),
            metadata: None,
        };
        assert_eq!(LogRecord::decode(&tomb.key(), None).unwrap(), tomb);
    }

    #[test]
    fn the_layout_is_kafkas_version_0() {
        let v = encode_value(&metadata());
        // version, producer id, epoch, timeout, state
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(&v[2..10], &7i64.to_be_bytes());
        assert_eq!(&v[10..12], &3i16.to_be_bytes());
        assert_eq!(&v[12..16], &60_000i32.to_be_bytes());
        assert_eq!(v[16], 2);
        // two topics: "a" [0, 2], "b" [1]
        assert_eq!(&v[17..21], &2i32.to_be_bytes());
        assert_eq!(&v[21..24], &[0, 1, b'a']);
        assert_eq!(&v[24..28], &2i32.to_be_bytes());
        assert_eq!(&v[28..36], &[0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(v.len(), 36 + 3 + 4 + 4 + 16);
        assert_eq!(encode_key("tx"), vec![0, 0, 0, 2, b't', b'x']);
    }

    #[test]
    fn malformed_records_are_refused() {
        let v = encode_value(&metadata());
        for cut in 0..v.len() {
            assert!(decode_value("t", &v[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = v.clone();
        extra.push(0);
        assert!(decode_value("t", &extra).is_err());
        let mut state = v.clone();
        state[16] = 9;
        assert!(decode_value("t", &state).is_err());
        let mut version = v;
        version[1] = 1;
        assert!(decode_value("t", &version).is_err());
        assert!(decode_key(&[0, 0, 0, 5, b'a']).is_err());
        assert!(decode_key(&[0, 1, 0, 0]).is_err());
    }
}
