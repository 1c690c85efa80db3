//! The one queue manager of a server, shared by its front ends (the HTTP
//! queue API and Kafka share groups): opened on first use over the
//! broker (its journal replayed then), so a server whose journal cannot
//! be read still starts and answers queue calls with the error, and a
//! later call tries again. Its upkeep (locks that ran out released,
//! snapshots taken) is one call any front end's timer may make: it runs
//! at most once per [`UPKEEP_MS`], whoever calls.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use weir_broker::Broker;
use weir_queue::{QueueError, Queues, QueuesConfig};

use crate::queue_io::BrokerQueueIo;

/// The queue manager over the broker.
pub type QueueManager = Queues<BrokerQueueIo>;

/// Least time between two upkeep rounds.
pub const UPKEEP_MS: i64 = 200;

/// A server's queue manager, opened on first use.
#[derive(Debug)]
pub struct QueueSlot {
    broker: Arc<Broker>,
    config: QueuesConfig,
    opened: Mutex<Option<Arc<QueueManager>>>,
    /// When the last upkeep round began.
    upkept_ms: AtomicI64,
}

impl QueueSlot {
    /// A slot for a manager with the default limits.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self::with_config(broker, QueuesConfig::default())
    }

    pub fn with_config(broker: Arc<Broker>, config: QueuesConfig) -> Self {
        Self {
            broker,
            config,
            opened: Mutex::new(None),
            upkept_ms: AtomicI64::new(i64::MIN),
        }
    }

    /// The manager, opened (its journal replayed) on first use. Blocks on
    /// disk I/O.
    pub fn get(&self) -> Result<Arc<QueueManager>, QueueError> {
        let mut slot = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = &*slot {
            return Ok(q.clone());
        }
        let io = BrokerQueueIo::new(self.broker.clone());
        let (q, recovery) = Queues::open(io, self.config)?;
        tracing::info!(
            partitions = recovery.partitions,
            replayed = recovery.replayed,
            skipped = recovery.skipped.len(),
            "queue state recovered"
        );
        for s in &recovery.skipped {
            tracing::warn!(%s, "queue journal record skipped");
        }
        let q = Arc::new(q);
        *slot = Some(q.clone());
        Ok(q)
    }

    /// The manager if it was opened.
    pub fn opened(&self) -> Option<Arc<QueueManager>> {
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One upkeep round at `now_ms`, unless one began less than
    /// [`UPKEEP_MS`] ago or the manager is not open: locks that ran out
    /// are released (dead-lettering records at their last delivery) and a
    /// snapshot is taken if due. Returns whether it ran. Blocks on disk
    /// I/O.
    pub fn upkeep(&self, now_ms: i64) -> bool {
        let last = self.upkept_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < UPKEEP_MS
            || self
                .upkept_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let Some(q) = self.opened() else {
            return false;
        };
        if let Err(e) = q.expire(now_ms) {
            tracing::warn!(%e, "expiring queue locks failed");
        }
        if let Err(e) = q.maintain() {
            tracing::warn!(%e, "queue snapshot failed");
        }
        true
    }
}
