//! One client connection: length-prefixed frames in, one request handled at
//! a time (Kafka answers a connection's requests in order), responses out.
//! A frame that cannot be answered closes only this connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument as _;
use weir_auth::Principal;

use crate::apis;
use crate::{Endpoint, SaslConfig, Shared};

/// A connection's byte stream, split into a reader and a writer that run
/// in separate tasks. Plain TCP splits into owned halves (no lock between
/// them, no copy); a TLS stream through tokio's split.
pub(crate) trait Stream: Send + 'static {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;
    fn halves(self) -> (Self::Read, Self::Write);
}

impl Stream for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;

    fn halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl Stream for weir_tls::TlsStream {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;

    fn halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("connection i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {bytes} bytes for api key {api_key} is over the limit of {bytes_max}")]
    FrameTooLarge {
        api_key: i16,
        bytes: usize,
        bytes_max: usize,
    },
    #[error("frame of {bytes} bytes is too short for a request header")]
    FrameTooShort { bytes: usize },
    #[error("unknown api key {api_key}")]
    UnknownApiKey { api_key: i16 },
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("{api:?} before SASL authentication")]
    Unauthenticated { api: ApiKey },
    #[error("{api:?} after the SASL session expired (connections.max.reauth.ms)")]
    SessionExpired { api: ApiKey },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Requests of one connection in flight at once (read, not yet answered).
const IN_FLIGHT_MAX: usize = 8;

/// An answer on its way: the response header and body, or nothing.
type Answer = tokio::task::JoinHandle<Result<Option<(Bytes, Bytes)>, ConnError>>;

/// Serves one connection until the client leaves, a frame is bad, or the
/// server stops. Requests are handled in the order they arrive; a Produce
/// whose batches are written waits for durability in its own task while the
/// next requests are read and handled, and a writer answers them all in
/// order. At most [`IN_FLIGHT_MAX`] answers are pending; beyond that the
/// reader waits, and so does the client. `listener` is the listener the
/// client came through, `principal` who the transport authenticated (a
/// TLS client certificate's subject, else `User:ANONYMOUS`).
pub(crate) async fn serve<S: Stream>(
    socket: S,
    peer: SocketAddr,
    listener: Arc<Endpoint>,
    principal: Principal,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let (mut reader, writer) = socket.halves();
    tracing::debug!(%peer, listener = %listener.name, %principal, "connection opened");
    let who = Who {
        peer,
        listener,
        principal,
    };
    let (answers, mut pending) = tokio::sync::mpsc::channel::<Answer>(IN_FLIGHT_MAX);
    let reading = tokio::spawn(async move {
        // SASL on a SASL listener only; the mechanisms are the server's.
        let mut sasl = crate::sasl::Session::new(
            who.listener
                .protocol
                .needs_sasl()
                .then(|| shared.config.sasl.clone().unwrap_or_else(SaslConfig::all)),
        );
        loop {
            let frame = tokio::select! {
                _ = stop.changed() => break,
                frame = read_frame(&mut reader, &shared) => frame,
            };
            // Latency is timed from the frame read to its answer ready.
            let timed = match (&frame, &shared.recorder) {
                (Ok(Some(frame)), Some(recorder)) => Some(Timed {
                    recorder: recorder.clone(),
                    api_key: (&frame[0..2]).get_i16(),
                    started: std::time::Instant::now(),
                }),
                (Err(ConnError::FrameTooLarge { .. }), Some(recorder)) => {
                    recorder.reject(weir_metrics::Rejection::KafkaRequestTooLarge);
                    None
                }
                _ => None,
            };
            let answer = match frame {
                Ok(Some(frame)) => handle(frame, &who, &shared, &mut sasl).await,
                Ok(None) => break,
                Err(e) => Err(e),
            };
            let failed = answer.is_err();
            let task = match answer {
                Ok(Pending::Ready(answer)) => {
                    if let Some(t) = timed {
                        t.done();
                    }
                    tokio::spawn(std::future::ready(Ok(answer)))
                }
                Ok(Pending::Later(head, later)) => tokio::spawn(async move {
                    let body = later.await?;
                    if let Some(t) = timed {
                        t.done();
                    }
                    Ok(body.map(|body| (head, body)))
                }),
                Err(e) => tokio::spawn(std::future::ready(Err(e))),
            };
            // After a bad frame (or a failed authentication) the answers
            // before it still go out, then the connection closes.
            if answers.send(task).await.is_err() || failed {
                break;
            }
            if sasl.closing() {
                // The refusal goes out now, the close a moment later (Kafka's
                // connection.failed.authentication.delay.ms): clients read
                // the answer before they see the close.
                tokio::time::sleep(crate::sasl::CLOSE_DELAY).await;
                break;
            }
        }
    });
    let mut writer = BufWriter::new(writer);
    while let Some(answer) = pending.recv().await {
        match answer.await {
            Ok(Ok(Some((head, body)))) => {
                if let Err(e) = write_frame(&mut writer, &head, &body).await {
                    tracing::debug!(%peer, %e, "client went away");
                    break;
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::info!(%peer, %e, "closing connection");
                break;
            }
            Err(e) => {
                tracing::error!(%peer, %e, "a request handler failed");
                break;
            }
        }
    }
    reading.abort();
    let _ = writer.shutdown().await;
}

/// Who is at the other end of a connection, and through which listener.
struct Who {
    peer: SocketAddr,
    listener: Arc<Endpoint>,
    principal: Principal,
}

/// A request being timed for the metrics.
struct Timed {
    recorder: Arc<weir_metrics::Recorder>,
    api_key: i16,
    started: std::time::Instant,
}

impl Timed {
    fn done(self) {
        let key = self.api_key;
        self.recorder.kafka_request(
            key,
            || ApiKey::try_from(key).map_or_else(|()| format!("key{key}"), |a| format!("{a:?}")),
            self.started.elapsed(),
        );
    }
}

/// Reads one frame, checking its length against the limit of its API
/// before reading the body.
async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    shared: &Shared,
) -> Result<Option<Bytes>, ConnError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len);
    let Ok(len) = usize::try_from(len) else {
        return Err(ConnError::FrameTooShort { bytes: 0 });
    };
    if len < 8 {
        return Err(ConnError::FrameTooShort { bytes: len });
    }
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).await?;
    let api_key = i16::from_be_bytes(head);
    let bytes_max = if api_key == ApiKey::Produce as i16 {
        shared.config.request_bytes_max
    } else {
        shared.config.admin_request_bytes_max
    };
    if len > bytes_max {
        return Err(ConnError::FrameTooLarge {
            api_key,
            bytes: len,
            bytes_max,
        });
    }
    // Read straight into spare capacity: no zero-filling of a buffer that
    // is about to be overwritten.
    let mut body = BytesMut::with_capacity(len);
    body.put_slice(&head);
    while body.len() < len {
        let mut limited = (&mut *reader).take((len - body.len()) as u64);
        if limited.read_buf(&mut body).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(Some(body.freeze()))
}

