//! Groups of KIP-848's consumer rebalance protocol (`group.protocol=consumer`):
//! the coordinator computes every member's target assignment with a
//! server-side assignor, and members reconcile toward it through
//! ConsumerGroupHeartbeat, one step per heartbeat, with no group-wide
//! barrier. The [`crate::Coordinator`] keeps these groups beside its classic ones;
//! a group id is one kind or the other.
//!
//! Epochs, as KIP-848 has them: the *group epoch* moves whenever members
//! join or leave, a subscription or assignor changes, or a subscribed
//! topic's partitions change; the *target assignment* is recomputed for the
//! new group epoch (its epoch, the *assignment epoch*, then equals it); a
//! *member epoch* reaches the assignment epoch once the member has given up
//! what the new target takes from it.
//!
//! Reconciliation is incremental: a member first hears its current
//! assignment minus what it must revoke (its epoch unchanged); once a
//! heartbeat reports (in `topic_partitions`) that it no longer holds those,
//! they are released and its epoch moves on. A partition goes to its new
//! owner only once released, so no partition is ever held by two members:
//! `owners` maps each held partition to its one holder, and
//! [`ConsumerGroup::check`] asserts it after every change.

use std::collections::{BTreeMap, BTreeSet};

use regex_automata::meta::Regex;
use weir_broker::Broker;

use crate::GroupError;
use crate::assignors::{ASSIGNORS, AssignmentSpec, assign};
use crate::consumer_heartbeat::check_member_epoch;
use crate::consumer_requests::{
    Assignment, ConsumerGroupDescription, ConsumerGroupState, ConsumerMemberDescription,
    NamedPartitions, REGEX_BYTES_MAX, STATIC_LEAVE_EPOCH, TopicFilter, TopicId,
};

/// Where a member is in reconciling toward its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    /// At the assignment epoch, holding its whole target.
    Stable,
    /// Told to give up `revoking`; its epoch waits until it reports so.
    UnrevokedPartitions,
    /// At the assignment epoch, waiting for partitions of its target that
    /// others still hold.
    UnreleasedPartitions,
}

/// A compiled subscription pattern (full match, as Kafka's RE2/J
/// `matches()`).
#[derive(Debug, Clone)]
pub(crate) struct TopicRegex {
    pub(crate) source: String,
    pub(crate) regex: Regex,
}

impl TopicRegex {
    pub(crate) fn compile(source: &str) -> Result<Self, GroupError> {
        let invalid = |reason: String| GroupError::InvalidRegex {
            regex: source.to_owned(),
            reason,
        };
        if source.len() > REGEX_BYTES_MAX {
            return Err(invalid(format!("longer than {REGEX_BYTES_MAX} bytes")));
        }
        let regex = Regex::builder()
            .configure(Regex::config().nfa_size_limit(Some(1 << 20)))
            .build(&format!("^(?:{source})$"))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            source: source.to_owned(),
            regex,
        })
    }

    pub(crate) fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }
}

#[derive(Debug)]
pub(crate) struct ConsumerMember {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) topic_names: BTreeSet<String>,
    pub(crate) topic_regex: Option<TopicRegex>,
    /// What `topic_regex` may match (see [`TopicFilter`]).
    pub(crate) topic_filter: Option<TopicFilter>,
    pub(crate) server_assignor: Option<String>,
    /// The member's epoch: the assignment epoch it reconciled to last.
    pub(crate) epoch: i32,
    /// The epoch before `epoch`: a member whose last response was lost
    /// still sends it, and is answered rather than fenced.
    pub(crate) previous_epoch: i32,
    pub(crate) state: MemberState,
    /// What the member holds and was told it holds.
    pub(crate) assigned: Assignment,
    /// What it was told to give up and has not reported given up; it
    /// still holds these.
    pub(crate) revoking: Assignment,
    /// A revocation not reported by then fences the member (its
    /// rebalance timeout).
    pub(crate) revoke_deadline_ms: i64,
    /// When the session ends unless the member heartbeats.
    pub(crate) expires_ms: i64,
    /// A static member that left with [`STATIC_LEAVE_EPOCH`]; it keeps its
    /// assignment for a successor with its instance id.
    pub(crate) away: bool,
}

impl ConsumerMember {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            topic_names: BTreeSet::new(),
            topic_regex: None,
            topic_filter: None,
            server_assignor: None,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            revoke_deadline_ms: i64::MAX,
            expires_ms: 0,
            away: false,
        }
    }

    /// The epoch the member is told.
    pub(crate) fn visible_epoch(&self) -> i32 {
        if self.away {
            STATIC_LEAVE_EPOCH
        } else {
            self.epoch
        }
    }

    pub(crate) fn subscribes(&self, topic: &str) -> bool {
        self.topic_names.contains(topic)
            || (self.topic_regex.as_ref().is_some_and(|r| r.matches(topic))
                && self.topic_filter.as_ref().is_none_or(|f| f.allows(topic)))
    }

    pub(crate) fn held(&self) -> impl Iterator<Item = (TopicId, i32)> + '_ {
        flatten(&self.assigned).chain(flatten(&self.revoking))
    }
}

