//! The queue manager: one [`SharePartition`] per (group, topic, partition)
//! behind its own lock, made durable through a [`QueueIo`] (a journal of
//! changes, a snapshot of every partition, and the dead letters). Each
//! call's dead letters are written first, then its changes appended and
//! synced, and only then is it answered; a call whose writes fail is
//! undone in memory (the partition goes back to its state before) and
//! answered with the error. At start the snapshot and the journal after it
//! are replayed and every lock dropped. [`Queues::maintain`] writes a new
//! snapshot once enough records were appended and lets the journal below
//! it go, so a restart replays a bounded tail.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::error::QueueError;
use crate::journal::{Entry, JournalSnapshot, QueueKey, SnapshotEntry};
use crate::partition::{
    AckKind, Acquired, DeadLetter, Outcome, Pending, QueueConfig, SharePartition,
};

/// A journal record as stored: key and value.
pub type JournalRecord = (Vec<u8>, Vec<u8>);
/// What a journal read calls with each record's offset, key and value.
pub type JournalVisitor<'a> = dyn FnMut(i64, &[u8], &[u8]) + 'a;

/// Where a [`Queues`] keeps its state. Every call blocks until done.
pub trait QueueIo: Send + Sync {
    /// Appends `records` to the journal in order; returns once all are
    /// durable.
    fn append(&self, records: &[JournalRecord]) -> Result<(), String>;
    /// The offset the next appended record gets.
    fn journal_end(&self) -> Result<i64, String>;
    /// Calls `f` with the offset, key and value of every journal record
    /// from `from` on (or from the journal's start, if later), oldest first.
    fn read_journal(&self, from: i64, f: &mut JournalVisitor<'_>) -> Result<(), String>;
    /// Replaces the snapshot durably (all of it or nothing).
    fn write_snapshot(&self, bytes: &[u8]) -> Result<(), String>;
    fn read_snapshot(&self) -> Result<Option<Vec<u8>>, String>;
    /// The journal's records below `offset` are no longer needed.
    fn truncate_before(&self, offset: i64) -> Result<(), String>;
    /// Writes the dead letters of records of `key`; returns once durable.
    fn dead_letter(&self, key: &QueueKey, letters: &[DeadLetter]) -> Result<(), String>;
}

/// The manager's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuesConfig {
    /// Groups with state at most.
    pub groups_max: usize,
    /// Partitions with state per group at most.
    pub partitions_per_group_max: usize,
    /// Records in flight per partition at most (see
    /// [`QueueConfig::in_flight_max`]).
    pub in_flight_max: usize,
    /// Journal records appended after which [`Queues::maintain`] writes a
    /// snapshot.
    pub snapshot_records: u64,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        Self {
            groups_max: 1_000,
            partitions_per_group_max: 10_000,
            in_flight_max: 2_000,
            snapshot_records: 20_000,
        }
    }
}

/// What a start replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub partitions: usize,
    /// Journal records applied.
    pub replayed: u64,
    /// The journal offset the snapshot covered, if one was loaded.
    pub snapshot_base: Option<i64>,
    /// Records (or snapshot entries) that did not decode or apply, with
    /// why; skipped.
    pub skipped: Vec<String>,
}

/// A new partition's rules, used when its state is created: where it
/// starts and how often a record is delivered at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Create {
    pub delivery_limit: u16,
    pub start: i64,
}

type Shared = Arc<Mutex<SharePartition>>;

/// Every queue partition's state.
pub struct Queues<Io> {
    io: Io,
    config: QueuesConfig,
    parts: RwLock<BTreeMap<QueueKey, Shared>>,
    /// Journal records appended since the last snapshot.
    appended: AtomicU64,
    /// Held through a whole [`Queues::maintain`].
    maintaining: Mutex<()>,
}

impl<Io> std::fmt::Debug for Queues<Io> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn storage(what: &str, e: impl std::fmt::Display) -> QueueError {
    QueueError::Storage(format!("{what}: {e}"))
}

