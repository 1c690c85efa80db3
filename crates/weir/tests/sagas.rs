//! Sagas by orchestration on the embedded store: success; a failure at
//! every step compensating exactly the steps that had an effect, last
//! first; retries; a timeout compensating the step that timed out; a
//! compensation that keeps failing parking the saga until an operator
//! resumes it; durable timers (a retry and a deadline) firing after a
//! restart; many sagas at once on a few workers. The downstreams record
//! each call by idempotency key, so an effect applied twice would show.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::saga::{RunnerConfig, SagaDefinition, SagaRunner, Status};
use weir::{Client, Failure, RetryPolicy};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: String,
    amount: u64,
}

/// A downstream: applies each idempotency key once, logs every call.
#[derive(Debug, Default)]
struct Downstream {
    applied: Mutex<HashMap<String, u32>>,
    log: Mutex<Vec<String>>,
    /// Calls to fail: (what, how), e.g. ("charge", permanent).
    fail: Mutex<HashMap<String, Failure>>,
    slow: Mutex<HashMap<String, Duration>>,
}

impl Downstream {
    fn call(&self, what: &str, key: &str) -> Result<String, Failure> {
        self.log.lock().unwrap().push(what.to_owned());
        if let Some(d) = self.slow.lock().unwrap().get(what).copied() {
            std::thread::sleep(d);
        }
        if let Some(f) = self.fail.lock().unwrap().get(what).cloned() {
            return Err(f);
        }
        *self
            .applied
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default() += 1;
        Ok(format!("{what}-done"))
    }

    fn calls(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn applied_once(&self) -> bool {
        self.applied.lock().unwrap().values().all(|n| *n == 1)
    }
}

const STEPS: [&str; 3] = ["reserve", "charge", "ship"];

fn definition(ds: &Arc<Downstream>) -> SagaDefinition<Order> {
    let mut d = SagaDefinition::<Order>::new("order")
        .retry(RetryPolicy {
            attempts: 3,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        })
        .compensation_retry(RetryPolicy {
            attempts: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        });
    for step in STEPS {
        let (a, c) = (ds.clone(), ds.clone());
        d = d.step(
            step,
            move |ctx, _order: &Order| a.call(step, ctx.idempotency_key),
            move |ctx, _order: &Order| {
                c.call(&format!("undo-{step}"), ctx.idempotency_key)
                    .map(drop)
            },
        );
    }
    d
}

fn runner(client: &Client, ds: &Arc<Downstream>) -> SagaRunner {
    SagaRunner::new(
        client,
        RunnerConfig {
            workers: 4,
            ..RunnerConfig::default()
        },
    )
    .with(definition(ds))
    .unwrap()
    .start()
    .unwrap()
}

fn order(id: &str) -> Order {
    Order {
        id: id.to_owned(),
        amount: 100,
    }
}

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_saga_runs_every_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let ds = Arc::new(Downstream::default());
    let r = runner(&client, &ds);
    r.start_saga("order", "o-1", &order("o-1")).unwrap();
    let s = r.wait("o-1", WAIT).unwrap();
    assert_eq!(s.status, Status::Completed);
    assert_eq!(ds.calls(), ["reserve", "charge", "ship"]);
    assert_eq!(s.output("charge"), Some(&serde_json::json!("charge-done")));
    assert!(ds.applied_once());
    // Starting the same saga again is refused.
    assert!(r.start_saga("order", "o-1", &order("o-1")).is_err());
    // Its events carry the saga id as their correlation id.
    let events = client.read_stream("saga-o-1", 0, 100).unwrap();
    assert!(events.iter().all(|e| e.correlationid == "o-1"));
    assert_eq!(events.last().unwrap().event_type, "SagaCompleted");
}

