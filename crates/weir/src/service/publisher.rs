//! Publishing events to Kafka topics, through librdkafka: what an upload
//! endpoint or a handler uses to emit the next event. A publish returns
//! once the cluster acknowledged the record (`acks=all`, idempotent
//! producer), so an event that was published is durable.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::{Envelope, Error};

/// How long a publish waits for its acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a published record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub partition: i32,
    pub offset: i64,
}

/// Delivery reports go to the publish waiting for them.
pub(crate) struct DeliveryContext;

pub(crate) type Waiter = SyncSender<Result<Published, String>>;

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Waiter>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: Self::DeliveryOpaque) {
        use rdkafka::message::Message as _;
        let _ = waiter.send(match result {
            Ok(m) => Ok(Published {
                partition: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => Err(e.to_string()),
        });
    }
}

/// A record to produce, borrowed.
pub(crate) struct Outgoing<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: OwnedHeaders,
}

/// Creates the acknowledged producer a publisher and the dead letters use.
pub(crate) fn producer(
    bootstrap: &str,
    client_id: &str,
    settings: &[(String, String)],
) -> Result<ThreadedProducer<DeliveryContext>, rdkafka::error::KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // A publish waits for its acknowledgement: batching across
        // publishes would only add latency.
        .set("linger.ms", "0");
    for (k, v) in settings {
        config.set(k, v);
    }
    config.create_with_context(DeliveryContext)
}

/// Produces `out` and waits for its acknowledgement.
pub(crate) fn send_acked(
    producer: &ThreadedProducer<DeliveryContext>,
    out: Outgoing<'_>,
) -> Result<Published, String> {
    let (tx, rx) = sync_channel(1);
    let mut record =
        BaseRecord::<[u8], [u8], _>::with_opaque_to(out.topic, Box::new(tx)).headers(out.headers);
    if let Some(p) = out.partition {
        record = record.partition(p);
    }
    if let Some(k) = out.key {
        record = record.key(k);
    }
    if let Some(v) = out.value {
        record = record.payload(v);
    }
    producer
        .send(record)
        .map_err(|(e, _)| format!("producing to {}: {e}", out.topic))?;
    rx.recv_timeout(ACK_TIMEOUT + Duration::from_secs(5))
        .map_err(|_| format!("no acknowledgement from {}", out.topic))?
        .map_err(|e| format!("producing to {}: {e}", out.topic))
}

/// Produces every record of `outs`, in order, without waiting between
/// them, then waits for each acknowledgement: one answer per record, in
/// order. The producer is idempotent, so records of one partition land in
/// the order given.
pub(crate) fn send_all_acked(
    producer: &ThreadedProducer<DeliveryContext>,
    outs: Vec<Outgoing<'_>>,
) -> Vec<Result<Published, String>> {
    let pending: Vec<Result<(String, std::sync::mpsc::Receiver<_>), String>> = outs
        .into_iter()
        .map(|out| {
            let (tx, rx) = sync_channel(1);
            let mut record = BaseRecord::<[u8], [u8], _>::with_opaque_to(out.topic, Box::new(tx))
                .headers(out.headers);
            if let Some(p) = out.partition {
                record = record.partition(p);
            }
            if let Some(k) = out.key {
                record = record.key(k);
            }
            if let Some(v) = out.value {
                record = record.payload(v);
            }
            producer
                .send(record)
                .map(|()| (out.topic.to_owned(), rx))
                .map_err(|(e, _)| format!("producing to {}: {e}", out.topic))
        })
        .collect();
    pending
        .into_iter()
        .map(|p| {
            let (topic, rx) = p?;
            rx.recv_timeout(ACK_TIMEOUT + Duration::from_secs(5))
                .map_err(|_| format!("no acknowledgement from {topic}"))?
                .map_err(|e| format!("producing to {topic}: {e}"))
        })
        .collect()
}

/// Publishes envelopes to Kafka topics in CloudEvents binary mode, keyed
/// by subject (records of one subject stay in order on one partition).
pub struct Publisher {
    producer: ThreadedProducer<DeliveryContext>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher to the cluster at `bootstrap`, with more librdkafka
    /// `settings` applied last.
    pub fn connect(bootstrap: &str, settings: &[(String, String)]) -> Result<Self, Error> {
        Ok(Self {
            producer: producer(bootstrap, "weir-publisher", settings).map_err(|e| {
                Error::Kafka {
                    service: "publisher".to_owned(),
                    reason: format!("creating the producer: {e}"),
                }
            })?,
        })
    }

    /// Learns where `topics` are (their partitions and leaders) now, so the
    /// first publish to each does not wait for it.
    pub fn prepare(&self, topics: &[&str]) -> Result<(), Error> {
        for topic in topics {
            self.producer
                .client()
                .fetch_metadata(Some(topic), ACK_TIMEOUT)
                .map_err(|e| Error::Kafka {
                    service: "publisher".to_owned(),
                    reason: format!("metadata of {topic}: {e}"),
                })?;
        }
        Ok(())
    }

    /// Publishes `envelope` to `topic`; returns once it is acknowledged.
    pub fn publish(&self, topic: &str, envelope: &Envelope) -> Result<Published, Error> {
        let record = envelope.to_kafka();
        let headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        self.publish_record(topic, record.key.as_deref(), &record.value, &headers)
    }

    /// Publishes a record that is not an envelope (a bridge from another
    /// system, a test's poison); returns once it is acknowledged.
    pub fn publish_record(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<Published, Error> {
        let mut owned = OwnedHeaders::new();
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        send_acked(
            &self.producer,
            Outgoing {
                topic,
                partition: None,
                key,
                value: Some(value),
                headers: owned,
            },
        )
        .map_err(|reason| Error::Kafka {
            service: "publisher".to_owned(),
            reason,
        })
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}
