//! Small state files replaced atomically: the new contents go to a
//! temporary file that is synced, renamed over the old one, and the
//! directory synced, so a crash leaves either the old file or the new one,
//! never a torn mix. ACLs and credentials are kept this way: they are
//! small, rarely written, and read whole at start.

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

/// Replaces `path` with `bytes`, durably.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

/// Reads `path` whole, or `None` if there is no such file; at most
/// `bytes_max` bytes.
pub(crate) fn read(path: &Path, bytes_max: u64) -> io::Result<Option<Vec<u8>>> {
    match fs::metadata(path) {
        Ok(meta) if meta.len() > bytes_max => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {} bytes, over the limit of {bytes_max}",
                path.display(),
                meta.len()
            ),
        )),
        Ok(_) => fs::read(path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
