//! Projections: read models built from the global order of events, each
//! in its own SQLite database, with the checkpoint (the next position to
//! apply) in the same database, moved in the same transaction as the rows
//! an event changed. A crash therefore never leaves a read model that has
//! applied an event its checkpoint does not show, or the reverse.
//!
//! A projection is rebuilt blue-green: a new generation (a new database
//! file) replays every event beside the live one, which keeps answering
//! queries and following new events; once the new one has caught up, the
//! switch is one atomic rename of the `current` file, and the old
//! generation is deleted. Replay pauses between pages
//! ([`ProjectorConfig::rebuild_pause_ms`]) so a rebuild does not starve
//! live traffic, up to the head as it was when the rebuild started; what
//! came since is replayed without pauses, so appends arriving faster than
//! the paced replay cannot keep a rebuild from finishing.
//!
//! Files: `<read models dir>/<name>/current` holds the live generation's
//! number; `<name>/<generation>.sqlite` its database.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction};

use crate::{Client, Envelope, Error};

/// The error a projection's or handler's code returns.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Longest projection name, in bytes.
pub const PROJECTION_NAME_BYTES_MAX: usize = 128;

/// A read model fed by events.
pub trait Projection: Send + Sync + 'static {
    /// The read model's name: `[A-Za-z0-9_-]`, it names its files.
    fn name(&self) -> &str;

    /// Creates the read model's tables in a new, empty database.
    fn setup(&self, tx: &Transaction<'_>) -> rusqlite::Result<()>;

    /// Applies one event, inside the transaction that also moves the
    /// checkpoint past it. Events the projection does not care about are
    /// simply skipped (`Ok(())`).
    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), HandlerError>;
}

/// Settings of a projector.
#[derive(Debug, Clone, Copy)]
pub struct ProjectorConfig {
    /// Events read and applied per transaction.
    pub page_events: usize,
    /// Pause between pages of a rebuild's replay.
    pub rebuild_pause_ms: u64,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            page_events: 500,
            rebuild_pause_ms: 1,
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// The generation now live.
    pub generation: u64,
    /// Events the new generation applied.
    pub events_applied: u64,
}

#[derive(Debug)]
struct Generation {
    number: u64,
    conn: Connection,
    /// The next position to apply; every event below it is in the model.
    checkpoint: u64,
}

/// Runs a projection against a client's store and answers queries on its
/// read model.
#[derive(Debug)]
pub struct Projector<P> {
    client: Client,
    projection: P,
    config: ProjectorConfig,
    dir: PathBuf,
    live: Mutex<Generation>,
    /// Held for a whole rebuild, so two never run at once.
    rebuilding: Mutex<()>,
}

impl Client {
    /// Opens the read model of `projection` (creating it if new) at its
    /// checkpoint. It applies events when asked ([`Projector::catch_up`],
    /// [`Projector::wait_for`]).
    pub fn projector<P: Projection>(
        &self,
        projection: P,
        config: ProjectorConfig,
    ) -> Result<Projector<P>, Error> {
        let name = projection.name().to_owned();
        validate_name(&name)?;
        let dir = self.read_models_dir().join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&name, "creating its directory", e))?;
        let number = match std::fs::read_to_string(dir.join("current")) {
            Ok(s) => s.trim().parse().map_err(|_| Error::ReadModel {
                name: name.clone(),
                reason: format!("its current file holds {s:?}, not a generation"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_current(&dir, 1).map_err(|e| Error::io(&name, "writing current", e))?;
                1
            }
            Err(e) => return Err(Error::io(&name, "reading current", e)),
        };
        // Generations other than the live one are a rebuild a crash cut
        // short, or an old one whose deletion it cut short.
        remove_other_generations(&dir, number);
        let (conn, checkpoint) = open_generation(&projection, &dir, number)?;
        Ok(Projector {
            client: self.clone(),
            projection,
            config: ProjectorConfig {
                page_events: config.page_events.clamp(1, crate::READ_PAGE_MAX),
                ..config
            },
            dir,
            live: Mutex::new(Generation {
                number,
                conn,
                checkpoint,
            }),
            rebuilding: Mutex::new(()),
        })
    }
}

pub(crate) fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= PROJECTION_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::ReadModel {
            name: name.chars().take(64).collect(),
            reason: format!(
                "a read model name has 1 to {PROJECTION_NAME_BYTES_MAX} of [A-Za-z0-9_-]"
            ),
        })
    }
}

/// Opens a SQLite database for a read model: WAL, so queries read while
/// a transaction applies events.
pub(crate) fn open_db(name: &str, path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path).map_err(|e| Error::sqlite(name, e))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        .map_err(|e| Error::sqlite(name, e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| Error::sqlite(name, e))?;
    Ok(conn)
}

fn generation_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number}.sqlite"))
}

/// Opens (or creates, running the projection's setup) a generation's
/// database; returns it with its checkpoint.
fn open_generation<P: Projection>(
    projection: &P,
    dir: &Path,
    number: u64,
) -> Result<(Connection, u64), Error> {
    let name = projection.name();
    let sql = |e| Error::sqlite(name, e);
    let mut conn = open_db(name, &generation_path(dir, number))?;
    let tx = conn.transaction().map_err(sql)?;
    let exists: bool = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'weir_checkpoint'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql)?
        > 0;
    if !exists {
        tx.execute_batch(
            "CREATE TABLE weir_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 0), position INTEGER NOT NULL);
             INSERT INTO weir_checkpoint VALUES (0, 0);",
        )
        .map_err(sql)?;
        projection.setup(&tx).map_err(sql)?;
    }
    let checkpoint: i64 = tx
        .query_row("SELECT position FROM weir_checkpoint", [], |r| r.get(0))
        .map_err(sql)?;
    tx.commit().map_err(sql)?;
    Ok((conn, checkpoint as u64))
}

