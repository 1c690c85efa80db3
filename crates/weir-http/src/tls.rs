//! HTTPS for the API: a listener that accepts TCP connections and runs
//! their TLS handshakes in their own tasks (a slow client holds up no
//! other), handing axum finished TLS streams; and [`Peer`], each
//! request's client address and principal (a client certificate's
//! subject, else `User:ANONYMOUS`), as axum's `ConnectInfo`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use weir_auth::Principal;
use weir_tls::{TlsServer, TlsStream};

use crate::counted::Counted;

/// Handshakes in progress at once; more connections wait to be accepted.
const HANDSHAKES_MAX: usize = 256;

/// Finished handshakes waiting for axum to take them.
const READY_MAX: usize = 64;

/// Who sent a request: in every request's extensions as
/// `ConnectInfo<Peer>`, for handlers and, later, authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    /// `User:ANONYMOUS` on plain HTTP or without a client certificate.
    pub principal: Principal,
}

/// Plain TCP with `TCP_NODELAY` on each connection.
pub(crate) struct NoDelay(pub(crate) TcpListener);

impl Listener for NoDelay {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = Listener::accept(&mut self.0).await;
        // Answers are small writes after the request: without
        // TCP_NODELAY, Nagle's algorithm holds them for the client's
        // delayed ACK (tens of ms per call on a keep-alive connection).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%e, "TCP_NODELAY not set");
        }
        (tcp, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Listener::local_addr(&self.0)
    }
}

/// TLS over a TCP listener; the accept loop stops when this is dropped.
pub(crate) struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, tls: Arc<TlsServer>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(READY_MAX);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_MAX));
        let mut plain = NoDelay(tcp);
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let (stream, addr) = plain.accept().await;
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tls.accept(stream).await {
                        Ok((stream, _)) => {
                            drop(permit);
                            let _ = tx.send((stream, addr)).await;
                        }
                        Err(e) => tracing::debug!(%addr, %e, "TLS handshake failed"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, Counted<NoDelay>>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Counted<NoDelay>>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            principal: Principal::anonymous(),
        }
    }
}

impl Connected<IncomingStream<'_, Counted<TlsListener>>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Counted<TlsListener>>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            principal: weir_tls::principal_of(stream.io().io.get_ref().1),
        }
    }
}
