//! SASL mechanisms: SCRAM-SHA-256/512 exchanges and PLAIN (RFC 4616)
//! over one user database, PLAIN checked against the same stored SCRAM
//! credentials (the password is salted with a stored salt and iterations
//! and its StoredKey compared), so one set of users serves both and no
//! password is ever kept; and OAUTHBEARER (RFC 7628), a JWT checked by
//! the HTTP API's validator. Protocol edges (the Kafka listener's
//! SaslAuthenticate) feed client tokens to a [`SaslAuthenticator`] and
//! send back what it answers.

use std::sync::Arc;

use crate::bearer::JwtValidator;

use crate::credentials::CredentialStore;
use crate::oauthbearer::{self, OauthBearerError};
use crate::principal::Principal;
use crate::scram::{self, ScramError, ScramMechanism, ScramServer, ScramStep};

/// Longest PLAIN message accepted, in bytes.
pub const PLAIN_BYTES_MAX: usize = 2 * scram::USER_BYTES_MAX + scram::PASSWORD_BYTES_MAX + 2;

/// A SASL mechanism Weir serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
    /// A JWT (KIP-255); needs a [`JwtValidator`].
    OauthBearer,
}

impl SaslMechanism {
    pub const ALL: [Self; 4] = [
        Self::Plain,
        Self::Scram(ScramMechanism::Sha256),
        Self::Scram(ScramMechanism::Sha512),
        Self::OauthBearer,
    ];

    /// The SASL name (`PLAIN`, `SCRAM-SHA-256`, `OAUTHBEARER`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
            Self::OauthBearer => "OAUTHBEARER",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an authentication failed. Clients see one message for every cause
/// that concerns credentials, so none tells a wrong password from an
/// unknown user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error(transparent)]
    Scram(#[from] ScramError),
    #[error("malformed PLAIN message: {0}")]
    PlainMalformed(&'static str),
    #[error("PLAIN authorization id {authzid:?} differs from the user {user:?}")]
    PlainAuthzid { authzid: String, user: String },
    #[error("invalid user name or password for {user:?}")]
    PlainInvalid { user: String },
    #[error("the exchange is over; a new one needs a new handshake")]
    Finished,
    #[error("the credential store is unavailable")]
    NoCredentials,
    #[error("OAUTHBEARER is not configured (no JWT key)")]
    NoJwtValidator,
    /// The OAUTHBEARER message is malformed, or its authorization id is
    /// not the token's principal.
    #[error("{0}")]
    OauthBearer(String),
    /// The OAUTHBEARER token is invalid: bad signature, expired, wrong
    /// issuer or audience, no principal claim.
    #[error("invalid OAUTHBEARER token: {0}")]
    InvalidToken(String),
}

impl SaslError {
    /// What the client is told: the cause where it is about the message's
    /// form, a fixed sentence where it is about the credentials.
    pub fn client_message(&self, mechanism: SaslMechanism) -> String {
        match self {
            Self::Scram(ScramError::InvalidCredentials { .. } | ScramError::UnknownUser { .. })
            | Self::PlainInvalid { .. } => format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
            ),
            other => format!("Authentication failed: {other}"),
        }
    }

    /// The token a failure sends back, as Kafka does: RFC 7628's error
    /// JSON for a refused OAUTHBEARER token, nothing otherwise.
    pub fn server_token(&self) -> Vec<u8> {
        match self {
            Self::InvalidToken(_) => oauthbearer::INVALID_TOKEN_JSON.as_bytes().to_vec(),
            _ => Vec::new(),
        }
    }
}

impl From<OauthBearerError> for SaslError {
    fn from(e: OauthBearerError) -> Self {
        match e {
            OauthBearerError::Token(_) | OauthBearerError::Expired { .. } => {
                Self::InvalidToken(e.to_string())
            }
            OauthBearerError::Malformed(_)
            | OauthBearerError::TooLong(_)
            | OauthBearerError::Authzid { .. } => Self::OauthBearer(e.to_string()),
        }
    }
}

/// What one step of an authentication gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this token and wait for the client's next one.
    Continue(Vec<u8>),
    /// The client is `principal`; send this last token (maybe empty).
    /// `expires_at_ms`: when the credential stops being valid
    /// (milliseconds since the epoch; a token's `exp`), `None` for never.
    Done {
        principal: Principal,
        token: Vec<u8>,
        expires_at_ms: Option<i64>,
    },
}

