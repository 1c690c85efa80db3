//! The embedded backend of the [`crate::Client`]: the store of a data
//! directory opened in this process, with its persistent subscriptions,
//! queue manager and schema registry opened on first use (the registry
//! at open when the directory has one, so validation on write is in
//! force from the first append). Split from `client.rs` for size.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use weir_broker::{Broker, BrokerConfig};
use weir_log::{Clock, DataDir, DirConfig};
use weir_store::{
    AppendResult, AsOf, Direction, EmbeddedStore, EventStore, ExpectedVersion, Loaded, NewEvent,
    RecordedEvent, StoreConfig, StoreError,
};

use crate::Error;
use crate::client::Backend;

/// The embedded backend: the store of a data directory in this process.
#[derive(Debug)]
pub struct Embedded {
    store: Arc<EmbeddedStore>,
    /// Persistent subscriptions, over the directory's engine manager,
    /// opened on first use.
    subscriptions: crate::persistent::EmbeddedSubscriptions,
    /// The queue manager, opened on first use (`crate::queue`).
    pub(crate) queues: std::sync::Mutex<Option<Arc<weir_deadletter::queue_claim::BrokerQueues>>>,
    /// The schema registry on the broker's `__schemas` topic, opened on
    /// first use; one per data directory, so ids are handed out by one
    /// owner.
    schemas: std::sync::Mutex<Option<Arc<weir_schemas::Registry>>>,
}

impl Embedded {
    /// Opens (creating if needed) the data directory at `path`; it is
    /// locked while open (one process per data directory).
    pub fn open(path: &Path, clock: Option<Arc<dyn Clock>>) -> Result<Self, Error> {
        let open_err = |reason: String| Error::Open {
            path: path.display().to_string(),
            reason,
        };
        let dir = DataDir::open(path, DirConfig::default()).map_err(|e| open_err(e.to_string()))?;
        let broker =
            Broker::open(dir, BrokerConfig::default()).map_err(|e| open_err(e.to_string()))?;
        let store = EmbeddedStore::open(
            Arc::new(broker),
            StoreConfig {
                clock,
                ..StoreConfig::default()
            },
        )?;
        let embedded = Self {
            store: Arc::new(store),
            subscriptions: Default::default(),
            queues: std::sync::Mutex::new(None),
            schemas: std::sync::Mutex::new(None),
        };
        // A directory with a registry may have validated categories:
        // open it now, so appends are checked from the first.
        let broker = embedded.store.broker();
        if broker.topic(weir_schemas::SCHEMAS_TOPIC).is_ok() {
            embedded.schema_registry()?;
        }
        Ok(embedded)
    }

    /// The data directory's schema registry (the `__schemas` topic),
    /// opened on first use and shared by every caller after.
    pub fn schema_registry(&self) -> Result<Arc<weir_schemas::Registry>, Error> {
        let mut slot = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let r = weir_schemas::Registry::open_on_broker(
            self.store.broker().clone(),
            weir_schemas::Limits::default(),
        )
        .map_err(|e| Error::Schema {
            subject: String::new(),
            code: e.error_code(),
            reason: format!("opening the registry: {e}"),
        })?;
        let r = Arc::new(r);
        // Validation on write checks against it, as `weir serve` does.
        // (The store holds it; the broker only refers to it.)
        let validator = Arc::new(weir_schemas::Validator::new(r.clone()));
        let records: Arc<dyn weir_broker::RecordValidator> = validator.clone();
        self.store.broker().set_record_validator(&records);
        self.store.set_event_validator(validator);
        *slot = Some(r.clone());
        Ok(r)
    }

    /// The store, for what the SDK does not wrap.
    pub fn store(&self) -> &Arc<EmbeddedStore> {
        &self.store
    }
}

fn absent_is_empty(r: Result<Vec<RecordedEvent>, StoreError>) -> Result<Vec<RecordedEvent>, Error> {
    match r {
        Err(StoreError::StreamNotFound { .. }) => Ok(Vec::new()),
        r => Ok(r?),
    }
}

