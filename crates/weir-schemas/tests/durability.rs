//! The registry's state comes back from its log: after any prefix of the
//! records (a crash between two appends), on a broker's `__schemas` topic
//! across a restart, and on the simulated disk across power losses at
//! random syncs, every acknowledged registration is there with its id and
//! version, and no id is ever handed to another schema.
//!
//! `WEIR_SCHEMA_CRASH_SEEDS=N` sets how many power-loss seeds run
//! (default 8); `WEIR_CRASH_SEED=S` replays one seed.

use std::collections::BTreeMap;
use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_log::sim::{SimRng, SimStorage};
use weir_log::{DataDir, DirConfig, ManualClock};
use weir_schemas::{
    CompatibilityLevel, ImportIds, Limits, MemoryLog, Mode, Registry, SchemaDef, SchemaError,
    SchemaType, VersionSpec,
};

fn schema(n: usize) -> SchemaDef {
    SchemaDef::new(
        SchemaType::Avro,
        format!(r#"{{"type":"record","name":"R{n}","fields":[]}}"#),
    )
}

/// Everything observable about a registry: per subject (deleted ones too)
/// its versions with id, deletion and schema, its level and mode; the
/// global level and mode.
fn snapshot(r: &Registry) -> String {
    let mut out = BTreeMap::new();
    for s in r.subjects("", true) {
        let versions: Vec<_> = r
            .versions(&s, true)
            .unwrap()
            .into_iter()
            .map(|n| {
                let v = r.subject_version(&s, VersionSpec::Number(n), true).unwrap();
                (n, v.id, v.deleted, v.schema.schema)
            })
            .collect();
        out.insert(
            s.clone(),
            format!(
                "{versions:?} {:?} {:?}",
                r.compatibility(Some(&s)),
                r.mode(Some(&s))
            ),
        );
    }
    format!("{out:?} {:?} {:?}", r.compatibility(None), r.mode(None))
}

/// The highest id any version uses.
fn max_id(r: &Registry) -> i32 {
    r.subjects("", true)
        .iter()
        .flat_map(|s| {
            r.versions(s, true)
                .unwrap()
                .into_iter()
                .map(|n| (s.clone(), n))
        })
        .map(|(s, n)| {
            r.subject_version(&s, VersionSpec::Number(n), true)
                .unwrap()
                .id
        })
        .max()
        .unwrap_or(0)
}

/// One step of a scripted workload.
type Op = Box<dyn Fn(&Registry)>;

#[test]
fn reopening_after_any_prefix_of_the_log_gives_back_what_it_held() {
    let log = MemoryLog::new();
    let r = Registry::open(Box::new(log.clone()), Limits::default()).unwrap();
    let mut checkpoints = vec![(0, snapshot(&r), 0)];
    let mut ops: Vec<Op> = vec![
        Box::new(|r| {
            r.set_compatibility(None, CompatibilityLevel::None)
                .map(drop)
                .unwrap()
        }),
        Box::new(|r| {
            r.register("a", &schema(1), ImportIds::default())
                .map(drop)
                .unwrap()
        }),
        Box::new(|r| {
            r.register("a", &schema(2), ImportIds::default())
                .map(drop)
                .unwrap()
        }),
        Box::new(|r| {
            r.register("b", &schema(2), ImportIds::default())
                .map(drop)
                .unwrap()
        }),
        Box::new(|r| {
            r.set_compatibility(Some("b"), CompatibilityLevel::Full)
                .unwrap()
        }),
        Box::new(|r| r.set_mode(Some("c"), Mode::Import, false).unwrap()),
        Box::new(|r| {
            r.register(
                "c",
                &schema(3),
                ImportIds {
                    id: Some(50),
                    version: Some(4),
                },
            )
            .map(drop)
            .unwrap()
        }),
        Box::new(|r| {
            r.delete_version("a", VersionSpec::Number(1), false)
                .map(drop)
                .unwrap()
        }),
        Box::new(|r| r.delete_subject("c", false).map(drop).unwrap()),
        Box::new(|r| r.delete_subject("c", true).map(drop).unwrap()),
        Box::new(|r| {
            r.delete_version("a", VersionSpec::Number(1), true)
                .map(drop)
                .unwrap()
        }),
        Box::new(|r| {
            r.register("d", &schema(4), ImportIds::default())
                .map(drop)
                .unwrap()
        }),
    ];
    for op in ops.drain(..) {
        op(&r);
        checkpoints.push((log.len(), snapshot(&r), max_id(&r)));
    }
    // The imported id 50 was hard-deleted; the next id still follows it.
    assert_eq!(r.lookup("d", &schema(4), false).unwrap().id, 51);
    for (len, expected, _) in &checkpoints {
        let fork = log.fork();
        fork.truncate(*len);
        let reopened = Registry::open(Box::new(fork), Limits::default()).unwrap();
        assert_eq!(&snapshot(&reopened), expected, "after {len} records");
        assert_eq!(reopened.skipped_records(), 0);
    }
    // Ids are never handed out again, even for ids no version uses now.
    let reopened = Registry::open(Box::new(log.fork()), Limits::default()).unwrap();
    let fresh = reopened
        .register("e", &schema(99), ImportIds::default())
        .unwrap();
    assert_eq!(fresh.id, 52);
}

fn open_broker(disk: &SimStorage) -> Arc<Broker> {
    let dir = DataDir::open_with(
        Arc::new(disk.clone()),
        Arc::new(ManualClock::new(0)),
        "/data",
        DirConfig::default(),
    )
    .unwrap();
    Arc::new(Broker::open(dir, BrokerConfig::default()).unwrap())
}

#[test]
fn the_registry_on_a_broker_comes_back_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let open = || {
        let dir = DataDir::open(tmp.path(), DirConfig::default()).unwrap();
        let broker = Arc::new(Broker::open(dir, BrokerConfig::default()).unwrap());
        Registry::open_on_broker(broker, Limits::default()).unwrap()
    };
    let expected = {
        let r = open();
        r.set_compatibility(None, CompatibilityLevel::None).unwrap();
        for n in 0..5 {
            r.register(&format!("s{}", n % 2), &schema(n), ImportIds::default())
                .unwrap();
        }
        r.delete_subject("s1", false).unwrap();
        r.delete_subject("s1", true).unwrap();
        snapshot(&r)
    };
    let r = open();
    assert_eq!(snapshot(&r), expected);
    assert!(
        expected.contains("s0") && !expected.contains("s1"),
        "{expected}"
    );
    // Ids 1..5 were used, 2 and 4 by the subject deleted for good.
    assert_eq!(
        r.register("s1", &schema(10), ImportIds::default())
            .unwrap()
            .id,
        6
    );
}

