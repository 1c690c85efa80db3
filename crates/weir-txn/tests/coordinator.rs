//! The transaction coordinator against an in-memory log and marker
//! recorder: fencing, the two phases, retries, timeouts, and a crash at
//! every log append followed by recovery, which must leave every
//! transaction's partitions with one and the same marker.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use weir_txn::{
    CoordinatorConfig, InitProducer, LogRecord, TopicPartition, TxnCoordinator, TxnError, TxnIo,
    TxnState,
};

/// A marker written: producer id, epoch, commit, partition.
type Marker = (i64, i16, bool, TopicPartition);
/// A log record's key and value.
type Raw = (Vec<u8>, Option<Vec<u8>>);
/// One write_markers call.
type Call = (i64, i16, bool, BTreeSet<TopicPartition>);

#[derive(Default)]
struct FakeIo {
    log: Mutex<Vec<Raw>>,
    /// Each call's producer id, epoch, decision and partitions.
    calls: Mutex<Vec<Call>>,
    next_pid: AtomicI64,
    /// Appends allowed before every later one fails (a crash).
    appends_left: Option<AtomicUsize>,
    markers_fail: Mutex<bool>,
    /// While true, appends wait (to hold an id busy).
    gate: Mutex<bool>,
    gate_changed: Condvar,
}

impl FakeIo {
    fn crashing_after(appends: usize) -> Self {
        Self {
            appends_left: Some(AtomicUsize::new(appends)),
            ..Self::default()
        }
    }

    fn states(&self) -> Vec<TxnState> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                LogRecord::decode(k, v.as_deref())
                    .unwrap()
                    .metadata
                    .unwrap()
                    .state
            })
            .collect()
    }

    fn markers(&self) -> Vec<Marker> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(p, e, c, tps)| tps.iter().map(move |tp| (*p, *e, *c, tp.clone())))
            .collect()
    }
}

impl TxnIo for FakeIo {
    fn allocate_producer_id(&self) -> Result<i64, TxnError> {
        Ok(self.next_pid.fetch_add(1, Ordering::SeqCst) + 1000)
    }

    fn append(&self, record: &LogRecord) -> Result<(), TxnError> {
        let mut closed = self.gate.lock().unwrap();
        while *closed {
            closed = self.gate_changed.wait(closed).unwrap();
        }
        drop(closed);
        if let Some(left) = &self.appends_left
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
        {
            return Err(TxnError::Storage("crashed".into()));
        }
        self.log
            .lock()
            .unwrap()
            .push((record.key(), record.value()));
        Ok(())
    }

    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<(), TxnError> {
        if *self.markers_fail.lock().unwrap() {
            return Err(TxnError::Storage("markers".into()));
        }
        if self
            .appends_left
            .as_ref()
            .is_some_and(|l| l.load(Ordering::SeqCst) == 0)
        {
            return Err(TxnError::Storage("crashed".into()));
        }
        self.calls
            .lock()
            .unwrap()
            .push((producer_id, producer_epoch, commit, partitions.clone()));
        Ok(())
    }
}

fn tps(names: &[(&str, i32)]) -> Vec<TopicPartition> {
    names
        .iter()
        .map(|(t, p)| TopicPartition::new(*t, *p))
        .collect()
}

fn coordinator() -> TxnCoordinator {
    TxnCoordinator::new(CoordinatorConfig::default())
}

const TIMEOUT: i32 = 60_000;

