//! A principal as Kafka names one, `User:alice`: a type and a name. Every
//! authenticated caller is one, and the unauthenticated one is
//! `User:ANONYMOUS`, as in Kafka, so ACLs can name it.

use std::fmt;
use std::sync::Arc;

/// Longest principal name accepted (a certificate's subject can be long).
pub const NAME_BYTES_MAX: usize = 1024;

/// A principal's type and name. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    kind: Arc<str>,
    name: Arc<str>,
}

/// Why a principal string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("principal {0:?} is not of the form Type:name (User:alice)")]
    Form(String),
    #[error("principal name of {0} bytes is over the limit of {NAME_BYTES_MAX}")]
    TooLong(usize),
}

impl Principal {
    /// The type of every user principal.
    pub const USER: &'static str = "User";

    /// `User:<name>`.
    pub fn user(name: &str) -> Self {
        Self {
            kind: Arc::from(Self::USER),
            name: Arc::from(name),
        }
    }

    /// The caller nobody authenticated: `User:ANONYMOUS`.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    /// Parses `Type:name`; the name may hold further colons.
    pub fn parse(text: &str) -> Result<Self, PrincipalError> {
        let (kind, name) = text
            .split_once(':')
            .filter(|(k, n)| !k.is_empty() && !n.is_empty())
            .ok_or_else(|| PrincipalError::Form(text.to_owned()))?;
        if name.len() > NAME_BYTES_MAX {
            return Err(PrincipalError::TooLong(name.len()));
        }
        Ok(Self {
            kind: Arc::from(kind),
            name: Arc::from(name),
        })
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_anonymous(&self) -> bool {
        &*self.kind == Self::USER && &*self.name == "ANONYMOUS"
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_kafka_form() {
        let p = Principal::parse("User:CN=client,O=weir").unwrap();
        assert_eq!(p.kind(), "User");
        assert_eq!(p.name(), "CN=client,O=weir");
        assert_eq!(p.to_string(), "User:CN=client,O=weir");
        assert_eq!(
            Principal::user("alice"),
            Principal::parse("User:alice").unwrap()
        );
        assert!(Principal::anonymous().is_anonymous());
        assert!(!Principal::user("alice").is_anonymous());
    }

    #[test]
    fn refuses_malformed() {
        for bad in ["alice", ":alice", "User:", ""] {
            assert!(
                matches!(Principal::parse(bad), Err(PrincipalError::Form(_))),
                "{bad}"
            );
        }
        let long = format!("User:{}", "x".repeat(NAME_BYTES_MAX + 1));
        assert!(matches!(
            Principal::parse(&long),
            Err(PrincipalError::TooLong(_))
        ));
    }
}
