//! Kafka RecordBatch v2 framing: the header, its validation, offset stamping,
//! and a builder for uncompressed batches.
//!
//! The log stores batches exactly as a producer sent them, except for the
//! fields a broker owns (base offset, partition leader epoch and, for
//! log-append-time batches, the max timestamp), so a fetch can return file
//! bytes unchanged. This module knows the framing only; it never decompresses.
//!
//! Layout (all integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | base offset |
//! | 8 | 4 | batch length (bytes after this field) |
//! | 12 | 4 | partition leader epoch |
//! | 16 | 1 | magic (2) |
//! | 17 | 4 | CRC-32C of bytes 21.. |
//! | 21 | 2 | attributes |
//! | 23 | 4 | last offset delta |
//! | 27 | 8 | base timestamp |
//! | 35 | 8 | max timestamp |
//! | 43 | 8 | producer id |
//! | 51 | 2 | producer epoch |
//! | 53 | 4 | base sequence |
//! | 57 | 4 | record count |
//! | 61 | … | records |

use crate::error::BatchError;

/// Size of the fixed batch header, up to the first record.
pub const HEADER_BYTES: usize = 61;
/// Bytes before the batch length field's payload (base offset + length).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only record batch format the log accepts.
pub const MAGIC_V2: i8 = 2;

const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

/// Attribute bits.
const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `length + 12` bytes.
    pub length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `bytes` without checking the CRC.
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::Truncated {
                bytes: bytes.len(),
                bytes_min: HEADER_BYTES,
            });
        }
        Ok(Self {
            base_offset: be_i64(bytes, 0),
            length: be_i32(bytes, LENGTH_AT),
            partition_leader_epoch: be_i32(bytes, LEADER_EPOCH_AT),
            magic: bytes[MAGIC_AT] as i8,
            crc: be_i32(bytes, CRC_AT) as u32,
            attributes: be_i16(bytes, ATTRIBUTES_AT),
            last_offset_delta: be_i32(bytes, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(bytes, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(bytes, MAX_TIMESTAMP_AT),
            producer_id: be_i64(bytes, PRODUCER_ID_AT),
            producer_epoch: be_i16(bytes, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(bytes, BASE_SEQUENCE_AT),
            record_count: be_i32(bytes, RECORD_COUNT_AT),
        })
    }

    /// Total size of the batch on disk, header included.
    pub fn total_bytes(&self) -> usize {
        self.length as usize + LOG_OVERHEAD_BYTES
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_LOG_APPEND != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL != 0
    }
}

/// Reads only the base offset and length of a batch: enough to step over it.
/// Returns `None` when fewer than 12 bytes are given.
pub fn peek_offset_and_length(bytes: &[u8]) -> Option<(i64, i32)> {
    (bytes.len() >= LOG_OVERHEAD_BYTES).then(|| (be_i64(bytes, 0), be_i32(bytes, LENGTH_AT)))
}

/// Validates one complete batch: its length field, magic, record count and
/// CRC. `bytes` must be exactly the batch.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    let length_min = (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
    if header.length < length_min || header.total_bytes() != bytes.len() {
        return Err(BatchError::LengthMismatch {
            declared: i64::from(header.length) + LOG_OVERHEAD_BYTES as i64,
            actual: bytes.len(),
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    if header.last_offset_delta < 0
        || header.record_count < 0
        || (header.compression() == 0 && header.record_count > header.last_offset_delta + 1)
        || (header.record_count == 0 && header.last_offset_delta != 0)
    {
        return Err(BatchError::BadRecordCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let actual = crc32c::crc32c(&bytes[ATTRIBUTES_AT..]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed: actual,
        });
    }
    Ok(header)
}

/// Splits a buffer of concatenated batches into validated batches, all or
/// nothing. Returns the header and byte range of each.
pub fn validate_all(
    bytes: &[u8],
) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let Some((_, length)) = peek_offset_and_length(rest).filter(|_| rest.len() >= HEADER_BYTES)
        else {
            return Err(BatchError::Truncated {
                bytes: rest.len(),
                bytes_min: HEADER_BYTES,
            }
            .at_batch(out.len()));
        };
        let total = i64::from(length) + LOG_OVERHEAD_BYTES as i64;
        if length < 0 || total > rest.len() as i64 {
            return Err(BatchError::LengthMismatch {
                declared: total,
                actual: rest.len(),
            }
            .at_batch(out.len()));
        }
        let total = total as usize;
        let header = validate(&rest[..total]).map_err(|e| e.at_batch(out.len()))?;
        out.push((header, pos..pos + total));
        pos += total;
    }
    if out.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(out)
}

/// Writes the broker-owned fields of a validated batch: its base offset and
/// partition leader epoch (neither covered by the CRC) and, for batches that
/// ask for log-append time, the max timestamp (which is, so the CRC is
/// recomputed).
pub fn stamp(bytes: &mut [u8], base_offset: i64, leader_epoch: i32, log_append_time_ms: i64) {
    bytes[0..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    let attributes = be_i16(bytes, ATTRIBUTES_AT);
    if attributes & TIMESTAMP_TYPE_LOG_APPEND != 0 {
        bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
            .copy_from_slice(&log_append_time_ms.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[ATTRIBUTES_AT..]);
        bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// One record of an uncompressed batch, borrowed from the batch bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

/// Decodes the records of one uncompressed batch (`bytes` is the whole
/// batch). Compressed batches are the broker's business, not the log's.
pub fn records(bytes: &[u8]) -> Result<Vec<Record<'_>>, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.compression() != 0 {
        return Err(BatchError::Compressed {
            codec: header.compression(),
        });
    }
    let end = header.total_bytes().min(bytes.len());
    parse_records(&bytes[HEADER_BYTES..end], &header)
}

/// Decodes the records of a batch from its record bytes: the batch after
/// its header, or, for a compressed batch, those bytes decompressed. All
/// `header.record_count` records must be there, each well formed, and
/// nothing after them.
pub fn parse_records<'a>(
    body: &'a [u8],
    header: &BatchHeader,
) -> Result<Vec<Record<'a>>, BatchError> {
    // The count comes from the producer: reserve no more than the bytes
    // could hold (every record takes several).
    let count = usize::try_from(header.record_count).map_err(|_| BatchError::BadRecord)?;
    let mut out = Vec::with_capacity(count.min(body.len()));
    for_each_record(body, header, |r| {
        out.push(r.clone());
        Ok::<_, BatchError>(())
    })?;
    Ok(out)
}

