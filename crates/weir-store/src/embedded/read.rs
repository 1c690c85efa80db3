//! Reads in the embedded engine: events by position from the log, pages
//! of an index, filtered reads of `$all`, as-of reads and loads with the
//! newest snapshot; only what the head makes visible.

use super::*;

/// Calls `f` with every record of the whole batches in `bytes`.
pub(crate) fn for_each_record(
    bytes: &[u8],
    mut f: impl FnMut(&batch::Record<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut at = 0;
    let mut walker = batch::RecordWalker::default();
    while at < bytes.len() {
        let header = BatchHeader::parse(&bytes[at..]).map_err(|e| StoreError::Corrupt {
            reason: format!("batch header in the events log: {e}"),
        })?;
        let end = at + header.total_bytes();
        if end > bytes.len() {
            break;
        }
        if header.compression() != 0 {
            return Err(StoreError::Corrupt {
                reason: format!(
                    "a compressed batch in the events log at {}",
                    header.base_offset
                ),
            });
        }
        walker.walk(&bytes[at + batch::HEADER_BYTES..end], &header, &mut f)?;
        at = end;
    }
    Ok(())
}

impl EmbeddedStore {
    /// An aggregate as a repository loads it: the stream's newest snapshot
    /// and up to `max_events` events after it (all of them from version 0
    /// when there is none). A snapshot of versions that a soft delete or
    /// `truncate_before` hides is not used.
    pub(super) fn load_impl(&self, stream: &str, max_events: usize) -> Result<Loaded, StoreError> {
        let found = {
            let guard = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            guard
                .1
                .get(stream)
                .map(|(_, position)| snapshots::read(&guard.0, position))
                .transpose()?
        };
        let from = found.as_ref().map_or(0, |s| s.version + 1);
        let events = match self.read_stream(stream, from, Direction::Forward, max_events) {
            Ok(events) => events,
            Err(StoreError::StreamNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        // The snapshot stands for versions up to its own; if readers may
        // not see those any more, neither may the loader.
        let first_visible = match self.read_stream(stream, 0, Direction::Forward, 1) {
            Ok(first) => first.first().map(|e| e.version),
            Err(StoreError::StreamNotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let snapshot = found.filter(|s| first_visible.is_some_and(|v| v <= s.version + 1));
        if snapshot.is_none() && from > 0 {
            let events = match self.read_stream(stream, 0, Direction::Forward, max_events) {
                Ok(events) => events,
                Err(StoreError::StreamNotFound { .. }) => Vec::new(),
                Err(e) => return Err(e),
            };
            return Ok(Loaded {
                snapshot: None,
                events,
            });
        }
        Ok(Loaded { snapshot, events })
    }

    /// Drops events readers may not see: those of system streams, and
    /// those their stream's settings, deletion or tombstone hide.
    pub(super) fn visible(&self, events: Vec<RecordedEvent>, head: u64) -> Vec<RecordedEvent> {
        let now = self.clock.now_ms();
        let st = read_lock(&self.state);
        let last = |stream: &str| {
            st.index
                .streams
                .get(stream)
                .and_then(|p| (p.partition_point(|&pos| pos < head) as u64).checked_sub(1))
        };
        events
            .into_iter()
            .filter(|e| {
                !e.stream.starts_with('$')
                    && st.index.meta_at(&e.stream, head).is_none_or(|m| {
                        m.shows(last(&e.stream).unwrap_or(0), e.version, e.recorded_ms, now)
                    })
            })
            .collect()
    }

    /// A stream's events as they were at a past position or time, oldest
    /// first, at most `max_count`.
    pub(super) fn read_stream_as_of_impl(
        &self,
        stream: &str,
        as_of: AsOf,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut started = false;
        as_of.collect(max_count, 1000, |from| {
            match self.read_stream(stream, from, Direction::Forward, 1000) {
                Ok(page) => {
                    started = true;
                    Ok(page)
                }
                // Hidden from a later version on (max_count, a delete):
                // what was read so far is the answer.
                Err(StoreError::StreamNotFound { .. }) if started => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        })
    }

    /// Reads the events at `positions` (each below the head), in the
    /// order given. Neighbouring positions share one read.
    pub(super) fn events_at(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut cache: HashMap<u64, RecordedEvent> = HashMap::new();
        let mut out = Vec::with_capacity(positions.len());
        for &p in positions {
            if let Some(e) = cache.remove(&p) {
                out.push(e);
                continue;
            }
            cache.clear();
            // The batch that holds `p` (and the events of its append).
            let read = self.log.read(p as i64, 1)?;
            for_each_record(&read.bytes, |r| {
                if r.offset as u64 >= p {
                    cache.insert(r.offset as u64, codec::decode(r)?);
                }
                Ok(())
            })?;
            match cache.remove(&p) {
                Some(e) => out.push(e),
                None => {
                    return Err(StoreError::Corrupt {
                        reason: format!("the index points at {p}, which the log does not hold"),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Positions from an index list (global order) starting at `from` in
    /// `direction`, below the head, at most `max_count`.
    pub(super) fn page(
        list: &[u64],
        head: u64,
        from: u64,
        direction: Direction,
        max_count: usize,
    ) -> Vec<u64> {
        let visible = &list[..list.partition_point(|&p| p < head)];
        let max = max_count.min(READ_COUNT_MAX);
        match direction {
            Direction::Forward => {
                let start = visible.partition_point(|&p| p < from);
                visible[start..].iter().take(max).copied().collect()
            }
            Direction::Backward => {
                let end = visible.partition_point(|&p| p <= from);
                visible[..end].iter().rev().take(max).copied().collect()
            }
        }
    }

    /// Pages through `fetch` (a raw read in global order) from `from`,
    /// keeping what readers may see, until `max_count` events or the end.
    pub(super) fn filtered(
        &self,
        from: u64,
        direction: Direction,
        max_count: usize,
        mut fetch: impl FnMut(u64, usize) -> Result<Vec<RecordedEvent>, StoreError>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.head();
        let max = max_count.min(READ_COUNT_MAX);
        let mut out = Vec::new();
        let mut at = from;
        while out.len() < max {
            let want = max - out.len();
            let page = fetch(at, want)?;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            let short = page.len() < want;
            let page = self.visible(page, head);
            if out.is_empty() {
                out = page;
            } else {
                out.extend(page);
            }
            match direction {
                Direction::Forward => at = last + 1,
                Direction::Backward if last == 0 => break,
                Direction::Backward => at = last - 1,
            }
            if short {
                break;
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// Events of an index list (category or type) in global order.
    pub(super) fn read_indexed(
        &self,
        list: impl for<'a> Fn(&'a Index) -> Option<&'a Vec<u64>>,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.head();
        let positions = {
            let st = read_lock(&self.state);
            list(&st.index)
                .map(|l| Self::page(l, head, from_position, direction, max_count))
                .unwrap_or_default()
        };
        self.events_at(&positions)
    }

    pub(super) fn read_all_raw(
        &self,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.head();
        let start = self.log.start_offset().max(0) as u64;
        let max = max_count.min(READ_COUNT_MAX);
        let mut out = Vec::with_capacity(max.min(head.saturating_sub(from_position) as usize));
        match direction {
            Direction::Forward => {
                let mut at = from_position.max(start);
                while at < head && out.len() < max {
                    let read = self.log.read(at as i64, SCAN_BYTES)?;
                    if read.bytes.is_empty() {
                        break;
                    }
                    for_each_record(&read.bytes, |r| {
                        let p = r.offset as u64;
                        if p >= at && p < head && out.len() < max {
                            out.push(codec::decode(r)?);
                        }
                        Ok(())
                    })?;
                    at = read.next_offset as u64;
                }
            }
            Direction::Backward => {
                // From the batch holding `at`, newest first, then the batch
                // before it.
                let mut at = from_position.min(head.saturating_sub(1));
                while head > 0 && at >= start && out.len() < max {
                    let read = self.log.read(at as i64, 1)?;
                    let mut batch = Vec::new();
                    for_each_record(&read.bytes, |r| {
                        batch.push(codec::decode(r)?);
                        Ok(())
                    })?;
                    let Some(base) = batch.first().map(|e| e.position) else {
                        break;
                    };
                    out.extend(
                        batch
                            .into_iter()
                            .rev()
                            .filter(|e| e.position <= at)
                            .take(max - out.len()),
                    );
                    if base == 0 || base <= start {
                        break;
                    }
                    at = base - 1;
                }
            }
        }
        Ok(out)
    }
}
