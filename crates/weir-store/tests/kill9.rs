//! A real `kill -9` test of the event store. The store has no binary of
//! its own, so this test binary runs itself as the writer: with
//! `WEIR_STORE_KILL9_DIR` set, the test `writer_child_for_kill9` opens the
//! store in that directory and appends from several threads forever (with
//! deletes, metadata changes and index saves), printing each append before
//! it is sent and each acknowledgement and each event a reader was shown,
//! flushed, on stdout (one of the threads appends through the async
//! `append_async`). The parent kills it with SIGKILL at random moments,
//! then checks after each kill that every acknowledged append survived at
//! its versions and positions, that everything a reader saw is still
//! there, that every event comes from an append and every append is whole
//! or absent, that the recovered indexes agree with indexes rebuilt from
//! the log alone, and (at the end) that retries of acknowledged appends get
//! their first answers. `WEIR_KILL9_ROUNDS` sets the number of kills
//! (default 8).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{SAVED_INDEX, assert_same_dump, dump, open_os, raw_log};
use weir_log::sim::SimRng;
use weir_store::{
    AppendResult, EmbeddedStore, EventStore, ExpectedVersion, Filter, NewEvent, StoreError,
    StreamMetadata, Target,
};

/// Set (to the data directory) only in the child.
const CHILD_DIR: &str = "WEIR_STORE_KILL9_DIR";
const CHILD_ROUND: &str = "WEIR_STORE_KILL9_ROUND";
/// The streams the child's writers share (they race for versions).
const SHARED: [&str; 4] = ["acc-1", "acc-2", "ord-1", "plain"];
/// How long a child lives at most if nobody kills it.
const CHILD_LIFE_MAX: Duration = Duration::from_secs(60);

/// The event the child sends for an id: the parent rebuilds it to retry.
fn event(id: &str) -> NewEvent {
    let ty = ["Opened", "Changed", "Closed"][id.len() % 3];
    let mut event = NewEvent::json(id, ty, format!("{{\"id\":\"{id}\"}}").into_bytes());
    // Most name a correlation, so the recovered correlation index is
    // checked against the log as well.
    if !id.len().is_multiple_of(4) {
        event.metadata = format!(r#"{{"correlationid":"corr-{}"}}"#, id.len() % 3).into_bytes();
    }
    event
}

fn expected_text(e: ExpectedVersion) -> String {
    e.to_string()
}

fn parse_expected(s: &str) -> ExpectedVersion {
    match s {
        "any" => ExpectedVersion::Any,
        "no_stream" => ExpectedVersion::NoStream,
        "exists" => ExpectedVersion::Exists,
        v => ExpectedVersion::Exact(v.parse().expect("a version")),
    }
}

/// Writes one line to stdout in one call, flushed: a kill leaves whole
/// lines only.
fn say(line: String) {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{line}\n").as_bytes()).unwrap();
    out.flush().unwrap();
}

/// Runs a future on this thread, parking between polls.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// One writer thread of the child: appends until killed.
fn child_writer(store: &EmbeddedStore, round: u64, t: u64) {
    let mut rng = SimRng::new(round * 1_000 + t);
    let life = format!("life-{t}");
    for n in 0.. {
        let roll = rng.below(100);
        if roll < 5 {
            // Lifecycle changes of this thread's own stream; their events
            // take positions too. Said first: the parent does not retry
            // appends to such streams (a soft delete ends idempotency).
            say(format!("life {life}"));
            let _ = match rng.below(2) {
                0 => store.delete_stream(&life, ExpectedVersion::Any),
                _ => store.set_stream_metadata(
                    &life,
                    &StreamMetadata {
                        max_count: Some(1 + rng.below(5)),
                        ..StreamMetadata::default()
                    },
                ),
            };
            continue;
        }
        let stream = if roll < 15 {
            life.clone()
        } else {
            SHARED[rng.below(SHARED.len() as u64) as usize].to_owned()
        };
        let expected = match rng.below(10) {
            0..=3 => ExpectedVersion::Any,
            4 => ExpectedVersion::NoStream,
            5 => ExpectedVersion::Exists,
            _ => match store.stream_version(&stream) {
                Ok(v) => v.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                Err(_) => ExpectedVersion::Any,
            },
        };
        let ids: Vec<String> = (0..1 + rng.below(4))
            .map(|k| format!("r{round}t{t}n{n}k{k}"))
            .collect();
        let events: Vec<NewEvent> = ids.iter().map(|id| event(id)).collect();
        let (stream_text, ids_text) = (stream.clone(), ids.join(","));
        say(format!("try {stream_text} {ids_text}"));
        // Writer 0 appends through the async API: its acknowledgements must
        // be as durable as the blocking ones.
        let appended = if t == 0 {
            block_on(store.append_async(&stream, expected, &events))
        } else {
            store.append(&stream, expected, &events)
        };
        match appended {
            Ok(r) => say(format!(
                "ack {stream_text} {} {} {} {} {} {ids_text}",
                expected_text(expected),
                r.first_version,
                r.last_version,
                r.first_position,
                r.last_position
            )),
            Err(
                StoreError::WrongExpectedVersion { .. } | StoreError::IdempotencyConflict { .. },
            ) => {}
            Err(e) => panic!("the child's append failed: {e}"),
        }
        // Save the index now and then, as `weir serve` does.
        if rng.chance(2) {
            store.maintain(true).expect("save the index");
        }
    }
}

/// Runs only as the child of `acknowledged_appends_survive_kill_dash_9`:
/// without `WEIR_STORE_KILL9_DIR` it does nothing.
#[test]
fn writer_child_for_kill9() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let round: u64 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    // libtest has printed "test writer_child_for_kill9 ... " without a
    // newline: end that line before ours.
    say(String::new());
    let store = Arc::new(open_os(Path::new(&dir)));
    std::thread::scope(|scope| {
        for t in 0..3 {
            let store = &store;
            scope.spawn(move || child_writer(store, round, t));
        }
        let mut all = store.subscribe(Target::All, Filter::default(), 0);
        let started = Instant::now();
        while started.elapsed() < CHILD_LIFE_MAX {
            for e in all.wait(100, Duration::from_millis(50)).unwrap() {
                say(format!(
                    "seen {} {} {} {}",
                    e.position, e.stream, e.version, e.id
                ));
            }
        }
        std::process::exit(3);
    });
}

