//! The connection state machine: protocol headers and the SASL hand-off, open and close, the
//! idle timeout, the output buffer, and frame dispatch to the session, link and delivery
//! rooms (which add their own `impl Connection` blocks for their commands and frames).

use super::config::ConnectionConfig;
use super::event::{Event, LinkId};
use super::frame_event;
use super::link::Link;
use super::session::Session;
use crate::amqp::codec::{Decode, Decoder, Encode, Str, Symbol};
use crate::amqp::frame::{
    self, parse_frame, AmqpFrame, CutFrame, ProtocolHeader, ProtocolId, RawFrame, FRAME_TYPE_AMQP,
    MIN_MAX_FRAME_SIZE,
};
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::transport::{Close, Open, Performative};
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A transfer's payload as it came off the input: a slice of a frozen frame, or still
/// writable (so that the parts of a delivery spanning frames can be joined in place).
#[derive(Debug)]
pub(crate) enum InPayload {
    /// A shared slice.
    Shared(Bytes),
    /// A writable part of the input buffer.
    Owned(BytesMut),
}

impl From<Bytes> for InPayload {
    fn from(b: Bytes) -> Self {
        InPayload::Shared(b)
    }
}

impl From<BytesMut> for InPayload {
    fn from(b: BytesMut) -> Self {
        InPayload::Owned(b)
    }
}

impl InPayload {
    pub(crate) fn len(&self) -> usize {
        match self {
            InPayload::Shared(b) => b.len(),
            InPayload::Owned(b) => b.len(),
        }
    }
}

/// Which side of the connection this engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We connected.
    Client,
    /// We accepted.
    Server,
}

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Exchanging protocol headers or SASL frames.
    Handshaking,
    /// Our open is out (or will be); waiting for the peer's.
    Opening,
    /// Both opens exchanged.
    Open,
    /// We sent close; waiting for the peer's.
    Closing,
    /// Finished: nothing more will be read; write out what is left and drop the socket.
    Closed,
}

/// What the input bytes are expected to be next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// A protocol header (which one depends on role and SASL progress).
    Header,
    /// SASL frames.
    Sasl,
    /// AMQP frames.
    Frames,
    /// Nothing: the connection is finished.
    Done,
}

/// A sans-IO AMQP 1.0 connection endpoint. See the [module docs](super).
pub struct Connection {
    pub(super) role: Role,
    pub(super) config: ConnectionConfig,
    pub(super) state: ConnectionState,
    pub(super) phase: Phase,
    /// SASL header/outcome exchanged (or skipped): the next header is the AMQP one.
    pub(super) sasl_done: bool,
    pub(super) inbuf: BytesMut,
    /// Output not yet handed out, after everything in `out_chunks`.
    pub(super) out: BytesMut,
    /// Output handed out as it is, ahead of `out`: the header of a large transfer and its
    /// payload `Bytes` (never copied into `out`), and `out` cut off before them. The flag
    /// says whether the chunk ends a frame.
    out_chunks: VecDeque<(Bytes, bool)>,
    /// The last transfer frame read said more frames of its delivery follow: the next one is
    /// likely a continuation, worth moving into place behind the first part (see
    /// [`Self::process_input`]).
    pub(super) continuation_expected: bool,
    pub(super) events: VecDeque<Event>,
    /// Sessions by our channel.
    pub(super) sessions: HashMap<u16, Session>,
    /// The peer's channel → ours.
    pub(super) remote_channels: HashMap<u16, u16>,
    pub(super) links: HashMap<LinkId, Link>,
    pub(super) next_link_id: u64,
    open_sent: bool,
    pub(super) remote_open: Option<Open>,
    close_sent: bool,
    pub(super) remote_max_frame_size: u32,
    pub(super) remote_channel_max: u16,
    remote_idle_timeout: Option<Duration>,
    pub(super) now: Instant,
    last_received: Instant,
    last_sent: Instant,
    /// A limit was hit and logged: later hits on this connection stay quiet.
    limit_logged: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("sessions", &self.sessions.len())
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

/// Longest description we put in an error we make. Descriptions may quote peer bytes (a
/// descriptor it sent); capped, the close, end or detach carrying one still fits the smallest
/// max-frame-size a peer may announce (512).
const MAX_DESCRIPTION_LEN: usize = 256;

/// Transfer payloads from this size on are handed to the driver as their own chunk rather
/// than copied behind the frame header: below it, the copy costs less than another buffer
/// in the write.
pub(super) const ZERO_COPY_PAYLOAD: usize = 4096;

pub(super) fn err(cond: Symbol, description: impl Into<String>) -> AmqpError {
    let mut description = description.into();
    if description.len() > MAX_DESCRIPTION_LEN {
        let mut cut = MAX_DESCRIPTION_LEN;
        while !description.is_char_boundary(cut) {
            cut -= 1;
        }
        description.truncate(cut);
        description.push_str("...");
    }
    AmqpError::with_description(cond, description)
}

impl Connection {
    /// A client endpoint. The protocol header (and, without SASL, `open`) is queued at once.
    pub fn client(config: ConnectionConfig, now: Instant) -> Self {
        let mut c = Self::new(Role::Client, config, now);
        if c.config.sasl.is_some() {
            c.write_header(ProtocolHeader::SASL);
        } else {
            c.sasl_done = true;
            c.write_header(ProtocolHeader::AMQP);
            c.send_open();
        }
        c
    }

