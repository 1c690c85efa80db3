//! Sagas by orchestration: a saga is a typed input and ordered steps, each
//! an action and a compensation (calls to downstream services). Its whole
//! state is events in the store (`weir-sagas`' event model, stream
//! `saga-<id>`), written before and after every call, so a process that
//! dies at any point is resumed exactly where the events stop by the next
//! [`SagaRunner`] on the store. Each call carries an idempotency key that
//! is the same for every attempt, so a downstream applies a retried action
//! or compensation once. Step timeouts, retries and the saga's deadline are
//! durable timers: they are times in the events, so one that came due
//! while no process ran fires when a runner starts.
//!
//! Saga events carry the saga id as their correlation id, so the saga's
//! timeline is the correlation's.

mod follower;
mod pending;
mod runner;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
pub use weir_sagas::{
    CATEGORY, ErrorKind, EventBody, Next, SagaEvent, SagaState, Status, StepState, Summary,
    idempotency_key, stream_of, validate_id,
};

pub use runner::{RunnerConfig, SagaRunner, TRACED_SAGAS_MAX};

use crate::service::{Failure, RetryPolicy};
use crate::{Causation, Client, Envelope, Error, ExpectedVersion, StoreError, TraceContext};

/// What a step's action or compensation is given.
#[derive(Debug)]
pub struct StepContext<'a> {
    pub saga_id: &'a str,
    pub step: &'a str,
    /// From 1; the same idempotency key for every attempt.
    pub attempt: u32,
    /// Send it to the downstream with the call: it applies the call once
    /// however often it is tried.
    pub idempotency_key: &'a str,
    state: &'a SagaState,
}

impl StepContext<'_> {
    /// What an earlier step's action returned.
    pub fn output(&self, step: &str) -> Option<&Value> {
        self.state.output(step)
    }
}

type ActionFn = Arc<dyn Fn(&StepContext<'_>, &Value) -> Result<Value, Failure> + Send + Sync>;
type CompensationFn = Arc<dyn Fn(&StepContext<'_>, &Value) -> Result<(), Failure> + Send + Sync>;

struct Step {
    name: String,
    act: ActionFn,
    compensate: CompensationFn,
    timeout: Option<Duration>,
}

/// A kind of saga: its name, its steps in order, its timeouts and retries.
pub struct SagaDefinition<I> {
    name: String,
    steps: Vec<Step>,
    step_timeout: Option<Duration>,
    deadline: Option<Duration>,
    retry: RetryPolicy,
    compensation_retry: RetryPolicy,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<I> fmt::Debug for SagaDefinition<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaDefinition")
            .field("name", &self.name)
            .field(
                "steps",
                &self.steps.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn decode<I: DeserializeOwned>(input: &Value) -> Result<I, Failure> {
    I::deserialize(input).map_err(|e| Failure::permanent(format!("the saga's input: {e}")))
}

impl<I: Serialize + DeserializeOwned + 'static> SagaDefinition<I> {
    /// A saga type named `name` (it is recorded in every saga of it).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            steps: Vec::new(),
            step_timeout: None,
            deadline: None,
            retry: RetryPolicy {
                attempts: 3,
                ..RetryPolicy::default()
            },
            compensation_retry: RetryPolicy {
                attempts: 5,
                ..RetryPolicy::default()
            },
            _input: std::marker::PhantomData,
        }
    }

    /// Adds a step: its action, returning what later steps may read
    /// ([`StepContext::output`]), and its compensation, which undoes the
    /// action (and must do nothing if the action never took effect: a
    /// timed-out action is compensated too).
    pub fn step<O: Serialize>(
        mut self,
        name: impl Into<String>,
        act: impl Fn(&StepContext<'_>, &I) -> Result<O, Failure> + Send + Sync + 'static,
        compensate: impl Fn(&StepContext<'_>, &I) -> Result<(), Failure> + Send + Sync + 'static,
    ) -> Self {
        self.steps.push(Step {
            name: name.into(),
            act: Arc::new(move |ctx, input| {
                let out = act(ctx, &decode::<I>(input)?)?;
                serde_json::to_value(out)
                    .map_err(|e| Failure::permanent(format!("the step's output: {e}")))
            }),
            compensate: Arc::new(move |ctx, input| compensate(ctx, &decode::<I>(input)?)),
            timeout: None,
        });
        self
    }

    /// The last step added gets its own timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let Some(step) = self.steps.last_mut() {
            step.timeout = Some(timeout);
        }
        self
    }

    /// Every step without its own timeout gets this one.
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = Some(timeout);
        self
    }

    /// The whole saga must be done this long after it started; past it,
    /// it compensates.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Retries of a step's action (after `attempts` it fails for good and
    /// the saga compensates).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Retries of a compensation (after `attempts` the saga is parked for
    /// an operator).
    pub fn compensation_retry(mut self, retry: RetryPolicy) -> Self {
        self.compensation_retry = retry;
        self
    }
}

/// A definition with its input type erased, as the runner keeps it.
pub(crate) struct Definition {
    pub name: String,
    steps: Vec<Step>,
    step_timeout: Option<Duration>,
    pub deadline: Option<Duration>,
    pub retry: RetryPolicy,
    pub compensation_retry: RetryPolicy,
}

impl<I> From<SagaDefinition<I>> for Definition {
    fn from(d: SagaDefinition<I>) -> Self {
        Self {
            name: d.name,
            steps: d.steps,
            step_timeout: d.step_timeout,
            deadline: d.deadline,
            retry: d.retry,
            compensation_retry: d.compensation_retry,
        }
    }
}

