//! Behaviour of one log through the public API: offsets, reads, limits, bad
//! input, roll, reopen and index repair, time lookup, retention, fsync
//! failure, group commit and the data directory lock.

mod common;

use std::sync::Arc;

use common::*;
use weir_log::batch::{self, BatchBuilder};
use weir_log::sim::SimStorage;
use weir_log::{BatchError, DataDir, DirConfig, FsyncPolicy, LogConfig, LogError, ManualClock};

#[test]
fn append_assigns_offsets_and_read_returns_whole_batches() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(1_000));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", sim_default()).unwrap();
    let a = log.append(&mut batch_of("a", 3, 1_000)).unwrap();
    let b = log.append(&mut batch_of("b", 2, 1_001)).unwrap();
    assert_eq!(
        (a.base_offset, a.last_offset, b.base_offset, b.last_offset),
        (0, 2, 3, 4)
    );
    assert_eq!(a.log_append_time_ms, 1_000);
    assert_eq!(
        (log.start_offset(), log.end_offset(), log.durable_offset()),
        (0, 5, 5)
    );

    // An offset inside a batch returns that whole batch.
    let read = log.read(1, 1 << 20).unwrap();
    let got = decode(&read.bytes);
    assert_eq!(got.first().unwrap().0, 0);
    assert_eq!(got.len(), 5);
    assert_eq!(read.next_offset, 5);
    assert_eq!(read.high_watermark, 5);

    // The stored bytes are the appended bytes with the offset stamped.
    let mut expected = batch_of("b", 2, 1_001);
    batch::stamp(&mut expected, 3, 0, 0);
    let read_b = log.read(3, 1 << 20).unwrap();
    assert_eq!(read_b.bytes, expected);

    // At the end: empty; past it or before the start: out of range.
    assert!(log.read(5, 1024).unwrap().bytes.is_empty());
    assert!(matches!(
        log.read(6, 1024),
        Err(LogError::OffsetOutOfRange {
            offset: 6,
            start: 0,
            end: 5
        })
    ));
    assert!(matches!(
        log.read(-1, 1024),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn bytes_max_is_soft_for_the_first_batch_and_hard_after() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", sim_default()).unwrap();
    let big = vec![7u8; 3000];
    log.append(&mut one(&big, 0)).unwrap();
    log.append(&mut one(b"small", 0)).unwrap();
    let read = log.read(0, 100).unwrap();
    assert_eq!(decode(&read.bytes), vec![(0, big.clone())]);
    assert_eq!(read.next_offset, 1);
    let both = log.read(0, 10_000).unwrap();
    assert_eq!(decode(&both.bytes).len(), 2);
}

#[test]
fn several_batches_in_one_append_are_all_or_nothing() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", sim_default()).unwrap();
    let mut two = batch_of("x", 2, 0);
    two.extend(batch_of("y", 3, 0));
    let info = log.append(&mut two).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 4));

    let mut bad = batch_of("ok", 1, 0);
    let mut corrupt = batch_of("bad", 1, 0);
    *corrupt.last_mut().unwrap() ^= 0xff;
    bad.extend(corrupt);
    let err = log.append(&mut bad).unwrap_err();
    assert!(
        matches!(&err, LogError::Batch(BatchError::InBatch { index: 1, source }) if matches!(**source, BatchError::CrcMismatch { .. })),
        "{err}"
    );
    assert_eq!(log.end_offset(), 5);
    assert_eq!(read_all(&log, 0).len(), 5);
}

