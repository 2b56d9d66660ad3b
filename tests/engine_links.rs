//! Sessions and links, one engine against hand-written frames: begin/end both ways, windows,
//! attach/detach both roles, handle errors, link credit, delivery-count, drain and echo.

mod common_engine;

use common_engine::*;
use eventhubs::amqp::engine::{ConnectionConfig, Event, LinkAcceptance, LinkConfig, SessionConfig};
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::error::{condition, AmqpError};
use eventhubs::amqp::types::messaging::{Source, Target};
use eventhubs::amqp::types::transport::{End, Flow, Performative};

fn client() -> Scripted {
    Scripted::opened_client(ConnectionConfig::default(), open("server"))
}

fn server() -> Scripted {
    Scripted::opened_server(ConnectionConfig::default(), open("client"))
}

fn end_error(p: &[(u16, Performative)]) -> Option<AmqpError> {
    match p.last() {
        Some((_, Performative::End(e))) => e.error.clone(),
        other => panic!("expected an end last, got {other:?}"),
    }
}

fn detach_of(p: &[(u16, Performative)]) -> eventhubs::amqp::types::transport::Detach {
    match p.last() {
        Some((_, Performative::Detach(d))) => d.clone(),
        other => panic!("expected a detach last, got {other:?}"),
    }
}

fn flows(p: &[(u16, Performative)]) -> Vec<Flow> {
    p.iter()
        .filter_map(|(_, p)| match p {
            Performative::Flow(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn transfers(p: &[(u16, Performative)]) -> usize {
    p.iter()
        .filter(|(_, p)| matches!(p, Performative::Transfer(_)))
        .count()
}

// ---- sessions -------------------------------------------------------------------------------

#[test]
fn begin_by_us_announces_our_windows_and_maps_on_the_answer() {
    let mut c = client();
    let s = c
        .conn
        .begin_session(
            SessionConfig::default()
                .with_incoming_window(100)
                .with_outgoing_window(200)
                .with_handle_max(7),
        )
        .unwrap();
    let p = c.perfs();
    let [(ch, Performative::Begin(b))] = &p[..] else {
        panic!("{p:?}")
    };
    assert_eq!(*ch, s.0);
    assert_eq!(b.remote_channel, None);
    assert_eq!(
        (
            b.next_outgoing_id,
            b.incoming_window,
            b.outgoing_window,
            b.handle_max
        ),
        (0, 100, 200, 7)
    );
    assert!(c.events().is_empty(), "not begun before the answer");
    c.feed_perf(9, begin(Some(s.0), 10));
    let ev = c.events();
    assert!(
        matches!(&ev[..], [Event::SessionBegun { session, remote }] if *session == s && remote.incoming_window == 10)
    );
}

#[test]
fn begin_by_the_peer_is_answered_with_remote_channel() {
    let mut s = server();
    s.feed_perf(3, begin(None, 10));
    let p = s.perfs();
    let [(ch, Performative::Begin(b))] = &p[..] else {
        panic!("{p:?}")
    };
    assert_eq!(b.remote_channel, Some(3));
    let ev = s.events();
    assert!(matches!(&ev[..], [Event::SessionBegun { session, .. }] if session.0 == *ch));
    // A second begin on the same channel is a connection error.
    s.feed_perf(3, begin(None, 10));
    s.expect_closed();
}

#[test]
fn a_begin_answering_a_channel_we_did_not_begin_closes_the_connection() {
    let mut c = client();
    c.feed_perf(0, begin(Some(4), 10));
    let (error, _) = c.expect_closed();
    assert_eq!(error_condition(&error), Some("amqp:not-allowed"));
}

#[test]
fn end_by_us_then_the_peer_answers() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 100);
    let (link, _) = c.attach_ours(s, 1, Role::Sender, 0);
    c.conn.end_session(
        s,
        Some(AmqpError::with_description(
            condition::INTERNAL_ERROR,
            "done",
        )),
    );
    let e = end_error(&c.perfs()).expect("our end carries the error");
    assert_eq!(e.condition.as_str(), "amqp:internal-error");
    assert!(c.events().is_empty());
    c.conn.end_session(s, None);
    assert!(c.frames().is_empty(), "end is sent once");
    c.feed_perf(1, End { error: None });
    assert!(c.frames().is_empty(), "the peer's answer is not answered");
    let ev = c.events();
    assert!(
        matches!(&ev[..], [Event::LinkDetached { link: l, .. }, Event::SessionEnded { session, by_peer: false, .. }] if *l == link && *session == s),
        "{ev:?}"
    );
    // The channel is free again.
    assert_eq!(c.conn.begin_session(SessionConfig::default()).unwrap(), s);
}

#[test]
fn end_by_the_peer_with_error_is_answered_and_reported() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 100);
    let (link, _) = c.attach_ours(s, 1, Role::Receiver, 0);
    let err = AmqpError::new(condition::RESOURCE_DELETED);
    c.feed_perf(
        1,
        End {
            error: Some(err.clone()),
        },
    );
    let p = c.perfs();
    assert!(
        matches!(&p[..], [(ch, Performative::End(End { error: None }))] if *ch == s.0),
        "{p:?}"
    );
    let ev = c.events();
    assert!(
        matches!(&ev[..], [Event::LinkDetached { link: l, error: Some(e1), by_peer: true, .. }, Event::SessionEnded { error: Some(e2), by_peer: true, .. }] if *l == link && *e1 == err && *e2 == err),
        "{ev:?}"
    );
    // Frames on the old channel are now a connection error.
    c.feed_perf(1, credit_flow(0, 0, 1));
    c.expect_closed();
}

