//! The one table from Weir's errors to Kafka error codes.

use weir_broker::BrokerError;
use weir_groups::GroupError;
use weir_log::LogError;

/// Kafka error codes Weir answers with (names as in Kafka's `Errors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum Code {
    UnknownServerError = -1,
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    MessageTooLarge = 10,
    OffsetMetadataTooLarge = 12,
    CoordinatorNotAvailable = 15,
    InvalidTopicException = 17,
    InvalidRequiredAcks = 21,
    InvalidTimestamp = 32,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    InvalidCommitOffsetSize = 28,
    TopicAuthorizationFailed = 29,
    GroupAuthorizationFailed = 30,
    ClusterAuthorizationFailed = 31,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidReplicaAssignment = 39,
    InvalidConfig = 40,
    InvalidRequest = 42,
    UnsupportedSaslMechanism = 33,
    IllegalSaslState = 34,
    SaslAuthenticationFailed = 58,
    ResourceNotFound = 91,
    DuplicateResource = 92,
    UnacceptableCredential = 93,
    OutOfOrderSequenceNumber = 45,
    InvalidProducerEpoch = 47,
    InvalidTxnState = 48,
    InvalidProducerIdMapping = 49,
    InvalidTransactionTimeout = 50,
    ConcurrentTransactions = 51,
    PolicyViolation = 44,
    TransactionalIdAuthorizationFailed = 53,
    SecurityDisabled = 54,
    OperationNotAttempted = 55,
    KafkaStorageError = 56,
    LogDirNotFound = 57,
    UnknownProducerId = 59,
    NonEmptyGroup = 68,
    FencedLeaderEpoch = 74,
    UnknownLeaderEpoch = 75,
    GroupIdNotFound = 69,
    MemberIdRequired = 79,
    GroupMaxSizeReached = 81,
    FencedInstanceId = 82,
    ElectionNotNeeded = 84,
    NoReassignmentInProgress = 85,
    GroupSubscribedToTopic = 86,
    InvalidRecord = 87,
    ProducerFenced = 90,
    UnknownTopicId = 100,
    TransactionalIdNotFound = 105,
    FencedMemberEpoch = 110,
    UnreleasedInstanceId = 111,
    UnsupportedAssignor = 112,
    StaleMemberEpoch = 113,
    MismatchedEndpointType = 114,
    UnsupportedEndpointType = 115,
    InvalidRecordState = 121,
    ShareSessionNotFound = 122,
    InvalidShareSessionEpoch = 123,
    InvalidRegularExpression = 128,
    ShareSessionLimitReached = 133,
}

impl Code {
    pub fn code(self) -> i16 {
        self as i16
    }
}

/// The Kafka error code for a broker error.
pub fn for_broker_error(err: &BrokerError) -> Code {
    match err {
        BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. } => {
            Code::UnknownTopicOrPartition
        }
        BrokerError::TopicAlreadyExists { .. } => Code::TopicAlreadyExists,
        BrokerError::InvalidTopic { .. } => Code::InvalidTopicException,
        BrokerError::InvalidPartitions { .. } => Code::InvalidPartitions,
        BrokerError::InvalidReplicationFactor { .. } => Code::InvalidReplicationFactor,
        BrokerError::InvalidConfig { .. } => Code::InvalidConfig,
        BrokerError::PolicyViolation { .. } => Code::PolicyViolation,
        BrokerError::MessageTooLarge { .. } => Code::MessageTooLarge,
        BrokerError::CorruptMessage { .. } | BrokerError::InvalidRecords { .. } => {
            Code::CorruptMessage
        }
        BrokerError::InvalidTimestamp { .. } => Code::InvalidTimestamp,
        BrokerError::OutOfOrderSequence { .. } => Code::OutOfOrderSequenceNumber,
        BrokerError::InvalidProducerEpoch { .. } => Code::InvalidProducerEpoch,
        BrokerError::UnknownProducerId { .. } => Code::UnknownProducerId,
        BrokerError::ControlRecordsRefused { .. }
        | BrokerError::KeyRequired { .. }
        | BrokerError::RecordRefused { .. } => Code::InvalidRecord,
        BrokerError::DeleteRecordsOutOfRange { .. } => Code::OffsetOutOfRange,
        BrokerError::Log(e) => for_log_error(e),
        BrokerError::Registry { .. } => Code::UnknownServerError,
    }
}

