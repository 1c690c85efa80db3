//! Crash tests of the event store on the simulated disk, which loses what
//! was not synced on a power loss and keeps the page cache when only the
//! process dies.
//!
//! Each seed runs a few cycles. In a cycle, concurrent writer threads
//! append to shared and private streams (any, no-stream, exists and exact
//! expected versions; retries of acknowledged appends; deletes, metadata
//! and tombstones of their own streams), a reader follows the global order,
//! and the saved index is written now and then, until the writer whose
//! append is the seeded number to be acknowledged cuts the power (or kills
//! the process), sometimes after a failed fsync and an index save. After
//! the reopen:
//!
//! - every acknowledged append is in the log with its versions and
//!   positions, and reads of its stream return it;
//! - everything a reader saw before the crash is still there, unchanged;
//! - every event in the log was written by some append, each append whole
//!   or not at all;
//! - the recovered indexes (saved index and the log after it) answer every
//!   stream, category, type, correlation and global read exactly as
//!   indexes rebuilt from the log alone (the store reopened without its
//!   saved index), and each correlation's read equals a scan of the log;
//! - retrying an acknowledged append returns its first result and writes
//!   nothing.
//!
//! `WEIR_CRASH_SEEDS=N` sets how many seeds run (default 200);
//! `WEIR_CRASH_SEED=S` replays one, as a failure prints it. The seed fixes
//! the workload and the crash's choices; the threads' interleaving is the
//! scheduler's, so a replay may need a few runs to hit the same timing.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_same_dump, dump, open_sim, raw_log, remove_saved_index};
use weir_log::ManualClock;
use weir_log::sim::{SimRng, SimStorage};
use weir_store::{
    AppendResult, Direction, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, StoreError,
    StreamMetadata, Target,
};

/// Streams every writer appends to (they race for versions).
const SHARED: [&str; 4] = ["acc-1", "acc-2", "ord-1", "plain"];

/// One append as sent.
#[derive(Debug, Clone)]
struct Sent {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
}

/// What the test knows across cycles.
#[derive(Debug, Default)]
struct Journal {
    /// Every append sent, by the id of its first event.
    sent: HashMap<String, Sent>,
    /// The id of each event sent → the id of its append's first event.
    append_of: HashMap<String, String>,
    /// Acknowledged appends with their results.
    acked: Vec<(Sent, AppendResult)>,
    /// What readers were shown: position → (stream, version, id).
    seen: BTreeMap<u64, (String, u64, String)>,
    /// Streams a delete, tombstone or metadata change touched: their reads
    /// hide events, and their retries are not idempotent across deletes.
    lifecycle: std::collections::HashSet<String>,
}

