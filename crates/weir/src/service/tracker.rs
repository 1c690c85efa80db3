//! What a running service has in flight, per partition: which offsets are
//! dispatched and not yet done, so that commits never pass an unfinished
//! record, backpressure knows when to pause fetching, and a revoked
//! partition's leftover work is recognised as stale.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// A partition of a source topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Lane {
    pub topic: Arc<str>,
    pub partition: i32,
}

#[derive(Debug, Default)]
struct LaneState {
    /// Bumped when the partition is revoked; work of an older generation
    /// is stale.
    generation: u64,
    in_flight: BTreeSet<i64>,
    /// One past the highest offset dispatched; `None` before the first.
    next: Option<i64>,
    /// The lowest offset given up (shutdown deadline) without being done:
    /// commits stay below it.
    abandoned: Option<i64>,
    committed: Option<i64>,
    /// Workers waiting on an open breaker for a record of this partition.
    blocked: u32,
}

impl LaneState {
    /// The offset to commit: the first one not done.
    fn position(&self, at_most_once: bool) -> Option<i64> {
        let next = self.next?;
        if at_most_once {
            return Some(next);
        }
        let mut pos = self.in_flight.first().copied().unwrap_or(next);
        if let Some(a) = self.abandoned {
            pos = pos.min(a);
        }
        Some(pos)
    }
}

#[derive(Debug, Default)]
struct Inner {
    lanes: HashMap<Lane, LaneState>,
    in_flight: usize,
    /// Threads waiting on `changed`: finishing a record notifies only
    /// when there are some (a notification is a system call).
    waiters: usize,
}

/// The in-flight bookkeeping shared by the poll loop and the workers.
#[derive(Debug)]
pub(crate) struct Tracker {
    inner: Mutex<Inner>,
    changed: Condvar,
    at_most_once: bool,
}

impl Tracker {
    pub(crate) fn new(at_most_once: bool) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            at_most_once,
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Partitions assigned: known from now on, nothing in flight.
    pub(crate) fn assign(&self, lanes: &[Lane]) {
        let mut inner = self.inner();
        for lane in lanes {
            inner.lanes.entry(lane.clone()).or_default();
        }
    }

