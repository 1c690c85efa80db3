//! Weir's side of `weir-bench store`: the embedded event store over a
//! scratch data directory, with the broker's defaults.

use super::*;

/// Weir's event store in this process, over its own data directory.
#[derive(Debug)]
pub(super) struct Weir {
    pub(super) store: Arc<EmbeddedStore>,
    /// The events log, for the bytes stored per event.
    pub(super) log: Log,
}

impl Weir {
    pub(super) fn open(dir: &Path) -> anyhow::Result<Self> {
        let data = DataDir::open(dir, DirConfig::default())
            .with_context(|| format!("open data directory {}", dir.display()))?;
        let broker = Arc::new(Broker::open(data, BrokerConfig::default()).context("open broker")?);
        let store = Arc::new(
            EmbeddedStore::open(broker.clone(), StoreConfig::default()).context("open store")?,
        );
        let log = broker
            .partition(EVENTS_TOPIC, 0)
            .context("the events log")?;
        // The comparison is only fair if an append returns once durable.
        anyhow::ensure!(
            log.fsync_policy() == FsyncPolicy::Always,
            "the events log syncs {:?}, not always",
            log.fsync_policy()
        );
        Ok(Self { store, log })
    }
}

#[derive(Debug)]
pub(super) struct WeirSession<'a> {
    pub(super) store: &'a EmbeddedStore,
}

impl System for Weir {
    fn name(&self) -> &'static str {
        "weir"
    }

    fn session(&self) -> anyhow::Result<Box<dyn Session + '_>> {
        Ok(Box::new(WeirSession { store: &self.store }))
    }

    fn fsyncs(&self) -> anyhow::Result<u64> {
        let stats = self.store.broker().data_dir().sync_stats();
        Ok(stats.data_syncs + stats.dir_syncs)
    }

    fn events(&self) -> anyhow::Result<u64> {
        Ok(self.store.head_position())
    }
}

impl Session for WeirSession<'_> {
    fn append(
        &mut self,
        stream: &str,
        expected: Option<u64>,
        events: &[BenchEvent],
    ) -> anyhow::Result<u64> {
        let events: Vec<NewEvent> = events
            .iter()
            .map(|e| NewEvent::json(e.id.as_str(), e.event_type, e.data.as_bytes()))
            .collect();
        let expected = expected.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let done = self.store.append(stream, expected, &events)?;
        Ok(done.last_version)
    }

    fn read_stream(&mut self, stream: &str, max: usize) -> anyhow::Result<usize> {
        let events = self.store.read_stream(stream, 0, Direction::Forward, max)?;
        Ok(std::hint::black_box(events).len())
    }

    fn read_all(&mut self, from: u64, max: usize) -> anyhow::Result<(usize, u64)> {
        let events = self.store.read_all(from, Direction::Forward, max)?;
        let next = events.last().map_or(from, |e| e.position + 1);
        Ok((std::hint::black_box(events).len(), next))
    }
}
