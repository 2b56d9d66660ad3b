//! Connection level, one engine against hand-written bytes (and a few joined pairs): protocol
//! headers, SASL, open/close, max-frame-size, channel-max, idle timeout and connection errors.

mod common_engine;
mod support;

use common_engine::*;
use eventhubs::amqp::engine::testing;
use eventhubs::amqp::engine::{
    Connection, ConnectionConfig, ConnectionState, Event, SaslClientMechanism, SessionConfig,
};
use eventhubs::amqp::frame::ProtocolHeader;
use eventhubs::amqp::types::error::{condition, AmqpError};
use eventhubs::amqp::types::sasl::{
    SaslCode, SaslFrameBody, SaslInit, SaslMechanisms, SaslOutcome,
};
use eventhubs::amqp::types::transport::{Close, Performative};
use std::sync::Arc;
use std::time::Duration;
use support::TestAuth;

fn sasl_server_config(offered: Vec<&'static str>, allow_no_sasl: bool) -> ConnectionConfig {
    ConnectionConfig::default()
        .with_sasl_server(Arc::new(TestAuth::offering(&offered, "user", "secret")))
        .with_allow_no_sasl(allow_no_sasl)
}

fn sasl_client_config(m: SaslClientMechanism) -> ConnectionConfig {
    ConnectionConfig::default()
        .with_sasl(m)
        .with_hostname("ns.example".into())
}

fn plain(user: &str, password: &str) -> SaslClientMechanism {
    SaslClientMechanism::Plain {
        username: user.into(),
        password: password.into(),
    }
}

fn close_error(p: &[(u16, Performative)]) -> Option<AmqpError> {
    match p.last() {
        Some((0, Performative::Close(c))) => c.error.clone(),
        other => panic!("expected a close frame last, got {other:?}"),
    }
}

// ---- protocol headers -----------------------------------------------------------------------

#[test]
fn client_without_sasl_writes_header_and_open_at_once() {
    let cfg = ConnectionConfig::default()
        .with_container_id("me".into())
        .with_hostname("host".into())
        .with_max_frame_size(4096)
        .with_channel_max(7)
        .with_idle_timeout(Duration::from_secs(30));
    let mut c = Scripted::client(cfg);
    let w = c.frames();
    assert_eq!(w[0], Wire::Header(ProtocolHeader::AMQP));
    let Some(Performative::Open(o)) = w[1].performative() else {
        panic!("no open: {w:?}");
    };
    assert_eq!(o.container_id.as_str(), "me");
    assert_eq!(o.hostname.as_deref(), Some("host"));
    assert_eq!(
        (o.max_frame_size, o.channel_max, o.idle_time_out),
        (4096, 7, Some(30_000))
    );
    assert_eq!(w.len(), 2);
    assert_eq!(testing::state(&c.conn), ConnectionState::Handshaking);
    assert!(c.events().is_empty());
}

#[test]
fn client_accepts_pipelined_header_and_open() {
    let mut c = Scripted::client(ConnectionConfig::default());
    c.frames();
    let mut bytes = ProtocolHeader::AMQP.to_bytes().to_vec();
    bytes.extend(amqp_frame(0, open("peer")));
    c.feed(&bytes);
    let ev = c.events();
    let [Event::Opened { remote }] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(remote.container_id.as_str(), "peer");
    assert_eq!(testing::state(&c.conn), ConnectionState::Open);
    assert_eq!(testing::remote_max_frame_size(&c.conn), 65536);
    assert!(
        c.frames().is_empty(),
        "a client answers nothing to the server's open"
    );
}

#[test]
fn server_answers_pipelined_header_and_open_fed_byte_by_byte() {
    let mut s = Scripted::server(ConnectionConfig::default());
    assert!(
        s.frames().is_empty(),
        "a server speaks only after the client's header"
    );
    let mut bytes = ProtocolHeader::AMQP.to_bytes().to_vec();
    bytes.extend(amqp_frame(0, open("client")));
    for (i, b) in bytes.iter().enumerate() {
        s.feed(&[*b]);
        if i == 7 {
            assert_eq!(s.frames(), [Wire::Header(ProtocolHeader::AMQP)]);
        } else if i < bytes.len() - 1 {
            assert!(s.frames().is_empty() && s.events().is_empty());
        }
    }
    assert_eq!(names(&s.frames()), ["open"]);
    assert!(matches!(s.events()[..], [Event::Opened { .. }]));
    assert_eq!(testing::state(&s.conn), ConnectionState::Open);
}

