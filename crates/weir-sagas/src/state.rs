//! A saga's state, folded from its events, and what it does next.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::events::{ErrorKind, EventBody, SagaEvent};
use crate::{STEPS_MAX, SagaError};

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Running its steps forward.
    Running,
    /// Undoing the steps that had an effect, last first.
    Compensating,
    /// A compensation kept failing; waits for an operator to resume it.
    Parked,
    /// Every step succeeded.
    Completed,
    /// It failed and everything it did was compensated.
    Compensated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Compensating => "compensating",
            Self::Parked => "parked",
            Self::Completed => "completed",
            Self::Compensated => "compensated",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Compensated)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one step's action, or its compensation, is.
#[derive(Debug, Clone, PartialEq)]
pub enum StepState {
    NotStarted,
    /// Started and not answered yet (or the process died while it ran).
    Started {
        attempt: u32,
        due_ms: Option<i64>,
    },
    /// Failed, to be tried again at `at_ms`.
    Retrying {
        attempt: u32,
        at_ms: i64,
    },
    Succeeded {
        output: Value,
    },
    /// Failed for good.
    Failed {
        kind: ErrorKind,
        error: String,
    },
}

/// A saga, as its events tell it.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaState {
    pub id: String,
    pub saga_type: String,
    pub input: Value,
    pub steps: Vec<String>,
    pub deadline_ms: Option<i64>,
    pub status: Status,
    /// The actions' states, by step.
    pub actions: Vec<StepState>,
    /// The compensations' states, by step.
    pub compensations: Vec<StepState>,
    /// Why it compensates, once it does.
    pub reason: Option<String>,
    /// Why it is parked, while it is.
    pub parked: Option<String>,
    /// The version of its last event.
    pub version: u64,
    pub started_ms: i64,
    pub updated_ms: i64,
}

/// What a saga does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run `step`'s action, attempt `attempt`. `resume`: it was started
    /// before (a process died while it ran): call again, with the same
    /// idempotency key, without recording a new start.
    Act {
        step: usize,
        attempt: u32,
        resume: bool,
    },
    /// Run `step`'s compensation, likewise.
    Compensate {
        step: usize,
        attempt: u32,
        resume: bool,
    },
    /// `step`'s action (or compensation) passed its timeout unanswered:
    /// record the timeout.
    TimedOut {
        step: usize,
        compensation: bool,
    },
    /// Switch to compensating, for `reason`.
    StartCompensating {
        reason: String,
    },
    /// A compensation failed for good: park the saga.
    Park {
        step: usize,
        reason: String,
    },
    Complete,
    FinishCompensated,
    /// Nothing to do before `until_ms` (a retry, a timeout, the deadline).
    Wait {
        until_ms: i64,
    },
    /// Parked: nothing until an operator resumes it.
    AwaitOperator,
    /// Completed or compensated.
    Done,
}

/// A saga in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub id: String,
    pub saga_type: String,
    pub status: Status,
    /// The step it is at (running: the first not done; compensating: the
    /// next to compensate), by name.
    pub step: Option<String>,
    pub steps: usize,
    pub reason: Option<String>,
    pub started_ms: i64,
    pub updated_ms: i64,
    pub version: u64,
}

impl SagaState {
    /// Folds a saga's events, in stream order, into its state.
    pub fn fold(id: &str, events: &[SagaEvent]) -> Result<Self, SagaError> {
        let bad = |reason: String| SagaError::Malformed {
            id: id.to_owned(),
            reason,
        };
        let Some((first, rest)) = events.split_first() else {
            return Err(bad("no events".to_owned()));
        };
        let EventBody::Started {
            saga_type,
            input,
            steps,
            deadline_ms,
        } = &first.body
        else {
            return Err(bad("its first event is not SagaStarted".to_owned()));
        };
        if steps.is_empty() || steps.len() > STEPS_MAX {
            return Err(bad(format!(
                "{} steps; a saga has 1 to {STEPS_MAX}",
                steps.len()
            )));
        }
        let mut s = Self {
            id: id.to_owned(),
            saga_type: saga_type.clone(),
            input: input.clone(),
            steps: steps.clone(),
            deadline_ms: *deadline_ms,
            status: Status::Running,
            actions: vec![StepState::NotStarted; steps.len()],
            compensations: vec![StepState::NotStarted; steps.len()],
            reason: None,
            parked: None,
            version: first.version,
            started_ms: first.recorded_ms,
            updated_ms: first.recorded_ms,
        };
        for e in rest {
            s.apply(e).map_err(bad)?;
        }
        Ok(s)
    }

