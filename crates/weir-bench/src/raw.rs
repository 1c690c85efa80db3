//! The raw durable-write baseline: the same bytes in the same chunks written
//! with `pwrite` and made durable with `fdatasync`, as many syncs as Weir
//! made, into files that grow with each write or were preallocated first.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::sys;

/// How the baseline's files get their space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Each write extends the file (block allocation and a size change per
    /// write, as an append-only file without preallocation).
    Grow,
    /// Each file is `fallocate`d to its final size (and that synced) before
    /// the clock starts; writes then overwrite reserved space.
    Prealloc,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Self::Grow => "raw-grow",
            Self::Prealloc => "raw-prealloc",
        }
    }
}

/// What to write.
#[derive(Debug)]
pub struct Spec<'a> {
    /// Chunk `i` is `pool[i % pool.len()]`; the same buffers Weir appended.
    pub pool: &'a [Vec<u8>],
    pub n_chunks: u64,
    /// Chunk `i` goes to file `i % n_files` (round robin, one thread).
    pub n_files: usize,
    /// `fdatasync` calls to make, spread evenly over the chunks; at most one
    /// per chunk.
    pub fsyncs: u64,
    pub layout: Layout,
}

/// What one baseline run did.
#[derive(Debug)]
pub struct Outcome {
    pub bytes: u64,
    pub fsyncs: u64,
    pub elapsed: Duration,
    /// One per chunk: the write plus, when due, the `fdatasync` after it.
    pub latencies_ns: Vec<u64>,
}

/// Whether a sync follows chunk `i`: `fsyncs` syncs spread evenly over
/// `n_chunks` chunks, the last one after the last chunk.
fn sync_due(i: u64, fsyncs: u64, n_chunks: u64) -> bool {
    let (i, s, n) = (u128::from(i), u128::from(fsyncs), u128::from(n_chunks));
    (i + 1) * s / n > i * s / n
}

/// Runs the baseline in `dir` (files named after `tag`, removed afterwards).
pub fn run(dir: &Path, tag: &str, spec: &Spec<'_>) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        !spec.pool.is_empty() && spec.n_files > 0 && spec.n_chunks > 0,
        "empty raw baseline"
    );
    let n_files = spec.n_files;
    let chunk = |i: u64| &spec.pool[(i % spec.pool.len() as u64) as usize];
    let mut file_bytes = vec![0u64; n_files];
    for i in 0..spec.n_chunks {
        file_bytes[(i % n_files as u64) as usize] += chunk(i).len() as u64;
    }
    let paths: Vec<PathBuf> = (0..n_files)
        .map(|f| dir.join(format!("{tag}-{f}.raw")))
        .collect();
    let mut files = Vec::with_capacity(n_files);
    for (path, bytes) in paths.iter().zip(&file_bytes) {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("create {}", path.display()))?;
        if spec.layout == Layout::Prealloc {
            sys::fallocate(&file, *bytes)
                .with_context(|| format!("fallocate {}", path.display()))?;
        }
        file.sync_all()
            .with_context(|| format!("fsync {}", path.display()))?;
        files.push(file);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync directory {}", dir.display()))?;

    let fsyncs = spec.fsyncs.min(spec.n_chunks);
    let mut pos = vec![0u64; n_files];
    let mut unsynced = vec![0u64; n_files];
    let mut latencies_ns = Vec::with_capacity(spec.n_chunks as usize);
    let (mut bytes, mut synced) = (0u64, 0u64);
    let start = Instant::now();
    for i in 0..spec.n_chunks {
        let t = Instant::now();
        let f = (i % n_files as u64) as usize;
        let buf = chunk(i);
        files[f]
            .write_all_at(buf, pos[f])
            .with_context(|| format!("write {}", paths[f].display()))?;
        pos[f] += buf.len() as u64;
        unsynced[f] += buf.len() as u64;
        bytes += buf.len() as u64;
        if sync_due(i, fsyncs, spec.n_chunks) {
            // With fewer syncs than chunks, sync the file that has waited
            // longest (most unsynced bytes), so every file gets its share.
            let (target, _) = unsynced
                .iter()
                .enumerate()
                .max_by_key(|(_, b)| **b)
                .expect("at least one file");
            files[target]
                .sync_data()
                .with_context(|| format!("fdatasync {}", paths[target].display()))?;
            unsynced[target] = 0;
            synced += 1;
        }
        latencies_ns.push(t.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed();
    drop(files);
    for path in &paths {
        std::fs::remove_file(path).with_context(|| format!("remove {}", path.display()))?;
    }
    Ok(Outcome {
        bytes,
        fsyncs: synced,
        elapsed,
        latencies_ns,
    })
}