#[test]
fn server_answers_unknown_headers_with_its_own_and_closes() {
    let bad: [[u8; 8]; 4] = [
        *b"HTTP/1.1",
        *b"AMQP\x00\x01\x01\x00", // version 1.1.0
        *b"AMQP\x02\x01\x00\x00", // TLS tunnel
        *b"AMQP\x09\x01\x00\x00", // unknown protocol id
    ];
    for header in bad {
        for sasl in [false, true] {
            let cfg = if sasl {
                sasl_server_config(vec!["ANONYMOUS"], true)
            } else {
                ConnectionConfig::default()
            };
            let mut s = Scripted::server(cfg);
            s.feed(&header);
            let ours = if sasl {
                ProtocolHeader::SASL
            } else {
                ProtocolHeader::AMQP
            };
            assert_eq!(s.frames(), [Wire::Header(ours)], "answer to {header:?}");
            let (error, by_peer) = s.expect_closed();
            assert!(error.is_some() && !by_peer);
            // Anything after is ignored.
            s.feed(&amqp_frame(0, open("x")));
            assert!(s.frames().is_empty() && s.events().is_empty());
        }
    }
}

#[test]
fn server_without_sasl_refuses_a_sasl_header() {
    let mut s = Scripted::server(ConnectionConfig::default());
    s.feed_header(ProtocolHeader::SASL);
    assert_eq!(s.frames(), [Wire::Header(ProtocolHeader::AMQP)]);
    let (error, _) = s.expect_closed();
    assert!(error.is_some());
}

#[test]
fn client_closes_on_a_bad_or_unexpected_header() {
    for header in [
        *b"AMQP\x00\x01\x00\x01",
        *b"XXXXXXXX",
        ProtocolHeader::SASL.to_bytes(),
    ] {
        let mut c = Scripted::client(ConnectionConfig::default());
        c.frames();
        c.feed(&header);
        let (error, by_peer) = c.expect_closed();
        assert!(error.is_some() && !by_peer);
        assert!(
            c.frames().is_empty(),
            "no close before the peer's header is known"
        );
    }
    // A SASL client told "plain AMQP".
    let mut c = Scripted::client(sasl_client_config(SaslClientMechanism::Anonymous));
    assert_eq!(c.frames(), [Wire::Header(ProtocolHeader::SASL)]);
    c.feed_header(ProtocolHeader::AMQP);
    c.expect_closed();
}

// ---- SASL -----------------------------------------------------------------------------------

#[test]
fn sasl_anonymous_client_against_a_scripted_server() {
    let mut c = Scripted::client(sasl_client_config(SaslClientMechanism::Anonymous));
    assert_eq!(
        c.frames(),
        [Wire::Header(ProtocolHeader::SASL)],
        "no open before SASL"
    );
    let mut bytes = ProtocolHeader::SASL.to_bytes().to_vec();
    bytes.extend(sasl_frame(SaslFrameBody::Mechanisms(SaslMechanisms {
        mechanisms: vec!["MSSBCBS".into(), "ANONYMOUS".into(), "PLAIN".into()],
    })));
    c.feed(&bytes);
    let w = c.frames();
    let [Wire::Sasl(SaslFrameBody::Init(init))] = &w[..] else {
        panic!("{w:?}");
    };
    assert_eq!(init.mechanism.as_str(), "ANONYMOUS");
    assert_eq!(init.hostname.as_deref(), Some("ns.example"));
    c.feed_sasl(SaslFrameBody::Outcome(SaslOutcome::new(SaslCode::Ok)));
    // After the outcome the client restarts with the AMQP header and pipelines its open.
    assert_eq!(names(&c.frames()), ["header", "open"]);
    c.feed_header(ProtocolHeader::AMQP);
    c.feed_perf(0, open("server"));
    assert!(matches!(c.events()[..], [Event::Opened { .. }]));
    assert_eq!(testing::state(&c.conn), ConnectionState::Open);
}

