//! What share groups (KIP-932) take and give: ShareGroupHeartbeat requests
//! and answers, the group's state, and its description for
//! ShareGroupDescribe. The records themselves move through ShareFetch and
//! ShareAcknowledge, which live elsewhere; this is membership only.

use crate::consumer_requests::{Assignment, NamedPartitions};

/// The name of the share groups' assignor, as ShareGroupDescribe gives it
/// (Kafka's default `group.share.assignors` is also called `simple`; what
/// it does here is in `share_assignor.rs`).
pub const SHARE_ASSIGNOR: &str = "simple";

/// Most topic names one share member may subscribe to.
pub const SHARE_SUBSCRIBED_TOPICS_MAX: usize = 10_000;

/// A ShareGroupHeartbeat request (v1: the member chooses its own id).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareHeartbeat {
    pub group: String,
    /// The id the member generated for itself (a UUID for Kafka's clients).
    pub member_id: String,
    /// [`crate::JOIN_EPOCH`] to join, the member's epoch to heartbeat,
    /// [`crate::LEAVE_EPOCH`] to leave.
    pub member_epoch: i32,
    /// `None` when unchanged since the last heartbeat.
    pub rack_id: Option<String>,
    /// `None` when unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a ShareGroupHeartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareHeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment when it joined or the assignment changed;
    /// `None` otherwise.
    pub assignment: Option<Assignment>,
}

/// A share group's state, spelled as Kafka's `ShareGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShareGroupState {
    Empty,
    Stable,
}

impl ShareGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Stable => "Stable",
        }
    }
}

/// A member as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMemberDescription {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub assignment: Vec<NamedPartitions>,
}

/// A share group as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupDescription {
    pub group: String,
    pub state: ShareGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ShareMemberDescription>,
}

/// A member that left a share group, by request or because its session
/// ended: the records it holds may go back to others at once (the share
/// data path drains these through [`crate::Coordinator::take_share_departures`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareDeparture {
    pub group: String,
    pub member_id: String,
}
