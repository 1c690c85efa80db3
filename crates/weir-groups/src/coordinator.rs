//! The group coordinator: Kafka's classic consumer-group protocol as a state
//! machine. Members join, one of them (the leader) assigns partitions, the
//! others sync to get their share, and everyone heartbeats; a member that
//! joins, leaves or goes silent starts a new generation. Time comes from an
//! injected clock, and [`Coordinator::tick`] ends what time ends (sessions,
//! rebalance timeouts, the initial rebalance delay), so tests drive it with
//! a manual clock and no sockets.
//!
//! States follow Kafka's: `Empty` (no members), `PreparingRebalance`
//! (waiting for members to join), `CompletingRebalance` (waiting for the
//! leader's assignment), `Stable`. A JoinGroup or SyncGroup that must wait
//! is parked and answered through a oneshot channel when the state moves.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_channel::oneshot;
use weir_broker::Broker;
use weir_log::Clock;

use crate::GroupError;
use crate::consumer_groups::ConsumerGroups;
use crate::offsets::{
    CommittedOffset, GROUP_ID_BYTES_MAX, OffsetStore, PendingCommit, TopicPartition,
};

/// Settings and limits of group coordination (Kafka's `group.*` broker
/// settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsConfig {
    /// Shortest session timeout a member may ask for
    /// (`group.min.session.timeout.ms`).
    pub session_timeout_ms_min: i32,
    /// Longest session timeout a member may ask for
    /// (`group.max.session.timeout.ms`).
    pub session_timeout_ms_max: i32,
    /// How long the first rebalance of an empty group waits for more
    /// members, so a fleet starting together is assigned once
    /// (`group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay_ms: i32,
    /// Most members of one group (`group.max.size`).
    pub members_max: usize,
    /// Most groups the coordinator tracks at once, of both protocols.
    pub groups_max: usize,
    /// How often members of consumer-protocol groups (KIP-848) heartbeat
    /// (`group.consumer.heartbeat.interval.ms`).
    pub consumer_heartbeat_interval_ms: i32,
    /// How long a consumer-protocol member stays without a heartbeat
    /// (`group.consumer.session.timeout.ms`).
    pub consumer_session_timeout_ms: i32,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            members_max: 1_000,
            groups_max: 10_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_session_timeout_ms: 45_000,
        }
    }
}

/// A group's state, named as Kafka's tools print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    /// A group that does not exist (DescribeGroups of an unknown id).
    Dead,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// The member's protocols (assignors) in its order of preference, each
    /// with its metadata (the subscription, for consumers).
    pub protocols: Vec<(String, Vec<u8>)>,
    /// KIP-394 (JoinGroup v4+): a new member first gets its id with
    /// MEMBER_ID_REQUIRED and joins again with it.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Vec<u8>,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol; only the
    /// leader gets them.
    pub members: Vec<JoinedMember>,
}

/// A SyncGroup request; only the leader's carries assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Vec<u8>)>,
}

/// The answer to a SyncGroup: the member's assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: String,
    pub protocol_name: String,
    pub assignment: Vec<u8>,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the group's chosen protocol.
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A group as DescribeGroups and ListGroups show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub generation: i32,
    pub members: Vec<MemberDescription>,
}

/// A member leaving: by member id, by static instance id, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaving {
    pub member_id: String,
    pub instance_id: Option<String>,
}

/// An answer that may come later: a parked JoinGroup or SyncGroup.
#[derive(Debug)]
#[must_use = "an answer must be awaited"]
pub struct Answer<T>(oneshot::Receiver<Result<T, GroupError>>, String);