    /// A server endpoint, waiting for the client's protocol header.
    pub fn server(config: ConnectionConfig, now: Instant) -> Self {
        Self::new(Role::Server, config, now)
    }

    fn new(role: Role, config: ConnectionConfig, now: Instant) -> Self {
        Connection {
            role,
            config,
            state: ConnectionState::Handshaking,
            phase: Phase::Header,
            sasl_done: false,
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            out_chunks: VecDeque::new(),
            continuation_expected: false,
            events: VecDeque::new(),
            sessions: HashMap::new(),
            remote_channels: HashMap::new(),
            links: HashMap::new(),
            next_link_id: 0,
            open_sent: false,
            remote_open: None,
            close_sent: false,
            remote_max_frame_size: MIN_MAX_FRAME_SIZE,
            remote_channel_max: 0,
            remote_idle_timeout: None,
            now,
            last_received: now,
            last_sent: now,
            limit_logged: false,
        }
    }

    /// Which side we are.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The settings this end was made with.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// Where the connection is in its life (for tests: [`super::testing::state`]).
    pub(crate) fn state(&self) -> ConnectionState {
        self.state
    }

    /// True once the connection is finished (write out [`Self::poll_transmit`], then drop).
    pub fn is_closed(&self) -> bool {
        self.state == ConnectionState::Closed
    }

    /// The peer's open, once received.
    pub fn remote_open(&self) -> Option<&Open> {
        self.remote_open.as_ref()
    }

    /// The largest frame we may send: the peer's announced limit.
    pub(crate) fn remote_max_frame_size(&self) -> u32 {
        self.remote_max_frame_size
    }

    /// Bytes received but not yet processed: at most one partial frame, so never more than our
    /// max-frame-size (or a partial protocol header).
    pub(crate) fn buffered_input(&self) -> usize {
        self.inbuf.len()
    }

    /// Feeds bytes received from the peer.
    pub fn handle_bytes(&mut self, data: &[u8], now: Instant) {
        self.now = now;
        if self.phase == Phase::Done {
            return;
        }
        self.last_received = now;
        self.inbuf.extend_from_slice(data);
        self.process_input();
    }

    /// The input buffer, with at least `min_room` bytes of spare capacity (`block` more are
    /// reserved when it has less), for a driver to read the socket into directly rather than
    /// through a buffer of its own; then [`Self::handle_input`]. Frames are cut from it as
    /// slices, so reading in large blocks keeps consecutive frames in one allocation (the
    /// parts of a delivery spanning frames are then joined without a copy).
    pub fn input_buffer(&mut self, min_room: usize, block: usize) -> &mut BytesMut {
        if self.inbuf.capacity() - self.inbuf.len() < min_room {
            self.inbuf.reserve(block.max(min_room));
        }
        &mut self.inbuf
    }

    /// Processes the bytes a driver appended to [`Self::input_buffer`].
    pub fn handle_input(&mut self, now: Instant) {
        self.now = now;
        if self.phase == Phase::Done {
            self.inbuf.clear();
            return;
        }
        self.last_received = now;
        self.process_input();
    }