#[test]
fn sasl_plain_client_sends_credentials() {
    let mut c = Scripted::client(sasl_client_config(plain("user", "secret")));
    c.frames();
    c.feed_header(ProtocolHeader::SASL);
    c.feed_sasl(SaslFrameBody::Mechanisms(SaslMechanisms {
        mechanisms: vec!["PLAIN".into()],
    }));
    let w = c.frames();
    let [Wire::Sasl(SaslFrameBody::Init(init))] = &w[..] else {
        panic!("{w:?}");
    };
    assert_eq!(init.mechanism.as_str(), "PLAIN");
    assert_eq!(
        init.plain_credentials(),
        Some((&b""[..], &b"user"[..], &b"secret"[..]))
    );
}

#[test]
fn sasl_client_gives_up_when_its_mechanism_is_not_offered() {
    let mut c = Scripted::client(sasl_client_config(plain("u", "p")));
    c.frames();
    c.feed_header(ProtocolHeader::SASL);
    c.feed_sasl(SaslFrameBody::Mechanisms(SaslMechanisms {
        mechanisms: vec!["ANONYMOUS".into(), "MSSBCBS".into()],
    }));
    assert!(
        c.frames().is_empty(),
        "no sasl-init for a mechanism the server lacks"
    );
    let (error, _) = c.expect_closed();
    assert_eq!(error_condition(&error), Some("amqp:not-implemented"));
}

#[test]
fn sasl_client_reports_a_failed_outcome() {
    for code in [
        SaslCode::Auth,
        SaslCode::Sys,
        SaslCode::SysPerm,
        SaslCode::SysTemp,
    ] {
        let mut c = Scripted::client(sasl_client_config(plain("u", "p")));
        c.frames();
        c.feed_header(ProtocolHeader::SASL);
        c.feed_sasl(SaslFrameBody::Mechanisms(SaslMechanisms {
            mechanisms: vec!["PLAIN".into()],
        }));
        c.frames();
        c.feed_sasl(SaslFrameBody::Outcome(SaslOutcome::new(code)));
        assert!(
            c.frames().is_empty(),
            "no AMQP header after a failed outcome"
        );
        let (error, by_peer) = c.expect_closed();
        assert_eq!(error_condition(&error), Some("amqp:unauthorized-access"));
        assert!(by_peer);
    }
}

#[test]
fn sasl_server_accepts_plain_then_opens() {
    let mut s = Scripted::server(sasl_server_config(vec!["ANONYMOUS", "PLAIN"], false));
    s.feed_header(ProtocolHeader::SASL);
    let w = s.frames();
    assert_eq!(w[0], Wire::Header(ProtocolHeader::SASL));
    let Wire::Sasl(SaslFrameBody::Mechanisms(m)) = &w[1] else {
        panic!("{w:?}");
    };
    let offered: Vec<&str> = m.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(offered, ["ANONYMOUS", "PLAIN"]);
    s.feed_sasl(SaslFrameBody::Init(SaslInit::plain("user", "secret")));
    assert_eq!(
        s.frames(),
        [Wire::Sasl(SaslFrameBody::Outcome(SaslOutcome::new(
            SaslCode::Ok
        )))]
    );
    // Pipelined AMQP header and open after the outcome.
    let mut bytes = ProtocolHeader::AMQP.to_bytes().to_vec();
    bytes.extend(amqp_frame(0, open("client")));
    s.feed(&bytes);
    assert_eq!(names(&s.frames()), ["header", "open"]);
    assert!(matches!(s.events()[..], [Event::Opened { .. }]));
}