#[test]
fn a_transaction_commits_in_two_phases_and_a_retry_changes_nothing() {
    let (io, c) = (FakeIo::default(), coordinator());
    let p = c.init_producer_id(&io, "tx", TIMEOUT, None, 0).unwrap();
    assert_eq!(
        p,
        InitProducer {
            producer_id: 1000,
            producer_epoch: 0
        }
    );
    let parts = tps(&[("a", 0), ("b", 1)]);
    c.add_partitions(&io, "tx", 1000, 0, &parts[..1], 10)
        .unwrap();
    c.add_partitions(&io, "tx", 1000, 0, &parts, 20).unwrap();
    // Adding what is there already writes nothing.
    c.add_partitions(&io, "tx", 1000, 0, &parts[1..], 30)
        .unwrap();
    let open = c.describe("tx").unwrap();
    assert_eq!(open.state, TxnState::Ongoing);
    assert_eq!(open.txn_start_ms, 10);
    assert_eq!(open.partitions.len(), 2);
    c.end_txn(&io, "tx", 1000, 0, true, 40).unwrap();
    assert_eq!(
        io.states(),
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::CompleteCommit
        ]
    );
    assert_eq!(
        io.markers(),
        parts
            .iter()
            .map(|tp| (1000, 0, true, tp.clone()))
            .collect::<Vec<_>>()
    );
    let done = c.describe("tx").unwrap();
    assert_eq!(
        (done.state, done.partitions.len(), done.txn_start_ms),
        (TxnState::CompleteCommit, 0, 10),
        "the start of the last transaction stays"
    );
    // A retried commit is answered; an abort now is refused.
    c.end_txn(&io, "tx", 1000, 0, true, 50).unwrap();
    assert!(matches!(
        c.end_txn(&io, "tx", 1000, 0, false, 50),
        Err(TxnError::InvalidTxnState { .. })
    ));
    assert_eq!(io.markers().len(), 2);
    // The next transaction starts afresh.
    c.add_partitions(&io, "tx", 1000, 0, &tps(&[("c", 0)]), 60)
        .unwrap();
    c.end_txn(&io, "tx", 1000, 0, false, 70).unwrap();
    assert_eq!(
        io.markers().last(),
        Some(&(1000, 0, false, TopicPartition::new("c", 0)))
    );
    assert!(matches!(c.end_txn(&io, "tx", 1000, 0, false, 80), Ok(())));
    assert!(matches!(
        c.end_txn(&io, "tx", 1000, 0, true, 80),
        Err(TxnError::InvalidTxnState { .. })
    ));
}