fn lock(j: &Mutex<Journal>) -> std::sync::MutexGuard<'_, Journal> {
    j.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether an error is the crash itself (the disk's handles fail), as
/// opposed to an answer about the stream.
fn is_crash(e: &StoreError) -> bool {
    matches!(e, StoreError::Log(_) | StoreError::Broker(_))
}

/// When and how a cycle ends: the writer whose append is acknowledged
/// `at`-th cuts the power (or kills the process) right there, while the
/// others are in the middle of theirs; every `maintain_every`-th
/// acknowledgement saves the index.
struct Plan {
    at: usize,
    power_loss: bool,
    /// Whether a sync fails (a dying disk) just before the crash, and the
    /// index is saved after it.
    sync_failure: bool,
    crash_seed: u64,
    maintain_every: usize,
    disk: SimStorage,
    crashed: Mutex<Option<SimStorage>>,
    stop: AtomicBool,
    acks: AtomicUsize,
}

impl Plan {
    fn crash(&self, store: &EmbeddedStore) {
        // First, so a failure the crash causes is known for one.
        self.stop.store(true, Ordering::SeqCst);
        let mut crashed = self.crashed.lock().unwrap_or_else(|e| e.into_inner());
        if crashed.is_none() && self.sync_failure {
            // The writers' next sync round fails, and with it whatever
            // they had in flight; saving the index may fail too, but must
            // not save what the log may lose.
            self.disk.fail_next_syncs(1);
            std::thread::sleep(Duration::from_micros(200));
            let _ = store.maintain(true);
        }
        if crashed.is_none() {
            *crashed = Some(if self.power_loss {
                self.disk.crash(self.crash_seed)
            } else {
                self.disk.kill()
            });
        }
    }

    /// Counts an acknowledgement; saves the index or crashes when due.
    fn acked(&self, seed: u64, store: &EmbeddedStore) {
        let n = self.acks.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.at {
            self.crash(store);
        } else if n.is_multiple_of(self.maintain_every)
            && let Err(e) = store.maintain(true)
        {
            // A crash by another writer may have come first.
            assert!(
                self.stop.load(Ordering::SeqCst),
                "seed {seed}: saving the index: {e}"
            );
        }
    }
}

fn writer(
    seed: u64,
    w: usize,
    cycle: usize,
    store: &EmbeddedStore,
    journal: &Mutex<Journal>,
    plan: &Plan,
) {
    let stop = &plan.stop;
    let mut rng =
        SimRng::new(seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9) ^ (cycle as u64) << 40);
    let own = format!("own{w}-c{cycle}");
    let life = format!("life-{w}c{cycle}");
    let mut n = 0;
    let mut last_acked: Option<(Sent, AppendResult)> = None;
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.below(100);
        if roll < 8 {
            // A retry of this writer's last acknowledged append.
            let Some((sent, first)) = last_acked.clone() else {
                continue;
            };
            match store.append(&sent.stream, sent.expected, &sent.events) {
                Ok(again) => assert_eq!(
                    again, first,
                    "seed {seed}: a retry of {sent:?} answered differently"
                ),
                Err(e) if is_crash(&e) => return,
                Err(e) => panic!("seed {seed}: a retry of {sent:?} failed: {e}"),
            }
            continue;
        }
        if roll < 16 {
            let result = match rng.below(4) {
                0 => store.delete_stream(&life, ExpectedVersion::Any),
                1 if rng.chance(20) => store.tombstone_stream(&life, ExpectedVersion::Any),
                _ => store.set_stream_metadata(
                    &life,
                    &StreamMetadata {
                        max_count: Some(1 + rng.below(4)),
                        ..StreamMetadata::default()
                    },
                ),
            };
            lock(journal).lifecycle.insert(life.clone());
            match result {
                Err(e) if is_crash(&e) => return,
                _ => continue,
            }
        }
        let stream = match rng.below(10) {
            0..=4 => SHARED[rng.below(SHARED.len() as u64) as usize].to_owned(),
            5..=7 => own.clone(),
            _ => life.clone(),
        };
        let expected = match rng.below(10) {
            0..=3 => ExpectedVersion::Any,
            4 => ExpectedVersion::NoStream,
            5 => ExpectedVersion::Exists,
            _ => match store.stream_version(&stream) {
                Ok(v) => v.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                Err(e) if is_crash(&e) => return,
                Err(_) => ExpectedVersion::Any,
            },
        };
        n += 1;
        let events: Vec<NewEvent> = (0..1 + rng.below(4))
            .map(|k| {
                let id = format!("c{cycle}w{w}n{n}k{k}");
                let ty = ["Opened", "Changed", "Closed"][rng.below(3) as usize];
                let data = vec![b'x'; rng.below(200) as usize];
                let mut event = NewEvent::json(id, ty, data);
                // Most events name one of a few correlations, so the
                // correlation index is compared with the log too.
                if rng.below(4) != 0 {
                    let c = rng.below(5);
                    event.metadata = format!(r#"{{"correlationid":"corr-{c}"}}"#).into_bytes();
                }
                event
            })
            .collect();
        let sent = Sent {
            stream,
            expected,
            events,
        };
        {
            let mut j = lock(journal);
            let first = sent.events[0].id.clone();
            for e in &sent.events {
                j.append_of.insert(e.id.clone(), first.clone());
            }
            j.sent.insert(first, sent.clone());
        }
        match store.append(&sent.stream, sent.expected, &sent.events) {
            Ok(result) => {
                lock(journal).acked.push((sent.clone(), result));
                plan.acked(seed, store);
                if !sent.stream.starts_with("life") {
                    last_acked = Some((sent, result));
                }
            }
            Err(e) if is_crash(&e) => return,
            Err(
                StoreError::WrongExpectedVersion { .. }
                | StoreError::StreamDeleted { .. }
                | StoreError::IdempotencyConflict { .. },
            ) => {}
            Err(e) => panic!("seed {seed}: append failed: {e}"),
        }
    }
}