#[test]
fn ending_a_session_before_its_begin_is_answered() {
    let mut c = client();
    let s = c.conn.begin_session(SessionConfig::default()).unwrap();
    c.conn.end_session(s, None);
    assert_eq!(names(&c.frames()), ["begin", "end"]);
    c.feed_perf(1, begin(Some(s.0), 100));
    c.feed_perf(1, End { error: None });
    let ev = c.events();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::SessionEnded { .. }))
            .count(),
        1,
        "{ev:?}"
    );
    assert!(
        !c.conn.is_closed(),
        "a late begin answer is no protocol error: {ev:?}"
    );
}

#[test]
fn a_transfer_beyond_our_incoming_window_ends_the_session_once() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default().with_incoming_window(0), 1, 100);
    let (link, _) = c.attach_ours(s, 1, Role::Receiver, 0);
    c.conn.add_credit(link, 10);
    c.frames();
    c.feed_transfer(1, transfer(0, 0, false), b"x");
    let e = end_error(&c.perfs()).expect("end with error");
    assert_eq!(e.condition.as_str(), "amqp:session:window-violation");
    let ev = c.events();
    assert!(ev.iter().all(|e| !matches!(e, Event::Delivery { .. })));
    assert!(ev.iter().any(|e| matches!(e, Event::SessionEnded { error: Some(e), by_peer: false, .. } if e.condition.as_str() == "amqp:session:window-violation")));
    // More transfers are discarded until the peer's end, which ends it without a second event.
    c.feed_transfer(1, transfer(0, 1, false), b"y");
    assert!(c.frames().is_empty());
    c.feed_perf(1, End { error: None });
    let ev = c.events();
    assert!(
        ev.iter().all(|e| !matches!(e, Event::SessionEnded { .. })),
        "SessionEnded reported twice: {ev:?}"
    );
    assert!(!c.conn.is_closed());
}

#[test]
fn we_stop_at_the_peer_window_and_resume_on_its_flow() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 3);
    let (link, h) = c.attach_ours(s, 1, Role::Sender, 0);
    // A link flow carries the session window too: keep it at 3.
    let mut f = credit_flow(0, 0, 100);
    f.incoming_window = 3;
    c.feed_perf(1, f);
    c.frames();
    for i in 0..5u8 {
        c.conn.send(link, vec![i; 10].into(), 0, false).unwrap();
    }
    let p = c.perfs();
    assert_eq!(transfers(&p), 3, "window of 3 frames");
    c.feed_perf(
        1,
        Flow {
            next_incoming_id: Some(3),
            incoming_window: 1,
            next_outgoing_id: 0,
            outgoing_window: 100,
            ..Flow::default()
        },
    );
    assert_eq!(transfers(&c.perfs()), 1);
    // A link flow also carries the session window.
    let mut f = credit_flow(0, 0, 100);
    f.next_incoming_id = Some(4);
    f.incoming_window = 10;
    c.feed_perf(1, f);
    let p = c.perfs();
    assert_eq!(transfers(&p), 1);
    assert_eq!(c.conn.queued(link), 0);
    let _ = h;
}

