//! One group of the classic protocol as a state machine: its members
//! (with their parked JoinGroup and SyncGroup), static members, member ids
//! handed out and not yet used, and the moves between Kafka's states
//! (`Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`). The
//! [`crate::Coordinator`] holds one per group id and drives it.

use std::collections::{BTreeMap, BTreeSet};

use crate::GroupError;
use crate::requests::{
    GroupDescription, GroupState, JoinRequest, JoinResponse, JoinedMember, MemberDescription,
    Reply, SyncResponse,
};

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) protocols: Vec<(String, Vec<u8>)>,
    pub(crate) assignment: Vec<u8>,
    /// A parked JoinGroup.
    pub(crate) join: Option<Reply<JoinResponse>>,
    /// A parked SyncGroup.
    pub(crate) sync: Option<Reply<SyncResponse>>,
    /// When the session ends unless the member is heard from.
    pub(crate) expires_ms: i64,
    /// Order of joining: the oldest member leads.
    pub(crate) seq: u64,
}

impl Member {
    pub(crate) fn metadata_for(&self, protocol: &str) -> Vec<u8> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub(crate) fn touch(&mut self, now: i64) {
        self.expires_ms = now + i64::from(self.session_timeout_ms);
    }
}

#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: String,
    pub(crate) protocol_name: String,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id of static members.
    pub(crate) statics: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with when they lapse.
    pub(crate) pending: BTreeMap<String, i64>,
    /// When the current rebalance ends whoever has not joined.
    pub(crate) rebalance_deadline_ms: i64,
    /// The first rebalance of an empty group waits until the first time,
    /// pushed back by each new member up to the second.
    pub(crate) initial_delay: Option<(i64, i64)>,
}

