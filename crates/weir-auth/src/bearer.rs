//! Bearer tokens: who presents a token is the principal it was issued
//! to. Two kinds, tried in turn: static tokens an operator lists in a file
//! (a principal each), and JWTs signed with a configured key, whose
//! subject claim names the principal. The HTTP API takes them from
//! `Authorization: Bearer`; Kafka's OAUTHBEARER carries the same JWTs, so
//! one validator serves both protocols.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest as _, Sha256};

use crate::{Principal, PrincipalError};

/// Largest token file read.
const TOKENS_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Most static tokens in one file.
pub const TOKENS_MAX: usize = 100_000;

/// Longest token accepted from a caller, static or JWT.
pub const TOKEN_BYTES_MAX: usize = 16 * 1024;

/// Why a token file, a key, or a presented token was refused.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    TokenFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the JWT key in {path} is unusable: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("token of {0} bytes is over the limit of {TOKEN_BYTES_MAX}")]
    TooLong(usize),
    #[error("unknown token")]
    Unknown,
    #[error("invalid JWT: {0}")]
    Jwt(String),
    #[error("the JWT's claim {claim:?} is missing or not a string")]
    Claim { claim: String },
    #[error("the JWT's principal: {0}")]
    Principal(#[from] PrincipalError),
}

/// Static tokens, each with its principal. Kept as SHA-256 digests, so
/// the process holds no token and a lookup compares digests only.
#[derive(Debug, Default)]
pub struct StaticTokens {
    by_digest: HashMap<[u8; 32], Principal>,
}

impl StaticTokens {
    /// Reads a token file: one `<principal> <token>` per line, where the
    /// token is given as is or as `sha256:<hex digest>` (so the file need
    /// not hold it either); blank lines and `#` comments are skipped.
    pub fn load(path: &Path) -> Result<Self, BearerError> {
        let io = |source| BearerError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = crate::file::read(path, TOKENS_FILE_BYTES_MAX)
            .map_err(io)?
            .ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
        let text = String::from_utf8(bytes).map_err(|_| BearerError::TokenFile {
            path: path.to_owned(),
            line: 0,
            reason: "not UTF-8".into(),
        })?;
        Self::parse(&text).map_err(|(line, reason)| BearerError::TokenFile {
            path: path.to_owned(),
            line,
            reason,
        })
    }

    /// Parses the token file's text; an error names the 1-based line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut by_digest = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(principal), Some(token), None) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err((line_no, "expected `<principal> <token>`".into()));
            };
            let principal = Principal::parse(principal).map_err(|e| (line_no, e.to_string()))?;
            let digest = match token.strip_prefix("sha256:") {
                Some(hex) => parse_digest(hex).ok_or_else(|| {
                    (
                        line_no,
                        "sha256: must be followed by 64 hex digits".to_owned(),
                    )
                })?,
                None => digest(token),
            };
            if by_digest.insert(digest, principal).is_some() {
                return Err((line_no, "the same token is listed twice".into()));
            }
            if by_digest.len() > TOKENS_MAX {
                return Err((line_no, format!("more than {TOKENS_MAX} tokens")));
            }
        }
        Ok(Self { by_digest })
    }

    /// The principal `token` was issued to.
    pub fn principal(&self, token: &str) -> Option<&Principal> {
        self.by_digest.get(&digest(token))
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// How JWTs are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The key file: an HMAC secret (its bytes, trailing newline removed)
    /// or a PEM public key (RSA, EC P-256/P-384 or Ed25519).
    pub key_path: PathBuf,
    /// `iss` the token must carry, if set.
    pub issuer: Option<String>,
    /// `aud` the token must carry, if set.
    pub audience: Option<String>,
    /// The claim naming the principal (`sub`, as Kafka's
    /// `sasl.oauthbearer.sub.claim.name` defaults to).
    pub principal_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
}

impl JwtConfig {
    pub fn new(key_path: PathBuf) -> Self {
        Self {
            key_path,
            issuer: None,
            audience: None,
            principal_claim: "sub".to_owned(),
            leeway_s: 30,
        }
    }
}

