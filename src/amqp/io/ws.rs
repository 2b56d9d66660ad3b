//! AMQP over WebSockets (the service's `wss://host/$servicebus/websocket/`, subprotocol
//! `AMQPWSB10`): a byte-stream adapter that carries the AMQP bytes in binary WebSocket
//! messages, so the driver and the engine above it see an ordinary stream.
//!
//! Framing is tungstenite's (through tokio-tungstenite, without its own TLS or connect code:
//! TLS stays ours, underneath). Peer bytes are bounded by [`config`]: frames and messages at
//! [`MAX_MESSAGE`], the handshake by tungstenite's own size check. Pings are answered by
//! tungstenite; a close, a text message or a protocol error ends the stream, which the driver
//! reports as a lost connection.

use super::BoxedTransport;
use crate::amqp::error::Error;
use bytes::{Buf, Bytes};
use futures_core::Stream;
use futures_sink::Sink;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The WebSocket subprotocol of AMQP 1.0 (OASIS AMQP WebSocket binding).
pub const SUBPROTOCOL: &str = "AMQPWSB10";

/// The other subprotocol name the service accepts.
pub const SUBPROTOCOL_ALT: &str = "amqp";

/// The path Event Hubs serves AMQP over WebSockets on.
pub const PATH: &str = "/$servicebus/websocket/";

/// The largest WebSocket frame or message we accept from a peer (and the largest we send):
/// far above any AMQP frame we allow, and a bound on what a hostile peer makes us buffer.
pub const MAX_MESSAGE: usize = 4 << 20;

/// The largest message we write at once; larger writes are split.
const MAX_WRITE: usize = 256 * 1024;

/// Our tungstenite settings: bounded frames and messages in both roles.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(64 * 1024)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(MAX_MESSAGE + MAX_WRITE)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

fn ws_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::WebSocket(format!("{what}: {e}"))
}

/// Runs the client handshake over `io` (TCP, a proxy tunnel, or TLS over either) towards
/// `ws[s]://authority{path}` and returns the AMQP byte stream inside it.
pub async fn connect(
    io: BoxedTransport,
    authority: &str,
    path: &str,
    secure: bool,
) -> Result<BoxedTransport, Error> {
    let scheme = if secure { "wss" } else { "ws" };
    let request = http::Request::builder()
        .method("GET")
        .uri(format!("{scheme}://{authority}{path}"))
        .header("Host", authority)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key())
        .header("Sec-WebSocket-Protocol", SUBPROTOCOL)
        .body(())
        .map_err(|e| ws_error("building the upgrade request", e))?;
    let (stream, response) =
        tokio_tungstenite::client_async_with_config(request, io, Some(config()))
            .await
            .map_err(|e| ws_error(&format!("upgrade at {authority}{path}"), e))?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !chosen.eq_ignore_ascii_case(SUBPROTOCOL) && !chosen.eq_ignore_ascii_case(SUBPROTOCOL_ALT) {
        return Err(Error::WebSocket(format!(
            "upgrade at {authority}{path}: the server chose subprotocol {chosen:?}, not {SUBPROTOCOL}"
        )));
    }
    Ok(Box::new(WsStream::new(stream)))
}

/// Picks the AMQP subprotocol from a client's offer, or refuses the upgrade.
#[allow(clippy::result_large_err)] // the callback signature is tungstenite's
fn choose_subprotocol(
    request: &Request,
    mut response: Response,
) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| p.eq_ignore_ascii_case(SUBPROTOCOL) || p.eq_ignore_ascii_case(SUBPROTOCOL_ALT))
        .map(str::to_owned);
    match offered.and_then(|p| http::HeaderValue::from_str(&p).ok()) {
        Some(p) => {
            response.headers_mut().insert("Sec-WebSocket-Protocol", p);
            Ok(response)
        }
        None => {
            let mut refusal =
                ErrorResponse::new(Some(format!("subprotocol {SUBPROTOCOL} required")));
            *refusal.status_mut() = http::StatusCode::BAD_REQUEST;
            Err(refusal)
        }
    }
}

/// Runs the server handshake over an accepted stream (plain or TLS) and returns the AMQP
/// byte stream inside it. Clients must offer `AMQPWSB10` (or `amqp`).
pub async fn accept(io: BoxedTransport) -> Result<BoxedTransport, Error> {
    let stream =
        tokio_tungstenite::accept_hdr_async_with_config(io, choose_subprotocol, Some(config()))
            .await
            .map_err(|e| ws_error("upgrade", e))?;
    Ok(Box::new(WsStream::new(stream)))
}

