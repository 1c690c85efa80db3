//! Persistent subscriptions in the SDK (KurrentDB's competing consumers):
//! a group on a stream, `$ce-<category>` or `$all` whose consumers share
//! its events, each acked, retried or parked on its own; embedded (the
//! data directory's own engine manager, one per process) or remote (the
//! HTTP API), through the [`crate::Backend`] seam.
//!
//! ```
//! use std::time::Duration;
//! use weir::persistent::{SubscriptionSettings, Outcome};
//! use weir::Client;
//!
//! let tmp = tempfile::tempdir()?;
//! let client = Client::open(tmp.path())?;
//! let e = weir::store::NewEvent::json("e-1", "Ordered", br#"{"n":1}"#.to_vec());
//! client.backend().append("order-1", weir::store::ExpectedVersion::Any, &[e])?;
//!
//! let group = client.persistent_subscription("$ce-order", "billing");
//! group.ensure(&SubscriptionSettings { start_from: Some(0), ..Default::default() })?;
//! let worker = group.consumer("worker-1");
//! let handled = worker.run_once(10, Duration::ZERO, |event| {
//!     assert_eq!(event.event.stream, "order-1");
//!     Outcome::Ack
//! })?;
//! assert_eq!(handled, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use weir_deadletter::queue_io::BrokerQueueIo;
use weir_store::persistent::PersistentSubscriptions;
pub use weir_store::persistent::{
    Delivered, NackAction, Strategy, SubscriptionError, SubscriptionInfo, SubscriptionSettings,
    Target,
};

use crate::{Client, Error};

/// How often a waiting embedded read looks again (locks of other
/// consumers run out by time, not by new events).
const POLL: Duration = Duration::from_millis(50);

/// What a handler decided about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ack,
    /// Not handled: nacked with the action, and the reason kept with a
    /// parked event.
    Nack(NackAction, String),
}

/// The embedded side: the store's persistent subscriptions over the data
/// directory's engine manager, opened on first use.
#[derive(Debug, Default)]
pub(crate) struct EmbeddedSubscriptions {
    subs: OnceLock<Arc<PersistentSubscriptions<BrokerQueueIo>>>,
}

impl EmbeddedSubscriptions {
    pub(crate) fn get(
        &self,
        embedded: &crate::client::Embedded,
    ) -> Result<&Arc<PersistentSubscriptions<BrokerQueueIo>>, Error> {
        if let Some(s) = self.subs.get() {
            return Ok(s);
        }
        let queues = crate::queue::embedded_manager(embedded)?;
        let subs = PersistentSubscriptions::open(embedded.store().clone(), queues)?;
        // Two threads may open at once; the first one set wins.
        let _ = self.subs.set(Arc::new(subs));
        Ok(self.subs.get().expect("set above"))
    }
}

pub(crate) fn embedded_read(
    subs: &PersistentSubscriptions<BrokerQueueIo>,
    store: &weir_store::EmbeddedStore,
    target: &Target,
    group: &str,
    consumer: &str,
    max: u32,
    wait: Duration,
) -> Result<Vec<Delivered>, Error> {
    let until = Instant::now() + wait;
    let clock = store.broker().data_dir().clock();
    loop {
        let epoch = store.broker().data_dir().changes().epoch();
        let now = clock.now_ms();
        subs.upkeep(now)?;
        let got = subs.read(target, group, consumer, Some(max), now)?;
        let left = until.saturating_duration_since(Instant::now());
        if !got.is_empty() || left.is_zero() {
            return Ok(got);
        }
        store
            .broker()
            .data_dir()
            .changes()
            .wait(epoch, left.min(POLL));
    }
}

/// A subscription group, by target and name.
#[derive(Debug, Clone)]
pub struct PersistentSubscription {
    client: Client,
    target: String,
    group: String,
}

