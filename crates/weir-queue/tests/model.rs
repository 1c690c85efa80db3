//! Model-based tests of the acknowledgement engine: random sequences of
//! acquisitions by competing consumers, accepts, releases, rejects, gaps,
//! wrong acknowledgements, renewals, lock timeouts, consumers leaving,
//! idle claims, acquisitions of only some offsets (a pinned consumer),
//! the log's start moving and restarts, each checked against
//! a plain model that keeps every offset's state in a map. After every
//! step the engine's start offset, pending list, delivery counts and dead
//! letters match the model; a restart rebuilds the engine from its
//! durable changes (from the beginning, or from a snapshot and the changes
//! after it) and must give the same state with the locks gone. No record
//! is ever held by two consumers, and none accepted is delivered again.
//! `WEIR_MODEL_CASES` sets the number of cases (default 256).

use std::collections::BTreeMap;

use proptest::prelude::*;
use weir_queue::{
    AckKind, Change, DeadLetter, DeadLetterReason, Outcome, QueueConfig, QueueError,
    SharePartition, Snapshot,
};

const MEMBERS: [&str; 3] = ["m0", "m1", "m2"];
const CONFIG: QueueConfig = QueueConfig {
    lock_ms: 10_000,
    delivery_limit: 3,
    in_flight_max: 12,
};