fn flatten(a: &Assignment) -> impl Iterator<Item = (TopicId, i32)> + '_ {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

pub(crate) fn partitions_in(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|qs| !ps.is_disjoint(qs)))
}

/// `a` minus `b`.
fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(qs) => ps.difference(qs).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

pub(crate) fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|qs| ps.is_subset(qs)))
}

/// The same partitions, ignoring topics with none.
pub(crate) fn same(a: &Assignment, b: &Assignment) -> bool {
    is_subset(a, b) && is_subset(b, a)
}

/// One consumer-protocol group.
#[derive(Debug)]
pub(crate) struct ConsumerGroup {
    pub(crate) id: String,
    pub(crate) group_epoch: i32,
    /// The epoch `target` was computed for; at most `group_epoch`.
    pub(crate) assignment_epoch: i32,
    /// The assignor that computed `target`.
    pub(crate) assignor: String,
    /// Member id → its target partitions (every member has an entry).
    pub(crate) target: BTreeMap<String, Assignment>,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    /// `group.instance.id` → member id of static members.
    pub(crate) statics: BTreeMap<String, String>,
    /// Each held partition → the one member holding it (in its `assigned`
    /// or `revoking`). A partition absent here is free to be given.
    pub(crate) owners: BTreeMap<(TopicId, i32), String>,
    /// The subscribed topics as last seen: name → (id, partition count).
    /// A change moves the group epoch.
    pub(crate) topics: BTreeMap<String, (TopicId, i32)>,
}

