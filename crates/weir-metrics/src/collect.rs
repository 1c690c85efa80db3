//! The scrape: reads the core crates' counters and state (topic traffic,
//! log sizes, sync rounds, committed offsets, the event store, dead-letter
//! depths, alerts), the servers' [`Recorder`] and the process' resident
//! memory, and encodes them with `prometheus-client`. Blocking (log sizes
//! and lag read under the logs' locks): run it off async workers.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use weir_broker::TrafficCounts;
use weir_log::stats::HistogramSnapshot;

use crate::budget::Budget;
use crate::recorder::{Listener, Recorder, Rejection};
use crate::{MetricsConfig, Sources};

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Everything one scrape reports, read before any of it is encoded.
struct Snapshot {
    topics: Vec<(String, TrafficCounts)>,
    /// Topic, partition, log size in bytes.
    partitions: Vec<(String, String, u64)>,
    /// Group, topic, partition, lag in records.
    lag: Vec<(String, String, String, u64)>,
    dead_letters: Vec<(String, u64)>,
    series: usize,
    dropped: u64,
}

#[derive(Debug)]
pub(crate) struct WeirCollector {
    pub(crate) config: MetricsConfig,
    pub(crate) sources: Sources,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) budget: Mutex<Budget>,
}

fn topic(t: &str) -> Labels<'_> {
    vec![("topic", t)]
}

fn partition_key(topic: &str, partition: &str) -> String {
    format!("p\0{topic}\0{partition}")
}

fn lag_key(group: &str, topic: &str, partition: &str) -> String {
    format!("g\0{group}\0{topic}\0{partition}")
}

impl WeirCollector {
    fn snapshot(&self) -> Snapshot {
        let broker = &self.sources.broker;
        let mut topics = Vec::new();
        let mut partitions = Vec::new();
        for topic in broker.topics() {
            // Internal topics are written by Weir itself, not produced to.
            if !topic.internal {
                topics.push((topic.name.clone(), topic.traffic.counts()));
            }
            for p in 0..topic.partition_count() as i32 {
                if let Ok(log) = topic.partition(p) {
                    partitions.push((topic.name.clone(), p.to_string(), log.size_bytes()));
                }
            }
        }
        let groups = &self.sources.groups;
        let mut lag = Vec::new();
        for group in groups.offsets().groups() {
            for l in groups.lag(&group) {
                if let Some(records) = l.lag {
                    lag.push((
                        group.clone(),
                        l.topic,
                        l.partition.to_string(),
                        records.max(0) as u64,
                    ));
                }
            }
        }
        let mut dead_letters =
            weir_deadletter::depths(broker, &self.config.dead_letter_suffix).unwrap_or_default();
        let mut keys: Vec<String> = topics.iter().map(|(t, _)| t.clone()).collect();
        keys.extend(partitions.iter().map(|(t, p, _)| partition_key(t, p)));
        keys.extend(lag.iter().map(|(g, t, p, _)| lag_key(g, t, p)));
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        budget.scrape(&keys);
        topics.retain(|(t, _)| budget.admits(t));
        dead_letters.retain(|(t, _)| budget.admits(t));
        partitions.retain(|(t, p, _)| budget.admits(&partition_key(t, p)));
        lag.retain(|(g, t, p, _)| budget.admits(&lag_key(g, t, p)));
        Snapshot {
            topics,
            partitions,
            lag,
            dead_letters,
            series: budget.admitted(),
            dropped: budget.dropped_total(),
        }
    }
}

/// Writes one family of counters or gauges.
fn family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        let f = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(f)?,
            _ => ConstGauge::new(value as i64).encode(f)?,
        }
    }
    Ok(())
}

/// Writes a family of one unlabelled counter or gauge.
fn single(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: u64,
) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(m),
        _ => ConstGauge::new(value as i64).encode(m),
    }
}

/// Prometheus buckets (upper bound, count; not cumulative) of `h`, scaled.
fn buckets(h: &HistogramSnapshot, scale: f64) -> Vec<(f64, u64)> {
    let mut buckets: Vec<(f64, u64)> = h
        .bounds
        .iter()
        .zip(&h.counts)
        .map(|(&b, &c)| (b as f64 * scale, c))
        .collect();
    buckets.push((f64::MAX, h.counts.last().copied().unwrap_or(0)));
    buckets
}

/// Writes a family of one unlabelled histogram.
fn single_histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    scale: f64,
    h: &HistogramSnapshot,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<NoLabelSet>(h.sum as f64 * scale, h.count(), &buckets(h, scale), None)
}

/// Writes one family of histograms, scaling observations by `scale`
/// (1e-9 for nanoseconds to seconds).
fn histograms<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    scale: f64,
    series: impl IntoIterator<Item = (Labels<'a>, HistogramSnapshot)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        let mut f = m.encode_family(&labels)?;
        f.encode_histogram::<NoLabelSet>(
            h.sum as f64 * scale,
            h.count(),
            &buckets(&h, scale),
            None,
        )?;
    }
    Ok(())
}

const NS: f64 = 1e-9;