impl Group {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol_name: String::new(),
            leader: None,
            members: BTreeMap::new(),
            statics: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay: None,
        }
    }

    pub(crate) fn unknown_member(&self, member: &str) -> GroupError {
        GroupError::UnknownMember {
            group: self.id.clone(),
            member: member.to_owned(),
        }
    }

    /// Checks that `member_id` is a current member, and that a static
    /// member's instance id still maps to it.
    pub(crate) fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = instance_id
            && let Some(current) = self.statics.get(instance)
            && current != member_id
        {
            return Err(GroupError::FencedInstance {
                group: self.id.clone(),
                instance: instance.to_owned(),
            });
        }
        if !self.members.contains_key(member_id) {
            return Err(self.unknown_member(member_id));
        }
        Ok(())
    }

    pub(crate) fn check_generation(&self, generation: i32) -> Result<(), GroupError> {
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                group: self.id.clone(),
                given: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    /// Protocols every member supports.
    pub(crate) fn common_protocols(&self) -> BTreeSet<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return BTreeSet::new();
        };
        let mut common: BTreeSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            common.retain(|name| m.protocols.iter().any(|(n, _)| n == name));
        }
        common
    }

    /// Kafka's choice: each member votes for its most preferred protocol
    /// that all support; the most votes win (ties to the name first in
    /// order, so the choice is stable).
    pub(crate) fn choose_protocol(&self) -> Option<String> {
        let common = self.common_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| common.contains(n)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|&(_, v)| v == best)
            .map(|(n, _)| n.to_owned())
    }

    /// Whether a joining member's protocols fit the group's.
    pub(crate) fn check_protocols(&self, req: &JoinRequest) -> Result<(), GroupError> {
        let inconsistent = |reason: String| GroupError::InconsistentProtocol {
            group: self.id.clone(),
            reason,
        };
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(inconsistent(
                "a member must name a protocol type and at least one protocol".to_owned(),
            ));
        }
        let others: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.id != req.member_id)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        if req.protocol_type != self.protocol_type {
            return Err(inconsistent(format!(
                "protocol type {:?} differs from the group's {:?}",
                req.protocol_type, self.protocol_type
            )));
        }
        let shared = req.protocols.iter().any(|(name, _)| {
            others
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        });
        if !shared {
            return Err(inconsistent(
                "none of the member's protocols is supported by every other member".to_owned(),
            ));
        }
        Ok(())
    }

    /// Starts a rebalance: members must join again (Stable or
    /// CompletingRebalance → PreparingRebalance).
    pub(crate) fn prepare_rebalance(&mut self, now: i64, initial_delay_ms: i32, reason: &str) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for the old generation's assignment learn that
            // a new one is on its way.
            for m in self.members.values_mut() {
                if let Some(sync) = m.sync.take() {
                    let _ = sync.send(Err(GroupError::RebalanceInProgress {
                        group: self.id.clone(),
                    }));
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        let timeout = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.rebalance_deadline_ms = now + timeout;
        self.initial_delay = (was_empty && initial_delay_ms > 0)
            .then(|| (now + i64::from(initial_delay_ms), now + timeout));
        if self.state != GroupState::PreparingRebalance {
            tracing::info!(group = %self.id, generation = self.generation, reason, "rebalancing");
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// Ends the join phase if every member has joined again, or the
    /// rebalance timed out: members that did not join are dropped, the
    /// generation advances, and every parked JoinGroup is answered.
    pub(crate) fn try_complete_join(&mut self, now: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some((until, _)) = self.initial_delay
            && now < until
        {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join.is_some()) && self.pending.is_empty();
        if !all_joined && now < self.rebalance_deadline_ms {
            return;
        }
        self.initial_delay = None;
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time");
            self.remove_member(&id);
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name.clear();
            self.leader = None;
            return;
        }
        let Some(protocol) = self.choose_protocol() else {
            // Joins check protocols, so members always share one; if not,
            // start over rather than hand out a nonsense assignment.
            for m in self.members.values_mut() {
                if let Some(join) = m.join.take() {
                    let _ = join.send(Err(GroupError::InconsistentProtocol {
                        group: self.id.clone(),
                        reason: "members share no protocol".to_owned(),
                    }));
                }
            }
            self.members.clear();
            self.statics.clear();
            self.state = GroupState::Empty;
            return;
        };
        self.protocol_name = protocol;
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.seq)
                .map(|m| m.id.clone());
        }
        let leader = self.leader.clone().unwrap_or_default();
        let roster: Vec<JoinedMember> = {
            let mut ms: Vec<&Member> = self.members.values().collect();
            ms.sort_by_key(|m| m.seq);
            ms.into_iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&self.protocol_name),
                })
                .collect()
        };
        self.state = GroupState::CompletingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = %self.protocol_name,
            "generation formed"
        );
        for m in self.members.values_mut() {
            m.assignment.clear();
            m.touch(now);
            if let Some(join) = m.join.take() {
                let _ = join.send(Ok(JoinResponse {
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                }));
            }
        }
    }

    /// The JoinGroup answer a current member gets without a rebalance.
    pub(crate) fn current_join_response(&self, member_id: &str) -> JoinResponse {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            let mut ms: Vec<&Member> = self.members.values().collect();
            ms.sort_by_key(|m| m.seq);
            ms.into_iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&self.protocol_name),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_owned(),
            members,
        }
    }

    pub(crate) fn remove_member(&mut self, id: &str) -> Option<Member> {
        let member = self.members.remove(id)?;
        if let Some(instance) = &member.instance_id
            && self.statics.get(instance).is_some_and(|m| m == id)
        {
            self.statics.remove(instance);
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        Some(member)
    }

    /// After members left or expired: rebalance the rest, or complete the
    /// rebalance under way.
    pub(crate) fn after_departure(&mut self, now: i64, initial_delay_ms: i32, reason: &str) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, initial_delay_ms, reason);
                self.try_complete_join(now);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// The earliest time after `now` something here is due: a session
    /// ending, an unused member id lapsing, a rebalance's initial delay or
    /// timeout.
    pub(crate) fn next_deadline_ms(&self, now: i64) -> Option<i64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join.is_none() && m.sync.is_none())
            .map(|m| m.expires_ms);
        let rebalancing = self.state == GroupState::PreparingRebalance;
        let rebalance = rebalancing.then_some(self.rebalance_deadline_ms);
        let initial = self
            .initial_delay
            .filter(|_| rebalancing)
            .map(|(until, _)| until);
        sessions
            .chain(self.pending.values().copied())
            .chain(rebalance)
            .chain(initial)
            .filter(|&at| at > now)
            .min()
    }

    pub(crate) fn describe(&self) -> GroupDescription {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        GroupDescription {
            group: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone(),
            protocol_name: if self.state == GroupState::Stable {
                self.protocol_name.clone()
            } else {
                String::new()
            },
            generation: self.generation,
            members: members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(&self.protocol_name),
                    assignment: if self.state == GroupState::Stable {
                        m.assignment.clone()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        }
    }
}
