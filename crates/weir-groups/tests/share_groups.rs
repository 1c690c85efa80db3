//! Share groups (KIP-932) membership under a manual clock: joining with a
//! member id the client chose, the `simple` assignment (balanced, shared
//! only when members outnumber partitions) taken at once on the next
//! heartbeat, subscriptions to more topics, session expiry through `tick`,
//! leaving, epoch fencing, the boundary with classic and consumer groups,
//! describe, list and delete, limits, and the questions the share data
//! path asks (is this member assigned this partition; who left).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_groups::{
    Assignment, CommittedOffset, ConsumerHeartbeat, Coordinator, GroupError, GroupsConfig,
    JoinRequest, OffsetStore, OffsetsConfig, SHARE_ASSIGNOR, ShareGroupState, ShareHeartbeat,
    ShareHeartbeatResponse, TopicId, TopicPartition,
};
use weir_log::{DataDir, DirConfig, ManualClock};

const SESSION_MS: i64 = 45_000;
const INTERVAL_MS: i64 = 5_000;

struct Fixture {
    clock: ManualClock,
    broker: Arc<Broker>,
    groups: Coordinator,
    _dir: tempfile::TempDir,
}

fn fixture_with(config: GroupsConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path(), DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    broker.create_topic("orders", 6, -1, &[], false).unwrap();
    broker.create_topic("one", 1, -1, &[], false).unwrap();
    let offsets = Arc::new(OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap());
    let clock = ManualClock::new(1_000_000);
    let groups = Coordinator::new(config, Arc::new(clock.clone()), broker.clone(), offsets);
    Fixture {
        clock,
        broker,
        groups,
        _dir: dir,
    }
}

fn fixture() -> Fixture {
    fixture_with(GroupsConfig::default())
}

fn beat(member: &str, epoch: i32) -> ShareHeartbeat {
    ShareHeartbeat {
        group: "g".to_owned(),
        member_id: member.to_owned(),
        member_epoch: epoch,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        ..ShareHeartbeat::default()
    }
}

fn joining(member: &str, topics: &[&str]) -> ShareHeartbeat {
    ShareHeartbeat {
        subscribed_topic_names: Some(topics.iter().map(|t| (*t).to_owned()).collect()),
        ..beat(member, 0)
    }
}

/// A share consumer as a client keeps it: its epoch and last assignment.
struct Member {
    id: String,
    epoch: i32,
    assigned: Assignment,
}

impl Member {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            epoch: 0,
            assigned: Assignment::new(),
        }
    }

    fn apply(&mut self, r: &ShareHeartbeatResponse) {
        assert_eq!(r.member_id, self.id);
        self.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            self.assigned = a.clone();
        }
    }

    fn count(&self) -> usize {
        self.assigned.values().map(BTreeSet::len).sum()
    }
}

impl Fixture {
    fn topic(&self, name: &str) -> TopicId {
        TopicId(self.broker.topic(name).unwrap().id)
    }

    fn join(&self, m: &mut Member, topics: &[&str]) -> ShareHeartbeatResponse {
        let r = self.groups.share_heartbeat(joining(&m.id, topics)).unwrap();
        assert!(
            r.assignment.is_some(),
            "a joining member hears its assignment"
        );
        m.apply(&r);
        r
    }

    fn step(&self, m: &mut Member) -> ShareHeartbeatResponse {
        let r = self.groups.share_heartbeat(beat(&m.id, m.epoch)).unwrap();
        m.apply(&r);
        r
    }

    fn after(&self, ms: i64) {
        self.clock.advance(ms);
        self.groups.tick();
    }

    fn state(&self) -> ShareGroupState {
        self.groups.share_describe("g").unwrap().state
    }
}

/// How many members hold each partition of `topic`.
fn holders(members: &[&Member], topic: TopicId) -> BTreeMap<i32, usize> {
    let mut out = BTreeMap::new();
    for m in members {
        for p in m.assigned.get(&topic).into_iter().flatten() {
            *out.entry(*p).or_default() += 1;
        }
    }
    out
}