/// [`parse_records`] for readers that look at one record at a time: calls
/// `f` with each record in order, reusing one header list (no allocation
/// per record). A malformed record stops it with the error; so does an
/// error from `f`. The records seen before a malformed one were well
/// formed.
pub fn for_each_record<'a, E: From<BatchError>>(
    body: &'a [u8],
    header: &BatchHeader,
    f: impl FnMut(&Record<'a>) -> Result<(), E>,
) -> Result<(), E> {
    RecordWalker::default().walk(body, header, f)
}

/// [`for_each_record`] over many batches of one buffer, reusing one header
/// list across all of them (a log of single-record batches would otherwise
/// allocate one per record).
#[derive(Debug, Default)]
pub struct RecordWalker<'a> {
    headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl<'a> RecordWalker<'a> {
    /// Calls `f` with each record of one batch's record bytes, in order.
    pub fn walk<E: From<BatchError>>(
        &mut self,
        body: &'a [u8],
        header: &BatchHeader,
        f: impl FnMut(&Record<'a>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut record = Record {
            offset: 0,
            timestamp: 0,
            key: None,
            value: None,
            headers: std::mem::take(&mut self.headers),
        };
        let walked = walk_records(body, header, &mut record, f);
        self.headers = record.headers;
        walked
    }
}

