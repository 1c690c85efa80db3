//! Decoding of the consumer protocol's embedded bytes (the subscription and
//! assignment a classic group's members exchange through JoinGroup and
//! SyncGroup), for callers outside the Kafka server that describe groups,
//! such as the HTTP API; only this crate knows Kafka's types.

use bytes::Bytes;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

/// The partitions, by topic, that a classic group member's assignment
/// (ConsumerProtocolAssignment, any version) gives it; empty if the bytes
/// are not one (a group of another protocol type, or nothing assigned yet).
pub fn assigned_partitions(assignment: &[u8]) -> Vec<(String, Vec<i32>)> {
    let Some((version, mut bytes)) = versioned(assignment) else {
        return Vec::new();
    };
    ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3))
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .map(|tp| (tp.topic.to_string(), tp.partitions))
                .collect()
        })
        .unwrap_or_default()
}

/// The topics a classic group member's subscription
/// (ConsumerProtocolSubscription) names; empty if the bytes are not one.
pub fn subscribed_topics(subscription: &[u8]) -> Vec<String> {
    let Some((version, mut bytes)) = versioned(subscription) else {
        return Vec::new();
    };
    ConsumerProtocolSubscription::decode(&mut bytes, version.clamp(0, 3))
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// The leading version and the rest.
fn versioned(bytes: &[u8]) -> Option<(i16, Bytes)> {
    if bytes.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    Some((version, Bytes::copy_from_slice(&bytes[2..])))
}
