//! Circuit breakers, one per downstream a service calls: closed (calls go
//! through), open after too many transient failures within a window (no
//! call goes through; the runtime pauses the partitions waiting for it
//! instead of burning retries), half-open after a cool-down (one probe call
//! goes through: success closes the breaker, failure opens it again).
//!
//! Hand-written rather than a crate: the state machine is a few lines, and
//! the runtime needs what the crates we looked at do not give, the time
//! at which a probe is next allowed, to pause and resume partitions on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When a downstream's breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Transient failures within `window` that open the breaker (at least 1).
    pub failures: u32,
    pub window: Duration,
    /// How long the breaker stays open before it lets one probe through.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures: 5,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
        }
    }
}

/// A breaker's state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// No call goes through until the cool-down ends.
    Open,
    /// One probe call is (or may be) on its way.
    HalfOpen,
}

/// Whether a call may go to the downstream now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// The breaker is closed.
    Go,
    /// The breaker is half-open and this call is its probe.
    Probe,
    /// Not before this instant.
    Wait(Instant),
}

#[derive(Debug)]
enum State {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen,
}

/// One downstream's breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    state: Mutex<State>,
}

/// How long a call waits, at most, to learn how a half-open breaker's
/// probe went before it asks again.
const PROBE_RECHECK: Duration = Duration::from_millis(50);

impl Breaker {
    pub(crate) fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy: BreakerPolicy {
                failures: policy.failures.max(1),
                ..policy
            },
            state: Mutex::new(State::Closed {
                failures: VecDeque::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn admit(&self, now: Instant) -> Admit {
        let mut state = self.state();
        match &*state {
            State::Closed { .. } => Admit::Go,
            State::Open { until } if now < *until => Admit::Wait(*until),
            State::Open { .. } => {
                *state = State::HalfOpen;
                Admit::Probe
            }
            State::HalfOpen => Admit::Wait(now + PROBE_RECHECK),
        }
    }

    /// The downstream answered (or refused the request for good, which
    /// also shows it is up).
    pub(crate) fn success(&self, probe: bool) {
        let mut state = self.state();
        match &mut *state {
            State::Closed { failures } => failures.clear(),
            State::HalfOpen if probe => {
                *state = State::Closed {
                    failures: VecDeque::new(),
                }
            }
            _ => {}
        }
    }

    /// The downstream failed transiently at `now`; returns whether the
    /// breaker is open now (this failure opened it, or it was the probe).
    pub(crate) fn failure(&self, probe: bool, now: Instant) -> bool {
        let policy = self.policy;
        let mut state = self.state();
        match &mut *state {
            State::Closed { failures } => {
                while failures
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) > policy.window)
                {
                    failures.pop_front();
                }
                failures.push_back(now);
                if failures.len() >= policy.failures as usize {
                    *state = State::Open {
                        until: now + policy.open_for,
                    };
                }
            }
            State::HalfOpen if probe => {
                *state = State::Open {
                    until: now + policy.open_for,
                }
            }
            _ => {}
        }
        matches!(*state, State::Open { .. })
    }