impl ConsumerGroup {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: ASSIGNORS[0].to_owned(),
            target: BTreeMap::new(),
            members: BTreeMap::new(),
            statics: BTreeMap::new(),
            owners: BTreeMap::new(),
            topics: BTreeMap::new(),
        }
    }

    pub(crate) fn unknown_member(&self, member: &str) -> GroupError {
        GroupError::UnknownMember {
            group: self.id.clone(),
            member: member.to_owned(),
        }
    }

    pub(crate) fn fenced(&self, member: &ConsumerMember, given: i32) -> GroupError {
        GroupError::FencedMemberEpoch {
            group: self.id.clone(),
            member: member.id.clone(),
            given,
            current: member.visible_epoch(),
        }
    }

    pub(crate) fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.assignment_epoch < self.group_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub(crate) fn bump(&mut self, reason: &str) {
        self.group_epoch += 1;
        tracing::info!(group = %self.id, epoch = self.group_epoch, reason, "group epoch");
    }

    /// Drops a member: what it held is free again. The caller moves the
    /// group epoch (through [`Self::refresh`]).
    pub(crate) fn remove_member(&mut self, id: &str, reason: &str) -> Option<ConsumerMember> {
        let member = self.members.remove(id)?;
        for tp in member.held() {
            let owner = self.owners.remove(&tp);
            debug_assert_eq!(owner.as_deref(), Some(id));
        }
        if let Some(instance) = &member.instance_id
            && self.statics.get(instance).is_some_and(|m| m == id)
        {
            self.statics.remove(instance);
        }
        self.target.remove(id);
        tracing::info!(group = %self.id, member = %id, reason, "member removed");
        Some(member)
    }

    /// Releases everything a member holds (it rejoined owning nothing).
    pub(crate) fn release_all(&mut self, id: &str) {
        let m = self.members.get_mut(id).expect("a member");
        for tp in flatten(&m.assigned).chain(flatten(&m.revoking)) {
            self.owners.remove(&tp);
        }
        m.assigned.clear();
        m.revoking.clear();
        m.state = MemberState::Stable;
        m.revoke_deadline_ms = i64::MAX;
    }

    /// The subscribed topics that exist now: name → (id, partitions).
    /// Regular expressions match every topic but internal ones.
    pub(crate) fn resolve_topics(&self, broker: &Broker) -> BTreeMap<String, (TopicId, i32)> {
        let mut names: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| m.topic_names.iter().cloned())
            .collect();
        if self.members.values().any(|m| m.topic_regex.is_some()) {
            for topic in broker.topics() {
                if !topic.internal && self.members.values().any(|m| m.subscribes(&topic.name)) {
                    names.insert(topic.name.clone());
                }
            }
        }
        names
            .into_iter()
            .filter_map(|name| {
                let topic = broker.topic(&name).ok()?;
                let partitions = topic.partition_count() as i32;
                Some((name, (TopicId(topic.id), partitions)))
            })
            .collect()
    }

    /// Brings the subscribed topics' metadata up to date and the target
    /// assignment up to the group epoch, which moves (once) if members
    /// changed (`changed` says how) or the topics did.
    pub(crate) fn refresh(&mut self, broker: &Broker, changed: Option<&str>) {
        let topics = self.resolve_topics(broker);
        let mut reason = changed;
        if topics != self.topics {
            self.topics = topics;
            reason = reason.or(Some("subscribed topics changed"));
        }
        if let Some(reason) = reason {
            self.bump(reason);
        }
        if self.assignment_epoch < self.group_epoch {
            self.compute_target();
        }
    }

    /// The assignor most members ask for (ties to the first in
    /// [`ASSIGNORS`]), or the default.
    pub(crate) fn choose_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let mut best = ASSIGNORS[0];
        for a in &ASSIGNORS[1..] {
            if votes.get(a).copied().unwrap_or(0) > votes.get(best).copied().unwrap_or(0) {
                best = a;
            }
        }
        best.to_owned()
    }

    pub(crate) fn compute_target(&mut self) {
        let subscriptions: BTreeMap<String, BTreeSet<TopicId>> = self
            .members
            .values()
            .map(|m| {
                let topics = self
                    .topics
                    .iter()
                    .filter(|(name, _)| m.subscribes(name))
                    .map(|(_, (id, _))| *id)
                    .collect();
                (m.id.clone(), topics)
            })
            .collect();
        let partitions: BTreeMap<TopicId, i32> = self.topics.values().copied().collect();
        self.assignor = self.choose_assignor();
        self.target = assign(
            &self.assignor,
            &AssignmentSpec {
                subscriptions: &subscriptions,
                partitions: &partitions,
                previous: &self.target,
            },
        );
        self.assignment_epoch = self.group_epoch;
        tracing::info!(
            group = %self.id,
            epoch = self.assignment_epoch,
            assignor = %self.assignor,
            members = self.members.len(),
            "target assignment computed"
        );
    }

    /// Moves one member toward its target, as far as it can now. `owned`
    /// is what the member reported holding in this heartbeat.
    pub(crate) fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now: i64) {
        let epoch = self.assignment_epoch;
        let target = self.target.get(id).cloned().unwrap_or_default();
        let m = self.members.get_mut(id).expect("a member");
        if m.away {
            return;
        }
        if m.state == MemberState::UnrevokedPartitions {
            // Done once a report says none of the revoked partitions is
            // held any more.
            match owned {
                Some(owned) if !intersects(owned, &m.revoking) => {
                    for tp in flatten(&m.revoking) {
                        let owner = self.owners.remove(&tp);
                        debug_assert_eq!(owner.as_deref(), Some(id));
                    }
                    m.revoking.clear();
                    m.revoke_deadline_ms = i64::MAX;
                    m.state = MemberState::Stable;
                }
                _ => return,
            }
        }
        if m.epoch == epoch && m.state == MemberState::Stable {
            return;
        }
        let revoke = minus(&m.assigned, &target);
        if partitions_in(&revoke) > 0 {
            // Give up first; the epoch moves once that is reported.
            m.assigned = minus(&m.assigned, &revoke);
            m.revoking = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revoke_deadline_ms = now + i64::from(m.rebalance_timeout_ms);
            return;
        }
        if m.epoch != epoch {
            m.previous_epoch = m.epoch;
            m.epoch = epoch;
        }
        let mut waiting = false;
        for (topic, partition) in flatten(&minus(&target, &m.assigned)) {
            if self.owners.contains_key(&(topic, partition)) {
                waiting = true;
                continue;
            }
            self.owners.insert((topic, partition), id.to_owned());
            m.assigned.entry(topic).or_default().insert(partition);
        }
        m.state = if waiting {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }

    /// The group's invariants: one holder per partition, and `owners` is
    /// exactly what members hold.
    pub(crate) fn check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let mut held = BTreeMap::new();
        for m in self.members.values() {
            for tp in m.held() {
                let previous = held.insert(tp, m.id.clone());
                assert!(
                    previous.is_none(),
                    "group {}: {tp:?} held by {} and {}",
                    self.id,
                    m.id,
                    previous.unwrap_or_default()
                );
            }
            assert!(!intersects(&m.assigned, &m.revoking));
        }
        assert_eq!(held, self.owners, "group {}: owners out of step", self.id);
        assert!(self.assignment_epoch <= self.group_epoch);
    }

    pub(crate) fn named(&self, a: &Assignment, broker: &Broker) -> Vec<NamedPartitions> {
        named_assignment(&self.topics, a, broker)
    }

    pub(crate) fn describe(&self, broker: &Broker) -> ConsumerGroupDescription {
        ConsumerGroupDescription {
            group: self.id.clone(),
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            members: self
                .members
                .values()
                .map(|m| {
                    let mut holding = m.assigned.clone();
                    for (t, ps) in &m.revoking {
                        holding.entry(*t).or_default().extend(ps);
                    }
                    ConsumerMemberDescription {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        rack_id: m.rack_id.clone(),
                        member_epoch: m.visible_epoch(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        subscribed_topic_names: m.topic_names.iter().cloned().collect(),
                        subscribed_topic_regex: m.topic_regex.as_ref().map(|r| r.source.clone()),
                        assignment: self.named(&holding, broker),
                        target_assignment: self
                            .named(&self.target.get(&m.id).cloned().unwrap_or_default(), broker),
                    }
                })
                .collect(),
        }
    }

    /// Topics some member subscribes to (OffsetDelete refuses their
    /// offsets).
    pub(crate) fn subscribed_topics(&self) -> BTreeSet<String> {
        let mut topics: BTreeSet<String> = self.topics.keys().cloned().collect();
        topics.extend(
            self.members
                .values()
                .flat_map(|m| m.topic_names.iter().cloned()),
        );
        topics
    }
}

