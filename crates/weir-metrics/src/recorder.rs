//! The [`Recorder`]: what the servers update on their request paths
//! (connections open, Kafka request latency per API, requests refused by a
//! limit, live clients). Every update is a relaxed atomic add on a slot
//! chosen by index; nothing locks or allocates after an API's first
//! request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use weir_log::stats::{Histogram, HistogramSnapshot};

/// Kafka API keys the recorder keeps a latency histogram for (0 up to
/// this, exclusive); requests with a larger key are not recorded.
pub const API_KEYS_MAX: usize = 128;

/// The listeners whose open connections are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Kafka,
    Http,
}

impl Listener {
    pub const ALL: [Listener; 2] = [Listener::Kafka, Listener::Http];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Http => "http",
        }
    }
}

/// Why a request was refused by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A Kafka frame over `request_bytes_max` (Produce) or
    /// `admin_request_bytes_max` (the rest): the connection is closed.
    KafkaRequestTooLarge,
    /// An HTTP body over `http_body_bytes_max` (413).
    HttpBodyTooLarge,
    /// A live stream refused at `sse_clients_max` (503).
    SseClientsMax,
}

impl Rejection {
    pub const ALL: [Rejection; 3] = [
        Rejection::KafkaRequestTooLarge,
        Rejection::HttpBodyTooLarge,
        Rejection::SseClientsMax,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KafkaRequestTooLarge => "kafka_request_too_large",
            Self::HttpBodyTooLarge => "http_body_too_large",
            Self::SseClientsMax => "sse_clients_max",
        }
    }
}

/// One Kafka API's request latencies, named on first use.
#[derive(Debug)]
struct ApiSlot {
    name: OnceLock<String>,
    latency_ns: Histogram,
}

/// The servers' side of the metrics; shared as an `Arc`.
#[derive(Debug)]
pub struct Recorder {
    connections: [AtomicU64; 2],
    apis: Box<[ApiSlot]>,
    rejected: [AtomicU64; 3],
    live_clients: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            connections: Default::default(),
            apis: (0..API_KEYS_MAX)
                .map(|_| ApiSlot {
                    name: OnceLock::new(),
                    latency_ns: Histogram::latency(),
                })
                .collect(),
            rejected: Default::default(),
            live_clients: AtomicU64::new(0),
        }
    }
}

/// Counts one open connection (or live client) until dropped.
#[derive(Debug)]
#[must_use = "the connection is counted only while the guard lives"]
pub struct OpenGuard {
    recorder: Arc<Recorder>,
    slot: GuardSlot,
}

#[derive(Debug, Clone, Copy)]
enum GuardSlot {
    Connection(Listener),
    LiveClient,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.recorder
            .counter(self.slot)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// One Kafka API's latencies when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLatency {
    pub api: String,
    pub latency_ns: HistogramSnapshot,
}

impl Recorder {
    fn counter(&self, slot: GuardSlot) -> &AtomicU64 {
        match slot {
            GuardSlot::Connection(l) => &self.connections[l as usize],
            GuardSlot::LiveClient => &self.live_clients,
        }
    }

    fn open(self: &Arc<Self>, slot: GuardSlot) -> OpenGuard {
        self.counter(slot).fetch_add(1, Ordering::Relaxed);
        OpenGuard {
            recorder: self.clone(),
            slot,
        }
    }

    /// Counts a connection to `listener` while the guard lives.
    pub fn connection(self: &Arc<Self>, listener: Listener) -> OpenGuard {
        self.open(GuardSlot::Connection(listener))
    }

    /// Counts a live (Server-Sent Events) client while the guard lives.
    pub fn live_client(self: &Arc<Self>) -> OpenGuard {
        self.open(GuardSlot::LiveClient)
    }

    /// Records a Kafka request of `api_key` answered in `took`; `name`
    /// names the API the first time it is seen.
    pub fn kafka_request(&self, api_key: i16, name: impl FnOnce() -> String, took: Duration) {
        let Some(slot) = usize::try_from(api_key).ok().and_then(|k| self.apis.get(k)) else {
            return;
        };
        slot.name.get_or_init(name);
        slot.latency_ns.record_duration(took);
    }

    pub fn reject(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn connections_open(&self, listener: Listener) -> u64 {
        self.connections[listener as usize].load(Ordering::Relaxed)
    }

    pub fn live_clients(&self) -> u64 {
        self.live_clients.load(Ordering::Relaxed)
    }

    pub fn rejected(&self, why: Rejection) -> u64 {
        self.rejected[why as usize].load(Ordering::Relaxed)
    }

    /// Latencies of every API that has had a request.
    pub fn api_latencies(&self) -> Vec<ApiLatency> {
        self.apis
            .iter()
            .filter_map(|slot| {
                Some(ApiLatency {
                    api: slot.name.get()?.clone(),
                    latency_ns: slot.latency_ns.snapshot(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_they_live() {
        let r = Arc::new(Recorder::default());
        let a = r.connection(Listener::Kafka);
        let b = r.connection(Listener::Kafka);
        let c = r.live_client();
        assert_eq!(r.connections_open(Listener::Kafka), 2);
        assert_eq!(r.connections_open(Listener::Http), 0);
        assert_eq!(r.live_clients(), 1);
        drop((a, c));
        assert_eq!(r.connections_open(Listener::Kafka), 1);
        assert_eq!(r.live_clients(), 0);
        drop(b);
        assert_eq!(r.connections_open(Listener::Kafka), 0);
    }

    #[test]
    fn request_latencies_are_kept_per_api_and_out_of_range_keys_ignored() {
        let r = Recorder::default();
        r.kafka_request(0, || "Produce".into(), Duration::from_millis(1));
        r.kafka_request(0, || unreachable!("named once"), Duration::from_millis(3));
        r.kafka_request(-1, || "Bad".into(), Duration::from_millis(1));
        r.kafka_request(i16::MAX, || "Bad".into(), Duration::from_millis(1));
        let l = r.api_latencies();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].api, "Produce");
        assert_eq!(l[0].latency_ns.count(), 2);
        assert_eq!(l[0].latency_ns.sum, 4_000_000);
    }
}
