//! The cardinality cap: per-topic, per-partition and per-group-partition
//! series are admitted by label set up to `series_max`; a label set past
//! the cap gets no series and is counted once as dropped. Admission is
//! sticky, so the series a dashboard shows do not flap as topics come and
//! go; a label set whose subject no longer exists leaves the budget at the
//! next scrape, making room.

use std::collections::HashSet;

/// Which label sets have series, decided scrape by scrape.
#[derive(Debug)]
pub(crate) struct Budget {
    series_max: usize,
    admitted: HashSet<String>,
    /// Refused and already counted as dropped (only label sets that still
    /// exist, so this is bounded by what the broker holds).
    refused: HashSet<String>,
    dropped_total: u64,
}

impl Budget {
    pub(crate) fn new(series_max: usize) -> Self {
        Self {
            series_max,
            admitted: HashSet::new(),
            refused: HashSet::new(),
            dropped_total: 0,
        }
    }

    /// Starts a scrape over the label sets that exist now, in the order
    /// given: those already admitted keep their series, the others are
    /// admitted while there is room.
    pub(crate) fn scrape(&mut self, keys: &[String]) {
        let existing: HashSet<&str> = keys.iter().map(String::as_str).collect();
        self.admitted.retain(|k| existing.contains(k.as_str()));
        self.refused.retain(|k| existing.contains(k.as_str()));
        for key in keys {
            if self.admitted.contains(key) {
                continue;
            }
            if self.admitted.len() < self.series_max {
                self.refused.remove(key);
                self.admitted.insert(key.clone());
            } else if self.refused.insert(key.clone()) {
                self.dropped_total += 1;
            }
        }
    }

    /// Whether `key` has series (after [`Budget::scrape`]).
    pub(crate) fn admits(&self, key: &str) -> bool {
        self.admitted.contains(key)
    }

    pub(crate) fn admitted(&self) -> usize {
        self.admitted.len()
    }

    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn past_the_cap_label_sets_are_refused_and_counted_once() {
        let mut b = Budget::new(2);
        for _ in 0..3 {
            b.scrape(&keys(&["a", "b", "c", "d"]));
            assert!(b.admits("a") && b.admits("b"));
            assert!(!b.admits("c") && !b.admits("d"));
        }
        assert_eq!(b.admitted(), 2);
        assert_eq!(b.dropped_total(), 2);
    }

    #[test]
    fn admission_is_sticky_and_a_label_set_that_is_gone_makes_room() {
        let mut b = Budget::new(1);
        b.scrape(&keys(&["b", "a"]));
        assert!(b.admits("b"));
        b.scrape(&keys(&["a", "b"]));
        assert!(b.admits("b") && !b.admits("a"));
        // "b" was deleted.
        b.scrape(&keys(&["a"]));
        assert!(b.admits("a"));
        assert_eq!(b.admitted(), 1);
        assert_eq!(b.dropped_total(), 1);
    }
}
