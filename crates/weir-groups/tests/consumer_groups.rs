//! KIP-848 consumer-protocol groups under a manual clock: joining,
//! server-side assignment, incremental reconciliation (a partition moves
//! only after its holder reported revoking it), leaving, session and
//! rebalance timeouts, epochs on heartbeats and commits, static members,
//! topic changes, and the boundary with classic groups. Members are
//! modelled as a client would behave ([`Client`]), and after every step no
//! partition may be held by two members.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_groups::{
    Assignment, CommittedOffset, ConsumerGroupState, ConsumerHeartbeat, ConsumerHeartbeatResponse,
    Coordinator, GroupError, GroupsConfig, JoinRequest, OffsetStore, OffsetsConfig, TopicId,
    TopicPartition,
};
use weir_log::{DataDir, DirConfig, ManualClock};

const SESSION_MS: i32 = 45_000;
const REBALANCE_MS: i32 = 10_000;
const INTERVAL_MS: i32 = 5_000;

struct Fixture {
    clock: ManualClock,
    broker: Arc<Broker>,
    groups: Coordinator,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path(), DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    broker.create_topic("orders", 6, -1, &[], false).unwrap();
    let offsets = Arc::new(OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap());
    let clock = ManualClock::new(1_000_000);
    let groups = Coordinator::new(
        GroupsConfig::default(),
        Arc::new(clock.clone()),
        broker.clone(),
        offsets,
    );
    Fixture {
        clock,
        broker,
        groups,
        _dir: dir,
    }
}

fn request(member: &str, epoch: i32) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group: "g".to_owned(),
        member_id: member.to_owned(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        client_member_ids: true,
        ..ConsumerHeartbeat::default()
    }
}

fn joining(member: &str, topics: &[&str]) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        rebalance_timeout_ms: REBALANCE_MS,
        subscribed_topic_names: Some(topics.iter().map(|t| (*t).to_owned()).collect()),
        subscribed_topic_regex: Some(String::new()),
        owned: Some(Assignment::new()),
        ..request(member, 0)
    }
}

/// A member behaving as librdkafka does: it reports what it holds, and
/// applies each assignment it hears (revoking first) before the next
/// heartbeat.
struct Client {
    id: String,
    epoch: i32,
    held: Assignment,
}

impl Client {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            epoch: 0,
            held: Assignment::new(),
        }
    }

    fn apply(&mut self, r: &ConsumerHeartbeatResponse) {
        self.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            self.held = a.clone();
        }
    }

    fn partitions(&self) -> Vec<i32> {
        self.held.values().flatten().copied().collect()
    }
}

impl Fixture {
    fn orders(&self) -> TopicId {
        TopicId(self.broker.topic("orders").unwrap().id)
    }

    fn beat(&self, req: ConsumerHeartbeat) -> Result<ConsumerHeartbeatResponse, GroupError> {
        let answer = self.groups.consumer_heartbeat(req);
        self.assert_exclusive();
        answer
    }

    fn join(&self, c: &mut Client, topics: &[&str]) {
        let r = self.beat(joining(&c.id, topics)).unwrap();
        assert_eq!(r.heartbeat_interval_ms, INTERVAL_MS);
        assert!(
            r.assignment.is_some(),
            "a joining member hears its assignment"
        );
        c.apply(&r);
    }

    /// One heartbeat reporting what the client holds.
    fn step(&self, c: &mut Client) -> ConsumerHeartbeatResponse {
        let r = self
            .beat(ConsumerHeartbeat {
                owned: Some(c.held.clone()),
                ..request(&c.id, c.epoch)
            })
            .unwrap();
        c.apply(&r);
        r
    }

    fn after(&self, ms: i64) {
        self.clock.advance(ms);
        self.groups.tick();
        self.assert_exclusive();
    }

    /// No partition is held (assigned or being revoked) by two members.
    fn assert_exclusive(&self) {
        let Ok(d) = self.groups.consumer_describe("g") else {
            return;
        };
        let mut seen = BTreeMap::new();
        for m in &d.members {
            for p in &m.assignment {
                for partition in &p.partitions {
                    if let Some(other) = seen.insert((p.topic_id, *partition), m.member_id.clone())
                    {
                        panic!(
                            "{}-{partition} held by {other} and {}",
                            p.topic, m.member_id
                        );
                    }
                }
            }
        }
    }

