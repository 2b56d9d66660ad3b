//! Deliveries: multi-frame transfers both ways, max-message-size, aborts, pre-settled
//! deliveries, dispositions (ranges, coalescing, outcomes), receiver-settle-mode second and
//! pipelining.

mod common_engine;

use bytes::Bytes;
use common_engine::*;
use eventhubs::amqp::engine::{ConnectionConfig, LinkAcceptance, LinkConfig, SessionConfig};
use eventhubs::amqp::types::definitions::{ReceiverSettleMode, Role, SenderSettleMode};
use eventhubs::amqp::types::error::{condition, AmqpError};
use eventhubs::amqp::types::messaging::{
    DeliveryState, Modified, Received, Rejected, Released, Target,
};
use eventhubs::amqp::types::transport::{Disposition, Performative, Transfer};

fn client_with_peer_frame(max_frame: u32) -> Scripted {
    let mut o = open("server");
    o.max_frame_size = max_frame;
    Scripted::opened_client(ConnectionConfig::default(), o)
}

fn wire_transfers(w: &[Wire]) -> Vec<(u32, Transfer, Bytes)> {
    w.iter()
        .filter_map(|w| match w {
            Wire::Frame {
                size,
                performative: Some(Performative::Transfer(t)),
                payload,
                ..
            } => Some((*size, t.clone(), payload.clone())),
            _ => None,
        })
        .collect()
}

