//! The coordinator: one record per transactional id, changed only through
//! the transaction log. A request checks the producer id and epoch,
//! decides the next metadata, appends it to the log (durably, outside the
//! lock: the id is marked busy meanwhile, and other requests for it are
//! told to retry) and only then takes it. Ending a transaction is two
//! phases: `Prepare*` in the log (the decision), the markers in every
//! partition, `Complete*` in the log; a crash between them is finished by
//! [`TxnCoordinator::complete_prepared`] after [`TxnCoordinator::recover`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::error::TxnError;
use crate::record::LogRecord;
use crate::state::{TopicPartition, TxnMetadata, TxnState};
use crate::{TRANSACTIONAL_ID_BYTES_MAX, TXN_PARTITIONS_MAX};

/// What the coordinator asks of the broker.
pub trait TxnIo {
    /// A producer id never handed out before.
    fn allocate_producer_id(&self) -> Result<i64, TxnError>;
    /// Appends `record` to the transaction log; returns once it is durable.
    fn append(&self, record: &LogRecord) -> Result<(), TxnError>;
    /// Appends `record` to the transaction log without waiting for it to
    /// be durable: for the `Complete*` records, which a crash may lose
    /// (recovery then finds the transaction prepared and writes its
    /// markers again, which changes nothing), and which the next durable
    /// record of the log makes durable anyway.
    fn append_lazily(&self, record: &LogRecord) -> Result<(), TxnError> {
        self.append(record)
    }
    /// Writes the commit (or abort) marker of producer `producer_id` at
    /// `producer_epoch` to every partition in `partitions`; returns once
    /// all are durable. Writing one again is harmless (a marker for a
    /// producer with nothing open in a partition changes nothing).
    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<(), TxnError>;
}

/// The coordinator's settings.
#[derive(Debug, Clone, Copy)]
pub struct CoordinatorConfig {
    /// The longest transaction timeout a producer may ask for
    /// (`transaction.max.timeout.ms`).
    pub max_timeout_ms: i32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 900_000,
        }
    }
}

/// A producer's id and epoch, as InitProducerId answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// What replaying the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Transactional ids known.
    pub ids: usize,
    /// Transactions whose decision is durable but whose markers may not
    /// all be written: [`TxnCoordinator::complete_prepared`] finishes them.
    pub prepared: Vec<String>,
    /// Records that could not be read (skipped, with the reason).
    pub skipped: Vec<String>,
}

#[derive(Debug)]
struct Entry {
    meta: TxnMetadata,
    /// A log append for this id is in flight: other requests retry.
    busy: bool,
}

/// The transaction coordinator of one broker.
#[derive(Debug)]
pub struct TxnCoordinator {
    config: CoordinatorConfig,
    txns: Mutex<HashMap<String, Entry>>,
}

/// The epoch after which a producer gets a new id (as in Kafka, so the
/// epoch never wraps).
const EPOCH_MAX: i16 = i16::MAX - 1;

impl TxnCoordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        Self {
            config,
            txns: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.txns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replays the transaction log's records, oldest first (the last one
    /// of each id wins; a tombstone forgets it).
    pub fn recover<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Recovered {
        let mut txns = self.lock();
        let mut out = Recovered::default();
        for (key, value) in records {
            match LogRecord::decode(key, value) {
                Ok(LogRecord {
                    transactional_id,
                    metadata: Some(meta),
                }) => {
                    txns.insert(transactional_id, Entry { meta, busy: false });
                }
                Ok(LogRecord {
                    transactional_id,
                    metadata: None,
                }) => {
                    txns.remove(&transactional_id);
                }
                Err(e) => out.skipped.push(e.to_string()),
            }
        }
        out.ids = txns.len();
        out.prepared = txns
            .values()
            .filter(|e| e.meta.state.is_prepared() || e.meta.state == TxnState::PrepareEpochFence)
            .map(|e| e.meta.transactional_id.clone())
            .collect();
        out.prepared.sort();
        out
    }

