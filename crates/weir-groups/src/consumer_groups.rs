//! Groups of KIP-848's consumer rebalance protocol (`group.protocol=consumer`):
//! the coordinator computes every member's target assignment with a
//! server-side assignor, and members reconcile toward it through
//! ConsumerGroupHeartbeat, one step per heartbeat, with no group-wide
//! barrier. The [`Coordinator`] keeps these groups beside its classic ones;
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
use std::sync::MutexGuard;

use regex_automata::meta::Regex;
use weir_broker::Broker;

use crate::assignors::{ASSIGNORS, AssignmentSpec, assign};
use crate::offsets::{GROUP_ID_BYTES_MAX, PendingCommit};
use crate::{Coordinator, GroupError, GroupsConfig};

/// A topic's id (KIP-516), as the broker gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicId(pub u128);

/// Partitions by topic id.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// The member epoch a member joins (or rejoins) with.
pub const JOIN_EPOCH: i32 = 0;
/// The member epoch a member leaves with.
pub const LEAVE_EPOCH: i32 = -1;
/// The member epoch a static member leaves with when it will be back: it
/// keeps its assignment until its session ends.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Longest member, instance or rack id accepted.
pub const MEMBER_ID_BYTES_MAX: usize = 255;
/// Most topic names one member may subscribe to.
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;
/// Longest subscription regular expression accepted.
pub const REGEX_BYTES_MAX: usize = 1_024;

/// A ConsumerGroupHeartbeat request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerHeartbeat {
    pub group: String,
    /// The member's id; empty when a member joins under v0, where the
    /// coordinator chooses it.
    pub member_id: String,
    /// [`JOIN_EPOCH`], the member's current epoch, [`LEAVE_EPOCH`] or
    /// [`STATIC_LEAVE_EPOCH`].
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged since the last heartbeat.
    pub rebalance_timeout_ms: i32,
    /// `None` when unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `None` when unchanged; empty for none.
    pub subscribed_topic_regex: Option<String>,
    /// `None` when unchanged or not chosen.
    pub server_assignor: Option<String>,
    /// The partitions the member holds; `None` when unchanged.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    /// ConsumerGroupHeartbeat v1+: members choose their ids themselves, so
    /// an empty one is an error.
    pub client_member_ids: bool,
}

/// The answer to a ConsumerGroupHeartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the member must hear it
    /// again; `None` otherwise.
    pub assignment: Option<Assignment>,
}

/// A consumer-protocol group's state, named as Kafka's tools print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConsumerGroupState {
    Empty,
    /// The target assignment lags the group epoch (never for long here:
    /// assignors run synchronously).
    Assigning,
    /// Some member has not reached the target assignment yet.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
            Self::Stable => "Stable",
        }
    }
}

/// A topic's partitions with the topic's name (empty if it no longer
/// exists), for descriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPartitions {
    pub topic_id: TopicId,
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// What the member holds now (including what it is revoking).
    pub assignment: Vec<NamedPartitions>,
    pub target_assignment: Vec<NamedPartitions>,
}

/// A consumer-protocol group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group: String,
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

/// Which protocol a group speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupType {
    Classic,
    Consumer,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Consumer => "consumer",
        }
    }
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group: String,
    pub group_type: GroupType,
    pub state: &'static str,
    pub protocol_type: String,
}

/// Where a member is in reconciling toward its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
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
struct TopicRegex {
    source: String,
    regex: Regex,
}

impl TopicRegex {
    fn compile(source: &str) -> Result<Self, GroupError> {
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

    fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }
}