/// What the child printed.
#[derive(Debug, Default)]
struct Printed {
    /// First id of every append sent → (stream, ids).
    tried: HashMap<String, (String, Vec<String>)>,
    /// Id → the first id of its append.
    append_of: HashMap<String, String>,
    acked: Vec<(String, ExpectedVersion, Vec<String>, AppendResult)>,
    seen: BTreeMap<u64, (String, u64, String)>,
    lifecycle: HashSet<String>,
}

impl Printed {
    fn take(&mut self, line: &str) {
        let f: Vec<&str> = line.split(' ').collect();
        match f[..] {
            ["try", stream, ids] => {
                let ids: Vec<String> = ids.split(',').map(str::to_owned).collect();
                for id in &ids {
                    self.append_of.insert(id.clone(), ids[0].clone());
                }
                self.tried.insert(ids[0].clone(), (stream.to_owned(), ids));
            }
            ["ack", stream, expected, v0, v1, p0, p1, ids] => {
                let n = |s: &str| s.parse::<u64>().expect("a number");
                self.acked.push((
                    stream.to_owned(),
                    parse_expected(expected),
                    ids.split(',').map(str::to_owned).collect(),
                    AppendResult {
                        first_version: n(v0),
                        last_version: n(v1),
                        first_position: n(p0),
                        last_position: n(p1),
                    },
                ));
            }
            ["seen", p, stream, v, id] => {
                let shown = (stream.to_owned(), v.parse().unwrap(), id.to_owned());
                if let Some(before) = self.seen.insert(p.parse().unwrap(), shown.clone()) {
                    assert_eq!(before, shown, "a position was shown changed");
                }
            }
            ["life", stream] => {
                self.lifecycle.insert(stream.to_owned());
            }
            // libtest's own lines.
            _ => {}
        }
    }
}

