//! Committing offsets through the coordinator: who may commit for a group
//! (a member of its current generation, or anyone while it has none), member
//! and admin commits, the same check for offsets committed in a
//! transaction (KIP-447), and deleting a group's offsets.

use super::*;

/// Who is committing: a consumer through OffsetCommit, or a transactional
/// producer through TxnOffsetCommit on a consumer's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CommitBy {
    Member,
    /// The commit waits for the transaction's end, so a rebalance under
    /// way does not refuse it (Kafka answers REBALANCE_IN_PROGRESS only to
    /// OffsetCommit, and the Java producer takes that code as fatal), and
    /// it is no sign of the member's life.
    Transaction,
}

impl Coordinator {
    /// A share group keeps no committed offsets: its place in a partition
    /// is its share-partition state (Kafka answers GROUP_ID_NOT_FOUND to
    /// any commit).
    fn refuse_share_group(&self, group: &str) -> Result<(), GroupError> {
        if self.is_share_group(group) {
            return Err(GroupError::WrongGroupType {
                group: group.to_owned(),
                expected: "classic",
            });
        }
        Ok(())
    }

    /// Checks that a member may commit for `group` (OffsetCommit): a
    /// current member of the current generation, or, with generation -1
    /// and no member id, anyone while the group has no members (a simple
    /// consumer, or an admin resetting offsets).
    #[allow(clippy::too_many_arguments)] // one per field of the request
    pub(super) fn check_commit(
        &self,
        groups: &mut BTreeMap<String, Group>,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        by: CommitBy,
        now: i64,
    ) -> Result<(), GroupError> {
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let Some(g) = groups.get_mut(group) else {
            if generation < 0 {
                return Ok(());
            }
            return Err(GroupError::UnknownMember {
                group: group.to_owned(),
                member: member_id.to_owned(),
            });
        };
        if generation < 0 && g.state == GroupState::Empty {
            return Ok(());
        }
        g.check_member(member_id, instance_id)?;
        g.check_generation(generation)?;
        if by == CommitBy::Transaction {
            return Ok(());
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress {
                group: group.to_owned(),
            });
        }
        g.members.get_mut(member_id).expect("checked").touch(now);
        Ok(())
    }

    /// OffsetCommit: checks the member, then writes the offsets; they are
    /// acknowledged (and visible to OffsetFetch) once `wait` returns.
    pub fn commit(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<PendingCommit, GroupError> {
        let now = self.clock.now_ms();
        let mut groups = self.lock();
        self.refuse_share_group(group)?;
        // A consumer-protocol group checks member epochs instead.
        if let Some(written) = self.consumer_commit(group, member_id, generation, || {
            self.offsets.commit_nowait(group, offsets)
        }) {
            return written;
        }
        self.check_commit(
            &mut groups,
            group,
            member_id,
            instance_id,
            generation,
            CommitBy::Member,
            now,
        )?;
        // Written under the lock, so a rebalance cannot slip between the
        // check and the write.
        self.offsets.commit_nowait(group, offsets)
    }

    /// TxnOffsetCommit's group check (KIP-447): a producer committing a
    /// consumer's offsets in a transaction names the consumer's member id,
    /// generation and instance id, and a consumer that is no longer a
    /// member of the current generation (a zombie) is refused with the
    /// errors OffsetCommit gives. Generation -1 with no member and no
    /// instance id is the form without group metadata (TxnOffsetCommit
    /// before v3, or a producer that does not pass it), accepted as Kafka
    /// does. The offsets are written when the transaction commits.
    pub fn check_txn_commit(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut groups = self.lock();
        self.refuse_share_group(group)?;
        if let Some(checked) = self.consumer_commit(group, member_id, generation, || Ok(())) {
            return checked;
        }
        self.check_commit(
            &mut groups,
            group,
            member_id,
            instance_id,
            generation,
            CommitBy::Transaction,
            now,
        )
    }

    /// Commits offsets as an administrator resetting them: only while
    /// the group has no members (classic or consumer protocol), else
    /// [`GroupError::NonEmptyGroup`]. The check and the write happen under
    /// the coordinator's locks, so no member joins between them.
    pub fn admin_commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<PendingCommit, GroupError> {
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let groups = self.lock();
        let consumer = self.consumer.lock().unwrap_or_else(|e| e.into_inner());
        let classic_active = groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty() || !g.pending.is_empty());
        if classic_active || consumer.in_use(group) {
            return Err(GroupError::NonEmptyGroup {
                group: group.to_owned(),
            });
        }
        self.refuse_share_group(group)?;
        self.offsets.commit_nowait(group, offsets)
    }

    /// Committed offsets of `group` (OffsetFetch).
    pub fn committed(&self, group: &str) -> BTreeMap<TopicPartition, CommittedOffset> {
        self.offsets.committed(group)
    }

    /// OffsetDelete: drops committed offsets of partitions, except those of
    /// topics the group's members are subscribed to, which are returned
    /// (Kafka's GROUP_SUBSCRIBED_TO_TOPIC). `subscribed` tells which topics
    /// a member's protocol metadata subscribes to (the encoding is the
    /// client protocol's, known to the Kafka layer).
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
        subscribed: impl Fn(&[u8]) -> Vec<String>,
    ) -> Result<(PendingCommit, Vec<TopicPartition>), GroupError> {
        let groups = self.lock();
        let consumer_topics = self.consumer_subscribed_topics(group);
        let topics: BTreeSet<String> = match groups.get(group) {
            _ if consumer_topics.is_some() => consumer_topics.expect("checked"),
            Some(g) => g
                .members
                .values()
                .flat_map(|m| subscribed(&m.metadata_for(&g.protocol_name)))
                .collect(),
            None if !self.offsets.has_commits(group) => {
                return Err(GroupError::GroupNotFound {
                    group: group.to_owned(),
                });
            }
            None => BTreeSet::new(),
        };
        let (refused, deleted): (Vec<TopicPartition>, Vec<TopicPartition>) = partitions
            .iter()
            .cloned()
            .partition(|tp| topics.contains(&tp.topic));
        Ok((self.offsets.delete_offsets(group, &deleted)?, refused))
    }
}
