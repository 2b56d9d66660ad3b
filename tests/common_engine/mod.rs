//! Test harness for the sans-IO engine: a simulated clock, a wire decoder that checks every
//! frame an engine writes, a scripted peer (one engine against hand-written frames) and a pair
//! (client engine joined to server engine in memory, optionally chopping the byte stream into
//! random pieces).
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use eventhubs::amqp::codec::{Decode, Decoder, Encode, Str};
use eventhubs::amqp::engine::{
    Connection, ConnectionConfig, Event, LinkAcceptance, LinkConfig, LinkId, SessionConfig,
    SessionId,
};
use eventhubs::amqp::frame::{
    self, AmqpFrame, FrameReader, ProtocolHeader, RawFrame, StreamItem, MIN_MAX_FRAME_SIZE,
};
use eventhubs::amqp::types::definitions::{ReceiverSettleMode, Role, SenderSettleMode};
use eventhubs::amqp::types::error::AmqpError;
use eventhubs::amqp::types::messaging::{Accepted, DeliveryState, Source, Target};
use eventhubs::amqp::types::sasl::SaslFrameBody;
use eventhubs::amqp::types::transport::{
    Attach, Begin, Detach, Disposition, Flow, Open, Performative, Transfer,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

// ---- clock and randomness ------------------------------------------------------------------

/// A simulated clock: a fixed base plus the time we let pass.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: Instant,
    elapsed: Duration,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            base: Instant::now(),
            elapsed: Duration::ZERO,
        }
    }
    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }
    pub fn advance(&mut self, d: Duration) -> Instant {
        self.elapsed += d;
        self.now()
    }
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// A small deterministic PRNG (xorshift64*), so failures replay from their seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

// ---- the wire --------------------------------------------------------------------------------

/// One unit an engine wrote: a protocol header, a SASL frame or an AMQP frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Wire {
    Header(ProtocolHeader),
    Sasl(SaslFrameBody),
    Frame {
        channel: u16,
        /// The frame's size field.
        size: u32,
        /// `None` for an empty (heartbeat) frame.
        performative: Option<Performative>,
        payload: Bytes,
    },
}

impl Wire {
    pub fn performative(&self) -> Option<&Performative> {
        match self {
            Wire::Frame { performative, .. } => performative.as_ref(),
            _ => None,
        }
    }
    pub fn is_heartbeat(&self) -> bool {
        matches!(
            self,
            Wire::Frame {
                performative: None,
                ..
            }
        )
    }
}

/// Decodes the byte stream an engine writes. Panics on anything malformed: our engine must only
/// ever write valid frames.
pub struct WireReader {
    reader: FrameReader,
    frames: Vec<Wire>,
    /// Size of the largest frame seen.
    pub largest: u32,
}

impl Default for WireReader {
    fn default() -> Self {
        WireReader {
            reader: FrameReader::new(u32::MAX),
            frames: Vec::new(),
            largest: 0,
        }
    }
}

impl WireReader {
    /// Adds written bytes; `limit` is the largest frame size the writer may use right now.
    pub fn push(&mut self, bytes: &[u8], limit: u32) {
        self.reader.push(bytes);
        // The reader takes anything; the writer's limit is checked here, with a message.
        while let Some((item, wire)) = self.reader.next_with_bytes().expect("bad frame") {
            match item {
                StreamItem::Header(header) => self.frames.push(Wire::Header(header)),
                StreamItem::Frame(raw) => {
                    let size = wire.len() as u32;
                    assert!(
                        size <= limit,
                        "engine wrote a frame of {size} bytes; the peer's limit is {limit}"
                    );
                    self.largest = self.largest.max(size);
                    self.frames.push(decode_raw(raw, size));
                }
            }
        }
    }

    /// Everything decoded so far.
    pub fn take(&mut self) -> Vec<Wire> {
        std::mem::take(&mut self.frames)
    }

    /// True when a frame is only partly written (never the case between polls).
    pub fn has_partial(&self) -> bool {
        !self.reader.buffered().is_empty()
    }
}

fn decode_raw(raw: RawFrame, size: u32) -> Wire {
    if raw.frame_type == frame::FRAME_TYPE_SASL {
        let body = SaslFrameBody::decode(&mut Decoder::new(raw.body)).expect("bad SASL frame");
        Wire::Sasl(body)
    } else {
        let f = AmqpFrame::decode(raw).expect("bad AMQP frame");
        Wire::Frame {
            channel: f.channel,
            size,
            performative: f.performative,
            payload: f.payload,
        }
    }
}

