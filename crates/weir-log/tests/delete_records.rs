//! Moving the log start offset on request (`Log::delete_records_before`,
//! Kafka's DeleteRecords): reads below the start refused, whole segments
//! below it deleted, the move durable before it is acknowledged (through
//! reopens, `kill -9` and power loss), bad offsets refused with the log
//! untouched, and retention, time lookups and recovery respecting it.

mod common;

use std::path::Path;

use common::*;
use weir_log::sim::SimStorage;
use weir_log::{DataDir, FsyncPolicy, Log, LogConfig, LogError, ManualClock, Storage};

/// A log of `n` batches of 3 records each (offsets `3i..3i+3`, values
/// `b{i}-0..2`), in small segments.
fn log_of_batches(dir: &DataDir, n: usize) -> Log {
    let log = dir.open_log("t-0", small_config()).unwrap();
    for i in 0..n {
        log.append(&mut batch_of(&format!("b{i}"), 3, i as i64))
            .unwrap();
    }
    log
}

/// The segment data files in the log's directory on the simulated disk.
fn data_files(disk: &SimStorage, name: &str) -> Vec<String> {
    let mut files: Vec<String> = disk
        .list_dir(&Path::new(ROOT).join(name))
        .unwrap()
        .into_iter()
        .filter(|f| f.ends_with(".log"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_start_moves_and_reads_below_it_are_out_of_range() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = log_of_batches(&dir, 4);
    assert_eq!((log.start_offset(), log.high_watermark()), (0, 12));

    let moved = log.delete_records_before(4).unwrap();
    assert_eq!(
        (
            moved.start_offset_before,
            moved.log_start_offset,
            moved.n_records()
        ),
        (0, 4, 4)
    );
    assert_eq!(log.start_offset(), 4);
    assert!(matches!(
        log.read(3, 1 << 20),
        Err(LogError::OffsetOutOfRange {
            offset: 3,
            start: 4,
            end: 12
        })
    ));
    // The batch straddling the start comes back whole (as Kafka serves
    // it; the consumer skips what lies below its fetch offset), with the
    // new start reported.
    let read = log.read(4, 1 << 20).unwrap();
    assert_eq!(read.log_start_offset, 4);
    assert_eq!(decode(&read.bytes).first().unwrap().0, 3);
    assert_eq!(read_all(&log, 4).first().unwrap().0, 4);
    assert_eq!(read_all(&log, 4).len(), 8);

    // A lower offset, or the same one, changes nothing and answers the
    // current start.
    for offset in [-1, 0, 2, 4] {
        let same = log.delete_records_before(offset).unwrap();
        assert_eq!(
            (
                same.start_offset_before,
                same.log_start_offset,
                same.n_records()
            ),
            (4, 4, 0),
            "offset {offset}"
        );
    }
    // Above the high watermark: refused by name, nothing moves.
    match log.delete_records_before(13) {
        Err(e @ LogError::StartPastHighWatermark { .. }) => {
            assert_eq!(
                e.to_string(),
                "cannot delete the records of log t-0 before offset 13: the high watermark is 12"
            );
        }
        other => panic!("expected StartPastHighWatermark, got {other:?}"),
    }
    assert_eq!(log.start_offset(), 4);
    // Up to the high watermark itself is allowed: nothing is left to read.
    assert_eq!(log.delete_records_before(12).unwrap().log_start_offset, 12);
    assert!(log.read(12, 1 << 20).unwrap().bytes.is_empty());
    assert!(matches!(
        log.read(11, 1 << 20),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Appends go on at the end.
    assert_eq!(log.append(&mut one(b"after", 0)).unwrap().base_offset, 12);
    assert_eq!(read_all(&log, 12), vec![(12, b"after".to_vec())]);
}

#[test]
fn whole_segments_below_the_start_are_deleted_from_disk() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", small_config()).unwrap();
    for i in 0..200 {
        log.append(&mut one(format!("v{i:03}").as_bytes(), 0))
            .unwrap();
    }
    let n_segments = log.segment_count();
    assert!(n_segments > 3);
    assert_eq!(data_files(&disk, "t-0").len(), n_segments);
    let size_before = log.size_bytes();

    let moved = log.delete_records_before(100).unwrap();
    assert_eq!(moved.log_start_offset, 100);
    assert!(moved.segments_deleted > 0 && moved.bytes_deleted > 0);
    assert_eq!(log.segment_count(), n_segments - moved.segments_deleted);
    assert_eq!(log.size_bytes(), size_before - moved.bytes_deleted);
    let files = data_files(&disk, "t-0");
    assert_eq!(files.len(), log.segment_count());
    // The first remaining segment holds offset 100; none lies wholly below.
    let first_base: i64 = files[0].trim_end_matches(".log").parse().unwrap();
    assert!(
        first_base <= 100 && first_base > 0,
        "first base {first_base}"
    );
    assert_eq!(read_all(&log, 100).len(), 100);

    // Up to the end: the active segment is rolled and goes too; one empty
    // segment is left and appends continue from the end.
    let moved = log.delete_records_before(200).unwrap();
    assert_eq!(moved.log_start_offset, 200);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(
        data_files(&disk, "t-0"),
        vec!["00000000000000000200.log".to_owned()]
    );
    assert_eq!(log.append(&mut one(b"next", 0)).unwrap().base_offset, 200);
}

#[test]
fn the_start_survives_a_reopen() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = log_of_batches(&dir, 4);
    log.delete_records_before(7).unwrap();
    dir.close().unwrap();

    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", small_config()).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (7, 12));
    assert!(matches!(
        log.read(6, 1 << 20),
        Err(LogError::OffsetOutOfRange { start: 7, .. })
    ));
    assert_eq!(read_all(&log, 7).first().unwrap().0, 7);
    // And it moves on from there.
    log.delete_records_before(9).unwrap();
    dir.close().unwrap();
    let dir = open_sim(&disk, &clock);
    assert_eq!(
        dir.open_log("t-0", small_config()).unwrap().start_offset(),
        9
    );
}

/// The start acknowledged before the process dies (`kill -9`: the page
/// cache survives) or the machine loses power (only what was synced
/// survives, chosen by the seed) is never lower after recovery, and the
/// records acknowledged above it are all there.
#[test]
fn an_acknowledged_start_survives_kill_and_power_loss() {
    for seed in 0..64 {
        let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
        let dir = open_sim(&disk, &clock);
        let log = dir.open_log("t-0", small_config()).unwrap();
        for i in 0..150 {
            log.append(&mut one(format!("v{i:03}").as_bytes(), 0))
                .unwrap();
        }
        let target = 20 + (seed as i64 * 37) % 131;
        let moved = log.delete_records_before(target).unwrap();
        assert_eq!(moved.log_start_offset, target);
        // Further appends (unsynced data, maybe a roll) after the move.
        for i in 150..160 {
            log.append_nowait(&mut one(format!("v{i:03}").as_bytes(), 0))
                .unwrap();
        }
        let after = if seed % 2 == 0 {
            disk.kill()
        } else {
            disk.crash(seed)
        };
        // The old handles fail from here on; dropping them closes nothing.
        drop(log);
        drop(dir);

        let dir = open_sim(&after, &clock);
        let log = dir.open_log("t-0", small_config()).unwrap();
        let start = log.start_offset();
        assert!(start >= target, "seed {seed}: start {start} < {target}");
        assert_eq!(start, target, "seed {seed}: the records up to 150 survive");
        assert!(log.end_offset() >= 150, "seed {seed}");
        let records = read_all(&log, start);
        assert_eq!(records.first().unwrap().0, target, "seed {seed}");
        assert_eq!(
            records.first().unwrap().1,
            format!("v{target:03}").into_bytes()
        );
        // No segment wholly below the start is left on disk.
        let files = data_files(&after, "t-0");
        assert_eq!(files.len(), log.segment_count(), "seed {seed}");
        if files.len() > 1 {
            let second: i64 = files[1].trim_end_matches(".log").parse().unwrap();
            assert!(second > start, "seed {seed}: {files:?} below {start}");
        }
    }
}

/// Under `fsync=never` the high watermark is the unsynced end, so the start
/// can be moved (durably) past what a power loss keeps: recovery clamps it
/// to the recovered end instead of pointing past the log.
#[test]
fn a_start_past_the_recovered_end_is_clamped_to_it() {
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..small_config()
    };
    let mut n_clamped = 0;
    for seed in 0..32 {
        let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
        let dir = open_sim(&disk, &clock);
        let log = dir.open_log("t-0", config.clone()).unwrap();
        log.append(&mut one(b"durable", 0)).unwrap();
        log.wait_durable(1).unwrap();
        for i in 0..5 {
            log.append(&mut one(format!("lost{i}").as_bytes(), 0))
                .unwrap();
        }
        assert_eq!(log.durable_offset(), 1);
        // Below the end, so no roll syncs the data on the way.
        assert_eq!(log.delete_records_before(4).unwrap().log_start_offset, 4);
        let after = disk.crash(seed);
        drop(log);
        drop(dir);

        let dir = open_sim(&after, &clock);
        let log = dir.open_log("t-0", config.clone()).unwrap();
        let end = log.end_offset();
        assert!(end >= 1, "seed {seed}: the synced record survives");
        assert_eq!(log.start_offset(), end.min(4), "seed {seed}");
        if end < 4 {
            n_clamped += 1;
            assert!(log.read(end, 1024).unwrap().bytes.is_empty());
        }
        let next = log.append(&mut one(b"again", 0)).unwrap().base_offset;
        assert_eq!(next, end);
        assert_eq!(read_all(&log, log.start_offset()).last().unwrap().0, next);
    }
    assert!(n_clamped > 0, "no seed lost the records below the start");
}

#[test]
fn a_corrupt_checkpoint_is_reported_and_not_ignored() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = log_of_batches(&dir, 2);
    log.delete_records_before(3).unwrap();
    dir.close().unwrap();
    let path = Path::new(ROOT).join("t-0/log-start-offset.checkpoint");
    let file = disk.open(&path, false).unwrap();
    file.write_all_at(&[0xff], 10).unwrap();
    file.sync_data().unwrap();

    let dir = open_sim(&disk, &clock);
    match dir.open_log("t-0", small_config()) {
        Err(e @ LogError::CorruptCheckpoint { .. }) => {
            assert!(e.to_string().contains("crc mismatch"), "{e}");
        }
        other => panic!("expected CorruptCheckpoint, got {other:?}"),
    }
    // Removing it by hand is the way out: the log starts at its first
    // segment again.
    disk.remove_file(&path).unwrap();
    let log = dir.open_log("t-0", small_config()).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (0, 6));
}