    fn held_by(&self, member: &str) -> BTreeSet<i32> {
        let d = self.groups.consumer_describe("g").unwrap();
        let m = d.members.iter().find(|m| m.member_id == member).unwrap();
        m.assignment
            .iter()
            .flat_map(|p| p.partitions.clone())
            .collect()
    }

    fn state(&self) -> ConsumerGroupState {
        self.groups.consumer_describe("g").unwrap().state
    }
}

fn all(range: std::ops::Range<i32>) -> Vec<i32> {
    range.collect()
}

#[test]
fn a_first_member_gets_every_partition_at_once() {
    let f = fixture();
    let mut a = Client::new("a");
    f.join(&mut a, &["orders"]);
    assert_eq!(a.epoch, 1);
    assert_eq!(a.partitions(), all(0..6));
    assert_eq!(a.held.keys().copied().collect::<Vec<_>>(), vec![f.orders()]);
    // Nothing new to hear: the next heartbeat carries no assignment.
    let r = f.step(&mut a);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.assignment, None);
    let d = f.groups.consumer_describe("g").unwrap();
    assert_eq!(
        (
            d.state,
            d.group_epoch,
            d.assignment_epoch,
            d.assignor.as_str()
        ),
        (ConsumerGroupState::Stable, 1, 1, "uniform")
    );
    assert_eq!(d.members[0].subscribed_topic_names, vec!["orders"]);
}

#[test]
fn partitions_move_to_a_new_member_only_after_their_holder_revoked_them() {
    let f = fixture();
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    f.join(&mut a, &["orders"]);
    f.join(&mut b, &["orders"]);
    // b is at the new epoch but gets nothing a still holds.
    assert_eq!((b.epoch, b.partitions()), (2, vec![]));
    assert_eq!(f.state(), ConsumerGroupState::Reconciling);
    f.step(&mut b);
    assert!(b.partitions().is_empty());
    // a hears what it keeps, at its old epoch: it must revoke first.
    let r = f.step(&mut a);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(a.partitions().len(), 3);
    let revoked: BTreeSet<i32> = (0..6).filter(|p| !a.partitions().contains(p)).collect();
    // Until a reports, its revoked partitions are still its own.
    assert_eq!(f.held_by("a").len(), 6);
    f.step(&mut b);
    assert!(b.partitions().is_empty(), "nothing moves before the report");
    // a's report (holding only what it keeps) releases them.
    let r = f.step(&mut a);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(f.held_by("a").len(), 3);
    let r = f.step(&mut b);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(b.partitions().into_iter().collect::<BTreeSet<_>>(), revoked);
    assert_eq!(f.state(), ConsumerGroupState::Stable);
    // A third member: 2 each, again through revocation.
    let mut c = Client::new("c");
    f.join(&mut c, &["orders"]);
    for _ in 0..3 {
        f.step(&mut a);
        f.step(&mut b);
        f.step(&mut c);
    }
    assert_eq!(
        [
            a.partitions().len(),
            b.partitions().len(),
            c.partitions().len()
        ],
        [2, 2, 2]
    );
    assert_eq!(f.state(), ConsumerGroupState::Stable);
    assert_eq!(a.epoch, 3);
}

#[test]
fn a_member_that_leaves_frees_its_partitions_for_the_others() {
    let f = fixture();
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    f.join(&mut a, &["orders"]);
    f.join(&mut b, &["orders"]);
    for _ in 0..2 {
        f.step(&mut a);
        f.step(&mut b);
    }
    assert_eq!(b.partitions().len(), 3);
    let r = f.beat(request("b", -1)).unwrap();
    assert_eq!(r.member_epoch, -1);
    let r = f.step(&mut a);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(a.partitions(), all(0..6));
    assert!(matches!(
        f.beat(request("b", 2)),
        Err(GroupError::UnknownMember { .. })
    ));
}

