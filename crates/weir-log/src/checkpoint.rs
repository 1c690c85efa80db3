//! A log's offset checkpoints: small files in its directory, each holding
//! one offset. The log start offset [`crate::Log::delete_records_before`]
//! moved to, so that the start never moves backwards across a restart or a
//! crash (Kafka's `log-start-offset-checkpoint`, per log), and the cleaner's
//! first dirty offset, so that a restart does not count the whole compacted
//! log as dirty again (Kafka's `cleaner-offset-checkpoint`).
//!
//! The file is replaced, never edited: a temporary file is written and
//! synced, renamed over the old one, and the directory synced. A crash
//! leaves the old checkpoint or the new one, never a mix. Its 18 bytes
//! (big-endian, as everything on disk):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic: `WLSO` (log start), `WCLO` (cleaner) |
//! | 4..6 | version, 1 |
//! | 6..14 | the offset (i64) |
//! | 14..18 | CRC-32C of bytes 0..14 |

use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};
use crate::storage::Storage;

/// One kind of checkpoint: its file name in the log's directory (which does
/// not end in `.log`, `.index` or `.timeindex`, so recovery never takes it
/// for a segment), where a new one is written before it is renamed into
/// place (one left by a crash is removed when read), and its magic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    file: &'static str,
    tmp: &'static str,
    magic: &'static [u8; 4],
}

/// The log start offset.
pub(crate) const START: Kind = Kind {
    file: "log-start-offset.checkpoint",
    tmp: "log-start-offset.checkpoint.tmp",
    magic: b"WLSO",
};

/// The cleaner's first dirty offset (see `crate::clean`).
pub(crate) const CLEANER: Kind = Kind {
    file: "cleaner-offset.checkpoint",
    tmp: "cleaner-offset.checkpoint.tmp",
    magic: b"WCLO",
};

const VERSION: u16 = 1;
const CHECKPOINT_BYTES: usize = 18;

/// Replaces the checkpoint of the log in `dir` with `offset`, durably: when
/// this returns, a crash cannot bring back an older start.
pub(crate) fn write(storage: &dyn Storage, dir: &Path, kind: Kind, offset: i64) -> Result<()> {
    let tmp = dir.join(kind.tmp);
    let path = dir.join(kind.file);
    let file = storage
        .open(&tmp, true)
        .map_err(LogError::io("create", &tmp))?;
    let bytes = encode(kind, offset);
    file.set_len(0)
        .and_then(|()| file.write_all_at(&bytes, 0))
        .map_err(LogError::io("write", &tmp))?;
    file.sync_data().map_err(LogError::sync(tmp.clone()))?;
    storage
        .rename(&tmp, &path)
        .map_err(LogError::io("rename", &tmp))?;
    storage
        .sync_dir(dir)
        .map_err(LogError::sync(dir.to_path_buf()))
}

/// The checkpointed start of the log in `dir`, `None` when it has none. A
/// checkpoint that fails its checks is reported, not ignored: ignoring it
/// would bring deleted records back. Removing the file by hand is the way
/// out (the log then starts at its first segment).
pub(crate) fn read(storage: &dyn Storage, dir: &Path, kind: Kind) -> Result<Option<i64>> {
    let tmp = dir.join(kind.tmp);
    if storage.exists(&tmp) {
        // A write that crashed before its rename: the checkpoint in place
        // (if any) is the last one acknowledged.
        storage
            .remove_file(&tmp)
            .map_err(LogError::io("remove", &tmp))?;
    }
    let path = dir.join(kind.file);
    if !storage.exists(&path) {
        return Ok(None);
    }
    let file = storage
        .open(&path, false)
        .map_err(LogError::io("open", &path))?;
    let mut bytes = [0; CHECKPOINT_BYTES + 1];
    let n = file
        .read_at(&mut bytes, 0)
        .map_err(LogError::io("read", &path))?;
    decode(kind, &bytes[..n])
        .map(Some)
        .map_err(|reason| corrupt(path, reason))
}

fn corrupt(path: PathBuf, reason: String) -> LogError {
    LogError::CorruptCheckpoint { path, reason }
}

fn encode(kind: Kind, offset: i64) -> [u8; CHECKPOINT_BYTES] {
    let mut bytes = [0; CHECKPOINT_BYTES];
    bytes[0..4].copy_from_slice(kind.magic);
    bytes[4..6].copy_from_slice(&VERSION.to_be_bytes());
    bytes[6..14].copy_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[..14]);
    bytes[14..18].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn decode(kind: Kind, bytes: &[u8]) -> std::result::Result<i64, String> {
    let magic = kind.magic;
    if bytes.len() != CHECKPOINT_BYTES {
        return Err(format!(
            "{} bytes, a checkpoint has {CHECKPOINT_BYTES}",
            bytes.len()
        ));
    }
    if &bytes[0..4] != magic {
        return Err(format!(
            "magic {:02x?}, expected {magic:02x?}",
            &bytes[0..4]
        ));
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(format!("version {version}, expected {VERSION}"));
    }
    let stored = u32::from_be_bytes(bytes[14..18].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(&bytes[..14]);
    if stored != computed {
        return Err(format!(
            "crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let offset = i64::from_be_bytes(bytes[6..14].try_into().expect("8 bytes"));
    if offset < 0 {
        return Err(format!("negative offset {offset}"));
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let bytes = encode(START, 1_234_567);
        assert_eq!(decode(START, &bytes), Ok(1_234_567));
        assert!(decode(CLEANER, &bytes).is_err(), "kinds are told apart");
        for i in 0..CHECKPOINT_BYTES {
            let mut bad = bytes;
            bad[i] ^= 0x40;
            assert!(
                decode(START, &bad).is_err(),
                "a flipped byte {i} must be caught"
            );
        }
        assert!(decode(START, &bytes[..17]).is_err());
        assert!(decode(START, &[]).is_err());
        assert!(decode(START, &encode(START, -1)).is_err());
    }
}
