//! The fold of `state.rs` over hand-made event sequences: forward steps,
//! retries, compensation last first, parking, deadlines, sequences that
//! make no saga, and event bodies through their type and data. Split from
//! `state.rs` for size.

use super::*;

fn ev(version: u64, body: EventBody) -> SagaEvent {
    SagaEvent {
        version,
        recorded_ms: 1000 + version as i64,
        body,
    }
}

fn started(steps: &[&str], deadline_ms: Option<i64>) -> SagaEvent {
    ev(
        0,
        EventBody::Started {
            saga_type: "order".into(),
            input: serde_json::json!({"order": 1}),
            steps: steps.iter().map(|s| (*s).to_owned()).collect(),
            deadline_ms,
        },
    )
}

fn act(step: usize, attempt: u32, due_ms: Option<i64>) -> EventBody {
    EventBody::StepStarted {
        step,
        attempt,
        idempotency_key: format!("k{step}"),
        due_ms,
    }
}

fn state(events: Vec<SagaEvent>) -> SagaState {
    SagaState::fold("s1", &events).unwrap()
}

#[test]
fn forward_through_every_step_then_complete() {
    let mut events = vec![started(&["a", "b"], None)];
    let s = state(events.clone());
    assert_eq!(
        s.next(0),
        Next::Act {
            step: 0,
            attempt: 1,
            resume: false
        }
    );
    events.push(ev(1, act(0, 1, Some(5000))));
    // Started and not answered: a new process calls again.
    assert_eq!(
        state(events.clone()).next(0),
        Next::Act {
            step: 0,
            attempt: 1,
            resume: true
        }
    );
    assert_eq!(state(events.clone()).due_ms(), Some(5000));
    events.push(ev(
        2,
        EventBody::StepSucceeded {
            step: 0,
            output: "r1".into(),
        },
    ));
    events.push(ev(3, act(1, 1, None)));
    events.push(ev(
        4,
        EventBody::StepSucceeded {
            step: 1,
            output: Value::Null,
        },
    ));
    let s = state(events.clone());
    assert_eq!(s.next(0), Next::Complete);
    assert_eq!(s.output("a"), Some(&Value::from("r1")));
    events.push(ev(5, EventBody::Completed {}));
    let s = state(events);
    assert_eq!(
        (s.status, s.next(0), s.due_ms()),
        (Status::Completed, Next::Done, None)
    );
}

#[test]
fn retries_wait_for_their_time_and_count_attempts() {
    let events = vec![
        started(&["a"], None),
        ev(1, act(0, 1, None)),
        ev(
            2,
            EventBody::StepFailed {
                step: 0,
                error: "503".into(),
                kind: ErrorKind::Transient,
                retry_at_ms: Some(2000),
            },
        ),
    ];
    let s = state(events);
    assert_eq!(s.next(1999), Next::Wait { until_ms: 2000 });
    assert_eq!(
        s.next(2000),
        Next::Act {
            step: 0,
            attempt: 2,
            resume: false
        }
    );
    assert_eq!(s.due_ms(), Some(2000));
}

#[test]
fn a_failure_compensates_what_had_an_effect_last_first() {
    let mut events = vec![
        started(&["reserve", "charge", "ship"], None),
        ev(1, act(0, 1, None)),
        ev(
            2,
            EventBody::StepSucceeded {
                step: 0,
                output: Value::Null,
            },
        ),
        ev(3, act(1, 1, Some(100))),
    ];
    // The charge timed out: it may have been applied.
    assert_eq!(
        state(events.clone()).next(100),
        Next::TimedOut {
            step: 1,
            compensation: false
        }
    );
    events.push(ev(
        4,
        EventBody::StepFailed {
            step: 1,
            error: "no answer".into(),
            kind: ErrorKind::Timeout,
            retry_at_ms: None,
        },
    ));
    assert!(matches!(
        state(events.clone()).next(200),
        Next::StartCompensating { .. }
    ));
    events.push(ev(
        5,
        EventBody::Compensating {
            reason: "charge timed out".into(),
        },
    ));
    assert_eq!(
        state(events.clone()).next(200),
        Next::Compensate {
            step: 1,
            attempt: 1,
            resume: false
        }
    );
    events.push(ev(
        6,
        EventBody::CompensationStarted {
            step: 1,
            attempt: 1,
            idempotency_key: "c1".into(),
            due_ms: None,
        },
    ));
    events.push(ev(7, EventBody::CompensationSucceeded { step: 1 }));
    assert_eq!(
        state(events.clone()).next(200),
        Next::Compensate {
            step: 0,
            attempt: 1,
            resume: false
        }
    );
    events.push(ev(
        8,
        EventBody::CompensationStarted {
            step: 0,
            attempt: 1,
            idempotency_key: "c0".into(),
            due_ms: None,
        },
    ));
    events.push(ev(9, EventBody::CompensationSucceeded { step: 0 }));
    // "ship" never started: nothing to undo there.
    assert_eq!(state(events).next(200), Next::FinishCompensated);
}

