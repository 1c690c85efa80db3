//! What a saga runner's worker has decided but not yet appended
//! ([`Pending`], flushed in one append per step), and the event a failed
//! call records ([`failure_body`]). Moved out of `runner.rs` (code moved
//! only) to keep it under the house's file size.

use weir_sagas::{ErrorKind, EventBody, SagaEvent, SagaState};

use super::runner::now_ms;
use super::{Definition, append_all, saga_error};
use crate::{Client, Error, TraceContext};

/// Events decided and applied to the saga's view but not appended yet.
pub(super) struct Pending {
    /// The saga's version in the store.
    pub(super) recorded: u64,
    pub(super) events: Vec<EventBody>,
    /// The trace the saga was started in, if this runner knows it.
    pub(super) trace: Option<TraceContext>,
}

impl Pending {
    pub(super) fn push(&mut self, view: &mut SagaState, body: EventBody) -> Result<(), Error> {
        let event = SagaEvent {
            version: self.recorded + self.events.len() as u64 + 1,
            recorded_ms: now_ms(),
            body,
        };
        view.apply_event(&event).map_err(saga_error)?;
        self.events.push(event.body);
        Ok(())
    }

    pub(super) fn flush(&mut self, client: &Client, view: &SagaState) -> Result<(), Error> {
        if self.events.is_empty() {
            return Ok(());
        }
        append_all(
            client,
            &view.id,
            &view.saga_type,
            self.recorded,
            &self.events,
            self.trace.as_ref(),
        )?;
        self.recorded += self.events.len() as u64;
        self.events.clear();
        Ok(())
    }
}

/// The failure of a call, with its retry time (or none, when the retries
/// ran out or it was refused for good).
pub(super) fn failure_body(
    d: &Definition,
    state: &SagaState,
    step: usize,
    compensation: bool,
    kind: ErrorKind,
    error: String,
) -> EventBody {
    let (calls, policy) = if compensation {
        (&state.compensations, &d.compensation_retry)
    } else {
        (&state.actions, &d.retry)
    };
    let attempt = match &calls[step] {
        weir_sagas::StepState::Started { attempt, .. } => *attempt,
        _ => 1,
    };
    // A timed-out action is not retried (it may have taken effect: the
    // saga compensates); a timed-out compensation is (it must be done).
    let retry = match kind {
        ErrorKind::Permanent => false,
        ErrorKind::Timeout => compensation,
        ErrorKind::Transient => true,
    } && attempt < policy.attempts;
    let retry_at_ms = retry.then(|| {
        let wait = policy
            .waits()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(policy.max_delay);
        now_ms() + wait.as_millis() as i64
    });
    if compensation {
        EventBody::CompensationFailed {
            step,
            error,
            kind,
            retry_at_ms,
        }
    } else {
        EventBody::StepFailed {
            step,
            error,
            kind,
            retry_at_ms,
        }
    }
}