/// One power-loss run: register until the disk dies, crash, reopen, check.
fn run_seed(seed: u64) {
    let mut rng = SimRng::new(seed);
    let mut disk = SimStorage::new();
    // (subject, version) -> (id, schema number) as acknowledged.
    let mut acked: BTreeMap<(String, i32), (i32, usize)> = BTreeMap::new();
    let mut n_schema = 0;
    for round in 0..3 {
        let broker = open_broker(&disk);
        let r = Registry::open_on_broker(broker, Limits::default()).unwrap();
        for ((subject, version), (id, n)) in &acked {
            let v = r
                .subject_version(subject, VersionSpec::Number(*version), false)
                .unwrap_or_else(|e| {
                    panic!("seed {seed} round {round}: {subject} v{version} lost: {e}")
                });
            assert_eq!(
                (v.id, v.schema),
                (*id, schema(*n)),
                "seed {seed} round {round}"
            );
        }
        // Every id on disk names one schema only.
        let mut by_id: BTreeMap<i32, String> = BTreeMap::new();
        for s in r.subjects("", true) {
            for n in r.versions(&s, true).unwrap() {
                let v = r.subject_version(&s, VersionSpec::Number(n), true).unwrap();
                let prior = by_id.insert(v.id, v.schema.schema.clone());
                assert!(
                    prior.is_none_or(|p| p == v.schema.schema),
                    "seed {seed}: id {} reused",
                    v.id
                );
            }
        }
        let highest = max_id(&r);
        if round == 0 {
            r.set_compatibility(None, CompatibilityLevel::None).unwrap();
        }
        disk.die_after_syncs(rng.below(30));
        loop {
            n_schema += 1;
            let subject = format!("s{}", rng.below(3));
            match r.register(&subject, &schema(n_schema), ImportIds::default()) {
                Ok(reg) => {
                    assert!(
                        reg.id > highest,
                        "seed {seed}: id {} handed out again",
                        reg.id
                    );
                    acked.insert((subject, reg.version), (reg.id, n_schema));
                }
                Err(SchemaError::Store(_)) if disk.is_dead() => break,
                Err(e) => panic!("seed {seed}: {e} on a live disk"),
            }
        }
        // Writes are refused until reopen, even were the disk to come back.
        assert!(matches!(
            r.register("s0", &schema(0), ImportIds::default()),
            Err(SchemaError::Store(_))
        ));
        disk = disk.crash(rng.next_u64());
    }
}

#[test]
fn acknowledged_schemas_survive_power_loss() {
    if let Some(seed) = std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return run_seed(seed);
    }
    let seeds: u64 = std::env::var("WEIR_SCHEMA_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for seed in 0..seeds {
        run_seed(seed);
    }
}

/// Random registrations, soft and permanent deletes and reopenings: a
/// schema keeps one id for good, two schemas never share one, and a
/// reopened registry shows exactly what the open one did.
#[test]
fn ids_stay_bound_to_their_schemas_through_random_histories() {
    for seed in 0..20 {
        let mut rng = SimRng::new(seed);
        let log = MemoryLog::new();
        let mut r = Registry::open(Box::new(log.clone()), Limits::default()).unwrap();
        r.set_compatibility(None, CompatibilityLevel::None).unwrap();
        let mut id_of: BTreeMap<usize, i32> = BTreeMap::new();
        for step in 0..200 {
            let subject = format!("s{}", rng.below(3));
            let n = rng.below(6) as usize;
            let context = format!("seed {seed} step {step}");
            match rng.below(10) {
                0..=5 => {
                    let got = r
                        .register(&subject, &schema(n), ImportIds::default())
                        .unwrap();
                    let id = *id_of.entry(n).or_insert(got.id);
                    assert_eq!(got.id, id, "{context}: schema {n} changed id");
                    assert_eq!(
                        id_of.values().filter(|i| **i == id).count(),
                        1,
                        "{context}: id {id} shared"
                    );
                }
                6 => {
                    let _ = r.delete_version(&subject, VersionSpec::Latest, false);
                }
                7 => {
                    if let Ok(versions) = r.versions(&subject, true) {
                        let v = versions[rng.below(versions.len() as u64) as usize];
                        let _ = r.delete_version(&subject, VersionSpec::Number(v), true);
                    }
                }
                8 => {
                    let _ = r.delete_subject(&subject, false);
                    let _ = r.delete_subject(&subject, true);
                }
                _ => {
                    let before = snapshot(&r);
                    r = Registry::open(Box::new(log.clone()), Limits::default()).unwrap();
                    assert_eq!(snapshot(&r), before, "{context}: reopen");
                }
            }
        }
    }
}
