//! kcat's balanced consumer (`kcat -G`, librdkafka's group consumer) against
//! Weir: two kcat members of one group split six partitions three and three
//! and between them print every record once, under the range assignor
//! (kcat's default) and under cooperative-sticky.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestServer, kcat};

/// What one kcat member printed: its partitions (from its rebalance
/// notices on stderr) and its records (`partition offset value` on stdout).
#[derive(Default)]
struct Seen {
    owned: BTreeSet<i32>,
    records: Vec<(i32, i64, String)>,
}

/// A `kcat -G` process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Member {
    child: Child,
    seen: Arc<Mutex<Seen>>,
}

impl Member {
    fn start(bootstrap: &str, group: &str, topic: &str, assignor: &str) -> Self {
        let mut child = Command::new("kcat")
            .args(["-b", bootstrap, "-G", group, "-u", "-f", "%p %o %s\n"])
            .args(["-X", "session.timeout.ms=6000"])
            .args(["-X", "heartbeat.interval.ms=500"])
            .args(["-X", "max.poll.interval.ms=10000"])
            .args(["-X", "auto.offset.reset=earliest"])
            .args(["-X", &format!("partition.assignment.strategy={assignor}")])
            .arg(topic)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kcat is installed by scripts/install-deps");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stdout = child.stdout.take().unwrap();
        let records = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let f: Vec<&str> = line.split(' ').collect();
                assert_eq!(f.len(), 3, "{line}");
                records.lock().unwrap().records.push((
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].to_owned(),
                ));
            }
        });
        let stderr = child.stderr.take().unwrap();
        let owned = seen.clone();
        std::thread::spawn(move || {
            // "% Group G rebalanced (memberid …): assigned: T [0], T [3]"
            // (eager: all are revoked first), or "… rebalanced: incremental
            // revoke of 3 partition(s) (memberid …, COOPERATIVE rebalance
            // protocol): T [1], …" (cooperative).
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !line.contains("Reached end of topic") {
                    eprintln!("kcat: {line}");
                }
                let Some((notice, change)) = line.rsplit_once("): ") else {
                    continue;
                };
                if !notice.contains("rebalanced") {
                    continue;
                }
                let assigned = !notice.contains("revoke") && !change.starts_with("revoked");
                let partitions: Vec<i32> = change
                    .split(',')
                    .filter_map(|tp| {
                        tp.trim()
                            .rsplit_once('[')?
                            .1
                            .strip_suffix(']')?
                            .parse()
                            .ok()
                    })
                    .collect();
                let mut seen = owned.lock().unwrap();
                for p in partitions {
                    if assigned {
                        seen.owned.insert(p);
                    } else {
                        seen.owned.remove(&p);
                    }
                }
            }
        });
        Self { child, seen }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // SIGTERM lets kcat leave the group; SIGKILL if it does not exit.
        sigterm(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn two_kcat_members_share_the_partitions(assignor: &str) {
    let server = TestServer::start();
    let topic = format!("kcat-group-{assignor}");
    server
        .broker
        .create_topic(&topic, 6, -1, &[], false)
        .unwrap();
    let b = server.bootstrap();
    let members = [
        Member::start(&b, &topic, &topic, assignor),
        Member::start(&b, &topic, &topic, assignor),
    ];
    let owned = || -> Vec<BTreeSet<i32>> {
        members
            .iter()
            .map(|m| m.seen.lock().unwrap().owned.clone())
            .collect()
    };
    wait_for("three partitions each", Duration::from_secs(40), || {
        let owned = owned();
        owned.iter().all(|o| o.len() == 3) && owned[0].is_disjoint(&owned[1])
    });
    let n = 900;
    let input: String = (0..n).map(|i| format!("k{}:v-{i}\n", i % 37)).collect();
    kcat(
        &["-b", &b, "-P", "-t", &topic, "-K:", "-X", "acks=all"],
        &input,
    );
    let total = || -> usize {
        members
            .iter()
            .map(|m| m.seen.lock().unwrap().records.len())
            .sum()
    };
    wait_for("every record", Duration::from_secs(30), || total() >= n);
    // Anything more would be a duplicate: give it a moment to show.
    std::thread::sleep(Duration::from_millis(300));
    let owned = owned();
    let mut all: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for (member, mine) in members.iter().zip(&owned) {
        for (p, o, value) in &member.seen.lock().unwrap().records {
            assert!(
                mine.contains(p),
                "a member owning {mine:?} read partition {p}"
            );
            assert!(
                all.insert((*p, *o), value.clone()).is_none(),
                "{p}/{o} read twice"
            );
        }
    }
    let values: BTreeSet<&String> = all.values().collect();
    assert_eq!(values.len(), n, "every record once");
    assert_eq!(total(), n, "and nothing else");
    let ends: i64 = (0..6)
        .map(|p| server.broker.partition(&topic, p).unwrap().end_offset())
        .sum();
    assert_eq!(ends, n as i64);
    eprintln!("kcat {assignor}: members owned {owned:?}, {n} records once");
}

#[test]
fn two_kcat_members_share_the_partitions_range() {
    two_kcat_members_share_the_partitions("range");
}

#[test]
fn two_kcat_members_share_the_partitions_cooperative_sticky() {
    two_kcat_members_share_the_partitions("cooperative-sticky");
}