/// One authentication in progress with one mechanism.
#[derive(Debug)]
pub struct SaslAuthenticator {
    mechanism: SaslMechanism,
    scram: Option<ScramServer>,
    /// What OAUTHBEARER tokens are checked with.
    jwt: Option<Arc<JwtValidator>>,
    over: bool,
}

impl SaslAuthenticator {
    pub fn new(mechanism: SaslMechanism) -> Self {
        Self {
            mechanism,
            scram: match mechanism {
                SaslMechanism::Plain | SaslMechanism::OauthBearer => None,
                SaslMechanism::Scram(m) => Some(ScramServer::new(m)),
            },
            jwt: None,
            over: false,
        }
    }

    /// Checks OAUTHBEARER tokens with `jwt` (without it, OAUTHBEARER
    /// fails with [`SaslError::NoJwtValidator`]).
    pub fn with_jwt(mut self, jwt: Arc<JwtValidator>) -> Self {
        self.jwt = Some(jwt);
        self
    }

    pub fn mechanism(&self) -> SaslMechanism {
        self.mechanism
    }

    /// Takes the client's next token, checking passwords against `store`
    /// (`None`: it could not be read, and PLAIN and SCRAM fail) and
    /// OAUTHBEARER tokens with the validator given. PLAIN derives a key
    /// with up to [`scram::ITERATIONS_MAX`] HMACs, so callers on an async
    /// runtime run this on a blocking thread.
    pub fn step(
        &mut self,
        token: &[u8],
        store: Option<&CredentialStore>,
    ) -> Result<SaslStep, SaslError> {
        if self.over {
            return Err(SaslError::Finished);
        }
        if self.mechanism == SaslMechanism::OauthBearer {
            // One client message, one answer (RFC 7628 section 3.2).
            self.over = true;
            let jwt = self.jwt.as_deref().ok_or(SaslError::NoJwtValidator)?;
            let done = oauthbearer::authenticate(token, jwt)?;
            return Ok(SaslStep::Done {
                principal: done.principal,
                token: Vec::new(),
                expires_at_ms: done.expires_at_ms,
            });
        }
        let store = store.ok_or(SaslError::NoCredentials)?;
        let Some(scram) = &mut self.scram else {
            self.over = true;
            let user = plain(token, store)?;
            return Ok(SaslStep::Done {
                principal: Principal::user(&user),
                token: Vec::new(),
                expires_at_ms: None,
            });
        };
        let mechanism = scram.mechanism();
        match scram.step(token, |user| store.get(user, mechanism)) {
            Ok(ScramStep::Continue(m)) => Ok(SaslStep::Continue(m)),
            Ok(ScramStep::Done { user, server_final }) => {
                self.over = true;
                Ok(SaslStep::Done {
                    principal: Principal::user(&user),
                    token: server_final,
                    expires_at_ms: None,
                })
            }
            Err(e) => {
                self.over = true;
                Err(e.into())
            }
        }
    }
}

