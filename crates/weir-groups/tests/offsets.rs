//! The offset store through its public API: commits and deletions read back
//! and surviving reopens, snapshots that spare reopening the history,
//! corrupt or stale snapshots, limits, and a seeded power-loss test on the
//! simulated disk (every acknowledged commit survives; nothing shown before
//! the crash is lost).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_groups::{
    COMMIT_PARTITIONS_MAX, CommittedOffset, GROUP_ID_BYTES_MAX, GroupError, OFFSETS_TOPIC,
    OffsetStore, OffsetsConfig, SNAPSHOT_FILE, TopicPartition,
};
use weir_log::sim::{SimRng, SimStorage};
use weir_log::{DataDir, DirConfig, ManualClock};

/// Every group's offsets, as OffsetFetch would show them.
type State = BTreeMap<String, BTreeMap<TopicPartition, CommittedOffset>>;

const ROOT: &str = "/data";

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition {
        topic: topic.to_owned(),
        partition,
    }
}

fn committed(offset: i64, metadata: &str) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: 3,
        metadata: metadata.to_owned(),
        commit_timestamp_ms: 1_700_000_000_000 + offset,
    }
}

/// A store whose log rolls every 4 KiB (the smallest segment allowed), so
/// a few dozen commits fill a segment.
fn small_config() -> OffsetsConfig {
    OffsetsConfig {
        metadata_bytes_max: 256,
        segment_bytes: weir_log::SEGMENT_BYTES_MIN,
        ..OffsetsConfig::default()
    }
}

fn open_os(path: &Path, config: OffsetsConfig) -> (Arc<Broker>, OffsetStore) {
    let dir = DataDir::open(path, DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(dir, BrokerConfig::default()).unwrap());
    let store = OffsetStore::open(broker.clone(), config).unwrap();
    (broker, store)
}

fn open_sim(
    disk: &SimStorage,
    clock: &ManualClock,
    config: OffsetsConfig,
) -> (Arc<Broker>, OffsetStore) {
    let dir = DataDir::open_with(
        Arc::new(disk.clone()),
        Arc::new(clock.clone()),
        ROOT,
        DirConfig::default(),
    )
    .unwrap();
    let broker = Arc::new(Broker::open(dir, BrokerConfig::default()).unwrap());
    let store = OffsetStore::open(broker.clone(), config).unwrap();
    (broker, store)
}

fn state(store: &OffsetStore) -> State {
    store
        .groups()
        .into_iter()
        .map(|g| {
            let offsets = store.committed(&g);
            (g, offsets)
        })
        .collect()
}

/// Commits `n` rounds of offsets for a few groups and partitions; returns
/// what the store must then hold.
fn commit_rounds(store: &OffsetStore, n: i64) -> State {
    let mut expected = State::new();
    for round in 0..n {
        let group = format!("group-{}", round % 3);
        let offsets: Vec<_> = (0..2)
            .map(|p| (tp("orders", p), committed(round * 10 + i64::from(p), "m")))
            .collect();
        store.commit(&group, &offsets).unwrap();
        expected.entry(group).or_default().extend(offsets);
    }
    expected
}

#[test]
fn a_commit_is_fetched_back_with_its_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, store) = open_os(tmp.path(), OffsetsConfig::default());
    assert!(broker.topic(OFFSETS_TOPIC).unwrap().internal);
    assert_eq!(store.groups(), Vec::<String>::new());
    let offsets = vec![
        (tp("orders", 0), committed(42, "")),
        (tp("orders", 1), committed(7, "{\"host\":\"a\"}")),
        (tp("payments", 0), committed(0, "ünïcode metadata")),
    ];
    store.commit("billing", &offsets).unwrap();
    let fetched = store.committed("billing");
    assert_eq!(fetched, offsets.iter().cloned().collect());
    assert_eq!(
        store.committed_offset("billing", &tp("orders", 1)),
        Some(committed(7, "{\"host\":\"a\"}"))
    );
    assert_eq!(store.committed_offset("billing", &tp("orders", 9)), None);
    assert_eq!(store.committed_offset("nobody", &tp("orders", 0)), None);
    assert_eq!(store.groups(), vec!["billing".to_string()]);
    // A later commit replaces one partition's offset and keeps the others.
    store
        .commit("billing", &[(tp("orders", 0), committed(50, "later"))])
        .unwrap();
    assert_eq!(
        store.committed_offset("billing", &tp("orders", 0)),
        Some(committed(50, "later"))
    );
    assert_eq!(store.committed("billing").len(), 3);
    // One batch per commit, one record per partition.
    let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
    assert_eq!(log.end_offset(), 4);
    let read = log.read(0, 1 << 20).unwrap();
    let header = weir_log::batch::validate(
        &read.bytes[..weir_log::batch::BatchHeader::parse(&read.bytes)
            .unwrap()
            .total_bytes()],
    )
    .unwrap();
    assert_eq!(header.record_count, 3);
}

