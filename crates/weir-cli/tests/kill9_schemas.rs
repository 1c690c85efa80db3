//! `weir serve`'s schema registry killed with `kill -9` while a client
//! registers schemas under several subjects, soft-deletes versions and
//! deletes some for good; restarted, again. After each restart every
//! answered change is there: each acknowledged version with its id and
//! text, soft-deleted ones hidden but readable with `deleted=true`,
//! permanently deleted ones gone; and a registration after the restart
//! gets an id no acknowledged schema ever had. `WEIR_KILL9_ROUNDS` sets
//! how many kills (default 3).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use weir_client::{Client, ClientError, encode_segment};

const SUBJECTS: usize = 4;
/// Acknowledged changes per round before the kill (the client goes on).
const CHANGES_PER_ROUND: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    Soft,
    Gone,
}

#[derive(Debug, Clone)]
struct Entry {
    id: i64,
    text: String,
    state: State,
}

/// What the server acknowledged, per (subject, version).
#[derive(Default)]
struct Model {
    acked: BTreeMap<(String, i64), Entry>,
    /// Versions whose delete got no answer (the server died): either
    /// state is right after the restart.
    uncertain: BTreeSet<(String, i64)>,
    /// Every id an acknowledged registration answered.
    ids: BTreeSet<i64>,
    /// Schemas registered per subject so far (each adds a field).
    attempts: [usize; SUBJECTS],
}

/// Kills the server when dropped, so a failed assertion does not leave
/// it running (holding the port and whatever it inherited).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn subject(s: usize) -> String {
    format!("kill9-{s}-value")
}

/// Subject `s`'s `n`th schema: a record with `n + 1` fields, each after
/// the first with a default, so every one reads the ones before
/// (BACKWARD).
fn schema_text(s: usize, n: usize) -> String {
    let mut fields = vec![json!({"name": "f0", "type": "int"})];
    fields.extend((1..=n).map(|i| json!({"name": format!("f{i}"), "type": "int", "default": 0})));
    json!({"type": "record", "name": format!("R{s}"), "fields": fields}).to_string()
}

fn is_transport(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Transport { .. } | ClientError::Protocol { .. }
    )
}

/// Registers, soft-deletes and deletes for good until the server dies
/// (or `stop`); counts acknowledged changes in `progress`.
fn write(client: &Client, model: &Mutex<Model>, progress: &AtomicUsize, stop: &AtomicBool) {
    let mut step = 0usize;
    while !stop.load(Ordering::Relaxed) {
        step += 1;
        let s = step % SUBJECTS;
        let name = subject(s);
        let result = if step.is_multiple_of(5) {
            soft_delete(client, model, &name)
        } else if step.is_multiple_of(7) {
            permanent_delete(client, model, &name)
        } else {
            register(client, model, s)
        };
        match result {
            Ok(true) => {
                progress.fetch_add(1, Ordering::SeqCst);
            }
            Ok(false) => {}
            Err(e) if is_transport(&e) => return,
            Err(e) => panic!("step {step} on {name}: {e}"),
        }
    }
}

fn register(client: &Client, model: &Mutex<Model>, s: usize) -> Result<bool, ClientError> {
    let n = {
        let mut m = model.lock().unwrap();
        m.attempts[s] += 1;
        m.attempts[s]
    };
    let text = schema_text(s, n);
    let path = format!("/subjects/{}/versions", encode_segment(&subject(s)));
    let got: Value = client.post(&path, &json!({"schema": text}))?;
    let (id, version) = (
        got["id"].as_i64().unwrap(),
        got["version"].as_i64().unwrap(),
    );
    let mut m = model.lock().unwrap();
    m.ids.insert(id);
    let before = m.acked.insert(
        (subject(s), version),
        Entry {
            id,
            text,
            state: State::Live,
        },
    );
    assert!(
        before.is_none(),
        "version {version} of {} given twice",
        subject(s)
    );
    Ok(true)
}

/// Soft-deletes the subject's oldest live version but the latest.
fn soft_delete(client: &Client, model: &Mutex<Model>, name: &str) -> Result<bool, ClientError> {
    let live: Vec<i64> = {
        let m = model.lock().unwrap();
        m.acked
            .iter()
            .filter(|((s, v), e)| {
                s == name && e.state == State::Live && !m.uncertain.contains(&(s.clone(), *v))
            })
            .map(|((_, v), _)| *v)
            .collect()
    };
    let [oldest, _, ..] = live[..] else {
        return Ok(false);
    };
    change(client, model, name, oldest, false, State::Soft)
}

