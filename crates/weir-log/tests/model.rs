//! Model-based tests: random sequences of append, read, time lookup,
//! retention and reopen, checked against a plain in-memory model of the log.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use weir_log::batch::BatchBuilder;
use weir_log::sim::SimStorage;
use weir_log::{LogConfig, LogError, ManualClock};

#[derive(Debug, Clone)]
enum Op {
    /// Append a batch of `n` records with values of `len` bytes, at `ts`
    /// steps after the clock.
    Append {
        n: usize,
        len: usize,
        ts_step: i64,
    },
    /// Read at a point between start and end (as a fraction), up to
    /// `bytes_max`.
    Read {
        at: f64,
        bytes_max: usize,
    },
    OffsetForTime {
        at: f64,
    },
    /// Advance the clock, then run retention.
    Retention {
        advance_ms: i64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..8, 0usize..400, 0i64..50).prop_map(|(n, len, ts_step)| Op::Append { n, len, ts_step }),
        3 => (0.0f64..1.0, 1usize..6_000).prop_map(|(at, bytes_max)| Op::Read { at, bytes_max }),
        1 => (0.0f64..1.0).prop_map(|at| Op::OffsetForTime { at }),
        1 => (0i64..3_000).prop_map(|advance_ms| Op::Retention { advance_ms }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
struct ModelRecord {
    value: Vec<u8>,
    timestamp: i64,
}

fn config(
    retention_ms: Option<i64>,
    retention_bytes: Option<u64>,
    segment_bytes_max: u64,
) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        retention_ms,
        retention_bytes,
        ..small_config()
    }
}

fn run(ops: Vec<Op>, config: LogConfig) -> Result<(), TestCaseError> {
    let disk = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let mut dir = open_sim(&disk, &clock);
    let mut log = dir.open_log("m", config.clone()).unwrap();
    let mut model: BTreeMap<i64, ModelRecord> = BTreeMap::new();
    let mut next = 0i64;
    let mut start = 0i64;
    let mut ts = 10_000i64;

    for op in ops {
        match op {
            Op::Append { n, len, ts_step } => {
                ts += ts_step;
                let mut b = BatchBuilder::new(ts);
                let mut values = Vec::new();
                for i in 0..n {
                    let value: Vec<u8> = (0..len).map(|j| (next as usize + i + j) as u8).collect();
                    b.push(ts + i as i64, None, Some(&value), &[]);
                    values.push(value);
                }
                let mut bytes = b.build();
                match log.append(&mut bytes) {
                    Ok(info) => {
                        prop_assert_eq!(info.base_offset, next);
                        prop_assert_eq!(info.last_offset, next + n as i64 - 1);
                        for (i, value) in values.into_iter().enumerate() {
                            model.insert(
                                next + i as i64,
                                ModelRecord {
                                    value,
                                    timestamp: ts + i as i64,
                                },
                            );
                        }
                        next += n as i64;
                    }
                    Err(LogError::Batch(weir_log::BatchError::TooLarge { .. })) => {
                        prop_assert!(bytes.len() > config.batch_bytes_max);
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("append failed: {e}"))),
                }
            }
            Op::Read { at, bytes_max } => {
                let offset = start + ((next - start) as f64 * at) as i64;
                let read = log.read(offset, bytes_max).unwrap();
                prop_assert_eq!(read.high_watermark, next);
                prop_assert_eq!(read.log_start_offset, start);
                let got = decode(&read.bytes);
                if offset == next {
                    prop_assert!(got.is_empty());
                    continue;
                }
                prop_assert!(!got.is_empty(), "no progress at offset {}", offset);
                prop_assert!(
                    got[0].0 <= offset,
                    "first record {} is after {}",
                    got[0].0,
                    offset
                );
                prop_assert!(got.iter().any(|(o, _)| *o == offset));
                prop_assert_eq!(read.next_offset, got.last().unwrap().0 + 1);
                // Whole batches: the first one may pass bytes_max, and more
                // are added only while they fit.
                prop_assert!(read.bytes.len() <= bytes_max || batch_count(&read.bytes) == 1);
                for (o, value) in got {
                    prop_assert_eq!(&value, &model[&o].value, "offset {}", o);
                }
            }
            Op::OffsetForTime { at } => {
                let target = 10_000 + ((ts - 10_000 + 10) as f64 * at) as i64;
                let expected = model
                    .iter()
                    .find(|(_, r)| r.timestamp >= target)
                    .map(|(o, _)| *o);
                prop_assert_eq!(
                    log.offset_for_time(target).unwrap(),
                    expected,
                    "ts {}",
                    target
                );
            }
            Op::Retention { advance_ms } => {
                clock.advance(advance_ms);
                let outcome = log.enforce_retention().unwrap();
                let new_start = log.start_offset();
                prop_assert!(new_start >= start && new_start <= next);
                prop_assert_eq!(outcome.log_start_offset, new_start);
                let now = clock.now();
                // Nothing newer than the retention time is removed.
                if let Some(ms) = config.retention_ms {
                    let first_fresh = model
                        .iter()
                        .find(|(_, r)| r.timestamp >= now - ms)
                        .map(|(o, _)| *o);
                    if let Some(first_fresh) = first_fresh {
                        prop_assert!(new_start <= first_fresh || config.retention_bytes.is_some());
                    }
                }
                if let Some(max) = config.retention_bytes {
                    prop_assert!(log.size_bytes() <= max + config.segment_bytes_max);
                }
                model = model.split_off(&new_start);
                start = new_start;
            }
            Op::Reopen => {
                dir.close().unwrap();
                dir = open_sim(&disk, &clock);
                log = dir.open_log("m", config.clone()).unwrap();
                prop_assert_eq!(log.start_offset(), start);
                prop_assert_eq!(log.end_offset(), next);
            }
        }
    }
    let all = read_all(&log, start);
    prop_assert_eq!(all.len(), model.len());
    for ((o, v), (mo, mr)) in all.iter().zip(model.iter()) {
        prop_assert_eq!(o, mo);
        prop_assert_eq!(v, &mr.value);
    }
    Ok(())
}

trait Now {
    fn now(&self) -> i64;
}

impl Now for ManualClock {
    fn now(&self) -> i64 {
        weir_log::Clock::now_ms(self)
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WEIR_MODEL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model_without_retention(ops in prop::collection::vec(op(), 1..120)) {
        run(ops, config(None, None, 4_096))?;
    }

    #[test]
    fn log_matches_model_with_time_retention(ops in prop::collection::vec(op(), 1..120)) {
        run(ops, config(Some(1_500), None, 4_096))?;
    }

    #[test]
    fn log_matches_model_with_size_retention(ops in prop::collection::vec(op(), 1..120), segment in 4_096u64..12_000) {
        run(ops, config(None, Some(10_000), segment))?;
    }
}
