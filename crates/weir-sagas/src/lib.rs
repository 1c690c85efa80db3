//! `weir-sagas`: sagas by orchestration as events. A saga's whole life is
//! the stream `saga-<id>` in the event store: it started, each step's
//! action started (with its idempotency key and its timeout), succeeded or
//! failed, the saga switched to compensating, each compensation started,
//! succeeded or failed, the saga was parked for an operator and resumed,
//! and it ended completed or compensated. [`SagaState::fold`] rebuilds the
//! state from those events, and [`SagaState::next`] says what to do now
//! (run a step, wait for a timer, compensate, finish), so a process that
//! crashed at any point resumes exactly where the events stop, and any
//! process that opens the store can.
//!
//! No I/O and no clock of its own: the SDK's runner reads and appends the
//! events and calls the actions; the server reads them to list, show and
//! resume sagas. See `docs/design/sagas.md`.

mod events;
mod report;
mod state;

pub use events::{
    CATEGORY, ErrorKind, EventBody, SAGA_EVENT_TYPES, SagaEvent, idempotency_key, stream_of,
};
pub use report::StepReport;
pub use state::{Next, SagaState, Status, StepState, Summary};

/// Most steps a saga may have.
pub const STEPS_MAX: usize = 64;
/// Longest saga id, in bytes.
pub const SAGA_ID_BYTES_MAX: usize = 200;

/// Why saga events do not make a saga.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SagaError {
    #[error("saga {id}: {reason}")]
    Malformed { id: String, reason: String },
    #[error("invalid saga id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("saga {id} is {status}, not parked: only a parked saga is resumed")]
    NotParked { id: String, status: Status },
}

/// Checks a saga id: 1 to [`SAGA_ID_BYTES_MAX`] bytes of letters, digits,
/// `.`, `_` and `-` (it names a stream, a category's member, and goes into
/// idempotency keys).
pub fn validate_id(id: &str) -> Result<(), SagaError> {
    let invalid = |reason| SagaError::InvalidId {
        id: id.chars().take(64).collect(),
        reason,
    };
    if id.is_empty() || id.len() > SAGA_ID_BYTES_MAX {
        return Err(invalid("a saga id has 1 to 200 bytes"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "a saga id has letters, digits, '.', '_' and '-' only",
        ));
    }
    Ok(())
}
