//! Transactions across power losses on the simulated disk: the
//! coordinator and its log (`__transaction_state`), the markers and the
//! transactional data, with the machine stopping at a random sync (in the
//! middle of a data append, a transaction log append, a marker round or
//! a partition state snapshot) and the unsynced writes kept in part and
//! torn. Segments are small, so the state of most transactions comes back
//! from snapshots plus the log after them. After each restart,
//! recovery and the fencing of every producer, a `read_committed` reader
//! sees every acknowledged value of every transaction whose commit was
//! acknowledged, nothing of one whose abort was, and of any other
//! transaction all of its values or none, in every partition alike; and
//! what it saw never changes after a later crash.
//!
//! `WEIR_TXN_CRASH_SEEDS=N` sets how many seeds run (default 30; each is
//! four power losses, so it does not follow `WEIR_CRASH_SEEDS`);
//! `WEIR_CRASH_SEED=S` replays one seed, as printed by a failure.

use std::collections::{BTreeMap, BTreeSet};

use weir_broker::txn_log::BrokerTxnIo;
use weir_broker::{Broker, BrokerConfig};
use weir_log::batch::{self, BatchBuilder, BatchHeader};
use weir_log::sim::{SimRng, SimStorage};
use weir_log::{DataDir, DirConfig, ManualClock};
use weir_txn::{CoordinatorConfig, TopicPartition, TxnCoordinator, TxnError, TxnState};

const ROOT: &str = "/data";
const IDS: [&str; 3] = ["tx-0", "tx-1", "tx-2"];
const TIMEOUT_MS: i32 = 60_000;

fn all_partitions() -> Vec<TopicPartition> {
    vec![
        TopicPartition::new("a", 0),
        TopicPartition::new("a", 1),
        TopicPartition::new("b", 0),
    ]
}

/// How a transaction ended, as far as its caller was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Nothing,
    Committed,
    Aborted,
}

/// One transaction the workload began.
#[derive(Debug)]
struct Txn {
    told: Told,
    /// Values whose append was acknowledged.
    acked: BTreeSet<String>,
    /// Whether a reader saw it committed (set at the first check that
    /// could tell, and never allowed to change after).
    seen_committed: Option<bool>,
}

/// A producer the workload drives: its id, epoch and open transaction.
#[derive(Debug)]
struct Producer {
    id: i64,
    epoch: i16,
    /// The open transaction's number and partitions.
    open: Option<(usize, Vec<TopicPartition>)>,
    /// Next sequence number per partition, for this epoch.
    sequences: BTreeMap<TopicPartition, i32>,
}

#[derive(Debug, Default)]
struct Model {
    txns: Vec<Txn>,
    producers: BTreeMap<&'static str, Producer>,
    now_ms: i64,
}

struct Node {
    disk: SimStorage,
    clock: ManualClock,
    broker: Broker,
    coordinator: TxnCoordinator,
}

fn open(disk: SimStorage, clock: ManualClock) -> Node {
    let dir = DataDir::open_with(
        std::sync::Arc::new(disk.clone()),
        std::sync::Arc::new(clock.clone()),
        ROOT,
        DirConfig::default(),
    )
    .unwrap();
    let broker = Broker::open(dir, BrokerConfig::default()).unwrap();
    let coordinator = TxnCoordinator::new(CoordinatorConfig::default());
    let log = broker.transaction_log().unwrap();
    let recovered = coordinator.recover(log.iter().map(|(k, v)| (&k[..], v.as_deref())));
    assert!(recovered.skipped.is_empty(), "{:?}", recovered.skipped);
    Node {
        disk,
        clock,
        broker,
        coordinator,
    }
}

/// Where the storage died: the workload stops and the machine restarts.
#[derive(Debug)]
struct Died;

fn alive<T>(node: &Node, r: Result<T, impl std::fmt::Debug>, what: &str) -> Result<T, Died> {
    match r {
        Ok(v) => Ok(v),
        Err(_) if node.disk.is_dead() => Err(Died),
        Err(e) => panic!("{what} failed on a live disk: {e:?}"),
    }
}

fn txn_batch(p: &Producer, tp: &TopicPartition, value: &str) -> Vec<u8> {
    let seq = p.sequences.get(tp).copied().unwrap_or(0);
    let mut b = BatchBuilder::new(0)
        .producer(p.id, p.epoch, seq)
        .transactional();
    b.push(0, None, Some(value.as_bytes()), &[]);
    b.build()
}

