//! The clock group coordination runs on in a server: wall time at start,
//! then monotonic, so session timers never jump.

use weir_log::Clock;

/// The wall clock when it was made, then moving with the monotonic clock:
/// session timers never jump when the system time is set, and commit
/// timestamps stay close to wall time.
#[derive(Debug)]
pub struct MonotonicClock {
    start: std::time::Instant,
    start_ms: i64,
}

impl MonotonicClock {
    pub fn new() -> Self {
        Self {
            start: std::time::Instant::now(),
            start_ms: weir_log::SystemClock.now_ms(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + self.start.elapsed().as_millis() as i64
    }
}
