//! Power loss under the queue manager on the simulated disk: random
//! claims, accepts, releases, rejects and snapshots until the disk dies at
//! a random sync, then a restart from what survived. No record told
//! accepted or rejected is delivered again, every record never told
//! settled is delivered again, and every told rejection has its dead
//! letter. `WEIR_QUEUE_CRASH_SEEDS` sets the number of seeds (default 20).

use std::collections::BTreeSet;
use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_deadletter::queue_io::BrokerQueueIo;
use weir_log::batch::BatchBuilder;
use weir_log::sim::{SimRng, SimStorage};
use weir_log::{DataDir, DirConfig, ManualClock};
use weir_queue::{AckKind, Create, QueueKey, Queues, QueuesConfig};

const RECORDS: i64 = 40;
const CREATE: Create = Create {
    delivery_limit: 1_000,
    start: 0,
};

fn key() -> QueueKey {
    QueueKey {
        group: "g".into(),
        topic: "jobs".into(),
        partition: 0,
    }
}

fn config() -> QueuesConfig {
    QueuesConfig {
        snapshot_records: 7,
        ..QueuesConfig::default()
    }
}

fn open(disk: &SimStorage, clock: &ManualClock) -> Arc<Broker> {
    let dir = DataDir::open_with(
        Arc::new(disk.clone()),
        Arc::new(clock.clone()),
        "/data",
        DirConfig::default(),
    )
    .unwrap();
    Arc::new(Broker::open(dir, BrokerConfig::default()).unwrap())
}

fn run(seed: u64) {
    let mut rng = SimRng::new(seed);
    let disk = SimStorage::new();
    let clock = ManualClock::new(1_000);
    let broker = open(&disk, &clock);
    broker.create_topic("jobs", 1, 1, &[], false).unwrap();
    let mut b = BatchBuilder::new(0);
    for i in 0..RECORDS {
        b.push(0, None, Some(i.to_string().as_bytes()), &[]);
    }
    broker.produce("jobs", 0, &mut b.build()).unwrap();
    let (q, _) = Queues::open(BrokerQueueIo::new(broker.clone()), config()).unwrap();
    let (mut accepted, mut rejected, mut uncertain) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    disk.die_after_syncs(rng.below(40));
    let mut held: Vec<i64> = Vec::new();
    for step in 0..200i64 {
        if disk.is_dead() {
            break;
        }
        let now = 1_000 + step;
        match rng.below(10) {
            0..=2 => {
                if let Ok(got) = q.acquire(&key(), &CREATE, "m", 5, 60_000, 0, RECORDS, now) {
                    held.extend(got.iter().flat_map(|a| a.first..=a.last));
                }
            }
            3..=7 if !held.is_empty() => {
                let offset = held.remove(rng.below(held.len() as u64) as usize);
                let kind = match rng.below(4) {
                    0 => AckKind::Release,
                    1 => AckKind::Reject,
                    _ => AckKind::Accept,
                };
                match (q.acknowledge(&key(), "m", offset, offset, kind), kind) {
                    (Ok(()), AckKind::Accept) => drop(accepted.insert(offset)),
                    (Ok(()), AckKind::Reject) => drop(rejected.insert(offset)),
                    (Ok(()), _) => {}
                    (Err(_), _) => drop(uncertain.insert(offset)),
                }
            }
            _ => {
                let _ = q.maintain();
            }
        }
    }
    drop(q);
    drop(broker);
    let disk = disk.crash(rng.next_u64());
    let broker = open(&disk, &clock);
    let (q, recovery) = Queues::open(BrokerQueueIo::new(broker.clone()), config()).unwrap();
    assert!(recovery.skipped.is_empty(), "seed {seed}: {recovery:?}");
    let mut again = BTreeSet::new();
    loop {
        let got = q
            .acquire(&key(), &CREATE, "check", 100, 60_000, 0, RECORDS, 10_000)
            .unwrap();
        if got.is_empty() {
            break;
        }
        again.extend(got.iter().flat_map(|a| a.first..=a.last));
    }
    assert!(
        accepted.is_disjoint(&again) && rejected.is_disjoint(&again),
        "seed {seed}: settled records delivered again"
    );
    for offset in 0..RECORDS {
        let settled = accepted.contains(&offset) || rejected.contains(&offset);
        assert!(
            settled || uncertain.contains(&offset) || again.contains(&offset),
            "seed {seed}: offset {offset} lost"
        );
    }
    let letters = weir_deadletter::read(&broker, "jobs.dlq", 0, 0, 1_000)
        .map(|p| {
            p.dead_letters
                .into_iter()
                .map(|(_, d)| d.origin.offset)
                .collect::<BTreeSet<_>>()
        })
        .unwrap_or_default();
    assert!(
        rejected.is_subset(&letters),
        "seed {seed}: a told rejection has no dead letter"
    );
}

#[test]
fn power_loss_loses_no_settlement_and_no_record() {
    let seeds: u64 = std::env::var("WEIR_QUEUE_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    for seed in 0..seeds {
        run(seed);
    }
}
