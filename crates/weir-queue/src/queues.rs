//! The queue manager: one [`SharePartition`] per (group, topic, partition)
//! behind its own lock, made durable through a [`QueueIo`] (a journal of
//! changes, a snapshot of every partition, and the dead letters). A call
//! runs on the partition under its lock, writes its dead letters (durable
//! first), appends its changes to the journal without waiting, releases
//! the lock, and only then waits for the journal to be durable past its
//! changes before it is answered: concurrent calls on one partition share
//! a sync (group commit), and the journal keeps each partition's changes
//! in the order they were applied. A call whose writes fail under the
//! lock is undone in memory; a failed wait for durability is final (the
//! journal cannot be trusted past it, and later calls may have built on
//! the change), so the manager refuses every call until it is reopened.
//! At start the snapshot and the journal after it are replayed and every
//! lock dropped. [`Queues::maintain`] writes a new snapshot once enough
//! records were appended and lets the journal below it go, so a restart
//! replays a bounded tail.

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
    /// Appends `records` to the journal in order and returns without
    /// waiting for them to be durable: the journal offset past the last
    /// one, for [`QueueIo::wait_durable`]. An error means nothing was
    /// appended. The default appends durably.
    fn append_nowait(&self, records: &[JournalRecord]) -> Result<i64, String> {
        self.append(records)?;
        self.journal_end()
    }
    /// Returns once every journal record below `end` is durable. An error
    /// is final: the journal takes nothing more. The default has nothing
    /// to wait for ([`QueueIo::append_nowait`]'s default is durable).
    fn wait_durable(&self, end: i64) -> Result<(), String> {
        let _ = end;
        Ok(())
    }
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

/// What a `*_nowait` call of [`Queues`] appended to the journal without
/// waiting for it: the caller must not answer before it is durable
/// ([`Queues::wait`], or its own wait for the journal end and
/// [`Queues::synced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a change is not durable until waited for"]
pub struct Unsynced {
    end: Option<i64>,
}

impl Unsynced {
    /// The journal offset everything below which must be durable, if the
    /// call appended anything.
    pub fn journal_end(&self) -> Option<i64> {
        self.end
    }
}

/// Every queue partition's state.
pub struct Queues<Io> {
    io: Io,
    config: QueuesConfig,
    parts: RwLock<BTreeMap<QueueKey, Shared>>,
    /// Journal records appended since the last snapshot.
    appended: AtomicU64,
    /// Held through a whole [`Queues::maintain`].
    maintaining: Mutex<()>,
    /// Moves whenever records may have become claimable again without
    /// anything written (see [`Queues::released`]).
    released: AtomicU64,
    /// Why the manager refuses every call: a wait for durability failed,
    /// so memory may hold changes the journal does not.
    failed: Mutex<Option<String>>,
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
                (Entry::Deleted, _) => {
                    parts.remove(&key);
                    covered.remove(&key);
                }
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
            released: AtomicU64::new(0),
            failed: Mutex::new(None),
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
        self.check_failed()?;
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

    /// Refuses the call if a wait for durability failed before.
    fn check_failed(&self) -> Result<(), QueueError> {
        match &*lock(&self.failed) {
            Some(why) => Err(QueueError::Storage(format!(
                "queue state failed ({why}); reopen to recover from the journal"
            ))),
            None => Ok(()),
        }
    }

    /// Waits until the journal is durable below `end`; a failure fails
    /// the manager for good.
    fn wait_durable(&self, end: i64) -> Result<(), QueueError> {
        self.synced(self.io.wait_durable(end))
    }

    /// Runs `f` on a partition and waits for its changes to be durable
    /// (see [`Queues::run_nowait`]).
    fn run<T>(
        &self,
        key: &QueueKey,
        part: &Shared,
        f: impl FnOnce(&mut SharePartition) -> Result<(T, Outcome), QueueError>,
    ) -> Result<T, QueueError> {
        let (out, unsynced) = self.run_nowait(key, part, f)?;
        self.wait(unsynced)?;
        Ok(out)
    }

    /// Runs `f` on a partition and writes its outcome (dead letters
    /// durably, then changes appended) under the partition's lock, undoing
    /// it if that fails. The changes are not durable yet: the caller waits
    /// outside the lock, so that other calls can join the same sync.
    fn run_nowait<T>(
        &self,
        key: &QueueKey,
        part: &Shared,
        f: impl FnOnce(&mut SharePartition) -> Result<(T, Outcome), QueueError>,
    ) -> Result<(T, Unsynced), QueueError> {
        self.check_failed()?;
        let mut p = lock(part);
        let before = p.clone();
        let (out, outcome) = f(&mut p)?;
        match self.write(key, &outcome) {
            Ok(end) => Ok((out, Unsynced { end })),
            Err(e) => {
                *p = before;
                Err(e)
            }
        }
    }

    /// Blocks until what a `*_nowait` call wrote is durable. A failure is
    /// final: the manager refuses every call until reopened.
    pub fn wait(&self, unsynced: Unsynced) -> Result<(), QueueError> {
        match unsynced.end {
            Some(end) => self.wait_durable(end),
            None => Ok(()),
        }
    }