/// Deletes the subject's oldest soft-deleted version for good.
fn permanent_delete(
    client: &Client,
    model: &Mutex<Model>,
    name: &str,
) -> Result<bool, ClientError> {
    let soft = {
        let m = model.lock().unwrap();
        m.acked
            .iter()
            .find(|((s, v), e)| {
                s == name && e.state == State::Soft && !m.uncertain.contains(&(s.clone(), *v))
            })
            .map(|((_, v), _)| *v)
    };
    let Some(version) = soft else {
        return Ok(false);
    };
    change(client, model, name, version, true, State::Gone)
}

fn change(
    client: &Client,
    model: &Mutex<Model>,
    name: &str,
    version: i64,
    permanent: bool,
    to: State,
) -> Result<bool, ClientError> {
    let key = (name.to_owned(), version);
    model.lock().unwrap().uncertain.insert(key.clone());
    let path = format!("/subjects/{}/versions/{version}", encode_segment(name));
    let gone: Value = client.delete(&path, &[("permanent", permanent.to_string())])?;
    assert_eq!(gone.as_i64(), Some(version));
    let mut m = model.lock().unwrap();
    m.uncertain.remove(&key);
    m.acked.get_mut(&key).unwrap().state = to;
    Ok(true)
}

/// Checks every acknowledged change against the restarted server and
/// settles the uncertain deletes by what it says.
fn verify(client: &Client, model: &Mutex<Model>) {
    let mut m = model.lock().unwrap();
    let uncertain = std::mem::take(&mut m.uncertain);
    for ((name, version), entry) in m.acked.iter_mut() {
        let path = format!("/subjects/{}/versions/{version}", encode_segment(name));
        let found = client.get::<Value>(&path, &[("deleted", "true".to_owned())]);
        let state = match &found {
            Ok(v) if v["deleted"] == json!(true) => State::Soft,
            Ok(_) => State::Live,
            Err(e) if e.code() == Some("40402") => State::Gone,
            Err(e) => panic!("{name} version {version}: {e}"),
        };
        let key = (name.clone(), *version);
        if uncertain.contains(&key) {
            // A delete of either kind moves one step at most.
            let step = if entry.state == State::Live {
                State::Soft
            } else {
                State::Gone
            };
            assert!(
                state == entry.state || state == step,
                "{key:?}: {state:?} after {entry:?}"
            );
            entry.state = state;
        } else {
            assert_eq!(
                state, entry.state,
                "{name} version {version} came back {found:?}"
            );
        }
        if let Ok(v) = found {
            assert_eq!(
                v["id"].as_i64(),
                Some(entry.id),
                "{name} version {version}: {v}"
            );
            assert_eq!(
                v["schema"].as_str(),
                Some(entry.text.as_str()),
                "{name} version {version}"
            );
            let by_id: Value = client
                .get(&format!("/schemas/ids/{}", entry.id), &[])
                .unwrap();
            assert_eq!(by_id["schema"].as_str(), Some(entry.text.as_str()));
        }
        if entry.state == State::Soft {
            let hidden = client.get::<Value>(&path, &[]).unwrap_err();
            assert_eq!(
                hidden.status(),
                Some(404),
                "{name} version {version} is hidden"
            );
        }
    }
}

/// Registers a schema no one registered before and checks its id is new.
fn fresh_id_after_restart(client: &Client, model: &Mutex<Model>, round: usize) {
    let text = json!({"type": "record", "name": format!("Fresh{round}"), "fields": []}).to_string();
    let got: Value = client
        .post(
            &format!("/subjects/fresh-{round}-value/versions"),
            &json!({"schema": text}),
        )
        .unwrap();
    let id = got["id"].as_i64().unwrap();
    let mut m = model.lock().unwrap();
    let max = m.ids.iter().max().copied().unwrap_or(0);
    assert!(
        id > max,
        "a fresh id {id} after restart {round}, above every id acknowledged ({max})"
    );
    m.ids.insert(id);
}

#[test]
fn acknowledged_schemas_survive_kill_9() {
    let rounds: usize = std::env::var("WEIR_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let model = Arc::new(Mutex::new(Model::default()));
    for round in 0..=rounds {
        let (child, http) = common::start_serve_http(dir.path(), &[]);
        let mut child = Killed(child);
        let client = Client::with_timeout(&http, Some(Duration::from_secs(10))).unwrap();
        if round > 0 {
            verify(&client, &model);
            fresh_id_after_restart(&client, &model, round);
        }
        if round == rounds {
            break;
        }
        let progress = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (model, progress, stop) = (model.clone(), progress.clone(), stop.clone());
            std::thread::spawn(move || write(&client, &model, &progress, &stop))
        };
        common::wait_for_progress(round, CHANGES_PER_ROUND, || progress.load(Ordering::SeqCst));
        // Killed while the writer goes on: its last request may or may
        // not have landed.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }
    let m = model.lock().unwrap();
    let states: Vec<State> = m.acked.values().map(|e| e.state).collect();
    for want in [State::Live, State::Soft, State::Gone] {
        assert!(states.contains(&want), "the run covered {want:?} versions");
    }
}