#[test]
fn a_failure_at_each_step_compensates_what_came_before_in_reverse() {
    for (i, failing) in STEPS.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::open(dir.path()).unwrap();
        let ds = Arc::new(Downstream::default());
        ds.fail
            .lock()
            .unwrap()
            .insert((*failing).to_owned(), Failure::permanent("refused"));
        let r = runner(&client, &ds);
        r.start_saga("order", "o-2", &order("o-2")).unwrap();
        let s = r.wait("o-2", WAIT).unwrap();
        assert_eq!(s.status, Status::Compensated, "failing at {failing}");
        let mut expect: Vec<String> = STEPS[..=i].iter().map(|s| (*s).to_owned()).collect();
        // A refused step had no effect: only the ones before it are undone.
        expect.extend(STEPS[..i].iter().rev().map(|s| format!("undo-{s}")));
        assert_eq!(ds.calls(), expect, "failing at {failing}");
        assert!(ds.applied_once());
    }
}

#[test]
fn transient_failures_are_retried_with_the_same_idempotency_key() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let ds = Arc::new(Downstream::default());
    let flaky = Arc::new(AtomicU32::new(0));
    let f = flaky.clone();
    let keys = Arc::new(Mutex::new(Vec::new()));
    let k = keys.clone();
    let d = SagaDefinition::<Order>::new("flaky")
        .retry(RetryPolicy {
            attempts: 3,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        })
        .step(
            "charge",
            move |ctx, _: &Order| {
                k.lock()
                    .unwrap()
                    .push((ctx.attempt, ctx.idempotency_key.to_owned()));
                if f.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Failure::transient("503"))
                } else {
                    Ok(())
                }
            },
            |_, _: &Order| Ok(()),
        );
    let r = SagaRunner::new(&client, RunnerConfig::default())
        .with(d)
        .unwrap()
        .start()
        .unwrap();
    r.start_saga("flaky", "f-1", &order("f-1")).unwrap();
    assert_eq!(r.wait("f-1", WAIT).unwrap().status, Status::Completed);
    let keys = keys.lock().unwrap();
    assert_eq!(keys.iter().map(|(a, _)| *a).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(keys.iter().all(|(_, k)| k == "saga/f-1/charge/act"));
    drop(ds);
}

#[test]
fn a_step_that_times_out_is_compensated_too() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let ds = Arc::new(Downstream::default());
    ds.slow
        .lock()
        .unwrap()
        .insert("charge".into(), Duration::from_millis(800));
    let r = SagaRunner::new(&client, RunnerConfig::default())
        .with(definition(&ds).step_timeout(Duration::from_millis(200)))
        .unwrap()
        .start()
        .unwrap();
    r.start_saga("order", "t-1", &order("t-1")).unwrap();
    let s = r.wait("t-1", WAIT).unwrap();
    assert_eq!(s.status, Status::Compensated);
    assert!(s.reason.as_deref().unwrap().contains("Timeout"), "{s:?}");
    // The charge may have gone through after its timeout: it is undone.
    assert_eq!(
        ds.calls(),
        ["reserve", "charge", "undo-charge", "undo-reserve"]
    );
}

#[test]
fn a_compensation_that_keeps_failing_parks_the_saga_until_an_operator_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let ds = Arc::new(Downstream::default());
    {
        let mut fail = ds.fail.lock().unwrap();
        fail.insert("ship".into(), Failure::permanent("no courier"));
        fail.insert("undo-charge".into(), Failure::transient("payments down"));
    }
    let r = runner(&client, &ds);
    r.start_saga("order", "p-1", &order("p-1")).unwrap();
    let s = r.wait("p-1", WAIT).unwrap();
    assert_eq!(s.status, Status::Parked);
    assert!(s.parked.as_deref().unwrap().contains("payments down"));
    // Not parked: refused.
    assert!(weir::saga::resume(&client, "nope", "ops").is_err());
    ds.fail.lock().unwrap().remove("undo-charge");
    let resumed = weir::saga::resume(&client, "p-1", "ops").unwrap();
    assert_eq!(resumed.status, Status::Compensating);
    let s = r.wait("p-1", WAIT).unwrap();
    assert_eq!(s.status, Status::Compensated);
    let calls = ds.calls();
    assert_eq!(calls.iter().filter(|c| *c == "undo-charge").count(), 3);
    assert_eq!(calls.last().map(String::as_str), Some("undo-reserve"));
    assert!(ds.applied_once());
}