async fn write_frame(
    writer: &mut BufWriter<impl AsyncWrite + Unpin>,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<()> {
    writer
        .write_all(&((head.len() + body.len()) as i32).to_be_bytes())
        .await?;
    writer.write_all(head).await?;
    writer.write_all(body).await?;
    writer.flush().await
}

/// Checks the API and version of a frame (without its length prefix) and
/// decodes its header; returns the API, version, header and the body left.
fn open_frame(mut frame: Bytes) -> Result<(ApiKey, i16, RequestHeader, Bytes), ConnError> {
    if frame.len() < 8 {
        return Err(ConnError::FrameTooShort { bytes: frame.len() });
    }
    let api_key = (&frame[0..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let api = ApiKey::try_from(api_key).map_err(|()| ConnError::UnknownApiKey { api_key })?;
    let range = apis::supported_versions(api).ok_or(ConnError::UnknownApiKey { api_key })?;
    if !range.contains(&version) {
        return Err(ConnError::UnsupportedVersion { api, version });
    }
    let header =
        RequestHeader::decode(&mut frame, api.request_header_version(version)).map_err(|e| {
            ConnError::Malformed {
                api,
                version,
                reason: e.to_string(),
            }
        })?;
    Ok((api, version, header, frame))
}

/// Decodes one request frame (without its length prefix) as the server
/// would, without serving it: the API and version must be served, and the
/// header and body must decode. For fuzzing and tools.
pub fn decode_request(frame: &[u8]) -> Result<(), String> {
    let (api, version, _, body) =
        open_frame(Bytes::copy_from_slice(frame)).map_err(|e| e.to_string())?;
    apis::decode_only(api, version, body).map_err(|e| e.to_string())
}

/// What [`handle`] leaves to do: nothing but send (header and body), or
/// wait for the body.
enum Pending {
    Ready(Option<(Bytes, Bytes)>),
    Later(Bytes, apis::Later),
}

/// Decodes the header and dispatches to the API's module; the response
/// header is encoded here, the body by the module (now, or once durable).
/// The request runs in a span with its API, client id and correlation id,
/// so every line logged while serving it carries them; the span lasts
/// until the answer is ready (for a Produce, until durable).
async fn handle(
    frame: Bytes,
    who: &Who,
    shared: &Arc<Shared>,
    sasl: &mut crate::sasl::Session,
) -> Result<Pending, ConnError> {
    let (api, version, header, body) = match open_frame(frame.clone()) {
        Ok(opened) => opened,
        Err(ConnError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            ..
        }) => {
            // KIP-511: a client newer than the broker gets error 35 and the
            // broker's versions in a v0 body, then retries with a version
            // from the list.
            let correlation_id = (&frame[4..8]).get_i32();
            let whole = Bytes::from(apis::api_versions::unsupported(correlation_id));
            return Ok(Pending::Ready(Some((whole, Bytes::new()))));
        }
        Err(e) => return Err(e),
    };
    sasl.admit(api)?;
    let mut head = BytesMut::with_capacity(8);
    kafka_protocol::messages::ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(&mut head, api.response_header_version(version))
        .map_err(|e| ConnError::Malformed {
            api,
            version,
            reason: format!("encoding the response header: {e}"),
        })?;
    let head = head.freeze();
    let caller = apis::Caller {
        peer: who.peer,
        listener: who.listener.clone(),
        // On a SASL listener, whom SASL authenticated; elsewhere the TLS
        // client certificate's principal, or anonymous.
        principal: if who.listener.protocol.needs_sasl() {
            sasl.principal().clone()
        } else {
            who.principal.clone()
        },
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        authorizer: shared.authorizer.clone(),
    };
    // Fields a log formatter writes per request: kept few and cheap (the
    // peer is on the connection's lines, not here).
    let span = tracing::info_span!(
        "kafka.request",
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        api = api_name(api),
        api_key = api as i16,
        api_version = version,
        client_id = (!caller.client_id.is_empty()).then_some(caller.client_id.as_str()),
        correlation_id = header.correlation_id,
    );
    if shared.config.name_request_spans {
        span.record("otel.name", api_name(api));
        span.record("otel.kind", "server");
    }
    span.in_scope(|| tracing::debug!("kafka request"));
    let reply = match api {
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => apis::Reply::Now(Some(
            sasl.handle(api, version, body, shared)
                .instrument(span.clone())
                .await?,
        )),
        _ => {
            apis::dispatch(api, version, body, &caller, shared)
                .instrument(span.clone())
                .await?
        }
    };
    Ok(match reply {
        apis::Reply::Now(body) => Pending::Ready(body.map(|body| (head, body))),
        apis::Reply::Later(later) => Pending::Later(head, Box::pin(later.instrument(span))),
    })
}

/// The API's name as Kafka spells it (`Produce`), for spans: each key's
/// name is formatted once (a bounded table of static strings).
fn api_name(api: ApiKey) -> &'static str {
    const KEYS_MAX: i16 = 256;
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..KEYS_MAX)
            .map(|k| {
                ApiKey::try_from(k).map_or("Unknown", |a| {
                    let name: &'static str = Box::leak(format!("{a:?}").into_boxed_str());
                    name
                })
            })
            .collect()
    });
    usize::try_from(api as i16)
        .ok()
        .and_then(|k| names.get(k))
        .copied()
        .unwrap_or("Unknown")
}

/// Decodes a request body of a known version.
pub(crate) fn decode<T: Decodable>(
    api: ApiKey,
    version: i16,
    mut body: Bytes,
) -> Result<T, ConnError> {
    T::decode(&mut body, version).map_err(|e| ConnError::Malformed {
        api,
        version,
        reason: e.to_string(),
    })
}

/// Encodes a response body.
pub(crate) fn encode<T: Encodable>(
    api: ApiKey,
    version: i16,
    response: &T,
) -> Result<Bytes, ConnError> {
    let mut out = BytesMut::new();
    response
        .encode(&mut out, version)
        .map_err(|e| ConnError::Malformed {
            api,
            version,
            reason: format!("encoding the response: {e}"),
        })?;
    Ok(out.freeze())
}
