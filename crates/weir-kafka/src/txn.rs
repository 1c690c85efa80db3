//! The server's transaction coordinator: `weir-txn`'s state machine over
//! the broker's storage (`weir_broker::txn_log`) and the offsets held for
//! transactions (`txn_offsets`), recovered from `__transaction_state` when
//! the server starts (a transaction decided before a stop gets its
//! markers, and its offsets, then), and a timer that aborts transactions
//! past their timeout and retries markers that failed.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeSet;

use weir_broker::Broker;
use weir_broker::txn_log::{BrokerTxnIo, OFFSETS_TOPIC};
use weir_groups::Coordinator;
use weir_txn::{CoordinatorConfig, LogRecord, TopicPartition, TxnCoordinator, TxnError, TxnIo};

use crate::txn_offsets::PendingOffsets;

/// How often open transactions are checked against their timeouts (and
/// failed markers retried): a transaction is aborted at most this late.
const TXN_TICK: Duration = Duration::from_millis(500);

/// The coordinator and the broker it writes to.
#[derive(Debug)]
pub(crate) struct Transactions {
    pub coordinator: TxnCoordinator,
    pub broker: Arc<Broker>,
    groups: Arc<Coordinator>,
    pub pending: PendingOffsets,
}

/// The coordinator's storage on this server: the broker's, with the
/// commit or abort of a transaction's offsets as its marker on
/// `__consumer_offsets`.
struct ServerTxnIo<'a> {
    broker: BrokerTxnIo<'a>,
    txns: &'a Transactions,
}

impl TxnIo for ServerTxnIo<'_> {
    fn allocate_producer_id(&self) -> Result<i64, TxnError> {
        self.broker.allocate_producer_id()
    }

    fn append(&self, record: &LogRecord) -> Result<(), TxnError> {
        self.broker.append(record)
    }

    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<(), TxnError> {
        self.broker
            .write_markers(producer_id, producer_epoch, commit, partitions)?;
        if partitions.iter().any(|tp| tp.topic == OFFSETS_TOPIC) {
            self.txns
                .pending
                .settle(&self.txns.broker, &self.txns.groups, producer_id, commit)?;
        }
        Ok(())
    }
}

impl Transactions {
    /// Replays the transaction log and finishes what was decided.
    pub fn open(
        broker: Arc<Broker>,
        groups: Arc<Coordinator>,
    ) -> Result<Self, weir_broker::BrokerError> {
        let coordinator = TxnCoordinator::new(CoordinatorConfig::default());
        let pending = PendingOffsets::open(&broker)?;
        let records = broker.transaction_log()?;
        let recovered = coordinator.recover(records.iter().map(|(k, v)| (&k[..], v.as_deref())));
        for reason in &recovered.skipped {
            tracing::warn!(reason, "skipping an unreadable transaction log record");
        }
        let txns = Self {
            coordinator,
            broker,
            groups,
            pending,
        };
        if !recovered.prepared.is_empty() {
            match txns.with_io(|io| txns.coordinator.complete_prepared(io, txns.now_ms())) {
                Ok(done) => tracing::info!(?done, "finished transactions decided before the stop"),
                Err(e) => tracing::warn!(%e, "finishing transactions decided before the stop"),
            }
        }
        Ok(txns)
    }

    pub fn now_ms(&self) -> i64 {
        self.broker.data_dir().clock().now_ms()
    }

    /// Runs `f` with the broker's storage.
    pub fn with_io<T>(
        &self,
        f: impl FnOnce(&dyn TxnIo) -> Result<T, TxnError>,
    ) -> Result<T, TxnError> {
        f(&ServerTxnIo {
            broker: BrokerTxnIo::new(&self.broker),
            txns: self,
        })
    }

    /// Aborts what timed out and finishes what is prepared.
    fn tick(&self) {
        let now = self.now_ms();
        match self.with_io(|io| self.coordinator.abort_expired(io, now)) {
            Ok(aborted) if !aborted.is_empty() => {
                tracing::info!(?aborted, "aborted transactions past their timeout");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%e, "aborting transactions past their timeout"),
        }
        if let Err(e) = self.with_io(|io| self.coordinator.complete_prepared(io, now)) {
            tracing::warn!(%e, "writing transaction markers");
        }
    }
}

/// Ticks the coordinator until the task is aborted.
pub(crate) async fn timers(txns: Arc<Transactions>) {
    loop {
        tokio::time::sleep(TXN_TICK).await;
        let t = txns.clone();
        if tokio::task::spawn_blocking(move || t.tick()).await.is_err() {
            tracing::warn!("the transaction timer's pass panicked");
        }
    }
}
