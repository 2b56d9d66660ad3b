//! AMQP over WebSockets (the service's `wss://host/$servicebus/websocket/`, subprotocol
//! `AMQPWSB10`): a byte-stream adapter that carries the AMQP bytes in binary WebSocket
//! frames, so the driver and the engine above it see an ordinary stream.
//!
//! The HTTP upgrade is tungstenite's (through tokio-tungstenite, without its own TLS or
//! connect code: TLS stays ours, underneath; its head is bounded by tungstenite's own size
//! check). The framing after it is ours ([`frame`]), for throughput: the library's message
//! API costs two extra copies of every byte each way. Pings are answered; a close is
//! answered and ends the stream; a text frame or any other protocol error ends it with an
//! error, which the driver reports as a lost connection.

pub mod frame;

use super::BoxedTransport;
use crate::amqp::error::Error;
use frame::{Control, ControlPayload, Deframer, FrameError, Role, MAX_HEADER};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The WebSocket subprotocol of AMQP 1.0 (OASIS AMQP WebSocket binding).
pub const SUBPROTOCOL: &str = "AMQPWSB10";

/// The other subprotocol name the service accepts.
pub const SUBPROTOCOL_ALT: &str = "amqp";

/// The path Event Hubs serves AMQP over WebSockets on.
pub const PATH: &str = "/$servicebus/websocket/";

/// The largest WebSocket frame we accept from a peer: far above any AMQP frame we allow.
/// Payloads stream through without reassembly, so this bounds no buffer; it refuses the
/// absurd early.
pub const MAX_MESSAGE: usize = frame::MAX_FRAME as usize;

/// The largest frame we write at once; larger writes are split.
const MAX_WRITE: usize = 256 * 1024;

/// Our tungstenite settings (for the upgrade only; tungstenite never sees a frame).
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
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
    let (mut stream, response) =
        tokio_tungstenite::client_async_with_config(request, UpgradeIo::new(io), Some(config()))
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
    let (io, tail) = stream.get_mut().take_parts()?;
    Ok(Box::new(WsStream::new(io, Role::Client, tail)))
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
    let mut stream = tokio_tungstenite::accept_hdr_async_with_config(
        UpgradeIo::new(io),
        choose_subprotocol,
        Some(config()),
    )
    .await
    .map_err(|e| ws_error("upgrade", e))?;
    let (io, tail) = stream.get_mut().take_parts()?;
    Ok(Box::new(WsStream::new(io, Role::Server, tail)))
}

/// Bytes read from the transport at a time when a frame's payload does not go straight
/// into the caller's buffer (headers, small frames, the start of a payload).
const READ_BUFFER: usize = 16 * 1024;

/// The least payload worth a read of its own straight into the caller's buffer; less goes
/// through the read buffer, where one read picks up several small frames.
const DIRECT_READ_MIN: usize = 4096;

/// The transport during the upgrade: the handshake code gets the bytes up to the end of the
/// HTTP head and no further, so frames the peer sends right behind its head stay ours.
struct UpgradeIo {
    io: Option<BoxedTransport>,
    /// Bytes read past the head.
    tail: Vec<u8>,
    /// How much of `\r\n\r\n` the bytes so far end with.
    matched: u8,
    head_done: bool,
}

impl UpgradeIo {
    fn new(io: BoxedTransport) -> Self {
        UpgradeIo {
            io: Some(io),
            tail: Vec::new(),
            matched: 0,
            head_done: false,
        }
    }

    fn io(&mut self) -> io::Result<&mut BoxedTransport> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::other("WebSocket: transport already handed over"))
    }

    /// The transport and what was read past the head, once the handshake is done.
    fn take_parts(&mut self) -> Result<(BoxedTransport, Vec<u8>), Error> {
        let io = self
            .io
            .take()
            .ok_or_else(|| Error::WebSocket("transport already handed over".into()))?;
        Ok((io, std::mem::take(&mut self.tail)))
    }
}

