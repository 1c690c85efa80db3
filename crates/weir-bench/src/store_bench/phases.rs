//! The timed phases of `weir-bench store`: threads started together,
//! appends (blocking and async), whole-stream reads and reads of all
//! events, and what each measured.

use super::*;

/// What the threads of one phase measured.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) events: u64,
    pub(super) latencies_ns: Vec<u64>,
}

/// One phase's measurements, summed over its slices.
#[derive(Debug, Default)]
pub(super) struct Measured {
    pub(super) tally: Tally,
    pub(super) elapsed: Duration,
    pub(super) fsyncs: u64,
}

impl Measured {
    pub(super) fn add(&mut self, (tally, elapsed, fsyncs): (Tally, Duration, u64)) {
        self.tally.events += tally.events;
        self.tally.latencies_ns.extend(tally.latencies_ns);
        self.elapsed += elapsed;
        self.fsyncs += fsyncs;
    }

    pub(super) fn row(self, phase: String) -> Row {
        Row {
            phase,
            records: self.tally.events,
            bytes: 0,
            fsyncs: self.fsyncs,
            elapsed: self.elapsed,
            latency: Latency::from_ns(self.tally.latencies_ns),
        }
    }
}

/// Runs `work` on `threads` threads, started together after each ran
/// `setup`; the clock (and `fsyncs`, read before and after) covers the
/// work only. A failing setup still passes the barriers, so the others are
/// not left waiting, and fails the phase.
pub(super) fn timed<S>(
    threads: usize,
    fsyncs: &(dyn Fn() -> anyhow::Result<u64> + Sync),
    setup: impl Fn(usize) -> anyhow::Result<S> + Sync,
    work: impl Fn(usize, S) -> anyhow::Result<Tally> + Sync,
) -> anyhow::Result<(Tally, Duration, u64)> {
    let ready = Barrier::new(threads + 1);
    let go = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let (ready, go, setup, work) = (&ready, &go, &setup, &work);
            let handle = std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn_scoped(s, move || {
                    let state = setup(t);
                    ready.wait();
                    go.wait();
                    work(t, state?)
                })
                .context("spawn a benchmark thread")?;
            handles.push(handle);
        }
        ready.wait();
        let before = fsyncs();
        let start = Instant::now();
        go.wait();
        let mut total = Tally::default();
        let mut failed = None;
        for handle in handles {
            match handle.join() {
                Ok(Ok(tally)) => {
                    total.events += tally.events;
                    total.latencies_ns.extend(tally.latencies_ns);
                }
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(_) => failed = failed.or(Some(anyhow::anyhow!("a thread panicked"))),
            }
        }
        let elapsed = start.elapsed();
        if let Some(e) = failed {
            return Err(e);
        }
        let synced = fsyncs()?.saturating_sub(before?);
        Ok((total, elapsed, synced))
    })
}

/// A slice's results: what its threads did, its time, its syncs.
pub(super) type Slice = (Tally, Duration, u64);

/// `writers` threads each append `per_append` events at a time to a
/// stream of its own (named after `label`), with the exact expected
/// version, for the slice's time or `events_max` events in all. Each
/// stream's first append (expecting no stream) is made before the clock
/// starts.
pub(super) fn append_slice(
    system: &dyn System,
    slice: &Plan,
    label: &str,
    writers: usize,
    per_append: usize,
) -> anyhow::Result<Slice> {
    let appends_max = (slice.events_max / (writers * per_append) as u64).max(1);
    timed(
        writers,
        &|| system.fsyncs(),
        |w| {
            let mut session = system.session()?;
            let stream = format!("{label}-{w}");
            let mut events = EventGen::new(&stream, w as u64 + 1);
            let version = session.append(&stream, None, &events.next(per_append))?;
            session.flush_stats()?;
            Ok((session, stream, events, version))
        },
        |_, (mut session, stream, mut events, mut version)| {
            let mut latencies_ns = Vec::with_capacity(appends_max.min(1 << 20) as usize);
            let deadline = Instant::now() + slice.phase;
            while (latencies_ns.len() as u64) < appends_max && Instant::now() < deadline {
                let batch = events.next(per_append);
                let t = Instant::now();
                let last = session.append(&stream, Some(version), &batch)?;
                latencies_ns.push(t.elapsed().as_nanos() as u64);
                anyhow::ensure!(
                    last == version + per_append as u64,
                    "{stream}: version {last} after appending {per_append} at {version}"
                );
                version = last;
            }
            session.flush_stats()?;
            Ok(Tally {
                events: latencies_ns.len() as u64 * per_append as u64,
                latencies_ns,
            })
        },
    )
}