#[test]
fn records_have_kafkas_offset_commit_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_234);
    let config = OffsetsConfig {
        clock: Some(Arc::new(clock)),
        ..OffsetsConfig::default()
    };
    let (broker, store) = open_os(tmp.path(), config);
    store
        .commit("g", &[(tp("t", 5), committed(9, "md"))])
        .unwrap();
    store.delete_group("g").unwrap().wait().unwrap();
    let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
    let read = log.read(0, 1 << 20).unwrap();
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < read.bytes.len() {
        let len = weir_log::batch::BatchHeader::parse(&read.bytes[pos..])
            .unwrap()
            .total_bytes();
        for r in weir_log::batch::records(&read.bytes[pos..pos + len]).unwrap() {
            records.push((
                r.timestamp,
                r.key.unwrap().to_vec(),
                r.value.map(<[u8]>::to_vec),
            ));
        }
        pos += len;
    }
    let key = [
        &[0, 1][..],   // key version 1
        &[0, 1, b'g'], // group
        &[0, 1, b't'], // topic
        &[0, 0, 0, 5], // partition
    ]
    .concat();
    let value = [
        &[0, 3][..],                               // value version 3
        &9i64.to_be_bytes(),                       // offset
        &3i32.to_be_bytes(),                       // leader epoch
        &[0, 2, b'm', b'd'],                       // metadata
        &(1_700_000_000_000i64 + 9).to_be_bytes(), // commit timestamp
    ]
    .concat();
    assert_eq!(
        records,
        vec![(1_234, key.clone(), Some(value)), (1_234, key, None)]
    );
}

#[test]
fn offsets_survive_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = {
        let (_broker, store) = open_os(tmp.path(), OffsetsConfig::default());
        commit_rounds(&store, 30)
    };
    let (_broker, store) = open_os(tmp.path(), OffsetsConfig::default());
    assert_eq!(state(&store), expected);
    let recovery = store.recovery();
    assert_eq!(recovery.snapshot_offset, None);
    assert_eq!((recovery.replayed_from, recovery.records_replayed), (0, 60));
    assert_eq!(recovery.records_skipped, 0);
}

#[test]
fn deleted_groups_offsets_and_topics_stay_deleted_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = {
        let (broker, store) = open_os(tmp.path(), OffsetsConfig::default());
        let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
        let all = |n| {
            vec![
                (tp("a", 0), committed(n, "")),
                (tp("a", 1), committed(n + 1, "")),
                (tp("b", 0), committed(n + 2, "")),
            ]
        };
        store.commit("doomed", &all(0)).unwrap();
        store.commit("trimmed", &all(10)).unwrap();
        store.commit("kept", &all(20)).unwrap();
        store.delete_group("doomed").unwrap().wait().unwrap();
        assert!(store.committed("doomed").is_empty());
        store
            .delete_offsets("trimmed", &[tp("a", 1), tp("a", 7)])
            .unwrap()
            .wait()
            .unwrap();
        store.delete_topic("b").unwrap().wait().unwrap();
        // Deleting what is not there writes nothing.
        let end = log.end_offset();
        store.delete_group("never").unwrap().wait().unwrap();
        store
            .delete_offsets("kept", &[tp("z", 0)])
            .unwrap()
            .wait()
            .unwrap();
        store.delete_topic("b").unwrap().wait().unwrap();
        assert_eq!(log.end_offset(), end);
        let expected = state(&store);
        assert_eq!(
            store.groups(),
            vec!["kept".to_string(), "trimmed".to_string()]
        );
        assert_eq!(
            store.committed("trimmed").into_keys().collect::<Vec<_>>(),
            vec![tp("a", 0)]
        );
        assert_eq!(store.committed("kept").len(), 2);
        expected
    };
    let (_broker, store) = open_os(tmp.path(), OffsetsConfig::default());
    assert_eq!(state(&store), expected);
}

