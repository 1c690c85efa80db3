//! The disk's own limits for `weir-bench store`: `pwrite` plus
//! `fdatasync` per writer, one group-commit writer, and the closed-loop
//! ceiling of blocking writers sharing syncs.

use super::*;

/// The physical limit: `threads` threads, each with its own file, write
/// `records_per_sync` records of `record_bytes` and `fdatasync`, for the
/// slice's time or until `events_max` records in all.
pub(super) fn raw_slice(
    dir: &Path,
    slice: &Plan,
    threads: usize,
    records_per_sync: usize,
    record_bytes: usize,
) -> anyhow::Result<Slice> {
    use std::os::unix::fs::FileExt as _;
    let write_bytes = records_per_sync * record_bytes;
    anyhow::ensure!(
        (write_bytes as u64) < RAW_FILE_BYTES,
        "raw writes of {write_bytes} bytes do not fit a {RAW_FILE_BYTES}-byte file"
    );
    let syncs_max = (slice.events_max / (threads * records_per_sync) as u64).max(1);
    let (tally, elapsed, _) = timed(
        threads,
        &|| Ok(0),
        |t| {
            let path = dir.join(format!("raw-{threads}x{records_per_sync}-{t}"));
            let file = zeroed_raw_file(&path)?;
            let mut rng = Rng(0x5eed + t as u64);
            let mut buf = vec![0u8; write_bytes];
            rng.fill(&mut buf);
            Ok((file, buf, path))
        },
        |_, (file, buf, path)| {
            let mut latencies_ns = Vec::with_capacity(syncs_max.min(1 << 20) as usize);
            let deadline = Instant::now() + slice.phase;
            let mut at = 0u64;
            while (latencies_ns.len() as u64) < syncs_max && Instant::now() < deadline {
                if at + buf.len() as u64 > RAW_FILE_BYTES {
                    at = 0;
                }
                let t = Instant::now();
                file.write_all_at(&buf, at)
                    .with_context(|| format!("write {}", path.display()))?;
                file.sync_data()
                    .with_context(|| format!("fdatasync {}", path.display()))?;
                latencies_ns.push(t.elapsed().as_nanos() as u64);
                at += buf.len() as u64;
            }
            drop(file);
            std::fs::remove_file(&path)?;
            Ok(Tally {
                events: latencies_ns.len() as u64 * records_per_sync as u64,
                latencies_ns,
            })
        },
    )?;
    let fsyncs = tally.latencies_ns.len() as u64;
    Ok((tally, elapsed, fsyncs))
}

/// Creates a raw baseline file of [`RAW_FILE_BYTES`], written with zeros
/// and synced (with its directory) before any clock starts: timed writes
/// then overwrite allocated, written blocks, so each `fdatasync` flushes
/// data only (the cheapest durable write this disk has).
pub(super) fn zeroed_raw_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    let zeros = vec![0u8; 1024 * 1024];
    for at in (0..RAW_FILE_BYTES).step_by(zeros.len()) {
        file.write_all_at(&zeros, at)?;
    }
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(file)
}

/// The shared state of [`raw_closed_loop_slice`]'s writers.
#[derive(Debug, Default)]
pub(super) struct LoopState {
    /// Events written to `pending` and not yet taken by a sync.
    pub(super) pending: Vec<u8>,
    pub(super) pending_events: usize,
    /// Where the next round writes in the file (wrapping at
    /// [`RAW_FILE_BYTES`]).
    pub(super) at: u64,
    /// Events written in all, and how many of them the last sync covered.
    pub(super) written: u64,
    pub(super) durable: u64,
    /// A writer leads a round (gathering, writing, syncing) for the others.
    pub(super) leading: bool,
    pub(super) fsyncs: u64,
    pub(super) failed: bool,
}