#[test]
fn bad_batches_are_rejected_by_name_and_the_log_is_untouched() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let config = LogConfig {
        batch_bytes_max: 1024,
        ..LogConfig::default()
    };
    let log = dir.open_log("t-0", config).unwrap();
    log.append(&mut batch_of("keep", 2, 0)).unwrap();
    let before = log.read(0, 1 << 20).unwrap();

    let mut crc = batch_of("a", 1, 0);
    crc[30] ^= 1;
    let mut magic = batch_of("a", 1, 0);
    magic[16] = 1;
    let mut lying = batch_of("a", 1, 0);
    lying[8..12].copy_from_slice(&5_000i32.to_be_bytes());
    let mut short = batch_of("a", 1, 0);
    short.truncate(40);
    let mut huge = one(&vec![1u8; 2_000], 0);
    type IsExpected = fn(&LogError) -> bool;
    let cases: Vec<(&mut Vec<u8>, IsExpected)> = vec![
        (&mut crc, |e| {
            matches!(e, LogError::Batch(BatchError::CrcMismatch { .. }))
        }),
        (&mut magic, |e| {
            matches!(
                e,
                LogError::Batch(BatchError::UnsupportedMagic { magic: 1 })
            )
        }),
        (&mut lying, |e| {
            matches!(e, LogError::Batch(BatchError::LengthMismatch { .. }))
        }),
        (&mut short, |e| {
            matches!(e, LogError::Batch(BatchError::Truncated { .. }))
        }),
        (&mut huge, |e| {
            matches!(
                e,
                LogError::Batch(BatchError::TooLarge {
                    bytes_max: 1024,
                    ..
                })
            )
        }),
    ];
    for (bytes, is_expected) in cases {
        let err = log.append(bytes).unwrap_err();
        assert!(is_expected(&err), "unexpected error: {err}");
    }
    assert!(matches!(
        log.append(&mut Vec::new()),
        Err(LogError::Batch(BatchError::Empty))
    ));
    assert_eq!(log.read(0, 1 << 20).unwrap(), before);
    assert_eq!(log.end_offset(), 2);
    // And the log still takes good batches.
    assert_eq!(
        log.append(&mut batch_of("after", 1, 0))
            .unwrap()
            .base_offset,
        2
    );
}

#[test]
fn segments_roll_by_size_and_reads_cross_them() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", small_config()).unwrap();
    for i in 0..200 {
        log.append(&mut one(format!("v{i:04}").as_bytes(), i))
            .unwrap();
    }
    assert!(log.segment_count() > 2, "segments: {}", log.segment_count());
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 200);
    for (i, (offset, value)) in all.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, format!("v{i:04}").as_bytes());
    }
    // Every offset is found through the indexes of its segment.
    for offset in [0, 1, 57, 123, 199] {
        let read = log.read(offset, 1).unwrap();
        assert_eq!(decode(&read.bytes)[0].0, offset);
    }
}