/// An AMQP byte stream carried in binary WebSocket messages.
pub struct WsStream {
    inner: WebSocketStream<BoxedTransport>,
    /// The rest of the last binary message, not yet read.
    pending: Bytes,
    /// The peer closed (or the stream ended): reads return end of stream.
    eof: bool,
}

impl WsStream {
    fn new(inner: WebSocketStream<BoxedTransport>) -> Self {
        WsStream {
            inner,
            pending: Bytes::new(),
            eof: false,
        }
    }
}

fn io_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(e) => e,
        E::ConnectionClosed | E::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {other}")),
    }
}

impl AsyncRead for WsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => self.pending = b,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket: text message on an AMQP stream",
                    )))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => self.eof = true,
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut inner = Pin::new(&mut self.inner);
        ready!(inner.as_mut().poll_ready(cx)).map_err(io_error)?;
        let n = buf.len().min(MAX_WRITE);
        inner
            .start_send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
            .map_err(io_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.inner).poll_close(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

/// What [`read_peer_bytes`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerReadSummary {
    /// Binary messages read.
    pub binary_messages: usize,
    /// Bytes in them.
    pub binary_bytes: usize,
    /// Whether the upgrade handshake (when asked for) completed.
    pub upgraded: bool,
}

/// Feeds `data` as a peer's bytes through the same framing code and limits as a live
/// connection: the server handshake first when `handshake` is set, then frames read in the
/// `server` role (or the client role) until the input ends or is refused. For the fuzz
/// targets; it must never panic, and no message may exceed [`MAX_MESSAGE`].
#[doc(hidden)]
pub fn read_peer_bytes(data: &[u8], server: bool, handshake: bool) -> PeerReadSummary {
    use tokio_tungstenite::tungstenite::{accept_hdr_with_config, WebSocket};
    let mut summary = PeerReadSummary::default();
    let mut frames = data;
    if handshake {
        // A client waits for the answer before it sends frames (tungstenite refuses bytes
        // after the request), so the request is replayed alone.
        let end = data
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(data.len(), |p| p + 4);
        let io = ReplayIo {
            input: io::Cursor::new(&data[..end]),
        };
        if accept_hdr_with_config(io, choose_subprotocol, Some(config())).is_err() {
            return summary;
        }
        frames = &data[end..];
    }
    let role = if server || handshake {
        Role::Server
    } else {
        Role::Client
    };
    let io = ReplayIo {
        input: io::Cursor::new(frames),
    };
    let mut ws = WebSocket::from_raw_socket(io, role, Some(config()));
    summary.upgraded = handshake;
    while let Ok(m) = ws.read() {
        if let Message::Binary(b) = m {
            assert!(b.len() <= MAX_MESSAGE, "message over the limit");
            summary.binary_messages += 1;
            summary.binary_bytes += b.len();
        }
    }
    summary
}

/// A byte source for [`read_peer_bytes`]: reads replay the input, writes are dropped.
struct ReplayIo<'a> {
    input: io::Cursor<&'a [u8]>,
}

impl io::Read for ReplayIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut self.input, buf)
    }
}

impl io::Write for ReplayIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    fn masked_binary(payload: &[u8]) -> Vec<u8> {
        let mut f = Frame::message(payload.to_vec(), OpCode::Data(Data::Binary), true);
        f.header_mut().mask = Some([1, 2, 3, 4]);
        let mut out = Vec::new();
        f.format(&mut out).unwrap();
        out
    }

    #[test]
    fn replayed_frames_yield_their_messages() {
        let mut data = masked_binary(b"\x00AMQP");
        data.extend(masked_binary(&[7u8; 300]));
        let s = read_peer_bytes(&data, true, false);
        assert_eq!((s.binary_messages, s.binary_bytes), (2, 305));
    }

    #[test]
    fn an_oversized_frame_is_refused_before_buffering() {
        // A header announcing 2^62 bytes.
        let mut data = vec![0x82, 0xff];
        data.extend((1u64 << 62).to_be_bytes());
        data.extend([0, 0, 0, 0]);
        assert_eq!(read_peer_bytes(&data, true, false).binary_messages, 0);
    }

    #[test]
    fn the_server_handshake_needs_the_amqp_subprotocol() {
        let req = |proto: &str| {
            format!(
                "GET /$servicebus/websocket/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n"
            )
            .into_bytes()
        };
        let mut ok = req("AMQPWSB10");
        ok.extend(masked_binary(b"hi"));
        let s = read_peer_bytes(&ok, true, true);
        assert!(s.upgraded && s.binary_messages == 1, "{s:?}");
        assert!(!read_peer_bytes(&req("mqtt"), true, true).upgraded);
    }
}