fn partition_config(config: &QueuesConfig, delivery_limit: u16) -> QueueConfig {
    QueueConfig {
        delivery_limit,
        in_flight_max: config.in_flight_max,
        ..QueueConfig::default()
    }
}

impl<Io: QueueIo> Queues<Io> {
    /// Opens the manager over `io`: the snapshot, then the journal after
    /// it, replayed, with every lock gone.
    pub fn open(io: Io, config: QueuesConfig) -> Result<(Self, Recovery), QueueError> {
        partition_config(&config, 1).validate()?;
        let mut recovery = Recovery::default();
        let mut parts: BTreeMap<QueueKey, SharePartition> = BTreeMap::new();
        let mut covered: HashMap<QueueKey, i64> = HashMap::new();
        let mut from = 0;
        if let Some(bytes) = io
            .read_snapshot()
            .map_err(|e| storage("reading snapshot", e))?
        {
            let snap = JournalSnapshot::decode(&bytes).map_err(|e| storage("snapshot", e))?;
            from = snap.base;
            recovery.snapshot_base = Some(snap.base);
            for e in snap.entries {
                let cfg = partition_config(&config, e.delivery_limit);
                match SharePartition::from_snapshot(cfg, &e.state) {
                    Ok(p) => {
                        covered.insert(e.key.clone(), e.covered);
                        parts.insert(e.key, p);
                    }
                    Err(err) => recovery
                        .skipped
                        .push(format!("snapshot of {:?}: {err}", e.key)),
                }
            }
        }
        io.read_journal(from, &mut |offset, key, value| {
            let key = match QueueKey::decode(key) {
                Ok(k) => k,
                Err(e) => return recovery.skipped.push(format!("offset {offset}: {e}")),
            };
            if covered.get(&key).is_some_and(|&c| offset < c) {
                return;
            }
            let entry = match Entry::decode(value) {
                Ok(e) => e,
                Err(e) => return recovery.skipped.push(format!("offset {offset}: {e}")),
            };
            match (entry, parts.get_mut(&key)) {
                (Entry::Created { .. }, Some(_)) => {}
                (
                    Entry::Created {
                        start,
                        delivery_limit,
                    },
                    None,
                ) => match SharePartition::new(partition_config(&config, delivery_limit), start) {
                    Ok(p) => {
                        parts.insert(key, p);
                    }
                    Err(e) => recovery.skipped.push(format!("offset {offset}: {e}")),
                },
                (Entry::Change(change), Some(p)) => p.apply(&change),
                (Entry::Change(_), None) => recovery.skipped.push(format!(
                    "offset {offset}: a change of {key:?}, never created"
                )),
            }
            recovery.replayed += 1;
        })
        .map_err(|e| storage("reading journal", e))?;
        for p in parts.values_mut() {
            p.drop_locks();
        }
        recovery.partitions = parts.len();
        let queues = Self {
            io,
            config,
            parts: RwLock::new(
                parts
                    .into_iter()
                    .map(|(k, p)| (k, Arc::new(Mutex::new(p))))
                    .collect(),
            ),
            appended: AtomicU64::new(recovery.replayed),
            maintaining: Mutex::new(()),
        };
        Ok((queues, recovery))
    }

    pub fn io(&self) -> &Io {
        &self.io
    }

