//! ConsumerGroupHeartbeat and the other calls of consumer-protocol groups
//! on the [`Coordinator`]: validation of a heartbeat before any state is
//! touched, joining, reconciling and leaving through it, member-epoch
//! checks for commits and fetches, descriptions and listings.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::MutexGuard;

use weir_broker::Broker;

use crate::assignors::ASSIGNORS;
use crate::consumer_groups::{
    ConsumerGroup, ConsumerGroups, ConsumerMember, TopicRegex, is_subset, partitions_in, same,
};
use crate::consumer_requests::{
    Assignment, ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse, GroupType,
    JOIN_EPOCH, LEAVE_EPOCH, ListedGroup, MEMBER_ID_BYTES_MAX, STATIC_LEAVE_EPOCH,
    SUBSCRIBED_TOPICS_MAX,
};
use crate::offsets::GROUP_ID_BYTES_MAX;
use crate::{Coordinator, GroupError, GroupsConfig};

/// The member exists and is at `member_epoch` (OffsetCommit and
/// OffsetFetch of consumer-protocol groups).
pub(crate) fn check_member_epoch(
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
    /// unknown groups and classic ones, WrongGroupType for share groups:
    /// both GROUP_ID_NOT_FOUND).
    pub fn consumer_describe(&self, group: &str) -> Result<ConsumerGroupDescription, GroupError> {
        let consumer = self.consumer_lock();
        match consumer.groups.get(group) {
            Some(g) => Ok(g.describe(self.broker())),
            None if self.is_share_group(group) => Err(GroupError::WrongGroupType {
                group: group.to_owned(),
                expected: "consumer",
            }),
            None => Err(GroupError::GroupNotFound {
                group: group.to_owned(),
            }),
        }
    }

    /// Which protocol `group` speaks (classic for unknown ids).
    pub fn group_type(&self, group: &str) -> GroupType {
        if self.consumer_lock().groups.contains_key(group) {
            GroupType::Consumer
        } else if self.is_share_group(group) {
            GroupType::Share
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

    /// Every group with members or committed offsets, classic and
    /// consumer-protocol, and every share group (ListGroups).
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
        for listed in self.share_listed() {
            out.insert(listed.group.clone(), listed);
        }
        out.into_values().collect()
    }

    /// Hook of [`Coordinator::commit`]: checks a commit to a
    /// consumer-protocol group and writes it under the lock; `None` if
    /// `group` is not one.
    pub(crate) fn consumer_commit<T>(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
        write: impl FnOnce() -> Result<T, GroupError>,
    ) -> Option<Result<T, GroupError>> {
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
    if req.topic_filter.is_some() {
        m.topic_filter.clone_from(&req.topic_filter);
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
