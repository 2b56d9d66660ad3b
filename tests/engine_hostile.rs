//! Hostile input: random bytes after valid headers, and randomly mutated recordings of a real
//! conversation, fed in random pieces to client and server engines (with and without SASL).
//! The engine must never panic, must end in either "more input wanted" or exactly one Closed
//! event, must never hold more than one max-frame-size of partial input, and must only ever
//! write well-formed frames within the size the peer allows.

mod common_engine;
mod support;

use common_engine::*;
use eventhubs::amqp::engine::testing;
use eventhubs::amqp::engine::{
    Connection, ConnectionConfig, EndpointRole, Event, LinkAcceptance, LinkConfig,
    SaslClientMechanism, SessionConfig,
};
use eventhubs::amqp::frame::{ProtocolHeader, MIN_MAX_FRAME_SIZE};
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::messaging::{Source, Target};
use eventhubs::amqp::types::sasl::{SaslCode, SaslFrameBody, SaslMechanisms, SaslOutcome};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use support::TestAuth;

const OUR_MAX_FRAME: u32 = 4096;

fn config(role_client: bool, sasl: bool) -> ConnectionConfig {
    let mut c = ConnectionConfig::default()
        .with_max_frame_size(OUR_MAX_FRAME)
        .with_idle_timeout(Duration::from_secs(5));
    if sasl {
        if role_client {
            c.sasl = Some(SaslClientMechanism::Anonymous);
        } else {
            c.sasl_server = Some(Arc::new(TestAuth::offering(
                &["ANONYMOUS", "PLAIN"],
                "user",
                "secret",
            )));
            c.allow_no_sasl = false;
        }
    }
    c
}

/// The application side of an engine: accepts links, grants credit, sends, settles. Also
/// exercises commands on whatever state the hostile input left the engine in.
fn react(conn: &mut Connection, e: &Event) {
    match e {
        // A client starts its work once open (with SASL it cannot begin sooner).
        Event::Opened { .. } if conn.role() == EndpointRole::Client => client_commands(conn),
        Event::LinkAttachRequested { link, attach, .. } => {
            let ok = conn.accept_link(
                *link,
                LinkAcceptance::default()
                    .with_source(Source::new("src"))
                    .with_target(Target::new("tgt")),
            );
            if ok.is_ok() {
                if attach.role == Role::Sender {
                    conn.add_credit(*link, 10);
                } else {
                    for i in 0..3u8 {
                        let _ = conn.send(*link, vec![i; 700].into(), 0, i == 2);
                    }
                }
            }
        }
        Event::Delivery { link, delivery } if !delivery.settled => {
            conn.settle(*link, delivery.delivery_id, accepted());
        }
        Event::Credit { link, credit } if *credit > 0 => {
            let _ = conn.send(*link, vec![9; 100].into(), 0, false);
        }
        _ => {}
    }
}

/// What a client does up front in the recorded conversation.
fn client_commands(c: &mut Connection) {
    let Ok(s) = c.begin_session(SessionConfig::default()) else {
        return;
    };
    let snd = c
        .attach(
            s,
            LinkConfig::default()
                .with_name("s".into())
                .with_role(Role::Sender)
                .with_target(Target::new("q")),
        )
        .unwrap();
    let rcv = c
        .attach(
            s,
            LinkConfig::default()
                .with_name("r".into())
                .with_role(Role::Receiver)
                .with_source(Source::new("q")),
        )
        .unwrap();
    c.add_credit(rcv, 10);
    for i in 0..5u8 {
        c.send(snd, vec![i; 1500].into(), 0, false).unwrap();
    }
}

/// An engine fed hostile bytes, with the checks run after every piece.
struct Victim {
    conn: Connection,
    clock: Clock,
    out: WireReader,
    closed_events: usize,
    /// Deliveries and outcomes seen: how deep into the conversation the input got.
    progress: usize,
}

impl Victim {
    fn new(client: bool, sasl: bool) -> Self {
        let clock = Clock::new();
        let cfg = config(client, sasl);
        let conn = if client {
            Connection::client(cfg, clock.now())
        } else {
            Connection::server(cfg, clock.now())
        };
        let mut v = Victim {
            conn,
            clock,
            out: WireReader::default(),
            closed_events: 0,
            progress: 0,
        };
        v.settle();
        v
    }