#[test]
fn a_silent_member_is_dropped_when_its_session_ends() {
    let f = fixture();
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    f.join(&mut a, &["orders"]);
    f.join(&mut b, &["orders"]);
    for _ in 0..2 {
        f.step(&mut a);
        f.step(&mut b);
    }
    // b stops; a keeps heartbeating.
    for _ in 0..8 {
        f.after(i64::from(INTERVAL_MS));
        f.step(&mut a);
    }
    assert_eq!(f.groups.consumer_describe("g").unwrap().members.len(), 2);
    f.after(i64::from(SESSION_MS) - 8 * i64::from(INTERVAL_MS));
    assert_eq!(f.groups.consumer_describe("g").unwrap().members.len(), 1);
    f.step(&mut a);
    assert_eq!(a.partitions(), all(0..6));
    assert!(matches!(
        f.beat(ConsumerHeartbeat {
            owned: Some(b.held.clone()),
            ..request("b", b.epoch)
        }),
        Err(GroupError::UnknownMember { .. })
    ));
}

#[test]
fn a_member_that_does_not_revoke_within_its_rebalance_timeout_is_fenced() {
    let f = fixture();
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    f.join(&mut a, &["orders"]);
    f.join(&mut b, &["orders"]);
    f.step(&mut a);
    // a was told to revoke, but keeps reporting all six.
    let stuck = a.held.clone();
    let mut all_six = Assignment::new();
    all_six.insert(f.orders(), (0..6).collect());
    for _ in 0..2 {
        f.after(i64::from(INTERVAL_MS) - 1);
        f.beat(ConsumerHeartbeat {
            owned: Some(all_six.clone()),
            ..request("a", 1)
        })
        .unwrap();
        f.step(&mut b);
        assert!(b.partitions().is_empty());
    }
    f.after(i64::from(REBALANCE_MS) - 2 * i64::from(INTERVAL_MS - 1));
    assert!(matches!(
        f.beat(ConsumerHeartbeat {
            owned: Some(stuck),
            ..request("a", 1)
        }),
        Err(GroupError::UnknownMember { .. })
    ));
    f.step(&mut b);
    assert_eq!(b.partitions(), all(0..6));
}

#[test]
fn epochs_fence_heartbeats_and_commits() {
    let f = fixture();
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    f.join(&mut a, &["orders"]);
    let offset = |o| {
        vec![(
            TopicPartition {
                topic: "orders".to_owned(),
                partition: 0,
            },
            CommittedOffset {
                offset: o,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            },
        )]
    };
    f.groups
        .commit("g", "a", None, 1, &offset(5))
        .unwrap()
        .wait()
        .unwrap();
    f.join(&mut b, &["orders"]);
    f.step(&mut a);
    f.step(&mut a);
    assert_eq!(a.epoch, 2);
    // An old epoch is stale for commits, a future one fenced for
    // heartbeats, a stranger unknown.
    assert!(matches!(
        f.groups.commit("g", "a", None, 1, &offset(6)),
        Err(GroupError::StaleMemberEpoch {
            given: 1,
            current: 2,
            ..
        })
    ));
    assert!(matches!(
        f.groups.check_fetch("g", Some("a"), 1),
        Err(GroupError::StaleMemberEpoch { .. })
    ));
    assert!(f.groups.check_fetch("g", Some("a"), 2).is_ok());
    assert!(f.groups.check_fetch("g", None, -1).is_ok());
    assert!(matches!(
        f.groups.commit("g", "x", None, 2, &offset(6)),
        Err(GroupError::UnknownMember { .. })
    ));
    assert!(matches!(
        f.groups.commit("g", "", None, -1, &offset(6)),
        Err(GroupError::UnknownMember { .. })
    ));
    // A transactional commit (KIP-447) checks member epochs the same way,
    // and takes the form without group metadata.
    assert!(matches!(
        f.groups.check_txn_commit("g", "a", None, 1),
        Err(GroupError::StaleMemberEpoch { .. })
    ));
    assert!(matches!(
        f.groups.check_txn_commit("g", "x", None, 2),
        Err(GroupError::UnknownMember { .. })
    ));
    assert!(f.groups.check_txn_commit("g", "a", None, 2).is_ok());
    assert!(f.groups.check_txn_commit("g", "", None, -1).is_ok());
    assert!(matches!(
        f.beat(request("a", 7)),
        Err(GroupError::FencedMemberEpoch {
            given: 7,
            current: 2,
            ..
        })
    ));
    // The epoch before is answered if the member holds nothing it should
    // not (its last answer was lost).
    let r = f
        .beat(ConsumerHeartbeat {
            owned: Some(a.held.clone()),
            ..request("a", 1)
        })
        .unwrap();
    assert_eq!(r.member_epoch, 2);
    assert!(r.assignment.is_some());
    let mut all_six = Assignment::new();
    all_six.insert(f.orders(), (0..6).collect());
    assert!(matches!(
        f.beat(ConsumerHeartbeat {
            owned: Some(all_six),
            ..request("a", 1)
        }),
        Err(GroupError::FencedMemberEpoch { .. })
    ));
    f.groups
        .commit("g", "a", None, 2, &offset(7))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(f.groups.committed("g").values().next().unwrap().offset, 7);
}

