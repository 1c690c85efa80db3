//! The byte limits of a read, as a property over random batch sizes,
//! index intervals, offsets and limits: `read_within` returns the longest
//! run of whole batches from the one holding the offset that fits the
//! limit (nothing when the first does not fit), and `read` the same but at
//! least that first batch. A Fetch builds its KIP-74 limits on these two.

mod common;

use common::*;
use proptest::prelude::*;
use weir_log::batch::BatchBuilder;
use weir_log::sim::SimStorage;
use weir_log::{LogConfig, ManualClock};

/// One batch of `records` records whose values are `value_bytes` long.
fn batch(records: usize, value_bytes: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(0);
    let value = vec![b'v'; value_bytes];
    for _ in 0..records {
        b.push(0, None, Some(&value), &[]);
    }
    b.build()
}

/// What the log should answer: the batches (base offset, size) from the one
/// holding `offset` that fit in `limit`, and at least one if `min_one`.
fn expected(batches: &[(i64, i64, usize)], offset: i64, limit: usize, min_one: bool) -> Vec<i64> {
    let first = batches
        .iter()
        .position(|&(base, last, _)| base <= offset && offset <= last)
        .expect("offset inside the log");
    let mut out = Vec::new();
    let mut used = 0;
    for &(base, _, size) in &batches[first..] {
        if used + size > limit && !(min_one && out.is_empty()) {
            break;
        }
        used += size;
        out.push(base);
    }
    out
}

/// Base offsets of the batches in a read.
fn bases(bytes: &[u8]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = weir_log::batch::BatchHeader::parse(&bytes[pos..]).unwrap();
        out.push(h.base_offset);
        pos += h.total_bytes();
    }
    assert_eq!(pos, bytes.len(), "whole batches only");
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WEIR_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn reads_keep_to_their_limit(
        shapes in prop::collection::vec((1usize..4, 0usize..6000), 1..40),
        index_interval_bytes in 64u32..8192,
        reads in prop::collection::vec((any::<prop::sample::Index>(), 0usize..24_000), 1..30),
    ) {
        let (disk, clock) = (SimStorage::new(), ManualClock::new(0));
        let dir = open_sim(&disk, &clock);
        let config = LogConfig { index_interval_bytes, ..sim_default() };
        let log = dir.open_log("t-0", config).unwrap();
        let mut batches = Vec::new();
        for (records, value_bytes) in shapes {
            let mut bytes = batch(records, value_bytes);
            let size = bytes.len();
            let appended = log.append(&mut bytes).unwrap();
            batches.push((appended.base_offset, appended.last_offset, size));
        }
        let end = log.end_offset();
        for (at, limit) in reads {
            let offset = at.index(end as usize) as i64;
            let within = log.read_within(offset, limit).unwrap();
            prop_assert!(within.bytes.len() <= limit);
            prop_assert_eq!(bases(&within.bytes), expected(&batches, offset, limit, false));
            let read = log.read(offset, limit).unwrap();
            prop_assert_eq!(bases(&read.bytes), expected(&batches, offset, limit, true));
            prop_assert_eq!(read.high_watermark, end);
            prop_assert_eq!(within.high_watermark, end);
            if within.bytes.is_empty() {
                prop_assert_eq!(within.next_offset, offset);
            }
        }
    }
}