#[test]
fn multi_frame_transfers_count_frames_against_the_window() {
    let mut o = open("server");
    o.max_frame_size = 512;
    let mut c = Scripted::opened_client(ConnectionConfig::default(), o);
    let s = c.begin_ours(SessionConfig::default(), 1, 2);
    let (link, _) = c.attach_ours(s, 1, Role::Sender, 0);
    let mut f = credit_flow(0, 0, 10);
    f.incoming_window = 2;
    c.feed_perf(1, f);
    c.frames();
    c.conn.send(link, vec![7u8; 2000].into(), 0, false).unwrap();
    assert_eq!(transfers(&c.perfs()), 2);
    c.feed_perf(
        1,
        Flow {
            next_incoming_id: Some(2),
            incoming_window: 100,
            next_outgoing_id: 0,
            outgoing_window: 100,
            ..Flow::default()
        },
    );
    let p = c.perfs();
    assert_eq!(
        transfers(&p),
        3,
        "2000 bytes in 512-byte frames is 5 frames"
    );
}

#[test]
fn our_incoming_window_is_replenished_by_session_flows() {
    let mut s = server();
    s.feed_perf(0, begin(None, 100));
    let ch = match &s.perfs()[..] {
        [(ch, Performative::Begin(_))] => *ch,
        p => panic!("{p:?}"),
    };
    s.events();
    s.feed_perf(0, attach("in", 0, Role::Sender));
    let link = match &s.events()[..] {
        [Event::LinkAttachRequested { link, .. }] => *link,
        e => panic!("{e:?}"),
    };
    s.conn.accept_link(link, LinkAcceptance::default()).unwrap();
    s.conn.add_credit(link, 100_000);
    s.frames();
    // The default window is 5000: send 20000 transfers; we must keep re-opening it.
    let mut delivered = 0;
    let mut max_seen_id = 0;
    for id in 0..20_000u32 {
        s.feed_transfer(0, transfer(0, id, false), b"m");
        for f in flows(&s.perfs()) {
            assert_eq!(f.handle, None, "a session flow");
            let next = f.next_incoming_id.unwrap();
            assert_eq!(next, id + 1);
            assert_eq!(f.incoming_window, 5000);
            max_seen_id = next;
        }
        delivered += deliveries(&s.events()).len();
    }
    assert_eq!(delivered, 20_000);
    assert!(max_seen_id > 15_000);
    assert!(!s.conn.is_closed());
    let _ = ch;
}

#[test]
fn session_echo_is_answered_with_a_session_flow() {
    let mut c = client();
    c.begin_ours(SessionConfig::default(), 1, 10);
    c.feed_perf(
        1,
        Flow {
            next_incoming_id: Some(0),
            incoming_window: 10,
            next_outgoing_id: 0,
            outgoing_window: 10,
            echo: true,
            ..Flow::default()
        },
    );
    let f = flows(&c.perfs());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].handle, None);
    assert!(!f[0].echo, "an echo is not echoed back");
}

// ---- attach / detach --------------------------------------------------------------------------

#[test]
fn attach_by_us_both_roles() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 10);
    let sender = c
        .conn
        .attach(
            s,
            LinkConfig::default()
                .with_name("snd".into())
                .with_role(Role::Sender)
                .with_target(Target::new("q")),
        )
        .unwrap();
    let receiver = c
        .conn
        .attach(
            s,
            LinkConfig::default()
                .with_name("rcv".into())
                .with_role(Role::Receiver)
                .with_source(Source::new("q"))
                .with_max_message_size(4096),
        )
        .unwrap();
    assert_ne!(sender, receiver);
    let p = c.perfs();
    let [(_, Performative::Attach(a)), (_, Performative::Attach(b))] = &p[..] else {
        panic!("{p:?}")
    };
    assert_eq!(
        (a.handle, a.role, a.initial_delivery_count),
        (0, Role::Sender, Some(0))
    );
    assert_eq!(a.target.as_ref().unwrap().address.as_deref(), Some("q"));
    assert_eq!(
        (b.handle, b.role, b.initial_delivery_count),
        (1, Role::Receiver, None)
    );
    assert_eq!(b.max_message_size, Some(4096));
    // The peer answers the receiver first; names decide which link each answer is for.
    let mut ans = attach("rcv", 5, Role::Sender);
    ans.initial_delivery_count = Some(41);
    c.feed_perf(1, ans);
    c.feed_perf(1, attach("snd", 6, Role::Receiver));
    let ev = c.events();
    assert!(
        matches!(&ev[..], [Event::LinkAttached { link: l1, .. }, Event::LinkAttached { link: l2, .. }] if *l1 == receiver && *l2 == sender),
        "{ev:?}"
    );
    // The receiver took its delivery-count from the sender's initial-delivery-count.
    c.conn.add_credit(receiver, 3);
    let f = flows(&c.perfs());
    assert_eq!(
        (f[0].handle, f[0].delivery_count, f[0].link_credit),
        (Some(1), Some(41), Some(3))
    );
}

