//! A data-directory-wide signal that some log's high watermark advanced, so
//! readers that found nothing new (a Kafka fetch long-poll, a live
//! subscription) can wait without polling, whatever runtime they run on.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// An epoch that moves every time any log of the data directory makes new
/// records visible. Waiters remember the epoch they saw before reading and
/// wait for it to move.
#[derive(Debug, Default)]
pub struct Changes {
    state: Mutex<State>,
    /// Wakes threads blocked in [`Changes::wait`].
    moved: Condvar,
}

#[derive(Debug, Default)]
struct State {
    epoch: u64,
    /// Wakers of pending futures; all are woken (and dropped) on each move,
    /// so the list holds at most one entry per poll since the last move.
    wakers: Vec<Waker>,
}

impl Changes {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current epoch: read it before reading the logs.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Records that new records became visible somewhere.
    pub(crate) fn advance(&self) {
        let wakers = {
            let mut st = self.lock();
            st.epoch += 1;
            std::mem::take(&mut st.wakers)
        };
        self.moved.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Blocks until the epoch differs from `seen` (true) or `timeout`
    /// passes (false): for callers without an async runtime.
    pub fn wait(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        while st.epoch == seen {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            st = self
                .moved
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Resolves once the epoch differs from `seen`.
    pub fn changed(self: &Arc<Self>, seen: u64) -> Changed {
        Changed {
            changes: self.clone(),
            seen,
        }
    }
}

/// The future of [`Changes::changed`].
#[derive(Debug)]
pub struct Changed {
    changes: Arc<Changes>,
    seen: u64,
}

impl Future for Changed {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let mut st = self.changes.lock();
        if st.epoch != self.seen {
            return Poll::Ready(st.epoch);
        }
        if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
