//! Snapshots a log keeps for its owner: opaque bytes describing state the
//! owner derives from the log's batches below some offset (the broker's
//! idempotent producers and open and aborted transactions), so that
//! reopening replays only the batches after it instead of the log's whole
//! past (Kafka's `<offset>.snapshot` files).
//!
//! Each snapshot is one file in the log's directory, named by its offset
//! (`00000000000000001234.snapshot`), written to a temporary name, synced
//! and renamed into place, and only once every batch below its offset is
//! durable: a crash leaves whole snapshots of durable state. The newest
//! [`SNAPSHOTS_KEPT`] are kept. On reading, a snapshot past the log's end
//! (the tail it described was lost in a crash) or one that fails its
//! checks is passed over for an older one. Layout (big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `WSNP` |
//! | 4..6 | version, 1 |
//! | 6..14 | offset (i64) |
//! | 14..18 | payload length (u32) |
//! | 18..18+n | payload |
//! | 18+n..22+n | CRC-32C of everything before it |

use std::path::Path;

use crate::error::{LogError, Result};
use crate::log::Log;
use crate::storage::Storage;

/// Snapshots kept per log: the newest survives a crash that takes the log
/// back below it only if an older one is there to fall back on.
pub const SNAPSHOTS_KEPT: usize = 2;
/// The largest payload a snapshot holds.
pub const SNAPSHOT_BYTES_MAX: usize = 64 * 1024 * 1024;

const SUFFIX: &str = ".snapshot";
const TMP_SUFFIX: &str = ".snapshot.tmp";
const MAGIC: &[u8; 4] = b"WSNP";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 18;

fn file_name(offset: i64) -> String {
    format!("{offset:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn encode(offset: i64, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&offset.to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

fn decode(offset: i64, bytes: &[u8]) -> std::result::Result<&[u8], String> {
    if bytes.len() < HEADER_BYTES + 4 {
        return Err(format!("{} bytes, too short", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != stored {
        return Err("crc mismatch".into());
    }
    if &body[0..4] != MAGIC {
        return Err("bad magic".into());
    }
    let version = u16::from_be_bytes([body[4], body[5]]);
    if version != VERSION {
        return Err(format!("version {version}, expected {VERSION}"));
    }
    let stored_offset = i64::from_be_bytes(body[6..14].try_into().expect("8 bytes"));
    if stored_offset != offset {
        return Err(format!("offset {stored_offset} in a file named {offset}"));
    }
    let len = u32::from_be_bytes(body[14..18].try_into().expect("4 bytes")) as usize;
    if len != body.len() - HEADER_BYTES {
        return Err(format!("payload of {len} bytes in {}", body.len()));
    }
    Ok(&body[HEADER_BYTES..])
}

/// The snapshots in `dir`, newest first; temporary files a crash left are
/// removed.
fn list(storage: &dyn Storage, dir: &Path) -> Result<Vec<i64>> {
    let names = storage.list_dir(dir).map_err(LogError::io("list", dir))?;
    let mut offsets = Vec::new();
    for name in names {
        if name.ends_with(TMP_SUFFIX) {
            let path = dir.join(&name);
            storage
                .remove_file(&path)
                .map_err(LogError::io("remove", &path))?;
        } else if let Some(offset) = parse_name(&name) {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    Ok(offsets)
}

fn read_file(storage: &dyn Storage, path: &Path) -> Result<Vec<u8>> {
    let file = storage
        .open(path, false)
        .map_err(LogError::io("open", path))?;
    let len = file.len().map_err(LogError::io("stat", path))? as usize;
    if len > SNAPSHOT_BYTES_MAX + HEADER_BYTES + 4 {
        return Ok(Vec::new());
    }
    let mut bytes = vec![0; len];
    let n = file
        .read_at(&mut bytes, 0)
        .map_err(LogError::io("read", path))?;
    bytes.truncate(n);
    Ok(bytes)
}

impl Log {
    /// Writes a snapshot of the owner's state at `offset` (state derived
    /// from every batch below it), once every batch below `offset` is
    /// durable, and removes all but the newest [`SNAPSHOTS_KEPT`]. An
    /// offset past the log's end, or a payload over
    /// [`SNAPSHOT_BYTES_MAX`], is refused.
    pub fn write_snapshot(&self, offset: i64, payload: &[u8]) -> Result<()> {
        if offset > self.end_offset() || offset < 0 || payload.len() > SNAPSHOT_BYTES_MAX {
            return Err(LogError::InvalidSnapshot {
                offset,
                bytes: payload.len(),
            });
        }
        self.wait_durable(offset)?;
        let storage = &*self.shared.storage;
        let dir = &self.shared.dir;
        let tmp = dir.join(format!("{offset:020}{TMP_SUFFIX}"));
        let path = dir.join(file_name(offset));
        let file = storage
            .open(&tmp, true)
            .map_err(LogError::io("create", &tmp))?;
        file.set_len(0)
            .and_then(|()| file.write_all_at(&encode(offset, payload), 0))
            .map_err(LogError::io("write", &tmp))?;
        file.sync_data().map_err(LogError::io("sync", &tmp))?;
        storage
            .rename(&tmp, &path)
            .map_err(LogError::io("rename", &tmp))?;
        storage.sync_dir(dir).map_err(LogError::io("sync", dir))?;
        for old in list(storage, dir)?.into_iter().skip(SNAPSHOTS_KEPT) {
            let path = dir.join(file_name(old));
            if let Err(e) = storage.remove_file(&path) {
                tracing::warn!(path = %path.display(), %e, "could not remove an old snapshot");
            }
        }
        Ok(())
    }

    /// The newest snapshot at or below the log's end that passes its
    /// checks, as (offset, payload); `None` when there is none.
    pub fn latest_snapshot(&self) -> Result<Option<(i64, Vec<u8>)>> {
        let storage = &*self.shared.storage;
        let dir = &self.shared.dir;
        let end = self.end_offset();
        for offset in list(storage, dir)? {
            if offset > end {
                continue;
            }
            let path = dir.join(file_name(offset));
            let bytes = read_file(storage, &path)?;
            match decode(offset, &bytes) {
                Ok(payload) => return Ok(Some((offset, payload.to_vec()))),
                Err(reason) => {
                    tracing::warn!(path = %path.display(), reason, "passing over a damaged snapshot");
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_bytes_round_trip_and_damage_is_caught() {
        assert_eq!(parse_name(&file_name(1234)), Some(1234));
        assert_eq!(parse_name("1234.snapshot"), None);
        assert_eq!(parse_name("00000000000000001234.snapshot.tmp"), None);
        let bytes = encode(77, b"state");
        assert_eq!(decode(77, &bytes), Ok(&b"state"[..]));
        assert!(decode(78, &bytes).is_err());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode(77, &bad).is_err(), "byte {i}");
        }
        assert!(decode(77, &bytes[..bytes.len() - 1]).is_err());
    }
}