impl AsyncRead for UpgradeIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.head_done {
            return Poll::Ready(Err(io::Error::other(
                "WebSocket: the handshake read past the HTTP head",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(self.io()?).poll_read(cx, buf))?;
        let mut matched = self.matched;
        let mut end = None;
        for (i, &b) in buf.filled().iter().enumerate().skip(before) {
            matched = match (matched, b) {
                (0 | 2, b'\r') | (1 | 3, b'\n') => matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if matched == 4 {
                end = Some(i + 1);
                break;
            }
        }
        self.matched = matched;
        if let Some(end) = end {
            self.tail = buf.filled().get(end..).unwrap_or_default().to_vec();
            buf.set_filled(end);
            self.head_done = true;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for UpgradeIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()?).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_shutdown(cx)
    }
}

/// Per-frame masking keys for the client role: a keyed hash (SipHash, with std's random
/// per-process keys) of a counter, so they are unpredictable to whoever chooses the payload,
/// as RFC 6455 §10.3 asks, without a random number generator of our own.
struct Masks {
    keys: std::collections::hash_map::RandomState,
    counter: u64,
}

impl Masks {
    fn new() -> Self {
        Masks {
            keys: std::collections::hash_map::RandomState::new(),
            counter: 0,
        }
    }

    fn next(&mut self) -> [u8; 4] {
        use std::hash::BuildHasher;
        self.counter = self.counter.wrapping_add(1);
        (self.keys.hash_one(self.counter) as u32).to_ne_bytes()
    }
}

/// An AMQP byte stream carried in binary WebSocket frames, with our own framing
/// ([`frame`]): each write becomes one binary frame (masked in the copy that builds it),
/// and the payload of the peer's frames is unmasked straight into the reader's buffer.
pub struct WsStream {
    io: BoxedTransport,
    deframer: Deframer,
    /// Bytes read from the transport, not yet decoded: `rx[rx_start..rx_end]`.
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    /// Whole frames not yet written: `tx[tx_start..tx_end]`. It only grows (to the largest
    /// frame written), so its bytes are written once per frame, never zeroed again.
    tx: Vec<u8>,
    tx_start: usize,
    tx_end: usize,
    /// The answer to the peer's latest ping, until it goes into `tx` (one at most, so a
    /// peer that pings and does not read cannot make us queue without bound).
    pong: Option<ControlPayload>,
    masks: Option<Masks>,
    /// The peer closed (or the transport ended): reads return end of stream.
    eof: bool,
    /// Our close is queued: nothing more may be written.
    close_sent: bool,
}

impl WsStream {
    fn new(io: BoxedTransport, role: Role, tail: Vec<u8>) -> Self {
        let mut rx = tail;
        let rx_end = rx.len();
        rx.resize(rx.len().max(READ_BUFFER), 0);
        WsStream {
            io,
            deframer: Deframer::new(role),
            rx,
            rx_start: 0,
            rx_end,
            tx: Vec::new(),
            tx_start: 0,
            tx_end: 0,
            pong: None,
            masks: (role == Role::Client).then(Masks::new),
            eof: false,
            close_sent: false,
        }
    }

    /// Appends one final frame of `opcode` carrying `payload` to `tx`, masked in the copy
    /// when we are the client.
    fn queue_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.queue_frame_parts(opcode, &[io::IoSlice::new(payload)], payload.len());
    }

    /// Queues one frame whose payload is the first `len` bytes of `parts` one after another
    /// (a vectored write: an AMQP frame header and its payload become one WebSocket frame,
    /// copied once, masked on the way).
    fn queue_frame_parts(&mut self, opcode: u8, parts: &[io::IoSlice<'_>], len: usize) {
        let mask = self.masks.as_mut().map(Masks::next);
        let mut header = [0u8; MAX_HEADER];
        let h = frame::write_header(&mut header, opcode, len, mask);
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_end = 0;
        }
        let start = self.tx_end;
        let end = start + h + len;
        if self.tx.len() < end {
            self.tx.resize(end, 0);
        }
        self.tx[start..start + h].copy_from_slice(&header[..h]);
        let mut at = start + h;
        for part in parts {
            let n = part.len().min(end - at);
            if n == 0 {
                break;
            }
            let body = &mut self.tx[at..at + n];
            match mask {
                Some(m) => {
                    // The mask runs on across the parts: this one starts at payload byte k.
                    let k = at - (start + h);
                    let turned = [m[k % 4], m[(k + 1) % 4], m[(k + 2) % 4], m[(k + 3) % 4]];
                    frame::xor_copy(body, &part[..n], turned, 0);
                }
                None => body.copy_from_slice(&part[..n]),
            }
            at += n;
        }
        self.tx_end = end;
    }

    /// Writes out the queued frames (and a pending pong after them).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.tx_start == self.tx_end {
                match self.pong.take() {
                    Some(p) if !self.close_sent => self.queue_frame(frame::OP_PONG, p.as_slice()),
                    _ => return Poll::Ready(Ok(())),
                }
            }
            let n = ready!(
                Pin::new(&mut self.io).poll_write(cx, &self.tx[self.tx_start..self.tx_end])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.tx_start += n;
        }
    }

    /// Acts on a control frame from the peer.
    fn on_control(&mut self, control: Control, cx: &mut Context<'_>) -> io::Result<()> {
        match control {
            Control::Ping(p) => self.pong = Some(p),
            Control::Pong => return Ok(()),
            Control::Close(code) => {
                if !self.close_sent {
                    let echo = code.map(u16::to_be_bytes);
                    self.queue_frame(frame::OP_CLOSE, echo.as_ref().map_or(&[], |c| &c[..]));
                    self.close_sent = true;
                }
                self.eof = true;
            }
        }
        // The answer goes out now if the transport takes it; otherwise with the next write
        // or flush (the driver flushes after every write, and when the stream ends).
        match self.poll_drain(cx) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

fn invalid(e: FrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {e}"))
}

impl AsyncRead for WsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let start = buf.filled().len();
        loop {
            if this.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.rx_start < this.rx_end {
                let out = buf.initialize_unfilled();
                let d = match this
                    .deframer
                    .decode(&this.rx[this.rx_start..this.rx_end], out)
                {
                    Ok(d) => d,
                    // What came before the broken frame is handed out first; the error
                    // stays, and comes with the next read.
                    Err(_) if buf.filled().len() > start => return Poll::Ready(Ok(())),
                    Err(e) => return Poll::Ready(Err(invalid(e))),
                };
                this.rx_start += d.consumed;
                buf.advance(d.produced);
                if let Some(c) = d.control {
                    this.on_control(c, cx)?;
                    continue;
                }
            }
            if buf.filled().len() > start {
                return Poll::Ready(Ok(()));
            }
            // A broken frame after payload handed out earlier: its error comes now, before
            // any more reading (which might otherwise end in a clean end of stream).
            if let Some(e) = this.deframer.failure() {
                return Poll::Ready(Err(invalid(e.clone())));
            }
            // Nothing decoded: read more, straight into the caller's buffer when a large
            // payload is all that comes next.
            let direct = this.deframer.direct_room().min(buf.remaining());
            if this.rx_start == this.rx_end && direct >= DIRECT_READ_MIN {
                let dst = buf.initialize_unfilled_to(direct);
                let mut part = ReadBuf::new(dst);
                ready!(Pin::new(&mut this.io).poll_read(cx, &mut part))?;
                let n = part.filled().len();
                if n == 0 {
                    this.eof = true;
                    continue;
                }
                this.deframer.unmask_direct(&mut dst[..n]);
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.rx_start > 0 {
                this.rx.copy_within(this.rx_start..this.rx_end, 0);
                this.rx_end -= this.rx_start;
                this.rx_start = 0;
            }
            let mut part = ReadBuf::new(&mut this.rx[this.rx_end..]);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut part))?;
            let n = part.filled().len();
            if n == 0 {
                // The transport ended (after a close, or without one: the driver reports a
                // lost connection either way).
                this.eof = true;
                continue;
            }
            this.rx_end += n;
        }
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.close_sent {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // One frame queued at a time bounds what we hold to one write.
        ready!(this.poll_drain(cx))?;
        let n = buf.len().min(MAX_WRITE);
        this.queue_frame(frame::OP_BINARY, &buf[..n]);
        // Start it on its way; what the transport does not take now goes with the flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.close_sent {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = bufs
            .iter()
            .map(|b| b.len())
            .fold(0usize, usize::saturating_add)
            .min(MAX_WRITE);
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_drain(cx))?;
        this.queue_frame_parts(frame::OP_BINARY, bufs, n);
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.close_sent {
            // Normal closure (1000).
            self.queue_frame(frame::OP_CLOSE, &1000u16.to_be_bytes());
            self.close_sent = true;
        }
        ready!(self.poll_drain(cx))?;
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What [`read_peer_bytes`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerReadSummary {
    /// Binary messages whose final frame was read.
    pub binary_messages: usize,
    /// Payload bytes read (of whole and partial messages).
    pub binary_bytes: usize,
    /// FNV-1a of those bytes, so that two read patterns can be compared.
    pub checksum: u64,
    /// Whether the upgrade handshake (when asked for) completed.
    pub upgraded: bool,
    /// Whether the stream ended with an error (rather than the input's end or a close).
    pub refused: bool,
}

/// Feeds `data` as a peer's bytes through the same code and limits as a live connection:
/// the server handshake first when `handshake` is set, then [`WsStream`] reading in the
/// `server` role (or the client role) until the input ends or is refused. For the fuzz
/// targets; it must never panic.
#[doc(hidden)]
pub fn read_peer_bytes(data: &[u8], server: bool, handshake: bool) -> PeerReadSummary {
    read_peer_bytes_in(data, server, handshake, &[usize::MAX], 64 * 1024)
}

/// [`read_peer_bytes`] with the transport handing out `reads[0]`, `reads[1]`, … bytes per
/// read (cycling; a zero counts as one) into reads of `out` bytes: whatever the pattern, the
/// summary must be the same.
#[doc(hidden)]
pub fn read_peer_bytes_in(
    data: &[u8],
    server: bool,
    handshake: bool,
    reads: &[usize],
    out: usize,
) -> PeerReadSummary {
    use tokio_tungstenite::tungstenite::accept_hdr_with_config;
    let mut summary = PeerReadSummary::default();
    let mut frames = data;
    if handshake {
        // A client waits for the answer before it sends frames, so the request is replayed
        // alone.
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
        summary.upgraded = true;
    }
    let role = if server || handshake {
        Role::Server
    } else {
        Role::Client
    };
    let replay = Replay {
        data: frames.to_vec(),
        pos: 0,
        reads: if reads.is_empty() {
            vec![usize::MAX]
        } else {
            reads.to_vec()
        },
        next: 0,
    };
    let mut ws = WsStream::new(Box::new(replay), role, Vec::new());
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut buf = vec![0u8; out.max(1)];
    summary.checksum = 0xcbf2_9ce4_8422_2325;
    loop {
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut ws).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => break,
            Poll::Ready(Ok(())) => {
                summary.binary_bytes += rb.filled().len();
                for &b in rb.filled() {
                    summary.checksum =
                        (summary.checksum ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                }
            }
            Poll::Ready(Err(_)) => {
                summary.refused = true;
                break;
            }
            // The replay never waits; stop rather than spin if that ever changes.
            Poll::Pending => break,
        }
    }
    summary.binary_messages = usize::try_from(ws.deframer.messages()).unwrap_or(usize::MAX);
    summary
}