#[test]
fn segments_roll_by_age() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let config = LogConfig {
        segment_ms: 1_000,
        ..small_config()
    };
    let log = dir.open_log("t-0", config).unwrap();
    log.append(&mut one(b"a", 0)).unwrap();
    clock.advance(999);
    log.append(&mut one(b"b", 0)).unwrap();
    assert_eq!(log.segment_count(), 1);
    clock.advance(1);
    log.append(&mut one(b"c", 0)).unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn reopen_keeps_everything_and_continues_offsets() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    {
        let dir = open_sim(&disk, &clock);
        let log = dir.open_log("t-0", small_config()).unwrap();
        for i in 0..100 {
            log.append(&mut one(format!("v{i}").as_bytes(), i)).unwrap();
        }
        dir.close().unwrap();
    }
    let dir = open_sim(&disk, &clock);
    assert_eq!(dir.list_logs().unwrap(), vec!["t-0".to_string()]);
    let log = dir.open_log("t-0", small_config()).unwrap();
    assert_eq!(
        (log.start_offset(), log.end_offset(), log.durable_offset()),
        (0, 100, 100)
    );
    assert_eq!(log.append(&mut one(b"next", 0)).unwrap().base_offset, 100);
    assert_eq!(read_all(&log, 0).len(), 101);
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
        let log = dir.open_log("t-0", small_config()).unwrap();
        for i in 0..150 {
            log.append(&mut one(format!("v{i}").as_bytes(), 1_000 + i))
                .unwrap();
        }
        dir.close().unwrap();
    }
    let log_dir = tmp.path().join("t-0");
    let mut names: Vec<_> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let indexes: Vec<_> = names.iter().filter(|n| n.ends_with(".index")).collect();
    let times: Vec<_> = names.iter().filter(|n| n.ends_with(".timeindex")).collect();
    assert!(indexes.len() >= 3);
    // Delete one sealed index, scribble over another sealed one and the
    // active one, truncate a time index mid-entry.
    std::fs::remove_file(log_dir.join(indexes[0])).unwrap();
    std::fs::write(log_dir.join(indexes[1]), [0xffu8; 20]).unwrap();
    std::fs::write(log_dir.join(indexes.last().unwrap()), [1u8; 16]).unwrap();
    let t = std::fs::read(log_dir.join(times[0])).unwrap();
    std::fs::write(log_dir.join(times[0]), &t[..t.len() - 5]).unwrap();

    let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
    let log = dir.open_log("t-0", small_config()).unwrap();
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 150);
    assert!(all.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
    for offset in [0, 20, 75, 149] {
        assert_eq!(decode(&log.read(offset, 1).unwrap().bytes)[0].0, offset);
    }
    assert_eq!(log.offset_for_time(1_000 + 42).unwrap(), Some(42));
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue_after_the_last_good_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: None,
        ..LogConfig::default()
    };
    {
        let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
        let log = dir.open_log("t-0", config.clone()).unwrap();
        for i in 0..10 {
            log.append(&mut one(format!("v{i}").as_bytes(), 0)).unwrap();
        }
        dir.close().unwrap();
    }
    // Half a batch, as a crash mid-write leaves it.
    let seg = tmp.path().join("t-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    let torn = one(b"torn-record", 0);
    let valid_len = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    bytes.truncate(valid_len);
    bytes.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(&seg, &bytes).unwrap();

    let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
    let log = dir.open_log("t-0", config).unwrap();
    assert_eq!(log.end_offset(), 10);
    assert_eq!(log.append(&mut one(b"v10", 0)).unwrap().base_offset, 10);
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 11);
    assert_eq!(all[10].1, b"v10");
}

#[test]
fn offset_for_time_finds_the_first_record_at_or_after() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", small_config()).unwrap();
    // Records at 100, 110, ..., in batches of 3 with distinct timestamps.
    let mut ts = 100;
    for _ in 0..60 {
        let mut b = BatchBuilder::new(ts);
        for _ in 0..3 {
            b.push(ts, None, Some(b"x"), &[]);
            ts += 10;
        }
        log.append(&mut b.build()).unwrap();
    }
    assert!(log.segment_count() > 1);
    assert_eq!(log.offset_for_time(0).unwrap(), Some(0));
    assert_eq!(log.offset_for_time(100).unwrap(), Some(0));
    assert_eq!(log.offset_for_time(101).unwrap(), Some(1));
    assert_eq!(log.offset_for_time(1_000).unwrap(), Some(90));
    assert_eq!(log.offset_for_time(1_005).unwrap(), Some(91));
    assert_eq!(log.offset_for_time(100 + 179 * 10).unwrap(), Some(179));
    assert_eq!(log.offset_for_time(100 + 180 * 10).unwrap(), None);
}

#[test]
fn log_append_time_batches_get_the_logs_clock() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(5_000));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", sim_default()).unwrap();
    let mut b = BatchBuilder::new(1).log_append_time();
    b.push(1, None, Some(b"x"), &[]);
    log.append(&mut b.build()).unwrap();
    let read = log.read(0, 1024).unwrap();
    let header = batch::validate(&read.bytes).unwrap();
    assert_eq!(header.max_timestamp, 5_000);
}

