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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use weir_broker::Broker;
use weir_log::Clock;

use crate::GroupError;
use crate::consumer_groups::ConsumerGroups;
use crate::offsets::{
    CommittedOffset, GROUP_ID_BYTES_MAX, OffsetStore, PendingCommit, TopicPartition,
};
use crate::share_groups::ShareGroups;

use crate::classic_group::{Group, Member};
use crate::requests::{
    Answer, GroupDescription, GroupState, GroupsConfig, JoinRequest, JoinResponse, Leaving,
    SyncRequest, SyncResponse, answer, answered,
};

mod admin;
mod commits;

pub use admin::PartitionLag;

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
    /// Share groups (`share_groups`). Lock order: `groups`, `consumer`,
    /// then `share`.
    pub(crate) share: Mutex<ShareGroups>,
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
            share: Mutex::new(ShareGroups::default()),
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
            let share_groups = self.share_lock().len();
            if groups.len() + consumer_groups + share_groups >= self.config.groups_max {
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
        // A share group keeps its id, empty or not (Kafka answers
        // INCONSISTENT_GROUP_PROTOCOL).
        if self.is_share_group(&req.group) {
            return Err(GroupError::InconsistentProtocol {
                group: req.group.clone(),
                reason: "the group is a share group".to_owned(),
            });
        }
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
        let next = [classic, self.consumer_tick(now), self.share_tick(now)]
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
        let share = self.share_lock();
        if share.groups.contains_key(group) {
            return Err(GroupError::WrongGroupType {
                group: group.to_owned(),
                expected: "consumer",
            });
        }
        let others = groups.len() + share.len();
        drop(share);
        f(others, &mut consumer)
    }

    /// Hook for share groups: runs `f` (given the number of groups of the
    /// other types) with the share groups locked, once sure that `group`
    /// is no classic group (with members, or with committed offsets) and no
    /// consumer group: Kafka converts no group to or from a share group.
    /// An empty classic group that never committed is dropped.
    pub(crate) fn with_share_groups<T>(
        &self,
        group: &str,
        f: impl FnOnce(usize, &mut ShareGroups) -> Result<T, GroupError>,
    ) -> Result<T, GroupError> {
        let not_share = || GroupError::WrongGroupType {
            group: group.to_owned(),
            expected: "share",
        };
        let mut groups = self.lock();
        if let Some(g) = groups.get(group)
            && (!g.members.is_empty() || !g.pending.is_empty())
        {
            return Err(not_share());
        }
        let consumer = self.consumer.lock().unwrap_or_else(|e| e.into_inner());
        let mut locked = self.share_lock();
        if !locked.groups.contains_key(group) {
            if consumer.groups.contains_key(group) || self.offsets.has_commits(group) {
                return Err(not_share());
            }
            groups.remove(group);
        }
        let others = groups.len() + consumer.len();
        drop(consumer);
        f(others, &mut locked)
    }
}
