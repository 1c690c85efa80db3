//! A TLS server whose material can be replaced while it runs: each
//! handshake takes the config current at that moment, so a reload changes
//! what new connections see and leaves open ones (and their sessions)
//! alone. Reloads come from SIGHUP and from the files changing (their
//! modification times polled); a file that does not load keeps the old
//! config and logs why.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::io::BufReader;
use tokio::net::TcpStream;
use weir_auth::Principal;

use crate::{TlsError, TlsFiles, load, principal_of};

/// Longest a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the files are checked for a change.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);

/// Bytes read from the socket at once under TLS. rustls asks its
/// transport for at most 4 KiB at a time, so a full 16 KiB record took
/// four or more `recvfrom` calls; through a buffer of this size, one call
/// brings in about two records and rustls's reads are copies.
pub const READ_BUFFER_BYTES: usize = 32 * 1024;

/// A server-side TLS stream over TCP, read through a
/// [`READ_BUFFER_BYTES`] buffer (writes go straight to the socket).
pub type TlsStream = tokio_rustls::server::TlsStream<BufReader<TcpStream>>;

/// A file's modification time and length: what the poll compares.
type Stamp = Option<(SystemTime, u64)>;

/// The TLS material of one or more listeners, replaceable at run time.
#[derive(Debug)]
pub struct TlsServer {
    files: TlsFiles,
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// The files' stamps when they were last read.
    stamps: Mutex<Vec<Stamp>>,
    /// Successful reloads since start.
    reloads: AtomicU64,
}

impl TlsServer {
    /// Reads `files`; an error names the file and the problem.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let stamps = stamps(&files);
        let config = load::server_config(&files)?;
        Ok(Self {
            files,
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
            reloads: AtomicU64::new(0),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The config new handshakes use.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many reloads succeeded since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Reads the files again; on success new handshakes use them, on
    /// failure the old config stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = stamps(&self.files);
        // Stamps first, then the read: a change while reading is seen by
        // the next poll.
        *self
            .stamps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stamps;
        let config = load::server_config(&self.files)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Reloads if a file's modification time or length changed since the
    /// last read; `None` if none did.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = stamps(&self.files);
        let changed = *self
            .stamps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            != now;
        changed.then(|| self.reload())
    }

    /// Reloads on SIGHUP and when the files change (checked every
    /// `every`), logging each outcome, until the task is aborted. The
    /// SIGHUP handler is in place when this returns. Call within a tokio
    /// runtime.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let server = self.clone();
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(%e, "no SIGHUP handler: certificates reload on file changes only");
                None
            }
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let outcome = tokio::select! {
                    _ = hangup => Some(server.reload()),
                    _ = tick.tick() => server.reload_if_changed(),
                };
                match outcome {
                    None => {}
                    Some(Ok(())) => {
                        tracing::info!(cert = %server.files.cert.display(), "TLS certificate reloaded");
                    }
                    Some(Err(e)) => {
                        tracing::error!(%e, "TLS reload failed: keeping the certificate in use");
                    }
                }
            }
        })
    }

    /// The server side of a handshake on `tcp` with the current config,
    /// at most [`HANDSHAKE_TIMEOUT`] long; the stream and its client's
    /// principal (`User:ANONYMOUS` without a client certificate).
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<(TlsStream, Principal)> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config());
        let tcp = BufReader::with_capacity(READ_BUFFER_BYTES, tcp);
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        let principal = principal_of(stream.get_ref().1);
        Ok((stream, principal))
    }
}

fn stamps(files: &TlsFiles) -> Vec<Stamp> {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    };
    let mut all = vec![stamp(&files.cert), stamp(&files.key)];
    if let Some(ca) = &files.client_ca {
        all.push(stamp(ca));
    }
    all
}