fn dispositions(p: &[(u16, Performative)]) -> Vec<Disposition> {
    p.iter()
        .filter_map(|(_, p)| match p {
            Performative::Disposition(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn pattern(n: usize, seed: u8) -> Bytes {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

// ---- multi-frame --------------------------------------------------------------------------

#[test]
fn large_messages_are_split_at_the_peer_max_frame_size() {
    for (max_frame, len) in [
        (512u32, 5000usize),
        (512, 1),
        (512, 0),
        (1000, 100_000),
        (65536, 300_000),
    ] {
        let mut c = client_with_peer_frame(max_frame);
        let s = c.begin_ours(SessionConfig::default(), 1, 100_000);
        let (link, h) = c.attach_ours(s, 1, Role::Sender, 0);
        c.feed_perf(1, {
            let mut f = credit_flow(0, 0, 10);
            f.incoming_window = 100_000;
            f
        });
        c.frames();
        let msg = pattern(len, 3);
        c.conn.send(link, msg.clone(), 0x8001_3700, false).unwrap();
        let t = wire_transfers(&c.frames()); // sizes checked against max_frame by the reader
        assert!(!t.is_empty());
        let mut joined = Vec::new();
        for (i, (size, tr, payload)) in t.iter().enumerate() {
            let last = i == t.len() - 1;
            assert!(*size <= max_frame);
            assert_eq!(tr.handle, h);
            assert_eq!(tr.more, !last, "frame {i} of {}", t.len());
            if !last {
                assert_eq!(*size, max_frame, "a continued frame is filled up");
            }
            if i == 0 {
                assert_eq!(tr.delivery_id, Some(0));
                assert_eq!(tr.message_format, Some(0x8001_3700));
                assert!(tr.delivery_tag.is_some());
            } else {
                assert!(tr.delivery_id.is_none() || tr.delivery_id == Some(0));
                assert!(tr.delivery_tag.is_none());
            }
            joined.extend_from_slice(payload);
        }
        assert_eq!(Bytes::from(joined), msg, "max_frame {max_frame} len {len}");
        // One delivery, one credit.
        assert_eq!(c.conn.link_credit(link), Some(9));
    }
}

#[test]
fn multi_frame_deliveries_are_reassembled_for_any_split() {
    let mut c = client_with_peer_frame(65536);
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, _) = c.attach_ours(s, 1, Role::Receiver, 0);
    c.conn.add_credit(link, 10);
    c.frames();
    let msg = pattern(3000, 9);
    let mut bytes = transfer_frame(1, transfer(0, 0, true), &msg[..1000]);
    bytes.extend(transfer_frame(1, continuation(0, true), &msg[1000..1001]));
    bytes.extend(transfer_frame(1, continuation(0, true), &[]));
    bytes.extend(transfer_frame(1, continuation(0, false), &msg[1001..]));
    // Byte by byte.
    for b in &bytes {
        c.feed(&[*b]);
    }
    let d = deliveries(&c.events());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].payload, msg);
    assert_eq!((d[0].delivery_id, d[0].settled), (0, false));
    assert_eq!(
        c.conn.link_credit(link),
        Some(9),
        "one credit for the whole message"
    );
}

#[test]
fn single_frame_payloads_are_slices_of_the_frame() {
    let mut c = client_with_peer_frame(65536);
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, _) = c.attach_ours(s, 1, Role::Receiver, 0);
    c.conn.add_credit(link, 1);
    let mut t = transfer(0, 0, false);
    t.message_format = Some(7);
    t.delivery_tag = Some(Bytes::from_static(b"tag-1"));
    t.state = Some(DeliveryState::Received(Received {
        section_number: 1,
        section_offset: 2,
    }));
    c.feed_transfer(1, t, b"hello");
    let d = deliveries(&c.events());
    assert_eq!(d[0].payload, Bytes::from_static(b"hello"));
    assert_eq!(d[0].tag, Bytes::from_static(b"tag-1"));
    assert_eq!(d[0].message_format, 7);
    assert!(matches!(d[0].state, Some(DeliveryState::Received(_))));
}

#[test]
fn max_message_size_is_enforced_both_ways() {
    // Receiving: we announced 1000.
    for (parts, ok) in [
        (vec![600usize, 400], true),
        (vec![600, 401], false),
        (vec![1001], false),
    ] {
        let mut c = client_with_peer_frame(65536);
        let s = c.begin_ours(SessionConfig::default(), 1, 1000);
        let link = c
            .conn
            .attach(
                s,
                LinkConfig::default()
                    .with_name("r".into())
                    .with_role(Role::Receiver)
                    .with_max_message_size(1000),
            )
            .unwrap();
        c.frames();
        c.feed_perf(1, attach("r", 0, Role::Sender));
        c.events();
        c.conn.add_credit(link, 5);
        c.frames();
        for (i, n) in parts.iter().enumerate() {
            let more = i + 1 < parts.len();
            let t = if i == 0 {
                transfer(0, 0, more)
            } else {
                continuation(0, more)
            };
            c.feed_transfer(1, t, &vec![1u8; *n]);
        }
        let got = deliveries(&c.events());
        if ok {
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].payload.len(), 1000);
            assert!(c.frames().is_empty());
        } else {
            assert!(got.is_empty(), "{parts:?}");
            let p = c.perfs();
            let Some((_, Performative::Detach(d))) = p.last() else {
                panic!("{p:?}")
            };
            assert!(d.closed);
            assert_eq!(
                d.error.as_ref().unwrap().condition.as_str(),
                "amqp:link:message-size-exceeded"
            );
        }
    }
    // Sending: the peer announced 100.
    let mut c = client_with_peer_frame(65536);
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let link = c
        .conn
        .attach(
            s,
            LinkConfig::default()
                .with_name("s".into())
                .with_role(Role::Sender),
        )
        .unwrap();
    let mut a = attach("s", 0, Role::Receiver);
    a.max_message_size = Some(100);
    c.feed_perf(1, a);
    assert_eq!(c.conn.peer_max_message_size(link), Some(100));
    c.conn.send(link, vec![0; 100].into(), 0, false).unwrap();
    let e = c
        .conn
        .send(link, vec![0; 101].into(), 0, false)
        .unwrap_err();
    assert_eq!(e.condition.as_str(), "amqp:link:message-size-exceeded");
    assert_eq!(c.conn.queued(link), 1);
}

#[test]
fn aborted_deliveries_are_dropped() {
    let mut c = client_with_peer_frame(65536);
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, _) = c.attach_ours(s, 1, Role::Receiver, 0);
    c.conn.add_credit(link, 3);
    c.frames();
    c.feed_transfer(1, transfer(0, 0, true), b"part one");
    c.feed_transfer(1, continuation(0, true), b"part two");
    let mut abort = continuation(0, false);
    abort.aborted = true;
    c.feed_transfer(1, abort, &[]);
    assert!(deliveries(&c.events()).is_empty());
    assert!(
        c.frames().is_empty(),
        "no disposition for an aborted delivery"
    );
    // The next delivery is clean (nothing of the aborted one leaks into it).
    c.feed_transfer(1, transfer(0, 1, false), b"whole");
    let d = deliveries(&c.events());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].payload, Bytes::from_static(b"whole"));
    assert_eq!(d[0].delivery_id, 1);
    // Settling the aborted id does nothing; settling the real one works.
    c.conn.settle(link, 0, accepted());
    assert!(c.frames().is_empty());
    c.conn.settle(link, 1, accepted());
    assert_eq!(dispositions(&c.perfs()).len(), 1);
    assert_eq!(
        c.conn.link_credit(link),
        Some(1),
        "the aborted delivery used its credit"
    );
}

