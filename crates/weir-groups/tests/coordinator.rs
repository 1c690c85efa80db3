//! The group coordinator's state machine under a manual clock: joins,
//! syncs, heartbeats, leaves, expiry, static membership and the errors
//! Kafka clients act on.

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_groups::{
    Answer, CommittedOffset, Coordinator, GroupError, GroupState, GroupsConfig, JoinRequest,
    JoinResponse, Leaving, OffsetStore, OffsetsConfig, SyncRequest, TopicPartition,
};
use weir_log::{DataDir, DirConfig, ManualClock};

const SESSION: i32 = 6_000;
const REBALANCE: i32 = 10_000;
const DELAY: i32 = 300;

struct Fixture {
    clock: ManualClock,
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
    let config = GroupsConfig {
        initial_rebalance_delay_ms: DELAY,
        ..GroupsConfig::default()
    };
    let groups = Coordinator::new(config, Arc::new(clock.clone()), broker, offsets);
    Fixture {
        clock,
        groups,
        _dir: dir,
    }
}

fn join_req(member: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group: "g".to_owned(),
        member_id: member.to_owned(),
        instance_id: instance.map(str::to_owned),
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".to_owned(),
        protocols: protocols
            .iter()
            .map(|p| ((*p).to_owned(), format!("{p}-meta").into_bytes()))
            .collect(),
        require_known_member_id: true,
    }
}

fn pending<T: std::fmt::Debug>(answer: &mut Answer<T>) {
    assert!(answer.try_answer().is_none(), "answered too early");
}

fn done<T>(answer: &mut Answer<T>) -> Result<T, GroupError> {
    answer.try_answer().expect("an answer by now")
}

impl Fixture {
    /// A new member's id, through MEMBER_ID_REQUIRED as KIP-394 has it.
    fn member_id(&self) -> String {
        match done(&mut self.groups.join(join_req("", None, &["range"]))) {
            Err(GroupError::MemberIdRequired { member, .. }) => member,
            other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
        }
    }

    fn join(&self, member: &str) -> Answer<JoinResponse> {
        self.groups.join(join_req(member, None, &["range"]))
    }

    fn sync(
        &self,
        member: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) -> Answer<weir_groups::SyncResponse> {
        self.groups.sync(SyncRequest {
            group: "g".to_owned(),
            member_id: member.to_owned(),
            instance_id: None,
            generation,
            protocol_type: Some("consumer".to_owned()),
            protocol_name: Some("range".to_owned()),
            assignments: assignments
                .iter()
                .map(|(m, a)| ((*m).to_owned(), a.as_bytes().to_vec()))
                .collect(),
        })
    }

    fn after(&self, ms: i64) {
        self.clock.advance(ms);
        self.groups.tick();
    }

    /// Members join together and the first one assigns; returns the
    /// generation.
    fn form(&self, members: &[&str]) -> i32 {
        let mut joins: Vec<_> = members.iter().map(|m| self.join(m)).collect();
        self.after(i64::from(DELAY));
        let responses: Vec<JoinResponse> = joins.iter_mut().map(|j| done(j).unwrap()).collect();
        let generation = responses[0].generation;
        let leader = responses[0].leader.clone();
        let assignments: Vec<(&str, String)> =
            members.iter().map(|m| (*m, format!("for-{m}"))).collect();
        let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (*m, a.as_str())).collect();
        let mut syncs: Vec<_> = members
            .iter()
            .map(|m| {
                let given: &[(&str, &str)] = if *m == leader { &pairs } else { &[] };
                self.sync(m, generation, given)
            })
            .collect();
        for (m, s) in members.iter().zip(&mut syncs) {
            assert_eq!(done(s).unwrap().assignment, format!("for-{m}").into_bytes());
        }
        assert_eq!(self.groups.describe("g").state, GroupState::Stable);
        generation
    }
}

