//! The store's in-memory indexes over the events log: each stream's
//! versions to positions, each category's and event type's positions in
//! global order, each correlation's positions (events whose metadata names
//! a `correlationid`, see `correlation.rs`), and a bounded window of recent event ids for idempotent
//! retries of `any`/`exists` appends. They are rebuilt from the log (the
//! log is the truth); a saved copy lets a reopen replay only the tail.

use std::collections::{HashMap, VecDeque};

use crate::{StoreError, StreamMetadata, category_of};

/// What the store keeps about a stream beside its events: the settings
/// from its metadata stream, whether it was soft-deleted (and at which
/// version), and whether it is tombstoned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StreamMeta {
    pub settings: StreamMetadata,
    /// The stream's last version when it was soft-deleted; it reads as
    /// absent until written again.
    pub deleted_at: Option<u64>,
    pub tombstoned: bool,
}

impl StreamMeta {
    /// The first version readers see, given the stream's last version.
    pub fn first_visible(&self, last: u64) -> u64 {
        let tb = self.settings.truncate_before.unwrap_or(0);
        match self.settings.max_count {
            Some(n) => tb.max((last + 1).saturating_sub(n)),
            None => tb,
        }
    }

    /// Whether readers see the event with `version` recorded at
    /// `recorded_ms` when the stream's last version is `last`.
    pub fn shows(&self, last: u64, version: u64, recorded_ms: i64, now_ms: i64) -> bool {
        !self.tombstoned
            && version >= self.first_visible(last)
            && self
                .settings
                .max_age_ms
                // An age past i64::MAX ms is "forever", not a negative age
                // that would hide every event.
                .is_none_or(|age| {
                    recorded_ms >= now_ms.saturating_sub(i64::try_from(age).unwrap_or(i64::MAX))
                })
    }
}

/// How many recent event ids an `any` or `exists` append is checked
/// against for an idempotent retry.
pub const RECENT_IDS_WINDOW: usize = 100_000;

/// Where an event id was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub stream: String,
    pub version: u64,
    pub position: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Stream → position of each version (versions start at 0, dense).
    pub streams: HashMap<String, Vec<u64>>,
    pub categories: HashMap<String, Vec<u64>>,
    pub types: HashMap<String, Vec<u64>>,
    /// Correlation id → positions, in global order: only events whose
    /// metadata names one (`correlation::correlation_of`).
    pub correlations: HashMap<String, Vec<u64>>,
    recent: HashMap<String, Recorded>,
    /// Ids in the order recorded, with the position they were recorded at.
    recent_order: VecDeque<(String, u64)>,
    /// Streams with metadata, deletions or a tombstone, as writers see
    /// them: every system event applied, durable or not.
    pub meta: HashMap<String, StreamMeta>,
    /// What each system event not yet known durable replaced, in log
    /// order: (its position, the stream, the meta before it). Readers undo
    /// those at or past the head, so they see only durable settings.
    meta_undo: VecDeque<(u64, String, Option<StreamMeta>)>,
    /// Every log record below this position is indexed.
    pub next_position: u64,
}

/// Adds `position` to `key`'s list, copying the key only if it is new.
fn push(lists: &mut HashMap<String, Vec<u64>>, key: &str, position: u64) {
    match lists.get_mut(key) {
        Some(list) => list.push(position),
        None => {
            lists.insert(key.to_owned(), vec![position]);
        }
    }
}

impl Index {
    /// The stream's version as writers see it: `None` if it has no
    /// events or was soft-deleted and not written since.
    pub fn effective_version(&self, stream: &str) -> Option<u64> {
        let last = self.version(stream);
        match self.meta.get(stream) {
            Some(m) if m.deleted_at.is_some() && m.deleted_at == last => None,
            _ => last,
        }
    }

    /// The stream's last version, `None` if it has no events.
    pub fn version(&self, stream: &str) -> Option<u64> {
        self.streams
            .get(stream)
            .and_then(|p| (p.len() as u64).checked_sub(1))
    }

    pub fn recent(&self, id: &str) -> Option<&Recorded> {
        self.recent.get(id)
    }

    /// The id of the event at `position`, if it is among the recent ids
    /// (every event not yet durable is).
    pub fn recent_id_at(&self, position: u64) -> Option<&str> {
        let i = self
            .recent_order
            .binary_search_by_key(&position, |(_, at)| *at)
            .ok()?;
        Some(self.recent_order[i].0.as_str())
    }