#[test]
fn a_new_instance_fences_the_old_and_aborts_its_open_transaction() {
    let (io, c) = (FakeIo::default(), coordinator());
    let old = c.init_producer_id(&io, "tx", TIMEOUT, None, 0).unwrap();
    c.add_partitions(&io, "tx", old.producer_id, 0, &tps(&[("a", 0)]), 1)
        .unwrap();
    let new = c.init_producer_id(&io, "tx", TIMEOUT, None, 2).unwrap();
    // The open transaction was aborted at epoch 1; the new instance has 2.
    assert_eq!(new.producer_id, old.producer_id);
    assert_eq!(new.producer_epoch, 2);
    assert_eq!(
        io.markers(),
        [(old.producer_id, 1, false, TopicPartition::new("a", 0))]
    );
    // The zombie can neither add nor commit.
    for result in [
        c.add_partitions(&io, "tx", old.producer_id, 0, &tps(&[("a", 0)]), 3),
        c.end_txn(&io, "tx", old.producer_id, 0, true, 3),
    ] {
        assert!(
            matches!(
                result,
                Err(TxnError::Fenced {
                    epoch: 0,
                    current: 2,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    // An idle id's next instance just bumps the epoch.
    let third = c.init_producer_id(&io, "tx", TIMEOUT, None, 4).unwrap();
    assert_eq!(third.producer_epoch, 3);
    assert_eq!(io.markers().len(), 1);
}

#[test]
fn a_producer_retrying_its_init_gets_its_epoch_and_stale_ones_are_fenced() {
    let (io, c) = (FakeIo::default(), coordinator());
    let p0 = c.init_producer_id(&io, "tx", TIMEOUT, None, 0).unwrap();
    // KIP-360: the producer bumps its own epoch, naming it.
    let p1 = c
        .init_producer_id(&io, "tx", TIMEOUT, Some((p0.producer_id, 0)), 1)
        .unwrap();
    assert_eq!(p1.producer_epoch, 1);
    // Its retry (the answer was lost) names epoch 0 again: answered alike.
    let again = c
        .init_producer_id(&io, "tx", TIMEOUT, Some((p0.producer_id, 0)), 2)
        .unwrap();
    assert_eq!(again, p1);
    let records = io.log.lock().unwrap().len();
    assert_eq!(records, 2);
    // Another producer id, or an older epoch, is fenced.
    for expected in [(p0.producer_id + 7, 1), (p0.producer_id, 5)] {
        assert!(matches!(
            c.init_producer_id(&io, "tx", TIMEOUT, Some(expected), 3),
            Err(TxnError::Fenced { .. })
        ));
    }
}

#[test]
fn requests_that_do_not_fit_are_refused_and_change_nothing() {
    let (io, c) = (FakeIo::default(), coordinator());
    let max = CoordinatorConfig::default().max_timeout_ms;
    assert!(matches!(
        c.init_producer_id(&io, "", TIMEOUT, None, 0),
        Err(TxnError::InvalidTransactionalId(_))
    ));
    let long = "x".repeat(weir_txn::TRANSACTIONAL_ID_BYTES_MAX + 1);
    assert!(matches!(
        c.init_producer_id(&io, &long, TIMEOUT, None, 0),
        Err(TxnError::InvalidTransactionalId(_))
    ));
    for timeout in [0, -1, max + 1] {
        assert!(matches!(
            c.init_producer_id(&io, "tx", timeout, None, 0),
            Err(TxnError::InvalidTimeout { .. })
        ));
    }
    assert!(matches!(
        c.add_partitions(&io, "nope", 1, 0, &tps(&[("a", 0)]), 0),
        Err(TxnError::InvalidProducerIdMapping { .. })
    ));
    let p = c.init_producer_id(&io, "tx", max, None, 0).unwrap();
    assert!(matches!(
        c.add_partitions(&io, "tx", p.producer_id + 1, 0, &tps(&[("a", 0)]), 0),
        Err(TxnError::InvalidProducerIdMapping { .. })
    ));
    assert!(matches!(
        c.end_txn(&io, "tx", p.producer_id, 0, true, 0),
        Err(TxnError::InvalidTxnState { .. })
    ));
    let many: Vec<_> = (0..=weir_txn::TXN_PARTITIONS_MAX as i32)
        .map(|i| TopicPartition::new("t", i))
        .collect();
    assert!(matches!(
        c.add_partitions(&io, "tx", p.producer_id, 0, &many, 0),
        Err(TxnError::TooManyPartitions { .. })
    ));
    assert_eq!(io.states(), [TxnState::Empty]);
    assert_eq!(c.describe("tx").unwrap().state, TxnState::Empty);
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let (io, c) = (FakeIo::default(), coordinator());
    let p = c.init_producer_id(&io, "tx", 1_000, None, 0).unwrap();
    c.add_partitions(&io, "tx", p.producer_id, 0, &tps(&[("a", 0)]), 100)
        .unwrap();
    assert!(c.abort_expired(&io, 1_100).unwrap().is_empty());
    assert_eq!(c.abort_expired(&io, 1_101).unwrap(), ["tx"]);
    assert_eq!(
        io.markers(),
        [(p.producer_id, 1, false, TopicPartition::new("a", 0))]
    );
    assert_eq!(c.describe("tx").unwrap().state, TxnState::CompleteAbort);
    assert!(matches!(
        c.end_txn(&io, "tx", p.producer_id, 0, true, 1_200),
        Err(TxnError::Fenced { .. })
    ));
    // Nothing open: nothing more to abort.
    assert!(c.abort_expired(&io, 10_000).unwrap().is_empty());
}

#[test]
fn an_epoch_about_to_overflow_moves_to_a_new_producer_id() {
    let (io, c) = (FakeIo::default(), coordinator());
    c.init_producer_id(&io, "tx", TIMEOUT, None, 0).unwrap();
    // A log whose last record has the epoch at its limit.
    let mut meta = c.describe("tx").unwrap();
    meta.producer_epoch = i16::MAX - 1;
    let record = LogRecord {
        transactional_id: "tx".into(),
        metadata: Some(meta),
    };
    let (k, v) = (record.key(), record.value());
    let c = coordinator();
    c.recover([(&k[..], v.as_deref())]);
    let p = c.init_producer_id(&io, "tx", TIMEOUT, None, 1).unwrap();
    assert_eq!((p.producer_id, p.producer_epoch), (1001, 0));
}

#[test]
fn a_busy_id_asks_other_requests_to_retry() {
    let io = Arc::new(FakeIo::default());
    let c = Arc::new(coordinator());
    let p = c.init_producer_id(&*io, "tx", TIMEOUT, None, 0).unwrap();
    *io.gate.lock().unwrap() = true;
    let adder = {
        let (io, c) = (io.clone(), c.clone());
        std::thread::spawn(move || {
            c.add_partitions(&*io, "tx", p.producer_id, 0, &tps(&[("a", 0)]), 1)
        })
    };
    // Until the adder's append is in flight, wait for it to claim the id.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match c.end_txn(&*io, "tx", p.producer_id, 0, true, 2) {
            Err(TxnError::ConcurrentTransactions(_)) => break,
            Err(TxnError::InvalidTxnState { .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::yield_now();
    }
    assert!(matches!(
        c.init_producer_id(&*io, "tx", TIMEOUT, None, 2),
        Err(TxnError::ConcurrentTransactions(_))
    ));
    *io.gate.lock().unwrap() = false;
    io.gate_changed.notify_all();
    adder.join().unwrap().unwrap();
    c.end_txn(&*io, "tx", p.producer_id, 0, true, 3).unwrap();
    assert_eq!(io.markers().len(), 1);
}

#[test]
fn markers_that_fail_leave_the_transaction_prepared_until_completed() {
    let (io, c) = (FakeIo::default(), coordinator());
    let p = c.init_producer_id(&io, "tx", TIMEOUT, None, 0).unwrap();
    c.add_partitions(&io, "tx", p.producer_id, 0, &tps(&[("a", 0)]), 1)
        .unwrap();
    *io.markers_fail.lock().unwrap() = true;
    // The decision is durable: the commit is answered.
    c.end_txn(&io, "tx", p.producer_id, 0, true, 2).unwrap();
    assert_eq!(c.describe("tx").unwrap().state, TxnState::PrepareCommit);
    assert!(matches!(
        c.end_txn(&io, "tx", p.producer_id, 0, true, 3),
        Err(TxnError::ConcurrentTransactions(_))
    ));
    assert!(c.complete_prepared(&io, 4).is_err());
    *io.markers_fail.lock().unwrap() = false;
    assert_eq!(c.complete_prepared(&io, 5).unwrap(), ["tx"]);
    assert_eq!(c.describe("tx").unwrap().state, TxnState::CompleteCommit);
    assert_eq!(
        io.markers(),
        [(p.producer_id, 0, true, TopicPartition::new("a", 0))]
    );
}

/// The partitions of the scenario's three transactions, each its own set
/// so the markers of each are told apart.
fn scenario_sets() -> [BTreeSet<TopicPartition>; 3] {
    [
        tps(&[("a", 0), ("b", 0)]).into_iter().collect(),
        tps(&[("a", 1), ("c", 0)]).into_iter().collect(),
        tps(&[("d", 0)]).into_iter().collect(),
    ]
}

/// A producer's run against `io` until its storage fails: a committed
/// and an aborted transaction, then a third left open while a new
/// instance takes the id (fencing the first and aborting it). Returns the
/// decisions the producer was told of, by transaction (0, 1).
fn run_until_crash(io: &FakeIo, c: &TxnCoordinator) -> BTreeMap<usize, bool> {
    let sets = scenario_sets();
    let mut acknowledged = BTreeMap::new();
    let mut run = || -> Result<(), TxnError> {
        let p = c.init_producer_id(io, "tx", TIMEOUT, None, 0)?;
        let (pid, e) = (p.producer_id, p.producer_epoch);
        for (i, commit) in [(0, true), (1, false)] {
            let parts: Vec<_> = sets[i].iter().cloned().collect();
            c.add_partitions(io, "tx", pid, e, &parts, 1)?;
            c.end_txn(io, "tx", pid, e, commit, 2)?;
            acknowledged.insert(i, commit);
        }
        let parts: Vec<_> = sets[2].iter().cloned().collect();
        c.add_partitions(io, "tx", pid, e, &parts, 3)?;
        c.init_producer_id(io, "tx", TIMEOUT, None, 4)?;
        Ok(())
    };
    let _ = run();
    acknowledged
}

#[test]
fn a_crash_at_any_append_recovers_to_one_marker_per_transaction() {
    // Appends the whole run makes without a crash.
    let whole = {
        let io = FakeIo::default();
        run_until_crash(&io, &coordinator());
        io.log.lock().unwrap().len()
    };
    assert!(whole >= 10, "{whole}");
    let sets = scenario_sets();
    for crash_at in 0..=whole {
        let io = FakeIo::crashing_after(crash_at);
        let acknowledged = run_until_crash(&io, &coordinator());
        // A new process replays the log, finishes what was decided, and
        // in time aborts what was left open.
        let restarted = FakeIo::default();
        restarted
            .next_pid
            .store(io.next_pid.load(Ordering::SeqCst), Ordering::SeqCst);
        let c = coordinator();
        let log = io.log.lock().unwrap().clone();
        let recovered = c.recover(log.iter().map(|(k, v)| (&k[..], v.as_deref())));
        assert!(recovered.skipped.is_empty());
        c.complete_prepared(&restarted, 100).unwrap();
        c.abort_expired(&restarted, i64::from(TIMEOUT) + 1_000)
            .unwrap();
        if let Some(m) = c.describe("tx") {
            assert!(m.state.is_idle(), "crash at {crash_at}: left {:?}", m.state);
        }
        let calls: Vec<Call> = io
            .calls
            .lock()
            .unwrap()
            .iter()
            .chain(restarted.calls.lock().unwrap().iter())
            .cloned()
            .collect();
        // Which transactions reached their partitions (the log says so).
        let opened: Vec<bool> = sets
            .iter()
            .map(|set| {
                log.iter().any(|(k, v)| {
                    LogRecord::decode(k, v.as_deref())
                        .unwrap()
                        .metadata
                        .is_some_and(|m| m.state == TxnState::Ongoing && &m.partitions == set)
                })
            })
            .collect();
        for (i, set) in sets.iter().enumerate() {
            let decisions: BTreeSet<bool> = calls
                .iter()
                .filter(|(_, _, _, parts)| parts == set)
                .map(|(_, _, commit, _)| *commit)
                .collect();
            // One decision for every partition of it (a call covers them
            // all), the one the producer was told of, and none for a
            // transaction that never opened.
            assert!(
                decisions.len() <= 1,
                "crash at {crash_at}: txn {i} {decisions:?}"
            );
            if let Some(commit) = acknowledged.get(&i) {
                assert_eq!(
                    decisions.first(),
                    Some(commit),
                    "crash at {crash_at}: txn {i}"
                );
            }
            assert_eq!(
                decisions.len(),
                usize::from(opened[i]),
                "crash at {crash_at}: txn {i}"
            );
        }
    }
}

#[test]
fn unreadable_records_are_skipped_and_tombstones_forget() {
    let (io, c) = (FakeIo::default(), coordinator());
    c.init_producer_id(&io, "tx", TIMEOUT, None, 0).unwrap();
    let mut log = io.log.lock().unwrap().clone();
    log.push((b"junk".to_vec(), Some(b"junk".to_vec())));
    let fresh = coordinator();
    let r = fresh.recover(log.iter().map(|(k, v)| (&k[..], v.as_deref())));
    assert_eq!((r.ids, r.skipped.len()), (1, 1));
    let tomb = LogRecord {
        transactional_id: "tx".into(),
        metadata: None,
    };
    let key = tomb.key();
    let r = fresh.recover([(&key[..], None)]);
    assert_eq!(r.ids, 0);
    assert!(fresh.describe("tx").is_none());
}
