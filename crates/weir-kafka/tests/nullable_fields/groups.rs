//! The group APIs' cases of `nullable_fields.rs`: classic groups (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, DescribeGroups), offsets (OffsetCommit,
//! OffsetFetch), KIP-848 consumer groups and KIP-932 share groups'
//! membership and data path.

use kafka_protocol::messages::*;

use super::Want::{Is, Null, Set};
use super::{Walk, name, s, set, text};

pub(super) fn join_request(group: &str, member: &str, version: i16) -> JoinGroupRequest {
    use join_group_request::JoinGroupRequestProtocol;
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(60_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(b"subscription".to_vec().into()),
        ]);
    if version >= 1 {
        request.with_rebalance_timeout_ms(60_000)
    } else {
        request
    }
}

pub(super) const MEMBER_ID_REQUIRED: i16 = 79;

/// Joins `group` at `version` (twice from v4, which first hands out a
/// member id); checks both answers' nullable fields.
pub(super) fn join(w: &mut Walk, group: &str, v: i16) -> JoinGroupResponse {
    let mut r: JoinGroupResponse = w.call(ApiKey::JoinGroup, v, &join_request(group, "", v));
    if v >= 4 {
        assert_eq!(r.error_code, MEMBER_ID_REQUIRED, "v{v}");
        // An error: no protocol (null where the field may be, else empty).
        let want = if v >= 7 { Null } else { Is("") };
        w.check("JoinGroup protocol_name", v, text(&r.protocol_name), want);
        w.check("JoinGroup protocol_type", v, text(&r.protocol_type), Null);
        let member = r.member_id.to_string();
        r = w.call(ApiKey::JoinGroup, v, &join_request(group, &member, v));
    }
    assert_eq!(r.error_code, 0, "JoinGroup v{v}");
    w.check(
        "JoinGroup protocol_name",
        v,
        text(&r.protocol_name),
        Is("range"),
    );
    w.check(
        "JoinGroup protocol_type",
        v,
        text(&r.protocol_type),
        Is("consumer"),
    );
    let instance = text(&r.members[0].group_instance_id);
    w.check("JoinGroup member group_instance_id", v, instance, Null);
    r
}

pub(super) fn join_group(w: &mut Walk, v: i16) {
    join(w, &format!("join-{v}"), v);
}

pub(super) fn sync_group(w: &mut Walk, v: i16, known: bool) {
    let member = if known {
        w.member.clone()
    } else {
        "nobody".into()
    };
    let mut request = SyncGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(w.generation)
        .with_member_id(s(&member))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(b"assignment".to_vec().into()),
        ]);
    if v >= 5 {
        request = request
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")));
    }
    let r: SyncGroupResponse = w.call(ApiKey::SyncGroup, v, &request);
    assert_eq!(r.error_code == 0, known, "SyncGroup v{v}: {}", r.error_code);
    let (kind, name) = if known {
        (Is("consumer"), Is("range"))
    } else {
        (Null, Null)
    };
    w.check("SyncGroup protocol_type", v, text(&r.protocol_type), kind);
    w.check("SyncGroup protocol_name", v, text(&r.protocol_name), name);
}

pub(super) fn heartbeat(w: &mut Walk, v: i16) {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(w.generation)
        .with_member_id(s(&w.member));
    let r: HeartbeatResponse = w.call(ApiKey::Heartbeat, v, &request);
    assert_eq!(r.error_code, 0, "Heartbeat v{v} (no nullable fields)");
}

pub(super) fn leave_group(w: &mut Walk, v: i16) {
    let request = LeaveGroupRequest::default().with_group_id(GroupId(s("g")));
    let request = if v >= 3 {
        request.with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s("nobody")),
        ])
    } else {
        request.with_member_id(s("nobody"))
    };
    let r: LeaveGroupResponse = w.call(ApiKey::LeaveGroup, v, &request);
    if v >= 3 {
        // A dynamic member: no instance id.
        let instance = text(&r.members[0].group_instance_id);
        w.check("LeaveGroup member group_instance_id", v, instance, Null);
    }
}