/// A transport for [`read_peer_bytes_in`]: reads replay the input in the given sizes,
/// writes are dropped.
struct Replay {
    data: Vec<u8>,
    pos: usize,
    reads: Vec<usize>,
    next: usize,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let size = this
            .reads
            .get(this.next)
            .copied()
            .unwrap_or(usize::MAX)
            .max(1);
        this.next = (this.next + 1) % this.reads.len().max(1);
        let rest = this.data.get(this.pos..).unwrap_or_default();
        let n = size.min(rest.len()).min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A byte source for the handshake in [`read_peer_bytes_in`]: reads replay the input,
/// writes are dropped.
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
    fn replay_patterns_give_the_same_summary() {
        let mut data = masked_binary(&[1u8; 10_000]);
        data.extend(masked_binary(b"tail"));
        let whole = read_peer_bytes(&data, true, false);
        assert_eq!((whole.binary_messages, whole.binary_bytes), (2, 10_004));
        for (reads, out) in [(&[1usize][..], 3), (&[7, 5000, 2], 4096), (&[9000], 65536)] {
            assert_eq!(read_peer_bytes_in(&data, true, false, reads, out), whole);
        }
    }

    #[test]
    fn bytes_before_a_broken_frame_are_still_read() {
        let mut data = masked_binary(b"good");
        data.extend([0x81, 0x80, 0, 0, 0, 0]); // a masked, empty text frame
        let s = read_peer_bytes(&data, true, false);
        assert!(s.refused && s.binary_bytes == 4, "{s:?}");
    }