#[test]
fn attach_by_the_peer_accepted_both_roles() {
    let mut s = server();
    s.feed_perf(0, begin(None, 100));
    s.frames();
    s.events();
    for (name, peer_role, handle) in [("a", Role::Sender, 4), ("b", Role::Receiver, 9)] {
        s.feed_perf(0, attach(name, handle, peer_role));
        let ev = s.events();
        let [Event::LinkAttachRequested {
            link, attach: a, ..
        }] = &ev[..]
        else {
            panic!("{ev:?}")
        };
        assert_eq!((a.name.as_str(), a.handle), (name, handle));
        assert!(
            s.frames().is_empty(),
            "no answer before the application decides"
        );
        s.conn
            .accept_link(
                *link,
                LinkAcceptance::default()
                    .with_source(Source::new("src"))
                    .with_target(Target::new("tgt")),
            )
            .unwrap();
        let p = s.perfs();
        let [(_, Performative::Attach(ours))] = &p[..] else {
            panic!("{p:?}")
        };
        assert_eq!(ours.name.as_str(), name);
        assert_eq!(ours.role, peer_role.opposite());
        assert_eq!(
            ours.initial_delivery_count,
            (ours.role == Role::Sender).then_some(0)
        );
        assert!(s
            .conn
            .accept_link(*link, LinkAcceptance::default())
            .is_err());
    }
}

#[test]
fn refusing_a_link_sends_a_null_terminus_then_a_closing_detach() {
    let mut s = server();
    s.feed_perf(0, begin(None, 100));
    s.frames();
    s.events();
    for (peer_role, handle) in [(Role::Sender, 0), (Role::Receiver, 1)] {
        s.feed_perf(0, attach("x", handle, peer_role));
        let link = match &s.events()[..] {
            [Event::LinkAttachRequested { link, .. }] => *link,
            e => panic!("{e:?}"),
        };
        let why = AmqpError::with_description(condition::NOT_FOUND, "no such entity");
        s.conn.refuse_link(link, why.clone()).unwrap();
        let p = s.perfs();
        let [(_, Performative::Attach(a)), (_, Performative::Detach(d))] = &p[..] else {
            panic!("{p:?}")
        };
        assert!(a.source.is_none() && a.target.is_none());
        assert!(d.closed);
        assert_eq!(d.error.as_ref(), Some(&why));
        s.feed_perf(0, detach(handle, true, None));
        let ev = s.events();
        assert!(
            matches!(&ev[..], [Event::LinkDetached { link: l, error: Some(e), closed: true, by_peer: false }] if *l == link && *e == why),
            "{ev:?}"
        );
        assert!(s.frames().is_empty(), "the peer's detach answers ours");
    }
}

#[test]
fn being_refused_reports_attached_then_detached_with_the_error() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 100);
    let link = c
        .conn
        .attach(
            s,
            LinkConfig::default()
                .with_name("r".into())
                .with_role(Role::Receiver)
                .with_source(Source::new("nope")),
        )
        .unwrap();
    c.frames();
    let mut a = attach("r", 0, Role::Sender);
    a.source = None;
    a.target = None;
    c.feed_perf(1, a);
    let err = AmqpError::with_description(
        condition::NOT_FOUND,
        "The messaging entity could not be found",
    );
    c.feed_perf(1, detach(0, true, Some(err.clone())));
    let ev = c.events();
    assert!(
        matches!(&ev[0], Event::LinkAttached { link: l, remote } if *l == link && remote.source.is_none())
    );
    assert!(
        matches!(&ev[1], Event::LinkDetached { link: l, error: Some(e), closed: true, by_peer: true } if *l == link && *e == err)
    );
    let d = detach_of(&c.perfs());
    assert!(d.closed && d.error.is_none());
}

