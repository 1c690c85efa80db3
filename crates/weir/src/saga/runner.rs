//! The saga runner: a fixed pool of worker threads drives sagas (no thread
//! per saga), a timer thread wakes sagas whose retry, timeout or deadline
//! came due, and a follower thread learns of sagas started or resumed by
//! other processes through the store's `saga` category. Which sagas are
//! still active is kept in the runner's own SQLite file with its position
//! in the category, so a restart neither rescans finished sagas nor misses
//! one whose timer came due while no runner ran.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::follower::{FollowError, Ledger, follow_once};
use super::pending::{Pending, failure_body};
use super::{Definition, Definitions, SagaDefinition, append, load, saga_error};
use crate::service::Failure;
use crate::{Client, Error, StoreError, TraceContext};
use weir_sagas::{ErrorKind, EventBody, Next, SagaEvent, SagaState, Status, validate_id};

/// Settings of a runner.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The runner's name: its SQLite file is
    /// `<read models dir>/<name>.sagas.sqlite`.
    pub name: String,
    /// Sagas driven at once (worker threads).
    pub workers: usize,
    /// How often the follower looks for sagas started or resumed
    /// elsewhere, at most (it is woken by the store's changes first).
    pub follow_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            name: "sagas".to_owned(),
            workers: 8,
            follow_interval: Duration::from_millis(200),
        }
    }
}

/// The least time between two passes of the follower.
const FOLLOW_PACE: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Schedule {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    /// Sagas a worker drives now; one queued again meanwhile runs after.
    running: HashSet<String>,
    again: HashSet<String>,
    timers: BinaryHeap<Reverse<(i64, String)>>,
}

pub(super) struct Inner {
    pub(super) client: Client,
    definitions: Definitions,
    config: RunnerConfig,
    schedule: Mutex<Schedule>,
    /// A saga is ready for a worker (one is woken per saga).
    ready: Condvar,
    /// The timers changed, or the runner stops (the timer thread waits
    /// on it).
    changed: Condvar,
    stop: AtomicBool,
    /// Sagas completed or compensated by this runner.
    finished: AtomicU64,
    /// The least count a [`SagaRunner::wait_finished`] waits for
    /// (`u64::MAX` when none waits): a saga's end notifies only then.
    finished_wanted: AtomicU64,
    /// Taken to notify `finished_changed` (the count itself is atomic).
    finished_lock: Mutex<()>,
    finished_changed: Condvar,
    ledger: Mutex<Option<Ledger>>,
    /// Sagas this runner just started, with their state: the worker that
    /// takes one need not read it back.
    fresh: Mutex<HashMap<String, SagaState>>,
    /// Sagas this runner started whose start the follower has not read
    /// yet: it need not wake them (a worker already has them).
    pub(super) started_here: Mutex<HashSet<String>>,
    /// Sagas that ended since the follower's last pass: it forgets them in
    /// the ledger in one transaction.
    pub(super) ended_pending: Mutex<HashSet<String>>,
    /// The trace contexts sagas were started in here (at most
    /// [`TRACED_SAGAS_MAX`]; forgotten when a saga ends): their later
    /// events are in the same trace. Not kept across restarts.
    traces: Mutex<HashMap<String, TraceContext>>,
}

/// Most sagas whose trace context a runner keeps; sagas started beyond it
/// have only their first events traced.
pub const TRACED_SAGAS_MAX: usize = 100_000;