    fn step_of(&self, step: usize) -> Result<usize, String> {
        if step < self.steps.len() {
            Ok(step)
        } else {
            Err(format!("step {step} of {}", self.steps.len()))
        }
    }

    /// Applies one more event (the runner's own, just recorded or about to
    /// be, so it need not read the saga again).
    pub fn apply_event(&mut self, e: &SagaEvent) -> Result<(), SagaError> {
        self.apply(e).map_err(|reason| SagaError::Malformed {
            id: self.id.clone(),
            reason,
        })
    }

    fn apply(&mut self, e: &SagaEvent) -> Result<(), String> {
        self.version = e.version;
        self.updated_ms = e.recorded_ms;
        let attempt_of = |s: &StepState| match s {
            StepState::Started { attempt, .. } | StepState::Retrying { attempt, .. } => *attempt,
            _ => 0,
        };
        match &e.body {
            EventBody::Started { .. } => return Err("SagaStarted twice".to_owned()),
            EventBody::StepStarted {
                step,
                attempt,
                due_ms,
                ..
            } => {
                let i = self.step_of(*step)?;
                self.actions[i] = StepState::Started {
                    attempt: *attempt,
                    due_ms: *due_ms,
                };
            }
            EventBody::StepSucceeded { step, output } => {
                let i = self.step_of(*step)?;
                self.actions[i] = StepState::Succeeded {
                    output: output.clone(),
                };
            }
            EventBody::StepFailed {
                step,
                error,
                kind,
                retry_at_ms,
            } => {
                let i = self.step_of(*step)?;
                self.actions[i] = match retry_at_ms {
                    Some(at) => StepState::Retrying {
                        attempt: attempt_of(&self.actions[i]).max(1),
                        at_ms: *at,
                    },
                    None => StepState::Failed {
                        kind: *kind,
                        error: error.clone(),
                    },
                };
            }
            EventBody::Compensating { reason } => {
                self.status = Status::Compensating;
                self.reason = Some(reason.clone());
            }
            EventBody::CompensationStarted {
                step,
                attempt,
                due_ms,
                ..
            } => {
                let i = self.step_of(*step)?;
                self.compensations[i] = StepState::Started {
                    attempt: *attempt,
                    due_ms: *due_ms,
                };
            }
            EventBody::CompensationSucceeded { step } => {
                let i = self.step_of(*step)?;
                self.compensations[i] = StepState::Succeeded {
                    output: Value::Null,
                };
            }
            EventBody::CompensationFailed {
                step,
                error,
                kind,
                retry_at_ms,
            } => {
                let i = self.step_of(*step)?;
                self.compensations[i] = match retry_at_ms {
                    Some(at) => StepState::Retrying {
                        attempt: attempt_of(&self.compensations[i]).max(1),
                        at_ms: *at,
                    },
                    None => StepState::Failed {
                        kind: *kind,
                        error: error.clone(),
                    },
                };
            }
            EventBody::Parked { reason, .. } => {
                self.status = Status::Parked;
                self.parked = Some(reason.clone());
            }
            EventBody::Resumed { .. } => {
                // A resumed saga tries its failed compensation again, from
                // its first attempt.
                for c in &mut self.compensations {
                    if matches!(c, StepState::Failed { .. }) {
                        *c = StepState::NotStarted;
                    }
                }
                self.status = Status::Compensating;
                self.parked = None;
            }
            EventBody::Completed {} => self.status = Status::Completed,
            EventBody::Compensated {} => self.status = Status::Compensated,
        }
        Ok(())
    }

    /// Whether step `i`'s action had, or may have had, an effect: it is
    /// compensated unless it never started or the downstream refused it.
    pub(crate) fn needs_compensation(&self, i: usize) -> bool {
        !matches!(
            self.actions[i],
            StepState::NotStarted
                | StepState::Failed {
                    kind: ErrorKind::Permanent,
                    ..
                }
        )
    }

    /// What to do at `now_ms`.
    pub fn next(&self, now_ms: i64) -> Next {
        match self.status {
            Status::Completed | Status::Compensated => Next::Done,
            Status::Parked => Next::AwaitOperator,
            Status::Running => self.next_forward(now_ms),
            Status::Compensating => self.next_backward(now_ms),
        }
    }