    #[test]
    fn an_error_behind_an_empty_message_is_reported_whatever_the_reads() {
        // Found by the fuzzer: an empty binary message, then a stray continuation header;
        // read at once, the error used to be lost to the end of the input.
        let data = [0x82, 0x00, 0x00, 0x00, 0x00];
        let whole = read_peer_bytes(&data, false, false);
        assert!(whole.refused && whole.binary_messages == 1, "{whole:?}");
        assert_eq!(read_peer_bytes_in(&data, false, false, &[1], 3), whole);
        // Payload, then a close with a 1-byte body in the same read.
        let data = [0x82, 0x01, b'x', 0x88, 0x01, 0x00];
        let whole = read_peer_bytes(&data, false, false);
        assert!(whole.refused && whole.binary_bytes == 1, "{whole:?}");
        assert_eq!(read_peer_bytes_in(&data, false, false, &[2], 5), whole);
    }

    /// A client and a server stream over an in-memory pipe.
    fn pair() -> (WsStream, WsStream) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        (
            WsStream::new(Box::new(a), Role::Client, Vec::new()),
            WsStream::new(Box::new(b), Role::Server, Vec::new()),
        )
    }

    #[tokio::test]
    async fn a_stream_crosses_in_both_directions() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, mut server) = pair();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(99_999) {
                client.write_all(chunk).await.unwrap();
            }
            client.flush().await.unwrap();
            let mut back = vec![0u8; 6];
            client.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"thanks");
            client.shutdown().await.unwrap();
            // The server's answer to our close ends the stream.
            assert_eq!(client.read(&mut back).await.unwrap(), 0);
        });
        let mut got = vec![0u8; data.len()];
        server.read_exact(&mut got).await.unwrap();
        assert!(got == data, "the stream came out changed");
        server.write_all(b"thanks").await.unwrap();
        server.flush().await.unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        // The close was answered (the client's last read ends), and no more may be written.
        server.flush().await.unwrap();
        writer.await.unwrap();
        assert!(server.write_all(b"late").await.is_err());
    }

    /// Vectored writes (as the driver makes them: frame headers and payloads apart) become
    /// frames whose masked payload reads back as the parts in order, whatever their lengths
    /// (the mask runs on across parts of any length).
    #[tokio::test]
    async fn vectored_writes_cross_masked_and_in_order() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, mut server) = pair();
        assert!(client.is_write_vectored());
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 + i / 97) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            let cuts = [1usize, 3, 38, 65_536, 7, 2, 100_000, 5];
            let mut parts = Vec::new();
            let mut at = 0;
            for c in cuts.iter().cycle() {
                if at >= sent.len() {
                    break;
                }
                let end = (at + c).min(sent.len());
                parts.push(&sent[at..end]);
                at = end;
            }
            let mut i = 0;
            let mut skip = 0;
            while i < parts.len() {
                let mut slices = vec![io::IoSlice::new(&parts[i][skip..])];
                slices.extend(parts[i + 1..].iter().take(5).map(|p| io::IoSlice::new(p)));
                let mut n = client.write_vectored(&slices).await.unwrap();
                assert!(n > 0);
                while n > 0 {
                    let left = parts[i].len() - skip;
                    if n >= left {
                        n -= left;
                        i += 1;
                        skip = 0;
                    } else {
                        skip += n;
                        n = 0;
                    }
                }
            }
            client.flush().await.unwrap();
            client.shutdown().await.unwrap();
        });
        let mut got = vec![0u8; data.len()];
        server.read_exact(&mut got).await.unwrap();
        assert!(got == data, "the stream came out changed");
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn pings_are_answered_and_frames_behind_the_upgrade_kept() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut raw, theirs) = tokio::io::duplex(4096);
        // The server's ping came in the same read as its upgrade answer.
        let tail = [&[0x89u8, 2][..], b"hi", &[0x82, 3], b"abc"].concat();
        let mut client = WsStream::new(Box::new(theirs), Role::Client, tail);
        let mut got = [0u8; 3];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
        let mut pong = [0u8; 8];
        raw.read_exact(&mut pong).await.unwrap();
        let mask = [pong[2], pong[3], pong[4], pong[5]];
        assert_eq!(&pong[..2], &[0x8a, 0x82]);
        assert_eq!([pong[6] ^ mask[0], pong[7] ^ mask[1]], *b"hi");
        // A peer's close: answered with the same code, then the end of the stream.
        raw.write_all(&[0x88, 2, 0x03, 0xe9]).await.unwrap();
        assert_eq!(client.read(&mut got).await.unwrap(), 0);
        let mut close = [0u8; 8];
        raw.read_exact(&mut close).await.unwrap();
        assert_eq!(&close[..2], &[0x88, 0x82]);
        assert_eq!([close[6] ^ close[2], close[7] ^ close[3]], [0x03, 0xe9]);
    }

    #[tokio::test]
    async fn a_protocol_error_ends_the_stream_with_an_error() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut raw, theirs) = tokio::io::duplex(4096);
        let mut server = WsStream::new(Box::new(theirs), Role::Server, Vec::new());
        raw.write_all(&[0x82, 0x01, b'x']).await.unwrap(); // unmasked, from a client
        let e = server.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("unmasked"), "{e}");
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
