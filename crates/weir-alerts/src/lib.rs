//! `weir-alerts`: thresholds an operator sets on what says consumers are
//! falling behind: the depth of each dead-letter topic (records held) and
//! each consumer group's lag (records committed offsets are behind the
//! high watermarks, summed over the group's partitions). [`Alerts`] keeps
//! which alerts are firing; each [`Alerts::evaluate`] looks at the broker
//! and the coordinator and returns what fired and what cleared since the
//! last one, for the server to log; [`Alerts::firing`] is what
//! `GET /v1/alerts` shows. No runtime: the server calls `evaluate` on its
//! blocking pool at an interval.

use std::collections::BTreeMap;
use std::sync::Mutex;

use weir_broker::Broker;
use weir_groups::Coordinator;

/// The thresholds; an alert fires when a value is above its threshold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertRules {
    /// Records a dead-letter topic may hold (`None`: no alert).
    pub dead_letter_depth_max: Option<u64>,
    /// Records a consumer group's lag may reach (`None`: no alert).
    pub group_lag_max: Option<u64>,
    /// The suffix that makes a topic a dead-letter topic (`.dlq`).
    pub dead_letter_suffix: String,
}

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    /// A dead-letter topic's depth; the subject is the topic.
    DeadLetterDepth,
    /// A consumer group's total lag; the subject is the group.
    GroupLag,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeadLetterDepth => "dead_letter_depth",
            Self::GroupLag => "group_lag",
        }
    }
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    pub subject: String,
    /// The value when last evaluated.
    pub value: u64,
    pub threshold: u64,
    /// When it fired (Unix ms).
    pub since_ms: i64,
}

/// A change since the last evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Fired(Alert),
    /// The alert as it was, and the value that cleared it.
    Cleared {
        alert: Alert,
        value: u64,
    },
}

/// Most alerts kept firing at once; beyond it the lowest subjects are kept
/// and the rest counted in [`Alerts::dropped`] (a limit against a broker
/// with very many groups or topics over their thresholds).
pub const FIRING_MAX: usize = 10_000;

/// The rules and the alerts firing now.
#[derive(Debug)]
pub struct Alerts {
    rules: AlertRules,
    firing: Mutex<BTreeMap<(AlertKind, String), Alert>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl Alerts {
    pub fn new(rules: AlertRules) -> Self {
        Self {
            rules,
            firing: Mutex::new(BTreeMap::new()),
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    /// The values now, per alert kind and subject, of what has a threshold.
    fn values(
        &self,
        broker: &Broker,
        groups: &Coordinator,
    ) -> Vec<((AlertKind, String), u64, u64)> {
        let mut out = Vec::new();
        if let Some(max) = self.rules.dead_letter_depth_max
            && let Ok(topics) = weir_deadletter::depths(broker, &self.rules.dead_letter_suffix)
        {
            for (topic, depth) in topics {
                out.push(((AlertKind::DeadLetterDepth, topic), depth, max));
            }
        }
        if let Some(max) = self.rules.group_lag_max {
            for (group, _, _) in groups.list() {
                let lag: u64 = groups
                    .lag(&group)
                    .iter()
                    .filter_map(|p| p.lag)
                    .map(|l| u64::try_from(l).unwrap_or(0))
                    .sum();
                out.push(((AlertKind::GroupLag, group), lag, max));
            }
        }
        out
    }

    /// Looks at every watched value; returns the alerts that fired and
    /// cleared since the last call, in order of kind and subject.
    pub fn evaluate(&self, broker: &Broker, groups: &Coordinator, now_ms: i64) -> Vec<Transition> {
        let values = self.values(broker, groups);
        let mut firing = self.firing.lock().unwrap_or_else(|e| e.into_inner());
        let mut transitions = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (key, value, threshold) in values {
            seen.insert(key.clone());
            match (value > threshold, firing.get_mut(&key)) {
                (true, Some(alert)) => {
                    alert.value = value;
                    alert.threshold = threshold;
                }
                (true, None) => {
                    if firing.len() >= FIRING_MAX {
                        self.dropped
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    let alert = Alert {
                        kind: key.0,
                        subject: key.1.clone(),
                        value,
                        threshold,
                        since_ms: now_ms,
                    };
                    firing.insert(key, alert.clone());
                    transitions.push(Transition::Fired(alert));
                }
                (false, Some(_)) => {
                    let alert = firing.remove(&key).expect("just found");
                    transitions.push(Transition::Cleared { alert, value });
                }
                (false, None) => {}
            }
        }
        // A topic or group that is gone clears its alert.
        let gone: Vec<_> = firing
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            let alert = firing.remove(&key).expect("listed");
            transitions.push(Transition::Cleared { alert, value: 0 });
        }
        transitions
    }

    /// The alerts firing now, by kind and subject.
    pub fn firing(&self) -> Vec<Alert> {
        let firing = self.firing.lock().unwrap_or_else(|e| e.into_inner());
        firing.values().cloned().collect()
    }

    /// Alerts that would have fired past [`FIRING_MAX`].
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}
