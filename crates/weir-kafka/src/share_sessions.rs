//! Share sessions (KIP-932): per (group, member), the share partitions a
//! consumer fetches from and the epoch its next ShareFetch or
//! ShareAcknowledge must carry. Epoch 0 opens a session (replacing the
//! member's old one), each later request names the epoch expected and
//! moves it on, -1 closes it. At most `sessions_max` are open; a new one
//! past that is refused (SHARE_SESSION_LIMIT_REACHED).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::codes::Code;

/// A share partition: topic id and partition.
pub(crate) type SharePartitionId = (uuid::Uuid, i32);

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeSet<SharePartitionId>,
}

/// Every open share session.
#[derive(Debug)]
pub(crate) struct ShareSessions {
    sessions_max: usize,
    open: Mutex<HashMap<(String, String), Session>>,
}

/// Why a session call was refused, with Kafka's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub code: Code,
    pub message: String,
}

fn refused(code: Code, message: String) -> Refused {
    Refused { code, message }
}

/// The epoch after `epoch`: wraps to 1 (0 and -1 mean open and close).
fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

impl ShareSessions {
    pub fn new(sessions_max: usize) -> Self {
        Self {
            sessions_max,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Session>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the member's session with `partitions` (epoch 0). Returns
    /// whether an old session was replaced (its records are to be
    /// released).
    pub fn open(
        &self,
        group: &str,
        member: &str,
        partitions: BTreeSet<SharePartitionId>,
    ) -> Result<bool, Refused> {
        let mut open = self.lock();
        let key = (group.to_owned(), member.to_owned());
        let replaced = open.contains_key(&key);
        if !replaced && open.len() >= self.sessions_max {
            return Err(refused(
                Code::ShareSessionLimitReached,
                format!("{} share sessions are open already", self.sessions_max),
            ));
        }
        open.insert(
            key,
            Session {
                next_epoch: 1,
                partitions,
            },
        );
        Ok(replaced)
    }

    /// Checks `epoch` against the member's session and moves it on, then
    /// adds `add` and drops `forget`; returns the session's partitions.
    pub fn advance(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        add: &[SharePartitionId],
        forget: &[SharePartitionId],
    ) -> Result<BTreeSet<SharePartitionId>, Refused> {
        let mut open = self.lock();
        let Some(s) = open.get_mut(&(group.to_owned(), member.to_owned())) else {
            return Err(refused(
                Code::ShareSessionNotFound,
                format!("no share session for member {member} of group {group}"),
            ));
        };
        if epoch != s.next_epoch {
            return Err(refused(
                Code::InvalidShareSessionEpoch,
                format!(
                    "share session epoch {epoch} is not the expected {}",
                    s.next_epoch
                ),
            ));
        }
        s.next_epoch = next(s.next_epoch);
        s.partitions.extend(add.iter().copied());
        for p in forget {
            s.partitions.remove(p);
        }
        Ok(s.partitions.clone())
    }

    /// Closes the member's session (epoch -1).
    pub fn close(&self, group: &str, member: &str) -> Result<(), Refused> {
        match self.lock().remove(&(group.to_owned(), member.to_owned())) {
            Some(_) => Ok(()),
            None => Err(refused(
                Code::ShareSessionNotFound,
                format!("no share session for member {member} of group {group}"),
            )),
        }
    }

    /// Whether the member has a session open.
    pub fn is_open(&self, group: &str, member: &str) -> bool {
        self.lock()
            .contains_key(&(group.to_owned(), member.to_owned()))
    }

    /// Drops the member's session, if any (it left the group).
    pub fn forget_member(&self, group: &str, member: &str) {
        self.lock().remove(&(group.to_owned(), member.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> SharePartitionId {
        (uuid::Uuid::from_u128(7), n)
    }

    #[test]
    fn epochs_open_move_on_and_close() {
        let s = ShareSessions::new(1);
        assert!(!s.open("g", "m", [p(0)].into()).unwrap());
        let err = s.advance("g", "m", 2, &[], &[]).unwrap_err();
        assert_eq!(err.code, Code::InvalidShareSessionEpoch);
        let parts = s.advance("g", "m", 1, &[p(1)], &[p(0)]).unwrap();
        assert_eq!(parts, [p(1)].into());
        assert_eq!(s.advance("g", "m", 2, &[], &[]).unwrap(), [p(1)].into());
        // The limit counts sessions, and replacing one is not a new one.
        let full = s.open("g", "other", BTreeSet::new()).unwrap_err();
        assert_eq!(full.code, Code::ShareSessionLimitReached);
        assert!(s.open("g", "m", BTreeSet::new()).unwrap());
        s.close("g", "m").unwrap();
        assert_eq!(
            s.close("g", "m").unwrap_err().code,
            Code::ShareSessionNotFound
        );
        assert_eq!(
            s.advance("g", "m", 1, &[], &[]).unwrap_err().code,
            Code::ShareSessionNotFound
        );
        assert_eq!(next(i32::MAX), 1);
    }
}