#[test]
fn new_partitions_and_new_topics_are_assigned() {
    let f = fixture();
    let mut a = Client::new("a");
    f.join(&mut a, &["orders", "refunds"]);
    assert_eq!(a.partitions(), all(0..6));
    f.broker.create_partitions("orders", 8, false).unwrap();
    let r = f.step(&mut a);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(a.partitions(), all(0..8));
    f.broker.create_topic("refunds", 2, -1, &[], false).unwrap();
    let r = f.step(&mut a);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(a.held.len(), 2);
    assert_eq!(a.partitions().len(), 10);
}

#[test]
fn a_regex_subscription_follows_the_topics_that_match() {
    let f = fixture();
    let mut a = Client::new("a");
    let r = f
        .beat(ConsumerHeartbeat {
            subscribed_topic_names: Some(vec![]),
            subscribed_topic_regex: Some("ord.*|pay.*".to_owned()),
            ..joining("a", &[])
        })
        .unwrap();
    a.apply(&r);
    assert_eq!(a.partitions(), all(0..6));
    f.broker
        .create_topic("payments", 2, -1, &[], false)
        .unwrap();
    f.broker
        .create_topic("xpayments", 2, -1, &[], false)
        .unwrap();
    f.step(&mut a);
    assert_eq!(a.partitions().len(), 8, "full matches only");
    // `.*` matches no internal topic (__consumer_offsets exists).
    let r = f
        .beat(ConsumerHeartbeat {
            subscribed_topic_regex: Some(".*".to_owned()),
            ..request("a", a.epoch)
        })
        .unwrap();
    a.apply(&r);
    assert_eq!(a.partitions().len(), 10);
    assert!(matches!(
        f.beat(ConsumerHeartbeat {
            subscribed_topic_regex: Some("(".to_owned()),
            ..joining("b", &[])
        }),
        Err(GroupError::InvalidRegex { .. })
    ));
}

#[test]
fn the_range_assignor_is_chosen_by_the_members() {
    let f = fixture();
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    let range = |member: &str| ConsumerHeartbeat {
        server_assignor: Some("range".to_owned()),
        ..joining(member, &["orders"])
    };
    a.apply(&f.beat(range("a")).unwrap());
    b.apply(&f.beat(range("b")).unwrap());
    for _ in 0..2 {
        f.step(&mut a);
        f.step(&mut b);
    }
    assert_eq!(a.partitions(), vec![0, 1, 2]);
    assert_eq!(b.partitions(), vec![3, 4, 5]);
    assert_eq!(f.groups.consumer_describe("g").unwrap().assignor, "range");
    assert!(matches!(
        f.beat(ConsumerHeartbeat {
            server_assignor: Some("sticky".to_owned()),
            ..joining("c", &["orders"])
        }),
        Err(GroupError::UnsupportedAssignor { .. })
    ));
}

