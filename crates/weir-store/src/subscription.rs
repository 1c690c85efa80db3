//! Subscriptions: to a stream, a category or all events, from a
//! checkpoint, with server-side filters by event type and stream prefix.
//!
//! A subscription pulls: each [`Subscription::poll`] reads the next events
//! after its checkpoint from the indexes and the log, and moves the
//! checkpoint past them. Catching up and being live are the same loop,
//! so there is no switch at which an event could be missed or delivered
//! twice: an event is delivered once it is durable, in global order (a
//! stream's in version order). Between polls that found nothing,
//! [`Subscription::changed`] resolves when new events became durable
//! (runtime-agnostic), and [`Subscription::wait`] blocks for it.
//!
//! Memory stays bounded by the page each poll asks for: a slow subscriber
//! is simply further behind in the log ([`Subscription::lag`] says how
//! far), never a growing buffer. A transport that pushes (the HTTP API's
//! Server-Sent Events) keeps a bounded queue per client and, when it is
//! full, drops the client back to catching up from its checkpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Direction, EmbeddedStore, EventStore, RecordedEvent, StoreError};

/// What a subscription follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every event, in global order.
    All,
    /// One stream's events, in version order.
    Stream(String),
    /// The events of a category's streams (`account` for `account-…`), in
    /// global order.
    Category(String),
}

/// Server-side filters; empty means everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events of these types.
    pub event_types: Vec<String>,
    /// Only events of streams whose id starts with this.
    pub stream_prefix: Option<String>,
}

impl Filter {
    fn keeps(&self, e: &RecordedEvent) -> bool {
        (self.event_types.is_empty() || self.event_types.contains(&e.event_type))
            && self
                .stream_prefix
                .as_ref()
                .is_none_or(|p| e.stream.starts_with(p.as_str()))
    }
}

/// Where a subscription is: the next global position (all, category) or
/// stream version (stream) it will deliver.
pub type Checkpoint = u64;

/// A subscription; see the module docs.
#[derive(Debug)]
pub struct Subscription {
    store: Arc<EmbeddedStore>,
    target: Target,
    filter: Filter,
    next: Checkpoint,
}

impl EmbeddedStore {
    /// Subscribes to `target` from `from` (a position for all and
    /// categories, a version for a stream; 0 is the beginning).
    pub fn subscribe(
        self: &Arc<Self>,
        target: Target,
        filter: Filter,
        from: Checkpoint,
    ) -> Subscription {
        self.stats.subscribed();
        Subscription {
            store: self.clone(),
            target,
            filter,
            next: from,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.store.stats.unsubscribed();
    }
}

impl Subscription {
    /// The next events, at most `max_count`, oldest first; empty when
    /// there is nothing new yet.
    pub fn poll(&mut self, max_count: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = max_count.max(1);
        loop {
            // One raw page, then the filters; a page the filters empty
            // still moves the checkpoint, so the next page is read.
            let page = match &self.target {
                Target::All if !self.filter.event_types.is_empty() => self.merged_types(max)?,
                Target::All => self.store.read_all(self.next, Direction::Forward, max)?,
                Target::Category(c) => {
                    self.store
                        .read_category(c, self.next, Direction::Forward, max)?
                }
                Target::Stream(s) => {
                    match self
                        .store
                        .read_stream(s, self.next, Direction::Forward, max)
                    {
                        Ok(page) => page,
                        Err(StoreError::StreamNotFound { .. }) => Vec::new(),
                        Err(e) => return Err(e),
                    }
                }
            };
            let Some(last) = page.last() else {
                return Ok(Vec::new());
            };
            self.next = match self.target {
                Target::Stream(_) => last.version + 1,
                _ => last.position + 1,
            };
            let kept: Vec<RecordedEvent> =
                page.into_iter().filter(|e| self.filter.keeps(e)).collect();
            if !kept.is_empty() {
                return Ok(kept);
            }
        }
    }

    /// All events of the filter's types from the checkpoint, merged from
    /// the type indexes in global order.
    fn merged_types(&self, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut all = Vec::new();
        for t in &self.filter.event_types {
            all.extend(
                self.store
                    .read_type(t, self.next, Direction::Forward, max)?,
            );
        }
        all.sort_by_key(|e| e.position);
        all.dedup_by_key(|e| e.position);
        all.truncate(max);
        Ok(all)
    }

    /// The next position or version this subscription delivers; store it
    /// with what was processed and subscribe from it to resume.
    pub fn checkpoint(&self) -> Checkpoint {
        self.next
    }

    /// How many events of the global order lie between the checkpoint and
    /// the head (for a stream subscription: the stream's versions).
    pub fn lag(&self) -> u64 {
        match &self.target {
            Target::Stream(s) => {
                let next = self
                    .store
                    .stream_version(s)
                    .ok()
                    .flatten()
                    .map_or(0, |v| v + 1);
                next.saturating_sub(self.next)
            }
            _ => self.store.head_position().saturating_sub(self.next),
        }
    }

    /// The current change epoch: read it before a poll, and pass it to
    /// [`Self::changed`] if the poll found nothing, so no append slips
    /// between the two.
    pub fn epoch(&self) -> u64 {
        self.store.broker().data_dir().changes().epoch()
    }

    /// Resolves once something new became durable after `epoch`.
    pub fn changed(&self, epoch: u64) -> weir_log::Changed {
        self.store.broker().data_dir().changes().changed(epoch)
    }

    /// Polls, and when nothing is there, blocks until something new is
    /// durable or `timeout` passes (for callers without an async runtime).
    pub fn wait(
        &mut self,
        max_count: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let epoch = self.epoch();
            let events = self.poll(max_count)?;
            if !events.is_empty() {
                return Ok(events);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let changes = self.store.broker().data_dir().changes();
            if left.is_zero() || !changes.wait(epoch, left) {
                return Ok(Vec::new());
            }
        }
    }
}
