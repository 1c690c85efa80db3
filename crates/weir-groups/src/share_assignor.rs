//! The share groups' assignor (`simple`): which members fetch from which
//! partitions. A share partition hands each record to one consumer under a
//! lock, so two members on one partition never read the same record; the
//! assignment only decides who asks where. Its goals are those of Kafka's
//! `simple` share assignor:
//!
//! - every subscribed partition has at least one member, and every member
//!   with a subscription that names an existing topic has at least one
//!   partition;
//! - while members are no more than partitions, each partition has exactly
//!   one member and members hold `floor(P/M)` or `ceil(P/M)` partitions (so
//!   a consumer is not made to poll every partition of a wide topic);
//! - once members outnumber partitions, each member gets one partition and
//!   partitions are shared as evenly as possible (the point of share groups:
//!   16 consumers on one partition all read from it);
//! - deterministic (ties go to the smaller member id and partition), and
//!   sticky: a member keeps what it had while that stays within its share,
//!   so a member joining moves as few partitions as it can.
//!
//! Balance is exact for members with the same subscription and best effort
//! across different ones (a partition only goes to a member subscribed to
//! its topic).

use std::collections::{BTreeMap, BTreeSet};

use crate::consumer_requests::{Assignment, TopicId};

/// Assigns `partitions` (topic → partition count) to the members of
/// `subscriptions` (member → the subscribed topics that exist), keeping
/// what `previous` gave where it can. Every member has an entry.
pub(crate) fn assign_shared(
    subscriptions: &BTreeMap<String, BTreeSet<TopicId>>,
    partitions: &BTreeMap<TopicId, i32>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let out: BTreeMap<String, Assignment> = subscriptions
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    let subscribed: BTreeSet<TopicId> = subscriptions.values().flatten().copied().collect();
    let all: Vec<(TopicId, i32)> = partitions
        .iter()
        .filter(|(t, _)| subscribed.contains(t))
        .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
        .collect();
    let active: Vec<&String> = subscriptions
        .iter()
        .filter(|(_, ts)| ts.iter().any(|t| partitions.get(t).is_some_and(|n| *n > 0)))
        .map(|(m, _)| m)
        .collect();
    if all.is_empty() || active.is_empty() {
        return out;
    }
    let subscribes = |m: &str, t: TopicId| subscriptions.get(m).is_some_and(|ts| ts.contains(&t));
    let held_before = |m: &str, (t, p): (TopicId, i32)| {
        previous
            .get(m)
            .and_then(|a| a.get(&t))
            .is_some_and(|ps| ps.contains(&p))
    };
    let floor = all.len() / active.len();
    let mut extra_slots = all.len() % active.len();
    let mut t = Tally {
        out,
        load: active.iter().map(|m| (m.as_str(), 0)).collect(),
        holders: all.iter().map(|tp| (*tp, 0)).collect(),
    };

    // 1. Each partition stays with one member that had it, while that
    //    member is within its share (floor, or floor + 1 for as many
    //    members as the division leaves over).
    let mut placed: BTreeSet<(TopicId, i32)> = BTreeSet::new();
    for &tp in &all {
        let keeper = active.iter().find(|m| {
            held_before(m, tp) && subscribes(m, tp.0) && {
                let l = t.load[m.as_str()];
                l < floor || (l == floor && extra_slots > 0)
            }
        });
        if let Some(m) = keeper {
            if t.load[m.as_str()] == floor {
                extra_slots -= 1;
            }
            t.give(m, tp);
            placed.insert(tp);
        }
    }
    // 2. The other partitions go to the least loaded subscriber.
    for &tp in &all {
        if placed.contains(&tp) {
            continue;
        }
        let m = active
            .iter()
            .filter(|m| subscribes(m, tp.0))
            .min_by_key(|m| (t.load[m.as_str()], m.as_str()))
            .expect("a subscribed partition has a subscriber");
        t.give(m, tp);
    }
    // 3. Members still without a partition (more members than
    //    partitions) share the least shared one they subscribe to,
    //    preferring one they had.
    for m in &active {
        if t.load[m.as_str()] > 0 {
            continue;
        }
        let tp = all
            .iter()
            .filter(|tp| subscribes(m, tp.0))
            .min_by_key(|tp| (t.holders[tp], !held_before(m, **tp), **tp))
            .copied()
            .expect("an active member subscribes to a partition");
        t.give(m, tp);
    }
    t.out
}