#[test]
fn a_delivery_aborted_on_its_first_frame_still_counts() {
    // The sender counted the delivery when it started it; our delivery-count must follow, or
    // every later credit computation is off by one.
    let mut c = client_with_peer_frame(65536);
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, _) = c.attach_ours(s, 1, Role::Receiver, 0);
    c.conn.add_credit(link, 3);
    c.frames();
    let mut t = transfer(0, 0, false);
    t.aborted = true;
    c.feed_transfer(1, t, b"ignored");
    assert!(deliveries(&c.events()).is_empty());
    assert_eq!(c.conn.link_credit(link), Some(2));
    c.conn.add_credit(link, 1);
    let p = c.perfs();
    let Some((_, Performative::Flow(f))) = p.last() else {
        panic!("{p:?}")
    };
    assert_eq!((f.delivery_count, f.link_credit), (Some(1), Some(3)));
}

// ---- settlement ---------------------------------------------------------------------------

#[test]
fn presettled_deliveries_need_no_disposition() {
    // Sending.
    let mut c = client_with_peer_frame(65536);
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, _) = c.attach_ours(s, 1, Role::Sender, 0);
    c.feed_perf(1, credit_flow(0, 0, 10));
    c.events();
    c.frames();
    c.conn.send(link, "a".into(), 0, true).unwrap();
    c.conn.send(link, "b".into(), 0, false).unwrap();
    let t = wire_transfers(&c.frames());
    assert_eq!(t[0].1.settled, Some(true));
    assert_eq!(t[1].1.settled, Some(false));
    c.feed_perf(1, disposition(Role::Receiver, 0, Some(1), true, accepted()));
    let o = outcomes(&c.events());
    assert_eq!(o.len(), 1, "only the unsettled one has an outcome: {o:?}");
    assert_eq!(o[0].0, 1);

    // Receiving.
    let (rlink, _) = c.attach_ours(s, 1, Role::Receiver, 1);
    c.conn.add_credit(rlink, 1);
    c.frames();
    let mut t = transfer(1, 0, false);
    t.settled = Some(true);
    c.feed_transfer(1, t, b"x");
    let d = deliveries(&c.events());
    assert!(d[0].settled);
    c.conn.settle(rlink, 0, accepted());
    assert!(
        c.frames().is_empty(),
        "nothing is owed for a pre-settled delivery"
    );
}

#[test]
fn sender_settle_mode_decides_over_the_send_flag() {
    let mut p = Pair::opened(ConnectionConfig::default(), ConnectionConfig::default());
    let (cs, _) = p.session();
    for (mode, flag, expect) in [
        (SenderSettleMode::Settled, false, true),
        (SenderSettleMode::Unsettled, true, false),
        (SenderSettleMode::Mixed, true, true),
        (SenderSettleMode::Mixed, false, false),
    ] {
        let (cl, sl) = p.link(
            cs,
            LinkConfig::default()
                .with_name(format!("{mode:?}-{flag}"))
                .with_role(Role::Sender)
                .with_snd_settle_mode(mode)
                .with_target(Target::new("q")),
            LinkAcceptance::default(),
        );
        p.server.add_credit(sl, 1);
        p.pump();
        p.client.send(cl, "m".into(), 0, flag).unwrap();
        p.pump();
        let d = deliveries(&p.take_server_events());
        assert_eq!(d[0].settled, expect, "{mode:?} {flag}");
    }
}

#[test]
fn dispositions_with_ranges_settle_each_delivery_once() {
    let mut c = client_with_peer_frame(65536);
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, _) = c.attach_ours(s, 1, Role::Sender, 0);
    c.feed_perf(1, credit_flow(0, 0, 100));
    c.events();
    let tokens: Vec<u64> = (0..10)
        .map(|i| c.conn.send(link, vec![i].into(), 0, false).unwrap())
        .collect();
    c.frames();
    // A state without settling (received), then outcomes over ranges.
    let received = Some(DeliveryState::Received(Received {
        section_number: 0,
        section_offset: 0,
    }));
    c.feed_perf(
        1,
        disposition(Role::Receiver, 0, Some(1), false, received.clone()),
    );
    let o = outcomes(&c.events());
    assert_eq!(
        o,
        [
            (tokens[0], received.clone(), false),
            (tokens[1], received, false)
        ]
    );
    assert!(c.frames().is_empty());
    c.feed_perf(1, disposition(Role::Receiver, 0, Some(4), true, accepted()));
    c.feed_perf(1, disposition(Role::Receiver, 5, None, true, accepted()));
    // A range reaching far past what we sent (and wrapping) is harmless.
    c.feed_perf(1, disposition(Role::Receiver, 6, Some(5), true, accepted()));
    let o = outcomes(&c.events());
    let settled: Vec<u64> = o.iter().filter(|x| x.2).map(|x| x.0).collect();
    assert_eq!(settled, tokens, "{o:?}");
    // Settled ones are forgotten: repeating the disposition reports nothing.
    c.feed_perf(1, disposition(Role::Receiver, 0, Some(9), true, accepted()));
    assert!(outcomes(&c.events()).is_empty());
    assert!(!c.conn.is_closed());
}