#[test]
fn members_that_start_together_form_one_generation_after_the_initial_delay() {
    let f = fixture();
    let ids: Vec<String> = (0..3).map(|_| f.member_id()).collect();
    let mut joins: Vec<_> = ids.iter().map(|m| f.join(m)).collect();
    f.after(i64::from(DELAY) - 1);
    joins.iter_mut().for_each(pending);
    assert_eq!(f.groups.describe("g").state, GroupState::PreparingRebalance);
    f.after(1);
    let responses: Vec<_> = joins.iter_mut().map(|j| done(j).unwrap()).collect();
    assert!(responses.iter().all(|r| r.generation == 1));
    let leader = &responses[0].leader;
    assert_eq!(leader, &ids[0], "the oldest member leads");
    for r in &responses {
        assert_eq!(r.protocol_name, "range");
        if &r.member_id == leader {
            let roster: Vec<&str> = r.members.iter().map(|m| m.member_id.as_str()).collect();
            assert_eq!(roster, ids.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(r.members.iter().all(|m| m.metadata == b"range-meta"));
        } else {
            assert!(r.members.is_empty(), "only the leader gets the roster");
        }
    }
    // Followers wait for the leader's assignment.
    let mut s1 = f.sync(&ids[1], 1, &[]);
    pending(&mut s1);
    assert_eq!(
        f.groups.describe("g").state,
        GroupState::CompletingRebalance
    );
    let mut s0 = f.sync(&ids[0], 1, &[(&ids[0], "a0"), (&ids[1], "a1")]);
    assert_eq!(done(&mut s0).unwrap().assignment, b"a0");
    assert_eq!(done(&mut s1).unwrap().assignment, b"a1");
    // A member the leader left out gets an empty assignment.
    assert!(
        done(&mut f.sync(&ids[2], 1, &[]))
            .unwrap()
            .assignment
            .is_empty()
    );
    let described = f.groups.describe("g");
    assert_eq!(described.state, GroupState::Stable);
    assert_eq!(described.members.len(), 3);
    assert_eq!(described.members[1].assignment, b"a1");
    assert!(f.groups.heartbeat("g", &ids[2], None, 1).is_ok());
}

#[test]
fn a_new_member_starts_a_rebalance_that_ends_when_everyone_rejoined() {
    let f = fixture();
    let (a, b) = (f.member_id(), f.member_id());
    let generation = f.form(&[&a, &b]);
    let c = f.member_id();
    let mut join_c = f.join(&c);
    pending(&mut join_c);
    assert!(matches!(
        f.groups.heartbeat("g", &a, None, generation),
        Err(GroupError::RebalanceInProgress { .. })
    ));
    let mut join_a = f.join(&a);
    let mut join_b = f.join(&b);
    // No initial delay for a group that had members: done once all are in.
    let r = done(&mut join_a).unwrap();
    assert_eq!(r.generation, generation + 1);
    assert_eq!(r.members.len(), 3);
    assert_eq!(done(&mut join_b).unwrap().generation, generation + 1);
    assert_eq!(done(&mut join_c).unwrap().generation, generation + 1);
    // The old generation is over.
    assert!(matches!(
        f.groups.heartbeat("g", &b, None, generation),
        Err(GroupError::IllegalGeneration { .. })
    ));
}

#[test]
fn a_silent_member_is_dropped_after_its_session_timeout() {
    let f = fixture();
    let (a, b) = (f.member_id(), f.member_id());
    let generation = f.form(&[&a, &b]);
    for _ in 0..5 {
        f.after(1_000);
        f.groups.heartbeat("g", &a, None, generation).unwrap();
    }
    f.after(999);
    f.groups.heartbeat("g", &a, None, generation).unwrap();
    assert_eq!(f.groups.describe("g").members.len(), 2, "b is not yet late");
    f.after(1);
    assert_eq!(f.groups.describe("g").members.len(), 1, "b's session ended");
    assert!(matches!(
        f.groups.heartbeat("g", &a, None, generation),
        Err(GroupError::RebalanceInProgress { .. })
    ));
    let r = done(&mut f.join(&a)).unwrap();
    assert_eq!((r.generation, r.members.len()), (generation + 1, 1));
    assert!(matches!(
        f.groups.heartbeat("g", &b, None, generation),
        Err(GroupError::UnknownMember { .. })
    ));
}

#[test]
fn tick_tells_how_long_until_the_next_session_ends() {
    let f = fixture();
    assert_eq!(f.groups.tick(), None, "nothing waits");
    let (a, b) = (f.member_id(), f.member_id());
    let generation = f.form(&[&a, &b]);
    f.after(2_000);
    f.groups.heartbeat("g", &a, None, generation).unwrap();
    // b was last heard at the sync, 2 s ago: its session ends first.
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as i64);
    assert_eq!(ms(f.groups.tick()), Some(i64::from(SESSION) - 2_000));
    f.clock.advance(i64::from(SESSION) - 2_000);
    // b goes at its deadline; the rebalance that follows waits for a.
    let next = ms(f.groups.tick());
    assert_eq!(f.groups.describe("g").members.len(), 1, "b's session ended");
    assert!(next.is_some_and(|ms| ms > 0), "{next:?}");
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let f = fixture();
    let (a, b) = (f.member_id(), f.member_id());
    let generation = f.form(&[&a, &b]);
    let c = f.member_id();
    let mut join_c = f.join(&c);
    let mut join_a = f.join(&a);
    // b keeps heartbeating but never rejoins.
    for _ in 0..9 {
        f.after(1_000);
        let _ = f.groups.heartbeat("g", &b, None, generation);
    }
    pending(&mut join_a);
    f.after(i64::from(REBALANCE) - 9_000);
    let r = done(&mut join_a).unwrap();
    assert_eq!(r.members.len(), 2);
    assert!(done(&mut join_c).is_ok());
    assert!(matches!(
        f.groups.heartbeat("g", &b, None, generation),
        Err(GroupError::UnknownMember { .. })
    ));
}

