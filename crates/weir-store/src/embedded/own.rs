//! Crate-internal calls for the store's own `$` streams and for
//! persistent subscriptions: appends to a `$` stream (the user checks
//! skipped), its truncation, and reads of a subscription's sequence (a
//! stream's versions, a category's n-th event, `$all`'s positions) by
//! ordinal straight from the index.

use super::lifecycle::MetaRecord;
use super::*;

/// The events a persistent subscription follows, numbered from 0 by
/// ordinal: a stream's versions, the n-th event of a category, or the
/// positions of `$all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sequence<'a> {
    Stream(&'a str),
    Category(&'a str),
    All,
}

impl EmbeddedStore {
    /// Appends to one of the store's own `$` streams, durably; a retry with
    /// the same ids (among the recent ones) writes nothing again.
    pub(crate) fn append_own(
        &self,
        stream: &str,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        assert!(stream.starts_with('$') && !stream.starts_with(META_PREFIX));
        let mut st = write_lock(&self.state);
        let last = st.index.version(stream);
        let done = match self.retried(&st.index, stream, ExpectedVersion::Any, last, events)? {
            Some(done) => done,
            None => {
                let none: Vec<Option<Cow<'_, str>>> = vec![None; events.len()];
                self.write_locked(&mut st, stream, events, &none)?
            }
        };
        drop(st);
        self.wait_durable(done.last_position)?;
        Ok(done)
    }

    /// Hides the versions of one of the store's own streams below
    /// `before` from readers (its `truncate_before`), durably.
    pub(crate) fn truncate_own(&self, stream: &str, before: u64) -> Result<(), StoreError> {
        assert!(stream.starts_with('$') && !stream.starts_with(META_PREFIX));
        let record = MetaRecord {
            settings: StreamMetadata {
                truncate_before: Some(before),
                ..StreamMetadata::default()
            },
            deleted_at: None,
        };
        let data = serde_json::to_vec(&record).map_err(|e| StoreError::InvalidMetadata {
            reason: e.to_string(),
        })?;
        let mut st = write_lock(&self.state);
        let done = self.write_system(&mut st, stream, TYPE_METADATA, data)?;
        drop(st);
        self.wait_durable(done.last_position)
    }

    /// A stream's `truncate_before` as readers see it (0 if none).
    pub(crate) fn truncated_before(&self, stream: &str) -> u64 {
        let head = self.head();
        let st = read_lock(&self.state);
        st.index
            .meta_at(stream, head)
            .and_then(|m| m.settings.truncate_before)
            .unwrap_or(0)
    }

    /// The number of the next event of a sequence (every ordinal below is
    /// durable), and the first ordinal still in the log.
    pub(crate) fn sequence_bounds(&self, seq: &Sequence<'_>) -> (i64, i64) {
        let head = self.head();
        let st = read_lock(&self.state);
        let count =
            |list: Option<&Vec<u64>>| list.map_or(0, |l| l.partition_point(|&p| p < head) as i64);
        match seq {
            Sequence::Stream(s) => (0, count(st.index.streams.get(*s))),
            Sequence::Category(c) => (0, count(st.index.categories.get(*c))),
            Sequence::All => (self.log.start_offset().max(0), head as i64),
        }
    }

    /// The ordinal of the first event of a sequence at or after global
    /// `position` (where a subscription that starts from a position
    /// begins).
    pub(crate) fn ordinal_at(&self, seq: &Sequence<'_>, position: u64) -> i64 {
        let st = read_lock(&self.state);
        let at = |list: Option<&Vec<u64>>| {
            list.map_or(0, |l| l.partition_point(|&p| p < position) as i64)
        };
        match seq {
            Sequence::Stream(s) => at(st.index.streams.get(*s)),
            Sequence::Category(c) => at(st.index.categories.get(*c)),
            Sequence::All => position as i64,
        }
    }

    /// The events of ordinals `first..=last` of a sequence, each `None`
    /// where readers may not see it (a `$` stream's event in `$all`, a
    /// deleted stream's in a category). All below the head.
    pub(crate) fn sequence_events(
        &self,
        seq: &Sequence<'_>,
        first: i64,
        last: i64,
    ) -> Result<Vec<(i64, Option<RecordedEvent>)>, StoreError> {
        let head = self.head();
        let positions: Vec<(i64, u64)> = {
            let st = read_lock(&self.state);
            let list = match seq {
                Sequence::Stream(s) => st.index.streams.get(*s),
                Sequence::Category(c) => st.index.categories.get(*c),
                Sequence::All => None,
            };
            (first.max(0)..=last)
                .filter_map(|o| {
                    let p = match seq {
                        Sequence::All => Some(o as u64),
                        _ => list.and_then(|l| l.get(o as usize)).copied(),
                    };
                    p.filter(|&p| p < head).map(|p| (o, p))
                })
                .collect()
        };
        let only: Vec<u64> = positions.iter().map(|&(_, p)| p).collect();
        let events = self.events_at(&only)?;
        let shown: std::collections::HashSet<u64> = match seq {
            Sequence::Stream(_) => only.iter().copied().collect(),
            _ => self
                .visible(events.clone(), head)
                .iter()
                .map(|e| e.position)
                .collect(),
        };
        let by_ordinal: HashMap<i64, u64> = positions.iter().copied().collect();
        let mut found: HashMap<u64, RecordedEvent> =
            events.into_iter().map(|e| (e.position, e)).collect();
        Ok((first.max(0)..=last)
            .map(|o| {
                let e = by_ordinal
                    .get(&o)
                    .and_then(|p| found.remove(p))
                    .filter(|e| shown.contains(&e.position));
                (o, e)
            })
            .collect())
    }

    /// The event at `position`, whatever its stream, if the log has it.
    pub(crate) fn event_at(&self, position: u64) -> Result<Option<RecordedEvent>, StoreError> {
        if position >= self.head() || (position as i64) < self.log.start_offset() {
            return Ok(None);
        }
        Ok(self.events_at(&[position])?.pop())
    }
}