#[test]
fn consecutive_settles_coalesce_into_one_disposition() {
    let mut c = client_with_peer_frame(65536);
    let s = c.begin_ours(SessionConfig::default(), 1, 1000);
    let (link, _) = c.attach_ours(s, 1, Role::Receiver, 0);
    c.conn.add_credit(link, 100);
    c.frames();
    for id in 0..20 {
        c.feed_transfer(1, transfer(0, id, false), b"m");
    }
    assert_eq!(deliveries(&c.events()).len(), 20);
    for id in 0..10 {
        c.conn.settle(link, id, accepted());
    }
    let d = dispositions(&c.perfs());
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].role, d[0].first, d[0].last, d[0].settled),
        (Role::Receiver, 0, Some(9), true)
    );
    assert_eq!(d[0].state, accepted());
    // Different outcomes break the run; out of order ones do not merge.
    let rejected = Some(DeliveryState::Rejected(Rejected {
        error: Some(AmqpError::new(condition::DECODE_ERROR)),
    }));
    c.conn.settle(link, 10, accepted());
    c.conn.settle(link, 11, accepted());
    c.conn.settle(link, 12, rejected.clone());
    c.conn.settle(link, 13, accepted());
    c.conn.settle(link, 15, accepted());
    c.conn.settle(link, 14, accepted());
    c.conn.settle(link, 14, accepted()); // twice: ignored
    c.conn.settle(link, 99, accepted()); // unknown: ignored
    let d = dispositions(&c.perfs());
    let got: Vec<(u32, Option<u32>, bool)> = d
        .iter()
        .map(|d| (d.first, d.last, d.state == rejected))
        .collect();
    assert_eq!(
        got,
        [
            (10, Some(11), false),
            (12, None, true),
            (13, None, false),
            (15, None, false),
            (14, None, false)
        ]
    );
    // Unsettled state updates are separate from settlement.
    c.conn.disposition(link, 16, None, false);
    c.conn.settle(link, 16, accepted());
    let d = dispositions(&c.perfs());
    assert_eq!(d.len(), 2);
    assert!(!d[0].settled && d[1].settled);
}

#[test]
fn each_outcome_reaches_the_sender() {
    let mut p = Pair::opened(ConnectionConfig::default(), ConnectionConfig::default());
    let (cs, _) = p.session();
    let (cl, sl) = p.sender_link(cs, "outcomes");
    p.server.add_credit(sl, 10);
    p.pump();
    let states = [
        DeliveryState::Accepted(Default::default()),
        DeliveryState::Rejected(Rejected {
            error: Some(AmqpError::with_description(condition::INVALID_FIELD, "bad")),
        }),
        DeliveryState::Released(Released),
        DeliveryState::Modified(Modified {
            delivery_failed: true,
            undeliverable_here: true,
            message_annotations: None,
        }),
    ];
    let tokens: Vec<u64> = states
        .iter()
        .map(|_| p.client.send(cl, "m".into(), 0, false).unwrap())
        .collect();
    p.pump();
    let d = deliveries(&p.take_server_events());
    assert_eq!(d.len(), 4);
    for (d, s) in d.iter().zip(&states) {
        p.server.settle(sl, d.delivery_id, Some(s.clone()));
    }
    p.pump();
    let o = outcomes(&p.take_client_events());
    let expect: Vec<(u64, Option<DeliveryState>, bool)> = tokens
        .iter()
        .zip(&states)
        .map(|(t, s)| (*t, Some(s.clone()), true))
        .collect();
    assert_eq!(o, expect);
}

