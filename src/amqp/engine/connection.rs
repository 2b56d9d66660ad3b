//! The connection state machine: headers, open/close, idle timeout, and frame dispatch to
//! sessions and links.

use super::config::{ConnectionConfig, LinkConfig, SessionConfig};
use super::event::{Delivery, Event, LinkId, SessionId};
use super::frame_event;
use super::link::{Link, LinkAcceptance, LinkState, Outgoing, Partial};
use super::session::{PendingDisposition, Session, SessionState};
use crate::amqp::codec::{Encode, Str, Symbol};
use crate::amqp::frame::{
    self, parse_frame, AmqpFrame, ProtocolHeader, ProtocolId, RawFrame, FRAME_TYPE_AMQP,
    MIN_MAX_FRAME_SIZE,
};
use crate::amqp::types::definitions::{ReceiverSettleMode, Role as LinkRole, SenderSettleMode};
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::messaging::DeliveryState;
use crate::amqp::types::transport::{
    Attach, Begin, Close, Detach, Disposition, End, Flow, Open, Performative, Transfer,
};
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

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
    pub(super) out: BytesMut,
    pub(super) events: VecDeque<Event>,
    sessions: HashMap<u16, Session>,
    remote_channels: HashMap<u16, u16>,
    links: HashMap<LinkId, Link>,
    next_link_id: u64,
    open_sent: bool,
    remote_open: Option<Open>,
    close_sent: bool,
    remote_max_frame_size: u32,
    remote_channel_max: u16,
    remote_idle_timeout: Option<Duration>,
    pub(super) now: Instant,
    last_received: Instant,
    last_sent: Instant,
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

    /// Where the connection is in its life.
    pub fn state(&self) -> ConnectionState {
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
    pub fn remote_max_frame_size(&self) -> u32 {
        self.remote_max_frame_size
    }

    /// Bytes received but not yet processed: at most one partial frame, so never more than our
    /// max-frame-size (or a partial protocol header).
    pub fn buffered_input(&self) -> usize {
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
                Phase::Sasl | Phase::Frames => {
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
        frame_event!(
            loud self.config.frame_trace,
            conn = %self.config.container_id,
            dir = "in",
            channel = frame.channel,
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
            Performative::Open(open) => self.on_open(frame.channel, open),
            Performative::Close(close) => self.on_close(close),
            Performative::Begin(begin) => self.on_begin(frame.channel, begin),
            other => {
                let Some(&local) = self.remote_channels.get(&frame.channel) else {
                    self.fail(err(
                        condition::NOT_ALLOWED,
                        format!(
                            "{} on channel {} which has no session",
                            other.name(),
                            frame.channel
                        ),
                    ));
                    return;
                };
                match other {
                    Performative::End(end) => self.on_end(local, end),
                    Performative::Attach(a) => self.on_attach(local, a),
                    Performative::Flow(f) => self.on_flow(local, f),
                    Performative::Transfer(t) => self.on_transfer(local, t, frame.payload),
                    Performative::Disposition(d) => self.on_disposition(local, d),
                    Performative::Detach(d) => self.on_detach(local, d),
                    _ => {}
                }
            }
        }
    }

    // ---- connection level -------------------------------------------------------------

    pub(super) fn write_header(&mut self, h: ProtocolHeader) {
        frame_event!(loud self.config.frame_trace, conn = %self.config.container_id, dir = "out", header = ?h.id, "protocol header");
        self.out.extend_from_slice(&h.to_bytes());
    }

    fn write(&mut self, channel: u16, p: Performative, payload: &[u8]) {
        // Our close is the last frame we send (commands reacting to events queued before the
        // close, such as accepting a link, must not put frames after it).
        if (self.close_sent || self.state == ConnectionState::Closed)
            && !matches!(p, Performative::Close(_))
        {
            frame_event!(quiet self.config.frame_trace, conn = %self.config.container_id, performative = p.name(), "dropped after close");
            return;
        }
        frame_event!(
            loud self.config.frame_trace,
            conn = %self.config.container_id,
            dir = "out",
            channel,
            performative = p.name(),
            size = p.encoded_len() + payload.len(),
            frame = ?p,
        );
        frame::write_amqp_frame(&mut self.out, channel, &p, payload);
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

    /// Bytes to write to the peer, if any (everything queued, as one buffer).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.flush_dispositions();
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    /// True when [`Self::poll_transmit`] would return bytes.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.sessions.values().any(|s| !s.dispositions.is_empty())
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

    // ---- sessions ---------------------------------------------------------------------

    /// Begins a session. Fails when no channel is free under both channel limits.
    pub fn begin_session(&mut self, config: SessionConfig) -> Result<SessionId, AmqpError> {
        self.check_usable()?;
        let max = if self.remote_open.is_some() {
            self.config.channel_max.min(self.remote_channel_max)
        } else {
            self.config.channel_max
        };
        let channel = (0..=max)
            .find(|c| !self.sessions.contains_key(c))
            .ok_or_else(|| err(condition::RESOURCE_LIMIT_EXCEEDED, "no free channel"))?;
        let session = Session::new(config, SessionState::BeginSent);
        let begin = Begin {
            remote_channel: None,
            next_outgoing_id: session.next_outgoing_id,
            incoming_window: session.config.incoming_window,
            outgoing_window: session.config.outgoing_window,
            handle_max: session.config.handle_max,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        self.sessions.insert(channel, session);
        self.write(channel, begin.into(), &[]);
        Ok(SessionId(channel))
    }

    fn check_usable(&self) -> Result<(), AmqpError> {
        if self.close_sent || self.state == ConnectionState::Closed {
            Err(err(condition::ILLEGAL_STATE, "connection is closed"))
        } else if !self.open_sent {
            Err(err(condition::ILLEGAL_STATE, "connection is not open yet"))
        } else {
            Ok(())
        }
    }

    fn on_begin(&mut self, channel: u16, begin: Begin) {
        if self.remote_channels.contains_key(&channel) {
            self.fail(err(
                condition::NOT_ALLOWED,
                format!("begin on channel {channel} which already has a session"),
            ));
            return;
        }
        if channel > self.config.channel_max {
            self.fail(err(
                condition::NOT_ALLOWED,
                format!(
                    "channel {channel} is above our channel-max {}",
                    self.config.channel_max
                ),
            ));
            return;
        }
        let local = match begin.remote_channel {
            Some(ours) => match self.sessions.get(&ours) {
                // EndSent too: the application may end a session before the answer arrives.
                Some(s)
                    if s.remote_channel.is_none()
                        && matches!(s.state, SessionState::BeginSent | SessionState::EndSent) =>
                {
                    ours
                }
                _ => {
                    self.fail(err(
                        condition::NOT_ALLOWED,
                        format!("begin answers channel {ours}, where we began no session"),
                    ));
                    return;
                }
            },
            None => {
                // Peer-initiated: answer on our lowest free channel that the peer accepts.
                let max = self.config.channel_max.min(self.remote_channel_max);
                let Some(ours) = (0..=max).find(|c| !self.sessions.contains_key(c)) else {
                    self.fail(err(condition::RESOURCE_LIMIT_EXCEEDED, "no free channel"));
                    return;
                };
                let s = Session::new(SessionConfig::default(), SessionState::BeginSent);
                let answer = Begin {
                    remote_channel: Some(channel),
                    next_outgoing_id: s.next_outgoing_id,
                    incoming_window: s.config.incoming_window,
                    outgoing_window: s.config.outgoing_window,
                    handle_max: s.config.handle_max,
                    offered_capabilities: None,
                    desired_capabilities: None,
                    properties: None,
                };
                self.sessions.insert(ours, s);
                self.write(ours, answer.into(), &[]);
                ours
            }
        };
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        s.remote_channel = Some(channel);
        // Ended before the answer: map the channel so the peer's end finds it, report nothing.
        let ending = s.state == SessionState::EndSent;
        if !ending {
            s.state = SessionState::Mapped;
        }
        s.next_incoming_id = begin.next_outgoing_id;
        s.remote_incoming_window = begin.incoming_window;
        s.remote_outgoing_window = begin.outgoing_window;
        s.remote_handle_max = begin.handle_max;
        self.remote_channels.insert(channel, local);
        if ending {
            return;
        }
        self.events.push_back(Event::SessionBegun {
            session: SessionId(local),
            remote: Box::new(begin),
        });
    }

    /// Ends a session, optionally with an error; [`Event::SessionEnded`] follows the peer's end.
    pub fn end_session(&mut self, session: SessionId, error: Option<AmqpError>) {
        let Some(s) = self.sessions.get_mut(&session.0) else {
            return;
        };
        if s.state == SessionState::EndSent {
            return;
        }
        s.state = SessionState::EndSent;
        // Settle first: the end must not overtake the session's queued dispositions.
        self.flush_dispositions();
        self.write(session.0, End { error }.into(), &[]);
    }

    fn on_end(&mut self, local: u16, end: End) {
        let by_peer = self
            .sessions
            .get(&local)
            .is_some_and(|s| s.state != SessionState::EndSent);
        if by_peer {
            self.write(local, End { error: None }.into(), &[]);
        }
        self.drop_session(local, end.error, by_peer);
    }

    fn drop_session(&mut self, local: u16, error: Option<AmqpError>, by_peer: bool) {
        let Some(s) = self.sessions.remove(&local) else {
            return;
        };
        if let Some(rc) = s.remote_channel {
            self.remote_channels.remove(&rc);
        }
        let mut gone: Vec<LinkId> = self
            .links
            .values()
            .filter(|l| l.channel == local)
            .map(|l| l.id)
            .collect();
        gone.sort();
        for id in gone {
            self.links.remove(&id);
            self.events.push_back(Event::LinkDetached {
                link: id,
                error: error.clone(),
                closed: false,
                by_peer,
            });
        }
        if s.end_reported {
            return;
        }
        self.events.push_back(Event::SessionEnded {
            session: SessionId(local),
            error,
            by_peer,
        });
    }

    /// Ends a session because the peer broke a session rule.
    fn fail_session(&mut self, local: u16, error: AmqpError) {
        frame_event!(loud self.config.frame_trace, conn = %self.config.container_id, %error, channel = local, "ending session on error");
        if self
            .sessions
            .get(&local)
            .is_some_and(|s| s.state != SessionState::EndSent)
        {
            self.write(
                local,
                End {
                    error: Some(error.clone()),
                }
                .into(),
                &[],
            );
            if let Some(s) = self.sessions.get_mut(&local) {
                s.state = SessionState::EndSent;
            }
        }
        // Keep the session until the peer's end arrives (so its channel stays mapped), but
        // report now and forget its links.
        let gone: Vec<LinkId> = self
            .links
            .values()
            .filter(|l| l.channel == local)
            .map(|l| l.id)
            .collect();
        for id in gone {
            self.links.remove(&id);
            self.events.push_back(Event::LinkDetached {
                link: id,
                error: Some(error.clone()),
                closed: false,
                by_peer: false,
            });
        }
        if let Some(s) = self.sessions.get_mut(&local) {
            s.end_reported = true;
            s.remote_handles.clear();
            s.local_handles.clear();
            s.outgoing_unsettled.clear();
            s.incoming_unsettled.clear();
            s.send_queue.clear();
        }
        self.events.push_back(Event::SessionEnded {
            session: SessionId(local),
            error: Some(error),
            by_peer: false,
        });
    }

    // ---- links ------------------------------------------------------------------------

    fn new_link_id(&mut self) -> LinkId {
        self.next_link_id += 1;
        LinkId(self.next_link_id)
    }

    /// Attaches a link on a session. [`Event::LinkAttached`] follows the peer's answer.
    pub fn attach(&mut self, session: SessionId, config: LinkConfig) -> Result<LinkId, AmqpError> {
        self.check_usable()?;
        let s = self
            .sessions
            .get(&session.0)
            .filter(|s| s.state != SessionState::EndSent)
            .ok_or_else(|| err(condition::ILLEGAL_STATE, "session is not active"))?;
        let handle = s
            .free_handle()
            .ok_or_else(|| err(condition::RESOURCE_LIMIT_EXCEEDED, "no free link handle"))?;
        let id = self.new_link_id();
        let mut link = Link::new(
            id,
            session.0,
            Str::from(config.name.as_str()),
            config.role,
            LinkState::AttachSent,
        );
        link.local_handle = Some(handle);
        link.snd_settle_mode = config.snd_settle_mode;
        link.rcv_settle_mode = config.rcv_settle_mode;
        if let Some(max) = config.max_message_size.filter(|&m| m > 0) {
            link.max_message_size = max;
        }
        let attach = Attach {
            name: link.name.clone(),
            handle,
            role: config.role,
            snd_settle_mode: config.snd_settle_mode,
            rcv_settle_mode: config.rcv_settle_mode,
            source: config.source.map(Box::new),
            target: config.target.map(Box::new),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: (config.role == LinkRole::Sender).then_some(0),
            max_message_size: config.max_message_size,
            offered_capabilities: config.offered_capabilities,
            desired_capabilities: config.desired_capabilities,
            properties: config.properties,
        };
        self.check_fits(&attach)?;
        if let Some(s) = self.sessions.get_mut(&session.0) {
            s.local_handles.insert(handle, id);
        }
        self.links.insert(id, link);
        self.write(session.0, attach.into(), &[]);
        Ok(id)
    }

    fn on_attach(&mut self, local: u16, attach: Attach) {
        let Some(s) = self.sessions.get(&local) else {
            return;
        };
        if s.state == SessionState::EndSent {
            return;
        }
        if attach.handle > s.config.handle_max {
            let e = err(
                condition::INVALID_FIELD,
                format!(
                    "handle {} is above handle-max {}",
                    attach.handle, s.config.handle_max
                ),
            );
            self.fail_session(local, e);
            return;
        }
        if s.remote_handles.contains_key(&attach.handle) {
            let e = err(
                condition::SESSION_HANDLE_IN_USE,
                format!("handle {} is already attached", attach.handle),
            );
            self.fail_session(local, e);
            return;
        }
        let ours = attach.role.opposite();
        let answer_to = s.local_handles.values().copied().find(|id| {
            self.links.get(id).is_some_and(|l| {
                l.state == LinkState::AttachSent
                    && l.remote_handle.is_none()
                    && l.role == ours
                    && l.name == attach.name
            })
        });
        match answer_to {
            Some(id) => {
                let Some(link) = self.links.get_mut(&id) else {
                    return;
                };
                link.remote_handle = Some(attach.handle);
                link.state = LinkState::Attached;
                if ours == LinkRole::Receiver {
                    link.delivery_count = attach.initial_delivery_count.unwrap_or(0);
                    // The sender's attach decides how it settles.
                    link.snd_settle_mode = attach.snd_settle_mode;
                } else {
                    link.peer_max_message_size = attach.max_message_size.filter(|&m| m > 0);
                    link.rcv_settle_mode = attach.rcv_settle_mode;
                }
                if let Some(s) = self.sessions.get_mut(&local) {
                    s.remote_handles.insert(attach.handle, id);
                }
                self.events.push_back(Event::LinkAttached {
                    link: id,
                    remote: Box::new(attach),
                });
            }
            None => {
                let id = self.new_link_id();
                let mut link = Link::new(
                    id,
                    local,
                    attach.name.clone(),
                    ours,
                    LinkState::AttachReceived,
                );
                link.remote_handle = Some(attach.handle);
                link.snd_settle_mode = attach.snd_settle_mode;
                link.rcv_settle_mode = attach.rcv_settle_mode;
                if ours == LinkRole::Receiver {
                    link.delivery_count = attach.initial_delivery_count.unwrap_or(0);
                } else {
                    link.peer_max_message_size = attach.max_message_size.filter(|&m| m > 0);
                }
                self.links.insert(id, link);
                if let Some(s) = self.sessions.get_mut(&local) {
                    s.remote_handles.insert(attach.handle, id);
                }
                self.events.push_back(Event::LinkAttachRequested {
                    link: id,
                    session: SessionId(local),
                    attach: Box::new(attach),
                });
            }
        }
    }

    /// Accepts a link the peer attached ([`Event::LinkAttachRequested`]).
    pub fn accept_link(
        &mut self,
        link: LinkId,
        acceptance: LinkAcceptance,
    ) -> Result<(), AmqpError> {
        let l = self
            .links
            .get(&link)
            .filter(|l| l.state == LinkState::AttachReceived)
            .ok_or_else(|| {
                err(
                    condition::ILLEGAL_STATE,
                    "link is not waiting for acceptance",
                )
            })?;
        let channel = l.channel;
        let handle = self
            .sessions
            .get(&channel)
            .and_then(Session::free_handle)
            .ok_or_else(|| err(condition::RESOURCE_LIMIT_EXCEEDED, "no free link handle"))?;
        let Some(l) = self.links.get(&link) else {
            return Err(err(condition::ILLEGAL_STATE, "link is gone"));
        };
        let snd_settle_mode = acceptance.snd_settle_mode.unwrap_or(l.snd_settle_mode);
        let rcv_settle_mode = acceptance.rcv_settle_mode.unwrap_or(l.rcv_settle_mode);
        let attach = Attach {
            name: l.name.clone(),
            handle,
            role: l.role,
            snd_settle_mode,
            rcv_settle_mode,
            source: acceptance.source.map(Box::new),
            target: acceptance.target.map(Box::new),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: (l.role == LinkRole::Sender).then_some(l.delivery_count),
            max_message_size: acceptance.max_message_size,
            offered_capabilities: acceptance.offered_capabilities,
            desired_capabilities: acceptance.desired_capabilities,
            properties: acceptance.properties,
        };
        // Refused before any state changes, so the caller can still refuse the link instead.
        self.check_fits(&attach)?;
        let Some(l) = self.links.get_mut(&link) else {
            return Err(err(condition::ILLEGAL_STATE, "link is gone"));
        };
        l.local_handle = Some(handle);
        l.state = LinkState::Attached;
        l.snd_settle_mode = snd_settle_mode;
        l.rcv_settle_mode = rcv_settle_mode;
        if let Some(max) = acceptance.max_message_size.filter(|&m| m > 0) {
            l.max_message_size = max;
        }
        if let Some(s) = self.sessions.get_mut(&channel) {
            s.local_handles.insert(handle, link);
        }
        self.write(channel, attach.into(), &[]);
        Ok(())
    }

    /// Fails when `attach` would not fit in one frame of the peer's max-frame-size: unlike a
    /// transfer, an attach cannot be split, and the peer may not be sent a larger frame.
    fn check_fits(&self, attach: &Attach) -> Result<(), AmqpError> {
        let size = frame::frame_len(attach.encoded_len());
        if size > self.remote_max_frame_size as usize {
            return Err(err(
                condition::FRAME_SIZE_TOO_SMALL,
                format!(
                    "attach of {size} bytes exceeds the peer's max-frame-size {}",
                    self.remote_max_frame_size
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a link the peer attached: answers with a null terminus, then detaches with
    /// `error` (the pattern Event Hubs uses for unknown or unauthorized entities).
    pub fn refuse_link(&mut self, link: LinkId, error: AmqpError) -> Result<(), AmqpError> {
        self.accept_link(link, LinkAcceptance::default())?;
        self.detach(link, true, Some(error));
        Ok(())
    }

    /// Detaches a link (`closed` destroys it). [`Event::LinkDetached`] follows the peer's
    /// answer.
    pub fn detach(&mut self, link: LinkId, closed: bool, error: Option<AmqpError>) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.state == LinkState::DetachSent {
            return;
        }
        let Some(handle) = l.local_handle else {
            // Never attached on our side: nothing to say on the wire.
            self.forget_link(link);
            return;
        };
        l.state = LinkState::DetachSent;
        l.pending.clear();
        l.local_error = error.clone();
        let channel = l.channel;
        // Settle first: a detach that overtakes the link's queued dispositions makes the peer
        // treat those deliveries as unsettled (and redeliver them).
        self.flush_dispositions();
        self.write(
            channel,
            Detach {
                handle,
                closed,
                error,
            }
            .into(),
            &[],
        );
    }

    fn on_detach(&mut self, local: u16, detach: Detach) {
        let Some(id) = self.link_by_remote(local, detach.handle) else {
            return;
        };
        let Some(l) = self.links.get(&id) else {
            return;
        };
        let by_peer = l.state != LinkState::DetachSent;
        let error = if by_peer {
            detach.error
        } else {
            detach.error.or_else(|| l.local_error.clone())
        };
        if by_peer {
            if let Some(handle) = l.local_handle {
                let closed = detach.closed;
                let channel = l.channel;
                self.write(
                    channel,
                    Detach {
                        handle,
                        closed,
                        error: None,
                    }
                    .into(),
                    &[],
                );
            }
        }
        self.forget_link(id);
        self.events.push_back(Event::LinkDetached {
            link: id,
            error,
            closed: detach.closed,
            by_peer,
        });
    }

    fn forget_link(&mut self, id: LinkId) {
        let Some(l) = self.links.remove(&id) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&l.channel) {
            if let Some(h) = l.local_handle {
                s.local_handles.remove(&h);
            }
            if let Some(h) = l.remote_handle {
                s.remote_handles.remove(&h);
            }
            s.outgoing_unsettled.retain(|_, (link, _)| *link != id);
            s.incoming_unsettled.retain(|_, link| *link != id);
            s.send_queue.retain(|link| *link != id);
        }
    }

    /// Looks up a link by the peer's handle; an unknown handle ends the session.
    fn link_by_remote(&mut self, local: u16, handle: u32) -> Option<LinkId> {
        let s = self.sessions.get(&local)?;
        if s.state == SessionState::EndSent {
            return None;
        }
        match s.remote_handles.get(&handle) {
            Some(id) => Some(*id),
            None => {
                let e = err(
                    condition::SESSION_UNATTACHED_HANDLE,
                    format!("handle {handle} is not attached"),
                );
                self.fail_session(local, e);
                None
            }
        }
    }

    /// Detaches a link because the peer broke a link rule.
    fn fail_link(&mut self, id: LinkId, error: AmqpError) {
        frame_event!(loud self.config.frame_trace, conn = %self.config.container_id, %error, link = id.0, "detaching link on error");
        let unanswered = self
            .links
            .get(&id)
            .is_some_and(|l| l.state == LinkState::AttachReceived);
        if unanswered {
            // The application has not answered the peer's attach yet: refuse the link on its
            // behalf (null terminus, then a closing detach), so the peer hears why and
            // LinkDetached follows its answer. Without a free handle, drop it and say so now.
            if self.refuse_link(id, error.clone()).is_err() {
                self.forget_link(id);
                self.events.push_back(Event::LinkDetached {
                    link: id,
                    error: Some(error),
                    closed: true,
                    by_peer: false,
                });
                return;
            }
        } else {
            self.detach(id, true, Some(error.clone()));
        }
        if let Some(l) = self.links.get_mut(&id) {
            l.partial = None;
            l.discarding = true;
        }
    }

    // ---- flow control -----------------------------------------------------------------

    /// Link credit currently available to a link (as sender: deliveries it may start).
    pub fn link_credit(&self, link: LinkId) -> Option<u32> {
        self.links.get(&link).map(|l| l.link_credit)
    }

    /// The peer's max-message-size for a sending link, once attached.
    pub fn peer_max_message_size(&self, link: LinkId) -> Option<u64> {
        self.links.get(&link).and_then(|l| l.peer_max_message_size)
    }

    /// Messages queued on a sending link that have not fully gone out.
    pub fn queued(&self, link: LinkId) -> usize {
        self.links.get(&link).map_or(0, |l| l.pending.len())
    }

    /// Grants `credit` more deliveries to a receiving link and tells the sender.
    pub fn add_credit(&mut self, link: LinkId, credit: u32) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.role != LinkRole::Receiver || credit == 0 {
            return;
        }
        l.link_credit = l.link_credit.saturating_add(credit);
        l.drain = false;
        self.send_link_flow(link, false);
    }

    /// Sets a receiving link's credit to exactly `credit` (0 stops the sender).
    pub fn set_credit(&mut self, link: LinkId, credit: u32) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.role != LinkRole::Receiver {
            return;
        }
        l.link_credit = credit;
        self.send_link_flow(link, false);
    }

    /// Asks the sender of a receiving link to use up or give back its credit.
    pub fn drain(&mut self, link: LinkId) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.role != LinkRole::Receiver {
            return;
        }
        l.drain = true;
        self.send_link_flow(link, false);
    }

    fn session_flow_fields(s: &Session) -> Flow {
        Flow {
            next_incoming_id: s.remote_channel.map(|_| s.next_incoming_id),
            incoming_window: s.incoming_window,
            next_outgoing_id: s.next_outgoing_id,
            outgoing_window: s.config.outgoing_window,
            ..Flow::default()
        }
    }

    fn send_link_flow(&mut self, link: LinkId, echo: bool) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let (Some(handle), LinkState::Attached | LinkState::AttachSent) = (l.local_handle, l.state)
        else {
            return;
        };
        let Some(s) = self.sessions.get(&l.channel) else {
            return;
        };
        let flow = Flow {
            handle: Some(handle),
            delivery_count: Some(l.delivery_count),
            link_credit: Some(l.link_credit),
            available: (l.role == LinkRole::Sender).then_some(l.pending.len() as u32),
            drain: l.drain,
            echo,
            ..Self::session_flow_fields(s)
        };
        let channel = l.channel;
        self.write(channel, flow.into(), &[]);
    }

    fn on_flow(&mut self, local: u16, flow: Flow) {
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        let base = flow.next_incoming_id.unwrap_or(s.initial_outgoing_id);
        s.remote_incoming_window = base
            .wrapping_add(flow.incoming_window)
            .wrapping_sub(s.next_outgoing_id);
        // A peer that claims to have seen transfers we never sent yields a huge wrapped value;
        // cap it at what it announced.
        s.remote_incoming_window = s.remote_incoming_window.min(flow.incoming_window);
        s.remote_outgoing_window = flow.outgoing_window;
        match flow.handle {
            Some(handle) => {
                let Some(id) = self.link_by_remote(local, handle) else {
                    return;
                };
                let Some(l) = self.links.get_mut(&id) else {
                    return;
                };
                match l.role {
                    LinkRole::Sender => {
                        let peer_count = flow.delivery_count.unwrap_or(0);
                        let limit = peer_count.wrapping_add(flow.link_credit.unwrap_or(0));
                        let credit = limit.wrapping_sub(l.delivery_count);
                        // Credit counted from a delivery count ahead of ours is nonsense;
                        // treat it as none rather than as four billion.
                        l.link_credit = if credit > flow.link_credit.unwrap_or(0) {
                            0
                        } else {
                            credit
                        };
                        l.drain = flow.drain;
                        // Drained with nothing to send: give the credit back at once and say
                        // so (with messages queued, the pump does it when the queue empties).
                        let drained = l.drain && l.pending.is_empty();
                        if drained {
                            l.delivery_count = l.delivery_count.wrapping_add(l.link_credit);
                            l.link_credit = 0;
                        }
                        let credit = l.link_credit;
                        if !l.pending.is_empty() {
                            if let Some(s) = self.sessions.get_mut(&local) {
                                if !s.send_queue.contains(&id) {
                                    s.send_queue.push_back(id);
                                }
                            }
                        }
                        self.events.push_back(Event::Credit { link: id, credit });
                        if flow.echo || drained {
                            self.send_link_flow(id, false);
                        }
                    }
                    LinkRole::Receiver => {
                        let their_count = flow.delivery_count.unwrap_or(l.delivery_count);
                        let limit = l.delivery_count.wrapping_add(l.link_credit);
                        l.link_credit = limit.wrapping_sub(their_count).min(l.link_credit);
                        l.delivery_count = their_count;
                        let credit = l.link_credit;
                        self.events.push_back(Event::ReceiverFlow {
                            link: id,
                            credit,
                            available: flow.available,
                        });
                        if flow.echo {
                            self.send_link_flow(id, false);
                        }
                    }
                }
            }
            None => {
                if flow.echo {
                    if let Some(s) = self.sessions.get(&local) {
                        let f = Self::session_flow_fields(s);
                        self.write(local, f.into(), &[]);
                    }
                }
            }
        }
        self.pump(local);
    }

    // ---- sending ----------------------------------------------------------------------

    /// Queues an encoded message on a sending link and sends as much as credit and the session
    /// window allow. Returns a number that [`Event::Outcome`] will carry for it.
    ///
    /// `settled` sends it pre-settled (no outcome will come). Fails when the link cannot send
    /// or the message is larger than the peer accepts.
    pub fn send(
        &mut self,
        link: LinkId,
        payload: Bytes,
        message_format: u32,
        settled: bool,
    ) -> Result<u64, AmqpError> {
        let l = self
            .links
            .get_mut(&link)
            .ok_or_else(|| err(condition::ILLEGAL_STATE, "link is not attached"))?;
        if l.role != LinkRole::Sender
            || !matches!(l.state, LinkState::Attached | LinkState::AttachSent)
        {
            return Err(err(condition::ILLEGAL_STATE, "link cannot send"));
        }
        if let Some(max) = l.peer_max_message_size {
            if payload.len() as u64 > max {
                return Err(err(
                    condition::LINK_MESSAGE_SIZE_EXCEEDED,
                    format!(
                        "message of {} bytes exceeds the link's max-message-size {max}",
                        payload.len()
                    ),
                ));
            }
        }
        let settled = match l.snd_settle_mode {
            SenderSettleMode::Settled => true,
            SenderSettleMode::Unsettled => false,
            SenderSettleMode::Mixed => settled,
        };
        let token = l.next_token;
        l.next_token += 1;
        l.pending.push_back(Outgoing {
            token,
            tag: Bytes::copy_from_slice(&token.to_be_bytes()),
            format: message_format,
            settled,
            payload,
            sent: 0,
            delivery_id: None,
        });
        let channel = l.channel;
        if let Some(s) = self.sessions.get_mut(&channel) {
            if !s.send_queue.contains(&link) {
                s.send_queue.push_back(link);
            }
        }
        self.pump(channel);
        Ok(token)
    }

    /// Sends queued transfers on a session while credit and the peer's window last.
    fn pump(&mut self, channel: u16) {
        let max_frame = self.remote_max_frame_size as usize;
        loop {
            let Some(s) = self.sessions.get_mut(&channel) else {
                return;
            };
            if s.state != SessionState::Mapped || s.remote_incoming_window == 0 {
                return;
            }
            let Some(id) = s.send_queue.pop_front() else {
                return;
            };
            let Some(l) = self.links.get_mut(&id) else {
                continue;
            };
            if l.state != LinkState::Attached || !l.can_send() {
                // Waits for credit; the next flow puts it back in the queue.
                continue;
            }
            let Some(handle) = l.local_handle else {
                continue;
            };
            let Some(out) = l.pending.front_mut() else {
                continue;
            };
            let first = out.delivery_id.is_none();
            if first {
                let id = s.next_delivery_id;
                s.next_delivery_id = s.next_delivery_id.wrapping_add(1);
                out.delivery_id = Some(id);
                l.delivery_count = l.delivery_count.wrapping_add(1);
                l.link_credit -= 1;
                if !out.settled {
                    s.outgoing_unsettled.insert(id, (l.id, out.token));
                }
            }
            let mut transfer = Transfer {
                handle,
                delivery_id: out.delivery_id,
                delivery_tag: first.then(|| out.tag.clone()),
                message_format: first.then_some(out.format),
                settled: Some(out.settled),
                more: true,
                ..Transfer::default()
            };
            let room = max_frame
                .saturating_sub(frame::FRAME_HEADER_SIZE + transfer.encoded_len())
                .max(1);
            let left = out.payload.len() - out.sent;
            let n = left.min(room);
            transfer.more = n < left;
            let chunk = out.payload.slice(out.sent..out.sent + n);
            out.sent += n;
            let done = !transfer.more;
            if done {
                l.pending.pop_front();
            }
            let more_work = !l.pending.is_empty();
            s.next_outgoing_id = s.next_outgoing_id.wrapping_add(1);
            s.remote_incoming_window -= 1;
            if more_work || !done {
                if done {
                    s.send_queue.push_back(id);
                } else {
                    // Finish a started delivery before others on this session interleave.
                    s.send_queue.push_front(id);
                }
            }
            self.write(channel, transfer.into(), &chunk);
            if done {
                self.maybe_finish_drain(id);
            }
        }
    }

    /// A drained sender with nothing left to send gives its remaining credit back.
    fn maybe_finish_drain(&mut self, id: LinkId) {
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        if l.drain && l.pending.is_empty() && l.link_credit > 0 {
            l.delivery_count = l.delivery_count.wrapping_add(l.link_credit);
            l.link_credit = 0;
            self.send_link_flow(id, false);
        }
    }

    // ---- receiving --------------------------------------------------------------------

    fn on_transfer(&mut self, local: u16, t: Transfer, payload: Bytes) {
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        if s.state == SessionState::EndSent {
            return;
        }
        if s.incoming_window == 0 {
            let e = err(
                condition::SESSION_WINDOW_VIOLATION,
                "transfer beyond the session's incoming window",
            );
            self.fail_session(local, e);
            return;
        }
        s.incoming_window -= 1;
        s.next_incoming_id = s.next_incoming_id.wrapping_add(1);
        if s.incoming_window <= s.config.incoming_window / 2 {
            s.incoming_window = s.config.incoming_window;
            let f = Self::session_flow_fields(s);
            self.write(local, f.into(), &[]);
        }
        let Some(id) = self.link_by_remote(local, t.handle) else {
            return;
        };
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        if l.state == LinkState::DetachSent {
            return;
        }
        if l.role != LinkRole::Receiver {
            self.fail_link(
                id,
                err(
                    condition::NOT_ALLOWED,
                    "transfer on a link where we are the sender",
                ),
            );
            return;
        }
        if t.aborted {
            // An abort on a delivery's first frame still started a delivery on the sender's
            // side: count it, or our delivery-count falls behind the sender's.
            if l.partial.is_none() && !l.discarding && t.delivery_id.is_some() {
                l.link_credit = l.link_credit.saturating_sub(1);
                l.delivery_count = l.delivery_count.wrapping_add(1);
            }
            l.partial = None;
            l.discarding = false;
            return;
        }
        if l.partial.is_none() {
            if l.discarding {
                if !t.more {
                    l.discarding = false;
                }
                return;
            }
            let Some(delivery_id) = t.delivery_id else {
                self.fail_link(
                    id,
                    err(
                        condition::INVALID_FIELD,
                        "first transfer of a delivery has no delivery-id",
                    ),
                );
                return;
            };
            if l.link_credit == 0 {
                self.fail_link(
                    id,
                    err(
                        condition::LINK_TRANSFER_LIMIT_EXCEEDED,
                        "transfer without link credit",
                    ),
                );
                return;
            }
            l.link_credit -= 1;
            l.delivery_count = l.delivery_count.wrapping_add(1);
            l.partial = Some(Partial {
                delivery_id,
                tag: t.delivery_tag.clone().unwrap_or_default(),
                format: t.message_format.unwrap_or(0),
                settled: t.settled.unwrap_or(false),
                state: t.state.clone(),
                first: Bytes::new(),
                rest: None,
                size: 0,
            });
        }
        let limit = l.max_message_size;
        let Some(p) = l.partial.as_mut() else {
            return;
        };
        p.size += payload.len() as u64;
        if p.size > limit {
            let size = p.size;
            self.fail_link(
                id,
                err(
                    condition::LINK_MESSAGE_SIZE_EXCEEDED,
                    format!("message of at least {size} bytes exceeds max-message-size {limit}"),
                ),
            );
            return;
        }
        if t.settled == Some(true) {
            p.settled = true;
        }
        if t.state.is_some() {
            p.state = t.state;
        }
        match (&mut p.rest, p.first.is_empty()) {
            (None, true) => p.first = payload,
            (None, false) => {
                let mut buf = BytesMut::with_capacity(p.first.len() + payload.len());
                buf.extend_from_slice(&p.first);
                buf.extend_from_slice(&payload);
                p.rest = Some(buf);
            }
            (Some(buf), _) => buf.extend_from_slice(&payload),
        }
        if t.more {
            return;
        }
        let Some(p) = l.partial.take() else {
            return;
        };
        let payload = match p.rest {
            Some(buf) => buf.freeze(),
            None => p.first,
        };
        if !p.settled {
            if let Some(s) = self.sessions.get_mut(&local) {
                s.incoming_unsettled.insert(p.delivery_id, id);
            }
        }
        self.events.push_back(Event::Delivery {
            link: id,
            delivery: Delivery {
                delivery_id: p.delivery_id,
                tag: p.tag,
                message_format: p.format,
                settled: p.settled,
                state: p.state,
                payload,
            },
        });
    }

    /// Settles a received delivery with an outcome (e.g. accepted). Dispositions for
    /// consecutive deliveries with the same outcome go out as one frame.
    pub fn settle(&mut self, link: LinkId, delivery_id: u32, state: Option<DeliveryState>) {
        self.disposition(link, delivery_id, state, true);
    }

    /// Sends a disposition for a received delivery (`settled = false` only reports a state).
    pub fn disposition(
        &mut self,
        link: LinkId,
        delivery_id: u32,
        state: Option<DeliveryState>,
        settled: bool,
    ) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&l.channel) else {
            return;
        };
        if s.incoming_unsettled.get(&delivery_id) != Some(&link) {
            return;
        }
        if settled {
            s.incoming_unsettled.remove(&delivery_id);
        }
        s.queue_disposition(PendingDisposition {
            first: delivery_id,
            last: delivery_id,
            settled,
            state,
            as_receiver: true,
        });
    }

    fn flush_dispositions(&mut self) {
        let mut channels: Vec<u16> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.dispositions.is_empty())
            .map(|(c, _)| *c)
            .collect();
        channels.sort_unstable();
        for c in channels {
            let Some(s) = self.sessions.get_mut(&c) else {
                continue;
            };
            let pending = std::mem::take(&mut s.dispositions);
            for d in pending {
                let role = if d.as_receiver {
                    LinkRole::Receiver
                } else {
                    LinkRole::Sender
                };
                let frame = Disposition {
                    role,
                    first: d.first,
                    last: (d.last != d.first).then_some(d.last),
                    settled: d.settled,
                    state: d.state,
                    batchable: false,
                };
                self.write(c, frame.into(), &[]);
            }
        }
    }

    fn on_disposition(&mut self, local: u16, d: Disposition) {
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        let last = d.last.unwrap_or(d.first);
        match d.role {
            // The peer received these: they are ours.
            LinkRole::Receiver => {
                let ids = Session::ids_in_range(&s.outgoing_unsettled, d.first, last);
                for id in ids {
                    let Some(&(link, token)) = s.outgoing_unsettled.get(&id) else {
                        continue;
                    };
                    let terminal = d.state.as_ref().is_some_and(DeliveryState::is_terminal);
                    let mut settled = d.settled;
                    if !settled && terminal {
                        // Receiver-settle-mode second: the receiver waits for us to settle.
                        settled = true;
                        s.queue_disposition(PendingDisposition {
                            first: id,
                            last: id,
                            settled: true,
                            state: d.state.clone(),
                            as_receiver: false,
                        });
                    }
                    if settled {
                        s.outgoing_unsettled.remove(&id);
                    }
                    self.events.push_back(Event::Outcome {
                        link,
                        delivery: token,
                        state: d.state.clone(),
                        settled,
                    });
                }
            }
            // The peer sent these and settled them.
            LinkRole::Sender => {
                if d.settled {
                    for id in Session::ids_in_range(&s.incoming_unsettled, d.first, last) {
                        s.incoming_unsettled.remove(&id);
                    }
                }
            }
        }
    }

    /// Our role on a link.
    pub fn link_role(&self, link: LinkId) -> Option<LinkRole> {
        self.links.get(&link).map(|l| l.role)
    }

    /// The receiver settle mode agreed for a link.
    pub fn rcv_settle_mode(&self, link: LinkId) -> Option<ReceiverSettleMode> {
        self.links.get(&link).map(|l| l.rcv_settle_mode)
    }
}