impl Collector for WeirCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        use MetricType::{Counter, Gauge};
        let s = self.snapshot();
        type Pick = fn(&TrafficCounts) -> u64;
        let traffic: [(&str, &str, Pick); 4] = [
            (
                "weir_topic_records_in",
                "Records written to the topic (Kafka Produce and HTTP produce).",
                |c| c.records_in,
            ),
            (
                "weir_topic_bytes_in",
                "Bytes of record batches written to the topic.",
                |c| c.bytes_in,
            ),
            (
                "weir_topic_records_out",
                "Records read from the topic (Kafka Fetch and HTTP reads).",
                |c| c.records_out,
            ),
            (
                "weir_topic_bytes_out",
                "Bytes of record batches read from the topic.",
                |c| c.bytes_out,
            ),
        ];
        for (name, help, pick) in traffic {
            family(
                &mut enc,
                name,
                help,
                Counter,
                s.topics.iter().map(|(t, c)| (topic(t), pick(c))),
            )?;
        }
        family(
            &mut enc,
            "weir_partition_log_size_bytes",
            "Bytes of a partition's log on disk (every segment).",
            Gauge,
            s.partitions
                .iter()
                .map(|(t, p, b)| (vec![("topic", t.as_str()), ("partition", p.as_str())], *b)),
        )?;
        family(
            &mut enc,
            "weir_consumer_group_lag_records",
            "Records a consumer group has yet to consume on a partition: the high watermark minus its committed offset.",
            Gauge,
            s.lag.iter().map(|(g, t, p, l)| {
                (
                    vec![
                        ("group", g.as_str()),
                        ("topic", t.as_str()),
                        ("partition", p.as_str()),
                    ],
                    *l,
                )
            }),
        )?;
        family(
            &mut enc,
            "weir_dead_letter_depth_records",
            "Records in a dead-letter topic, from log start to the high watermark.",
            Gauge,
            s.dead_letters.iter().map(|(t, d)| (topic(t), *d)),
        )?;
        let dir = self.sources.broker.data_dir();
        let sync = dir.sync_stats();
        let sync_h = dir.sync_histograms();
        single(
            &mut enc,
            "weir_fsync_rounds",
            "Sync rounds of the data directory (group commits).",
            Counter,
            sync.rounds,
        )?;
        single_histogram(
            &mut enc,
            "weir_fsync_round_duration_seconds",
            "How long a sync round's writes and fdatasyncs took.",
            NS,
            &sync_h.round_ns.snapshot(),
        )?;
        single_histogram(
            &mut enc,
            "weir_fsync_round_appends",
            "Appends waiting for durability that one sync round served.",
            1.0,
            &sync_h.round_appends.snapshot(),
        )?;
        let store = self.sources.store.stats().counts();
        single(
            &mut enc,
            "weir_store_appends",
            "Appends to the event store.",
            Counter,
            store.appends,
        )?;
        single(
            &mut enc,
            "weir_store_events_appended",
            "Events appended to the event store.",
            Counter,
            store.events,
        )?;
        single_histogram(
            &mut enc,
            "weir_store_append_duration_seconds",
            "Event-store append latency, from the call until the events are durable.",
            NS,
            &store.append_ns,
        )?;
        single(
            &mut enc,
            "weir_store_subscriptions",
            "Event-store subscriptions open in this process (SDK subscribers; the HTTP API's live streams read the log and are weir_http_live_clients).",
            Gauge,
            store.subscriptions,
        )?;
        single(
            &mut enc,
            "weir_http_live_clients",
            "Live (Server-Sent Events) clients connected.",
            Gauge,
            self.recorder.live_clients(),
        )?;
        let latencies = self.recorder.api_latencies();
        histograms(
            &mut enc,
            "weir_kafka_request_duration_seconds",
            "Kafka request latency per API, from the request read to its answer ready (Produce: durable).",
            NS,
            latencies
                .iter()
                .map(|l| (vec![("api", l.api.as_str())], l.latency_ns.clone())),
        )?;
        family(
            &mut enc,
            "weir_connections_open",
            "Client connections open, per listener.",
            Gauge,
            Listener::ALL.iter().map(|&l| {
                (
                    vec![("listener", l.as_str())],
                    self.recorder.connections_open(l),
                )
            }),
        )?;
        family(
            &mut enc,
            "weir_requests_rejected",
            "Requests refused by a limit, per reason.",
            Counter,
            Rejection::ALL
                .iter()
                .map(|&r| (vec![("reason", r.as_str())], self.recorder.rejected(r))),
        )?;
        let firing = self.sources.alerts.firing();
        family(
            &mut enc,
            "weir_alert_firing",
            "1 for each alert firing, by kind and subject (a dead-letter topic or a group).",
            Gauge,
            firing.iter().map(|a| {
                (
                    vec![("kind", a.kind.as_str()), ("subject", a.subject.as_str())],
                    1,
                )
            }),
        )?;
        single(
            &mut enc,
            "weir_metrics_series",
            "Per-topic, per-partition and per-group-partition label sets with series now (at most --metrics-series-max).",
            Gauge,
            s.series as u64,
        )?;
        single(
            &mut enc,
            "weir_metrics_series_dropped",
            "Label sets refused a series because --metrics-series-max was reached (each counted once while it exists).",
            Counter,
            s.dropped,
        )?;
        if let Some(rss) = resident_bytes() {
            single(
                &mut enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Gauge,
                rss,
            )?;
        }
        Ok(())
    }
}

/// The process' resident set size, from `/proc/self/status` (`VmRSS`, in
/// KiB); `None` where there is no procfs.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Renders the registry as OpenMetrics text.
pub(crate) fn render(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
        let _ = writeln!(out, "# EOF");
    }
    out
}