impl<T> Future for Answer<T> {
    type Output = Result<T, GroupError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Ok(answer)) => Poll::Ready(answer),
            // The request was superseded (the member sent another) or the
            // coordinator stopped; the client retries.
            Poll::Ready(Err(oneshot::Canceled)) => {
                Poll::Ready(Err(GroupError::RebalanceInProgress {
                    group: self.1.clone(),
                }))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Answer<T> {
    /// The answer if it has come, without waiting (for callers with no
    /// async runtime, such as tests).
    pub fn try_answer(&mut self) -> Option<Result<T, GroupError>> {
        match self.0.try_recv() {
            Ok(Some(answer)) => Some(answer),
            Ok(None) => None,
            Err(oneshot::Canceled) => Some(Err(GroupError::RebalanceInProgress {
                group: self.1.clone(),
            })),
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, GroupError>>;

fn answer<T>(group: &str) -> (Reply<T>, Answer<T>) {
    let (tx, rx) = oneshot::channel();
    (tx, Answer(rx, group.to_owned()))
}

fn answered<T>(group: &str, result: Result<T, GroupError>) -> Answer<T> {
    let (tx, rx) = answer(group);
    let _ = tx.send(result);
    rx
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
    /// A parked JoinGroup.
    join: Option<Reply<JoinResponse>>,
    /// A parked SyncGroup.
    sync: Option<Reply<SyncResponse>>,
    /// When the session ends unless the member is heard from.
    expires_ms: i64,
    /// Order of joining: the oldest member leads.
    seq: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Vec<u8> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn touch(&mut self, now: i64) {
        self.expires_ms = now + i64::from(self.session_timeout_ms);
    }
}

#[derive(Debug)]
struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: String,
    protocol_name: String,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id of static members.
    statics: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with when they lapse.
    pending: BTreeMap<String, i64>,
    /// When the current rebalance ends whoever has not joined.
    rebalance_deadline_ms: i64,
    /// The first rebalance of an empty group waits until the first time,
    /// pushed back by each new member up to the second.
    initial_delay: Option<(i64, i64)>,
}

impl Group {
    fn new(id: &str) -> Self {
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

    fn unknown_member(&self, member: &str) -> GroupError {
        GroupError::UnknownMember {
            group: self.id.clone(),
            member: member.to_owned(),
        }
    }

    /// Checks that `member_id` is a current member, and that a static
    /// member's instance id still maps to it.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
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

    fn check_generation(&self, generation: i32) -> Result<(), GroupError> {
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
    fn common_protocols(&self) -> BTreeSet<String> {
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
    fn choose_protocol(&self) -> Option<String> {
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
    fn check_protocols(&self, req: &JoinRequest) -> Result<(), GroupError> {
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
    fn prepare_rebalance(&mut self, now: i64, initial_delay_ms: i32, reason: &str) {
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
    fn try_complete_join(&mut self, now: i64) {
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
    fn current_join_response(&self, member_id: &str) -> JoinResponse {
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

    fn remove_member(&mut self, id: &str) -> Option<Member> {
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
    fn after_departure(&mut self, now: i64, initial_delay_ms: i32, reason: &str) {
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
    fn next_deadline_ms(&self, now: i64) -> Option<i64> {
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

    fn describe(&self) -> GroupDescription {
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

/// The wall clock when it was made, then moving with the monotonic clock:
/// session timers never jump when the system time is set, and commit
/// timestamps stay close to wall time.
#[derive(Debug)]
pub struct MonotonicClock {
    start: std::time::Instant,
    start_ms: i64,
}

impl MonotonicClock {
    pub fn new() -> Self {
        Self {
            start: std::time::Instant::now(),
            start_ms: weir_log::SystemClock.now_ms(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + self.start.elapsed().as_millis() as i64
    }
}

/// Consumer groups of one broker: membership, rebalances and committed
/// offsets.
#[derive(Debug)]
pub struct Coordinator {
    config: GroupsConfig,
    clock: Arc<dyn Clock>,
    broker: Arc<Broker>,
    offsets: Arc<OffsetStore>,
    groups: Mutex<BTreeMap<String, Group>>,
    /// Groups of the consumer protocol (`consumer_groups`). Lock order:
    /// `groups`, then `consumer`.
    pub(crate) consumer: Mutex<ConsumerGroups>,
    /// Makes member ids unique: this start's time, then a counter.
    started_ms: i64,
    next_seq: AtomicU64,
}

impl Coordinator {
    pub fn new(
        config: GroupsConfig,
        clock: Arc<dyn Clock>,
        broker: Arc<Broker>,
        offsets: Arc<OffsetStore>,
    ) -> Self {
        let started_ms = clock.now_ms();
        Self {
            config,
            clock,
            broker,
            offsets,
            groups: Mutex::new(BTreeMap::new()),
            consumer: Mutex::new(ConsumerGroups::default()),
            started_ms,
            next_seq: AtomicU64::new(0),
        }
    }

    /// The coordinator's clock, for commit timestamps.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn config(&self) -> &GroupsConfig {
        &self.config
    }

    pub fn offsets(&self) -> &Arc<OffsetStore> {
        &self.offsets
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn new_member_id(&self, client_id: &str) -> (String, u64) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        // Client ids are free text; keep the id printable and bounded.
        let prefix: String = client_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(64)
            .collect();
        let prefix = if prefix.is_empty() { "member" } else { &prefix };
        (format!("{prefix}-{:x}-{seq}", self.started_ms), seq)
    }

    /// The group, created if new (an empty group is dropped to make room
    /// when the coordinator is at `groups_max`).
    fn group_entry<'a>(
        &self,
        groups: &'a mut BTreeMap<String, Group>,
        id: &str,
    ) -> Result<&'a mut Group, GroupError> {
        if !groups.contains_key(id) {
            let consumer_groups = self
                .consumer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len();
            if groups.len() + consumer_groups >= self.config.groups_max {
                let idle = groups
                    .iter()
                    .find(|(_, g)| g.state == GroupState::Empty && g.pending.is_empty())
                    .map(|(k, _)| k.clone());
                match idle {
                    Some(k) => {
                        groups.remove(&k);
                    }
                    None => {
                        return Err(GroupError::TooManyGroups {
                            groups_max: self.config.groups_max,
                        });
                    }
                }
            }
            groups.insert(id.to_owned(), Group::new(id));
        }
        Ok(groups.get_mut(id).expect("inserted above"))
    }

    /// JoinGroup: answered at once (an error, MEMBER_ID_REQUIRED, or the
    /// current generation for a member that changed nothing) or when the
    /// rebalance it starts or joins completes.
    pub fn join(&self, req: JoinRequest) -> Answer<JoinResponse> {
        let group_id = req.group.clone();
        match self.join_inner(req) {
            Ok(answer) => answer,
            Err(e) => answered(&group_id, Err(e)),
        }
    }

    fn join_inner(&self, req: JoinRequest) -> Result<Answer<JoinResponse>, GroupError> {
        if req.group.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if req.group.len() > GROUP_ID_BYTES_MAX {
            return Err(GroupError::GroupIdTooLong {
                bytes: req.group.len(),
                bytes_max: GROUP_ID_BYTES_MAX,
            });
        }
        let (min, max) = (
            self.config.session_timeout_ms_min,
            self.config.session_timeout_ms_max,
        );
        if !(min..=max).contains(&req.session_timeout_ms) {
            return Err(GroupError::InvalidSessionTimeout {
                given_ms: req.session_timeout_ms,
                min_ms: min,
                max_ms: max,
            });
        }
        let now = self.clock.now_ms();
        let delay = self.config.initial_rebalance_delay_ms;
        let mut groups = self.lock();
        // A consumer-protocol group with members keeps its id.
        self.consumer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .yield_to_classic(&req.group)?;
        let group = self.group_entry(&mut groups, &req.group)?;
        group.check_protocols(&req)?;

        // Who is this? A static member (rejoining or new), a member with
        // an id (known, or pending after MEMBER_ID_REQUIRED), or a new one.
        let mut is_new = false;
        let member_id = match (&req.instance_id, req.member_id.is_empty()) {
            (Some(instance), true) => match group.statics.get(instance).cloned() {
                Some(old_id) => {
                    // A static member restarted: it takes over its old
                    // entry (and assignment) under a new id; the old one is
                    // fenced.
                    let (new_id, _) = self.new_member_id(&req.client_id);
                    let was_leader = group.leader.as_deref() == Some(old_id.as_str());
                    let mut member = group.remove_member(&old_id).expect("statics map members");
                    if let Some(join) = member.join.take() {
                        let _ = join.send(Err(GroupError::FencedInstance {
                            group: group.id.clone(),
                            instance: instance.clone(),
                        }));
                    }
                    if let Some(sync) = member.sync.take() {
                        let _ = sync.send(Err(GroupError::FencedInstance {
                            group: group.id.clone(),
                            instance: instance.clone(),
                        }));
                    }
                    member.id = new_id.clone();
                    group.statics.insert(instance.clone(), new_id.clone());
                    group.members.insert(new_id.clone(), member);
                    if was_leader {
                        group.leader = Some(new_id.clone());
                    }
                    let unchanged = group.members[&new_id].protocols == req.protocols;
                    // As Kafka does, even for the leader: it gets the roster,
                    // and its SyncGroup in a stable group changes nothing.
                    if group.state == GroupState::Stable && unchanged {
                        let m = group.members.get_mut(&new_id).expect("just inserted");
                        m.touch(now);
                        return Ok(answered(
                            &req.group,
                            Ok(group.current_join_response(&new_id)),
                        ));
                    }
                    new_id
                }
                None => {
                    is_new = true;
                    let (id, _) = self.new_member_id(&req.client_id);
                    group.statics.insert(instance.clone(), id.clone());
                    id
                }
            },
            (None, true) => {
                let (id, _) = self.new_member_id(&req.client_id);
                if req.require_known_member_id {
                    self.check_room(group)?;
                    group
                        .pending
                        .insert(id.clone(), now + i64::from(req.session_timeout_ms));
                    return Err(GroupError::MemberIdRequired {
                        group: req.group.clone(),
                        member: id,
                    });
                }
                is_new = true;
                id
            }
            (instance, false) => {
                if let Some(instance) = instance
                    && group.statics.get(instance) != Some(&req.member_id)
                {
                    return Err(GroupError::FencedInstance {
                        group: req.group.clone(),
                        instance: instance.clone(),
                    });
                }
                if group.pending.remove(&req.member_id).is_some() {
                    is_new = true;
                } else if !group.members.contains_key(&req.member_id) {
                    return Err(group.unknown_member(&req.member_id));
                }
                req.member_id.clone()
            }
        };

        if is_new {
            if group.members.len() >= self.config.members_max {
                if let Some(instance) = &req.instance_id {
                    group.statics.remove(instance);
                }
                return Err(GroupError::GroupFull {
                    group: req.group.clone(),
                    members_max: self.config.members_max,
                });
            }
            if group.members.is_empty() {
                group.protocol_type = req.protocol_type.clone();
            }
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            group.members.insert(
                member_id.clone(),
                Member {
                    id: member_id.clone(),
                    instance_id: req.instance_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    session_timeout_ms: req.session_timeout_ms,
                    rebalance_timeout_ms: req.rebalance_timeout_ms,
                    protocols: req.protocols.clone(),
                    assignment: Vec::new(),
                    join: None,
                    sync: None,
                    expires_ms: now + i64::from(req.session_timeout_ms),
                    seq,
                },
            );
        }

        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        let member = group.members.get_mut(&member_id).expect("a member by now");
        let changed = member.protocols != req.protocols;
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.touch(now);

        // A known member that changed nothing gets the current generation
        // again without disturbing the others.
        if !is_new && !changed {
            let current = match group.state {
                GroupState::CompletingRebalance => true,
                GroupState::Stable => !is_leader,
                _ => false,
            };
            if current {
                return Ok(answered(
                    &req.group,
                    Ok(group.current_join_response(&member_id)),
                ));
            }
        }
        let (reply, answer) = answer(&req.group);
        let member = group.members.get_mut(&member_id).expect("a member by now");
        // A member that joins twice is answered once, on its newest request.
        member.join = Some(reply);
        match group.state {
            GroupState::PreparingRebalance => {
                if is_new && let Some((until, cap)) = group.initial_delay.as_mut() {
                    *until = (now + i64::from(delay)).min(*cap);
                }
            }
            _ => {
                let reason = if is_new {
                    "a member joined"
                } else {
                    "a member's subscription changed"
                };
                group.prepare_rebalance(now, delay, reason);
            }
        }
        group.try_complete_join(now);
        Ok(answer)
    }

    fn check_room(&self, group: &Group) -> Result<(), GroupError> {
        if group.members.len() + group.pending.len() >= self.config.members_max {
            return Err(GroupError::GroupFull {
                group: group.id.clone(),
                members_max: self.config.members_max,
            });
        }
        Ok(())
    }

    /// SyncGroup: the leader hands in the assignment; every member gets
    /// its part once the leader has.
    pub fn sync(&self, req: SyncRequest) -> Answer<SyncResponse> {
        let group_id = req.group.clone();
        match self.sync_inner(req) {
            Ok(answer) => answer,
            Err(e) => answered(&group_id, Err(e)),
        }
    }

    fn sync_inner(&self, req: SyncRequest) -> Result<Answer<SyncResponse>, GroupError> {
        let now = self.clock.now_ms();
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(&req.group) else {
            return Err(GroupError::UnknownMember {
                group: req.group.clone(),
                member: req.member_id.clone(),
            });
        };
        group.check_member(&req.member_id, req.instance_id.as_deref())?;
        group.check_generation(req.generation)?;
        let mismatch =
            |given: &Option<String>, ours: &str| given.as_ref().is_some_and(|g| g != ours);
        if mismatch(&req.protocol_type, &group.protocol_type)
            || mismatch(&req.protocol_name, &group.protocol_name)
        {
            return Err(GroupError::InconsistentProtocol {
                group: req.group.clone(),
                reason: "SyncGroup names another protocol than the generation's".to_owned(),
            });
        }
        let response = |g: &Group, assignment: Vec<u8>| SyncResponse {
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            assignment,
        };
        match group.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress {
                group: req.group.clone(),
            }),
            GroupState::Stable => {
                let m = group.members.get_mut(&req.member_id).expect("checked");
                m.touch(now);
                let assignment = m.assignment.clone();
                Ok(answered(&req.group, Ok(response(group, assignment))))
            }
            GroupState::CompletingRebalance => {
                let (reply, answer) = answer(&req.group);
                let m = group.members.get_mut(&req.member_id).expect("checked");
                m.touch(now);
                m.sync = Some(reply);
                if group.leader.as_deref() == Some(req.member_id.as_str()) {
                    let mut given: BTreeMap<String, Vec<u8>> =
                        req.assignments.into_iter().collect();
                    for m in group.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    group.state = GroupState::Stable;
                    tracing::info!(group = %group.id, generation = group.generation, "group stable");
                    let (pt, pn) = (group.protocol_type.clone(), group.protocol_name.clone());
                    for m in group.members.values_mut() {
                        if let Some(sync) = m.sync.take() {
                            let _ = sync.send(Ok(SyncResponse {
                                protocol_type: pt.clone(),
                                protocol_name: pn.clone(),
                                assignment: m.assignment.clone(),
                            }));
                        }
                    }
                }
                Ok(answer)
            }
            GroupState::Empty | GroupState::Dead => Err(group.unknown_member(&req.member_id)),
        }
    }

    /// Heartbeat: keeps the member's session alive and tells it whether a
    /// rebalance wants it to join again.
    pub fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        let now = self.clock.now_ms();
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group) else {
            return Err(GroupError::UnknownMember {
                group: group.to_owned(),
                member: member_id.to_owned(),
            });
        };
        g.check_member(member_id, instance_id)?;
        g.check_generation(generation)?;
        g.members.get_mut(member_id).expect("checked").touch(now);
        match g.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress {
                group: group.to_owned(),
            }),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => Err(g.unknown_member(member_id)),
        }
    }

    /// LeaveGroup: one result per leaving member.
    pub fn leave(&self, group: &str, leaving: &[Leaving]) -> Vec<Result<(), GroupError>> {
        let now = self.clock.now_ms();
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group) else {
            return leaving
                .iter()
                .map(|l| {
                    Err(GroupError::UnknownMember {
                        group: group.to_owned(),
                        member: l.member_id.clone(),
                    })
                })
                .collect();
        };
        let mut departed = false;
        let results = leaving
            .iter()
            .map(|l| {
                let id = match &l.instance_id {
                    Some(instance) => {
                        let Some(current) = g.statics.get(instance).cloned() else {
                            return Err(g.unknown_member(&l.member_id));
                        };
                        if !l.member_id.is_empty() && l.member_id != current {
                            return Err(GroupError::FencedInstance {
                                group: group.to_owned(),
                                instance: instance.clone(),
                            });
                        }
                        current
                    }
                    None => l.member_id.clone(),
                };
                if g.pending.remove(&id).is_some() {
                    return Ok(());
                }
                let Some(member) = g.remove_member(&id) else {
                    return Err(g.unknown_member(&id));
                };
                if let Some(join) = member.join {
                    let _ = join.send(Err(g.unknown_member(&id)));
                }
                departed = true;
                tracing::info!(group, member = %id, "member left");
                Ok(())
            })
            .collect();
        if departed {
            g.after_departure(now, self.config.initial_rebalance_delay_ms, "a member left");
        }
        results
    }

    /// Ends what time ends: expired sessions and member ids that were not
    /// used, rebalances whose timeout or initial delay passed. Returns how
    /// long until the next such deadline (`None` when nothing waits), so
    /// the server can call it again right then: a session ends on time, not
    /// at the next periodic tick.
    pub fn tick(&self) -> Option<std::time::Duration> {
        let now = self.clock.now_ms();
        let delay = self.config.initial_rebalance_delay_ms;
        let mut groups = self.lock();
        for g in groups.values_mut() {
            g.pending.retain(|_, until| *until > now);
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| m.join.is_none() && m.sync.is_none() && m.expires_ms <= now)
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                tracing::info!(group = %g.id, member = %id, "member session expired");
                g.remove_member(id);
            }
            if expired.is_empty() {
                g.try_complete_join(now);
            } else {
                g.after_departure(now, delay, "a member's session expired");
            }
        }
        let classic = groups
            .values()
            .filter_map(|g| g.next_deadline_ms(now))
            .min();
        drop(groups);
        let next = [classic, self.consumer_tick(now)]
            .into_iter()
            .flatten()
            .min()?;
        Some(std::time::Duration::from_millis(
            u64::try_from(next - now).unwrap_or(0),
        ))
    }

    /// Hook for consumer-protocol groups: runs `f` (given the number of
    /// classic groups) with the consumer groups locked, once sure that
    /// `group` is no classic group with members; an empty classic group of
    /// that id is dropped, as Kafka converts it.
    pub(crate) fn with_consumer_groups<T>(
        &self,
        group: &str,
        f: impl FnOnce(usize, &mut ConsumerGroups) -> Result<T, GroupError>,
    ) -> Result<T, GroupError> {
        let mut groups = self.lock();
        if let Some(g) = groups.get(group) {
            if !g.members.is_empty() || !g.pending.is_empty() {
                return Err(GroupError::NotConsumerGroup {
                    group: group.to_owned(),
                });
            }
            groups.remove(group);
        }
        let mut consumer = self.consumer.lock().unwrap_or_else(|e| e.into_inner());
        f(groups.len(), &mut consumer)
    }

    /// Checks that a member may commit for `group` (OffsetCommit): a
    /// current member of the current generation, or, with generation -1
    /// and no member id, anyone while the group has no members (a simple
    /// consumer, or an admin resetting offsets).
    fn check_commit(
        &self,
        groups: &mut BTreeMap<String, Group>,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
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
        // A consumer-protocol group checks member epochs instead.
        if let Some(written) = self.consumer_commit(group, member_id, generation, || {
            self.offsets.commit_nowait(group, offsets)
        }) {
            return written;
        }
        self.check_commit(&mut groups, group, member_id, instance_id, generation, now)?;
        // Written under the lock, so a rebalance cannot slip between the
        // check and the write.
        self.offsets.commit_nowait(group, offsets)
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
        self.offsets.commit_nowait(group, offsets)
    }

    /// Committed offsets of `group` (OffsetFetch).
    pub fn committed(&self, group: &str) -> BTreeMap<TopicPartition, CommittedOffset> {
        self.offsets.committed(group)
    }

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
