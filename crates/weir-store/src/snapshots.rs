//! Aggregate snapshots: an aggregate's state at a stream version, kept
//! beside the stream (in the internal topic `__weir_snapshots`, never in
//! the stream or the global order), so loading an aggregate reads the
//! newest snapshot and only the events after it.
//!
//! Each snapshot is one record: key = stream id, value = the state,
//! headers `ce_streamversion` and `ce_type` (the snapshot's type, for the
//! reader to pick a decoder). The newest snapshot of each stream is found
//! by scanning the topic on open; older ones stay until a later scavenge.

use std::collections::HashMap;

use weir_log::batch::{BatchBuilder, Record};
use weir_log::{FsyncPolicy, Log};

use crate::{EVENT_TYPE_BYTES_MAX, RecordedEvent, StoreError};

/// The internal topic that holds aggregate snapshots.
pub const SNAPSHOTS_TOPIC: &str = "__weir_snapshots";
/// Largest snapshot state, in bytes.
pub const SNAPSHOT_BYTES_MAX: usize = 16 * 1024 * 1024;

const H_VERSION: &str = "ce_streamversion";
const H_TYPE: &str = "ce_type";

/// An aggregate's state at a version of its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub stream: String,
    /// The version of the last event the state includes.
    pub version: u64,
    pub snapshot_type: String,
    pub data: Vec<u8>,
    pub recorded_ms: i64,
}

/// What loading an aggregate reads: its newest snapshot, if any, and the
/// events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<RecordedEvent>,
}

/// The newest snapshot of each stream: (version, position in the topic).
#[derive(Debug, Default)]
pub(crate) struct Latest(HashMap<String, (u64, u64)>);

impl Latest {
    pub fn get(&self, stream: &str) -> Option<(u64, u64)> {
        self.0.get(stream).copied()
    }

    fn note(&mut self, stream: &str, version: u64, position: u64) {
        let e = self
            .0
            .entry(stream.to_owned())
            .or_insert((version, position));
        if version >= e.0 {
            *e = (version, position);
        }
    }
}

fn fields<'a>(r: &Record<'a>) -> Option<(&'a str, u64, &'a str)> {
    let h = |name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    let stream = std::str::from_utf8(r.key?).ok()?;
    Some((stream, h(H_VERSION)?.parse().ok()?, h(H_TYPE)?))
}

/// Scans the snapshots topic for each stream's newest snapshot.
pub(crate) fn scan(log: &Log) -> Result<Latest, StoreError> {
    let mut latest = Latest::default();
    let end = log.high_watermark();
    let mut at = log.start_offset();
    while at < end {
        let read = log.read(at, 1024 * 1024)?;
        if read.bytes.is_empty() {
            break;
        }
        crate::embedded::for_each_record(&read.bytes, |r| {
            match fields(r) {
                Some((stream, version, _)) => latest.note(stream, version, r.offset as u64),
                None => tracing::warn!(offset = r.offset, "skipping an unreadable snapshot record"),
            }
            Ok(())
        })?;
        at = read.next_offset;
    }
    Ok(latest)
}

/// Writes a snapshot durably and notes it.
pub(crate) fn save(log: &Log, latest: &mut Latest, snapshot: &Snapshot) -> Result<(), StoreError> {
    if snapshot.snapshot_type.is_empty() || snapshot.snapshot_type.len() > EVENT_TYPE_BYTES_MAX {
        return Err(StoreError::InvalidEvent {
            id: String::new(),
            reason: format!("a snapshot type has 1 to {EVENT_TYPE_BYTES_MAX} bytes"),
        });
    }
    if snapshot.data.len() > SNAPSHOT_BYTES_MAX {
        return Err(StoreError::AppendTooLarge {
            reason: format!(
                "a snapshot of {} bytes, at most {SNAPSHOT_BYTES_MAX}",
                snapshot.data.len()
            ),
        });
    }
    let version = snapshot.version.to_string();
    let mut batch = BatchBuilder::new(snapshot.recorded_ms);
    batch.push(
        snapshot.recorded_ms,
        Some(snapshot.stream.as_bytes()),
        Some(&snapshot.data),
        &[
            (H_VERSION, version.as_bytes()),
            (H_TYPE, snapshot.snapshot_type.as_bytes()),
        ],
    );
    let info = log.append_nowait(&mut batch.build())?;
    if log.fsync_policy() == FsyncPolicy::Always {
        log.wait_durable(info.last_offset + 1)?;
    }
    latest.note(&snapshot.stream, snapshot.version, info.base_offset as u64);
    Ok(())
}

/// Reads the snapshot record at `position`.
pub(crate) fn read(log: &Log, position: u64) -> Result<Snapshot, StoreError> {
    let bytes = log.read(position as i64, 1)?.bytes;
    let mut found = None;
    crate::embedded::for_each_record(&bytes, |r| {
        if r.offset as u64 == position
            && let Some((stream, version, ty)) = fields(r)
        {
            found = Some(Snapshot {
                stream: stream.to_owned(),
                version,
                snapshot_type: ty.to_owned(),
                data: r.value.unwrap_or_default().to_vec(),
                recorded_ms: r.timestamp,
            });
        }
        Ok(())
    })?;
    found.ok_or_else(|| StoreError::Corrupt {
        reason: format!("no snapshot at {position} of {SNAPSHOTS_TOPIC}"),
    })
}