    fn process_input(&mut self) {
        loop {
            match self.phase {
                Phase::Done => {
                    self.inbuf.clear();
                    return;
                }
                Phase::Header => {
                    if self.inbuf.len() < 8 {
                        return;
                    }
                    let mut h = [0u8; 8];
                    h.copy_from_slice(&self.inbuf.split_to(8));
                    self.handle_header(h);
                }
                Phase::Frames => {
                    let limit = self.config.max_frame_size.max(MIN_MAX_FRAME_SIZE);
                    let compact = self.continuation_expected;
                    match frame::cut_frame_split(&mut self.inbuf, limit, compact) {
                        Ok(CutFrame::Whole(raw)) => self.handle_raw_frame(raw),
                        Ok(CutFrame::Split {
                            channel,
                            performative,
                            payload,
                        }) => self.handle_split_frame(channel, performative, payload),
                        Ok(CutFrame::Incomplete) => return,
                        Err(e) => {
                            self.fail(err(condition::CONNECTION_FRAMING_ERROR, e.to_string()));
                        }
                    }
                }
                Phase::Sasl => {
                    let limit = self.config.max_frame_size.max(MIN_MAX_FRAME_SIZE);
                    match parse_frame(&mut self.inbuf, limit) {
                        Ok(Some(raw)) => self.handle_raw_frame(raw),
                        Ok(None) => return,
                        Err(e) => {
                            // An oversized frame is a framing error of the peer's;
                            // frame-size-too-small is for a sender that cannot fit a frame.
                            self.fail(err(condition::CONNECTION_FRAMING_ERROR, e.to_string()));
                        }
                    }
                }
            }
        }
    }

    fn handle_header(&mut self, bytes: [u8; 8]) {
        let header = match ProtocolHeader::parse(bytes) {
            Ok(h) if h.is_v1_0() => h,
            _ => {
                // Say what we speak, then hang up (the spec's answer to an unknown header).
                let ours = if self.sasl_wanted() {
                    ProtocolHeader::SASL
                } else {
                    ProtocolHeader::AMQP
                };
                if self.role == Role::Server {
                    self.write_header(ours);
                }
                self.finish(
                    Some(err(
                        condition::CONNECTION_FRAMING_ERROR,
                        format!("unsupported protocol header {bytes:02x?}"),
                    )),
                    false,
                );
                return;
            }
        };
        match (self.role, header.id) {
            (Role::Client, ProtocolId::Sasl) if !self.sasl_done => self.phase = Phase::Sasl,
            (Role::Client, ProtocolId::Amqp) if self.sasl_done => {
                self.phase = Phase::Frames;
                self.state = ConnectionState::Opening;
            }
            (Role::Server, ProtocolId::Sasl)
                if !self.sasl_done && self.config.sasl_server.is_some() =>
            {
                self.write_header(ProtocolHeader::SASL);
                self.sasl_server_start();
            }
            (Role::Server, ProtocolId::Amqp)
                if self.sasl_done
                    || self.config.sasl_server.is_none()
                    || self.config.allow_no_sasl =>
            {
                self.sasl_done = true;
                self.write_header(ProtocolHeader::AMQP);
                self.phase = Phase::Frames;
                self.state = ConnectionState::Opening;
            }
            (role, id) => {
                if role == Role::Server {
                    let ours = if self.sasl_wanted() {
                        ProtocolHeader::SASL
                    } else {
                        ProtocolHeader::AMQP
                    };
                    self.write_header(ours);
                }
                self.finish(
                    Some(err(
                        condition::NOT_ALLOWED,
                        format!("unexpected protocol header {id:?} at this point"),
                    )),
                    false,
                );
            }
        }
    }

    fn sasl_wanted(&self) -> bool {
        !self.sasl_done
            && match self.role {
                Role::Client => self.config.sasl.is_some(),
                Role::Server => self.config.sasl_server.is_some(),
            }
    }

    fn handle_raw_frame(&mut self, raw: RawFrame) {
        if self.phase == Phase::Sasl {
            self.handle_sasl_frame(raw);
            return;
        }
        if raw.frame_type != FRAME_TYPE_AMQP {
            self.fail(err(
                condition::CONNECTION_FRAMING_ERROR,
                "SASL frame after the SASL layer",
            ));
            return;
        }
        let payload_len = raw.body.len();
        let frame = match AmqpFrame::decode(raw) {
            Ok(f) => f,
            Err(e) => {
                self.fail(err(condition::DECODE_ERROR, e.to_string()));
                return;
            }
        };
        let Some(performative) = frame.performative else {
            frame_event!(quiet self.config.frame_trace, conn = %self.config.container_id, dir = "in", channel = frame.channel, "heartbeat");
            return;
        };
        self.handle_frame(
            frame.channel,
            performative,
            InPayload::Shared(frame.payload),
            payload_len,
        );
    }