pub(super) fn offset_commit(w: &mut Walk, v: i16) {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("commits")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_committed_offset(1)
                        .with_committed_metadata(Some(s("meta"))),
                ]),
        ]);
    let r: OffsetCommitResponse = w.call(ApiKey::OffsetCommit, v, &request);
    let code = r.topics[0].partitions[0].error_code;
    assert_eq!(code, 0, "OffsetCommit v{v} (no nullable fields)");
}

pub(super) fn offset_fetch(w: &mut Walk, v: i16) {
    // Committed with metadata on t-0; nothing committed on t-1, for which
    // Kafka sends empty metadata, not null.
    if v >= 8 {
        let request = OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("commits")))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(name("t"))
                        .with_partition_indexes(vec![0, 1]),
                ])),
        ]);
        let r: OffsetFetchResponse = w.call(ApiKey::OffsetFetch, v, &request);
        let p = &r.groups[0].topics[0].partitions;
        let field = "OffsetFetch group partition metadata";
        w.check(field, v, text(&p[0].metadata), Is("meta"));
        w.check(field, v, text(&p[1].metadata), Is(""));
    } else {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("commits")))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(name("t"))
                    .with_partition_indexes(vec![0, 1]),
            ]));
        let r: OffsetFetchResponse = w.call(ApiKey::OffsetFetch, v, &request);
        let p = &r.topics[0].partitions;
        let field = "OffsetFetch partition metadata";
        w.check(field, v, text(&p[0].metadata), Is("meta"));
        w.check(field, v, text(&p[1].metadata), Is(""));
    }
}

pub(super) fn describe_groups(w: &mut Walk, v: i16) {
    let request = DescribeGroupsRequest::default().with_groups(vec![
        GroupId(s("g")),
        GroupId(s("")),
        GroupId(s("no-such-group")),
    ]);
    let r: DescribeGroupsResponse = w.call(ApiKey::DescribeGroups, v, &request);
    let (g, invalid, missing) = (&r.groups[0], &r.groups[1], &r.groups[2]);
    assert_eq!((g.error_code, invalid.error_code), (0, 24), "v{v}");
    // KIP-1043: from v6 a group that does not exist is GROUP_ID_NOT_FOUND
    // with a message; before, it is described as Dead.
    if v >= 6 {
        assert_eq!(missing.error_code, 69, "v{v}");
        assert!(
            text(&missing.error_message).is_some_and(|m| m.contains("no-such-group")),
            "v{v}"
        );
    } else {
        assert_eq!(
            (missing.error_code, missing.group_state.as_str()),
            (0, "Dead"),
            "v{v}"
        );
    }
    w.check(
        "DescribeGroups error_message",
        v,
        text(&g.error_message),
        Null,
    );
    w.check(
        "DescribeGroups error_message",
        v,
        text(&invalid.error_message),
        Set,
    );
    let instance = text(&g.members[0].group_instance_id);
    w.check("DescribeGroups member group_instance_id", v, instance, Null);
}

/// A new member id, as a KIP-1082 client makes one.
pub(super) fn fresh_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    uuid::Uuid::from_u128(u128::from(NEXT.fetch_add(1, Ordering::Relaxed)) << 64).to_string()
}

/// A KIP-848 member joining `group`, at `v`.
pub(super) fn consumer_join(w: &mut Walk, group: &str, v: i16) -> ConsumerGroupHeartbeatResponse {
    // v1 members choose their own id (KIP-1082).
    let member = if v >= 1 { fresh_id() } else { String::new() };
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(&member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![name("t")]))
        .with_topic_partitions(Some(vec![]));
    w.call(ApiKey::ConsumerGroupHeartbeat, v, &request)
}

pub(super) fn consumer_group_heartbeat(w: &mut Walk, v: i16) {
    let r = consumer_join(w, &format!("consumers-{v}"), v);
    assert_eq!(r.error_code, 0, "v{v}: {:?}", r.error_message);
    w.check(
        "ConsumerGroupHeartbeat error_message",
        v,
        text(&r.error_message),
        Null,
    );
    w.check(
        "ConsumerGroupHeartbeat member_id",
        v,
        text(&r.member_id),
        Set,
    );
    // An unknown member: only the error.
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(&format!("consumers-{v}"))))
        .with_member_id(s(&fresh_id()))
        .with_member_epoch(5)
        .with_rebalance_timeout_ms(-1);
    let r: ConsumerGroupHeartbeatResponse = w.call(ApiKey::ConsumerGroupHeartbeat, v, &request);
    assert_ne!(r.error_code, 0, "v{v}");
    w.check(
        "ConsumerGroupHeartbeat error_message",
        v,
        text(&r.error_message),
        Set,
    );
    w.check(
        "ConsumerGroupHeartbeat member_id",
        v,
        text(&r.member_id),
        Null,
    );
    w.check(
        "ConsumerGroupHeartbeat assignment",
        v,
        set(&r.assignment),
        Null,
    );
}

