//! ShareGroupHeartbeat and the other calls of share groups on the
//! [`Coordinator`]: a heartbeat checked before any state is touched (with
//! Kafka's messages), joining, heartbeating and leaving, descriptions, and
//! what the share data path asks of membership (is this member assigned
//! this partition; who left).

use std::sync::MutexGuard;

use weir_broker::Broker;

use crate::consumer_requests::{
    Assignment, GroupType, JOIN_EPOCH, LEAVE_EPOCH, ListedGroup, MEMBER_ID_BYTES_MAX, TopicId,
};
use crate::offsets::GROUP_ID_BYTES_MAX;
use crate::share_groups::{ShareGroup, ShareGroups, ShareMember};
use crate::share_requests::{
    SHARE_SUBSCRIBED_TOPICS_MAX, ShareDeparture, ShareGroupDescription, ShareHeartbeat,
    ShareHeartbeatResponse,
};
use crate::{Coordinator, GroupError, GroupsConfig};

fn invalid(reason: impl Into<String>) -> GroupError {
    GroupError::InvalidRequest {
        reason: reason.into(),
    }
}

/// Refuses a malformed heartbeat as Kafka's coordinator does (same
/// messages), and what is over Weir's limits, before any state is touched.
fn validate(req: &ShareHeartbeat) -> Result<(), GroupError> {
    if req.member_id.trim().is_empty() {
        return Err(invalid("MemberId can't be empty."));
    }
    if req.group.trim().is_empty() {
        return Err(invalid("GroupId can't be empty."));
    }
    if req.rack_id.as_ref().is_some_and(|r| r.trim().is_empty()) {
        return Err(invalid("RackId can't be empty."));
    }
    if req.member_epoch == JOIN_EPOCH {
        if req
            .subscribed_topic_names
            .as_ref()
            .is_none_or(|names| names.is_empty())
        {
            return Err(invalid(
                "SubscribedTopicNames must be set in first request.",
            ));
        }
    } else if req.member_epoch < LEAVE_EPOCH {
        return Err(invalid("MemberEpoch is invalid."));
    }
    if req.group.len() > GROUP_ID_BYTES_MAX {
        return Err(GroupError::GroupIdTooLong {
            bytes: req.group.len(),
            bytes_max: GROUP_ID_BYTES_MAX,
        });
    }
    for (what, id) in [
        ("member id", Some(&req.member_id)),
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
    if let Some(names) = &req.subscribed_topic_names
        && names.len() > SHARE_SUBSCRIBED_TOPICS_MAX
    {
        return Err(invalid(format!(
            "a subscription of {} topics is over the limit of {SHARE_SUBSCRIBED_TOPICS_MAX}",
            names.len()
        )));
    }
    Ok(())
}

impl Coordinator {
    pub(crate) fn share_lock(&self) -> MutexGuard<'_, ShareGroups> {
        self.share.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// ShareGroupHeartbeat: joins, renews or leaves; always answered at
    /// once.
    pub fn share_heartbeat(
        &self,
        req: ShareHeartbeat,
    ) -> Result<ShareHeartbeatResponse, GroupError> {
        validate(&req)?;
        let now = self.now_ms();
        let config = self.config().clone();
        let broker = self.broker().clone();
        self.with_share_groups(&req.group, |other_groups, share| {
            if !share.groups.contains_key(&req.group) {
                if req.member_epoch != JOIN_EPOCH {
                    // Membership is not persisted: after a restart a member
                    // learns it must join again.
                    return Err(GroupError::UnknownMember {
                        group: req.group.clone(),
                        member: req.member_id.clone(),
                    });
                }
                if other_groups + share.len() >= config.groups_max && !share.evict_idle() {
                    return Err(GroupError::TooManyGroups {
                        groups_max: config.groups_max,
                    });
                }
                share
                    .groups
                    .insert(req.group.clone(), ShareGroup::new(&req.group));
            }
            let g = share.groups.get_mut(&req.group).expect("inserted above");
            let answer = heartbeat(g, &req, now, &config, &broker);
            g.check();
            if req.member_epoch == LEAVE_EPOCH && answer.is_ok() {
                share.departed(&req.group, &req.member_id);
            }
            answer
        })
    }

    /// ShareGroupDescribe: a share group (GroupNotFound for unknown groups
    /// and groups of other types).
    pub fn share_describe(&self, group: &str) -> Result<ShareGroupDescription, GroupError> {
        let share = self.share_lock();
        match share.groups.get(group) {
            Some(g) => Ok(g.describe(self.broker())),
            None => Err(GroupError::GroupNotFound {
                group: group.to_owned(),
            }),
        }
    }

    /// Whether `group` is a share group.
    pub fn is_share_group(&self, group: &str) -> bool {
        self.share_lock().groups.contains_key(group)
    }

    /// What a share member fetches from now: its epoch and assignment
    /// (UNKNOWN_MEMBER_ID if it is not a member; GroupNotFound if `group`
    /// is no share group). ShareFetch asks this before handing records.
    pub fn share_assignment(
        &self,
        group: &str,
        member_id: &str,
    ) -> Result<(i32, Assignment), GroupError> {
        let share = self.share_lock();
        let Some(g) = share.groups.get(group) else {
            return Err(GroupError::GroupNotFound {
                group: group.to_owned(),
            });
        };
        let Some(m) = g.members.get(member_id) else {
            return Err(g.unknown_member(member_id));
        };
        Ok((m.epoch, m.assigned.clone()))
    }

    /// Whether share member `member_id` of `group` is assigned `partition`
    /// of topic `topic` now (errors as [`Self::share_assignment`]).
    pub fn share_member_assigned(
        &self,
        group: &str,
        member_id: &str,
        topic: TopicId,
        partition: i32,
    ) -> Result<bool, GroupError> {
        let (_, assigned) = self.share_assignment(group, member_id)?;
        Ok(assigned
            .get(&topic)
            .is_some_and(|ps| ps.contains(&partition)))
    }

    /// The share members that left or whose session ended since the last
    /// call, oldest first: the records they hold can be released at once.
    pub fn take_share_departures(&self) -> Vec<ShareDeparture> {
        self.share_lock().departures.drain(..).collect()
    }

    /// Hook of [`Coordinator::list_groups`]: every share group.
    pub(crate) fn share_listed(&self) -> Vec<ListedGroup> {
        self.share_lock()
            .groups
            .values()
            .map(|g| ListedGroup {
                group: g.id.clone(),
                group_type: GroupType::Share,
                state: g.state().as_str(),
                protocol_type: "share".to_owned(),
            })
            .collect()
    }

    /// Hook of [`Coordinator::delete_group`]: deletes an empty share
    /// group; `None` if `group` is not one.
    pub(crate) fn share_delete_group(&self, group: &str) -> Option<Result<(), GroupError>> {
        let mut share = self.share_lock();
        let g = share.groups.get(group)?;
        if !g.members.is_empty() {
            return Some(Err(GroupError::NonEmptyGroup {
                group: group.to_owned(),
            }));
        }
        share.groups.remove(group);
        Some(Ok(()))
    }

    /// Hook of [`Coordinator::tick`]: ends share sessions whose time is
    /// up; returns the next session end.
    pub(crate) fn share_tick(&self, now: i64) -> Option<i64> {
        self.share_lock().tick(now, self.broker())
    }
}

/// One heartbeat of a member of share group `g` (which exists).
fn heartbeat(
    g: &mut ShareGroup,
    req: &ShareHeartbeat,
    now: i64,
    config: &GroupsConfig,
    broker: &Broker,
) -> Result<ShareHeartbeatResponse, GroupError> {
    let id = &req.member_id;
    let mut changed = None;
    match req.member_epoch {
        LEAVE_EPOCH => {
            if g.remove_member(id, "member left").is_none() {
                return Err(g.unknown_member(id));
            }
            g.refresh(broker, Some("a member left"));
            // Kafka's answer to a leave carries the id and -1 only (no
            // interval: the member will not heartbeat again).
            return Ok(ShareHeartbeatResponse {
                member_id: id.clone(),
                member_epoch: LEAVE_EPOCH,
                heartbeat_interval_ms: 0,
                assignment: None,
            });
        }
        JOIN_EPOCH => {
            if !g.members.contains_key(id) {
                if g.members.len() >= config.share_members_max {
                    return Err(GroupError::GroupFull {
                        group: g.id.clone(),
                        members_max: config.share_members_max,
                    });
                }
                g.members.insert(id.clone(), ShareMember::new(id));
                changed = Some("a member joined");
            }
            // A known member joining again (it restarted under the same
            // id) simply takes its current target.
        }
        epoch => {
            let Some(m) = g.members.get(id) else {
                return Err(g.unknown_member(id));
            };
            // A member one epoch behind whose last answer was lost is
            // answered again.
            if epoch != m.epoch && epoch != m.previous_epoch {
                return Err(g.fenced(m, epoch));
            }
        }
    }

    let m = g.members.get_mut(id).expect("a member by now");
    let before = (m.epoch, m.assigned.clone());
    m.expires_ms = now + i64::from(config.share_session_timeout_ms);
    m.client_id.clone_from(&req.client_id);
    m.client_host.clone_from(&req.client_host);
    if req.rack_id.is_some() {
        m.rack_id.clone_from(&req.rack_id);
    }
    if let Some(names) = &req.subscribed_topic_names {
        let names = names.iter().filter(|n| !n.is_empty()).cloned().collect();
        if names != m.topic_names {
            m.topic_names = names;
            changed = changed.or(Some("a member's subscription changed"));
        }
    }
    g.refresh(broker, changed);
    g.reconcile(id);
    let m = &g.members[id];
    // The member hears its assignment when it joins or sent an older
    // epoch, and whenever it changed.
    let tell = req.member_epoch != m.epoch || before.0 != m.epoch || before.1 != m.assigned;
    Ok(ShareHeartbeatResponse {
        member_id: id.clone(),
        member_epoch: m.epoch,
        heartbeat_interval_ms: config.share_heartbeat_interval_ms,
        assignment: tell.then(|| m.assigned.clone()),
    })
}