/// The performatives among `wires`, with their channels.
pub fn performatives(wires: &[Wire]) -> Vec<(u16, Performative)> {
    wires
        .iter()
        .filter_map(|w| match w {
            Wire::Frame {
                channel,
                performative: Some(p),
                ..
            } => Some((*channel, p.clone())),
            _ => None,
        })
        .collect()
}

/// Performative names, for readable assertions.
pub fn names(wires: &[Wire]) -> Vec<&'static str> {
    wires
        .iter()
        .map(|w| match w {
            Wire::Header(_) => "header",
            Wire::Sasl(b) => b.name(),
            Wire::Frame {
                performative: Some(p),
                ..
            } => p.name(),
            Wire::Frame { .. } => "empty",
        })
        .collect()
}

// ---- encoding peer frames ------------------------------------------------------------------

pub fn amqp_frame(channel: u16, p: impl Into<Performative>) -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_amqp_frame(&mut v, channel, &p.into(), &[]);
    v
}

pub fn transfer_frame(channel: u16, t: Transfer, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_amqp_frame(&mut v, channel, &Performative::Transfer(t), payload);
    v
}

pub fn sasl_frame(body: SaslFrameBody) -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_sasl_frame(&mut v, &body);
    v
}

pub fn empty_frame() -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_empty_frame(&mut v);
    v
}

// ---- performative builders ------------------------------------------------------------------

pub fn open(container: &str) -> Open {
    Open {
        container_id: Str::from(container),
        max_frame_size: 65536,
        channel_max: 255,
        ..Open::default()
    }
}

pub fn begin(remote_channel: Option<u16>, incoming_window: u32) -> Begin {
    Begin {
        remote_channel,
        next_outgoing_id: 0,
        incoming_window,
        outgoing_window: 5000,
        handle_max: 1023,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    }
}

/// An attach from the peer with the given role (the peer's role).
pub fn attach(name: &str, handle: u32, role: Role) -> Attach {
    Attach {
        name: Str::from(name),
        handle,
        role,
        snd_settle_mode: SenderSettleMode::Mixed,
        rcv_settle_mode: ReceiverSettleMode::First,
        source: Some(Box::new(Source::new("src"))),
        target: Some(Box::new(Target::new("tgt"))),
        unsettled: None,
        incomplete_unsettled: false,
        initial_delivery_count: (role == Role::Sender).then_some(0),
        max_message_size: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    }
}

/// A link flow from the peer (as receiver) granting `credit` at `delivery_count`.
pub fn credit_flow(handle: u32, delivery_count: u32, credit: u32) -> Flow {
    Flow {
        next_incoming_id: Some(0),
        incoming_window: 5000,
        next_outgoing_id: 0,
        outgoing_window: 5000,
        handle: Some(handle),
        delivery_count: Some(delivery_count),
        link_credit: Some(credit),
        ..Flow::default()
    }
}

/// The first (and maybe only) frame of a delivery from the peer.
pub fn transfer(handle: u32, delivery_id: u32, more: bool) -> Transfer {
    Transfer {
        handle,
        delivery_id: Some(delivery_id),
        delivery_tag: Some(Bytes::copy_from_slice(&delivery_id.to_be_bytes())),
        message_format: Some(0),
        settled: Some(false),
        more,
        ..Transfer::default()
    }
}

/// A continuation frame.
pub fn continuation(handle: u32, more: bool) -> Transfer {
    Transfer {
        handle,
        more,
        ..Transfer::default()
    }
}

pub fn disposition(
    role: Role,
    first: u32,
    last: Option<u32>,
    settled: bool,
    state: Option<DeliveryState>,
) -> Disposition {
    Disposition {
        role,
        first,
        last,
        settled,
        state,
        batchable: false,
    }
}

pub fn detach(handle: u32, closed: bool, error: Option<AmqpError>) -> Detach {
    Detach {
        handle,
        closed,
        error,
    }
}

pub fn accepted() -> Option<DeliveryState> {
    Some(DeliveryState::Accepted(Accepted))
}

pub fn error_condition(e: &Option<AmqpError>) -> Option<&str> {
    e.as_ref().map(|e| e.condition.as_str())
}

// ---- one engine against a script -----------------------------------------------------------

/// One engine under test; the test plays the peer with hand-written bytes.
pub struct Scripted {
    pub conn: Connection,
    pub clock: Clock,
    out: WireReader,
    events: Vec<Event>,
    /// The max-frame-size the scripted peer announced (512 until its open is fed).
    pub peer_max_frame: u32,
}

