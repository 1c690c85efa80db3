//! Handing a group's events to its consumers: reads (parked events being
//! replayed first, then the target's sequence), acks, nacks (retry, park,
//! skip), parking (an event retried past `max_retry_count`, or nacked
//! with `park`, written to the group's parked stream), replays of the
//! parked stream, and what a group looks like now.

use weir_queue::{AckKind, Acquired, Create, DELIVERY_LIMIT_MAX, QueueError, QueueIo, QueueKey};

use super::groups::{Group, PersistentSubscriptions};
use super::{
    NackAction, READ_BATCH_MAX, Strategy, SubscriptionError, SubscriptionSettings, Target,
    check_name,
};
use crate::embedded::Sequence;
use crate::{EventStore, NewEvent, RecordedEvent};

/// Ordinals ahead of the checkpoint whose streams a pinned group looks
/// up (the engine's default window).
const PINNED_LOOKAHEAD: i64 = 2_000;
/// Acquisitions one read makes at most (events the log hides are settled
/// without being shown, so a pass may hand out fewer than it took).
const PASSES_MAX: usize = 8;

/// An event handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// What the consumer acks or nacks it by: `m:<n>` for the n-th event
    /// of the group's sequence, `p:<n>` for the n-th parked event being
    /// replayed.
    pub ack_id: String,
    pub event: RecordedEvent,
    /// Deliveries before this one (nacked with `retry`, or timed out).
    pub retry_count: u16,
    /// Delivered again by a replay of the parked stream.
    pub replayed: bool,
}

/// A consumer as a group sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub name: String,
    /// Since it last read, acked or nacked.
    pub idle_ms: i64,
    /// Events it holds now.
    pub in_flight: usize,
}

/// A group now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub target: String,
    pub group: String,
    pub settings: SubscriptionSettings,
    pub consumers: Vec<ConsumerInfo>,
    /// Events held by consumers now.
    pub in_flight: usize,
    /// The first ordinal of the sequence not settled (a stream version
    /// for a stream, the n-th event for a category, a position for
    /// `$all`): everything below is acked, skipped or parked, durably.
    pub checkpoint: i64,
    /// The ordinal the sequence's next event will have.
    pub last_known: i64,
    /// Parked events not yet asked to be replayed.
    pub parked: u64,
    /// Parked events asked to be replayed and not yet settled.
    pub replaying: i64,
    pub parked_stream: String,
}

fn parse_ack_id(id: &str) -> Result<(bool, i64), SubscriptionError> {
    let bad = || SubscriptionError::InvalidAckId { id: id.to_owned() };
    let (kind, n) = id.split_once(':').ok_or_else(bad)?;
    let n: i64 = n.parse().ok().filter(|n| *n >= 0).ok_or_else(bad)?;
    match kind {
        "m" => Ok((false, n)),
        "p" => Ok((true, n)),
        _ => Err(bad()),
    }
}

/// The consumer a stream with nothing held goes to: the one whose name
/// hashes highest with the stream's id.
fn pinned_to<'a>(stream: &str, consumers: &[&'a str]) -> Option<&'a str> {
    consumers.iter().copied().max_by_key(|c| {
        let h = crc32c::crc32c(stream.as_bytes());
        let h = crc32c::crc32c_append(h, &[0]);
        (crc32c::crc32c_append(h, c.as_bytes()), *c)
    })
}

fn ack_id(parked: bool, n: i64) -> String {
    format!("{}:{n}", if parked { "p" } else { "m" })
}

fn not_held(e: QueueError, id: &str, consumer: &str) -> SubscriptionError {
    match e {
        QueueError::NotAcquired { .. } => SubscriptionError::NotHeld {
            id: id.to_owned(),
            consumer: consumer.to_owned(),
        },
        e => e.into(),
    }
}

/// The metadata a parked event carries: where it came from, and why.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ParkedFrom {
    stream: String,
    version: u64,
    position: u64,
    id: String,
    target: String,
    group: String,
    reason: String,
    retry_count: u16,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ParkedMetadata {
    parked_from: ParkedFrom,
    /// The original event's metadata, as text.
    #[serde(default)]
    original_metadata: String,
}