    /// A frame whose payload came apart from its performative ([`CutFrame::Split`]).
    fn handle_split_frame(&mut self, channel: u16, performative: Bytes, payload: BytesMut) {
        let payload_len = performative.len() + payload.len();
        let mut d = Decoder::new(performative);
        let p = match <Performative as Decode>::decode(&mut d) {
            Ok(p) => p,
            Err(e) => {
                self.fail(err(condition::DECODE_ERROR, e.to_string()));
                return;
            }
        };
        let payload = if d.is_empty() {
            InPayload::Owned(payload)
        } else {
            // The performative ended before its list's size said (not seen from a sane peer):
            // what is left of it belongs to the payload, as it would on the ordinary path.
            let rest = d.take_rest();
            let mut joined = BytesMut::with_capacity(rest.len() + payload.len());
            joined.extend_from_slice(&rest);
            joined.extend_from_slice(&payload);
            InPayload::Owned(joined)
        };
        self.handle_frame(channel, p, payload, payload_len);
    }

    fn handle_frame(
        &mut self,
        channel: u16,
        performative: Performative,
        payload: InPayload,
        payload_len: usize,
    ) {
        frame_event!(
            loud self.config.frame_trace,
            conn = %self.config.container_id,
            dir = "in",
            channel,
            performative = performative.name(),
            size = payload_len,
            frame = ?performative,
        );
        if self.close_sent && !matches!(performative, Performative::Close(_)) {
            return;
        }
        if self.remote_open.is_none() && !matches!(performative, Performative::Open(_)) {
            self.fail(err(
                condition::NOT_ALLOWED,
                format!("{} before open", performative.name()),
            ));
            return;
        }
        match performative {
            Performative::Open(open) => self.on_open(channel, open),
            Performative::Close(close) => self.on_close(close),
            Performative::Begin(begin) => self.on_begin(channel, begin),
            other => {
                let Some(&local) = self.remote_channels.get(&channel) else {
                    self.fail(err(
                        condition::NOT_ALLOWED,
                        format!(
                            "{} on channel {} which has no session",
                            other.name(),
                            channel
                        ),
                    ));
                    return;
                };
                match other {
                    Performative::End(end) => self.on_end(local, end),
                    Performative::Attach(a) => self.on_attach(local, a),
                    Performative::Flow(f) => self.on_flow(local, f),
                    Performative::Transfer(t) => self.on_transfer(local, t, payload),
                    Performative::Disposition(d) => self.on_disposition(local, d),
                    Performative::Detach(d) => self.on_detach(local, d),
                    _ => {}
                }
            }
        }
    }

    /// The peer made us reach one of [`ConnectionLimits`](super::ConnectionLimits): the
    /// connection ends, and the first hit is logged (a flood of hits would be a log flood).
    pub(super) fn limit_exceeded(&mut self, limit: &'static str, value: usize) {
        if !self.limit_logged {
            self.limit_logged = true;
            tracing::warn!(conn = %self.config.container_id, limit, value, "peer exceeded a connection limit");
        }
        self.fail(err(
            condition::RESOURCE_LIMIT_EXCEEDED,
            format!("{limit} ({value}) exceeded"),
        ));
    }

    // ---- connection level -------------------------------------------------------------

    pub(super) fn write_header(&mut self, h: ProtocolHeader) {
        frame_event!(loud self.config.frame_trace, conn = %self.config.container_id, dir = "out", header = ?h.id, "protocol header");
        self.out.extend_from_slice(&h.to_bytes());
    }

    pub(super) fn write(&mut self, channel: u16, p: Performative, payload: &[u8]) {
        if !self.admit(channel, &p, payload.len()) {
            return;
        }
        frame::write_amqp_frame(&mut self.out, channel, &p, payload);
        self.last_sent = self.now;
    }