/// Checks a PLAIN message (`authzid NUL authcid NUL passwd`) against the
/// store; returns the user. The authzid must be empty or the user.
pub fn plain(token: &[u8], store: &CredentialStore) -> Result<String, SaslError> {
    if token.len() > PLAIN_BYTES_MAX {
        return Err(SaslError::PlainMalformed("message too long"));
    }
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::PlainMalformed(
            "expected authzid, user and password",
        ));
    };
    fn text(b: &[u8]) -> Result<&str, SaslError> {
        std::str::from_utf8(b).map_err(|_| SaslError::PlainMalformed("not UTF-8"))
    }
    let (authzid, user, password) = (text(authzid)?, text(user)?, text(password)?);
    if user.is_empty() || password.is_empty() {
        return Err(SaslError::PlainMalformed("empty user or password"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::PlainAuthzid {
            authzid: authzid.to_owned(),
            user: user.to_owned(),
        });
    }
    let invalid = || SaslError::PlainInvalid {
        user: user.to_owned(),
    };
    // Either SCRAM credential carries the password; SHA-256 is cheaper.
    let found = ScramMechanism::ALL
        .into_iter()
        .find_map(|m| store.get(user, m).map(|c| (m, c)));
    let Some((mechanism, credential)) = found else {
        return Err(invalid());
    };
    if credential.verify_password(mechanism, password) {
        Ok(user.to_owned())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::CredentialChange;
    use crate::scram::ScramCredential;

    fn store_with(user: &str, m: ScramMechanism, pw: &str) -> (tempfile::TempDir, CredentialStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        store
            .apply(&[CredentialChange::Upsert {
                user: user.to_owned(),
                mechanism: m,
                credential: ScramCredential::new(m, pw, 4096).unwrap(),
            }])
            .unwrap();
        (dir, store)
    }

    #[test]
    fn plain_checks_scram_credentials() {
        for m in ScramMechanism::ALL {
            let (_dir, store) = store_with("alice", m, "pw1");
            let mut auth = SaslAuthenticator::new(SaslMechanism::Plain);
            assert_eq!(
                auth.step(b"\0alice\0pw1", Some(&store)).unwrap(),
                SaslStep::Done {
                    principal: Principal::user("alice"),
                    token: Vec::new(),
                    expires_at_ms: None,
                }
            );
            assert_eq!(
                auth.step(b"\0alice\0pw1", Some(&store)),
                Err(SaslError::Finished)
            );
            assert_eq!(plain(b"alice\0alice\0pw1", &store).unwrap(), "alice");
            for (bad, what) in [
                (&b"\0alice\0pw2"[..], "invalid"),
                (b"\0bob\0pw1", "invalid"),
                (b"bob\0alice\0pw1", "authzid"),
                (b"alice\0pw1", "malformed"),
                (b"\0alice\0pw1\0x", "malformed"),
                (b"\0\0pw1", "malformed"),
            ] {
                let got = plain(bad, &store);
                let ok = match what {
                    "invalid" => matches!(got, Err(SaslError::PlainInvalid { .. })),
                    "authzid" => matches!(got, Err(SaslError::PlainAuthzid { .. })),
                    _ => matches!(got, Err(SaslError::PlainMalformed(_))),
                };
                assert!(ok, "{bad:?}: {got:?}");
            }
        }
    }

    #[test]
    fn client_messages_hide_the_cause_of_bad_credentials() {
        let (_dir, store) = store_with("alice", ScramMechanism::Sha256, "pw");
        let wrong = plain(b"\0alice\0nope", &store).unwrap_err();
        let unknown = plain(b"\0zed\0pw", &store).unwrap_err();
        assert_ne!(wrong, unknown);
        assert_eq!(
            wrong.client_message(SaslMechanism::Plain),
            unknown.client_message(SaslMechanism::Plain)
        );
        assert!(!wrong.client_message(SaslMechanism::Plain).contains("alice"));
    }

    #[test]
    fn oauthbearer_takes_a_jwt_and_refuses_with_rfc7628_json() {
        let dir = tempfile::tempdir().unwrap();
        let secret = b"sasl oauthbearer test secret of 32+ bytes";
        std::fs::write(dir.path().join("key"), secret).unwrap();
        let config = crate::bearer::JwtConfig::new(dir.path().join("key"));
        let jwt = Arc::new(JwtValidator::new(&config).unwrap());
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 120;
        let signed = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "carol", "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        let message = format!("n,,\x01auth=Bearer {signed}\x01\x01");
        let mut auth = SaslAuthenticator::new(SaslMechanism::OauthBearer).with_jwt(jwt.clone());
        assert_eq!(
            auth.step(message.as_bytes(), None).unwrap(),
            SaslStep::Done {
                principal: Principal::user("carol"),
                token: Vec::new(),
                expires_at_ms: Some(exp * 1000),
            }
        );
        assert_eq!(
            auth.step(message.as_bytes(), None),
            Err(SaslError::Finished)
        );

        let forged = format!("n,,\x01auth=Bearer {signed}A\x01\x01");
        let mut auth = SaslAuthenticator::new(SaslMechanism::OauthBearer).with_jwt(jwt);
        let e = auth.step(forged.as_bytes(), None).unwrap_err();
        assert!(matches!(e, SaslError::InvalidToken(_)), "{e}");
        assert_eq!(e.server_token(), br#"{"status":"invalid_token"}"#);
        assert!(
            e.client_message(SaslMechanism::OauthBearer)
                .contains("invalid OAUTHBEARER token"),
            "{e}"
        );

        let mut unconfigured = SaslAuthenticator::new(SaslMechanism::OauthBearer);
        assert_eq!(
            unconfigured.step(message.as_bytes(), None),
            Err(SaslError::NoJwtValidator)
        );
        let malformed = SaslError::from(oauthbearer::token(b"x").unwrap_err());
        assert!(malformed.server_token().is_empty());
        let mut plain = SaslAuthenticator::new(SaslMechanism::Plain);
        assert_eq!(plain.step(b"\0a\0b", None), Err(SaslError::NoCredentials));
    }

    #[test]
    fn names_round_trip() {
        for m in SaslMechanism::ALL {
            assert_eq!(SaslMechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(SaslMechanism::from_name("GSSAPI"), None);
    }
}
