//! The storage seam: every byte the log reads or writes goes through these
//! traits, so crash tests can swap the real file system for one that forgets
//! whatever was not synced (see [`crate::sim`]).

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// One open file. Positional reads and writes only: the log never relies on
/// a shared file cursor.
#[allow(
    clippy::len_without_is_empty,
    reason = "a file's length is a size, not a collection's"
)]
pub trait StorageFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read
    /// (fewer only at the end of the file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `pos`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// `fdatasync`: makes written data (and the size) durable.
    fn sync_data(&self) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves disk space for bytes `from..to` (the file's size becomes at
    /// least `to`, new space reading as zeros) so later overwrites need no
    /// allocation. `from` is where the previous reservation ended.
    fn preallocate(&self, from: u64, to: u64) -> io::Result<()>;
}

/// A held lock on a data directory; dropping it releases the lock.
pub trait DirLock: Send + Sync + Debug {}

/// Directory-level operations. Creating, renaming and removing files is
/// durable only after [`Storage::sync_dir`] on the parent directory.
pub trait Storage: Send + Sync + Debug + 'static {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Opens a file for reading and writing, creating it if `create`.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Names of the entries of a directory, unsorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn is_dir(&self, path: &Path) -> bool;
    fn exists(&self, path: &Path) -> bool;
    /// `fsync` of a directory: makes its entries (creates, renames, removes)
    /// durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (a lock file) against other
    /// processes; fails with `WouldBlock` when someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

#[derive(Debug)]
struct OsFile(std::fs::File);

#[derive(Debug)]
struct OsLock(#[allow(dead_code, reason = "held for its Drop, which unlocks")] std::fs::File);

impl DirLock for OsLock {}

impl StorageFile for OsFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match self.0.read_at(&mut buf[done..], pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, pos)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn preallocate(&self, from: u64, to: u64) -> io::Result<()> {
        os::fallocate(&self.0, from, to.saturating_sub(from))
    }
}

impl Storage for OsStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(OsFile(file)))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path)? {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(OsLock(file))),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The one place the log calls into libc directly.
#[allow(
    unsafe_code,
    reason = "fallocate has no std wrapper; see the SAFETY note"
)]
mod os {
    use std::io;
    use std::os::fd::AsRawFd;

    /// Allocates blocks for `offset..offset + len` and extends the size. On ext4 and xfs a
    /// later overwrite of this space makes `fdatasync` cheaper than growing
    /// the file write by write. Falls back to doing nothing where the file
    /// system does not support it.
    pub(super) fn fallocate(file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let invalid = |_| io::Error::from(io::ErrorKind::InvalidInput);
        let (offset, len) = (
            i64::try_from(offset).map_err(invalid)?,
            i64::try_from(len).map_err(invalid)?,
        );
        // SAFETY: `file` owns a valid open descriptor for the duration of the
        // call, and fallocate takes no pointers.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(()),
            _ => Err(err),
        }
    }
}
