//! The static token file as the server holds it: read at start, read
//! again on SIGHUP or when the file changes, so tokens are issued and
//! revoked without a restart. A file that does not load keeps the tokens
//! in use (and says why), as the TLS files do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use super::{BearerError, StaticTokens};
use crate::Principal;

/// A file's modification time and length: what a poll compares.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Static tokens, from a file or fixed.
#[derive(Debug)]
pub struct TokenFile {
    /// `None`: fixed tokens, nothing to reload.
    path: Option<PathBuf>,
    current: RwLock<Arc<StaticTokens>>,
    /// The file's stamp when it was last read.
    read_at: Mutex<Stamp>,
}

impl TokenFile {
    /// Reads the token file at `path`; an error names it and the line.
    pub fn load(path: &Path) -> Result<Self, BearerError> {
        let read_at = stamp(path);
        let tokens = StaticTokens::load(path)?;
        Ok(Self {
            path: Some(path.to_owned()),
            current: RwLock::new(Arc::new(tokens)),
            read_at: Mutex::new(read_at),
        })
    }

    /// Tokens that never change (tests, embedding).
    pub fn fixed(tokens: StaticTokens) -> Self {
        Self {
            path: None,
            current: RwLock::new(Arc::new(tokens)),
            read_at: Mutex::new(None),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The principal `token` was issued to, in the tokens in use now.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        self.current().principal(token).cloned()
    }

    /// The tokens in use now.
    pub fn current(&self) -> Arc<StaticTokens> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the file again: on success its tokens replace those in use
    /// (how many it holds is returned); on failure they stay.
    pub fn reload(&self) -> Result<usize, BearerError> {
        let Some(path) = &self.path else {
            return Ok(self.current().len());
        };
        // Stamp first, then the read: a change while reading is seen by
        // the next poll.
        *self.read_at.lock().unwrap_or_else(PoisonError::into_inner) = stamp(path);
        let tokens = StaticTokens::load(path)?;
        let n = tokens.len();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tokens);
        Ok(n)
    }

    /// Reloads if the file's modification time or length changed since
    /// it was last read; `None` if it did not.
    pub fn reload_if_changed(&self) -> Option<Result<usize, BearerError>> {
        let path = self.path.as_deref()?;
        let now = stamp(path);
        let changed = *self.read_at.lock().unwrap_or_else(PoisonError::into_inner) != now;
        changed.then(|| self.reload())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_replaces_the_tokens_and_a_bad_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "User:ops first\n").unwrap();
        let file = TokenFile::load(&path).unwrap();
        assert_eq!(file.principal("first"), Some(Principal::user("ops")));
        assert!(file.reload_if_changed().is_none());

        // Issued and revoked: a longer file, so the stamp differs even
        // within the file system's time granularity.
        std::fs::write(&path, "User:ops second\nUser:ci third\n").unwrap();
        assert_eq!(file.reload_if_changed().unwrap().unwrap(), 2);
        assert_eq!(file.principal("first"), None);
        assert_eq!(file.principal("third"), Some(Principal::user("ci")));

        // A malformed file is refused by line; the tokens in use stay.
        std::fs::write(&path, "User:ops second\nnot a line at all\n").unwrap();
        let err = file.reload_if_changed().unwrap().unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert_eq!(file.principal("third"), Some(Principal::user("ci")));
        // Not retried until the file changes again.
        assert!(file.reload_if_changed().is_none());

        let fixed = TokenFile::fixed(StaticTokens::parse("User:a t").unwrap());
        assert!(fixed.reload_if_changed().is_none());
        assert_eq!(fixed.reload().unwrap(), 1);
    }
}