#[test]
fn detach_by_us_with_error_is_reported_with_it_after_the_answer() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 100);
    let (link, h) = c.attach_ours(s, 1, Role::Sender, 3);
    let err = AmqpError::new(condition::LINK_DETACH_FORCED);
    c.conn.detach(link, true, Some(err.clone()));
    let d = detach_of(&c.perfs());
    assert_eq!(
        (d.handle, d.closed, d.error.as_ref()),
        (h, true, Some(&err))
    );
    c.conn.detach(link, true, None);
    assert!(c.frames().is_empty(), "detach is sent once");
    assert!(c.conn.send(link, vec![1].into(), 0, false).is_err());
    c.feed_perf(1, detach(3, true, None));
    let ev = c.events();
    assert!(
        matches!(&ev[..], [Event::LinkDetached { link: l, error: Some(e), closed: true, by_peer: false }] if *l == link && *e == err),
        "{ev:?}"
    );
    // Handle 0 is free again.
    let (_, h2) = c.attach_ours(s, 1, Role::Sender, 3);
    assert_eq!(h2, h);
}

#[test]
fn a_non_closing_detach_by_the_peer_is_answered_in_kind() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 100);
    let (link, h) = c.attach_ours(s, 1, Role::Sender, 0);
    c.feed_perf(1, detach(0, false, None));
    let d = detach_of(&c.perfs());
    assert_eq!((d.handle, d.closed), (h, false));
    let ev = c.events();
    assert!(
        matches!(&ev[..], [Event::LinkDetached { link: l, closed: false, by_peer: true, error: None }] if *l == link)
    );
}

#[test]
fn handle_in_use_ends_the_session() {
    let mut s = server();
    s.feed_perf(0, begin(None, 100));
    s.frames();
    s.events();
    s.feed_perf(0, attach("one", 0, Role::Sender));
    s.events();
    s.feed_perf(0, attach("two", 0, Role::Sender));
    let e = end_error(&s.perfs()).expect("end with error");
    assert_eq!(e.condition.as_str(), "amqp:session:handle-in-use");
    let ev = s.events();
    assert!(ev.iter().any(|e| matches!(e, Event::LinkDetached { .. })));
    assert!(ev.iter().any(|e| matches!(e, Event::SessionEnded { error: Some(e), .. } if e.condition.as_str() == "amqp:session:handle-in-use")));
    assert!(!s.conn.is_closed());
}

#[test]
fn a_handle_above_handle_max_ends_the_session() {
    let mut c = client();
    c.begin_ours(SessionConfig::default().with_handle_max(3), 1, 100);
    c.feed_perf(1, attach("x", 4, Role::Sender));
    let e = end_error(&c.perfs()).expect("end with error");
    assert!(e.condition.as_str().starts_with("amqp:"));
}

#[test]
fn unknown_handles_end_the_session_with_unattached_handle() {
    let frames: Vec<Performative> = vec![
        credit_flow(7, 0, 1).into(),
        Performative::Transfer(transfer(7, 0, false)),
        detach(7, true, None).into(),
    ];
    for f in frames {
        let mut c = client();
        let s = c.begin_ours(SessionConfig::default(), 1, 100);
        c.attach_ours(s, 1, Role::Receiver, 0);
        c.feed_perf(1, f.clone());
        let e = end_error(&c.perfs()).unwrap_or_else(|| panic!("no error for {f:?}"));
        assert_eq!(
            e.condition.as_str(),
            "amqp:session:unattached-handle",
            "{f:?}"
        );
        let ev = c.events();
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::SessionEnded { .. }))
                .count(),
            1
        );
        assert!(!c.conn.is_closed());
    }
}

// ---- credit as sender -----------------------------------------------------------------------