#[test]
fn a_first_member_gets_every_partition_at_once() {
    let f = fixture();
    let mut a = Member::new("a");
    let r = f.join(&mut a, &["orders"]);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, INTERVAL_MS as i32);
    let orders = f.topic("orders");
    assert_eq!(a.assigned[&orders], (0..6).collect());
    // A heartbeat that changes nothing carries no assignment.
    let r = f.step(&mut a);
    assert_eq!((r.member_epoch, r.assignment), (1, None));
    let d = f.groups.share_describe("g").unwrap();
    assert_eq!(d.state, ShareGroupState::Stable);
    assert_eq!((d.group_epoch, d.assignment_epoch), (1, 1));
    assert_eq!(d.assignor, SHARE_ASSIGNOR);
    assert_eq!(d.members.len(), 1);
    let m = &d.members[0];
    assert_eq!((m.member_id.as_str(), m.member_epoch), ("a", 1));
    assert_eq!(m.subscribed_topic_names, vec!["orders".to_owned()]);
    assert_eq!(m.assignment[0].topic, "orders");
    assert_eq!(m.assignment[0].partitions, (0..6).collect::<Vec<_>>());
}

#[test]
fn two_members_split_the_partitions_and_take_a_new_assignment_at_once() {
    let f = fixture();
    let orders = f.topic("orders");
    let (mut a, mut b) = (Member::new("a"), Member::new("b"));
    f.join(&mut a, &["orders"]);
    let r = f.join(&mut b, &["orders"]);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(b.count(), 3);
    // No revocation step: a's next heartbeat moves it to epoch 2 with its
    // share, and b's partitions are no longer in it.
    let r = f.step(&mut a);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(a.count(), 3);
    assert!(holders(&[&a, &b], orders).values().all(|h| *h == 1));
    assert_eq!(holders(&[&a, &b], orders).len(), 6);
    // The coordinator answers the data path's question the same way.
    for p in 0..6 {
        let in_a = a.assigned[&orders].contains(&p);
        assert_eq!(
            f.groups.share_member_assigned("g", "a", orders, p).unwrap(),
            in_a
        );
        assert_eq!(
            f.groups.share_member_assigned("g", "b", orders, p).unwrap(),
            !in_a
        );
    }
    assert_eq!(
        f.groups.share_assignment("g", "a").unwrap(),
        (2, a.assigned.clone())
    );
    assert!(matches!(
        f.groups.share_member_assigned("g", "z", orders, 0),
        Err(GroupError::UnknownMember { .. })
    ));
}

#[test]
fn members_beyond_the_partition_count_share_partitions() {
    let f = fixture();
    let one = f.topic("one");
    let mut ms: Vec<Member> = (0..3).map(|i| Member::new(&format!("m{i}"))).collect();
    for m in &mut ms {
        f.join(m, &["one"]);
    }
    for m in &mut ms {
        f.step(m);
    }
    let all: Vec<&Member> = ms.iter().collect();
    assert_eq!(holders(&all, one), BTreeMap::from([(0, 3)]));
    // Eight members on six partitions: each gets one, no partition idle,
    // none with more than two.
    let f = fixture();
    let orders = f.topic("orders");
    let mut ms: Vec<Member> = (0..8).map(|i| Member::new(&format!("m{i}"))).collect();
    for m in &mut ms {
        f.join(m, &["orders"]);
    }
    for m in &mut ms {
        f.step(m);
        assert_eq!(m.count(), 1);
    }
    let all: Vec<&Member> = ms.iter().collect();
    let h = holders(&all, orders);
    assert_eq!(h.len(), 6);
    assert!(h.values().all(|n| (1..=2).contains(n)), "{h:?}");
}

#[test]
fn a_new_topic_in_a_subscription_is_assigned() {
    let f = fixture();
    let (orders, one) = (f.topic("orders"), f.topic("one"));
    let mut a = Member::new("a");
    f.join(&mut a, &["orders", "audit"]);
    assert_eq!(a.assigned.keys().copied().collect::<Vec<_>>(), vec![orders]);
    // A third topic joins the subscription: the group epoch moves and the
    // member hears the new assignment at once.
    let r = f
        .groups
        .share_heartbeat(ShareHeartbeat {
            subscribed_topic_names: Some(vec!["orders".into(), "audit".into(), "one".into()]),
            ..beat("a", a.epoch)
        })
        .unwrap();
    a.apply(&r);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(a.assigned[&one], BTreeSet::from([0]));
    // A subscribed topic created later is picked up by the next heartbeat.
    f.broker.create_topic("audit", 2, -1, &[], false).unwrap();
    let r = f.step(&mut a);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(a.assigned[&f.topic("audit")], BTreeSet::from([0, 1]));
    assert_eq!(f.groups.share_describe("g").unwrap().group_epoch, 3);
}