    fn get(&self, key: &QueueKey) -> Option<Shared> {
        self.parts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// The partition of `key`, created (durably) if it has no state yet.
    fn get_or_create(&self, key: &QueueKey, create: &Create) -> Result<Shared, QueueError> {
        if let Some(p) = self.get(key) {
            return Ok(p);
        }
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = parts.get(key) {
            return Ok(p.clone());
        }
        let group_parts = parts.keys().filter(|k| k.group == key.group).count();
        if group_parts == 0 {
            let mut groups: Vec<&str> = parts.keys().map(|k| k.group.as_str()).collect();
            groups.dedup();
            if groups.len() >= self.config.groups_max {
                return Err(QueueError::TooManyGroups {
                    max: self.config.groups_max,
                });
            }
        }
        if group_parts >= self.config.partitions_per_group_max {
            return Err(QueueError::TooManyPartitions {
                group: key.group.clone(),
                max: self.config.partitions_per_group_max,
            });
        }
        let p = SharePartition::new(
            partition_config(&self.config, create.delivery_limit),
            create.start,
        )?;
        let entry = Entry::Created {
            start: p.start_offset(),
            delivery_limit: create.delivery_limit,
        };
        self.io
            .append(&[(key.encode(), entry.encode())])
            .map_err(|e| storage("appending to the journal", e))?;
        self.appended.fetch_add(1, Ordering::Relaxed);
        let p = Arc::new(Mutex::new(p));
        parts.insert(key.clone(), p.clone());
        Ok(p)
    }

    /// Runs `f` on a partition, makes its outcome durable (dead letters,
    /// then changes), and undoes it if that fails.
    fn run<T>(
        &self,
        key: &QueueKey,
        part: &Shared,
        f: impl FnOnce(&mut SharePartition) -> Result<(T, Outcome), QueueError>,
    ) -> Result<T, QueueError> {
        let mut p = lock(part);
        let before = p.clone();
        let (out, outcome) = f(&mut p)?;
        if let Err(e) = self.persist(key, &outcome) {
            *p = before;
            return Err(e);
        }
        Ok(out)
    }

    fn persist(&self, key: &QueueKey, outcome: &Outcome) -> Result<(), QueueError> {
        if !outcome.dead_letters.is_empty() {
            self.io
                .dead_letter(key, &outcome.dead_letters)
                .map_err(|e| storage("writing dead letters", e))?;
        }
        if !outcome.changes.is_empty() {
            let k = key.encode();
            let records: Vec<JournalRecord> = outcome
                .changes
                .iter()
                .map(|c| (k.clone(), Entry::Change(c.clone()).encode()))
                .collect();
            self.io
                .append(&records)
                .map_err(|e| storage("appending to the journal", e))?;
            self.appended
                .fetch_add(records.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Gives `member` up to `max` records of `key` under a `lock_ms` lock
    /// (see [`SharePartition::acquire`]); `log_end` is where consumers may
    /// read up to (the last stable offset).
    #[allow(clippy::too_many_arguments)]
    pub fn acquire(
        &self,
        key: &QueueKey,
        create: &Create,
        member: &str,
        max: usize,
        lock_ms: i64,
        log_start: i64,
        log_end: i64,
        now_ms: i64,
    ) -> Result<Vec<Acquired>, QueueError> {
        let part = self.get_or_create(key, create)?;
        self.run(key, &part, |p| {
            p.set_lock_ms(lock_ms)?;
            Ok(p.acquire(member, max, log_start, log_end, now_ms))
        })
    }

    /// Accepts, releases, rejects or gaps `first..=last`, which `member`
    /// must hold; answered once its changes are durable.
    pub fn acknowledge(
        &self,
        key: &QueueKey,
        member: &str,
        first: i64,
        last: i64,
        kind: AckKind,
    ) -> Result<(), QueueError> {
        let part = self.get(key).ok_or_else(|| QueueError::NotAcquired {
            offset: first,
            member: member.to_owned(),
        })?;
        self.run(key, &part, |p| {
            Ok(((), p.acknowledge(member, first, last, kind)?))
        })
    }

    /// Extends `member`'s locks on `first..=last` to `lock_ms` from now;
    /// returns the new deadline. Locks are not durable: nothing is written.
    pub fn renew(
        &self,
        key: &QueueKey,
        member: &str,
        first: i64,
        last: i64,
        lock_ms: i64,
        now_ms: i64,
    ) -> Result<i64, QueueError> {
        let part = self.get(key).ok_or_else(|| QueueError::NotAcquired {
            offset: first,
            member: member.to_owned(),
        })?;
        let mut p = lock(&part);
        p.set_lock_ms(lock_ms)?;
        p.renew(member, first, last, now_ms)?;
        Ok(now_ms.saturating_add(lock_ms))
    }

    /// Hands `member` up to `max` records of `key` idle for `min_idle_ms`
    /// (see [`SharePartition::claim_idle`]).
    pub fn claim_idle(
        &self,
        key: &QueueKey,
        member: &str,
        min_idle_ms: i64,
        max: usize,
        lock_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Acquired>, QueueError> {
        let Some(part) = self.get(key) else {
            return Ok(Vec::new());
        };
        self.run(key, &part, |p| {
            p.set_lock_ms(lock_ms)?;
            Ok(p.claim_idle(member, min_idle_ms, max, now_ms))
        })
    }

    /// Releases every record `member` of `group` holds, in each of the
    /// group's partitions (it left, or its session ended): available again
    /// at once rather than at lock timeout. Returns the first error; the
    /// other partitions are still done.
    pub fn release_member(&self, group: &str, member: &str) -> Result<(), QueueError> {
        let mut first_err = None;
        for key in self.partitions(group) {
            let Some(part) = self.get(&key) else { continue };
            if let Err(e) = self.run(&key, &part, |p| Ok(((), p.release_member(member)))) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The partitions of `group` with state, in order.
    pub fn partitions(&self, group: &str) -> Vec<QueueKey> {
        self.parts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|k| k.group == group)
            .cloned()
            .collect()
    }

    /// Every record `group` has acquired now, by partition and offset.
    pub fn pending(&self, group: &str, now_ms: i64) -> Vec<(QueueKey, Pending)> {
        let mut out = Vec::new();
        for key in self.partitions(group) {
            if let Some(part) = self.get(&key) {
                for p in lock(&part).pending(now_ms) {
                    out.push((key.clone(), p));
                }
            }
        }
        out
    }

    /// The start offset of `key` (the first record not settled), if it
    /// has state.
    pub fn start_offset(&self, key: &QueueKey) -> Option<i64> {
        self.get(key).map(|p| lock(&p).start_offset())
    }

    /// Releases every lock that ran out by `now_ms`, in every partition
    /// (dead-lettering records at their last delivery). Returns the first
    /// error; the other partitions are still done.
    pub fn expire(&self, now_ms: i64) -> Result<(), QueueError> {
        let all: Vec<(QueueKey, Shared)> = self
            .parts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        let mut first_err = None;
        for (key, part) in all {
            // Only a partition with a lock run out pays for the call (and
            // the copy kept to undo it).
            if lock(&part).next_deadline().is_none_or(|d| d > now_ms) {
                continue;
            }
            if let Err(e) = self.run(&key, &part, |p| Ok(((), p.expire(now_ms)))) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Upkeep: once [`QueuesConfig::snapshot_records`] records were
    /// appended since the last snapshot, writes a snapshot of every
    /// partition and lets the journal below it go. Returns whether it
    /// wrote one.
    pub fn maintain(&self) -> Result<bool, QueueError> {
        let _one = lock(&self.maintaining);
        if self.appended.load(Ordering::Relaxed) < self.config.snapshot_records {
            return Ok(false);
        }
        self.snapshot_now()?;
        Ok(true)
    }

    /// Writes a snapshot now. Every partition's records below the journal
    /// end read before the partitions are listed are covered: a partition
    /// created later appends all its records after that end, and each
    /// listed one is snapshotted under its lock with the end read then.
    fn snapshot_now(&self) -> Result<(), QueueError> {
        let end = |io: &Io| io.journal_end().map_err(|e| storage("journal end", e));
        let base = end(&self.io)?;
        let all: Vec<(QueueKey, Shared)> = self
            .parts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        let mut entries = Vec::with_capacity(all.len());
        let appended_before = self.appended.load(Ordering::Relaxed);
        for (key, part) in all {
            let p = lock(&part);
            entries.push(SnapshotEntry {
                key,
                covered: end(&self.io)?,
                delivery_limit: p.config().delivery_limit,
                state: p.snapshot(),
            });
        }
        let snap = JournalSnapshot { base, entries };
        self.io
            .write_snapshot(&snap.encode())
            .map_err(|e| storage("writing snapshot", e))?;
        self.appended.fetch_sub(appended_before, Ordering::Relaxed);
        self.io
            .truncate_before(base)
            .map_err(|e| storage("truncating the journal", e))?;
        Ok(())
    }
}
