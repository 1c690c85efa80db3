//! The saved index: the store's indexes as of a position, in one file
//! (`.weir-events-index`), so a reopen replays only the log after it. The
//! log stays the truth: a saved index that is missing, corrupt (CRC), of an
//! unknown version, or beyond the log's end is ignored and the indexes are
//! rebuilt from the whole log.
//!
//! Layout (big-endian): magic `WEIX`, u16 version 2, u32 CRC-32C of all
//! that follows; u64 covered position (every record below it is in), i64
//! last recorded time; u32 stream count, then per stream its id (u16
//! length) and positions; u32 type count, then per type its name and
//! positions; u32 correlation count, then per correlation its id and
//! positions; u32 recent-id count, then per id the id and its position;
//! u32 count of streams with settings or deletions, then per stream its
//! id, a flags byte (tombstoned, deleted_at, max_age, max_count,
//! truncate_before present) and a u64 for each value present.
//! Position lists are a u32 count and varint deltas. Categories are not
//! stored: they are the streams' positions merged.
//!
//! Version 1 had no correlations. It is not upgraded in place: its index
//! cannot say which events name a correlation without reading them, so a
//! version 1 file is ignored like any unknown version and the indexes are
//! rebuilt from the log (once: the next save writes version 2).

use std::collections::HashMap;

use crate::index::{Index, Recorded, StreamMeta};
use crate::{StoreError, category_of};

pub(crate) const FILE: &str = ".weir-events-index";
const MAGIC: &[u8; 4] = b"WEIX";
const VERSION: u16 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_positions(out: &mut Vec<u8>, list: &[u64]) {
    out.extend_from_slice(&(list.len() as u32).to_be_bytes());
    let mut prev = 0;
    for &p in list {
        put_varint(out, p - prev);
        prev = p;
    }
}

/// Named position lists (types, correlations): a u32 count, then each
/// name and its positions below `covered` (names with none are left out).
fn put_lists(out: &mut Vec<u8>, lists: &HashMap<String, Vec<u64>>, covered: u64) {
    let lists: Vec<(&String, &[u64])> = lists
        .iter()
        .map(|(name, l)| (name, &l[..l.partition_point(|&p| p < covered)]))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    out.extend_from_slice(&(lists.len() as u32).to_be_bytes());
    for (name, l) in lists {
        put_str(out, name);
        put_positions(out, l);
    }
}

