//! The server-side assignors of consumer-protocol groups (KIP-848): given
//! each member's subscribed topics, the topics' partition counts and the
//! previous target assignment, they compute the next target assignment.
//! `uniform` (the default, as in Kafka) balances partition counts and keeps
//! partitions where they were; `range` gives each member a contiguous range
//! of every topic it subscribes to, so members line up across topics that
//! are partitioned alike.

use std::collections::{BTreeMap, BTreeSet};

use crate::consumer_requests::{Assignment, TopicId};

/// Assignor names, the default first.
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// What an assignor sees.
#[derive(Debug)]
pub(crate) struct AssignmentSpec<'a> {
    /// Member id → the topics it subscribes to (that exist).
    pub subscriptions: &'a BTreeMap<String, BTreeSet<TopicId>>,
    /// Topic → its partition count.
    pub partitions: &'a BTreeMap<TopicId, i32>,
    /// The previous target assignment; members not in `subscriptions` are
    /// ignored.
    pub previous: &'a BTreeMap<String, Assignment>,
}

/// The target assignment of `assignor` (one of [`ASSIGNORS`]): every
/// partition of a subscribed topic goes to exactly one member subscribed to
/// it; every member has an entry, possibly empty.
pub(crate) fn assign(assignor: &str, spec: &AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    let flat = match assignor {
        "range" => range(spec),
        _ => uniform(spec),
    };
    let target: BTreeMap<String, Assignment> = flat
        .into_iter()
        .map(|(member, partitions)| {
            let mut assignment = Assignment::new();
            for (topic, partition) in partitions {
                assignment.entry(topic).or_default().insert(partition);
            }
            (member, assignment)
        })
        .collect();
    debug_assert!(covers_once(spec, &target), "{assignor} broke its contract");
    target
}

type Flat = BTreeMap<String, BTreeSet<(TopicId, i32)>>;

/// Every subscribed partition assigned once, to a subscriber.
fn covers_once(spec: &AssignmentSpec<'_>, target: &BTreeMap<String, Assignment>) -> bool {
    let mut seen = BTreeSet::new();
    for (member, assignment) in target {
        let Some(topics) = spec.subscriptions.get(member) else {
            return false;
        };
        for (topic, partitions) in assignment {
            if !topics.contains(topic) {
                return false;
            }
            for p in partitions {
                if !seen.insert((*topic, *p)) {
                    return false;
                }
            }
        }
    }
    let wanted: usize = subscribed_topics(spec)
        .iter()
        .map(|t| spec.partitions.get(t).copied().unwrap_or(0).max(0) as usize)
        .sum();
    seen.len() == wanted && target.len() == spec.subscriptions.len()
}

fn subscribed_topics(spec: &AssignmentSpec<'_>) -> BTreeSet<TopicId> {
    spec.subscriptions
        .values()
        .flatten()
        .filter(|t| spec.partitions.contains_key(t))
        .copied()
        .collect()
}

fn eligible(spec: &AssignmentSpec<'_>, member: &str, (topic, partition): (TopicId, i32)) -> bool {
    spec.subscriptions
        .get(member)
        .is_some_and(|ts| ts.contains(&topic))
        && spec.partitions.get(&topic).is_some_and(|n| partition < *n)
}

/// Balanced and sticky: members keep what they had as far as balance
/// allows. When every member subscribes to the same topics, counts differ
/// by at most one; otherwise partitions move from a member to one with at
/// least two fewer that may take them, until none can.
fn uniform(spec: &AssignmentSpec<'_>) -> Flat {
    let mut out: Flat = spec
        .subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    if out.is_empty() {
        return out;
    }
    // Partitions spread by index first, so a member gets a slice of every
    // topic rather than whole topics.
    let mut all: Vec<(TopicId, i32)> = subscribed_topics(spec)
        .into_iter()
        .flat_map(|t| (0..spec.partitions[&t]).map(move |p| (t, p)))
        .collect();
    all.sort_by_key(|&(t, p)| (p, t));
    let homogeneous = {
        let mut subs = spec.subscriptions.values();
        let first = subs.next().expect("not empty");
        subs.all(|s| s == first)
    };
    // What each member keeps of its previous assignment.
    let mut taken = BTreeSet::new();
    for (member, previous) in spec.previous {
        let Some(kept) = out.get_mut(member) else {
            continue;
        };
        for (topic, partitions) in previous {
            for &p in partitions {
                if eligible(spec, member, (*topic, p)) && taken.insert((*topic, p)) {
                    kept.insert((*topic, p));
                }
            }
        }
    }
    if homogeneous {
        // Quotas: `extra` members get one more; those that kept the most
        // get the larger quotas, so the fewest partitions move.
        let n = out.len();
        let (base, extra) = (all.len() / n, all.len() % n);
        let mut order: Vec<(String, usize)> =
            out.iter().map(|(m, k)| (m.clone(), k.len())).collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let quotas: BTreeMap<String, usize> = order
            .into_iter()
            .enumerate()
            .map(|(i, (m, _))| (m, base + usize::from(i < extra)))
            .collect();
        for (member, kept) in &mut out {
            while kept.len() > quotas[member] {
                let last = *kept.iter().next_back().expect("over quota");
                kept.remove(&last);
                taken.remove(&last);
            }
        }
        let mut room: Vec<String> = out
            .iter()
            .filter(|(m, k)| k.len() < quotas[*m])
            .map(|(m, _)| m.clone())
            .collect();
        let free: Vec<(TopicId, i32)> = all.into_iter().filter(|tp| !taken.contains(tp)).collect();
        for (next, tp) in free.into_iter().enumerate() {
            // Round robin over the members with room left; the quotas add
            // up to the partitions, so one always has room.
            let full = |m: &String| out[m].len() >= quotas[m];
            while full(&room[next % room.len()]) {
                room.remove(next % room.len());
            }
            let member = room[next % room.len()].clone();
            out.get_mut(&member).expect("a member").insert(tp);
        }
        return out;
    }
    // Heterogeneous: each free partition to the least loaded subscriber,
    // then move partitions from the most to the least loaded while that
    // narrows a gap of two or more. Each move lowers the sum of squared
    // counts, so this ends.
    for tp in all.into_iter().filter(|tp| !taken.contains(tp)) {
        let member = out
            .iter()
            .filter(|(m, _)| eligible(spec, m, tp))
            .min_by_key(|(m, k)| (k.len(), (*m).clone()))
            .map(|(m, _)| m.clone())
            .expect("a subscribed topic has a subscriber");
        out.get_mut(&member).expect("a member").insert(tp);
    }
    loop {
        let mut by_load: Vec<(String, usize)> =
            out.iter().map(|(m, k)| (m.clone(), k.len())).collect();
        by_load.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut moved = None;
        'search: for (donor, donor_load) in &by_load {
            for (receiver, receiver_load) in by_load.iter().rev() {
                if *donor_load <= receiver_load + 1 {
                    break;
                }
                if let Some(tp) = out[donor]
                    .iter()
                    .rev()
                    .find(|tp| eligible(spec, receiver, **tp))
                {
                    moved = Some((donor.clone(), receiver.clone(), *tp));
                    break 'search;
                }
            }
        }
        let Some((donor, receiver, tp)) = moved else {
            return out;
        };
        out.get_mut(&donor).expect("a member").remove(&tp);
        out.get_mut(&receiver).expect("a member").insert(tp);
    }
}