    /// Whether frame `p` may still be written, tracing it either way. Our close is the last
    /// frame we send (commands reacting to events queued before the close, such as accepting
    /// a link, must not put frames after it).
    fn admit(&self, channel: u16, p: &Performative, payload_len: usize) -> bool {
        if (self.close_sent || self.state == ConnectionState::Closed)
            && !matches!(p, Performative::Close(_))
        {
            frame_event!(quiet self.config.frame_trace, conn = %self.config.container_id, performative = p.name(), "dropped after close");
            return false;
        }
        frame_event!(
            loud self.config.frame_trace,
            conn = %self.config.container_id,
            dir = "out",
            channel,
            performative = p.name(),
            size = p.encoded_len() + payload_len,
            frame = ?p,
        );
        true
    }

    /// Writes a transfer frame. A payload of at least [`ZERO_COPY_PAYLOAD`] bytes is not
    /// copied: the frame header and performative become one chunk and the payload another,
    /// for the driver to write with one vectored write.
    pub(super) fn write_transfer(&mut self, channel: u16, p: Performative, payload: Bytes) {
        if payload.len() < ZERO_COPY_PAYLOAD {
            self.write(channel, p, &payload);
            return;
        }
        if !self.admit(channel, &p, payload.len()) {
            return;
        }
        frame::write_amqp_frame_head(&mut self.out, channel, &p, payload.len());
        self.out_chunks
            .push_back((self.out.split().freeze(), false));
        self.out_chunks.push_back((payload, true));
        self.last_sent = self.now;
    }

    pub(super) fn send_open(&mut self) {
        if self.open_sent {
            return;
        }
        self.open_sent = true;
        let c = &self.config;
        let open = Open {
            container_id: Str::from(c.container_id.as_str()),
            hostname: c.hostname.as_deref().map(Str::from),
            max_frame_size: c.max_frame_size.max(MIN_MAX_FRAME_SIZE),
            channel_max: c.channel_max,
            idle_time_out: c
                .idle_timeout
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: c.offered_capabilities.clone(),
            desired_capabilities: c.desired_capabilities.clone(),
            properties: c.properties.clone(),
        };
        self.write(0, open.into(), &[]);
    }

    fn on_open(&mut self, channel: u16, open: Open) {
        if self.remote_open.is_some() || channel != 0 {
            self.fail(err(
                condition::NOT_ALLOWED,
                "second open, or open off channel 0",
            ));
            return;
        }
        if open.max_frame_size < MIN_MAX_FRAME_SIZE {
            self.fail(err(
                condition::FRAME_SIZE_TOO_SMALL,
                format!("max-frame-size {} is below 512", open.max_frame_size),
            ));
            return;
        }
        self.remote_max_frame_size = open.max_frame_size;
        self.remote_channel_max = open.channel_max;
        self.remote_idle_timeout = open
            .idle_time_out
            .filter(|&ms| ms > 0)
            .map(|ms| Duration::from_millis(u64::from(ms)));
        if self.role == Role::Server {
            self.send_open();
        }
        self.remote_open = Some(open.clone());
        if self.state == ConnectionState::Opening || self.state == ConnectionState::Handshaking {
            self.state = ConnectionState::Open;
        }
        self.events.push_back(Event::Opened {
            remote: Box::new(open),
        });
    }

    fn on_close(&mut self, close: Close) {
        let by_peer = !self.close_sent;
        if !self.close_sent {
            self.close_sent = true;
            self.write(0, Close { error: None }.into(), &[]);
        }
        self.finish(close.error, by_peer);
    }

    /// Closes the connection, optionally with an error; [`Event::Closed`] follows the peer's
    /// answer.
    pub fn close(&mut self, error: Option<AmqpError>) {
        if self.close_sent || self.state == ConnectionState::Closed {
            return;
        }
        if self.phase != Phase::Frames || !self.open_sent {
            // Nothing to say in AMQP yet: just stop.
            self.finish(error, false);
            return;
        }
        // Outcomes the application already gave must reach the peer before the close does
        // (frames after a close are discarded).
        self.flush_dispositions();
        self.close_sent = true;
        self.write(0, Close { error }.into(), &[]);
        self.state = ConnectionState::Closing;
    }

