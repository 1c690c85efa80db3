//! Opening the offset store: the newest valid snapshot, then a replay of
//! the log after it, skipping (and reporting) records that cannot be read.

use super::*;

/// Loads the snapshot if it is valid and replays the log after it.
pub(super) fn recover(
    broker: &Broker,
    log: &Log,
) -> Result<(Offsets, Option<i64>, Recovery), GroupError> {
    let dir = broker.data_dir();
    let snapshot = match dir.read_meta(SNAPSHOT_FILE)? {
        None => None,
        Some(bytes) => match decode_snapshot(&bytes) {
            Ok(snapshot) => Some(snapshot),
            Err(reason) => {
                tracing::warn!(
                    file = SNAPSHOT_FILE,
                    %reason,
                    "ignoring an unreadable committed offsets snapshot; replaying the log from its start"
                );
                None
            }
        },
    };
    let (start, end) = (log.start_offset(), log.end_offset());
    let mut rebase = false;
    let (mut offsets, replay_from, loaded) = match snapshot {
        None => {
            if start > 0 {
                tracing::warn!(
                    start,
                    "no snapshot, and the log starts at {start}: offsets committed only before it are lost"
                );
            }
            (Offsets::default(), start, None)
        }
        Some((covered, offsets)) if covered > end => {
            // The log ends before what the snapshot covers: its tail was
            // lost, or it was deleted and created again. The snapshot was
            // written only once what it covers was durable, so it is the
            // better record, and every record the log still holds is older
            // than it. Keep the snapshot's offsets, replay nothing, and
            // cover the log's end instead, so that the commits appended
            // next (at offsets the snapshot claimed) are replayed later.
            tracing::warn!(
                covered,
                end,
                "the committed offsets snapshot covers more than the log holds; keeping the snapshot"
            );
            rebase = true;
            (offsets, end, Some(covered))
        }
        Some((covered, offsets)) if covered < start => {
            tracing::warn!(
                covered,
                start,
                "the log starts after the snapshot's end: offsets committed in between are lost"
            );
            (offsets, start, Some(covered))
        }
        Some((covered, offsets)) => (offsets, covered, Some(covered)),
    };
    let (records_replayed, records_skipped) = replay(log, replay_from, &mut offsets)?;
    let mut on_disk = loaded;
    if rebase {
        dir.write_meta(SNAPSHOT_FILE, &encode_snapshot(&offsets, end))?;
        on_disk = Some(end);
    }
    let recovery = Recovery {
        snapshot_offset: loaded,
        replayed_from: replay_from,
        records_replayed,
        records_skipped,
    };
    Ok((offsets, on_disk, recovery))
}

/// Applies the log's records from `from` to its end; returns how many
/// records were applied and how many skipped.
pub(super) fn replay(
    log: &Log,
    from: i64,
    offsets: &mut Offsets,
) -> Result<(u64, u64), GroupError> {
    let (mut applied, mut skipped) = (0u64, 0u64);
    let mut offset = from;
    loop {
        let read = log.read(offset, REPLAY_READ_BYTES)?;
        if read.bytes.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < read.bytes.len() {
            let header = BatchHeader::parse(&read.bytes[pos..]).map_err(LogError::from)?;
            let end = pos + header.total_bytes();
            let Some(bytes) = read.bytes.get(pos..end) else {
                return Err(corrupt(header.base_offset, "batch runs past the read"));
            };
            batch::validate(bytes).map_err(|e| corrupt(header.base_offset, &e.to_string()))?;
            pos = end;
            if header.is_control() || header.compression() != 0 {
                // This store writes neither.
                skipped += u64::try_from(header.record_count).unwrap_or(0);
                warn_skipped(skipped, header.base_offset, "a control or compressed batch");
                continue;
            }
            let records = match batch::records(bytes) {
                Ok(records) => records,
                Err(e) => {
                    skipped += u64::try_from(header.record_count).unwrap_or(0);
                    warn_skipped(skipped, header.base_offset, &e.to_string());
                    continue;
                }
            };
            for record in records.into_iter().filter(|r| r.offset >= from) {
                match decode_record(record.key, record.value) {
                    Ok(change) => {
                        offsets.apply(change);
                        applied += 1;
                    }
                    Err(reason) => {
                        skipped += 1;
                        warn_skipped(skipped, record.offset, &reason);
                    }
                }
            }
        }
        offset = read.next_offset;
    }
    offsets.applied_end = offset;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "skipped records of {OFFSETS_TOPIC} this version cannot read"
        );
    }
    Ok((applied, skipped))
}

/// Warns of the first few skipped records; the total is reported once.
pub(super) fn warn_skipped(n_skipped: u64, offset: i64, reason: &str) {
    if n_skipped <= 10 {
        tracing::warn!(offset, reason, "skipping a record of {OFFSETS_TOPIC}");
    }
}

pub(super) fn corrupt(offset: i64, reason: &str) -> GroupError {
    GroupError::Corrupt {
        reason: format!("{OFFSETS_TOPIC} batch at offset {offset}: {reason}"),
    }
}