impl<Io: QueueIo> PersistentSubscriptions<Io> {
    /// Up to `max` (or the group's `read_batch_size`) events for
    /// `consumer`, each held by it for the group's `message_timeout_ms`:
    /// parked events being replayed first, then the sequence's next ones.
    /// Nothing blocks: an empty answer means nothing is there now.
    pub fn read(
        &self,
        target: &Target,
        group: &str,
        consumer: &str,
        max: Option<u32>,
        now_ms: i64,
    ) -> Result<Vec<Delivered>, SubscriptionError> {
        check_name(consumer)?;
        let g = self.group(target, group)?;
        let max = max.unwrap_or(g.settings.read_batch_size);
        if !(1..=READ_BATCH_MAX).contains(&max) {
            return Err(SubscriptionError::InvalidSettings {
                reason: format!("a read takes 1 to {READ_BATCH_MAX} events, not {max}"),
            });
        }
        let max = max as usize;
        self.touch(&g, consumer, now_ms)?;
        let mut out = Vec::new();
        let parked_end = self.store.truncated_before(&g.parked_stream()) as i64;
        let create = Create {
            delivery_limit: DELIVERY_LIMIT_MAX,
            start: 0,
        };
        for _ in 0..PASSES_MAX {
            let want = max - out.len();
            if want == 0 || parked_end == 0 {
                break;
            }
            let lock = g.settings.message_timeout_ms;
            let key = g.key(true);
            let got = self
                .queues
                .acquire(&key, &create, consumer, want, lock, 0, parked_end, now_ms)?;
            if got.is_empty() {
                break;
            }
            self.hand_out(&g, true, consumer, &got, &mut out)?;
        }
        let seq = g.sequence();
        for _ in 0..PASSES_MAX {
            let want = max - out.len();
            if want == 0 {
                break;
            }
            let got = self.acquire_main(&g, &seq, consumer, want, now_ms)?;
            if got.is_empty() {
                break;
            }
            self.hand_out(&g, false, consumer, &got, &mut out)?;
        }
        Ok(out)
    }

    fn acquire_main(
        &self,
        g: &Group,
        seq: &Sequence<'_>,
        consumer: &str,
        want: usize,
        now_ms: i64,
    ) -> Result<Vec<Acquired>, SubscriptionError> {
        let (log_start, end) = self.store.sequence_bounds(seq);
        let key = g.key(false);
        let create = Create {
            delivery_limit: DELIVERY_LIMIT_MAX,
            start: g.start,
        };
        let lock = g.settings.message_timeout_ms;
        let pinned = g.settings.strategy == Strategy::Pinned;
        if !pinned {
            return Ok(self
                .queues
                .acquire(&key, &create, consumer, want, lock, log_start, end, now_ms)?);
        }
        let start = self
            .queues
            .start_offset(&key)
            .unwrap_or(g.start)
            .max(log_start);
        let mut live = g.live();
        live.streams = live.streams.split_off(&start);
        // The streams of the window's ordinals not looked up yet.
        let ahead = end.min(start.saturating_add(PINNED_LOOKAHEAD));
        let from = live
            .streams
            .last_key_value()
            .map_or(start, |(&o, _)| o + 1)
            .max(start);
        if from < ahead {
            match seq {
                Sequence::Stream(s) => {
                    for o in from..ahead {
                        live.streams.insert(o, (*s).to_owned());
                    }
                }
                _ => {
                    for (o, e) in self.store.sequence_events(seq, from, ahead - 1)? {
                        live.streams
                            .insert(o, e.map(|e| e.stream).unwrap_or_default());
                    }
                }
            }
        }
        // A stream with an event held goes only to its holder (so no two
        // consumers ever handle one stream at once); one with none held
        // goes to the live consumer its id hashes highest with
        // (rendezvous hashing: stable while the consumers are, balanced,
        // and only the streams of a consumer that comes or goes move).
        let mut holders: std::collections::HashMap<&str, String> = self
            .queues
            .pending(&key.group, now_ms)
            .into_iter()
            .filter(|(k, _)| *k == key)
            .filter_map(|(_, p)| {
                let s = live.streams.get(&p.offset)?;
                Some((s.as_str(), p.member))
            })
            .collect();
        let consumers: Vec<&str> = live.consumers.keys().map(String::as_str).collect();
        let streams = &live.streams;
        let mut wanted = |o: i64| {
            let Some(stream) = streams.get(&o) else {
                return false;
            };
            // An event readers may not see is taken, to be settled.
            if stream.is_empty() {
                return true;
            }
            if let Some(holder) = holders.get(stream.as_str()) {
                return holder == consumer;
            }
            if pinned_to(stream, &consumers) == Some(consumer) {
                holders.insert(stream.as_str(), consumer.to_owned());
                return true;
            }
            false
        };
        Ok(self.queues.acquire_where(
            &key,
            &create,
            consumer,
            want,
            lock,
            log_start,
            end,
            now_ms,
            &mut wanted,
        )?)
    }