/// The Kafka error code for a log error met while serving a request.
pub fn for_log_error(err: &LogError) -> Code {
    match err {
        LogError::OffsetOutOfRange { .. } | LogError::StartPastHighWatermark { .. } => {
            Code::OffsetOutOfRange
        }
        LogError::Batch(_) => Code::CorruptMessage,
        LogError::InvalidConfig { .. } => Code::InvalidConfig,
        LogError::InvalidName { .. } => Code::InvalidTopicException,
        LogError::Io { .. }
        | LogError::ReadOnly { .. }
        | LogError::SyncFailed { .. }
        | LogError::CorruptSegment { .. }
        | LogError::CorruptCheckpoint { .. }
        | LogError::InvalidSnapshot { .. }
        | LogError::Closed { .. }
        | LogError::Locked { .. }
        | LogError::OffsetOverflow { .. } => Code::KafkaStorageError,
    }
}

/// The Kafka error code for a group coordination or offset error.
pub fn for_group_error(err: &GroupError) -> Code {
    match err {
        GroupError::InvalidGroupId | GroupError::GroupIdTooLong { .. } => Code::InvalidGroupId,
        GroupError::GroupNotFound { .. }
        | GroupError::NotConsumerGroup { .. }
        | GroupError::WrongGroupType { .. } => Code::GroupIdNotFound,
        GroupError::FencedMemberEpoch { .. } => Code::FencedMemberEpoch,
        GroupError::StaleMemberEpoch { .. } => Code::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId { .. } => Code::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor { .. } => Code::UnsupportedAssignor,
        GroupError::InvalidRegex { .. } => Code::InvalidRegularExpression,
        GroupError::InvalidRequest { .. } => Code::InvalidRequest,
        GroupError::UnknownMember { .. } => Code::UnknownMemberId,
        GroupError::MemberIdRequired { .. } => Code::MemberIdRequired,
        GroupError::IllegalGeneration { .. } => Code::IllegalGeneration,
        GroupError::RebalanceInProgress { .. } => Code::RebalanceInProgress,
        GroupError::FencedInstance { .. } => Code::FencedInstanceId,
        GroupError::InvalidSessionTimeout { .. } => Code::InvalidSessionTimeout,
        GroupError::InconsistentProtocol { .. } => Code::InconsistentGroupProtocol,
        // Kafka has no code for "too many groups"; this is the nearest
        // limit a client reports as such rather than retrying.
        GroupError::GroupFull { .. } | GroupError::TooManyGroups { .. } => {
            Code::GroupMaxSizeReached
        }
        GroupError::NonEmptyGroup { .. } => Code::NonEmptyGroup,
        GroupError::SubscribedToTopic { .. } => Code::GroupSubscribedToTopic,
        GroupError::MetadataTooLarge { .. } => Code::OffsetMetadataTooLarge,
        GroupError::TooManyPartitions { .. } | GroupError::CommitTooLarge { .. } => {
            Code::InvalidCommitOffsetSize
        }
        GroupError::TooManyOffsets { .. } => Code::PolicyViolation,
        GroupError::InvalidConfig { .. } => Code::UnknownServerError,
        GroupError::Corrupt { .. } => Code::KafkaStorageError,
        GroupError::Broker(e) => for_broker_error(e),
        GroupError::Log(e) => for_log_error(e),
    }
}

/// The Kafka error code for a transaction coordinator's refusal. A fenced
/// producer is PRODUCER_FENCED from the versions that know it (KIP-588),
/// INVALID_PRODUCER_EPOCH before.
pub fn for_txn_error(err: &weir_txn::TxnError, fenced_code: Code) -> Code {
    use weir_txn::TxnError as T;
    match err {
        T::InvalidTransactionalId(_) | T::TooManyPartitions { .. } => Code::InvalidRequest,
        T::InvalidTimeout { .. } => Code::InvalidTransactionTimeout,
        T::InvalidProducerIdMapping { .. } => Code::InvalidProducerIdMapping,
        T::Fenced { .. } => fenced_code,
        T::ConcurrentTransactions(_) => Code::ConcurrentTransactions,
        T::InvalidTxnState { .. } => Code::InvalidTxnState,
        T::UnknownTransactionalId(_) => Code::TransactionalIdNotFound,
        // Retriable: the client tries again (the coordinator's state did
        // not change).
        T::Storage(_) => Code::CoordinatorNotAvailable,
    }
}