#[test]
fn sender_credit_and_delivery_count() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, h) = c.attach_ours(s, 1, Role::Sender, 0);
    // No credit: sends queue.
    for i in 0..4u8 {
        c.conn.send(link, vec![i].into(), 0, false).unwrap();
    }
    assert!(c.frames().is_empty());
    assert_eq!(c.conn.queued(link), 4);
    c.feed_perf(1, credit_flow(0, 0, 3));
    let ev = c.events();
    assert!(matches!(&ev[..], [Event::Credit { link: l, credit: 3 }] if *l == link));
    let p = c.perfs();
    assert_eq!(transfers(&p), 3);
    let ids: Vec<(u32, Option<u32>)> = p
        .iter()
        .filter_map(|(_, p)| match p {
            Performative::Transfer(t) => Some((t.handle, t.delivery_id)),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [(h, Some(0)), (h, Some(1)), (h, Some(2))]);
    assert_eq!(c.conn.link_credit(link), Some(0));
    assert_eq!(c.conn.queued(link), 1);
    // The receiver renews credit from its own delivery-count: (3 + 2) - 3 = 2 usable.
    c.feed_perf(1, credit_flow(0, 3, 2));
    assert!(matches!(&c.events()[..], [Event::Credit { credit: 2, .. }]));
    assert_eq!(transfers(&c.perfs()), 1);
    assert_eq!(c.conn.link_credit(link), Some(1));
    // A flow from a stale delivery-count: (0 + 2) - 4 < 0 means no credit.
    c.feed_perf(1, credit_flow(0, 0, 2));
    assert_eq!(c.conn.link_credit(link), Some(0));
}

#[test]
fn drain_with_messages_queued_uses_up_the_credit() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, _) = c.attach_ours(s, 1, Role::Sender, 0);
    c.conn.send(link, vec![1].into(), 0, false).unwrap();
    c.conn.send(link, vec![2].into(), 0, false).unwrap();
    let mut f = credit_flow(0, 0, 5);
    f.drain = true;
    c.feed_perf(1, f);
    let p = c.perfs();
    assert_eq!(transfers(&p), 2);
    let back = flows(&p);
    assert_eq!(back.len(), 1, "{p:?}");
    assert_eq!(
        (back[0].delivery_count, back[0].link_credit, back[0].drain),
        (Some(5), Some(0), true)
    );
    assert_eq!(c.conn.link_credit(link), Some(0));
}

#[test]
fn drain_with_nothing_queued_answers_at_once() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, h) = c.attach_ours(s, 1, Role::Sender, 0);
    let mut f = credit_flow(0, 0, 5);
    f.drain = true;
    c.feed_perf(1, f);
    let back = flows(&c.perfs());
    assert_eq!(back.len(), 1, "a drain must be answered with a flow");
    assert_eq!(
        (back[0].handle, back[0].delivery_count, back[0].link_credit),
        (Some(h), Some(5), Some(0))
    );
    assert_eq!(c.conn.link_credit(link), Some(0));
    // A later send waits for new credit.
    c.conn.send(link, vec![1].into(), 0, false).unwrap();
    assert_eq!(transfers(&c.perfs()), 0);
}

#[test]
fn echo_asks_for_our_link_state() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, h) = c.attach_ours(s, 1, Role::Sender, 0);
    c.conn.send(link, vec![1].into(), 0, false).unwrap();
    c.conn.send(link, vec![2].into(), 0, false).unwrap();
    let mut f = credit_flow(0, 0, 1);
    f.echo = true;
    c.feed_perf(1, f);
    let p = c.perfs();
    assert_eq!(transfers(&p), 1);
    let back = flows(&p);
    assert_eq!(back.len(), 1);
    let f = &back[0];
    assert_eq!(f.handle, Some(h));
    assert!(!f.echo);
    // The answer is our state as the flow found it: count 0, credit 1, two messages queued
    // (the transfer the credit allows follows it).
    assert!(matches!(p[0].1, Performative::Flow(_)));
    assert_eq!(
        (f.delivery_count, f.link_credit, f.available),
        (Some(0), Some(1), Some(2))
    );
}

// ---- credit as receiver ---------------------------------------------------------------------