#[derive(Debug, Clone)]
enum Op {
    Produce(i64),
    Acquire {
        member: usize,
        max: usize,
    },
    /// Acquire only offsets `offset % 3 == member`, as a pinned consumer
    /// of a persistent subscription does with its streams.
    AcquireWhere {
        member: usize,
        max: usize,
    },
    Ack {
        member: usize,
        pick: usize,
        len: i64,
        kind: AckKind,
    },
    AckUnheld {
        member: usize,
        offset: i64,
    },
    Renew {
        member: usize,
        pick: usize,
    },
    Tick(i64),
    Leave(usize),
    Claim {
        member: usize,
        min_idle: i64,
        max: usize,
    },
    DeleteBefore(i64),
    Snapshot,
    Restart {
        from_snapshot: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        4 => Just(AckKind::Accept),
        2 => Just(AckKind::Release),
        1 => Just(AckKind::Reject),
        1 => Just(AckKind::Gap),
    ];
    prop_oneof![
        3 => (1i64..6).prop_map(Op::Produce),
        4 => (0..3usize, 1..6usize).prop_map(|(member, max)| Op::Acquire { member, max }),
        2 => (0..3usize, 1..6usize).prop_map(|(member, max)| Op::AcquireWhere { member, max }),
        5 => (0..3usize, 0..8usize, 1i64..3, kind)
            .prop_map(|(member, pick, len, kind)| Op::Ack { member, pick, len, kind }),
        1 => (0..3usize, 0i64..30).prop_map(|(member, offset)| Op::AckUnheld { member, offset }),
        1 => (0..3usize, 0..8usize).prop_map(|(member, pick)| Op::Renew { member, pick }),
        // Whole seconds, so deadlines and idle times are often met exactly.
        2 => (0i64..12).prop_map(|s| Op::Tick(s * 1_000)),
        1 => (0..3usize).prop_map(Op::Leave),
        1 => (0..3usize, 0i64..12, 1..4usize).prop_map(|(member, min_idle, max)| Op::Claim {
            member,
            min_idle: min_idle * 1_000,
            max
        }),
        1 => (0i64..4).prop_map(Op::DeleteBefore),
        1 => Just(Op::Snapshot),
        1 => any::<bool>().prop_map(|from_snapshot| Op::Restart { from_snapshot }),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum M {
    Available(u16),
    Held {
        member: usize,
        deliveries: u16,
        delivered_ms: i64,
        deadline_ms: i64,
    },
    Done,
}

/// The model: every offset the log has ever had, and its state (absent:
/// never delivered).
#[derive(Debug, Default)]
struct Model {
    states: BTreeMap<i64, M>,
    log_start: i64,
    log_end: i64,
    now: i64,
    dead: Vec<DeadLetter>,
}

impl Model {
    /// The first offset at or past the log start not done.
    fn start(&self) -> i64 {
        let mut o = self.log_start;
        while self.states.get(&o) == Some(&M::Done) {
            o += 1;
        }
        o
    }

    /// Releases a held offset: available, or archived at its limit.
    fn release(&mut self, offset: i64) {
        if let Some(M::Held { deliveries, .. }) = self.states.get(&offset).cloned() {
            if deliveries >= CONFIG.delivery_limit {
                self.states.insert(offset, M::Done);
                self.dead.push(DeadLetter {
                    offset,
                    deliveries,
                    reason: DeadLetterReason::DeliveryLimit,
                });
            } else {
                self.states.insert(offset, M::Available(deliveries));
            }
        }
    }

    fn held_by(&self, member: usize) -> Vec<i64> {
        self.states
            .iter()
            .filter(|(o, s)| {
                **o >= self.log_start && matches!(s, M::Held { member: m, .. } if *m == member)
            })
            .map(|(o, _)| *o)
            .collect()
    }

    fn hold(&mut self, offset: i64, member: usize, deliveries: u16) {
        self.states.insert(
            offset,
            M::Held {
                member,
                deliveries,
                delivered_ms: self.now,
                deadline_ms: self.now + CONFIG.lock_ms,
            },
        );
    }
}

struct Run {
    engine: SharePartition,
    model: Model,
    /// Every durable change, oldest first.
    journal: Vec<Change>,
    /// The last snapshot and how many journal entries it covers.
    snapshot: Option<(Snapshot, usize)>,
    dead: Vec<DeadLetter>,
}

fn expand(acquired: &[weir_queue::Acquired]) -> Vec<(i64, u16)> {
    acquired
        .iter()
        .flat_map(|a| (a.first..=a.last).map(move |o| (o, a.deliveries)))
        .collect()
}

impl Run {
    fn record(&mut self, outcome: Outcome) {
        self.journal.extend(outcome.changes);
        self.dead.extend(outcome.dead_letters);
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let m = &mut self.model;
        match *op {
            Op::Produce(n) => m.log_end += n,
            Op::Acquire { member, max } => {
                let (got, outcome) =
                    self.engine
                        .acquire(MEMBERS[member], max, m.log_start, m.log_end, m.now);
                let start = m.start();
                let mut want = Vec::new();
                for offset in start..m.log_end {
                    if want.len() == max {
                        break;
                    }
                    match m.states.get(&offset) {
                        Some(M::Available(d)) => want.push((offset, d + 1)),
                        // Never delivered: taken while the window has room.
                        None if offset < start + CONFIG.in_flight_max as i64 => {
                            want.push((offset, 1))
                        }
                        _ => {}
                    }
                }
                for &(offset, d) in &want {
                    m.hold(offset, member, d);
                }
                prop_assert_eq!(expand(&got), want);
                self.record(outcome);
            }
            Op::AcquireWhere { member, max } => {
                let mine = |offset: i64| offset % 3 == member as i64;
                let (got, outcome) = self.engine.acquire_where(
                    MEMBERS[member],
                    max,
                    m.log_start,
                    m.log_end,
                    m.now,
                    &mut |o| mine(o),
                );
                let start = m.start();
                let mut want = Vec::new();
                for offset in start..m.log_end {
                    if want.len() == max {
                        break;
                    }
                    if !mine(offset) {
                        continue;
                    }
                    match m.states.get(&offset) {
                        Some(M::Available(d)) => want.push((offset, d + 1)),
                        None if offset < start + CONFIG.in_flight_max as i64 => {
                            want.push((offset, 1))
                        }
                        _ => {}
                    }
                }
                for &(offset, d) in &want {
                    m.hold(offset, member, d);
                }
                prop_assert_eq!(expand(&got), want);
                self.record(outcome);
            }
            Op::Ack {
                member,
                pick,
                len,
                kind,
            } => {
                let held = m.held_by(member);
                let Some(&first) = held.get(pick % held.len().max(1)) else {
                    return Ok(());
                };
                let last = first + len - 1;
                let all_held = (first..=last).all(|o| held.contains(&o));
                let r = self.engine.acknowledge(MEMBERS[member], first, last, kind);
                if !all_held {
                    prop_assert!(matches!(r, Err(QueueError::NotAcquired { .. })), "{:?}", r);
                    return Ok(());
                }
                let outcome = r.map_err(|e| TestCaseError::fail(e.to_string()))?;
                for offset in first..=last {
                    let Some(M::Held { deliveries, .. }) = m.states.get(&offset).cloned() else {
                        unreachable!();
                    };
                    match kind {
                        AckKind::Accept | AckKind::Gap => {
                            m.states.insert(offset, M::Done);
                        }
                        AckKind::Reject => {
                            m.states.insert(offset, M::Done);
                            m.dead.push(DeadLetter {
                                offset,
                                deliveries,
                                reason: DeadLetterReason::Rejected,
                            });
                        }
                        AckKind::Release => m.release(offset),
                    }
                }
                self.record(outcome);
            }
            Op::AckUnheld { member, offset } => {
                let held = m.held_by(member);
                if held.contains(&offset) {
                    return Ok(());
                }
                let before = self.engine.snapshot();
                let r = self
                    .engine
                    .acknowledge(MEMBERS[member], offset, offset, AckKind::Accept);
                prop_assert!(matches!(r, Err(QueueError::NotAcquired { .. })), "{:?}", r);
                prop_assert_eq!(self.engine.snapshot(), before);
            }
            Op::Renew { member, pick } => {
                let held = m.held_by(member);
                let Some(&offset) = held.get(pick % held.len().max(1)) else {
                    return Ok(());
                };
                self.engine
                    .renew(MEMBERS[member], offset, offset, m.now)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if let Some(M::Held { deadline_ms, .. }) = m.states.get_mut(&offset) {
                    *deadline_ms = m.now + CONFIG.lock_ms;
                }
            }
            Op::Tick(ms) => {
                m.now += ms;
                let outcome = self.engine.expire(m.now);
                let now = m.now;
                let expired: Vec<i64> = m
                    .states
                    .iter()
                    .filter(|(o, s)| {
                        **o >= m.log_start
                            && matches!(s, M::Held { deadline_ms, .. } if *deadline_ms <= now)
                    })
                    .map(|(o, _)| *o)
                    .collect();
                for o in expired {
                    m.release(o);
                }
                self.record(outcome);
            }
            Op::Leave(member) => {
                let outcome = self.engine.release_member(MEMBERS[member]);
                for o in m.held_by(member) {
                    m.release(o);
                }
                self.record(outcome);
            }
            Op::Claim {
                member,
                min_idle,
                max,
            } => {
                let (got, outcome) = self
                    .engine
                    .claim_idle(MEMBERS[member], min_idle, max, m.now);
                let now = m.now;
                let idle: Vec<(i64, u16)> = m
                    .states
                    .iter()
                    .filter_map(|(o, s)| match s {
                        M::Held {
                            deliveries,
                            delivered_ms,
                            ..
                        } if *o >= m.log_start && now - delivered_ms >= min_idle => {
                            Some((*o, *deliveries))
                        }
                        _ => None,
                    })
                    .collect();
                let mut want = Vec::new();
                for (offset, d) in idle {
                    if want.len() == max {
                        break;
                    }
                    if d >= CONFIG.delivery_limit {
                        m.release(offset);
                    } else {
                        want.push((offset, d + 1));
                        m.hold(offset, member, d + 1);
                    }
                }
                prop_assert_eq!(expand(&got), want);
                self.record(outcome);
            }
            Op::DeleteBefore(n) => {
                // The log's start moves (retention or DeleteRecords); the
                // engine sees it at its next acquisition.
                m.log_start = (m.log_start + n).min(m.log_end);
                let (got, outcome) = self
                    .engine
                    .acquire("probe", 0, m.log_start, m.log_end, m.now);
                prop_assert!(got.is_empty());
                self.record(outcome);
            }
            Op::Snapshot => {
                self.snapshot = Some((self.engine.snapshot(), self.journal.len()));
            }
            Op::Restart { from_snapshot } => {
                let mut rebuilt = match (&self.snapshot, from_snapshot) {
                    (Some((snapshot, covered)), true) => {
                        let mut p = SharePartition::from_snapshot(CONFIG, snapshot).unwrap();
                        for c in &self.journal[*covered..] {
                            p.apply(c);
                        }
                        p
                    }
                    _ => {
                        let mut p = SharePartition::new(CONFIG, 0).unwrap();
                        for c in &self.journal {
                            p.apply(c);
                        }
                        p
                    }
                };
                let mut live = self.engine.clone();
                live.drop_locks();
                prop_assert_eq!(rebuilt.snapshot(), live.snapshot());
                rebuilt.drop_locks();
                self.engine = rebuilt;
                for s in m.states.values_mut() {
                    if let M::Held { deliveries, .. } = *s {
                        *s = M::Available(deliveries);
                    }
                }
            }
        }
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let m = &self.model;
        let start = m.start();
        prop_assert_eq!(self.engine.start_offset(), start);
        let pending: Vec<(i64, String, u16, i64)> = self
            .engine
            .pending(m.now)
            .into_iter()
            .map(|p| (p.offset, p.member, p.deliveries, p.deadline_ms))
            .collect();
        let want: Vec<(i64, String, u16, i64)> = m
            .states
            .iter()
            .filter_map(|(o, s)| match s {
                M::Held {
                    member,
                    deliveries,
                    deadline_ms,
                    ..
                } if *o >= start => {
                    Some((*o, MEMBERS[*member].to_owned(), *deliveries, *deadline_ms))
                }
                _ => None,
            })
            .collect();
        prop_assert_eq!(pending, want);
        for (o, s) in m.states.range(start..) {
            let want = match s {
                M::Available(d) | M::Held { deliveries: d, .. } => Some(*d),
                M::Done => None,
            };
            prop_assert_eq!(self.engine.deliveries(*o), want, "offset {}", o);
        }
        prop_assert!(self.engine.end_offset() - start <= CONFIG.in_flight_max as i64);
        prop_assert_eq!(&self.dead, &m.dead);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WEIR_MODEL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        let mut run = Run {
            engine: SharePartition::new(CONFIG, 0).unwrap(),
            model: Model::default(),
            journal: Vec::new(),
            snapshot: None,
            dead: Vec::new(),
        };
        for op in &ops {
            run.step(op)?;
        }
    }
}
