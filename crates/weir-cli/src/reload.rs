//! What `weir serve` takes again without a restart: the TLS certificate
//! and key, and the HTTP API's static token file, on SIGHUP and when
//! their files change (polled). SIGHUP always has this handler, so it
//! never stops the server, even with nothing to reload; a file that does
//! not load leaves what is in use and logs why.

use std::sync::Arc;
use std::time::Duration;

use weir_auth::bearer::TokenFile;
use weir_tls::TlsServer;

/// Reloads the TLS servers (one per client-authentication setting, same
/// files) and `tokens` on SIGHUP and when their files change
/// (checked every `every`) until the task is aborted. The SIGHUP handler
/// is in place when this returns; call within a tokio runtime.
pub fn watch(
    tls: Vec<Arc<TlsServer>>,
    tokens: Option<Arc<TokenFile>>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(%e, "no SIGHUP handler: files reload when they change only");
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
            let forced = tokio::select! {
                _ = hangup => true,
                _ = tick.tick() => false,
            };
            if forced && tls.is_empty() && tokens.is_none() {
                tracing::info!("SIGHUP: nothing to reload (no TLS files, no token file)");
            }
            for tls in &tls {
                let outcome = if forced {
                    Some(tls.reload())
                } else {
                    tls.reload_if_changed()
                };
                match outcome {
                    None => {}
                    Some(Ok(())) => {
                        tracing::info!(cert = %tls.files().cert.display(), "TLS certificate reloaded");
                    }
                    Some(Err(e)) => {
                        tracing::error!(%e, "TLS reload failed: keeping the certificate in use");
                    }
                }
            }
            if let Some(tokens) = &tokens {
                let outcome = if forced {
                    Some(tokens.reload())
                } else {
                    tokens.reload_if_changed()
                };
                let file = tokens.path().map(|p| p.display().to_string());
                match outcome {
                    None => {}
                    Some(Ok(n)) => tracing::info!(file, tokens = n, "HTTP token file reloaded"),
                    Some(Err(e)) => tracing::error!(
                        %e,
                        "HTTP token file reload failed: keeping the tokens in use"
                    ),
                }
            }
        }
    })
}
