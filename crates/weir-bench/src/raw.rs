//! The raw durable-write baseline: the same bytes in the same chunks written
//! with `pwrite` and made durable with `fdatasync`, as many syncs as Weir
//! made, into files that grow with each write, were preallocated first, or
//! are preallocated with zeros written ahead of small writes (the pattern
//! weir-log itself uses), so the best of them stands for what the disk can
//! do.

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
    /// any clock starts; writes then overwrite reserved space.
    Prealloc,
    /// As `Prealloc`, and a write of at most a quarter of
    /// [`ZERO_AHEAD_BYTES`] also writes that many zeros ahead of itself when
    /// fewer than half are left, so later writes overwrite blocks that are
    /// already written (no extent conversion at their `fdatasync`).
    ZeroAhead,
}

/// The zero-ahead step, the same as weir-log's default.
pub const ZERO_AHEAD_BYTES: u64 = 1024 * 1024;

/// Every layout, in the order rows are printed.
pub const LAYOUTS: [Layout; 3] = [Layout::Grow, Layout::Prealloc, Layout::ZeroAhead];

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Self::Grow => "raw-grow",
            Self::Prealloc => "raw-prealloc",
            Self::ZeroAhead => "raw-zeroahead",
        }
    }
}

/// What one timed slice of writes did.
#[derive(Debug)]
pub struct Outcome {
    pub bytes: u64,
    pub fsyncs: u64,
    pub elapsed: Duration,
    /// One per chunk: the write plus, when due, the `fdatasync` after it.
    pub latencies_ns: Vec<u64>,
}

/// Whether a sync follows chunk `i` of `n_chunks`: `fsyncs` syncs spread
/// evenly, the last one after the last chunk.
fn sync_due(i: u64, fsyncs: u64, n_chunks: u64) -> bool {
    let (i, s, n) = (u128::from(i), u128::from(fsyncs), u128::from(n_chunks));
    (i + 1) * s / n > i * s / n
}

/// The baseline's files. Chunk `i` (counted over the whole phase) is
/// `pool[i % pool.len()]` and goes to file `i % n_files`, written from one
/// thread at that file's end.
#[derive(Debug)]
pub struct RawFiles {
    layout: Layout,
    paths: Vec<PathBuf>,
    files: Vec<File>,
    pos: Vec<u64>,
    unsynced: Vec<u64>,
    /// Per file: bytes before this are data or zeros (`ZeroAhead`).
    zeroed: Vec<u64>,
    zeros: Vec<u8>,
}

impl RawFiles {
    /// Creates the files for `n_chunks` chunks of `chunk_bytes` over
    /// `n_files` files (preallocated if the layout says so), all durable
    /// before any write is timed.
    pub fn create(
        dir: &Path,
        layout: Layout,
        n_files: usize,
        n_chunks: u64,
        chunk_bytes: u64,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(n_files > 0, "a raw baseline needs a file");
        let mut raw = Self {
            layout,
            paths: Vec::with_capacity(n_files),
            files: Vec::with_capacity(n_files),
            pos: vec![0; n_files],
            unsynced: vec![0; n_files],
            zeroed: vec![0; n_files],
            zeros: if layout == Layout::ZeroAhead {
                vec![0; ZERO_AHEAD_BYTES as usize]
            } else {
                Vec::new()
            },
        };
        for f in 0..n_files {
            let path = dir.join(format!("{}-{f}", layout.name()));
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .with_context(|| format!("create {}", path.display()))?;
            if layout != Layout::Grow {
                let chunks =
                    n_chunks / n_files as u64 + u64::from((f as u64) < n_chunks % n_files as u64);
                sys::fallocate(&file, chunks * chunk_bytes)
                    .with_context(|| format!("fallocate {}", path.display()))?;
            }
            file.sync_all()
                .with_context(|| format!("fsync {}", path.display()))?;
            raw.paths.push(path);
            raw.files.push(file);
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("fsync directory {}", dir.display()))?;
        Ok(raw)
    }

    /// Writes chunks `first..first + n` and makes `fsyncs` `fdatasync` calls
    /// (at most one per chunk) spread evenly over them. With fewer syncs
    /// than chunks, each sync goes to the file with the most unsynced bytes,
    /// so every file gets its share.
    pub fn write(
        &mut self,
        pool: &[Vec<u8>],
        first: u64,
        n: u64,
        fsyncs: u64,
    ) -> anyhow::Result<Outcome> {
        anyhow::ensure!(!pool.is_empty() && n > 0, "nothing to write");
        let n_files = self.files.len() as u64;
        let fsyncs = fsyncs.min(n);
        let mut latencies_ns = Vec::with_capacity(n as usize);
        let (mut bytes, mut synced) = (0u64, 0u64);
        let start = Instant::now();
        for j in 0..n {
            let t = Instant::now();
            let i = first + j;
            let f = (i % n_files) as usize;
            let buf = &pool[(i % pool.len() as u64) as usize];
            self.files[f]
                .write_all_at(buf, self.pos[f])
                .with_context(|| format!("write {}", self.paths[f].display()))?;
            self.pos[f] += buf.len() as u64;
            if self.layout == Layout::ZeroAhead {
                self.zero_ahead(f, buf.len() as u64)?;
            }
            self.unsynced[f] += buf.len() as u64;
            bytes += buf.len() as u64;
            if sync_due(j, fsyncs, n) {
                let (target, _) = self
                    .unsynced
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, b)| **b)
                    .expect("at least one file");
                self.files[target]
                    .sync_data()
                    .with_context(|| format!("fdatasync {}", self.paths[target].display()))?;
                self.unsynced[target] = 0;
                synced += 1;
            }
            latencies_ns.push(t.elapsed().as_nanos() as u64);
        }
        Ok(Outcome {
            bytes,
            fsyncs: synced,
            elapsed: start.elapsed(),
            latencies_ns,
        })
    }

    fn zero_ahead(&mut self, f: usize, write_bytes: u64) -> anyhow::Result<()> {
        let end = self.pos[f];
        if write_bytes * 4 > ZERO_AHEAD_BYTES || self.zeroed[f] >= end + ZERO_AHEAD_BYTES / 2 {
            return Ok(());
        }
        let from = self.zeroed[f].max(end);
        self.files[f]
            .write_all_at(&self.zeros, from)
            .with_context(|| format!("write zeros {}", self.paths[f].display()))?;
        self.zeroed[f] = from + ZERO_AHEAD_BYTES;
        Ok(())
    }

    /// Closes and deletes the files.
    pub fn remove(self) -> anyhow::Result<()> {
        drop(self.files);
        for path in &self.paths {
            std::fs::remove_file(path).with_context(|| format!("remove {}", path.display()))?;
        }
        Ok(())
    }
}