/// Like [`append_slice`] for Weir with single-event appends, but the
/// writers are async tasks on a runtime with a worker per core, appending
/// through `append_async`: the way an async server (`weir serve`'s HTTP
/// API) appends, with no thread blocked per append in flight.
pub(super) fn async_append_slice(
    weir: &Weir,
    slice: &Plan,
    label: &str,
    writers: usize,
) -> anyhow::Result<Slice> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .context("start the async writers' runtime")?;
    let appends_max = (slice.events_max / writers as u64).max(1);
    let mut firsts = Vec::with_capacity(writers);
    for w in 0..writers {
        let stream = format!("{label}-{w}");
        let mut events = EventGen::new(&stream, w as u64 + 1);
        let mut session = WeirSession { store: &weir.store };
        let first = session.append(&stream, None, &events.next(1))?;
        firsts.push((stream, events, first));
    }
    let before = weir.fsyncs()?;
    let start = Instant::now();
    let deadline = start + slice.phase;
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = firsts
            .into_iter()
            .map(|(stream, mut events, mut version)| {
                let store = weir.store.clone();
                tokio::spawn(async move {
                    let mut latencies_ns = Vec::with_capacity(appends_max.min(1 << 20) as usize);
                    while (latencies_ns.len() as u64) < appends_max && Instant::now() < deadline {
                        let e = events.next(1).pop().context("one event")?;
                        let new = [NewEvent::json(
                            e.id.as_str(),
                            e.event_type,
                            e.data.as_bytes(),
                        )];
                        let t = Instant::now();
                        let done = store
                            .append_async(&stream, ExpectedVersion::Exact(version), &new)
                            .await?;
                        latencies_ns.push(t.elapsed().as_nanos() as u64);
                        anyhow::ensure!(
                            done.last_version == version + 1,
                            "{stream}: version {} after appending 1 at {version}",
                            done.last_version
                        );
                        version = done.last_version;
                    }
                    Ok(Tally {
                        events: latencies_ns.len() as u64,
                        latencies_ns,
                    })
                })
            })
            .collect();
        let mut tallies = Vec::with_capacity(tasks.len());
        for task in tasks {
            tallies.push(task.await.context("an async writer panicked")?);
        }
        anyhow::Ok(tallies)
    })?;
    let elapsed = start.elapsed();
    let mut total = Tally::default();
    for tally in tallies {
        let tally = tally?;
        total.events += tally.events;
        total.latencies_ns.extend(tally.latencies_ns);
    }
    let synced = weir.fsyncs()?.saturating_sub(before);
    Ok((total, elapsed, synced))
}

pub(super) fn append_phase_name(system: &dyn System, writers: usize, per_append: usize) -> String {
    let what = if per_append == 1 {
        "1 event".to_owned()
    } else {
        format!("{per_append} events")
    };
    let who = if writers == 1 {
        "1 writer".to_owned()
    } else {
        format!("{writers} writers")
    };
    format!("{} append {what}, {who}", system.name())
}

/// Untimed: `stream` gets `n` events, then the system is topped up with
/// other streams to `total` events.
pub(super) fn prepare_reads(
    system: &dyn System,
    stream: &str,
    n: u64,
    total: u64,
) -> anyhow::Result<()> {
    let mut session = system.session()?;
    let mut events = EventGen::new(stream, 7);
    let mut version = None;
    let mut left = n;
    while left > 0 {
        let k = left.min(SETUP_APPEND_EVENTS as u64) as usize;
        version = Some(session.append(stream, version, &events.next(k))?);
        left -= k as u64;
    }
    let mut have = system.events()?;
    let mut filler = 0;
    while have < total {
        let k = (total - have).min(SETUP_APPEND_EVENTS as u64) as usize;
        let stream = format!("fill-{filler}");
        let mut events = EventGen::new(&stream, 11);
        session.append(&stream, None, &events.next(k))?;
        have += k as u64;
        filler += 1;
    }
    let have = system.events()?;
    anyhow::ensure!(
        have == total,
        "{} holds {have} events, not {total}",
        system.name()
    );
    Ok(())
}

/// Reads the whole of `stream` (`n` events) again and again for the
/// slice's time (at least once).
pub(super) fn read_stream_slice(
    system: &dyn System,
    slice: &Plan,
    stream: &str,
    n: u64,
) -> anyhow::Result<Slice> {
    timed(
        1,
        &|| Ok(0),
        |_| system.session(),
        |_, mut session| {
            let mut tally = Tally::default();
            let deadline = Instant::now() + slice.phase;
            while tally.latencies_ns.is_empty() || Instant::now() < deadline {
                let t = Instant::now();
                let got = session.read_stream(stream, n as usize)?;
                tally.latencies_ns.push(t.elapsed().as_nanos() as u64);
                anyhow::ensure!(got as u64 == n, "read {got} events of {stream}, not {n}");
                tally.events += got as u64;
            }
            Ok(tally)
        },
    )
}

/// Reads all `total` events from position 0 in pages of [`READ_PAGE`],
/// pass after pass for the slice's time (at least one whole pass; the last
/// may stop part-way).
pub(super) fn read_all_slice(
    system: &dyn System,
    slice: &Plan,
    total: u64,
) -> anyhow::Result<Slice> {
    timed(
        1,
        &|| Ok(0),
        |_| system.session(),
        |_, mut session| {
            let mut tally = Tally::default();
            let deadline = Instant::now() + slice.phase;
            let mut passes = 0u64;
            while passes == 0 || Instant::now() < deadline {
                let (mut from, mut pass_events) = (0, 0u64);
                loop {
                    if passes > 0 && Instant::now() >= deadline {
                        break;
                    }
                    let t = Instant::now();
                    let (got, next) = session.read_all(from, READ_PAGE)?;
                    if got == 0 {
                        anyhow::ensure!(
                            pass_events == total,
                            "read {pass_events} events from position 0, not {total}"
                        );
                        passes += 1;
                        break;
                    }
                    tally.latencies_ns.push(t.elapsed().as_nanos() as u64);
                    tally.events += got as u64;
                    pass_events += got as u64;
                    from = next;
                }
            }
            Ok(tally)
        },
    )
}
