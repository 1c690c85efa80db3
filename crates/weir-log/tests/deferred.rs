//! Deferred writes: under `fsync=always` a small append into space the log
//! already zeroed is kept in memory and written by the next sync round,
//! all waiting appends with one `pwrite`. These tests pin where those bytes
//! must reach the file (the round, a segment roll, a change of policy, a
//! close) and what a failed write does.

mod common;

use common::*;
use weir_log::sim::SimStorage;
use weir_log::{FsyncPolicy, LogConfig, LogError, ManualClock};

/// Appends `n` one-record batches without waiting; returns the end offset.
fn append_unwaited(log: &weir_log::Log, prefix: &str, n: usize) -> i64 {
    let mut end = 0;
    for i in 0..n {
        let info = log
            .append_nowait(&mut one(format!("{prefix}-{i}").as_bytes(), 0))
            .unwrap();
        end = info.last_offset + 1;
    }
    end
}

fn values(records: &[(i64, Vec<u8>)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .collect()
}

fn expected(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// `"first"` and then [`expected`].
fn after_first(prefix: &str, n: usize) -> Vec<String> {
    let mut want = vec!["first".to_owned()];
    want.extend(expected(prefix, n));
    want
}

/// A simulated disk with log `name` (`fsync=always`) holding one record,
/// `"first"`, written at once: its append zeroes ahead of itself, so small
/// appends after it are deferred.
fn log_with_first(name: &str) -> (SimStorage, ManualClock, weir_log::DataDir, weir_log::Log) {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let log = dir.open_log(name, sim_default()).unwrap();
    log.append(&mut one(b"first", 0)).unwrap();
    (disk, clock, dir, log)
}

#[test]
fn a_round_writes_every_waiting_append_with_one_write() {
    let (disk, clock, dir, log) = log_with_first("d-0");

    let writes = disk.n_writes();
    let end = append_unwaited(&log, "w", 20);
    assert_eq!(disk.n_writes(), writes, "appends into zeroed space wait");
    assert_eq!(log.high_watermark(), 1, "nothing unsynced is visible");

    log.wait_durable(end).unwrap();
    assert_eq!(disk.n_writes(), writes + 1, "one write for the round");
    let want = after_first("w", 20);
    assert_eq!(values(&read_all(&log, 0)), want);

    // What the round synced survives a power loss.
    drop(log);
    let after = disk.crash(7);
    drop(dir);
    let dir = open_sim(&after, &clock);
    let log = dir.open_log("d-0", sim_default()).unwrap();
    assert_eq!(values(&read_all(&log, 0)), want);
}

#[test]
fn a_roll_writes_the_deferred_bytes_before_it_seals() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        ..small_config()
    };
    let log = dir.open_log("d-roll", config.clone()).unwrap();
    // Many segments' worth, none waited for: every roll must write what
    // its segment deferred before the seal cuts the file to its size.
    let end = append_unwaited(&log, "r", 400);
    assert!(log.segment_count() > 3, "{} segments", log.segment_count());
    log.wait_durable(end).unwrap();
    assert_eq!(values(&read_all(&log, 0)), expected("r", 400));

    drop(log);
    dir.close().unwrap();
    let after = disk.crash(11);
    let dir = open_sim(&after, &clock);
    let log = dir.open_log("d-roll", config).unwrap();
    assert_eq!(values(&read_all(&log, 0)), expected("r", 400));
}

#[test]
fn leaving_fsync_always_writes_the_deferred_bytes_for_readers() {
    let (_disk, _clock, _dir, log) = log_with_first("d-policy");
    append_unwaited(&log, "p", 5);
    // Under `never` readers see up to the end offset at once.
    log.set_config(LogConfig {
        fsync: FsyncPolicy::Never,
        ..sim_default()
    })
    .unwrap();
    assert_eq!(values(&read_all(&log, 0)), after_first("p", 5));
}

#[test]
fn closing_writes_and_syncs_what_was_deferred() {
    let (disk, clock, dir, log) = log_with_first("d-close");
    append_unwaited(&log, "c", 5);
    drop(log);
    dir.close().unwrap();
    let after = disk.crash(3);
    let dir = open_sim(&after, &clock);
    let log = dir.open_log("d-close", sim_default()).unwrap();
    assert_eq!(values(&read_all(&log, 0)), after_first("c", 5));
}

#[test]
fn a_failed_deferred_write_fails_the_log_and_its_waiters() {
    let (disk, _clock, dir, log) = log_with_first("d-fail");
    let end = append_unwaited(&log, "f", 3);
    disk.fail_next_writes(1);
    let err = log.wait_durable(end).unwrap_err();
    assert!(matches!(err, LogError::ReadOnly { .. }), "{err}");
    assert!(err.to_string().contains("write"), "{err}");
    // Nothing of the lost appends is visible, and the log takes no more.
    assert_eq!(values(&read_all(&log, 0)), after_first("f", 0));
    let again = log.append(&mut one(b"later", 0)).unwrap_err();
    assert!(matches!(again, LogError::ReadOnly { .. }), "{again}");
    // Another log of the directory is unaffected.
    let other = dir.open_log("d-other", sim_default()).unwrap();
    other.append(&mut one(b"fine", 0)).unwrap();
    assert_eq!(values(&read_all(&other, 0)), vec!["fine".to_owned()]);
}

#[test]
fn a_full_disk_fails_only_the_append_that_needs_space() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let dir = open_sim(&disk, &clock);
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        ..small_config()
    };
    let log = dir.open_log("d-full", config).unwrap();
    log.append(&mut one(b"first", 0)).unwrap();
    disk.set_full(true);
    // Appends into zeroed space go on; the first that needs new space (a
    // new segment, or blocks past the zeroed end) fails alone.
    let mut acked = vec!["first".to_owned()];
    let mut refused = 0;
    for i in 0..200 {
        let value = format!("x-{i}");
        match log.append(&mut one(value.as_bytes(), 0)) {
            Ok(_) => acked.push(value),
            Err(e) => {
                assert!(
                    matches!(e, LogError::Io { .. }) && e.to_string().contains("full"),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "a full disk refused nothing");
    assert_eq!(values(&read_all(&log, 0)), acked);
    disk.set_full(false);
    log.append(&mut one(b"after", 0)).unwrap();
    acked.push("after".to_owned());
    assert_eq!(values(&read_all(&log, 0)), acked);
}