#[test]
fn receiver_grants_sets_and_drains_credit() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, h) = c.attach_ours(s, 1, Role::Receiver, 0);
    c.conn.add_credit(link, 10);
    c.conn.add_credit(link, 5);
    let f = flows(&c.perfs());
    assert_eq!(f.len(), 2);
    assert_eq!(
        (
            f[1].handle,
            f[1].delivery_count,
            f[1].link_credit,
            f[1].drain
        ),
        (Some(h), Some(0), Some(15), false)
    );
    for id in 0..4 {
        c.feed_transfer(1, transfer(0, id, false), b"m");
    }
    assert_eq!(deliveries(&c.events()).len(), 4);
    assert_eq!(c.conn.link_credit(link), Some(11));
    c.conn.set_credit(link, 2);
    let f = flows(&c.perfs());
    assert_eq!((f[0].delivery_count, f[0].link_credit), (Some(4), Some(2)));
    c.conn.drain(link);
    let f = flows(&c.perfs());
    assert_eq!(
        (f[0].delivery_count, f[0].link_credit, f[0].drain),
        (Some(4), Some(2), true)
    );
    // The sender has nothing: it advances delivery-count by the credit.
    let mut back = credit_flow(0, 6, 0);
    back.drain = true;
    back.available = Some(0);
    c.feed_perf(1, back);
    let ev = c.events();
    assert!(
        matches!(&ev[..], [Event::ReceiverFlow { link: l, credit: 0, available: Some(0) }] if *l == link),
        "{ev:?}"
    );
    assert_eq!(c.conn.link_credit(link), Some(0));
    // Echo from the sender gets our state back.
    let mut e = credit_flow(0, 6, 0);
    e.echo = true;
    c.feed_perf(1, e);
    let f = flows(&c.perfs());
    assert_eq!((f.len(), f[0].delivery_count), (1, Some(6)));
}

#[test]
fn a_transfer_without_credit_detaches_with_transfer_limit_exceeded() {
    let mut c = client();
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, _) = c.attach_ours(s, 1, Role::Receiver, 0);
    c.conn.add_credit(link, 1);
    c.frames();
    c.feed_transfer(1, transfer(0, 0, false), b"ok");
    assert_eq!(deliveries(&c.events()).len(), 1);
    c.feed_transfer(1, transfer(0, 1, false), b"too many");
    let d = detach_of(&c.perfs());
    assert!(d.closed);
    assert_eq!(
        d.error.unwrap().condition.as_str(),
        "amqp:link:transfer-limit-exceeded"
    );
    assert!(deliveries(&c.events()).is_empty());
    // Further transfers on it are dropped while the detach is in flight.
    c.feed_transfer(1, transfer(0, 2, false), b"more");
    assert!(c.frames().is_empty() && c.events().is_empty());
    c.feed_perf(1, detach(0, true, None));
    let ev = c.events();
    assert!(
        matches!(&ev[..], [Event::LinkDetached { link: l, error: Some(e), by_peer: false, .. }] if *l == link && e.condition.as_str() == "amqp:link:transfer-limit-exceeded"),
        "{ev:?}"
    );
    assert!(!c.conn.is_closed());
}

#[test]
fn a_transfer_before_we_answered_the_attach_refuses_the_link() {
    // The peer attaches a sender and transfers at once, before we granted (or could grant)
    // credit. The link must be refused on the wire and reported, not silently forgotten.
    let mut s = server();
    s.feed_perf(0, begin(None, 100));
    s.frames();
    s.events();
    s.feed_perf(0, attach("eager", 0, Role::Sender));
    let link = match &s.events()[..] {
        [Event::LinkAttachRequested { link, .. }] => *link,
        e => panic!("{e:?}"),
    };
    s.feed_transfer(0, transfer(0, 0, false), b"too soon");
    let p = s.perfs();
    let [(_, Performative::Attach(a)), (_, Performative::Detach(d))] = &p[..] else {
        panic!("{p:?}")
    };
    assert!(a.target.is_none(), "refused with a null target");
    assert!(d.closed);
    assert_eq!(
        d.error.as_ref().unwrap().condition.as_str(),
        "amqp:link:transfer-limit-exceeded"
    );
    assert!(s.conn.accept_link(link, LinkAcceptance::default()).is_err());
    // More transfers on the handle are dropped, not a session error.
    s.feed_transfer(0, transfer(0, 1, false), b"more");
    assert!(s.frames().is_empty());
    s.feed_perf(0, detach(0, true, None));
    let ev = s.events();
    assert!(
        matches!(&ev[..], [Event::LinkDetached { link: l, error: Some(e), closed: true, by_peer: false }] if *l == link && e.condition.as_str() == "amqp:link:transfer-limit-exceeded"),
        "{ev:?}"
    );
    assert!(!s.conn.is_closed());
}