impl Client {
    /// The persistent-subscription group `group` on `target`: a stream id,
    /// `$ce-<category>` or `$all`.
    pub fn persistent_subscription(&self, target: &str, group: &str) -> PersistentSubscription {
        PersistentSubscription {
            client: self.clone(),
            target: target.to_owned(),
            group: group.to_owned(),
        }
    }
}

impl PersistentSubscription {
    /// Creates the group, or changes its settings if it exists (its start
    /// stays).
    pub fn ensure(&self, settings: &SubscriptionSettings) -> Result<(), Error> {
        self.client
            .backend()
            .put_subscription(&self.target, &self.group, settings)
    }

    pub fn delete(&self) -> Result<(), Error> {
        self.client
            .backend()
            .delete_subscription(&self.target, &self.group)
    }

    /// Delivers every event parked so far once more; returns how many.
    pub fn replay_parked(&self) -> Result<u64, Error> {
        self.client
            .backend()
            .replay_parked(&self.target, &self.group)
    }

    /// Consumers, events in flight, checkpoint and parked events.
    pub fn info(&self) -> Result<SubscriptionInfo, Error> {
        self.client
            .backend()
            .subscription_info(&self.target, &self.group)
    }

    /// A consumer of the group, by name (its events are held under it).
    pub fn consumer(&self, name: &str) -> SubscriptionConsumer {
        SubscriptionConsumer {
            sub: self.clone(),
            name: name.to_owned(),
        }
    }
}

/// One consumer of a group.
#[derive(Debug, Clone)]
pub struct SubscriptionConsumer {
    sub: PersistentSubscription,
    name: String,
}

impl SubscriptionConsumer {
    /// Up to `max` events, held by this consumer for the group's message
    /// timeout; waits up to `wait` when there are none.
    pub fn read(&self, max: u32, wait: Duration) -> Result<Vec<Delivered>, Error> {
        let s = &self.sub;
        s.client
            .backend()
            .read_subscription(&s.target, &s.group, &self.name, max, wait)
    }

    /// A delivered event as this client's readers see it: its envelope,
    /// upcast to its type's current version by the client's upcasters
    /// (deliveries carry the event as recorded).
    pub fn envelope(&self, delivered: &Delivered) -> Result<crate::Envelope, Error> {
        self.sub.client.envelope(delivered.event.clone())
    }

    /// Acks events: handled, never delivered again (durable on return).
    pub fn ack(&self, events: &[Delivered]) -> Result<(), Error> {
        let ids: Vec<String> = events.iter().map(|d| d.ack_id.clone()).collect();
        let s = &self.sub;
        s.client
            .backend()
            .settle_subscription(&s.target, &s.group, &self.name, &ids, None, "")
    }

    /// Nacks events: retry, park (with `reason`) or skip.
    pub fn nack(
        &self,
        events: &[Delivered],
        action: NackAction,
        reason: &str,
    ) -> Result<(), Error> {
        let ids: Vec<String> = events.iter().map(|d| d.ack_id.clone()).collect();
        let s = &self.sub;
        s.client.backend().settle_subscription(
            &s.target,
            &s.group,
            &self.name,
            &ids,
            Some(action),
            reason,
        )
    }

    /// Reads once (up to `max`, waiting up to `wait`) and gives each event
    /// to `handler`, acking or nacking it as the handler says; returns how
    /// many were handled. A handler that keeps failing an event with
    /// `retry` sees it parked after the group's `max_retry_count`.
    pub fn run_once(
        &self,
        max: u32,
        wait: Duration,
        mut handler: impl FnMut(&Delivered) -> Outcome,
    ) -> Result<usize, Error> {
        let events = self.read(max, wait)?;
        for d in &events {
            match handler(d) {
                Outcome::Ack => self.ack(std::slice::from_ref(d))?,
                Outcome::Nack(action, reason) => {
                    self.nack(std::slice::from_ref(d), action, &reason)?
                }
            }
        }
        Ok(events.len())
    }
}