/// A deletion written after a commit that is not yet acknowledged deletes
/// it too: both are in the log, in that order.
#[test]
fn a_deletion_covers_commits_still_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let (_broker, store) = open_os(tmp.path(), OffsetsConfig::default());
    let first = store
        .commit_nowait("g", &[(tp("t", 0), committed(1, ""))])
        .unwrap();
    let deletion = store.delete_group("g").unwrap();
    first.wait().unwrap();
    deletion.wait().unwrap();
    assert_eq!(store.groups(), Vec::<String>::new());
}

#[test]
fn commits_show_only_once_durable() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let (broker, store) = open_sim(&disk, &clock, small_config());
    let pending = store
        .commit_nowait("g", &[(tp("t", 0), committed(5, ""))])
        .unwrap();
    let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
    assert_eq!((log.end_offset(), log.durable_offset()), (1, 0));
    assert!(store.committed("g").is_empty());
    assert!(store.groups().is_empty());
    pending.wait().unwrap();
    assert_eq!(
        store.committed_offset("g", &tp("t", 0)),
        Some(committed(5, ""))
    );
}

#[test]
fn concurrent_commits_to_one_partition_end_in_log_order() {
    let tmp = tempfile::tempdir().unwrap();
    let shown = {
        let (_broker, store) = open_os(tmp.path(), OffsetsConfig::default());
        let store = Arc::new(store);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let offsets = [
                            (tp("t", 0), committed(t * 1000 + i, "")),
                            (tp("t", 1 + t as i32), committed(i, "")),
                        ];
                        store.commit("g", &offsets).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        state(&store)
    };
    // The map equals a replay of the log, whatever order the waiters woke in.
    let (_broker, store) = open_os(tmp.path(), OffsetsConfig::default());
    assert_eq!(state(&store), shown);
    assert_eq!(store.committed("g").len(), 5);
}

#[test]
fn bad_commits_are_refused_by_name_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker, store) = open_os(tmp.path(), OffsetsConfig::default());
    let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
    let long_metadata = "x".repeat(4097);
    let err = store
        .commit_nowait(
            "g",
            &[
                (tp("t", 0), committed(1, "fine")),
                (tp("t", 1), committed(1, &long_metadata)),
            ],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            GroupError::MetadataTooLarge {
                bytes: 4097,
                bytes_max: 4096
            }
        ),
        "{err}"
    );
    let one = [(tp("t", 0), committed(1, ""))];
    assert!(matches!(
        store.commit_nowait("", &one),
        Err(GroupError::InvalidGroupId)
    ));
    assert!(matches!(
        store.delete_group(""),
        Err(GroupError::InvalidGroupId)
    ));
    let long_group = "g".repeat(GROUP_ID_BYTES_MAX + 1);
    assert!(matches!(
        store.commit_nowait(&long_group, &one),
        Err(GroupError::GroupIdTooLong { .. })
    ));
    let many: Vec<_> = (0..=COMMIT_PARTITIONS_MAX as i32)
        .map(|p| (tp("t", p), committed(1, "")))
        .collect();
    assert!(matches!(
        store.commit_nowait("g", &many),
        Err(GroupError::TooManyPartitions { .. })
    ));
    assert!(matches!(
        store.commit_nowait("g", &[(tp("bad topic", 0), committed(1, ""))]),
        Err(GroupError::Broker(
            weir_broker::BrokerError::InvalidTopic { .. }
        ))
    ));
    assert_eq!(log.end_offset(), 0);
    assert!(store.groups().is_empty());
    // An empty commit is no commit.
    store.commit("g", &[]).unwrap();
    assert_eq!(log.end_offset(), 0);
}

#[test]
fn commits_past_the_size_or_count_limits_are_refused() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let config = OffsetsConfig {
        offsets_max: 5,
        ..small_config()
    };
    let (broker, store) = open_sim(&disk, &clock, config);
    let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
    // 4 KiB segments take batches of 4 KiB: 40 partitions with 100 bytes of
    // metadata each do not fit.
    let big: Vec<_> = (0..40)
        .map(|p| (tp("t", p), committed(1, &"m".repeat(100))))
        .collect();
    assert!(matches!(
        store.commit_nowait("g", &big),
        Err(GroupError::CommitTooLarge {
            bytes_max: 4096,
            ..
        })
    ));
    let five: Vec<_> = (0..5).map(|p| (tp("t", p), committed(1, ""))).collect();
    store.commit("g", &five).unwrap();
    // Overwriting is always possible; a sixth offset is not.
    store.commit("g", &five[..2]).unwrap();
    assert!(matches!(
        store.commit_nowait("h", &[(tp("t", 0), committed(1, ""))]),
        Err(GroupError::TooManyOffsets { offsets_max: 5 })
    ));
    store
        .delete_offsets("g", &[tp("t", 0)])
        .unwrap()
        .wait()
        .unwrap();
    store
        .commit("h", &[(tp("t", 0), committed(1, ""))])
        .unwrap();
    assert_eq!(log.end_offset(), 9);
    // A config whose segments cannot hold one commit is refused.
    let err = OffsetStore::open(
        broker.clone(),
        OffsetsConfig {
            metadata_bytes_max: 4000,
            ..small_config()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            GroupError::InvalidConfig {
                field: "segment_bytes",
                ..
            }
        ),
        "{err}"
    );
}