impl Definition {
    pub fn step_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.name.clone()).collect()
    }

    pub fn timeout(&self, step: usize) -> Option<Duration> {
        self.steps
            .get(step)
            .and_then(|s| s.timeout)
            .or(self.step_timeout)
    }

    pub fn call(
        &self,
        state: &SagaState,
        step: usize,
        attempt: u32,
        compensation: bool,
    ) -> Result<Value, Failure> {
        let Some(s) = self.steps.get(step) else {
            return Err(Failure::permanent(format!(
                "saga type {} has no step {step} (the definition changed?)",
                self.name
            )));
        };
        let key = idempotency_key(&state.id, &s.name, compensation);
        let ctx = StepContext {
            saga_id: &state.id,
            step: &s.name,
            attempt,
            idempotency_key: &key,
            state,
        };
        let run = || {
            if compensation {
                (s.compensate)(&ctx, &state.input).map(|()| Value::Null)
            } else {
                (s.act)(&ctx, &state.input)
            }
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
            .unwrap_or_else(|_| Err(Failure::transient(format!("step {} panicked", s.name))))
    }
}

/// The definitions a runner knows, by saga type.
pub(crate) type Definitions = HashMap<String, Arc<Definition>>;

/// Reads saga `id`'s events.
pub fn events(client: &Client, id: &str) -> Result<Vec<SagaEvent>, Error> {
    let stream = stream_of(id);
    let mut out = Vec::new();
    loop {
        let page = match client.read_stream(&stream, out.len() as u64, crate::READ_PAGE_MAX) {
            Err(Error::Store(StoreError::StreamNotFound { .. })) => Vec::new(),
            other => other?,
        };
        let n = page.len();
        for e in page {
            let recorded = e.recorded.as_ref();
            let body = match EventBody::decode(&e.event_type, &e.data) {
                Some(Ok(b)) => b,
                Some(Err(reason)) => {
                    return Err(Error::BadEventData {
                        id: e.id.clone(),
                        event_type: e.event_type.clone(),
                        reason,
                    });
                }
                None => continue,
            };
            out.push(SagaEvent {
                version: recorded.map_or(0, |r| r.version),
                recorded_ms: recorded.map_or(0, |r| r.recorded_ms),
                body,
            });
        }
        if n < crate::READ_PAGE_MAX {
            return Ok(out);
        }
    }
}

/// Saga `id`'s state; `None` if there is no such saga.
pub fn load(client: &Client, id: &str) -> Result<Option<SagaState>, Error> {
    validate_id(id).map_err(saga_error)?;
    let events = events(client, id)?;
    if events.is_empty() {
        return Ok(None);
    }
    SagaState::fold(id, &events).map(Some).map_err(saga_error)
}

pub(crate) fn saga_error(e: weir_sagas::SagaError) -> Error {
    Error::Saga {
        reason: e.to_string(),
    }
}

/// Appends `body` to saga `id`'s stream if it is at `version` (`None`: the
/// stream must not exist); the saga id is the correlation id.
pub(crate) fn append(
    client: &Client,
    id: &str,
    saga_type: &str,
    version: Option<u64>,
    body: &EventBody,
    trace: Option<&TraceContext>,
) -> Result<u64, Error> {
    let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
    append_events(
        client,
        id,
        saga_type,
        expected,
        std::slice::from_ref(body),
        trace,
    )
}

/// Appends `bodies` in one append if the saga is at `version`.
pub(crate) fn append_all(
    client: &Client,
    id: &str,
    saga_type: &str,
    version: u64,
    bodies: &[EventBody],
    trace: Option<&TraceContext>,
) -> Result<u64, Error> {
    append_events(
        client,
        id,
        saga_type,
        ExpectedVersion::Exact(version),
        bodies,
        trace,
    )
}

pub(crate) fn append_events(
    client: &Client,
    id: &str,
    saga_type: &str,
    expected: ExpectedVersion,
    bodies: &[EventBody],
    trace: Option<&TraceContext>,
) -> Result<u64, Error> {
    let envelopes: Vec<Envelope> = bodies
        .iter()
        .map(|body| {
            let (event_type, data) = body.encode();
            Envelope {
                id: crate::new_id(),
                source: format!("/sagas/{saga_type}"),
                event_type: event_type.to_owned(),
                specversion: crate::SPEC_VERSION.to_owned(),
                time: None,
                subject: Some(id.to_owned()),
                datacontenttype: crate::JSON.to_owned(),
                dataschema: None,
                dataversion: 1,
                correlationid: Causation::correlated(id).correlation_id,
                causationid: None,
                data,
                recorded: None,
                // In the trace the saga was started in, each event its
                // own span.
                trace: trace.map(|t| t.child(crate::new_span_id())),
            }
        })
        .collect();
    let result = client.append(&stream_of(id), expected, &envelopes)?;
    Ok(result.last_version)
}

/// Resumes a parked saga (an operator's decision): its failed compensation
/// is tried again from its first attempt by the runner that has its type.
pub fn resume(client: &Client, id: &str, by: &str) -> Result<SagaState, Error> {
    let state = load(client, id)?.ok_or_else(|| Error::Saga {
        reason: format!("no saga {id}"),
    })?;
    if state.status != Status::Parked {
        return Err(saga_error(weir_sagas::SagaError::NotParked {
            id: id.to_owned(),
            status: state.status,
        }));
    }
    append(
        client,
        id,
        &state.saga_type,
        Some(state.version),
        &EventBody::Resumed { by: by.to_owned() },
        None,
    )?;
    load(client, id)?.ok_or_else(|| Error::Saga {
        reason: format!("saga {id} vanished"),
    })
}