/// (Re)starts producer `tid`: a new epoch that fences the old one and
/// aborts its open transaction, retried while that completes.
fn init_producer(node: &Node, model: &mut Model, tid: &'static str) -> Result<(), Died> {
    let io = BrokerTxnIo::new(&node.broker);
    for _ in 0..100 {
        model.now_ms += 1;
        match node
            .coordinator
            .init_producer_id(&io, tid, TIMEOUT_MS, None, model.now_ms)
        {
            Ok(p) => {
                model.producers.insert(
                    tid,
                    Producer {
                        id: p.producer_id,
                        epoch: p.producer_epoch,
                        open: None,
                        sequences: BTreeMap::new(),
                    },
                );
                return Ok(());
            }
            Err(TxnError::ConcurrentTransactions(_)) => {
                let r = node.coordinator.complete_prepared(&io, model.now_ms);
                alive(node, r, "completing prepared transactions")?;
            }
            Err(e) => {
                alive::<()>(node, Err(e), "init_producer_id")?;
            }
        }
    }
    panic!("{tid} stayed busy");
}

/// One random step of the workload.
fn step(node: &Node, model: &mut Model, rng: &mut SimRng) -> Result<(), Died> {
    let io = BrokerTxnIo::new(&node.broker);
    model.now_ms += 1;
    node.clock.set(model.now_ms);
    let tid = IDS[rng.below(IDS.len() as u64) as usize];
    if !model.producers.contains_key(tid) {
        return init_producer(node, model, tid);
    }
    if rng.chance(4) {
        // The maintenance pass: partition state snapshots (the topics'
        // segments are small, so most of the history is behind them).
        node.broker.save_partition_snapshots(false);
        return Ok(());
    }
    if rng.chance(3) {
        // Time passes: open transactions expire and their producers are
        // fenced.
        model.now_ms += i64::from(TIMEOUT_MS) + 1;
        node.clock.set(model.now_ms);
        let r = node.coordinator.abort_expired(&io, model.now_ms);
        for id in alive(node, r, "abort_expired")? {
            let p = model.producers.remove(id.as_str()).expect("a known id");
            let (n, _) = p.open.expect("an expired id had a transaction open");
            model.txns[n].told = Told::Aborted;
        }
        return Ok(());
    }
    let p = model.producers.get_mut(tid).unwrap();
    let Some((n, parts)) = p.open.clone() else {
        // Begin: the first partitions of the transaction.
        let mut parts: Vec<_> = all_partitions()
            .into_iter()
            .filter(|_| rng.chance(60))
            .collect();
        if parts.is_empty() {
            parts.push(TopicPartition::new("b", 0));
        }
        let r = node
            .coordinator
            .add_partitions(&io, tid, p.id, p.epoch, &parts, model.now_ms);
        alive(node, r, "add_partitions")?;
        model.txns.push(Txn {
            told: Told::Nothing,
            acked: BTreeSet::new(),
            seen_committed: None,
        });
        p.open = Some((model.txns.len() - 1, parts));
        return Ok(());
    };
    if rng.chance(75) {
        let tp = &parts[rng.below(parts.len() as u64) as usize];
        let value = format!("{n}:{}", model.txns[n].acked.len());
        let mut bytes = txn_batch(p, tp, &value);
        let r = node.broker.produce(&tp.topic, tp.partition, &mut bytes);
        alive(node, r, "produce")?;
        *p.sequences.entry(tp.clone()).or_insert(0) += 1;
        model.txns[n].acked.insert(value);
        return Ok(());
    }
    let commit = rng.chance(60);
    let r = node
        .coordinator
        .end_txn(&io, tid, p.id, p.epoch, commit, model.now_ms);
    alive(node, r, "end_txn")?;
    p.open = None;
    model.txns[n].told = if commit {
        Told::Committed
    } else {
        Told::Aborted
    };
    Ok(())
}

/// What a `read_committed` reader and a `read_uncommitted` one see: the
/// values by transaction number, per partition.
type Seen = BTreeMap<usize, BTreeSet<String>>;

fn read_partition(broker: &Broker, tp: &TopicPartition) -> (Seen, Seen) {
    let log = broker.partition(&tp.topic, tp.partition).unwrap();
    let hw = log.high_watermark();
    let lso = broker.last_stable_offset(&tp.topic, tp.partition).unwrap();
    assert_eq!(
        lso, hw,
        "{tp:?}: a transaction is still open after recovery"
    );
    let aborted = broker
        .aborted_transactions(&tp.topic, tp.partition, 0, hw)
        .unwrap();
    let (mut committed, mut all) = (Seen::new(), Seen::new());
    let mut offset = log.start_offset();
    while offset < hw {
        let read = log.read(offset, 1 << 20).unwrap();
        let mut bytes = &read.bytes[..];
        while !bytes.is_empty() {
            let header = BatchHeader::parse(bytes).unwrap();
            let whole = &bytes[..header.total_bytes()];
            bytes = &bytes[header.total_bytes()..];
            if header.is_control() {
                continue;
            }
            let skipped = aborted.iter().any(|a| {
                a.producer_id == header.producer_id
                    && a.first_offset <= header.base_offset
                    && header.base_offset < a.last_offset
            });
            for r in batch::records(whole).unwrap() {
                let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                let n: usize = value.split(':').next().unwrap().parse().unwrap();
                assert!(
                    all.entry(n).or_default().insert(value.clone()),
                    "{tp:?}: {value} twice"
                );
                if !skipped {
                    committed.entry(n).or_default().insert(value);
                }
            }
        }
        offset = read.next_offset;
    }
    (committed, all)
}

