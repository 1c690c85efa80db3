//! Share groups (KIP-932): members that read the same partitions as
//! competing consumers, each record handed to one of them by the share
//! partition (the acknowledgement engine, `weir-queue`). This file is the
//! membership: who is in a group, what it subscribes to, and which
//! partitions each member fetches from.
//!
//! Epochs as Kafka's share groups have them: the *group epoch* moves when a
//! member joins or leaves, a subscription changes, or a subscribed topic's
//! partitions change; the target assignment is recomputed for it at once
//! (its *assignment epoch*). A share partition may be held by several
//! members, so there is no revocation: a member's next heartbeat takes its
//! new target whole, and its *member epoch* becomes the assignment epoch.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use weir_broker::Broker;

use crate::GroupError;
use crate::consumer_requests::{Assignment, NamedPartitions, TopicId};
use crate::share_assignor::assign_shared;
use crate::share_requests::{
    SHARE_ASSIGNOR, ShareDeparture, ShareGroupDescription, ShareGroupState, ShareMemberDescription,
};

/// Most departures kept for the share data path to drain; older ones are
/// dropped (their records' locks then end by timeout instead).
pub(crate) const DEPARTURES_MAX: usize = 10_000;

#[derive(Debug)]
pub(crate) struct ShareMember {
    pub(crate) id: String,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) topic_names: BTreeSet<String>,
    /// The assignment epoch the member took last.
    pub(crate) epoch: i32,
    /// The epoch before `epoch`: a member whose last answer was lost still
    /// sends it and is answered rather than fenced.
    pub(crate) previous_epoch: i32,
    /// What the member was given at `epoch`.
    pub(crate) assigned: Assignment,
    /// When the session ends unless the member heartbeats.
    pub(crate) expires_ms: i64,
}

impl ShareMember {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            topic_names: BTreeSet::new(),
            epoch: 0,
            previous_epoch: 0,
            assigned: Assignment::new(),
            expires_ms: 0,
        }
    }
}

/// One share group.
#[derive(Debug)]
pub(crate) struct ShareGroup {
    pub(crate) id: String,
    pub(crate) group_epoch: i32,
    /// The epoch `target` was computed for; at most `group_epoch`.
    pub(crate) assignment_epoch: i32,
    /// Member id → the partitions it should fetch from (every member has
    /// an entry).
    pub(crate) target: BTreeMap<String, Assignment>,
    pub(crate) members: BTreeMap<String, ShareMember>,
    /// The subscribed topics as last seen: name → (id, partition count).
    pub(crate) topics: BTreeMap<String, (TopicId, i32)>,
}