/// Follows the global order (and one shared stream) and notes what it was
/// shown; an event shown twice must be the same both times.
fn reader(seed: u64, store: &Arc<EmbeddedStore>, journal: &Mutex<Journal>, stop: &AtomicBool) {
    let mut all = store.subscribe(Target::All, weir_store::Filter::default(), 0);
    while !stop.load(Ordering::Relaxed) {
        let events = match all.poll(20) {
            Ok(events) => events,
            Err(_) => return,
        };
        let mut j = lock(journal);
        for e in events {
            let shown = (e.stream.clone(), e.version, e.id.clone());
            if let Some(before) = j.seen.insert(e.position, shown.clone()) {
                assert_eq!(
                    before, shown,
                    "seed {seed}: position {} changed while running",
                    e.position
                );
            }
        }
        let caught_up = j.seen.len() as u64 >= store.head_position();
        drop(j);
        if caught_up {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Everything the test knows must hold of the reopened store.
fn check_recovered(seed: u64, cycle: usize, store: &EmbeddedStore, journal: &Journal) {
    let ctx = format!("seed {seed} after crash {cycle}");
    let log = raw_log(store.broker());
    let head = store.head_position();
    assert_eq!(head, log.len() as u64, "{ctx}: the head is the log's end");
    let recovery = store.recovery();
    let saved = recovery.saved_index_position.unwrap_or(0);
    assert!(saved <= head, "{ctx}: {recovery:?} past the head {head}");
    assert_eq!(
        recovery.events_replayed,
        head - saved,
        "{ctx}: {recovery:?}"
    );
    // Every acknowledged append, in the log and through the indexes.
    for (sent, r) in &journal.acked {
        for (i, e) in sent.events.iter().enumerate() {
            let p = r.first_position + i as u64;
            let found = log.get(p as usize).unwrap_or_else(|| {
                panic!("{ctx}: acknowledged {} at {p} is lost (head {head})", e.id)
            });
            assert_eq!(
                (&found.stream, found.version, &found.id),
                (&sent.stream, r.first_version + i as u64, &e.id),
                "{ctx}: position {p}"
            );
        }
        if !journal.lifecycle.contains(&sent.stream) {
            let n = sent.events.len();
            let read = store
                .read_stream(&sent.stream, r.first_version, Direction::Forward, n)
                .unwrap_or_else(|e| panic!("{ctx}: reading {}: {e}", sent.stream));
            let got: Vec<_> = read.iter().map(|e| (e.position, e.id.as_str())).collect();
            let want: Vec<_> = (0..n)
                .map(|i| (r.first_position + i as u64, sent.events[i].id.as_str()))
                .collect();
            assert_eq!(got, want, "{ctx}: stream {}", sent.stream);
        }
    }
    // Everything a reader was shown.
    for (p, (stream, version, id)) in &journal.seen {
        let found = log
            .get(*p as usize)
            .unwrap_or_else(|| panic!("{ctx}: {id} was read at {p} and is lost (head {head})"));
        assert_eq!(
            (&found.stream, found.version, &found.id),
            (stream, *version, id),
            "{ctx}: position {p} was read and changed"
        );
    }
    // Every event comes from an append, and appends are whole.
    let mut at = 0;
    while at < log.len() {
        let e = &log[at];
        if e.stream.starts_with('$') {
            at += 1;
            continue;
        }
        let first = journal
            .append_of
            .get(&e.id)
            .unwrap_or_else(|| panic!("{ctx}: {} at {at} was never appended", e.id));
        let sent = &journal.sent[first];
        assert_eq!(sent.events[0].id, e.id, "{ctx}: an append starts at {at}");
        for (i, want) in sent.events.iter().enumerate() {
            let got = log
                .get(at + i)
                .unwrap_or_else(|| panic!("{ctx}: the append of {} is cut short", want.id));
            assert_eq!(
                (&got.id, &got.stream, &got.event_type),
                (&want.id, &sent.stream, &want.event_type),
                "{ctx}: the append at {at} is not whole"
            );
        }
        at += sent.events.len();
    }
}

fn run_seed(seed: u64) {
    let mut rng = SimRng::new(seed);
    let clock = ManualClock::new(1_000_000);
    let mut disk = SimStorage::new();
    let journal = Mutex::new(Journal::default());
    let n_crashes = 1 + rng.below(2) as usize;
    for cycle in 0..=n_crashes {
        let mut store = Arc::new(open_sim(&disk, &clock));
        if cycle > 0 {
            check_recovered(seed, cycle, &store, &lock(&journal));
            // The same log, indexed from scratch, must answer the same.
            let recovered = dump(&store);
            drop(store);
            remove_saved_index(&disk);
            store = Arc::new(open_sim(&disk, &clock));
            assert_eq!(store.recovery().saved_index_position, None);
            assert_same_dump(
                &format!("seed {seed} after crash {cycle}: saved index and tail vs the log alone"),
                &recovered,
                &dump(&store),
            );
            // Retries of acknowledged appends get their first answers.
            let head = store.head_position();
            let j = lock(&journal);
            for (sent, first) in j.acked.iter().rev().take(8) {
                if j.lifecycle.contains(&sent.stream) {
                    continue;
                }
                let again = store
                    .append(&sent.stream, sent.expected, &sent.events)
                    .unwrap_or_else(|e| panic!("seed {seed}: retrying {sent:?}: {e}"));
                assert_eq!(&again, first, "seed {seed}: a retry after the crash");
            }
            assert_eq!(store.head_position(), head, "seed {seed}: retries wrote");
        }
        if cycle == n_crashes {
            break;
        }
        let writers = 1 + rng.below(4) as usize;
        let acked = lock(&journal).acked.len();
        let plan = Plan {
            at: acked + 1 + rng.below(40) as usize,
            power_loss: rng.chance(70),
            sync_failure: rng.chance(25),
            crash_seed: rng.next_u64(),
            maintain_every: 1 + rng.below(30) as usize,
            disk: disk.clone(),
            crashed: Mutex::new(None),
            stop: AtomicBool::new(false),
            acks: AtomicUsize::new(acked),
        };
        std::thread::scope(|scope| {
            for w in 0..writers {
                let (store, journal, plan) = (&store, &journal, &plan);
                scope.spawn(move || writer(seed, w, cycle, store, journal, plan));
            }
            let (store_r, journal_r, stop_r) = (&store, &journal, &plan.stop);
            scope.spawn(move || reader(seed, store_r, journal_r, stop_r));
            // Writers that only meet conflicts might never get there.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !plan.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            plan.crash(&store);
        });
        disk = plan.crashed.into_inner().unwrap().expect("crashed");
        drop(store);
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("WEIR_CRASH_SEED") {
        return vec![seed.parse().expect("WEIR_CRASH_SEED is a u64")];
    }
    let n: u64 = std::env::var("WEIR_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (0..n).collect()
}

#[test]
fn acknowledged_and_seen_events_survive_crashes_and_indexes_agree_with_the_log() {
    for seed in seeds() {
        if let Err(panic) = std::panic::catch_unwind(|| run_seed(seed)) {
            eprintln!("store crash test failed; replay with WEIR_CRASH_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}