    /// Closes the connection because the peer broke the protocol, and reports it at once.
    pub(super) fn fail(&mut self, error: AmqpError) {
        frame_event!(loud self.config.frame_trace, conn = %self.config.container_id, %error, "closing connection on error");
        if !self.close_sent && self.open_sent && self.phase == Phase::Frames {
            self.close_sent = true;
            self.write(
                0,
                Close {
                    error: Some(error.clone()),
                }
                .into(),
                &[],
            );
        }
        self.finish(Some(error), false);
    }

    /// Marks the connection finished and reports it once.
    pub(super) fn finish(&mut self, error: Option<AmqpError>, by_peer: bool) {
        if self.state == ConnectionState::Closed {
            return;
        }
        self.state = ConnectionState::Closed;
        self.phase = Phase::Done;
        self.inbuf.clear();
        self.events.push_back(Event::Closed { error, by_peer });
    }

    /// Bytes to write to the peer, if any (everything queued, as one buffer). Large transfer
    /// payloads are copied together with their frame headers here; a driver that can write
    /// several buffers at once uses [`Self::poll_transmit_chunk`] instead.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.flush_dispositions();
        if self.out_chunks.is_empty() {
            return (!self.out.is_empty()).then(|| self.out.split().freeze());
        }
        let len = self.out_chunks.iter().map(|(b, _)| b.len()).sum::<usize>() + self.out.len();
        let mut all = BytesMut::with_capacity(len);
        for (b, _) in self.out_chunks.drain(..) {
            all.extend_from_slice(&b);
        }
        all.extend_from_slice(&self.out.split());
        Some(all.freeze())
    }

    /// The next piece of output, if any, in order, without copying large transfer payloads:
    /// the bytes, and whether they end a frame (a driver that must drop unsent output keeps
    /// whole frames). Write them one after another, for example with a vectored write.
    pub fn poll_transmit_chunk(&mut self) -> Option<(Bytes, bool)> {
        if let Some(chunk) = self.out_chunks.pop_front() {
            return Some(chunk);
        }
        self.flush_dispositions();
        (!self.out.is_empty()).then(|| (self.out.split().freeze(), true))
    }

    /// True when [`Self::poll_transmit`] would return bytes.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
            || !self.out_chunks.is_empty()
            || self
                .sessions
                .values()
                .any(|s| s.unsettled.has_dispositions())
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == ConnectionState::Closed || self.phase != Phase::Frames {
            return None;
        }
        let silence = self.config.idle_timeout.map(|d| self.last_received + d);
        let heartbeat = self.remote_idle_timeout.map(|d| self.last_sent + d / 2);
        match (silence, heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles the passing of time: heartbeats to send and a silent peer to give up on.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.state == ConnectionState::Closed || self.phase != Phase::Frames {
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            if now.saturating_duration_since(self.last_received) >= idle {
                self.fail(err(
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    format!("no frame from the peer for {} ms", idle.as_millis()),
                ));
                return;
            }
        }
        if let Some(peer) = self.remote_idle_timeout.filter(|_| !self.close_sent) {
            if now.saturating_duration_since(self.last_sent) >= peer / 2 {
                frame_event!(quiet self.config.frame_trace, conn = %self.config.container_id, dir = "out", "heartbeat");
                frame::write_empty_frame(&mut self.out);
                self.last_sent = now;
            }
        }
    }

