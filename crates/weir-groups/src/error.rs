//! Errors of group coordination and committed offsets, one variant per
//! answer a client can act on; `weir-kafka` maps each to a Kafka error code.

use weir_broker::BrokerError;
use weir_log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("group id must not be empty")]
    InvalidGroupId,
    #[error("group {group} is not known")]
    GroupNotFound { group: String },
    #[error("member {member} is not in group {group}")]
    UnknownMember { group: String, member: String },
    #[error(
        "a new member of group {group} must join again with the member id {member} it was given"
    )]
    MemberIdRequired { group: String, member: String },
    #[error("generation {given} is not group {group}'s current generation {current}")]
    IllegalGeneration {
        group: String,
        given: i32,
        current: i32,
    },
    #[error("group {group} is rebalancing")]
    RebalanceInProgress { group: String },
    #[error("static member {instance} of group {group} was replaced by a newer member")]
    FencedInstance { group: String, instance: String },
    #[error("session timeout {given_ms} ms is outside the broker's range {min_ms}..={max_ms} ms")]
    InvalidSessionTimeout {
        given_ms: i32,
        min_ms: i32,
        max_ms: i32,
    },
    #[error("group {group}: {reason}")]
    InconsistentProtocol { group: String, reason: String },
    #[error("group {group} is a classic group with members, not a consumer group")]
    NotConsumerGroup { group: String },
    #[error("group {group} is not a {expected} group")]
    WrongGroupType {
        group: String,
        /// The type the request is for ("classic", "consumer", "share").
        expected: &'static str,
    },
    #[error("member {member} of group {group} is fenced: epoch {given} is not its epoch {current}")]
    FencedMemberEpoch {
        group: String,
        member: String,
        given: i32,
        current: i32,
    },
    #[error("member {member} of group {group} is at epoch {current}, not {given}")]
    StaleMemberEpoch {
        group: String,
        member: String,
        given: i32,
        current: i32,
    },
    #[error("static member {instance} of group {group} has not left yet")]
    UnreleasedInstanceId { group: String, instance: String },
    #[error("server assignor {assignor} is not one of uniform, range")]
    UnsupportedAssignor { assignor: String },
    #[error("regular expression {regex:?} is not valid: {reason}")]
    InvalidRegex { regex: String, reason: String },
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    #[error("group {group} has {members_max} members already")]
    GroupFull { group: String, members_max: usize },
    #[error("the broker holds groups_max {groups_max} groups already")]
    TooManyGroups { groups_max: usize },
    #[error("group {group} has active members")]
    NonEmptyGroup { group: String },
    #[error("group {group} is subscribed to topic {topic}")]
    SubscribedToTopic { group: String, topic: String },
    #[error("commit metadata of {bytes} bytes is over the limit of {bytes_max}")]
    MetadataTooLarge { bytes: usize, bytes_max: usize },
    #[error("group id of {bytes} bytes is over the limit of {bytes_max}")]
    GroupIdTooLong { bytes: usize, bytes_max: usize },
    #[error(
        "a commit of group {group} names {partitions} partitions, over the limit of {partitions_max}"
    )]
    TooManyPartitions {
        group: String,
        partitions: usize,
        partitions_max: usize,
    },
    #[error("a commit of {bytes} bytes is over the limit of {bytes_max} of __consumer_offsets")]
    CommitTooLarge { bytes: usize, bytes_max: usize },
    #[error("the broker holds offsets_max {offsets_max} committed offsets already")]
    TooManyOffsets { offsets_max: usize },
    #[error("invalid offsets config: {field} {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("committed offsets are corrupt: {reason}")]
    Corrupt { reason: String },
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Log(#[from] LogError),
}