#[test]
fn sasl_server_rejects_bad_password_and_unoffered_mechanism() {
    let inits = [
        SaslInit::plain("user", "wrong"),
        SaslInit::new("EXTERNAL".into()),
        SaslInit::anonymous(), // not offered below
    ];
    for init in inits {
        let mut s = Scripted::server(sasl_server_config(vec!["PLAIN"], false));
        s.feed_header(ProtocolHeader::SASL);
        s.frames();
        s.feed_sasl(SaslFrameBody::Init(init.clone()));
        assert_eq!(
            s.frames(),
            [Wire::Sasl(SaslFrameBody::Outcome(SaslOutcome::new(
                SaslCode::Auth
            )))],
            "{init:?}"
        );
        let (error, by_peer) = s.expect_closed();
        assert_eq!(error_condition(&error), Some("amqp:unauthorized-access"));
        assert!(!by_peer);
        // The client's AMQP header afterwards is ignored.
        s.feed_header(ProtocolHeader::AMQP);
        assert!(s.frames().is_empty());
    }
}

#[test]
fn sasl_server_closes_on_an_amqp_frame_during_sasl() {
    let mut s = Scripted::server(sasl_server_config(vec!["ANONYMOUS"], false));
    s.feed_header(ProtocolHeader::SASL);
    s.frames();
    s.feed_perf(0, open("client"));
    let (error, _) = s.expect_closed();
    assert_eq!(
        error_condition(&error),
        Some("amqp:connection:framing-error")
    );
}

#[test]
fn sasl_pairs_open_with_anonymous_and_plain_and_fail_with_bad_credentials() {
    for (mech, ok) in [
        (SaslClientMechanism::Anonymous, true),
        (plain("user", "secret"), true),
        (plain("user", "nope"), false),
    ] {
        let mut p = Pair::new(
            sasl_client_config(mech.clone()),
            sasl_server_config(vec!["ANONYMOUS", "PLAIN"], false),
        );
        p.pump();
        let ce = p.take_client_events();
        let se = p.take_server_events();
        if ok {
            assert!(matches!(ce[..], [Event::Opened { .. }]), "{mech:?}: {ce:?}");
            assert!(matches!(se[..], [Event::Opened { .. }]), "{mech:?}: {se:?}");
        } else {
            assert!(
                matches!(ce[..], [Event::Closed { by_peer: true, .. }]),
                "{ce:?}"
            );
            assert!(
                matches!(se[..], [Event::Closed { by_peer: false, .. }]),
                "{se:?}"
            );
            assert!(p.client.is_closed() && p.server.is_closed());
        }
    }
}

#[test]
fn client_without_sasl_against_a_sasl_only_server() {
    let mut p = Pair::new(
        ConnectionConfig::default(),
        sasl_server_config(vec!["ANONYMOUS"], false),
    );
    p.pump();
    // The server names SASL and says no more.
    assert_eq!(p.s2c.take(), [Wire::Header(ProtocolHeader::SASL)]);
    let se = p.take_server_events();
    assert!(matches!(se[..], [Event::Closed { .. }]), "{se:?}");
    let ce = p.take_client_events();
    assert!(matches!(ce[..], [Event::Closed { .. }]), "{ce:?}");

    // With allow_no_sasl the same client is let in.
    let p = Pair::opened(
        ConnectionConfig::default(),
        sasl_server_config(vec!["ANONYMOUS"], true),
    );
    assert_eq!(testing::state(&p.server), ConnectionState::Open);
}

// ---- open and close -------------------------------------------------------------------------

#[test]
fn close_handshake_initiated_by_us() {
    let mut c = Scripted::opened_client(ConnectionConfig::default(), open("server"));
    c.conn.close(None);
    assert_eq!(testing::state(&c.conn), ConnectionState::Closing);
    let p = c.perfs();
    assert_eq!(close_error(&p), None);
    assert!(c.events().is_empty(), "Closed waits for the peer's close");
    // Frames other than close are discarded now.
    c.feed_perf(0, begin(None, 10));
    assert!(c.frames().is_empty() && c.events().is_empty());
    c.feed_perf(0, Close { error: None });
    assert!(c.frames().is_empty(), "a close is not answered twice");
    let (error, by_peer) = c.expect_closed();
    assert!(error.is_none() && !by_peer);
    assert!(c.conn.begin_session(SessionConfig::default()).is_err());
}

