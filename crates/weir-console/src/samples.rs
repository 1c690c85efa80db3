//! The console's memory of the recent past: per consumer group its total
//! lag, and per topic the sum of its partitions' end offsets, sampled
//! every `sample_ms` by a task the router starts (and when a page asks,
//! at most once a second), in bounded rings. The lag chart is drawn from
//! the first, a topic's throughput (records per second between the two
//! newest samples) from the second. Nothing is kept on disk: a restart
//! starts the history afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use weir_http::handlers;

use crate::Console;

/// Samples closer together than this are not taken on a page's request.
const ON_VIEW_SPACING: Duration = Duration::from_secs(1);

/// Bounded rings of samples, by group and by topic.
#[derive(Debug)]
pub struct Samples {
    samples_max: usize,
    /// Most keys in each map; a new key past it is not sampled.
    keys_max: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (ms since the epoch, total lag) per group, oldest first.
    lag: HashMap<String, VecDeque<(i64, i64)>>,
    /// (ms since the epoch, sum of end offsets) per topic, oldest first.
    ends: HashMap<String, VecDeque<(i64, i64)>>,
    last_round: Option<Instant>,
}

impl Samples {
    pub fn new(samples_max: usize, keys_max: usize) -> Self {
        Self {
            samples_max: samples_max.max(2),
            keys_max,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn push(&self, lag: Vec<(String, i64)>, ends: Vec<(String, i64)>, now_ms: i64) {
        let mut inner = self.inner.lock().expect("samples lock");
        let (max, keys_max) = (self.samples_max, self.keys_max);
        let put = |map: &mut HashMap<String, VecDeque<(i64, i64)>>, rows: Vec<(String, i64)>| {
            let seen: std::collections::HashSet<&String> = rows.iter().map(|r| &r.0).collect();
            // Groups and topics that went away stop taking room.
            map.retain(|k, _| seen.contains(k));
            for (key, value) in rows {
                if !map.contains_key(&key) && map.len() >= keys_max {
                    continue;
                }
                let ring = map.entry(key).or_default();
                if ring.len() >= max {
                    ring.pop_front();
                }
                ring.push_back((now_ms, value));
            }
        };
        put(&mut inner.lag, lag);
        put(&mut inner.ends, ends);
        inner.last_round = Some(Instant::now());
    }

    /// The group's lag samples, oldest first.
    pub fn lag(&self, group: &str) -> Vec<(i64, i64)> {
        let inner = self.inner.lock().expect("samples lock");
        inner
            .lag
            .get(group)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The topic's end-offset samples, oldest first.
    pub fn ends(&self, topic: &str) -> Vec<(i64, i64)> {
        let inner = self.inner.lock().expect("samples lock");
        inner
            .ends
            .get(topic)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Records per second into the topic between its two newest samples.
    pub fn rate(&self, topic: &str) -> Option<f64> {
        rate_of(&self.ends(topic))
    }

    fn due_on_view(&self) -> bool {
        let inner = self.inner.lock().expect("samples lock");
        inner
            .last_round
            .is_none_or(|at| at.elapsed() >= ON_VIEW_SPACING)
    }
}

/// Records per second between the two newest of `samples`.
pub fn rate_of(samples: &[(i64, i64)]) -> Option<f64> {
    let [.., (t0, e0), (t1, e1)] = samples else {
        return None;
    };
    let dt_ms = (t1 - t0).max(1);
    Some((e1 - e0).max(0) as f64 * 1000.0 / dt_ms as f64)
}

/// Per-second rates between consecutive samples, at the later one's time.
pub fn rates(samples: &[(i64, i64)]) -> Vec<(i64, f64)> {
    samples
        .windows(2)
        .filter_map(|w| rate_of(w).map(|r| (w[1].0, r)))
        .collect()
}

/// Takes one round of samples: every group's lag and every topic's end
/// offsets (each bounded by `sampled_max`).
pub(crate) async fn sample(console: &Console) {
    let app = console.app.clone();
    let keys_max = console.config.sampled_max;
    let mut lag = Vec::new();
    let groups = handlers::groups(State(app.clone()), None).await.0.groups;
    for g in groups.into_iter().take(keys_max) {
        if let Ok(info) = handlers::describe_group(State(app.clone()), Path(g.group)).await {
            lag.push((info.0.group, info.0.lag_total));
        }
    }
    let mut ends = Vec::new();
    let topics = handlers::topics(State(app.clone()), None).await.0.topics;
    for t in topics.into_iter().filter(|t| !t.internal).take(keys_max) {
        if let Ok(info) = handlers::describe_topic(State(app.clone()), Path(t.name)).await {
            let sum = info.0.partitions.iter().map(|p| p.end_offset).sum();
            ends.push((info.0.name, sum));
        }
    }
    console.samples.push(lag, ends, now_ms());
}

/// Samples now if the last round is more than a second old: a page shows
/// a fresh point, and reloading cannot make the sampler run hot.
pub(crate) async fn sample_on_view(console: &Console) {
    if console.samples.due_on_view() {
        let _ = tokio::time::timeout(crate::SAMPLE_WAIT, sample(console)).await;
    }
}

/// Starts the task that samples every `sample_ms` for as long as the
/// console is alive.
pub(crate) fn spawn_sampler(console: Weak<Console>) {
    tokio::spawn(async move {
        loop {
            let every = {
                let Some(c) = console.upgrade() else { return };
                sample(&c).await;
                Duration::from_millis(c.config.sample_ms.max(100))
            };
            tokio::time::sleep(every).await;
        }
    });
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_stay_bounded_and_forget_what_went_away() {
        let s = Samples::new(3, 2);
        for i in 0..5 {
            s.push(
                vec![("a".into(), i), ("b".into(), 10 * i), ("c".into(), 1)],
                vec![],
                i * 1000,
            );
        }
        assert_eq!(s.lag("a"), vec![(2000, 2), (3000, 3), (4000, 4)]);
        assert_eq!(s.lag("b").len(), 3);
        // A third key is past the bound.
        assert!(s.lag("c").is_empty());
        s.push(vec![("b".into(), 0)], vec![], 5000);
        assert!(s.lag("a").is_empty());
        assert_eq!(s.lag("b").last(), Some(&(5000, 0)));
    }

    #[test]
    fn throughput_is_the_rate_between_the_two_newest_samples() {
        assert_eq!(rate_of(&[(0, 0)]), None);
        assert_eq!(rate_of(&[(0, 0), (1000, 10), (3000, 50)]), Some(20.0));
        assert_eq!(
            rates(&[(0, 0), (500, 10), (1500, 10)]),
            vec![(500, 20.0), (1500, 0.0)]
        );
    }
}
