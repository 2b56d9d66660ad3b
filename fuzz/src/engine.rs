//! Driving a sans-IO engine with hostile peer bytes.
//!
//! Input layout: `[options][chunk seed][peer bytes...]`. The harness feeds the engine a valid
//! protocol header for the chosen options first (after draining the client's own header and,
//! without SASL, its open), then the peer bytes in the seed's chunks, with the clock moving
//! and `handle_timeout` called in between. After every step it drains `poll_event` and
//! `poll_transmit`, and an application [`App`] reacts to events the way a real user would
//! (begin a session, attach links, grant credit, send, settle), so the peer bytes can reach
//! deep states.
//!
//! Checked on every run: no panic; everything the engine writes parses as protocol headers
//! and frames whose bodies decode, and no frame follows our `close`; at most one
//! [`Event::Closed`] and no event after it.

use super::Chunker;
use bytes::Bytes;
use eventhubs::amqp::codec::{Decode, Decoder, Symbol, Value};
use eventhubs::amqp::engine::testing;
use eventhubs::amqp::engine::{
    Connection, ConnectionConfig, EndpointRole, Event, LinkAcceptance, LinkConfig,
    SaslAuthenticator, SaslClientMechanism, SessionConfig,
};
use eventhubs::amqp::frame::{
    AmqpFrame, FrameReader, ProtocolHeader, StreamItem, FRAME_TYPE_AMQP, MIN_MAX_FRAME_SIZE,
};
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::error::{condition, AmqpError};
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::messaging::{Accepted, DeliveryState, Source, Target};
use eventhubs::amqp::types::sasl::SaslFrameBody;
use eventhubs::amqp::types::transport::Performative;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of control before the peer bytes.
pub const CONTROL_LEN: usize = 2;

/// Options taken from the first input byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options(pub u8);