#[test]
fn a_silent_member_is_dropped_when_its_session_ends() {
    let f = fixture();
    let (mut a, mut b) = (Member::new("a"), Member::new("b"));
    f.join(&mut a, &["orders"]);
    f.join(&mut b, &["orders"]);
    f.step(&mut a);
    assert!(f.groups.take_share_departures().is_empty());
    // b heartbeats every interval; a stays silent.
    let mut waited = 0;
    while waited < SESSION_MS - INTERVAL_MS {
        f.after(INTERVAL_MS);
        waited += INTERVAL_MS;
        f.step(&mut b);
    }
    assert_eq!(f.groups.share_describe("g").unwrap().members.len(), 2);
    f.after(INTERVAL_MS);
    let d = f.groups.share_describe("g").unwrap();
    assert_eq!(d.members.len(), 1);
    let gone = f.groups.take_share_departures();
    assert_eq!(gone.len(), 1);
    assert_eq!(
        (gone[0].group.as_str(), gone[0].member_id.as_str()),
        ("g", "a")
    );
    assert!(f.groups.take_share_departures().is_empty());
    let r = f.step(&mut b);
    assert!(r.assignment.is_some());
    assert_eq!(b.count(), 6);
    assert!(matches!(
        f.groups.share_heartbeat(beat("a", a.epoch)),
        Err(GroupError::UnknownMember { .. })
    ));
    // tick says when the next session ends.
    let next = f.groups.tick().expect("b's session is pending");
    assert_eq!(next.as_millis() as i64, SESSION_MS);
}

#[test]
fn a_member_that_leaves_is_gone_and_the_group_empties() {
    let f = fixture();
    let (mut a, mut b) = (Member::new("a"), Member::new("b"));
    f.join(&mut a, &["orders"]);
    f.join(&mut b, &["orders"]);
    let r = f.groups.share_heartbeat(beat("a", -1)).unwrap();
    assert_eq!((r.member_id.as_str(), r.member_epoch), ("a", -1));
    assert_eq!((r.heartbeat_interval_ms, r.assignment), (0, None));
    assert_eq!(f.groups.take_share_departures()[0].member_id, "a");
    let r = f.step(&mut b);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(b.count(), 6);
    assert!(matches!(
        f.groups.share_heartbeat(beat("a", -1)),
        Err(GroupError::UnknownMember { .. })
    ));
    f.groups.share_heartbeat(beat("b", -1)).unwrap();
    assert_eq!(f.state(), ShareGroupState::Empty);
    assert_eq!(f.groups.share_describe("g").unwrap().group_epoch, 4);
}

#[test]
fn epochs_fence_heartbeats() {
    let f = fixture();
    let (mut a, mut b) = (Member::new("a"), Member::new("b"));
    f.join(&mut a, &["orders"]);
    f.join(&mut b, &["orders"]);
    f.step(&mut a); // epoch 2, previous 1
    assert_eq!(a.epoch, 2);
    assert!(matches!(
        f.groups.share_heartbeat(beat("a", 3)),
        Err(GroupError::FencedMemberEpoch {
            given: 3,
            current: 2,
            ..
        })
    ));
    // The epoch before (its answer may have been lost) is answered, with
    // the assignment again.
    let r = f.groups.share_heartbeat(beat("a", 1)).unwrap();
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment.as_ref(), Some(&a.assigned));
    // Anything older is fenced.
    let mut c = Member::new("c");
    f.join(&mut c, &["orders"]);
    f.step(&mut a); // epoch 3, previous 2
    assert!(matches!(
        f.groups.share_heartbeat(beat("a", 1)),
        Err(GroupError::FencedMemberEpoch { .. })
    ));
    // Unknown members and groups: the member must join again.
    assert!(matches!(
        f.groups.share_heartbeat(beat("z", 3)),
        Err(GroupError::UnknownMember { .. })
    ));
    assert!(matches!(
        f.groups.share_heartbeat(ShareHeartbeat {
            group: "nope".into(),
            ..beat("a", 3)
        }),
        Err(GroupError::UnknownMember { .. })
    ));
    // A known member joining again (a restart under the same id) takes
    // its current assignment without moving the group epoch.
    let r = f.groups.share_heartbeat(joining("a", &["orders"])).unwrap();
    assert_eq!(r.member_epoch, 3);
    assert!(r.assignment.is_some());
    assert_eq!(f.groups.share_describe("g").unwrap().group_epoch, 3);
}

