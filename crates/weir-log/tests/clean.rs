//! Log compaction through the public API: a plain latest-per-key policy
//! over many keys and tombstones, the dirty ratio and lag rules, the active
//! segment left alone, reads at offsets the cleaner removed, and a reopen
//! after cleaning.

mod common;

use std::collections::BTreeMap;

use common::*;
use weir_log::sim::SimStorage;
use weir_log::{CleanOptions, LogConfig, ManualClock, Throttle};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4 * 1024,
        batch_bytes_max: 4 * 1024,
        index_interval_bytes: 128,
        preallocate_bytes: 1024,
        zero_ahead_bytes: 0,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn eager() -> CleanOptions {
    CleanOptions {
        min_cleanable_dirty_ratio: 0.0,
        ..CleanOptions::default()
    }
}

/// Appends `rounds` rounds over `n_keys` keys (a tombstone for every
/// seventh write), one record per batch; returns every record by offset.
fn fill(
    log: &weir_log::Log,
    n_keys: usize,
    rounds: usize,
    ts: i64,
) -> BTreeMap<i64, (String, Option<String>)> {
    let mut all = BTreeMap::new();
    for round in 0..rounds {
        for k in 0..n_keys {
            let key = format!("key-{k}");
            let value = ((round * n_keys + k) % 7 != 3).then(|| format!("v{round}-{k}"));
            let info = log
                .append(&mut keyed(&[(&key, value.as_deref())], ts))
                .unwrap();
            all.insert(info.base_offset, (key, value));
        }
    }
    all
}

/// The latest record of each key, by offset.
fn latest(all: &BTreeMap<i64, (String, Option<String>)>) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (offset, (key, _)) in all {
        out.insert(key.clone(), *offset);
    }
    out
}

#[test]
fn cleaning_keeps_the_latest_record_per_key_at_its_offset() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let dir = open_sim(&storage, &clock);
    let log = dir.open_log("t-0", config()).unwrap();
    let all = fill(&log, 40, 10, 1_000);
    let end = log.end_offset();
    let active_base = log.active_base_offset();
    assert!(log.segment_count() > 5, "the test needs several segments");
    let size_before = log.size_bytes();

    let mut policy = LatestPerKey::default();
    let outcome = log
        .clean(&eager(), &mut policy, &Throttle::new(None))
        .unwrap();
    assert!(outcome.ran && outcome.segments_rewritten > 0, "{outcome:?}");
    assert_eq!(outcome.clean_offset, active_base);
    assert!(log.size_bytes() < size_before / 2, "compaction frees space");
    assert_eq!(log.end_offset(), end, "the end does not move");

    let check = |log: &weir_log::Log| {
        let records = read_keyed(log, log.start_offset());
        let latest = latest(&all);
        // The cleaner sees only the sealed segments: what they hold is
        // cut to the latest there (the active segment may hold newer).
        let sealed: BTreeMap<i64, _> = all
            .range(..active_base)
            .map(|(o, r)| (*o, r.clone()))
            .collect();
        let latest_sealed = self::latest(&sealed);
        let mut previous = -1;
        for (offset, key, value) in &records {
            assert!(*offset > previous, "offsets strictly increase");
            previous = *offset;
            assert_eq!(
                all[offset],
                (key.clone(), value.clone()),
                "unchanged at {offset}"
            );
            if *offset < active_base {
                assert_eq!(
                    latest_sealed[key], *offset,
                    "only the latest of {key} below the active segment"
                );
            }
        }
        for (key, offset) in &latest {
            let value = &all[offset].1;
            let found = records.iter().any(|(o, _, _)| o == offset);
            // No tombstone horizon was set: tombstones stay too.
            assert!(
                found,
                "the latest of {key} ({value:?} at {offset}) survives"
            );
        }
        // Everything in the active segment is as appended.
        let tail: Vec<i64> = records
            .iter()
            .map(|r| r.0)
            .filter(|o| *o >= active_base)
            .collect();
        let expected: Vec<i64> = all.range(active_base..).map(|(o, _)| *o).collect();
        assert_eq!(tail, expected, "the active segment is untouched");
    };
    check(&log);

    // Reads at every offset, kept or cleaned away, return the next batch
    // that is there.
    let kept: Vec<i64> = read_keyed(&log, 0).iter().map(|r| r.0).collect();
    for offset in 0..end {
        let read = log.read(offset, 1).unwrap();
        let first = read_first_offset(&read.bytes);
        let want = kept.iter().find(|o| **o >= offset).copied();
        assert_eq!(first, want, "read at {offset}");
    }

    drop(log);
    dir.close().unwrap();
    let dir = open_sim(&storage, &clock);
    let log = dir.open_log("t-0", config()).unwrap();
    assert_eq!(log.end_offset(), end);
    check(&log);
    // Nothing new is dirty: the checkpoint survived the reopen.
    let again = log
        .clean(&eager(), &mut LatestPerKey::default(), &Throttle::new(None))
        .unwrap();
    assert!(!again.ran, "{again:?}");
}

