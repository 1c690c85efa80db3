//! The model the event store is checked against: events in a vector by
//! position, each stream's versions, settings, deletes, recent ids and
//! snapshots, with the answers the store must give.

use super::*;

#[derive(Debug, Clone, Default)]
pub(super) struct MMeta {
    pub(super) settings: StreamMetadata,
    pub(super) deleted_at: Option<u64>,
    pub(super) tombstoned: bool,
}

/// The model: the events in global order (a position is an index), each
/// stream's positions by version (metadata streams `$$…` included, as
/// they take positions too), stream settings and deletes, the newest
/// record of each event id, and each stream's newest snapshot.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) events: Vec<RecordedEvent>,
    pub(super) streams: HashMap<String, Vec<u64>>,
    pub(super) meta: HashMap<String, MMeta>,
    pub(super) recent: HashMap<String, (String, u64, u64)>,
    pub(super) last_recorded_ms: i64,
    pub(super) snapshots: HashMap<String, Snapshot>,
}

impl Model {
    pub(super) fn head(&self) -> u64 {
        self.events.len() as u64
    }

    pub(super) fn meta(&self, stream: &str) -> MMeta {
        self.meta.get(stream).cloned().unwrap_or_default()
    }

    /// The stream's last version, deleted or not.
    pub(super) fn last(&self, stream: &str) -> Option<u64> {
        self.streams
            .get(stream)
            .and_then(|l| (l.len() as u64).checked_sub(1))
    }

    /// The version writers see: none after a soft delete until written again.
    pub(super) fn effective(&self, stream: &str) -> Option<u64> {
        let last = self.last(stream);
        match self.meta(stream).deleted_at {
            Some(d) if Some(d) == last => None,
            _ => last,
        }
    }

    pub(super) fn resolve(&self, stream: &str, e: &Exp) -> ExpectedVersion {
        match e {
            Exp::Any => ExpectedVersion::Any,
            Exp::NoStream => ExpectedVersion::NoStream,
            Exp::Exists => ExpectedVersion::Exists,
            Exp::Current => self
                .effective(stream)
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
            Exp::Off(d) => {
                let base = self.last(stream).unwrap_or(0) as i64;
                ExpectedVersion::Exact((base + i64::from(*d)).max(0) as u64)
            }
            Exp::Max => ExpectedVersion::Exact(u64::MAX),
        }
    }

    pub(super) fn check_expected(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<(), Fail> {
        let current = self.effective(stream);
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::Exists => current.is_some(),
            ExpectedVersion::Exact(v) => current == Some(v),
        };
        if ok {
            Ok(())
        } else {
            Err(Fail::Wrong(current))
        }
    }

    pub(super) fn first_visible(m: &MMeta, last: u64) -> u64 {
        let tb = m.settings.truncate_before.unwrap_or(0);
        m.settings
            .max_count
            .map_or(tb, |n| tb.max((last + 1).saturating_sub(n)))
    }

    pub(super) fn young_enough(m: &MMeta, e: &RecordedEvent, now: i64) -> bool {
        m.settings
            .max_age_ms
            .is_none_or(|age| e.recorded_ms >= now - age as i64)
    }

    /// Whether reads of the global order, categories and types show `e`.
    pub(super) fn shows(&self, e: &RecordedEvent, now: i64) -> bool {
        if e.stream.starts_with('$') {
            return false;
        }
        let m = self.meta(&e.stream);
        let last = self.last(&e.stream).expect("the event's stream has events");
        !m.tombstoned
            && e.version >= Self::first_visible(&m, last)
            && Self::young_enough(&m, e, now)
    }

    /// Appends events (the store's own or a client's) after the stream's
    /// last version.
    pub(super) fn write(&mut self, stream: &str, events: &[NewEvent], now: i64) -> AppendResult {
        let first_version = self.last(stream).map_or(0, |v| v + 1);
        let first_position = self.head();
        let recorded_ms = now.max(self.last_recorded_ms);
        self.last_recorded_ms = recorded_ms;
        for (i, e) in events.iter().enumerate() {
            let (version, position) = (first_version + i as u64, first_position + i as u64);
            self.events.push(RecordedEvent {
                stream: stream.to_owned(),
                version,
                position,
                id: e.id.clone(),
                event_type: e.event_type.clone(),
                data: e.data.clone(),
                content_type: e.content_type.clone(),
                metadata: e.metadata.clone(),
                recorded_ms,
                trace: e.trace.clone(),
            });
            self.streams
                .entry(stream.to_owned())
                .or_default()
                .push(position);
            if !stream.starts_with('$') {
                self.recent
                    .insert(e.id.clone(), (stream.to_owned(), version, position));
            }
        }
        let n = events.len() as u64;
        AppendResult {
            first_version,
            last_version: first_version + n - 1,
            first_position,
            last_position: first_position + n - 1,
        }
    }

