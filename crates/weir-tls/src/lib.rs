//! `weir-tls`: the server side of TLS for Weir's listeners (Kafka's `SSL`
//! and `SASL_SSL`, the HTTP API): a rustls config built from PEM files
//! (certificate chain, private key, optionally a client CA for mutual
//! TLS), the principal a client certificate names (`User:CN=...,O=...`,
//! as Kafka's default principal builder), and reloading those files
//! while the server runs without dropping a connection. rustls on the
//! `ring` provider: no OpenSSL, no aws-lc.

mod load;
mod principal;
mod server;
#[cfg(feature = "test-certs")]
pub mod test_certs;

use std::path::PathBuf;

pub use load::{FILE_BYTES_MAX, server_config};
pub use principal::{principal_of, subject_principal};
pub use server::{HANDSHAKE_TIMEOUT, READ_BUFFER_BYTES, RELOAD_POLL, TlsServer, TlsStream};

/// Kafka's `ssl.client.auth`: whether clients are asked for a
/// certificate, and whether one is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No certificate asked for: every client is `User:ANONYMOUS`.
    #[default]
    None,
    /// Asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    /// Needed: a client without a certificate the client CA signed is
    /// refused during the handshake.
    Required,
}

impl std::str::FromStr for ClientAuth {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "requested" => Ok(Self::Requested),
            "required" => Ok(Self::Required),
            other => Err(TlsError::ClientAuth(other.to_owned())),
        }
    }
}

/// Where a TLS server's material is, and how it treats client
/// certificates. The files are read at start and at each reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CAs client certificates are checked against, PEM (needed
    /// unless `client_auth` is `None`).
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// Why TLS material was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {bytes} bytes, over the limit of {FILE_BYTES_MAX} for a PEM file")]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{path}: malformed PEM: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("the private key in {key} does not fit the certificate in {cert}: {reason}")]
    KeyRefused {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("client CA {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("client certificate authentication ({0:?}) needs a client CA file")]
    NeedsClientCa(ClientAuth),
    #[error("client auth {0:?} is not one of required, requested, none")]
    ClientAuth(String),
    #[error("certificate not readable as X.509: {0}")]
    Certificate(String),
    #[error("TLS settings refused: {0}")]
    Rustls(#[from] rustls::Error),
}