fn classic_join(group: &str) -> JoinRequest {
    JoinRequest {
        group: group.to_owned(),
        member_id: String::new(),
        instance_id: None,
        client_id: "c".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".to_owned(),
        protocols: vec![("range".to_owned(), Vec::new())],
        require_known_member_id: false,
    }
}

fn consumer_join(group: &str) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group: group.to_owned(),
        member_id: "x".to_owned(),
        member_epoch: 0,
        rebalance_timeout_ms: 10_000,
        subscribed_topic_names: Some(vec!["orders".to_owned()]),
        client_member_ids: true,
        ..ConsumerHeartbeat::default()
    }
}

#[test]
fn a_group_id_has_one_type() {
    let f = fixture();
    let mut a = Member::new("a");
    f.join(&mut a, &["orders"]);
    let wrong = |r: Result<ShareHeartbeatResponse, GroupError>, expected: &str| match r {
        Err(GroupError::WrongGroupType { expected: e, .. }) => assert_eq!(e, expected),
        other => panic!("expected a wrong group type, got {other:?}"),
    };
    // Classic and consumer requests for a share group's id.
    let mut join = f.groups.join(classic_join("g"));
    assert!(matches!(
        join.try_answer(),
        Some(Err(GroupError::InconsistentProtocol { .. }))
    ));
    assert!(matches!(
        f.groups.consumer_heartbeat(consumer_join("g")),
        Err(GroupError::WrongGroupType {
            expected: "consumer",
            ..
        })
    ));
    let offsets = [(
        TopicPartition {
            topic: "orders".to_owned(),
            partition: 0,
        },
        CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        },
    )];
    assert!(matches!(
        f.groups.commit("g", "", None, -1, &offsets),
        Err(GroupError::WrongGroupType { .. })
    ));
    assert!(matches!(
        f.groups.admin_commit("g", &offsets),
        Err(GroupError::WrongGroupType { .. })
    ));
    assert!(matches!(
        f.groups.check_txn_commit("g", "a", None, 1),
        Err(GroupError::WrongGroupType { .. })
    ));
    // Even empty, a share group stays one.
    f.groups.share_heartbeat(beat("a", -1)).unwrap();
    let mut join = f.groups.join(classic_join("g"));
    assert!(matches!(
        join.try_answer(),
        Some(Err(GroupError::InconsistentProtocol { .. }))
    ));
    // Share heartbeats for a classic group with a member, a consumer group
    // (even empty), or a group with committed offsets.
    let mut join = f.groups.join(classic_join("c"));
    // Parked for the initial rebalance delay: a member all the same.
    assert!(!matches!(join.try_answer(), Some(Err(_))));
    wrong(
        f.groups.share_heartbeat(ShareHeartbeat {
            group: "c".into(),
            ..joining("a", &["orders"])
        }),
        "share",
    );
    f.groups.consumer_heartbeat(consumer_join("k")).unwrap();
    wrong(
        f.groups.share_heartbeat(ShareHeartbeat {
            group: "k".into(),
            ..joining("a", &["orders"])
        }),
        "share",
    );
    f.groups
        .commit("simple", "", None, -1, &offsets)
        .unwrap()
        .wait()
        .unwrap();
    wrong(
        f.groups.share_heartbeat(ShareHeartbeat {
            group: "simple".into(),
            ..joining("a", &["orders"])
        }),
        "share",
    );
    let types: BTreeMap<String, &str> = f
        .groups
        .list_groups()
        .into_iter()
        .map(|g| (g.group, g.group_type.as_str()))
        .collect();
    assert_eq!(types["g"], "share");
    assert_eq!(types["c"], "classic");
    assert_eq!(types["k"], "consumer");
    assert_eq!(types["simple"], "classic");
}