/// Deleting a group with more offsets than one batch holds writes several
/// batches; all of them apply.
#[test]
fn a_large_group_is_deleted_in_several_batches() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let (broker, store) = open_sim(&disk, &clock, small_config());
    for chunk in 0..10 {
        let offsets: Vec<_> = (0..20)
            .map(|p| (tp(&format!("topic-{chunk}"), p), committed(1, "")))
            .collect();
        store.commit("big", &offsets).unwrap();
    }
    assert_eq!(store.committed("big").len(), 200);
    let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
    let end = log.end_offset();
    store.delete_group("big").unwrap().wait().unwrap();
    assert!(store.groups().is_empty());
    assert_eq!(log.end_offset(), end + 200);
    drop(store);
    drop(broker);
    let (_broker, store) = open_sim(&disk, &clock, small_config());
    assert!(store.groups().is_empty());
}

#[test]
fn a_snapshot_after_a_roll_lets_reopen_skip_the_history() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let (history_bytes, expected) = {
        let (broker, store) = open_sim(&disk, &clock, small_config());
        let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
        // No roll yet: nothing to do.
        commit_rounds(&store, 5);
        store.maintain().unwrap();
        assert_eq!(broker.data_dir().read_meta(SNAPSHOT_FILE).unwrap(), None);
        let mut expected = commit_rounds(&store, 6000);
        let history_bytes = log.size_bytes();
        assert!(log.segment_count() > 10, "{}", log.segment_count());
        store.maintain().unwrap();
        assert!(
            broker
                .data_dir()
                .read_meta(SNAPSHOT_FILE)
                .unwrap()
                .is_some()
        );
        assert_eq!(log.segment_count(), 1);
        let start = log.start_offset();
        assert!(start > 0, "the log start moved");
        // A second pass with nothing new changes nothing.
        store.maintain().unwrap();
        assert_eq!(log.start_offset(), start);
        // Commits after the snapshot are replayed from the log.
        store
            .commit("late", &[(tp("t", 0), committed(99, "after"))])
            .unwrap();
        expected.insert("late".into(), [(tp("t", 0), committed(99, "after"))].into());
        assert_eq!(state(&store), expected);
        (history_bytes, expected)
    };
    let before = disk.n_bytes_read();
    let (broker, store) = open_sim(&disk, &clock, small_config());
    let read = disk.n_bytes_read() - before;
    assert_eq!(state(&store), expected);
    let recovery = store.recovery();
    let covered = recovery.snapshot_offset.expect("a snapshot was used");
    assert_eq!(recovery.replayed_from, covered);
    assert_eq!(recovery.records_replayed, 1);
    // What reopening reads does not grow with the history (about 100 KiB
    // here, mostly the active segment's indexes).
    assert!(
        read < history_bytes / 4,
        "reopening read {read} bytes; the history is {history_bytes}"
    );
    let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
    assert!(log.start_offset() > 0 && log.start_offset() <= covered);
}

/// Snapshot bytes for the state `commit_rounds(n)` makes, from a store of
/// its own.
fn snapshot_of_rounds(n: i64) -> (Vec<u8>, State) {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    let (broker, store) = open_sim(&disk, &clock, small_config());
    let expected = commit_rounds(&store, n);
    store.maintain().unwrap();
    let bytes = broker.data_dir().read_meta(SNAPSHOT_FILE).unwrap().unwrap();
    (bytes, expected)
}