/// Drives the sagas of its definitions' types on a store.
pub struct SagaRunner {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SagaRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaRunner")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lock(m: &Mutex<Schedule>) -> MutexGuard<'_, Schedule> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SagaRunner {
    /// A runner for `definitions` on `client`'s store, with `config`;
    /// call [`Self::with`] for each saga type, then [`Self::start`].
    pub fn new(client: &Client, config: RunnerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: client.clone(),
                definitions: HashMap::new(),
                config,
                schedule: Mutex::new(Schedule::default()),
                ready: Condvar::new(),
                changed: Condvar::new(),
                stop: AtomicBool::new(false),
                finished: AtomicU64::new(0),
                finished_wanted: AtomicU64::new(u64::MAX),
                finished_lock: Mutex::new(()),
                finished_changed: Condvar::new(),
                ledger: Mutex::new(None),
                fresh: Mutex::new(HashMap::new()),
                started_here: Mutex::new(HashSet::new()),
                ended_pending: Mutex::new(HashSet::new()),
                traces: Mutex::new(HashMap::new()),
            }),
            threads: Vec::new(),
        }
    }

    /// Adds a saga type. Before [`Self::start`] only.
    pub fn with<I: 'static>(mut self, definition: SagaDefinition<I>) -> Result<Self, Error> {
        let d: Definition = definition.into();
        let bad = |reason: String| Error::Config { reason };
        if d.steps.is_empty() || d.steps.len() > weir_sagas::STEPS_MAX {
            return Err(bad(format!(
                "saga type {}: 1 to {} steps, not {}",
                d.name,
                weir_sagas::STEPS_MAX,
                d.steps.len()
            )));
        }
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| bad("add saga types before the runner starts".to_owned()))?;
        if inner.definitions.contains_key(&d.name) {
            return Err(bad(format!("saga type {} is added twice", d.name)));
        }
        inner.definitions.insert(d.name.clone(), Arc::new(d));
        Ok(self)
    }

    /// Starts the workers, the timer and the follower: sagas left active
    /// by an earlier run (and whose timers came due meanwhile) are resumed
    /// at once.
    pub fn start(mut self) -> Result<Self, Error> {
        let name = self.inner.config.name.clone();
        let sql = |e| Error::sqlite(&name, e);
        let ledger = Ledger::open(&self.inner.client, &name)?;
        *self.inner.ledger.lock().unwrap_or_else(|e| e.into_inner()) = Some(ledger);
        // Catch up with the store first, so every active saga is known.
        follow_once(&self.inner).map_err(|e| match e {
            FollowError::Sql(e) => sql(e),
            FollowError::Sdk(e) => e,
        })?;
        let active = self.inner.with_ledger(|l| l.active()).map_err(sql)?;
        for id in active {
            self.inner.wake(&id);
        }
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| Error::Config {
                    reason: format!("starting the saga runner's threads: {e}"),
                })
        };
        for i in 0..self.inner.config.workers.max(1) {
            let inner = self.inner.clone();
            self.threads.push(spawn(
                format!("weir-saga-{i}"),
                Box::new(move || inner.work()),
            )?);
        }
        let inner = self.inner.clone();
        self.threads.push(spawn(
            "weir-saga-timers".into(),
            Box::new(move || inner.timers()),
        )?);
        let inner = self.inner.clone();
        self.threads.push(spawn(
            "weir-saga-follow".into(),
            Box::new(move || inner.follow()),
        )?);
        Ok(self)
    }

    /// Starts saga `id` of type `saga_type` with `input`. Starting the
    /// same id again is refused (the stream exists).
    pub fn start_saga<I: Serialize>(
        &self,
        saga_type: &str,
        id: &str,
        input: &I,
    ) -> Result<(), Error> {
        self.start_saga_in(saga_type, id, input, None)
    }

    /// [`Self::start_saga`] in a W3C trace context (e.g.
    /// `Causation::caused_by(ctx.envelope()).trace` in a handler): the
    /// saga's events this runner appends are in that trace, each with a
    /// new span id.
    pub fn start_saga_in<I: Serialize>(
        &self,
        saga_type: &str,
        id: &str,
        input: &I,
        trace: Option<TraceContext>,
    ) -> Result<(), Error> {
        validate_id(id).map_err(saga_error)?;
        let d = self
            .inner
            .definitions
            .get(saga_type)
            .ok_or_else(|| Error::Saga {
                reason: format!("no saga type {saga_type} in this runner"),
            })?;
        let input = serde_json::to_value(input).map_err(|e| Error::Saga {
            reason: format!("saga {id}'s input: {e}"),
        })?;
        let now = now_ms();
        let deadline_ms = d.deadline.map(|t| now + t.as_millis() as i64);
        let steps = d.step_names();
        // The start and the first step's start in one append: the first
        // call is made by a worker as if resumed.
        let due_ms = d.timeout(0).map(|t| now + t.as_millis() as i64);
        let events = [
            EventBody::Started {
                saga_type: saga_type.to_owned(),
                input,
                steps: steps.clone(),
                deadline_ms,
            },
            EventBody::StepStarted {
                step: 0,
                attempt: 1,
                idempotency_key: weir_sagas::idempotency_key(id, &steps[0], false),
                due_ms,
            },
        ];
        let recorded: Vec<SagaEvent> = events
            .iter()
            .enumerate()
            .map(|(i, body)| SagaEvent {
                version: i as u64,
                recorded_ms: now,
                body: body.clone(),
            })
            .collect();
        let state = SagaState::fold(id, &recorded).map_err(saga_error)?;
        // Known here before the start is in the store: the follower, which
        // may read the start at once, records it as active but leaves it
        // to this runner's worker, which takes the state as it is without
        // reading it back.
        self.inner
            .started_here
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned());
        self.inner
            .fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), state);
        if let Some(t) = &trace {
            let mut traces = self.inner.traces.lock().unwrap_or_else(|e| e.into_inner());
            if traces.len() < TRACED_SAGAS_MAX {
                traces.insert(id.to_owned(), t.clone());
            }
        }
        let forget = || {
            self.inner
                .traces
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            self.inner
                .started_here
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            self.inner
                .fresh
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        };
        if let Err(e) = super::append_events(
            &self.inner.client,
            id,
            saga_type,
            crate::ExpectedVersion::NoStream,
            &events,
            trace.as_ref(),
        ) {
            forget();
            return Err(match e {
                Error::Store(StoreError::WrongExpectedVersion { .. }) => Error::Saga {
                    reason: format!("saga {id} exists already"),
                },
                e => e,
            });
        }
        if let Some(due) = due_ms {
            self.inner.at(due, id);
        }
        self.inner.wake(id);
        Ok(())
    }

    /// Saga `id`'s state now.
    pub fn state(&self, id: &str) -> Result<Option<SagaState>, Error> {
        load(&self.inner.client, id)
    }

    /// Waits until saga `id` is completed, compensated or parked, or
    /// `timeout`; returns its state then.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<SagaState, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let epoch = self.inner.client.backend().change_epoch();
            if let Some(s) = self.state(id)?
                && (s.status.is_terminal()
                    || s.status == Status::Parked
                    || Instant::now() >= deadline)
            {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                return Err(Error::Saga {
                    reason: format!("no saga {id}"),
                });
            }
            self.inner
                .client
                .backend()
                .wait_changed(epoch, Duration::from_millis(100));
        }
    }

    /// Sagas this runner completed or compensated since it started.
    pub fn finished(&self) -> u64 {
        self.inner.finished.load(Ordering::Relaxed)
    }

    /// Waits until this runner has finished (completed or compensated) at
    /// least `count` sagas, or `timeout`; returns how many it has.
    pub fn wait_finished(&self, count: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut guard = self
            .inner
            .finished_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            // Wanted first, then the count checked again: an end that
            // the check misses sees the wanted count and notifies.
            self.inner
                .finished_wanted
                .fetch_min(count, Ordering::SeqCst);
            let finished = self.inner.finished.load(Ordering::SeqCst);
            let now = Instant::now();
            if finished >= count || now >= deadline {
                return finished;
            }
            guard = self
                .inner
                .finished_changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Stops the threads; a saga in the middle of a call finishes that
    /// call and its record first (an abandoned one resumes on next start).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.ready.notify_all();
        self.inner.changed.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for SagaRunner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    pub(super) fn with_ledger<T>(
        &self,
        f: impl FnOnce(&mut Ledger) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut guard = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(l) => f(l),
            None => Err(rusqlite::Error::InvalidQuery),
        }
    }

    /// Queues saga `id` to be driven.
    pub(super) fn wake(&self, id: &str) {
        let mut s = lock(&self.schedule);
        if s.running.contains(id) {
            s.again.insert(id.to_owned());
        } else if s.queued.insert(id.to_owned()) {
            s.ready.push_back(id.to_owned());
            drop(s);
            self.ready.notify_one();
        }
    }

    fn at(&self, due_ms: i64, id: &str) {
        lock(&self.schedule)
            .timers
            .push(Reverse((due_ms, id.to_owned())));
        self.changed.notify_all();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn work(&self) {
        loop {
            let id = {
                let mut s = lock(&self.schedule);
                loop {
                    if self.stopping() {
                        return;
                    }
                    if let Some(id) = s.ready.pop_front() {
                        s.queued.remove(&id);
                        s.running.insert(id.clone());
                        break id;
                    }
                    s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            };
            if let Err(e) = self.drive(&id) {
                tracing::warn!(saga = %id, "driving the saga: {e}; trying again shortly");
                self.at(now_ms() + 1000, &id);
            }
            let mut s = lock(&self.schedule);
            s.running.remove(&id);
            if s.again.remove(&id) && s.queued.insert(id.clone()) {
                s.ready.push_back(id);
                drop(s);
                self.ready.notify_one();
            }
        }
    }

    /// Wakes sagas whose timer came due. A saga a worker is driving is
    /// only checked for a timeout: the worker's own record then loses its
    /// expected version and it reads the saga again.
    fn timers(&self) {
        let mut s = lock(&self.schedule);
        loop {
            if self.stopping() {
                return;
            }
            let now = now_ms();
            let due = s.timers.peek().map(|Reverse((t, _))| *t);
            match due {
                Some(t) if t <= now => {
                    let Some(Reverse((_, id))) = s.timers.pop() else {
                        continue;
                    };
                    if s.running.contains(&id) {
                        drop(s);
                        if let Err(e) = self.time_out(&id) {
                            tracing::warn!(saga = %id, "recording a timeout: {e}");
                        }
                        s = lock(&self.schedule);
                    } else if s.queued.insert(id.clone()) {
                        s.ready.push_back(id);
                        self.ready.notify_one();
                    }
                }
                _ => {
                    let wait = due.map_or(Duration::from_secs(1), |t| {
                        Duration::from_millis((t - now).clamp(1, 1000) as u64)
                    });
                    s = self
                        .changed
                        .wait_timeout(s, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    fn follow(&self) {
        while !self.stopping() {
            let epoch = self.client.backend().change_epoch();
            match follow_once(self) {
                Ok(_) => {}
                Err(FollowError::Sql(e)) => tracing::warn!("saga runner ledger: {e}"),
                Err(FollowError::Sdk(e)) => tracing::warn!("reading the saga category: {e}"),
            }
            if self
                .client
                .backend()
                .wait_changed(epoch, self.config.follow_interval)
            {
                // Changes come with every append: a short pause lets a
                // pass read many starts in one page and one transaction.
                std::thread::sleep(FOLLOW_PACE);
            }
        }
    }

    fn time_out(&self, id: &str) -> Result<(), Error> {
        let Some(state) = load(&self.client, id)? else {
            return Ok(());
        };
        if let Next::TimedOut { step, compensation } = state.next(now_ms()) {
            let Some(d) = self.definitions.get(&state.saga_type) else {
                return Ok(());
            };
            let body = failure_body(
                d,
                &state,
                step,
                compensation,
                ErrorKind::Timeout,
                "no answer before the step's timeout".to_owned(),
            );
            append(
                &self.client,
                id,
                &state.saga_type,
                Some(state.version),
                &body,
                self.trace_of(id).as_ref(),
            )?;
        }
        Ok(())
    }

    /// Drives saga `id` until it waits (a timer, an operator) or ends.
    ///
    /// A call's start is recorded before the call; its result is recorded
    /// together with what follows it (the next call's start, or the end),
    /// in one append: one durable append per step. A crash before that
    /// append leaves the call started and unanswered, so it is made again
    /// with the same idempotency key.
    fn drive(&self, id: &str) -> Result<(), Error> {
        'reload: loop {
            if self.stopping() {
                return Ok(());
            }
            let fresh = self
                .fresh
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            let Some(mut view) = (match fresh {
                Some(state) => Some(state),
                None => load(&self.client, id)?,
            }) else {
                return Ok(());
            };
            let Some(d) = self.definitions.get(&view.saga_type).cloned() else {
                // Another runner's type.
                return Ok(());
            };
            let mut saga = Pending {
                recorded: view.version,
                events: Vec::new(),
                trace: self.trace_of(id),
            };
            loop {
                if self.stopping() {
                    return self.flush_or_reload(&mut saga, &view).map(drop);
                }
                let now = now_ms();
                let (step, attempt, resume, compensation) = match view.next(now) {
                    Next::Done => {
                        if !self.flush_or_reload(&mut saga, &view)? {
                            continue 'reload;
                        }
                        self.ended_pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id.to_owned());
                        self.traces
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(id);
                        return Ok(());
                    }
                    Next::AwaitOperator => {
                        return self.flush_or_reload(&mut saga, &view).map(drop);
                    }
                    Next::Wait { until_ms } => {
                        if !self.flush_or_reload(&mut saga, &view)? {
                            continue 'reload;
                        }
                        self.at(until_ms, id);
                        return Ok(());
                    }
                    Next::Complete => {
                        saga.push(&mut view, EventBody::Completed {})?;
                        if !self.flush_or_reload(&mut saga, &view)? {
                            continue 'reload;
                        }
                        self.ended();
                        continue;
                    }
                    Next::FinishCompensated => {
                        saga.push(&mut view, EventBody::Compensated {})?;
                        if !self.flush_or_reload(&mut saga, &view)? {
                            continue 'reload;
                        }
                        self.ended();
                        continue;
                    }
                    Next::StartCompensating { reason } => {
                        saga.push(&mut view, EventBody::Compensating { reason })?;
                        continue;
                    }
                    Next::Park { step, reason } => {
                        tracing::warn!(saga = %id, step = %view.steps[step], "saga parked: {reason}");
                        saga.push(&mut view, EventBody::Parked { step, reason })?;
                        continue;
                    }
                    Next::TimedOut { step, compensation } => {
                        let body = failure_body(
                            &d,
                            &view,
                            step,
                            compensation,
                            ErrorKind::Timeout,
                            "no answer before the step's timeout".to_owned(),
                        );
                        saga.push(&mut view, body)?;
                        continue;
                    }
                    Next::Act {
                        step,
                        attempt,
                        resume,
                    } => (step, attempt, resume, false),
                    Next::Compensate {
                        step,
                        attempt,
                        resume,
                    } => (step, attempt, resume, true),
                };
                // A call: its start is durable before it is made.
                let due_ms = if resume {
                    view.due_ms()
                } else {
                    let due_ms = d.timeout(step).map(|t| now + t.as_millis() as i64);
                    let idempotency_key =
                        weir_sagas::idempotency_key(id, &view.steps[step], compensation);
                    saga.push(
                        &mut view,
                        if compensation {
                            EventBody::CompensationStarted {
                                step,
                                attempt,
                                idempotency_key,
                                due_ms,
                            }
                        } else {
                            EventBody::StepStarted {
                                step,
                                attempt,
                                idempotency_key,
                                due_ms,
                            }
                        },
                    )?;
                    due_ms
                };
                if !self.flush_or_reload(&mut saga, &view)? {
                    continue 'reload;
                }
                if let Some(due) = due_ms {
                    self.at(due, id);
                }
                let body = match d.call(&view, step, attempt, compensation) {
                    Ok(_) if compensation => EventBody::CompensationSucceeded { step },
                    Ok(output) => EventBody::StepSucceeded { step, output },
                    Err(failure) => {
                        let (kind, error) = match failure {
                            Failure::Permanent(e) => (ErrorKind::Permanent, e),
                            Failure::Transient(e) => (ErrorKind::Transient, e),
                            Failure::Unavailable { downstream } => (
                                ErrorKind::Transient,
                                format!("downstream {downstream} unavailable"),
                            ),
                        };
                        failure_body(&d, &view, step, compensation, kind, error)
                    }
                };
                saga.push(&mut view, body)?;
            }
        }
    }

    /// Appends what is pending; false if someone else recorded first (a
    /// timeout, another runner): the caller reads the saga again.
    fn flush_or_reload(&self, saga: &mut Pending, view: &SagaState) -> Result<bool, Error> {
        match saga.flush(&self.client, view) {
            Ok(()) => Ok(true),
            Err(Error::Store(StoreError::WrongExpectedVersion { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The trace context saga `id` was started in here, if any.
    fn trace_of(&self, id: &str) -> Option<TraceContext> {
        self.traces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    fn ended(&self) {
        let finished = self.finished.fetch_add(1, Ordering::SeqCst) + 1;
        if finished >= self.finished_wanted.load(Ordering::SeqCst) {
            // Under the lock, so a waiter between its check and its wait
            // is not missed; the woken ones that still wait want again.
            let _guard = self.finished_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.finished_wanted.store(u64::MAX, Ordering::SeqCst);
            self.finished_changed.notify_all();
        }
    }
}