#[test]
fn leaving_rebalances_the_rest_and_the_last_one_out_empties_the_group() {
    let f = fixture();
    let (a, b) = (f.member_id(), f.member_id());
    let generation = f.form(&[&a, &b]);
    let left = f.groups.leave(
        "g",
        &[Leaving {
            member_id: b.clone(),
            instance_id: None,
        }],
    );
    assert!(left[0].is_ok());
    assert_eq!(f.groups.describe("g").state, GroupState::PreparingRebalance);
    let r = done(&mut f.join(&a)).unwrap();
    assert_eq!((r.generation, r.members.len()), (generation + 1, 1));
    let left = f.groups.leave(
        "g",
        &[Leaving {
            member_id: a.clone(),
            instance_id: None,
        }],
    );
    assert!(left[0].is_ok());
    assert_eq!(f.groups.describe("g").state, GroupState::Empty);
    let again = f.groups.leave(
        "g",
        &[Leaving {
            member_id: a,
            instance_id: None,
        }],
    );
    assert!(matches!(again[0], Err(GroupError::UnknownMember { .. })));
}

#[test]
fn a_restarted_static_member_takes_its_place_without_a_rebalance_and_fences_the_old_one() {
    let f = fixture();
    let first = |instance: &str| f.groups.join(join_req("", Some(instance), &["range"]));
    let mut ja = first("host-a");
    let mut jb = first("host-b");
    f.after(i64::from(DELAY));
    let (ra, rb) = (done(&mut ja).unwrap(), done(&mut jb).unwrap());
    let (a, b) = (ra.member_id.clone(), rb.member_id.clone());
    let leader = ra.leader.clone();
    let mut sa = f.sync(&a, 1, &[(&a, "a"), (&b, "b")]);
    let mut sb = f.sync(&b, 1, &[]);
    assert!(done(&mut sa).is_ok() && done(&mut sb).is_ok());
    assert_eq!(leader, a);
    // b restarts: same instance id, no member id.
    let r = done(&mut first("host-b")).unwrap();
    assert_ne!(r.member_id, b);
    assert_eq!(
        r.generation, 1,
        "no new generation for a known static member"
    );
    assert_eq!(f.groups.describe("g").state, GroupState::Stable);
    let new_b = r.member_id;
    let mut s = f.groups.sync(SyncRequest {
        group: "g".to_owned(),
        member_id: new_b.clone(),
        instance_id: Some("host-b".to_owned()),
        generation: 1,
        protocol_type: None,
        protocol_name: None,
        assignments: vec![],
    });
    assert_eq!(
        done(&mut s).unwrap().assignment,
        b"b",
        "it keeps its assignment"
    );
    assert!(matches!(
        f.groups.heartbeat("g", &b, Some("host-b"), 1),
        Err(GroupError::FencedInstance { .. })
    ));
    assert!(f.groups.heartbeat("g", &new_b, Some("host-b"), 1).is_ok());
}