fn read_first_offset(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() {
        return None;
    }
    let this = &bytes[..weir_log::batch::BatchHeader::parse(bytes)
        .unwrap()
        .total_bytes()];
    Some(weir_log::batch::records(this).unwrap()[0].offset)
}

#[test]
fn tombstones_go_once_past_the_horizon_and_appends_continue() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let dir = open_sim(&storage, &clock);
    let log = dir.open_log("t-0", config()).unwrap();
    let all = fill(&log, 30, 6, 1_000);
    let active_base = log.active_base_offset();
    let mut policy = LatestPerKey {
        tombstone_horizon_ms: 5_000,
        ..LatestPerKey::default()
    };
    log.clean(&eager(), &mut policy, &Throttle::new(None))
        .unwrap();
    let records = read_keyed(&log, 0);
    for (offset, key, value) in &records {
        if *offset < active_base {
            assert!(
                value.is_some(),
                "tombstone of {key} at {offset} was old enough to go"
            );
        }
    }
    let latest = latest(&all);
    for (key, offset) in latest {
        let gone = !records.iter().any(|r| r.0 == offset);
        let tombstone = all[&offset].1.is_none();
        assert!(
            !gone || (tombstone && offset < active_base),
            "{key} at {offset}"
        );
    }
    // The log goes on after cleaning.
    let info = log
        .append(&mut keyed(&[("new", Some("x"))], 2_000))
        .unwrap();
    assert_eq!(info.base_offset, all.keys().last().unwrap() + 1);
    let last = read_keyed(&log, info.base_offset);
    assert_eq!(last, [(info.base_offset, "new".into(), Some("x".into()))]);
}

#[test]
fn the_dirty_ratio_and_the_lags_decide_when_a_pass_runs() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(100_000);
    let dir = open_sim(&storage, &clock);
    let log = dir.open_log("t-0", config()).unwrap();
    // Unique keys: cleaning removes nothing, so the clean part stays big.
    fill(&log, 400, 1, 1_000);
    let throttle = Throttle::new(None);

    // Too young: every segment is within min.compaction.lag.ms.
    let young = CleanOptions {
        min_compaction_lag_ms: 200_000,
        ..eager()
    };
    let outcome = log
        .clean(&young, &mut LatestPerKey::default(), &throttle)
        .unwrap();
    assert!(!outcome.ran, "{outcome:?}");

    let first = log
        .clean(
            &CleanOptions::default(),
            &mut LatestPerKey::default(),
            &throttle,
        )
        .unwrap();
    assert!(first.ran, "all dirty: ratio 1 >= 0.5");
    assert_eq!(first.dirty_ratio, 1.0);

    // A little more: dirty share below the ratio, so no pass...
    fill(&log, 4, 10, 50_000);
    let small = log
        .clean(
            &CleanOptions::default(),
            &mut LatestPerKey::default(),
            &throttle,
        )
        .unwrap();
    assert!(!small.ran && small.dirty_ratio > 0.0, "{small:?}");
    assert!(small.dirty_ratio < 0.5, "{small:?}");
    // ... unless its oldest record is older than max.compaction.lag.ms.
    let overdue = CleanOptions {
        max_compaction_lag_ms: 10_000,
        ..CleanOptions::default()
    };
    let forced = log
        .clean(&overdue, &mut LatestPerKey::default(), &throttle)
        .unwrap();
    assert!(forced.ran, "{forced:?}");

    // The owner's bound (the last stable offset) stops the range.
    fill(&log, 40, 3, 60_000);
    let bound = log.start_offset() + 1;
    let bounded = CleanOptions {
        end_offset_max: bound,
        ..eager()
    };
    let outcome = log
        .clean(&bounded, &mut LatestPerKey::default(), &throttle)
        .unwrap();
    assert!(
        outcome.clean_offset <= bound.max(forced.clean_offset),
        "{outcome:?}"
    );
}

