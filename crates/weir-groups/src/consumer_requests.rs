//! What consumer-protocol groups (KIP-848) take and give: topic ids and
//! assignments, the epochs a member sends, ConsumerGroupHeartbeat requests
//! and answers, and the descriptions and listings of groups.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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

/// Which topics a member may see (the protocol layer's authorization,
/// DESCRIBE on the topic): its regular expression subscription matches
/// only these, as Kafka filters a regex's topics by the member's rights.
/// Asked afresh at each resolution, so a changed ACL counts from the next
/// one.
#[derive(Clone)]
pub struct TopicFilter(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl TopicFilter {
    pub fn new(allows: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(allows))
    }

    pub fn allows(&self, topic: &str) -> bool {
        (self.0)(topic)
    }
}

impl std::fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TopicFilter")
    }
}

/// Two filters are equal when they are the same one.
impl PartialEq for TopicFilter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TopicFilter {}

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
    /// The topics the regex may match; `None`: every one (no
    /// authorization), or the one given before.
    pub topic_filter: Option<TopicFilter>,
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
    /// A share group (KIP-932).
    Share,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Consumer => "consumer",
            Self::Share => "share",
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
