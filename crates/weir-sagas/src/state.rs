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
#[path = "state_tests.rs"]
mod tests;