    /// Turns acquired ordinals into events for the consumer: those the
    /// log hides are settled as gaps, those past the retry limit parked.
    fn hand_out(
        &self,
        g: &Group,
        parked: bool,
        consumer: &str,
        got: &[Acquired],
        out: &mut Vec<Delivered>,
    ) -> Result<(), SubscriptionError> {
        let key = g.key(parked);
        let parked_stream = g.parked_stream();
        let seq = if parked {
            Sequence::Stream(&parked_stream)
        } else {
            g.sequence()
        };
        for a in got {
            for (o, e) in self.store.sequence_events(&seq, a.first, a.last)? {
                let e = match (e, parked) {
                    (Some(p), true) => self.original_of(&p)?,
                    (e, _) => e,
                };
                let Some(event) = e else {
                    self.queues
                        .acknowledge(&key, consumer, o, o, AckKind::Gap)?;
                    continue;
                };
                let retry_count = a.deliveries.saturating_sub(1);
                if retry_count > g.settings.max_retry_count {
                    let why = format!("retried {} times", retry_count);
                    self.park(g, &ack_id(parked, o), &event, &why, retry_count)?;
                    self.queues
                        .acknowledge(&key, consumer, o, o, AckKind::Accept)?;
                    continue;
                }
                out.push(Delivered {
                    ack_id: ack_id(parked, o),
                    event,
                    retry_count,
                    replayed: parked,
                });
            }
        }
        Ok(())
    }

    /// The original of a parked event, if the log still has it.
    fn original_of(
        &self,
        parked: &RecordedEvent,
    ) -> Result<Option<RecordedEvent>, SubscriptionError> {
        let Ok(meta) = serde_json::from_slice::<ParkedMetadata>(&parked.metadata) else {
            return Ok(None);
        };
        Ok(self.store.event_at(meta.parked_from.position)?)
    }

    /// Writes `event` to the group's parked stream, durably. The id is
    /// the delivery's, so writing it again after a crash writes nothing.
    fn park(
        &self,
        g: &Group,
        id: &str,
        event: &RecordedEvent,
        reason: &str,
        retry_count: u16,
    ) -> Result<(), SubscriptionError> {
        let metadata = ParkedMetadata {
            parked_from: ParkedFrom {
                stream: event.stream.clone(),
                version: event.version,
                position: event.position,
                id: event.id.clone(),
                target: g.target.name(),
                group: g.name.clone(),
                reason: reason.chars().take(1_000).collect(),
                retry_count,
            },
            original_metadata: String::from_utf8_lossy(&event.metadata).into_owned(),
        };
        let parked = NewEvent {
            id: format!("park-{}-{id}-{retry_count}", g.generation),
            event_type: event.event_type.clone(),
            data: event.data.clone(),
            content_type: event.content_type.clone(),
            metadata: serde_json::to_vec(&metadata).unwrap_or_default(),
            trace: event.trace.clone(),
        };
        self.store.append_own(&g.parked_stream(), &[parked])?;
        Ok(())
    }

    /// Notes that `consumer` is alive; consumers silent for longer than
    /// the message timeout are gone: what they hold goes back, and their
    /// streams (pinned) to others.
    fn touch(&self, g: &Group, consumer: &str, now_ms: i64) -> Result<(), SubscriptionError> {
        let timeout = g.settings.message_timeout_ms;
        let gone: Vec<String> = {
            let mut live = g.live();
            let gone: Vec<String> = live
                .consumers
                .iter()
                .filter(|(c, t)| c.as_str() != consumer && now_ms.saturating_sub(**t) > timeout)
                .map(|(c, _)| c.clone())
                .collect();
            for c in &gone {
                live.consumers.remove(c);
            }
            let max = g.settings.consumers_max();
            if !live.consumers.contains_key(consumer) && live.consumers.len() >= max as usize {
                return Err(SubscriptionError::TooManyConsumers {
                    group: g.name.clone(),
                    max,
                });
            }
            live.consumers.insert(consumer.to_owned(), now_ms);
            gone
        };
        for c in gone {
            self.queues.release_member_in(&g.key(false), &c)?;
            self.queues.release_member_in(&g.key(true), &c)?;
        }
        Ok(())
    }

    /// Acks events `consumer` holds: handled, never delivered again;
    /// durable when it returns. Stops at the first id not held.
    pub fn ack(
        &self,
        target: &Target,
        group: &str,
        consumer: &str,
        ids: &[String],
        now_ms: i64,
    ) -> Result<(), SubscriptionError> {
        self.settle(target, group, consumer, ids, NackAction::Skip, "", now_ms)
    }