#[test]
fn bad_requests_get_the_errors_kafka_clients_expect() {
    let f = fixture();
    let mut short = join_req("", None, &["range"]);
    short.session_timeout_ms = 100;
    assert!(matches!(
        done(&mut f.groups.join(short)),
        Err(GroupError::InvalidSessionTimeout { given_ms: 100, .. })
    ));
    assert!(matches!(
        done(&mut f.join("never-issued")),
        Err(GroupError::UnknownMember { .. })
    ));
    let a = f.member_id();
    let generation = f.form(&[&a]);
    let mut other = join_req("", None, &["range"]);
    other.protocol_type = "connect".to_owned();
    assert!(matches!(
        done(&mut f.groups.join(other)),
        Err(GroupError::InconsistentProtocol { .. })
    ));
    let mut disjoint = join_req("", None, &["roundrobin"]);
    disjoint.require_known_member_id = false;
    assert!(matches!(
        done(&mut f.groups.join(disjoint)),
        Err(GroupError::InconsistentProtocol { .. })
    ));
    assert!(matches!(
        f.groups.heartbeat("g", &a, None, generation + 7),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert!(matches!(
        f.groups.heartbeat("g", "nobody", None, generation),
        Err(GroupError::UnknownMember { .. })
    ));
    assert!(matches!(
        f.groups.heartbeat("other-group", &a, None, generation),
        Err(GroupError::UnknownMember { .. })
    ));
    // Commits: from a current member, or from nobody while the group is
    // empty (an admin reset) — never from nobody while members are active.
    let tp = TopicPartition {
        topic: "orders".to_owned(),
        partition: 0,
    };
    let offset = CommittedOffset {
        offset: 5,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 0,
    };
    let commits = [(tp, offset)];
    f.groups
        .commit("g", &a, None, generation, &commits)
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(
        f.groups.commit("g", "", None, -1, &commits),
        Err(GroupError::UnknownMember { .. })
    ));
    assert!(matches!(
        f.groups.commit("g", &a, None, generation - 1, &commits),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert!(matches!(
        f.groups.delete_group("g"),
        Err(GroupError::NonEmptyGroup { .. })
    ));
    f.groups.leave(
        "g",
        &[Leaving {
            member_id: a,
            instance_id: None,
        }],
    );
    f.groups
        .commit("g", "", None, -1, &commits)
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(
        f.groups.delete_group("nothing-here"),
        Err(GroupError::GroupNotFound { .. })
    ));
}

#[test]
fn lag_is_the_high_watermark_minus_the_committed_offset() {
    let f = fixture();
    let broker = f.groups.broker().clone();
    for p in 0..2 {
        let mut batch = weir_log::batch::BatchBuilder::new(0);
        for i in 0..10 {
            batch.push(0, None, Some(format!("v{i}").as_bytes()), &[]);
        }
        broker.produce("orders", p, &mut batch.build()).unwrap();
    }
    let commit = |partition, offset| {
        (
            TopicPartition {
                topic: "orders".to_owned(),
                partition,
            },
            CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            },
        )
    };
    f.groups
        .commit("g", "", None, -1, &[commit(0, 4), commit(1, 10)])
        .unwrap()
        .wait()
        .unwrap();
    let lag = f.groups.lag("g");
    let got: Vec<(i32, i64, Option<i64>, Option<i64>)> = lag
        .iter()
        .map(|l| (l.partition, l.committed, l.high_watermark, l.lag))
        .collect();
    assert_eq!(got, [(0, 4, Some(10), Some(6)), (1, 10, Some(10), Some(0))]);
    assert!(f.groups.lag("nobody").is_empty());
}

/// KIP-447: offsets committed in a transaction name the consumer's
/// generation; a zombie of an older generation, or a member that left, is
/// refused as OffsetCommit refuses it, and the form without group metadata
/// (generation -1, no member) is taken.
#[test]
fn transactional_commits_are_checked_against_the_group_generation() {
    let f = fixture();
    let (a, b) = (f.member_id(), f.member_id());
    let generation = f.form(&[&a, &b]);
    let check = |member: &str, instance: Option<&str>, generation: i32| {
        f.groups.check_txn_commit("g", member, instance, generation)
    };
    assert!(check(&a, None, generation).is_ok());
    assert!(check("", None, -1).is_ok(), "no group metadata");
    assert!(matches!(
        check(&a, None, generation + 1),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert!(matches!(
        check("gone", None, generation),
        Err(GroupError::UnknownMember { .. })
    ));
    // A rebalance under way: the old generation is still current until it
    // completes, and a transactional commit is not refused for it, as
    // OffsetCommit would be while the group completes its rebalance.
    let c = f.member_id();
    let mut join_c = f.join(&c);
    pending(&mut join_c);
    assert!(check(&a, None, generation).is_ok());
    let mut join_a = f.join(&a);
    let mut join_b = f.join(&b);
    let next = done(&mut join_a).unwrap().generation;
    done(&mut join_b).unwrap();
    done(&mut join_c).unwrap();
    assert!(check(&a, None, next).is_ok(), "completing the rebalance");
    assert!(matches!(
        check(&b, None, generation),
        Err(GroupError::IllegalGeneration { .. })
    ));
    // An unknown group: only the form without metadata.
    assert!(f.groups.check_txn_commit("none", "", None, -1).is_ok());
    assert!(matches!(
        f.groups.check_txn_commit("none", "m", None, 3),
        Err(GroupError::UnknownMember { .. })
    ));
    assert!(matches!(
        f.groups.check_txn_commit("", "", None, -1),
        Err(GroupError::InvalidGroupId)
    ));
}

#[test]
fn a_transactional_commit_of_a_replaced_static_member_is_fenced() {
    let f = fixture();
    let first = |instance: &str| f.groups.join(join_req("", Some(instance), &["range"]));
    let mut ja = first("host-a");
    f.after(i64::from(DELAY));
    let a = done(&mut ja).unwrap().member_id;
    let mut sa = f.sync(&a, 1, &[(&a, "a")]);
    done(&mut sa).unwrap();
    let new_a = done(&mut first("host-a")).unwrap().member_id;
    assert!(matches!(
        f.groups.check_txn_commit("g", &a, Some("host-a"), 1),
        Err(GroupError::FencedInstance { .. })
    ));
    assert!(
        f.groups
            .check_txn_commit("g", &new_a, Some("host-a"), 1)
            .is_ok()
    );
}
