//! The durable credential store: per user and SCRAM mechanism the salt,
//! iterations, StoredKey and ServerKey (never a password), in one small
//! file of the data directory, `.scram-credentials`. A change writes the
//! whole file anew beside the old one, syncs it, renames it over the old
//! one and syncs the directory, so a crash leaves the old file or the new
//! one, never a mix; the in-memory copy changes only once the new file is
//! durable, and every later lookup sees it.
//!
//! Format (text, one line each):
//! `weir-scram-credentials 1` then per credential
//! `<base64 user> <mechanism> <iterations> <base64 salt> <base64 StoredKey> <base64 ServerKey>`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::scram::{self, ScramCredential, ScramError, ScramMechanism};

/// The store's file in the data directory.
pub const FILE_NAME: &str = ".scram-credentials";
const HEADER: &str = "weir-scram-credentials 1";
/// Most users the store holds.
pub const USERS_MAX: usize = 10_000;
/// Largest store file read (well above `USERS_MAX` users with both
/// mechanisms).
const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Why the store could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credential store {path} line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("credential store {path} is {bytes} bytes, over the limit of {FILE_BYTES_MAX}")]
    FileTooLarge { path: PathBuf, bytes: u64 },
    #[error("the credential store holds at most {USERS_MAX} users")]
    TooManyUsers,
    #[error(transparent)]
    Invalid(#[from] ScramError),
}

