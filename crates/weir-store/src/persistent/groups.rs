//! The subscription groups: their settings as events of the store's own
//! stream `$persistentsubscriptions` (created, updated, deleted; folded at
//! open), and the in-memory state each live group keeps beside the
//! engine's (its consumers, and for `pinned` which consumer owns which
//! stream).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use weir_queue::{QueueIo, QueueKey, Queues};

use super::{
    SETTINGS_STREAM, SUBSCRIPTION_GROUPS_MAX, SubscriptionError, SubscriptionSettings, Target,
    check_name,
};
use crate::embedded::Sequence;
use crate::{EmbeddedStore, EventStore, NewEvent};

const TYPE_CREATED: &str = "PersistentSubscriptionCreated";
const TYPE_UPDATED: &str = "PersistentSubscriptionUpdated";
const TYPE_DELETED: &str = "PersistentSubscriptionDeleted";

/// The data of a settings event.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SettingsRecord {
    target: String,
    group: String,
    /// The position of the group's `Created` event: its engine state is
    /// keyed by it, so a group deleted and created again starts afresh.
    #[serde(default)]
    generation: u64,
    /// The first ordinal of the target's sequence the group delivers.
    #[serde(default)]
    start: i64,
    #[serde(default)]
    settings: SubscriptionSettings,
}

/// One live group.
#[derive(Debug)]
pub(crate) struct Group {
    pub target: Target,
    pub name: String,
    pub generation: u64,
    pub start: i64,
    pub settings: SubscriptionSettings,
    pub live: Arc<Mutex<Live>>,
}

/// What a group keeps in memory only: it starts empty after a restart,
/// and consumers make themselves known again by reading.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Consumer → when it was last heard from (a read, an ack, a nack).
    pub consumers: HashMap<String, i64>,
    /// `pinned`: the stream of each ordinal in the window (read once,
    /// dropped once below the group's checkpoint).
    pub streams: BTreeMap<i64, String>,
}

impl Group {
    pub(crate) fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine key of the group's main sequence (partition 0) or of
    /// its parked events being replayed (partition 1).
    pub(crate) fn key(&self, parked: bool) -> QueueKey {
        QueueKey {
            group: format!("{}::{}@{}", self.target.name(), self.name, self.generation),
            topic: crate::EVENTS_TOPIC.to_owned(),
            partition: i32::from(parked),
        }
    }

    pub(crate) fn sequence(&self) -> Sequence<'_> {
        match &self.target {
            Target::Stream(s) => Sequence::Stream(s),
            Target::Category(c) => Sequence::Category(c),
            Target::All => Sequence::All,
        }
    }

    pub(crate) fn parked_stream(&self) -> String {
        self.target.parked_stream(&self.name)
    }
}

type Groups = BTreeMap<(Target, String), Arc<Group>>;

/// Every persistent-subscription group of one store, handing events out
/// through the acknowledgement engine's manager `queues` (which the caller
/// opened over its storage, and whose lock timer it runs).
pub struct PersistentSubscriptions<Io> {
    pub(crate) store: Arc<EmbeddedStore>,
    pub(crate) queues: Arc<Queues<Io>>,
    groups: RwLock<Groups>,
    /// Held while settings are written, so they are written in order.
    writing: Mutex<()>,
}

impl<Io> std::fmt::Debug for PersistentSubscriptions<Io> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentSubscriptions")
            .finish_non_exhaustive()
    }
}

impl<Io: QueueIo> PersistentSubscriptions<Io> {
    /// Reads every group's settings from the store.
    pub fn open(
        store: Arc<EmbeddedStore>,
        queues: Arc<Queues<Io>>,
    ) -> Result<Self, SubscriptionError> {
        let mut groups = Groups::new();
        // The engine groups of deleted subscription groups.
        let mut deleted = Vec::new();
        let mut from = 0;
        loop {
            let page =
                match store.read_stream(SETTINGS_STREAM, from, crate::Direction::Forward, 1_000) {
                    Ok(page) => page,
                    Err(crate::StoreError::StreamNotFound { .. }) => break,
                    Err(e) => return Err(e.into()),
                };
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            for e in &page {
                let Ok(r) = serde_json::from_slice::<SettingsRecord>(&e.data) else {
                    tracing::warn!(
                        position = e.position,
                        "skipping unreadable subscription settings"
                    );
                    continue;
                };
                let Ok(target) = Target::parse(&r.target) else {
                    continue;
                };
                let k = (target.clone(), r.group.clone());
                match e.event_type.as_str() {
                    TYPE_DELETED => {
                        if let Some(g) = groups.remove(&k) {
                            deleted.push(g.key(false).group);
                        }
                    }
                    TYPE_CREATED | TYPE_UPDATED => {
                        let generation = if e.event_type == TYPE_CREATED {
                            e.position
                        } else {
                            r.generation
                        };
                        groups.insert(
                            k,
                            Arc::new(Group {
                                target,
                                name: r.group,
                                generation,
                                start: r.start,
                                settings: r.settings,
                                live: Arc::default(),
                            }),
                        );
                    }
                    _ => {}
                }
            }
        }
        // Engine state a delete did not get to remove before a crash.
        for engine_group in deleted {
            if !queues.partitions(&engine_group).is_empty() {
                queues.delete_group(&engine_group)?;
            }
        }
        Ok(Self {
            store,
            queues,
            groups: RwLock::new(groups),
            writing: Mutex::new(()),
        })
    }

