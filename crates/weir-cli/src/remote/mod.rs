//! The API subcommands of `weir` (`topic`, `produce`, `consume`, `stream`):
//! each talks to a running server over the HTTP API with `weir-client`,
//! prints a human table (or the API's JSON with `--json`), and exits with a
//! code scripts can rely on ([`exit_code`]).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use weir_client::{Client, ClientError};

mod records;
mod stream;
mod topic;

pub use records::{ConsumeArgs, ProduceArgs, parse_rfc3339, run_consume, run_produce};
pub use stream::{StreamArgs, run_stream};
pub use topic::{TopicArgs, run_topic};

/// Where the server is and how to print. Every API subcommand takes these.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// The server's HTTP address [default: the config file's `http_addr`,
    /// else 127.0.0.1:8080].
    #[arg(long, env = "WEIR_SERVER", global = true)]
    server: Option<String>,
    /// A `weir serve` config file whose `http_addr` names the server.
    #[arg(long, env = "WEIR_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The bearer token to send (a static token or a JWT), when the
    /// server asks for one.
    #[arg(long, env = "WEIR_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// The PEM file of the CA that signed an HTTPS server's certificate
    /// (`weir serve --http-tls`); the address then means `https://`.
    #[arg(long, env = "WEIR_CA", global = true)]
    ca: Option<PathBuf>,
    /// A client certificate (PEM chain) for a server that asks for one,
    /// with `--key`; needs `--ca`.
    #[arg(long, env = "WEIR_CERT", global = true, requires = "key")]
    cert: Option<PathBuf>,
    /// The private key (PEM) of `--cert`.
    #[arg(long, env = "WEIR_KEY", global = true, requires = "cert")]
    key: Option<PathBuf>,
    /// Print the API's JSON (one document, or one per line for records and
    /// events) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl RemoteArgs {
    pub(crate) fn client(&self, timeout: Option<Duration>) -> anyhow::Result<Client> {
        let address = match (&self.server, &self.config) {
            (Some(s), _) => s.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let table: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("in config file {}", path.display()))?;
                match table.get("http_addr") {
                    Some(toml::Value::String(a)) => a.clone(),
                    Some(_) => bail!("http_addr in {} is not a string", path.display()),
                    None => "127.0.0.1:8080".to_owned(),
                }
            }
            (None, None) => "127.0.0.1:8080".to_owned(),
        };
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let client = match (&self.ca, &self.cert, &self.key) {
            (None, None, None) => Client::with_timeout(&address, timeout)?,
            (None, _, _) => bail!("--cert and --key need --ca (the server's CA)"),
            (Some(ca), cert, key) => {
                let ca = read(ca)?;
                let identity = match (cert, key) {
                    (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                    _ => None,
                };
                let identity = identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
                Client::with_tls(&address, &ca, identity, timeout)?
            }
        };
        Ok(match &self.token {
            Some(token) => client.with_token(token.clone()),
            None => client,
        })
    }
}

/// Exit codes of the API subcommands.
pub mod exit {
    /// The server answered with an error not listed below.
    pub const FAILED: u8 = 1;
    /// The command line is wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// The topic, partition, stream or group does not exist (404), or the
    /// stream was deleted for good (410).
    pub const NOT_FOUND: u8 = 3;
    /// A conflict: a wrong expected version, a group with active members,
    /// a topic that exists (409).
    pub const CONFLICT: u8 = 4;
    /// The server could not be reached, or answered nonsense.
    pub const UNREACHABLE: u8 = 5;
    /// The server refused who we are (401) or what we asked (403).
    pub const DENIED: u8 = 6;
}

/// Nothing answers what was asked for, though the server did not refuse
/// it (`weir trace` of an id no event has): exits with
/// [`exit::NOT_FOUND`], as a 404 does.
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// What was asked conflicts with the server's state though the server
/// answered it (`weir schema check` of an incompatible schema): exits
/// with [`exit::CONFLICT`], as a 409 does.
#[derive(Debug)]
pub struct Conflict(pub String);

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Conflict {}

/// The exit code for an error of an API subcommand.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<NotFound>().is_some() {
        return exit::NOT_FOUND;
    }
    if err.downcast_ref::<Conflict>().is_some() {
        return exit::CONFLICT;
    }
    match err.downcast_ref::<ClientError>() {
        Some(ClientError::Problem(p)) => match p.status {
            404 | 410 => exit::NOT_FOUND,
            409 => exit::CONFLICT,
            401 | 403 => exit::DENIED,
            _ => exit::FAILED,
        },
        Some(ClientError::Transport { .. } | ClientError::Protocol { .. }) => exit::UNREACHABLE,
        Some(ClientError::Address { .. }) => exit::USAGE,
        None => exit::FAILED,
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not name=value")),
    }
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_json_line(
    out: &mut (impl Write + ?Sized),
    value: &impl serde::Serialize,
) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}
