//! Linux specifics the benchmarks need: peak-RSS reset and readout through
//! `/proc/self`, per-thread and whole-process CPU time, the file system a path lives on,
//! `fallocate` and the effective user id.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Resets the process's peak resident set size (`VmHWM`) to its current
/// size, so a later [`status_kib`]`("VmHWM")` covers only what follows.
pub fn reset_peak_rss() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
        .context("write 5 to /proc/self/clear_refs (resets VmHWM)")
}

/// A `kB` field of `/proc/self/status`, such as `VmHWM` or `VmRSS`.
pub fn status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse().ok()
        })
        .with_context(|| format!("no {field} in /proc/self/status"))
}

/// The mount a path lives on, from `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
pub struct Mount {
    pub point: PathBuf,
    pub fs_type: String,
    pub source: String,
}

/// "DEVICE (FSTYPE, mounted at POINT)" for the mount holding `path`, for
/// the header line of a benchmark.
pub fn describe_mount(path: &Path) -> String {
    mount_of(path).map_or_else(
        || "an unknown file system".to_owned(),
        |m| {
            format!(
                "{} ({}, mounted at {})",
                m.source,
                m.fs_type,
                m.point.display()
            )
        },
    )
}

/// The mount holding `path` (the longest mount point that contains it), or
/// `None` when mountinfo cannot be read.
pub fn mount_of(path: &Path) -> Option<Mount> {
    let path = path.canonicalize().ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|line| {
            // id parent major:minor root mount-point options [optional...] - type source super-options
            let (left, right) = line.split_once(" - ")?;
            let point = PathBuf::from(left.split(' ').nth(4)?.replace("\\040", " "));
            let mut right = right.split(' ');
            let fs_type = right.next()?.to_owned();
            let source = right.next()?.to_owned();
            Some(Mount {
                point,
                fs_type,
                source,
            })
        })
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.components().count())
}

/// Reserves `len` bytes of disk for `file` from offset 0 (mode 0: the size
/// grows to `len`, the space reads as zeros), as weir-log preallocates.
#[allow(
    unsafe_code,
    reason = "fallocate has no std wrapper; see the SAFETY note"
)]
pub fn fallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let len = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `file` owns an open descriptor for the whole call, and
    // fallocate takes no pointers.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// CPU time (nanoseconds on CPU, from `schedstat`) of each live thread of
/// the process, by thread id, with the thread's name. Threads that end
/// between two readings are missing from the later one.
pub fn thread_cpu_ns() -> anyhow::Result<HashMap<u32, (String, u64)>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").context("list /proc/self/task")? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the reads.
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(entry.path().join("comm")),
            std::fs::read_to_string(entry.path().join("schedstat")),
        ) else {
            continue;
        };
        let ns = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("parse /proc/self/task/{tid}/schedstat: {stat:?}"))?;
        out.insert(tid, (comm.trim_end().to_owned(), ns));
    }
    Ok(out)
}

/// CPU time (user + system) of the whole process so far, threads that
/// ended included, from `/proc/self/stat` (in clock ticks of 10 ms:
/// USER_HZ is 100 on Linux).
pub fn process_cpu() -> anyhow::Result<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("read /proc/self/stat")?;
    // Fields after the command name (which may hold spaces), from the
    // state (field 3): utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> anyhow::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("parse /proc/self/stat: {stat:?}"))
    };
    let ticks = next()? + next()?;
    Ok(std::time::Duration::from_millis(ticks * 10))
}

/// The process's effective user id (0 when it runs as root).
#[allow(
    unsafe_code,
    reason = "geteuid has no std wrapper; see the SAFETY note"
)]
pub fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and
    // cannot fail.
    unsafe { libc::geteuid() }
}

/// A scratch directory named `prefix…` in `dir` (created if missing),
/// deleted when the returned guard drops, and its canonical path.
pub fn scratch_dir(dir: &Path, prefix: &str) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(dir)
        .with_context(|| format!("create a scratch directory in {}", dir.display()))?;
    let root = scratch.path().canonicalize()?;
    Ok((scratch, root))
}