    /// InitProducerId with a transactional id: a new producer id at epoch
    /// 0, or the id's producer with its epoch bumped, which fences every
    /// older instance. An open transaction of the id is aborted first.
    /// `expected` is the producer's own id and epoch when it has one
    /// (KIP-360): a retry of the call that gave it its epoch is answered
    /// again, anything else older is fenced.
    pub fn init_producer_id(
        &self,
        io: &dyn TxnIo,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
    ) -> Result<InitProducer, TxnError> {
        if transactional_id.is_empty() || transactional_id.len() > TRANSACTIONAL_ID_BYTES_MAX {
            return Err(TxnError::InvalidTransactionalId(
                transactional_id.to_owned(),
            ));
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTimeout {
                timeout_ms,
                max_ms: self.config.max_timeout_ms,
            });
        }
        let current = {
            let mut txns = self.lock();
            match txns.get_mut(transactional_id) {
                Some(e) if e.busy => {
                    return Err(TxnError::ConcurrentTransactions(transactional_id.into()));
                }
                Some(e) if e.meta.state != TxnState::Dead => {
                    e.busy = true;
                    Some(e.meta.clone())
                }
                _ => {
                    // Reserved while its first record is written.
                    txns.insert(
                        transactional_id.to_owned(),
                        Entry {
                            meta: fresh(transactional_id, -1, timeout_ms, now_ms),
                            busy: true,
                        },
                    );
                    None
                }
            }
        };
        let result =
            self.init_locked_out(io, transactional_id, timeout_ms, expected, current, now_ms);
        if result.is_err() {
            let mut txns = self.lock();
            if txns
                .get(transactional_id)
                .is_some_and(|e| e.meta.producer_id < 0)
            {
                txns.remove(transactional_id);
            } else if let Some(e) = txns.get_mut(transactional_id) {
                e.busy = false;
            }
        }
        result
    }

    /// The rest of InitProducerId, with the id marked busy.
    fn init_locked_out(
        &self,
        io: &dyn TxnIo,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        current: Option<TxnMetadata>,
        now_ms: i64,
    ) -> Result<InitProducer, TxnError> {
        let Some(mut meta) = current else {
            let pid = io.allocate_producer_id()?;
            let meta = fresh(transactional_id, pid, timeout_ms, now_ms);
            self.write(io, meta.clone())?;
            return Ok(answer(&meta));
        };
        if let Some((pid, epoch)) = expected.filter(|(pid, _)| *pid >= 0) {
            let retry = pid == meta.producer_id
                && epoch == meta.last_producer_epoch
                && meta.state.is_idle();
            if retry {
                self.release(transactional_id);
                return Ok(answer(&meta));
            }
            if pid != meta.producer_id || epoch != meta.producer_epoch {
                return Err(TxnError::Fenced {
                    transactional_id: transactional_id.to_owned(),
                    epoch,
                    current: meta.producer_epoch,
                });
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                // Finish what was decided, then the producer retries.
                self.finish(io, meta, now_ms)?;
                return Err(TxnError::ConcurrentTransactions(transactional_id.into()));
            }
            TxnState::Ongoing => {
                // A new instance while the old one has a transaction open:
                // the old one is fenced and its transaction aborted.
                meta = self.abort_fenced(io, meta, now_ms)?;
                self.mark_busy(transactional_id);
            }
            _ => {}
        }
        let mut next = meta.clone();
        if meta.producer_epoch >= EPOCH_MAX {
            next.producer_id = io.allocate_producer_id()?;
            next.producer_epoch = 0;
            next.last_producer_epoch = -1;
        } else {
            next.producer_epoch = meta.producer_epoch + 1;
            next.last_producer_epoch = meta.producer_epoch;
        }
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.txn_start_ms = -1;
        next.timeout_ms = timeout_ms;
        next.last_update_ms = now_ms;
        self.write(io, next.clone())?;
        Ok(answer(&next))
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets
    /// partition): opens the transaction if none is, and records the
    /// partitions it writes to. The caller checks they exist.
    pub fn add_partitions(
        &self,
        io: &dyn TxnIo,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Result<(), TxnError> {
        let meta = self.claim(transactional_id, producer_id, producer_epoch)?;
        let result = (|| {
            if meta.state.is_prepared() || meta.state == TxnState::PrepareEpochFence {
                return Err(TxnError::ConcurrentTransactions(transactional_id.into()));
            }
            if meta.state == TxnState::Dead {
                return Err(invalid(&meta, "the transactional id expired"));
            }
            let known = partitions.iter().all(|p| meta.partitions.contains(p));
            if meta.state == TxnState::Ongoing && known {
                return Ok(None);
            }
            let mut next = meta.clone();
            if meta.state.is_idle() {
                next.partitions.clear();
                next.txn_start_ms = now_ms;
            }
            next.partitions.extend(partitions.iter().cloned());
            if next.partitions.len() > TXN_PARTITIONS_MAX {
                return Err(TxnError::TooManyPartitions {
                    max: TXN_PARTITIONS_MAX,
                });
            }
            next.state = TxnState::Ongoing;
            next.last_update_ms = now_ms;
            Ok(Some(next))
        })();
        match result {
            Ok(Some(next)) => self.write(io, next),
            Ok(None) => {
                self.release(transactional_id);
                Ok(())
            }
            Err(e) => {
                self.release(transactional_id);
                Err(e)
            }
        }
    }

    /// EndTxn: commits or aborts the open transaction. Answered once the
    /// decision is durable; the markers follow, and a failure writing them
    /// leaves the transaction prepared for [`Self::complete_prepared`].
    pub fn end_txn(
        &self,
        io: &dyn TxnIo,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<(), TxnError> {
        let meta = self.claim(transactional_id, producer_id, producer_epoch)?;
        let decided = match (meta.state, commit) {
            (TxnState::Ongoing, _) => None,
            // A retry of an end that took effect.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Some(Ok(())),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Some(Err(
                TxnError::ConcurrentTransactions(transactional_id.into()),
            )),
            (TxnState::Empty, _) => Some(Err(invalid(&meta, "no transaction is open"))),
            (TxnState::PrepareEpochFence, _) => Some(Err(TxnError::Fenced {
                transactional_id: transactional_id.to_owned(),
                epoch: producer_epoch,
                current: meta.producer_epoch,
            })),
            _ => Some(Err(invalid(
                &meta,
                if commit {
                    "the transaction was aborted"
                } else {
                    "the transaction was committed"
                },
            ))),
        };
        if let Some(result) = decided {
            self.release(transactional_id);
            return result;
        }
        let mut prepared = meta;
        prepared.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        prepared.last_update_ms = now_ms;
        self.write(io, prepared.clone())?;
        // The decision stands from here: markers that fail to be written
        // leave the transaction prepared, and complete_prepared (the
        // broker calls it on a timer) writes them later.
        self.mark_busy(transactional_id);
        let _unfinished = self.finish(io, prepared, now_ms);
        Ok(())
    }

    /// Aborts transactions open past their timeout, bumping the epoch so
    /// the producer that left them is fenced; returns the ids aborted.
    pub fn abort_expired(&self, io: &dyn TxnIo, now_ms: i64) -> Result<Vec<String>, TxnError> {
        let expired: Vec<TxnMetadata> = {
            let mut txns = self.lock();
            txns.values_mut()
                .filter(|e| !e.busy && e.meta.expired(now_ms))
                .map(|e| {
                    e.busy = true;
                    e.meta.clone()
                })
                .collect()
        };
        let mut aborted = Vec::new();
        let mut first_error = None;
        for meta in expired {
            let id = meta.transactional_id.clone();
            match self.abort_fenced(io, meta, now_ms) {
                Ok(_) => aborted.push(id),
                Err(e) => {
                    self.release(&id);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if aborted.is_empty() => Err(e),
            _ => Ok(aborted),
        }
    }

    /// Writes the markers of every prepared transaction and completes it
    /// (after a restart, or after a marker write failed); returns the ids
    /// completed.
    pub fn complete_prepared(&self, io: &dyn TxnIo, now_ms: i64) -> Result<Vec<String>, TxnError> {
        let prepared: Vec<TxnMetadata> = {
            let mut txns = self.lock();
            txns.values_mut()
                .filter(|e| {
                    !e.busy
                        && (e.meta.state.is_prepared()
                            || e.meta.state == TxnState::PrepareEpochFence)
                })
                .map(|e| {
                    e.busy = true;
                    e.meta.clone()
                })
                .collect()
        };
        let mut done = Vec::new();
        let mut first_error = None;
        for meta in prepared {
            let id = meta.transactional_id.clone();
            match self.finish(io, meta, now_ms) {
                Ok(_) => done.push(id),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// Checks that producer `producer_id` at `producer_epoch` of
    /// `transactional_id` has a transaction open that `partition` was
    /// added to: a transactional batch for any other partition would hold
    /// that partition's stable offset with no marker to come (KIP-890's
    /// verification).
    pub fn check_open_in(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let txns = self.lock();
        let meta = txns.get(transactional_id).map(|e| &e.meta);
        let m = check_producer(meta, transactional_id, producer_id, producer_epoch)?;
        let added = m.state == TxnState::Ongoing
            && m.partitions
                .iter()
                .any(|tp| tp.topic == topic && tp.partition == partition);
        if added {
            Ok(())
        } else {
            Err(invalid(
                m,
                "the partition was not added to an open transaction",
            ))
        }
    }

    /// A transactional id's metadata (DescribeTransactions).
    pub fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.lock().get(transactional_id).map(|e| e.meta.clone())
    }

    /// Every transactional id's metadata, by id (ListTransactions).
    pub fn list(&self) -> Vec<TxnMetadata> {
        let mut all: Vec<TxnMetadata> = self.lock().values().map(|e| e.meta.clone()).collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// Checks the producer of a request and marks its id busy.
    fn claim(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<TxnMetadata, TxnError> {
        let mut txns = self.lock();
        let e = txns.get_mut(transactional_id);
        check_producer(
            e.as_ref().map(|e| &e.meta),
            transactional_id,
            producer_id,
            producer_epoch,
        )?;
        let Some(e) = e else {
            unreachable!("check_producer refuses an unknown id")
        };
        if e.busy {
            return Err(TxnError::ConcurrentTransactions(transactional_id.into()));
        }
        e.busy = true;
        Ok(e.meta.clone())
    }

    fn release(&self, transactional_id: &str) {
        if let Some(e) = self.lock().get_mut(transactional_id) {
            e.busy = false;
        }
    }

    fn mark_busy(&self, transactional_id: &str) {
        if let Some(e) = self.lock().get_mut(transactional_id) {
            e.busy = true;
        }
    }

    /// Appends `meta` to the log, then takes it and releases the id; on a
    /// failure the id keeps what it had and is released.
    fn write(&self, io: &dyn TxnIo, meta: TxnMetadata) -> Result<(), TxnError> {
        self.write_with(io, meta, true)
    }

    /// [`Self::write`], waiting for durability only if `durable`.
    fn write_with(&self, io: &dyn TxnIo, meta: TxnMetadata, durable: bool) -> Result<(), TxnError> {
        let id = meta.transactional_id.clone();
        let record = LogRecord {
            transactional_id: id.clone(),
            metadata: Some(meta.clone()),
        };
        let appended = if durable {
            io.append(&record)
        } else {
            io.append_lazily(&record)
        };
        let mut txns = self.lock();
        match appended {
            Ok(()) => {
                txns.insert(id, Entry { meta, busy: false });
                Ok(())
            }
            Err(e) => {
                if let Some(entry) = txns.get_mut(&id) {
                    entry.busy = false;
                }
                Err(e)
            }
        }
    }

    /// Aborts an open transaction with the epoch bumped (fencing the
    /// producer that opened it): `PrepareAbort` at the new epoch, the abort
    /// markers, `CompleteAbort`. Returns the completed metadata; the id is
    /// released.
    fn abort_fenced(
        &self,
        io: &dyn TxnIo,
        meta: TxnMetadata,
        now_ms: i64,
    ) -> Result<TxnMetadata, TxnError> {
        let mut prepared = meta;
        prepared.last_producer_epoch = -1;
        prepared.producer_epoch = prepared.producer_epoch.saturating_add(1);
        prepared.state = TxnState::PrepareAbort;
        prepared.last_update_ms = now_ms;
        self.write(io, prepared.clone())?;
        self.mark_busy(&prepared.transactional_id);
        self.finish(io, prepared, now_ms)
    }

    /// Writes a prepared transaction's markers and its `Complete*` record,
    /// and returns the completed metadata; the id is released either way.
    fn finish(
        &self,
        io: &dyn TxnIo,
        meta: TxnMetadata,
        now_ms: i64,
    ) -> Result<TxnMetadata, TxnError> {
        let commit = meta.state == TxnState::PrepareCommit;
        let id = meta.transactional_id.clone();
        if let Err(e) = io.write_markers(
            meta.producer_id,
            meta.producer_epoch,
            commit,
            &meta.partitions,
        ) {
            self.release(&id);
            return Err(e);
        }
        let mut done = meta;
        done.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        done.partitions.clear();
        // The start stays, as in Kafka: DescribeTransactions shows when the
        // last transaction began, and ListTransactions' duration filter
        // measures from it.
        done.last_update_ms = now_ms;
        self.write_with(io, done.clone(), false)?;
        Ok(done)
    }
}

fn fresh(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
    TxnMetadata {
        transactional_id: transactional_id.to_owned(),
        producer_id,
        producer_epoch: 0,
        last_producer_epoch: -1,
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        txn_start_ms: -1,
        last_update_ms: now_ms,
    }
}

/// The metadata of `transactional_id` if it has producer `producer_id` at
/// `producer_epoch`: another id is INVALID_PRODUCER_ID_MAPPING, another
/// epoch is fenced.
fn check_producer<'m>(
    meta: Option<&'m TxnMetadata>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
) -> Result<&'m TxnMetadata, TxnError> {
    let m = meta
        .filter(|m| m.producer_id == producer_id)
        .ok_or_else(|| TxnError::InvalidProducerIdMapping {
            transactional_id: transactional_id.to_owned(),
            producer_id,
        })?;
    if m.producer_epoch != producer_epoch {
        return Err(TxnError::Fenced {
            transactional_id: transactional_id.to_owned(),
            epoch: producer_epoch,
            current: m.producer_epoch,
        });
    }
    Ok(m)
}

fn answer(meta: &TxnMetadata) -> InitProducer {
    InitProducer {
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
    }
}

fn invalid(meta: &TxnMetadata, reason: &'static str) -> TxnError {
    TxnError::InvalidTxnState {
        transactional_id: meta.transactional_id.clone(),
        state: meta.state.name(),
        reason,
    }
}