fn walk_records<'a, E: From<BatchError>>(
    body: &'a [u8],
    header: &BatchHeader,
    record: &mut Record<'a>,
    mut f: impl FnMut(&Record<'a>) -> Result<(), E>,
) -> Result<(), E> {
    let mut cur = Cursor {
        bytes: body,
        pos: 0,
    };
    let count = u32::try_from(header.record_count).map_err(|_| BatchError::BadRecord)?;
    for _ in 0..count {
        let len = cur.varint()?;
        let record_end = usize::try_from(len)
            .ok()
            .and_then(|len| cur.pos.checked_add(len));
        let Some(record_end) = record_end.filter(|&end| end <= body.len()) else {
            return Err(BatchError::BadRecord.into());
        };
        let _attributes = cur.take(1)?;
        let timestamp_delta = cur.varlong()?;
        let offset_delta = cur.varint()?;
        record.key = cur.bytes_opt()?;
        record.value = cur.bytes_opt()?;
        let header_count = cur.varint()?;
        record.headers.clear();
        // (Each header takes at least two bytes, or the cursor errs: the
        // loop is bounded by the bytes, whatever the count claims.)
        for _ in 0..header_count.max(0) {
            let Some(name) = cur.bytes_opt()? else {
                return Err(BatchError::BadRecord.into());
            };
            let Ok(name) = std::str::from_utf8(name) else {
                return Err(BatchError::BadRecord.into());
            };
            record.headers.push((name, cur.bytes_opt()?));
        }
        if cur.pos != record_end {
            return Err(BatchError::BadRecord.into());
        }
        record.offset = header.base_offset + i64::from(offset_delta);
        record.timestamp = header.base_timestamp.wrapping_add(timestamp_delta);
        f(record)?;
    }
    if cur.pos != body.len() {
        return Err(BatchError::BadRecord.into());
    }
    Ok(())
}

/// Builds an uncompressed RecordBatch v2 from records, as a producer would.
/// Offsets are relative (the log assigns the base offset on append).
#[derive(Debug)]
pub struct BatchBuilder {
    base_timestamp: i64,
    max_timestamp: i64,
    records: Vec<u8>,
    record_count: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
}

impl BatchBuilder {
    /// A batch whose records' timestamps are deltas from `base_timestamp`.
    pub fn new(base_timestamp: i64) -> Self {
        Self {
            base_timestamp,
            max_timestamp: i64::MIN,
            records: Vec::new(),
            record_count: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
        }
    }

    /// Marks the batch as coming from an idempotent producer.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Asks the log to stamp its append time as the batch's timestamp.
    pub fn log_append_time(mut self) -> Self {
        self.attributes |= TIMESTAMP_TYPE_LOG_APPEND;
        self
    }

    /// Marks the batch as part of a transaction (its producer's).
    pub fn transactional(mut self) -> Self {
        self.attributes |= TRANSACTIONAL;
        self
    }

    /// Marks the batch as a control batch (a transaction marker); it is
    /// transactional too, as Kafka writes them.
    pub fn control(mut self) -> Self {
        self.attributes |= CONTROL | TRANSACTIONAL;
        self
    }

    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Bytes the batch will have once built.
    pub fn size_bytes(&self) -> usize {
        HEADER_BYTES + self.records.len()
    }