#[test]
fn retention_by_time_deletes_old_segments_and_moves_the_start() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let config = LogConfig {
        retention_ms: Some(10_000),
        ..small_config()
    };
    let log = dir.open_log("t-0", config).unwrap();
    for i in 0..100 {
        log.append(&mut one(format!("old{i}").as_bytes(), 0))
            .unwrap();
    }
    clock.set(20_000);
    for i in 0..10 {
        log.append(&mut one(format!("new{i}").as_bytes(), 20_000))
            .unwrap();
    }
    let outcome = log.enforce_retention().unwrap();
    assert!(outcome.segments_deleted > 0);
    let start = log.start_offset();
    assert_eq!(outcome.log_start_offset, start);
    assert!(start > 0 && start <= 100, "start {start}");
    assert!(matches!(
        log.read(0, 10),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let rest = read_all(&log, start);
    assert_eq!(rest.last().unwrap().0, 109);
    // An idle log whose whole content expired keeps no record.
    clock.set(40_000);
    log.enforce_retention().unwrap();
    assert_eq!(log.start_offset(), 110);
    assert_eq!(log.end_offset(), 110);
    assert_eq!(
        log.append(&mut one(b"later", 40_000)).unwrap().base_offset,
        110
    );
}

#[test]
fn segments_below_an_offset_are_deleted_whole_and_the_active_one_never() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", small_config()).unwrap();
    for i in 0..200 {
        log.append(&mut one(format!("v{i:03}").as_bytes(), 0))
            .unwrap();
    }
    assert!(log.segment_count() > 3);
    // Nothing lies entirely below the log's first offset.
    assert_eq!(log.delete_segments_before(0).unwrap().segments_deleted, 0);
    // An offset inside a segment keeps that segment: the new start is its
    // base, at or before the offset.
    let outcome = log.delete_segments_before(100).unwrap();
    assert!(outcome.segments_deleted > 0 && outcome.bytes_deleted > 0);
    let start = log.start_offset();
    assert_eq!(outcome.log_start_offset, start);
    assert!(start > 0 && start <= 100, "start {start}");
    assert_eq!(read_all(&log, start).len(), 200 - start as usize);
    assert!(matches!(
        log.read(0, 10),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Past the end, everything but the active segment goes, and appends go on.
    let outcome = log.delete_segments_before(i64::MAX).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(outcome.log_start_offset > 100 && outcome.log_start_offset <= 200);
    assert_eq!(log.append(&mut one(b"after", 0)).unwrap().base_offset, 200);
    let start = log.start_offset();
    dir.close().unwrap();
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", small_config()).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (start, 201));
    assert_eq!(read_all(&log, start).last().unwrap().1, b"after".to_vec());
}

#[test]
fn retention_by_size_keeps_the_newest_bytes() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let config = LogConfig {
        retention_bytes: Some(16 * 1024),
        ..small_config()
    };
    let log = dir.open_log("t-0", config).unwrap();
    for i in 0..1_000 {
        log.append(&mut one(format!("v{i:05}").as_bytes(), 0))
            .unwrap();
    }
    log.enforce_retention().unwrap();
    assert!(
        log.size_bytes() <= 16 * 1024 + 8 * 1024,
        "{}",
        log.size_bytes()
    );
    assert!(log.size_bytes() >= 16 * 1024 - 8 * 1024);
    let rest = read_all(&log, log.start_offset());
    assert_eq!(rest.last().unwrap().0, 999);
    assert_eq!(rest.first().unwrap().0, log.start_offset());
}

#[test]
fn a_failed_fsync_fails_the_append_and_turns_the_log_read_only() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("t-0", sim_default()).unwrap();
    let other = dir.open_log("t-1", sim_default()).unwrap();
    log.append(&mut one(b"safe", 0)).unwrap();
    disk.fail_next_syncs(1);
    let err = log.append(&mut one(b"lost", 0)).unwrap_err();
    assert!(matches!(err, LogError::ReadOnly { .. }), "{err}");
    // The record that was never durable is never visible.
    assert_eq!(
        decode(&log.read(0, 1 << 20).unwrap().bytes),
        vec![(0, b"safe".to_vec())]
    );
    assert!(matches!(
        log.append(&mut one(b"again", 0)),
        Err(LogError::ReadOnly { .. })
    ));
    // Other logs of the directory go on.
    assert_eq!(other.append(&mut one(b"fine", 0)).unwrap().base_offset, 0);
}