/// Everything printed must hold of the store reopened after the kill.
fn check(dir: &Path, printed: &Printed, round: u64) -> u64 {
    let ctx = format!("after kill {round}");
    let store = open_os(dir);
    let log = raw_log(store.broker());
    let head = store.head_position();
    assert_eq!(head, log.len() as u64, "{ctx}: the head is the log's end");
    for (stream, _, ids, r) in &printed.acked {
        for (i, id) in ids.iter().enumerate() {
            let p = r.first_position + i as u64;
            let found = log
                .get(p as usize)
                .unwrap_or_else(|| panic!("{ctx}: acknowledged {id} at {p} is lost"));
            assert_eq!(
                (&found.stream, found.version, &found.id),
                (stream, r.first_version + i as u64, id),
                "{ctx}: position {p}"
            );
        }
    }
    for (p, (stream, version, id)) in &printed.seen {
        let found = log
            .get(*p as usize)
            .unwrap_or_else(|| panic!("{ctx}: {id} was read at {p} and is lost"));
        assert_eq!(
            (&found.stream, found.version, &found.id),
            (stream, *version, id),
            "{ctx}: position {p} was read and changed"
        );
    }
    let mut at = 0;
    while at < log.len() {
        if log[at].stream.starts_with('$') {
            at += 1;
            continue;
        }
        let first = printed
            .append_of
            .get(&log[at].id)
            .unwrap_or_else(|| panic!("{ctx}: {:?} at {at} was never sent", log[at]));
        let (stream, ids) = &printed.tried[first];
        for (i, id) in ids.iter().enumerate() {
            let got = log
                .get(at + i)
                .unwrap_or_else(|| panic!("{ctx}: the append of {id} is cut short"));
            assert_eq!(
                (&got.id, &got.stream),
                (id, stream),
                "{ctx}: append at {at}"
            );
        }
        at += ids.len();
    }
    let recovered = dump(&store);
    let recovery = store.recovery();
    drop(store);
    let _ = std::fs::remove_file(dir.join(SAVED_INDEX));
    let rebuilt = open_os(dir);
    assert_eq!(rebuilt.recovery().saved_index_position, None);
    assert_same_dump(
        &format!("{ctx} ({recovery:?}): saved index and tail vs the log alone"),
        &recovered,
        &dump(&rebuilt),
    );
    head
}

#[test]
fn acknowledged_appends_survive_kill_dash_9() {
    let tmp = tempfile::tempdir().unwrap();
    let rounds: u64 = std::env::var("WEIR_KILL9_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("store kill -9 test seed (kill delays): {seed}");
    let mut rng = SimRng::new(seed);
    let mut printed = Printed::default();
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "writer_child_for_kill9",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, tmp.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run this test binary as the writer");
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // A line without its newline was cut by the kill: dropped.
            while stdout.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
                let _ = lines_tx.send(line.trim_end().to_owned());
                line.clear();
            }
        });
        // Kill once the child acknowledged something, after a random delay.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut acks_before = 0;
        while Instant::now() < deadline {
            match lines_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let is_ack = line.starts_with("ack ");
                    printed.take(&line);
                    if is_ack {
                        acks_before += 1;
                        break;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(e) => panic!("the writer ended before acknowledging anything: {e}"),
            }
        }
        assert!(acks_before > 0, "the writer acknowledged nothing in 30 s");
        let delay_ms = 10 + rng.below(300);
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().expect("kill -9"); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for line in lines_rx.try_iter() {
            printed.take(&line);
        }
        let head = check(tmp.path(), &printed, round);
        eprintln!(
            "round {round}: killed {delay_ms} ms after the first acknowledgement; {} appends acknowledged, {} events seen, log end {head}",
            printed.acked.len(),
            printed.seen.len()
        );
    }
    // Retries of acknowledged appends get their first answers.
    let store = open_os(tmp.path());
    let head = store.head_position();
    for (stream, expected, ids, first) in printed.acked.iter().rev().take(50) {
        if printed.lifecycle.contains(stream) {
            continue;
        }
        let events: Vec<NewEvent> = ids.iter().map(|id| event(id)).collect();
        let again = store.append(stream, *expected, &events).unwrap();
        assert_eq!(&again, first, "a retry of {ids:?}");
    }
    assert_eq!(store.head_position(), head, "retries wrote");
    assert!(
        printed.acked.len() > 10,
        "too few acknowledged appends to prove anything"
    );
}