    /// Takes the outcome of a wait the caller made by its own means (an
    /// async server awaiting the journal's sync instead of blocking in
    /// [`Queues::wait`]); an error fails the manager as a failed
    /// [`Queues::wait`] does.
    pub fn synced(&self, result: Result<(), String>) -> Result<(), QueueError> {
        result.map_err(|e| {
            let mut failed = lock(&self.failed);
            let why = failed.get_or_insert_with(|| format!("journal sync: {e}"));
            QueueError::Storage(why.clone())
        })
    }

    /// Writes dead letters durably, then appends the changes without
    /// waiting; returns the journal end to wait for, if anything was
    /// appended.
    fn write(&self, key: &QueueKey, outcome: &Outcome) -> Result<Option<i64>, QueueError> {
        if !outcome.dead_letters.is_empty() {
            self.io
                .dead_letter(key, &outcome.dead_letters)
                .map_err(|e| storage("writing dead letters", e))?;
        }
        if outcome.changes.is_empty() {
            return Ok(None);
        }
        let k = key.encode();
        let records: Vec<JournalRecord> = outcome
            .changes
            .iter()
            .map(|c| (k.clone(), Entry::Change(c.clone()).encode()))
            .collect();
        let end = self
            .io
            .append_nowait(&records)
            .map_err(|e| storage("appending to the journal", e))?;
        self.appended
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(Some(end))
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

    /// [`Self::acquire`], taking only the offsets `wanted` says yes to
    /// (see [`SharePartition::acquire_where`]).
    #[allow(clippy::too_many_arguments)]
    pub fn acquire_where(
        &self,
        key: &QueueKey,
        create: &Create,
        member: &str,
        max: usize,
        lock_ms: i64,
        log_start: i64,
        log_end: i64,
        now_ms: i64,
        wanted: &mut dyn FnMut(i64) -> bool,
    ) -> Result<Vec<Acquired>, QueueError> {
        let part = self.get_or_create(key, create)?;
        self.run(key, &part, |p| {
            p.set_lock_ms(lock_ms)?;
            Ok(p.acquire_where(member, max, log_start, log_end, now_ms, wanted))
        })
    }

    /// Releases every record `member` holds in `key` alone (a consumer
    /// that left); nothing if the partition has no state. See
    /// [`Queues::release_member`] for all of a group's partitions.
    pub fn release_member_in(&self, key: &QueueKey, member: &str) -> Result<(), QueueError> {
        let Some(part) = self.get(key) else {
            return Ok(());
        };
        self.run(key, &part, |p| Ok(((), p.release_member(member))))
    }

    /// Deletes every partition of `group` (durably: a `Deleted` record
    /// each); the group then has no state, and a later call creates it
    /// afresh. Returns how many partitions it had. A call still running
    /// on one of them may append its changes after; a restart skips those
    /// (reported in [`Recovery::skipped`]).
    pub fn delete_group(&self, group: &str) -> Result<usize, QueueError> {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<QueueKey> = parts.keys().filter(|k| k.group == group).cloned().collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let records: Vec<JournalRecord> = keys
            .iter()
            .map(|k| (k.encode(), Entry::Deleted.encode()))
            .collect();
        self.io
            .append(&records)
            .map_err(|e| storage("appending to the journal", e))?;
        self.appended
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        for k in &keys {
            parts.remove(k);
        }
        Ok(keys.len())
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
        let unsynced = self.acknowledge_nowait(key, member, first, last, kind)?;
        self.wait(unsynced)
    }

    /// [`Queues::acknowledge`] without the wait for durability, which the
    /// caller makes before answering (see [`Unsynced`]).
    pub fn acknowledge_nowait(
        &self,
        key: &QueueKey,
        member: &str,
        first: i64,
        last: i64,
        kind: AckKind,
    ) -> Result<Unsynced, QueueError> {
        let part = self.get(key).ok_or_else(|| QueueError::NotAcquired {
            offset: first,
            member: member.to_owned(),
        })?;
        let ((), unsynced) = self.run_nowait(key, &part, |p| {
            Ok(((), p.acknowledge(member, first, last, kind)?))
        })?;
        if kind == AckKind::Release {
            self.released.fetch_add(1, Ordering::Release);
        }
        Ok(unsynced)
    }

    /// A count that moves whenever records may have become claimable again
    /// without a journal append (a release, a lock run out: locks are not
    /// durable, so neither journals anything), for callers that wait for
    /// records to claim. New records and journaled changes are signalled
    /// by the log's own change signal.
    pub fn released(&self) -> u64 {
        self.released.load(Ordering::Acquire)
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
        self.check_failed()?;
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
            let expired = self.run(&key, &part, |p| Ok(((), p.expire(now_ms))));
            self.released.fetch_add(1, Ordering::Release);
            if let Err(e) = expired {
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
        self.check_failed()?;
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
    /// The journal is made durable up to the last end read before the
    /// snapshot is written: a snapshot covering records a crash could
    /// still take would make the journal's next records (at those same
    /// offsets) look covered.
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
        let mut last_end = base;
        for (key, part) in all {
            let p = lock(&part);
            let covered = end(&self.io)?;
            last_end = last_end.max(covered);
            entries.push(SnapshotEntry {
                key,
                covered,
                delivery_limit: p.config().delivery_limit,
                state: p.snapshot(),
            });
        }
        self.wait_durable(last_end)?;
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
