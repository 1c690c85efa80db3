//! A data directory: the lock against a second process, the logs in it, its
//! one sync scheduler and its sync thread (rounds for async waiters, and
//! the periodic sync of `IntervalMs` logs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::changes::Changes;
use crate::config::{Clock, DirConfig, LogConfig, SystemClock};
use crate::error::{LogError, Result};
use crate::log::{Log, RetentionOutcome};
use crate::storage::{DirLock, OsStorage, Storage};
use crate::sync::{SyncScheduler, SyncStats};

const LOCK_FILE: &str = ".lock";
/// Longest log name: it is a directory name.
pub const LOG_NAME_BYTES_MAX: usize = 249;

/// An open data directory. Dropping it syncs and closes every log.
#[derive(Debug)]
pub struct DataDir {
    shared: Arc<DirShared>,
    sync_thread: Option<JoinHandle<()>>,
    _lock: Box<dyn DirLock>,
}

#[derive(Debug)]
struct DirShared {
    root: PathBuf,
    config: DirConfig,
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    sched: Arc<SyncScheduler>,
    logs: Mutex<HashMap<String, Log>>,
}

/// Checks a log name: it becomes a directory name, so only
/// `[A-Za-z0-9._-]`, not `.` or `..`, and at most 249 bytes.
pub fn validate_log_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(LogError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > LOG_NAME_BYTES_MAX {
        return bad("longer than 249 bytes");
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return bad("may not start with a dot");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

impl DataDir {
    /// Opens `root` on the real file system with the system clock.
    pub fn open(root: impl AsRef<Path>, config: DirConfig) -> Result<Self> {
        Self::open_with(Arc::new(OsStorage), Arc::new(SystemClock), root, config)
    }

    /// Opens `root` on any storage and clock (tests use a simulated disk and
    /// a manual clock).
    pub fn open_with(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        root: impl AsRef<Path>,
        config: DirConfig,
    ) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        if !storage.is_dir(&root) {
            storage
                .create_dir_all(&root)
                .map_err(LogError::io("create", &root))?;
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                storage
                    .sync_dir(parent)
                    .map_err(LogError::sync(parent.to_path_buf()))?;
            }
        }
        let lock_path = root.join(LOCK_FILE);
        let lock = storage.lock(&lock_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                LogError::Locked { path: root.clone() }
            } else {
                LogError::io("lock", &lock_path)(e)
            }
        })?;
        let sched = Arc::new(SyncScheduler::new(clock.clone()));
        let shared = Arc::new(DirShared {
            root,
            config,
            storage,
            clock,
            sched,
            logs: Mutex::default(),
        });
        let sync_thread = {
            let sched = shared.sched.clone();
            let tick = Duration::from_millis(shared.config.flush_tick_ms.max(1));
            std::thread::Builder::new()
                .name("weir-log-sync".into())
                .spawn(move || sched.run_sync_thread(tick))
                .map_err(LogError::io("spawn sync thread for", PathBuf::new()))?
        };
        Ok(Self {
            shared,
            sync_thread: Some(sync_thread),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The clock the directory's logs read (append times, segment age,
    /// retention); owners of internal logs stamp their records with it.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.shared.clock.clone()
    }

    fn logs(&self) -> MutexGuard<'_, HashMap<String, Log>> {
        self.shared.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the log `name`, creating it if it does not exist, recovering it
    /// if it does. A log already open is returned as is, with `config`
    /// applied.
    pub fn open_log(&self, name: &str, config: LogConfig) -> Result<Log> {
        validate_log_name(name)?;
        config.validate()?;
        let mut logs = self.logs();
        if let Some(log) = logs.get(name) {
            log.set_config(config)?;
            return Ok(log.clone());
        }
        if logs.len() >= self.shared.config.logs_max {
            return Err(LogError::InvalidConfig {
                field: "logs_max",
                reason: format!("{} logs are open already", logs.len()),
            });
        }
        let storage = &self.shared.storage;
        let dir = self.shared.root.join(name);
        let created = !storage.is_dir(&dir);
        if created {
            storage
                .create_dir_all(&dir)
                .map_err(LogError::io("create", &dir))?;
        }
        let log = Log::open(
            name,
            dir.clone(),
            config,
            storage.clone(),
            self.shared.clock.clone(),
            self.shared.sched.clone(),
        )?;
        if created {
            // The log's own directory was synced by `Log::open`; its entry in
            // the root must be durable too before any of its records can be.
            let root = &self.shared.root;
            storage
                .sync_dir(root)
                .map_err(LogError::sync(root.clone()))?;
        }
        logs.insert(name.to_owned(), log.clone());
        Ok(log)
    }

    /// The open log `name`, if any.
    pub fn log(&self, name: &str) -> Option<Log> {
        self.logs().get(name).cloned()
    }

    /// Names of the logs stored in the directory, open or not, sorted.
    pub fn list_logs(&self) -> Result<Vec<String>> {
        let root = &self.shared.root;
        let mut names: Vec<String> = self
            .shared
            .storage
            .list_dir(root)
            .map_err(LogError::io("list", root))?
            .into_iter()
            .filter(|n| validate_log_name(n).is_ok() && self.shared.storage.is_dir(&root.join(n)))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Closes and deletes a log and all its data (durably).
    pub fn delete_log(&self, name: &str) -> Result<()> {
        validate_log_name(name)?;
        if let Some(log) = self.logs().remove(name) {
            log.shared.close();
        }
        let dir = self.shared.root.join(name);
        self.shared
            .storage
            .remove_dir_all(&dir)
            .map_err(LogError::io("delete", &dir))?;
        self.shared
            .storage
            .sync_dir(&self.shared.root)
            .map_err(LogError::sync(self.shared.root.clone()))
    }

    /// Runs retention on every open log; returns what each pass removed.
    pub fn enforce_retention(&self) -> Vec<(String, Result<RetentionOutcome>)> {
        let logs: Vec<Log> = self.logs().values().cloned().collect();
        logs.into_iter()
            .map(|log| (log.name().to_owned(), log.enforce_retention()))
            .collect()
    }

    /// Replaces the small metadata file `name` (which starts with a dot, so
    /// it never looks like a log) durably and atomically: a temporary file
    /// is written and synced, renamed over the old one, and the directory
    /// synced. A crash leaves the old contents or the new, never a mix.
    pub fn write_meta(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.meta_path(name)?;
        let tmp = self.shared.root.join(format!("{name}.tmp"));
        let storage = &self.shared.storage;
        let file = storage
            .open(&tmp, true)
            .map_err(LogError::io("create", &tmp))?;
        file.set_len(0)
            .and_then(|()| file.write_all_at(bytes, 0))
            .map_err(LogError::io("write", &tmp))?;
        file.sync_data().map_err(LogError::sync(tmp.clone()))?;
        storage
            .rename(&tmp, &path)
            .map_err(LogError::io("rename", &tmp))?;
        let root = &self.shared.root;
        storage.sync_dir(root).map_err(LogError::sync(root.clone()))
    }

    /// The contents of metadata file `name`, or `None` if it was never
    /// written.
    pub fn read_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.meta_path(name)?;
        let storage = &self.shared.storage;
        if !storage.exists(&path) {
            return Ok(None);
        }
        let file = storage
            .open(&path, false)
            .map_err(LogError::io("open", &path))?;
        let len = file.len().map_err(LogError::io("stat", &path))?;
        let mut bytes = vec![0; len as usize];
        let n = file
            .read_at(&mut bytes, 0)
            .map_err(LogError::io("read", &path))?;
        bytes.truncate(n);
        Ok(Some(bytes))
    }

    fn meta_path(&self, name: &str) -> Result<PathBuf> {
        let valid = name.len() > 1
            && name.starts_with('.')
            && name != LOCK_FILE
            && validate_log_name(&name[1..]).is_ok();
        if !valid {
            return Err(LogError::InvalidName {
                name: name.to_owned(),
                reason: "a metadata file name is a dot and a valid log name",
            });
        }
        Ok(self.shared.root.join(name))
    }

    /// The signal that some log's high watermark advanced: read its epoch,
    /// read the logs, and if nothing was new, await `changed(epoch)`.
    pub fn changes(&self) -> Arc<Changes> {
        self.shared.sched.changes.clone()
    }

    /// Work done by the sync scheduler so far.
    pub fn sync_stats(&self) -> SyncStats {
        self.shared.sched.stats()
    }

    /// How long the sync scheduler's rounds took and how many appends each
    /// made durable.
    pub fn sync_histograms(&self) -> &crate::SyncHistograms {
        &self.shared.sched.histograms
    }

    /// Syncs everything (whatever each log's policy) and closes every log.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(sync_thread) = self.sync_thread.take() else {
            return Ok(());
        };
        self.shared.sched.stop();
        let _ = sync_thread.join();
        let logs: Vec<Log> = self.logs().drain().map(|(_, l)| l).collect();
        let shared: Vec<_> = logs.iter().map(|l| l.shared.clone()).collect();
        let result = self.shared.sched.sync_all(&shared);
        for log in &shared {
            log.close();
        }
        result
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(root = %self.shared.root.display(), %e, "closing the data directory failed");
        }
    }
}
