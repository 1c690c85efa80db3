//! `weir serve`'s bearer-token options: static tokens for the HTTP API and
//! the key JWTs are checked with (for the HTTP API, and for Kafka's
//! OAUTHBEARER where SASL offers it). Kept apart from `serve.rs`, which
//! holds the rest of the server's settings.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use weir_auth::bearer::{BearerAuth, JwtConfig, JwtValidator, TokenFile};

/// Bearer tokens: each option from its flag, else its environment
/// variable, else the config file.
#[derive(Debug, Default, Args)]
pub struct BearerArgs {
    /// Static bearer tokens for the HTTP API: a file of `<principal>
    /// <token>` lines (`User:ci s3cret`, or `User:ci sha256:<hex>` so the
    /// file need not hold the token). With tokens or a JWT key set, the
    /// HTTP API refuses requests without a valid token (401).
    #[arg(long, env = "WEIR_HTTP_TOKENS_FILE")]
    http_tokens_file: Option<PathBuf>,
    /// The key JWTs are checked with: an HMAC secret (at least 32 bytes)
    /// or a PEM public key (RSA, EC or Ed25519).
    #[arg(long, env = "WEIR_JWT_KEY_FILE")]
    jwt_key_file: Option<PathBuf>,
    /// The `iss` a JWT must carry [default: any].
    #[arg(long)]
    jwt_issuer: Option<String>,
    /// The `aud` a JWT must carry [default: any].
    #[arg(long)]
    jwt_audience: Option<String>,
    /// The JWT claim naming the principal (`User:<claim>`) [default: sub].
    #[arg(long)]
    jwt_principal_claim: Option<String>,
}

/// The same settings from the config file (where they are top-level
/// keys of the same names).
#[derive(Debug, Default)]
pub struct BearerFile {
    pub http_tokens_file: Option<PathBuf>,
    pub jwt_key_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_principal_claim: Option<String>,
}

impl BearerArgs {
    /// Reads the token file and the key, if set: a missing or malformed
    /// one stops the server at start with the file's name.
    pub fn load(self, file: BearerFile) -> anyhow::Result<BearerAuth> {
        let tokens = match self.http_tokens_file.or(file.http_tokens_file) {
            Some(path) => Some(std::sync::Arc::new(
                TokenFile::load(&path)
                    .with_context(|| format!("--http-tokens-file {}", path.display()))?,
            )),
            None => None,
        };
        let jwt = match self.jwt_key_file.or(file.jwt_key_file) {
            Some(key_path) => {
                let mut config = JwtConfig::new(key_path.clone());
                config.issuer = self.jwt_issuer.or(file.jwt_issuer);
                config.audience = self.jwt_audience.or(file.jwt_audience);
                if let Some(claim) = self.jwt_principal_claim.or(file.jwt_principal_claim) {
                    config.principal_claim = claim;
                }
                Some(std::sync::Arc::new(
                    JwtValidator::new(&config)
                        .with_context(|| format!("--jwt-key-file {}", key_path.display()))?,
                ))
            }
            None => None,
        };
        Ok(BearerAuth { tokens, jwt })
    }
}
