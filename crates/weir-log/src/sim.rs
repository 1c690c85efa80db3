//! An in-memory [`Storage`] that remembers what was synced and, on
//! [`SimStorage::crash`], forgets the rest: file data not `fdatasync`ed and
//! directory entries created, renamed or removed without an `fsync` of their
//! directory. The last surviving write may be torn at a random byte. The
//! choices come from a seed, so a failing crash test replays exactly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{DirLock, Storage, StorageFile};

/// A deterministic pseudo-random generator (splitmix64): enough for crash
/// choices and test workloads, and it needs no dependency.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone)]
enum FileOp {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct FileData {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    /// Operations since the last sync, oldest first.
    pending: Vec<FileOp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Debug, Clone)]
enum DirOp {
    Insert(PathBuf, Entry),
    Remove(PathBuf),
    /// A rename within one directory: atomic, as POSIX has it (a crash
    /// leaves the old name or the new one, and a replaced target is never
    /// missing).
    Rename(PathBuf, PathBuf, Entry),
}

/// Applies one directory operation to a namespace.
fn apply_dir_op(namespace: &mut BTreeMap<PathBuf, Entry>, op: &DirOp) {
    match op {
        DirOp::Insert(path, entry) => {
            namespace.insert(path.clone(), *entry);
        }
        DirOp::Remove(path) => {
            namespace.remove(path);
        }
        DirOp::Rename(from, to, entry) => {
            namespace.remove(from);
            namespace.insert(to.clone(), *entry);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<u64, FileData>,
    volatile: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
    /// Directory operations not yet made durable, keyed by parent directory.
    pending_dir: Vec<(PathBuf, DirOp)>,
    locks: HashSet<PathBuf>,
    next_id: u64,
    poisoned: bool,
    sync_failures_armed: u32,
    write_failures_armed: u32,
    /// Syncs left before the disk dies (the machine stops) at the next.
    syncs_until_death: Option<u64>,
    /// How long each file sync takes, as a real disk's would.
    sync_delay: std::time::Duration,
    n_syncs: u64,
    n_writes: u64,
    n_bytes_read: u64,
    /// No space left: writes that would grow a file, and new files, fail.
    full: bool,
}

/// Shared handle to one simulated disk. Clones see the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    id: u64,
}

#[derive(Debug)]
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        lock_state(&self.state).locks.remove(&self.path);
    }
}

fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn crashed() -> io::Error {
    io::Error::other("simulated disk crashed: this handle is gone")
}

/// Counts one sync towards [`SimStorage::die_after_syncs`]; fails it, and
/// kills the disk, when none are left.
fn count_down_to_death(s: &mut State) -> io::Result<()> {
    match &mut s.syncs_until_death {
        Some(0) => {
            s.poisoned = true;
            Err(crashed())
        }
        Some(n) => {
            *n -= 1;
            Ok(())
        }
        None => Ok(()),
    }
}

fn no_space() -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, "simulated disk full (ENOSPC)")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn apply(data: &mut Vec<u8>, op: &FileOp, torn_len: Option<usize>) {
    match op {
        FileOp::Write { pos, data: bytes } => {
            let bytes = &bytes[..torn_len.unwrap_or(bytes.len()).min(bytes.len())];
            let end = *pos as usize + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*pos as usize..end].copy_from_slice(bytes);
        }
        FileOp::SetLen(len) => data.resize(*len as usize, 0),
    }
}

