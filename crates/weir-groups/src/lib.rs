//! `weir-groups`: Kafka consumer groups over `weir-broker`. A
//! [`Coordinator`] runs the classic group protocol (join, sync, heartbeat,
//! leave, static membership, session and rebalance timeouts) and KIP-848's
//! consumer protocol (server-side assignors, incremental reconciliation
//! through [`Coordinator::consumer_heartbeat`]) and KIP-932's share groups'
//! membership ([`Coordinator::share_heartbeat`]) as state machines driven by
//! an injected clock; an [`OffsetStore`] keeps committed
//! offsets durably in the internal `__consumer_offsets` topic; [`Coordinator::lag`]
//! compares them with the high watermarks. It owns no sockets and no
//! runtime: a parked JoinGroup or SyncGroup is answered through a
//! runtime-agnostic oneshot channel, and the server calls
//! [`Coordinator::tick`] to expire sessions and end rebalances.

mod assignors;
mod classic_group;
mod clock;
mod consumer_groups;
mod consumer_heartbeat;
mod consumer_requests;
mod coordinator;
mod error;
pub mod offsets;
mod requests;
mod share_assignor;
mod share_groups;
mod share_heartbeat;
mod share_requests;

pub use assignors::ASSIGNORS;
pub use clock::MonotonicClock;
pub use consumer_requests::{
    Assignment, ConsumerGroupDescription, ConsumerGroupState, ConsumerHeartbeat,
    ConsumerHeartbeatResponse, ConsumerMemberDescription, GroupType, JOIN_EPOCH, LEAVE_EPOCH,
    ListedGroup, MEMBER_ID_BYTES_MAX, NamedPartitions, REGEX_BYTES_MAX, STATIC_LEAVE_EPOCH,
    SUBSCRIBED_TOPICS_MAX, TopicFilter, TopicId,
};
pub use coordinator::{Coordinator, PartitionLag};
pub use error::GroupError;
pub use offsets::{
    COMMIT_PARTITIONS_MAX, CommittedOffset, GROUP_ID_BYTES_MAX, METADATA_BYTES_LIMIT,
    OFFSETS_TOPIC, OffsetStore, OffsetsConfig, PendingCommit, Recovery, SNAPSHOT_FILE,
    TopicPartition,
};
pub use requests::{
    Answer, GroupDescription, GroupState, GroupsConfig, JoinRequest, JoinResponse, JoinedMember,
    Leaving, MemberDescription, SyncRequest, SyncResponse,
};
pub use share_requests::{
    SHARE_ASSIGNOR, SHARE_SUBSCRIBED_TOPICS_MAX, ShareDeparture, ShareGroupDescription,
    ShareGroupState, ShareHeartbeat, ShareHeartbeatResponse, ShareMemberDescription,
};