impl ShareGroup {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            group_epoch: 0,
            assignment_epoch: 0,
            target: BTreeMap::new(),
            members: BTreeMap::new(),
            topics: BTreeMap::new(),
        }
    }

    pub(crate) fn state(&self) -> ShareGroupState {
        if self.members.is_empty() {
            ShareGroupState::Empty
        } else {
            ShareGroupState::Stable
        }
    }

    pub(crate) fn unknown_member(&self, member: &str) -> GroupError {
        GroupError::UnknownMember {
            group: self.id.clone(),
            member: member.to_owned(),
        }
    }

    pub(crate) fn fenced(&self, member: &ShareMember, given: i32) -> GroupError {
        GroupError::FencedMemberEpoch {
            group: self.id.clone(),
            member: member.id.clone(),
            given,
            current: member.epoch,
        }
    }

    pub(crate) fn remove_member(&mut self, id: &str, reason: &str) -> Option<ShareMember> {
        let member = self.members.remove(id)?;
        self.target.remove(id);
        tracing::info!(group = %self.id, member = %id, reason, "share member removed");
        Some(member)
    }

    /// The subscribed topics that exist now: name → (id, partitions).
    fn resolve_topics(&self, broker: &Broker) -> BTreeMap<String, (TopicId, i32)> {
        let names: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.topic_names.iter())
            .collect();
        names
            .into_iter()
            .filter_map(|name| {
                let topic = broker.topic(name).ok()?;
                let partitions = topic.partition_count() as i32;
                Some((name.clone(), (TopicId(topic.id), partitions)))
            })
            .collect()
    }

    /// Brings the subscribed topics up to date and the target assignment up
    /// to the group epoch, which moves (once) if members changed (`changed`
    /// says how) or the topics did.
    pub(crate) fn refresh(&mut self, broker: &Broker, changed: Option<&str>) {
        let topics = self.resolve_topics(broker);
        let mut reason = changed;
        if topics != self.topics {
            self.topics = topics;
            reason = reason.or(Some("subscribed topics changed"));
        }
        if let Some(reason) = reason {
            self.group_epoch += 1;
            tracing::info!(group = %self.id, epoch = self.group_epoch, reason, "share group epoch");
        }
        if self.assignment_epoch < self.group_epoch {
            self.compute_target();
        }
    }

    fn compute_target(&mut self) {
        let subscriptions: BTreeMap<String, BTreeSet<TopicId>> = self
            .members
            .values()
            .map(|m| {
                let topics = m
                    .topic_names
                    .iter()
                    .filter_map(|name| self.topics.get(name).map(|(id, _)| *id))
                    .collect();
                (m.id.clone(), topics)
            })
            .collect();
        let partitions: BTreeMap<TopicId, i32> = self.topics.values().copied().collect();
        self.target = assign_shared(&subscriptions, &partitions, &self.target);
        self.assignment_epoch = self.group_epoch;
        tracing::info!(
            group = %self.id,
            epoch = self.assignment_epoch,
            members = self.members.len(),
            "share target assignment computed"
        );
    }

    /// Gives a member its target: no revocation step, since a share
    /// partition may have several members at once.
    pub(crate) fn reconcile(&mut self, id: &str) {
        let epoch = self.assignment_epoch;
        let target = self.target.get(id).cloned().unwrap_or_default();
        let m = self.members.get_mut(id).expect("a member");
        if m.epoch != epoch {
            m.previous_epoch = m.epoch;
            m.epoch = epoch;
        }
        m.assigned = target;
    }

    /// The group's invariants: a target per member, and a member at the
    /// assignment epoch holds exactly its target.
    pub(crate) fn check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert!(self.assignment_epoch <= self.group_epoch);
        assert!(
            self.target.keys().eq(self.members.keys()),
            "group {}: targets and members out of step",
            self.id
        );
        for m in self.members.values() {
            assert!(
                m.epoch <= self.assignment_epoch,
                "{}: member ahead",
                self.id
            );
            if m.epoch == self.assignment_epoch {
                assert_eq!(m.assigned, self.target[&m.id], "group {}", self.id);
            }
        }
    }

    pub(crate) fn named(&self, a: &Assignment, broker: &Broker) -> Vec<NamedPartitions> {
        crate::consumer_groups::named_assignment(&self.topics, a, broker)
    }

    pub(crate) fn describe(&self, broker: &Broker) -> ShareGroupDescription {
        ShareGroupDescription {
            group: self.id.clone(),
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: SHARE_ASSIGNOR,
            members: self
                .members
                .values()
                .map(|m| ShareMemberDescription {
                    member_id: m.id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.topic_names.iter().cloned().collect(),
                    assignment: self.named(&m.assigned, broker),
                })
                .collect(),
        }
    }
}

/// Every share group of a coordinator.
#[derive(Debug, Default)]
pub(crate) struct ShareGroups {
    pub(crate) groups: BTreeMap<String, ShareGroup>,
    /// Members gone since the share data path last asked; at most
    /// [`DEPARTURES_MAX`].
    pub(crate) departures: VecDeque<ShareDeparture>,
}

impl ShareGroups {
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Drops an empty group to make room for a new one.
    pub(crate) fn evict_idle(&mut self) -> bool {
        let idle = self
            .groups
            .iter()
            .find(|(_, g)| g.members.is_empty())
            .map(|(k, _)| k.clone());
        idle.is_some_and(|k| self.groups.remove(&k).is_some())
    }

    pub(crate) fn departed(&mut self, group: &str, member_id: &str) {
        if self.departures.len() >= DEPARTURES_MAX {
            self.departures.pop_front();
        }
        self.departures.push_back(ShareDeparture {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
        });
    }

    /// Ends sessions whose time is up; a group that lost members gets a new
    /// target assignment. Returns the earliest session end still ahead.
    pub(crate) fn tick(&mut self, now: i64, broker: &Broker) -> Option<i64> {
        let mut gone = Vec::new();
        for g in self.groups.values_mut() {
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| m.expires_ms <= now)
                .map(|m| m.id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in &expired {
                g.remove_member(id, "session expired");
                gone.push((g.id.clone(), id.clone()));
            }
            g.refresh(broker, Some("a member's session expired"));
            g.check();
        }
        for (group, member) in gone {
            self.departed(&group, &member);
        }
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .map(|m| m.expires_ms)
            .filter(|&at| at > now)
            .min()
    }
}