#[test]
fn close_with_error_by_us_carries_the_error() {
    let mut c = Scripted::opened_client(ConnectionConfig::default(), open("server"));
    c.conn.close(Some(AmqpError::with_description(
        condition::CONNECTION_FORCED,
        "bye",
    )));
    let e = close_error(&c.perfs()).expect("close carries our error");
    assert_eq!(e.condition.as_str(), "amqp:connection:forced");
    assert_eq!(e.description_str(), "bye");
    c.feed_perf(0, Close { error: None });
    c.expect_closed();
}

#[test]
fn close_with_error_by_the_peer_is_answered_and_reported() {
    let mut s = Scripted::opened_server(ConnectionConfig::default(), open("client"));
    let err = AmqpError::with_description(condition::CONNECTION_FORCED, "maintenance");
    s.feed_perf(
        0,
        Close {
            error: Some(err.clone()),
        },
    );
    let p = s.perfs();
    assert_eq!(close_error(&p), None, "our answering close has no error");
    let (error, by_peer) = s.expect_closed();
    assert_eq!(error, Some(err));
    assert!(by_peer);
    // After the close nothing is read.
    s.feed_perf(0, begin(None, 10));
    assert!(s.frames().is_empty() && s.events().is_empty());
}

#[test]
fn pair_close_with_error_both_ways() {
    for client_closes in [true, false] {
        let mut p = Pair::opened(ConnectionConfig::default(), ConnectionConfig::default());
        let err = AmqpError::with_description(condition::INTERNAL_ERROR, "oops");
        if client_closes {
            p.client.close(Some(err.clone()));
        } else {
            p.server.close(Some(err.clone()));
        }
        p.pump();
        let (closer, other) = if client_closes {
            (p.take_client_events(), p.take_server_events())
        } else {
            (p.take_server_events(), p.take_client_events())
        };
        assert!(
            matches!(&other[..], [Event::Closed { error: Some(e), by_peer: true }] if *e == err),
            "{other:?}"
        );
        assert!(
            matches!(&closer[..], [Event::Closed { by_peer: false, .. }]),
            "{closer:?}"
        );
        assert!(p.client.is_closed() && p.server.is_closed());
    }
}

#[test]
fn close_before_the_header_exchange_just_stops() {
    let mut c = Scripted::client(ConnectionConfig::default());
    c.frames();
    c.conn.close(None);
    c.expect_closed();
    let mut s = Scripted::server(ConnectionConfig::default());
    s.conn.close(None);
    assert!(s.frames().is_empty());
    s.expect_closed();
}

#[test]
fn frame_before_open_closes_the_connection() {
    // Server: header then begin.
    let mut s = Scripted::server(ConnectionConfig::default());
    s.feed_header(ProtocolHeader::AMQP);
    s.frames();
    s.feed_perf(0, begin(None, 10));
    let (error, by_peer) = s.expect_closed();
    assert_eq!(error_condition(&error), Some("amqp:not-allowed"));
    assert!(!by_peer);
    // Client: it has sent its open, so it says why in a close.
    let mut c = Scripted::client(ConnectionConfig::default());
    c.frames();
    c.feed_header(ProtocolHeader::AMQP);
    c.feed_perf(0, begin(None, 10));
    let e = close_error(&c.perfs()).expect("error in close");
    assert_eq!(e.condition.as_str(), "amqp:not-allowed");
    c.expect_closed();
}

#[test]
fn second_open_and_open_off_channel_zero_close_the_connection() {
    let mut c = Scripted::opened_client(ConnectionConfig::default(), open("server"));
    c.feed_perf(0, open("again"));
    assert!(close_error(&c.perfs()).is_some());
    let (error, _) = c.expect_closed();
    assert_eq!(error_condition(&error), Some("amqp:not-allowed"));

    let mut c = Scripted::client(ConnectionConfig::default());
    c.frames();
    c.feed_header(ProtocolHeader::AMQP);
    c.feed_perf(3, open("server"));
    c.expect_closed();
}

