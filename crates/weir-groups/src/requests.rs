//! What the group coordinator takes and gives for the classic protocol:
//! its settings, the group states, JoinGroup and SyncGroup requests and
//! answers, descriptions, and the [`Answer`] a parked request resolves
//! through when its group moves on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_channel::oneshot;

use crate::GroupError;

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
    /// How often share group members heartbeat
    /// (`group.share.heartbeat.interval.ms`).
    pub share_heartbeat_interval_ms: i32,
    /// How long a share group member stays without a heartbeat
    /// (`group.share.session.timeout.ms`).
    pub share_session_timeout_ms: i32,
    /// Most members of one share group (`group.share.max.size`).
    pub share_members_max: usize,
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
            share_heartbeat_interval_ms: 5_000,
            share_session_timeout_ms: 45_000,
            share_members_max: 200,
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

pub(crate) type Reply<T> = oneshot::Sender<Result<T, GroupError>>;

pub(crate) fn answer<T>(group: &str) -> (Reply<T>, Answer<T>) {
    let (tx, rx) = oneshot::channel();
    (tx, Answer(rx, group.to_owned()))
}

pub(crate) fn answered<T>(group: &str, result: Result<T, GroupError>) -> Answer<T> {
    let (tx, rx) = answer(group);
    let _ = tx.send(result);
    rx
}
