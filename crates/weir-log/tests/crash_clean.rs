//! Crash tests of the cleaner on the simulated disk: each seed appends keyed
//! records and tombstones (all acknowledged), cleans once, appends more,
//! and cleans again with a power loss (or a kill) at a random point of the
//! pass: while pass one reads, while a cleaned copy is written, or with
//! swaps of earlier segments still unsynced (the disk keeps a random prefix
//! of the unsynced directory operations, so a crash can fall between a
//! swap's renames). After the reopen: offsets strictly increase, every
//! record is what was written at its offset, every key's latest record is
//! there, and a record is missing only where a later one of its key
//! survives (or it was a tombstone past the horizon). A clean pass then
//! runs to the end on the recovered log and the same holds, with only the
//! latest per key left below the active segment.
//! `WEIR_CRASH_SEEDS=N` sets how many seeds run (default 100);
//! `WEIR_CRASH_SEED=S` replays one.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use weir_log::sim::{SimRng, SimStorage};
use weir_log::{CleanBatch, CleanOptions, CleanPolicy, LogConfig, ManualClock, Retain, Throttle};

type Model = BTreeMap<i64, (String, Option<String>)>;

/// [`LatestPerKey`] that crashes the disk at its `crash_at`-th call.
struct Crashing<'a> {
    inner: LatestPerKey,
    calls: u64,
    crash_at: u64,
    storage: &'a SimStorage,
    seed: u64,
    kill: bool,
    image: Option<SimStorage>,
}

impl Crashing<'_> {
    fn tick(&mut self) {
        self.calls += 1;
        if self.calls == self.crash_at && self.image.is_none() {
            self.image = Some(if self.kill {
                self.storage.kill()
            } else {
                self.storage.crash(self.seed)
            });
        }
    }
}

impl CleanPolicy for Crashing<'_> {
    fn observe(&mut self, batch: &CleanBatch<'_>) -> bool {
        self.tick();
        self.inner.observe(batch)
    }

    fn retain_batch(&mut self, batch: &CleanBatch<'_>) -> Retain {
        self.tick();
        self.inner.retain_batch(batch)
    }

    fn retain_record(
        &mut self,
        batch: &CleanBatch<'_>,
        record: &weir_log::batch::Record<'_>,
    ) -> bool {
        self.inner.retain_record(batch, record)
    }
}