    /// A probe ended without telling (its call panicked): let another one
    /// through.
    pub(crate) fn probe_lost(&self) {
        let mut state = self.state();
        if matches!(*state, State::HalfOpen) {
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }

    /// When a call may next be admitted (`now` if it may be now).
    pub(crate) fn ready_at(&self, now: Instant) -> Instant {
        match &*self.state() {
            State::Closed { .. } => now,
            State::Open { until } => (*until).max(now),
            State::HalfOpen => now + PROBE_RECHECK,
        }
    }

    pub(crate) fn report(&self) -> BreakerState {
        match &*self.state() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

/// The breakers of one service, by downstream name; a downstream that was
/// not declared gets the service's default policy on its first call.
#[derive(Debug)]
pub(crate) struct Breakers {
    default: BreakerPolicy,
    by_name: Mutex<HashMap<String, Arc<Breaker>>>,
}

/// Most downstreams one service keeps a breaker for: a name made up per
/// call (an id in it) must not grow the map without bound.
pub const DOWNSTREAMS_MAX: usize = 256;

impl Breakers {
    pub(crate) fn new(default: BreakerPolicy, declared: &[(String, BreakerPolicy)]) -> Self {
        let by_name = declared
            .iter()
            .map(|(name, policy)| (name.clone(), Arc::new(Breaker::new(*policy))))
            .collect();
        Self {
            default,
            by_name: Mutex::new(by_name),
        }
    }

    /// The breaker of `name`; `None` once [`DOWNSTREAMS_MAX`] are known and
    /// `name` is not one of them.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Breaker>> {
        let mut map = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(name) {
            return Some(b.clone());
        }
        if map.len() >= DOWNSTREAMS_MAX {
            return None;
        }
        let b = Arc::new(Breaker::new(self.default));
        map.insert(name.to_owned(), b.clone());
        Some(b)
    }

    pub(crate) fn report(&self) -> Vec<(String, BreakerState)> {
        let map = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = map.iter().map(|(n, b)| (n.clone(), b.report())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 3,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
        }
    }

    #[test]
    fn opens_after_failures_in_window_and_probes_after_cool_down() {
        let b = Breaker::new(policy());
        let t0 = Instant::now();
        b.failure(false, t0);
        b.failure(false, t0 + Duration::from_secs(1));
        assert_eq!(b.admit(t0 + Duration::from_secs(1)), Admit::Go);
        b.failure(false, t0 + Duration::from_secs(2));
        let until = t0 + Duration::from_secs(7);
        assert_eq!(b.admit(t0 + Duration::from_secs(3)), Admit::Wait(until));
        assert_eq!(b.report(), BreakerState::Open);
        // The cool-down is over: one probe, the others wait for it.
        assert_eq!(b.admit(until), Admit::Probe);
        assert!(matches!(b.admit(until), Admit::Wait(_)));
        // The probe fails: open again for a full cool-down.
        b.failure(true, until);
        assert_eq!(
            b.admit(until + Duration::from_secs(1)),
            Admit::Wait(until + Duration::from_secs(5))
        );
        let later = until + Duration::from_secs(5);
        assert_eq!(b.admit(later), Admit::Probe);
        b.success(true);
        assert_eq!(b.admit(later), Admit::Go);
        assert_eq!(b.report(), BreakerState::Closed);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let b = Breaker::new(policy());
        let t0 = Instant::now();
        b.failure(false, t0);
        b.failure(false, t0 + Duration::from_secs(1));
        b.failure(false, t0 + Duration::from_secs(12));
        assert_eq!(b.admit(t0 + Duration::from_secs(12)), Admit::Go);
        // A success in between forgets the failures.
        b.success(false);
        b.failure(false, t0 + Duration::from_secs(13));
        b.failure(false, t0 + Duration::from_secs(13));
        assert_eq!(b.admit(t0 + Duration::from_secs(13)), Admit::Go);
    }

    #[test]
    fn a_lost_probe_lets_another_through() {
        let b = Breaker::new(BreakerPolicy {
            failures: 1,
            ..policy()
        });
        let t0 = Instant::now();
        b.failure(false, t0);
        assert_eq!(b.admit(t0 + Duration::from_secs(5)), Admit::Probe);
        b.probe_lost();
        assert_eq!(b.admit(t0 + Duration::from_secs(5)), Admit::Probe);
    }

    #[test]
    fn downstream_names_are_bounded() {
        let breakers = Breakers::new(BreakerPolicy::default(), &[]);
        for i in 0..DOWNSTREAMS_MAX {
            assert!(breakers.get(&format!("d{i}")).is_some());
        }
        assert!(breakers.get("one-too-many").is_none());
        assert!(breakers.get("d0").is_some());
    }
}
