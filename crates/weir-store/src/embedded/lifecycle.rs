//! Stream lifecycle in the embedded engine: system events in `$$` streams
//! (`$metadata`, `$tombstone`) applied to the index, and soft delete,
//! tombstone and stream metadata written as such events.

use super::*;

/// The data of a `$metadata` event.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct MetaRecord {
    #[serde(flatten)]
    pub(super) settings: StreamMetadata,
    /// Set by a soft delete: the stream's last version then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) deleted_at: Option<u64>,
}

/// Applies a system event (of a `$$` stream, at `position`) to the stream
/// it is about.
pub(super) fn apply_system(
    index: &mut Index,
    stream: &str,
    position: u64,
    event_type: &str,
    data: &[u8],
) {
    let Some(target) = stream.strip_prefix(META_PREFIX) else {
        return;
    };
    match event_type {
        TYPE_METADATA => match serde_json::from_slice::<MetaRecord>(data) {
            Ok(record) => index.change_meta(target, position, |meta| {
                meta.settings = record.settings;
                meta.deleted_at = record.deleted_at;
            }),
            Err(e) => tracing::warn!(stream, %e, "skipping unreadable stream metadata"),
        },
        TYPE_TOMBSTONE => index.change_meta(target, position, |meta| meta.tombstoned = true),
        _ => {}
    }
}

impl EmbeddedStore {
    /// Appends one event to a stream's metadata stream, under the lock.
    pub(super) fn write_system(
        &self,
        st: &mut State,
        stream: &str,
        event_type: &str,
        data: Vec<u8>,
    ) -> Result<AppendResult, StoreError> {
        let meta_stream = format!("{META_PREFIX}{stream}");
        let version = st.index.version(&meta_stream).map_or(0, |v| v + 1);
        let event = NewEvent {
            id: format!("{meta_stream}@{version}"),
            event_type: event_type.to_owned(),
            data,
            content_type: "application/json".to_owned(),
            metadata: Vec::new(),
            trace: None,
        };
        // System events carry no metadata, so no correlation.
        self.write_locked(st, &meta_stream, &[event], &[None])
    }

    /// Checks that `stream` may be changed: valid, not tombstoned, at
    /// `expected`. Returns its metadata.
    pub(super) fn lifecycle_check(
        st: &State,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<StreamMeta, StoreError> {
        validate_stream(stream)?;
        let meta = st.index.meta.get(stream).cloned().unwrap_or_default();
        if meta.tombstoned {
            return Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        check_expected(stream, expected, st.index.effective_version(stream))?;
        Ok(meta)
    }

    /// Soft delete: the stream reads as absent, and a later append (with
    /// `NoStream` or `Any`) writes it again, its versions continuing. The
    /// events stay in the log until a scavenge (a later feature).
    pub(super) fn delete_stream_impl(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<(), StoreError> {
        let mut st = write_lock(&self.state);
        let meta = Self::lifecycle_check(&st, stream, expected)?;
        let Some(last) = st.index.effective_version(stream) else {
            return Err(StoreError::StreamNotFound {
                stream: stream.to_owned(),
            });
        };
        let mut settings = meta.settings;
        settings.truncate_before = Some(last + 1);
        let record = MetaRecord {
            settings,
            deleted_at: Some(last),
        };
        let data = serde_json::to_vec(&record).expect("metadata serializes");
        let done = self.write_system(&mut st, stream, TYPE_METADATA, data)?;
        drop(st);
        self.wait_durable(done.last_position)
    }

    /// Tombstone: the stream is deleted for good; reads and appends fail
    /// with [`StoreError::StreamDeleted`].
    pub(super) fn tombstone_stream_impl(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<(), StoreError> {
        let mut st = write_lock(&self.state);
        Self::lifecycle_check(&st, stream, expected)?;
        let done = self.write_system(&mut st, stream, TYPE_TOMBSTONE, b"{}".to_vec())?;
        drop(st);
        self.wait_durable(done.last_position)
    }

    /// Sets a stream's settings (`max_age`, `max_count`, `truncate_before`),
    /// enforced on every read from now on. A stream need not exist yet.
    pub(super) fn set_stream_metadata_impl(
        &self,
        stream: &str,
        settings: &StreamMetadata,
    ) -> Result<(), StoreError> {
        let mut st = write_lock(&self.state);
        let meta = Self::lifecycle_check(&st, stream, ExpectedVersion::Any)?;
        if settings.max_count == Some(0) {
            return Err(StoreError::InvalidMetadata {
                reason: "max_count must be at least 1".to_owned(),
            });
        }
        let mut settings = settings.clone();
        if let Some(deleted_at) = meta.deleted_at {
            // New settings never bring back what a soft delete removed.
            let floor = deleted_at + 1;
            settings.truncate_before =
                Some(settings.truncate_before.map_or(floor, |t| t.max(floor)));
        }
        let record = MetaRecord {
            settings,
            deleted_at: meta.deleted_at,
        };
        let data = serde_json::to_vec(&record).expect("metadata serializes");
        let done = self.write_system(&mut st, stream, TYPE_METADATA, data)?;
        drop(st);
        self.wait_durable(done.last_position)
    }

    /// A stream's settings.
    pub(super) fn stream_metadata_impl(&self, stream: &str) -> Result<StreamMetadata, StoreError> {
        let head = self.head();
        let st = read_lock(&self.state);
        match st.index.meta_at(stream, head) {
            Some(m) if m.tombstoned => Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            }),
            Some(m) => Ok(m.settings.clone()),
            None => Ok(StreamMetadata::default()),
        }
    }
}