/// Restarts after a power loss, completes or aborts every transaction and
/// checks what readers see against what callers were told.
fn restart_and_check(disk: SimStorage, clock: ManualClock, model: &mut Model, seed: u64) -> Node {
    let node = open(disk, clock);
    let io = BrokerTxnIo::new(&node.broker);
    node.coordinator
        .complete_prepared(&io, model.now_ms)
        .unwrap();
    // Every producer comes back, fencing what its last instance left open.
    let ids: Vec<_> = IDS
        .iter()
        .filter(|id| node.coordinator.describe(id).is_some())
        .collect();
    model.producers.clear();
    for id in ids {
        init_producer(&node, model, id).unwrap();
        let state = node.coordinator.describe(id).unwrap().state;
        assert!(
            matches!(
                state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            ),
            "seed {seed}: {id} left {state:?}"
        );
    }
    let (mut committed, mut all) = (Seen::new(), Seen::new());
    for tp in all_partitions() {
        if node.broker.partition(&tp.topic, tp.partition).is_err() {
            continue;
        }
        let (c, a) = read_partition(&node.broker, &tp);
        for (n, values) in c {
            committed.entry(n).or_default().extend(values);
        }
        for (n, values) in a {
            all.entry(n).or_default().extend(values);
        }
    }
    for (n, txn) in model.txns.iter_mut().enumerate() {
        let visible = committed.remove(&n).unwrap_or_default();
        let stored = all.remove(&n).unwrap_or_default();
        let context = format!("seed {seed}: transaction {n} ({txn:?})");
        assert!(txn.acked.is_subset(&stored), "{context}: lost {stored:?}");
        match txn.told {
            Told::Committed => assert_eq!(visible, stored, "{context}"),
            Told::Aborted => assert!(visible.is_empty(), "{context}: {visible:?}"),
            // All or nothing, across every partition.
            Told::Nothing => assert!(
                visible.is_empty() || visible == stored,
                "{context}: {visible:?} of {stored:?}"
            ),
        }
        if !stored.is_empty() {
            let now = !visible.is_empty();
            let before = *txn.seen_committed.get_or_insert(now);
            assert_eq!(before, now, "{context}: its outcome changed");
        }
    }
    assert!(
        all.is_empty(),
        "seed {seed}: values of no transaction: {all:?}"
    );
    node
}

/// Runs one seed; returns how many transactions were told committed.
fn run_seed(seed: u64) -> usize {
    let mut rng = SimRng::new(seed);
    let clock = ManualClock::new(0);
    let mut model = Model::default();
    let mut node = open(SimStorage::new(), clock.clone());
    let small = [("segment.bytes", "4096"), ("max.message.bytes", "4096")];
    node.broker.create_topic("a", 2, 1, &small, false).unwrap();
    node.broker.create_topic("b", 1, 1, &small, false).unwrap();
    for _life in 0..4 {
        node.disk.die_after_syncs(rng.below(120));
        for _ in 0..200 {
            if step(&node, &mut model, &mut rng).is_err() {
                break;
            }
        }
        let crashed = node.disk.crash(rng.next_u64());
        drop(node);
        node = restart_and_check(crashed, clock.clone(), &mut model, seed);
    }
    model
        .txns
        .iter()
        .filter(|t| t.told == Told::Committed)
        .count()
}

#[test]
fn transactions_recover_all_or_nothing_after_power_losses() {
    if let Some(seed) = std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_seed(seed);
        return;
    }
    let seeds: u64 = std::env::var("WEIR_TXN_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut committed = 0;
    for seed in 0..seeds {
        match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok(n) => committed += n,
            Err(e) => {
                eprintln!("failing seed: WEIR_CRASH_SEED={seed}");
                std::panic::resume_unwind(e);
            }
        }
    }
    // A seed whose machine stops early may never commit; the run as a
    // whole must, or it proved little.
    assert!(
        committed > seeds as usize,
        "{committed} commits in {seeds} seeds"
    );
}