#[test]
fn receiver_settle_mode_second() {
    let mut p = Pair::opened(ConnectionConfig::default(), ConnectionConfig::default());
    let (cs, _) = p.session();
    let (cl, sl) = p.link(
        cs,
        LinkConfig::default()
            .with_name("second".into())
            .with_role(Role::Sender)
            .with_rcv_settle_mode(ReceiverSettleMode::Second)
            .with_target(Target::new("q")),
        LinkAcceptance::default(),
    );
    assert_eq!(
        p.server.rcv_settle_mode(sl),
        Some(ReceiverSettleMode::Second)
    );
    assert_eq!(
        p.client.rcv_settle_mode(cl),
        Some(ReceiverSettleMode::Second)
    );
    p.server.add_credit(sl, 5);
    p.pump();
    let t = p.client.send(cl, "m".into(), 0, false).unwrap();
    p.pump();
    let d = deliveries(&p.take_server_events());
    p.c2s.take();
    p.s2c.take();
    // The receiver states its outcome without settling; the sender settles; done.
    p.server
        .disposition(sl, d[0].delivery_id, accepted(), false);
    p.pump();
    let s_disp = dispositions(&performatives(&p.s2c.take()));
    assert_eq!(s_disp.len(), 1);
    assert!(!s_disp[0].settled && s_disp[0].role == Role::Receiver);
    let c_disp = dispositions(&performatives(&p.c2s.take()));
    assert_eq!(c_disp.len(), 1, "the sender settles");
    assert!(c_disp[0].settled && c_disp[0].role == Role::Sender);
    assert_eq!(c_disp[0].state, accepted());
    assert_eq!(outcomes(&p.take_client_events()), [(t, accepted(), true)]);
    // The server now knows the delivery is settled: settling again writes nothing.
    p.server.settle(sl, d[0].delivery_id, accepted());
    p.pump();
    assert!(dispositions(&performatives(&p.s2c.take())).is_empty());
}

// ---- pipelining -----------------------------------------------------------------------------

#[test]
fn a_thousand_deliveries_in_flight_before_any_disposition() {
    let mut p = Pair::opened(ConnectionConfig::default(), ConnectionConfig::default());
    let (cs, _) = p.session();
    let (cl, sl) = p.sender_link(cs, "pipeline");
    p.server.add_credit(sl, 1000);
    p.pump();
    p.take_client_events();
    let tokens: Vec<u64> = (0..1000u32)
        .map(|i| {
            p.client
                .send(cl, Bytes::from(i.to_be_bytes().to_vec()), 0, false)
                .unwrap()
        })
        .collect();
    // Everything goes out in one write, before the server has said anything.
    p.transmit();
    let c_frames = p.c2s.take();
    assert_eq!(wire_transfers(&c_frames).len(), 1000);
    p.pump();
    let d = deliveries(&p.take_server_events());
    assert_eq!(d.len(), 1000);
    for (i, d) in d.iter().enumerate() {
        assert_eq!(d.payload, Bytes::from((i as u32).to_be_bytes().to_vec()));
    }
    p.s2c.take();
    for d in &d {
        p.server.settle(sl, d.delivery_id, accepted());
    }
    p.pump();
    let disp = dispositions(&performatives(&p.s2c.take()));
    assert_eq!(disp.len(), 1, "one disposition frame for the whole run");
    assert_eq!((disp[0].first, disp[0].last), (0, Some(999)));
    let o = outcomes(&p.take_client_events());
    assert_eq!(o.iter().map(|x| x.0).collect::<Vec<_>>(), tokens);
    assert!(o.iter().all(|x| x.2 && x.1 == accepted()));
}

#[test]
fn many_deliveries_through_small_frames_and_windows_in_random_pieces() {
    let server_cfg = ConnectionConfig::default().with_max_frame_size(512);
    let mut p = Pair::opened(ConnectionConfig::default(), server_cfg).chunked(7);
    p.keep_wire = false;
    let cs = p
        .client
        .begin_session(
            SessionConfig::default()
                .with_incoming_window(8)
                .with_outgoing_window(8)
                .with_handle_max(4),
        )
        .unwrap();
    p.pump();
    p.take_server_events();
    let (cl, sl) = p.sender_link(cs, "bulk");
    p.server.add_credit(sl, 20_000);
    p.pump();
    let msgs: Vec<Bytes> = (0..12_000usize)
        .map(|i| pattern(i % 1500, i as u8))
        .collect();
    for m in &msgs {
        p.client.send(cl, m.clone(), 0, false).unwrap();
    }
    p.pump();
    let d = deliveries(&p.take_server_events());
    assert_eq!(d.len(), msgs.len());
    for (d, m) in d.iter().zip(&msgs) {
        assert_eq!(&d.payload, m);
        p.server.settle(sl, d.delivery_id, accepted());
    }
    p.pump();
    let o = outcomes(&p.take_client_events());
    assert_eq!(o.len(), msgs.len());
    assert!(p.c2s.largest <= 512);
}