#[test]
fn retention_and_time_lookups_respect_the_start() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let config = LogConfig {
        retention_bytes: Some(1 << 30),
        ..small_config()
    };
    let log = dir.open_log("t-0", config).unwrap();
    for i in 0..200 {
        log.append(&mut one(format!("v{i:03}").as_bytes(), i))
            .unwrap();
    }
    log.delete_records_before(150).unwrap();
    // Retention deleting nothing keeps the moved start.
    assert_eq!(log.enforce_retention().unwrap().log_start_offset, 150);
    assert_eq!(log.start_offset(), 150);
    // A timestamp below the start's finds the start, never a deleted record.
    assert_eq!(log.offset_for_time(0).unwrap(), Some(150));
    assert_eq!(log.offset_for_time(160).unwrap(), Some(160));
    // Deleting whole segments below an offset lower than the start keeps it.
    log.delete_segments_before(10).unwrap();
    assert_eq!(log.start_offset(), 150);
}

#[test]
fn a_closed_or_read_only_log_refuses_the_move() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = log_of_batches(&dir, 2);
    disk.fail_next_syncs(1);
    match log.delete_records_before(3) {
        Err(LogError::SyncFailed { .. }) => {}
        other => panic!("expected SyncFailed, got {other:?}"),
    }
    // The failed fsync is final: the log is read-only and the start did
    // not move.
    assert_eq!(log.start_offset(), 0);
    assert!(matches!(
        log.delete_records_before(3),
        Err(LogError::ReadOnly { .. })
    ));
    // A closed log refuses it too.
    let other = dir.open_log("t-1", small_config()).unwrap();
    other.append(&mut one(b"x", 0)).unwrap();
    drop(dir);
    assert!(matches!(
        other.delete_records_before(1),
        Err(LogError::Closed { .. })
    ));
}