#[derive(Debug)]
struct ConsumerMember {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    topic_names: BTreeSet<String>,
    topic_regex: Option<TopicRegex>,
    server_assignor: Option<String>,
    /// The member's epoch: the assignment epoch it reconciled to last.
    epoch: i32,
    /// The epoch before `epoch`: a member whose last response was lost
    /// still sends it, and is answered rather than fenced.
    previous_epoch: i32,
    state: MemberState,
    /// What the member holds and was told it holds.
    assigned: Assignment,
    /// What it was told to give up and has not reported given up; it
    /// still holds these.
    revoking: Assignment,
    /// A revocation not reported by then fences the member (its
    /// rebalance timeout).
    revoke_deadline_ms: i64,
    /// When the session ends unless the member heartbeats.
    expires_ms: i64,
    /// A static member that left with [`STATIC_LEAVE_EPOCH`]; it keeps its
    /// assignment for a successor with its instance id.
    away: bool,
}

impl ConsumerMember {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            topic_names: BTreeSet::new(),
            topic_regex: None,
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
    fn visible_epoch(&self) -> i32 {
        if self.away {
            STATIC_LEAVE_EPOCH
        } else {
            self.epoch
        }
    }

    fn subscribes(&self, topic: &str) -> bool {
        self.topic_names.contains(topic)
            || self.topic_regex.as_ref().is_some_and(|r| r.matches(topic))
    }

    fn held(&self) -> impl Iterator<Item = (TopicId, i32)> + '_ {
        flatten(&self.assigned).chain(flatten(&self.revoking))
    }
}

fn flatten(a: &Assignment) -> impl Iterator<Item = (TopicId, i32)> + '_ {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

fn partitions_in(a: &Assignment) -> usize {
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

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|qs| ps.is_subset(qs)))
}

/// The same partitions, ignoring topics with none.
fn same(a: &Assignment, b: &Assignment) -> bool {
    is_subset(a, b) && is_subset(b, a)
}

/// One consumer-protocol group.
#[derive(Debug)]
pub(crate) struct ConsumerGroup {
    id: String,
    group_epoch: i32,
    /// The epoch `target` was computed for; at most `group_epoch`.
    assignment_epoch: i32,
    /// The assignor that computed `target`.
    assignor: String,
    /// Member id → its target partitions (every member has an entry).
    target: BTreeMap<String, Assignment>,
    members: BTreeMap<String, ConsumerMember>,
    /// `group.instance.id` → member id of static members.
    statics: BTreeMap<String, String>,
    /// Each held partition → the one member holding it (in its `assigned`
    /// or `revoking`). A partition absent here is free to be given.
    owners: BTreeMap<(TopicId, i32), String>,
    /// The subscribed topics as last seen: name → (id, partition count).
    /// A change moves the group epoch.
    topics: BTreeMap<String, (TopicId, i32)>,
}