    fn next_forward(&self, now_ms: i64) -> Next {
        let Some(i) = self.next_action() else {
            return Next::Complete;
        };
        if let Some(deadline) = self.deadline_ms
            && now_ms >= deadline
        {
            return Next::StartCompensating {
                reason: "the saga's deadline passed".to_owned(),
            };
        }
        let wait = |until: i64| Next::Wait {
            until_ms: self.deadline_ms.map_or(until, |d| d.min(until)),
        };
        match &self.actions[i] {
            StepState::NotStarted => Next::Act {
                step: i,
                attempt: 1,
                resume: false,
            },
            StepState::Started { due_ms, .. } if due_ms.is_some_and(|d| now_ms >= d) => {
                Next::TimedOut {
                    step: i,
                    compensation: false,
                }
            }
            StepState::Started { attempt, .. } => Next::Act {
                step: i,
                attempt: *attempt,
                resume: true,
            },
            StepState::Retrying { at_ms, .. } if now_ms < *at_ms => wait(*at_ms),
            StepState::Retrying { attempt, .. } => Next::Act {
                step: i,
                attempt: attempt + 1,
                resume: false,
            },
            StepState::Failed { error, kind } => Next::StartCompensating {
                reason: format!("step {} failed ({kind:?}): {error}", self.steps[i]),
            },
            StepState::Succeeded { .. } => Next::Complete,
        }
    }

    /// The first step whose action has not succeeded.
    fn next_action(&self) -> Option<usize> {
        self.actions
            .iter()
            .position(|a| !matches!(a, StepState::Succeeded { .. }))
    }

    /// The last step that needs compensating and is not compensated yet.
    fn next_compensation(&self) -> Option<usize> {
        (0..self.steps.len()).rev().find(|&i| {
            self.needs_compensation(i)
                && !matches!(self.compensations[i], StepState::Succeeded { .. })
        })
    }

    fn next_backward(&self, now_ms: i64) -> Next {
        let Some(i) = self.next_compensation() else {
            return Next::FinishCompensated;
        };
        match &self.compensations[i] {
            StepState::NotStarted => Next::Compensate {
                step: i,
                attempt: 1,
                resume: false,
            },
            StepState::Started { due_ms, .. } if due_ms.is_some_and(|d| now_ms >= d) => {
                Next::TimedOut {
                    step: i,
                    compensation: true,
                }
            }
            StepState::Started { attempt, .. } => Next::Compensate {
                step: i,
                attempt: *attempt,
                resume: true,
            },
            StepState::Retrying { at_ms, .. } if now_ms < *at_ms => Next::Wait { until_ms: *at_ms },
            StepState::Retrying { attempt, .. } => Next::Compensate {
                step: i,
                attempt: attempt + 1,
                resume: false,
            },
            StepState::Failed { error, .. } => Next::Park {
                step: i,
                reason: format!("compensation of {} failed: {error}", self.steps[i]),
            },
            StepState::Succeeded { .. } => Next::FinishCompensated,
        }
    }

    /// The earliest time a timer of this saga is due (a started call's
    /// timeout, a retry, the deadline), if any.
    pub fn due_ms(&self) -> Option<i64> {
        if self.status.is_terminal() || self.status == Status::Parked {
            return None;
        }
        let calls = self.actions.iter().chain(&self.compensations);
        let timers = calls.filter_map(|s| match s {
            StepState::Started { due_ms, .. } => *due_ms,
            StepState::Retrying { at_ms, .. } => Some(*at_ms),
            _ => None,
        });
        let deadline = (self.status == Status::Running)
            .then_some(self.deadline_ms)
            .flatten();
        timers.chain(deadline).min()
    }

    /// The step an action's output was recorded for.
    pub fn output(&self, step: &str) -> Option<&Value> {
        let i = self.steps.iter().position(|s| s == step)?;
        match &self.actions[i] {
            StepState::Succeeded { output } => Some(output),
            _ => None,
        }
    }

    pub fn summary(&self) -> Summary {
        let step = match self.status {
            Status::Running => self.next_action(),
            Status::Compensating | Status::Parked => self.next_compensation(),
            _ => None,
        };
        Summary {
            id: self.id.clone(),
            saga_type: self.saga_type.clone(),
            status: self.status,
            step: step.map(|i| self.steps[i].clone()),
            steps: self.steps.len(),
            reason: self.parked.clone().or_else(|| self.reason.clone()),
            started_ms: self.started_ms,
            updated_ms: self.updated_ms,
            version: self.version,
        }
    }
}

#[cfg(test)]
mod tests {
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
}