#[test]
fn frame_on_a_channel_without_session_closes_the_connection() {
    let mut c = Scripted::opened_client(ConnectionConfig::default(), open("server"));
    for p in [
        Performative::Attach(attach(
            "x",
            0,
            eventhubs::amqp::types::definitions::Role::Sender,
        )),
        Performative::Flow(credit_flow(0, 0, 1)),
        Performative::Transfer(transfer(0, 0, false)),
        Performative::End(Default::default()),
    ] {
        let mut c2 = Scripted::opened_client(ConnectionConfig::default(), open("server"));
        c2.feed_perf(5, p);
        let e = close_error(&c2.perfs()).expect("close with error");
        assert_eq!(e.condition.as_str(), "amqp:not-allowed");
        c2.expect_closed();
    }
    // A heartbeat on any channel is fine.
    let mut hb = empty_frame();
    hb[7] = 9;
    c.feed(&hb);
    assert!(c.frames().is_empty() && c.events().is_empty());
    assert_eq!(testing::state(&c.conn), ConnectionState::Open);
}

#[test]
fn malformed_frames_close_with_framing_or_decode_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // doff 1
        (
            vec![0, 0, 0, 8, 1, 0, 0, 0],
            "amqp:connection:framing-error",
        ),
        // doff beyond the frame
        (
            vec![0, 0, 0, 8, 3, 0, 0, 0],
            "amqp:connection:framing-error",
        ),
        // frame size below the header
        (
            vec![0, 0, 0, 4, 2, 0, 0, 0],
            "amqp:connection:framing-error",
        ),
        // unknown frame type
        (
            vec![0, 0, 0, 8, 2, 7, 0, 0],
            "amqp:connection:framing-error",
        ),
        // SASL frame after the SASL layer
        (
            sasl_frame(SaslFrameBody::Outcome(SaslOutcome::new(SaslCode::Ok))),
            "amqp:connection:framing-error",
        ),
        // a body that is not a performative
        (
            vec![0, 0, 0, 11, 2, 0, 0, 0, 0x00, 0x53, 0x70],
            "amqp:decode-error",
        ),
        (
            vec![0, 0, 0, 10, 2, 0, 0, 0, 0xa1, 0x00],
            "amqp:decode-error",
        ),
    ];
    for (bytes, cond) in cases {
        let mut c = Scripted::opened_client(ConnectionConfig::default(), open("server"));
        c.feed(&bytes);
        let (error, by_peer) = c.expect_closed();
        assert_eq!(error_condition(&error), Some(cond), "{bytes:02x?}");
        assert!(!by_peer);
        let e = close_error(&c.perfs()).expect("close says why");
        assert_eq!(e.condition.as_str(), cond);
    }
}

// ---- max-frame-size and channel-max ---------------------------------------------------------

#[test]
fn our_open_announces_at_least_512_and_we_enforce_our_limit_at_once() {
    let mut c = Scripted::client(ConnectionConfig::default().with_max_frame_size(100));
    let w = c.frames();
    let Some(Performative::Open(o)) = w[1].performative() else {
        panic!()
    };
    assert_eq!(o.max_frame_size, 512);

    let mut c = Scripted::opened_client(
        ConnectionConfig::default().with_max_frame_size(1024),
        open("server"),
    );
    // Only the header of a 1025-byte frame: rejected before its body arrives.
    c.feed(&[0, 0, 4, 1, 2, 0, 0, 0]);
    let (error, _) = c.expect_closed();
    assert_eq!(
        error_condition(&error),
        Some("amqp:connection:framing-error")
    );
    // A huge announced size is never buffered.
    let mut s = Scripted::opened_server(ConnectionConfig::default(), open("client"));
    s.feed(&[0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 1, 2, 3]);
    s.expect_closed();
    assert_eq!(testing::buffered_input(&s.conn), 0);
}