impl ConsumerGroup {
    fn new(id: &str) -> Self {
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

    fn unknown_member(&self, member: &str) -> GroupError {
        GroupError::UnknownMember {
            group: self.id.clone(),
            member: member.to_owned(),
        }
    }

    fn fenced(&self, member: &ConsumerMember, given: i32) -> GroupError {
        GroupError::FencedMemberEpoch {
            group: self.id.clone(),
            member: member.id.clone(),
            given,
            current: member.visible_epoch(),
        }
    }

    fn state(&self) -> ConsumerGroupState {
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

    fn bump(&mut self, reason: &str) {
        self.group_epoch += 1;
        tracing::info!(group = %self.id, epoch = self.group_epoch, reason, "group epoch");
    }

    /// Drops a member: what it held is free again. The caller moves the
    /// group epoch (through [`Self::refresh`]).
    fn remove_member(&mut self, id: &str, reason: &str) -> Option<ConsumerMember> {
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
    fn release_all(&mut self, id: &str) {
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
    fn resolve_topics(&self, broker: &Broker) -> BTreeMap<String, (TopicId, i32)> {
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
    fn refresh(&mut self, broker: &Broker, changed: Option<&str>) {
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
    fn choose_assignor(&self) -> String {
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

    fn compute_target(&mut self) {
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
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now: i64) {
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
    fn check(&self) {
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

    fn topic_name(&self, id: TopicId, broker: &Broker) -> String {
        self.topics
            .iter()
            .find(|(_, (t, _))| *t == id)
            .map(|(name, _)| name.clone())
            .or_else(|| {
                broker
                    .topics()
                    .iter()
                    .find(|t| t.id == id.0)
                    .map(|t| t.name.clone())
            })
            .unwrap_or_default()
    }

    fn named(&self, a: &Assignment, broker: &Broker) -> Vec<NamedPartitions> {
        a.iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(t, ps)| NamedPartitions {
                topic_id: *t,
                topic: self.topic_name(*t, broker),
                partitions: ps.iter().copied().collect(),
            })
            .collect()
    }

    fn describe(&self, broker: &Broker) -> ConsumerGroupDescription {
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
    fn subscribed_topics(&self) -> BTreeSet<String> {
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
    groups: BTreeMap<String, ConsumerGroup>,
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

/// The member exists and is at `member_epoch` (OffsetCommit and
/// OffsetFetch of consumer-protocol groups).
fn check_member_epoch(
    g: &ConsumerGroup,
    member_id: &str,
    member_epoch: i32,
) -> Result<(), GroupError> {
    let Some(m) = g.members.get(member_id) else {
        return Err(g.unknown_member(member_id));
    };
    if m.visible_epoch() != member_epoch {
        return Err(GroupError::StaleMemberEpoch {
            group: g.id.clone(),
            member: member_id.to_owned(),
            given: member_epoch,
            current: m.visible_epoch(),
        });
    }
    Ok(())
}

fn invalid(reason: impl Into<String>) -> GroupError {
    GroupError::InvalidRequest {
        reason: reason.into(),
    }
}

/// Refuses a malformed heartbeat, as Kafka's coordinator does, before any
/// state is touched.
fn validate(req: &ConsumerHeartbeat) -> Result<Option<TopicRegex>, GroupError> {
    if req.group.is_empty() {
        return Err(invalid("the group id must not be empty"));
    }
    if req.group.len() > GROUP_ID_BYTES_MAX {
        return Err(GroupError::GroupIdTooLong {
            bytes: req.group.len(),
            bytes_max: GROUP_ID_BYTES_MAX,
        });
    }
    for (what, id) in [
        ("member id", Some(&req.member_id)),
        ("instance id", req.instance_id.as_ref()),
        ("rack id", req.rack_id.as_ref()),
    ] {
        if let Some(id) = id
            && id.len() > MEMBER_ID_BYTES_MAX
        {
            return Err(invalid(format!(
                "{what} of {} bytes is over the limit of {MEMBER_ID_BYTES_MAX}",
                id.len()
            )));
        }
    }
    if req.member_id.is_empty() && (req.client_member_ids || req.member_epoch != JOIN_EPOCH) {
        return Err(invalid("the member id must not be empty"));
    }
    if req.member_epoch < STATIC_LEAVE_EPOCH {
        return Err(invalid(format!(
            "member epoch {} is not valid",
            req.member_epoch
        )));
    }
    if req.member_epoch == STATIC_LEAVE_EPOCH && req.instance_id.is_none() {
        return Err(invalid(
            "only a static member (with an instance id) may leave with epoch -2",
        ));
    }
    if req.member_epoch == JOIN_EPOCH {
        if req.rebalance_timeout_ms < 0 {
            return Err(invalid("a joining member must give its rebalance timeout"));
        }
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return Err(invalid("a joining member must give its subscription"));
        }
        if req.owned.as_ref().is_some_and(|o| partitions_in(o) > 0) {
            return Err(invalid("a joining member cannot hold partitions"));
        }
    }
    if let Some(names) = &req.subscribed_topic_names
        && names.len() > SUBSCRIBED_TOPICS_MAX
    {
        return Err(invalid(format!(
            "a subscription of {} topics is over the limit of {SUBSCRIBED_TOPICS_MAX}",
            names.len()
        )));
    }
    if let Some(assignor) = &req.server_assignor
        && !ASSIGNORS.contains(&assignor.as_str())
    {
        return Err(GroupError::UnsupportedAssignor {
            assignor: assignor.clone(),
        });
    }
    match req.subscribed_topic_regex.as_deref() {
        Some(source) if !source.is_empty() => TopicRegex::compile(source).map(Some),
        _ => Ok(None),
    }
}

impl Coordinator {
    fn consumer_lock(&self) -> MutexGuard<'_, ConsumerGroups> {
        self.consumer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// ConsumerGroupHeartbeat: joins, renews, reconciles or leaves; always
    /// answered at once.
    pub fn consumer_heartbeat(
        &self,
        req: ConsumerHeartbeat,
    ) -> Result<ConsumerHeartbeatResponse, GroupError> {
        let regex = validate(&req)?;
        let now = self.now_ms();
        let config = self.config().clone();
        let broker = self.broker().clone();
        self.with_consumer_groups(&req.group, |classic_groups, consumer| {
            let creating =
                req.member_epoch == JOIN_EPOCH && !consumer.groups.contains_key(&req.group);
            if creating {
                if classic_groups + consumer.len() >= config.groups_max && !consumer.evict_idle() {
                    return Err(GroupError::TooManyGroups {
                        groups_max: config.groups_max,
                    });
                }
                consumer
                    .groups
                    .insert(req.group.clone(), ConsumerGroup::new(&req.group));
            }
            let Some(g) = consumer.groups.get_mut(&req.group) else {
                // Membership is not persisted: after a restart a member
                // learns it must join again.
                return Err(GroupError::UnknownMember {
                    group: req.group.clone(),
                    member: req.member_id.clone(),
                });
            };
            let member_id = if req.member_id.is_empty() {
                self.new_member_id(&req.client_id).0
            } else {
                req.member_id.clone()
            };
            let response = heartbeat(g, &req, member_id, regex, now, &config, &broker);
            g.check();
            response
        })
    }

    /// ConsumerGroupDescribe: a consumer-protocol group (GroupNotFound for
    /// unknown groups and classic ones).
    pub fn consumer_describe(&self, group: &str) -> Result<ConsumerGroupDescription, GroupError> {
        let consumer = self.consumer_lock();
        match consumer.groups.get(group) {
            Some(g) => Ok(g.describe(self.broker())),
            None => Err(GroupError::GroupNotFound {
                group: group.to_owned(),
            }),
        }
    }

    /// Whether `group` is a consumer-protocol group.
    pub fn group_type(&self, group: &str) -> GroupType {
        if self.consumer_lock().groups.contains_key(group) {
            GroupType::Consumer
        } else {
            GroupType::Classic
        }
    }

    /// Whether `member_id` is a member of consumer-protocol group `group`
    /// (which must commit with OffsetCommit v9+).
    pub fn is_consumer_member(&self, group: &str, member_id: &str) -> bool {
        self.consumer_lock()
            .groups
            .get(group)
            .is_some_and(|g| g.members.contains_key(member_id))
    }

    /// OffsetFetch v9+: a consumer-protocol group's member must be current
    /// (an admin gives no member id and epoch -1); other groups are not
    /// checked.
    pub fn check_fetch(
        &self,
        group: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let consumer = self.consumer_lock();
        let Some(g) = consumer.groups.get(group) else {
            return Ok(());
        };
        match member_id {
            None if member_epoch < 0 => Ok(()),
            member => check_member_epoch(g, member.unwrap_or(""), member_epoch),
        }
    }

    /// Every group with members or committed offsets, of both kinds
    /// (ListGroups).
    pub fn list_groups(&self) -> Vec<ListedGroup> {
        let mut out: BTreeMap<String, ListedGroup> = self
            .list()
            .into_iter()
            .map(|(group, state, protocol_type)| {
                let listed = ListedGroup {
                    group: group.clone(),
                    group_type: GroupType::Classic,
                    state: state.as_str(),
                    protocol_type,
                };
                (group, listed)
            })
            .collect();
        for (id, g) in &self.consumer_lock().groups {
            out.insert(
                id.clone(),
                ListedGroup {
                    group: id.clone(),
                    group_type: GroupType::Consumer,
                    state: g.state().as_str(),
                    protocol_type: "consumer".to_owned(),
                },
            );
        }
        out.into_values().collect()
    }

    /// Hook of [`Coordinator::commit`]: checks a commit to a
    /// consumer-protocol group and writes it under the lock; `None` if
    /// `group` is not one.
    pub(crate) fn consumer_commit(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
        write: impl FnOnce() -> Result<PendingCommit, GroupError>,
    ) -> Option<Result<PendingCommit, GroupError>> {
        let consumer = self.consumer_lock();
        let checked = consumer.check_commit(group, member_id, member_epoch)?;
        Some(checked.and_then(|()| write()))
    }

    /// Hook of [`Coordinator::delete_group`]: deletes an empty
    /// consumer-protocol group; `None` if `group` is not one.
    pub(crate) fn consumer_delete_group(&self, group: &str) -> Option<Result<(), GroupError>> {
        let mut consumer = self.consumer_lock();
        let g = consumer.groups.get(group)?;
        if !g.members.is_empty() {
            return Some(Err(GroupError::NonEmptyGroup {
                group: group.to_owned(),
            }));
        }
        consumer.groups.remove(group);
        Some(Ok(()))
    }

    /// Hook of [`Coordinator::delete_offsets`]: the topics a
    /// consumer-protocol group subscribes to; `None` if `group` is not one.
    pub(crate) fn consumer_subscribed_topics(&self, group: &str) -> Option<BTreeSet<String>> {
        self.consumer_lock()
            .groups
            .get(group)
            .map(ConsumerGroup::subscribed_topics)
    }

    /// Hook of [`Coordinator::tick`].
    /// Ends what time ends in consumer-protocol groups; returns the next
    /// deadline there.
    pub(crate) fn consumer_tick(&self, now: i64) -> Option<i64> {
        self.consumer_lock().tick(now, self.broker())
    }
}

/// One heartbeat of a member of group `g` (which exists).
fn heartbeat(
    g: &mut ConsumerGroup,
    req: &ConsumerHeartbeat,
    member_id: String,
    regex: Option<TopicRegex>,
    now: i64,
    config: &GroupsConfig,
    broker: &Broker,
) -> Result<ConsumerHeartbeatResponse, GroupError> {
    let respond = |m: &ConsumerMember, assignment: Option<Assignment>| ConsumerHeartbeatResponse {
        member_id: m.id.clone(),
        member_epoch: m.visible_epoch(),
        heartbeat_interval_ms: config.consumer_heartbeat_interval_ms,
        assignment,
    };
    // Who is this? A static member's instance id names it unless it left
    // for good.
    let mut replaced = false;
    if let Some(instance) = &req.instance_id
        && let Some(holder) = g.statics.get(instance).cloned()
        && holder != member_id
    {
        let holder_away = g.members.get(&holder).is_some_and(|m| m.away);
        if req.member_epoch != JOIN_EPOCH {
            return Err(GroupError::FencedInstance {
                group: g.id.clone(),
                instance: instance.clone(),
            });
        }
        if !holder_away {
            return Err(GroupError::UnreleasedInstanceId {
                group: g.id.clone(),
                instance: instance.clone(),
            });
        }
        // A static member back after leaving with epoch -2: the newcomer
        // takes over its entry, assignment and epoch.
        let mut m = g.members.remove(&holder).expect("statics map members");
        m.id = member_id.clone();
        m.away = false;
        for tp in m.held() {
            g.owners.insert(tp, member_id.clone());
        }
        if let Some(target) = g.target.remove(&holder) {
            g.target.insert(member_id.clone(), target);
        }
        g.members.insert(member_id.clone(), m);
        g.statics.insert(instance.clone(), member_id.clone());
        replaced = true;
        tracing::info!(group = %g.id, member = %member_id, instance, "static member replaced");
    }

    let mut changed = None;
    match req.member_epoch {
        LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {
            let Some(m) = g.members.get(&member_id) else {
                return Err(g.unknown_member(&member_id));
            };
            let mut gone = respond(m, None);
            gone.member_epoch = req.member_epoch;
            if req.member_epoch == STATIC_LEAVE_EPOCH {
                let m = g.members.get_mut(&member_id).expect("checked");
                m.away = true;
                tracing::info!(group = %g.id, member = %member_id, "static member away");
            } else {
                g.remove_member(&member_id, "member left");
                g.refresh(broker, Some("member left"));
            }
            return Ok(gone);
        }
        JOIN_EPOCH => {
            if replaced {
                // It keeps what its predecessor held.
            } else if !g.members.contains_key(&member_id) {
                if g.members.len() >= config.members_max {
                    return Err(GroupError::GroupFull {
                        group: g.id.clone(),
                        members_max: config.members_max,
                    });
                }
                g.members
                    .insert(member_id.clone(), ConsumerMember::new(&member_id));
                if let Some(instance) = &req.instance_id {
                    g.statics.insert(instance.clone(), member_id.clone());
                }
                changed = Some("a member joined");
            } else if g.members[&member_id].away {
                // A static member back under its own id.
                g.members.get_mut(&member_id).expect("checked").away = false;
            } else {
                // A known member joining again owns nothing any more.
                g.release_all(&member_id);
                let m = g.members.get_mut(&member_id).expect("checked");
                m.epoch = 0;
            }
        }
        epoch => {
            let Some(m) = g.members.get(&member_id) else {
                return Err(g.unknown_member(&member_id));
            };
            if m.away {
                return Err(g.fenced(m, epoch));
            }
            // A member one epoch behind whose last answer was lost is
            // answered again, if it holds nothing it should not.
            let lost_answer = epoch == m.previous_epoch
                && req.owned.as_ref().is_none_or(|o| is_subset(o, &m.assigned));
            if epoch != m.epoch && !lost_answer {
                return Err(g.fenced(m, epoch));
            }
        }
    }

    // Update what the member told us.
    let m = g.members.get_mut(&member_id).expect("a member by now");
    let before = (m.epoch, m.assigned.clone());
    m.expires_ms = now + i64::from(config.consumer_session_timeout_ms);
    m.client_id.clone_from(&req.client_id);
    m.client_host.clone_from(&req.client_host);
    if req.rebalance_timeout_ms >= 0 {
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    if req.rack_id.is_some() {
        m.rack_id.clone_from(&req.rack_id);
    }
    if req.instance_id.is_some() {
        m.instance_id.clone_from(&req.instance_id);
    }
    let mut subscription_changed = false;
    if let Some(names) = &req.subscribed_topic_names {
        let names: BTreeSet<String> = names.iter().filter(|n| !n.is_empty()).cloned().collect();
        subscription_changed |= names != m.topic_names;
        m.topic_names = names;
    }
    if req.subscribed_topic_regex.is_some() {
        subscription_changed |=
            regex.as_ref().map(|r| &r.source) != m.topic_regex.as_ref().map(|r| &r.source);
        m.topic_regex = regex;
    }
    if req.server_assignor.is_some() && req.server_assignor != m.server_assignor {
        subscription_changed = true;
        m.server_assignor.clone_from(&req.server_assignor);
    }
    if subscription_changed {
        changed = changed.or(Some("a member's subscription changed"));
    }
    g.refresh(broker, changed);
    g.reconcile(&member_id, req.owned.as_ref(), now);

    let m = &g.members[&member_id];
    // The member hears its assignment when it joins or sent an old epoch,
    // when the assignment changed, or when what it reported differs from
    // what it was told.
    let tell = req.member_epoch != m.visible_epoch()
        || before.0 != m.epoch
        || !same(&before.1, &m.assigned)
        || req.owned.as_ref().is_some_and(|o| !same(o, &m.assigned));
    Ok(respond(m, tell.then(|| m.assigned.clone())))
}