/// A validated token: who, and until when (milliseconds since the epoch,
/// `None` for a static token, which does not expire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub expires_at_ms: Option<i64>,
}

/// Checks JWTs: signature with the configured key and an algorithm of its
/// family only (never `none`, never HMAC with a public key), `exp`
/// required, `nbf`, `iss` and `aud` when configured.
pub struct JwtValidator {
    key: DecodingKey,
    validation: Validation,
    principal_claim: String,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("algorithms", &self.validation.algorithms)
            .field("principal_claim", &self.principal_claim)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    pub fn new(config: &JwtConfig) -> Result<Self, BearerError> {
        let path = &config.key_path;
        let bytes = crate::file::read(path, 1024 * 1024)
            .map_err(|source| BearerError::Io {
                path: path.clone(),
                source,
            })?
            .ok_or_else(|| BearerError::Io {
                path: path.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        let key_error = |reason: String| BearerError::Key {
            path: path.clone(),
            reason,
        };
        let (key, algorithms) = if bytes.starts_with(b"-----BEGIN") {
            public_key(&bytes).map_err(key_error)?
        } else {
            let secret = bytes.trim_ascii_end();
            if secret.len() < 32 {
                return Err(key_error(format!(
                    "an HMAC secret of {} bytes is too short (at least 32)",
                    secret.len()
                )));
            }
            (
                DecodingKey::from_secret(secret),
                vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            )
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = config.leeway_s;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Self {
            key,
            validation,
            principal_claim: config.principal_claim.clone(),
        })
    }

    /// The principal a valid token names (`User:<claim>`), and its expiry.
    pub fn validate(&self, token: &str) -> Result<Authenticated, BearerError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(BearerError::TooLong(token.len()));
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| BearerError::Jwt(e.to_string()))?;
        let claims = data.claims;
        let name = claims
            .get(&self.principal_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| BearerError::Claim {
                claim: self.principal_claim.clone(),
            })?;
        let principal = Principal::parse(&format!("{}:{name}", Principal::USER))?;
        let expires_at_ms = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .map(|s| s.saturating_mul(1000));
        Ok(Authenticated {
            principal,
            expires_at_ms,
        })
    }
}

/// A PEM public key and the algorithms of its family.
fn public_key(pem: &[u8]) -> Result<(DecodingKey, Vec<Algorithm>), String> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok((
            k,
            vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        ));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        return Ok((k, vec![Algorithm::ES256, Algorithm::ES384]));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok((k, vec![Algorithm::EdDSA]));
    }
    Err("not an RSA, EC or Ed25519 public key in PEM".into())
}

/// Both kinds of bearer token a server accepts.
#[derive(Debug, Default)]
pub struct BearerAuth {
    /// Shared with whoever reloads the file (`weir serve`'s SIGHUP).
    pub tokens: Option<std::sync::Arc<TokenFile>>,
    /// Shared with the Kafka listener's OAUTHBEARER.
    pub jwt: Option<std::sync::Arc<JwtValidator>>,
}

impl BearerAuth {
    /// Whether any kind is configured (if not, callers are anonymous).
    pub fn is_configured(&self) -> bool {
        self.tokens.is_some() || self.jwt.is_some()
    }

    /// Who presents `token`: a static token's principal, else a valid
    /// JWT's.
    pub fn authenticate(&self, token: &str) -> Result<Authenticated, BearerError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(BearerError::TooLong(token.len()));
        }
        if let Some(p) = self.tokens.as_ref().and_then(|t| t.principal(token)) {
            return Ok(Authenticated {
                principal: p,
                expires_at_ms: None,
            });
        }
        match &self.jwt {
            Some(jwt) if token.matches('.').count() == 2 => jwt.validate(token),
            _ => Err(BearerError::Unknown),
        }
    }
}

mod token_file;
pub use token_file::TokenFile;

#[cfg(test)]
mod tests;