/// Per topic, its subscribers in member-id order each get a contiguous
/// range; the first `partitions % subscribers` get one more.
fn range(spec: &AssignmentSpec<'_>) -> Flat {
    let mut out: Flat = spec
        .subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for topic in subscribed_topics(spec) {
        let members: Vec<&String> = spec
            .subscriptions
            .iter()
            .filter(|(_, ts)| ts.contains(&topic))
            .map(|(m, _)| m)
            .collect();
        let n = spec.partitions[&topic].max(0) as usize;
        let (base, extra) = (n / members.len(), n % members.len());
        let mut start = 0;
        for (i, member) in members.into_iter().enumerate() {
            let count = base + usize::from(i < extra);
            let set = out.get_mut(member).expect("a member");
            set.extend((start..start + count).map(|p| (topic, p as i32)));
            start += count;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(
        members: &[(&str, &[u128])],
        topics: &[(u128, i32)],
    ) -> (BTreeMap<String, BTreeSet<TopicId>>, BTreeMap<TopicId, i32>) {
        (
            members
                .iter()
                .map(|(m, ts)| ((*m).to_owned(), ts.iter().map(|t| TopicId(*t)).collect()))
                .collect(),
            topics.iter().map(|(t, n)| (TopicId(*t), *n)).collect(),
        )
    }

    fn counts(target: &BTreeMap<String, Assignment>) -> Vec<usize> {
        target
            .values()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .collect()
    }

    #[test]
    fn uniform_balances_and_keeps_what_it_can() {
        let (subs, parts) = spec_of(&[("a", &[1]), ("b", &[1])], &[(1, 6)]);
        let none = BTreeMap::new();
        let first = assign(
            "uniform",
            &AssignmentSpec {
                subscriptions: &subs,
                partitions: &parts,
                previous: &none,
            },
        );
        assert_eq!(counts(&first), vec![3, 3]);
        let (subs3, _) = spec_of(&[("a", &[1]), ("b", &[1]), ("c", &[1])], &[(1, 6)]);
        let second = assign(
            "uniform",
            &AssignmentSpec {
                subscriptions: &subs3,
                partitions: &parts,
                previous: &first,
            },
        );
        assert_eq!(counts(&second), vec![2, 2, 2]);
        for m in ["a", "b"] {
            let before = &first[m][&TopicId(1)];
            let after = &second[m][&TopicId(1)];
            assert!(after.is_subset(before), "{m} only gives partitions up");
        }
    }

    #[test]
    fn uniform_with_different_subscriptions_assigns_only_subscribers() {
        let (subs, parts) = spec_of(
            &[("a", &[1, 2]), ("b", &[1]), ("c", &[2])],
            &[(1, 4), (2, 2)],
        );
        let none = BTreeMap::new();
        let target = assign(
            "uniform",
            &AssignmentSpec {
                subscriptions: &subs,
                partitions: &parts,
                previous: &none,
            },
        );
        assert_eq!(counts(&target), vec![2, 2, 2]);
        assert!(!target["b"].contains_key(&TopicId(2)));
        assert!(!target["c"].contains_key(&TopicId(1)));
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let (subs, parts) = spec_of(&[("a", &[1, 2]), ("b", &[1, 2])], &[(1, 5), (2, 2)]);
        let none = BTreeMap::new();
        let target = assign(
            "range",
            &AssignmentSpec {
                subscriptions: &subs,
                partitions: &parts,
                previous: &none,
            },
        );
        let of = |m: &str, t: u128| target[m][&TopicId(t)].iter().copied().collect::<Vec<_>>();
        assert_eq!(of("a", 1), vec![0, 1, 2]);
        assert_eq!(of("b", 1), vec![3, 4]);
        assert_eq!(of("a", 2), vec![0]);
        assert_eq!(of("b", 2), vec![1]);
    }
}
