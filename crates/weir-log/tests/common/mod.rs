//! Helpers shared by the log's integration tests: batch building and
//! decoding, and opening data directories on a simulated disk.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::sync::Arc;

use weir_log::batch::{self, BatchBuilder};
use weir_log::sim::SimStorage;
use weir_log::{DataDir, DirConfig, LogConfig, ManualClock};

pub const ROOT: &str = "/data";

/// A batch of `n` records whose values are `prefix-i`, timestamped `ts`.
pub fn batch_of(prefix: &str, n: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts);
    for i in 0..n {
        b.push(
            ts,
            Some(format!("k{i}").as_bytes()),
            Some(format!("{prefix}-{i}").as_bytes()),
            &[],
        );
    }
    b.build()
}

/// A batch of one record with `value`.
pub fn one(value: &[u8], ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts);
    b.push(ts, None, Some(value), &[]);
    b.build()
}

/// (offset, value) of every record in concatenated batches.
pub fn decode(bytes: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let header = batch::validate(
            &bytes[pos..pos
                + batch::BatchHeader::parse(&bytes[pos..])
                    .unwrap()
                    .total_bytes()],
        )
        .expect("stored batches are valid");
        let this = &bytes[pos..pos + header.total_bytes()];
        for r in batch::records(this).unwrap() {
            out.push((r.offset, r.value.unwrap_or_default().to_vec()));
        }
        pos += header.total_bytes();
    }
    out
}

/// Every record of a log from `from` to its high watermark.
pub fn read_all(log: &weir_log::Log, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let read = log.read(offset, 64 * 1024).expect("read");
        if read.bytes.is_empty() {
            return out;
        }
        out.extend(decode(&read.bytes).into_iter().filter(|(o, _)| *o >= from));
        offset = read.next_offset;
    }
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4 * 1024,
        batch_bytes_max: 2 * 1024,
        index_interval_bytes: 256,
        preallocate_bytes: 1024,
        zero_ahead_bytes: 1024,
        retention_ms: None,
        ..LogConfig::default()
    }
}

pub fn open_sim(storage: &SimStorage, clock: &ManualClock) -> DataDir {
    DataDir::open_with(
        Arc::new(storage.clone()),
        Arc::new(clock.clone()),
        ROOT,
        DirConfig::default(),
    )
    .expect("open data dir")
}

/// How many batches are in concatenated batch bytes.
pub fn batch_count(bytes: &[u8]) -> usize {
    let (mut pos, mut n) = (0, 0);
    while pos < bytes.len() {
        pos += batch::BatchHeader::parse(&bytes[pos..])
            .unwrap()
            .total_bytes();
        n += 1;
    }
    n
}

/// The default config with a small preallocation: the simulated disk
/// materializes preallocated bytes in memory.
pub fn sim_default() -> LogConfig {
    LogConfig {
        preallocate_bytes: 64 * 1024,
        zero_ahead_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

/// A batch of keyed records `(key, value)`; a `None` value is a tombstone.
pub fn keyed(records: &[(&str, Option<&str>)], ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts);
    for (key, value) in records {
        b.push_nullable(ts, Some(key.as_bytes()), value.map(str::as_bytes), &[]);
    }
    b.build()
}

/// (offset, key, value) of every record from `from` to the high watermark.
pub fn read_keyed(log: &weir_log::Log, from: i64) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let read = log.read(offset, 64 * 1024).expect("read");
        if read.bytes.is_empty() {
            return out;
        }
        let mut pos = 0;
        while pos < read.bytes.len() {
            let len = batch::BatchHeader::parse(&read.bytes[pos..])
                .unwrap()
                .total_bytes();
            let this = &read.bytes[pos..pos + len];
            batch::validate(this).expect("stored batches are valid");
            for r in batch::records(this).unwrap() {
                let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                out.push((r.offset, text(r.key).unwrap_or_default(), text(r.value)));
            }
            pos += len;
        }
        offset = read.next_offset;
    }
}

/// The plain compaction rule, for the log's own tests: the latest record
/// per key stays, a tombstone only while its segment is younger than
/// `tombstone_horizon_ms` (a timestamp: older segments lose theirs).
#[derive(Debug, Default)]
pub struct LatestPerKey {
    pub latest: std::collections::HashMap<Vec<u8>, i64>,
    pub tombstone_horizon_ms: i64,
}

impl weir_log::CleanPolicy for LatestPerKey {
    fn observe(&mut self, batch: &weir_log::CleanBatch<'_>) -> bool {
        if batch.dirty {
            for r in batch::records(batch.bytes).unwrap() {
                let key = r.key.expect("keyed records").to_vec();
                let latest = self.latest.entry(key).or_insert(r.offset);
                *latest = (*latest).max(r.offset);
            }
        }
        true
    }

    fn retain_batch(&mut self, _batch: &weir_log::CleanBatch<'_>) -> weir_log::Retain {
        weir_log::Retain::Records
    }

    fn retain_record(&mut self, batch: &weir_log::CleanBatch<'_>, r: &batch::Record<'_>) -> bool {
        let key = r.key.expect("keyed records");
        let latest = self.latest.get(key).is_none_or(|o| r.offset >= *o);
        let expired_tombstone =
            r.value.is_none() && batch.segment_max_timestamp < self.tombstone_horizon_ms;
        latest && !expired_tombstone
    }
}