/// Every consumer-protocol group of a coordinator.
#[derive(Debug, Default)]
pub(crate) struct ConsumerGroups {
    pub(crate) groups: BTreeMap<String, ConsumerGroup>,
}

impl ConsumerGroups {
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether `group` is a consumer-protocol group with members.
    pub(crate) fn in_use(&self, group: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// A classic group takes the id of an empty consumer group (as Kafka
    /// converts one); a consumer group with members keeps it.
    pub(crate) fn yield_to_classic(&mut self, group: &str) -> Result<(), GroupError> {
        if self.in_use(group) {
            return Err(GroupError::InconsistentProtocol {
                group: group.to_owned(),
                reason: "the group uses the consumer rebalance protocol".to_owned(),
            });
        }
        self.groups.remove(group);
        Ok(())
    }

    /// Drops an empty group to make room (for a new group of either kind).
    pub(crate) fn evict_idle(&mut self) -> bool {
        let idle = self
            .groups
            .iter()
            .find(|(_, g)| g.members.is_empty())
            .map(|(k, _)| k.clone());
        idle.is_some_and(|k| self.groups.remove(&k).is_some())
    }

    /// Ends sessions and revocations whose time is up; a group that lost
    /// members gets a new target assignment.
    pub(crate) fn tick(&mut self, now: i64, broker: &Broker) -> Option<i64> {
        for g in self.groups.values_mut() {
            let expired: Vec<(String, &'static str)> = g
                .members
                .values()
                .filter_map(|m| {
                    if m.expires_ms <= now {
                        Some((m.id.clone(), "session expired"))
                    } else if m.revoke_deadline_ms <= now {
                        Some((m.id.clone(), "revocation exceeded the rebalance timeout"))
                    } else {
                        None
                    }
                })
                .collect();
            if expired.is_empty() {
                continue;
            }
            for (id, reason) in &expired {
                g.remove_member(id, reason);
            }
            g.refresh(broker, Some(expired[0].1));
            g.check();
        }
        // The earliest session end or revocation deadline still ahead.
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .flat_map(|m| [m.expires_ms, m.revoke_deadline_ms])
            .filter(|&at| at > now)
            .min()
    }

    /// Checks that a member may commit offsets for a consumer-protocol
    /// group; `None` if `group` is not one.
    pub(crate) fn check_commit(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Option<Result<(), GroupError>> {
        let g = self.groups.get(group)?;
        // An admin (or a client outside the group protocol) may commit
        // while the group has no members.
        if member_epoch < 0 && g.members.is_empty() {
            return Some(Ok(()));
        }
        Some(check_member_epoch(g, member_id, member_epoch))
    }
}

/// An assignment with topic names, for descriptions: named from the
/// group's subscribed topics (`topics`, name → id and partition count),
/// else from the broker, else empty (a topic deleted since).
pub(crate) fn named_assignment(
    topics: &BTreeMap<String, (TopicId, i32)>,
    a: &Assignment,
    broker: &Broker,
) -> Vec<NamedPartitions> {
    let name = |id: TopicId| {
        topics
            .iter()
            .find(|(_, (t, _))| *t == id)
            .map(|(name, _)| name.clone())
            .or_else(|| broker.topic_by_id(id.0).map(|t| t.name.clone()))
            .unwrap_or_default()
    };
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| NamedPartitions {
            topic_id: *t,
            topic: name(*t),
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}