pub(super) fn consumer_group_describe(w: &mut Walk, v: i16) {
    let group = format!("described-{v}");
    consumer_join(w, &group, 0);
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s(&group)), GroupId(s("no-such"))]);
    let r: ConsumerGroupDescribeResponse = w.call(ApiKey::ConsumerGroupDescribe, v, &request);
    let (g, missing) = (&r.groups[0], &r.groups[1]);
    w.check(
        "ConsumerGroupDescribe error_message",
        v,
        text(&g.error_message),
        Null,
    );
    w.check(
        "ConsumerGroupDescribe error_message",
        v,
        text(&missing.error_message),
        Set,
    );
    let m = &g.members[0];
    let (instance, rack) = (text(&m.instance_id), text(&m.rack_id));
    w.check(
        "ConsumerGroupDescribe member instance_id",
        v,
        instance,
        Null,
    );
    w.check("ConsumerGroupDescribe member rack_id", v, rack, Null);
    let regex = text(&m.subscribed_topic_regex);
    w.check(
        "ConsumerGroupDescribe member subscribed_topic_regex",
        v,
        regex,
        Null,
    );
}

fn share_join(w: &mut Walk, group: &str, v: i16) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(&fresh_id()))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![name("t")]));
    w.call(ApiKey::ShareGroupHeartbeat, v, &request)
}

pub(super) fn share_group_heartbeat(w: &mut Walk, v: i16) {
    let r = share_join(w, &format!("share-{v}"), v);
    assert_eq!(r.error_code, 0, "v{v}: {:?}", r.error_message);
    w.check(
        "ShareGroupHeartbeat error_message",
        v,
        text(&r.error_message),
        Null,
    );
    w.check("ShareGroupHeartbeat member_id", v, text(&r.member_id), Set);
    w.check("ShareGroupHeartbeat assignment", v, set(&r.assignment), Set);
    // An unknown member: only the error.
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(&format!("share-{v}"))))
        .with_member_id(s(&fresh_id()))
        .with_member_epoch(5);
    let r: ShareGroupHeartbeatResponse = w.call(ApiKey::ShareGroupHeartbeat, v, &request);
    assert_ne!(r.error_code, 0, "v{v}");
    w.check(
        "ShareGroupHeartbeat error_message",
        v,
        text(&r.error_message),
        Set,
    );
    w.check("ShareGroupHeartbeat member_id", v, text(&r.member_id), Null);
    w.check(
        "ShareGroupHeartbeat assignment",
        v,
        set(&r.assignment),
        Null,
    );
}

pub(super) fn share_group_describe(w: &mut Walk, v: i16) {
    let group = format!("share-described-{v}");
    share_join(w, &group, v);
    let request = ShareGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s(&group)), GroupId(s("no-such"))]);
    let r: ShareGroupDescribeResponse = w.call(ApiKey::ShareGroupDescribe, v, &request);
    let (g, missing) = (&r.groups[0], &r.groups[1]);
    w.check(
        "ShareGroupDescribe error_message",
        v,
        text(&g.error_message),
        Null,
    );
    w.check(
        "ShareGroupDescribe error_message",
        v,
        text(&missing.error_message),
        Set,
    );
    w.check(
        "ShareGroupDescribe member rack_id",
        v,
        text(&g.members[0].rack_id),
        Null,
    );
}

/// A share member of `group` with a session open (epoch 0); its id.
fn share_session(w: &mut Walk, group: &str) -> String {
    let member = share_join(w, group, 1).member_id.unwrap().to_string();
    let r: ShareFetchResponse = w.call(
        ApiKey::ShareFetch,
        1,
        &share_fetch_request(w, group, &member, 0),
    );
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    member
}