pub(crate) fn remote_put(
    remote: &crate::Remote,
    target: &str,
    group: &str,
    s: &SubscriptionSettings,
) -> Result<(), Error> {
    let body = weir_api::SubscriptionSettings {
        start_from: s.start_from,
        max_retry_count: Some(s.max_retry_count),
        message_timeout_ms: Some(s.message_timeout_ms),
        max_subscriber_count: Some(s.max_subscriber_count),
        read_batch_size: Some(s.read_batch_size),
        strategy: Some(s.strategy.name().to_owned()),
    };
    remote
        .http()
        .put_subscription(target, group, &body)
        .map_err(crate::remote::remote_error)?;
    Ok(())
}

pub(crate) fn remote_info(
    remote: &crate::Remote,
    target: &str,
    group: &str,
) -> Result<SubscriptionInfo, Error> {
    let i = remote
        .http()
        .subscription(target, group)
        .map_err(crate::remote::remote_error)?;
    let d = SubscriptionSettings::default();
    let s = i.settings;
    Ok(SubscriptionInfo {
        target: i.target,
        group: i.group,
        settings: SubscriptionSettings {
            start_from: s.start_from,
            max_retry_count: s.max_retry_count.unwrap_or(d.max_retry_count),
            message_timeout_ms: s.message_timeout_ms.unwrap_or(d.message_timeout_ms),
            max_subscriber_count: s.max_subscriber_count.unwrap_or(d.max_subscriber_count),
            read_batch_size: s.read_batch_size.unwrap_or(d.read_batch_size),
            strategy: s
                .strategy
                .as_deref()
                .and_then(Strategy::from_name)
                .unwrap_or_default(),
        },
        consumers: i
            .consumers
            .into_iter()
            .map(|c| weir_store::persistent::ConsumerInfo {
                name: c.name,
                idle_ms: c.idle_ms,
                in_flight: c.in_flight,
            })
            .collect(),
        in_flight: i.in_flight,
        checkpoint: i.checkpoint,
        last_known: i.last_known,
        parked: i.parked,
        replaying: i.replaying,
        parked_stream: i.parked_stream,
    })
}

pub(crate) fn remote_read(
    remote: &crate::Remote,
    target: &str,
    group: &str,
    consumer: &str,
    max: u32,
    wait: Duration,
) -> Result<Vec<Delivered>, Error> {
    let read = weir_api::SubscriptionRead {
        consumer: consumer.to_owned(),
        max: Some(max),
        wait_ms: Some(wait.as_millis().min(30_000) as u64),
    };
    let got = remote
        .http()
        .read_subscription(target, group, &read)
        .map_err(crate::remote::remote_error)?;
    Ok(got
        .events
        .into_iter()
        .map(|e| Delivered {
            ack_id: e.ack_id,
            retry_count: e.retry_count,
            replayed: e.replayed,
            event: crate::remote::recorded(e.event),
        })
        .collect())
}

pub(crate) fn remote_settle(
    remote: &crate::Remote,
    target: &str,
    group: &str,
    consumer: &str,
    ack_ids: &[String],
    action: Option<NackAction>,
    reason: &str,
) -> Result<(), Error> {
    let http = remote.http();
    let r = match action {
        None => http.ack_subscription(
            target,
            group,
            &weir_api::SubscriptionAck {
                consumer: consumer.to_owned(),
                ack_ids: ack_ids.to_vec(),
            },
        ),
        Some(a) => http.nack_subscription(
            target,
            group,
            &weir_api::SubscriptionNack {
                consumer: consumer.to_owned(),
                ack_ids: ack_ids.to_vec(),
                action: match a {
                    NackAction::Retry => "retry",
                    NackAction::Park => "park",
                    NackAction::Skip => "skip",
                }
                .to_owned(),
                reason: (!reason.is_empty()).then(|| reason.to_owned()),
            },
        ),
    };
    r.map_err(crate::remote::remote_error)?;
    Ok(())
}
