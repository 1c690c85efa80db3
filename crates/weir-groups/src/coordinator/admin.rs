//! What the group admin APIs read and change: a group's description, the
//! list of groups, deleting a group, and its lag per partition.

use super::*;

impl Coordinator {
    /// The state a group is in, `Dead` if unknown.
    pub fn describe(&self, group: &str) -> GroupDescription {
        let groups = self.lock();
        match groups.get(group) {
            Some(g) => g.describe(),
            None => GroupDescription {
                group: group.to_owned(),
                state: if !self.offsets.has_commits(group) {
                    GroupState::Dead
                } else {
                    GroupState::Empty
                },
                protocol_type: String::new(),
                protocol_name: String::new(),
                generation: 0,
                members: Vec::new(),
            },
        }
    }

    /// Every group with members or committed offsets, with its state and
    /// protocol type (ListGroups).
    pub fn list(&self) -> Vec<(String, GroupState, String)> {
        let mut out: BTreeMap<String, (GroupState, String)> = self
            .offsets
            .groups()
            .into_iter()
            .map(|g| (g, (GroupState::Empty, String::new())))
            .collect();
        for (id, g) in self.lock().iter() {
            if g.state == GroupState::Empty && !out.contains_key(id) && g.pending.is_empty() {
                // An empty group that never committed is gone for
                // every purpose but its name.
                continue;
            }
            out.insert(id.clone(), (g.state, g.protocol_type.clone()));
        }
        out.into_iter().map(|(id, (s, t))| (id, s, t)).collect()
    }

    /// DeleteGroups: only a group without members; its committed offsets
    /// go with it.
    pub fn delete_group(&self, group: &str) -> Result<PendingCommit, GroupError> {
        let mut groups = self.lock();
        if let Some(deleted) = self.consumer_delete_group(group) {
            deleted?;
            return self.offsets.delete_group(group);
        }
        if let Some(deleted) = self.share_delete_group(group) {
            deleted?;
            return self.offsets.delete_group(group);
        }
        let known = groups.get(group);
        if let Some(g) = known
            && (!g.members.is_empty() || !g.pending.is_empty())
        {
            return Err(GroupError::NonEmptyGroup {
                group: group.to_owned(),
            });
        }
        if known.is_none() && !self.offsets.has_commits(group) {
            return Err(GroupError::GroupNotFound {
                group: group.to_owned(),
            });
        }
        groups.remove(group);
        self.offsets.delete_group(group)
    }

    /// Lag of a group per partition it has committed: the high watermark
    /// (what consumers may read) minus the committed offset.
    pub fn lag(&self, group: &str) -> Vec<PartitionLag> {
        self.offsets
            .committed(group)
            .into_iter()
            .map(|(tp, c)| {
                let (log_start, high_watermark) =
                    match self.broker.partition(&tp.topic, tp.partition) {
                        Ok(log) => (Some(log.start_offset()), Some(log.high_watermark())),
                        Err(_) => (None, None),
                    };
                PartitionLag {
                    lag: high_watermark.map(|h| (h - c.offset).max(0)),
                    topic: tp.topic,
                    partition: tp.partition,
                    committed: c.offset,
                    log_start,
                    high_watermark,
                }
            })
            .collect()
    }
}

/// How far a group is behind on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    /// `None` when the topic or partition no longer exists.
    pub log_start: Option<i64>,
    pub high_watermark: Option<i64>,
    pub lag: Option<i64>,
}