#[test]
fn a_frame_of_exactly_our_limit_is_accepted() {
    let mut c = Scripted::opened_client(
        ConnectionConfig::default().with_max_frame_size(600),
        open("server"),
    );
    // A heartbeat padded with an extended header to exactly 600 bytes.
    let mut f = vec![0u8; 600];
    f[..8].copy_from_slice(&[0, 0, 2, 0x58, 150, 0, 0, 0]);
    c.feed(&f[..599]);
    assert_eq!(testing::state(&c.conn), ConnectionState::Open);
    assert_eq!(testing::buffered_input(&c.conn), 599);
    c.feed(&f[599..]);
    assert_eq!(testing::state(&c.conn), ConnectionState::Open);
    assert_eq!(testing::buffered_input(&c.conn), 0);
    assert!(c.events().is_empty());
}

#[test]
fn peer_max_frame_size_below_512_is_refused() {
    let mut c = Scripted::client(ConnectionConfig::default());
    c.frames();
    c.feed_header(ProtocolHeader::AMQP);
    let mut o = open("server");
    o.max_frame_size = 256;
    c.feed(&amqp_frame(0, o));
    assert!(close_error(&c.perfs()).is_some());
    let (error, _) = c.expect_closed();
    assert!(error.is_some());
}

#[test]
fn peer_channel_max_limits_our_sessions() {
    let mut o = open("server");
    o.channel_max = 1;
    let mut c = Scripted::opened_client(ConnectionConfig::default(), o);
    let a = c.conn.begin_session(SessionConfig::default()).unwrap();
    let b = c.conn.begin_session(SessionConfig::default()).unwrap();
    assert_eq!((a.0, b.0), (0, 1));
    let e = c.conn.begin_session(SessionConfig::default()).unwrap_err();
    assert_eq!(e.condition.as_str(), "amqp:resource-limit-exceeded");
    let chans: Vec<u16> = c.perfs().iter().map(|(ch, _)| *ch).collect();
    assert_eq!(chans, [0, 1]);
}

#[test]
fn a_begin_above_our_channel_max_closes_the_connection() {
    let mut s = Scripted::opened_server(
        ConnectionConfig::default().with_channel_max(3),
        open("client"),
    );
    s.feed_perf(3, begin(None, 10));
    assert!(matches!(s.events()[..], [Event::SessionBegun { .. }]));
    s.feed_perf(4, begin(None, 10));
    let e = close_error(&s.perfs()).expect("close");
    assert_eq!(e.condition.as_str(), "amqp:not-allowed");
    s.expect_closed();
}

#[test]
fn our_answering_begin_respects_the_peer_channel_max() {
    // The peer allows only channels 0..=1 towards it; we use 0 and 1 ourselves, then the
    // peer begins a session: no channel is left for our answer.
    let mut o = open("client");
    o.channel_max = 1;
    let mut s = Scripted::opened_server(ConnectionConfig::default(), o);
    s.conn.begin_session(SessionConfig::default()).unwrap();
    s.conn.begin_session(SessionConfig::default()).unwrap();
    s.frames();
    s.feed_perf(0, begin(None, 10));
    for (ch, _) in s.perfs() {
        assert!(
            ch <= 1,
            "wrote on channel {ch}, above the peer's channel-max 1"
        );
    }
    let (error, _) = s.expect_closed();
    assert_eq!(
        error_condition(&error),
        Some("amqp:resource-limit-exceeded")
    );

    // With a channel free under both limits the answer goes there.
    let mut o = open("client");
    o.channel_max = 1;
    let mut s = Scripted::opened_server(ConnectionConfig::default(), o);
    s.conn.begin_session(SessionConfig::default()).unwrap();
    s.frames();
    s.feed_perf(0, begin(None, 10));
    let p = s.perfs();
    assert!(
        matches!(&p[..], [(1, Performative::Begin(b))] if b.remote_channel == Some(0)),
        "{p:?}"
    );
}

// ---- idle timeout ---------------------------------------------------------------------------