#[test]
fn a_corrupt_snapshot_is_ignored_and_the_log_replayed() {
    let (valid, _) = snapshot_of_rounds(200);
    let mut bad_crc = valid.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    let mut bad_version = valid.clone();
    bad_version[4..6].copy_from_slice(&9u16.to_be_bytes());
    let truncated = valid[..valid.len() / 2].to_vec();
    for (what, bytes) in [
        ("crc", bad_crc),
        ("version", bad_version),
        ("truncated", truncated),
        ("garbage", b"not a snapshot".to_vec()),
    ] {
        let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
        let expected = {
            // A log of its own, never maintained: no segment was deleted.
            let (broker, store) = open_sim(&disk, &clock, small_config());
            let expected = commit_rounds(&store, 50);
            broker.data_dir().write_meta(SNAPSHOT_FILE, &bytes).unwrap();
            expected
        };
        let (_broker, store) = open_sim(&disk, &clock, small_config());
        assert_eq!(state(&store), expected, "{what}");
        let recovery = store.recovery();
        assert_eq!(recovery.snapshot_offset, None, "{what}");
        assert_eq!(
            (recovery.replayed_from, recovery.records_replayed),
            (0, 100),
            "{what}"
        );
    }
}

/// A snapshot that covers more than the log holds (the log was lost and
/// created again) is kept, and the commits that follow, at offsets the
/// snapshot claimed, are not hidden by it on the next reopen.
#[test]
fn a_snapshot_beyond_the_logs_end_is_kept_and_later_commits_replayed() {
    let (snapshot, mut expected) = snapshot_of_rounds(200);
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    {
        let dir = DataDir::open_with(
            Arc::new(disk.clone()),
            Arc::new(clock.clone()),
            ROOT,
            DirConfig::default(),
        )
        .unwrap();
        dir.write_meta(SNAPSHOT_FILE, &snapshot).unwrap();
    }
    {
        let (broker, store) = open_sim(&disk, &clock, small_config());
        assert_eq!(broker.partition(OFFSETS_TOPIC, 0).unwrap().end_offset(), 0);
        assert_eq!(state(&store), expected);
        assert!(store.recovery().snapshot_offset.unwrap() > 0);
        let late = [(tp("orders", 0), committed(12_345, "late"))];
        store.commit("group-0", &late).unwrap();
        expected.get_mut("group-0").unwrap().extend(late);
    }
    let (_broker, store) = open_sim(&disk, &clock, small_config());
    assert_eq!(state(&store), expected);
    assert_eq!(store.recovery().snapshot_offset, Some(0));
    assert_eq!(store.recovery().records_replayed, 1);
}

#[test]
fn unknown_record_versions_are_skipped() {
    let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
    {
        let (broker, store) = open_sim(&disk, &clock, small_config());
        store
            .commit("g", &[(tp("t", 0), committed(1, ""))])
            .unwrap();
        // Records of versions this store does not know, written beside its
        // own: a group metadata key (version 2) and a value of version 9.
        let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
        let mut b = weir_log::batch::BatchBuilder::new(0);
        b.push(0, Some(&[0, 2, 0, 1, b'g']), Some(b"group metadata"), &[]);
        let key = [&[0, 1][..], &[0, 1, b'g'], &[0, 1, b't'], &[0, 0, 0, 0]].concat();
        b.push(0, Some(&key), Some(&[0, 9, 1, 2, 3]), &[]);
        log.append(&mut b.build()).unwrap();
        store
            .commit("g", &[(tp("t", 1), committed(2, ""))])
            .unwrap();
    }
    let (_broker, store) = open_sim(&disk, &clock, small_config());
    assert_eq!(
        store.committed("g"),
        [
            (tp("t", 0), committed(1, "")),
            (tp("t", 1), committed(2, ""))
        ]
        .into()
    );
    assert_eq!(store.recovery().records_skipped, 2);
    assert_eq!(store.recovery().records_replayed, 2);
}

/// One write the power-loss test made, in log order.
#[derive(Debug, Clone)]
enum Op {
    Commit(String, Vec<(TopicPartition, CommittedOffset)>),
    DeleteGroup(String),
    DeleteOffsets(String, Vec<TopicPartition>),
}

fn apply(state: &mut State, op: &Op) {
    match op {
        Op::Commit(group, offsets) => state
            .entry(group.clone())
            .or_default()
            .extend(offsets.iter().cloned()),
        Op::DeleteGroup(group) => {
            state.remove(group);
        }
        Op::DeleteOffsets(group, partitions) => {
            if let Some(g) = state.get_mut(group) {
                for p in partitions {
                    g.remove(p);
                }
                if g.is_empty() {
                    state.remove(group);
                }
            }
        }
    }
}