impl Options {
    /// Use the SASL layer.
    pub fn sasl(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// Client: PLAIN rather than ANONYMOUS. Server: refuse clients that skip SASL.
    pub fn alt_sasl(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// Announce the smallest max-frame-size (512) rather than the default.
    pub fn small_frames(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// A 2 s idle timeout rather than the default 60 s.
    pub fn short_idle(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// Refuse the links the peer attaches.
    pub fn refuse_links(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Send pre-settled.
    pub fn presettled(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// Drain receiving links after their first delivery.
    pub fn drain(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// Close the connection after a few deliveries and outcomes.
    pub fn close_early(self) -> bool {
        self.0 & 0x80 != 0
    }
}

/// The server-side SASL authenticator: the one the tests' servers use.
#[path = "../../tests/support/auth.rs"]
mod auth;

/// The PLAIN user and password the harness's server accepts.
pub const PLAIN_USER: (&str, &str) = ("user", "pass");

fn common_config(opts: Options, container: &str) -> ConnectionConfig {
    ConnectionConfig::default()
        .with_container_id(container.into())
        .with_hostname("fuzz.servicebus.windows.net".into())
        .with_max_frame_size(if opts.small_frames() {
            MIN_MAX_FRAME_SIZE
        } else {
            65536
        })
        .with_idle_timeout(if opts.short_idle() {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(60)
        })
}

/// The client's configuration for `opts`.
pub fn client_config(opts: Options) -> ConnectionConfig {
    {
        let mut o = common_config(opts, "fuzz-client");
        o.sasl = opts.sasl().then(|| {
            if opts.alt_sasl() {
                SaslClientMechanism::Plain {
                    username: PLAIN_USER.0.into(),
                    password: PLAIN_USER.1.into(),
                }
            } else {
                SaslClientMechanism::Anonymous
            }
        });
        o
    }
}

/// The server's configuration for `opts`.
pub fn server_config(opts: Options) -> ConnectionConfig {
    {
        let mut o = common_config(opts, "fuzz-server").with_allow_no_sasl(!opts.alt_sasl());
        o.sasl_server = opts.sasl().then(|| {
            let (user, password) = PLAIN_USER;
            Arc::new(auth::TestAuth::offering(
                &["ANONYMOUS", "PLAIN"],
                user,
                password,
            )) as Arc<dyn SaslAuthenticator>
        });
        o
    }
}

/// The protocol header the engine of `role` is fed first (the one its peer opens with).
pub fn peer_header(opts: Options) -> ProtocolHeader {
    if opts.sasl() {
        ProtocolHeader::SASL
    } else {
        ProtocolHeader::AMQP
    }
}

/// The encoded message the application sends: larger than a 512-byte frame, so it is split.
pub fn app_message(n: u32) -> Bytes {
    let mut m = Message::with_data(Bytes::from(vec![b'a' + (n % 26) as u8; 700]));
    m.message_annotations_mut()
        .insert(Symbol::from("x-opt-partition-key"), Value::from("pk"));
    m.application_properties_mut().insert("n", Value::Uint(n));
    m.properties_mut().message_id = Some(u64::from(n).into());
    Bytes::from(super::encode_exact(&m))
}

/// What happened in a run, for tests that check the seeds reach deep states.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// `Opened` events.
    pub opened: u32,
    /// `SessionBegun` events.
    pub sessions: u32,
    /// `LinkAttached` and `LinkAttachRequested` events.
    pub links: u32,
    /// `Delivery` events.
    pub deliveries: u32,
    /// `Outcome` events.
    pub outcomes: u32,
    /// `Closed` events.
    pub closed: u32,
    /// Bytes the engine wrote.
    pub written: usize,
}

/// The application on top of an engine: reacts to events like a real client or server.
#[derive(Debug)]
pub struct App {
    role: EndpointRole,
    opts: Options,
    sends_left: u32,
    sent: u32,
    credit_refills: u32,
    attached: bool,
    drained: bool,
    closing_after: u32,
    /// What happened so far.
    pub summary: Summary,
}

impl App {
    /// An application for an engine of `role`.
    pub fn new(role: EndpointRole, opts: Options) -> Self {
        App {
            role,
            opts,
            sends_left: 4,
            sent: 0,
            credit_refills: 4,
            attached: false,
            drained: false,
            closing_after: 3,
            summary: Summary::default(),
        }
    }

    /// Reacts to one event. Engine commands may fail (the peer controls the state); they
    /// must not panic.
    pub fn react(&mut self, c: &mut Connection, e: &Event) {
        match e {
            Event::Opened { .. } => {
                self.summary.opened += 1;
                if self.role == EndpointRole::Client {
                    let _ = c.begin_session(SessionConfig::default());
                }
            }
            Event::SessionBegun { session, .. } => {
                self.summary.sessions += 1;
                if self.role == EndpointRole::Client && !self.attached {
                    self.attached = true;
                    let _ = c.attach(
                        *session,
                        LinkConfig::default()
                            .with_name("fuzz-sender".into())
                            .with_role(Role::Sender)
                            .with_target(Target::new("q")),
                    );
                    if let Ok(rx) = c.attach(
                        *session,
                        LinkConfig::default()
                            .with_name("fuzz-receiver".into())
                            .with_role(Role::Receiver)
                            .with_source(Source::new("q")),
                    ) {
                        c.add_credit(rx, 8);
                    }
                }
            }
            Event::LinkAttachRequested { link, attach, .. } => {
                self.summary.links += 1;
                if self.opts.refuse_links() {
                    let _ = c.refuse_link(*link, AmqpError::new(condition::NOT_FOUND));
                } else {
                    let acceptance = {
                        let mut o = LinkAcceptance::default();
                        o.source = attach.source.as_deref().cloned();
                        o.target = attach.target.as_deref().cloned();
                        o
                    };
                    if c.accept_link(*link, acceptance).is_ok() && attach.role == Role::Sender {
                        c.add_credit(*link, 8);
                    }
                }
            }
            Event::LinkAttached { .. } => self.summary.links += 1,
            Event::Credit { link, credit } => {
                if *credit > 0 && self.sends_left > 0 && c.queued(*link) == 0 {
                    self.sends_left -= 1;
                    self.sent += 1;
                    let _ = c.send(*link, app_message(self.sent), 0, self.opts.presettled());
                }
            }
            Event::Delivery { link, delivery } => {
                self.summary.deliveries += 1;
                // What a consumer would do with it; decoding must not panic either.
                let _ = Message::decode(delivery.payload.clone());
                if !delivery.settled {
                    c.settle(
                        *link,
                        delivery.delivery_id,
                        Some(DeliveryState::Accepted(Accepted)),
                    );
                }
                if self.opts.drain() && !self.drained {
                    self.drained = true;
                    c.drain(*link);
                }
                self.maybe_close(c);
            }
            Event::ReceiverFlow { link, credit, .. } => {
                if *credit == 0 && self.credit_refills > 0 {
                    self.credit_refills -= 1;
                    c.add_credit(*link, 2);
                }
            }
            Event::Outcome { .. } => {
                self.summary.outcomes += 1;
                self.maybe_close(c);
            }
            Event::Closed { .. } => self.summary.closed += 1,
            Event::SessionEnded { .. } | Event::LinkDetached { .. } => {}
        }
    }

    fn maybe_close(&mut self, c: &mut Connection) {
        if self.opts.close_early() {
            self.closing_after = self.closing_after.saturating_sub(1);
            if self.closing_after == 0 {
                c.close(None);
            }
        }
    }
}

/// Parses everything an engine writes and checks it is well-formed.
#[derive(Debug)]
pub struct OutputChecker {
    reader: FrameReader,
    close_sent: bool,
    /// The last frames written, described, for failure messages.
    recent: std::collections::VecDeque<String>,
    /// Every byte the engine wrote, in order.
    pub log: Vec<u8>,
}

impl Default for OutputChecker {
    fn default() -> Self {
        OutputChecker {
            // Any size frames: the peer's limit is checked below, with the frame described.
            reader: FrameReader::new(u32::MAX),
            close_sent: false,
            recent: Default::default(),
            log: Vec::new(),
        }
    }
}

impl OutputChecker {
    /// Takes the next bytes the engine wrote; `max_frame_size` is the peer's limit.
    pub fn feed(&mut self, bytes: &[u8], max_frame_size: u32) {
        self.log.extend_from_slice(bytes);
        self.reader.push(bytes);
        loop {
            let (raw, size) = match self.reader.next_with_bytes() {
                Ok(Some((StreamItem::Header(header), _))) => {
                    assert!(
                        header.is_v1_0(),
                        "engine wrote a header for another version"
                    );
                    continue;
                }
                Ok(Some((StreamItem::Frame(raw), wire))) => (raw, wire.len()),
                Ok(None) => return,
                Err(e) => panic!("engine wrote bytes that do not frame: {e}"),
            };
            let mut is_attach = false;
            let described = if raw.frame_type == FRAME_TYPE_AMQP {
                let channel = raw.channel;
                let frame = AmqpFrame::decode(raw).unwrap_or_else(|e| {
                    panic!("engine wrote an AMQP frame that does not decode: {e}")
                });
                let text = format!("ch{channel} {:?}", frame.performative);
                self.note(text.clone());
                assert!(
                    !self.close_sent,
                    "engine wrote a frame after its close; last frames:\n{}",
                    self.history()
                );
                match frame.performative {
                    Some(Performative::Close(_)) => self.close_sent = true,
                    Some(Performative::Attach(_)) => is_attach = true,
                    _ => {}
                }
                text
            } else {
                let body = SaslFrameBody::decode(&mut Decoder::new(raw.body)).unwrap_or_else(|e| {
                    panic!("engine wrote a SASL frame that does not decode: {e}")
                });
                let text = format!("sasl {}", body.name());
                self.note(text.clone());
                text
            };
            // Known and left to the engine's owners: an attach is written whatever its size, so
            // an application that echoes a peer's large termini (as this one does) exceeds a
            // small max-frame-size the peer announced. Every other frame must fit.
            assert!(
                is_attach || size <= max_frame_size.max(MIN_MAX_FRAME_SIZE) as usize,
                "engine wrote a frame of {size} bytes ({described}); the peer accepts \
                 {max_frame_size}"
            );
        }
    }
}

impl OutputChecker {
    fn note(&mut self, text: String) {
        let mut text = text;
        text.truncate(300);
        if self.recent.len() == 16 {
            self.recent.pop_front();
        }
        self.recent.push_back(text);
    }

    /// The last frames written, one per line.
    pub fn history(&self) -> String {
        self.recent.iter().map(|s| format!("  {s}\n")).collect()
    }
}

/// An engine, its application and its output checker.
pub struct Driver {
    /// The engine under test.
    pub conn: Connection,
    /// The application on top.
    pub app: App,
    /// The checker of what it writes.
    pub out: OutputChecker,
    closed_seen: bool,
}

impl Driver {
    /// A fresh engine of `role` for `opts`.
    pub fn new(role: EndpointRole, opts: Options, now: Instant) -> Self {
        let conn = match role {
            EndpointRole::Client => Connection::client(client_config(opts), now),
            EndpointRole::Server => Connection::server(server_config(opts), now),
        };
        Driver {
            conn,
            app: App::new(role, opts),
            out: OutputChecker::default(),
            closed_seen: false,
        }
    }

    /// Drains events (letting the application react) and output; returns what was written.
    pub fn step(&mut self) -> Vec<u8> {
        let mut written = Vec::new();
        // Reactions can cause events and output; a bounded number of rounds settles it.
        for _ in 0..16 {
            let mut progressed = false;
            while let Some(e) = self.conn.poll_event() {
                progressed = true;
                assert!(!self.closed_seen, "event {e:?} after Closed");
                if matches!(e, Event::Closed { .. }) {
                    self.closed_seen = true;
                }
                self.app.react(&mut self.conn, &e);
            }
            while let Some(bytes) = self.conn.poll_transmit() {
                progressed = true;
                self.out
                    .feed(&bytes, testing::remote_max_frame_size(&self.conn));
                self.app.summary.written += bytes.len();
                written.extend_from_slice(&bytes);
            }
            if !progressed {
                break;
            }
        }
        written
    }

    /// Feeds peer bytes, then drains.
    pub fn input(&mut self, bytes: &[u8], now: Instant) -> Vec<u8> {
        self.conn.handle_bytes(bytes, now);
        self.step()
    }

    /// Lets time pass, then drains.
    pub fn tick(&mut self, now: Instant) -> Vec<u8> {
        self.conn.handle_timeout(now);
        self.step()
    }
}

/// Runs one engine over fuzz input (see the module docs for the layout).
pub fn run(role: EndpointRole, data: &[u8]) -> Summary {
    let [options, seed, peer @ ..] = data else {
        return Summary::default();
    };
    let opts = Options(*options);
    let mut chunker = Chunker::new(*seed);
    let mut now = Instant::now();
    let mut d = Driver::new(role, opts, now);
    d.step();
    d.input(&peer_header(opts).to_bytes(), now);
    let mut pos = 0;
    while pos < peer.len() && !d.conn.is_closed() {
        let n = chunker.next_len().min(peer.len() - pos);
        d.input(&peer[pos..pos + n], now);
        pos += n;
        // Time mostly moves a little between reads, and now and then a lot.
        let r = chunker.rand();
        if r.is_multiple_of(32) {
            now += Duration::from_millis(u64::from(r >> 5) % 500);
            d.tick(now);
        } else if r % 1024 == 1 {
            now += Duration::from_millis(u64::from(r >> 10) % 90_000);
            d.tick(now);
        }
        if d.conn.poll_timeout().is_some_and(|t| t <= now) {
            d.tick(now);
        }
    }
    // Let the peer fall silent: heartbeats go out, then the idle timeout closes the connection.
    for _ in 0..4 {
        let Some(t) = d.conn.poll_timeout() else {
            break;
        };
        now = now.max(t);
        d.tick(now);
    }
    d.app.summary.clone()
}

/// Target `engine_client`.
pub fn fuzz_engine_client(data: &[u8]) {
    run(EndpointRole::Client, data);
}

/// Target `engine_server`.
pub fn fuzz_engine_server(data: &[u8]) {
    run(EndpointRole::Server, data);
}

/// A client and a server engine joined in memory, the client closing after the exchange
/// settles; returns the bytes each wrote (client → server, server → client).
pub fn capture_exchange(opts: Options) -> (Vec<u8>, Vec<u8>) {
    let now = Instant::now();
    let mut client = Driver::new(EndpointRole::Client, opts, now);
    let mut server = Driver::new(EndpointRole::Server, opts, now);
    let mut c2s = Vec::new();
    let mut s2c = Vec::new();
    let mut to_server = client.step();
    let mut closed = false;
    for _ in 0..256 {
        if to_server.is_empty() {
            if closed {
                break;
            }
            closed = true;
            client.conn.close(None);
            to_server = client.step();
            continue;
        }
        c2s.extend_from_slice(&to_server);
        let to_client = server.input(&to_server, now);
        s2c.extend_from_slice(&to_client);
        to_server = if to_client.is_empty() {
            Vec::new()
        } else {
            client.input(&to_client, now)
        };
    }
    (c2s, s2c)
}
