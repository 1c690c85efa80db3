//! SASL on a Kafka connection (KIP-152, KIP-368): each connection's
//! authentication state, which requests it admits, and SaslHandshake
//! (v1) and SaslAuthenticate (v0-2) over `weir-auth`'s mechanisms
//! (PLAIN, SCRAM, and OAUTHBEARER when the server has a JWT validator).
//!
//! On a SASL listener a connection starts unauthenticated: ApiVersions,
//! SaslHandshake and SaslAuthenticate are served, anything else closes
//! it, as Kafka does. A handshake picks an enabled mechanism (else
//! UNSUPPORTED_SASL_MECHANISM with the enabled list, and the connection
//! closes); SaslAuthenticate carries the mechanism's tokens; a failed
//! authentication is answered SASL_AUTHENTICATION_FAILED with a message,
//! then the connection closes; success makes the connection `User:<name>`.
//! With `connections.max.reauth.ms` set, a session lasts that long
//! (`session_lifetime_ms` in SaslAuthenticate v1+): a client may
//! re-authenticate (handshake and authenticate again, same mechanism and
//! principal) at any time, and a request after the session expired closes
//! the connection. An OAUTHBEARER token's `exp` bounds its session too
//! (KIP-368: the session lifetime is the least of the two), so a client
//! must re-authenticate with a fresh token before its token expires. The
//! connection's reader handles requests one at a time
//! and awaits each SASL step before reading the next frame, so nothing
//! after a SaslAuthenticate runs before it has been decided.
//!
//! SaslHandshake v0 (tokens unframed after the handshake, before Kafka
//! 1.0) is refused with UNSUPPORTED_VERSION and the connection closes.
//! ApiVersions still lists v0-1: librdkafka before 2.x (kcat on Debian
//! 12) enables SASL only if the broker lists v0, then uses v1 as every
//! client since Kafka 1.0 does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use weir_auth::{CredentialStore, Principal, SaslAuthenticator, SaslMechanism, SaslStep};

use crate::Shared;
use crate::apis::{blocking, str_bytes};
use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};

/// SASL settings of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// Mechanisms clients may use, in the order SaslHandshake lists them
    /// (OAUTHBEARER only if the server has a JWT validator,
    /// [`crate::ServerParts::jwt`]; it is left out otherwise).
    pub mechanisms: Vec<SaslMechanism>,
    /// `connections.max.reauth.ms`: how long an authentication lasts
    /// before the client must re-authenticate (0: for ever, Kafka's
    /// default).
    pub reauth_ms: u64,
}

impl SaslConfig {
    /// Every mechanism (OAUTHBEARER where tokens can be checked),
    /// sessions that never expire.
    pub fn all() -> Self {
        Self {
            mechanisms: SaslMechanism::ALL.to_vec(),
            reauth_ms: 0,
        }
    }
}

/// How long a connection refused by SASL stays open after its answer
/// (Kafka's `connection.failed.authentication.delay.ms` default): some
/// clients would see the close before the error, and a password guesser
/// is slowed.
pub(crate) const CLOSE_DELAY: Duration = Duration::from_millis(100);

const UNSUPPORTED_SASL_MECHANISM: i16 = Code::UnsupportedSaslMechanism as i16;
const ILLEGAL_SASL_STATE: i16 = Code::IllegalSaslState as i16;
const SASL_AUTHENTICATION_FAILED: i16 = Code::SaslAuthenticationFailed as i16;

/// One connection's authentication.
#[derive(Debug)]
pub(crate) struct Session {
    config: Option<SaslConfig>,
    state: State,
    principal: Principal,
    /// When the current authentication expires (`None`: never).
    expires_at: Option<Instant>,
    /// Close the connection once the answer in hand is sent.
    closing: bool,
}

#[derive(Debug)]
enum State {
    /// No authentication yet (on a SASL listener).
    Unauthenticated,
    /// A mechanism chosen, its exchange under way; `previous` is the
    /// mechanism of the authentication this one renews, if any.
    Exchanging {
        authenticator: Option<Box<SaslAuthenticator>>,
        previous: Option<SaslMechanism>,
    },
    Authenticated {
        mechanism: SaslMechanism,
    },
    /// Not a SASL listener: everyone is anonymous.
    Off,
}