#[test]
fn a_refused_step_is_not_compensated_and_a_failed_compensation_parks() {
    let mut events = vec![
        started(&["reserve", "charge"], None),
        ev(1, act(0, 1, None)),
        ev(
            2,
            EventBody::StepSucceeded {
                step: 0,
                output: Value::Null,
            },
        ),
        ev(3, act(1, 1, None)),
        ev(
            4,
            EventBody::StepFailed {
                step: 1,
                error: "card declined".into(),
                kind: ErrorKind::Permanent,
                retry_at_ms: None,
            },
        ),
        ev(
            5,
            EventBody::Compensating {
                reason: "declined".into(),
            },
        ),
    ];
    assert_eq!(
        state(events.clone()).next(0),
        Next::Compensate {
            step: 0,
            attempt: 1,
            resume: false
        }
    );
    events.push(ev(
        6,
        EventBody::CompensationStarted {
            step: 0,
            attempt: 3,
            idempotency_key: "c0".into(),
            due_ms: None,
        },
    ));
    events.push(ev(
        7,
        EventBody::CompensationFailed {
            step: 0,
            error: "stock service down".into(),
            kind: ErrorKind::Transient,
            retry_at_ms: None,
        },
    ));
    assert!(matches!(
        state(events.clone()).next(0),
        Next::Park { step: 0, .. }
    ));
    events.push(ev(
        8,
        EventBody::Parked {
            step: 0,
            reason: "down".into(),
        },
    ));
    let s = state(events.clone());
    assert_eq!(
        (s.next(0), s.summary().status),
        (Next::AwaitOperator, Status::Parked)
    );
    events.push(ev(9, EventBody::Resumed { by: "ops".into() }));
    assert_eq!(
        state(events).next(0),
        Next::Compensate {
            step: 0,
            attempt: 1,
            resume: false
        }
    );
}

#[test]
fn the_deadline_turns_a_running_saga_back() {
    let events = vec![started(&["a", "b"], Some(500)), ev(1, act(0, 1, None))];
    let s = state(events);
    assert_eq!(s.due_ms(), Some(500));
    assert!(matches!(s.next(500), Next::StartCompensating { .. }));
}

#[test]
fn events_that_do_not_make_a_saga_are_refused() {
    assert!(SagaState::fold("s", &[]).is_err());
    assert!(SagaState::fold("s", &[ev(0, EventBody::Completed {})]).is_err());
    let out_of_range = vec![started(&["a"], None), ev(1, act(3, 1, None))];
    assert!(SagaState::fold("s", &out_of_range).is_err());
}

#[test]
fn bodies_round_trip_through_type_and_data() {
    let key = || "saga/s/a/act".to_owned();
    let bodies = vec![
        EventBody::Started {
            saga_type: "t".into(),
            input: serde_json::json!({"n": [1, "two", null], "s": "}\""}),
            steps: vec!["a".into()],
            deadline_ms: Some(5),
        },
        act(0, 1, None),
        act(0, 2, Some(7)),
        EventBody::StepSucceeded {
            step: 0,
            output: serde_json::json!("out"),
        },
        EventBody::StepFailed {
            step: 2,
            error: "x".into(),
            kind: ErrorKind::Timeout,
            retry_at_ms: Some(9),
        },
        EventBody::Compensating { reason: "r".into() },
        EventBody::CompensationStarted {
            step: 0,
            attempt: 1,
            idempotency_key: key(),
            due_ms: None,
        },
        EventBody::CompensationSucceeded { step: 0 },
        EventBody::CompensationFailed {
            step: 0,
            error: "e".into(),
            kind: ErrorKind::Transient,
            retry_at_ms: None,
        },
        EventBody::Parked {
            step: 0,
            reason: "p".into(),
        },
        EventBody::Resumed { by: "op".into() },
        EventBody::Completed {},
        EventBody::Compensated {},
    ];
    let mut types: Vec<&str> = Vec::new();
    for body in bodies {
        let (ty, data) = body.encode();
        // The data is the tagged form's, and nothing else.
        let tagged = serde_json::to_value(&body).unwrap();
        assert_eq!(tagged["type"], ty);
        let parsed: Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(parsed, tagged["data"]);
        assert_eq!(EventBody::decode(ty, &data), Some(Ok(body)));
        types.push(ty);
    }
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), crate::SAGA_EVENT_TYPES.len());
    assert_eq!(EventBody::decode("OrderPlaced", b"{}"), None);
    for bad in [&b"[1]"[..], b"{", b"{}, \"x\": 1", b"{} {}", b""] {
        assert!(
            matches!(EventBody::decode("SagaCompleted", bad), Some(Err(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}