/// The closed-loop ceiling: `threads` threads each add one event's
/// `record_bytes` to a shared buffer and wait until an `fdatasync` covers
/// it, then add the next. The first waiter to find no round running leads
/// one: it waits (at most [`weir_log::GATHER_WAIT_MAX`]) until every
/// thread has added its event, writes the buffer at the end of one file
/// with one `pwrite` and syncs it. It knows how many writers there are and
/// does nothing else (no index, no encoding, no checks): the fastest such
/// loop we have measured on these machines (a leader that syncs without
/// gathering, or a `pwrite` per writer, reached less). The concurrent
/// rows' writers run this same loop, so no store reaches much more with
/// `threads` blocking writers on this machine; unlike the raw group-commit
/// row, its writers must wake and write between syncs.
pub(super) fn raw_closed_loop_slice(
    dir: &Path,
    slice: &Plan,
    threads: usize,
    record_bytes: usize,
) -> anyhow::Result<Slice> {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join(format!("raw-loop-{threads}"));
    let file = zeroed_raw_file(&path)?;
    let state = Mutex::new(LoopState::default());
    let (synced, gathered) = (std::sync::Condvar::new(), std::sync::Condvar::new());
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let writes_max = (slice.events_max / threads as u64).max(1);
    let result = timed(
        threads,
        &|| Ok(lock().fsyncs),
        |t| {
            let mut buf = vec![0u8; record_bytes];
            Rng(0x100b + t as u64).fill(&mut buf);
            Ok(buf)
        },
        |_, buf| {
            let mut latencies_ns = Vec::with_capacity(writes_max.min(1 << 20) as usize);
            let deadline = Instant::now() + slice.phase;
            while (latencies_ns.len() as u64) < writes_max && Instant::now() < deadline {
                let t = Instant::now();
                let mut st = lock();
                st.pending.extend_from_slice(&buf);
                st.pending_events += 1;
                st.written += 1;
                let mine = st.written;
                if st.pending_events >= threads {
                    gathered.notify_one();
                }
                while st.durable < mine {
                    anyhow::ensure!(!st.failed, "another writer's write or fdatasync failed");
                    if st.leading {
                        st = synced.wait(st).unwrap_or_else(|e| e.into_inner());
                        continue;
                    }
                    st.leading = true;
                    let gather_until = Instant::now() + weir_log::GATHER_WAIT_MAX;
                    while st.pending_events < threads {
                        let Some(left) = gather_until.checked_duration_since(Instant::now()) else {
                            break;
                        };
                        st = gathered
                            .wait_timeout(st, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    let bytes = std::mem::take(&mut st.pending);
                    st.pending_events = 0;
                    let upto = st.written;
                    if st.at + bytes.len() as u64 > RAW_FILE_BYTES {
                        st.at = 0;
                    }
                    let offset = st.at;
                    st.at += bytes.len() as u64;
                    drop(st);
                    let outcome = file
                        .write_all_at(&bytes, offset)
                        .and_then(|()| file.sync_data());
                    st = lock();
                    st.leading = false;
                    st.fsyncs += 1;
                    match outcome {
                        Ok(()) => st.durable = upto,
                        Err(_) => st.failed = true,
                    }
                    synced.notify_all();
                    outcome.with_context(|| format!("write and fdatasync {}", path.display()))?;
                }
                drop(st);
                latencies_ns.push(t.elapsed().as_nanos() as u64);
            }
            Ok(Tally {
                events: latencies_ns.len() as u64,
                latencies_ns,
            })
        },
    );
    drop(file);
    std::fs::remove_file(&path)?;
    result
}

pub(super) fn raw_phase_name(threads: usize, records_per_sync: usize) -> String {
    match (threads, records_per_sync) {
        (1, 1) => "raw write+fdatasync, 1 thread".to_owned(),
        (t, 1) => format!("raw write+fdatasync, {t} threads, a file each"),
        (_, r) => format!("raw group commit: {r} events per fdatasync, 1 file"),
    }
}

pub(super) fn raw_loop_phase_name(threads: usize) -> String {
    format!("raw closed loop: {threads} threads, 1 file, a pwrite per round")
}