impl Scripted {
    pub fn client(config: ConnectionConfig) -> Self {
        let clock = Clock::new();
        let conn = Connection::client(config, clock.now());
        Self::wrap(conn, clock)
    }

    pub fn server(config: ConnectionConfig) -> Self {
        let clock = Clock::new();
        let conn = Connection::server(config, clock.now());
        Self::wrap(conn, clock)
    }

    fn wrap(conn: Connection, clock: Clock) -> Self {
        let mut s = Scripted {
            conn,
            clock,
            out: WireReader::default(),
            events: Vec::new(),
            peer_max_frame: MIN_MAX_FRAME_SIZE,
        };
        s.collect();
        s
    }

    /// A client engine whose header and open have been answered by `peer`.
    pub fn opened_client(config: ConnectionConfig, peer: Open) -> Self {
        let mut s = Self::client(config);
        let sent = s.frames();
        assert_eq!(names(&sent), ["header", "open"]);
        s.feed_header(ProtocolHeader::AMQP);
        s.feed_perf(0, peer);
        assert!(matches!(s.events()[..], [Event::Opened { .. }]));
        s
    }

    /// A server engine that received the client's header and `peer` open.
    pub fn opened_server(config: ConnectionConfig, peer: Open) -> Self {
        let mut s = Self::server(config);
        s.feed_header(ProtocolHeader::AMQP);
        s.feed_perf(0, peer);
        let sent = s.frames();
        assert_eq!(names(&sent), ["header", "open"]);
        assert!(matches!(s.events()[..], [Event::Opened { .. }]));
        s
    }

    /// Polls the engine: written bytes are decoded (and their sizes checked), events kept.
    pub fn collect(&mut self) {
        while let Some(bytes) = self.conn.poll_transmit() {
            let limit = self.peer_max_frame;
            self.out.push(&bytes, limit);
        }
        assert!(!self.out.has_partial(), "engine wrote part of a frame");
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        let now = self.clock.now();
        self.conn.handle_bytes(bytes, now);
        self.collect();
    }

    pub fn feed_header(&mut self, h: ProtocolHeader) {
        self.feed(&h.to_bytes());
    }

    pub fn feed_perf(&mut self, channel: u16, p: impl Into<Performative>) {
        let p = p.into();
        if let Performative::Open(o) = &p {
            self.peer_max_frame = o.max_frame_size.max(MIN_MAX_FRAME_SIZE);
        }
        self.feed(&amqp_frame(channel, p));
    }

    pub fn feed_transfer(&mut self, channel: u16, t: Transfer, payload: &[u8]) {
        self.feed(&transfer_frame(channel, t, payload));
    }

    pub fn feed_sasl(&mut self, body: SaslFrameBody) {
        self.feed(&sasl_frame(body));
    }

    /// Lets time pass and runs the engine's timer.
    pub fn advance(&mut self, d: Duration) {
        let now = self.clock.advance(d);
        self.conn.handle_timeout(now);
        self.collect();
    }

    /// Everything the engine wrote since the last call.
    pub fn frames(&mut self) -> Vec<Wire> {
        self.collect();
        self.out.take()
    }

    /// The performatives the engine wrote since the last call.
    pub fn perfs(&mut self) -> Vec<(u16, Performative)> {
        performatives(&self.frames())
    }

    /// Every event since the last call.
    pub fn events(&mut self) -> Vec<Event> {
        self.collect();
        std::mem::take(&mut self.events)
    }