impl SimStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = lock_state(&self.state);
        if state.poisoned {
            return Err(crashed());
        }
        Ok(state)
    }

    /// Makes every file sync take `delay` (the simulated disk is otherwise
    /// instant, so concurrent appenders would rarely meet in a sync round).
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        lock_state(&self.state).sync_delay = delay;
    }

    /// Makes the next `n` file syncs fail, as a dying disk would.
    pub fn fail_next_syncs(&self, n: u32) {
        lock_state(&self.state).sync_failures_armed = n;
    }

    /// Makes the next `n` file writes fail with an I/O error (EIO), as a
    /// dying disk would.
    pub fn fail_next_writes(&self, n: u32) {
        lock_state(&self.state).write_failures_armed = n;
    }

    /// Fills the disk (or frees it): while full, anything that needs new
    /// space fails with `StorageFull` (ENOSPC); overwriting space a file
    /// already has still works, as it does on a real file system.
    pub fn set_full(&self, full: bool) {
        lock_state(&self.state).full = full;
    }

    /// Lets the next `n` file syncs succeed and makes the machine stop at
    /// the one after: it and every later operation fail, as after
    /// [`SimStorage::kill`]. A crash test then calls [`SimStorage::crash`]
    /// to power the machine back on: a power loss at an exact sync.
    pub fn die_after_syncs(&self, n: u64) {
        lock_state(&self.state).syncs_until_death = Some(n);
    }

    /// Whether the disk died (see [`SimStorage::die_after_syncs`]) or was
    /// killed or crashed.
    pub fn is_dead(&self) -> bool {
        lock_state(&self.state).poisoned
    }

    /// How many bytes were read from files so far.
    pub fn n_bytes_read(&self) -> u64 {
        lock_state(&self.state).n_bytes_read
    }

    /// How many file writes succeeded so far.
    pub fn n_writes(&self) -> u64 {
        lock_state(&self.state).n_writes
    }

    /// How many `sync_data` calls succeeded so far.
    pub fn n_syncs(&self) -> u64 {
        lock_state(&self.state).n_syncs
    }

    /// Simulates the process dying (`kill -9`) while the machine stays up:
    /// every handle of this disk fails from now on, and the returned disk
    /// still holds everything written, synced or not (the page cache
    /// survives), with the same split between durable and volatile state, so
    /// a later [`SimStorage::crash`] can still lose what nobody synced.
    pub fn kill(&self) -> SimStorage {
        let mut old = lock_state(&self.state);
        old.poisoned = true;
        let state = State {
            files: old.files.clone(),
            volatile: old.volatile.clone(),
            durable: old.durable.clone(),
            pending_dir: old.pending_dir.clone(),
            next_id: old.next_id,
            ..State::default()
        };
        SimStorage {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Simulates a power loss. Every handle of this disk fails from now on;
    /// the returned disk holds what was durable plus, chosen by `seed`, a
    /// prefix of the unsynced operations of each file (the last of them
    /// possibly torn) and a prefix of the unsynced directory operations.
    pub fn crash(&self, seed: u64) -> SimStorage {
        let mut rng = SimRng::new(seed);
        let mut old = lock_state(&self.state);
        old.poisoned = true;

        let mut namespace = old.durable.clone();
        let n_dir_ops = rng.below(old.pending_dir.len() as u64 + 1) as usize;
        for (_, op) in &old.pending_dir[..n_dir_ops] {
            apply_dir_op(&mut namespace, op);
        }
        // An entry whose parent directory did not survive is gone too.
        let survivors: BTreeMap<PathBuf, Entry> = namespace
            .iter()
            .filter(|(path, _)| {
                path.ancestors().skip(1).all(|a| {
                    a.as_os_str().is_empty()
                        || a == Path::new("/")
                        || namespace.get(a) == Some(&Entry::Dir)
                })
            })
            .map(|(p, e)| (p.clone(), *e))
            .collect();

        let mut files = HashMap::new();
        let mut ids: Vec<u64> = old.files.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let data = &old.files[&id];
            let mut content = data.durable.clone();
            let n_ops = rng.below(data.pending.len() as u64 + 1) as usize;
            for (i, op) in data.pending[..n_ops].iter().enumerate() {
                let torn = match op {
                    FileOp::Write { data, .. } if i + 1 == n_ops && rng.chance(50) => {
                        Some(rng.below(data.len() as u64 + 1) as usize)
                    }
                    _ => None,
                };
                apply(&mut content, op, torn);
            }
            files.insert(
                id,
                FileData {
                    volatile: content.clone(),
                    durable: content,
                    pending: Vec::new(),
                },
            );
        }
        let state = State {
            files,
            volatile: survivors.clone(),
            durable: survivors,
            next_id: old.next_id,
            ..State::default()
        };
        SimStorage {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn insert_entry(state: &mut State, path: &Path, entry: Entry) {
        state.volatile.insert(path.to_path_buf(), entry);
        state
            .pending_dir
            .push((parent_of(path), DirOp::Insert(path.to_path_buf(), entry)));
    }

    fn remove_entry(state: &mut State, path: &Path) {
        state.volatile.remove(path);
        state
            .pending_dir
            .push((parent_of(path), DirOp::Remove(path.to_path_buf())));
    }
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<T>) -> io::Result<T> {
        let mut state = lock_state(&self.state);
        if state.poisoned {
            return Err(crashed());
        }
        f(&mut state, self.id)
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.with(|s, id| {
            let data = &s.files[&id].volatile;
            let start = (pos as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            s.n_bytes_read += n as u64;
            Ok(n)
        })
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.with(|s, id| {
            if s.write_failures_armed > 0 {
                s.write_failures_armed -= 1;
                return Err(io::Error::other("simulated write failure (EIO)"));
            }
            let full = s.full;
            let file = s.files.get_mut(&id).expect("open file exists");
            if full && pos + buf.len() as u64 > file.volatile.len() as u64 {
                return Err(no_space());
            }
            s.n_writes += 1;
            let op = FileOp::Write {
                pos,
                data: buf.to_vec(),
            };
            apply(&mut file.volatile, &op, None);
            file.pending.push(op);
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        let delay = lock_state(&self.state).sync_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        self.with(|s, id| {
            if s.sync_failures_armed > 0 {
                s.sync_failures_armed -= 1;
                return Err(io::Error::other("simulated fsync failure (EIO)"));
            }
            count_down_to_death(s)?;
            s.n_syncs += 1;
            let file = s.files.get_mut(&id).expect("open file exists");
            for op in std::mem::take(&mut file.pending) {
                apply(&mut file.durable, &op, None);
            }
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|s, id| Ok(s.files[&id].volatile.len() as u64))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|s, id| {
            let file = s.files.get_mut(&id).expect("open file exists");
            let op = FileOp::SetLen(len);
            apply(&mut file.volatile, &op, None);
            file.pending.push(op);
            Ok(())
        })
    }

    fn preallocate(&self, _from: u64, len: u64) -> io::Result<()> {
        let current = self.len()?;
        if current < len && lock_state(&self.state).full {
            return Err(no_space());
        }
        if current < len {
            self.set_len(len)
        } else {
            Ok(())
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state()?;
        let mut missing: Vec<&Path> = path
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty() && *a != Path::new("/"))
            .take_while(|a| !state.volatile.contains_key(*a))
            .collect();
        missing.reverse();
        for dir in missing {
            Self::insert_entry(&mut state, dir, Entry::Dir);
        }
        Ok(())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state()?;
        let id = match state.volatile.get(path) {
            Some(Entry::File(id)) => *id,
            Some(Entry::Dir) => return Err(io::Error::other("is a directory")),
            None if !create => return Err(not_found(path)),
            None => {
                if state.full {
                    return Err(no_space());
                }
                if state.volatile.get(&parent_of(path)) != Some(&Entry::Dir) {
                    return Err(not_found(&parent_of(path)));
                }
                let id = state.next_id;
                state.next_id += 1;
                state.files.insert(id, FileData::default());
                Self::insert_entry(&mut state, path, Entry::File(id));
                id
            }
        };
        Ok(Arc::new(SimFile {
            state: self.state.clone(),
            id,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state()?;
        match state.volatile.get(path) {
            Some(Entry::File(_)) => {
                Self::remove_entry(&mut state, path);
                Ok(())
            }
            _ => Err(not_found(path)),
        }
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state()?;
        let doomed: Vec<PathBuf> = state
            .volatile
            .keys()
            .filter(|p| p.starts_with(path))
            .cloned()
            .collect();
        if doomed.is_empty() {
            return Err(not_found(path));
        }
        for p in doomed.iter().rev() {
            Self::remove_entry(&mut state, p);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state()?;
        let entry = *state.volatile.get(from).ok_or_else(|| not_found(from))?;
        if parent_of(from) == parent_of(to) {
            state.volatile.remove(from);
            state.volatile.insert(to.to_path_buf(), entry);
            let op = DirOp::Rename(from.to_path_buf(), to.to_path_buf(), entry);
            state.pending_dir.push((parent_of(to), op));
        } else {
            Self::remove_entry(&mut state, from);
            Self::insert_entry(&mut state, to, entry);
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.state()?;
        if state.volatile.get(path) != Some(&Entry::Dir) {
            return Err(not_found(path));
        }
        Ok(state
            .volatile
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.state()
            .map(|s| s.volatile.get(path) == Some(&Entry::Dir))
            .unwrap_or(false)
    }

    fn exists(&self, path: &Path) -> bool {
        self.state()
            .map(|s| s.volatile.contains_key(path))
            .unwrap_or(false)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state()?;
        if state.sync_failures_armed > 0 {
            state.sync_failures_armed -= 1;
            return Err(io::Error::other("simulated directory fsync failure (EIO)"));
        }
        count_down_to_death(&mut state)?;
        let pending = std::mem::take(&mut state.pending_dir);
        for (parent, op) in pending {
            if parent != path {
                state.pending_dir.push((parent, op));
                continue;
            }
            apply_dir_op(&mut state.durable, &op);
        }
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let mut state = self.state()?;
        if !state.locks.insert(path.to_path_buf()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(SimLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
        }))
    }
}