/// An assignment being built, with each member's partition count and each
/// partition's member count.
struct Tally<'a> {
    out: BTreeMap<String, Assignment>,
    load: BTreeMap<&'a str, usize>,
    holders: BTreeMap<(TopicId, i32), usize>,
}

impl Tally<'_> {
    fn give(&mut self, m: &str, (t, p): (TopicId, i32)) {
        self.out
            .get_mut(m)
            .expect("every member has an entry")
            .entry(t)
            .or_default()
            .insert(p);
        *self.load.get_mut(m).expect("an active member") += 1;
        *self
            .holders
            .get_mut(&(t, p))
            .expect("a subscribed partition") += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[&str], topics: &[u128]) -> BTreeMap<String, BTreeSet<TopicId>> {
        members
            .iter()
            .map(|m| (m.to_string(), topics.iter().map(|t| TopicId(*t)).collect()))
            .collect()
    }

    fn counts(a: &BTreeMap<String, Assignment>) -> Vec<usize> {
        a.values()
            .map(|x| x.values().map(BTreeSet::len).sum())
            .collect()
    }

    fn holders(a: &BTreeMap<String, Assignment>) -> BTreeMap<(u128, i32), usize> {
        let mut h = BTreeMap::new();
        for x in a.values() {
            for (t, ps) in x {
                for p in ps {
                    *h.entry((t.0, *p)).or_default() += 1;
                }
            }
        }
        h
    }

    #[test]
    fn fewer_members_than_partitions_split_them() {
        let parts = BTreeMap::from([(TopicId(1), 5)]);
        let a = assign_shared(&subs(&["a", "b"], &[1]), &parts, &BTreeMap::new());
        assert_eq!(counts(&a), vec![3, 2]);
        assert!(holders(&a).values().all(|h| *h == 1));
        assert_eq!(holders(&a).len(), 5);
    }

    #[test]
    fn more_members_than_partitions_share_them() {
        let parts = BTreeMap::from([(TopicId(1), 2)]);
        let members = ["a", "b", "c", "d", "e"];
        let a = assign_shared(&subs(&members, &[1]), &parts, &BTreeMap::new());
        assert!(counts(&a).iter().all(|c| *c == 1), "{a:?}");
        let mut h: Vec<usize> = holders(&a).into_values().collect();
        h.sort();
        assert_eq!(h, vec![2, 3]);
    }

    #[test]
    fn a_joining_member_moves_little() {
        let parts = BTreeMap::from([(TopicId(1), 4)]);
        let before = assign_shared(&subs(&["a", "b"], &[1]), &parts, &BTreeMap::new());
        let after = assign_shared(&subs(&["a", "b", "c"], &[1]), &parts, &before);
        assert_eq!(counts(&after).iter().sum::<usize>(), 4);
        assert!(
            counts(&after).iter().all(|c| (1..=2).contains(c)),
            "{after:?}"
        );
        // a and b keep what they still hold; c takes one partition only.
        for m in ["a", "b"] {
            for (t, ps) in &after[m] {
                assert!(ps.is_subset(&before[m][t]), "{m} moved: {after:?}");
            }
        }
    }

    #[test]
    fn only_subscribers_get_a_topic() {
        let parts = BTreeMap::from([(TopicId(1), 2), (TopicId(2), 2)]);
        let mut s = subs(&["a"], &[1]);
        s.extend(subs(&["b"], &[2]));
        s.extend(subs(&["c"], &[3]));
        let a = assign_shared(&s, &parts, &BTreeMap::new());
        assert_eq!(a["a"].keys().copied().collect::<Vec<_>>(), vec![TopicId(1)]);
        assert_eq!(a["b"].keys().copied().collect::<Vec<_>>(), vec![TopicId(2)]);
        assert!(a["c"].is_empty());
    }
}