fn share_fetch_request(w: &Walk, group: &str, member: &str, epoch: i32) -> ShareFetchRequest {
    use share_fetch_request::{FetchPartition, FetchTopic};
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s(group))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(w.topic_id("t"))
                .with_partitions(vec![FetchPartition::default().with_partition_index(0)]),
        ])
}

pub(super) fn share_fetch(w: &mut Walk, v: i16) {
    use share_fetch_request::AcknowledgementBatch;
    let group = format!("share-fetch-{v}");
    let member = share_session(w, &group);
    // Epoch 1 acknowledging a record it does not hold: the partition
    // answers with its acknowledgement error.
    let mut request = share_fetch_request(w, &group, &member, 1);
    request.topics[0].partitions[0].acknowledgement_batches = vec![
        AcknowledgementBatch::default()
            .with_first_offset(999)
            .with_last_offset(999)
            .with_acknowledge_types(vec![1]),
    ];
    let r: ShareFetchResponse = w.call(ApiKey::ShareFetch, v, &request);
    w.check("ShareFetch error_message", v, text(&r.error_message), Null);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.acknowledge_error_code, 121, "INVALID_RECORD_STATE");
    w.check(
        "ShareFetch partition error_message",
        v,
        text(&p.error_message),
        Null,
    );
    w.check(
        "ShareFetch partition acknowledge_error_message",
        v,
        text(&p.acknowledge_error_message),
        Set,
    );
    w.check("ShareFetch partition records", v, set(&p.records), Set);
    // A member the group does not know: only the error.
    let r: ShareFetchResponse = w.call(
        ApiKey::ShareFetch,
        v,
        &share_fetch_request(w, &group, "ghost", 0),
    );
    assert_eq!(r.error_code, 25);
    w.check("ShareFetch error_message", v, text(&r.error_message), Set);
}

pub(super) fn share_acknowledge(w: &mut Walk, v: i16) {
    use share_acknowledge_request::{AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch};
    let group = format!("share-ack-{v}");
    let member = share_session(w, &group);
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s(&group))))
        .with_member_id(Some(s(&member)))
        .with_share_session_epoch(1)
        .with_topics(vec![
            AcknowledgeTopic::default()
                .with_topic_id(w.topic_id("t"))
                .with_partitions(vec![
                    AcknowledgePartition::default().with_acknowledgement_batches(vec![
                        AcknowledgementBatch::default()
                            .with_first_offset(999)
                            .with_last_offset(999)
                            .with_acknowledge_types(vec![1]),
                    ]),
                ]),
        ]);
    let r: ShareAcknowledgeResponse = w.call(ApiKey::ShareAcknowledge, v, &request);
    w.check(
        "ShareAcknowledge error_message",
        v,
        text(&r.error_message),
        Null,
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 121, "INVALID_RECORD_STATE");
    w.check(
        "ShareAcknowledge partition error_message",
        v,
        text(&p.error_message),
        Set,
    );
    // The wrong epoch: only the error.
    let r: ShareAcknowledgeResponse = w.call(ApiKey::ShareAcknowledge, v, &request);
    assert_eq!(r.error_code, 123);
    w.check(
        "ShareAcknowledge error_message",
        v,
        text(&r.error_message),
        Set,
    );
}

pub(super) fn describe_share_group_offsets(w: &mut Walk, v: i16) {
    use describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
    let group = format!("share-offsets-{v}");
    share_session(w, &group);
    let groups = [group.as_str(), "no-such"]
        .iter()
        .map(|g| {
            // Null topics: every partition the group has state for.
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(s(g)))
                .with_topics(None)
        })
        .collect();
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(groups);
    let r: DescribeShareGroupOffsetsResponse =
        w.call(ApiKey::DescribeShareGroupOffsets, v, &request);
    let (g, missing) = (&r.groups[0], &r.groups[1]);
    w.check(
        "DescribeShareGroupOffsets group error_message",
        v,
        text(&g.error_message),
        Null,
    );
    w.check(
        "DescribeShareGroupOffsets group error_message",
        v,
        text(&missing.error_message),
        Set,
    );
    let p = &g.topics[0].partitions[0];
    w.check(
        "DescribeShareGroupOffsets partition error_message",
        v,
        text(&p.error_message),
        Null,
    );
}