impl Backend for Embedded {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, Error> {
        Ok(self.store.append(stream, expected, events)?)
    }

    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        absent_is_empty(
            self.store
                .read_stream(stream, from_version, Direction::Forward, max_count),
        )
    }

    fn read_all(&self, from_position: u64, max_count: usize) -> Result<Vec<RecordedEvent>, Error> {
        Ok(self
            .store
            .read_all(from_position, Direction::Forward, max_count)?)
    }

    fn read_category(
        &self,
        category: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        Ok(self
            .store
            .read_category(category, from_position, Direction::Forward, max_count)?)
    }

    fn read_stream_as_of(
        &self,
        stream: &str,
        as_of: AsOf,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        absent_is_empty(self.store.read_stream_as_of(stream, as_of, max_count))
    }

    fn read_correlation(
        &self,
        correlation_id: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        Ok(self
            .store
            .read_correlation(correlation_id, from_position, max_count)?)
    }

    fn read_type(
        &self,
        event_type: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        Ok(self
            .store
            .read_type(event_type, from_position, Direction::Forward, max_count)?)
    }

    fn load(&self, stream: &str, max_events: usize) -> Result<Loaded, Error> {
        Ok(self.store.load(stream, max_events)?)
    }

    fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        snapshot_type: &str,
        data: Vec<u8>,
    ) -> Result<(), Error> {
        Ok(self
            .store
            .save_snapshot(stream, version, snapshot_type, data)?)
    }

    fn head_position(&self) -> Result<u64, Error> {
        Ok(self.store.head_position())
    }

    fn change_epoch(&self) -> u64 {
        self.store.broker().data_dir().changes().epoch()
    }

    fn dead_letter_topics(&self) -> Result<Vec<crate::dead_letters::DeadLetterTopic>, Error> {
        crate::dead_letters::embedded_topics(self)
    }

    fn read_dead_letters(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: usize,
    ) -> Result<crate::dead_letters::DeadLetterPage, Error> {
        crate::dead_letters::embedded_read(self, topic, partition, offset, limit)
    }

    fn replay_dead_letters(
        &self,
        topic: &str,
        selection: crate::dead_letters::Selection,
    ) -> Result<crate::dead_letters::ReplayOutcome, Error> {
        crate::dead_letters::embedded_replay(self, topic, selection)
    }

    fn purge_dead_letters(
        &self,
        topic: &str,
        what: crate::dead_letters::Purge,
    ) -> Result<Vec<crate::dead_letters::PartitionPurged>, Error> {
        crate::dead_letters::embedded_purge(self, topic, what)
    }

    fn put_subscription(
        &self,
        target: &str,
        group: &str,
        settings: &crate::persistent::SubscriptionSettings,
    ) -> Result<(), Error> {
        let subs = self.subscriptions.get(self)?;
        let target = crate::persistent::Target::parse(target)?;
        match subs.settings(&target, group) {
            Ok(_) => subs.update(&target, group, settings)?,
            Err(_) => subs.create(&target, group, settings)?,
        }
        Ok(())
    }

    fn delete_subscription(&self, target: &str, group: &str) -> Result<(), Error> {
        let target = crate::persistent::Target::parse(target)?;
        Ok(self.subscriptions.get(self)?.delete(&target, group)?)
    }

    fn subscription_info(
        &self,
        target: &str,
        group: &str,
    ) -> Result<crate::persistent::SubscriptionInfo, Error> {
        let target = crate::persistent::Target::parse(target)?;
        let now = self.store.broker().data_dir().clock().now_ms();
        Ok(self.subscriptions.get(self)?.info(&target, group, now)?)
    }

    fn read_subscription(
        &self,
        target: &str,
        group: &str,
        consumer: &str,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<crate::persistent::Delivered>, Error> {
        let target = crate::persistent::Target::parse(target)?;
        let subs = self.subscriptions.get(self)?;
        crate::persistent::embedded_read(subs, &self.store, &target, group, consumer, max, wait)
    }

    fn settle_subscription(
        &self,
        target: &str,
        group: &str,
        consumer: &str,
        ack_ids: &[String],
        action: Option<crate::persistent::NackAction>,
        reason: &str,
    ) -> Result<(), Error> {
        let target = crate::persistent::Target::parse(target)?;
        let subs = self.subscriptions.get(self)?;
        let now = self.store.broker().data_dir().clock().now_ms();
        match action {
            None => subs.ack(&target, group, consumer, ack_ids, now)?,
            Some(a) => subs.nack(&target, group, consumer, ack_ids, a, reason, now)?,
        }
        Ok(())
    }

    fn replay_parked(&self, target: &str, group: &str) -> Result<u64, Error> {
        let target = crate::persistent::Target::parse(target)?;
        Ok(self
            .subscriptions
            .get(self)?
            .replay_parked(&target, group)?)
    }

    fn queue_engine(&self) -> Result<crate::queue::QueueEngine, Error> {
        crate::queue::embedded_engine(self)
    }

    fn schemas(&self) -> Result<crate::Schemas, Error> {
        Ok(crate::Schemas::embedded(self.schema_registry()?))
    }

    fn wait_changed(&self, epoch: u64, timeout: Duration) -> bool {
        self.store
            .broker()
            .data_dir()
            .changes()
            .wait(epoch, timeout)
    }
}
