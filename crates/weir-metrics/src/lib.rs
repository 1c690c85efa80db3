//! `weir-metrics`: Weir's Prometheus metrics. The core crates keep cheap
//! counters of their own (a topic's traffic, the sync scheduler's rounds,
//! the event store's appends: relaxed atomics and lock-free histograms) and
//! own no metrics code; the servers update a [`Recorder`] (connections,
//! Kafka request latency per API, requests refused by a limit, live
//! clients). At scrape time [`Metrics::render`] reads both, adds what is
//! computed on demand (log sizes, consumer-group lag, dead-letter depths,
//! alerts, resident memory) and encodes it all as OpenMetrics text with
//! `prometheus-client`. Per-topic and per-partition series are capped
//! (`series_max`); label sets past the cap are counted, not shown.
//!
//! ```
//! use std::sync::Arc;
//! # let dir = tempfile::tempdir()?;
//! let data = weir_log::DataDir::open(dir.path(), weir_log::DirConfig::default())?;
//! let broker = Arc::new(weir_broker::Broker::open(data, Default::default())?);
//! let offsets = weir_groups::OffsetStore::open(broker.clone(), Default::default())?;
//! let groups = Arc::new(weir_groups::Coordinator::new(
//!     Default::default(),
//!     Arc::new(weir_groups::MonotonicClock::new()),
//!     broker.clone(),
//!     Arc::new(offsets),
//! ));
//! let store = Arc::new(weir_store::EmbeddedStore::open(broker.clone(), Default::default())?);
//! let alerts = Arc::new(weir_alerts::Alerts::new(Default::default()));
//! broker.create_topic("orders", 1, 1, &[], false)?;
//! let metrics = weir_metrics::Metrics::new(
//!     weir_metrics::MetricsConfig::default(),
//!     weir_metrics::Sources { broker, groups, store, alerts },
//!     Arc::default(),
//! );
//! let text = metrics.render();
//! assert!(text.contains("weir_partition_log_size_bytes{topic=\"orders\",partition=\"0\"}"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod budget;
mod collect;
mod recorder;

use std::sync::{Arc, Mutex};

pub use recorder::{API_KEYS_MAX, ApiLatency, Listener, OpenGuard, Recorder, Rejection};

/// The media type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Settings of the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Most per-topic, per-partition and per-group-partition label sets
    /// with series; more are counted in `weir_metrics_series_dropped_total`.
    pub series_max: usize,
    /// The suffix that makes a topic a dead-letter topic.
    pub dead_letter_suffix: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            series_max: 10_000,
            dead_letter_suffix: weir_deadletter::format::DEFAULT_SUFFIX.to_owned(),
        }
    }
}

/// What the scrape reads.
#[derive(Debug, Clone)]
pub struct Sources {
    pub broker: Arc<weir_broker::Broker>,
    pub groups: Arc<weir_groups::Coordinator>,
    pub store: Arc<weir_store::EmbeddedStore>,
    pub alerts: Arc<weir_alerts::Alerts>,
}

/// The metrics of one server: its registry over [`Sources`] and a
/// [`Recorder`].
#[derive(Debug)]
pub struct Metrics {
    registry: prometheus_client::registry::Registry,
    recorder: Arc<Recorder>,
}

impl Metrics {
    pub fn new(config: MetricsConfig, sources: Sources, recorder: Arc<Recorder>) -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(collect::WeirCollector {
            budget: Mutex::new(budget::Budget::new(config.series_max)),
            config,
            sources,
            recorder: recorder.clone(),
        }));
        Self { registry, recorder }
    }

    /// The recorder the servers update.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// Every metric as OpenMetrics text ([`CONTENT_TYPE`]). Blocks on the
    /// logs' and the coordinator's locks: call it off async workers.
    pub fn render(&self) -> String {
        collect::render(&self.registry)
    }
}