    /// Fails when no session or link may be started: before our open or after our close.
    pub(super) fn check_usable(&self) -> Result<(), AmqpError> {
        if self.close_sent || self.state == ConnectionState::Closed {
            Err(err(condition::ILLEGAL_STATE, "connection is closed"))
        } else if !self.open_sent {
            Err(err(condition::ILLEGAL_STATE, "connection is not open yet"))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(idle_timeout: Option<Duration>) -> ConnectionConfig {
        ConnectionConfig {
            idle_timeout,
            ..ConnectionConfig::default()
        }
    }

    /// Moves bytes both ways until neither end has anything to say.
    fn exchange(a: &mut Connection, b: &mut Connection, now: Instant) {
        loop {
            let mut quiet = true;
            if let Some(bytes) = a.poll_transmit() {
                b.handle_bytes(&bytes, now);
                quiet = false;
            }
            if let Some(bytes) = b.poll_transmit() {
                a.handle_bytes(&bytes, now);
                quiet = false;
            }
            if quiet {
                return;
            }
        }
    }

    fn opened(
        client_idle: Option<Duration>,
        server_idle: Option<Duration>,
    ) -> (Connection, Connection, Instant) {
        let t0 = Instant::now();
        let mut c = Connection::client(config(client_idle), t0);
        let mut s = Connection::server(config(server_idle), t0);
        exchange(&mut c, &mut s, t0);
        assert_eq!(c.state(), ConnectionState::Open);
        assert_eq!(s.state(), ConnectionState::Open);
        (c, s, t0)
    }

    #[test]
    fn long_descriptions_are_cut_on_a_char_boundary() {
        let e = err(condition::DECODE_ERROR, "é".repeat(200));
        let d = e.description.unwrap();
        assert!(d.len() <= MAX_DESCRIPTION_LEN + 3);
        assert!(d.ends_with("..."));
        let e = err(condition::DECODE_ERROR, "short");
        assert_eq!(e.description.as_deref(), Some("short"));
    }

    #[test]
    fn a_client_without_sasl_sends_header_and_open_at_once() {
        let mut c = Connection::client(config(None), Instant::now());
        let out = c.poll_transmit().unwrap();
        assert_eq!(&out[..8], &ProtocolHeader::AMQP.to_bytes()[..]);
        assert!(out.len() > 8, "open follows the header");
        assert_eq!(c.poll_timeout(), None, "no timer before the frames phase");
        assert_eq!(c.state(), ConnectionState::Handshaking);
    }

    #[test]
    fn heartbeats_at_half_the_peers_idle_timeout() {
        let (mut c, mut s, t0) = opened(None, Some(Duration::from_secs(10)));
        // The server wants a frame every 10 s: the client's deadline is 5 s after its last.
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        c.handle_timeout(t0 + Duration::from_secs(4));
        assert_eq!(c.poll_transmit(), None);
        c.handle_timeout(t0 + Duration::from_secs(5));
        let beat = c.poll_transmit().unwrap();
        assert_eq!(beat.len(), frame::FRAME_HEADER_SIZE, "an empty frame");
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        s.handle_bytes(&beat, t0 + Duration::from_secs(5));
        assert!(s
            .poll_event()
            .is_some_and(|e| matches!(e, Event::Opened { .. })));
        assert_eq!(s.poll_event(), None, "a heartbeat is no event");
    }

    #[test]
    fn a_silent_peer_closes_the_connection() {
        let (_c, mut s, t0) = opened(None, Some(Duration::from_secs(10)));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        while s.poll_event().is_some() {}
        s.handle_timeout(t0 + Duration::from_secs(10));
        assert!(s.is_closed());
        match s.poll_event() {
            Some(Event::Closed {
                error: Some(e),
                by_peer: false,
            }) => {
                assert_eq!(e.condition, condition::RESOURCE_LIMIT_EXCEEDED);
            }
            other => panic!("{other:?}"),
        }
        assert!(s.poll_transmit().is_some(), "the close goes out");
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn an_unknown_protocol_header_is_answered_and_closed() {
        let t0 = Instant::now();
        let mut s = Connection::server(config(None), t0);
        s.handle_bytes(b"HTTP/1.1", t0);
        assert!(s.is_closed());
        assert_eq!(
            s.poll_transmit().unwrap(),
            Bytes::from(ProtocolHeader::AMQP.to_bytes().to_vec())
        );
        assert!(matches!(
            s.poll_event(),
            Some(Event::Closed {
                error: Some(_),
                by_peer: false
            })
        ));
        // Nothing more is read.
        s.handle_bytes(&ProtocolHeader::AMQP.to_bytes(), t0);
        assert_eq!(s.buffered_input(), 0);
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn frames_before_open_close_the_connection() {
        let t0 = Instant::now();
        let mut s = Connection::server(config(None), t0);
        // A begin first is refused as "before open".
        let begin = crate::amqp::types::transport::Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window: 1,
            outgoing_window: 1,
            handle_max: 1,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        let mut input = BytesMut::new();
        input.extend_from_slice(&ProtocolHeader::AMQP.to_bytes());
        frame::write_amqp_frame(&mut input, 0, &Performative::Begin(begin), &[]);
        s.handle_bytes(&input, t0);
        match s.poll_event() {
            Some(Event::Closed { error: Some(e), .. }) => {
                assert_eq!(e.condition, condition::NOT_ALLOWED);
            }
            other => panic!("{other:?}"),
        }
    }
}