    /// Partitions revoked: their in-flight work becomes stale and they are
    /// forgotten (a later assignment starts from the committed offset).
    pub(crate) fn revoke(&self, lanes: &[Lane]) {
        let mut inner = self.inner();
        for lane in lanes {
            if let Some(state) = inner.lanes.remove(lane) {
                inner.in_flight -= state.in_flight.len();
            }
        }
        let waiters = inner.waiters;
        drop(inner);
        if waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// A record is handed to a worker; returns its partition's generation.
    pub(crate) fn dispatch(&self, lane: &Lane, offset: i64) -> u64 {
        let mut inner = self.inner();
        let state = inner.lanes.entry(lane.clone()).or_default();
        let fresh = state.in_flight.insert(offset);
        state.next = Some(state.next.map_or(offset + 1, |n| n.max(offset + 1)));
        let generation = state.generation;
        if fresh {
            inner.in_flight += 1;
        }
        generation
    }

    /// Whether work of `generation` on `lane` is still wanted.
    pub(crate) fn current(&self, lane: &Lane, generation: u64) -> bool {
        self.inner()
            .lanes
            .get(lane)
            .is_some_and(|s| s.generation == generation)
    }

    /// A record is done (handled, skipped or dead-lettered).
    pub(crate) fn done(&self, lane: &Lane, offset: i64, generation: u64) {
        self.finish(lane, offset, generation, false);
    }

    /// A record was given up without being done (the shutdown deadline
    /// passed): it stays uncommitted and is delivered again later.
    pub(crate) fn abandon(&self, lane: &Lane, offset: i64, generation: u64) {
        self.finish(lane, offset, generation, true);
    }

    fn finish(&self, lane: &Lane, offset: i64, generation: u64, abandoned: bool) {
        let mut inner = self.inner();
        let Some(state) = inner.lanes.get_mut(lane) else {
            return;
        };
        if state.generation != generation || !state.in_flight.remove(&offset) {
            return;
        }
        if abandoned {
            state.abandoned = Some(state.abandoned.map_or(offset, |a| a.min(offset)));
        }
        inner.in_flight -= 1;
        let waiters = inner.waiters;
        drop(inner);
        if waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// A worker waits on an open breaker for a record of `lane`
    /// (`blocked`), or stopped waiting.
    pub(crate) fn set_blocked(&self, lane: &Lane, blocked: bool) {
        let mut inner = self.inner();
        if let Some(state) = inner.lanes.get_mut(lane) {
            if blocked {
                state.blocked += 1;
            } else {
                state.blocked = state.blocked.saturating_sub(1);
            }
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.inner().in_flight
    }

    /// Assigned partitions, and whether a worker waits on an open breaker
    /// for one of its records.
    pub(crate) fn lanes(&self) -> Vec<(Lane, bool)> {
        let mut out: Vec<_> = self
            .inner()
            .lanes
            .iter()
            .map(|(l, s)| (l.clone(), s.blocked > 0))
            .collect();
        out.sort();
        out
    }

    /// The offsets to commit: for every partition (of `only`, if given)
    /// whose position moved past its last commit.
    pub(crate) fn to_commit(&self, only: Option<&[Lane]>) -> Vec<(Lane, i64)> {
        let inner = self.inner();
        let mut out: Vec<_> = inner
            .lanes
            .iter()
            .filter(|(l, _)| only.is_none_or(|o| o.contains(l)))
            .filter_map(|(l, s)| {
                let pos = s.position(self.at_most_once)?;
                (s.committed != Some(pos)).then(|| (l.clone(), pos))
            })
            .collect();
        out.sort();
        out
    }

    /// `offsets` were committed.
    pub(crate) fn committed(&self, offsets: &[(Lane, i64)]) {
        let mut inner = self.inner();
        for (lane, pos) in offsets {
            if let Some(state) = inner.lanes.get_mut(lane) {
                state.committed = Some(*pos);
            }
        }
    }

    /// Waits until nothing of `lanes` (of every partition, if `None`) is in
    /// flight, or `deadline`; returns whether it got there.
    pub(crate) fn wait_idle(&self, lanes: Option<&[Lane]>, deadline: Instant) -> bool {
        self.wait_until(deadline, |inner| match lanes {
            None => inner.in_flight == 0,
            Some(lanes) => lanes
                .iter()
                .all(|l| inner.lanes.get(l).is_none_or(|s| s.in_flight.is_empty())),
        })
    }

    /// Waits until at most `n` records are in flight, or `deadline`;
    /// returns whether it got there.
    pub(crate) fn wait_below(&self, n: usize, deadline: Instant) -> bool {
        self.wait_until(deadline, |inner| inner.in_flight <= n)
    }

    fn wait_until(&self, deadline: Instant, done: impl Fn(&Inner) -> bool) -> bool {
        let mut inner = self.inner();
        inner.waiters += 1;
        let reached = loop {
            if done(&inner) {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            inner = self
                .changed
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        inner.waiters -= 1;
        reached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(p: i32) -> Lane {
        Lane {
            topic: "t".into(),
            partition: p,
        }
    }

    #[test]
    fn commits_stop_at_the_first_unfinished_record() {
        let t = Tracker::new(false);
        let l = lane(0);
        t.assign(std::slice::from_ref(&l));
        assert!(t.to_commit(None).is_empty(), "nothing dispatched yet");
        let g = t.dispatch(&l, 10);
        t.dispatch(&l, 11);
        t.dispatch(&l, 12);
        t.done(&l, 11, g);
        t.done(&l, 12, g);
        assert_eq!(t.to_commit(None), vec![(l.clone(), 10)]);
        t.done(&l, 10, g);
        let c = t.to_commit(None);
        assert_eq!(c, vec![(l.clone(), 13)]);
        t.committed(&c);
        assert!(t.to_commit(None).is_empty());
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn abandoned_records_hold_commits_back_and_stale_work_is_ignored() {
        let t = Tracker::new(false);
        let l = lane(1);
        let g = t.dispatch(&l, 5);
        t.dispatch(&l, 6);
        t.abandon(&l, 5, g);
        t.done(&l, 6, g);
        assert_eq!(t.to_commit(None), vec![(l.clone(), 5)]);
        let g2 = t.dispatch(&l, 7);
        t.revoke(std::slice::from_ref(&l));
        assert!(!t.current(&l, g2));
        assert_eq!(t.in_flight(), 0);
        t.done(&l, 7, g2); // stale: no effect, no underflow
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn at_most_once_commits_what_was_dispatched() {
        let t = Tracker::new(true);
        let l = lane(2);
        t.dispatch(&l, 0);
        t.dispatch(&l, 1);
        assert_eq!(t.to_commit(None), vec![(l, 2)]);
        assert_eq!(t.in_flight(), 2);
    }

    #[test]
    fn waiting_for_idle_ends_when_work_is_done_or_at_the_deadline() {
        let t = Arc::new(Tracker::new(false));
        let l = lane(3);
        let g = t.dispatch(&l, 0);
        let soon = Instant::now() + std::time::Duration::from_millis(20);
        assert!(!t.wait_idle(None, soon));
        let t2 = t.clone();
        let l2 = l.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            t2.done(&l2, 0, g);
        });
        let later = Instant::now() + std::time::Duration::from_secs(10);
        assert!(t.wait_idle(Some(std::slice::from_ref(&l)), later));
        h.join().unwrap();
    }
}