#[test]
fn share_groups_are_listed_described_and_deleted() {
    let f = fixture();
    let mut a = Member::new("a");
    f.join(&mut a, &["orders"]);
    let listed = f.groups.list_groups();
    let g = listed.iter().find(|g| g.group == "g").unwrap();
    assert_eq!(
        (g.group_type.as_str(), g.state, g.protocol_type.as_str()),
        ("share", "Stable", "share")
    );
    assert_eq!(f.groups.group_type("g").as_str(), "share");
    assert!(matches!(
        f.groups.delete_group("g"),
        Err(GroupError::NonEmptyGroup { .. })
    ));
    f.groups.share_heartbeat(beat("a", -1)).unwrap();
    let listed = f.groups.list_groups();
    assert_eq!(
        listed.iter().find(|g| g.group == "g").unwrap().state,
        "Empty"
    );
    f.groups.delete_group("g").unwrap().wait().unwrap();
    assert!(matches!(
        f.groups.share_describe("g"),
        Err(GroupError::GroupNotFound { .. })
    ));
    assert!(f.groups.list_groups().iter().all(|g| g.group != "g"));
    // Not a share group: not found.
    assert!(matches!(
        f.groups.share_describe("nope"),
        Err(GroupError::GroupNotFound { .. })
    ));
}

#[test]
fn malformed_heartbeats_are_refused_with_kafkas_messages() {
    let f = fixture();
    let refused = |req: ShareHeartbeat| match f.groups.share_heartbeat(req) {
        Err(GroupError::InvalidRequest { reason }) => reason,
        other => panic!("expected an invalid request, got {other:?}"),
    };
    assert_eq!(
        refused(joining("", &["orders"])),
        "MemberId can't be empty."
    );
    assert_eq!(
        refused(ShareHeartbeat {
            group: " ".into(),
            ..joining("a", &["orders"])
        }),
        "GroupId can't be empty."
    );
    assert_eq!(
        refused(ShareHeartbeat {
            rack_id: Some(String::new()),
            ..joining("a", &["orders"])
        }),
        "RackId can't be empty."
    );
    assert_eq!(
        refused(beat("a", 0)),
        "SubscribedTopicNames must be set in first request."
    );
    assert_eq!(
        refused(joining("a", &[])),
        "SubscribedTopicNames must be set in first request."
    );
    assert_eq!(refused(beat("a", -2)), "MemberEpoch is invalid.");
    assert!(refused(joining(&"m".repeat(300), &["orders"])).contains("over the limit"));
    // Nothing was created by any of them.
    assert!(f.groups.list_groups().is_empty());
}

#[test]
fn limits_on_members_and_groups_hold() {
    let f = fixture_with(GroupsConfig {
        share_members_max: 2,
        groups_max: 3,
        ..GroupsConfig::default()
    });
    let (mut a, mut b, mut c) = (Member::new("a"), Member::new("b"), Member::new("c"));
    f.join(&mut a, &["orders"]);
    f.join(&mut b, &["orders"]);
    assert!(matches!(
        f.groups.share_heartbeat(joining(&c.id, &["orders"])),
        Err(GroupError::GroupFull { members_max: 2, .. })
    ));
    // groups_max counts groups of every type.
    let mut join = f.groups.join(classic_join("c1"));
    // Parked for the initial rebalance delay: a member all the same.
    assert!(!matches!(join.try_answer(), Some(Err(_))));
    f.groups.consumer_heartbeat(consumer_join("k1")).unwrap();
    let other = |g: &str| ShareHeartbeat {
        group: g.into(),
        ..joining("c", &["orders"])
    };
    assert!(matches!(
        f.groups.share_heartbeat(other("g2")),
        Err(GroupError::TooManyGroups { groups_max: 3 })
    ));
    let mut join = f.groups.join(classic_join("c2"));
    assert!(matches!(
        join.try_answer(),
        Some(Err(GroupError::TooManyGroups { .. }))
    ));
    // An empty share group makes room for a new one.
    f.groups.share_heartbeat(beat("a", -1)).unwrap();
    f.groups.share_heartbeat(beat("b", -1)).unwrap();
    let r = f.groups.share_heartbeat(other("g2")).unwrap();
    c.apply(&r);
    assert_eq!(c.count(), 6);
    assert!(f.groups.share_describe("g").is_err());
}