#[test]
fn timers_that_came_due_while_no_runner_ran_fire_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let ds = Arc::new(Downstream::default());
    ds.fail
        .lock()
        .unwrap()
        .insert("charge".into(), Failure::transient("503"));
    let slow_retry = |ds: &Arc<Downstream>| {
        definition(ds).retry(RetryPolicy {
            attempts: 3,
            min_delay: Duration::from_millis(600),
            max_delay: Duration::from_millis(600),
            jitter: false,
            ..RetryPolicy::default()
        })
    };
    let r = SagaRunner::new(&client, RunnerConfig::default())
        .with(slow_retry(&ds))
        .unwrap()
        .start()
        .unwrap();
    r.start_saga("order", "d-1", &order("d-1")).unwrap();
    // The charge failed once and waits 600 ms for its retry: stop now.
    let deadline = std::time::Instant::now() + WAIT;
    while !ds.calls().contains(&"charge".to_owned()) {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    r.stop();
    ds.fail.lock().unwrap().remove("charge");
    std::thread::sleep(Duration::from_millis(800));
    // A new runner (as after a restart) retries at once and finishes.
    let start = std::time::Instant::now();
    let r = SagaRunner::new(&client, RunnerConfig::default())
        .with(slow_retry(&ds))
        .unwrap()
        .start()
        .unwrap();
    let s = r.wait("d-1", WAIT).unwrap();
    assert_eq!(s.status, Status::Completed);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );

    // A deadline that passed while no runner ran: the saga compensates.
    let stuck = Arc::new(AtomicBool::new(true));
    let st = stuck.clone();
    let d = SagaDefinition::<Order>::new("slowpoke")
        .deadline(Duration::from_millis(300))
        .retry(RetryPolicy {
            attempts: 100,
            min_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(5),
            jitter: false,
            ..RetryPolicy::default()
        })
        .step("a", |_, _: &Order| Ok(()), |_, _: &Order| Ok(()))
        .step(
            "b",
            move |_, _: &Order| {
                if st.load(Ordering::SeqCst) {
                    Err(Failure::transient("later"))
                } else {
                    Ok(())
                }
            },
            |_, _: &Order| Ok(()),
        );
    r.stop();
    let r = SagaRunner::new(&client, RunnerConfig::default())
        .with(d)
        .unwrap()
        .start()
        .unwrap();
    r.start_saga("slowpoke", "late-1", &order("late-1"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    r.stop();
    std::thread::sleep(Duration::from_millis(400));
    stuck.store(false, Ordering::SeqCst);
    let d2 = SagaDefinition::<Order>::new("slowpoke")
        .step("a", |_, _: &Order| Ok(()), |_, _: &Order| Ok(()))
        .step("b", |_, _: &Order| Ok(()), |_, _: &Order| Ok(()));
    let r = SagaRunner::new(&client, RunnerConfig::default())
        .with(d2)
        .unwrap()
        .start()
        .unwrap();
    let s = r.wait("late-1", WAIT).unwrap();
    assert_eq!(s.status, Status::Compensated);
    assert_eq!(s.reason.as_deref(), Some("the saga's deadline passed"));
}

#[test]
fn many_sagas_run_at_once_on_a_few_workers() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let ds = Arc::new(Downstream::default());
    let r = runner(&client, &ds);
    // Nothing finished: a wait for one times out with none.
    assert_eq!(r.wait_finished(1, Duration::from_millis(50)), 0);
    let r = Arc::new(r);
    // Waiters for different counts, woken as the sagas end.
    let waiters: Vec<_> = [1, 100, 200]
        .into_iter()
        .map(|n| {
            let r = r.clone();
            std::thread::spawn(move || r.wait_finished(n, WAIT) >= n)
        })
        .collect();
    for i in 0..200 {
        let id = format!("m-{i}");
        r.start_saga("order", &id, &order(&id)).unwrap();
    }
    for i in 0..200 {
        assert_eq!(
            r.wait(&format!("m-{i}"), WAIT).unwrap().status,
            Status::Completed
        );
    }
    for w in waiters {
        assert!(w.join().unwrap());
    }
    // The counter moves just after the last event is appended.
    assert_eq!(r.wait_finished(200, WAIT), 200);
    assert_eq!(r.finished(), 200);
    assert_eq!(ds.applied.lock().unwrap().len(), 600);
    assert!(ds.applied_once());
}