    /// The one `Closed` event among the events so far (asserting there is exactly one).
    pub fn expect_closed(&mut self) -> (Option<AmqpError>, bool) {
        let closed: Vec<_> = self
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Closed { error, by_peer } => Some((error, by_peer)),
                _ => None,
            })
            .collect();
        assert_eq!(closed.len(), 1, "expected exactly one Closed event");
        assert!(self.conn.is_closed());
        closed.into_iter().next().unwrap()
    }

    /// A session begun by us on an opened engine, answered by the peer on channel `peer_ch`
    /// with `peer_window` as its incoming window.
    pub fn begin_ours(
        &mut self,
        config: SessionConfig,
        peer_ch: u16,
        peer_window: u32,
    ) -> SessionId {
        let s = self.conn.begin_session(config).unwrap();
        let p = self.perfs();
        assert!(
            matches!(&p[..], [(c, Performative::Begin(b))] if *c == s.0 && b.remote_channel.is_none())
        );
        self.feed_perf(peer_ch, begin(Some(s.0), peer_window));
        let ev = self.events();
        assert!(
            matches!(&ev[..], [Event::SessionBegun { session, .. }] if *session == s),
            "{ev:?}"
        );
        s
    }

    /// A link attached by us; the peer answers with handle `peer_handle`.
    pub fn attach_ours(
        &mut self,
        session: SessionId,
        peer_ch: u16,
        role: Role,
        peer_handle: u32,
    ) -> (LinkId, u32) {
        let link = self
            .conn
            .attach(
                session,
                LinkConfig::default()
                    .with_name(format!("link-{peer_handle}"))
                    .with_role(role)
                    .with_source(Source::new("src"))
                    .with_target(Target::new("tgt")),
            )
            .unwrap();
        let p = self.perfs();
        let [(_, Performative::Attach(a))] = &p[..] else {
            panic!("expected one attach, got {p:?}");
        };
        assert_eq!(a.role, role);
        let ours = a.handle;
        let mut answer = attach(a.name.as_str(), peer_handle, role.opposite());
        answer.initial_delivery_count = (role == Role::Receiver).then_some(0);
        self.feed_perf(peer_ch, answer);
        let ev = self.events();
        assert!(
            matches!(&ev[..], [Event::LinkAttached { link: l, .. }] if *l == link),
            "{ev:?}"
        );
        (link, ours)
    }
}

// ---- two engines joined --------------------------------------------------------------------

/// A client and a server engine joined in memory.
pub struct Pair {
    pub client: Connection,
    pub server: Connection,
    pub clock: Clock,
    pub client_events: VecDeque<Event>,
    pub server_events: VecDeque<Event>,
    /// What the client wrote (decoded).
    pub c2s: WireReader,
    /// What the server wrote (decoded).
    pub s2c: WireReader,
    /// Bytes written by the client and not yet handed to the server.
    c2s_flight: BytesMut,
    s2c_flight: BytesMut,
    /// When set, bytes are handed over in random-sized pieces.
    chunker: Option<Rng>,
    /// Keep decoded frames (tests that inspect the wire); off for big runs.
    pub keep_wire: bool,
}

impl Pair {
    pub fn new(client: ConnectionConfig, server: ConnectionConfig) -> Self {
        let clock = Clock::new();
        Pair {
            client: Connection::client(client, clock.now()),
            server: Connection::server(server, clock.now()),
            clock,
            client_events: VecDeque::new(),
            server_events: VecDeque::new(),
            c2s: WireReader::default(),
            s2c: WireReader::default(),
            c2s_flight: BytesMut::new(),
            s2c_flight: BytesMut::new(),
            chunker: None,
            keep_wire: true,
        }
    }

    /// Hands bytes over in random pieces from now on.
    pub fn chunked(mut self, seed: u64) -> Self {
        self.chunker = Some(Rng::new(seed));
        self
    }

    /// A pair that has exchanged headers (and SASL) and opens.
    pub fn opened(client: ConnectionConfig, server: ConnectionConfig) -> Self {
        let mut p = Self::new(client, server);
        p.pump();
        assert!(p
            .client_events
            .iter()
            .any(|e| matches!(e, Event::Opened { .. })));
        assert!(p
            .server_events
            .iter()
            .any(|e| matches!(e, Event::Opened { .. })));
        p.client_events.clear();
        p.server_events.clear();
        p
    }

    /// Moves what both engines wrote into flight, checking every frame's size. Output is
    /// taken as the driver takes it, in chunks (large transfer payloads apart); the server
    /// side and `Scripted` use the contiguous `poll_transmit`.
    pub fn transmit(&mut self) -> bool {
        let mut moved = false;
        while let Some((b, _)) = self.client.poll_transmit_chunk() {
            let limit = self
                .client
                .remote_open()
                .map_or(MIN_MAX_FRAME_SIZE, |o| o.max_frame_size);
            self.c2s.push(&b, limit);
            if !self.keep_wire {
                self.c2s.take();
            }
            self.c2s_flight.extend_from_slice(&b);
            moved = true;
        }
        while let Some(b) = self.server.poll_transmit() {
            let limit = self
                .server
                .remote_open()
                .map_or(MIN_MAX_FRAME_SIZE, |o| o.max_frame_size);
            self.s2c.push(&b, limit);
            if !self.keep_wire {
                self.s2c.take();
            }
            self.s2c_flight.extend_from_slice(&b);
            moved = true;
        }
        moved
    }