#[test]
fn heartbeats_go_out_at_half_the_peer_idle_timeout() {
    let mut o = open("server");
    o.idle_time_out = Some(10_000);
    let mut c = Scripted::opened_client(
        {
            let mut o = ConnectionConfig::default();
            o.idle_timeout = None;
            o
        },
        o,
    );
    let t0 = c.clock.now();
    assert_eq!(c.conn.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    c.advance(Duration::from_millis(4_999));
    assert!(c.frames().is_empty());
    c.advance(Duration::from_millis(1));
    let w = c.frames();
    assert_eq!(w.len(), 1);
    assert!(w[0].is_heartbeat());
    assert_eq!(
        c.conn.poll_timeout(),
        Some(c.clock.now() + Duration::from_secs(5))
    );
    // Many periods: one heartbeat each, never a close (we set no idle timeout of our own).
    for _ in 0..20 {
        c.advance(Duration::from_secs(5));
        let w = c.frames();
        assert!(w.len() == 1 && w[0].is_heartbeat(), "{w:?}");
    }
    assert_eq!(testing::state(&c.conn), ConnectionState::Open);
    assert!(c.events().is_empty());
}

#[test]
fn no_heartbeats_without_a_peer_idle_timeout() {
    let mut c = Scripted::opened_client(
        {
            let mut o = ConnectionConfig::default();
            o.idle_timeout = None;
            o
        },
        open("server"),
    );
    assert_eq!(c.conn.poll_timeout(), None);
    c.advance(Duration::from_secs(3600));
    assert!(c.frames().is_empty());
    assert_eq!(testing::state(&c.conn), ConnectionState::Open);
}

#[test]
fn a_silent_peer_is_closed_with_resource_limit_exceeded() {
    let mut c = Scripted::opened_client(
        ConnectionConfig::default().with_idle_timeout(Duration::from_secs(2)),
        open("server"),
    );
    let w = c.frames();
    assert!(w.is_empty());
    // Heartbeats from the peer keep it alive.
    for _ in 0..10 {
        c.advance(Duration::from_millis(1_500));
        c.feed(&empty_frame());
        assert_eq!(testing::state(&c.conn), ConnectionState::Open);
    }
    assert_eq!(
        c.conn.poll_timeout(),
        Some(c.clock.now() + Duration::from_secs(2))
    );
    c.advance(Duration::from_millis(1_999));
    assert_eq!(testing::state(&c.conn), ConnectionState::Open);
    c.advance(Duration::from_millis(1));
    let e = close_error(&c.perfs()).expect("close with error");
    assert_eq!(e.condition.as_str(), "amqp:resource-limit-exceeded");
    let (error, by_peer) = c.expect_closed();
    assert_eq!(
        error_condition(&error),
        Some("amqp:resource-limit-exceeded")
    );
    assert!(!by_peer);
    assert_eq!(c.conn.poll_timeout(), None);
}

#[test]
fn joined_engines_with_idle_timeouts_stay_up_through_silence() {
    let cfg = |ms| ConnectionConfig::default().with_idle_timeout(Duration::from_millis(ms));
    let mut p = Pair::opened(cfg(1_000), cfg(4_000));
    for _ in 0..100 {
        let next = [p.client.poll_timeout(), p.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        let d = next.saturating_duration_since(p.clock.now());
        p.advance(d);
    }
    assert!(p.clock.elapsed() >= Duration::from_secs(40));
    assert_eq!(testing::state(&p.client), ConnectionState::Open);
    assert_eq!(testing::state(&p.server), ConnectionState::Open);
    let hb_c = p.c2s.take().iter().filter(|w| w.is_heartbeat()).count();
    let hb_s = p.s2c.take().iter().filter(|w| w.is_heartbeat()).count();
    assert!(hb_s >= 40 * 2 - 2, "server must beat every 500 ms: {hb_s}");
    assert!(hb_c >= 20 - 2, "client must beat every 2 s: {hb_c}");
    assert!(p.take_client_events().is_empty() && p.take_server_events().is_empty());
}

#[test]
fn connection_is_send() {
    // The IO layer moves engines into tasks.
    fn assert_send<T: Send>() {}
    assert_send::<Connection>();
}