fn config_for(rng: &mut SimRng) -> LogConfig {
    LogConfig {
        segment_bytes_max: [4_096, 8_192][rng.below(2) as usize],
        batch_bytes_max: 4_096,
        index_interval_bytes: [64, 512][rng.below(2) as usize],
        preallocate_bytes: [0, 2_048][rng.below(2) as usize],
        zero_ahead_bytes: 0,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn append_some(log: &weir_log::Log, rng: &mut SimRng, model: &mut Model, n_keys: u64, ts: i64) {
    let n_batches = 100 + rng.below(200);
    for _ in 0..n_batches {
        let n = 1 + rng.below(4) as usize;
        let records: Vec<(String, Option<String>)> = (0..n)
            .map(|_| {
                let key = format!("key-{}", rng.below(n_keys));
                let value = (!rng.chance(10)).then(|| format!("v{}", rng.next_u64() % 100_000));
                (key, value)
            })
            .collect();
        let refs: Vec<(&str, Option<&str>)> = records
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let info = log.append(&mut keyed(&refs, ts)).expect("append");
        for (i, record) in records.into_iter().enumerate() {
            model.insert(info.base_offset + i as i64, record);
        }
    }
}

/// Checks a recovered (or cleaned) log against the model; with `cleaned`,
/// also that below `active_base` only the latest record per key is left.
fn check(seed: u64, log: &weir_log::Log, model: &Model, horizon_ms: i64, ts: i64) {
    let records = read_keyed(log, log.start_offset());
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for (offset, (key, _)) in model {
        latest.insert(key, *offset);
    }
    let present: BTreeMap<i64, _> = records.iter().map(|r| (r.0, r)).collect();
    assert_eq!(present.len(), records.len(), "seed {seed}: an offset twice");
    let mut previous = -1;
    for (offset, key, value) in &records {
        assert!(
            *offset > previous,
            "seed {seed}: offsets go backwards at {offset}"
        );
        previous = *offset;
        assert_eq!(
            model.get(offset),
            Some(&(key.clone(), value.clone())),
            "seed {seed}: record at {offset} changed"
        );
    }
    let tombstones_may_go = ts < horizon_ms;
    for (offset, (key, value)) in model {
        if present.contains_key(offset) {
            continue;
        }
        // Gone because a later record of the key stays, or because the
        // key's latest record is a tombstone past the horizon (then all of
        // the key may go).
        let last = latest[key.as_str()];
        let last_expired = model[&last].1.is_none() && tombstones_may_go;
        let superseded = last > *offset && (present.contains_key(&last) || last_expired);
        let expired = value.is_none() && tombstones_may_go;
        assert!(
            superseded || expired,
            "seed {seed}: {key} at {offset} ({value:?}) was lost; model {:?} present {:?}",
            model.iter().filter(|r| &r.1.0 == key).collect::<Vec<_>>(),
            records.iter().filter(|r| &r.1 == key).collect::<Vec<_>>()
        );
    }
}

fn run_seed(seed: u64) {
    let mut rng = SimRng::new(seed);
    let storage = SimStorage::new();
    let clock = ManualClock::new(1_000_000);
    let config = config_for(&mut rng);
    let n_keys = 5 + rng.below(60);
    let ts = 1_000;
    let horizon_ms = if rng.chance(50) { 0 } else { 5_000 };
    let mut model = Model::new();
    let dir = open_sim(&storage, &clock);
    let log = dir.open_log("t-0", config.clone()).unwrap();
    let throttle = Throttle::new(None);
    let options = CleanOptions {
        min_cleanable_dirty_ratio: 0.0,
        ..CleanOptions::default()
    };
    append_some(&log, &mut rng, &mut model, n_keys, ts);
    if rng.chance(50) {
        let mut first = LatestPerKey {
            tombstone_horizon_ms: horizon_ms,
            ..LatestPerKey::default()
        };
        log.clean(&options, &mut first, &throttle).unwrap();
    }
    append_some(&log, &mut rng, &mut model, n_keys, ts);

    let mut policy = Crashing {
        inner: LatestPerKey {
            tombstone_horizon_ms: horizon_ms,
            ..LatestPerKey::default()
        },
        calls: 0,
        crash_at: 1 + rng.below(2 * model.len() as u64),
        storage: &storage,
        seed,
        kill: rng.chance(25),
        image: None,
    };
    let _ = log.clean(&options, &mut policy, &throttle);
    let image = policy.image.take().unwrap_or_else(|| storage.crash(seed));
    drop(log);
    drop(dir);

    let dir = open_sim(&image, &clock);
    let log = dir.open_log("t-0", config.clone()).unwrap();
    check(seed, &log, &model, horizon_ms, ts);

    let mut finish = LatestPerKey {
        tombstone_horizon_ms: horizon_ms,
        ..LatestPerKey::default()
    };
    log.clean(&options, &mut finish, &throttle).unwrap();
    check(seed, &log, &model, horizon_ms, ts);
    let active_base = log.active_base_offset();
    let mut seen = HashMap::new();
    for (offset, key, _) in read_keyed(&log, 0) {
        if offset < active_base {
            assert!(
                seen.insert(key.clone(), offset).is_none(),
                "seed {seed}: {key} twice below the active segment after a full pass"
            );
        }
    }
    drop(log);
    dir.close().unwrap();
}

#[test]
fn crashes_during_cleaning_lose_nothing_that_should_survive() {
    if let Ok(seed) = std::env::var("WEIR_CRASH_SEED") {
        run_seed(seed.parse().expect("WEIR_CRASH_SEED is a number"));
        return;
    }
    let n: u64 = std::env::var("WEIR_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    for seed in 0..n {
        run_seed(seed);
    }
}