impl Session {
    pub(crate) fn new(config: Option<SaslConfig>) -> Self {
        let state = if config.is_some() {
            State::Unauthenticated
        } else {
            State::Off
        };
        Self {
            config,
            state,
            principal: Principal::anonymous(),
            expires_at: None,
            closing: false,
        }
    }

    /// Who the connection is now.
    pub(crate) fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Whether the connection closes after the answer just produced.
    pub(crate) fn closing(&self) -> bool {
        self.closing
    }

    /// Whether a request of `api` may be served now; an error closes the
    /// connection without an answer (Kafka's behaviour).
    pub(crate) fn admit(&self, api: ApiKey) -> Result<(), ConnError> {
        if matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) {
            return Ok(());
        }
        match &self.state {
            State::Off => Ok(()),
            State::Unauthenticated | State::Exchanging { previous: None, .. } => {
                Err(ConnError::Unauthenticated { api })
            }
            State::Authenticated { .. }
            | State::Exchanging {
                previous: Some(_), ..
            } => match self.expires_at {
                Some(at) if Instant::now() >= at => Err(ConnError::SessionExpired { api }),
                _ => Ok(()),
            },
        }
    }

    /// Serves SaslHandshake or SaslAuthenticate.
    pub(crate) async fn handle(
        &mut self,
        api: ApiKey,
        version: i16,
        body: Bytes,
        shared: &Arc<Shared>,
    ) -> Result<Bytes, ConnError> {
        match api {
            ApiKey::SaslHandshake => self.handshake(version, body, shared),
            _ => self.authenticate(version, body, shared).await,
        }
    }

    fn handshake(
        &mut self,
        version: i16,
        body: Bytes,
        shared: &Shared,
    ) -> Result<Bytes, ConnError> {
        let api = ApiKey::SaslHandshake;
        let request: SaslHandshakeRequest = decode(api, version, body)?;
        // OAUTHBEARER only where tokens can be checked.
        let enabled: Vec<SaslMechanism> = self
            .config
            .as_ref()
            .map(|c| {
                c.mechanisms
                    .iter()
                    .copied()
                    .filter(|m| *m != SaslMechanism::OauthBearer || shared.jwt.is_some())
                    .collect()
            })
            .unwrap_or_default();
        let mut response = SaslHandshakeResponse::default()
            .with_mechanisms(enabled.iter().map(|m| str_bytes(m.name())).collect());
        if version == 0 {
            // Closed on a SASL listener (the client cannot go on); a
            // listener without SASL has nothing to end.
            self.closing = !matches!(self.state, State::Off);
            response.error_code = Code::UnsupportedVersion.code();
            return encode(api, version, &response);
        }
        let asked = SaslMechanism::from_name(&request.mechanism).filter(|m| enabled.contains(m));
        let previous = match &self.state {
            State::Off | State::Exchanging { .. } => {
                // Not a SASL listener, or a handshake in the middle of an
                // exchange.
                self.closing = !matches!(self.state, State::Off);
                response.error_code = ILLEGAL_SASL_STATE;
                return encode(api, version, &response);
            }
            State::Unauthenticated => None,
            State::Authenticated { mechanism } => Some(*mechanism),
        };
        match asked {
            // KIP-368: a re-authentication keeps the mechanism.
            Some(m) if previous.is_none_or(|p| p == m) => {
                let mut authenticator = SaslAuthenticator::new(m);
                if let Some(jwt) = &shared.jwt {
                    authenticator = authenticator.with_jwt(jwt.clone());
                }
                self.state = State::Exchanging {
                    authenticator: Some(Box::new(authenticator)),
                    previous,
                };
            }
            _ => {
                tracing::info!(mechanism = %&*request.mechanism, "unsupported SASL mechanism");
                self.closing = true;
                response.error_code = UNSUPPORTED_SASL_MECHANISM;
            }
        }
        encode(api, version, &response)
    }

    async fn authenticate(
        &mut self,
        version: i16,
        body: Bytes,
        shared: &Arc<Shared>,
    ) -> Result<Bytes, ConnError> {
        let api = ApiKey::SaslAuthenticate;
        let request: SaslAuthenticateRequest = decode(api, version, body)?;
        let State::Exchanging {
            authenticator,
            previous,
        } = &mut self.state
        else {
            // No handshake first (or not a SASL listener).
            self.closing = !matches!(self.state, State::Off);
            let response = SaslAuthenticateResponse::default()
                .with_error_code(ILLEGAL_SASL_STATE)
                .with_error_message(Some(str_bytes(
                    "SaslAuthenticate without a SaslHandshake first",
                )));
            return encode(api, version, &response);
        };
        let previous = *previous;
        let mut auth = authenticator
            .take()
            .expect("an exchange holds its authenticator between steps");
        let mechanism = auth.mechanism();
        let store: Option<Arc<CredentialStore>> = shared.credentials.clone();
        let token = request.auth_bytes;
        // PLAIN derives a key with thousands of HMACs: off the workers.
        let (auth, step) = blocking(move || {
            let step = auth.step(&token, store.as_deref()).map_err(|e| {
                tracing::info!(%e, %mechanism, "SASL authentication failed");
                (e.client_message(mechanism), e.server_token())
            });
            (auth, step)
        })
        .await;
        let mut response = SaslAuthenticateResponse::default();
        match step {
            Ok(SaslStep::Continue(token)) => {
                response.auth_bytes = token.into();
                if let State::Exchanging { authenticator, .. } = &mut self.state {
                    *authenticator = Some(auth);
                }
            }
            Ok(SaslStep::Done {
                principal,
                token,
                expires_at_ms,
            }) => {
                if previous.is_some() && principal != self.principal {
                    self.closing = true;
                    response.error_code = SASL_AUTHENTICATION_FAILED;
                    response.error_message = Some(str_bytes(&format!(
                        "Cannot change principals during re-authentication from {} to {principal}",
                        self.principal
                    )));
                    return encode(api, version, &response);
                }
                let reauth_ms = self.config.as_ref().map_or(0, |c| c.reauth_ms);
                let lifetime_ms = session_lifetime_ms(reauth_ms, expires_at_ms, now_ms());
                self.expires_at = lifetime_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
                response.session_lifetime_ms =
                    lifetime_ms.map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
                response.auth_bytes = token.into();
                tracing::debug!(%principal, %mechanism, "SASL authenticated");
                self.principal = principal;
                self.state = State::Authenticated { mechanism };
            }
            Err((message, token)) => {
                self.closing = true;
                response.error_code = SASL_AUTHENTICATION_FAILED;
                response.error_message = Some(str_bytes(&message));
                response.auth_bytes = token.into();
            }
        }
        encode(api, version, &response)
    }
}

