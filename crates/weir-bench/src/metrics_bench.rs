//! `weir-bench produce --metrics-cost`: what the server's metrics cost the
//! produce path. The same Weir run as `weir-bench produce` (librdkafka
//! producers, acks=all, fsync=always), with the metrics off and on in
//! turns, each on a fresh data directory; on, the Kafka listener records
//! every request and a scraper renders the whole exposition every
//! [`SCRAPE_EVERY`]. Reports each run, the best of each side and the
//! difference in throughput.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Context as _;
use weir_groups::{Coordinator, GroupsConfig};

use crate::log_bench::Rng;
use crate::produce_bench::{PARTITIONS, Server, TOPIC, Target, check_stored, produce_phase};
use crate::report;

/// How often the scraper renders the metrics while a run is measured.
pub(crate) const SCRAPE_EVERY: Duration = Duration::from_secs(1);

/// The metrics of an in-process server and a thread scraping them.
#[derive(Debug)]
pub(crate) struct Scraper {
    metrics: Arc<weir_metrics::Metrics>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scraper {
    pub(crate) fn start(
        broker: &Arc<weir_broker::Broker>,
        groups: &Arc<Coordinator>,
    ) -> anyhow::Result<Self> {
        let store = Arc::new(
            weir_store::EmbeddedStore::open(broker.clone(), Default::default())
                .context("open the event store")?,
        );
        let metrics = Arc::new(weir_metrics::Metrics::new(
            weir_metrics::MetricsConfig::default(),
            weir_metrics::Sources {
                broker: broker.clone(),
                groups: groups.clone(),
                store,
                alerts: Arc::new(weir_alerts::Alerts::new(Default::default())),
            },
            Arc::default(),
        ));
        let (stop, stopped) = mpsc::channel::<()>();
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("weir-scrape".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(SCRAPE_EVERY)
                {
                    std::hint::black_box(m.render());
                }
            })
            .context("spawn the scraper")?;
        Ok(Self {
            metrics,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(crate) fn recorder(&self) -> Arc<weir_metrics::Recorder> {
        self.metrics.recorder().clone()
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs Weir with metrics off, then on, `rounds` times, and prints both.
pub(crate) fn compare(
    root: &Path,
    records: u64,
    producers: usize,
    rounds: usize,
    rng: &mut Rng,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    // Records per second of each run, off and on.
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for metrics in [false, true] {
            let label = if metrics { "on" } else { "off" };
            let dir = root.join(format!("weir-{round}-{label}"));
            let server = Server::start_metered(&dir, GroupsConfig::default(), metrics)?;
            let topic = server
                .broker
                .create_topic(TOPIC, PARTITIONS as i64, 1, &[], false)
                .context("create topic bench")?;
            eprintln!(
                "[weir-bench] weir, metrics {label} (run {}): {producers} producers sending {records} records ...",
                round + 1
            );
            let target = Target::plain(&server);
            let mut run = produce_phase(&server.broker, &target, records, producers, rng)?;
            check_stored(&topic, records)?;
            drop(topic);
            server.stop()?;
            std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
            let rate = run.row.records_per_sec();
            if metrics { &mut on } else { &mut off }.push(rate);
            run.row.phase = format!("weir, metrics {label} #{}", round + 1);
            rows.push(run.row);
        }
    }
    println!();
    println!(
        "produce, acks=all, fsync=always; metrics on = Kafka request latency recorded per request and the whole exposition rendered every {} s",
        SCRAPE_EVERY.as_secs()
    );
    report::print_table(&rows);
    println!();
    for (what, pick) in [
        ("best", best as fn(&mut [f64]) -> f64),
        ("median", report::median),
    ] {
        let (off, on) = (pick(&mut off), pick(&mut on));
        let diff = (on - off) / off * 100.0;
        println!(
            "{what} of {rounds}: metrics off {off:.0} records/s, on {on:.0} records/s: {diff:+.1}% with metrics on"
        );
    }
    Ok(())
}

fn best(rates: &mut [f64]) -> f64 {
    rates.iter().copied().fold(0.0, f64::max)
}