/// Writes the live generation's number durably and atomically: a temporary
/// file, fsynced, renamed over `current`, and the directory fsynced.
fn write_current(dir: &Path, number: u64) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join("current.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("{number}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join("current"))?;
    std::fs::File::open(dir)?.sync_all()
}

fn remove_other_generations(dir: &Path, live: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let generation = name
            .to_str()
            .and_then(|n| n.split('.').next())
            .and_then(|g| g.parse::<u64>().ok());
        if let Some(g) = generation
            && g != live
        {
            remove_generation(dir, g);
        }
    }
}

fn remove_generation(dir: &Path, number: u64) {
    let base = generation_path(dir, number);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = base.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

impl<P: Projection> Projector<P> {
    fn live(&self) -> MutexGuard<'_, Generation> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn name(&self) -> &str {
        self.projection.name()
    }

    /// The next position the read model applies: every event below it is
    /// in the model.
    pub fn checkpoint(&self) -> u64 {
        self.live().checkpoint
    }

    /// The live generation.
    pub fn generation(&self) -> u64 {
        self.live().number
    }

    /// Applies one page of events after the checkpoint in one
    /// transaction; returns how many it applied.
    fn apply_page(&self, g: &mut Generation) -> Result<u64, Error> {
        let events = self
            .client
            .read_all(g.checkpoint, self.config.page_events)?;
        let Some(last) = events.last().and_then(Envelope::position) else {
            return Ok(0);
        };
        let name = self.projection.name();
        let sql = |e| Error::sqlite(name, e);
        let tx = g.conn.transaction().map_err(sql)?;
        for e in &events {
            self.projection
                .apply(&tx, e)
                .map_err(|err| Error::Handler {
                    name: name.to_owned(),
                    id: e.id.clone(),
                    position: e.position().unwrap_or(0),
                    reason: err.to_string(),
                })?;
        }
        tx.execute(
            "UPDATE weir_checkpoint SET position = ?1",
            [(last + 1) as i64],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        g.checkpoint = last + 1;
        Ok(events.len() as u64)
    }

    /// Applies every event after the checkpoint that is readable now;
    /// returns how many.
    pub fn catch_up(&self) -> Result<u64, Error> {
        let mut total = 0;
        loop {
            let n = self.apply_page(&mut self.live())?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Read-your-writes: returns once the read model has applied the event
    /// at `position` (e.g. the position a command's append returned),
    /// catching up as events arrive; [`Error::Timeout`] after `timeout`.
    pub fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let epoch = self.client.backend().change_epoch();
            self.catch_up()?;
            let checkpoint = self.checkpoint();
            if checkpoint > position {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    name: self.name().to_owned(),
                    position,
                    checkpoint,
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
            self.client.backend().wait_changed(epoch, left);
        }
    }

    /// Follows the store until `stop` is set: applies new events as they
    /// become readable (waking on the store's change signal, and at least
    /// every `idle_ms`). Run it on a thread of its own; queries and
    /// [`Self::wait_for`] go on beside it. Returns the first error.
    pub fn run_until(&self, stop: &AtomicBool, idle_ms: u64) -> Result<(), Error> {
        while !stop.load(Ordering::Relaxed) {
            let epoch = self.client.backend().change_epoch();
            self.catch_up()?;
            self.client
                .backend()
                .wait_changed(epoch, Duration::from_millis(idle_ms.clamp(1, 60_000)));
        }
        Ok(())
    }

    /// Runs `f` on the live read model (for queries; see
    /// [`crate::Select`] and [`crate::Query`]).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, Error> {
        let g = self.live();
        f(&g.conn).map_err(|e| Error::sqlite(self.name(), e))
    }

    /// Rebuilds the read model from the first event, blue-green: a new
    /// generation replays beside the live one (which goes on answering and
    /// applying), then takes over in one atomic switch.
    pub fn rebuild(&self) -> Result<Rebuilt, Error> {
        let _one = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let name = self.projection.name();
        let number = self.live().number + 1;
        remove_generation(&self.dir, number); // a rebuild a crash cut short
        let (conn, checkpoint) = open_generation(&self.projection, &self.dir, number)?;
        let mut next = Generation {
            number,
            conn,
            checkpoint,
        };
        let mut applied = 0;
        // Replay without the live lock, pausing between pages, up to the
        // head as it was when the rebuild started: under a steady stream of
        // appends faster than the paced replay, "until nothing is left"
        // would never end. Then catch up on what came meanwhile without
        // pausing (replay outruns durable appends), still unlocked.
        let target = self.client.head_position()?;
        while next.checkpoint < target {
            let n = self.apply_page(&mut next)?;
            applied += n;
            if n == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(self.config.rebuild_pause_ms));
        }
        loop {
            let n = self.apply_page(&mut next)?;
            applied += n;
            if n == 0 {
                break;
            }
        }
        // The last events, and the switch, under the live lock: nothing
        // is applied to the old generation after this point.
        let mut live = self.live();
        loop {
            let n = self.apply_page(&mut next)?;
            applied += n;
            if n == 0 {
                break;
            }
        }
        write_current(&self.dir, number).map_err(|e| Error::io(name, "switching current", e))?;
        let old = std::mem::replace(&mut *live, next);
        drop(live);
        let old_number = old.number;
        drop(old);
        remove_generation(&self.dir, old_number);
        Ok(Rebuilt {
            generation: number,
            events_applied: applied,
        })
    }
}