/// One change to the store.
#[derive(Debug, Clone)]
pub enum CredentialChange {
    /// Sets the user's credential for the mechanism (a new user, or a new
    /// password).
    Upsert {
        user: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    /// Removes the user's credential for the mechanism; the user goes with
    /// its last one. Removing what is absent changes nothing.
    Delete {
        user: String,
        mechanism: ScramMechanism,
    },
}

type Users = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

/// The users and their SCRAM credentials, loaded at open, changed durably.
#[derive(Debug)]
pub struct CredentialStore {
    path: PathBuf,
    users: RwLock<Users>,
    /// Serializes writers: each builds on the last durable state.
    writing: Mutex<()>,
}

impl CredentialStore {
    /// Opens the store of the data directory `dir` (empty if it has no
    /// file yet).
    pub fn open(dir: &Path) -> Result<Self, CredentialError> {
        let path = dir.join(FILE_NAME);
        let users = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Users::new(),
            Err(source) => return Err(CredentialError::Io { path, source }),
            Ok(meta) if meta.len() > FILE_BYTES_MAX => {
                return Err(CredentialError::FileTooLarge {
                    path,
                    bytes: meta.len(),
                });
            }
            Ok(_) => {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| CredentialError::Io {
                        path: path.clone(),
                        source,
                    })?;
                parse(&text).map_err(|(line, reason)| CredentialError::Corrupt {
                    path: path.clone(),
                    line,
                    reason,
                })?
            }
        };
        Ok(Self {
            path,
            users: RwLock::new(users),
            writing: Mutex::new(()),
        })
    }

    /// The user's credential for `mechanism`.
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let users = self.users.read().expect("no panics under the lock");
        users.get(user)?.get(&mechanism).cloned()
    }

    /// The user's mechanisms and their iterations (`None`: no such user).
    pub fn describe(&self, user: &str) -> Option<Vec<(ScramMechanism, u32)>> {
        let users = self.users.read().expect("no panics under the lock");
        users
            .get(user)
            .map(|m| m.iter().map(|(m, c)| (*m, c.iterations)).collect())
    }

    /// Every user with its mechanisms and iterations, by name.
    pub fn list(&self) -> Vec<(String, Vec<(ScramMechanism, u32)>)> {
        let users = self.users.read().expect("no panics under the lock");
        users
            .iter()
            .map(|(u, m)| {
                (
                    u.clone(),
                    m.iter().map(|(m, c)| (*m, c.iterations)).collect(),
                )
            })
            .collect()
    }

    /// Applies `changes` all together: one durable write, then visible to
    /// every lookup. On error nothing changed.
    pub fn apply(&self, changes: &[CredentialChange]) -> Result<(), CredentialError> {
        let _writing = self.writing.lock().expect("no panics under the lock");
        let mut next = self.users.read().expect("no panics under the lock").clone();
        for change in changes {
            match change {
                CredentialChange::Upsert {
                    user,
                    mechanism,
                    credential,
                } => {
                    scram::check_user(user)?;
                    // Checks the credential's shape as a new one would be.
                    ScramCredential::from_salted_password(
                        *mechanism,
                        &vec![0; mechanism.key_bytes()],
                        credential.salt.clone(),
                        credential.iterations,
                    )?;
                    next.entry(user.clone())
                        .or_default()
                        .insert(*mechanism, credential.clone());
                }
                CredentialChange::Delete { user, mechanism } => {
                    if let Some(m) = next.get_mut(user) {
                        m.remove(mechanism);
                        if m.is_empty() {
                            next.remove(user);
                        }
                    }
                }
            }
        }
        if next.len() > USERS_MAX {
            return Err(CredentialError::TooManyUsers);
        }
        self.write(&next)?;
        *self.users.write().expect("no panics under the lock") = next;
        Ok(())
    }

    /// Writes `users` to a temporary file, syncs it, renames it over the
    /// store's file and syncs the directory.
    fn write(&self, users: &Users) -> Result<(), CredentialError> {
        let io = |source| CredentialError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(render(users).as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

fn render(users: &Users) -> String {
    let mut out = format!("{HEADER}\n");
    for (user, mechanisms) in users {
        for (m, c) in mechanisms {
            out.push_str(&format!(
                "{} {} {} {} {} {}\n",
                B64.encode(user),
                m.name(),
                c.iterations,
                B64.encode(&c.salt),
                B64.encode(&c.stored_key),
                B64.encode(&c.server_key)
            ));
        }
    }
    out
}

/// Parses the file; an error names the line (1-based) and why.
fn parse(text: &str) -> Result<Users, (usize, String)> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, HEADER)) => {}
        _ => return Err((1, format!("expected the header {HEADER:?}"))),
    }
    let mut users = Users::new();
    for (i, line) in lines {
        let n = i + 1;
        let bad = |reason: &str| (n, reason.to_owned());
        let f: Vec<&str> = line.split(' ').collect();
        let [user, mechanism, iterations, salt, stored, server] = f[..] else {
            return Err(bad("expected 6 fields"));
        };
        let b64 = |s: &str| B64.decode(s).map_err(|_| bad("a field is not base64"));
        let user = String::from_utf8(b64(user)?).map_err(|_| bad("user is not UTF-8"))?;
        scram::check_user(&user).map_err(|e| bad(&e.to_string()))?;
        let mechanism =
            ScramMechanism::from_name(mechanism).ok_or_else(|| bad("unknown mechanism"))?;
        let iterations: u32 = iterations.parse().map_err(|_| bad("bad iterations"))?;
        let credential = ScramCredential {
            salt: b64(salt)?,
            iterations,
            stored_key: b64(stored)?,
            server_key: b64(server)?,
        };
        if credential.stored_key.len() != mechanism.key_bytes()
            || credential.server_key.len() != mechanism.key_bytes()
            || credential.salt.is_empty()
            || credential.salt.len() > scram::SALT_BYTES_MAX
            || !(scram::ITERATIONS_MIN..=scram::ITERATIONS_MAX).contains(&iterations)
        {
            return Err(bad("a key, the salt or the iterations are out of range"));
        }
        users.entry(user).or_default().insert(mechanism, credential);
        if users.len() > USERS_MAX {
            return Err(bad("more users than the limit"));
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(user: &str, m: ScramMechanism, pw: &str) -> CredentialChange {
        CredentialChange::Upsert {
            user: user.to_owned(),
            mechanism: m,
            credential: ScramCredential::new(m, pw, scram::ITERATIONS_MIN).unwrap(),
        }
    }

    #[test]
    fn changes_are_durable_and_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        assert!(store.list().is_empty());
        store
            .apply(&[
                upsert("alice", ScramMechanism::Sha256, "a"),
                upsert("alice", ScramMechanism::Sha512, "a"),
                upsert("b ob,=x", ScramMechanism::Sha512, "b"),
            ])
            .unwrap();
        let cred = store.get("alice", ScramMechanism::Sha256).unwrap();
        assert!(cred.verify_password(ScramMechanism::Sha256, "a"));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!text.contains("alice"), "names are encoded");
        assert!(!dir.path().join(".scram-credentials.tmp").exists());

        let reopened = CredentialStore::open(dir.path()).unwrap();
        assert_eq!(reopened.list(), store.list());
        assert_eq!(reopened.get("alice", ScramMechanism::Sha256).unwrap(), cred);
        assert_eq!(
            reopened.describe("b ob,=x").unwrap(),
            vec![(ScramMechanism::Sha512, 4096)]
        );

        reopened
            .apply(&[
                CredentialChange::Delete {
                    user: "alice".into(),
                    mechanism: ScramMechanism::Sha256,
                },
                CredentialChange::Delete {
                    user: "b ob,=x".into(),
                    mechanism: ScramMechanism::Sha512,
                },
            ])
            .unwrap();
        assert!(reopened.get("alice", ScramMechanism::Sha256).is_none());
        assert!(reopened.describe("b ob,=x").is_none());
        let again = CredentialStore::open(dir.path()).unwrap();
        assert_eq!(
            again.list(),
            vec![("alice".to_owned(), vec![(ScramMechanism::Sha512, 4096)])]
        );
    }

    #[test]
    fn bad_changes_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        store
            .apply(&[upsert("alice", ScramMechanism::Sha256, "a")])
            .unwrap();
        let mut weak = upsert("bob", ScramMechanism::Sha256, "b");
        if let CredentialChange::Upsert { credential, .. } = &mut weak {
            credential.iterations = 1000;
        }
        let got = store.apply(&[upsert("carol", ScramMechanism::Sha256, "c"), weak]);
        assert!(matches!(
            got,
            Err(CredentialError::Invalid(ScramError::Iterations { .. }))
        ));
        assert!(store.describe("carol").is_none());
        assert_eq!(CredentialStore::open(dir.path()).unwrap().list().len(), 1);
    }

    #[test]
    fn corrupt_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for (text, line) in [
            ("nonsense\n", 1),
            (
                "weir-scram-credentials 1\nYQ== SCRAM-SHA-256 4096 c2FsdA==\n",
                2,
            ),
            (
                "weir-scram-credentials 1\nYQ== SCRAM-MD5 4096 c2FsdA== AA== AA==\n",
                2,
            ),
            (
                "weir-scram-credentials 1\nYQ== SCRAM-SHA-256 4096 c2FsdA== AA== AA==\n",
                2,
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            match CredentialStore::open(dir.path()) {
                Err(CredentialError::Corrupt { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