    /// Changes a stream's meta through a system event at `position`,
    /// remembering the old value until the event is durable.
    pub fn change_meta(
        &mut self,
        stream: &str,
        position: u64,
        change: impl FnOnce(&mut StreamMeta),
    ) {
        let before = self.meta.get(stream).cloned();
        self.meta_undo
            .push_back((position, stream.to_owned(), before));
        change(self.meta.entry(stream.to_owned()).or_default());
    }

    /// Forgets the old values of system events below `head` (durable).
    pub fn meta_durable(&mut self, head: u64) {
        while self.meta_undo.front().is_some_and(|(p, _, _)| *p < head) {
            self.meta_undo.pop_front();
        }
    }

    /// The newest system event at or past `head` (not yet durable), if
    /// any.
    pub fn meta_in_flight(&self, head: u64) -> Option<u64> {
        self.meta_undo
            .back()
            .map(|(p, _, _)| *p)
            .filter(|&p| p >= head)
    }

    /// A stream's meta as readers see it: as of the durable events below
    /// `head`. `None` if it has none.
    pub fn meta_at(&self, stream: &str, head: u64) -> Option<&StreamMeta> {
        // The oldest change not yet durable holds the durable value.
        let pending = self
            .meta_undo
            .iter()
            .find(|(p, s, _)| *p >= head && s == stream);
        match pending {
            Some((_, _, before)) => before.as_ref(),
            None => self.meta.get(stream),
        }
    }

    /// Adds one event (with its correlation id, if its metadata names
    /// one). Versions of a stream must come in order.
    pub fn add(
        &mut self,
        stream: &str,
        version: u64,
        id: &str,
        event_type: &str,
        correlation: Option<&str>,
        position: u64,
    ) -> Result<(), StoreError> {
        if position < self.next_position {
            return Err(StoreError::Corrupt {
                reason: format!("position {position} indexed twice"),
            });
        }
        let have = self.streams.get(stream).map_or(0, Vec::len);
        if have as u64 != version {
            return Err(StoreError::Corrupt {
                reason: format!(
                    "stream {stream} has {have} events, but the event at {position} has version {version}"
                ),
            });
        }
        push(&mut self.streams, stream, position);
        if let Some(category) = category_of(stream) {
            push(&mut self.categories, category, position);
        }
        push(&mut self.types, event_type, position);
        if let Some(correlation) = correlation {
            push(&mut self.correlations, correlation, position);
        }
        // System events (of `$` streams) are never retried by clients.
        if !stream.starts_with('$') {
            self.remember(id, stream, version, position);
        }
        self.next_position = position + 1;
        Ok(())
    }

    fn remember(&mut self, id: &str, stream: &str, version: u64, position: u64) {
        if self.recent_order.len() >= RECENT_IDS_WINDOW
            && let Some((old, at)) = self.recent_order.pop_front()
            && self.recent.get(&old).is_some_and(|r| r.position == at)
        {
            // (An id recorded again later stays, under its newer entry.)
            self.recent.remove(&old);
        }
        self.recent.insert(
            id.to_owned(),
            Recorded {
                stream: stream.to_owned(),
                version,
                position,
            },
        );
        self.recent_order.push_back((id.to_owned(), position));
    }

    /// The recent ids, oldest first (for the saved index).
    pub fn recent_ids(&self) -> impl Iterator<Item = (&str, &Recorded)> {
        self.recent_order.iter().filter_map(|(id, at)| {
            self.recent
                .get(id)
                .filter(|r| r.position == *at)
                .map(|r| (id.as_str(), r))
        })
    }

    pub fn restore_recent(&mut self, id: &str, recorded: &Recorded) {
        self.remember(id, &recorded.stream, recorded.version, recorded.position);
    }

    /// Drops everything at or after `position` (an append that was written
    /// but failed before it was durable).
    pub fn truncate(&mut self, position: u64) {
        if position >= self.next_position {
            return;
        }
        for list in self
            .streams
            .values_mut()
            .chain(self.categories.values_mut())
            .chain(self.types.values_mut())
            .chain(self.correlations.values_mut())
        {
            let keep = list.partition_point(|&p| p < position);
            list.truncate(keep);
        }
        self.streams.retain(|_, p| !p.is_empty());
        self.categories.retain(|_, p| !p.is_empty());
        self.types.retain(|_, p| !p.is_empty());
        self.correlations.retain(|_, p| !p.is_empty());
        self.recent.retain(|_, r| r.position < position);
        self.recent_order.retain(|(_, at)| *at < position);
        while self
            .meta_undo
            .back()
            .is_some_and(|(p, _, _)| *p >= position)
        {
            let (_, stream, before) = self.meta_undo.pop_back().expect("checked");
            match before {
                Some(m) => self.meta.insert(stream, m),
                None => self.meta.remove(&stream),
            };
        }
        self.next_position = position;
    }
}