#[test]
fn many_appenders_on_many_logs_share_fsyncs() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let logs: Vec<_> = (0..4)
        .map(|p| dir.open_log(&format!("t-{p}"), sim_default()).unwrap())
        .collect();
    // A sync that takes as long as a fast disk's: appenders arriving during
    // a round must be served together by the next.
    disk.set_sync_delay(std::time::Duration::from_millis(1));
    let before = dir.sync_stats();
    let n_per_thread = 100;
    std::thread::scope(|s| {
        for t in 0..8 {
            let log = logs[t % 4].clone();
            s.spawn(move || {
                for i in 0..n_per_thread {
                    log.append(&mut one(format!("{t}-{i}").as_bytes(), 0))
                        .unwrap();
                }
            });
        }
    });
    let after = dir.sync_stats();
    let appends = 8 * n_per_thread as u64;
    assert_eq!(
        logs.iter().map(|l| l.end_offset()).sum::<i64>(),
        appends as i64
    );
    assert!(logs.iter().all(|l| l.durable_offset() == l.end_offset()));
    // Each round syncs each dirty log once; with 8 appenders over 4 logs
    // and syncs that take time, a round serves several appends.
    let rounds = after.rounds - before.rounds;
    assert!(
        rounds * 2 <= appends,
        "rounds {rounds} for {appends} appends"
    );
    assert!(after.data_syncs - before.data_syncs <= rounds * 4);
}

#[test]
fn interval_and_never_policies_make_appends_visible_at_once() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let interval = LogConfig {
        fsync: FsyncPolicy::IntervalMs(20),
        ..sim_default()
    };
    let never = LogConfig {
        fsync: FsyncPolicy::Never,
        ..sim_default()
    };
    let a = dir.open_log("interval", interval).unwrap();
    let b = dir.open_log("never", never).unwrap();
    a.append(&mut one(b"a", 0)).unwrap();
    b.append(&mut one(b"b", 0)).unwrap();
    assert_eq!(a.high_watermark(), 1);
    assert_eq!(b.high_watermark(), 1);
    assert_eq!(b.durable_offset(), 0);
    // The sync thread syncs the interval log once the (manual) clock says so.
    clock.advance(25);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while a.durable_offset() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sync thread never synced"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(b.durable_offset(), 0);
    // An explicit wait syncs even a `never` log.
    b.wait_durable(1).unwrap();
    assert_eq!(b.durable_offset(), 1);
}

#[test]
fn a_second_opener_of_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let first = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
    let err = DataDir::open(tmp.path(), DirConfig::default()).unwrap_err();
    assert!(matches!(err, LogError::Locked { .. }), "{err}");
    drop(first);
    DataDir::open(tmp.path(), DirConfig::default()).unwrap();
}

#[test]
fn bad_names_and_configs_are_refused() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    for name in ["", ".", "..", ".hidden", "a/b", "sp ace", &"x".repeat(250)] {
        assert!(
            matches!(
                dir.open_log(name, sim_default()),
                Err(LogError::InvalidName { .. })
            ),
            "{name:?}"
        );
    }
    let config = LogConfig {
        batch_bytes_max: 2 * 1024 * 1024 * 1024,
        ..LogConfig::default()
    };
    assert!(matches!(
        dir.open_log("t", config),
        Err(LogError::InvalidConfig {
            field: "batch_bytes_max",
            ..
        })
    ));
}

#[test]
fn deleted_logs_are_gone_after_reopen() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let storage: Arc<SimStorage> = Arc::new(disk.clone());
    {
        let dir = open_sim(&disk, &clock);
        dir.open_log("keep", sim_default()).unwrap();
        let doomed = dir.open_log("doomed", sim_default()).unwrap();
        doomed.append(&mut one(b"x", 0)).unwrap();
        dir.delete_log("doomed").unwrap();
        assert!(matches!(
            doomed.append(&mut one(b"y", 0)),
            Err(LogError::Closed { .. })
        ));
    }
    let dir = DataDir::open_with(storage, Arc::new(clock), ROOT, DirConfig::default()).unwrap();
    assert_eq!(dir.list_logs().unwrap(), vec!["keep".to_string()]);
}