#[test]
fn retention_and_delete_records_work_on_a_cleaned_log() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let dir = open_sim(&storage, &clock);
    let log = dir.open_log("t-0", config()).unwrap();
    let all = fill(&log, 40, 8, 1_000);
    log.clean(&eager(), &mut LatestPerKey::default(), &Throttle::new(None))
        .unwrap();
    let kept: Vec<i64> = read_keyed(&log, 0).iter().map(|r| r.0).collect();
    // Move the start into a gap: reads from there give the next survivor.
    let gap = (1..*kept.last().unwrap())
        .find(|o| !kept.contains(o) && all.contains_key(o))
        .expect("a cleaned-away offset");
    log.delete_records_before(gap).unwrap();
    assert_eq!(log.start_offset(), gap);
    let next = kept.iter().find(|o| **o >= gap).copied();
    assert_eq!(read_keyed(&log, gap).first().map(|r| r.0), next);
    // Retention by size still counts the cleaned bytes.
    let mut config = config();
    config.retention_bytes = Some(4 * 1024);
    log.set_config(config).unwrap();
    let outcome = log.enforce_retention().unwrap();
    assert!(log.size_bytes() < 4 * 1024 + 4 * 1024, "{outcome:?}");
    let records = read_keyed(&log, log.start_offset());
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn segments_the_cleaner_emptied_are_read_past_and_retention_removes_them() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let dir = open_sim(&storage, &clock);
    let log = dir.open_log("t-0", config()).unwrap();
    // Ten keys rewritten over and over: the early segments hold only
    // superseded records, and come out of the pass empty.
    let all = fill(&log, 10, 60, 1_000);
    let segments = log.segment_count();
    log.clean(&eager(), &mut LatestPerKey::default(), &Throttle::new(None))
        .unwrap();
    assert_eq!(
        log.segment_count(),
        segments,
        "emptied segments stay (in place)"
    );
    let records = read_keyed(&log, 0);
    assert_eq!(read_keyed(&log, log.start_offset()), records);
    let first = records.first().unwrap().0;
    assert!(
        first > 100,
        "the first records were all superseded ({first})"
    );
    assert_eq!(all[&first], (records[0].1.clone(), records[0].2.clone()));
    // Reopened, the empty segments open fine.
    drop(log);
    dir.close().unwrap();
    let dir = open_sim(&storage, &clock);
    let log = dir.open_log("t-0", config()).unwrap();
    assert_eq!(read_keyed(&log, 0), records);
    // Retention (compact,delete) removes the empty ones from the front.
    let mut config = config();
    config.retention_ms = Some(1_000_000_000);
    log.set_config(config).unwrap();
    let outcome = log.enforce_retention().unwrap();
    assert!(outcome.segments_deleted > 0, "{outcome:?}");
    assert_eq!(read_keyed(&log, log.start_offset()), records);
}