    fn settle(&mut self) {
        loop {
            let mut any = false;
            while let Some(e) = self.conn.poll_event() {
                any = true;
                match e {
                    Event::Closed { .. } => self.closed_events += 1,
                    Event::Delivery { .. } | Event::Outcome { .. } => self.progress += 1,
                    _ => {}
                }
                react(&mut self.conn, &e);
            }
            while let Some(b) = self.conn.poll_transmit() {
                any = true;
                let limit = self.conn.remote_open().map_or(MIN_MAX_FRAME_SIZE, |o| {
                    o.max_frame_size.max(MIN_MAX_FRAME_SIZE)
                });
                self.out.push(&b, limit);
                self.out.take();
            }
            if !any {
                break;
            }
        }
        assert!(self.closed_events <= 1, "Closed reported twice");
        if self.conn.is_closed() {
            assert_eq!(self.closed_events, 1, "closed without a Closed event");
        } else {
            assert_eq!(self.closed_events, 0, "Closed event but not closed");
            assert!(
                testing::buffered_input(&self.conn) < OUR_MAX_FRAME as usize,
                "holding {} bytes of partial input",
                testing::buffered_input(&self.conn)
            );
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let was_closed = self.conn.is_closed();
        let now = self.clock.now();
        self.conn.handle_bytes(bytes, now);
        if was_closed {
            assert!(self.conn.poll_transmit().is_none(), "wrote after closing");
            assert!(self.conn.poll_event().is_none(), "events after closing");
        }
        self.settle();
    }

    fn tick(&mut self, ms: u64) {
        let now = self.clock.advance(Duration::from_millis(ms));
        self.conn.handle_timeout(now);
        self.settle();
    }

    /// Feeds `bytes` in random pieces, with time passing now and then.
    fn feed_chunked(&mut self, bytes: &[u8], seed: u64) {
        let mut rng = common_engine::Rng::new(seed);
        let mut at = 0;
        while at < bytes.len() {
            // Mostly small pieces, so the application side reacts between frames (as over a
            // real socket) and the conversation gets deep; now and then everything at once.
            let n = match rng.below(64) {
                0..=20 => rng.range(1, 4),
                21..=62 => rng.range(1, 48),
                _ => rng.range(1, 4000),
            }
            .min(bytes.len() - at);
            self.feed(&bytes[at..at + n]);
            at += n;
            if rng.below(8) == 0 {
                self.tick(rng.range(0, 3000) as u64);
            }
        }
        // And a long silence at the end: whatever state, the timer must cope.
        self.tick(10_000);
    }
}

/// The valid prefix a peer would send before the random part.
fn prefix(client_victim: bool, sasl: bool, with_open: bool) -> Vec<u8> {
    let mut v = Vec::new();
    if sasl {
        v.extend(ProtocolHeader::SASL.to_bytes());
        if client_victim {
            v.extend(sasl_frame(SaslFrameBody::Mechanisms(SaslMechanisms {
                mechanisms: vec!["ANONYMOUS".into()],
            })));
            v.extend(sasl_frame(SaslFrameBody::Outcome(SaslOutcome::new(
                SaslCode::Ok,
            ))));
        } else {
            return v; // the random part plays the client's SASL frames
        }
    }
    v.extend(ProtocolHeader::AMQP.to_bytes());
    if with_open {
        let mut o = open("peer");
        o.max_frame_size = 512;
        o.idle_time_out = Some(1000);
        v.extend(amqp_frame(0, o));
        if !client_victim {
            return v;
        }
        v.extend(amqp_frame(0, begin(Some(0), 100)));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_after_valid_headers_never_panic(
        client_victim in any::<bool>(),
        sasl in any::<bool>(),
        with_open in any::<bool>(),
        junk in prop::collection::vec(any::<u8>(), 0..3000),
        seed in any::<u64>(),
    ) {
        let mut v = Victim::new(client_victim, sasl);
        let mut bytes = prefix(client_victim, sasl, with_open);
        bytes.extend(junk);
        v.feed_chunked(&bytes, seed);
    }

    #[test]
    fn random_frame_shaped_input_never_panics(
        client_victim in any::<bool>(),
        frames in prop::collection::vec(
            (0u16..4, 0u8..0x20, prop::collection::vec(any::<u8>(), 0..64)),
            0..40,
        ),
        seed in any::<u64>(),
    ) {
        // Well-framed garbage: valid frame headers around described-list-looking bodies, so
        // the decoder and the state machines (not just the framer) see the junk.
        let mut v = Victim::new(client_victim, false);
        let mut bytes = prefix(client_victim, false, true);
        for (channel, code, body) in frames {
            let mut b = vec![0x00, 0x53, 0x10 + (code % 0x09), 0xc0, (body.len() + 1) as u8, (body.len() / 2) as u8];
            b.extend(&body);
            let size = (8 + b.len()) as u32;
            bytes.extend(size.to_be_bytes());
            bytes.extend([2, 0]);
            bytes.extend(channel.to_be_bytes());
            bytes.extend(b);
        }
        v.feed_chunked(&bytes, seed);
    }
}

// ---- mutated recordings ---------------------------------------------------------------------

/// Records both directions of a full conversation: open, session, two links, deliveries both
/// ways (multi-frame at 512), dispositions, detach, end, close.
fn record(sasl: bool) -> (Vec<u8>, Vec<u8>) {
    let now = Clock::new();
    let mut ccfg = config(true, sasl);
    ccfg.max_frame_size = 512;
    let mut scfg = config(false, sasl);
    scfg.max_frame_size = 512;
    let mut c = Connection::client(ccfg, now.now());
    let mut s = Connection::server(scfg, now.now());
    let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
    let mut closing = false;
    for _ in 0..1000 {
        let mut moved = false;
        while let Some(b) = c.poll_transmit() {
            c2s.extend_from_slice(&b);
            s.handle_bytes(&b, now.now());
            moved = true;
        }
        while let Some(b) = s.poll_transmit() {
            s2c.extend_from_slice(&b);
            c.handle_bytes(&b, now.now());
            moved = true;
        }
        while let Some(e) = s.poll_event() {
            react(&mut s, &e);
            moved = true;
        }
        while let Some(e) = c.poll_event() {
            react(&mut c, &e);
            moved = true;
        }
        if !moved {
            if closing {
                break;
            }
            closing = true;
            c.end_session(eventhubs::amqp::engine::SessionId(0), None);
            c.close(None);
        }
    }
    assert!(
        c.is_closed() && s.is_closed(),
        "the recording must be a whole conversation"
    );
    assert!(
        c2s.len() > 7000 && s2c.len() > 2000,
        "{} / {}",
        c2s.len(),
        s2c.len()
    );
    (c2s, s2c)
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<usize>(), 1usize..200).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(mut v: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if v.is_empty() {
            break;
        }
        let n = v.len();
        match m {
            Mutation::Flip { at, bit } => v[at % n] ^= 1 << bit,
            Mutation::Set { at, byte } => v[at % n] = *byte,
            Mutation::Insert { at, bytes } => {
                let at = at % n;
                v.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete { at, len } => {
                let at = at % n;
                let end = (at + len).min(n);
                v.drain(at..end);
            }
            Mutation::Duplicate { at, len } => {
                let at = at % n;
                let end = (at + len).min(n);
                let copy = v[at..end].to_vec();
                v.splice(end..end, copy);
            }
            Mutation::Truncate { at } => v.truncate(at % n),
        }
    }
    v
}

#[test]
fn the_recordings_replay_cleanly() {
    // Unmutated, the recordings drive fresh engines through the whole conversation.
    for sasl in [true, false] {
        let (c2s, s2c) = record(sasl);
        let mut server = Victim::new(false, sasl);
        server.feed_chunked(&c2s, 1);
        assert!(server.conn.is_closed());
        assert!(
            server.progress >= 8,
            "server replay got {} deep",
            server.progress
        );
        let mut client = Victim::new(true, sasl);
        client.feed_chunked(&s2c, 2);
        assert!(client.conn.is_closed());
        assert!(
            client.progress >= 8,
            "client replay got {} deep",
            client.progress
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_recordings_never_panic(
        client_victim in any::<bool>(),
        sasl in any::<bool>(),
        muts in prop::collection::vec(mutation(), 1..6),
        seed in any::<u64>(),
    ) {
        let (c2s, s2c) = record(sasl);
        let mut v = Victim::new(client_victim, sasl);
        let bytes = if client_victim {
            apply(s2c, &muts)
        } else {
            apply(c2s, &muts)
        };
        v.feed_chunked(&bytes, seed);
    }
}
