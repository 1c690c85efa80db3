//! Alerts over a real broker and coordinator in a temp dir: a dead-letter
//! topic above its depth threshold and a group above its lag threshold
//! fire once, stay firing while above, and clear when the value falls
//! back or the subject goes away.

use std::sync::Arc;

use weir_alerts::{AlertKind, AlertRules, Alerts, Transition};
use weir_broker::{Broker, BrokerConfig};
use weir_groups::{
    CommittedOffset, Coordinator, GroupsConfig, MonotonicClock, OffsetStore, OffsetsConfig,
    TopicPartition,
};
use weir_log::batch::BatchBuilder;
use weir_log::{DataDir, DirConfig};

fn setup() -> (tempfile::TempDir, Arc<Broker>, Coordinator) {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path(), DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    let offsets = OffsetStore::open(broker.clone(), OffsetsConfig::default()).unwrap();
    let groups = Coordinator::new(
        GroupsConfig::default(),
        Arc::new(MonotonicClock::new()),
        broker.clone(),
        Arc::new(offsets),
    );
    (dir, broker, groups)
}

fn produce(broker: &Broker, topic: &str, n: usize) {
    for _ in 0..n {
        let mut b = BatchBuilder::new(0);
        b.push(0, None, Some(b"x"), &[]);
        broker.produce(topic, 0, &mut b.build()).unwrap();
    }
}

fn commit(groups: &Coordinator, group: &str, topic: &str, offset: i64) {
    let at = TopicPartition {
        topic: topic.to_owned(),
        partition: 0,
    };
    let committed = CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 0,
    };
    groups
        .commit(group, "", None, -1, &[(at, committed)])
        .unwrap()
        .wait()
        .unwrap();
}

fn names(t: &[Transition]) -> Vec<(&'static str, AlertKind, String)> {
    t.iter()
        .map(|t| match t {
            Transition::Fired(a) => ("fired", a.kind, a.subject.clone()),
            Transition::Cleared { alert, .. } => ("cleared", alert.kind, alert.subject.clone()),
        })
        .collect()
}

#[test]
fn thresholds_fire_once_and_clear() {
    let (_dir, broker, groups) = setup();
    let alerts = Alerts::new(AlertRules {
        dead_letter_depth_max: Some(2),
        group_lag_max: Some(5),
        dead_letter_suffix: ".dlq".into(),
    });
    broker.create_topic("orders", 1, -1, &[], false).unwrap();
    broker
        .create_topic("orders.dlq", 1, -1, &[], false)
        .unwrap();
    produce(&broker, "orders", 10);
    produce(&broker, "orders.dlq", 2);
    commit(&groups, "billing", "orders", 6);
    // At the thresholds, nothing fires.
    assert_eq!(names(&alerts.evaluate(&broker, &groups, 1_000)), []);

    produce(&broker, "orders.dlq", 1);
    produce(&broker, "orders", 2);
    let fired = alerts.evaluate(&broker, &groups, 2_000);
    assert_eq!(
        names(&fired),
        [
            ("fired", AlertKind::DeadLetterDepth, "orders.dlq".into()),
            ("fired", AlertKind::GroupLag, "billing".into()),
        ]
    );
    let firing = alerts.firing();
    assert_eq!(
        (firing[0].value, firing[0].threshold, firing[0].since_ms),
        (3, 2, 2_000)
    );
    assert_eq!((firing[1].value, firing[1].threshold), (6, 5));
    // Still above: no new transition, the value follows.
    produce(&broker, "orders", 1);
    assert_eq!(names(&alerts.evaluate(&broker, &groups, 3_000)), []);
    assert_eq!(alerts.firing()[1].value, 7);

    // The group catches up; the dead-letter topic goes away.
    commit(&groups, "billing", "orders", 13);
    broker.delete_topic("orders.dlq").unwrap();
    let cleared = alerts.evaluate(&broker, &groups, 4_000);
    assert_eq!(
        names(&cleared),
        [
            ("cleared", AlertKind::GroupLag, "billing".into()),
            ("cleared", AlertKind::DeadLetterDepth, "orders.dlq".into()),
        ]
    );
    assert!(alerts.firing().is_empty());
}

#[test]
fn without_thresholds_nothing_is_watched() {
    let (_dir, broker, groups) = setup();
    let alerts = Alerts::new(AlertRules {
        dead_letter_suffix: ".dlq".into(),
        ..AlertRules::default()
    });
    broker
        .create_topic("orders.dlq", 1, -1, &[], false)
        .unwrap();
    produce(&broker, "orders.dlq", 100);
    assert!(alerts.evaluate(&broker, &groups, 0).is_empty());
}