/// Which prefixes of `ops` (applied to `base`) give `target`.
fn matching_prefixes(base: &State, ops: &[Op], target: &State) -> Vec<usize> {
    let mut state = base.clone();
    let mut out = Vec::new();
    for k in 0..=ops.len() {
        if &state == target {
            out.push(k);
        }
        if let Some(op) = ops.get(k) {
            apply(&mut state, op);
        }
    }
    out
}

/// Random commits (acknowledged or left waiting), deletions and
/// maintenance on the simulated disk, then a power loss at a random
/// point, three times per seed. After each reopen the offsets must be
/// those after some prefix of the writes that includes every acknowledged
/// one and everything shown before the crash. `WEIR_CRASH_SEEDS=N` sets
/// how many seeds run (default 40); `WEIR_CRASH_SEED=S` replays one.
#[test]
fn acknowledged_commits_survive_power_loss() {
    let seeds: Vec<u64> = match std::env::var("WEIR_CRASH_SEED") {
        Ok(s) => vec![s.parse().expect("WEIR_CRASH_SEED is a number")],
        Err(_) => {
            let n = std::env::var("WEIR_CRASH_SEEDS").map_or(40, |s| s.parse().unwrap());
            (0..n).collect()
        }
    };
    for seed in seeds {
        let outcome = std::panic::catch_unwind(|| power_loss_run(seed));
        if let Err(panic) = outcome {
            eprintln!("failing seed: WEIR_CRASH_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

fn power_loss_run(seed: u64) {
    let mut rng = SimRng::new(seed);
    let clock = ManualClock::new(0);
    let mut disk = SimStorage::new();
    let mut base = State::new();
    let mut next_offset = 0i64;
    for cycle in 0..3 {
        let (broker, store) = open_sim(&disk, &clock, small_config());
        let log = broker.partition(OFFSETS_TOPIC, 0).unwrap();
        let recovered = state(&store);
        assert_eq!(
            recovered, base,
            "seed {seed} cycle {cycle}: reopen changed the offsets"
        );
        let mut ops: Vec<Op> = Vec::new();
        let mut acked = 0;
        let mut waiting = Vec::new();
        for _ in 0..rng.below(150) {
            let group = format!("g{}", rng.below(4));
            let end = log.end_offset();
            let roll = rng.below(100);
            let (op, pending) = if roll < 75 {
                let offsets: Vec<_> = (0..1 + rng.below(4))
                    .map(|_| {
                        next_offset += 1;
                        let p = tp(["a", "b"][rng.below(2) as usize], rng.below(6) as i32);
                        (
                            p,
                            committed(next_offset, &"m".repeat(rng.below(40) as usize)),
                        )
                    })
                    .collect();
                let pending = store.commit_nowait(&group, &offsets).unwrap();
                (Op::Commit(group, offsets), pending)
            } else if roll < 85 {
                (
                    Op::DeleteGroup(group.clone()),
                    store.delete_group(&group).unwrap(),
                )
            } else if roll < 95 {
                let partitions = vec![tp("a", rng.below(6) as i32), tp("b", rng.below(6) as i32)];
                let pending = store.delete_offsets(&group, &partitions).unwrap();
                (Op::DeleteOffsets(group, partitions), pending)
            } else {
                store.maintain().unwrap();
                continue;
            };
            ops.push(op);
            if rng.chance(70) {
                // Waiting for a write acknowledges everything written before
                // it; a deletion that found nothing to delete wrote nothing.
                pending.wait().unwrap();
                if log.end_offset() > end {
                    acked = ops.len();
                    waiting.clear();
                }
            } else {
                waiting.push(pending);
            }
            if rng.chance(5) {
                store.maintain().unwrap();
            }
        }
        let shown = state(&store);
        let shown_at = matching_prefixes(&base, &ops, &shown);
        assert!(
            shown_at.iter().any(|k| *k >= acked),
            "seed {seed} cycle {cycle}: the store shows no state at or after the last acknowledged write"
        );
        let crashed = disk.crash(rng.next_u64());
        drop(waiting);
        drop(log);
        drop(store);
        drop(broker);
        disk = crashed;
        let (_broker, store) = open_sim(&disk, &clock, small_config());
        let recovered = state(&store);
        let recovered_at = matching_prefixes(&base, &ops, &recovered);
        assert!(
            recovered_at
                .iter()
                .any(|k| *k >= acked && shown_at.iter().any(|s| k >= s)),
            "seed {seed} cycle {cycle}: after the crash the offsets are no prefix of the writes \
             that holds every acknowledged one ({acked} of {}) and what was shown",
            ops.len()
        );
        base = recovered;
    }
}