    /// Adds one record.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> &mut Self {
        self.push_headers(
            timestamp,
            key,
            value,
            headers.iter().map(|&(name, value)| (name, Some(value))),
        )
    }

    /// Adds one record whose header values may be null, as Kafka allows:
    /// a record copied from a log keeps its headers exactly.
    pub fn push_nullable(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> &mut Self {
        self.push_headers(timestamp, key, value, headers.iter().copied())
    }

    fn push_headers<'h>(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl ExactSizeIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> &mut Self {
        let mut body =
            Vec::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        body.push(0); // record attributes, unused by v2
        put_varlong(&mut body, timestamp - self.base_timestamp);
        put_varint(&mut body, self.record_count);
        put_bytes_opt(&mut body, key);
        put_bytes_opt(&mut body, value);
        put_varint(&mut body, headers.len() as i32);
        for (name, value) in headers {
            put_bytes_opt(&mut body, Some(name.as_bytes()));
            put_bytes_opt(&mut body, value);
        }
        put_varint(&mut self.records, body.len() as i32);
        self.records.extend_from_slice(&body);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.record_count += 1;
        self
    }

    /// Finishes the batch: header, records and CRC.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_bytes());
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((self.size_bytes() - LOG_OVERHEAD_BYTES) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&(self.record_count - 1).max(0).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        let max_timestamp = if self.record_count == 0 {
            self.base_timestamp
        } else {
            self.max_timestamp
        };
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.record_count.to_be_bytes());
        out.extend_from_slice(&self.records);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_varlong(out, i64::from(v));
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes_opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    // (No `ok_or(BatchError::BadRecord)` on these hot paths: it builds and
    // drops an error, which has a boxed variant, on every call.)
    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        let Some(out) = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
        else {
            return Err(BatchError::BadRecord);
        };
        self.pos += n;
        Ok(out)
    }

    fn varlong(&mut self) -> Result<i64, BatchError> {
        let mut z: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(BatchError::BadRecord);
            };
            self.pos += 1;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(BatchError::BadRecord)
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        i32::try_from(self.varlong()?).map_err(|_| BatchError::BadRecord)
    }

    fn bytes_opt(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000);
        b.push(1_000, Some(b"k1"), Some(b"v1"), &[("h", b"x")]);
        b.push(1_005, None, Some(b"v2"), &[]);
        b.push(999, Some(b""), None, &[]);
        b.build()
    }

    #[test]
    fn built_batch_validates_and_decodes() {
        let bytes = sample();
        let header = validate(&bytes).unwrap();
        assert_eq!(header.record_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.max_timestamp, 1_005);
        let recs = records(&bytes).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].key, Some(&b"k1"[..]));
        assert_eq!(recs[0].headers, vec![("h", Some(&b"x"[..]))]);
        assert_eq!(recs[1].timestamp, 1_005);
        assert_eq!(recs[2].key, Some(&b""[..]));
        assert_eq!(recs[2].value, None);
        assert_eq!(recs[2].offset, 2);
    }

    #[test]
    fn null_header_values_survive_the_builder() {
        let mut b = BatchBuilder::new(7);
        b.push_nullable(7, None, None, &[("a", None), ("b", Some(b"x"))]);
        let bytes = b.build();
        validate(&bytes).unwrap();
        let recs = records(&bytes).unwrap();
        assert_eq!(recs[0].headers, vec![("a", None), ("b", Some(&b"x"[..]))]);
    }

    #[test]
    fn each_kind_of_damage_is_named() {
        let good = sample();
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(matches!(
            validate(&bad_crc),
            Err(BatchError::CrcMismatch { .. })
        ));
        let mut bad_magic = good.clone();
        bad_magic[MAGIC_AT] = 1;
        assert!(matches!(
            validate(&bad_magic),
            Err(BatchError::UnsupportedMagic { magic: 1 })
        ));
        let mut lying = good.clone();
        lying[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&10_000i32.to_be_bytes());
        assert!(matches!(
            validate_all(&lying),
            Err(BatchError::LengthMismatch { .. })
        ));
        assert!(matches!(
            validate_all(&good[..30]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(validate_all(&[]), Err(BatchError::Empty)));
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let mut bytes = BatchBuilder::new(5)
            .log_append_time()
            .push(5, None, Some(b"v"), &[])
            .build();
        stamp(&mut bytes, 42, 0, 77);
        let header = validate(&bytes).unwrap();
        assert_eq!((header.base_offset, header.max_timestamp), (42, 77));
    }

    #[test]
    fn malformed_records_are_refused_and_never_panic() {
        let bytes = sample();
        let header = BatchHeader::parse(&bytes).unwrap();
        let body = &bytes[HEADER_BYTES..];
        // Cut short, or with bytes after the last record.
        for end in 0..body.len() {
            assert!(matches!(
                parse_records(&body[..end], &header),
                Err(BatchError::BadRecord)
            ));
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(matches!(
            parse_records(&longer, &header),
            Err(BatchError::BadRecord)
        ));
        // A header name that is not UTF-8 (the first record's "h").
        let mut bad_name = body.to_vec();
        let at = bad_name.iter().position(|&b| b == b'h').unwrap();
        bad_name[at] = 0xff;
        assert!(matches!(
            parse_records(&bad_name, &header),
            Err(BatchError::BadRecord)
        ));
        // More records than the bytes hold, and a header count that lies.
        let mut more = header;
        more.record_count = i32::MAX;
        assert!(parse_records(body, &more).is_err());
        // Every single-byte change either parses or is refused, and
        // `for_each_record` sees the same records `parse_records` returns.
        for i in 0..body.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut m = body.to_vec();
                m[i] = v;
                let mut seen = Vec::new();
                let visited = for_each_record(&m, &header, |r| {
                    seen.push(r.clone());
                    Ok::<_, BatchError>(())
                });
                match parse_records(&m, &header) {
                    Ok(all) => {
                        assert!(visited.is_ok());
                        assert_eq!(all, seen);
                    }
                    Err(_) => assert!(visited.is_err()),
                }
            }
        }
    }
}