    /// Nacks events `consumer` holds: `retry` delivers them again, `park`
    /// writes them to the parked stream, `skip` drops them.
    #[allow(clippy::too_many_arguments)]
    pub fn nack(
        &self,
        target: &Target,
        group: &str,
        consumer: &str,
        ids: &[String],
        action: NackAction,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), SubscriptionError> {
        self.settle(target, group, consumer, ids, action, reason, now_ms)
    }

    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        target: &Target,
        group: &str,
        consumer: &str,
        ids: &[String],
        action: NackAction,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), SubscriptionError> {
        check_name(consumer)?;
        let g = self.group(target, group)?;
        let parsed = ids
            .iter()
            .map(|id| parse_ack_id(id))
            .collect::<Result<Vec<_>, _>>()?;
        self.touch(&g, consumer, now_ms)?;
        for (id, (parked, n)) in ids.iter().zip(parsed) {
            let key = g.key(parked);
            let kind = match action {
                NackAction::Retry => AckKind::Release,
                NackAction::Skip => AckKind::Accept,
                NackAction::Park => {
                    self.park_held(&g, &key, id, parked, n, consumer, reason, now_ms)?;
                    AckKind::Accept
                }
            };
            self.queues
                .acknowledge(&key, consumer, n, n, kind)
                .map_err(|e| not_held(e, id, consumer))?;
        }
        Ok(())
    }

    /// Parks the event `n` if `consumer` holds it.
    #[allow(clippy::too_many_arguments)]
    fn park_held(
        &self,
        g: &Group,
        key: &QueueKey,
        id: &str,
        parked: bool,
        n: i64,
        consumer: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), SubscriptionError> {
        // Renewing is the check that the consumer holds it (it writes
        // nothing), and keeps it held while it is parked.
        let lock = g.settings.message_timeout_ms;
        self.queues
            .renew(key, consumer, n, n, lock, now_ms)
            .map_err(|e| not_held(e, id, consumer))?;
        let deliveries = self
            .queues
            .pending(&key.group, now_ms)
            .into_iter()
            .find(|(k, p)| k == key && p.offset == n)
            .map_or(1, |(_, p)| p.deliveries);
        let parked_stream = g.parked_stream();
        let seq = if parked {
            Sequence::Stream(&parked_stream)
        } else {
            g.sequence()
        };
        let event = match self.store.sequence_events(&seq, n, n)?.pop() {
            Some((_, Some(p))) if parked => self.original_of(&p)?,
            Some((_, e)) => e,
            None => None,
        };
        if let Some(event) = event {
            let reason = if reason.is_empty() {
                "parked by a consumer"
            } else {
                reason
            };
            self.park(g, id, &event, reason, deliveries.saturating_sub(1))?;
        }
        Ok(())
    }

    /// Asks for every event parked so far to be delivered to the group
    /// again, each once: the parked stream is truncated up to its end (its
    /// readers then see only events parked later), and the group's
    /// consumers get those events before new ones. Returns how many.
    pub fn replay_parked(&self, target: &Target, group: &str) -> Result<u64, SubscriptionError> {
        let g = self.group(target, group)?;
        let _one = self.writing();
        let parked = g.parked_stream();
        let end = self.store.stream_version(&parked)?.map_or(0, |v| v + 1);
        let done = self.store.truncated_before(&parked);
        if end <= done {
            return Ok(0);
        }
        self.store.truncate_own(&parked, end)?;
        Ok(end - done)
    }

    /// Releases locks that ran out (in every group of the engine) and
    /// lets the engine snapshot when due; a process that serves no HTTP
    /// timer calls it now and then.
    pub fn upkeep(&self, now_ms: i64) -> Result<(), SubscriptionError> {
        self.queues.expire(now_ms)?;
        self.queues.maintain()?;
        Ok(())
    }

    /// The group's consumers, events in flight, checkpoint and parked
    /// events now.
    pub fn info(
        &self,
        target: &Target,
        group: &str,
        now_ms: i64,
    ) -> Result<SubscriptionInfo, SubscriptionError> {
        let g = self.group(target, group)?;
        let main = g.key(false);
        let pending = self.queues.pending(&main.group, now_ms);
        let mut consumers: Vec<ConsumerInfo> = g
            .live()
            .consumers
            .iter()
            .map(|(name, seen)| ConsumerInfo {
                name: name.clone(),
                idle_ms: now_ms.saturating_sub(*seen),
                in_flight: pending.iter().filter(|(_, p)| &p.member == name).count(),
            })
            .collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        let parked_stream = g.parked_stream();
        let parked_end = self
            .store
            .stream_version(&parked_stream)?
            .map_or(0, |v| v + 1);
        let replay_to = self.store.truncated_before(&parked_stream);
        let replayed_from = self.queues.start_offset(&g.key(true)).unwrap_or(0);
        Ok(SubscriptionInfo {
            target: g.target.name(),
            group: g.name.clone(),
            settings: g.settings.clone(),
            consumers,
            in_flight: pending.len(),
            checkpoint: self.queues.start_offset(&main).unwrap_or(g.start),
            last_known: self.store.sequence_bounds(&g.sequence()).1,
            parked: parked_end.saturating_sub(replay_to),
            replaying: (replay_to as i64 - replayed_from).max(0),
            parked_stream,
        })
    }
}