    /// One event of the stream's metadata stream (its content is the
    /// store's business; reads never show it).
    pub(super) fn write_system(&mut self, stream: &str, event_type: &str, now: i64) {
        let meta_stream = format!("$${stream}");
        let version = self.last(&meta_stream).map_or(0, |v| v + 1);
        let event = NewEvent {
            id: format!("{meta_stream}@{version}"),
            event_type: event_type.to_owned(),
            data: Vec::new(),
            content_type: "application/json".to_owned(),
            metadata: Vec::new(),
            trace: None,
        };
        self.write(&meta_stream, &[event], now);
    }

    /// Whether an append repeats an earlier one, as the design document
    /// states it: for an exact version or `NoStream`, the ids at the
    /// versions the first attempt took; for `Any` and `Exists`, where each
    /// id was last recorded.
    pub(super) fn retried(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, Fail> {
        let found: Vec<Option<(u64, u64)>> = match expected {
            ExpectedVersion::Exact(_) | ExpectedVersion::NoStream => {
                let start = match expected {
                    // No stream reaches a version past u64::MAX.
                    ExpectedVersion::Exact(v) => match v.checked_add(1) {
                        Some(start) => start,
                        None => return Ok(None),
                    },
                    _ => self.meta(stream).deleted_at.map_or(0, |d| d + 1),
                };
                let list = self.streams.get(stream).map_or(&[][..], Vec::as_slice);
                if list.len() as u64 <= start {
                    return Ok(None);
                }
                events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let version = start + i as u64;
                        // The event at that version is the first attempt's
                        // if it has the id, whatever was recorded under the
                        // same id elsewhere since.
                        list.get(version as usize)
                            .filter(|&&p| self.events[p as usize].id == e.id)
                            .map(|&p| (version, p))
                    })
                    .collect()
            }
            ExpectedVersion::Any | ExpectedVersion::Exists => events
                .iter()
                .map(|e| match self.recent.get(&e.id) {
                    Some((s, v, p)) if s == stream => Some((*v, *p)),
                    Some(_) => Some((u64::MAX, u64::MAX)),
                    None => None,
                })
                .collect(),
        };
        let all: Vec<(u64, u64)> = found.iter().flatten().copied().collect();
        if all.is_empty() {
            return Ok(None);
        }
        let consecutive = all
            .windows(2)
            .all(|w| w[0].0.checked_add(1) == Some(w[1].0) && w[1].1 > w[0].1);
        if all.len() < events.len() || !consecutive || all.iter().any(|f| f.0 == u64::MAX) {
            return Err(Fail::Conflict);
        }
        Ok(Some(AppendResult {
            first_version: all[0].0,
            last_version: all[all.len() - 1].0,
            first_position: all[0].1,
            last_position: all[all.len() - 1].1,
        }))
    }

    pub(super) fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        now: i64,
    ) -> Result<AppendResult, Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        if let Some(done) = self.retried(stream, expected, events)? {
            return Ok(done);
        }
        self.check_expected(stream, expected)?;
        Ok(self.write(stream, events, now))
    }

    pub(super) fn delete(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        now: i64,
    ) -> Result<(), Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        self.check_expected(stream, expected)?;
        let last = self.effective(stream).ok_or(Fail::NotFound)?;
        let m = self.meta.entry(stream.to_owned()).or_default();
        m.settings.truncate_before = Some(last + 1);
        m.deleted_at = Some(last);
        self.write_system(stream, "$metadata", now);
        Ok(())
    }

    pub(super) fn tombstone(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        now: i64,
    ) -> Result<(), Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        self.check_expected(stream, expected)?;
        self.meta.entry(stream.to_owned()).or_default().tombstoned = true;
        self.write_system(stream, "$tombstone", now);
        Ok(())
    }

    pub(super) fn set_metadata(
        &mut self,
        stream: &str,
        settings: &StreamMetadata,
        now: i64,
    ) -> Result<(), Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        if settings.max_count == Some(0) {
            return Err(Fail::InvalidMetadata);
        }
        let m = self.meta.entry(stream.to_owned()).or_default();
        m.settings = settings.clone();
        // New settings never bring back what a soft delete removed.
        if let Some(d) = m.deleted_at {
            let tb = m.settings.truncate_before.map_or(d + 1, |t| t.max(d + 1));
            m.settings.truncate_before = Some(tb);
        }
        self.write_system(stream, "$metadata", now);
        Ok(())
    }

    pub(super) fn stream_version(&self, stream: &str) -> Result<Option<u64>, Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        Ok(self.effective(stream))
    }

    pub(super) fn stream_metadata(&self, stream: &str) -> Result<StreamMetadata, Fail> {
        let m = self.meta(stream);
        if m.tombstoned {
            return Err(Fail::Deleted);
        }
        Ok(m.settings)
    }

    /// A stream's events readers may see (settings, deletes and age
    /// applied), oldest first.
    pub(super) fn visible_stream(
        &self,
        stream: &str,
        now: i64,
    ) -> Result<Vec<&RecordedEvent>, Fail> {
        let m = self.meta(stream);
        if m.tombstoned {
            return Err(Fail::Deleted);
        }
        let last = self.last(stream).ok_or(Fail::NotFound)?;
        let first = Self::first_visible(&m, last);
        if first > last {
            return Err(Fail::NotFound);
        }
        Ok(self.streams[stream][first as usize..]
            .iter()
            .map(|&p| &self.events[p as usize])
            .filter(|e| Self::young_enough(&m, e, now))
            .collect())
    }

    pub(super) fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
        now: i64,
    ) -> Result<Vec<RecordedEvent>, Fail> {
        let visible = self.visible_stream(stream, now)?;
        Ok(match direction {
            Direction::Forward => visible
                .into_iter()
                .filter(|e| e.version >= from)
                .take(max)
                .cloned()
                .collect(),
            Direction::Backward => visible
                .into_iter()
                .rev()
                .filter(|e| e.version <= from)
                .take(max)
                .cloned()
                .collect(),
        })
    }

    /// The visible events `keep` selects, in global order from `from`.
    pub(super) fn global(
        &self,
        keep: impl Fn(&RecordedEvent) -> bool,
        from: u64,
        direction: Direction,
        max: usize,
        now: i64,
    ) -> Vec<RecordedEvent> {
        let selected = |e: &&RecordedEvent| self.shows(e, now) && keep(e);
        match direction {
            Direction::Forward => self
                .events
                .iter()
                .filter(|e| e.position >= from)
                .filter(selected)
                .take(max)
                .cloned()
                .collect(),
            Direction::Backward => self
                .events
                .iter()
                .rev()
                .filter(|e| e.position <= from)
                .filter(selected)
                .take(max)
                .cloned()
                .collect(),
        }
    }

    pub(super) fn save_snapshot(
        &mut self,
        stream: &str,
        version: u64,
        data: Vec<u8>,
        now: i64,
    ) -> Result<(), Fail> {
        let current = self.stream_version(stream)?;
        if current.is_none_or(|c| version > c) {
            return Err(Fail::Wrong(current));
        }
        let newer = self
            .snapshots
            .get(stream)
            .is_none_or(|s| version >= s.version);
        if newer {
            let snapshot = Snapshot {
                stream: stream.to_owned(),
                version,
                snapshot_type: "State".to_owned(),
                data,
                recorded_ms: now,
            };
            self.snapshots.insert(stream.to_owned(), snapshot);
        }
        Ok(())
    }

    /// What loading an aggregate returns: the newest snapshot, unless the
    /// versions it stands for are hidden, and the events after it.
    pub(super) fn load(
        &self,
        stream: &str,
        max: usize,
        now: i64,
    ) -> Result<(Option<Snapshot>, Vec<RecordedEvent>), Fail> {
        let read = |from| match self.read_stream(stream, from, Direction::Forward, max, now) {
            Err(Fail::NotFound) => Ok(Vec::new()),
            other => other,
        };
        let found = self.snapshots.get(stream).cloned();
        let from = found.as_ref().map_or(0, |s| s.version + 1);
        let events = read(from)?;
        let first_visible = match self.read_stream(stream, 0, Direction::Forward, 1, now) {
            Ok(first) => first.first().map(|e| e.version),
            Err(Fail::NotFound) => None,
            Err(e) => return Err(e),
        };
        let snapshot = found.filter(|s| first_visible.is_some_and(|v| v <= s.version + 1));
        if snapshot.is_none() && from > 0 {
            return Ok((None, read(0)?));
        }
        Ok((snapshot, events))
    }
}