    /// Delivers some of the bytes in flight each way (all of them without a chunker).
    pub fn deliver(&mut self) -> bool {
        let now = self.clock.now();
        let mut moved = false;
        for to_server in [true, false] {
            let flight = if to_server {
                &mut self.c2s_flight
            } else {
                &mut self.s2c_flight
            };
            if flight.is_empty() {
                continue;
            }
            let n = match &mut self.chunker {
                Some(rng) => {
                    let max = flight.len();
                    // Mostly small pieces, sometimes everything.
                    match rng.below(4) {
                        0 => max,
                        1 => rng.range(1, max.min(8)),
                        _ => rng.range(1, max.min(700)),
                    }
                }
                None => flight.len(),
            };
            let piece = flight.split_to(n);
            if to_server {
                self.server.handle_bytes(&piece, now);
            } else {
                // As the driver reads: straight into the engine's input buffer.
                self.client
                    .input_buffer(piece.len(), 64 * 1024)
                    .extend_from_slice(&piece);
                self.client.handle_input(now);
            }
            moved = true;
        }
        self.collect_events();
        moved
    }

    /// One step: transmit, then deliver one piece each way.
    pub fn step(&mut self) -> bool {
        let a = self.transmit();
        let b = self.deliver();
        a || b
    }

    /// Steps until nothing moves.
    pub fn pump(&mut self) {
        let mut guard = 0u64;
        while self.step() {
            guard += 1;
            assert!(guard < 50_000_000, "pump does not settle");
        }
    }

    pub fn collect_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push_back(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push_back(e);
        }
    }

    pub fn take_client_events(&mut self) -> Vec<Event> {
        self.collect_events();
        self.client_events.drain(..).collect()
    }

    pub fn take_server_events(&mut self) -> Vec<Event> {
        self.collect_events();
        self.server_events.drain(..).collect()
    }

    /// Lets time pass on both engines and pumps.
    pub fn advance(&mut self, d: Duration) {
        let now = self.clock.advance(d);
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        self.pump();
    }

    /// A client session (the server side answers by itself).
    pub fn session(&mut self) -> (SessionId, SessionId) {
        let cs = self.client.begin_session(SessionConfig::default()).unwrap();
        self.pump();
        let ss = self
            .take_server_events()
            .into_iter()
            .find_map(|e| match e {
                Event::SessionBegun { session, .. } => Some(session),
                _ => None,
            })
            .expect("server saw the session");
        assert!(self
            .take_client_events()
            .iter()
            .any(|e| matches!(e, Event::SessionBegun { session, .. } if *session == cs)));
        (cs, ss)
    }

    /// A link attached by the client on `cs` with `config`; the server accepts it with
    /// `acceptance`. Returns (client link, server link).
    pub fn link(
        &mut self,
        cs: SessionId,
        config: LinkConfig,
        acceptance: LinkAcceptance,
    ) -> (LinkId, LinkId) {
        let cl = self.client.attach(cs, config).unwrap();
        self.pump();
        let sl = self
            .take_server_events()
            .into_iter()
            .find_map(|e| match e {
                Event::LinkAttachRequested { link, .. } => Some(link),
                _ => None,
            })
            .expect("server saw the attach");
        self.server.accept_link(sl, acceptance).unwrap();
        self.pump();
        assert!(self
            .take_client_events()
            .iter()
            .any(|e| matches!(e, Event::LinkAttached { link, .. } if *link == cl)));
        (cl, sl)
    }

    /// A client sender link to a server receiver.
    pub fn sender_link(&mut self, cs: SessionId, name: &str) -> (LinkId, LinkId) {
        self.link(
            cs,
            LinkConfig::default()
                .with_name(name.into())
                .with_role(Role::Sender)
                .with_target(Target::new("q")),
            LinkAcceptance::default().with_target(Target::new("q")),
        )
    }
}

/// Deliveries among `events` for `link`.
pub fn deliveries(events: &[Event]) -> Vec<eventhubs::amqp::engine::Delivery> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delivery { delivery, .. } => Some(delivery.clone()),
            _ => None,
        })
        .collect()
}

/// (token, state, settled) of every Outcome among `events`.
pub fn outcomes(events: &[Event]) -> Vec<(u64, Option<DeliveryState>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Outcome {
                delivery,
                state,
                settled,
                ..
            } => Some((*delivery, state.clone(), *settled)),
            _ => None,
        })
        .collect()
}

/// Encodes any encodable into bytes (for building odd frames by hand).
pub fn encode<T: Encode>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}
