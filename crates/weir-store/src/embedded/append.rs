//! Appends in the embedded engine: the expected-version check, the write
//! under the index lock, the wait for durability, and the recognition of
//! an idempotent retry (the same event ids again).

use super::*;

pub(super) fn check_expected(
    stream: &str,
    expected: ExpectedVersion,
    current: Option<u64>,
) -> Result<(), StoreError> {
    let ok = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => current.is_none(),
        ExpectedVersion::Exists => current.is_some(),
        ExpectedVersion::Exact(v) => current == Some(v),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected,
            actual: current,
        })
    }
}

impl EmbeddedStore {
    /// Writes `events` after the stream's last version, under the write
    /// lock, and indexes them (each under its correlation id, read from its
    /// metadata by the caller before it took the lock); the caller waits
    /// for durability.
    pub(super) fn write_locked(
        &self,
        st: &mut State,
        stream: &str,
        events: &[NewEvent],
        correlations: &[Option<Cow<'_, str>>],
    ) -> Result<AppendResult, StoreError> {
        assert_eq!(events.len(), correlations.len(), "a correlation per event");
        st.index.meta_durable(self.head());
        let first_version = st.index.version(stream).map_or(0, |v| v + 1);
        let now = self.clock.now_ms().max(st.last_recorded_ms);
        let mut bytes = codec::encode(stream, first_version, events, now);
        let info = self.log.append_nowait(&mut bytes)?;
        let first_position = info.base_offset as u64;
        for (i, e) in events.iter().enumerate() {
            let added = st.index.add(
                stream,
                first_version + i as u64,
                &e.id,
                &e.event_type,
                correlations[i].as_deref(),
                first_position + i as u64,
            );
            if let Err(err) = added {
                st.index.truncate(first_position);
                return Err(err);
            }
            if stream.starts_with('$') {
                let position = first_position + i as u64;
                apply_system(&mut st.index, stream, position, &e.event_type, &e.data);
            }
        }
        st.last_recorded_ms = now;
        Ok(AppendResult {
            first_version,
            last_version: first_version + events.len() as u64 - 1,
            first_position,
            last_position: info.last_offset as u64,
        })
    }

    /// Checks and writes an append (or finds it was made before: a retry);
    /// the caller waits for it to be durable.
    pub(super) fn append_unsynced(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        validate_stream(stream)?;
        if events.is_empty() {
            return Err(StoreError::InvalidEvent {
                id: String::new(),
                reason: "an append has at least one event".to_owned(),
            });
        }
        validate_events(events)?;
        if let Some(validator) = self.validator.get() {
            for (index, e) in events.iter().enumerate() {
                validator
                    .check(stream, e)
                    .map_err(|reason| StoreError::SchemaRefused {
                        stream: stream.to_owned(),
                        index,
                        id: e.id.clone(),
                        reason,
                    })?;
            }
        }
        // Outside the lock: a byte search per event, and a parse only for
        // metadata that names a correlation.
        let correlations: Vec<_> = events.iter().map(|e| correlation_of(&e.metadata)).collect();
        let mut st = write_lock(&self.state);
        if st.index.meta.get(stream).is_some_and(|m| m.tombstoned) {
            return Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        let last = st.index.version(stream);
        // A retry's first attempt may still be on its way to the disk: the
        // caller waits for it like for a new append.
        if let Some(done) = self.retried(&st.index, stream, expected, last, events)? {
            return Ok(done);
        }
        check_expected(stream, expected, st.index.effective_version(stream))?;
        self.write_locked(&mut st, stream, events, &correlations)
    }

    pub(super) fn wait_durable(&self, last_position: u64) -> Result<(), StoreError> {
        if self.log.fsync_policy() == FsyncPolicy::Always {
            self.log.wait_durable(last_position as i64 + 1)?;
        }
        Ok(())
    }

    /// The id of the event at `position`, if it is readable.
    pub(super) fn id_at(&self, position: u64) -> Result<Option<String>, StoreError> {
        Ok(self.events_at(&[position])?.pop().map(|e| e.id))
    }

    /// Whether `events` were appended to `stream` before (a retry), and
    /// if so what that append did. An append that matches only in part is
    /// an error that says so.
    pub(super) fn retried(
        &self,
        index: &Index,
        stream: &str,
        expected: ExpectedVersion,
        current: Option<u64>,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, StoreError> {
        let n = events.len() as u64;
        let conflict = |reason: &str| StoreError::IdempotencyConflict {
            stream: stream.to_owned(),
            ids: events.iter().map(|e| e.id.clone()).collect(),
            reason: reason.to_owned(),
        };
        // Where each id was recorded, if it was.
        let mut found = Vec::with_capacity(events.len());
        match expected {
            ExpectedVersion::Exact(_) | ExpectedVersion::NoStream => {
                // Where the first attempt's events went: after the expected
                // version, or (no stream) after a soft delete's last version.
                let start = match expected {
                    ExpectedVersion::Exact(v) => match v.checked_add(1) {
                        Some(start) => start,
                        // No stream has a version past u64::MAX.
                        None => return Ok(None),
                    },
                    _ => index
                        .meta
                        .get(stream)
                        .and_then(|m| m.deleted_at)
                        .map_or(0, |d| d + 1),
                };
                let have = current.map_or(0, |c| c + 1);
                if have <= start {
                    return Ok(None);
                }
                let positions = &index.streams[stream];
                for (i, e) in events.iter().enumerate() {
                    let version = start + i as u64;
                    let Some(&position) = positions.get(version as usize) else {
                        found.push(None);
                        continue;
                    };
                    // The event at that version, whatever was recorded
                    // since under the same id elsewhere. Events not yet
                    // durable are all among the recent ids.
                    let same = match index.recent_id_at(position) {
                        Some(id) => id == e.id,
                        None if position >= self.head() => false,
                        None => self.id_at(position)?.as_deref() == Some(e.id.as_str()),
                    };
                    found.push(same.then_some((version, position)));
                }
            }
            ExpectedVersion::Any | ExpectedVersion::Exists => {
                for e in events {
                    found.push(match index.recent(&e.id) {
                        Some(r) if r.stream == stream => Some((r.version, r.position)),
                        // Recorded in another stream: never a retry of this.
                        Some(_) => Some((u64::MAX, u64::MAX)),
                        None => None,
                    });
                }
            }
        }
        let matched = found.iter().filter(|f| f.is_some()).count() as u64;
        if matched == 0 {
            return Ok(None);
        }
        let all = found.iter().flatten().copied().collect::<Vec<_>>();
        let consecutive = all
            .windows(2)
            .all(|w| w[0].0.checked_add(1) == Some(w[1].0) && w[1].1 > w[0].1);
        if matched < n || !consecutive || all.iter().any(|f| f.0 == u64::MAX) {
            return Err(conflict(
                "only some of the ids were appended before, or elsewhere",
            ));
        }
        let (first, last) = (all[0], all[all.len() - 1]);
        Ok(Some(AppendResult {
            first_version: first.0,
            last_version: last.0,
            first_position: first.1,
            last_position: last.1,
        }))
    }
}