/// How long a session lasts (`None`: for ever): `connections.max.reauth.ms`
/// if set, and no longer than its credential is valid (an OAUTHBEARER
/// token until its `exp`), as Kafka's broker computes it.
fn session_lifetime_ms(reauth_ms: u64, expires_at_ms: Option<i64>, now_ms: i64) -> Option<u64> {
    // A credential already expired was refused; at least 1 ms left.
    let credential = expires_at_ms.map(|at| u64::try_from(at - now_ms).unwrap_or(0).max(1));
    let reauth = (reauth_ms > 0).then_some(reauth_ms);
    match (reauth, credential) {
        (Some(r), Some(c)) => Some(r.min(c)),
        (r, c) => r.or(c),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::session_lifetime_ms;

    #[test]
    fn a_session_ends_at_the_earlier_of_reauth_and_credential_expiry() {
        assert_eq!(session_lifetime_ms(0, None, 1_000), None);
        assert_eq!(session_lifetime_ms(5_000, None, 1_000), Some(5_000));
        assert_eq!(session_lifetime_ms(0, Some(61_000), 1_000), Some(60_000));
        assert_eq!(session_lifetime_ms(5_000, Some(61_000), 1_000), Some(5_000));
        assert_eq!(
            session_lifetime_ms(90_000, Some(61_000), 1_000),
            Some(60_000)
        );
        assert_eq!(session_lifetime_ms(0, Some(900), 1_000), Some(1));
    }
}
