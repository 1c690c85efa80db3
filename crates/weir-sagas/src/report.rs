//! What an operator reads about a saga's steps: each step's action and
//! compensation in words, how many times each was tried, and the last
//! error either one met. The state alone forgets attempts once a call
//! succeeds and errors once it is retried, so the report reads the events.

use crate::events::{EventBody, SagaEvent};
use crate::state::{SagaState, Status, StepState};

/// One step of a saga, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub name: String,
    /// `not_started`, `started`, `retrying`, `succeeded` or `failed`.
    pub action: &'static str,
    /// The same words, or `not_needed` (the saga compensates and this
    /// step's action had no effect) and `none` (the saga does not
    /// compensate).
    pub compensation: &'static str,
    /// Times the action was started (a call resumed after a crash is
    /// not counted again).
    pub attempts: u32,
    /// Times the compensation was started.
    pub compensation_attempts: u32,
    /// The last error of the action or the compensation, if any.
    pub last_error: Option<String>,
}

fn word(s: &StepState) -> &'static str {
    match s {
        StepState::NotStarted => "not_started",
        StepState::Started { .. } => "started",
        StepState::Retrying { .. } => "retrying",
        StepState::Succeeded { .. } => "succeeded",
        StepState::Failed { .. } => "failed",
    }
}

impl SagaState {
    /// Its steps in order, from its state and the `events` it was folded
    /// from.
    pub fn step_reports(&self, events: &[SagaEvent]) -> Vec<StepReport> {
        let compensates = !matches!(self.status, Status::Running | Status::Completed);
        let mut out: Vec<StepReport> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, name)| StepReport {
                name: name.clone(),
                action: word(&self.actions[i]),
                compensation: match &self.compensations[i] {
                    StepState::NotStarted if !compensates => "none",
                    StepState::NotStarted if !self.needs_compensation(i) => "not_needed",
                    s => word(s),
                },
                attempts: 0,
                compensation_attempts: 0,
                last_error: None,
            })
            .collect();
        for e in events {
            let (step, error) = match &e.body {
                EventBody::StepStarted { step, .. } => {
                    if let Some(r) = out.get_mut(*step) {
                        r.attempts += 1;
                    }
                    continue;
                }
                EventBody::CompensationStarted { step, .. } => {
                    if let Some(r) = out.get_mut(*step) {
                        r.compensation_attempts += 1;
                    }
                    continue;
                }
                EventBody::StepFailed { step, error, .. }
                | EventBody::CompensationFailed { step, error, .. } => (*step, error),
                _ => continue,
            };
            if let Some(r) = out.get_mut(step) {
                r.last_error = Some(error.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ErrorKind;

    fn ev(version: u64, body: EventBody) -> SagaEvent {
        SagaEvent {
            version,
            recorded_ms: 1000 + version as i64,
            body,
        }
    }

    fn started(step: usize, attempt: u32) -> EventBody {
        EventBody::StepStarted {
            step,
            attempt,
            idempotency_key: format!("k{step}"),
            due_ms: None,
        }
    }

    #[test]
    fn a_parked_saga_reports_attempts_errors_and_what_needs_no_compensation() {
        let events = [
            EventBody::Started {
                saga_type: "order".into(),
                input: json!({}),
                steps: vec!["reserve".into(), "charge".into(), "ship".into()],
                deadline_ms: None,
            },
            started(0, 1),
            EventBody::StepSucceeded {
                step: 0,
                output: json!(1),
            },
            started(1, 1),
            EventBody::StepFailed {
                step: 1,
                error: "503".into(),
                kind: ErrorKind::Transient,
                retry_at_ms: Some(5),
            },
            started(1, 2),
            EventBody::StepSucceeded {
                step: 1,
                output: json!(2),
            },
            started(2, 1),
            EventBody::StepFailed {
                step: 2,
                error: "no courier".into(),
                kind: ErrorKind::Permanent,
                retry_at_ms: None,
            },
            EventBody::Compensating {
                reason: "ship failed".into(),
            },
            EventBody::CompensationStarted {
                step: 1,
                attempt: 1,
                idempotency_key: "c1".into(),
                due_ms: None,
            },
            EventBody::CompensationFailed {
                step: 1,
                error: "payments down".into(),
                kind: ErrorKind::Transient,
                retry_at_ms: None,
            },
            EventBody::Parked {
                step: 1,
                reason: "compensation of charge failed: payments down".into(),
            },
        ];
        let events: Vec<_> = events
            .into_iter()
            .enumerate()
            .map(|(v, b)| ev(v as u64, b))
            .collect();
        let s = SagaState::fold("o-1", &events).unwrap();
        let r = s.step_reports(&events);
        let rows: Vec<_> = r
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.action,
                    r.compensation,
                    r.attempts,
                    r.compensation_attempts,
                    r.last_error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("reserve", "succeeded", "not_started", 1, 0, None),
                ("charge", "succeeded", "failed", 2, 1, Some("payments down")),
                ("ship", "failed", "not_needed", 1, 0, Some("no courier")),
            ]
        );
        // A running saga compensates nothing.
        let running = SagaState::fold("o-1", &events[..3]).unwrap();
        let words: Vec<_> = running
            .step_reports(&events[..3])
            .iter()
            .map(|r| (r.action, r.compensation))
            .collect();
        assert_eq!(
            words,
            [
                ("succeeded", "none"),
                ("not_started", "none"),
                ("not_started", "none")
            ]
        );
    }
}