/// The saved form of `index` as of `covered`: entries at or past it (not
/// yet durable) are left out.
pub(crate) fn encode(index: &Index, covered: u64, last_recorded_ms: i64) -> Vec<u8> {
    let below = |list: &[u64]| list.partition_point(|&p| p < covered);
    let mut body = Vec::new();
    body.extend_from_slice(&covered.to_be_bytes());
    body.extend_from_slice(&last_recorded_ms.to_be_bytes());
    let streams: Vec<(&String, &[u64])> = index
        .streams
        .iter()
        .map(|(s, l)| (s, &l[..below(l)]))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    body.extend_from_slice(&(streams.len() as u32).to_be_bytes());
    for (s, l) in streams {
        put_str(&mut body, s);
        put_positions(&mut body, l);
    }
    put_lists(&mut body, &index.types, covered);
    put_lists(&mut body, &index.correlations, covered);
    let recent: Vec<(&str, &Recorded)> = index
        .recent_ids()
        .filter(|(_, r)| r.position < covered)
        .collect();
    body.extend_from_slice(&(recent.len() as u32).to_be_bytes());
    for (id, r) in recent {
        put_str(&mut body, id);
        body.extend_from_slice(&r.position.to_be_bytes());
    }
    body.extend_from_slice(&(index.meta.len() as u32).to_be_bytes());
    for (stream, m) in &index.meta {
        put_str(&mut body, stream);
        let values = [
            m.deleted_at,
            m.settings.max_age_ms,
            m.settings.max_count,
            m.settings.truncate_before,
        ];
        let mut flags = u8::from(m.tombstoned);
        for (i, v) in values.iter().enumerate() {
            if v.is_some() {
                flags |= 2 << i;
            }
        }
        body.push(flags);
        for v in values.into_iter().flatten() {
            body.extend_from_slice(&v.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(body.len() + 10);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| corrupt("truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn str(&mut self) -> Result<&'a str, StoreError> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("a name is not UTF-8"))
    }

    fn positions(&mut self, covered: u64) -> Result<Vec<u64>, StoreError> {
        let n = self.u32()? as usize;
        // Each position takes at least a byte: a count beyond what is left
        // is corruption, not a reason to allocate.
        if n > self.bytes.len() - self.at {
            return Err(corrupt("a position count is larger than the file"));
        }
        let mut out = Vec::with_capacity(n);
        let mut prev = 0u64;
        for i in 0..n {
            let d = self.varint()?;
            if i > 0 && d == 0 {
                return Err(corrupt("positions must increase"));
            }
            prev = prev
                .checked_add(d)
                .ok_or_else(|| corrupt("position overflow"))?;
            if prev >= covered {
                return Err(corrupt("a position is past what the saved index covers"));
            }
            out.push(prev);
        }
        Ok(out)
    }
}

impl Reader<'_> {
    /// Named position lists, as `put_lists` wrote them.
    fn lists(&mut self, covered: u64) -> Result<HashMap<String, Vec<u64>>, StoreError> {
        let n = self.u32()? as usize;
        let mut lists = HashMap::with_capacity(n.min(self.bytes.len() - self.at));
        for _ in 0..n {
            let name = self.str()?.to_owned();
            let positions = self.positions(covered)?;
            if lists.insert(name, positions).is_some() {
                return Err(corrupt("a name is listed twice"));
            }
        }
        Ok(lists)
    }
}

fn corrupt(reason: &str) -> StoreError {
    StoreError::Corrupt {
        reason: format!("saved index: {reason}"),
    }
}

/// The index a saved index holds, with the position it covers and the last
/// recorded time.
pub(crate) fn decode(bytes: &[u8]) -> Result<(Index, i64), StoreError> {
    if bytes.len() < 10 || &bytes[..4] != MAGIC {
        return Err(corrupt("not an saved index"));
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version == 1 {
        return Err(corrupt(
            "version 1 predates the correlation index; rebuilding it once",
        ));
    }
    if version != VERSION {
        return Err(corrupt(&format!("unknown version {version}")));
    }
    let crc = u32::from_be_bytes(bytes[6..10].try_into().expect("4 bytes"));
    let body = &bytes[10..];
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let mut r = Reader { bytes: body, at: 0 };
    let covered = r.u64()?;
    let last_recorded_ms = r.u64()? as i64;
    let mut index = Index::default();
    let mut categories: HashMap<String, Vec<u64>> = HashMap::new();
    for _ in 0..r.u32()? {
        let stream = r.str()?.to_owned();
        let positions = r.positions(covered)?;
        if let Some(c) = category_of(&stream) {
            categories
                .entry(c.to_owned())
                .or_default()
                .extend_from_slice(&positions);
        }
        index.streams.insert(stream, positions);
    }
    for list in categories.values_mut() {
        list.sort_unstable();
    }
    index.categories = categories;
    index.types = r.lists(covered)?;
    index.correlations = r.lists(covered)?;
    let n_recent = r.u32()? as usize;
    let mut recent = Vec::with_capacity(n_recent.min(body.len()));
    for _ in 0..n_recent {
        let id = r.str()?.to_owned();
        recent.push((id, r.u64()?));
    }
    for _ in 0..r.u32()? {
        let stream = r.str()?.to_owned();
        let flags = r.take(1)?[0];
        let mut value = |i: u8| -> Result<Option<u64>, StoreError> {
            if flags & (2 << i) != 0 {
                r.u64().map(Some)
            } else {
                Ok(None)
            }
        };
        let mut m = StreamMeta {
            tombstoned: flags & 1 != 0,
            deleted_at: value(0)?,
            ..StreamMeta::default()
        };
        m.settings.max_age_ms = value(1)?;
        m.settings.max_count = value(2)?;
        m.settings.truncate_before = value(3)?;
        index.meta.insert(stream, m);
    }
    if r.at != body.len() {
        return Err(corrupt("bytes after the end"));
    }
    // Recent ids name only a position; find their streams and versions.
    let wanted: std::collections::HashSet<u64> = recent.iter().map(|(_, p)| *p).collect();
    let mut at: HashMap<u64, (&str, u64)> = HashMap::with_capacity(wanted.len());
    for (stream, list) in &index.streams {
        let from = wanted.iter().min().copied().unwrap_or(u64::MAX);
        let start = list.partition_point(|&p| p < from);
        for (v, p) in list.iter().enumerate().skip(start) {
            if wanted.contains(p) {
                at.insert(*p, (stream, v as u64));
            }
        }
    }
    let mut restored = Vec::with_capacity(recent.len());
    for (id, position) in recent {
        let (stream, version) = at
            .get(&position)
            .ok_or_else(|| corrupt("a recent id points at no event"))?;
        restored.push((
            id,
            Recorded {
                stream: (*stream).to_owned(),
                version: *version,
                position,
            },
        ));
    }
    for (id, r) in &restored {
        index.restore_recent(id, r);
    }
    index.next_position = covered;
    Ok((index, last_recorded_ms))
}
