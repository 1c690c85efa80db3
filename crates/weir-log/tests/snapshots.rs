//! Snapshots a log keeps for its owner: written only for offsets the log
//! has, the newest two kept, a damaged one passed over for the one before,
//! and one past the log's end (its tail lost) ignored.

use weir_log::batch::BatchBuilder;
use weir_log::{DataDir, DirConfig, LogConfig, LogError, SNAPSHOTS_KEPT};

fn append(log: &weir_log::Log, n: usize) {
    for _ in 0..n {
        let mut b = BatchBuilder::new(0);
        b.push(0, None, Some(b"v"), &[]);
        log.append(&mut b.build()).unwrap();
    }
}

fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".snapshot"))
        .collect();
    names.sort();
    names
}

#[test]
fn snapshots_are_kept_checked_and_passed_over_when_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
    let log = dir.open_log("t-0", LogConfig::default()).unwrap();
    assert_eq!(log.latest_snapshot().unwrap(), None);
    assert!(matches!(
        log.write_snapshot(1, b"ahead"),
        Err(LogError::InvalidSnapshot { offset: 1, .. })
    ));
    for (i, state) in [b"one", b"two", b"six"].iter().enumerate() {
        append(&log, 2);
        log.write_snapshot(2 * (i as i64 + 1), *state).unwrap();
    }
    assert_eq!(log.latest_snapshot().unwrap(), Some((6, b"six".to_vec())));
    let files = snapshot_files(log.dir());
    assert_eq!(files.len(), SNAPSHOTS_KEPT, "{files:?}");
    // A damaged newest one: the one before it is used.
    let newest = log.dir().join(&files[1]);
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 6;
    bytes[last] ^= 1;
    std::fs::write(&newest, bytes).unwrap();
    assert_eq!(log.latest_snapshot().unwrap(), Some((4, b"two".to_vec())));
    // Snapshots survive a reopen; a temporary file a crash left goes.
    std::fs::write(log.dir().join("00000000000000000009.snapshot.tmp"), b"x").unwrap();
    drop(log);
    drop(dir);
    let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
    let log = dir.open_log("t-0", LogConfig::default()).unwrap();
    assert_eq!(log.latest_snapshot().unwrap(), Some((4, b"two".to_vec())));
    assert_eq!(snapshot_files(log.dir()).len(), SNAPSHOTS_KEPT);
}

#[test]
fn a_snapshot_past_the_end_of_the_log_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
    let log = dir.open_log("t-0", LogConfig::default()).unwrap();
    append(&log, 3);
    log.write_snapshot(1, b"early").unwrap();
    log.write_snapshot(3, b"end").unwrap();
    let path = log.dir().to_path_buf();
    let first_batch = log.read(0, 1).unwrap().bytes.len() as u64;
    drop(log);
    drop(dir);
    // The log's tail is lost (as a disk that lied about a sync would lose
    // it): the snapshot at 3 describes batches that are gone.
    let segment = path.join("00000000000000000000.log");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    f.set_len(first_batch).unwrap();
    drop(f);
    let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
    let log = dir.open_log("t-0", LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), 1);
    assert_eq!(log.latest_snapshot().unwrap(), Some((1, b"early".to_vec())));
}