    /// Held while settings or replays are written, so they go in order.
    pub(crate) fn writing(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn queues(&self) -> &Arc<Queues<Io>> {
        &self.queues
    }

    pub(crate) fn group(
        &self,
        target: &Target,
        group: &str,
    ) -> Result<Arc<Group>, SubscriptionError> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(target.clone(), group.to_owned()))
            .cloned()
            .ok_or_else(|| SubscriptionError::NotFound {
                target: target.name(),
                group: group.to_owned(),
            })
    }

    /// Every group: target, name and settings, in order.
    pub fn list(&self) -> Vec<(Target, String, SubscriptionSettings)> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|g| (g.target.clone(), g.name.clone(), g.settings.clone()))
            .collect()
    }

    /// A group's settings.
    pub fn settings(
        &self,
        target: &Target,
        group: &str,
    ) -> Result<SubscriptionSettings, SubscriptionError> {
        Ok(self.group(target, group)?.settings.clone())
    }

    /// Creates a group; it starts at `settings.start_from` (or the end
    /// now). Durable when it returns.
    pub fn create(
        &self,
        target: &Target,
        group: &str,
        settings: &SubscriptionSettings,
    ) -> Result<(), SubscriptionError> {
        check_name(group)?;
        settings.validate()?;
        let _w = self.writing();
        let k = (target.clone(), group.to_owned());
        let count = {
            let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
            if groups.contains_key(&k) {
                return Err(SubscriptionError::Exists {
                    target: target.name(),
                    group: group.to_owned(),
                });
            }
            groups.len()
        };
        if count >= SUBSCRIPTION_GROUPS_MAX {
            return Err(SubscriptionError::TooManyGroups {
                max: SUBSCRIPTION_GROUPS_MAX,
            });
        }
        let probe = Group {
            target: target.clone(),
            name: group.to_owned(),
            generation: 0,
            start: 0,
            settings: settings.clone(),
            live: Arc::default(),
        };
        let seq = probe.sequence();
        let start = match settings.start_from {
            None => self.store.sequence_bounds(&seq).1,
            Some(v) => match seq {
                Sequence::Stream(_) => v.min(i64::MAX as u64) as i64,
                _ => self.store.ordinal_at(&seq, v),
            },
        };
        let mut record = SettingsRecord {
            target: target.name(),
            group: group.to_owned(),
            generation: 0,
            start,
            settings: settings.clone(),
        };
        let done = self.write(TYPE_CREATED, &record)?;
        record.generation = done;
        self.put(k, record, Arc::default());
        Ok(())
    }

    /// Changes a group's settings (its start stays); consumers see them at
    /// their next call.
    pub fn update(
        &self,
        target: &Target,
        group: &str,
        settings: &SubscriptionSettings,
    ) -> Result<(), SubscriptionError> {
        settings.validate()?;
        let _w = self.writing();
        let old = self.group(target, group)?;
        let mut settings = settings.clone();
        settings.start_from = old.settings.start_from;
        let record = SettingsRecord {
            target: target.name(),
            group: group.to_owned(),
            generation: old.generation,
            start: old.start,
            settings,
        };
        self.write(TYPE_UPDATED, &record)?;
        self.put((target.clone(), group.to_owned()), record, old.live.clone());
        Ok(())
    }

    /// Deletes a group: its consumers are refused from now on, and its
    /// engine state is deleted. That state is keyed by the group's
    /// generation, so a group created again under the same name starts
    /// afresh whatever is left.
    pub fn delete(&self, target: &Target, group: &str) -> Result<(), SubscriptionError> {
        let _w = self.writing();
        let old = self.group(target, group)?;
        let record = SettingsRecord {
            target: target.name(),
            group: group.to_owned(),
            generation: old.generation,
            start: old.start,
            settings: old.settings.clone(),
        };
        self.write(TYPE_DELETED, &record)?;
        self.groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(target.clone(), group.to_owned()));
        // Then its engine state (both partitions); a crash before this is
        // finished at the next open.
        self.queues.delete_group(&old.key(false).group)?;
        Ok(())
    }

    /// Writes one settings event durably; returns its position.
    fn write(&self, event_type: &str, record: &SettingsRecord) -> Result<u64, SubscriptionError> {
        let data = serde_json::to_vec(record).map_err(|e| SubscriptionError::InvalidSettings {
            reason: e.to_string(),
        })?;
        // Unique while `writing` is held: every write moves the head.
        let id = format!("psub@{}", self.store.head());
        let done = self
            .store
            .append_own(SETTINGS_STREAM, &[NewEvent::json(id, event_type, data)])?;
        Ok(done.first_position)
    }

    fn put(&self, k: (Target, String), record: SettingsRecord, live: Arc<Mutex<Live>>) {
        let group = Arc::new(Group {
            target: k.0.clone(),
            name: record.group,
            generation: record.generation,
            start: record.start,
            settings: record.settings,
            live,
        });
        self.groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, group);
    }
}