#[test]
fn reopening_a_large_log_reads_only_a_little_of_it() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let config = LogConfig {
        segment_bytes_max: 1024 * 1024,
        batch_bytes_max: 64 * 1024,
        preallocate_bytes: 0,
        zero_ahead_bytes: 0,
        retention_ms: None,
        ..LogConfig::default()
    };
    let value = vec![5u8; 1000];
    {
        let dir = open_sim(&disk, &clock);
        let log = dir.open_log("big", config.clone()).unwrap();
        for _ in 0..8 * 1024 {
            let mut b = BatchBuilder::new(0);
            b.push(0, None, Some(&value), &[]);
            log.append_nowait(&mut b.build()).unwrap();
        }
        log.wait_durable(log.end_offset()).unwrap();
        dir.close().unwrap();
    }
    let before = disk.n_bytes_read();
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log("big", config).unwrap();
    let read = disk.n_bytes_read() - before;
    assert_eq!(log.end_offset(), 8 * 1024);
    assert!(log.size_bytes() > 8_000_000);
    // The active segment's indexes (a few KiB each) and its tail after the
    // last index entry; sealed segments cost a header each.
    assert!(
        read < 200 * 1024,
        "reopening read {read} bytes of an {} byte log",
        log.size_bytes()
    );
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_loses_nothing() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let config = LogConfig {
        preallocate_bytes: 0,
        zero_ahead_bytes: 0,
        ..small_config()
    };
    let log = dir.open_log("t-0", config.clone()).unwrap();
    let value = |i: usize| {
        format!(
            "v{i}-{}",
            "x".repeat(if i.is_multiple_of(2) { 10 } else { 1500 })
        )
    };
    // Fill the active segment close to its 4 KiB limit.
    let mut n = 0;
    while log.size_bytes() < 3_000 {
        log.append(&mut one(value(n).as_bytes(), 0)).unwrap();
        n += 1;
    }
    assert_eq!(log.segment_count(), 1);
    disk.set_full(true);
    // Small appends fail at the write, large ones at the new segment file a
    // roll needs; either way with the I/O error and nothing moves.
    for i in 0..20 {
        let err = log.append(&mut one(value(i).as_bytes(), 0)).unwrap_err();
        let is_full = matches!(&err, LogError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull);
        assert!(is_full, "{err}");
        assert_eq!(log.end_offset(), n as i64);
    }
    assert_eq!(read_all(&log, 0).len(), n);
    // Space comes back: the log goes on with no gap and no garbage.
    disk.set_full(false);
    for i in n..n + 50 {
        assert_eq!(
            log.append(&mut one(value(i).as_bytes(), 0))
                .unwrap()
                .base_offset,
            i as i64
        );
    }
    assert!(log.segment_count() > 1);
    let check = |log: &weir_log::Log| {
        let all = read_all(log, 0);
        assert_eq!(all.len(), n + 50);
        for (i, (offset, v)) in all.iter().enumerate() {
            assert_eq!((*offset, v), (i as i64, &value(i).into_bytes()));
        }
    };
    check(&log);
    dir.close().unwrap();
    let dir = open_sim(&disk, &clock);
    check(&dir.open_log("t-0", config).unwrap());
}

#[test]
fn metadata_files_are_replaced_atomically() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    assert_eq!(dir.read_meta(".topics").unwrap(), None);
    dir.write_meta(".topics", b"first").unwrap();
    dir.write_meta(".topics", b"second, longer").unwrap();
    assert_eq!(
        dir.read_meta(".topics").unwrap().as_deref(),
        Some(&b"second, longer"[..])
    );
    assert!(matches!(
        dir.write_meta("topics", b"x"),
        Err(LogError::InvalidName { .. })
    ));
    assert!(matches!(
        dir.write_meta(".lock", b"x"),
        Err(LogError::InvalidName { .. })
    ));
    assert_eq!(dir.list_logs().unwrap(), Vec::<String>::new());
    // Whatever a crash keeps, it is one of the versions written whole.
    dir.write_meta(".topics", b"third").unwrap();
    for seed in 0..20 {
        let after = disk.crash(seed);
        let reopened = open_sim(&after, &clock);
        assert_eq!(
            reopened.read_meta(".topics").unwrap().as_deref(),
            Some(&b"third"[..])
        );
    }
}