#[test]
fn a_static_member_that_leaves_for_now_keeps_its_partitions_for_its_successor() {
    let f = fixture();
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    let with_instance = |member: &str| ConsumerHeartbeat {
        instance_id: Some("i-1".to_owned()),
        ..joining(member, &["orders"])
    };
    a.apply(&f.beat(with_instance("a")).unwrap());
    f.join(&mut b, &["orders"]);
    for _ in 0..2 {
        f.step(&mut a);
        f.step(&mut b);
    }
    let a_had = a.partitions();
    assert_eq!(a_had.len(), 3);
    let r = f
        .beat(ConsumerHeartbeat {
            instance_id: Some("i-1".to_owned()),
            ..request("a", -2)
        })
        .unwrap();
    assert_eq!(r.member_epoch, -2);
    // b gets none of a's partitions meanwhile.
    for _ in 0..2 {
        f.step(&mut b);
    }
    assert_eq!(b.partitions().len(), 3);
    // The same instance, under a new member id, takes over.
    let mut a2 = Client::new("a2");
    let r = f.beat(with_instance("a2")).unwrap();
    a2.apply(&r);
    assert_eq!((a2.epoch, a2.partitions()), (a.epoch, a_had));
    // Another process with the same instance id while a2 is in.
    assert!(matches!(
        f.beat(with_instance("a3")),
        Err(GroupError::UnreleasedInstanceId { .. })
    ));
    assert!(matches!(
        f.beat(request("a", a.epoch)),
        Err(GroupError::UnknownMember { .. })
    ));
}

#[test]
fn a_group_id_is_either_classic_or_consumer() {
    let f = fixture();
    let mut a = Client::new("a");
    f.join(&mut a, &["orders"]);
    let classic = |group: &str| JoinRequest {
        group: group.to_owned(),
        member_id: String::new(),
        instance_id: None,
        client_id: "c".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".to_owned(),
        protocols: vec![("range".to_owned(), Vec::new())],
        require_known_member_id: true,
    };
    let mut join = f.groups.join(classic("g"));
    assert!(matches!(
        join.try_answer(),
        Some(Err(GroupError::InconsistentProtocol { .. }))
    ));
    // A classic group with a member refuses consumer heartbeats.
    let mut join = f.groups.join(classic("c"));
    assert!(matches!(
        join.try_answer(),
        Some(Err(GroupError::MemberIdRequired { .. }))
    ));
    assert!(matches!(
        f.groups.consumer_heartbeat(ConsumerHeartbeat {
            group: "c".to_owned(),
            ..joining("x", &["orders"])
        }),
        Err(GroupError::NotConsumerGroup { .. })
    ));
    // Once empty, the consumer group's id may go classic.
    f.beat(request("a", 1)).unwrap();
    f.beat(request("a", -1)).unwrap();
    assert_eq!(f.state(), ConsumerGroupState::Empty);
    let mut join = f.groups.join(classic("g"));
    assert!(matches!(
        join.try_answer(),
        Some(Err(GroupError::MemberIdRequired { .. }))
    ));
    let listed: Vec<(String, &str)> = f
        .groups
        .list_groups()
        .into_iter()
        .map(|g| (g.group, g.group_type.as_str()))
        .collect();
    assert!(listed.contains(&("c".to_owned(), "classic")));
}

#[test]
fn v0_members_get_their_ids_from_the_coordinator() {
    let f = fixture();
    let r = f
        .beat(ConsumerHeartbeat {
            client_member_ids: false,
            ..joining("", &["orders"])
        })
        .unwrap();
    assert!(r.member_id.starts_with("client-"), "{}", r.member_id);
    assert_eq!(r.member_epoch, 1);
}

#[test]
fn malformed_heartbeats_are_refused() {
    let f = fixture();
    let refused = |req: ConsumerHeartbeat| {
        assert!(
            matches!(f.beat(req), Err(GroupError::InvalidRequest { .. })),
            "expected INVALID_REQUEST"
        );
    };
    refused(joining("", &["orders"]));
    refused(ConsumerHeartbeat {
        subscribed_topic_names: None,
        subscribed_topic_regex: None,
        ..joining("a", &[])
    });
    refused(ConsumerHeartbeat {
        rebalance_timeout_ms: -1,
        ..joining("a", &["orders"])
    });
    refused(request("a", -2));
    refused(request("a", -3));
    assert!(matches!(
        f.beat(request("a", 3)),
        Err(GroupError::UnknownMember { .. })
    ));
}
